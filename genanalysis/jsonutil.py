"""JSON-ready copies of nested results (NumPy scalars and arrays as Python numbers and lists)."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["json_ready"]


def json_ready(obj, *, nonfinite_as_none: bool = False):
    """A copy of ``obj`` that ``json.dumps`` accepts: dict keys as strings, tuples as lists,
    arrays as lists, NumPy scalars as Python numbers. With ``nonfinite_as_none``, NaN and
    ±inf become ``None`` (null), as strict JSON requires."""
    if isinstance(obj, dict):
        return {str(k): json_ready(v, nonfinite_as_none=nonfinite_as_none) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v, nonfinite_as_none=nonfinite_as_none) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_ready(obj.tolist(), nonfinite_as_none=nonfinite_as_none) if nonfinite_as_none else obj.tolist()
    if isinstance(obj, np.generic):
        obj = obj.item()
    if nonfinite_as_none and isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
