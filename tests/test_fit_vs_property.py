"""docs/fit-vs-property.md holds what studies/fit_vs_property.py computes from the per-task
data docs/data/fit_vs_property_2d.json (aggregation only), and the rank correlation is
computed from the data, not copied."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
from studyload import load_study
from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = pathlib.Path(__file__).resolve().parents[1]
DATA = ROOT / "docs" / "data" / "fit_vs_property_2d.json"


def _script():
    return load_study("fit_vs_property")


@pytest.fixture(scope="module")
def report():
    if not DATA.is_file():
        pytest.skip("no fit_vs_property_2d data")
    return _script().main(["--no-figure", "--summary", ""])


def test_the_page_holds_the_table_and_census_as_computed(report):
    doc = (ROOT / "docs" / "fit-vs-property.md").read_text()
    assert report["table"] in doc, "docs/fit-vs-property.md does not hold the correlation table as computed"
    assert report["census"] in doc
    assert report["subsets_table"] in doc, "docs/fit-vs-property.md does not hold the per-subset table as computed"
    assert len(report["rows"]) >= 40
    assert sum(r["kind"] == "mlp" for r in report["rows"]) >= 9, "the study includes networks"


def test_a_changed_property_changes_the_table(tmp_path):
    """Reversing the order of one property over the models flips the sign of its ρ."""
    if not DATA.is_file():
        pytest.skip("no fit_vs_property_2d data")
    mod = _script()
    doc = json.loads(DATA.read_text())
    before = mod.correlations(mod.load(DATA), 50)
    for t in doc["tasks"]:
        v = t["metrics"].get("elastic_constant_error")
        if isinstance(v, float) and v != 0:
            t["metrics"]["elastic_constant_error"] = 1.0 / v
    path = tmp_path / "d.json"
    path.write_text(json.dumps(doc))
    after = mod.correlations(mod.load(path), 50)
    for pred in mod.PREDICTORS:
        assert after["elastic_constant_error"][pred]["rho"] == pytest.approx(-before["elastic_constant_error"][pred]["rho"])
    assert mod.table(after) != mod.table(before)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(-1000, 1000), min_size=5, max_size=30, unique=True),
       st.sampled_from(["exp", "cube", "neg"]))
def test_spearman_is_invariant_under_monotone_maps(x, kind):
    """ρ of x against a strictly increasing map of x is 1 (−1 for a decreasing one), in
    every bootstrap resample too, so the interval is the point."""
    mod = _script()
    x = np.asarray(x, float)
    y = {"exp": np.exp(x / 1e3), "cube": x ** 3, "neg": -x}[kind]
    s = mod.spearman_ci(x, y, 200)
    want = -1.0 if kind == "neg" else 1.0
    assert s["rho"] == pytest.approx(want) and s["lo"] == pytest.approx(want) and s["hi"] == pytest.approx(want)
