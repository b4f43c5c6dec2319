"""genanalysis.testing: the property checks find what a broken calculator breaks and by
how much, hold for builtin:W (through its ASE calculator) and EMT, the strategies make
valid inputs, and the pytest plugin runs the checks against a calculator given on the
command line (and does nothing without it)."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.calculators.emt import EMT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import broken_calculators as bc
from genanalysis.lattice import perfect_cell
from genanalysis.potentials import load_potential
from genanalysis.testing import check_calculator
from genanalysis.testing import properties as props
from genanalysis.testing import strategies as gst
from genanalysis.trainingset.spec import TrainingSetSpec

W = load_potential("builtin:W")
A_W = W.equilibrium_lattice_constant("bcc")
TESTS = Path(__file__).parent
SLOW_OK = settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SLOW_OK
@given(atoms=gst.configurations("bcc", A_W, symbol="W", max_size=2), seed=st.integers(0, 2**16))
def test_builtin_w_through_its_calculator_has_every_property(atoms, seed):
    reports = check_calculator(W.calculator(), atoms, cutoff=W.cutoff, seed=seed,
                               properties=[p for p in props.PROPERTIES if p not in ("hessian", "cutoff")])
    assert all(r.status == "ok" for r in reports), "\n".join(map(str, reports))


def test_builtin_w_hessian_and_cutoff():
    atoms = gst.rattled(perfect_cell("bcc", A_W, 1, "W").repeat((2, 1, 1)), 0.05, 3)
    reports = check_calculator(W.calculator(), atoms, cutoff=W.cutoff, properties=["hessian", "cutoff"])
    assert [r.name for r in reports] == ["hessian symmetric", "acoustic sum rule", "smooth across the cutoff"]
    assert all(r.status == "ok" for r in reports), "\n".join(map(str, reports))


def test_emt_holds_all_but_smoothness_at_its_list_cutoff():
    """EMT cuts its smooth Fermi-function tail at the neighbour-list radius: energy and
    force jump there, and the check says so."""
    atoms = gst.rattled(perfect_cell("fcc", 3.6, 2, "Cu"), 0.05, 4)
    calc = EMT()
    calc.calculate(atoms)
    reports = {r.name: r for r in check_calculator(calc, atoms, cutoff=calc.rc_list)}
    cut = reports.pop("smooth across the cutoff")
    assert all(r.status == "ok" for r in reports.values()), "\n".join(map(str, reports.values()))
    assert cut.status == "violated" and cut.values["energy_jump"] > 1e-6 and cut.size > 1e-5, str(cut)
    # just inside the list radius the tail is continuous: the same check there holds
    inside = props.smooth_across_cutoff(EMT(), cutoff=calc.rc_list - 0.05, symbol="Cu")
    assert inside.status == "ok", str(inside)


def test_forces_scaled_by_1_1_are_reported_with_their_size():
    atoms = gst.rattled(perfect_cell("bcc", A_W, 2, "W"), 0.05, 5)
    reports = {r.name: r for r in check_calculator(bc.ScaledForces(1.1), atoms, properties=["forces", "virial",
                                                                                            "rotation"])}
    bad = reports["forces = -grad E"]
    assert bad.status == "violated" and bad.size == pytest.approx(0.1, rel=1e-6), str(bad)
    assert reports["virial = -dE/dstrain"].status == "ok" and reports["rotation invariance"].status == "ok"
    assert "forces = -grad E: VIOLATED, size 0.1" in str(bad)


def test_rotation_breaking_term_is_reported_with_its_size():
    atoms = gst.rattled(perfect_cell("bcc", A_W, 2, "W"), 0.05, 6)
    calc = bc.RotationBreaking()
    reports = {r.name: r for r in check_calculator(calc, atoms, seed=7, properties=[
        "forces", "virial", "hessian", "rotation", "translation", "permutation"])}
    rot = reports.pop("rotation invariance")
    assert rot.status == "violated", str(rot)
    R = props._random_rotation(np.random.default_rng(7), 3, proper=True)
    expected = abs(bc.z_spread(atoms.positions @ R.T)[0] - bc.z_spread(atoms.positions)[0]) / len(atoms)
    assert rot.values["energy_per_atom"] == pytest.approx(expected, rel=1e-8)
    assert all(r.status == "ok" for r in reports.values()), "\n".join(map(str, reports.values()))


@settings(max_examples=25, deadline=None)
@given(spec=gst.training_specs("builtin:W", "bcc", max_size=3))
def test_training_spec_strategy_gives_valid_specs(spec):
    again = TrainingSetSpec.from_dict(spec.to_dict())
    assert again == spec and again.content_hash() == spec.content_hash()
    assert spec.n_configurations > 0


@settings(max_examples=10, deadline=None)
@given(atoms=gst.configurations("triangular", 1.1, max_size=3), data=st.data())
def test_2d_configurations_stay_in_plane(atoms, data):
    assert np.all(atoms.positions[:, 2] == 0) and atoms.info["dim"] == 2
    eps = data.draw(gst.strains(2, max_strain=0.02))
    assert np.all(eps[2] == 0) and np.allclose(eps, eps.T)


def _pytest(*args):
    registered = any(ep.value == "genanalysis.testing.plugin"
                     for ep in importlib.metadata.entry_points(group="pytest11"))
    plugin = [] if registered else ["-p", "genanalysis.testing.plugin"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *plugin,
                           "--pyargs", "genanalysis.testing", *args],
                          capture_output=True, text=True, env=env, cwd=TESTS, timeout=600)


def test_plugin_reports_the_violated_property():
    p = _pytest("--genanalysis-calculator", "python:broken_calculators:scaled_forces", "--genanalysis-element", "W",
                "--genanalysis-a", str(A_W), "--genanalysis-examples", "2", "-k", "grad or rotation")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "1 failed, 1 passed" in p.stdout and "forces = -grad E: VIOLATED, size 0.1" in p.stdout, p.stdout


def test_plugin_passes_builtin_w_and_skips_without_a_calculator():
    p = _pytest("--genanalysis-calculator", "builtin:W", "--genanalysis-examples", "2")
    assert p.returncode == 0 and "9 passed" in p.stdout, p.stdout + p.stderr
    p = _pytest()
    assert p.returncode == 0 and "9 skipped" in p.stdout, p.stdout + p.stderr
