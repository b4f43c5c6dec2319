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
import torch
from ase import Atoms

from genanalysis.exceptions import InputError
from genanalysis.models import engine
from genanalysis.models.basis import ACEBasis, ACESpec

__all__ = ["LinearACE", "feature_pair_jacobian"]


def feature_pair_jacobian(b: ACEBasis, geom, A: torch.Tensor) -> torch.Tensor:
    """∂B_{i(p),k}/∂D_p (P, 3, K) in 1/Å: the derivative of the features of each pair's
    centre with respect to the pair vector, Σ_f ∂B_k/∂A_f ∇φ_f(D_p) — one dense matmul per
    chunk of centres."""
    n, K = geom.n, b.K
    g, _ = b.feature_derivatives(A, second=False)
    gd = torch.zeros(n, K, b.n_A + 1)
    gd.scatter_add_(2, b.S.expand(n, K, b.S_max), g)
    gd = gd[:, :, : b.n_A]
    dBdD = torch.zeros(geom.P + 1, 3, K)
    z = geom.zmax
    step = max(1, int(engine._BUDGET // (z * b.n_A * 3 + z * 3 * K)))
    for a, c in engine._chunks(n, step):
        flat = geom.pad[a:c].reshape(-1)
        real = flat < geom.P
        J = torch.zeros(len(flat), b.n_A, 3)
        J[torch.tensor(real)] = b.phi_derivatives(geom.D[flat[real]])
        J = J.view(c - a, z, b.n_A, 3).permute(0, 2, 1, 3).reshape(c - a, b.n_A, 3 * z)
        d = torch.bmm(gd[a:c], J).view(c - a, K, z, 3).permute(0, 2, 3, 1).reshape(-1, 3, K)
        dBdD[torch.tensor(flat[real])] = d[torch.tensor(real)]
    return dBdD[: geom.P]


class LinearACE:
    """Linear model on the invariant features of :class:`ACESpec`.

    ``coef_`` (1 + K,) eV: the one-body constant then one coefficient per feature
    (``feature_names``). ``fit`` lives in :mod:`genanalysis.fit`; this class evaluates.
    """

    kind = "ace"

    def __init__(self, spec: ACESpec, coef: np.ndarray | None = None):
        self.spec = spec
        self.basis = ACEBasis(spec)
        self.coef_ = np.zeros(1 + self.basis.K) if coef is None else np.asarray(coef, dtype=np.float64).copy()
        if self.coef_.shape != (1 + self.basis.K,):
            raise InputError(f"coefficient vector has shape {self.coef_.shape}; the model needs ({1 + self.basis.K},)")

    @property
    def cutoff(self) -> float:
        return self.spec.cutoff

    @property
    def n_params(self) -> int:
        return 1 + self.basis.K

    @property
    def feature_names(self) -> list[str]:
        return ["1b"] + self.basis.names

    def _check(self, atoms: Atoms) -> None:
        d = engine.atoms_dim(atoms)
        if d != self.spec.dim:
            raise InputError(f"configuration has dim={d} but the model was built for dim={self.spec.dim}")

    # -- per-site derivatives for the engine --------------------------------------------

    def _site_dense(self, A: torch.Tensor, second: bool):
        """g (n, n_A) eV and M (n, n_A, n_A) eV of ε(A) = c·B(A)."""
        b = self.basis
        c = torch.tensor(self.coef_[1:])
        g, M = b.feature_derivatives(A, second=second)
        n = A.shape[0]
        gd = torch.zeros(n, b.n_A + 1)
        gd.index_add_(1, b.S.reshape(-1), (g * c[None, :, None]).reshape(n, -1))
        if not second:
            return gd[:, : b.n_A], None
        Md = torch.zeros(n, (b.n_A + 1) ** 2)
        idx = (b.S[:, :, None] * (b.n_A + 1) + b.S[:, None, :]).reshape(-1)
        Md.index_add_(1, idx, (M * c[None, :, None, None]).reshape(n, -1))
        Md = Md.view(n, b.n_A + 1, b.n_A + 1)[:, : b.n_A, : b.n_A]
        return gd[:, : b.n_A], Md

    # -- evaluation -------------------------------------------------------------------------

    def evaluate(self, atoms: Atoms, hessian: bool = False) -> dict:
        """energy (eV), energies (n,) eV, forces (n, 3) eV/Å, virial (3, 3) eV and, if
        asked, hessian (sparse 3n × 3n, eV/Å²) of the model on ``atoms``."""
        self._check(atoms)
        geom = engine.geometry(atoms, self.cutoff)
        A = engine.projections(self.basis, geom)
        B = self.basis.features(A)
        energies = self.coef_[0] + (B @ torch.tensor(self.coef_[1:])).numpy()
        G, _ = self._site_dense(A, second=False)
        F, W = engine.forces_virial(geom, engine.pair_gradients(self.basis, geom, G))
        out = {"energy": float(energies.sum()), "energies": energies, "forces": F.numpy(), "virial": W.numpy()}
        if hessian:
            out["hessian"] = self.hessian(atoms, geom=geom, A=A)
        return out

    def hessian(self, atoms: Atoms, geom=None, A=None) -> sp.csr_array:
        """Exact force constants ∂²E/∂x∂x (eV/Å²), sparse (3n × 3n), atom-major."""
        self._check(atoms)
        geom = geom or engine.geometry(atoms, self.cutoff)
        A = engine.projections(self.basis, geom) if A is None else A
        S = torch.arange(self.basis.n_A)[None, :]

        def site_fn(C):
            g, M = self._site_dense(A[torch.tensor(C)], second=True)
            return g[:, None], M[:, None]

        return engine.hessian_sparse(self.basis, geom, site_fn, S)

    def hessian_rows(self, atoms: Atoms, rows) -> np.ndarray:
        """Rows of the force-constant matrix for the atoms ``rows``: (3·len(rows), 3n), eV/Å²."""
        self._check(atoms)
        geom = engine.geometry(atoms, self.cutoff)
        A = engine.projections(self.basis, geom)
        S = torch.arange(self.basis.n_A)[None, :]

        def site_fn(C):
            g, M = self._site_dense(A[torch.tensor(C)], second=True)
            return g[:, None], M[:, None]

        return engine.hessian_dense_rows(self.basis, geom, site_fn, S, np.asarray(rows))[0].numpy()

    # -- design rows --------------------------------------------------------------------------

    def design(self, atoms: Atoms, kinds: str = "EFV", hessian_rows: np.ndarray | None = None) -> dict:
        """Per-coefficient observations of one configuration (see module docstring).

        ``kinds`` ⊂ "EFVH"; ``hessian_rows`` the atoms whose force-constant rows are wanted
        (None = all). Returns numpy arrays keyed by observation code.
        """
        self._check(atoms)
        b = self.basis
        geom = engine.geometry(atoms, self.cutoff)
        A = engine.projections(b, geom)
        K, n = b.K, geom.n
        out: dict[str, np.ndarray] = {}
        if "E" in kinds:
            out["E"] = np.concatenate([[float(n)], b.features(A).sum(0).numpy()])
        if "F" in kinds or "V" in kinds:
            dBdD = feature_pair_jacobian(b, geom, A)
            F, W = engine.forces_virial(geom, dBdD)
            zero = lambda x: np.concatenate([np.zeros(x.shape[:-1] + (1,)), x.numpy()], axis=-1)  # noqa: E731
            if "F" in kinds:
                out["F"] = zero(F)
            if "V" in kinds:
                out["V"] = zero(W)
        if "H" in kinds:
            def site_fn(C):
                return b.feature_derivatives(A[torch.tensor(C)], second=True)

            H = engine.hessian_dense_rows(b, geom, site_fn, b.S, hessian_rows)  # (K, 3r, 3n)
            Hn = H.permute(1, 2, 0).numpy()
            out["H"] = np.concatenate([np.zeros(Hn.shape[:2] + (1,)), Hn], axis=-1)
        return out

    # -- persistence --------------------------------------------------------------------------

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """(JSON-able header, arrays) for :mod:`genanalysis.models.io`."""
        return {"kind": self.kind, "spec": self.spec.to_dict(), "feature_names": self.feature_names}, {
            "coef": self.coef_}

    @classmethod
    def from_state(cls, header: dict, arrays: dict) -> "LinearACE":
        return cls(ACESpec(**header["spec"]), arrays["coef"])
