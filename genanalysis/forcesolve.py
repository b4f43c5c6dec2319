"""Static simulation without an energy: equilibria F(y) = 0 of a direct-force model, their
stability (the inf-sup constant) and what the model lacks (its non-conservative part).

Units: Å, eV/Å (forces), eV/Å² (stiffness K = −∂F/∂x, inf-sup constant), eV (loop work).

The solver (:func:`relax_forces`, docs/theory.md §3.4) is a Newton–Krylov method: each Newton
step solves K d = F (K the exact, non-symmetric stiffness, from the potential's
``linearise``) by right-preconditioned restarted GMRES to the Eisenstat–Walker tolerance
η = min(0.25, ‖F‖^{1/2}) of :func:`genanalysis.relaxation.relax`, with the same
preconditioner (the perfect-lattice FFT one on an n-cell, else the stencil Laplacian). There is
no energy to line-search on: the step is globalised on the residual norm, a backtracking
search accepting ‖F(y + αd)‖ ≤ (1 − 10⁻⁴ α) ‖F(y)‖ — for an inexact Newton step, a descent
direction of ½‖F‖² whenever η < 1. Where that search fails, or Newton stagnates (the
largest force down by less than 10 % in 10 iterations: a crawl towards a minimum of ‖F‖
that is no zero) — a hard start: far from the equilibrium, K indefinite or nearly singular
along the step — the solver continues by pseudo-transient continuation
(``continuation=True``): steps of the flow ẏ = F(y) solved implicitly, (K + σ I) d = F by the same GMRES, with the pseudo-time shift σ = 1/Δt (eV/Å²)
starting at max_i |F_i| / max_step, the step kept unless ‖F‖ more than doubles (else σ ×4:
the flow may climb the residual norm on its way, within that bound) and σ then set by
switched evolution relaxation, σ ← σ ‖F_new‖/‖F‖, so that the steps become Newton's as the
residual falls and shorter where it rises. Far from an equilibrium it follows the flow;
near one its steps are Newton's, so what it finds may be unstable: the experiment judges
that afterwards (the inf-sup constant and the spectrum below). In a periodic cell the net
force Σ_i F_i of a model that violates the acoustic sum rule is not a function a
translation can change, so the solver
seeks the equilibrium of F − F̄ (mean removed, exactly as the energy solver removes it) and
reports the net force |Σ_i F_i| beside the residual.

Stability (:func:`inf_sup_constant`): γ = inf_v sup_w ⟨w, K v⟩/(‖Dv‖‖Dw‖), the smallest
singular value of L^{−1/2} K L^{−1/2} on displacements modulo translations (L the Riesz map
of the energy norm, :mod:`genanalysis.norms`); for a symmetric positive definite K it is
the stability constant c of :func:`genanalysis.defect.stability_constant`, and it replaces c
in the a-posteriori bound (T19).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
from ase import Atoms

from genanalysis.constraints import DEFAULT_FMAX, DEFAULT_MAX_ITER
from genanalysis.exceptions import ConvergenceError, InputError, NonFiniteError
from genanalysis.lattice import atoms_dim
from genanalysis.potentials import load_potential
from genanalysis.relaxation import (
    NewtonLoop,
    Relaxation,
    choose_preconditioner,
    free_mask,
    operator_preconditioner,
    relax,
    restricted_operator,
)

__all__ = ["ForceRelaxation", "relax_forces", "equilibrate", "has_energy", "gmres_right", "inf_sup_constant",
           "stiffness_matrix", "nonconservative_measures"]

_NON_FINITE = "forces not finite"


def has_energy(potential) -> bool:
    """Whether ``potential`` has an energy (False for a direct-force model)."""
    return bool(getattr(potential, "has_energy", True))


@dataclass
class ForceRelaxation(Relaxation):
    """:class:`~genanalysis.relaxation.Relaxation` of :func:`relax_forces`: ``energy`` is NaN
    (none exists); ``krylov_iterations`` the GMRES iterations over all Newton steps;
    ``net_force`` |Σ_i F_i| (eV/Å) at the end; ``max_force`` the largest |F_i − F̄|;
    ``continuation_steps`` the pseudo-transient continuation steps (0 when Newton sufficed)
    and ``solver`` says from which iteration they took over."""

    krylov_iterations: int = 0
    net_force: float = math.nan
    solver: str = "newton-gmres"
    continuation_steps: int = 0

    def check(self, what: str = "relaxation") -> None:
        if not self.converged:
            raise (NonFiniteError if self.status == _NON_FINITE else ConvergenceError)(f"{what}: {self.status}")

    def summary(self) -> dict:
        return dict(super().summary(), energy=None, krylov_iterations=self.krylov_iterations,
                    net_force=self.net_force, solver=self.solver, continuation_steps=self.continuation_steps)


def gmres_right(matvec, b: np.ndarray, precond, rtol: float, maxiter: int, restart: int = 50):
    """Right-preconditioned restarted GMRES on A x = b (A = ``matvec``, M = ``precond`` ≈ A⁻¹):
    minimises the true residual ‖b − A M z‖ over the Krylov space of A M, x = M z. Arrays
    keep the shape of ``b``. Returns (x, iterations, flag) with flag ``"ok"`` (‖b − A x‖ ≤
    rtol ‖b‖) or ``"max iterations"``."""
    shape = b.shape
    bn = float(np.linalg.norm(b))
    x = np.zeros_like(b)
    if bn == 0.0:
        return x, 0, "ok"
    total = 0
    r = b.copy()
    while total < maxiter:
        beta = float(np.linalg.norm(r))
        if beta <= rtol * bn:
            return x, total, "ok"
        m = min(restart, maxiter - total)
        V = np.zeros((m + 1, b.size))
        Z = np.zeros((m, b.size))
        H = np.zeros((m + 1, m))
        cs, sn = np.zeros(m), np.zeros(m)
        g = np.zeros(m + 1)
        g[0] = beta
        V[0] = r.ravel() / beta
        k_done = 0
        for k in range(m):
            Z[k] = np.asarray(precond(V[k].reshape(shape))).ravel()
            w = np.asarray(matvec(Z[k].reshape(shape))).ravel()
            for i in range(k + 1):  # modified Gram–Schmidt
                H[i, k] = float(V[i] @ w)
                w -= H[i, k] * V[i]
            H[k + 1, k] = float(np.linalg.norm(w))
            if H[k + 1, k] > 0:
                V[k + 1] = w / H[k + 1, k]
            for i in range(k):  # the previous Givens rotations
                H[i, k], H[i + 1, k] = cs[i] * H[i, k] + sn[i] * H[i + 1, k], -sn[i] * H[i, k] + cs[i] * H[i + 1, k]
            den = math.hypot(H[k, k], H[k + 1, k])
            cs[k], sn[k] = (1.0, 0.0) if den == 0 else (H[k, k] / den, H[k + 1, k] / den)
            H[k, k], H[k + 1, k] = den, 0.0
            g[k], g[k + 1] = cs[k] * g[k], -sn[k] * g[k]
            total += 1
            k_done = k + 1
            if abs(g[k + 1]) <= rtol * bn or H[k, k] == 0:
                break
        y = sla.solve_triangular(H[:k_done, :k_done], g[:k_done]) if k_done else np.zeros(0)
        x = x + (y @ Z[:k_done]).reshape(shape)
        r = b - np.asarray(matvec(x)).reshape(shape)
        if k_done and H[k_done - 1, k_done - 1] == 0:
            break
    ok = float(np.linalg.norm(r)) <= rtol * bn * (1 + 1e-8)
    return x, total, "ok" if ok else "max iterations"


def relax_forces(
    atoms: Atoms,
    potential,
    *,
    fmax: float = DEFAULT_FMAX,
    max_iter: int = DEFAULT_MAX_ITER,
    max_step: float = 0.3,
    preconditioner: str = "auto",
    gmres_max_iter: int = 300,
    restart: int = 60,
    fixed: np.ndarray | None = None,
    continuation: bool = True,
) -> ForceRelaxation:
    """Solve F(y) = 0 (in a fixed cell, net force removed; clamped atoms held) by the
    Newton–GMRES method of the module docstring, until max_i |F_i − F̄| ≤ ``fmax`` (eV/Å).
    Arguments as :func:`genanalysis.relaxation.relax` (``preconditioner``: auto, lattice,
    laplacian, none); works for any potential with forces and ``linearise`` (for a
    conservative one the same equilibrium as :func:`relax`). ``continuation``: where the
    Newton line search fails or Newton stagnates, continue by pseudo-transient continuation
    (module docstring) instead of stopping. Returns a :class:`ForceRelaxation`; the input is not modified."""
    loop = NewtonLoop(atoms, potential, fmax, max_iter, fixed, "jvp")
    pot, work, dim, free, counts, history = loop.pot, loop.work, loop.dim, loop.free, loop.counts, loop.history
    counts["krylov"] = 0

    def at(x):  # projected residual, net force (eV/Å), operator if fused
        _, f, op = loop.forces(x)
        net = float(np.linalg.norm(f.sum(axis=0)))
        if free is None:
            f -= f.mean(axis=0)
        return f, net, op

    x = work.positions[:, :dim].copy()
    res, net, op_now = at(x)
    kind, precond, setup = choose_preconditioner(pot, work, preconditioner, free)
    sigma = None  # the pseudo-time shift 1/Δt (eV/Å²) once the continuation has taken over
    counts["ptc"] = 0
    ptc_from = None

    it = 0
    for it in range(loop.max_iter + 1):
        fnow, status = loop.check(it, res, bool(np.all(np.isfinite(res))), _NON_FINITE)
        if status is not None:
            break
        op = loop.operator(x, op_now)
        op_now = None

        # K v on the in-plane components, net force removed / clamped atoms held
        kop = restricted_operator(op, dim, free, counts, "jvp", remove_mean=True)
        if precond is None:
            precond = operator_preconditioner(kind, work, kop, dim, free)
        rnorm = float(np.linalg.norm(res))
        eta = min(0.25, math.sqrt(rnorm))
        if sigma is None:  # Newton: GMRES on K d = F, backtracking on ‖F‖
            d, k_it, flag = gmres_right(kop, res, precond, eta, gmres_max_iter, restart)
            counts["krylov"] += k_it
            step_len = float(np.sqrt(np.einsum("ij,ij->i", d, d).max())) if len(d) else 0.0
            trial = None
            if step_len > 0 and math.isfinite(step_len):
                alpha = min(1.0, max_step / step_len)
                for _ in range(40):
                    r_new, net_new, op_new = at(x + alpha * d)
                    if np.all(np.isfinite(r_new)) and float(np.linalg.norm(r_new)) <= (1.0 - 1e-4 * alpha) * rnorm:
                        trial = (alpha * d, r_new, net_new, op_new)
                        break
                    op_new = None
                    alpha *= 0.5
                why = (f"residual line search failed at iteration {it} (max force {fnow:.3e} eV/Å; GMRES {flag} "
                       f"after {k_it} iterations)")
            else:
                why = f"GMRES gave no step at iteration {it} ({flag}; max force {fnow:.3e} eV/Å)"
            if trial is not None and continuation and _stagnated(history):
                trial = None
                why = (f"Newton stagnated at iteration {it} (max force {fnow:.3e} eV/Å, down by less than "
                       f"{1 - _STALL_FACTOR:.0%} in {_STALL_ITERATIONS} iterations)")
            if trial is None and not continuation:
                status = why
                break
            if trial is None:  # hard start: continue by pseudo-transient continuation from here
                newton_failure, ptc_from = why, it
                sigma = fnow / max_step
        if sigma is not None:
            trial, sigma, why = _ptc_step(kop, res, precond, eta, sigma, x, at, rnorm, max_step, gmres_max_iter,
                                          restart, counts)
            if trial is None:
                status = f"{newton_failure}; pseudo-transient continuation from there failed at iteration {it}: {why}"
                break
            counts["ptc"] += 1
        op = kop = None
        dx, res, net, op_now = trial
        x = x + dx

    work.positions[:, :dim] = x
    return ForceRelaxation(
        atoms=work, status=status, converged=status == "converged", iterations=it,
        force_evaluations=counts["fe"], hvp_evaluations=counts["jvp"] + setup,
        max_force=float(history[-1]) if history else math.nan, energy=math.nan,
        wall_time=time.perf_counter() - loop.t0, preconditioner=kind, history=history,
        krylov_iterations=counts["krylov"], net_force=net, continuation_steps=counts["ptc"],
        solver="newton-gmres" if ptc_from is None else f"newton-gmres, then pseudo-transient continuation from "
                                                         f"iteration {ptc_from}",
    )


#: Newton has stagnated when the max force fell by less than 1 − _STALL_FACTOR over the last
#: _STALL_ITERATIONS iterations (a crawl towards a minimum of ‖F‖ that is not a zero)
_STALL_ITERATIONS = 10
_STALL_FACTOR = 0.9


def _stagnated(history: list) -> bool:
    return len(history) > _STALL_ITERATIONS and history[-1] > _STALL_FACTOR * history[-1 - _STALL_ITERATIONS]


def _ptc_step(kop, res, precond, eta, sigma, x, at, rnorm, max_step, gmres_max_iter, restart, counts,
              growth: float = 2.0):
    """One pseudo-transient continuation step (module docstring): GMRES on (K + σ I) d = F,
    the step capped at ``max_step``, accepted when ‖F‖ grows by at most ``growth`` (the flow
    may climb the residual on its way), else σ ×4 and again (at most 30 times). Returns
    ((dx, residual, net force, operator) or None, the next σ — switched evolution relaxation,
    σ ‖F_new‖/‖F‖ —, the reason if no step was accepted)."""
    flag = "ok"
    for _ in range(30):
        def shifted(v, s=sigma):
            return kop(v) + s * v

        d, k_it, flag = gmres_right(shifted, res, precond, eta, gmres_max_iter, restart)
        counts["krylov"] += k_it
        step_len = float(np.sqrt(np.einsum("ij,ij->i", d, d).max())) if len(d) else 0.0
        if step_len > 0 and math.isfinite(step_len):
            dx = d * min(1.0, max_step / step_len)
            r_new, net_new, op_new = at(x + dx)
            rn = float(np.linalg.norm(r_new))
            if np.all(np.isfinite(r_new)) and rn <= growth * rnorm:
                return (dx, r_new, net_new, op_new), sigma * rn / rnorm, ""
            op_new = None
        sigma *= 4.0
    return None, sigma, f"no decrease of ‖F‖ up to σ = {sigma:.3g} eV/Å² (GMRES {flag})"


def equilibrate(atoms: Atoms, potential, *, fmax: float = DEFAULT_FMAX, max_iter: int = DEFAULT_MAX_ITER,
                **options) -> Relaxation:
    """The equilibrium of ``potential`` from ``atoms``: :func:`genanalysis.relaxation.relax`
    for a potential with an energy, :func:`relax_forces` for one without (a direct-force
    model). ``options``: the chosen solver's other keywords."""
    pot = load_potential(potential, atoms=atoms)
    solve = relax if has_energy(pot) else relax_forces
    return solve(atoms, pot, fmax=fmax, max_iter=max_iter, **options)


