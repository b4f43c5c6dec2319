"""Exceptions shared by every stage of the pipeline, and the one numeric input check.

Two families: :class:`InputError` (bad input from a user: raised, never recorded) and
:class:`NumericalFailure` (a numerical failure that is a finding: the experiment records it
as a status, docs/experiment.md §3). Any other exception is a bug and propagates."""

import math


class InputError(ValueError):
    """Bad input from a user: the message names the offending value and the accepted range.

    The command line turns it into one line on stderr and exit code 2, never a traceback.
    """


class NumericalFailure(Exception):
    """A numerical failure that is a result, not a bug; the message says what failed."""


class ConvergenceError(NumericalFailure):
    """A solver stopped without converging (relaxation, line search, eigen-solver)."""


class InstabilityError(NumericalFailure):
    """No stable equilibrium: a stability constant ≤ 0, or an equilibrium that left the basin."""


class OverlapError(InstabilityError):
    """Atoms closer than the admissible distance (a collapsed configuration)."""


class NonFiniteError(NumericalFailure):
    """A potential returned non-finite energies, forces or force constants."""


def check_number(value, name: str, *, unit: str = "", minimum: float = 0.0, maximum: float = math.inf,
                 strict: bool = False) -> float:
    """``value`` as a float if it is a finite number in [minimum, maximum] (``(minimum, …]``
    with ``strict``); otherwise :class:`InputError` naming the value, its unit and the range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{name}={value!r} must be a number" + (f" ({unit})" if unit else ""))
    v = float(value)
    if not (math.isfinite(v) and (v > minimum if strict else v >= minimum) and v <= maximum):
        rng = f"{'>' if strict else '≥'} {minimum:g}" + (f" and ≤ {maximum:g}" if math.isfinite(maximum) else "")
        raise InputError(f"{name}={value!r}{' ' + unit if unit else ''} is out of range; use a finite value {rng}")
    return v
