"""The figures read at a glance: words and units on the axes, integer ticks on cell sizes,
legends by observation set, the predicted slope as a triangle, the floor where one is
subtracted, the bound against the error with y = x, and the effectivity strip plot —
asserted on matplotlib's object model (Agg backend)."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg", force=True)

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.lines import Line2D
from matplotlib.patches import Polygon

from genanalysis import plots as P
from genanalysis.results import TaskRow
from genanalysis.sweep import parse_study
from genanalysis.sweep.outputs import StudyOutput, rate_report
from genanalysis.sweep.rates import evaluate_rates

SIZES = (2, 3, 4, 6)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    P._pyplot().close("all")

UNITS = {"error_energy_norm": "Å", "a_posteriori_bound": "Å", "effectivity": "1", "trainingset.size": "cells"}


def _row(i, n, obs, metrics, state="done"):
    return TaskRow(hash=f"h{i}", kind="k", point=i, params={"trainingset": {"size": n, "observations": obs},
                                                            "seed": 0},
                   overrides={}, state=state, status="done" if state == "done" else "failed: x", metrics=metrics)


def _study(floor=None):
    rate = {"quantity": "error_energy_norm", "against": "trainingset.size", "predicted": -1.5}
    if floor is not None:
        rate["floor"] = floor
    return parse_study({"study": {"task": "toy.probe"},
                        "sweep": {"trainingset.size": list(SIZES), "trainingset.observations": ["EF", "EFV"]},
                        "rates": [rate]})


def _rows(floor=0.0, seed=0):
    """error = floor + C·N^-1.5 (C by observation set), bound ≥ error by a random factor ≥ 1."""
    rng = np.random.default_rng(seed)
    rows = []
    for obs, c in (("EF", 2e-2), ("EFV", 1e-2)):
        for n in SIZES:
            err = floor + c * n**-1.5
            bound = err * (1.0 + 3.0 * rng.random())
            rows.append(_row(len(rows), n, obs, {"status": "converged", "error_energy_norm": err,
                                                 "a_posteriori_bound": bound, "effectivity": 2 * err / bound,
                                                 "floor_estimate": floor}))
    return rows


def _legend(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def _slope(tri: Polygon) -> float:
    (xa, ya), (xb, yb) = tri.get_xy()[:2]
    return math.log(yb / ya) / math.log(xb / xa)


def test_rate_figure_speaks_words_units_integer_ticks_and_observation_sets():
    results = evaluate_rates(_study(), _rows())
    fig = P.convergence_figure(results, units=UNITS)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "training cell size N"
    assert ax.get_ylabel() == "simulation error ‖D(ū^ML − ū)‖ (Å)"
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    fig.canvas.draw()
    ticks = ax.get_xticks()
    assert list(ticks) == list(SIZES)
    assert [t.get_text() for t in ax.get_xticklabels()] == [str(n) for n in SIZES]
    assert not ax.xaxis.get_minor_locator()()          # no minor ticks between the sizes
    labels = _legend(ax)
    assert [t.split(":")[0] for t in labels if "fitted slope" in t] == ["E F", "E F V"]
    assert not any("EFV" in t or "trainingset.observations" in t for t in labels)
    # both groups predict -1.5: one triangle whose hypotenuse has that slope, below both fits
    (tri,) = [p for p in ax.patches if isinstance(p, Polygon)]
    assert _slope(tri) == pytest.approx(-1.5, rel=1e-12)
    assert any(t.startswith("predicted slope -1.5") for t in labels)
    for res in results:
        xy = tri.get_xy()[:3]
        assert np.all(xy[:, 1] < res.fit.line(xy[:, 0]))
    # every measured mean is drawn
    drawn = {(float(x), float(y)) for line in ax.lines for x, y in zip(line.get_xdata(), line.get_ydata())}
    for r in _rows():
        assert (float(r.params["trainingset"]["size"]), r.metrics["error_energy_norm"]) in drawn


def test_groups_with_different_predictions_get_one_triangle_each():
    study = parse_study({"study": {"task": "toy.probe"},
                         "sweep": {"trainingset.size": list(SIZES), "trainingset.observations": ["EF", "EFV"]},
                         "rates": [{"quantity": "error_energy_norm", "against": "trainingset.size",
                                    "where": {"trainingset.observations": o}, "predicted": p}
                                   for o, p in (("EF", -1.0), ("EFV", -2.0))]})
    fig = P.convergence_figure(evaluate_rates(study, _rows()), units=UNITS)
    tris = [p for p in fig.axes[0].patches if isinstance(p, Polygon)]
    assert sorted(round(_slope(t), 9) for t in tris) == [-2.0, -1.0]


def test_a_numeric_floor_is_drawn_with_the_measured_and_the_subtracted_means():
    floor = 1e-3
    rows = _rows(floor=floor)
    results = evaluate_rates(_study(floor=floor), rows)
    ax = P.convergence_figure(results, units=UNITS).axes[0]
    labels = _legend(ax)
    assert {"E F: estimated floor", "E F V: estimated floor", "E F: measured", "E F V: measured"} <= set(labels)
    floors = [ln for ln in ax.lines if ln.get_linestyle() == ":"]
    assert len(floors) == 2 and all(np.allclose(ln.get_ydata(), floor) for ln in floors)
    measured = [ln for ln in ax.lines if ln.get_label().endswith(": measured")]
    raw = sorted(r.metrics["error_energy_norm"] for r in rows)
    assert sorted(np.concatenate([ln.get_ydata() for ln in measured])) == pytest.approx(raw, rel=1e-12)


def test_a_metric_floor_is_the_mean_floor_estimate_at_each_size(tmp_path):
    rows = _rows(floor=5e-4)
    out = StudyOutput(tmp_path, _study(floor="floor_estimate"), rows, UNITS, len(rows))
    results = rate_report(out)
    floors = P._metric_floors(out, results)
    assert len(floors) == 2
    for x, f in floors.values():
        assert list(x) == list(SIZES) and np.allclose(f, 5e-4)
    files = P.plot_study(out)
    assert sorted(f.name for f in files) == ["bound_against_error.png", "effectivity.png",
                                             "error_energy_norm__vs__trainingset.size.png"]
    ax = P.convergence_figure(results, units=UNITS, floors=floors).axes[0]
    assert sum(ln.get_linestyle() == ":" for ln in ax.lines) == 2


@given(seed=st.integers(0, 2**31), n_bad=st.integers(0, 3))
@settings(max_examples=8, deadline=None)
def test_bound_figure_has_y_equals_x_and_every_converged_task_above_it(seed, n_bad):
    rows = _rows(seed=seed)
    # tasks that did not converge or failed are not drawn
    extra = [_row(100 + k, 2, "EF", {"status": "solver failure", "error_energy_norm": 1.0,
                                      "a_posteriori_bound": 0.5}) for k in range(n_bad)]
    extra.append(_row(200, 3, "EF", {}, state="failed"))
    fig = P.bound_figure(rows + extra, units=UNITS, fields=["trainingset.observations"])
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert ax.get_xlabel() == "simulation error ‖D(ū^ML − ū)‖ (Å)"
    assert ax.get_ylabel() == "bound (2/c)‖f^ML(ū)‖₋₁ (Å)"
    (diag,) = [ln for ln in ax.lines if ln.get_label() == "y = x"]
    assert np.array_equal(diag.get_xdata(), diag.get_ydata())
    lo, hi = ax.get_xlim()
    assert diag.get_xdata()[0] <= lo and diag.get_xdata()[-1] >= hi
    points = [ln for ln in ax.lines if ln.get_marker() == "o"]
    assert [ln.get_label() for ln in points] == ["E F", "E F V"]
    drawn = sorted((float(x), float(y)) for ln in points for x, y in zip(ln.get_xdata(), ln.get_ydata()))
    assert drawn == sorted((r.metrics["error_energy_norm"], r.metrics["a_posteriori_bound"]) for r in rows)
    assert all(y >= x for x, y in drawn) and all(lo <= v <= hi for p in drawn for v in p)
    assert {"y = x", "E F", "E F V"} <= set(_legend(ax))
    assert f"{len(rows)} of {len(rows)}" in ax.get_title()


def test_effectivity_strip_plot_has_every_task_and_the_line_eta_2():
    rows = _rows(seed=3)
    fig = P.effectivity_figure(rows, fields=["trainingset.observations"])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["E F", "E F V"]
    assert ax.get_ylabel() == "effectivity η (dimensionless)"
    (two,) = [ln for ln in ax.lines if ln.get_label().startswith("η = 2")]
    assert np.allclose(two.get_ydata(), 2.0)
    points = [ln for ln in ax.lines if ln.get_marker() == "o"]
    drawn = sorted(float(y) for ln in points for y in ln.get_ydata())
    assert drawn == pytest.approx(sorted(r.metrics["effectivity"] for r in rows), rel=1e-15)
    assert ax.get_ylim()[1] > 2.0
    assert P.effectivity_figure([_row(0, 2, "EF", {"status": "solver failure"})]) is None
    assert P.bound_figure([], units=UNITS) is None


@given(xs=st.sets(st.integers(1, 300), min_size=1, max_size=40))
@settings(max_examples=30, deadline=None)
def test_integer_x_values_get_integer_ticks_at_measured_sizes(xs):
    plt = P._pyplot()
    fig, ax = plt.subplots()
    x = np.array(sorted(xs), dtype=float)
    ax.plot(x, x, "o")
    ax.set_xscale("log")
    P._integer_ticks(ax, x)
    ticks = ax.xaxis.get_major_locator()()
    assert 1 <= len(ticks) <= 10 and set(ticks) <= set(x) and ticks[0] == x[0]
    fmt = ax.xaxis.get_major_formatter()
    assert all(fmt(t, 0) == str(int(t)) for t in ticks)
    plt.close(fig)


def test_group_and_axis_labels_in_words():
    assert P.legend_label({"trainingset.observations": "EFH"}) == "E F H"
    assert P.legend_label({"trainingset.observations": "EF", "fit.loss.H": 0.1}) == "E F, fit.loss.H = 0.1"
    assert P.legend_label({}) == "all"
    assert P.axis_label("effectivity", {"effectivity": "1"}).endswith("(dimensionless)")
    assert P.axis_label("nothing_known", {}) == "nothing_known (units not declared)"
