"""The linear ACE-style model: site energy ε_i = c_0 + Σ_k c_k B_k(environment of i).

Units: coefficients eV (features are dimensionless); energies eV, forces eV/Å, virials eV,
force constants eV/Å². Float64 throughout.

``LinearACE.design`` returns, for one configuration, the derivatives of the model's
observations with respect to the coefficients — the rows of the least-squares design
matrix (docs/models.md §2): energy (1 + K), forces (n, 3, 1 + K), virial (3, 3, 1 + K),
force-constant rows (3r, 3n, 1 + K). Column 0 is the one-body term (n for the energy,
zero for every derivative).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch
from ase import Atoms

from genanalysis.memory import check_memory
from genanalysis.models import engine, kernels
from genanalysis.models.basis import ACEBasis, ACESpec, BasisModel

__all__ = ["LinearACE", "feature_pair_jacobian"]


def feature_pair_jacobian(b: ACEBasis, geom) -> torch.Tensor:
    """∂B_{i(p),k}/∂D_p (P, 3, K) in 1/Å: the derivative of the features of each pair's
    centre with respect to the pair vector, Σ_f ∂B_k/∂A_f ∇φ_f(D_p), from the compiled
    design pass (:func:`kernels.design_efv`)."""
    mk, mc, gidx, K = kernels.feature_tables(b)
    out = np.zeros((geom.P, 3, K))
    kernels.design_efv(geom.Dn, geom.start, geom.j, mk, mc, gidx, K, False, out, *kernels.tables(b))
    return torch.from_numpy(out)


class LinearACE(BasisModel):
    """Linear model on the invariant features of :class:`ACESpec`.

    ``coef_`` (1 + K,) eV: the one-body constant then one coefficient per feature
    (``feature_names``). ``fit`` lives in :mod:`genanalysis.fit`; this class evaluates.
    """

    kind = "ace"
    #: energy_forces(linearise=True) returns the Hessian operator of the same pass
    fused_linearise = True

    def __init__(self, spec: ACESpec, coef: np.ndarray | None = None):
        super().__init__(spec)
        self.coef_ = self._coefficients(coef, 1 + self.basis.K)

    @property
    def n_params(self) -> int:
        return 1 + self.basis.K

    @property
    def feature_names(self) -> list[str]:
        return ["1b"] + self.basis.names

    # -- per-site derivatives for the engine --------------------------------------------

    def site_tables(self) -> tuple[np.ndarray, np.ndarray]:
        """ε(A) − c_0 = Σ_t w_t A1[idx_t0] A1[idx_t1] A1[idx_t2] as (w (T,) eV, idx (T, 3)):
        the monomials of every feature times its coefficient, with global A-indices
        (n_A = the constant 1), sorted (see below)."""
        b = self.basis
        S1 = np.concatenate([b.S.numpy(), np.full((b.K, 1), b.n_A)], axis=1)
        k = b.mono_k.numpy()
        w = np.asarray(self.coef_[1:], dtype=np.float64)[k] * b.mono_coef.numpy()
        # each monomial's indices ascending, monomials by (i0, i1, i2): runs of a shared
        # partial product a1[i0] a1[i1] for the site kernels (kernels._site_block)
        idx = np.sort(S1[k[:, None], b.mono_slot.numpy()], axis=1)
        order = np.lexsort((idx[:, 2], idx[:, 1], idx[:, 0]))
        return np.ascontiguousarray(w[order]), np.ascontiguousarray(idx[order], dtype=np.int64)

    def _site_fn(self, A: torch.Tensor):
        """site_fn of :func:`engine.hessian_sparse`: (g (c, 1, n_A), M (c, 1, n_A, n_A)) eV."""
        w, idx = self.site_tables()
        An = A.numpy()

        def site_fn(C):
            Ac = np.ascontiguousarray(An[C])
            _, g = kernels.site_energy_grad(Ac, w, idx, True)
            return g[:, None], kernels.site_hessian(Ac, w, idx)[:, None]

        return site_fn

    # -- evaluation -------------------------------------------------------------------------

    def _geometry(self, atoms: Atoms):
        return engine.model_geometry(self, atoms)

    def _pass(self, atoms: Atoms):
        """(geometry, site energies − c_0 (n,) eV, ∂E/∂D (P, 3) eV/Å, A, g = ∂ε/∂A eV):
        one compiled pass over the centres."""
        self._check(atoms)
        geom = self._geometry(atoms)
        w, idx = self.site_tables()
        e, dEdD, A, G = kernels.linear_forces(geom.Dn, geom.start, w, idx, *kernels.tables(self.basis))
        return geom, e, dEdD, A, G

    def predict(self, atoms: Atoms, hessian: bool = False) -> dict:
        """energy (eV), energies (n,) eV, forces (n, 3) eV/Å, virial (3, 3) eV and, if
        asked, hessian (sparse 3n × 3n, eV/Å²) of the model on ``atoms``."""
        geom, e, dEdD, A, _ = self._pass(atoms)
        energies = self.coef_[0] + e
        F, W = engine.forces_virial_np(geom, dEdD)
        out = {"energy": float(energies.sum()), "energies": energies, "forces": F, "virial": W}
        if hessian:
            out["hessian"] = self.hessian(atoms, geom=geom, A=torch.from_numpy(A))
        return out

    def energy_forces(self, atoms: Atoms, linearise: bool = False):
        """(energy eV, forces (n, 3) eV/Å, Hessian operator or None) from one pass; the
        operator (:meth:`linearise`) reuses the pass's A and ∂ε/∂A."""
        geom, e, dEdD, A, G = self._pass(atoms)
        F = -kernels.scatter_pairs(dEdD, geom.i, geom.j, geom.n)
        energy = float((self.coef_[0] + e).sum())
        return energy, F, (self._operator(geom, A, G) if linearise else None)

    def linearise(self, atoms: Atoms) -> spla.LinearOperator:
        """Matrix-free Hessian-vector products at ``atoms`` (eV/Å² · Å → eV/Å)."""
        geom, _, _, A, G = self._pass(atoms)
        return self._operator(geom, A, G)

    def _pair_hvp(self, geom, A: np.ndarray, G: np.ndarray):
        """δD (P, 3) ↦ δ(∂E/∂D) (P, 3) (:func:`kernels.linear_hvp`) on the pair terms held
        from the first product (:func:`engine.held_pair_terms`)."""
        w, idx = self.site_tables()
        held: dict = {}

        def pair_hvp(dD):
            if not held:
                held.update(engine.held_pair_terms(self.basis, geom, G))
            return kernels.linear_hvp(geom.start, np.ascontiguousarray(dD), A, held["T"], *held["F"], w, idx,
                                      kernels.tables(self.basis)[1])

        return pair_hvp

    def _operator(self, geom, A: np.ndarray, G: np.ndarray) -> spla.LinearOperator:
        """H v = Σ_p (e_j − e_i)ᵀ δ(∂E/∂D_p)[δD = v_j − v_i] (:meth:`_pair_hvp`)."""
        return engine.pair_operator(geom, self._pair_hvp(geom, A, G))

    def hessian(self, atoms: Atoms, geom=None, A=None) -> sp.csr_array:
        """Exact force constants ∂²E/∂x∂x (eV/Å²), sparse (3n × 3n), atom-major."""
        self._check(atoms)
        geom = geom or self._geometry(atoms)
        A = engine.projections(self.basis, geom) if A is None else A
        S = torch.arange(self.basis.n_A)[None, :]
        return engine.hessian_sparse(self.basis, geom, self._site_fn(A), S)

    def hessian_rows(self, atoms: Atoms, rows) -> np.ndarray:
        """Rows of the force-constant matrix for the atoms ``rows``: (3·len(rows), 3n), eV/Å²
        (:func:`kernels.design_hessian` with the model's site polynomial as one output)."""
        self._check(atoms)
        geom = self._geometry(atoms)
        w, idx = self.site_tables()
        return self._hessian_kernel(geom, rows, np.zeros(len(w), dtype=np.int64), w, idx, 1)[:, :, 1]

    def elastic_constants(self, atoms: Atoms) -> np.ndarray:
        """Clamped-ion elastic constants (Voigt; eV/Å³, 2D eV/Å²) of a periodic cell,
        analytic (:func:`genanalysis.potentials.base.born_elastic_constants`) from the
        pair-space Hessian product of :func:`kernels.linear_hvp`: six (2D: three) products,
        no strained copies of the cell."""
        from genanalysis.potentials.base import born_elastic_constants

        geom, _, dEdD, A, G = self._pass(atoms)
        return born_elastic_constants(atoms, geom.Dn, dEdD, self._pair_hvp(geom, A, G))

    # -- design rows --------------------------------------------------------------------------

    def design(self, atoms: Atoms, kinds: str = "EFV", hessian_rows: np.ndarray | None = None) -> dict:
        """Per-coefficient observations of one configuration (see module docstring).

        ``kinds`` ⊂ "EFVH"; ``hessian_rows`` the atoms whose force-constant rows are wanted
        (None = all). Returns numpy arrays keyed by observation code.
        """
        self._check(atoms)
        b = self.basis
        geom = engine.geometry(atoms, self.cutoff)
        K, n = b.K, geom.n
        out: dict[str, np.ndarray] = {}
        if "E" in kinds or "F" in kinds or "V" in kinds:
            check_memory("the force rows of a design block", 8.0 * 3 * n * (K + 1) * (2 if "F" in kinds else 0))
            mk, mc, gidx, _ = kernels.feature_tables(b)
            E, F, W = kernels.design_efv(geom.Dn, geom.start, geom.j, mk, mc, gidx, K, "V" in kinds,
                                         np.zeros((0, 3, K)), *kernels.tables(b))
            zero = lambda x: np.concatenate([np.zeros(x.shape[:-1] + (1,)), x], axis=-1)  # noqa: E731
            if "E" in kinds:
                out["E"] = np.concatenate([[float(n)], E])
            if "F" in kinds:
                out["F"] = zero(F)
            if "V" in kinds:
                out["V"] = zero(W)
        if "H" in kinds:
            out["H"] = self._design_hessian(geom, np.arange(n) if hessian_rows is None else hessian_rows)
        return out

    def _design_hessian(self, geom, rows) -> np.ndarray:
        """Force-constant design rows of the row atoms ``rows``: (3r, 3n, 1 + K), eV/Å² per
        eV, from one compiled pass over the centres near them (:func:`kernels.design_hessian`;
        only these rows are formed, never the (3n)² block of every feature)."""
        return self._hessian_kernel(geom, rows, *kernels.feature_tables(self.basis))

    def _hessian_kernel(self, geom, rows, mono_k, mono_coef, gidx, K: int) -> np.ndarray:
        """:func:`kernels.design_hessian` of the outputs Σ_{t: mono_k[t] = k} mono_coef[t] Π_s A1[gidx[t, s]]
        (k < K) for the row atoms ``rows`` (distinct), memory estimated first."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        n = geom.n
        if len(np.unique(rows)) != len(rows) or (len(rows) and (rows.min() < 0 or rows.max() >= n)):
            raise InputError(f"force-constant rows must be distinct atoms in [0, {n}); got {rows.tolist()[:10]}")
        check_memory("the force-constant rows", 8.0 * 9 * len(rows) * n * (K + 1))
        pos = np.full(n, -1, dtype=np.int64)
        pos[rows] = np.arange(len(rows))
        return kernels.design_hessian(geom.Dn, geom.start, geom.j, pos, len(rows), mono_k, mono_coef, gidx, K,
                                      *kernels.tables(self.basis))

    def design_hessian_chunks(self, atoms: Atoms, rows, chunk: int):
        """The force-constant design rows of the atoms ``rows`` in pieces of at most
        ``chunk`` row atoms: yields (offset into ``rows``, (3c, 3n, 1 + K) rows), so that a
        large defect cell's rows stream into the fit without the whole (3r, 3n, 1 + K)."""
        self._check(atoms)
        geom = engine.geometry(atoms, self.cutoff)
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        for a in range(0, len(rows), max(int(chunk), 1)):
            yield a, self._design_hessian(geom, rows[a:a + max(int(chunk), 1)])

    # -- persistence --------------------------------------------------------------------------

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """(JSON-able header, arrays) for :mod:`genanalysis.models.io`."""
        return {"kind": self.kind, "spec": self.spec.to_dict(), "feature_names": self.feature_names}, {
            "coef": self.coef_}

    @classmethod
    def from_state(cls, header: dict, arrays: dict) -> "LinearACE":
        return cls(ACESpec(**header["spec"]), arrays["coef"])
