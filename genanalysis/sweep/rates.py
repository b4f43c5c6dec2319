"""Measured rates: aggregate over seeds, fit log-log slopes, hold them against predictions.

Aggregation: the finished tasks of a study are grouped by the rate's ``group_by`` fields
(plus every other swept field except the x axis and the replicate axis ``seed``, so no two
different experiments are ever averaged); within a group, the values of ``quantity`` at one
x are summarised by their **mean ± standard error of the mean** (``std(ddof=1)/√n``; 0 for a
single replicate) and their range (min, max). Slopes are fitted to the means (unweighted).
A rate's ``floor`` is subtracted from every task's value first: a number (units of the
quantity), or the name of a metric holding each task's own floor estimate; means at or
below zero after the subtraction drop out of the fit (the note counts them).

Slope fits, predicted exponents and verdicts come from the ``theory`` package
(``theory.compare.fit_slope``, ``compare`` / ``compare_bound`` / ``compare_up_to`` /
``judge``, ``theory.rates.predicted``) — this module is a thin adapter. If ``theory`` is not
importable it falls back to ordinary least squares of ``log y`` on ``log x`` with a
Student-t interval and the two-sided rule of ``theory.compare``: *inconclusive* with fewer
than 3 points, an x range under a factor 2 or an unbounded interval; *disagree* if the
interval misses ``[e − τ, e + τ]``; else *agree* if the slope lies in that band and the
interval's half-width is ≤ τ; else *inconclusive*. Verdicts are ``agree`` / ``disagree`` / ``inconclusive``, plus ``faster``
(faster than an upper bound — a ``bound`` or a "rate up to": consistent, printed
``faster (consistent)``) and ``slower`` (slower than a "rate up to") for one-sided rules.
Slopes and tolerances are dimensionless (d log y / d log x).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from genanalysis.exceptions import InputError
from genanalysis.sweep.plan import canonical_json
from genanalysis.sweep.registry import lookup
from genanalysis.sweep.spec import Rate, Study

__all__ = ["SlopeFit", "Series", "RateResult", "group_label", "fit_slope", "verdict", "predicted_exponent", "aggregate",
           "evaluate_rates", "default_rates", "theory_available"]

MIN_POINTS = 3
MIN_SPAN = 2.0


def _theory():
    # by module path: the ``theory`` package re-exports functions under the same names
    try:
        tc = importlib.import_module("theory.compare")
        tr = importlib.import_module("theory.rates")
    except ImportError:
        return None
    return tc, tr


def theory_available() -> bool:
    """Whether fits and verdicts come from the ``theory`` package (else the numpy fallback)."""
    return _theory() is not None


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
    note: str = ""

    @property
    def half_width(self) -> float:
        return 0.5 * (self.ci[1] - self.ci[0])

    def line(self, x: np.ndarray) -> np.ndarray:
        return np.exp(self.intercept) * np.asarray(x, dtype=np.float64) ** self.slope


def _nan_fit(n: int, confidence: float, method: str, note: str) -> SlopeFit:
    return SlopeFit(math.nan, (math.nan, math.nan), math.nan, (math.nan, math.nan), n, confidence, method, None, note)


def _numpy_fit(x: np.ndarray, y: np.ndarray, confidence: float) -> SlopeFit:
    lx, ly = np.log(x), np.log(y)
    n = lx.size
    xm = lx.mean()
    sxx = float(np.sum((lx - xm) ** 2))
    if n < 2 or sxx == 0.0:
        return _nan_fit(n, confidence, "numpy-ols", "a slope needs at least 2 distinct x")
    slope = float(np.sum((lx - xm) * (ly - ly.mean())) / sxx)
    intercept = float(ly.mean() - slope * xm)
    if n > 2:
        resid = ly - (intercept + slope * lx)
        half = float(stats.t.ppf(0.5 + confidence / 2, n - 2)) * math.sqrt(float(np.sum(resid**2)) / (n - 2) / sxx)
    else:
        half = math.inf
    return SlopeFit(slope, (slope - half, slope + half), intercept, (float(x.min()), float(x.max())), n, confidence,
                    "numpy-ols")


def fit_slope(x: Sequence[float], y: Sequence[float], *, fit_range: tuple[float, float] | str | None = None,
              confidence: float = 0.95) -> SlopeFit:
    """Fit ``log y = intercept + slope·log x`` to the positive finite points.

    ``fit_range``: ``(lo, hi)`` (inclusive, units of x), ``"auto"`` (theory's asymptotic-range
    search) or None (all points). Uses ``theory.compare.fit_slope`` when importable.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if isinstance(fit_range, tuple):
        keep &= (x >= fit_range[0]) & (x <= fit_range[1])
    x, y = x[keep], y[keep]
    th = _theory()
    if th is None:
        return _numpy_fit(x, y, confidence)
    if x.size < 2:
        return _nan_fit(int(x.size), confidence, "theory.compare.fit_slope",
                        f"{x.size} point(s) with positive finite values; a slope needs 2")
    try:
        raw = th[0].fit_slope(x, y, asymptotic="auto" if fit_range == "auto" else None, confidence=confidence)
    except ValueError as exc:
        return _nan_fit(int(x.size), confidence, "theory.compare.fit_slope", str(exc))
    return SlopeFit(raw.slope, (raw.ci_low, raw.ci_high), raw.intercept, tuple(raw.x_range_used), raw.n_points,
                    confidence, "theory.compare.fit_slope", raw)


