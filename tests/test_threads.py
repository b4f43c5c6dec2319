"""Thread limits: evaluate and defect run with one BLAS/OpenMP thread unless --threads says
otherwise, and a limit leaves the settings as it found them."""

from __future__ import annotations

import os

import pytest
from threadpoolctl import threadpool_info

from genanalysis import cli
from genanalysis.exceptions import InputError
from genanalysis.threads import THREAD_VARS, parse_threads, thread_limit


def _blas_threads() -> set[int]:
    return {lib["num_threads"] for lib in threadpool_info()}


def _at_most(counts: set[int], n: int) -> bool:
    """A limit promises at most ``n`` threads: a library whose pool was sized smaller when it
    loaded (``OPENBLAS_NUM_THREADS=1`` in the environment, one core) stays below ``n``."""
    return max(counts, default=0) <= n


@pytest.mark.parametrize("n", [1, 2, 3])
def test_a_limit_holds_inside_and_is_undone_after(n):
    env = {k: os.environ.get(k) for k in THREAD_VARS}
    before = _blas_threads()
    with thread_limit(n):
        assert all(os.environ[k] == str(n) for k in THREAD_VARS)
        assert _at_most(_blas_threads(), n)
    assert {k: os.environ.get(k) for k in THREAD_VARS} == env
    assert _blas_threads() == before


def test_no_limit_changes_nothing():
    env = dict(os.environ)
    before = _blas_threads()
    with thread_limit(None):
        assert _blas_threads() == before and dict(os.environ) == env


@pytest.mark.parametrize("text", ["0", "-1", "two", "1.5", "1025"])
def test_bad_thread_counts_are_refused(text):
    with pytest.raises(InputError, match=r"1\.\.1024"):
        parse_threads(text)


class _Seen(Exception):
    pass


@pytest.mark.parametrize("command, target", [
    (["defect", "--potential", "builtin:morse"], "genanalysis.defect.solve_defect"),
    (["evaluate", "--model", "builtin:morse", "--reference", "builtin:morse"], "genanalysis.experiment.evaluate"),
])
@pytest.mark.parametrize("flag, expected", [([], "1"), (["--threads", "2"], "2")])
def test_commands_compute_with_one_thread_unless_told(monkeypatch, command, target, flag, expected):
    seen = {}

    def spy(*args, **kwargs):
        seen["env"] = {k: os.environ[k] for k in THREAD_VARS}
        seen["blas"] = _blas_threads()
        raise _Seen

    monkeypatch.setattr(target, spy)
    with pytest.raises(_Seen):
        cli.main([*command, "--lattice", "triangular", "--defect", "vacancy", "--size", "4", *flag])
    assert set(seen["env"].values()) == {expected}
    assert _at_most(seen["blas"], int(expected))