# --------------------------------------------------------------------------- stability


def stiffness_matrix(potential, atoms: Atoms) -> sp.csr_array:
    """K = −∂F/∂x (eV/Å², 3n × 3n): the direct-force model's exact stiffness, or the
    Hessian of a potential with an energy."""
    fn = getattr(potential, "stiffness", None)
    return sp.csr_array(fn(atoms) if fn is not None else potential.hessian(atoms))


def inf_sup_constant(atoms: Atoms, potential, reference: Atoms | None = None, *, r_stencil=None,
                     dense_limit: int = 3000, fixed: np.ndarray | None = None) -> dict:
    """The inf-sup constant γ (eV/Å²) of the stiffness at ``atoms`` between the energy norm of
    the stencil of ``reference`` (default ``atoms``) and its dual (module docstring), with
    the smallest eigenvalue of its symmetric part on the same norm (``symmetric_minimum``, the
    c of an energy model) and the relative size of its antisymmetric part in that norm
    (``antisymmetric_norm`` = ‖L^{−1/2}(K − Kᵀ)L^{−1/2}‖₂/2 over ‖L^{−1/2} K L^{−1/2}‖₂).
    and the smallest real part of the eigenvalues of K v = λ L v (``spectral_minimum``: ≤ 0
    means the equilibrium is unstable under the flow L ẏ = F(y), the analogue of c ≤ 0; for
    a symmetric K it is c).
    Dense: refused (InputError) beyond ``dense_limit`` unknowns."""
    from genanalysis.norms import riesz_matrix, stencil

    pot = load_potential(potential, atoms=atoms)
    dim = atoms_dim(atoms)
    if fixed is None and reference is not None:
        fixed = reference.arrays.get("clamped")
    free = free_mask(atoms, fixed)
    sites = np.arange(len(atoms)) if free is None else np.flatnonzero(free)
    m = len(sites) * dim
    if m > dense_limit:
        raise InputError(f"inf_sup_constant: {m} unknowns exceed dense_limit={dense_limit}")
    idx = (sites[:, None] * 3 + np.arange(dim)[None, :]).ravel()
    K = stiffness_matrix(pot, atoms)[idx][:, idx].toarray()
    if not np.all(np.isfinite(K)):
        raise NonFiniteError(f"the stiffness of {pot.name} is not finite")
    lap = riesz_matrix(stencil(reference if reference is not None else atoms, r_stencil))
    didx = (sites[:, None] * dim + np.arange(dim)[None, :]).ravel()
    lap = lap[didx][:, didx].toarray()
    w, U = np.linalg.eigh(lap)
    keep = w > 1e-10 * w.max()  # drops the translations (zero modes) of a periodic cell
    S = U[:, keep] / np.sqrt(w[keep])
    M = S.T @ K @ S
    sv = np.linalg.svd(M, compute_uv=False)
    sym = np.linalg.eigvalsh(0.5 * (M + M.T))
    spectral = float(np.linalg.eigvals(M).real.min())
    return {"inf_sup": float(sv[-1]), "symmetric_minimum": float(sym[0]), "spectral_minimum": spectral,
            "antisymmetric_norm": float(np.linalg.norm(0.5 * (M - M.T), 2) / max(sv[0], 1e-300)),
            "largest_singular_value": float(sv[0])}


