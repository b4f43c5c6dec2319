"""The relaxation solver: atomic positions in a fixed cell relaxed to a force tolerance.

Units: Å, eV, eV/Å. Cells are fixed (periodic boundary conditions in a fixed cell, the
supercell approximation of docs/theory.md (T11)); 2D cells (``info['dim'] == 2``) relax
in-plane. This is the stage below the training set (which relaxes its defect cells with the
reference) and the defect problem (:mod:`genanalysis.defect`, which relaxes with either
potential and measures the result); it knows potentials and lattices only.

The solver (docs/reference.md §5) is a Newton–Krylov method: each Newton step solves
``H d = −∇E`` by preconditioned conjugate gradients, matrix-free (Hessian-vector products
from ``Potential.linearise``), to an Eisenstat–Walker-type relative tolerance
``η = min(0.25, ‖∇E‖^{1/2})``, stopping early on negative curvature; a backtracking line
search on the energy (on ‖∇E‖ once energy differences reach round-off) globalises it. The
preconditioner is the Hessian of the *perfect* lattice in the same periodic cell, which is
block-circulant and so inverted exactly by FFT (``LatticePreconditioner``): its cost per
application is O(N log N) and the number of CG iterations does not grow with the cell.
Potentials whose ``energy_forces(atoms, linearise=True)`` is fused (``fused_linearise``:
the EAM engine) return the Hessian operator with the forces at every trial point (one
sweep over the pairs); the accepted point's operator is the next Newton step's
(docs/performance.md).
Convergence is declared when the largest atomic force |F_i| (Euclidean norm per atom) is
at most ``fmax`` (default :data:`~genanalysis.constraints.DEFAULT_FMAX`); otherwise the
result says why, never silently.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from ase import Atoms

from genanalysis import bloch
from genanalysis.constraints import DEFAULT_FMAX, DEFAULT_MAX_ITER, RELAX_CONSTRAINTS, check_arguments
from genanalysis.exceptions import ConvergenceError, InputError, NonFiniteError
from genanalysis.lattice import atoms_dim, perfect_cell, site_grid
from genanalysis.potentials import load_potential

__all__ = [
    "Relaxation",
    "relax",
    "LatticePreconditioner",
    "shared_lattice_preconditioner",
    "preconditioned_cg",
    "auto_preconditioner",
    "lattice_preconditioner_of",
    "matches_perfect_cell",
    "free_mask",
    "max_force",
    "NewtonLoop",
]


def max_force(forces: np.ndarray) -> float:
    """Largest atomic force |F_i| (eV/Å), the convergence measure of :func:`relax`."""
    f = np.asarray(forces, float).reshape(-1, 3)
    return float(np.sqrt(np.einsum("ij,ij->i", f, f).max())) if len(f) else 0.0


_NON_FINITE = "energy or forces not finite"


@dataclass
class Relaxation:
    """Outcome of :func:`relax`. ``status`` is ``"converged"`` or the reason it is not."""

    atoms: Atoms
    status: str
    converged: bool
    iterations: int
    force_evaluations: int
    hvp_evaluations: int
    max_force: float
    energy: float
    wall_time: float
    preconditioner: str
    history: list = field(default_factory=list)

    def check(self, what: str = "relaxation") -> None:
        """Raise :class:`~genanalysis.exceptions.NonFiniteError` (energy or forces not
        finite) or :class:`~genanalysis.exceptions.ConvergenceError` (any other stop short
        of ``fmax``) if the relaxation did not converge; the message is ``what: status``."""
        if not self.converged:
            raise (NonFiniteError if self.status == _NON_FINITE else ConvergenceError)(f"{what}: {self.status}")

    def summary(self) -> dict:
        return {
            "status": self.status,
            "converged": self.converged,
            "iterations": self.iterations,
            "force_evaluations": self.force_evaluations,
            "hvp_evaluations": self.hvp_evaluations,
            "max_force": self.max_force,
            "energy": self.energy,
            "wall_time": self.wall_time,
            "preconditioner": self.preconditioner,
        }


@dataclass
class RelaxedCell:
    """A relaxed cell: the cell as built (``reference``) and its :class:`Relaxation`; the
    point-defect and dislocation results add their energies to it."""

    reference: Atoms
    relaxation: Relaxation

    @property
    def atoms(self) -> Atoms:
        """The relaxed configuration."""
        return self.relaxation.atoms


# --------------------------------------------------------------------------- preconditioners


class LatticePreconditioner:
    """Pseudo-inverse of the perfect-lattice Hessian of an n-cell, applied by FFT.

    The perfect cell is block-circulant over its grid of conventional (bcc, fcc) or
    primitive (triangular) cells: one row of blocks ``C(R) = ∂²E/∂u_R ∂u_0`` — obtained from
    ``nb·dim`` Hessian-vector products on a small force-constant cell (side k, the smallest
    odd size holding every coupling within 2·cutoff unaliased) and folded onto the n-grid,
    so the set-up cost does not grow with n — determines it, and its symbol Ĉ(k) is a
    (nb·dim)² Hermitian matrix per wave vector. The acoustic zero modes at k = 0
    (translations) are dropped; negative eigenvalues (a lattice under stress) enter with
    their modulus so that the preconditioner stays positive definite.

    Applied to a defect cell through ``arrays['site_index']``: vacant sites get zero
    residual, added (interstitial) atoms are scaled by the mean diagonal stiffness.
    """

    def __init__(self, potential, lattice: str, a: float, n: int, symbol: str = "X"):
        pot = load_potential(potential, lattice=lattice, a=a)
        self.dim = dim = int(perfect_cell(lattice, a, 1, symbol).info["dim"])
        self.shape, self.nb = site_grid(lattice, n)
        self.n_sites = int(np.prod(self.shape)) * self.nb
        self.cell = np.array(perfect_cell(lattice, a, 1, symbol).cell)
        self.cell[:dim] *= n
        nb = self.nb
        m = nb * dim
        # The block row C(R) of the n-cell is the infinite-lattice force constants Φ folded
        # over the cell's periods: C_n(R) = Σ_L Φ(R + nL). A site potential with cutoff r_c
        # couples sites within 2 r_c, so a small cell of size k ≥ 2·reach + 1 (reach in grid
        # cells) holds Φ unaliased; its block row, folded onto the n-grid, is C_n exactly, for
        # a cost independent of n (a few thousand atoms instead of the whole cell).
        k = _force_constant_cell(pot, lattice, a)
        if k is None or k >= n:
            k = n
        small = perfect_cell(lattice, a, k, symbol)
        shape_k, _ = site_grid(lattice, k)
        op = pot.linearise(small)
        cols_k = bloch.block_row(lambda v: op @ v, lattice, k, dim)
        if not np.all(np.isfinite(cols_k)):
            raise NonFiniteError(f"the perfect-lattice Hessian of {pot.name} at a = {a} Å is not finite")
        if k == n:
            cols = cols_k
        else:
            cols = np.zeros(self.shape + (m, m))
            g = np.indices(shape_k).reshape(len(shape_k), -1).T
            signed = np.where(g > k // 2, g - k, g)  # k is odd: offsets −(k−1)/2 … (k−1)/2
            target = np.ravel_multi_index(tuple((signed % n).T), self.shape)
            flat = cols.reshape(-1, m, m)
            np.add.at(flat, target, cols_k.reshape(-1, m, m))
        self.hvp_evaluations = m
        self.kappa = float(np.trace(cols[(0,) * len(self.shape)]) / m)

        def pseudo_inverse(w):  # |w| so that a lattice under stress stays positive definite
            return np.where(np.abs(w) > 1e-10 * np.abs(w).max(), 1.0 / np.maximum(np.abs(w), 1e-300), 0.0)

        self._pinv = bloch.symbol_function(bloch.symbol(cols), pseudo_inverse)
        self._axes = tuple(range(len(self.shape)))

    def apply(self, r: np.ndarray, site_index: np.ndarray) -> np.ndarray:
        """P⁺ r for a field r (n_atoms, dim) on a cell whose atoms map to sites by ``site_index``."""
        dim = self.dim
        on_site = site_index >= 0
        full = np.zeros((self.n_sites, dim))
        full[site_index[on_site]] = r[on_site]
        rhat = np.fft.fftn(full.reshape(self.shape + (self.nb * dim,)), axes=self._axes)
        xhat = np.einsum("...ij,...j->...i", self._pinv, rhat)
        x = np.fft.ifftn(xhat, axes=self._axes).real.reshape(self.n_sites, dim)
        out = np.empty_like(r)
        out[on_site] = x[site_index[on_site]]
        out[~on_site] = r[~on_site] / self.kappa
        return out - out.mean(axis=0)


def _force_constant_cell(pot, lattice: str, a: float) -> int | None:
    """Smallest odd cell size k whose grid holds every site within 2·cutoff of a site
    without aliasing (None when the potential states no cutoff)."""
    cutoff = float(getattr(pot, "cutoff", 0.0) or 0.0)
    if not (cutoff > 0 and math.isfinite(cutoff)):
        return None
    unit = np.array(perfect_cell(lattice, a, 1).cell)
    dim = int(perfect_cell(lattice, a, 1).info["dim"])
    # grid offsets s of separations |R| ≤ 2 r_c satisfy |s_d| ≤ 2 r_c ‖(A⁻ᵀ)_d‖ (+1 for the basis)
    inv = np.linalg.inv(unit[:dim, :dim])
    reach = int(math.ceil(2.0 * cutoff * float(np.linalg.norm(inv, axis=0).max()) + 1e-9)) + 1
    return 2 * reach + 1


@lru_cache(maxsize=8)
def shared_lattice_preconditioner(pot, lattice, a, n, symbol):
    """The :class:`LatticePreconditioner` of an n-cell, built once per (potential, lattice,
    a in Å, n, symbol) and shared by the solver and the identifiability width."""
    return LatticePreconditioner(pot, lattice, a, n, symbol)


def lattice_preconditioner_of(pot, atoms: Atoms) -> LatticePreconditioner:
    """The shared :class:`LatticePreconditioner` of the n-cell ``atoms`` belongs to."""
    from ase.data import chemical_symbols

    return shared_lattice_preconditioner(pot, atoms.info["lattice"], float(atoms.info["a"]), int(atoms.info["n"]),
                                         chemical_symbols[int(atoms.numbers[0])])


def auto_preconditioner(atoms: Atoms, pot, hop, dim: int):
    """The solver's ``preconditioner="auto"`` choice at ``atoms`` (a periodic cell) as a
    function r ↦ P⁺r on net-force-free fields (n, dim): the perfect-lattice FFT
    preconditioner when ``atoms`` is a (defective) n-cell of :mod:`genanalysis.lattice`, else
    the stencil-Laplacian one scaled by the Hessian products ``hop`` (eV/Å² times Å)."""
    kind, pre, _ = choose_preconditioner(pot, atoms, "auto", None)
    return pre if pre is not None else operator_preconditioner(kind, atoms, hop, dim, None)


def matches_perfect_cell(atoms: Atoms) -> bool:
    """Whether ``atoms`` is a (defective) n-cell of :mod:`genanalysis.lattice` in its own fixed
    cell, i.e. whether :func:`lattice_preconditioner_of` applies to it."""
    info = atoms.info
    if not {"lattice", "a", "n"} <= set(info) or "site_index" not in atoms.arrays:
        return False
    # the n-cell's cell and site count from the one-cell lattice (building the n-cell itself
    # costs seconds at 10⁶ atoms)
    unit = perfect_cell(info["lattice"], info["a"], 1)
    dim = int(unit.info["dim"])
    cell = np.array(unit.cell)
    cell[:dim] *= int(info["n"])
    n_sites = len(unit) * int(info["n"]) ** dim
    return bool(np.allclose(np.array(atoms.cell), cell, atol=1e-9)) and bool(
        np.all(atoms.arrays["site_index"] < n_sites)
    )


class _LaplacianPreconditioner:
    """Fallback for cells that are not (defective) perfect n-cells: κ·L + μ·I with the
    nearest-neighbour stencil Laplacian L, κ a Rayleigh-quotient estimate of the stiffness.
    With clamped atoms (``free`` a mask) it is the Dirichlet Laplacian of the free atoms,
    which is invertible on its own: zero on the clamped atoms, no mean removed."""

    def __init__(self, atoms: Atoms, hop, dim: int, free: np.ndarray | None = None):
        from ase.neighborlist import neighbor_list

        n = len(atoms)
        ii, d = neighbor_list("id", atoms, 6.0)
        r1 = d.min() if len(d) else 1.0
        if free is not None and len(d):  # a compressed core must not cut its atoms off: the typical shell
            nearest = np.full(n, np.inf)
            np.minimum.at(nearest, ii, d)
            r1 = float(np.median(nearest[np.isfinite(nearest)]))
        i, j = neighbor_list("ij", atoms, 1.15 * r1)
        keep = i != j
        a = sp.coo_array((np.ones(keep.sum()), (i[keep], j[keep])), shape=(n, n)).tocsr()
        lap = sp.diags_array(np.asarray(a.sum(axis=1)).ravel()) - a
        self._free = free
        rng = np.random.default_rng(0)
        v = rng.standard_normal((n, dim))
        if free is None:
            v -= v.mean(axis=0)
        else:
            v[~free] = 0.0
        hv = hop(v)
        lv = lap @ v
        kappa = abs(float(np.sum(v * hv)) / max(float(np.sum(v * lv)), 1e-300))
        if free is None:
            mu = 1e-3 * kappa * max(float(lap.diagonal().mean()), 1.0)
            self._lu = spla.splu((kappa * lap + mu * sp.eye_array(n)).tocsc())
        else:
            idx = np.flatnonzero(free)
            mu = 1e-3 * kappa * max(float(lap.diagonal().mean()), 1.0)
            self._lu = spla.splu((kappa * lap[idx][:, idx] + mu * sp.eye_array(len(idx))).tocsc())
            self._idx = idx

    def apply(self, r: np.ndarray, site_index=None) -> np.ndarray:
        if self._free is not None:
            out = np.zeros_like(r)
            out[self._idx] = self._lu.solve(np.ascontiguousarray(r[self._idx]))
            return out
        out = self._lu.solve(np.ascontiguousarray(r))
        return out - out.mean(axis=0)


# --------------------------------------------------------------------------- the solver


def preconditioned_cg(hop, b, precond, rtol, maxiter, negative: list | None = None):
    """Preconditioned CG on H x = b; stops at negative curvature (returns the iterate so far,
    or the preconditioned residual if there is none; the direction p with pᵀHp ≤ 0 is
    appended to ``negative`` when given). Returns (x, cg_iterations, flag)."""
    x = np.zeros_like(b)
    r = b.copy()
    z = precond(r)
    p = z.copy()
    rz = float(np.sum(r * z))
    bnorm = float(np.linalg.norm(b))
    for k in range(1, maxiter + 1):
        ap = hop(p)
        pap = float(np.sum(p * ap))
        if pap <= 0.0:
            if negative is not None:
                negative.append(p)
            return (x if k > 1 else z), k, "negative curvature"
        alpha = rz / pap
        x += alpha * p
        r -= alpha * ap
        if np.linalg.norm(r) <= rtol * bnorm:
            return x, k, "ok"
        z = precond(r)
        rz_new = float(np.sum(r * z))
        p = z + (rz_new / rz) * p
        rz = rz_new
    return x, maxiter, "max iterations"


def choose_preconditioner(pot, work: Atoms, preconditioner: str, free):
    """(kind, preconditioner, set-up HVPs) of the Newton solvers (:func:`relax` and
    :func:`genanalysis.forcesolve.relax_forces`): ``"auto"`` takes the perfect-lattice FFT
    preconditioner for an n-cell of :mod:`genanalysis.lattice` without clamped atoms, else the
    stencil Laplacian. The preconditioner is None for ``"laplacian"`` and ``"none"``: it is
    built from the first operator (:func:`operator_preconditioner`)."""
    kind = preconditioner
    if kind == "auto":
        kind = "lattice" if free is None and matches_perfect_cell(work) else "laplacian"
    if kind == "lattice":
        if free is not None:
            raise InputError("preconditioner='lattice' is for periodic cells; a cell with clamped atoms takes "
                             "'laplacian', 'none' or 'auto'")
        if not matches_perfect_cell(work):
            raise InputError("preconditioner='lattice' needs an n-cell built by genanalysis.lattice (fixed cell)")
        pre = lattice_preconditioner_of(pot, work)
        site_index = work.arrays.get("site_index", -np.ones(len(work), int))
        return kind, (lambda r: pre.apply(r, site_index)), pre.hvp_evaluations
    if kind in ("laplacian", "none"):
        return kind, None, 0
    raise InputError(f"preconditioner={preconditioner!r}; choose auto, lattice, laplacian or none")


def operator_preconditioner(kind: str, work: Atoms, hop, dim: int, free):
    """The preconditioner that needs an operator: the stencil Laplacian (``kind="laplacian"``)
    of ``hop``, else the identity on the free atoms (or with the net force removed)."""
    if kind == "laplacian":
        lp = _LaplacianPreconditioner(work, hop, dim, free)
        return lp.apply
    if free is not None:
        return lambda r: np.where(free[:, None], r, 0.0)
    return lambda r: r - r.mean(axis=0)


def restricted_operator(op, dim: int, free, counts: dict, key: str, remove_mean: bool = False):
    """v ↦ (op v) on the in-plane components (eV/Å for v in Å): the operator restricted to
    the free atoms (clamped ones held at zero in and out), or, in a periodic cell with
    ``remove_mean``, with the net force removed. Counts each product in ``counts[key]``."""
    def apply(v):
        counts[key] += 1
        n = len(v)
        full = np.zeros((n, 3))
        full[:, :dim] = v
        if free is not None:
            full[~free] = 0.0
        out = np.asarray(op @ full.ravel()).reshape(n, 3)[:, :dim]
        if free is not None:
            out[~free] = 0.0
            return out
        return out - out.mean(axis=0) if remove_mean else out
    return apply


def relax(
    atoms: Atoms,
    potential,
    *,
    fmax: float = DEFAULT_FMAX,
    max_iter: int = DEFAULT_MAX_ITER,
    max_step: float = 0.3,
    preconditioner: str = "auto",
    cg_max_iter: int = 500,
    fixed: np.ndarray | None = None,
    descend: bool | None = None,
) -> Relaxation:
    """Relax atomic positions in a fixed cell until max_i |F_i| ≤ ``fmax`` (eV/Å).

    ``potential`` is a Potential (or any spec of
    :func:`~genanalysis.potentials.load_potential`, resolved by it with the cell's lattice
    and lattice constant). ``preconditioner`` is
    ``"auto"`` (the perfect-lattice FFT preconditioner when ``atoms`` is an n-cell from
    :mod:`genanalysis.lattice`, else a stencil-Laplacian one), ``"lattice"``,
    ``"laplacian"`` or ``"none"``. ``max_step`` (Å) caps any atom's displacement per step.

    ``fixed`` (bool mask, one per atom; default ``atoms.arrays["clamped"]`` when the cell
    carries one, e.g. the clamped shell of a dislocation cylinder,
    :mod:`genanalysis.dislocation`) holds those atoms exactly where they are: the Newton
    steps act on the free atoms only (the Hessian restricted to them, the Dirichlet
    Laplacian of the free atoms as preconditioner), and the convergence measure is the
    largest force on a free atom.

    ``descend``: where CG meets negative curvature, step along that direction (downhill,
    at most ``max_step``/3 per atom before the line search) instead of the truncated Newton
    step, so that the relaxation leaves a saddle. None (default): on for a cell with
    clamped atoms — a dislocation cylinder, whose symmetric screw core from the predictor is
    a saddle that a symmetry-breaking mode lowers (docs/dislocations.md §2) — and off for
    periodic cells, where a symmetric stationary point is the point sought (and its
    stability constant says whether it is a minimum).
    Returns a :class:`Relaxation`; the input is not modified.
    """
    loop = NewtonLoop(atoms, potential, fmax, max_iter, fixed, "hvp")
    pot, work, dim, free, counts, history = loop.pot, loop.work, loop.dim, loop.free, loop.counts, loop.history
    if not getattr(pot, "has_energy", True):
        raise InputError(f"{pot.name} has no energy (a direct-force model) and this solver line-searches on the "
                         "energy; solve it with genanalysis.forcesolve.relax_forces (or equilibrate)")
    if descend is None:
        descend = free is not None

    def at(x):  # energy, gradient (eV/Å) and the operator if fused, at in-plane positions x
        e, f, op = loop.forces(x)
        return float(e), -f, op

    x = work.positions[:, :dim].copy()
    energy, grad, op_now = at(x)

    kind, precond, setup_hvp = choose_preconditioner(pot, work, preconditioner, free)

    it = 0
    for it in range(loop.max_iter + 1):
        fnow, status = loop.check(it, grad, math.isfinite(energy) and bool(np.all(np.isfinite(grad))), _NON_FINITE)
        if status is not None:
            break
        op = loop.operator(x, op_now)
        op_now = None  # one operator alive at a time (it holds O(pairs) memory)

        hop = restricted_operator(op, dim, free, counts, "hvp")
        if precond is None:
            precond = operator_preconditioner(kind, work, hop, dim, free)
        # translations are zero modes of a periodic cell (net force removed); clamped atoms pin them
        b = -grad if free is not None else -grad + grad.mean(axis=0)
        gnorm = float(np.linalg.norm(grad))
        eta = min(0.25, math.sqrt(gnorm))
        negative = [] if descend else None
        d, _, flag = preconditioned_cg(hop, b, precond, eta, cg_max_iter, negative)
        if negative:
            p = negative[0]
            p = -p if float(np.sum(grad * p)) > 0 else p
            d = p * (max_step / 3.0) / max(float(np.sqrt(np.einsum("ij,ij->i", p, p).max())), 1e-300)
        slope = float(np.sum(grad * d))
        if slope >= 0 and not negative:  # not a descent direction: fall back to the preconditioned gradient
            d = precond(b)
            slope = float(np.sum(grad * d))
        op = hop = None  # free the operator before the trial points build theirs
        step_len = float(np.sqrt(np.einsum("ij,ij->i", d, d).max()))
        alpha = min(1.0, max_step / step_len) if step_len > 0 else 1.0
        accepted = False
        op_new = None
        for _ in range(40):
            op_new = None
            e_new, g_new, op_new = at(x + alpha * d)
            if math.isfinite(e_new) and np.all(np.isfinite(g_new)):
                resolvable = abs(alpha * slope) > 1e-11 * (abs(energy) + 1.0)
                if resolvable:
                    ok = e_new <= energy + 1e-4 * alpha * slope
                else:  # energy differences at round-off: judge by the residual
                    ok = np.linalg.norm(g_new) < gnorm
                if ok:
                    accepted = True
                    break
            alpha *= 0.5
        if not accepted:
            status = f"line search failed at iteration {it} (max force {fnow:.3e} eV/Å)"
            break
        x = x + alpha * d
        energy, grad, op_now = e_new, g_new, op_new
        op_new = None

    work.positions[:, :dim] = x
    fmax_final = history[-1] if history else math.nan
    return Relaxation(
        atoms=work,
        status=status,
        converged=status == "converged",
        iterations=it,
        force_evaluations=counts["fe"],
        hvp_evaluations=counts["hvp"] + setup_hvp,
        max_force=float(fmax_final),
        energy=float(energy),
        wall_time=time.perf_counter() - loop.t0,
        preconditioner=kind,
        history=history,
    )


class NewtonLoop:
    """What the two Newton solvers (:func:`relax`, :func:`genanalysis.forcesolve.relax_forces`)
    share: the checked ``fmax`` and ``max_iter``, the working copy of the cell, its
    dimension and free atoms, the evaluation counts (``"fe"`` and ``products``), the
    convergence history, the forces at in-plane positions — with the operator where the
    potential returns it from the same pass (``fused_linearise``: a Newton step is accepted
    whole almost always, and its operator is then the next step's, for free) — the test
    that ends an iteration, and the operator of a Newton step."""

    def __init__(self, atoms: Atoms, potential, fmax, max_iter, fixed, products: str):
        self.fmax, self.max_iter = check_arguments(RELAX_CONSTRAINTS, fmax=fmax, max_iter=max_iter)
        self.t0 = time.perf_counter()
        self.pot = load_potential(potential, atoms=atoms)
        self.work = atoms.copy()
        self.work.calc = None
        self.dim = atoms_dim(self.work)
        self.free = free_mask(self.work, fixed)
        self.counts = {"fe": 0, products: 0}
        self.history: list[float] = []

    def forces(self, x: np.ndarray):
        """(energy eV, forces (n, dim) eV/Å, the operator or None) at in-plane positions
        ``x`` (Å); the clamped atoms' forces are 0 (they are held by the boundary)."""
        self.work.positions[:, : self.dim] = x
        e, f, op = self.pot.energy_forces(self.work, linearise=self.pot.fused_linearise)
        self.counts["fe"] += 1
        f = np.asarray(f, float)[:, : self.dim].copy()
        if self.free is not None:
            f[~self.free] = 0.0
        return e, f, op

    def check(self, it: int, vector: np.ndarray, finite: bool, non_finite: str):
        """(max_i |vector_i| eV/Å, appended to the history; the status that ends the loop at
        iteration ``it`` — ``non_finite`` when not ``finite``, ``"converged"`` at ``fmax``,
        not converged at ``it == max_iter`` — or None to take a Newton step)."""
        fnow = max_force(np.pad(vector, ((0, 0), (0, 3 - self.dim))))
        self.history.append(fnow)
        if not finite:
            return fnow, non_finite
        if fnow <= self.fmax:
            return fnow, "converged"
        return fnow, (f"not converged after {self.max_iter} iterations" if it == self.max_iter else None)

    def operator(self, x: np.ndarray, op_now):
        """The operator at ``x``: ``op_now`` if the last evaluation returned one, else built."""
        self.work.positions[:, : self.dim] = x
        return op_now if op_now is not None else self.pot.linearise(self.work)


def free_mask(atoms: Atoms, fixed) -> np.ndarray | None:
    """The free atoms (bool mask) of ``fixed`` or ``atoms.arrays['clamped']``; None if none is clamped."""
    if fixed is None:
        fixed = atoms.arrays.get("clamped")
    if fixed is None:
        return None
    fixed = np.asarray(fixed)
    if fixed.dtype != bool or fixed.shape != (len(atoms),):
        raise InputError(f"fixed: a boolean mask of {len(atoms)} atoms is needed, got {fixed.dtype} {fixed.shape}")
    if not fixed.any():
        return None
    if fixed.all():
        raise InputError("fixed: every atom is clamped; nothing to relax")
    return ~fixed


