"""Training sets of dislocation cells (docs/dislocations.md §6): the periodic screw
quadrupole of size N through the same spec / cache / extxyz machinery as the point defects,
with strained and rattled perfect cells beside it.

What is checked: the quadrupole is a genuine +b/−b dipole that survives relaxation (its
excess energy grows with N like the two cores' elastic log term; the predictor's mean shear
stress driving glide vanishes, the quadrupolar arrangement; the relaxed cell's mean stress
falls like the cores' eigenstress over the cell's area); the group's name, sizes and refusals;
the built set's observations (E, F, V) agree with the reference, the relaxed cells are
equilibria, a rebuild does no reference work, and the extxyz reads back the groups."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genanalysis.dislocation import elastic_prelog, predictor_elastic_constants
from genanalysis.dislocation_cells import quadrupole_atoms, quadrupole_cell
from genanalysis.exceptions import InputError
from genanalysis.potentials import load_potential
from genanalysis.relaxation import relax
from genanalysis.trainingset import TrainingSetSpec, build, read_training_set
from genanalysis.trainingset.build import XYZ_NAME
from genanalysis.trainingset.spec import group_atoms, parse_group


@pytest.fixture(scope="module")
def w():
    pot = load_potential("builtin:W")
    a = float(pot.equilibrium_lattice_constant("bcc"))
    return pot, a, predictor_elastic_constants(pot, a, "W")


@pytest.fixture(scope="module")
def relaxed_quadrupoles(w):
    pot, a, C = w
    out = {}
    for n in (1, 2):
        cell = quadrupole_cell("screw", a, C, n, "W")
        out[n] = (cell, relax(cell, pot, fmax=1e-8))
    return out


def test_the_quadrupole_cell_has_the_stated_atoms_and_two_opposite_cores(w):
    _, a, C = w
    for n in (1, 2):
        cell = quadrupole_cell("screw", a, C, n, "W")
        assert len(cell) == quadrupole_atoms("screw", n) == 36 * n * n == group_atoms("bcc", "dislocation:screw", n)
        assert cell.pbc.all() and cell.info["defect"] == "dislocation:screw"
        b = np.asarray(cell.info["burgers"])
        assert np.allclose(b, [0, 0, a * math.sqrt(3) / 2], atol=1e-9)  # b = a/2 [111] along the line
        cores = np.asarray(cell.info["core_positions"])
        assert cell.info["glide_separation"] == 3 * n
        assert cores[1, 0] - cores[0, 0] == pytest.approx(3 * n * a * math.sqrt(6) / 3)
        # the cell carries the dipole's plastic distortion: b (n·v_k) d / A along the line
        v = np.asarray(cell.cell)
        assert v[0, 2] == pytest.approx(-v[1, 2]) and v[0, 2] == pytest.approx(b[2] / 2)
        d = cell.get_all_distances(mic=True)[np.triu_indices(len(cell), 1)]
        assert d.min() > 0.75 * a * math.sqrt(3) / 2  # no overlap across the periodic boundary


def test_the_relaxed_quadrupole_keeps_its_dipole(w, relaxed_quadrupoles):
    """Relaxed with builtin:W the dipole does not annihilate: the excess energy from N = 1 to
    N = 2 grows by the two cores' elastic term 2·E_log·L·ln 2 (within 25 %); the predictor's
    σ_yz (the stress that glides the screw along x) vanishes (the image stresses cancel)."""
    pot, a, C = w
    from genanalysis.defect import perfect_energy_per_atom

    e0 = perfect_energy_per_atom(pot, "bcc", a, 1, "W")
    excess, stress = {}, {}
    for n, (cell, rel) in relaxed_quadrupoles.items():
        assert rel.converged and rel.max_force <= 1e-8
        excess[n] = rel.energy - len(cell) * e0
        virial = np.asarray(pot.observe(cell).virial)  # the predictor: σ_yz (glide along x) cancels
        assert abs(virial[1, 2]) <= 1e-2 * np.abs(virial).max()  # to the image sum's 1e-3 Å
        stress[n] = np.abs(np.asarray(pot.observe(rel.atoms).virial)).max() / abs(np.linalg.det(cell.cell))
    assert stress[2] < 0.5 * stress[1]  # what remains is the cores' own eigenstress, ∝ 1/area
    assert excess[1] > 2.0  # two cores of ~0.5 eV/Å over L = 2.74 Å, and their fields
    period = float(relaxed_quadrupoles[1][0].info["period"])
    expect = 2 * elastic_prelog("screw", a, C) * period * math.log(2)
    assert excess[2] - excess[1] == pytest.approx(expect, rel=0.25)


@pytest.mark.parametrize("group, message", [
    ("dislocation:edge", "screw only"),
    ("dislocation:mixed", "screw only"),
    ("dislocation:loop", "'screw', 'edge' or 'mixed'"),
])
def test_unsupported_dislocation_groups_are_refused(group, message):
    with pytest.raises(InputError, match=message):
        TrainingSetSpec(potential="builtin:W", lattice="bcc", defects=("perfect", group), sizes=(1,))


def test_dislocation_groups_need_bcc_and_have_a_canonical_name():
    assert parse_group("bcc", "dislocation") == "dislocation:screw"
    assert parse_group("bcc", "dislocation:screw") == "dislocation:screw"
    assert parse_group("bcc", "interstitial") == "interstitial:dumbbell110"
    with pytest.raises(InputError, match="bcc lattice only"):
        TrainingSetSpec(potential="builtin:W", lattice="fcc", defects=("dislocation",), sizes=(1,))
    with pytest.raises(InputError, match="lists a group twice"):
        TrainingSetSpec(potential="builtin:W", lattice="bcc", defects=("dislocation", "dislocation:screw"))
    with pytest.raises(InputError, match="whole number"):
        quadrupole_cell("screw", 3.16, np.eye(6), 0)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("ts_disl")
    spec = TrainingSetSpec(potential="builtin:W", lattice="bcc", defects=("perfect", "dislocation"), sizes=(1, 2),
                           configs_per_size=1, rattle=0.05, strains={"amplitude": 0.01, "count": 1}, seed=2,
                           observations={"default": "EFV", "perfect": "EFV"}, fmax=1e-9)
    summary = build(spec, out, workers=1)
    return spec, out, summary, read_training_set(out)


def test_the_set_holds_quadrupoles_and_strained_rattled_perfect_cells(built, w):
    pot = w[0]
    spec, out, summary, configs = built
    assert summary.failures == [] and len(configs) == spec.n_configurations == 12
    groups = {(c.group, c.meta["size"], c.meta["kind"]) for c in configs}
    assert groups == {(g, n, k) for g in ("perfect", "dislocation:screw") for n in (1, 2)
                      for k in ("relaxed", "rattle", "strain")}
    for c in configs:
        assert c.observed == "EFV"
        obs = pot.observe(c.atoms)
        assert c.energy == pytest.approx(obs.energy, abs=1e-9)
        assert np.abs(np.asarray(c.forces) - obs.forces).max() <= 1e-9
        assert np.abs(np.asarray(c.virial) - obs.virial).max() <= 1e-8
        if c.meta["kind"] == "relaxed":
            assert np.abs(c.forces).max() <= 1e-8  # equilibria of the reference
        if c.group.startswith("dislocation"):
            assert len(c.atoms) == 36 * c.meta["size"] ** 2 and not c.meta["translation_invariant"]
    strained = [c for c in configs if c.meta["kind"] == "strain"]
    assert all(np.abs(np.asarray(c.meta["strain"])).max() <= 0.01 for c in strained)


def test_a_rebuild_reads_everything_from_the_cache(built):
    spec, out, _, _ = built
    before = (out / XYZ_NAME).read_bytes()
    again = build(spec, out, workers=1)
    assert again.evaluations["reference_calls"] == 0 and again.evaluations["relaxations_done"] == 0
    assert again.evaluations["configs_cached"] == spec.n_configurations
    assert (out / XYZ_NAME).read_bytes() == before


def _nearest_bcc_vector(d, frame, a):
    """The bcc lattice vector (cell frame, Å) nearest to ``d``."""
    v = frame.T @ d / a
    best = min((np.round(v), np.floor(v) + 0.5), key=lambda c: np.linalg.norm(c - v))
    return frame @ best * a


@settings(max_examples=8, deadline=None)
@given(which=st.sampled_from(["first", "second", "neither"]), radius=st.floats(3.0, 5.5), relaxed=st.booleans())
def test_burgers_circuits_around_each_core_of_the_quadrupole(w, relaxed_quadrupoles, which, radius, relaxed):
    """A closed circuit of atoms around a core — the lattice sites unwrapped around it plus
    each atom's displacement (minimum image in the periodic cell, so single-valued) — each
    step mapped to the nearest perfect-lattice vector, closes with a lattice vector along the
    line of length |b|, opposite around the two cores (± ``info['burgers']``), and with 0
    around a point between the dipole's images; before and after relaxation (the dipole
    survives it)."""
    from ase.geometry import find_mic

    _, a, _ = w
    cell, rel = relaxed_quadrupoles[2]
    atoms = rel.atoms if relaxed else cell
    cores = np.asarray(cell.info["core_positions"])[:, :2]
    b = np.asarray(cell.info["burgers"])
    centre = {"first": cores[0], "second": cores[1],
              "neither": 0.5 * (cores[0] + cores[1]) + np.array([0.0, 0.5 * abs(np.asarray(cell.cell)[0, 1])])}[which]
    expected = {"first": b, "second": -b, "neither": np.zeros(3)}[which]
    lattice = cell.arrays["lattice_positions"]
    bulk_cell = np.array(cell.cell)
    bulk_cell[:2, 2] = 0.0  # the perfect crystal's cell, before the plastic tilt
    around, _ = find_mic(lattice - np.array([*centre, 0.0]), bulk_cell, pbc=True)
    rho = np.linalg.norm(around[:, :2], axis=1)
    ring = np.flatnonzero(np.abs(rho - radius) < 1.0)
    ring = ring[np.argsort(np.arctan2(around[ring, 1], around[ring, 0]))]
    u, _ = find_mic(atoms.positions[ring] - lattice[ring], atoms.cell, pbc=True)
    y = around[ring] + u
    ax = np.array([[1, 1, -2], [-1, 1, 0], [1, 1, 1]], float)  # the screw's axes (docs/dislocations.md §1)
    frame = ax / np.linalg.norm(ax, axis=1)[:, None]
    total = sum(_nearest_bcc_vector(d, frame, a) for d in np.roll(y, -1, axis=0) - y)
    assert np.allclose(total, expected, atol=1e-9)
