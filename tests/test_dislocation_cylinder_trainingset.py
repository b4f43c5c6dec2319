"""Training sets of clamped dislocation cylinders (docs/trainingset.md, docs/dislocations.md §6):
the screw, edge and mixed cylinders of free radius R_N = 2 N a in a clamped shell twice the
reference's cutoff wide, relaxed with the reference, observing the forces (and force-constant
rows) of their free atoms only, through the same spec / cache / extxyz machinery.

What is checked: the group names and their refusals (E or V of a cylinder, another lattice,
an unknown kind); the built cells' geometry (radius tied to N, shell width); the clamped atoms
carry zero weights, so no force or force-constant rows of theirs enter the loss, even with
per-atom weights switched off; the free atoms of the relaxed cells are equilibria of the
reference while the clamped ones are not (the free surface a bulk fit must not see); the
extxyz round trip; a rebuild does no reference work; a fit runs and ignores the clamped
atoms' forces exactly."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from genanalysis.data import Configuration
from genanalysis.exceptions import InputError
from genanalysis.fit import LossWeights, ModelSpec, fit_linear, fit_report
from genanalysis.fitting.loss import terms
from genanalysis.potentials import load_potential
from genanalysis.trainingset import TrainingSetSpec, build, read_training_set
from genanalysis.trainingset.build import XYZ_NAME
from genanalysis.trainingset.io import read_extxyz, write_extxyz
from genanalysis.trainingset.spec import parse_group

CYLINDERS = ("dislocation-cylinder:screw", "dislocation-cylinder:edge", "dislocation-cylinder:mixed")


def _spec(**kw):
    base = dict(potential="builtin:W", lattice="bcc", defects=("perfect", *CYLINDERS), sizes=(1,))
    return TrainingSetSpec(**{**base, **kw})


def test_cylinder_groups_have_canonical_names_and_observe_forces_by_default():
    assert parse_group("bcc", "dislocation-cylinder") == "dislocation-cylinder:screw"
    for g in CYLINDERS:
        assert parse_group("bcc", g) == g
    spec = _spec()
    assert dict(spec.observations) == {"perfect": "EF", **{g: "F" for g in CYLINDERS}}
    spec = _spec(observations={"default": "EFV", "dislocation-cylinder": "FH"})
    assert dict(spec.observations) == {"perfect": "EFV", **{g: "FH" for g in CYLINDERS}}


@pytest.mark.parametrize("observations, message", [
    ("EF", r"energy \(E\) is not that of a bulk cell"),
    ({"dislocation-cylinder": "F", "dislocation-cylinder:edge": "FV"}, r"edge = 'FV'.*virial \(V\) is not"),
    ({"default": "EFV"}, r"energy \(E\) and virial \(V\) are not.*accepts a subset of 'FH'"),
])
def test_energy_or_virial_of_a_cylinder_is_refused(observations, message):
    with pytest.raises(InputError, match=message):
        _spec(observations=observations)


def test_cylinders_need_bcc_and_a_known_kind():
    with pytest.raises(InputError, match="bcc lattice only"):
        TrainingSetSpec(potential="builtin:W", lattice="fcc", defects=("dislocation-cylinder:edge",), sizes=(1,))
    with pytest.raises(InputError, match="'screw', 'edge' or 'mixed'"):
        _spec(defects=("dislocation-cylinder:loop",))
    with pytest.raises(InputError, match="lists a group twice"):
        _spec(defects=("dislocation-cylinder", "dislocation-cylinder:screw"))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("ts_cyl")
    spec = _spec(configs_per_size=1, rattle=0.03, strains={"amplitude": 0.01, "count": 1}, seed=4,
                 observations={"default": "EFV", "dislocation-cylinder": "F", "dislocation-cylinder:screw": "FH"})
    summary = build(spec, out, workers=1)
    return spec, out, summary, read_training_set(out)


def test_the_cylinders_observe_their_free_atoms_only(built):
    pot = load_potential("builtin:W")
    a = float(pot.equilibrium_lattice_constant("bcc"))
    spec, _, summary, configs = built
    assert summary.failures == [] and len(configs) == spec.n_configurations == 12
    cylinders = [c for c in configs if c.group in CYLINDERS]
    assert {(c.group, c.meta["kind"]) for c in cylinders} == {(g, k) for g in CYLINDERS
                                                              for k in ("relaxed", "rattle", "strain")}
    loss = LossWeights(E=1.0, F=1.0, V=1.0, H=1.0)
    for c in cylinders:
        clamped = np.asarray(c.atoms.arrays["clamped"], bool)
        assert c.energy is None and c.virial is None and c.observed in ("F", "FH")
        assert c.atoms.info["radius"] == pytest.approx(2 * a) and c.atoms.info["clamp_width"] == 2 * pot.cutoff
        assert 0 < (~clamped).sum() < clamped.sum()
        assert np.array_equal(c.atom_weights, np.where(clamped, 0.0, 1.0))
        assert np.abs(np.asarray(c.forces) - pot.observe(c.atoms).forces).max() <= 1e-9
        if c.meta["kind"] == "relaxed":  # the free atoms at equilibrium; the shell sees the free surface
            assert np.abs(c.forces[~clamped]).max() <= spec.fmax and np.abs(c.forces[clamped]).max() > 0.1
        # the loss has the rows of the free atoms only: 3 force rows each, 3 × 3n constants
        for t in terms(c, loss):
            rows = t.sqrt_weight.size // (1 if t.code == "F" else 3 * len(c))
            assert t.code in "FH" and rows == 3 * (~clamped).sum()
        if c.observed == "FH":
            assert {t.code for t in terms(c, loss)} == {"F", "H"}
        # with per-atom weights off the shell stays out
        assert terms(c, LossWeights(F=1.0, atom_weights=False))[0].sqrt_weight.size == 3 * (~clamped).sum()


def test_the_extxyz_round_trip_keeps_the_mask_and_a_rebuild_reads_the_cache(built, tmp_path):
    spec, out, _, configs = built
    path = write_extxyz(tmp_path / "again.xyz", configs)
    back = read_extxyz(path)
    for c, d in zip(configs, back):
        assert c.group == d.group and c.observed.replace("H", "") == d.observed  # H: in the .npz beside it
        assert np.array_equal(np.asarray(c.forces), np.asarray(d.forces))
        if c.group in CYLINDERS:
            assert np.array_equal(c.atom_weights, d.atom_weights)
            assert np.array_equal(c.atoms.arrays["clamped"], d.atoms.arrays["clamped"])
            assert tuple(d.atoms.pbc) == (False, False, True)
    before = (out / XYZ_NAME).read_bytes()
    again = build(spec, out, workers=1)
    assert again.evaluations["reference_calls"] == 0 and again.evaluations["relaxations_done"] == 0
    assert (out / XYZ_NAME).read_bytes() == before


def test_a_fit_to_the_cylinders_runs_and_ignores_the_clamped_forces(built):
    """Corrupting the clamped atoms' forces leaves the fitted coefficients bit-identical."""
    _, _, _, configs = built
    mspec = ModelSpec(cutoff=4.0, degree=4, l_max=2, r_in=2.0)
    loss = LossWeights(E=1.0, F=1.0, V=1.0)
    model, _ = fit_linear(configs, mspec, loss)
    assert np.all(np.isfinite(model.coef_))
    corrupt = []
    for c in configs:
        f = c.forces
        if c.group in CYLINDERS:
            f = np.where(np.asarray(c.atoms.arrays["clamped"], bool)[:, None], f + 7.0, f)
        corrupt.append(Configuration(c.atoms, c.group, c.energy, f, c.virial, c.hessian, c.atom_weights, c.meta))
    again, _ = fit_linear(corrupt, mspec, loss)
    assert np.array_equal(model.coef_, again.coef_)
    # the report's force and force-constant errors count the free atoms' rows only
    report = fit_report(model, configs, list(range(len(configs))), [])["train"]
    for g in CYLINDERS:
        free = sum(int((~np.asarray(c.atoms.arrays["clamped"], bool)).sum()) for c in configs if c.group == g)
        assert report[g]["F"]["count"] == 3 * free
        assert fit_report(again, corrupt, list(range(len(configs))), [])["train"][g]["F"] == report[g]["F"]
    screw = [c for c in configs if c.group == CYLINDERS[0]]
    assert report[CYLINDERS[0]]["H"]["count"] == sum(9 * int(c.atom_weights.sum()) * len(c) for c in screw)


