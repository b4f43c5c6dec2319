"""The error of a fitted model decomposed into what the training cell saw and what it did not
(docs/theory.md §3.3; why a floor hides the rate: §4, with (T13)).

For a training cell of size N relaxed with the reference (ū_N, periodic N-cell) and a test
domain of size M (ū = ū_M, periodic M-cell), the model's residual on the test domain,
``r_test = ‖f^ML(ū_M)‖₋₁``, is compared with

* ``r_train = ‖f^ML(ū_N)‖₋₁`` — the model's residual on the relaxed training cell (what the
  fit could have driven to zero), dual norm on the N-cell's own stencil;
* the *transfer* term ``t_H = ‖ΔH(ū_N) (ū_M − ū_N)|_N‖₋₁`` with ``ΔH = H^ML − H`` the
  difference of the Hessians at ū_N (Hessian-vector products, no matrix) and
  ``(ū_M − ū_N)|_N`` the test field minus the training field on the N-cell's atoms (each
  N-cell atom matched to the M-cell atom at the same position relative to the defect);
  to first order ``f^ML(ū_M)|_N ≈ f^ML(ū_N) + ΔH(ū_N)(ū_M − ū_N)`` because the reference's
  forces vanish at both equilibria;
* the *tail* ``t_far = ‖(f^ML − f)(ū_M) · 1_{|ℓ| > w_N/2}‖₋₁``: the force error on the test
  domain beyond the training cell (w_N the N-cell's narrowest width), which no term on the
  N-cell can see;

``t(N) = t_H + t_far`` and the check ``ratio = r_test / (r_train + t(N))`` (1 when the
first-order picture is exact; the triangle inequality makes ``r_train + t(N)`` an upper
estimate up to the change of cell and the second-order remainder).

The *coverage distance* measures how well the training cell's core environments cover the
test domain's: ``δ_cov = max_{ℓ ∈ core} |D(ū_M − ū_N)(ℓ)|`` (Å), over the N-cell's atoms
within the core radius of the defect (matched as above) and the norm's stencil; it is the
pointwise supercell error of ū_N near the core, so it decays like N^{-d}
(``supercell_pointwise``, docs/calibration.md) when ū_N → ū.

The estimate (T9) is confronted term by term (:func:`estimate_terms`): its core term is the
measured core force error ``ε_core = ‖(f^ML − f)(ū)·1_{|ℓ| ≤ R}‖₋₁``, its force-constant term
``ε_FC ‖Dū‖_{ℓ²(|ℓ|>R)}`` (ε_FC the perfect-lattice force-constant error, the tail of the
measured ū) is held against the measured tail ``‖(f^ML − f)(ū)·1_{|ℓ|>R}‖₋₁``; the third-order
and lattice-stress terms are not measured (0 in the estimate, said in the result).

Units: Å (displacements, distances), eV/Å (forces, dual norms), eV/Å² (ε_FC, c).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.spatial import cKDTree

from genanalysis.lattice import (atoms_dim, cell_width, defect_cell, distances_from_centre, minimum_image,
                                 parse_defect)
from genanalysis.norms import dual_norm, energy_norm, site_gradient_norms, stencil

__all__ = ["UNITS", "match_sites", "decompose", "estimate_terms"]

UNITS = {
    "train_residual_dual_norm": "eV/Å",
    "transfer_hessian_term": "eV/Å",
    "transfer_tail_term": "eV/Å",
    "transfer_term": "eV/Å",
    "decomposition_ratio": "1",
    "coverage_distance": "Å",
    "training_cell_width": "Å",
    "estimate_core": "eV/Å",
    "estimate_force_constants": "eV/Å",
    "estimate_residual": "eV/Å",
    "estimate_residual_ratio": "1",
    "measured_core_force_error": "eV/Å",
    "measured_far_force_error": "eV/Å",
    "estimate_far_field_ratio": "1",
    "reference_tail_norm": "Å",
    "training_cell_size": "cells",
}


def match_sites(small, big) -> np.ndarray:
    """For every atom of the unrelaxed N-cell ``small``, the index of the atom of the
    unrelaxed M-cell ``big`` at the same position relative to its defect centre (both from
    :func:`genanalysis.lattice.defect_cell` on one lattice and ``a``). Raises ValueError if
    some atom has no partner within 1e-6 Å (cells of different lattices or constants)."""
    dim = atoms_dim(small)
    rel_s = minimum_image(small.positions - np.asarray(small.info["defect_centre"]), np.array(small.cell), dim)
    rel_b = minimum_image(big.positions - np.asarray(big.info["defect_centre"]), np.array(big.cell), dim)
    dist, idx = cKDTree(rel_b[:, :dim]).query(rel_s[:, :dim])
    if np.max(dist, initial=0.0) > 1e-6:
        raise ValueError(f"the N-cell has atoms with no partner in the M-cell (largest gap {np.max(dist):.3g} Å)")
    return idx


def _masked(f, mask):
    return np.where(mask[:, None], f, 0.0)


def decompose(model, reference, problem, test_atoms, test_forces_model, test_forces_reference, training_cell,
              *, residual_test: float) -> dict:
    """The decomposition metrics of one relaxed defect training cell (module docstring).

    ``problem``: the experiment's :class:`~genanalysis.experiment.Problem` (unrelaxed
    M-cell, stencil, core radius); ``test_atoms``: ū_M; ``test_forces_*``: both potentials'
    forces at ū_M (eV/Å); ``training_cell``: the relaxed N-cell ū_N (Atoms carrying the
    lattice info of :func:`~genanalysis.lattice.defect_cell`); ``residual_test``: r_test
    (eV/Å). Returns a dict of floats keyed as :data:`UNITS`."""
    dim = problem.dim
    info = training_cell.info
    n = int(info["n"])
    small = defect_cell(problem.spec.lattice, problem.a, n, parse_defect(problem.spec.lattice, info["defect"]),
                        problem.symbol)
    if len(small) != len(training_cell):
        raise ValueError(f"training cell of {len(training_cell)} atoms is not the N = {n} defect cell "
                         f"({len(small)} atoms)")
    idx = match_sites(small, problem.cell)
    u_n = (training_cell.positions - small.positions)[:, :dim]
    u_m = (test_atoms.positions - problem.cell.positions)[:, :dim]
    st_n = stencil(small, problem.r_stencil)
    rel_n = training_cell.copy()
    f_train = np.asarray(model.observe(rel_n).forces, float)[:, :dim]
    r_train = dual_norm(f_train, st_n)
    v = np.zeros((len(small), 3))
    v[:, :dim] = u_m[idx] - u_n
    dh = (np.asarray(model.linearise(rel_n) @ v.ravel()) - np.asarray(reference.linearise(rel_n) @ v.ravel()))
    t_h = dual_norm(-dh.reshape(-1, 3)[:, :dim], st_n)
    width = cell_width(problem.spec.lattice, problem.a, n)
    df = (np.asarray(test_forces_model, float) - np.asarray(test_forces_reference, float))[:, :dim]
    t_far = dual_norm(_masked(df, problem.distances > 0.5 * width), problem.stencil)
    core = distances_from_centre(small) <= problem.core_radius
    gaps = site_gradient_norms(v, st_n)
    t = t_h + t_far
    return {
        "train_residual_dual_norm": r_train,
        "transfer_hessian_term": t_h,
        "transfer_tail_term": t_far,
        "transfer_term": t,
        "decomposition_ratio": residual_test / (r_train + t) if r_train + t > 0 else None,
        "coverage_distance": float(gaps[core].max()) if core.any() else None,
        "training_cell_width": width,
    }


def estimate_terms(problem, u_ref, test_forces_model, test_forces_reference, *, eps_fc, stability,
                   residual_test) -> dict:
    """The estimate (T9) (:class:`theory.Estimate`) with measured inputs, and what it is
    held against: ε_core (core force error, dual norm), the tail ‖Dū‖_{ℓ²(|ℓ|>R)} of the
    measured ū (Å), ε_FC (eV/Å²) and c (eV/Å²); R = the core radius. Returns the terms
    (eV/Å), the measured far-field force error (eV/Å), the ratios estimate/measured, and
    None for what cannot be formed (no ε_FC, c ≤ 0)."""
    from theory import Estimate

    dim = problem.dim
    R = problem.core_radius
    df = (np.asarray(test_forces_model, float) - np.asarray(test_forces_reference, float))[:, :dim]
    inside = problem.distances <= R
    eps_core = dual_norm(_masked(df, inside), problem.stencil)
    far = dual_norm(_masked(df, ~inside), problem.stencil)
    tail = energy_norm(u_ref, problem.stencil, sites=~inside)
    out = {"measured_core_force_error": eps_core, "measured_far_force_error": far, "reference_tail_norm": tail,
           "estimate_core": None, "estimate_force_constants": None, "estimate_residual": None,
           "estimate_residual_ratio": None, "estimate_far_field_ratio": None}
    if eps_fc is None or stability is None or not stability > 0 or not math.isfinite(eps_fc):
        return out
    est = Estimate(d=dim, R=float(R), c=float(stability), eps_core=float(eps_core), eps_fc=float(eps_fc),
                   tail_fc=float(tail), tail_3=0.0)
    terms = est.terms()
    out.update(estimate_core=terms["core"], estimate_force_constants=terms["force_constants"],
               estimate_residual=est.residual())
    if residual_test and residual_test > 0:
        out["estimate_residual_ratio"] = est.residual() / residual_test
    if far > 0:
        out["estimate_far_field_ratio"] = terms["force_constants"] / far
    return out
