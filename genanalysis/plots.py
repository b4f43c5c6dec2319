"""Convergence plots and the two pictures of the bound, drawn to be read at a glance.

**Rates.** One figure per rate (``[[rates]]`` of the study, or every numeric metric against
every numeric swept field when none is declared); one colour per group, the legend naming
the group in words (an observation set ``"EFV"`` reads ``E F V``). Markers are the **mean
over replicates (seeds) with ± one standard error of the mean** as error bars; a solid line
is the least-squares fit over the fit range; the predicted slope is a reference triangle of
the same colour below the fit (its hypotenuse has the predicted slope). Where the rate
subtracts a floor, the measured means are drawn as open markers, the floor as a dotted
line and the fitted means (measured − floor) as filled markers. Integer-valued x axes
(cell sizes) get integer ticks at the measured values.

**The bound.** For every converged task that reports both, the a-posteriori bound
``(2/c)‖f^ML(ū)‖₋₁`` (T8 of docs/theory.md) against the measured error ``‖D(ū^ML − ū)‖`` on
log–log axes with the line y = x — the bound holds where a point lies on or above it —
and the distribution of the effectivity ``η = c‖D(ū^ML − ū)‖ / ‖f^ML(ū)‖₋₁`` as a strip
plot per group, with the line η = 2 (the bound holds iff η ≤ 2).

Axis labels are words and units: the built-in quantities and fields have names
(:data:`LABELS`), the units are those the task kind declares (``(dimensionless)`` for pure
numbers, ``(units not declared)`` when the kind declares none); counts such as the
training cell size N carry no unit. Matplotlib with the Agg backend; files go to
``DIR/plots/`` as PNG (and PDF on request).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from genanalysis.sweep.labels import LABELS as _LABELS
from genanalysis.sweep.outputs import StudyOutput, rate_report
from genanalysis.sweep.plan import canonical_json
from genanalysis.sweep.rates import RateResult, evaluate_rates

__all__ = ["LABELS", "axis_label", "legend_label", "convergence_figure", "bound_figure", "effectivity_figure",
           "save_rate_plots", "save_bound_plots", "plot_study"]

#: words for the quantities and fields of the built-in kinds (one table for plots and results tables)
LABELS = _LABELS

#: fields that count cells: their label carries no unit
_COUNTS = frozenset({"trainingset.size", "experiment.size", "trainingset.fc_cells"})

#: the bound pictures need these metrics of a task
_BOUND, _ERROR, _EFFECTIVITY = "a_posteriori_bound", "error_energy_norm", "effectivity"


def axis_label(name: str, units: Mapping[str, str]) -> str:
    """``words (unit)``: the name in words (:data:`LABELS`, else the name itself) and the
    declared unit, ``(dimensionless)`` for ``"1"``, ``(units not declared)`` when none."""
    words = LABELS.get(name, name)
    if name in _COUNTS:
        return words
    unit = units.get(name)
    if unit == "1":
        return f"{words} (dimensionless)"
    return f"{words} ({unit})" if unit else f"{words} (units not declared)"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:120] or "plot"


def _value_words(key: str, value) -> str:
    if key.split(".")[-1] == "observations" and isinstance(value, str):
        return " ".join(value)                       # "EFV" -> "E F V"
    return f"{LABELS.get(key, key)} = {value}"


def legend_label(group: Mapping) -> str:
    """A group in words for a legend: an observation set ``"EFV"`` as ``E F V``, other fields
    ``words = value`` (tables use :func:`genanalysis.sweep.rates.group_label`)."""
    return ", ".join(_value_words(k, v) for k, v in group.items()) or "all"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _integer_ticks(ax, xs: np.ndarray) -> None:
    """Integer ticks at the measured x values when they are whole numbers (at most ~10 shown)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    xs = np.unique(xs[np.isfinite(xs) & (xs > 0)])
    if not xs.size or not np.all(xs == np.round(xs)):
        return
    ticks = xs[:: max(1, math.ceil(xs.size / 10))]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{int(round(v))}"))
    ax.xaxis.set_minor_locator(NullLocator())


