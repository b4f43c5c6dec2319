"""Exceptions shared by every stage of the pipeline, and the one numeric input check."""

import math


class InputError(ValueError):
    """Bad input from a user: the message names the offending value and the accepted range.

    The command line turns it into one line on stderr and exit code 2, never a traceback.
    """


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
