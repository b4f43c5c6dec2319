"""Surrogates V + ηW: each family's property at the perfect lattice, proved on the engine's
exact energies, virials and Hessians; derivatives of the perturbation functions; specs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ase.neighborlist import neighbor_list
from hypothesis import given, settings
from hypothesis import strategies as st

from genanalysis.exceptions import InputError
from genanalysis.lattice import defect_cell, nearest_neighbour_distance, perfect_cell
from genanalysis.potentials import load_potential
from genanalysis.surrogates import (
    FAMILIES, AuxiliaryDensity, DensityBand, DensityQuadratic, ShellBump, make_surrogate, parse_surrogate_spec,
    surrogate_from_spec,
)

CASES = [("builtin:W", "bcc", "W"), ("builtin:morse", "triangular", "X")]


def _a(base, lattice):
    return load_potential(base).equilibrium_lattice_constant(lattice)


def _strained(cell, eps, dim):
    e = np.zeros((3, 3))
    e[:dim, :dim] = eps[:dim, :dim]
    e = 0.5 * (e + e.T)
    f = np.eye(3) + e
    out = cell.copy()
    out.set_cell(np.array(cell.cell) @ f.T, scale_atoms=False)
    out.positions = cell.positions @ f.T
    return out


@pytest.mark.parametrize("base,lattice,sym", CASES)
@settings(max_examples=8, deadline=None)
@given(eta=st.floats(-1.0, 1.0), strain=st.lists(st.floats(-2e-3, 2e-3), min_size=9, max_size=9),
       seed=st.integers(0, 10**6))
def test_core_family_is_exactly_the_reference_near_the_lattice(base, lattice, sym, eta, strain, seed):
    """W vanishes identically while every site density is within δ = 1 % of ρ₀: small strains
    and rattles of the perfect lattice see the reference's energy, forces, virial, Hessian."""
    a = _a(base, lattice)
    ref = load_potential(base)
    sur = make_surrogate(base, "core", eta, lattice=lattice, a=a)
    cell = perfect_cell(lattice, a, 3, sym)
    dim = cell.info["dim"]
    cell = _strained(cell, np.reshape(strain, (3, 3)), dim)
    rng = np.random.default_rng(seed)
    cell.positions[:, :dim] += 1e-3 * rng.uniform(-1, 1, (len(cell), dim))
    # both start from a fresh neighbour list at this cell: a list drawn at an earlier
    # configuration of the shared reference orders its pairs differently (last-digit sums)
    ref.clear_caches()
    sur.clear_caches()
    e_r, e_s = ref.observe(cell), sur.observe(cell)
    assert e_s.energy == e_r.energy
    assert np.array_equal(e_s.forces, e_r.forces)
    assert np.array_equal(e_s.virial, e_r.virial)
    assert abs(sur.hessian(cell) - ref.hessian(cell)).max() == 0.0


@pytest.mark.parametrize("base,lattice,sym", CASES)
def test_core_family_acts_in_the_core(base, lattice, sym):
    a = _a(base, lattice)
    cell = defect_cell(lattice, a, 4, "vacancy", sym)
    sur = make_surrogate(base, "core", 1e-2, lattice=lattice, a=a)
    df = sur.observe(cell).forces - load_potential(base).observe(cell).forces
    assert np.abs(df).max() > 1e-6


def _bond_pattern(cell, r1, block):
    """Σ over ordered first-shell pairs (i, j) of −block(e) on (i, j) and +block(e) on (i, i):
    the Hessian pattern of one bond term per bond, a dense (3n, 3n) matrix."""
    i, j, D = neighbor_list("ijD", cell, 1.01 * r1)
    n = len(cell)
    e = D / np.linalg.norm(D, axis=1)[:, None]
    K = np.array([block(v) for v in e])
    H = np.zeros((n, 3, n, 3))
    for k in range(len(i)):  # small test cells: clarity over speed
        H[i[k], :, j[k], :] -= K[k]
        H[i[k], :, i[k], :] += K[k]
    return H.reshape(3 * n, 3 * n), i, j, D


