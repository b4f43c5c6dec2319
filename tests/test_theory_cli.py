"""``python -m theory``: JSON schema and table."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import sympy as sp

from theory.rates import RATES, STATUSES, predicted

ROOT = pathlib.Path(__file__).resolve().parents[1]
REQUIRED = ["decay_point_defect", "supercell_geometry", "supercell_energy",
            "far_field_force_constants", "far_field_third_order"]


def run(*args):
    return subprocess.run([sys.executable, "-m", "theory", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_json_schema():
    out = run("--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert isinstance(data, dict)
    assert set(REQUIRED) <= set(data)
    assert set(data) == set(RATES)
    d = sp.Symbol("d")
    for name, entry in data.items():
        assert {"exponent", "d2", "d3", "status", "assumptions"} <= set(entry)
        assert entry["status"] in STATUSES
        assert isinstance(entry["assumptions"], str) and entry["assumptions"]
        expr = sp.sympify(entry["exponent"], locals={"d": d})
        assert expr.free_symbols <= {d}
        for dim, key in ((2, "d2"), (3, "d3")):
            if entry[key] is None:
                assert dim not in RATES[name].dims
            else:
                assert entry[key] == float(expr.subs(d, dim)) == predicted(name, dim)


def test_table_lists_every_rate():
    out = run()
    assert out.returncode == 0, out.stderr
    for name in RATES:
        assert name in out.stdout


def test_unknown_name_exits_2():
    out = run("--json", "--name", "no_such_rate")
    assert out.returncode == 2
    assert "no_such_rate" in out.stderr and out.stdout == ""
    one = json.loads(run("--json", "--name", "supercell_energy").stdout)
    assert list(one) == ["supercell_energy"]
