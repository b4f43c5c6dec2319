"""Where nodes run: a local process pool, a dask.distributed cluster, or in-process.

All three share one small interface — ``submit(token, payload)``, ``wait(timeout) ->
events``, ``close()`` — where an event is ``("result", token, record)`` (the worker's
record, done or failed), ``("died", token, reason)`` (the worker process died while
running it: the engine retries it), ``("timeout", token, reason)`` (the node ran longer
than the per-task time limit and its worker was stopped: recorded failed, not retried) or
``("error", token, reason)`` (the node could not be run at all, e.g. the payload does not
unpickle on a remote worker).

The local pool manages its worker processes itself (rather than through
``concurrent.futures``) so that a worker that dies — ``os._exit``, a segfault, SIGKILL, the
out-of-memory killer — is blamed on exactly the task it was running, and replaced, and so
that a task over its time limit can be stopped by stopping its worker.

Workers watch their coordinator through a liveness pipe whose only write end the
coordinator holds: when the coordinator is gone (SIGTERM, SIGKILL, a crash) the read end
reaches end-of-file and every worker exits within a fraction of a second, even in the
middle of a task. (Watching the parent process is not enough: a worker's parent is the
fork server, which itself lives as long as any worker does.)

Workers import the package their coordinator imported, wherever the user stands: the fork
server is started with ``PYTHONSAFEPATH`` set, so the working directory is not put on its
``sys.path`` (a folder named ``genanalysis`` there would otherwise be imported instead), and
each worker then takes the coordinator's ``sys.path``.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import multiprocessing.connection as mpc
import os
import re
import signal
import sys
import threading
import time
import uuid
from collections import deque
from typing import Any

from genanalysis.exceptions import InputError
from genanalysis.sweep.worker import Payload, execute, execute_in_child, time_limit_reason
from genanalysis.threads import THREAD_VARS

__all__ = ["LocalPool", "DaskExecutor", "InlineExecutor", "make_executor", "check_backend", "probe_scheduler",
           "DEFAULT_CONNECT_TIMEOUT_S"]

#: seconds to wait for a dask scheduler to answer (``run --connect-timeout``)
DEFAULT_CONNECT_TIMEOUT_S = 5.0

#: set only while the fork server starts (it must not see the working directory)
_SAFE_PATH_MARK = "GENANALYSIS_FORKSERVER_SAFEPATH"


def _watch_coordinator(alive) -> None:
    # blocks until the coordinator, the only holder of the write end, is gone
    with contextlib.suppress(EOFError, OSError):
        alive.recv_bytes()
    os._exit(70)


def _worker_main(conn, alive) -> None:
    if os.environ.pop(_SAFE_PATH_MARK, None) == "1":
        os.environ.pop("PYTHONSAFEPATH", None)  # the tasks' own subprocesses see the user's environment
    threading.Thread(target=_watch_coordinator, args=(alive,), daemon=True).start()
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
    def __init__(self, ctx, alive):
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=_worker_main, args=(child, alive), daemon=True)
        self.process.start()
        child.close()
        self.token: Any = None
        self.started = 0.0  # time.monotonic() when its current node was sent


@contextlib.contextmanager
def _worker_env(threads: int):
    """The environment the fork server (and so every worker) starts with: BLAS/OpenMP
    threads (unless the user set them) and no working directory on ``sys.path``."""
    saved = {k: os.environ.get(k) for k in (*THREAD_VARS, "PYTHONSAFEPATH", _SAFE_PATH_MARK)}
    for k in THREAD_VARS:
        os.environ.setdefault(k, str(threads))
    if not os.environ.get("PYTHONSAFEPATH"):
        os.environ["PYTHONSAFEPATH"] = "1"
        os.environ[_SAFE_PATH_MARK] = "1"
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
    or replacing a worker costs milliseconds. Every task runs with one BLAS/OpenMP thread
    (:func:`genanalysis.sweep.worker.execute`), whatever the number of workers, so a result
    does not depend on ``--workers``. ``task_timeout`` (s): a node running longer is
    reported ``("timeout", ...)`` and its worker is killed and replaced.
    """

    def __init__(self, workers: int, *, start_method: str = "forkserver", task_timeout: float | None = None):
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise InputError(f"--workers {workers!r}: need a whole number ≥ 1 (0 runs in-process)")
        self._ctx = mp.get_context(start_method)
        if start_method == "forkserver":
            self._ctx.set_forkserver_preload(["genanalysis.sweep.worker"])
        self._timeout = task_timeout
        # the read end goes to every worker; the write end never leaves this process
        self._alive_r, self._alive_w = self._ctx.Pipe(duplex=False)
        self._queue: deque = deque()
        self._workers = [self._spawn() for _ in range(workers)]
        self.description = f"{workers} local worker process{'es' if workers > 1 else ''}"

    def _spawn(self) -> _Worker:
        with _worker_env(1):
            return _Worker(self._ctx, self._alive_r)

    def submit(self, token, payload: Payload) -> None:
        self._queue.append((token, payload))

    def _dispatch(self) -> None:
        for w in self._workers:
            if w.token is None and self._queue:
                token, payload = self._queue.popleft()
                w.token = token
                w.started = time.monotonic()
                try:
                    w.conn.send((token, payload))
                except (BrokenPipeError, OSError):
                    pass  # its sentinel reports the death

    def wait(self, timeout: float) -> list[tuple[str, Any, Any]]:
        self._dispatch()
        busy = {w.conn: w for w in self._workers if w.token is not None}
        sentinels = {w.process.sentinel: w for w in self._workers}
        if self._timeout is not None and busy:
            first = min(w.started for w in busy.values()) + self._timeout
            timeout = max(0.0, min(timeout, first - time.monotonic()))
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
        if self._timeout is not None:
            now = time.monotonic()
            for w in self._workers:
                if w.token is not None and w not in dead and now - w.started >= self._timeout:
                    w.process.kill()
                    w.process.join(timeout=5)
                    events.append(("timeout", w.token, time_limit_reason(self._timeout, "its worker was stopped")))
                    w.token = None
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
        self._alive_w.close()
        self._alive_r.close()


