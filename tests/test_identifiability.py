"""The identifiability width (genanalysis.identifiability): zero when the data determine
the model, never larger when data are added, Hutchinson against the exact trace, and the
noise-free posterior as the limit of a vanishing noise. Units: Å, eV, eV/Å."""

from __future__ import annotations

import dataclasses

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from studyload import load_study

from genanalysis.data import Configuration
from genanalysis.defect import relax
from genanalysis.exceptions import InputError
from genanalysis.fit import LossWeights, ModelSpec, fit_linear
from genanalysis.identifiability import (
    PRIORS,
    feature_degrees,
    identifiability_width,
    model_designs,
    posterior_factor,
    prior_precision,
    width_for_priors,
)
from genanalysis.lattice import defect_cell, perfect_cell
from genanalysis.models.linear import LinearACE
from genanalysis.potentials import load_potential

SPEC = ModelSpec(cutoff=2.5, degree=6, body_order=3, l_max=2)
LOSS = LossWeights(E=1.0, F=1.0)


@pytest.fixture(scope="module")
def setup():
    ref = load_potential("builtin:morse")
    a = ref.equilibrium_lattice_constant("triangular")
    cell0 = defect_cell("triangular", a, 5, "vacancy", "X")
    rel = relax(cell0, ref, fmax=1e-9)
    assert rel.converged
    return ref, a, cell0, rel.atoms


def _cells(a, count, seed=0, n=3):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(count):
        group = ("vacancy", "perfect")[k % 2]
        at = defect_cell("triangular", a, n, group, "X")
        at.positions[:, :2] += rng.normal(scale=0.03, size=(len(at), 2))
        out.append((group, at))
    return out


def _label(labeller, cells):
    configs = []
    for group, at in cells:
        if isinstance(labeller, LinearACE):
            r = labeller.predict(at)
            e, f = r["energy"], r["forces"]
        else:
            ev = labeller.observe(at)
            e, f = ev.energy, ev.forces
        configs.append(Configuration(at, group=group, energy=e, forces=f))
    return configs


