"""How many threads the numerical libraries use: BLAS/OpenMP (through threadpoolctl and
the ``*_NUM_THREADS`` variables) and torch.

One thread is the default of every sweep node and of the ``evaluate`` and ``defect``
commands: a result is then bit-for-bit the same whatever the machine runs beside it
(multi-threaded reductions sum in an order that depends on the thread count), and on a
loaded machine the dense products of LOBPCG ran about 10× slower with threads than
without (docs/performance.md).
"""

from __future__ import annotations

import contextlib
import os
import sys

__all__ = ["THREAD_VARS", "thread_limit", "one_thread", "parse_threads"]

#: the variables a BLAS/OpenMP library reads for its thread count when it loads
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def thread_limit(n: int | None):
    """Run the body with at most ``n`` threads in every BLAS/OpenMP library and in torch:
    those loaded already (threadpoolctl, ``torch.set_num_threads``) and those loaded inside
    (they read the ``*_NUM_THREADS`` variables when they load). ``None``: no limit (the
    libraries' own defaults). Restores the previous settings."""
    if n is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    saved = {k: os.environ.get(k) for k in THREAD_VARS}
    os.environ.update({k: str(n) for k in THREAD_VARS})
    torch = sys.modules.get("torch")
    torch_threads = torch.get_num_threads() if torch is not None else None
    try:
        with threadpool_limits(limits=n):
            if torch is not None:
                torch.set_num_threads(n)
            yield
    finally:
        if torch is not None:
            torch.set_num_threads(torch_threads)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def one_thread():
    """:func:`thread_limit` of one thread (what every sweep node runs with)."""
    return thread_limit(1)


def parse_threads(text: str, flag: str = "--threads") -> int:
    """``text`` as a thread count in 1..1024; :class:`~genanalysis.exceptions.InputError` otherwise."""
    from genanalysis.exceptions import InputError

    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 1024:
        raise InputError(f"{flag} {text!r}: need a whole number of threads in 1..1024")
    return value
