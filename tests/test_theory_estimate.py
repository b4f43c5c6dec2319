"""The estimate (theory.estimate) and the predicted rates (theory.rates)."""

from __future__ import annotations

import math

import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from theory import tails
from theory.estimate import (
    TERMS,
    Estimate,
    a_posteriori_bound,
    effectivity,
    error_bound,
    residual_bound,
    residual_terms,
)
from theory.rates import RATES, STATUSES, get_rate, predicted

pos = st.floats(1e-3, 1e3)
nonneg = st.floats(0.0, 1e2)


def inputs():
    return st.fixed_dictionaries(
        {
            "d": st.sampled_from([2, 3]),
            "R": st.floats(2.0, 50.0),
            "c": pos,
            "eps_core": nonneg,
            "eps_fc": nonneg,
            "eps_3": nonneg,
            "eps_stress": nonneg,
            "n_stress": st.integers(0, 30),
            "decay_constant": st.floats(0.0, 10.0),
            "site_volume": st.floats(1.0, 40.0),
        }
    )


def omega(d):
    return 2 * math.pi if d == 2 else 4 * math.pi


@settings(deadline=None)
@given(inputs())
def test_point_defect_terms_match_direct_formula(kw):
    """p = d: ‖Dū‖_{ℓ²(|ℓ|>R)} = C (ω_d/(v d))^{1/2} R^{-d/2},
    ‖|Dū|²‖_{ℓ²(|ℓ|>R)} = C² (ω_d/(3 v d))^{1/2} R^{-3d/2}, (T4), (T7), (T9)."""
    est = Estimate(**kw)
    d, R, v, C = kw["d"], kw["R"], kw["site_volume"], kw["decay_constant"]
    fc = C * math.sqrt(omega(d) / (v * d)) * R ** (-d / 2)
    third = C**2 * math.sqrt(omega(d) / (v * 3 * d)) * R ** (-3 * d / 2)
    terms = est.terms()
    assert tuple(terms) == TERMS
    assert terms["core"] == pytest.approx(kw["eps_core"])
    assert terms["lattice_stress"] == pytest.approx(kw["eps_stress"] * math.sqrt(kw["n_stress"]))
    assert terms["force_constants"] == pytest.approx(kw["eps_fc"] * fc, rel=1e-9, abs=1e-300)
    assert terms["third_order"] == pytest.approx(kw["eps_3"] * third, rel=1e-9, abs=1e-300)
    assert est.residual() == pytest.approx(sum(terms.values()))
    assert est.error_bound() == pytest.approx(2 * est.residual() / kw["c"])


@settings(deadline=None)
@given(inputs(), st.floats(1.1, 10.0))
def test_far_field_terms_scale_with_predicted_rates(kw, factor):
    kw = dict(kw, eps_fc=1.0, eps_3=1.0, decay_constant=1.0)
    a, b = Estimate(**kw), Estimate(**dict(kw, R=kw["R"] * factor))
    d = kw["d"]
    for term, rate in (("force_constants", "far_field_force_constants"),
                       ("third_order", "far_field_third_order")):
        ratio = b.terms()[term] / a.terms()[term]
        assert ratio == pytest.approx(factor ** predicted(rate, d), rel=1e-9)


@settings(deadline=None)
@given(inputs(), st.floats(0.0, 5.0))
def test_terms_are_linear_in_the_errors(kw, scale):
    a = Estimate(**kw)
    b = Estimate(**dict(kw, eps_core=scale * kw["eps_core"], eps_fc=scale * kw["eps_fc"],
                        eps_3=scale * kw["eps_3"], eps_stress=scale * kw["eps_stress"]))
    assert b.residual() == pytest.approx(scale * a.residual(), rel=1e-9, abs=1e-12)


@settings(deadline=None)
@given(inputs(), st.floats(0.0, 10.0), st.floats(0.0, 10.0))
def test_measured_tails_replace_the_decay_model(kw, tail_fc, tail_3):
    est = Estimate(**kw, tail_fc=tail_fc, tail_3=tail_3)
    assert est.terms()["force_constants"] == pytest.approx(kw["eps_fc"] * tail_fc)
    assert est.terms()["third_order"] == pytest.approx(kw["eps_3"] * tail_3)


def test_symbolic_terms_evaluate_to_the_numeric_estimate():
    kw = dict(d=3, R=7.0, c=1.7, eps_core=0.03, eps_fc=0.2, eps_3=0.5, eps_stress=0.01,
              n_stress=8, decay_constant=2.0, site_volume=15.7)
    est = Estimate(**kw)
    from theory import estimate as E

    values = {E.eps_core: 0.03, E.eps_fc: 0.2, E.eps_3: 0.5, E.eps_sigma: 0.01,
              E.n_sigma: 8, E.c: 1.7, tails.C: 2.0, tails.R: 7.0, tails.v: 15.7, tails.d: 3}
    assert float(error_bound().subs(values)) == pytest.approx(est.error_bound(), rel=1e-12)
    assert float(residual_bound(3).subs(values)) == pytest.approx(est.residual(), rel=1e-12)
    assert set(residual_terms()) == set(TERMS)


