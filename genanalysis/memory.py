"""Memory estimates made before allocating, and the refusal of what cannot fit.

A request whose size has no upper bound in its own terms — a cell of n×n×n conventional
cells, a basis of total degree D, a training set of many configurations — is estimated
here first (atoms: :func:`genanalysis.lattice.check_cell`; neighbour pairs; basis features;
training-set observations) and refused
with one line naming the value, the estimate and the limit when it exceeds the memory the
machine has available, instead of exhausting it.

The limit is ``MemAvailable`` of ``/proc/meminfo`` at the time of the check, or the
environment variable ``GENANALYSIS_MEMORY_LIMIT_GB`` (GB = 10⁹ bytes) when set: an explicit
override for a machine whose memory the kernel under-reports, or to allow swapping. Where
neither is known (no ``/proc``), nothing is refused.

The estimates are lower bounds of the dominant arrays (the real peak is higher), so a
refusal is certain to be right; a request that passes may still be large. Units: bytes.
"""

from __future__ import annotations

import math
import os

import numpy as np

from genanalysis.exceptions import InputError

__all__ = ["ENV_LIMIT", "CELL_BYTES_PER_ATOM", "memory_limit", "check_memory", "pairs_bytes", "ace_features",
           "ace_bytes"]

ENV_LIMIT = "GENANALYSIS_MEMORY_LIMIT_GB"

#: bytes per atom of a cell as built (positions, site indices, ASE arrays and temporaries)
CELL_BYTES_PER_ATOM = 200
#: bytes per unordered neighbour pair (indices, image codes, separations, distances and the
#: pair terms of forces and Hessian-vector products; measured ≈ 140 for bcc W)
PAIR_BYTES = 100
#: bytes per basis feature (its monomials, slots and coefficients) and per monomial
FEATURE_BYTES = 48
MONOMIAL_BYTES = 40


def memory_limit() -> tuple[float | None, str]:
    """(limit in bytes or None, where it comes from)."""
    text = os.environ.get(ENV_LIMIT)
    if text:
        try:
            gb = float(text)
        except ValueError:
            raise InputError(f"{ENV_LIMIT}={text!r} must be a number of GB (10⁹ bytes)") from None
        if not (math.isfinite(gb) and gb > 0):
            raise InputError(f"{ENV_LIMIT}={text!r} must be a positive number of GB (10⁹ bytes)")
        return gb * 1e9, ENV_LIMIT
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024.0, "MemAvailable"
    except OSError:
        pass
    return None, "unknown"


def _gb(b: float) -> str:
    return f"{b / 1e9:.3g} GB"


def check_memory(what: str, estimate: float) -> None:
    """Refuse (:class:`InputError`) ``what`` if ``estimate`` bytes exceed the limit."""
    limit, source = memory_limit()
    if limit is None or estimate <= limit:
        return
    how = (f"the {ENV_LIMIT} limit of {_gb(limit)}" if source == ENV_LIMIT
           else f"the {_gb(limit)} available (MemAvailable)")
    raise InputError(f"{what} needs about {_gb(estimate)} of memory, more than {how}; make it smaller, or set "
                     f"{ENV_LIMIT} to allow more")


def pairs_bytes(n_atoms: float, density: float, radius: float, dim: int) -> float:
    """Bytes of the half neighbour list of ``n_atoms`` at ``density`` (Å⁻ᵈ) within ``radius`` (Å)."""
    ball = 4.0 / 3.0 * math.pi * radius ** 3 if dim == 3 else math.pi * radius ** 2
    return float(n_atoms) * 0.5 * density * ball * PAIR_BYTES


def _three_body(D: int, l_max: int, w: float) -> float:
    # features (n1 ≤ n2 < D, λ) with (n1 + 1 + wλ) + (n2 + 1 + wλ) ≤ D
    total = 0.0
    for lam in range(l_max + 1):
        s = math.floor(D - 2 - 2 * w * lam + 1e-9)  # n1 + n2 ≤ s
        if s < 0:
            continue
        n1 = np.arange(0, s // 2 + 1, dtype=np.float64)
        total += float(np.sum(np.maximum(0.0, np.minimum(s - n1, D - 1) - n1 + 1)))
    return total


def _four_body_lower(D: int) -> float:
    # isotropic factors only: multisets n1 ≤ n2 ≤ n3 with Σ (n + 1) ≤ D, i.e. Σ n ≤ D − 3;
    # partitions of s into at most 3 parts: round((s + 3)² / 12)
    if D < 3:
        return 0.0
    s = np.arange(0, D - 2, dtype=np.float64)
    return float(np.sum(np.round((s + 3.0) ** 2 / 12.0)))


def ace_features(degree: int, body_order: int, l_max: int, w_l: float = 1.0, pair_degree: int = 0) -> float:
    """The number of features of an ACE basis (docs/models.md): exact for body order ≤ 3, a
    lower bound (isotropic four-body terms only) for body order 4."""
    D = int(degree)
    n = float(int(pair_degree) or 2 * D)
    if body_order >= 3:
        n += _three_body(D, int(l_max), float(w_l))
    if body_order >= 4:
        n += _four_body_lower(D)
    return n


def ace_bytes(degree: int, body_order: int, l_max: int, w_l: float = 1.0, pair_degree: int = 0) -> float:
    """Bytes of an ACE basis's feature table (a lower bound: one monomial per feature)."""
    return ace_features(degree, body_order, l_max, w_l, pair_degree) * (FEATURE_BYTES + MONOMIAL_BYTES)
