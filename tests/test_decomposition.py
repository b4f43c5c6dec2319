"""The decomposition of a model's test residual into training residual, transfer term and
far-field tail (genanalysis.decomposition), and the estimate (T9) held against measured
terms. Small 2D systems (triangular builtin:morse); the model is the reference itself or
a synthetic surrogate V + η·W, so that every term is known in kind."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genanalysis.defect import relax
from genanalysis.experiment import ExperimentSpec, evaluate, resolve
from genanalysis.lattice import defect_cell, minimum_image
from genanalysis.potentials import load_potential

A = 0.9682271251118388  # builtin:morse equilibrium on the triangular lattice, Å
REF = "builtin:morse"


def _relaxed_cell(defect: str, n: int):
    ref = load_potential(REF)
    return relax(defect_cell("triangular", A, n, defect), ref, fmax=1e-9).atoms


@given(n=st.integers(2, 6), extra=st.integers(0, 8), defect=st.sampled_from(["vacancy", "interstitial"]))
@settings(max_examples=25, deadline=None)
def test_every_training_cell_atom_has_one_partner_at_the_same_place(n, extra, defect):
    """match_sites pairs the N-cell's atoms with distinct M-cell atoms at the same position
    relative to the defect centre."""
    from genanalysis.decomposition import match_sites

    small = defect_cell("triangular", A, n, defect)
    big = defect_cell("triangular", A, n + extra, defect)
    idx = match_sites(small, big)
    assert len(set(idx.tolist())) == len(small)
    rs = minimum_image(small.positions - small.info["defect_centre"], np.array(small.cell), 2)
    rb = minimum_image(big.positions[idx] - big.info["defect_centre"], np.array(big.cell), 2)
    np.testing.assert_allclose(rs[:, :2], rb[:, :2], atol=1e-9)


def _run(model, defect="vacancy", n=4, m=12, **options):
    spec = ExperimentSpec(lattice="triangular", defect=defect, size=m, a=A, fmax=1e-9, **options)
    return evaluate(model, REF, spec, training_cells=[_relaxed_cell(defect, n)])


def test_the_reference_as_its_own_model_has_no_residual_anywhere():
    """With V^ML = V every term vanishes: r_train, t_H, the tail, r_test, the estimate's
    terms; the coverage distance, a property of the two reference fields, does not."""
    res = _run(REF)
    d = res.decomposition
    for k in ("train_residual_dual_norm", "transfer_hessian_term", "transfer_tail_term", "measured_core_force_error",
              "measured_far_force_error", "estimate_residual"):
        assert abs(d[k]) < 1e-8, (k, d[k])
    assert d["coverage_distance"] > 1e-4 and d["training_cell_size"] == 4


@pytest.mark.parametrize("family", ["force_constants", "core"])
def test_every_term_is_linear_in_the_model_error_so_the_check_ratio_is_not(family):
    """A surrogate V + η·W: r_train, t_H, the tail and r_test are first order in η (the
    reference's equilibria do not depend on η), so doubling η doubles each to 1e-3 and leaves
    the check ratio r_test/(r_train + t) unchanged to 1e-3."""
    out = {}
    for eta in (1e-4, 2e-4):
        out[eta] = _run(f"surrogate:{REF}?family={family}&eta={eta!r}").decomposition
    a, b = out[1e-4], out[2e-4]
    for k in ("train_residual_dual_norm", "transfer_hessian_term", "transfer_tail_term"):
        if a[k] > 1e-12:
            assert b[k] / a[k] == pytest.approx(2.0, rel=1e-3), k
    assert b["decomposition_ratio"] == pytest.approx(a["decomposition_ratio"], rel=1e-3)


def test_the_estimate_is_formed_from_the_measured_terms():
    """(T9) with measured inputs: its core term is the measured core force error, its
    force-constant term ε_FC·‖Dū‖_{ℓ²(|ℓ|>R)} with the measured tail, the residual their sum."""
    res = _run(f"surrogate:{REF}?family=force_constants&eta=1e-3")
    d = res.decomposition
    assert d["estimate_core"] == d["measured_core_force_error"] > 0
    assert d["estimate_force_constants"] == pytest.approx(res.force_constant_error * d["reference_tail_norm"],
                                                          rel=1e-12)
    assert d["estimate_residual"] == pytest.approx(d["estimate_core"] + d["estimate_force_constants"], rel=1e-12)
    assert d["estimate_residual_ratio"] == pytest.approx(d["estimate_residual"] / res.residual_dual_norm, rel=1e-12)


def test_coverage_distance_falls_as_the_training_cell_grows():
    """δ_cov = max_core |D(ū_M − ū_N)|, a pointwise supercell error, shrinks with N once the
    cell is wider than the cutoff (at N = 3, 4 it is flat: 1.2e-2 Å both)."""
    cov = [_run(REF, n=n, m=24, stability=False, lattice_terms=False).decomposition["coverage_distance"]
           for n in (4, 6, 8)]
    assert cov[0] > cov[1] > cov[2] > 0


def test_no_training_cell_of_the_test_defect_leaves_a_note_and_the_estimate():
    spec = ExperimentSpec(lattice="triangular", defect="vacancy", size=8, a=A, fmax=1e-9)
    res = evaluate(f"surrogate:{REF}?family=force_constants&eta=1e-3", REF, spec,
                   training_cells=[_relaxed_cell("interstitial", 4)])
    assert "train_residual_dual_norm" not in res.decomposition
    assert res.decomposition["estimate_residual"] > 0
    assert any("no relaxed vacancy training cell" in n for n in res.notes)
    assert "estimate_residual" in res.metrics() and resolve(REF, REF, spec).cell is not None