def _triangle(ax, fit, slope: float, colour, label: str) -> None:
    """A reference triangle of slope ``slope`` below the fitted line, over the middle of the fit range."""
    from matplotlib.patches import Polygon

    lo, hi = fit.x_range
    xa, xb = lo * (hi / lo) ** 0.3, lo * (hi / lo) ** 0.7
    ya = 0.6 * float(fit.line(np.array([xa]))[0])
    yb = ya * (xb / xa) ** slope
    corner = (xa, yb) if slope < 0 else (xb, ya)
    ax.add_patch(Polygon([(xa, ya), (xb, yb), corner], closed=True, fill=False, edgecolor=colour, lw=1.2,
                         ls="--", label=label))
    ax.text(xa / 1.02 if slope < 0 else xb * 1.02, math.sqrt(ya * yb), f"{slope:.3g}", color=colour, fontsize=8,
            ha="right" if slope < 0 else "left", va="center")


def convergence_figure(results: Sequence[RateResult], *, units: Mapping[str, str], title: str = "",
                       floors: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None):
    """A matplotlib Figure of one rate's groups (all ``results`` share quantity and x axis).

    One legend entry per group: its name in words, fitted slope ± CI half-width and verdict.
    Groups predicting the same slope share one grey triangle (below the lowest fit), else
    each group has its own in its colour. ``floors``: ``canonical_json(group) -> (x, floor)``
    for a rate whose floor is a metric (the mean floor at each x); a numeric floor is the
    rate's own ``floor``.
    """
    plt = _pyplot()
    rate = results[0].rate
    fig, ax = plt.subplots(figsize=(6.4, 5.4), constrained_layout=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    all_x = []
    fitted = []                                     # (result, colour) with a drawn fit
    for i, res in enumerate(results):
        s, fit = res.series, res.fit
        c = colours[i % len(colours)]
        name = legend_label(s.group)
        floor = None
        if isinstance(res.rate.floor, (int, float)):
            floor = (s.x, np.full(s.x.shape, float(res.rate.floor)))
        elif res.rate.floor is not None and floors:
            floor = floors.get(canonical_json(s.group))
        if floor is not None:
            fx, fy = floor
            fmap = dict(zip(fx.tolist(), fy.tolist()))
            raw = np.array([m + fmap.get(x, math.nan) for x, m in zip(s.x.tolist(), s.mean.tolist())])
            ok = np.isfinite(raw) & (raw > 0)
            ax.plot(s.x[ok], raw[ok], "o", mfc="none", ms=5, color=c, label=f"{name}: measured")
            pos_f = fy > 0
            ax.plot(fx[pos_f], fy[pos_f], ":", color=c, lw=1.2, label=f"{name}: estimated floor")
            all_x.append(s.x[ok])
        pos = s.mean > 0
        if not pos.any():
            continue
        has_fit = math.isfinite(fit.slope) and fit.n >= 2
        text = name if floor is None else f"{name}: measured − floor"
        if has_fit:
            ci = "" if not math.isfinite(fit.half_width) else f" ± {fit.half_width:.2g}"
            text += f": fitted slope {fit.slope:.3g}{ci}" + (f" ({res.label})" if res.predicted is not None else "")
        # clip the lower bar so that it stays positive on a log axis
        lower = np.minimum(s.sem[pos], s.mean[pos] * (1 - 1e-9))
        ax.errorbar(s.x[pos], s.mean[pos], yerr=[lower, s.sem[pos]], fmt="o", ms=4, capsize=3, color=c, label=text)
        all_x.append(s.x[pos])
        if has_fit:
            xs = np.geomspace(fit.x_range[0], fit.x_range[1], 50)
            ax.plot(xs, fit.line(xs), "-", color=c, lw=1.2)
            fitted.append((res, c))
    predicted = [(r, c) for r, c in fitted if r.predicted is not None]
    if predicted and len({r.predicted for r, _ in predicted}) == 1:
        lowest = min(predicted, key=lambda rc: float(rc[0].fit.line(np.array([rc[0].fit.x_range[0]]))[0]))[0]
        # named predictions say their name; a literal exponent is its own label
        names = sorted({r.predicted_label.split(" ")[0] for r, _ in predicted if isinstance(r.rate.predicted, str)})
        _triangle(ax, lowest.fit, lowest.predicted, "0.35",
                  f"predicted slope {lowest.predicted:.3g}" + (f" ({', '.join(names)})" if names else ""))
    else:
        for r, c in predicted:
            named = f" ({r.predicted_label})" if isinstance(r.rate.predicted, str) else ""
            _triangle(ax, r.fit, r.predicted, c, f"{legend_label(r.series.group)}: predicted slope "
                                                 f"{r.predicted:.3g}{named}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    if all_x:
        _integer_ticks(ax, np.concatenate(all_x))
    ax.set_xlabel(axis_label(rate.against, units))
    ax.set_ylabel(axis_label(rate.quantity, units))
    n_rep = int(max((r.series.n.max() for r in results if r.series.n.size), default=0))
    ax.set_title(title or f"{LABELS.get(rate.quantity, rate.quantity)} against "
                          f"{LABELS.get(rate.against, rate.against)}", fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncols=1, frameon=False,
              title=f"mean ± standard error over ≤ {n_rep} replicate(s); "
                    f"{int(results[0].fit.confidence * 100)} % CI of the fitted slope",
              title_fontsize=7)
    return fig


def _converged(rows, *names: str) -> list:
    """The finished tasks that converged and report every metric of ``names`` as a positive number."""
    out = []
    for r in rows:
        m = r.metrics or {}
        if r.state != "done" or m.get("status", "converged") != "converged":
            continue
        if all(isinstance(m.get(k), (int, float)) and math.isfinite(m[k]) and m[k] > 0 for k in names):
            out.append(r)
    return out


def _groups(rows, fields: Sequence[str]) -> dict[str, list]:
    """Rows by the values of ``fields`` (in words), in first-seen order."""
    from genanalysis.sweep.registry import lookup

    out: dict[str, list] = {}
    for r in rows:
        out.setdefault(legend_label({f: lookup(r.params, f, None) for f in fields}), []).append(r)
    return out


def _colour_fields(study) -> list[str]:
    """The swept fields the bound pictures colour by: those with non-numeric values (e.g. the
    observation set); numeric axes are the x axes of the rates."""
    return [path for path, values in study.axes
            if path != study.replicate and not all(isinstance(v, (int, float)) for v in values)]


def bound_figure(rows, *, units: Mapping[str, str], fields: Sequence[str] = (), title: str = ""):
    """The bound ``(2/c)‖f^ML(ū)‖₋₁`` against the measured error, log–log, with y = x; one
    point per converged task, coloured by the values of ``fields``. None if no task has both."""
    rows = _converged(rows, _ERROR, _BOUND)
    if not rows:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 5.0), constrained_layout=True)
    err = np.array([r.metrics[_ERROR] for r in rows])
    bnd = np.array([r.metrics[_BOUND] for r in rows])
    lo, hi = min(err.min(), bnd.min()) / 2, max(err.max(), bnd.max()) * 2
    ax.plot([lo, hi], [lo, hi], "-", color="0.3", lw=1.0, label="y = x")
    ax.fill_between([lo, hi], [lo, lo], [lo, hi], color="0.85", alpha=0.5, lw=0, label="bound violated")
    for name, members in _groups(rows, fields).items():
        ax.plot([r.metrics[_ERROR] for r in members], [r.metrics[_BOUND] for r in members], "o", ms=5, label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal")
    ax.set_xlabel(axis_label(_ERROR, units))
    ax.set_ylabel(axis_label(_BOUND, units))
    held = int(np.sum(bnd >= err))
    ax.set_title(title or f"the bound holds above y = x: {held} of {len(rows)} converged task(s)", fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7, loc="upper left")
    return fig


def effectivity_figure(rows, *, fields: Sequence[str] = (), title: str = ""):
    """The effectivity η of every converged task as a strip plot, one column per group of
    ``fields``, with the line η = 2 (the bound holds iff η ≤ 2). None if no task reports η."""
    rows = _converged(rows, _EFFECTIVITY)
    if not rows:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 4.4), constrained_layout=True)
    groups = _groups(rows, fields)
    for i, (name, members) in enumerate(groups.items()):
        eta = np.sort([r.metrics[_EFFECTIVITY] for r in members])
        # spread the points of one column evenly (deterministic, no random jitter)
        offsets = np.linspace(-0.15, 0.15, eta.size) if eta.size > 1 else np.zeros(1)
        ax.plot(i + offsets, eta, "o", ms=6, alpha=0.85, label=name)
        ax.plot([i - 0.25, i + 0.25], [np.median(eta)] * 2, "-", color="0.2", lw=1.5)
    top = max(2.0, max(r.metrics[_EFFECTIVITY] for r in rows))
    ax.axhline(2.0, color="C3", ls="--", lw=1.2, label="η = 2: the bound holds below")
    ax.set_xticks(range(len(groups)), list(groups))
    ax.set_xlim(-0.6, len(groups) - 0.4)
    ax.set_ylim(0.0, 1.1 * top)
    ax.set_xlabel(" and ".join(LABELS.get(f, f) for f in fields) or "converged tasks")
    ax.set_ylabel("effectivity η (dimensionless)")
    n_ok = sum(r.metrics[_EFFECTIVITY] <= 2.0 for r in rows)
    ax.set_title(title or f"{LABELS[_EFFECTIVITY]}\n{n_ok} of {len(rows)} converged task(s) at η ≤ 2; "
                          "bars: medians", fontsize=10)
    ax.grid(True, axis="y", alpha=0.25)
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles[-1:], labels[-1:], fontsize=7, loc="lower right")
    return fig