@settings(max_examples=10, deadline=None)
@given(which=st.integers(0, 8), shift=st.floats(-50.0, 50.0), weighted=st.booleans())
def test_no_value_on_the_shell_enters_the_loss(built, which, shift, weighted):
    """Whatever the clamped atoms' forces and force constants are, the loss terms of a
    cylinder configuration (weights, reference values) are the same."""
    _, _, _, configs = built
    c = [c for c in configs if c.group in CYLINDERS][which]
    clamped = np.asarray(c.atoms.arrays["clamped"], bool)
    f = np.where(clamped[:, None], np.asarray(c.forces) + shift, c.forces)
    h = None
    if c.hessian is not None:
        rows = np.repeat(clamped, 3).astype(float)
        h = (c.hessian + sp.diags(shift * rows) @ sp.csr_array(np.ones(c.hessian.shape))).tocsr()
    other = Configuration(c.atoms, c.group, c.energy, f, c.virial, h, c.atom_weights, c.meta)
    loss = LossWeights(E=1.0, F=1.0, H=1.0, atom_weights=weighted)
    for s, t in zip(terms(c, loss), terms(other, loss), strict=True):
        assert s.code == t.code and np.array_equal(s.sqrt_weight, t.sqrt_weight)
        assert np.array_equal(s.reference, t.reference)
