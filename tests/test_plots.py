"""Rates, plots and reports: known slopes are recovered, verdicts follow, files are written."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genanalysis.cli import main as cli
from genanalysis.results import ResultsStore, TaskRow
from genanalysis.sweep import parse_study, run_study
from genanalysis.sweep import rates as R
from genanalysis.sweep.outputs import load_output, rate_report

slopes = st.floats(-4.0, 1.0, allow_nan=False)


@given(slope=slopes, c=st.floats(1e-6, 1e6), lo=st.floats(1.0, 10.0), n=st.integers(3, 12))
@settings(max_examples=40, deadline=None)
def test_noiseless_power_law_slope_is_recovered_by_both_backends(slope, c, lo, n):
    x = np.geomspace(lo, lo * 64, n)
    for use_theory in (True, False):
        fit = R.fit_slope(x, c * x**slope) if use_theory else R._numpy_fit(x, c * x**slope, 0.95)
        assert fit.slope == pytest.approx(slope, abs=1e-8)
        assert fit.ci[0] - 1e-8 <= slope <= fit.ci[1] + 1e-8
        assert fit.line(np.array([lo]))[0] == pytest.approx(c * lo**slope, rel=1e-6)


@given(slope=slopes, seed=st.integers(0, 2**31))
@settings(max_examples=25, deadline=None)
def test_verdicts_agree_with_the_truth_and_disagree_with_a_far_prediction(slope, seed):
    rng = np.random.default_rng(seed)
    x = np.geomspace(2, 256, 10)
    y = x**slope * np.exp(0.01 * rng.standard_normal(x.size))
    fit = R.fit_slope(x, y)
    assert R.verdict(fit, slope)[0] == "agree"
    assert R.verdict(fit, slope + 1.0)[0] == "disagree"
    assert R.verdict(fit, None)[0] == "inconclusive"
    short = R.fit_slope(x[:2], y[:2])
    assert R.verdict(short, slope)[0] == "inconclusive"


@given(seed=st.integers(0, 2**31), noise=st.floats(0.0, 0.3), n=st.integers(2, 8),
       predicted=st.floats(-3.0, 0.0), tol=st.floats(0.01, 0.5))
@settings(max_examples=60, deadline=None)
def test_numpy_fallback_gives_the_verdicts_theory_gives(seed, noise, n, predicted, tol):
    if not R.theory_available():
        pytest.skip("theory package not importable")
    rng = np.random.default_rng(seed)
    x = np.geomspace(2, 200, n)
    y = x**-1.5 * np.exp(noise * rng.standard_normal(x.size))
    with_theory = R.fit_slope(x, y)
    fallback = R._numpy_fit(x, y, 0.95)
    assert with_theory.method == "theory.compare.fit_slope" and fallback.method == "numpy-ols"
    assert fallback.slope == pytest.approx(with_theory.slope, abs=1e-9)
    if math.isfinite(with_theory.half_width):
        assert fallback.half_width == pytest.approx(with_theory.half_width, rel=1e-6, abs=1e-12)
    assert R.verdict(fallback, predicted, tolerance=tol)[0] == R.verdict(with_theory, predicted, tolerance=tol)[0]


@given(st.lists(st.lists(st.floats(0.1, 10.0), min_size=1, max_size=4), min_size=2, max_size=5))
@settings(max_examples=30, deadline=None)
def test_aggregation_is_mean_and_standard_error_over_seeds(values):
    rows = []
    for i, ys in enumerate(values):
        for seed, y in enumerate(ys):
            rows.append(TaskRow(hash=f"{i}-{seed}", kind="k", point=0, params={"n": i + 1, "seed": seed},
                                overrides={}, state="done", status="done", metrics={"e": y}))
    rows.append(TaskRow(hash="f", kind="k", point=0, params={"n": 1, "seed": 99}, overrides={}, state="failed",
                        status="failed: x", metrics={"e": 1e9}))
    (s,), fields = R.aggregate(rows, "e", "n", axes=["n", "seed"])
    assert fields == []
    assert list(s.x) == [float(i + 1) for i in range(len(values))]
    for i, ys in enumerate(values):
        ys = np.asarray(ys)
        assert s.mean[i] == pytest.approx(ys.mean())
        assert s.sem[i] == pytest.approx(ys.std(ddof=1) / math.sqrt(ys.size) if ys.size > 1 else 0.0)
        assert s.n[i] == ys.size and s.lo[i] == ys.min() and s.hi[i] == ys.max()


def test_other_varying_axes_become_groups_and_are_never_averaged():
    rows = [TaskRow(hash=f"{n}{p}", kind="k", point=0, params={"n": n, "p": p, "seed": 0}, overrides={},
                    state="done", status="done", metrics={"e": float(n) ** -p}) for n in (1, 2, 4) for p in (1, 2)]
    series, fields = R.aggregate(rows, "e", "n", axes=["n", "p", "seed"])
    assert fields == ["p"] and len(series) == 2
    for s in series:
        assert R.fit_slope(s.x, s.mean).slope == pytest.approx(-s.group["p"])


# -- the toy series study end to end -----------------------------------------------------

def series_spec(ps=(2.0, 3.0), sizes=(8, 16, 32, 64, 128), seeds=(0, 1, 2), noise=0.02, **rate):
    return {
        "study": {"name": "series", "task": "toy.series"},
        "experiment": {"p": ps[0]},
        "fit": {"noise": noise},
        "sweep": {"trainingset.size": list(sizes), "experiment.p": list(ps), "seed": list(seeds)},
        "rates": [{"quantity": "error", "against": "trainingset.size", "group_by": ["experiment.p"],
                   "predicted": -1.0, **rate}],
    }


@given(st.floats(1.3, 4.0))
@settings(max_examples=8, deadline=None)
def test_series_error_is_the_hurwitz_tail_and_its_slope_tends_to_1_minus_p(p):
    from toykinds import series_task

    errors = []
    sizes = np.array([64, 128, 256, 512])
    for n in sizes:
        k = np.arange(int(n), 0, -1, dtype=np.float64)
        out = series_task({"trainingset": {"size": int(n)}, "experiment": {"p": p}}, {
            "partial": {"partial_sum": float(np.sum(k**-p))}}, None)
        assert out.metrics["error_noiseless"] == pytest.approx(out.metrics["tail_exact"], rel=1e-8)
        errors.append(out.metrics["error"])
    assert R.fit_slope(sizes, errors).slope == pytest.approx(1 - p, abs=0.02)


def test_series_study_report_and_plots(tmp_path, capsys):
    raw = series_spec()
    study = parse_study(raw)
    run_study(study, tmp_path, workers=0, quiet=True)
    out = load_output(tmp_path)
    results = rate_report(out)
    assert {r.series.group["experiment.p"] for r in results} == {2.0, 3.0}
    for res in results:
        p = res.series.group["experiment.p"]
        assert res.fit.slope == pytest.approx(1 - p, abs=0.1)
        assert res.fit.ci[0] < res.fit.slope < res.fit.ci[1]
        assert res.verdict == ("agree" if p == 2.0 else "disagree")  # predicted −1 fits p = 2 only

    assert cli(["report", str(tmp_path), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["tasks"] == {"points": 30, "recorded": 30, "done": 30, "failed": 0, "missing": 0,
                            "by_status": {"done": 30}}
    for r in rep["rates"]:
        assert set(r) >= {"quantity", "fitted_slope", "ci", "predicted_slope", "verdict"}
        assert r["quantity"] == "error" and r["predicted_slope"] == -1.0
    lines = (tmp_path / "results.csv").read_text().splitlines()
    assert len(lines) == 31 and lines[0].startswith("point,hash,trainingset.size,experiment.p,seed,status")
    assert "## Rates" in (tmp_path / "results.md").read_text()

    assert cli(["plot", str(tmp_path), "--pdf"]) == 0
    files = capsys.readouterr().out.split()
    assert sorted(f.rsplit(".", 1)[1] for f in files) == ["pdf", "png"]
    for f in files:
        with open(f, "rb") as fh:
            head = fh.read(8)
        assert head.startswith(b"\x89PNG") or head.startswith(b"%PDF")


def test_named_prediction_comes_from_theory(tmp_path):
    if not R.theory_available():
        pytest.skip("theory package not importable")
    raw = series_spec(ps=(2.5,), predicted="supercell_geometry", d=3, sense="two_sided")
    run_study(parse_study(raw), tmp_path, workers=0, quiet=True)
    (res,) = rate_report(load_output(tmp_path))
    assert res.predicted == -1.5 and "supercell_geometry (d=3)" in res.predicted_label
    assert res.verdict == "agree"
    raw = series_spec(ps=(2.5,), predicted="no_such_rate", d=3)
    run_study(parse_study(raw), tmp_path / "b", workers=0, quiet=True)
    with pytest.raises(Exception, match="no_such_rate"):
        rate_report(load_output(tmp_path / "b"))


def test_plot_axes_carry_units_and_both_slopes():
    from genanalysis.plots import convergence_figure

    rows = [TaskRow(hash=f"{n}{s}", kind="k", point=0, params={"n": n, "seed": s}, overrides={}, state="done",
                    status="done", metrics={"e": n**-2.0 * (1 + 0.01 * s)}) for n in (2, 4, 8, 16) for s in (0, 1)]
    study = parse_study({"study": {"task": "toy.probe"}, "sweep": {"trainingset.n": [2, 4, 8, 16], "seed": [0, 1]},
                         "rates": [{"quantity": "e", "against": "trainingset.n", "predicted": -2.0}]})
    res = R.evaluate_rates(study, [TaskRow(**{**r.__dict__, "params": {"trainingset": {"n": r.params["n"]},
                                                                         "seed": r.params["seed"]}}) for r in rows])
    fig = convergence_figure(res, units={"e": "eV", "trainingset.n": "cells"})
    ax = fig.axes[0]
    assert ax.get_xlabel() == "trainingset.n (cells)" and ax.get_ylabel() == "e (eV)"
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(t.startswith("all: fitted slope -2") for t in labels)
    assert any(t.startswith("predicted slope -2") for t in labels)
    fig2 = convergence_figure(res, units={})
    assert fig2.axes[0].get_ylabel() == "e (units not declared)"


def test_report_and_plot_of_a_directory_without_results_is_a_clean_error(tmp_path, capsys):
    assert cli(["report", str(tmp_path)]) == 2
    assert "holds no results.sqlite" in capsys.readouterr().err
    assert cli(["plot", str(tmp_path)]) == 2


def test_run_command_bad_spec_is_one_line_error(tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text('[study]\ntask = "toy.series"\n[sweep]\ntrainingset.size = [0, 2]\n[experiment]\np = 2.0\n')
    assert cli(["run", str(spec), "--out", str(tmp_path / "o"), "--workers", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "trainingset.size=0" in err
    assert not (tmp_path / "o").exists()  # validated before any work
    with ResultsStore(tmp_path / "x") as store:
        assert store.count() == 0


def test_where_selects_points_and_each_rate_gets_its_own_prediction(tmp_path):
    raw = series_spec(ps=(2.0, 3.0))
    raw["rates"] = [{"quantity": "error", "against": "trainingset.size", "where": {"experiment": {"p": p}},
                     "predicted": 1 - p} for p in (2.0, 3.0)]
    run_study(parse_study(raw), tmp_path, workers=0, quiet=True)
    results = rate_report(load_output(tmp_path))
    assert [(r.series.group, r.predicted, r.verdict) for r in results] == [
        ({"experiment.p": 2.0}, -1.0, "agree"), ({"experiment.p": 3.0}, -2.0, "agree")]
    assert all(r.series.n.max() == 3 for r in results)  # three seeds per point, nothing else mixed in
