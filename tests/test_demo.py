"""`genanalysis demo` end to end at a tiny scale (2D Morse crystal instead of bcc W): the
results database, the tables and the plots are written and hold finite metrics, and a
rerun reuses every finished task."""

from __future__ import annotations

import csv
import io
import math
import sqlite3

import pytest

from genanalysis.commands.demo import DEMO_STUDY, demo_study, run_demo
from genanalysis.exceptions import InputError


def test_demo_writes_database_tables_and_plots_and_reruns_nothing(tmp_path):
    out = tmp_path / "genanalysis-demo"
    buf = io.StringIO()
    res = run_demo(out, workers=2, scale="tiny", quiet=True, stream=buf)
    assert (res["summary"].done, res["summary"].failed) == (4, 0)
    with sqlite3.connect(out / "results.sqlite") as db:
        rows = db.execute("SELECT state, metrics FROM tasks").fetchall()
    assert len(rows) == 4 and all(state == "done" for state, _ in rows)
    import json

    for _, metrics in rows:
        m = json.loads(metrics)
        assert m["status"] == "converged", m.get("reason")
        for k in ("error_energy_norm", "residual_dual_norm", "effectivity", "fit_rmse_F_train"):
            assert math.isfinite(m[k]) and m[k] > 0, k
    # the summary table: one line per task, finite errors, and the same numbers as the database
    with open(out / "summary.csv", encoding="utf-8") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 4
    errors = sorted(float(r["‖D(ū^ML−ū)‖ (Å)"]) for r in table)
    assert all(math.isfinite(e) and e > 0 for e in errors)
    db_errors = sorted(json.loads(m)["error_energy_norm"] for _, m in rows)
    assert errors == pytest.approx(db_errors, rel=1e-12)
    for name in ("summary.md", "results.md", "results.csv"):
        assert (out / name).stat().st_size > 0
    pngs = list((out / "plots").glob("*.png"))
    assert pngs and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    # the convergence plot and the two pictures of the bound
    assert {p.name for p in pngs} == {p.name for p in res["plots"]} >= {"bound_against_error.png", "effectivity.png"}
    text = buf.getvalue()
    assert "results.sqlite" in text and "summary.md" in text and "predicted up to" in text
    # rerun: every task is found in the database, nothing is built again
    again = run_demo(out, workers=2, scale="tiny", quiet=True, stream=io.StringIO())
    assert (again["summary"].skipped, again["summary"].done, again["summary"].shared_built) == (4, 0, 0)


def test_demo_spec_is_the_documented_study():
    from genanalysis.sweep import parse_study
    from genanalysis.sweep.plan import build_plan

    plan = build_plan(parse_study(demo_study()))
    assert len(plan.tasks) == 9  # N ∈ {2, 3, 4} × {EF, EFV, EFH}
    assert {t.params["trainingset"]["potential"] for t in plan.tasks} == {"builtin:W"}
    quick = build_plan(parse_study(demo_study(quick=True)))
    assert len(quick.tasks) == 2
    assert DEMO_STUDY["experiment"]["defect"] == "vacancy"
    with pytest.raises(InputError, match="scale"):
        demo_study(scale="huge")


def test_demo_command_refuses_bad_workers(capsys):
    from genanalysis.cli import main

    assert main(["demo", "--workers", "-1", "--out", "unused"]) == 2
    assert "--workers" in capsys.readouterr().err
