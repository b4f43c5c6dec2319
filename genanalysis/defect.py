"""The defect problem: defect cells relaxed and measured — formation energies, the stability
constant, the relaxed displacement ū.

Units: Å, eV, eV/Å; the stability constant is in eV/Å² (Hessian over the dimensionless
stencil Laplacian). Cells are fixed (periodic boundary conditions in a fixed cell, the
supercell approximation of docs/theory.md (T11)); 2D cells (``info['dim'] == 2``) relax
in-plane. The relaxation solver itself is :mod:`genanalysis.relaxation` (one stage lower,
so that the training set can relax its cells too); its names are re-exported here.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from ase import Atoms

from genanalysis.constraints import DEFAULT_FMAX, DEFAULT_MAX_ITER, RELAX_CONSTRAINTS
from genanalysis.exceptions import ConvergenceError, InputError, NonFiniteError
from genanalysis.lattice import atoms_dim, check_cell, defect_cell, minimum_image, perfect_cell
from genanalysis.potentials import load_potential, neighbour_radius
from genanalysis.relaxation import (
    LatticePreconditioner,
    Relaxation,
    RelaxedCell,
    free_mask,
    lattice_preconditioner_of,
    matches_perfect_cell,
    max_force,
    preconditioned_cg,
    relax,
    shared_lattice_preconditioner,
)

__all__ = [
    "RELAX_CONSTRAINTS",
    "DEFAULT_FMAX",
    "DEFAULT_MAX_ITER",
    "Relaxation",
    "DefectResult",
    "relax",
    "solve_defect",
    "formation_energy",
    "stability_constant",
    "stability_mode",
    "LatticePreconditioner",
    "shared_lattice_preconditioner",
    "preconditioned_cg",
    "max_force",
]


# --------------------------------------------------------------------------- energies, stability


def formation_energy(defect_energy: float, n_atoms: int, perfect_energy_per_atom: float) -> float:
    """E_f = E_def − N_def · (E_perfect / N_perfect), eV."""
    return float(defect_energy - n_atoms * perfect_energy_per_atom)


def perfect_energy_per_atom(potential, lattice: str, a: float, n: int = 1, symbol: str = "X") -> float:
    """Energy per atom (eV) of the perfect lattice at lattice constant ``a`` (Å).

    Periodic images are exact, so any n gives the same value to round-off."""
    pot = load_potential(potential, lattice=lattice, a=a)
    cell = perfect_cell(lattice, a, n, symbol)
    return float(pot.observe(cell).energy) / len(cell)


def stability_constant(atoms: Atoms, potential, reference: Atoms | None = None, *, r_stencil=None,
                       dense_limit: int = 3000, tol: float = 1e-8, fixed: np.ndarray | None = None) -> float:
    """Smallest generalised eigenvalue of H v = λ L v with translations removed (eV/Å²);
    :func:`stability_mode` without its eigenvector."""
    return stability_mode(atoms, potential, reference, r_stencil=r_stencil, dense_limit=dense_limit, tol=tol,
                          fixed=fixed)[0]


def stability_mode(atoms: Atoms, potential, reference: Atoms | None = None, *, r_stencil=None,
                   dense_limit: int = 3000, tol: float = 1e-8, guess: np.ndarray | None = None,
                   fixed: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """(λ, v): the smallest generalised eigenvalue of H v = λ L v with translations removed
    (eV/Å²) and its eigenvector (n·dim,), atom-major.

    H is the Hessian at ``atoms`` (restricted to the in-plane components in 2D), L the
    Riesz map of the energy norm on the stencil of ``reference`` (default: ``atoms``).
    Translations are removed by adding σ·TTᵀ to H and TTᵀ to L (T the orthonormal
    translation modes): both operators preserve the complement of T, so the other
    eigenpairs are unchanged and the translations move to λ = σ ≫ the spectrum.
    Dense for up to ``dense_limit`` unknowns (assembled H). Beyond, LOBPCG with
    matrix-free Hessian products (the potential's ``linearise``) and the translations as
    constraints, preconditioned by the pseudo-inverse of the perfect-lattice Hessian (the
    solver's FFT preconditioner, :class:`LatticePreconditioner`) when ``atoms`` is a
    (defective) n-cell of :mod:`genanalysis.lattice`, else by L⁻¹: with the lattice
    Hessian ~45 products per constant instead of ~400 with L⁻¹ (vacancy in bcc W, M = 12).
    ``guess`` (n·dim,): LOBPCG's start (default random), e.g. the mode of a nearby
    problem — another potential's at the same cell takes 15–20 products instead of ~45.
    The eigenvalue is the same to the tolerance either way.

    With clamped atoms (``fixed``, default ``arrays['clamped']`` of ``reference`` or
    ``atoms``, as in :func:`relax`) the admissible displacements vanish on them: H and L are
    restricted to the free atoms (L the Dirichlet Laplacian, invertible), there are no
    translations to remove, the LOBPCG preconditioner is L_FF⁻¹, and v has n_free·dim entries.
    """
    from genanalysis.norms import riesz_matrix, stencil

    pot = load_potential(potential, atoms=atoms)
    dim = atoms_dim(atoms)
    n_all = len(atoms)
    if fixed is None and reference is not None:
        fixed = reference.arrays.get("clamped")
    free = free_mask(atoms, fixed)
    sites = np.arange(n_all) if free is None else np.flatnonzero(free)
    n = len(sites)
    st = stencil(reference if reference is not None else atoms, r_stencil)
    lap = riesz_matrix(st)
    if free is not None:
        didx = (sites[:, None] * dim + np.arange(dim)[None, :]).ravel()
        lap = lap[didx][:, didx]
    t = np.zeros((n * dim, dim if free is None else 0))  # translations: zero modes only without clamping
    for c in range(t.shape[1]):
        t[c::dim, c] = 1.0 / math.sqrt(n)
    if n * dim <= dense_limit:
        idx = (sites[:, None] * 3 + np.arange(dim)[None, :]).ravel()
        h = sp.csr_array(pot.hessian(atoms))[idx][:, idx]
        if not np.all(np.isfinite(h.data)):
            raise NonFiniteError(f"the Hessian of {pot.name} is not finite")
        sigma = 10.0 * float(abs(h).sum(axis=1).max()) / max(float(lap.diagonal().min()), 1e-12) + 1.0
        a_mat = h.toarray() + sigma * (t @ t.T)
        b_mat = lap.toarray() + t @ t.T
        w, v = sla.eigh(a_mat, b_mat, subset_by_index=[0, 0])
        return float(w[0]), v[:, 0]
    op = pot.linearise(atoms)

    def a_mat(X):  # H X; the constraints keep the iterates off the translations (H T = 0)
        X = np.asarray(X, dtype=float).reshape(n * dim, -1)
        full = np.zeros((n_all, 3, X.shape[1]))
        full[sites, :dim] = X.reshape(n, dim, -1)
        out = np.stack([np.asarray(op @ full[:, :, k].ravel()) for k in range(X.shape[1])], axis=1)
        out = out.reshape(n_all, 3, -1)[sites, :dim].reshape(n * dim, -1)
        if not np.all(np.isfinite(out)):
            raise NonFiniteError(f"a Hessian product of {pot.name} is not finite")
        return out

    if free is None and matches_perfect_cell(atoms):
        pre = lattice_preconditioner_of(pot, atoms)
        site_index = atoms.arrays["site_index"]

        def m_mat(X):
            X = np.asarray(X, dtype=float).reshape(n * dim, -1)
            return np.stack([pre.apply(X[:, k].reshape(n, dim), site_index).ravel() for k in range(X.shape[1])],
                            axis=1)
    else:
        shift = 1e-8 * float(lap.diagonal().mean())
        lu = spla.splu(sp.csc_array(lap + shift * sp.eye_array(lap.shape[0])))

        def m_mat(X):
            return lu.solve(np.ascontiguousarray(np.asarray(X, dtype=float).reshape(n * dim, -1)))

    def operator(f):
        return spla.LinearOperator((n * dim, n * dim), matvec=lambda v: f(v).ravel(), matmat=f, dtype=float)

    a_op = operator(a_mat)
    b_op = operator(lambda X: lap @ np.asarray(X, dtype=float).reshape(n * dim, -1)
                    + t @ (t.T @ np.asarray(X, dtype=float).reshape(n * dim, -1)))
    if guess is not None and np.shape(guess) == (n * dim,) and np.all(np.isfinite(guess)) and np.any(guess):
        x0 = np.array(guess, dtype=float).reshape(n * dim, 1)
    else:
        x0 = np.random.default_rng(0).standard_normal((n * dim, 1))
    x0 -= t @ (t.T @ x0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # judged below, by the residual itself
        try:
            w, vecs = spla.lobpcg(a_op, x0, B=b_op, M=operator(m_mat), Y=t if t.shape[1] else None,
                                  largest=False, tol=tol, maxiter=1000)
        except np.linalg.LinAlgError as exc:  # its Rayleigh–Ritz step broke down
            raise ConvergenceError(f"stability_constant: LOBPCG failed: {exc}") from None
    k = int(np.argmin(w))
    x = vecs[:, k]
    ax = a_op @ x
    residual = float(np.linalg.norm(ax - w[k] * (b_op @ x)) / max(np.linalg.norm(ax), 1e-300))
    if residual > 1e-5:
        warnings.warn(f"stability_constant: LOBPCG stopped with relative eigen-residual {residual:.1e} "
                      f"(> 1e-5); λ_min = {w[k]:.6g} eV/Å² is approximate", RuntimeWarning, stacklevel=2)
    return float(w[k]), x


# --------------------------------------------------------------------------- the defect problem


@dataclass
class DefectResult(RelaxedCell):
    """A relaxed defect in an n-cell: reference (unrelaxed) and relaxed geometry and energies."""

    formation_energy: float
    perfect_energy_per_atom: float
    stability_constant: float | None = None

    @property
    def displacement(self) -> np.ndarray:
        """ū (n, 3), Å: relaxed minus reference positions (minimum image)."""
        return minimum_image(self.relaxation.atoms.positions - self.reference.positions,
                             np.array(self.reference.cell), atoms_dim(self.reference))


def solve_defect(potential, lattice: str, a: float | None, defect: str, n: int, *, fmax: float = DEFAULT_FMAX,
                 stability: bool = False, max_iter: int = DEFAULT_MAX_ITER, element: str | None = None) -> DefectResult:
    """Build, relax and measure one defect cell (the ``genanalysis defect`` command)."""
    from genanalysis.forcesolve import equilibrate, has_energy, inf_sup_constant

    pot = load_potential(potential, lattice=lattice, a=a)
    symbol = element or (pot.species[0] if getattr(pot, "species", None) else "X")
    if a is None:
        if not has_energy(pot):
            raise InputError(f"{pot.name} has no energy to find its lattice constant from; give a (Å)")
        a = pot.equilibrium_lattice_constant(lattice)
    check_cell(lattice, n, a=a, radius=neighbour_radius(pot))  # before the cell and its pairs exist
    ref = defect_cell(lattice, a, n, defect, symbol)
    rel = equilibrate(ref, pot, fmax=fmax, max_iter=max_iter)
    e_atom = perfect_energy_per_atom(pot, lattice, a, 1, symbol)
    ef = formation_energy(rel.energy, len(ref), e_atom)
    if not stability:
        c = None
    elif has_energy(pot):
        c = stability_constant(rel.atoms, pot, ref)
    else:  # no energy: the inf-sup constant of the stiffness stands for c (T19)
        c = inf_sup_constant(rel.atoms, pot, ref)["inf_sup"]
    return DefectResult(ref, rel, ef, e_atom, c)
