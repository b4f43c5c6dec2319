"""Results that are failures of the experiment (no stable equilibrium, solver or fit
failure) are stored as results, counted by status in `run`'s summary and in `report`, and
make `run` exit 1 when the study says so (``study.fail_on_status``)."""

from __future__ import annotations

import json

import pytest
import tomli_w

from genanalysis.cli import main
from genanalysis.sweep import parse_study, run_study

STATUSES = ["converged", "no stable equilibrium", "fit failure", "converged", "solver failure"]


def status_task(params, shared, ctx):
    """A task whose result reports the status it is given (dimensionless metrics)."""
    status = params["experiment"]["status"]
    return {"status": status, "reason": "" if status == "converged" else f"because {status}",
            "value": float(params["experiment"]["i"])}


def _study(**study):
    return {"study": {"name": "st", "task": f"{__name__}:status_task", **study},
            "experiment": {"status": "converged", "i": 0},
            "sweep": {"mode": "zip", "experiment.status": STATUSES, "experiment.i": list(range(len(STATUSES)))}}


def test_summary_counts_results_by_status(tmp_path):
    s = run_study(parse_study(_study()), tmp_path, workers=0, quiet=True)
    assert (s.done, s.failed) == (5, 0)
    assert s.statuses == {"converged": 2, "no stable equilibrium": 1, "fit failure": 1, "solver failure": 1}
    assert s.unsuccessful == 3 and s.ok
    assert "5 done (2 converged, 1 fit failure, 1 no stable equilibrium, 1 solver failure), 0 failed" in str(s)
    strict = run_study(parse_study(_study(fail_on_status=True)), tmp_path / "strict", workers=0, quiet=True)
    assert strict.unsuccessful == 3 and not strict.ok
    only_ok = _study(fail_on_status=True)
    only_ok["sweep"] = {"experiment.i": [0, 1]}
    assert run_study(parse_study(only_ok), tmp_path / "fine", workers=0, quiet=True).ok


@pytest.mark.parametrize("strict, code", [(False, 0), (True, 1)])
def test_run_exit_status_and_report_show_statuses(tmp_path, capsys, strict, code):
    spec = tmp_path / "st.toml"
    spec.write_text(tomli_w.dumps(_study(fail_on_status=strict)))
    out = tmp_path / "out"
    assert main(["run", str(spec), "--out", str(out), "--workers", "0"]) == code
    assert "(2 converged, 1 fit failure, 1 no stable equilibrium, 1 solver failure)" in capsys.readouterr().err
    assert main(["report", str(out)]) == 0
    text = capsys.readouterr().out
    assert ("st: 5 points, 5 done (2 converged, 1 fit failure, 1 no stable equilibrium, 1 solver failure), "
            "0 failed, 0 not run") in text
    assert "point 1 (" in text and "no stable equilibrium: because no stable equilibrium" in text
    assert main(["report", str(out), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["tasks"]["by_status"] == {"converged": 2, "fit failure": 1, "no stable equilibrium": 1,
                                         "solver failure": 1}
    assert sorted(u["point"] for u in rep["unsuccessful"]) == [1, 2, 4]


def test_fail_on_status_must_be_a_boolean():
    from genanalysis.exceptions import InputError

    with pytest.raises(InputError, match="study.fail_on_status"):
        parse_study(_study(fail_on_status="yes"))