def nonconservative_measures(atoms: Atoms, potential, *, loop_radius: float = 0.02, loop_points: int = 32) -> dict:
    """What a direct-force model lacks, measured at ``atoms``:

    * ``antisymmetry``: ‖½(K − Kᵀ)‖_F / ‖K‖_F (1) of the stiffness K = −∂F/∂x;
    * ``asr_violation``: ‖Σ_i K_{i·}‖_F / ‖K‖_F (1), the acoustic sum rule over the rows
      (translations are right null vectors of K by translation invariance; an energy's K is
      symmetric, so they are left null vectors too);
    * ``net_force`` |Σ_i F_i| (eV/Å) and ``net_force_per_atom`` (eV/Å);
    * ``loop_work`` (eV): the work ∮ F·dy of the forces around a circle of radius
      ``loop_radius`` (Å) in the plane of the two coordinates of the largest antisymmetric
      entry A_ab of K (trapezoidal rule on ``loop_points``, spectrally accurate), beside its
      first-order prediction ``loop_work_predicted`` = 2π ρ² A_ab (eV); zero for an energy.
    """
    pot = load_potential(potential, atoms=atoms)
    dim = atoms_dim(atoms)
    n = len(atoms)
    idx = (np.arange(n)[:, None] * 3 + np.arange(dim)[None, :]).ravel()
    K = stiffness_matrix(pot, atoms)[idx][:, idx].toarray()
    F = np.asarray(pot.observe(atoms).forces, float)
    knorm = float(np.linalg.norm(K))
    A = 0.5 * (K - K.T)
    row_sum = K.reshape(n, dim, n * dim).sum(axis=0)
    a, b = np.unravel_index(int(np.argmax(np.abs(A))), A.shape)
    work = atoms.copy()
    work.calc = None
    x0 = work.positions.copy()
    t = 2 * np.pi * np.arange(loop_points) / loop_points
    total = 0.0
    for tk in t:
        pos = x0.copy()
        pos[a // dim, a % dim] += loop_radius * math.cos(tk)
        pos[b // dim, b % dim] += loop_radius * math.sin(tk)
        work.positions = pos
        f = np.asarray(pot.observe(work).forces, float)
        total += (-math.sin(tk) * f[a // dim, a % dim] + math.cos(tk) * f[b // dim, b % dim]) * loop_radius
    loop = total * 2 * np.pi / loop_points
    return {"antisymmetry": float(np.linalg.norm(A) / max(knorm, 1e-300)),
            "asr_violation": float(np.linalg.norm(row_sum) / max(knorm, 1e-300)),
            "net_force": float(np.linalg.norm(F.sum(axis=0))), "net_force_per_atom": float(np.linalg.norm(F.sum(axis=0)) / n),
            "loop_work": float(loop), "loop_work_predicted": float(2 * np.pi * loop_radius**2 * A[a, b]),
            "loop_radius": float(loop_radius)}
