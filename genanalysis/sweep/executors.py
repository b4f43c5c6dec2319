"""Where nodes run: a local process pool, a dask.distributed cluster, or in-process.

All three share one small interface — ``submit(token, payload)``, ``wait(timeout) ->
events``, ``close()`` — where an event is ``("result", token, record)`` (the worker's
record, done or failed), ``("died", token, reason)`` (the worker process died while
running it: the engine retries it) or ``("error", token, reason)`` (the node could not be
run at all, e.g. the payload does not unpickle on a remote worker).

The local pool manages its worker processes itself (rather than through
``concurrent.futures``) so that a worker that dies — ``os._exit``, a segfault, SIGKILL, the
out-of-memory killer — is blamed on exactly the task it was running, and replaced.
Workers watch their parent and exit when it is gone, so killing the coordinator (even with
``kill -9``) leaves no orphans computing for nobody.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import multiprocessing.connection as mpc
import os
import threading
import time
import uuid
from collections import deque
from typing import Any

from genanalysis.exceptions import InputError
from genanalysis.sweep.worker import Payload, execute

__all__ = ["LocalPool", "DaskExecutor", "InlineExecutor", "make_executor"]

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _watch_parent(parent_pid: int) -> None:
    while True:
        time.sleep(0.5)
        if os.getppid() != parent_pid:
            os._exit(70)


def _worker_main(conn) -> None:
    # the parent is the coordinator (spawn) or the fork server, which exits with it
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        token, payload = msg
        record = execute(payload)
        try:
            conn.send((token, record))
        except (BrokenPipeError, OSError):
            return


class _Worker:
    def __init__(self, ctx):
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=_worker_main, args=(child,), daemon=True)
        self.process.start()
        child.close()
        self.token: Any = None


@contextlib.contextmanager
def _thread_env(threads: int):
    saved = {k: os.environ.get(k) for k in _THREAD_VARS}
    for k in _THREAD_VARS:
        os.environ.setdefault(k, str(threads))
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class LocalPool:
    """``workers`` processes, each running one node at a time.

    Workers are forked from a fork server (``multiprocessing`` "forkserver": single-threaded,
    so safe beside threads in the coordinator) that has imported NumPy once, so starting
    or replacing a worker costs milliseconds. BLAS/OpenMP threads per worker default to
    ``cpu_count // workers`` (at least 1) unless the environment sets them; they are fixed
    when the fork server starts (the first pool of the process).
    """

    def __init__(self, workers: int, *, start_method: str = "forkserver"):
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise InputError(f"--workers {workers!r}: need a whole number ≥ 1 (0 runs in-process)")
        self._ctx = mp.get_context(start_method)
        if start_method == "forkserver":
            self._ctx.set_forkserver_preload(["genanalysis.sweep.worker"])
        self._threads = max(1, (os.cpu_count() or 1) // workers)
        self._queue: deque = deque()
        self._workers = [self._spawn() for _ in range(workers)]
        self.description = f"{workers} local worker process{'es' if workers > 1 else ''}"

    def _spawn(self) -> _Worker:
        with _thread_env(self._threads):
            return _Worker(self._ctx)

    def submit(self, token, payload: Payload) -> None:
        self._queue.append((token, payload))

    def _dispatch(self) -> None:
        for w in self._workers:
            if w.token is None and self._queue:
                token, payload = self._queue.popleft()
                w.token = token
                try:
                    w.conn.send((token, payload))
                except (BrokenPipeError, OSError):
                    pass  # its sentinel reports the death

    def wait(self, timeout: float) -> list[tuple[str, Any, Any]]:
        self._dispatch()
        busy = {w.conn: w for w in self._workers if w.token is not None}
        sentinels = {w.process.sentinel: w for w in self._workers}
        ready = mpc.wait([*busy, *sentinels], timeout)
        events = []
        dead = []
        for obj in ready:
            w = busy.get(obj)
            if w is None:
                continue
            try:
                token, record = w.conn.recv()
            except (EOFError, OSError):
                dead.append(w)
                continue
            events.append(("result", token, record))
            w.token = None
        for obj in ready:
            w = sentinels.get(obj)
            if w is not None and w not in dead:
                dead.append(w)
        for w in dead:
            w.process.join(timeout=5)
            if w.token is not None:
                events.append(("died", w.token, f"worker process died (exit code {w.process.exitcode})"))
            w.conn.close()
            self._workers[self._workers.index(w)] = self._spawn()
        self._dispatch()
        return events

    def close(self) -> None:
        for w in self._workers:
            with contextlib.suppress(OSError):
                if w.token is None:
                    w.conn.send(None)
        deadline = time.time() + 5
        for w in self._workers:
            if w.token is not None:
                w.process.terminate()
            w.process.join(timeout=max(0.1, deadline - time.time()))
            if w.process.is_alive():
                w.process.kill()
                w.process.join(timeout=5)
            w.conn.close()
        self._workers = []


class DaskExecutor:
    """Nodes as futures on a dask.distributed scheduler at ``address`` (``tcp://host:port``).

    Works with any cluster the scheduler fronts (``LocalCluster``, ``dask-jobqueue``
    clusters). The workers must import ``genanalysis`` and see the study's output directory
    (shared results are files in it). A worker that dies is rescheduled by dask up to its
    ``distributed.scheduler.allowed-failures`` setting; when dask gives up
    (``KilledWorker``) the engine counts one death and resubmits, up to ``retries``.
    """

    def __init__(self, address: str, *, timeout: float = 30.0):
        from distributed import Client

        try:
            self.client = Client(address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise InputError(f"--scheduler {address!r}: cannot reach a dask scheduler ({exc})") from None
        self._futures: dict[Any, Any] = {}
        n = len(self.client.scheduler_info().get("workers", {}))
        self.description = f"dask scheduler {address} ({n} workers)"

    def submit(self, token, payload: Payload) -> None:
        key = f"{payload.ctx.kind}-{payload.ctx.hash[:16]}-{payload.ctx.attempt}-{uuid.uuid4().hex[:6]}"
        fut = self.client.submit(execute, payload, key=key, pure=False)
        self._futures[fut] = token

    def wait(self, timeout: float) -> list[tuple[str, Any, Any]]:
        from distributed.client import _wait
        from distributed.scheduler import KilledWorker

        if not self._futures:
            time.sleep(min(timeout, 0.1))
            return []
        try:
            # distributed.wait() would need a process-wide default client; use ours
            done, _ = self.client.sync(_wait, list(self._futures), timeout=timeout, return_when="FIRST_COMPLETED")
        except TimeoutError:
            return []
        events = []
        for fut in done:
            token = self._futures.pop(fut)
            try:
                events.append(("result", token, fut.result(timeout=60)))
            except KilledWorker as exc:
                events.append(("died", token, f"dask worker died ({type(exc).__name__})"))
            except Exception as exc:  # noqa: BLE001
                if fut.status == "error":  # the node could not run (our worker wrapper never raises)
                    events.append(("error", token, f"{type(exc).__name__}: {exc}"[:500]))
                else:  # e.g. the result was lost with its worker before we gathered it
                    events.append(("died", token, f"result lost ({type(exc).__name__}: {exc})"[:500]))
            fut.release()
        return events

    def close(self) -> None:
        for fut in list(self._futures):
            fut.cancel()
        self._futures.clear()
        self.client.close()


class InlineExecutor:
    """Runs each node in the coordinating process (``--workers 0``): for debugging only —
    a task that kills its process kills the sweep."""

    description = "in-process (no workers)"

    def __init__(self):
        self._events: list = []

    def submit(self, token, payload: Payload) -> None:
        self._events.append(("result", token, execute(payload)))

    def wait(self, timeout: float) -> list[tuple[str, Any, Any]]:
        events, self._events = self._events, []
        return events

    def close(self) -> None:
        self._events = []


def make_executor(*, workers: int | None = None, scheduler: str | None = None):
    """The executor for ``--workers K`` / ``--scheduler ADDRESS`` (default: one worker per CPU)."""
    if scheduler:
        if workers is not None:
            raise InputError("--workers and --scheduler exclude each other: the cluster decides its workers")
        return DaskExecutor(scheduler)
    if workers is None:
        workers = os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0 or workers > 1024:
        raise InputError(f"--workers {workers!r}: need a whole number in 0..1024 (0 runs in-process)")
    return InlineExecutor() if workers == 0 else LocalPool(workers)
