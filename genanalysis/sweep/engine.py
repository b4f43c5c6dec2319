"""Run a study: plan it, skip what is finished, build shared work once, run the rest.

Output directory layout::

    DIR/study.toml          the spec that was run (the last run's, if rerun with another)
    DIR/results.sqlite      the results database (genanalysis.results)
    DIR/shared/KIND-HASH.npz  shared-work results, one file per content hash (data only)
    DIR/artifacts/HASH16/   files a task chose to write (ctx.artifacts)
    DIR/.lock               held while a coordinator runs (one coordinator per directory)

Guarantees: every finished task is written in one transaction by this (coordinating)
process; a task that raises is recorded ``failed: reason``; a task whose worker dies is
retried ``study.retries`` times, then recorded failed; a task or shared build running longer
than ``study.task_timeout_s`` (on any backend) is stopped and recorded failed (not
retried); a rerun skips every task already in
the database (``retry_failed=True`` reruns the failed ones) and reuses every shared result
already on disk, so a sweep killed at any moment and rerun ends with each task once. A
shared file is reused only if it passes its check (:func:`~genanalysis.sweep.sharedio.check`:
readable, written for the hash in its name, matching its checksum); any other file there
is treated as missing and built again. No file of a results directory is ever unpickled.
"""

from __future__ import annotations

import fcntl
import os
import sys
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import tomli_w

from genanalysis.exceptions import InputError
from genanalysis.results import DB_NAME, SUCCESS_STATUSES, ResultsStore, result_status, status_counts
from genanalysis.sweep import sharedio
from genanalysis.sweep.executors import DEFAULT_CONNECT_TIMEOUT_S, check_backend, make_executor, probe_scheduler
from genanalysis.sweep.plan import Node, Plan, build_plan
from genanalysis.sweep.spec import Study, load_study
from genanalysis.sweep.worker import Payload, TaskContext, atomic_write_bytes

__all__ = ["RunSummary", "run_study", "shared_path"]


@dataclass(frozen=True)
class RunSummary:
    """What a run did: task counts (``skipped`` were already in the database), shared-work
    builds and reuses, wall time (s)."""

    out: Path
    total: int
    skipped: int
    done: int
    failed: int
    shared_built: int
    shared_reused: int
    wall_s: float
    backend: str = ""
    #: this run's done tasks by the status their result reports (``converged``, ``fit failure``, ...)
    statuses: Mapping[str, int] = field(default_factory=dict)
    #: ``study.fail_on_status``: results whose status is not a success make the run unsuccessful
    fail_on_status: bool = False

    @property
    def unsuccessful(self) -> int:
        """Done tasks of this run whose result status is not a success (no stable
        equilibrium, solver failure, fit failure, ...)."""
        return sum(n for s, n in self.statuses.items() if s not in SUCCESS_STATUSES)

    @property
    def ok(self) -> bool:
        """No task failed in this run (and, with ``fail_on_status``, every result succeeded)."""
        return self.failed == 0 and not (self.fail_on_status and self.unsuccessful)

    def __str__(self) -> str:
        by = ""
        if self.unsuccessful:
            by = " (" + ", ".join(f"{n} {s}" for s, n in status_counts(self.statuses).items()) + ")"
        return (f"{self.total} tasks: {self.done} done{by}, {self.failed} failed, {self.skipped} already in the "
                f"database; shared work: {self.shared_built} built, {self.shared_reused} reused; {self.wall_s:.1f} s "
                f"({self.backend}); results in {self.out}")


def shared_path(out: Path, node: Node) -> Path:
    """The cache file of a shared node."""
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in node.kind.name)
    return out / "shared" / f"{slug}-{node.hash}.npz"


def _reusable(path: Path, quiet: bool) -> bool:
    """Whether the shared file ``path`` holds a valid result (else it is built again)."""
    if not path.exists():
        return False
    reason = sharedio.check(path)
    if reason is not None and not quiet:
        print(f"genanalysis: shared work {path.name} {reason}: building it again", file=sys.stderr)
    return reason is None


class _Lock:
    def __init__(self, out: Path):
        self.fh = open(out / ".lock", "a+")
        try:
            fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.fh.close()
            raise InputError(f"--out {str(out)!r} is in use by another running sweep; wait for it or choose "
                             "another directory") from None

    def release(self) -> None:
        fcntl.flock(self.fh, fcntl.LOCK_UN)
        self.fh.close()


def _progress(total: int, initial: int, desc: str, quiet: bool):
    if quiet or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="task", file=sys.stderr, dynamic_ncols=True)


def run_study(study: Study | str | Path, out: str | Path, *, workers: int | None = None,
              scheduler: str | None = None, quiet: bool = False, retry_failed: bool = False,
              poll_s: float = 0.5, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S) -> RunSummary:
    """Run every unfinished task of ``study`` into ``out`` (see the module docstring).

    ``workers``: local worker processes (default: one per CPU; 0 = in-process);
    ``scheduler``: address of a dask.distributed scheduler instead, which must answer within
    ``connect_timeout`` seconds. Raises :class:`InputError` for a bad spec, a bad backend
    or an unreachable scheduler before anything is written.
    """
    t0 = time.time()
    if not isinstance(study, Study):
        study = load_study(study)
    plan = build_plan(study)
    check_backend(workers=workers, scheduler=scheduler)
    if scheduler is not None:
        probe_scheduler(scheduler, connect_timeout)
    out = Path(out).resolve()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out {str(out)!r}: cannot create the directory ({exc.strerror})") from None
    lock = _Lock(out)
    if (out / DB_NAME).exists():  # a damaged database is refused before anything is written
        ResultsStore(out, readonly=True).close()
    try:
        return _run(plan, out, workers=workers, scheduler=scheduler, quiet=quiet, retry_failed=retry_failed,
                    poll_s=poll_s, t0=t0, connect_timeout=connect_timeout)
    finally:
        lock.release()


