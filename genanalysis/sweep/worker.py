"""What runs inside a worker process: one task or one piece of shared work, never a crash.

:func:`execute` calls the kind's function, catches every exception (the task is then
``failed`` with its reason) and returns a small record the coordinating process writes to
the results database. Shared-work results are written to their cache file in the
data-only format of :mod:`genanalysis.sweep.sharedio` (no pickle), atomically (temporary
file + ``os.replace``), so a reader sees either nothing or the whole file; a reader checks
the file against the hash in its name and its checksum.

Every node runs with one BLAS/OpenMP/torch thread (:func:`one_thread`), whatever the number
of workers or the backend, so that a result is bit-for-bit the same with ``--workers 1``,
``--workers 2``, in-process or on dask (multi-threaded reductions sum in an order that
depends on the thread count).

Timings are wall-clock seconds (``wall_s``) and CPU seconds of the worker process
(``cpu_s``); ``started``/``finished`` are Unix times in seconds.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import json
import math
import os
import platform
import socket
import sys
import time
import traceback
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from genanalysis.sweep import sharedio
from genanalysis.threads import one_thread

__all__ = ["TaskContext", "Outcome", "Payload", "execute", "execute_in_child", "atomic_write_bytes", "load_shared",
           "versions", "jsonable", "one_thread", "time_limit_reason"]

@dataclass(frozen=True)
class TaskContext:
    """What a task knows about itself: its content hash, kind, attempt (1, 2, ...) and a
    directory where it may write artifacts (created on first use by the task)."""

    hash: str
    kind: str
    attempt: int = 1
    artifacts: str = ""


@dataclass
class Outcome:
    """A task's result when it has more than metrics: ``metrics`` (JSON: what identifies the
    result, equal for equal inputs), a ``fit_report`` and ``info`` (JSON: what is true of this
    run only — timings in s, paths of files it wrote — stored beside the metrics)."""

    metrics: Mapping[str, Any]
    fit_report: Mapping[str, Any] | None = None
    info: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Payload:
    """Everything a worker needs to run one node of the sweep graph (picklable)."""

    role: str  # "task" | "shared"
    fn: Callable
    params: Any
    inputs: Mapping[str, str] = field(default_factory=dict)  # alias -> cache file
    ctx: TaskContext = TaskContext("", "")
    output: str | None = None  # cache file of a shared result


@functools.lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    """Versions of the software that produced a result (read from package metadata, cheap)."""
    out = {"python": platform.python_version()}
    for dist in ("numpy", "torch", "genanalysis"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "absent"
    return out


def jsonable(obj: Any, where: str = "value") -> Any:
    """``obj`` with NumPy scalars/arrays turned into Python numbers/lists; TypeError otherwise."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)) and not isinstance(obj, np.bool_):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist(), where)
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v, f"{where}.{k}") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    raise TypeError(f"{where} is a {type(obj).__name__}, not a JSON value")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


_SHARED_CACHE: OrderedDict[tuple, Any] = OrderedDict()
_SHARED_CACHE_SIZE = 4