def verdict(fit: SlopeFit, predicted: float | None, *, tolerance: float = 0.2, sense: str | None = None,
            name: str | None = None, d: int | None = None) -> tuple[str, str]:
    """The verdict and its reason for ``fit`` against the exponent ``predicted``.

    ``sense``: ``"two_sided"``, ``"bound"`` or ``"up_to"``; None means the named rate's own
    sense (``theory.compare.judge``) for a named prediction, else two-sided.
    """
    if predicted is None:
        return "inconclusive", "no predicted slope"
    if not math.isfinite(fit.slope):
        return "inconclusive", fit.note or "no slope could be fitted"
    th = _theory()
    if th is not None and fit.raw is not None:
        tc = th[0]
        if sense is None and name is not None:
            v = tc.judge(fit.raw, name, d, tolerance=tolerance)
        else:
            rule = {"bound": tc.compare_bound, "up_to": tc.compare_up_to}.get(sense or "two_sided", tc.compare)
            v = rule(fit.raw, predicted, tolerance=tolerance)
        return v.value, v.reason
    if fit.n < MIN_POINTS:
        return "inconclusive", f"only {fit.n} points (need ≥ {MIN_POINTS})"
    if fit.x_range[1] / fit.x_range[0] < MIN_SPAN:
        return "inconclusive", f"x spans a factor {fit.x_range[1] / fit.x_range[0]:.3g} (need ≥ {MIN_SPAN:g})"
    if not math.isfinite(fit.half_width):
        return "inconclusive", "the confidence interval is unbounded"
    lo, hi = predicted - tolerance, predicted + tolerance
    if fit.ci[1] < lo or fit.ci[0] > hi:
        return "disagree", f"the interval misses [{lo:.3g}, {hi:.3g}]"
    if fit.half_width > tolerance:
        return "inconclusive", f"half-width {fit.half_width:.3g} exceeds the tolerance {tolerance:g}"
    if abs(fit.slope - predicted) > tolerance:
        return "inconclusive", f"the slope is outside [{lo:.3g}, {hi:.3g}] but its interval touches it"
    return "agree", f"the slope lies in [{lo:.3g}, {hi:.3g}] and is resolved to ±τ"


