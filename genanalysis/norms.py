"""The energy norm ‖Du‖, its Riesz map and the dual norm ‖f‖₋₁ (docs/reference.md §4).

Definitions (docs/theory.md §1). The *stencil* of a configuration is the set of ordered pairs
(ℓ, ℓ+ρ) of atoms whose distance in the *reference* (undeformed) configuration is at most
``r_stencil``; a periodic cell smaller than the stencil contributes every image, so a
pair may occur several times (and an atom may pair with its own image, contributing
nothing). With ``D_ρ u(ℓ) = u(ℓ+ρ) − u(ℓ)``:

    ‖Du‖² = Σ_ℓ Σ_ρ |D_ρ u(ℓ)|² = uᵀ L u,        L = 2 (Deg − A) ⊗ I_d          (R1)

where A counts the ordered pairs (i, j) and Deg is its row sum: L is the Riesz map of the
norm, so the dual norm of a force field f with zero net force is

    ‖f‖₋₁ = sup_v ⟨f, v⟩ / ‖Dv‖ = sqrt(fᵀ L⁺ f),                                   (R2)

computed by one conjugate-gradient solve per Cartesian component on the (singular,
consistent) graph Laplacian with the mean removed.

**Clamped atoms** (``arrays['clamped']`` of the reference, the outer shell of a dislocation
cylinder, :mod:`genanalysis.dislocation`): the admissible displacements vanish on them, so
the norm (R1) of such a field is ``u_Fᵀ L_FF u_F`` over the free atoms F (L_FF the Dirichlet
Laplacian: every pair with a free end counts) and its dual norm is
``‖f‖₋₁ = sqrt(f_Fᵀ L_FF⁻¹ f_F)`` — the forces on the free atoms only, no mean removed
(clamping pins the translations); the stencil records the free atoms in ``free``.

The default stencil is the nearest-neighbour shell of the lattice (``shells=1``): r_stencil
is the midpoint between the first and the second shell radius. Every table states it.
Units: u in Å gives ‖Du‖ in Å; f in eV/Å gives ‖f‖₋₁ = sup ⟨f, v⟩/‖Dv‖ in eV/Å.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from ase import Atoms

from genanalysis.exceptions import InputError
from genanalysis.lattice import atoms_dim

__all__ = ["Stencil", "stencil", "energy_norm", "dual_norm", "riesz_matrix", "stencil_radius"]


@dataclass(frozen=True)
class Stencil:
    """Ordered pairs (i, j) of the stencil, with multiplicity, on ``n`` atoms in dimension ``dim``."""

    i: np.ndarray
    j: np.ndarray
    n: int
    dim: int
    r_stencil: float
    free: np.ndarray | None = None

    def laplacian(self) -> sp.csr_array:
        """Scalar Riesz matrix 2(Deg − A) (n × n); the full map is this ⊗ I_dim, eq. (R1)."""
        a = sp.coo_array((np.ones(len(self.i)), (self.i, self.j)), shape=(self.n, self.n)).tocsr()
        deg = np.asarray(a.sum(axis=1)).ravel()
        return (2.0 * (sp.diags_array(deg) - a)).tocsr()


def stencil_radius(lattice: str, a: float, shells: int = 1) -> float:
    """Midpoint between shell ``shells`` and shell ``shells + 1`` of the lattice, Å."""
    from genanalysis.lattice import shell_radii

    if shells < 1:
        raise InputError(f"stencil shells={shells} must be ≥ 1")
    r = shell_radii(lattice, a, shells + 1)
    return 0.5 * (r[shells - 1] + r[shells])


def stencil(reference: Atoms, r_stencil: float | None = None, shells: int = 1) -> Stencil:
    """The stencil of a reference configuration (the *unrelaxed* defect cell).

    ``r_stencil`` (Å) defaults to :func:`stencil_radius` of ``reference.info['lattice']``.
    """
    from ase.neighborlist import neighbor_list

    dim = atoms_dim(reference)
    if r_stencil is None:
        try:
            r_stencil = stencil_radius(reference.info["lattice"], reference.info["a"], shells)
        except KeyError as exc:
            raise InputError("stencil: reference has no lattice info; pass r_stencil (Å)") from exc
    i, j = neighbor_list("ij", reference, float(r_stencil), self_interaction=False)
    keep = i != j  # an atom paired with its own image contributes D_ρ u = 0
    clamped = reference.arrays.get("clamped")
    free = None if clamped is None or not np.any(clamped) else ~np.asarray(clamped, dtype=bool)
    return Stencil(i[keep].astype(np.int64), j[keep].astype(np.int64), len(reference), dim, float(r_stencil), free)


def _as_field(u: np.ndarray, st: Stencil) -> np.ndarray:
    u = np.asarray(u, dtype=float)
    if u.ndim == 1:
        u = u.reshape(st.n, -1)
    if u.shape[0] != st.n:
        raise InputError(f"field has {u.shape[0]} rows but the stencil has {st.n} atoms")
    return u[:, : st.dim]


def energy_norm(u: np.ndarray, st: Stencil, *, sites: np.ndarray | None = None) -> float:
    """‖Du‖ (Å for u in Å), eq. (R1). ``sites`` (bool mask) restricts the outer sum over ℓ.
    On a stencil with clamped atoms ``u`` is taken as given (an admissible field vanishes
    there, and then this is the Dirichlet norm of the module docstring)."""
    u = _as_field(u, st)
    du = u[st.j] - u[st.i]
    sq = np.einsum("ij,ij->i", du, du)
    if sites is not None:
        sq = sq[np.asarray(sites)[st.i]]
    return float(np.sqrt(sq.sum()))


def site_gradient_norms(u: np.ndarray, st: Stencil) -> np.ndarray:
    """|Du(ℓ)| for every site ℓ: sqrt(Σ_ρ |D_ρ u(ℓ)|²), shape (n,)."""
    u = _as_field(u, st)
    du = u[st.j] - u[st.i]
    return np.sqrt(np.bincount(st.i, np.einsum("ij,ij->i", du, du), minlength=st.n))


def riesz_matrix(st: Stencil) -> sp.csr_array:
    """The full Riesz map L = 2(Deg − A) ⊗ I_dim on (n·dim) unknowns, atom-major."""
    return sp.kron(st.laplacian(), sp.eye_array(st.dim), format="csr")


def dual_norm(f: np.ndarray, st: Stencil, *, rtol: float = 1e-12) -> float:
    """‖f‖₋₁ = sqrt(fᵀ L⁺ f), eq. (R2); the net force (mean) is removed first. On a stencil
    with clamped atoms: sqrt(f_Fᵀ L_FF⁻¹ f_F) over the free atoms F (module docstring)."""
    f = _as_field(f, st).copy()
    lap = st.laplacian()
    if st.free is not None:
        f, lap = f[st.free], lap[st.free][:, st.free]
    else:
        f -= f.mean(axis=0)
    deg = lap.diagonal()
    pre = spla.LinearOperator(lap.shape, matvec=lambda x: x / np.where(deg > 0, deg, 1.0), dtype=float)
    total = 0.0
    for c in range(f.shape[1]):
        rhs = f[:, c]
        if not np.any(rhs):
            continue
        x, info = spla.cg(lap, rhs, rtol=rtol, atol=0.0, M=pre, maxiter=20 * lap.shape[0] + 1000)
        if info != 0:
            raise RuntimeError(f"dual_norm: conjugate gradients did not converge (info={info})")
        total += float(rhs @ x)
    return float(np.sqrt(max(total, 0.0)))