def _fit(configs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rank-deficient on purpose in some tests
        model, diag = fit_linear(configs, SPEC, LOSS)
    return model, diag


def test_width_vanishes_when_the_data_determine_the_model(setup):
    """Data from a linear model of the same class on enough configurations: every
    coefficient is seen, the posterior collapses and nothing is left undetermined."""
    ref, a, cell0, atoms = setup
    truth = LinearACE(SPEC.ace_spec(2))
    truth.coef_ = np.random.default_rng(3).normal(size=truth.n_params) * 0.05
    model, diag = _fit(_label(truth, _cells(a, 4, seed=1)))
    assert diag["effective_rank"] == model.n_params
    np.testing.assert_allclose(model.coef_[1:], truth.coef_[1:], rtol=1e-6, atol=1e-8)
    for method in ("dense", "hutchinson"):
        res = identifiability_width(model, model.r_factor_, atoms, ref, reference_cell=cell0, method=method,
                                    precision=prior_precision(model))
        assert res.unseen == 0 and res.width == 0.0 and res.width_stderr == 0.0
        assert res.formation_energy_spread == 0.0 and res.dipole_spread == 0.0


def test_width_shrinks_as_data_are_added_and_hutchinson_matches_the_dense_trace(setup):
    ref, a, cell0, atoms = setup
    cells = _cells(a, 3, seed=2)
    widths = []
    for count in (1, 2):
        model, _ = _fit(_label(ref, cells[:count]))
        dense = identifiability_width(model, model.r_factor_, atoms, ref, reference_cell=cell0, method="dense",
                                      precision=prior_precision(model, power=1.0))
        widths.append(dense.width)
        if count == 1:
            assert dense.unseen > 0 and dense.width > 0 and dense.dipole_spread > 0
            hut = identifiability_width(model, model.r_factor_, atoms, ref, reference_cell=cell0,
                                        precision=prior_precision(model, power=1.0), probes=20, seed=5)
            assert hut.probes == 20 and hut.cg_iterations > 0 and hut.trace_stderr > 0
            # Hutchinson is unbiased: the exact trace lies within 3 standard errors of it
            assert abs(hut.trace - dense.trace) <= 3.0 * hut.trace_stderr
            assert abs(hut.dipole_spread - dense.dipole_spread) <= 3.0 * hut.dipole_spread_stderr + 1e-12
            assert hut.formation_energy_spread == pytest.approx(dense.formation_energy_spread, rel=1e-12)
            assert dense.dipole_fixed_geometry_spread > 0 and np.isfinite(dense.dipole_spread)
    assert widths[1] <= widths[0] * (1 + 1e-9)


def test_two_priors_are_reported_and_the_narrower_prior_gives_the_smaller_width(setup):
    ref, a, cell0, atoms = setup
    model, _ = _fit(_label(ref, _cells(a, 1, seed=4)))
    res = width_for_priors(model, model.r_factor_, atoms, ref, reference_cell=cell0, method="dense", dipole=False)
    assert set(res) == set(PRIORS)
    q1, q2 = res["degree_q1"], res["degree_q2"]
    assert q1.prior == "degree_q1" and q1.dipole_spread is None
    # precision deg^4 ≥ deg^2 for every degree ≥ 1: the q = 2 prior is narrower (Loewner)
    assert 0 < q2.width <= q1.width


def test_shared_designs_give_the_same_width_as_designs_computed_per_call(setup):
    """The basis's rows at ū_M do not depend on the fit: passing them in (as a study does
    for many fits on one test domain) changes nothing, and designs without virial rows are
    refused where the dipole spread needs them."""
    ref, a, cell0, atoms = setup
    model, _ = _fit(_label(ref, _cells(a, 1, seed=4)))
    lam = prior_precision(model, power=2.0)
    own = identifiability_width(model, model.r_factor_, atoms, ref, reference_cell=cell0, precision=lam,
                                probes=4, seed=1, noise=1e-3)
    shared = model_designs(model, atoms, perfect_cell("triangular", a, 5, "X"))
    again = identifiability_width(model, model.r_factor_, atoms, ref, reference_cell=cell0, precision=lam,
                                  probes=4, seed=1, noise=1e-3, designs=shared)
    assert dataclasses.asdict(again) == dataclasses.asdict(own)
    both = width_for_priors(model, model.r_factor_, atoms, ref, reference_cell=cell0, probes=4, seed=1, noise=1e-3,
                            designs=shared)
    assert both["degree_q2"].width == own.width
    bare = model_designs(model, atoms, perfect_cell("triangular", a, 5, "X"), dipole=False)
    with pytest.raises(InputError, match="virial"):
        identifiability_width(model, model.r_factor_, atoms, ref, reference_cell=cell0, precision=lam, probes=4,
                              designs=bare)


@st.composite
def designs(draw):
    p = draw(st.integers(2, 8))
    m = draw(st.integers(1, p + 3))
    extra = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    rank = draw(st.integers(1, p))
    A = rng.normal(size=(m + extra, rank)) @ rng.normal(size=(rank, p))  # possibly rank-deficient
    lam = np.exp(rng.uniform(-2, 2, size=p))
    M = rng.normal(size=(3, p))
    return A[:m], A, lam, M


def _r(A, p):
    r = np.linalg.qr(A, mode="r")
    out = np.zeros((p, p))
    out[: len(r)] = r[:p]
    return out


@settings(max_examples=60, deadline=None, derandomize=True)
@given(designs())
def test_posterior_never_widens_when_rows_are_added(case):
    """Σ(A with more rows) ≤ Σ(A) in the Loewner order, for exact data and for a noise σ:
    every linear functional of the coefficients is at most as uncertain."""
    A, Aplus, lam, M = case
    p = len(lam)
    for noise in (0.0, 1e-3, 1.0):
        S0 = posterior_factor(_r(A, p), lam, noise=noise, rcond=1e-9)
        S1 = posterior_factor(_r(Aplus, p), lam, noise=noise, rcond=1e-9)
        diff = S0 @ S0.T - S1 @ S1.T
        assert np.linalg.eigvalsh(0.5 * (diff + diff.T)).min() >= -1e-9 * max(1.0, np.abs(diff).max())
        assert np.trace(M @ S1 @ S1.T @ M.T) <= np.trace(M @ S0 @ S0.T @ M.T) * (1 + 1e-9) + 1e-12


@settings(max_examples=40, deadline=None, derandomize=True)
@given(designs())
def test_exact_data_posterior_is_the_prior_conditioned_on_the_rows(case):
    """σ → 0: Σ = Λ⁻¹ − Λ⁻¹Aᵀ(AΛ⁻¹Aᵀ)⁺AΛ⁻¹ (Gaussian conditioning on A θ = y), and the
    noisy posterior (AᵀA/σ² + Λ)⁻¹ tends to it."""
    A, _, lam, _ = case
    p = len(lam)
    P = np.diag(1.0 / lam)
    exact = P - P @ A.T @ np.linalg.pinv(A @ P @ A.T, rcond=1e-9, hermitian=True) @ A @ P
    S = posterior_factor(_r(A, p), lam, rcond=1e-9)
    np.testing.assert_allclose(S @ S.T, exact, atol=1e-7 * np.abs(P).max())
    sigma = 1e-1
    noisy = np.linalg.inv(A.T @ A / sigma**2 + np.diag(lam))
    Sn = posterior_factor(_r(A, p), lam, noise=sigma)
    np.testing.assert_allclose(Sn @ Sn.T, noisy, rtol=1e-8, atol=1e-12)


def test_feature_degrees_follow_the_basis_names():
    model = LinearACE(SPEC.ace_spec(2))
    deg = feature_degrees(model)
    assert deg[0] == 0.0 and len(deg) == model.n_params
    for name, d in zip(model.feature_names[1:], deg[1:]):
        if name.startswith("2b"):
            assert d == int(name.split("=")[1]) + 1
        assert d >= 1
    lam1, lam2 = prior_precision(model, power=1.0), prior_precision(model, power=2.0, scale=2.0)
    np.testing.assert_allclose(lam1, np.maximum(deg, 1) ** 2)
    np.testing.assert_allclose(lam2, np.maximum(deg, 1) ** 4 / 4.0)


@pytest.mark.parametrize("kw, match", [
    (dict(power=-1.0), "power"), (dict(scale=0.0), "scale"), (dict(scale=float("nan")), "scale"),
])
def test_bad_prior_is_one_line_input_error(kw, match):
    with pytest.raises(InputError, match=match):
        prior_precision(LinearACE(SPEC.ace_spec(2)), **kw)


def test_bad_options_are_input_errors(setup):
    ref, a, cell0, atoms = setup
    model, _ = _fit(_label(ref, _cells(a, 1)))
    lam = prior_precision(model)
    with pytest.raises(InputError, match="method"):
        identifiability_width(model, model.r_factor_, atoms, ref, reference_cell=cell0, precision=lam, method="x")
    with pytest.raises(InputError, match="probes"):
        identifiability_width(model, model.r_factor_, atoms, ref, reference_cell=cell0, precision=lam, probes=1)
    with pytest.raises(InputError, match="noise"):
        posterior_factor(model.r_factor_, lam, noise=-1.0)
    with pytest.raises(InputError, match="do not match"):
        posterior_factor(model.r_factor_, lam[:-1])


def test_evaluate_reports_the_width_only_when_asked(setup):
    """Off by default (existing results do not move); on request the metrics appear and
    equal the module's own computation."""
    from genanalysis.experiment import ExperimentSpec, evaluate
    from genanalysis.identifiability import experiment_metrics
    from genanalysis.models.calculator import ModelPotential

    ref, a, cell0, atoms = setup
    model, _ = _fit(_label(ref, _cells(a, 1, seed=6)))
    pot = ModelPotential(model)
    spec = ExperimentSpec("triangular", "vacancy", 5, a=a, stability=False, lattice_terms=False, profile_radii=())
    plain = evaluate(pot, ref, spec)
    assert plain.identifiability is None
    assert not any(k.startswith("identifiability") for k in plain.metrics())
    opts = {"probes": 4, "seed": 1, "dipole": False, "priors": {"degree_q1": 1.0}}
    res = evaluate(pot, ref, dataclasses.replace(spec, identifiability=opts))
    m = res.metrics()
    assert m["identifiability_width_degree_q1"] > 0 and m["identifiability_unseen_degree_q1"] > 0
    assert m["error_energy_norm"] == plain.metrics()["error_energy_norm"]
    direct = experiment_metrics(model, res, ref, **opts)
    assert direct == res.identifiability
    with pytest.raises(InputError, match="R factor"):
        experiment_metrics(LinearACE(SPEC.ace_spec(2), model.coef_), res, ref)


@pytest.mark.slow
@pytest.mark.parametrize("dim, n_min", [(2, 6), (3, 3)])
def test_width_study_quick_mode_runs_and_reports_every_group(tmp_path, dim, n_min):
    """studies/identifiability_width.py --quick (d = 2: a few minutes; d = 3: ~3 min CPU):
    every (noise, set, defect, prior) gets a fit entry whose range holds only cells at least
    2·r_cut wide, every width is finite, and the stored tables are the rows' tables."""
    import json

    mod = load_study("identifiability_width")
    out_file = tmp_path / "w.json"
    assert mod.main(["--quick", "--dim", str(dim), "--noise", "0", "--noise", "1e-4", "--json", str(out_file)]) == 0
    out = json.loads(out_file.read_text())
    assert len(out["fits"]) == 2 * len(mod.SETS) * 2 * len(PRIORS)
    assert all(np.isfinite(r["width"]) and r["width"] >= 0 for r in out["rows"])
    # d = 2: 5.03 Å ≥ 2·2.5 Å from N = 6; d = 3: 9.5 Å ≥ 2·4.6 Å from N = 3
    assert all(n >= n_min for f in out["fits"] for n in f["fit_range"])
    assert out["M"] >= 4 * max(out["sizes"])
    assert mod.fits(out) == out["fits"]