def _save(fig, path_stem: Path, formats: Sequence[str]) -> list[Path]:
    plt = _pyplot()
    files = []
    for fmt in formats:
        path = path_stem.with_name(f"{path_stem.name}.{fmt}")
        fig.savefig(path, dpi=150)
        files.append(path)
    plt.close(fig)
    return files


def save_rate_plots(results: Sequence[RateResult], out_dir: str | Path, *, units: Mapping[str, str],
                    study_name: str = "", formats: Sequence[str] = ("png",),
                    floors: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None) -> list[Path]:
    """Draw one figure per (quantity, x axis) of ``results`` into ``out_dir``; return the files."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    by_rate: dict[tuple, list[RateResult]] = {}
    for res in results:
        by_rate.setdefault((res.rate.quantity, res.rate.against, res.rate.label), []).append(res)
    files = []
    for (quantity, against, label), group in by_rate.items():
        if not any(r.series.x.size for r in group):
            continue
        words = f"{LABELS.get(quantity, quantity)} against {LABELS.get(against, against)}"
        title = f"{study_name}: {label or words}" if study_name else ""
        fig = convergence_figure(group, units=units, title=title, floors=floors)
        files += _save(fig, out_dir / _slug(label or f"{quantity}__vs__{against}"), formats)
    return files


def save_bound_plots(out: StudyOutput, out_dir: str | Path, *, formats: Sequence[str] = ("png",)) -> list[Path]:
    """Draw ``bound_against_error`` and ``effectivity`` of a study's converged tasks into
    ``out_dir`` (only where the tasks report the bound and the effectivity); return the files."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fields = _colour_fields(out.study)
    files = []
    for stem, fig in (("bound_against_error", bound_figure(out.rows, units=out.units, fields=fields)),
                      ("effectivity", effectivity_figure(out.rows, fields=fields))):
        if fig is not None:
            files += _save(fig, out_dir / stem, formats)
    return files