class DaskExecutor:
    """Nodes as futures on a dask.distributed scheduler at ``address`` (``tcp://host:port``).

    Works with any cluster the scheduler fronts (``LocalCluster``, ``dask-jobqueue``
    clusters). The workers must import ``genanalysis`` and see the study's output directory
    (shared results are files in it). A worker that dies is rescheduled by dask up to its
    ``distributed.scheduler.allowed-failures`` setting; when dask gives up
    (``KilledWorker``) the engine counts one death and resubmits, up to ``retries``.
    While nodes wait and the scheduler has no worker at all, one line on stderr says so
    (every ``idle_notice_s`` seconds) instead of waiting silently; the sweep goes on as
    soon as workers connect. With a per-task time limit ``task_timeout`` (s), each node
    runs in a child process of its dask worker (:func:`~genanalysis.sweep.worker.execute_in_child`:
    a dask task is a thread, which cannot be stopped) that is killed at the limit; the node
    is then reported ``("timeout", ...)`` and the worker lives on.
    """

    def __init__(self, address: str, *, timeout: float = DEFAULT_CONNECT_TIMEOUT_S, idle_notice_s: float = 30.0,
                 task_timeout: float | None = None):
        from distributed import Client

        probe_scheduler(address, timeout)
        try:
            self.client = Client(address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise InputError(f"--scheduler {address!r}: cannot reach a dask scheduler ({exc})") from None
        self._address = address
        self._task_timeout = task_timeout
        self._futures: dict[Any, Any] = {}
        self._idle_notice_s = idle_notice_s
        self._no_workers_since: float | None = None
        self._last_notice = 0.0
        n = self._n_workers()
        self.description = f"dask scheduler {address} ({n} workers)"

    def _n_workers(self) -> int:
        return len(self.client.scheduler_info().get("workers", {}))

    def _notice_if_no_workers(self) -> None:
        now = time.monotonic()
        if self._n_workers():
            self._no_workers_since = None
            return
        if self._no_workers_since is None:
            self._no_workers_since = now
        if now - self._no_workers_since >= min(5.0, self._idle_notice_s) and \
                now - self._last_notice >= self._idle_notice_s:
            self._last_notice = now
            print(f"genanalysis: the dask scheduler {self._address} has no workers; {len(self._futures)} "
                  f"node{'s' if len(self._futures) != 1 else ''} waiting "
                  f"(for {now - self._no_workers_since:.0f} s) — start workers or stop the sweep",
                  file=sys.stderr, flush=True)

    def submit(self, token, payload: Payload) -> None:
        key = f"{payload.ctx.kind}-{payload.ctx.hash[:16]}-{payload.ctx.attempt}-{uuid.uuid4().hex[:6]}"
        if self._task_timeout is None:
            fut = self.client.submit(execute, payload, key=key, pure=False)
        else:
            fut = self.client.submit(execute_in_child, payload, self._task_timeout, key=key, pure=False)
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
            self._notice_if_no_workers()
            return []
        events = []
        for fut in done:
            token = self._futures.pop(fut)
            try:
                record = fut.result(timeout=60)
                if record.pop("timed_out", False):
                    events.append(("timeout", token, record["reason"]))
                elif record.pop("died", False):
                    events.append(("died", token, record["reason"]))
                else:
                    events.append(("result", token, record))
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


class _TimeLimit(BaseException):
    """Raised into an in-process node at its time limit (a BaseException, so that the
    node's own ``except Exception`` does not take it for a failure of its own)."""


class InlineExecutor:
    """Runs each node in the coordinating process (``--workers 0``): for debugging only —
    a task that kills its process kills the sweep. The per-task time limit
    ``task_timeout`` (s) is an alarm signal (SIGALRM) that interrupts the node: it needs
    the main thread, and it takes effect between Python operations, so a node inside one
    long call of compiled code (a LAPACK factorisation) is stopped when that call returns."""

    description = "in-process (no workers)"

    def __init__(self, task_timeout: float | None = None):
        if task_timeout is not None and (threading.current_thread() is not threading.main_thread()
                                         or not hasattr(signal, "setitimer")):
            raise InputError("study.task_timeout_s with --workers 0 needs the main thread of the process (it is "
                             "an alarm signal); run with --workers 1 or more")
        self._timeout = task_timeout
        self._events: list = []

    def submit(self, token, payload: Payload) -> None:
        if self._timeout is None:
            self._events.append(("result", token, execute(payload)))
            return
        armed = [True]

        def alarm(signum, frame):
            if armed[0]:
                raise _TimeLimit

        previous = signal.signal(signal.SIGALRM, alarm)
        try:
            signal.setitimer(signal.ITIMER_REAL, self._timeout)
            record = execute(payload)
            armed[0] = False
            self._events.append(("result", token, record))
        except _TimeLimit:
            self._events.append(("timeout", token, time_limit_reason(self._timeout, "it was interrupted")))
        finally:
            armed[0] = False
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)

    def wait(self, timeout: float) -> list[tuple[str, Any, Any]]:
        events, self._events = self._events, []
        return events

    def close(self) -> None:
        self._events = []


