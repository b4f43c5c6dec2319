"""Measured rates against predicted ones: log-log slope fits and verdicts.

A measured quantity y (any unit: Å, eV, eV/Å …) against a size x (Å, or cells) is fitted
by least squares as ``ln y = a + s ln x`` on its asymptotic range (T14); the slope s is
dimensionless and comes with a confidence interval. The verdict rules (T15)–(T16) are
stated in docs/theory.md §5 and below. Depends on numpy/scipy only.

Verdict rules, with ``[lo, hi]`` the confidence interval of the measured slope,
``h = (hi − lo)/2`` its half-width, ``e`` the predicted exponent and ``τ`` the tolerance
(exponent units), after the preconditions (at least ``min_points`` points spanning a factor
``min_range`` in x, finite interval; otherwise *inconclusive*):

* :func:`compare` (two-sided, (T15)): *disagree* if the interval misses ``[e − τ, e + τ]``;
  else *agree* if the slope itself lies in that band and ``h ≤ τ``; else *inconclusive*
  (interval too wide, or the slope outside the band with an interval still touching it).
* :func:`compare_bound` (upper bound ``y ≲ x^e``, (T16)): *faster* ("faster than the
  bound": consistent, the bound is not sharp there) if ``hi < e − τ``; *disagree* (slower
  than the bound allows) if ``lo > e + τ``; otherwise as :func:`compare`.
* :func:`compare_up_to` (hypothesis "rate up to x^e towards a floor", an upper bound on
  the N-dependent part): *faster* ("faster (consistent)": the bound holds and is not sharp
  there) if ``hi < e − τ``; *slower* if ``lo > e + τ`` (allowed by "towards a floor" when
  no floor was subtracted, reported as such; on a floor-subtracted fit it is the evidence
  against the bound); otherwise as :func:`compare`.

:func:`judge` picks the rule from the predicted rate's ``sense`` (:mod:`theory.rates`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "SlopeFit",
    "Verdict",
    "fit_slope",
    "compare",
    "compare_bound",
    "compare_up_to",
    "judge",
    "label",
    "DEFAULT_TOLERANCE",
    "MIN_POINTS",
    "MIN_RANGE",
    "AUTO_CURVATURE",
]

#: default tolerance τ on an exponent (dimensionless)
DEFAULT_TOLERANCE = 0.2
#: fewer points than this in the fitted range: inconclusive
MIN_POINTS = 3
#: x_max/x_min of the fitted range below this: inconclusive
MIN_RANGE = 2.0
#: ``asymptotic="auto"`` keeps dropping the smallest x while the fitted curvature changes
#: the local slope by more than this across the range (and is statistically significant)
AUTO_CURVATURE = 0.05


@dataclass(frozen=True)
class SlopeFit:
    """Result of :func:`fit_slope`: ``ln(y − floor) ≈ intercept + slope · ln x`` (T14).

    ``slope`` and its confidence interval ``[ci_low, ci_high]`` (at ``confidence``) are
    dimensionless; ``stderr`` is the slope's standard error; ``intercept`` is in ln(units
    of y); ``x_range_used`` the smallest and largest x of the fitted points (units of x);
    ``used`` their indices in the input; ``residual_rms`` the rms residual in ln y;
    ``dof = n_points − 2``; ``weighted`` whether per-point uncertainties were used.
    """

    slope: float
    intercept: float
    ci_low: float
    ci_high: float
    stderr: float
    n_points: int
    x_range_used: tuple[float, float]
    confidence: float
    dof: int
    residual_rms: float
    weighted: bool
    used: tuple[int, ...]
    floor: float = 0.0

    @property
    def prefactor(self) -> float:
        """``exp(intercept)``: y ≈ prefactor · x^slope + floor (units of y)."""
        return math.exp(self.intercept)

    @property
    def range_ratio(self) -> float:
        """x_max / x_min of the fitted range (dimensionless)."""
        lo, hi = self.x_range_used
        return hi / lo

    @property
    def half_width(self) -> float:
        """Half-width of the confidence interval of the slope (dimensionless)."""
        return (self.ci_high - self.ci_low) / 2

    def predict(self, x) -> np.ndarray:
        """Fitted y at x (units of y)."""
        x = np.asarray(x, dtype=np.float64)
        return self.floor + np.exp(self.intercept + self.slope * np.log(x))

    def as_dict(self) -> dict:
        """JSON-ready summary."""
        return {
            "slope": self.slope, "intercept": self.intercept, "ci_low": self.ci_low,
            "ci_high": self.ci_high, "stderr": self.stderr, "n_points": self.n_points,
            "x_range_used": list(self.x_range_used), "confidence": self.confidence,
            "dof": self.dof, "residual_rms": self.residual_rms, "weighted": self.weighted,
            "used": list(self.used), "floor": self.floor,
        }


@dataclass(frozen=True)
class Verdict:
    """Outcome of a comparison: ``value`` is one of ``agree``, ``disagree``,
    ``inconclusive``, and for one-sided rules ``faster`` / ``slower``; ``reason`` says why
    in one sentence; ``consistent`` whether the measurement is consistent with the
    prediction under the rule used (``rule``: ``two_sided``, ``bound``, ``up_to``);
    ``label`` the printed form (``faster (consistent)`` for a one-sided ``faster``)."""

    value: str
    slope: float
    ci: tuple[float, float]
    predicted: float
    tolerance: float
    rule: str
    reason: str

    @property
    def consistent(self) -> bool:
        ok = {"two_sided": ("agree",), "bound": ("agree", "faster"), "up_to": ("agree", "faster", "slower")}
        return self.value in ok[self.rule]

    @property
    def label(self) -> str:
        """The value as tables print it: ``faster (consistent)`` for a decay significantly
        faster than an upper bound, else the value itself."""
        return label(self.value, self.rule)

    def __str__(self) -> str:
        return self.value

    def as_dict(self) -> dict:
        return {
            "value": self.value, "slope": self.slope, "ci": list(self.ci),
            "predicted": self.predicted, "tolerance": self.tolerance, "rule": self.rule,
            "reason": self.reason, "consistent": self.consistent, "label": self.label,
        }


def label(value: str, rule: str | None) -> str:
    """Printed form of a verdict ``value`` under ``rule`` (``two_sided``, ``bound``,
    ``up_to`` or None): a one-sided ``faster`` is consistent with the upper bound and says
    so, ``faster (consistent)``; every other value prints as itself."""
    return "faster (consistent)" if value == "faster" and rule in ("bound", "up_to") else value


def _as_array(name: str, values) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise ValueError(f"{name}[{bad[0]}]={arr[bad[0]]!r} is not finite")
    return arr


def _wls(lx, ly, w, degree):
    """Weighted polynomial least squares in ln x: coefficients (constant first), the
    unscaled covariance (XᵀWX)⁻¹ and the weighted residual sum of squares."""
    X = np.vander(lx, degree + 1, increasing=True)
    sw = np.sqrt(w)
    coef, *_ = np.linalg.lstsq(X * sw[:, None], ly * sw, rcond=None)
    cov = np.linalg.pinv((X * w[:, None]).T @ X)
    res = ly - X @ coef
    return coef, cov, float(np.sum(w * res**2)), res


def _scaled(cov, chi2, n, npar, weighted, confidence):
    """Covariance and two-sided quantile: unweighted fits use s² = RSS/dof and Student t;
    weighted fits trust σ unless the scatter exceeds it (reduced χ² > 1), then scale."""
    from scipy import stats  # deferred: scipy.stats is slow to import, rarely needed early

    dof = n - npar
    if dof <= 0:
        scaled = cov if weighted else np.full_like(cov, math.inf)
        return scaled, stats.norm.ppf(0.5 + confidence / 2)
    red = chi2 / dof
    if not weighted:
        return cov * red, stats.t.ppf(0.5 + confidence / 2, dof)
    if red > 1.0:
        return cov * red, stats.t.ppf(0.5 + confidence / 2, dof)
    return cov, stats.norm.ppf(0.5 + confidence / 2)


def _select(x: np.ndarray, asymptotic) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    if asymptotic is None or (isinstance(asymptotic, str) and asymptotic == "all"):
        return order
    if isinstance(asymptotic, str):
        if asymptotic == "auto":
            return order  # refined by the caller
        raise ValueError(
            f"asymptotic={asymptotic!r}; use None/'all', 'auto', an int k ≥ 2 (the k "
            f"largest x) or a (x_min, x_max) tuple"
        )
    if isinstance(asymptotic, (int, np.integer)) and not isinstance(asymptotic, bool):
        if not 2 <= asymptotic <= x.size:
            raise ValueError(
                f"asymptotic={asymptotic} points requested; use 2 ≤ k ≤ {x.size} (the number "
                f"of data points)"
            )
        return order[-int(asymptotic):]
    if isinstance(asymptotic, (tuple, list)) and len(asymptotic) == 2:
        lo = -np.inf if asymptotic[0] is None else float(asymptotic[0])
        hi = np.inf if asymptotic[1] is None else float(asymptotic[1])
        if lo > hi:
            raise ValueError(f"asymptotic range {asymptotic}: x_min must be ≤ x_max")
        keep = order[(x[order] >= lo) & (x[order] <= hi)]
        if keep.size < 2:
            raise ValueError(
                f"asymptotic range {asymptotic} keeps {keep.size} point(s) of x in "
                f"[{x.min():g}, {x.max():g}]; at least 2 are needed"
            )
        return keep
    raise ValueError(
        f"asymptotic={asymptotic!r}; use None/'all', 'auto', an int k ≥ 2 or a "
        f"(x_min, x_max) tuple"
    )


def fit_slope(
    x,
    y,
    *,
    asymptotic=None,
    sigma=None,
    confidence: float = 0.95,
    floor: float = 0.0,
) -> SlopeFit:
    """Least-squares log-log slope of y against x with a confidence interval, (T14).

    ``x`` (> 0, any length unit or a count) and ``y`` (> ``floor``, any unit) are 1-D
    arrays of equal length. ``sigma``: optional per-point standard uncertainties of y (same
    unit as y, > 0); they enter as weights ``1/σ_ln²`` with ``σ_ln = σ/(y − floor)``.
    ``floor`` is subtracted from y first (a known error floor, units of y).

    ``asymptotic`` chooses the fitted range (always reported in ``x_range_used``):

    * ``None`` or ``"all"`` — every point;
    * an int ``k ≥ 2`` — the k points of largest x;
    * ``(x_min, x_max)`` — points with ``x_min ≤ x ≤ x_max`` (either may be None);
    * ``"auto"`` — start from all points and drop the smallest x while a quadratic fit in
      ln x has a curvature coefficient that is significant at ``confidence`` *and* changes
      the local slope by more than :data:`AUTO_CURVATURE` across the range, keeping ≥ 4.

    Confidence interval: without ``sigma``, ordinary least squares with ``s² = RSS/(n−2)``
    and a Student-t quantile (n − 2 degrees of freedom; infinite for n = 2). With ``sigma``,
    the uncertainties are trusted (normal quantile) unless the reduced χ² exceeds one, in
    which case the covariance is scaled by it and the t quantile used.
    """
    xa = _as_array("x", x)
    ya = _as_array("y", y)
    if xa.size != ya.size:
        raise ValueError(f"x has {xa.size} points but y has {ya.size}; they must match")
    if xa.size < 2:
        raise ValueError(f"a slope needs at least 2 points, got {xa.size}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence={confidence!r} must lie strictly between 0 and 1")
    if not math.isfinite(floor):
        raise ValueError(f"floor={floor!r} must be finite")
    bad = np.flatnonzero(xa <= 0)
    if bad.size:
        raise ValueError(f"x[{bad[0]}]={xa[bad[0]]!r} must be > 0 for a log-log fit")
    sa = None
    if sigma is not None:
        sa = _as_array("sigma", sigma)
        if sa.size != xa.size:
            raise ValueError(f"sigma has {sa.size} entries but x has {xa.size}")
        bad = np.flatnonzero(sa <= 0)
        if bad.size:
            raise ValueError(f"sigma[{bad[0]}]={sa[bad[0]]!r} must be > 0 (units of y)")

    idx = _select(xa, asymptotic)
    yy = ya[idx] - floor
    bad = np.flatnonzero(yy <= 0)
    if bad.size:
        i = idx[bad[0]]
        raise ValueError(
            f"y[{i}]={ya[i]!r} must exceed floor={floor!r} for a log-log fit (x={xa[i]!r})"
        )

    def weights(sel):
        if sa is None:
            return np.ones(sel.size)
        return ((ya[sel] - floor) / sa[sel]) ** 2

    if isinstance(asymptotic, str) and asymptotic == "auto":
        while idx.size > 4:
            lx, ly = np.log(xa[idx]), np.log(ya[idx] - floor)
            coef, cov, chi2, _ = _wls(lx, ly, weights(idx), 2)
            cov, quant = _scaled(cov, chi2, idx.size, 3, sa is not None, confidence)
            se2 = math.sqrt(max(cov[2, 2], 0.0))
            significant = abs(coef[2]) > quant * se2
            effect = 2.0 * abs(coef[2]) * (lx.max() - lx.min())
            if significant and effect > AUTO_CURVATURE:
                idx = idx[1:]
            else:
                break

    lx, ly = np.log(xa[idx]), np.log(ya[idx] - floor)
    n = idx.size
    if np.ptp(lx) == 0.0:
        raise ValueError(f"all fitted x are equal ({xa[idx][0]!r}); a slope needs a range")
    coef, cov, chi2, res = _wls(lx, ly, weights(idx), 1)
    cov, quant = _scaled(cov, chi2, n, 2, sa is not None, confidence)
    stderr = math.sqrt(cov[1, 1]) if np.isfinite(cov[1, 1]) else math.inf
    half = quant * stderr
    return SlopeFit(
        slope=float(coef[1]),
        intercept=float(coef[0]),
        ci_low=float(coef[1] - half),
        ci_high=float(coef[1] + half),
        stderr=float(stderr),
        n_points=int(n),
        x_range_used=(float(xa[idx].min()), float(xa[idx].max())),
        confidence=float(confidence),
        dof=int(n - 2),
        residual_rms=float(math.sqrt(np.mean(res**2))),
        weighted=sa is not None,
        used=tuple(int(i) for i in idx),
        floor=float(floor),
    )


def _preconditions(fit: SlopeFit, min_points: int, min_range: float) -> str | None:
    if fit.n_points < min_points:
        return f"only {fit.n_points} points in the fitted range (need ≥ {min_points})"
    if fit.range_ratio < min_range:
        lo, hi = fit.x_range_used
        return (
            f"fitted range x = {lo:g}…{hi:g} spans a factor {fit.range_ratio:.3g} "
            f"(need ≥ {min_range:g})"
        )
    if not (math.isfinite(fit.ci_low) and math.isfinite(fit.ci_high)):
        return "the confidence interval is unbounded"
    return None


def _classify(fit, predicted, tolerance, min_points, min_range, rule, below, above) -> Verdict:
    if not math.isfinite(predicted):
        raise ValueError(f"predicted exponent {predicted!r} must be finite")
    if not (math.isfinite(tolerance) and tolerance > 0):
        raise ValueError(f"tolerance={tolerance!r} must be a positive exponent difference")
    ci = (fit.ci_low, fit.ci_high)

    def verdict(value, reason):
        return Verdict(value, fit.slope, ci, float(predicted), float(tolerance), rule, reason)

    why = _preconditions(fit, min_points, min_range)
    if why is not None:
        return verdict("inconclusive", why)
    lo, hi = predicted - tolerance, predicted + tolerance
    band = f"[{lo:.3g}, {hi:.3g}]"
    meas = f"slope {fit.slope:.3g} (CI {fit.ci_low:.3g}…{fit.ci_high:.3g})"
    if fit.ci_high < lo:
        return verdict(below, f"{meas} lies entirely below the band {band}")
    if fit.ci_low > hi:
        return verdict(above, f"{meas} lies entirely above the band {band}")
    if fit.half_width > tolerance:
        return verdict(
            "inconclusive",
            f"{meas} overlaps the band {band} but its half-width {fit.half_width:.3g} "
            f"exceeds the tolerance {tolerance:g}",
        )
    if abs(fit.slope - predicted) > tolerance:
        return verdict(
            "inconclusive",
            f"{meas}: the slope is outside the band {band} but its interval touches it",
        )
    return verdict("agree", f"{meas} lies in the band {band} and is resolved to ±τ")


def compare(
    fit: SlopeFit,
    predicted: float,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    min_points: int = MIN_POINTS,
    min_range: float = MIN_RANGE,
) -> Verdict:
    """Two-sided comparison (T15) of a fitted slope with a predicted exponent
    (dimensionless): ``agree``, ``disagree`` or ``inconclusive`` by the rule in the module
    docstring."""
    return _classify(fit, predicted, tolerance, min_points, min_range,
                     "two_sided", "disagree", "disagree")


def compare_bound(
    fit: SlopeFit,
    predicted: float,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    min_points: int = MIN_POINTS,
    min_range: float = MIN_RANGE,
) -> Verdict:
    """"Rate at least as fast as predicted" (T16): for an upper bound ``y ≲ x^e`` a faster
    measured decay is consistent. Values: ``agree``, ``faster`` (faster than the bound,
    consistent), ``disagree`` (significantly slower) or ``inconclusive``."""
    return _classify(fit, predicted, tolerance, min_points, min_range,
                     "bound", "faster", "disagree")


def compare_up_to(
    fit: SlopeFit,
    predicted: float,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    min_points: int = MIN_POINTS,
    min_range: float = MIN_RANGE,
) -> Verdict:
    """Hypothesis "decays at a rate up to ``x^e`` towards a floor" — an upper bound on the
    N-dependent part: ``agree``, ``faster`` (significantly faster: consistent with the bound,
    printed "faster (consistent)"), ``slower`` (significantly slower: allowed by "towards a
    floor" without floor subtraction, reported) or ``inconclusive``. Never ``disagree``:
    read a ``slower`` verdict of a floor-subtracted fit as the evidence against."""
    return _classify(fit, predicted, tolerance, min_points, min_range,
                     "up_to", "faster", "slower")


def judge(
    fit: SlopeFit,
    name: str,
    d: int,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    min_points: int = MIN_POINTS,
    min_range: float = MIN_RANGE,
) -> Verdict:
    """Compare ``fit`` with the predicted rate ``name`` of :mod:`theory.rates` in dimension
    ``d`` (2 or 3), using :func:`compare_bound` for bounds and :func:`compare_up_to` for
    "rate up to" hypotheses."""
    from theory.rates import get_rate

    rate = get_rate(name)
    rule = compare_bound if rate.sense == "bound" else compare_up_to
    return rule(fit, rate.value(d), tolerance=tolerance, min_points=min_points,
                min_range=min_range)
