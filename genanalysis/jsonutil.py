"""JSON helpers: JSON-ready copies of nested results (NumPy scalars and arrays as Python
numbers and lists), the canonical JSON text every content hash of the package is taken of,
and the checksum of named arrays."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping

import numpy as np

__all__ = ["json_ready", "canonical_json", "sha256_json", "arrays_sha256"]


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


def canonical_json(obj, *, allow_nan: bool = False) -> str:
    """The canonical JSON text of ``obj``: keys sorted, compact separators, UTF-8 text kept
    as is. NaN and ±inf are refused (ValueError) unless ``allow_nan``; a value that is not
    JSON raises TypeError. Content hashes are taken of this text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=allow_nan)


def sha256_json(obj) -> str:
    """SHA-256 (64 hex digits) of :func:`canonical_json` of ``obj`` (UTF-8)."""
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()


def arrays_sha256(arrays: Mapping[str, np.ndarray], *, prefix: bytes = b"") -> str:
    """SHA-256 (64 hex digits) of named arrays: for each name in sorted order, the name,
    dtype and shape (as JSON) and the array's bytes in C order; ``prefix`` is hashed first.
    Two mappings hash alike only if every array is equal bit for bit, dtype and shape."""
    h = hashlib.sha256(prefix)
    for name in sorted(arrays):
        a = np.asarray(arrays[name])
        h.update(json.dumps([name, a.dtype.str, list(a.shape)]).encode("utf-8"))
        h.update(a.tobytes(order="C"))
    return h.hexdigest()
