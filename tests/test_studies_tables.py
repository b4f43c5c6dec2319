"""The tables of docs/studies.md are what studies/pipeline_figures.py computes from the
per-task data in docs/data/tasks/ (aggregation only: no physics is recomputed)."""

from __future__ import annotations

import json
import math
import pathlib

import pytest
from studyload import load_study

ROOT = pathlib.Path(__file__).resolve().parents[1]
TASKS = ROOT / "docs" / "data" / "tasks"


def _script():
    return load_study("pipeline_figures")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    return _script().main(["--figures", str(tmp_path_factory.mktemp("figures")), "--no-summary"])


def test_every_study_with_data_has_its_tables_in_the_docs(report):
    doc = (ROOT / "docs" / "studies.md").read_text()
    names = sorted(p.stem for p in TASKS.glob("*.json"))
    assert names, "no per-task data in docs/data/tasks"
    for name in names:
        for key in ("table", "rates_table"):
            if key in report[name]:
                assert report[name][key] in doc, f"docs/studies.md does not hold the {key} of {name} as computed"
    for key in ("effectivity", "decomposition"):
        assert report[key]["table"] in doc, f"docs/studies.md does not hold the {key} table as computed"


def test_the_per_task_data_is_data_only_and_round_trips(tmp_path):
    """Each file is plain JSON of the declared format; exporting what was loaded gives the
    same tasks back."""
    mod = _script()
    for path in TASKS.glob("*.json"):
        doc = json.loads(path.read_text())
        assert doc["format"] == mod.FORMAT and doc["tasks"]
        out, _ = mod.load_tasks(path)
        again = json.loads(mod.export_tasks(out, doc["name"], tmp_path).read_text())
        assert again["tasks"] == doc["tasks"] and again["study"] == doc["study"]


def test_a_changed_metric_changes_the_table(tmp_path):
    """The tables are computed from the data, not copied: corrupting one task's error
    changes the training-size table."""
    mod = _script()
    path = TASKS / "test_domain_2d.json"
    if not path.is_file():
        pytest.skip("no test_domain_2d data")
    doc = json.loads(path.read_text())
    out, _ = mod.load_tasks(path)
    before = mod.test_domain(out)["table"]
    doc["tasks"][0]["metrics"].update(error_energy_norm=0.125, status="converged")
    (tmp_path / "test_domain_2d.json").write_text(json.dumps(doc))
    mod.FIG = tmp_path
    after = mod.test_domain(mod.load_tasks(tmp_path / "test_domain_2d.json")[0])["table"]
    assert after != before and "1.250e-01" in after


def test_the_interpolation_regime_tables_are_what_their_data_give():
    """docs/studies.md §11 holds the tables studies/rate_2d.py prints from docs/data/rate_2d."""
    mod = load_study("rate_2d")
    text = mod.main([])
    assert text and text in (ROOT / "docs" / "studies.md").read_text()


def _close(a, b, rel=1e-12):
    """``a`` equals ``b`` as JSON data, floats to ``rel`` relative (or ``rel`` absolute near 0)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], rel) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_close(x, y, rel) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=rel, abs_tol=rel)
    return a == b


WIDTH_RUNS = ("identifiability_width_2d", "identifiability_width_3d_interstitial", "identifiability_width_3d_vacancy")


@pytest.mark.parametrize("name", WIDTH_RUNS)
def test_the_width_tables_are_what_their_data_give(name):
    """docs/studies.md §12 holds the width tables studies/identifiability_width.py prints
    from the stored run (docs/data/NAME.json); the slopes are refitted from the rows."""
    path = ROOT / "docs" / "data" / f"{name}.json"
    if not path.is_file():
        pytest.skip(f"no {name} run recorded")
    mod = load_study("identifiability_width")
    text = mod.main(["--tables", str(path)])
    assert text and text in (ROOT / "docs" / "studies.md").read_text()
    stored = json.loads(path.read_text())
    # the recorded fits are the rows' fits, to the last digits a library's summation order moves
    assert _close(mod.fits(stored), stored["fits"])


def test_the_rate_study_tables_are_what_their_data_give():
    """docs/studies.md §12 holds the interpolation-regime tables studies/rate_2d.py --study
    prints from docs/data/rate_2d/rate_2d_{vacancy,interstitial}.json."""
    mod = load_study("rate_2d")
    text = mod.main(["--study"])
    assert text and text in (ROOT / "docs" / "studies.md").read_text()


def test_the_3d_rate_study_tables_are_what_their_data_give():
    """docs/studies.md §12d holds the d = 3 interpolation-regime tables studies/rate_2d.py
    --study --dim 3 prints from docs/data/rate_3d/rate_3d_{vacancy,interstitial}.json."""
    mod = load_study("rate_2d")
    text = mod.main(["--study", "--dim", "3"])
    assert text and text in (ROOT / "docs" / "studies.md").read_text()


def test_the_richer_interstitial_model_tables_are_what_their_data_give():
    """docs/studies.md §12b holds the tables of the interstitial with 96 pair radial functions
    that studies/rate_2d.py --study --variant pair96 prints from
    docs/data/rate_2d/rate_2d_interstitial_pair96.json, and the model pilot's tables that
    studies/rate_2d_model_pilot.py prints from docs/data/rate_2d/interstitial_model_pilot.json."""
    doc = (ROOT / "docs" / "studies.md").read_text()
    text = load_study("rate_2d").main(["--study", "--variant", "pair96"])
    assert text.startswith("interstitial, model with 96 pair radial functions") and text in doc
    pilot = load_study("rate_2d_model_pilot").main([])
    assert pilot and pilot in doc


def test_the_richer_model_spec_differs_from_the_study_only_in_its_model():
    """studies/rate_2d_interstitial_pair96.toml is what studies/rate_2d_specs.py writes, and
    the interstitial study's spec but for its name, heading and the pair radial degree."""
    specs = load_study("rate_2d_specs")
    new = specs.spec("interstitial", variant="pair96")
    assert new == (ROOT / "studies" / "rate_2d_interstitial_pair96.toml").read_text()
    old = specs.spec("interstitial")
    assert old == (ROOT / "studies" / "rate_2d_interstitial.toml").read_text()
    body = lambda s: s.split("[trainingset]", 1)[1]  # noqa: E731
    assert body(new) == body(old).replace("l_max = 2 }", "l_max = 2, pair_degree = 96 }", 1)
