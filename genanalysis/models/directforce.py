"""A direct-force model: forces predicted without an energy (docs/models.md §10).

Units: positions Å; the invariants are dimensionless, the radial functions ρ_k = R_k' are in
1/Å, so the coefficients θ are in eV (like a linear model's); forces eV/Å; the stiffness
K = −∂F/∂x eV/Å².

The model is linear in its coefficients θ (n_rad × (1 + K)) on rotation-equivariant vector
features built from the linear model's own basis (:mod:`genanalysis.models.basis`):

    F_i = Σ_k Σ_m θ_{k m} B_m(i) V_k(i),   V_k(i) = Σ_{j ∈ N(i)} ρ_k(r_ij) r̂_ij,

with r̂_ij = (x_j − x_i)/r_ij, ρ_k = dR_k/dr the derivatives of the linear model's radial
functions, and B_0 = 1, B_m (m ≥ 1) the ACE invariants of site i. V_k rotates with the
configuration and B_m does not, so F is equivariant under rotations and reflections (O(d)),
invariant under translations and equivariant under permutations of the atoms — by
construction. Nothing makes it a gradient: the m ≥ 1 terms weigh the pair (i, j) by the
environment of i only, so F_i + F_j ≠ 0 for an isolated pair of different environments (the
net force Σ_i F_i, the acoustic-sum-rule violation) and ∂F_i/∂x_j ≠ ∂F_j/∂x_i (the
non-conservative, antisymmetric part of the Jacobian). The m = 0 terms are exactly the force of a
pair potential: with θ_{k0} = 2 Y_00 c_k they are −∇E of the two-body linear model
E = Σ_i Σ_k c_k A_{k,0}(i) (:meth:`DirectForceACE.from_linear`), so a conservative model is a
special case.

The Jacobian is exact and sparse: δF_i = Σ_{p ∈ N(i)} Q_p (δx_j − δx_i) with one 3 × 3 block
per pair, Q_p = ∂F_i/∂D_p = Σ_k C_ik [ρ_k' r̂ r̂ᵀ + (ρ_k/r)(I − r̂ r̂ᵀ)] + W_i ∇φ(D_p), where
C_ik = Σ_m θ_km B_m(i) and W_i = Σ_k V_k(i) ⊗ Σ_m θ_km ∂B_m/∂A (i): F_i depends on the
neighbours of i only, so the Jacobian couples atoms within one cutoff.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch
from ase import Atoms

from genanalysis.exceptions import InputError
from genanalysis.memory import check_memory
from genanalysis.models import engine, kernels
from genanalysis.models.basis import ACESpec, BasisModel, isotropic_harmonic
from genanalysis.models.calculator import ModelPotential
from genanalysis.potentials.base import Observation

__all__ = ["DirectForceACE", "DirectForcePotential", "NO_ENERGY"]

#: why a direct-force model reports no energy, virial or formation energy
NO_ENERGY = "a direct-force model predicts forces only: it has no energy (hence no formation energy, virial or dipole)"

class DirectForceACE(BasisModel):
    """The direct-force model of the module docstring on the basis of an :class:`ACESpec`.

    ``coef_`` (n_rad · (1 + K),) eV, row-major over (radial k, invariant m); m = 0 is the
    constant invariant. ``fit`` lives in :mod:`genanalysis.fit` (the linear least squares of
    every linear model); this class evaluates.
    """

    kind = "directforce"
    #: the observation types the model predicts (no energy, no virial)
    observables = "FH"

    def __init__(self, spec: ACESpec, coef: np.ndarray | None = None):
        super().__init__(spec)
        self.n_rad = self.basis.n_rad
        self.coef_ = self._coefficients(coef, self.n_rad * (1 + self.basis.K))

    @property
    def n_params(self) -> int:
        return self.coef_.size

    @property
    def feature_names(self) -> list[str]:
        inv = ["1"] + self.basis.names
        return [f"rho{k} x {m}" for k in range(self.n_rad) for m in inv]

    @property
    def theta(self) -> np.ndarray:
        """θ (n_rad, 1 + K) eV."""
        return self.coef_.reshape(self.n_rad, 1 + self.basis.K)

    @classmethod
    def from_linear(cls, linear, spec: ACESpec | None = None) -> "DirectForceACE":
        """The direct-force model whose forces are −∇E of a two-body linear model
        (:class:`~genanalysis.models.linear.LinearACE` whose many-body coefficients are
        zero): θ_{k0} = 2 Y_0 c_k, Y_0 the isotropic harmonic of the dimension. ``spec`` (default: the linear model's) sets the
        invariants, whose coefficients are zero; its radial functions must be the linear
        model's."""
        spec = spec or linear.spec
        if (spec.cutoff, spec.r_in, spec.dim) != (linear.spec.cutoff, linear.spec.r_in, linear.spec.dim):
            raise InputError("from_linear: the direct-force spec must have the linear model's cutoff, r_in and dim")
        model = cls(spec)
        names = linear.feature_names[1:]
        c = np.asarray(linear.coef_[1:])
        many = [k for k, nm in enumerate(names) if not nm.startswith("2b ") and c[k] != 0.0]
        if many:
            raise InputError(f"from_linear: the linear model has {len(many)} non-zero many-body coefficients; only "
                             "a two-body model is a direct-force model of this family")
        theta = model.theta.copy()
        for k, nm in enumerate(names):
            if nm.startswith("2b "):
                n = int(nm.split("=")[1])
                if n >= model.n_rad:
                    raise InputError(f"from_linear: pair radial {n} exceeds the direct-force model's {model.n_rad}")
                theta[n, 0] = 2.0 * isotropic_harmonic(model.spec.dim) * c[k]
        model.coef_ = theta.ravel()
        return model

    def _geometry(self, atoms: Atoms):
        return engine.model_geometry(self, atoms)

    # -- the pieces -------------------------------------------------------------------------

    def _pass(self, atoms: Atoms, jacobian: bool):
        """(geometry, Bfull (n, 1+K), V (n, n_rad, 3) 1/Å, and with ``jacobian``: Q (P, 3, 3)
        eV/Å², the per-pair blocks ∂F_i/∂D_p)."""
        self._check(atoms)
        b = self.basis
        geom = self._geometry(atoms)
        tabs = kernels.tables(b)
        n, P = geom.n, geom.P
        r = np.sqrt(np.einsum("pa,pa->p", geom.Dn, geom.Dn))
        u = geom.Dn / r[:, None] if P else geom.Dn
        radial = b._radial(torch.from_numpy(r), order=2 if jacobian else 1)
        rho = radial[1].numpy()  # (P, n_rad) 1/Å
        V = np.zeros((n, self.n_rad, 3))
        np.add.at(V, geom.i, rho[:, :, None] * u[:, None, :])
        if jacobian:
            phi, J, _ = kernels.pair_phi_derivatives(geom.Dn, 1, *tabs)  # (P, n_A), (P, n_A, 3)
            A = np.zeros((n, b.n_A))
            np.add.at(A, geom.i, phi)
        else:
            A = kernels.projections(geom.Dn, geom.i, n, *tabs)
        At = torch.from_numpy(A)
        Bfull = np.concatenate([np.ones((n, 1)), b.features(At).numpy()], axis=1)
        if not jacobian:
            return geom, Bfull, V, None
        g, _ = b.feature_derivatives(At, second=False)  # (n, K, S_max)
        gd = torch.zeros(n, b.K, b.n_A + 1)
        gd.scatter_add_(2, b.S.expand(n, b.K, b.S_max), g)
        gd = gd[:, :, : b.n_A].numpy()  # ∂B/∂A (n, K, n_A)
        theta = self.theta
        C = Bfull @ theta.T  # (n, n_rad) eV
        W = np.einsum("nkc,km,nma->nca", V, theta[:, 1:], gd)  # (n, 3, n_A)
        drho = radial[2].numpy()
        uu = u[:, :, None] * u[:, None, :]
        Ci = C[geom.i]
        a_par = np.einsum("pk,pk->p", Ci, drho)
        a_perp = np.einsum("pk,pk->p", Ci, rho) / r
        eye = np.eye(3)
        if self.spec.dim == 2:
            eye = np.diag([1.0, 1.0, 0.0])
        Q = a_par[:, None, None] * uu + a_perp[:, None, None] * (eye - uu)
        Q += np.einsum("pca,pab->pcb", W[geom.i], J)
        return geom, Bfull, V, Q

    def forces(self, atoms: Atoms) -> np.ndarray:
        """F (n, 3) eV/Å."""
        _, Bfull, V, _ = self._pass(atoms, jacobian=False)
        return np.einsum("nm,km,nkc->nc", Bfull, self.theta, V)

    def predict(self, atoms: Atoms, hessian: bool = False) -> dict:
        """forces (n, 3) eV/Å; energy, energies and virial NaN (:data:`NO_ENERGY`); with
        ``hessian`` the stiffness −∂F/∂x (sparse, eV/Å²), the force-constant observation."""
        F = self.forces(atoms)
        n = len(atoms)
        out = {"energy": math.nan, "energies": np.full(n, math.nan), "forces": F, "virial": np.full((3, 3), math.nan)}
        if hessian:
            out["hessian"] = self.stiffness(atoms)
        return out

    @staticmethod
    def _assemble(geom, Q: np.ndarray) -> sp.csr_array:
        """K = −∂F/∂x (3n × 3n) from the pair blocks Q_p = ∂F_i/∂D_p."""
        n = geom.n
        rows = np.concatenate([geom.i, geom.i])
        cols = np.concatenate([geom.j, geom.i])
        blocks = np.concatenate([-Q, Q])  # −∂F_i/∂x_j = −Q_p; −∂F_i/∂x_i = +Q_p
        r = (3 * rows[:, None, None] + np.arange(3)[None, :, None]).repeat(3, axis=2)
        c = (3 * cols[:, None, None] + np.arange(3)[None, None, :]).repeat(3, axis=1)
        return sp.csr_array(sp.coo_array((blocks.ravel(), (r.ravel(), c.ravel())), shape=(3 * n, 3 * n)))

    def stiffness(self, atoms: Atoms) -> sp.csr_array:
        """K = −∂F/∂x (eV/Å², sparse 3n × 3n, atom-major): exact, not symmetric in general."""
        geom, _, _, Q = self._pass(atoms, jacobian=True)
        return self._assemble(geom, Q)

    def linearise(self, atoms: Atoms) -> spla.LinearOperator:
        """K v and Kᵀ v (eV/Å² · Å) at ``atoms`` (exact Jacobian–vector products)."""
        K = self.stiffness(atoms)
        return spla.LinearOperator(K.shape, matvec=lambda v: K @ np.ravel(v), rmatvec=lambda v: K.T @ np.ravel(v),
                                   matmat=lambda X: K @ X, dtype=np.float64)

    def energy_forces(self, atoms: Atoms, linearise: bool = False):
        """(NaN, forces (n, 3) eV/Å, the stiffness operator or None) from one pass."""
        if not linearise:
            return math.nan, self.forces(atoms), None
        geom, Bfull, V, Q = self._pass(atoms, jacobian=True)
        K = self._assemble(geom, Q)
        op = spla.LinearOperator(K.shape, matvec=lambda v: K @ np.ravel(v), rmatvec=lambda v: K.T @ np.ravel(v),
                                 matmat=lambda X: K @ X, dtype=np.float64)
        return math.nan, np.einsum("nm,km,nkc->nc", Bfull, self.theta, V), op

    def hessian(self, atoms: Atoms) -> sp.csr_array:
        """The symmetrised stiffness ½(K + Kᵀ) (eV/Å²): the force constants of the phonons
        (a direct-force model has no Hessian; its Jacobian's symmetric part stands in)."""
        K = self.stiffness(atoms)
        return sp.csr_array(0.5 * (K + K.T))

    def hessian_rows(self, atoms: Atoms, rows) -> np.ndarray:
        """Rows of −∂F/∂x for the atoms ``rows``: (3·len(rows), 3n), eV/Å²."""
        rows = np.asarray(rows)
        r3 = (3 * rows[:, None] + np.arange(3)).reshape(-1)
        return self.stiffness(atoms)[r3].toarray()

    # -- design rows --------------------------------------------------------------------------

    def design(self, atoms: Atoms, kinds: str = "F", hessian_rows: np.ndarray | None = None) -> dict:
        """Per-coefficient observations: F (n, 3, p) eV/Å per eV and, for ``H`` in ``kinds``,
        the rows of −∂F/∂x of the atoms ``hessian_rows`` (None = all): (3r, 3n, p). E and V
        are not predicted (:data:`NO_ENERGY`) and are refused."""
        bad = sorted(set(kinds) - set(self.observables))
        if bad:
            raise InputError(f"a direct-force model has no {', '.join(bad)} observations ({NO_ENERGY})")
        b = self.basis
        geom, Bfull, V, _ = self._pass(atoms, jacobian=False)
        n, R, M = geom.n, self.n_rad, 1 + b.K
        out = {}
        if "F" in kinds:
            check_memory("the force rows of a direct-force design block", 8.0 * 3 * n * R * M * 2)
            out["F"] = np.einsum("nkc,nm->nckm", V, Bfull).reshape(n, 3, R * M)
        if "H" in kinds:
            rows = np.arange(n) if hessian_rows is None else np.asarray(hessian_rows)
            out["H"] = self._design_hessian(geom, Bfull, V, rows)
        return out

    def _design_hessian(self, geom, Bfull, V, rows) -> np.ndarray:
        """−∂F^{(k,m)}_r/∂x (3r, 3n, p) for the row atoms r, with F^{(k,m)}_i = B_m(i) V_k(i):
        ∂F^{(k,m)}_i/∂D_p = B_m(i) T_pk + V_k(i) ⊗ ∂B_m(i)/∂A ∇φ(D_p),
        T_pk = ρ_k' r̂ r̂ᵀ + (ρ_k/r)(I − r̂ r̂ᵀ)."""
        b = self.basis
        n, R, M = geom.n, self.n_rad, 1 + b.K
        p = R * M
        check_memory("the force-constant rows of a direct-force design block", 8.0 * 3 * len(rows) * 3 * n * p * 2)
        out = np.zeros((len(rows), 3, n, 3, R, M))
        tabs = kernels.tables(b)
        pos = np.full(n, -1)
        pos[rows] = np.arange(len(rows))
        sel = np.flatnonzero(pos[geom.i] >= 0)
        if len(sel):
            D = geom.Dn[sel]
            r = np.sqrt(np.einsum("pa,pa->p", D, D))
            u = D / r[:, None]
            _, rho, drho = (x.numpy() for x in b._radial(torch.from_numpy(r), order=2))
            uu = u[:, :, None] * u[:, None, :]
            eye = np.eye(3) if self.spec.dim == 3 else np.diag([1.0, 1.0, 0.0])
            T = drho[:, :, None, None] * uu[:, None] + (rho / r[:, None])[:, :, None, None] * (eye - uu)[:, None]
            _, J, _ = kernels.pair_phi_derivatives(np.ascontiguousarray(D), 1, *tabs)
            A = torch.from_numpy(kernels.projections(geom.Dn, geom.i, n, *tabs))
            g, _ = b.feature_derivatives(A, second=False)
            gd = torch.zeros(n, b.K, b.n_A + 1)
            gd.scatter_add_(2, b.S.expand(n, b.K, b.S_max), g)
            gd = gd[:, :, : b.n_A].numpy()
            ii = geom.i[sel]
            dB = np.einsum("pma,pab->pmb", gd[ii], J)  # ∂B_m(i)/∂D_p (P', K, 3)
            Qp = np.zeros((len(sel), 3, 3, R, M))  # [c, β, k, m] = ∂F^{km}_{i,c}/∂D_{p,β}
            Qp += np.einsum("pkcb,pm->pcbkm", T, Bfull[ii])
            Qp[..., 1:] += np.einsum("pkc,pmb->pcbkm", V[ii], dB)
            loc = pos[ii]
            np.add.at(out, (loc, slice(None), geom.j[sel]), -Qp)  # −∂/∂x_j
            np.add.at(out, (loc, slice(None), ii), Qp)  # −∂/∂x_i = +Q
        return out.reshape(3 * len(rows), 3 * n, p)

    # -- persistence --------------------------------------------------------------------------

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """(JSON-able header, arrays) for :mod:`genanalysis.models.io`."""
        return {"kind": self.kind, "spec": self.spec.to_dict(), "n_rad": self.n_rad,
                "observables": self.observables, "energy": NO_ENERGY}, {"coef": self.coef_}

    @classmethod
    def from_state(cls, header: dict, arrays: dict) -> "DirectForceACE":
        return cls(ACESpec(**header["spec"]), arrays["coef"])

    def potential(self, name: str | None = None, element: str = "X") -> "DirectForcePotential":
        return DirectForcePotential(self, name=name, element=element)


class DirectForcePotential(ModelPotential):
    """A direct-force model behind the potential interface: forces, the stiffness operator
    (``linearise``: K = −∂F/∂x, not symmetric) and, as ``hessian``, the symmetrised
    stiffness (for phonons); energies and virials are NaN (:data:`NO_ENERGY`).
    ``has_energy = False`` tells the solvers and the experiment to take the energy-free
    routes (:mod:`genanalysis.forcesolve`)."""

    has_energy = False
    fused_linearise = True

    def observe(self, atoms) -> Observation:
        self.check_species(atoms)
        r = self.model.predict(atoms)
        return Observation(energy=math.nan, forces=r["forces"], virial=r["virial"], site_energies=r["energies"])

    def stiffness(self, atoms) -> sp.csr_array:
        """K = −∂F/∂x (eV/Å²), exact and not symmetric in general."""
        self.check_species(atoms)
        return self.model.stiffness(atoms)

    def elastic_constants(self, atoms):
        """None: without an energy there are no (Born) elastic constants."""
        return None