@pytest.mark.parametrize("base,lattice,sym", CASES)
@settings(max_examples=5, deadline=None)
@given(eta=st.floats(-0.5, 0.5).filter(lambda x: abs(x) > 1e-3))
def test_bond_stiffness_family_changes_force_constants_not_stress(base, lattice, sym, eta):
    """ΔH = ηκ Σ_bonds e⊗e (first shell), virial and energy unchanged."""
    a = _a(base, lattice)
    ref = load_potential(base)
    sur = make_surrogate(base, "bond_stiffness", eta, lattice=lattice, a=a)
    cell = perfect_cell(lattice, a, 3, sym)
    r1 = nearest_neighbour_distance(lattice, a)
    e_r, e_s = ref.observe(cell), sur.observe(cell)
    assert e_s.energy == pytest.approx(e_r.energy, abs=1e-12 * len(cell))
    assert np.abs(e_s.virial - e_r.virial).max() < 1e-11 * len(cell)
    expected, *_ = _bond_pattern(cell, r1, lambda v: eta * np.outer(v, v))
    dh = (sur.hessian(cell) - ref.hessian(cell)).toarray()
    assert np.abs(dh - expected).max() < 1e-9
    assert np.abs(dh).max() > 0.1 * abs(eta)


@pytest.mark.parametrize("base,lattice,sym", CASES)
@settings(max_examples=5, deadline=None)
@given(eta=st.floats(-0.5, 0.5).filter(lambda x: abs(x) > 1e-3))
def test_stress_family_changes_stress_and_only_the_geometric_force_constants(base, lattice, sym, eta):
    """Δvirial = −ητ Σ_bonds R⊗R/r₁; ΔH = (ητ/r₁) Σ_bonds (I − e⊗e): the radial stiffness is untouched."""
    a = _a(base, lattice)
    ref = load_potential(base)
    sur = make_surrogate(base, "stress", eta, lattice=lattice, a=a)
    cell = perfect_cell(lattice, a, 3, sym)
    r1 = nearest_neighbour_distance(lattice, a)
    expected, i, j, D = _bond_pattern(cell, r1, lambda v: eta / r1 * (np.eye(3) - np.outer(v, v)))
    dh = (sur.hessian(cell) - ref.hessian(cell)).toarray()
    assert np.abs(dh - expected).max() < 1e-9
    e_r, e_s = ref.observe(cell), sur.observe(cell)
    assert e_s.energy == pytest.approx(e_r.energy, abs=1e-12 * len(cell))
    dv_expected = -0.5 * eta * (D.T @ D) / r1
    assert np.abs((e_s.virial - e_r.virial) - dv_expected).max() < 1e-9 * len(cell)
    assert np.abs(dv_expected).max() > 0.1 * abs(eta)


@pytest.mark.parametrize("base,lattice,sym", CASES)
@settings(max_examples=5, deadline=None)
@given(eta=st.floats(-0.5, 0.5).filter(lambda x: abs(x) > 1e-3))
def test_force_constants_family_changes_force_constants_not_stress(base, lattice, sym, eta):
    a = _a(base, lattice)
    ref = load_potential(base)
    sur = make_surrogate(base, "force_constants", eta, lattice=lattice, a=a)
    cell = perfect_cell(lattice, a, 3, sym)
    e_r, e_s = ref.observe(cell), sur.observe(cell)
    # g(ρ₀) = g'(ρ₀) = 0: only the round-off of ρ − ρ₀ (~1e-15 relative) is left
    assert e_s.energy == pytest.approx(e_r.energy, abs=1e-12 * len(cell))
    assert np.abs(e_s.virial - e_r.virial).max() < 1e-11 * len(cell)
    dh = (sur.hessian(cell) - ref.hessian(cell)).toarray()
    # ΔH = ηE₀ g''(ρ₀) ∇ρ∇ρᵀ: positive semi-definite times η, rank ≤ n, non-zero
    w = np.linalg.eigvalsh(np.sign(eta) * dh)
    assert w.min() > -1e-10 * np.abs(w).max()
    assert np.abs(dh).max() > 1e-4 * abs(eta)


