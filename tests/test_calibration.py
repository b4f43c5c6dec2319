"""Calibration measurements: the geometry error is a distance between gradient fields."""

import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genanalysis.calibration import decay_profile, geometry_error
from genanalysis.defect import solve_defect


@pytest.fixture(scope="module")
def cells():
    return {n: solve_defect("builtin:morse", "triangular", None, "interstitial", n, fmax=1e-10) for n in (6, 7, 16)}


def test_same_cell_has_zero_geometry_error(cells):
    assert geometry_error(cells[6], cells[6]) == pytest.approx(0.0, abs=1e-14)


def test_geometry_error_shrinks_with_the_cell(cells):
    e6, e7 = geometry_error(cells[6], cells[16]), geometry_error(cells[7], cells[16])
    assert 0 < e7 < e6


@given(shift=st.lists(st.floats(-0.3, 0.3), min_size=2, max_size=2))
@settings(max_examples=5, deadline=None)
def test_geometry_error_ignores_rigid_translations(cells, shift):
    moved = solve_defect("builtin:morse", "triangular", None, "interstitial", 16, fmax=1e-10)
    moved.relaxation.atoms.positions[:, :2] += np.array(shift)
    assert geometry_error(cells[6], moved) == pytest.approx(geometry_error(cells[6], cells[16]), rel=1e-9)


def test_decay_profile_is_centred(cells):
    r, g = decay_profile(cells[16])
    assert r.min() == pytest.approx(0.0, abs=1e-12)  # the interstitial sits at the centre
    assert g[np.argsort(r)[-20:]].max() < g.max()    # the field is largest near the core


def test_calibrate_command_json():
    p = subprocess.run([sys.executable, "-m", "genanalysis", "calibrate", "--potential", "builtin:morse",
                        "--lattice", "triangular", "--defect", "vacancy", "--sizes", "4,6,8", "--reference-size", "24",
                        "--json"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert [r["size"] for r in out["rows"]] == [4, 6, 8]
    assert {f["quantity"] for f in out["rates"]} == {"geometry_error", "energy_error", "decay"}
    assert all(np.isfinite(f["slope"]) and f["slope"] < 0 for f in out["rates"])


def test_calibrate_command_refuses_a_small_reference():
    p = subprocess.run([sys.executable, "-m", "genanalysis", "calibrate", "--potential", "builtin:morse",
                        "--lattice", "triangular", "--defect", "vacancy", "--sizes", "4,8", "--reference-size", "8"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "--reference-size 8" in p.stderr
