"""Measured rates: aggregate over seeds, fit log-log slopes, hold them against predictions.

Aggregation: the finished tasks of a study are grouped by the rate's ``group_by`` fields
(plus every other swept field except the x axis and the replicate axis ``seed``, so no two
different experiments are ever averaged); within a group, the values of ``quantity`` at one
x are summarised by their **mean ± standard error of the mean** (``std(ddof=1)/√n``; 0 for a
single replicate) and their range (min, max). Slopes are fitted to the means.

Slope fitting and the verdict use the ``theory`` package (``theory.compare.fit_slope`` and
``theory.compare.compare``) when it is importable, and otherwise the plain least-squares
fallback of this module: ordinary least squares of ``log y`` on ``log x`` over the fit
range, a Student-t confidence interval on the slope, and the verdict

- *inconclusive* if fewer than 3 points, an x range shorter than a factor 2, a confidence
  half-width above 0.5, or no prediction;
- *agree* if ``|slope − predicted| ≤ max(half-width, tolerance)``;
- *disagree* otherwise.

Named predictions (``predicted = "supercell_geometry"``) are read from
``python -m theory --json`` (its documented output: name → ``{"d2": …, "d3": …}``).
Slopes are dimensionless (d log y / d log x).
"""

from __future__ import annotations

import functools
import json
import math
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from genanalysis.exceptions import InputError
from genanalysis.sweep.plan import canonical_json
from genanalysis.sweep.registry import lookup
from genanalysis.sweep.spec import Rate, Study

__all__ = ["SlopeFit", "Series", "RateResult", "fit_slope", "verdict", "theory_exponents", "aggregate",
           "evaluate_rates", "default_rates"]

MIN_POINTS = 3
MIN_SPAN = 2.0
MAX_HALF_WIDTH = 0.5


@dataclass(frozen=True)
class SlopeFit:
    """A fitted log-log slope: ``y ≈ exp(intercept)·x^slope`` on ``x_range`` (``n`` points)."""

    slope: float
    ci: tuple[float, float]
    intercept: float
    x_range: tuple[float, float]
    n: int
    confidence: float
    method: str
    raw: Any = None

    @property
    def half_width(self) -> float:
        return 0.5 * (self.ci[1] - self.ci[0])

    def line(self, x: np.ndarray) -> np.ndarray:
        return np.exp(self.intercept) * np.asarray(x, dtype=np.float64) ** self.slope


def _theory_compare():
    try:
        from theory import compare as tc  # noqa: PLC0415 - optional, written separately
    except ImportError:
        return None
    return tc if hasattr(tc, "fit_slope") else None


def _numpy_fit(x: np.ndarray, y: np.ndarray, confidence: float) -> SlopeFit:
    lx, ly = np.log(x), np.log(y)
    n = lx.size
    if n < 2:
        return SlopeFit(math.nan, (math.nan, math.nan), math.nan, (float(x.min()), float(x.max())), n, confidence,
                        "numpy-ols")
    xm = lx.mean()
    sxx = float(np.sum((lx - xm) ** 2))
    slope = float(np.sum((lx - xm) * (ly - ly.mean())) / sxx)
    intercept = float(ly.mean() - slope * xm)
    if n > 2:
        resid = ly - (intercept + slope * lx)
        se = math.sqrt(float(np.sum(resid**2)) / (n - 2) / sxx)
        half = float(stats.t.ppf(0.5 + confidence / 2, n - 2)) * se
    else:
        half = math.inf
    return SlopeFit(slope, (slope - half, slope + half), intercept, (float(x.min()), float(x.max())), n, confidence,
                    "numpy-ols")


def _from_theory(raw: Any, x: np.ndarray, y: np.ndarray, confidence: float) -> SlopeFit:
    get = (lambda k, d=None: raw.get(k, d)) if isinstance(raw, Mapping) else (lambda k, d=None: getattr(raw, k, d))
    slope = float(get("slope"))
    ci = get("ci") or get("confidence_interval") or (get("ci_low"), get("ci_high"))
    ci = (float(ci[0]), float(ci[1]))
    rng = get("range") or get("range_used") or get("x_range") or (x.min(), x.max())
    lo, hi = float(rng[0]), float(rng[1])
    sel = (x >= lo) & (x <= hi)
    intercept = get("intercept")
    if intercept is None:  # the line through the fitted points' centroid
        intercept = float(np.mean(np.log(y[sel])) - slope * np.mean(np.log(x[sel])))
    return SlopeFit(slope, ci, float(intercept), (lo, hi), int(sel.sum()), confidence, "theory.compare", raw)


