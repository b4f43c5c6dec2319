"""Memory estimates made before allocating, and the refusal of what cannot fit.

A request whose size has no upper bound in its own terms — a cell of n×n×n conventional
cells, a basis of total degree D, a training set of many configurations — is estimated
here first (atoms: :func:`genanalysis.lattice.check_cell`; neighbour pairs; basis features;
training-set observations; the linear fit's design rows and QR) and refused
with one line naming the value, the estimate and the limit when it exceeds the memory the
machine has available, instead of exhausting it.

The limit is ``MemAvailable`` of ``/proc/meminfo`` at the time of the check, or, when set,
the command-line flag ``--memory-limit GB`` (:func:`limit_override`) or else the environment
variable ``GENANALYSIS_MEMORY_LIMIT_GB`` (GB = 10⁹ bytes): an explicit override for a big
machine, one whose memory the kernel under-reports, or to allow swapping. The flag sets the
variable for its command, so the sweep's worker processes see the same limit. Where none
is known (no ``/proc``), nothing is refused.

The estimates are lower bounds of the dominant arrays (the real peak is higher), so a
refusal is certain to be right; a request that passes may still be large. Units: bytes.
"""

from __future__ import annotations

import contextlib
import math
import os

import numpy as np

from genanalysis.exceptions import InputError

__all__ = ["ENV_LIMIT", "FLAG", "CELL_BYTES_PER_ATOM", "memory_limit", "parse_limit", "limit_override",
           "check_memory", "pairs_bytes", "ace_features", "ace_bytes", "design_rows", "fit_bytes",
           "hessian_chunk_atoms"]

ENV_LIMIT = "GENANALYSIS_MEMORY_LIMIT_GB"
#: the command-line flag that sets the limit for one command
FLAG = "--memory-limit"
#: the limit (GB) set by FLAG for the command running now (None: not set)
_flag_gb: float | None = None

#: bytes per atom of a cell as built (positions, site indices, ASE arrays and temporaries)
CELL_BYTES_PER_ATOM = 200
#: bytes per unordered neighbour pair (indices, image codes, separations, distances and the
#: pair terms of forces and Hessian-vector products; measured ≈ 140 for bcc W)
PAIR_BYTES = 100
#: bytes per basis feature (its monomials, slots and coefficients) and per monomial
FEATURE_BYTES = 48
MONOMIAL_BYTES = 40


def parse_limit(text: str, name: str = ENV_LIMIT) -> float:
    """A limit in GB from its text; InputError naming ``name`` unless a finite number > 0."""
    try:
        gb = float(text)
    except ValueError:
        gb = math.nan
    if not (math.isfinite(gb) and gb > 0):
        sep = " " if name.startswith("--") else "="
        raise InputError(f"{name}{sep}{text!r} must be a positive number of GB (10⁹ bytes), e.g. 64")
    return gb


@contextlib.contextmanager
def limit_override(gb: float | None):
    """Within the block, the limit is ``gb`` GB (the ``--memory-limit`` flag), also for child
    processes started in it (through ``GENANALYSIS_MEMORY_LIMIT_GB``); None changes nothing."""
    global _flag_gb
    if gb is None:
        yield
        return
    saved_flag, saved_env = _flag_gb, os.environ.get(ENV_LIMIT)
    _flag_gb = float(gb)
    os.environ[ENV_LIMIT] = repr(float(gb))
    try:
        yield
    finally:
        _flag_gb = saved_flag
        if saved_env is None:
            os.environ.pop(ENV_LIMIT, None)
        else:
            os.environ[ENV_LIMIT] = saved_env


def memory_limit() -> tuple[float | None, str]:
    """(limit in bytes or None, where it comes from: ``--memory-limit``,
    ``GENANALYSIS_MEMORY_LIMIT_GB``, ``MemAvailable`` or ``unknown``)."""
    if _flag_gb is not None:
        return _flag_gb * 1e9, FLAG
    text = os.environ.get(ENV_LIMIT)
    if text:
        return parse_limit(text) * 1e9, ENV_LIMIT
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
    how = (f"the limit of {_gb(limit)} set by {source}" if source in (FLAG, ENV_LIMIT)
           else f"the {_gb(limit)} available (MemAvailable)")
    raise InputError(f"{what} needs about {_gb(estimate)} of memory, more than {how}; make it smaller, or allow "
                     f"more with {FLAG} GB (or {ENV_LIMIT})")


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


def design_rows(n_atoms: int, dim: int, kinds: str, hessian_atoms: int) -> tuple[float, float]:
    """Rows of one configuration's linear-fit design (:meth:`LinearACE.design`): (rows of the
    model-shaped arrays — E 1, F 3n, V 9, H 3r·3n for r force-constant row atoms — and rows
    entering the loss: E 1, F d·n, V d², H d·r·d·n)."""
    n, r, d = float(n_atoms), float(hessian_atoms), int(dim)
    model = ("E" in kinds) * 1.0 + ("F" in kinds) * 3.0 * n + ("V" in kinds) * 9.0 + ("H" in kinds) * 9.0 * r * n
    loss = ("E" in kinds) * 1.0 + ("F" in kinds) * d * n + ("V" in kinds) * d * d + ("H" in kinds) * d * d * r * n
    return model, loss


#: float64 elements of one streamed piece of a configuration's force-constant design rows
HESSIAN_CHUNK_ELEMENTS = 2.5e7


def hessian_chunk_atoms(n_atoms: int, n_params: float) -> int:
    """Row atoms per streamed piece of a linear fit's force-constant design rows
    (:meth:`genanalysis.models.linear.LinearACE.design_hessian_chunks`): each atom's rows
    are 3 × 3n × P floats, and a piece holds at most :data:`HESSIAN_CHUNK_ELEMENTS`
    (200 MB), at least one atom."""
    return max(1, int(HESSIAN_CHUNK_ELEMENTS // (9.0 * float(n_atoms) * float(n_params))))


def fit_bytes(model_rows: float, loss_rows: float, n_params: float) -> float:
    """Bytes of the linear fit's working set for its largest configuration
    (:func:`genanalysis.fit.fit_linear`, a streamed QR): the configuration's design arrays,
    three copies of its weighted rows (the weighted block buffered for the QR, the stacked
    block and LAPACK's copy of it at the factorisation) and the (P+1)² factors R, U and Vᵀ
    of the solve, P parameters, 8 bytes per float."""
    p1 = float(n_params) + 1.0
    return 8.0 * p1 * (float(model_rows) + 3.0 * float(loss_rows)) + 8.0 * 3.0 * p1 * p1