def load_shared(path: str) -> Any:
    """Load a shared result from its file, checked against the hash in its name and its
    checksum (:mod:`~genanalysis.sweep.sharedio`; a file that fails the check raises
    :class:`~genanalysis.sweep.sharedio.SharedFileError`). The last few stay in memory
    (tasks sharing them run back to back), keyed by the file's identity, so a file rebuilt
    since is read again."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise sharedio.SharedFileError(f"shared file {Path(path).name} cannot be read ({exc.strerror})") from None
    key = (path, st.st_ino, st.st_size, st.st_mtime_ns)
    if key in _SHARED_CACHE:
        _SHARED_CACHE.move_to_end(key)
        return _SHARED_CACHE[key]
    try:
        value = sharedio.load(path)
    except sharedio.SharedFileError as exc:
        raise sharedio.SharedFileError(f"shared file {Path(path).name} {exc}; rerun to rebuild it") from None
    _SHARED_CACHE[key] = value
    while len(_SHARED_CACHE) > _SHARED_CACHE_SIZE:
        _SHARED_CACHE.popitem(last=False)
    return value


def _reason(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()
    first = msg[0] if msg else ""
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" (at {Path(frame.filename).name}:{frame.lineno})" if frame else ""
    return f"{type(exc).__name__}: {first}{where}"[:500]


def execute(payload: Payload) -> dict[str, Any]:
    """Run one node; return its record (``status`` is ``"done"`` or ``"failed"``)."""
    started = time.time()
    cpu0 = time.process_time()
    record: dict[str, Any] = {"started": started, "host": socket.gethostname(), "pid": os.getpid(),
                              "attempt": payload.ctx.attempt, "versions": versions()}
    try:
        shared = {alias: load_shared(path) for alias, path in payload.inputs.items()}
        with one_thread():
            result = payload.fn(payload.params, shared, payload.ctx)
        if payload.role == "shared":
            atomic_write_bytes(payload.output, sharedio.dumps(result, payload.ctx.hash))
            record.update(status="done", reason="")
        else:
            if isinstance(result, Outcome):
                metrics, fit_report, info = result.metrics, result.fit_report, result.info
            else:
                metrics, fit_report, info = result, None, None
            if not isinstance(metrics, Mapping):
                raise TypeError(f"task returned {type(metrics).__name__}; expected a mapping of metrics")
            metrics = jsonable(metrics, "metrics")
            fit_report = jsonable(fit_report, "fit_report")
            info = jsonable(info, "info")
            json.dumps(metrics, allow_nan=True)
            record.update(status="done", reason="", metrics=metrics, fit_report=fit_report, info=info)
    except Exception as exc:  # noqa: BLE001 - a failing task must never lose the sweep
        record.update(status="failed", reason=_reason(exc))
    record["finished"] = time.time()
    record["wall_s"] = record["finished"] - started
    record["cpu_s"] = time.process_time() - cpu0
    if not math.isfinite(record["wall_s"]):  # pragma: no cover - clock jumps
        record["wall_s"] = 0.0
    return record


def time_limit_reason(limit: float, how: str) -> str:
    """The failure reason of a node stopped at its time limit (``how`` it was stopped)."""
    return f"exceeded the time limit of {limit:g} s (study.task_timeout_s); {how}"


def _child_main(inbox_fd: int, outbox_fd: int) -> None:
    """The child process of :func:`execute_in_child`: one node, then exit. It exits at once
    when its parent is gone (the inbox reaches end-of-file)."""
    import multiprocessing.connection as mpc
    import threading

    inbox = mpc.Connection(inbox_fd, writable=False)
    outbox = mpc.Connection(outbox_fd, readable=False)
    payload = inbox.recv()

    def watch_parent():
        with contextlib.suppress(EOFError, OSError):
            inbox.recv_bytes()
        os._exit(70)

    threading.Thread(target=watch_parent, daemon=True).start()
    outbox.send(execute(payload))
    outbox.close()


def execute_in_child(payload: Payload, limit: float) -> dict[str, Any]:
    """:func:`execute` in a fresh child process that is killed when it runs longer than
    ``limit`` seconds (counted from its start, its imports included): how a time limit is
    enforced where the caller is a thread that cannot be interrupted (a dask worker's).

    The child imports the caller's package (the caller's ``sys.path``, and not the working
    directory) and ends with its caller. Returns the node's record, or a failed record with
    ``timed_out`` (stopped at the limit) or ``died`` (the child died without a record)."""
    import multiprocessing.connection as mpc
    import subprocess

    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    env = dict(os.environ, PYTHONSAFEPATH="1", PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    code = "import sys; from genanalysis.sweep.worker import _child_main; _child_main(int(sys.argv[1]), int(sys.argv[2]))"
    started = time.time()
    try:
        proc = subprocess.Popen([sys.executable, "-c", code, str(in_r), str(out_w)], pass_fds=(in_r, out_w), env=env)
    finally:
        os.close(in_r)
        os.close(out_w)
    inbox, outbox = mpc.Connection(in_w, readable=False), mpc.Connection(out_r, writable=False)
    record: dict[str, Any] | None = None
    failure: dict[str, Any] = {}
    try:
        with contextlib.suppress(OSError):
            inbox.send(payload)
        if outbox.poll(max(0.0, started + limit - time.time())):
            try:
                record = outbox.recv()
            except (EOFError, OSError):
                failure = {"died": True, "reason": "child process died"}
        else:
            failure = {"timed_out": True, "reason": time_limit_reason(limit, "its child process was stopped")}
    finally:
        if record is None:
            proc.kill()
        inbox.close()
        outbox.close()
        rc = proc.wait()
    if record is not None:
        return record
    if failure.get("died"):
        failure["reason"] += f" (exit code {rc})"
    now = time.time()
    return {"status": "failed", "started": started, "finished": now, "wall_s": now - started, "cpu_s": 0.0,
            "host": socket.gethostname(), "pid": proc.pid, "attempt": payload.ctx.attempt, **failure}
