"""The test suite's toy task kinds: real, cheap computations with known answers.

A plug-in like any other (docs/sweeps.md §4): :func:`register` registers them through the
public registry API; importing this module calls it, so a study run from the command
line names it in ``study.imports = ["toykinds"]`` (with this directory on ``PYTHONPATH``,
as ``tests/conftest.py`` arranges for every test and its subprocesses). Worker processes
receive the functions by reference and import this module by name.

``toy.series``
    The truncation error of the series ζ(p) = Σ_{k≥1} k^{-p} after N terms:
    ``error(N) = ζ(p) − Σ_{k≤N} k^{-p} = N^{1−p}/(p−1) − N^{−p}/2 + O(N^{−p−1})``,
    so its log-log slope against N tends to ``1 − p``: a convergence study whose predicted
    rate is exact. The partial sums are shared work (one per (N, p), reused by every seed and
    noise level); an optional multiplicative noise ``1 + noise·ξ`` (ξ standard normal,
    seeded by ``seed`` and N) imitates fitting noise, so error bars over seeds are real.
    Parameters: ``trainingset.size`` = N (whole number ≥ 1), ``experiment.p`` (> 1),
    ``fit.noise`` (≥ 0, default 0), ``seed``. All quantities are dimensionless.

``toy.probe``
    An engine probe: returns ``y = x² + seed`` after sleeping ``experiment.sleep`` seconds;
    raises if ``experiment.fail`` is true; kills its own process (``os._exit``, or SIGKILL
    with ``experiment.die_signal = true``) on the attempts listed in
    ``experiment.die_attempts``. Its shared work (``toy.stamp``, keyed by ``[trainingset]``)
    returns a random token that the task copies into its fit report, so a test can see that
    tasks sharing a training set received one and the same build.
"""

from __future__ import annotations

import math
import os
import signal
import time
import uuid

import numpy as np
from scipy.special import zeta

from genanalysis.exceptions import InputError
from genanalysis.sweep.registry import register_shared, register_task_kind
from genanalysis.sweep.worker import Outcome

__all__ = ["register", "series_partial_sum", "series_task", "stamp", "probe_task", "predicted_series_slope"]


def predicted_series_slope(p: float) -> float:
    """Asymptotic log-log slope of the ζ(p) truncation error against N: ``1 − p``."""
    return 1.0 - p


def _series_params(params) -> tuple[int, float, float, int]:
    ts, ex, fit = params.get("trainingset", {}), params.get("experiment", {}), params.get("fit", {})
    n = ts.get("size")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 10**8:
        raise InputError(f"trainingset.size={n!r}: the number of terms N must be a whole number in 1..1e8")
    p = ex.get("p")
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not math.isfinite(p) or p <= 1:
        raise InputError(f"experiment.p={p!r}: the series converges only for a finite p > 1")
    noise = fit.get("noise", 0.0)
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not 0 <= noise < 1:
        raise InputError(f"fit.noise={noise!r}: the relative noise must lie in [0, 1)")
    seed = params.get("seed", 0)
    return n, float(p), float(noise), int(seed)


def _validate_series(params) -> None:
    _series_params(params)


def series_partial_sum(params, shared, ctx) -> dict:
    """Shared work: ``S_N = Σ_{k=1}^{N} k^{-p}``, summed smallest terms first (dimensionless)."""
    n, p = int(params["trainingset.size"]), float(params["experiment.p"])
    k = np.arange(n, 0, -1, dtype=np.float64)
    return {"N": n, "p": p, "partial_sum": float(np.sum(k ** -p))}


def series_task(params, shared, ctx) -> Outcome:
    """The truncation error of ζ(p) after N terms, with optional seeded relative noise."""
    n, p, noise, seed = _series_params(params)
    s = shared["partial"]
    exact_tail = float(zeta(p, n + 1))  # Hurwitz ζ(p, N+1) = Σ_{k>N} k^{-p}
    error = float(zeta(p)) - s["partial_sum"]
    xi = np.random.default_rng([seed, n]).standard_normal() if noise > 0 else 0.0
    return Outcome(
        metrics={"error": error * (1.0 + noise * xi), "error_noiseless": error, "tail_exact": exact_tail,
                 "relative_error": error / float(zeta(p))},
        fit_report={"noise": noise, "xi": float(xi)},
    )


def stamp(params, shared, ctx) -> dict:
    """Shared work of the probe: a random token identifying this build (sleeps ``sleep`` s)."""
    time.sleep(float(params.get("sleep", 0.0)) if isinstance(params, dict) else 0.0)
    return {"token": uuid.uuid4().hex, "pid": os.getpid()}


def _validate_probe(params) -> None:
    ex = params.get("experiment", {})
    x = ex.get("x", 0.0)
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise InputError(f"experiment.x={x!r}: must be a number")
    sleep = ex.get("sleep", 0.0)
    if isinstance(sleep, bool) or not isinstance(sleep, (int, float)) or not 0 <= sleep <= 60:
        raise InputError(f"experiment.sleep={sleep!r}: must be a number of seconds in [0, 60]")


def probe_task(params, shared, ctx) -> Outcome:
    """Engine probe (see the module docstring): ``y = x² + seed``, dimensionless."""
    ex = params.get("experiment", {})
    if ctx.attempt in ex.get("die_attempts", ()):
        if ex.get("die_signal"):
            os.kill(os.getpid(), signal.SIGKILL)
        os._exit(3)
    time.sleep(float(ex.get("sleep", 0.0)))
    if ex.get("fail"):
        raise ValueError(f"probe asked to fail at x={ex.get('x')}")
    x = float(ex.get("x", 0.0))
    seed = int(params.get("seed", 0))
    return Outcome(metrics={"x": x, "y": x * x + seed, "attempt": ctx.attempt},
                   fit_report={"shared_token": shared["stamp"]["token"]})


def register() -> None:
    """Register ``toy.series``, ``toy.probe`` and their shared work ``toy.partial_sum``, ``toy.stamp``."""
    register_shared("toy.partial_sum", series_partial_sum, units={})
    register_task_kind(
        "toy.series", series_task, version="1", validate=_validate_series,
        needs={"partial": ("toy.partial_sum", ["trainingset.size", "experiment.p"])},
        units={"error": "dimensionless", "error_noiseless": "dimensionless", "tail_exact": "dimensionless",
               "relative_error": "dimensionless", "trainingset.size": "number of terms N"},
    )
    register_shared("toy.stamp", stamp)
    register_task_kind("toy.probe", probe_task, version="1", validate=_validate_probe,
                       needs={"stamp": ("toy.stamp", "trainingset")},
                       units={"x": "dimensionless", "y": "dimensionless"})


register()