def _run(plan: Plan, out: Path, *, workers, scheduler, quiet, retry_failed, poll_s, t0, connect_timeout) -> RunSummary:
    study = plan.study
    atomic_write_bytes(out / "study.toml", tomli_w.dumps(dict(study.raw)).encode("utf-8"))
    store = ResultsStore(out)
    try:
        store.set_meta("study", dict(study.raw))
        store.set_meta("units", plan.units())
        store.set_points([(t.point, t.hash, t.overrides) for t in plan.tasks])
        states = store.states()
        skip = {"done", "failed"} if not retry_failed else {"done"}
        pending = [t for t in plan.tasks if states.get(t.hash) not in skip]
        skipped = len(plan.tasks) - len(pending)

        # the shared work the pending tasks need, transitively; what is on disk is reused
        needed: dict[str, Node] = {}
        stack = [h for t in pending for _, h in t.deps]
        while stack:
            h = stack.pop()
            if h not in needed:
                needed[h] = plan.shared[h]
                stack.extend(dh for _, dh in plan.shared[h].deps)
        available = {h for h, n in needed.items() if _reusable(shared_path(out, n), quiet)}
        for h in available:
            store.adopt_shared(hash=h, kind=needed[h].kind.name, params=needed[h].params)
        to_build = [n for h, n in needed.items() if h not in available]
        counts = {"done": 0, "failed": 0, "built": 0}
        statuses: dict[str, int] = defaultdict(int)
        if not pending:
            return RunSummary(out, len(plan.tasks), skipped, 0, 0, 0, len(available), time.time() - t0, "nothing to run",
                              fail_on_status=study.fail_on_status)

        executor = make_executor(workers=workers, scheduler=scheduler, task_timeout=study.task_timeout_s,
                                 connect_timeout=connect_timeout)
        bar = _progress(len(plan.tasks), skipped, study.name, quiet)
        try:
            _loop(plan, out, store, executor, pending, to_build, available, counts, statuses, bar, poll_s)
        finally:
            if bar is not None:
                bar.close()
            executor.close()
        return RunSummary(out, len(plan.tasks), skipped, counts["done"], counts["failed"], counts["built"],
                          len(available) - counts["built"], time.time() - t0, executor.description,
                          dict(statuses), study.fail_on_status)
    finally:
        store.close()


def _loop(plan, out, store, executor, pending, to_build, available, counts, statuses, bar, poll_s) -> None:
    study = plan.study
    nodes = {n.hash: n for n in [*pending, *to_build]}
    dependents: dict[str, list[str]] = defaultdict(list)
    for n in nodes.values():
        for _, h in n.deps:
            dependents[h].append(n.hash)
    attempts: dict[str, int] = defaultdict(int)
    failed_shared: dict[str, str] = {}
    open_tasks = {t.hash for t in pending}
    submitted: set[str] = set()

    def submit(node: Node) -> None:
        attempts[node.hash] += 1
        ctx = TaskContext(node.hash, node.kind.name, attempts[node.hash], str(out / "artifacts" / node.hash[:16]))
        inputs = {alias: str(shared_path(out, plan.shared[h])) for alias, h in node.deps}
        output = str(shared_path(out, node)) if node.role == "shared" else None
        submitted.add(node.hash)
        executor.submit(node.hash, Payload(node.role, node.kind.fn, node.params, inputs, ctx, output))

    def maybe_submit(node: Node) -> None:
        if node.hash in submitted:
            return
        bad = [h for _, h in node.deps if h in failed_shared]
        if bad:
            finish(node, {"status": "failed", "attempt": 0,
                          "reason": f"shared work {plan.shared[bad[0]].kind.name} failed ({failed_shared[bad[0]]})"})
            return
        if all(h in available for _, h in node.deps):
            submit(node)

    def finish(node: Node, record: dict) -> None:
        submitted.add(node.hash)
        if node.role == "shared":
            store.record_shared(hash=node.hash, kind=node.kind.name, params=node.params, record=record)
            if record.get("status") == "done":
                available.add(node.hash)
                counts["built"] += 1
            else:
                failed_shared[node.hash] = record.get("reason", "unknown reason")
            for h in dependents.get(node.hash, ()):
                maybe_submit(nodes[h])
            return
        store.record_task(hash=node.hash, kind=node.kind.name, study=study.name, point=node.point,
                          params=node.params, overrides=node.overrides, record=record)
        open_tasks.discard(node.hash)
        ok = record.get("status") == "done"
        counts["done" if ok else "failed"] += 1
        if ok:
            statuses[result_status("done", record.get("metrics"))] += 1
        if bar is not None:
            bar.update(1)
            if counts["failed"]:
                bar.set_postfix(failed=counts["failed"], refresh=False)

    for node in [*to_build, *pending]:
        maybe_submit(node)
    while open_tasks:
        for event, token, value in executor.wait(poll_s):
            node = nodes[token]
            if event == "result":
                finish(node, value)
            elif event == "died" and attempts[token] <= study.retries:
                submit(node)
            elif event == "timeout":  # a rerun would take as long: not retried
                finish(node, {"status": "failed", "reason": value, "attempt": attempts[token]})
            else:
                n = attempts[token]
                reason = value if event == "error" else f"{value}; gave up after {n} attempt{'s' if n > 1 else ''}"
                finish(node, {"status": "failed", "reason": reason, "attempt": n})