_ADDRESS = re.compile(r"^(?:(?:tcp|tls|ucx|ws|wss|inproc)://[^\s/]+|[A-Za-z0-9_.\-]+:\d{1,5})/?$")


def check_backend(*, workers: int | None = None, scheduler: str | None = None) -> None:
    """Refuse a bad ``--workers``/``--scheduler`` choice without touching anything (the
    engine calls this before it creates the output directory)."""
    if scheduler is not None:
        if workers is not None:
            raise InputError("--workers and --scheduler exclude each other: the cluster decides its workers")
        if not isinstance(scheduler, str) or not _ADDRESS.match(scheduler):
            raise InputError(f"--scheduler {scheduler!r} is not a scheduler address; use tcp://HOST:PORT "
                             "(or HOST:PORT)")
        return
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or not 0 <= workers <= 1024):
        raise InputError(f"--workers {workers!r}: need a whole number in 0..1024 (0 runs in-process)")


def _tcp(address: str) -> str | None:
    """``tcp://HOST:PORT`` of a TCP scheduler address (with or without its scheme), else None."""
    if address.startswith("tcp://"):
        return address.rstrip("/")
    return None if "://" in address else f"tcp://{address.rstrip('/')}"


def probe_scheduler(address: str, timeout: float = DEFAULT_CONNECT_TIMEOUT_S) -> None:
    """Refuse (:class:`InputError`, one line) a TCP address at which no dask scheduler
    answers within ``timeout`` seconds: nothing listening, a host that does not answer, or a
    server that is not a dask scheduler (e.g. the dashboard's web port).

    The probe is one handshake and an ``identity`` request under a hard deadline, in a
    thread of its own (so it works beside a running event loop); a client connecting to a
    server that does not speak dask's protocol could otherwise wait forever, and one that
    failed to connect takes twice its timeout to close. Other schemes (tls://, ucx://, ...)
    need the cluster's security settings and are left to the client."""
    import asyncio

    tcp = _tcp(address)
    if tcp is None:
        return
    outcome: list = []

    async def identity():
        from distributed.comm import connect

        comm = await connect(tcp, timeout=timeout)
        try:
            await comm.write({"op": "identity", "reply": True})
            return await comm.read()
        finally:
            comm.abort()

    def probe():
        try:
            outcome.append(asyncio.run(asyncio.wait_for(identity(), timeout)))
        except (OSError, asyncio.TimeoutError) as exc:
            outcome.append(exc)
        # anything else means the server answered but not in dask's protocol (a web server's
        # bytes read as a frame header can ask for an exabyte): that is an address error too
        except Exception as exc:  # noqa: BLE001
            outcome.append(exc)

    thread = threading.Thread(target=probe, name="genanalysis-scheduler-probe", daemon=True)
    thread.start()
    thread.join(timeout + 2.0)
    got = outcome[0] if outcome else None
    if isinstance(got, dict) and got.get("type") == "Scheduler":
        return
    if got is None or isinstance(got, (OSError, asyncio.TimeoutError)):
        why = f"nothing answered within {timeout:g} s (--connect-timeout)"
    elif isinstance(got, Exception):
        why = f"the server there does not speak dask's protocol ({type(got).__name__})"
    else:
        why = f"the server there is not a dask scheduler (it says it is a {got.get('type', '?')!s})" \
            if isinstance(got, dict) else "the server there is not a dask scheduler"
    raise InputError(f"--scheduler {address!r}: no dask scheduler reachable: {why}")


def make_executor(*, workers: int | None = None, scheduler: str | None = None, task_timeout: float | None = None,
                  connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S):
    """The executor for ``--workers K`` / ``--scheduler ADDRESS`` (default: one worker per CPU).

    ``task_timeout`` (s) is enforced by every executor, each in its own way (see
    :class:`LocalPool`, :class:`DaskExecutor`, :class:`InlineExecutor`)."""
    check_backend(workers=workers, scheduler=scheduler)
    if scheduler is not None:
        return DaskExecutor(scheduler, timeout=connect_timeout, task_timeout=task_timeout)
    if workers is None:
        workers = os.cpu_count() or 1
    return InlineExecutor(task_timeout) if workers == 0 else LocalPool(workers, task_timeout=task_timeout)