def _metric_floors(out: StudyOutput, results: Sequence[RateResult]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """For each rate whose floor is a metric: the mean floor at each x, by group (the floor
    metric aggregated like the rate's quantity)."""
    floors = {}
    for rate in dict.fromkeys(r.rate for r in results if isinstance(r.rate.floor, str)):
        as_quantity = dataclasses.replace(rate, quantity=rate.floor, floor=None, predicted=None)
        for res in evaluate_rates(out.study, out.rows, [as_quantity]):
            floors[canonical_json(res.series.group)] = (res.series.x, res.series.mean)
    return floors


def plot_study(out: StudyOutput, *, quantity: str | None = None, against: str | None = None,
               formats: Sequence[str] = ("png",)) -> list[Path]:
    """Draw the convergence plots of a study directory read back (``out``) into ``DIR/plots/``:
    its declared rates, or ``quantity`` against ``against``; and, unless one rate is named,
    the bound against the measured error and the effectivity distribution. Return the files."""
    results = rate_report(out, quantity=quantity, against=against)
    files = save_rate_plots(results, out.path / "plots", units=out.units, study_name=out.study.name,
                            formats=formats, floors=_metric_floors(out, results))
    if not (quantity or against):
        files += save_bound_plots(out, out.path / "plots", formats=formats)
    return files