def fit_slope(x: Sequence[float], y: Sequence[float], *, fit_range: tuple[float, float] | None = None,
              confidence: float = 0.95) -> SlopeFit:
    """Fit ``log y = intercept + slope·log x`` on the positive finite points in ``fit_range``.

    Uses ``theory.compare.fit_slope`` when importable, else ordinary least squares with a
    Student-t interval at ``confidence`` (the module docstring says which).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if fit_range is not None:
        keep &= (x >= fit_range[0]) & (x <= fit_range[1])
    x, y = x[keep], y[keep]
    if x.size == 0:
        return SlopeFit(math.nan, (math.nan, math.nan), math.nan, (math.nan, math.nan), 0, confidence, "none")
    tc = _theory_compare()
    if tc is not None and x.size >= 2:
        try:
            return _from_theory(tc.fit_slope(x, y), x, y, confidence)
        except Exception:  # noqa: BLE001 - an API mismatch must not lose the report
            pass
    return _numpy_fit(x, y, confidence)


def verdict(fit: SlopeFit, predicted: float | None, *, tolerance: float = 0.1) -> str:
    """``agree`` / ``disagree`` / ``inconclusive`` (rules in the module docstring)."""
    tc = _theory_compare()
    if tc is not None and fit.method == "theory.compare" and predicted is not None and hasattr(tc, "compare"):
        try:
            out = tc.compare(fit.raw, predicted)
            out = out if isinstance(out, str) else (out.get("verdict") if isinstance(out, Mapping)
                                                    else getattr(out, "verdict"))
            if out in ("agree", "disagree", "inconclusive"):
                return out
        except Exception:  # noqa: BLE001
            pass
    if predicted is None or not math.isfinite(fit.slope) or fit.n < MIN_POINTS:
        return "inconclusive"
    if fit.x_range[1] / fit.x_range[0] < MIN_SPAN or not fit.half_width <= MAX_HALF_WIDTH:
        return "inconclusive"
    return "agree" if abs(fit.slope - predicted) <= max(fit.half_width, tolerance) else "disagree"


@functools.lru_cache(maxsize=1)
def theory_exponents() -> dict[str, dict] | None:
    """Named predicted exponents from ``python -m theory --json``; None if unavailable."""
    try:
        proc = subprocess.run([sys.executable, "-m", "theory", "--json"], capture_output=True, text=True,
                              timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


@dataclass
class Series:
    """One curve: the aggregated ``quantity`` against ``against`` for one group of parameters."""

    group: dict
    x: np.ndarray
    mean: np.ndarray
    sem: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    n: np.ndarray
    params: dict = field(default_factory=dict)  # the parameters of one member (for d lookups)


@dataclass
class RateResult:
    """A rate evaluated on one group: fit, prediction, verdict."""

    rate: Rate
    series: Series
    fit: SlopeFit
    predicted: float | None
    predicted_label: str
    verdict: str
    note: str = ""

    def as_dict(self) -> dict:
        f = self.fit
        num = lambda v: None if v is None or not math.isfinite(v) else float(v)  # noqa: E731
        return {
            "quantity": self.rate.quantity,
            "against": self.rate.against,
            "group": self.series.group,
            "fitted_slope": num(f.slope),
            "ci": [num(f.ci[0]), num(f.ci[1])],
            "confidence": f.confidence,
            "fit_range": [num(f.x_range[0]), num(f.x_range[1])],
            "n_points": f.n,
            "predicted_slope": num(self.predicted) if self.predicted is not None else None,
            "predicted": self.predicted_label,
            "verdict": self.verdict,
            "method": f.method,
            "aggregation": "mean ± standard error over " + "replicates",
            "note": self.note,
        }


def _value(params: Mapping, path: str):
    return lookup(params, path, None)


def _finite_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def aggregate(rows, quantity: str, against: str, group_by: Sequence[str] = (), *, replicate: str = "seed",
              axes: Sequence[str] = ()) -> tuple[list[Series], list[str]]:
    """Group ``rows`` (done :class:`~genanalysis.results.TaskRow`) and summarise ``quantity``.

    Returns the series and the group fields actually used (``group_by`` plus any other swept
    field among ``axes`` that varies, except ``against`` and ``replicate``).
    """
    done = [r for r in rows if r.state == "done"]
    extra = []
    for a in axes:
        if a in (against, replicate) or a in group_by:
            continue
        if len({canonical_json(_value(r.params, a)) for r in done}) > 1:
            extra.append(a)
    fields = [*group_by, *extra]
    groups: dict[str, dict] = {}
    for r in done:
        y = lookup(r.metrics, quantity, None) if "." in quantity and quantity not in r.metrics else r.metrics.get(quantity)
        x = _value(r.params, against)
        if not (_finite_number(x) and _finite_number(y)):
            continue
        gvals = {f: _value(r.params, f) for f in fields}
        key = canonical_json(gvals)
        g = groups.setdefault(key, {"group": gvals, "xs": {}, "params": r.params})
        g["xs"].setdefault(float(x), []).append(float(y))
    out = []
    for g in groups.values():
        xs = sorted(g["xs"])
        ys = [np.asarray(g["xs"][x]) for x in xs]
        n = np.array([v.size for v in ys])
        mean = np.array([v.mean() for v in ys])
        sem = np.array([v.std(ddof=1) / math.sqrt(v.size) if v.size > 1 else 0.0 for v in ys])
        out.append(Series(g["group"], np.array(xs), mean, sem, np.array([v.min() for v in ys]),
                          np.array([v.max() for v in ys]), n, g["params"]))
    return out, fields


def _predicted(rate: Rate, series: Series) -> tuple[float | None, str, str]:
    if rate.predicted is None:
        return None, "none", "no predicted slope declared"
    if isinstance(rate.predicted, float):
        return rate.predicted, f"{rate.predicted:g}", ""
    d = rate.d if not isinstance(rate.d, str) else _value(series.params, rate.d)
    if d not in (2, 3):
        return None, f"{rate.predicted} (d={d!r})", f"named predictions need d = 2 or 3, got {d!r}"
    table = theory_exponents()
    if table is None:
        return None, f"{rate.predicted} (d={d})", "theory package unavailable (python -m theory --json failed)"
    entry = table.get(rate.predicted)
    if not isinstance(entry, Mapping):
        raise InputError(f"rates: predicted={rate.predicted!r} is not a quantity of python -m theory --json; "
                         f"known: {', '.join(sorted(table))}")
    value = entry.get(f"d{d}")
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None, f"{rate.predicted} (d={d})", f"theory gives no numeric exponent for d={d}"
    return value, f"{rate.predicted} (d={d}) = {value:g}", ""


def evaluate_rates(study: Study, rows, rates: Sequence[Rate] | None = None) -> list[RateResult]:
    """Evaluate each declared rate (or ``rates``) on each of its groups."""
    out = []
    for rate in study.rates if rates is None else rates:
        series, fields = aggregate(rows, rate.quantity, rate.against, rate.group_by, replicate=study.replicate,
                                   axes=study.axis_paths)
        for s in series:
            fit = fit_slope(s.x, s.mean, fit_range=rate.fit_range, confidence=rate.confidence)
            predicted, label, note = _predicted(rate, s)
            v = verdict(fit, predicted, tolerance=rate.tolerance)
            if fit.n < MIN_POINTS:
                note = "; ".join(filter(None, [note, f"only {fit.n} points with positive finite values"]))
            out.append(RateResult(rate, s, fit, predicted, label, v, note))
    return out


def default_rates(study: Study, rows) -> list[Rate]:
    """When a study declares no rates: every numeric scalar metric against every numeric swept
    field (except the replicate axis), without prediction."""
    done = [r for r in rows if r.state == "done"]
    metrics = list(dict.fromkeys(k for r in done for k, v in r.metrics.items() if _finite_number(v)))
    out = []
    for path, values in study.axes:
        if path == study.replicate or not all(_finite_number(v) and v > 0 for v in values):
            continue
        out.extend(Rate(m, path) for m in metrics)
    return out