def predicted_exponent(name: str, d: int) -> float | None:
    """The exponent ``theory`` predicts for ``name`` in dimension ``d``; None without theory."""
    th = _theory()
    if th is None:
        return None
    try:
        return float(th[1].predicted(name, d))
    except ValueError as exc:
        raise InputError(f"rates: predicted={name!r} (d={d}): {exc}") from None


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

    @property
    def label(self) -> str:
        """The verdict as tables print it: ``faster (consistent)`` for a one-sided ``faster``
        (only the upper-bound rules give it), else the verdict itself."""
        return "faster (consistent)" if self.verdict == "faster" else self.verdict

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
            "verdict_label": self.label,
            "floor": self.rate.floor if self.rate.floor is not None else 0.0,
            "tolerance": self.rate.tolerance,
            "method": f.method,
            "aggregation": "mean ± standard error of the mean over replicates",
            "note": self.note,
        }

    def text(self, fmt: str = ".3f") -> dict[str, str | None]:
        """The fields reports print, as text with the number format ``fmt``: ``group``
        (``"k=v, ..."`` or ``"all"``), ``slope``, ``ci`` (``"[lo, hi]"``), ``fit_range``
        (``"lo–hi"``, in units of x) and ``predicted_slope``; ``None`` where undefined."""
        d = self.as_dict()
        lo, hi = d["ci"]
        x0, x1 = d["fit_range"]
        return {
            "group": group_label(d["group"]),
            "slope": None if d["fitted_slope"] is None else format(d["fitted_slope"], fmt),
            "ci": None if None in (lo, hi) else f"[{lo:{fmt}}, {hi:{fmt}}]",
            "fit_range": None if None in (x0, x1) else f"{x0:g}–{x1:g}",
            "predicted_slope": None if d["predicted_slope"] is None else format(d["predicted_slope"], fmt),
        }


def group_label(group: Mapping) -> str:
    """``"k=v, ..."`` of a group's fixed fields, ``"all"`` for the whole study."""
    return ", ".join(f"{k}={v}" for k, v in group.items()) or "all"


def _value(params: Mapping, path: str):
    return lookup(params, path, None)


def _finite_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _metric(metrics: Mapping, name: str):
    return lookup(metrics, name, None) if "." in name and name not in metrics else metrics.get(name)


def aggregate(rows, quantity: str, against: str, group_by: Sequence[str] = (), *, replicate: str = "seed",
              axes: Sequence[str] = (), floor: float | str | None = None) -> tuple[list[Series], list[str]]:
    """Group ``rows`` (done :class:`~genanalysis.results.TaskRow`) and summarise ``quantity``
    minus ``floor`` (a number in the quantity's units, or a metric name: each task's own).

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
        y = _metric(r.metrics, quantity)
        x = _value(r.params, against)
        f = floor if floor is None or _finite_number(floor) else _metric(r.metrics, floor)
        if not (_finite_number(x) and _finite_number(y)) or not (f is None or _finite_number(f)):
            continue
        y = y if f is None else y - f
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


def _predicted(rate: Rate, series: Series) -> tuple[float | None, str, int | None, str]:
    if rate.predicted is None:
        return None, "none", None, "no predicted slope declared"
    if isinstance(rate.predicted, float):
        return rate.predicted, f"{rate.predicted:g}", None, ""
    d = rate.d if not isinstance(rate.d, str) else _value(series.params, rate.d)
    if d not in (2, 3):
        return None, f"{rate.predicted} (d={d!r})", None, f"named predictions need d = 2 or 3, got {d!r}"
    value = predicted_exponent(rate.predicted, d)
    if value is None:
        return None, f"{rate.predicted} (d={d})", d, "theory package not importable"
    return value, f"{rate.predicted} (d={d}) = {value:g}", d, ""


def evaluate_rates(study: Study, rows, rates: Sequence[Rate] | None = None) -> list[RateResult]:
    """Evaluate each declared rate (or ``rates``) on each of its groups."""
    out = []
    for rate in study.rates if rates is None else rates:
        selected = [r for r in rows if all(_value(r.params, k) == v for k, v in rate.where)]
        series, _ = aggregate(selected, rate.quantity, rate.against, rate.group_by, replicate=study.replicate,
                              axes=[a for a in study.axis_paths if a not in dict(rate.where)], floor=rate.floor)
        for s in series:
            s.group = {**dict(rate.where), **s.group}
            fit = fit_slope(s.x, s.mean, fit_range=rate.fit_range, confidence=rate.confidence)
            predicted, label, d, note = _predicted(rate, s)
            if rate.floor is not None and np.any(s.mean <= 0):
                note = "; ".join(filter(None, [note, f"{int(np.sum(s.mean <= 0))} mean(s) at or below the floor "
                                                     f"{rate.floor} dropped"]))
            name = rate.predicted if isinstance(rate.predicted, str) else None
            v, reason = verdict(fit, predicted, tolerance=rate.tolerance, sense=rate.sense, name=name, d=d)
            out.append(RateResult(rate, s, fit, predicted, label, v, "; ".join(filter(None, [note, reason]))))
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