@settings(deadline=None)
@given(st.floats(5.0, 20.0), st.floats(2.0, 1e4))
def test_dislocation_force_constant_term_grows_like_sqrt_log_domain(R, stretch):
    base = dict(d=2, R=R, c=1.0, eps_core=0.0, eps_fc=1.0, decay_exponent=1.0,
                site_volume=2.0, decay_constant=1.0)
    L1, L2 = 2 * R, 2 * R * stretch
    t1 = Estimate(**base, domain_radius=L1).terms()["force_constants"]
    t2 = Estimate(**base, domain_radius=L2).terms()["force_constants"]
    assert t2 / t1 == pytest.approx(math.sqrt(math.log(L2 / R) / math.log(L1 / R)), rel=1e-9)
    with pytest.raises(tails.DivergentTailError, match="domain_radius"):
        Estimate(**base)


@settings(deadline=None)
@given(st.floats(1e-6, 1e2), st.floats(1e-3, 1e3))
def test_a_posteriori_bound_has_effectivity_two(residual, c):
    bound = a_posteriori_bound(residual, c)
    assert effectivity(bound, residual, c) == pytest.approx(2.0)
    assert effectivity(bound / 4, residual, c) == pytest.approx(0.5)


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(d=4), "d=4"),
        (dict(R=-1.0), "R=-1.0"),
        (dict(c=0.0), "c=0.0"),
        (dict(eps_fc=-0.1), "eps_fc=-0.1"),
        (dict(site_volume=float("nan")), "site_volume"),
        (dict(domain_radius=3.0), "domain_radius L=3.0"),
    ],
)
def test_bad_estimate_input_names_the_value(kw, match):
    base = dict(d=3, R=5.0, c=1.0, eps_core=0.1)
    with pytest.raises(ValueError, match=match):
        Estimate(**{**base, **kw})


# --- rates ---------------------------------------------------------------------------------

#: exponents as stated in the mathematical brief; the code derives them from the tail sums
STATED = {
    "decay_point_defect": -tails.d,
    "supercell_geometry": -tails.d / 2,
    "supercell_energy": -tails.d,
    "far_field_force_constants": -tails.d / 2,
    "far_field_third_order": -3 * tails.d / 2,
}


def test_derived_exponents_equal_the_stated_ones():
    for name, expr in STATED.items():
        assert sp.simplify(RATES[name].exponent - expr) == 0, name


def test_rate_records_are_complete():
    for name in [*STATED, "training_size_E", "training_size_EF", "training_size_EFV",
                 "training_size_EFH", "training_size_EFVH"]:
        rate = get_rate(name)
        assert rate.status in STATUSES and rate.assumptions
        assert rate.exponent.free_symbols <= {tails.d}
    for name, rate in RATES.items():
        if name.startswith("training_size_"):
            assert rate.status == "hypothesis" and rate.sense == "up_to" and rate.floor
        if name.endswith("_dislocation"):
            assert rate.dims == (2,)
            with pytest.raises(ValueError, match="d=3"):
                rate.value(3)


@settings(deadline=None)
@given(st.sampled_from(sorted(RATES)), st.sampled_from([2, 3]))
def test_predicted_is_the_exponent_at_d(name, d):
    rate = RATES[name]
    if d in rate.dims:
        assert predicted(name, d) == float(rate.exponent.subs(tails.d, d))
    else:
        with pytest.raises(ValueError):
            predicted(name, d)


def test_predicted_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown rate 'nope'"):
        predicted("nope", 3)
    with pytest.raises(ValueError, match="d=1"):
        predicted("decay_point_defect", 1)


@settings(deadline=None)
@given(d=st.sampled_from([2, 3]), excess=st.floats(0.1, 4.0), R=st.floats(2.0, 50.0),
       factor=st.floats(1.1, 10.0))
def test_general_decay_exponent_sets_the_far_field_rate(d, excess, R, factor):
    """|Dū| ≤ C|ℓ|^{-p} with 2p > d: force-constant term ∝ R^{d/2 − p} (T7)."""
    p = (d + excess) / 2
    base = dict(d=d, c=1.0, eps_core=0.0, eps_fc=1.0, decay_exponent=p)
    ratio = (Estimate(R=R * factor, **base).terms()["force_constants"]
             / Estimate(R=R, **base).terms()["force_constants"])
    assert ratio == pytest.approx(factor ** (d / 2 - p), rel=1e-6)
