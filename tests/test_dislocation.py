"""Straight dislocations in bcc W (genanalysis.dislocation): the predictor carries the
Burgers vector, the clamped shell never moves, the norms do not see a translation along the
line. Cylinders are small (free radius 6–9 Å, a few hundred atoms)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genanalysis.defect import relax
from genanalysis.dislocation import (KINDS, cylinder, cylinder_atoms, distances_from_line, elastic_prelog, predictor,
                                     predictor_elastic_constants, relax_cylinder)
from genanalysis.exceptions import InputError
from genanalysis.norms import dual_norm, energy_norm, stencil
from genanalysis.potentials import load_potential

W = load_potential("builtin:W")
A = W.equilibrium_lattice_constant("bcc")
C_W = predictor_elastic_constants(W, A, "W")
FAST = settings(max_examples=8, deadline=None)
KIND = st.sampled_from(sorted(KINDS))


def _cyl(kind, radius=7.0):
    return cylinder_atoms(kind, radius, A, C_W, clamp_width=2.0 * W.cutoff, symbol="W")


def _nearest_bcc_vector(d_cell, frame):
    """The bcc lattice vector (cell frame, Å) nearest to ``d_cell``."""
    v = frame.T @ d_cell / A  # cubic coordinates in units of a
    cands = [np.round(v), np.floor(v) + 0.5]
    best = min(cands, key=lambda c: np.linalg.norm(c - v))
    return frame @ best * A


def _frame(atoms):
    ax = np.asarray(atoms.info["axes"], float)
    return ax / np.linalg.norm(ax, axis=1)[:, None]


# ------------------------------------------------------------------ the predictor carries b


@FAST
@given(kind=KIND, r=st.floats(0.5, 50.0), eps=st.floats(1e-9, 1e-6))
def test_predictor_jumps_by_the_burgers_vector_across_the_cut(kind, r, eps):
    p = predictor(kind, A, C_W)
    above = p.displacement([[r * np.cos(np.pi - eps), r * np.sin(np.pi - eps), 0.0]])[0]
    below = p.displacement([[r * np.cos(-np.pi + eps), r * np.sin(-np.pi + eps), 0.0]])[0]
    assert np.allclose(above - below, p.burgers, atol=1e-5 * np.linalg.norm(p.burgers))
    assert np.linalg.norm(p.burgers) == pytest.approx(A * np.sqrt(3.0) / 2.0, rel=1e-12)


@FAST
@given(kind=KIND, r=st.floats(1.0, 30.0), centre=st.tuples(st.floats(-0.6, 0.6), st.floats(-0.6, 0.6)))
def test_gradient_circulation_is_b_around_the_line_and_zero_elsewhere(kind, r, centre):
    """∮ ∇u · dl over a circle = b if it encloses the line, 0 if not (the gradient is
    single-valued; the displacement is not)."""
    p = predictor(kind, A, C_W)
    m = 4000
    th = 2.0 * np.pi * (np.arange(m) + 0.5) / m
    for c, expected in (((centre[0] * r, centre[1] * r), p.burgers),  # encloses the line
                        ((3.0 * r, 0.0), np.zeros(3))):  # does not
        pts = np.column_stack([c[0] + r * np.cos(th), c[1] + r * np.sin(th), np.zeros(m)])
        dl = np.column_stack([-np.sin(th), np.cos(th), np.zeros(m)]) * (2.0 * np.pi * r / m)
        circ = np.einsum("pij,pj->i", p.gradient(pts), dl)
        assert np.allclose(circ, expected, atol=2e-3 * np.linalg.norm(p.burgers))


@FAST
@given(kind=KIND, r0=st.floats(3.5, 11.0))
def test_burgers_circuit_on_the_built_cylinder(kind, r0):
    """A closed circuit of atoms around the line in the predicted crystal, each step mapped
    to the nearest perfect-lattice vector: the steps add up to −b exactly (a lattice vector:
    the closure failure of the counter-clockwise circuit about +z, the lattice part of
    Σ(y_{k+1} − y_k) = 0 balancing the elastic part ∮ ∇û·dl = b), and to zero for a circuit
    that does not enclose the line."""
    atoms = _cyl(kind, 9.0)
    frame = _frame(atoms)
    b = np.asarray(atoms.info["burgers"])
    core = np.asarray(atoms.info["core"])
    for centre, expected, radius in ((core, -b, r0), (core + np.array([r0 + 1.5, 0.0]), np.zeros(3), 1.2)):
        rel = atoms.arrays["lattice_positions"][:, :2] - centre
        rho = np.linalg.norm(rel, axis=1)
        ring = np.flatnonzero(np.abs(rho - radius) < 1.0)
        ring = ring[np.argsort(np.arctan2(rel[ring, 1], rel[ring, 0]))]
        y = atoms.positions[ring]
        steps = np.roll(y, -1, axis=0) - y
        total = sum(_nearest_bcc_vector(d, frame) for d in steps)
        assert np.allclose(total, expected, atol=1e-9)


def test_the_three_kinds_and_their_burgers_vectors():
    for kind, angle in (("screw", 0.0), ("edge", 90.0), ("mixed", np.degrees(np.arccos(1.0 / 3.0)))):
        atoms = _cyl(kind)
        b = np.asarray(atoms.info["burgers"])
        assert np.linalg.norm(b) == pytest.approx(A * np.sqrt(3.0) / 2.0)
        assert np.degrees(np.arccos(abs(b[2]) / np.linalg.norm(b))) == pytest.approx(angle, abs=1e-9)
        assert tuple(atoms.pbc) == (False, False, True)
        rho = distances_from_line(atoms)
        assert np.array_equal(atoms.arrays["clamped"], rho >= 7.0)
        assert rho.max() < 7.0 + 2.0 * W.cutoff


def test_prelog_matches_isotropic_elasticity():
    """A nearly isotropic C (C44 = (1 + 1e-5)(C11 − C12)/2; the Stroh solution is
    degenerate at exact isotropy): E_log = μb²/4π (screw), μb²/(4π(1−ν)) (edge),
    (μb²/4π)(cos²θ + sin²θ/(1−ν)) (mixed, θ the angle between b and the line), to the
    O(1e-5) anisotropy."""
    lam, mu = 1.2, 0.8
    C = np.zeros((6, 6))
    C[:3, :3] = lam
    C[np.arange(3), np.arange(3)] = lam + 2 * mu
    C[np.arange(3, 6), np.arange(3, 6)] = mu * (1 + 1e-5)
    nu = lam / (2 * (lam + mu))
    b2 = 0.75 * A ** 2
    assert elastic_prelog("screw", A, C) == pytest.approx(mu * b2 / (4 * np.pi), rel=2e-5)
    assert elastic_prelog("edge", A, C) == pytest.approx(mu * b2 / (4 * np.pi * (1 - nu)), rel=2e-5)
    c2 = 1.0 / 9.0
    assert elastic_prelog("mixed", A, C) == pytest.approx(mu * b2 / (4 * np.pi) * (c2 + (1 - c2) / (1 - nu)), rel=2e-5)
    C[np.arange(3, 6), np.arange(3, 6)] = mu  # exactly isotropic: refused, not garbage
    with pytest.raises(InputError, match="isotropic"):
        elastic_prelog("screw", A, C)


def test_elastic_constants_from_either_potential():
    """The predictor takes the elastic constants of the potential it is given: a softer
    potential (a surrogate) gives another field, the same geometry otherwise."""
    soft = load_potential("surrogate:builtin:W?family=bond_stiffness&eta=0.2", lattice="bcc", a=A)
    own = cylinder(W, "edge", 6.0)
    other = cylinder(W, "edge", 6.0, elastic=soft)
    assert len(own) == len(other) and np.array_equal(own.arrays["clamped"], other.arrays["clamped"])
    assert not np.allclose(own.info["elastic_constants"], other.info["elastic_constants"])
    assert np.abs(own.positions - other.positions).max() > 1e-4


@pytest.mark.parametrize("args, words", [
    (dict(kind="loop", radius=6.0), "'screw', 'edge' or 'mixed'"),
    (dict(kind="screw", radius=-1.0), "radius=-1.0"),
    (dict(kind="screw", radius=6.0, clamp_width=2.0), "narrower than the interaction range"),
])
def test_bad_cylinders_are_refused(args, words):
    with pytest.raises(InputError, match=words):
        cylinder(W, **args)


# ------------------------------------------------------------------ the clamped shell never moves


@FAST
@given(kind=KIND, seed=st.integers(0, 2**31 - 1), amplitude=st.floats(0.0, 0.05))
def test_the_clamped_region_never_moves(kind, seed, amplitude):
    atoms = _cyl(kind, 6.0)
    clamped = atoms.arrays["clamped"]
    start = atoms.copy()
    rng = np.random.default_rng(seed)
    start.positions[~clamped] += amplitude * rng.standard_normal(((~clamped).sum(), 3))
    rel = relax_cylinder(start, W, fmax=1e-8)
    assert rel.converged and rel.max_force <= 1e-8
    assert np.array_equal(rel.atoms.positions[clamped], start.positions[clamped])
    # and the free atoms are at rest: forces on them below fmax, on the shell not (it is held)
    f = W.observe(rel.atoms).forces
    assert np.linalg.norm(f[~clamped], axis=1).max() <= 1e-8
    assert np.linalg.norm(f[clamped], axis=1).max() > 1e-4


def test_relax_reads_the_clamped_mask_and_checks_it():
    atoms = _cyl("screw", 6.0)
    rel = relax(atoms, W)  # arrays['clamped'] is honoured without being passed
    assert rel.converged
    assert np.array_equal(rel.atoms.positions[atoms.arrays["clamped"]], atoms.positions[atoms.arrays["clamped"]])
    with pytest.raises(InputError, match="boolean mask"):
        relax(atoms, W, fixed=np.ones(3, bool))
    with pytest.raises(InputError, match="every atom is clamped"):
        relax(atoms, W, fixed=np.ones(len(atoms), bool))


# ------------------------------------------------------------------ norms and translations along the line


@FAST
@given(kind=KIND, t=st.floats(-20.0, 20.0), seed=st.integers(0, 2**31 - 1))
def test_norms_invariant_under_translation_along_the_line(kind, t, seed):
    """Shifting the cylinder along its (periodic) line and wrapping changes no norm: the
    residual ‖f(û)‖₋₁ of the predictor, and the energy and dual norms of any field."""
    atoms = _cyl(kind, 6.0)
    moved = atoms.copy()
    moved.positions[:, 2] += t
    moved.arrays["lattice_positions"][:, 2] += t
    moved.wrap()
    rng = np.random.default_rng(seed)
    u = rng.standard_normal((len(atoms), 3)) * ~atoms.arrays["clamped"][:, None]
    g = rng.standard_normal((len(atoms), 3))
    s0, s1 = stencil(atoms), stencil(moved)
    assert s0.free is not None and np.array_equal(s0.free, s1.free)
    f0, f1 = W.observe(atoms).forces, W.observe(moved).forces
    assert np.allclose(f0, f1, atol=1e-10)
    assert dual_norm(f1, s1) == pytest.approx(dual_norm(f0, s0), rel=1e-9)
    assert dual_norm(f0, s0) > 1e-3  # the predictor is not an equilibrium
    assert energy_norm(u, s1) == pytest.approx(energy_norm(u, s0), rel=1e-12)
    assert dual_norm(g, s1) == pytest.approx(dual_norm(g, s0), rel=1e-9)


def test_dual_norm_on_the_free_region_is_the_dual_of_the_energy_norm():
    """‖f‖₋₁ = sup ⟨f, v⟩/‖Dv‖ over fields vanishing on the clamped atoms: attained at
    v = L_FF⁻¹ f, and no random admissible v exceeds it."""
    import scipy.sparse.linalg as spla

    atoms = _cyl("edge", 6.0)
    st_ = stencil(atoms)
    free = st_.free
    rng = np.random.default_rng(1)
    f = rng.standard_normal((len(atoms), 3))
    lap = st_.laplacian()[free][:, free]
    v = np.zeros_like(f)
    v[free] = np.column_stack([spla.spsolve(lap.tocsc(), f[free, c]) for c in range(3)])
    dn = dual_norm(f, st_)
    assert np.sum(f * v) / energy_norm(v, st_) == pytest.approx(dn, rel=1e-8)
    for _ in range(20):
        w = rng.standard_normal(f.shape) * free[:, None]
        assert np.sum(f * w) / energy_norm(w, st_) <= dn * (1 + 1e-12)


def test_stability_on_the_free_atoms_dense_and_iterative_agree():
    from genanalysis.defect import stability_constant

    atoms = _cyl("mixed", 6.0)
    rel = relax_cylinder(atoms, W)
    dense = stability_constant(rel.atoms, W, atoms)
    iterative = stability_constant(rel.atoms, W, atoms, dense_limit=10, tol=1e-9)
    assert dense > 0
    assert iterative == pytest.approx(dense, rel=1e-4)
    # clamping more atoms only raises the constant (a smaller admissible space)
    more = atoms.arrays["clamped"] | (distances_from_line(atoms) > 4.0)
    assert stability_constant(rel.atoms, W, atoms, fixed=more) >= dense * (1 - 1e-10)