@settings(max_examples=40, deadline=None)
@given(x=st.floats(0.0, 1.0), which=st.integers(0, 4))
def test_perturbation_functions_derivatives_match_finite_differences(x, which):
    fns = [
        (ShellBump(2.0, 0.1, 0.3, 2), 1.6 + 0.8 * x),
        (ShellBump(2.0, 0.1, 0.3, 1), 1.6 + 0.8 * x),
        (DensityBand(10.0, 0.05), 8.0 + 4.0 * x),
        (DensityQuadratic(10.0, 0.05, 0.1), 8.0 + 4.0 * x),
        (AuxiliaryDensity(1.0, 3.0, 2.0, 2.5), 0.7 + 2.0 * x),
    ]
    fn, r = fns[which]
    h = 1e-5
    v, d1, d2 = (float(np.asarray(t)) for t in fn(np.array(r), 2))
    p, m = fn(np.array(r + h), 1), fn(np.array(r - h), 1)
    assert d1 == pytest.approx((float(p[0]) - float(m[0])) / (2 * h), abs=1e-6 * (1 + abs(d1)))
    assert d2 == pytest.approx((float(p[1]) - float(m[1])) / (2 * h), abs=1e-5 * (1 + abs(d2)))


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_surrogate_forces_are_minus_the_energy_gradient(family):
    a = _a("builtin:morse", "triangular")
    sur = make_surrogate("builtin:morse", family, 0.3, lattice="triangular", a=a)
    cell = defect_cell("triangular", a, 4, "interstitial")
    rng = np.random.default_rng(1)
    cell.positions[:, :2] += 0.03 * rng.standard_normal((len(cell), 2))
    f = sur.observe(cell).forces
    h = 1e-5
    for k in rng.choice(len(cell), 4, replace=False):
        for c in range(2):
            p, m = cell.copy(), cell.copy()
            p.positions[k, c] += h
            m.positions[k, c] -= h
            fd = -(sur.observe(p).energy - sur.observe(m).energy) / (2 * h)
            assert f[k, c] == pytest.approx(fd, abs=1e-6)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_zero_eta_is_the_reference(family):
    a = _a("builtin:W", "bcc")
    sur = make_surrogate("builtin:W", family, 0.0, lattice="bcc", a=a)
    cell = defect_cell("bcc", a, 3, "interstitial", "W")
    ref = load_potential("builtin:W")
    assert np.array_equal(sur.observe(cell).forces, ref.observe(cell).forces)


@settings(max_examples=30, deadline=None)
@given(family=st.sampled_from(sorted(FAMILIES)), eta=st.floats(-10, 10, allow_nan=False),
       scale=st.one_of(st.none(), st.floats(0.1, 10)), lattice=st.sampled_from([None, "bcc"]))
def test_spec_round_trip(family, eta, scale, lattice):
    q = f"family={family}&eta={eta!r}" + (f"&scale={scale!r}" if scale is not None else "") + (
        f"&lattice={lattice}" if lattice else "")
    spec = parse_surrogate_spec(f"surrogate:builtin:W?{q}")
    assert (spec.family, spec.eta, spec.scale, spec.lattice) == (family, eta, scale, lattice)
    assert parse_surrogate_spec(str(spec)) == spec


@pytest.mark.parametrize("bad", [
    "surrogate:builtin:W", "surrogate:builtin:W?eta=1", "surrogate:builtin:W?family=core",
    "surrogate:builtin:W?family=nope&eta=1", "surrogate:builtin:W?family=core&eta=x",
    "surrogate:builtin:W?family=core&eta=1&colour=red", "surrogate:builtin:W?family=core&eta=1&width=2",
    "surrogate:builtin:W?family=core&eta=nan",
])
def test_bad_specs_are_input_errors(bad):
    with pytest.raises(InputError):
        surrogate_from_spec(bad, lattice="bcc")


def test_spec_needs_a_lattice_and_an_eam_base():
    with pytest.raises(InputError, match="lattice"):
        surrogate_from_spec("surrogate:builtin:W?family=core&eta=1")
    from ase.calculators.emt import EMT

    with pytest.raises(InputError, match="EAM or pair"):
        make_surrogate(EMT(), "core", 1.0, lattice="bcc", a=3.0)
    s = surrogate_from_spec("surrogate:builtin:W?family=fc&eta=0.5", lattice="bcc")
    assert s.family == "force_constants" and s.a == pytest.approx(_a("builtin:W", "bcc"))
    assert math.isfinite(s.anchor)
