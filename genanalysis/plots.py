"""Convergence plots: log-log, error bars over seeds, fitted and predicted slopes side by side.

One figure per rate (``[[rates]]`` of the study, or every numeric metric against every
numeric swept field when none is declared); one curve per group. Markers are the **mean
over replicates (seeds) with ± one standard error of the mean** as error bars; a solid line
is the least-squares fit over the fit range, a dashed line of the same colour has the
predicted slope and passes through the fitted line at the geometric middle of the fit
range. Axis labels carry the units the task kind declares (``[dimensionless]`` for pure
numbers, ``[units not declared]`` when the kind declares none).

Matplotlib with the Agg backend; files go to ``DIR/plots/`` as PNG (and PDF on request).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from genanalysis.sweep.outputs import StudyOutput, rate_report
from genanalysis.sweep.rates import RateResult, group_label

__all__ = ["axis_label", "convergence_figure", "save_rate_plots", "plot_study"]


def axis_label(name: str, units: Mapping[str, str]) -> str:
    """``name [unit]`` with the declared unit (or ``[units not declared]``)."""
    unit = units.get(name)
    return f"{name} [{unit}]" if unit else f"{name} [units not declared]"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:120] or "plot"


def convergence_figure(results: Sequence[RateResult], *, units: Mapping[str, str], title: str = ""):
    """A matplotlib Figure of one rate's groups (all ``results`` share quantity and x axis)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    rate = results[0].rate
    fig, ax = plt.subplots(figsize=(6.4, 4.8), constrained_layout=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, res in enumerate(results):
        s, fit = res.series, res.fit
        c = colours[i % len(colours)]
        pos = s.mean > 0
        if not pos.any():
            continue
        # clip the lower bar so that it stays positive on a log axis
        lower = np.minimum(s.sem[pos], s.mean[pos] * (1 - 1e-9))
        ax.errorbar(s.x[pos], s.mean[pos], yerr=[lower, s.sem[pos]], fmt="o", ms=4, capsize=3, color=c,
                    label=group_label(s.group))
        if math.isfinite(fit.slope) and fit.n >= 2:
            xs = np.geomspace(fit.x_range[0], fit.x_range[1], 50)
            ci = "" if not math.isfinite(fit.half_width) else f" ± {fit.half_width:.2g}"
            ax.plot(xs, fit.line(xs), "-", color=c, lw=1.2, label=f"fit: slope {fit.slope:.3g}{ci}")
            if res.predicted is not None:
                xm = math.sqrt(fit.x_range[0] * fit.x_range[1])
                ym = float(fit.line(np.array([xm]))[0])
                ax.plot(xs, ym * (xs / xm) ** res.predicted, "--", color=c, lw=1.2,
                        label=f"predicted: slope {res.predicted:.3g} — {res.label}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(axis_label(rate.against, units))
    ax.set_ylabel(axis_label(rate.quantity, units))
    n_rep = int(max((r.series.n.max() for r in results if r.series.n.size), default=0))
    ax.set_title(title or f"{rate.quantity} against {rate.against}", fontsize=10)
    ax.text(0.01, 0.01, f"mean ± standard error over ≤ {n_rep} replicate(s); "
                        f"{int(results[0].fit.confidence * 100)} % CI of the fitted slope",
            transform=ax.transAxes, fontsize=7, va="bottom", ha="left", color="0.35")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7, loc="best")
    return fig


def save_rate_plots(results: Sequence[RateResult], out_dir: str | Path, *, units: Mapping[str, str],
                    study_name: str = "", formats: Sequence[str] = ("png",)) -> list[Path]:
    """Draw one figure per (quantity, x axis) of ``results`` into ``out_dir``; return the files."""
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    by_rate: dict[tuple, list[RateResult]] = {}
    for res in results:
        by_rate.setdefault((res.rate.quantity, res.rate.against, res.rate.label), []).append(res)
    files = []
    for (quantity, against, label), group in by_rate.items():
        if not any(r.series.x.size for r in group):
            continue
        title = f"{study_name}: {label or quantity + ' against ' + against}" if study_name else ""
        fig = convergence_figure(group, units=units, title=title)
        stem = _slug(label or f"{quantity}__vs__{against}")
        for fmt in formats:
            path = out_dir / f"{stem}.{fmt}"
            fig.savefig(path, dpi=150)
            files.append(path)
        plt.close(fig)
    return files


def plot_study(out: StudyOutput, *, quantity: str | None = None, against: str | None = None,
               formats: Sequence[str] = ("png",)) -> list[Path]:
    """Draw the convergence plots of a study directory read back (``out``) into ``DIR/plots/``:
    its declared rates, or ``quantity`` against ``against``; return the files."""
    results = rate_report(out, quantity=quantity, against=against)
    return save_rate_plots(results, out.path / "plots", units=out.units, study_name=out.study.name, formats=formats)
