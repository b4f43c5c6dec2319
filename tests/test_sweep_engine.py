"""The sweep engine: local workers, failures, dying workers, shared work once, resuming, kill -9.

Every sweep here runs real processes on the toy probe task (tests/toykinds.py):
``y = x² + seed``, optional sleep, failure or self-kill on chosen attempts.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tomli_w

from genanalysis.exceptions import InputError
from genanalysis.results import ResultsStore
from genanalysis.sweep import parse_study, run_study


def probe(xs, *, g=(0,), seeds=(0,), retries=1, **experiment):
    return {
        "study": {"name": "probe", "task": "toy.probe", "retries": retries, "imports": ["toykinds"]},
        "trainingset": {"g": g[0]},
        "experiment": {"x": xs[0], **experiment},
        "sweep": {"experiment.x": list(xs), "trainingset.g": list(g), "seed": list(seeds)},
    }


def rows_by_x(out):
    with ResultsStore(out) as store:
        return {(r.params["experiment"]["x"], r.params["trainingset"]["g"], r.params.get("seed")): r
                for r in store.tasks()}


def test_local_pool_runs_every_task_and_reuses_shared_work(tmp_path):
    raw = probe([1.0, 2.0, 3.0, 4.0], g=(0, 1), seeds=(0, 2))
    s = run_study(parse_study(raw), tmp_path, workers=2, quiet=True)
    assert (s.total, s.done, s.failed, s.shared_built) == (16, 16, 0, 2)
    rows = rows_by_x(tmp_path)
    assert len(rows) == 16
    for (x, g, seed), r in rows.items():
        assert r.status == "done" and r.metrics["y"] == x * x + seed
        assert r.versions["python"] and r.versions["numpy"] and r.wall_s >= 0
    # every task with the same training set read the same build, distinct sets distinct builds
    tokens = {g: {r.fit_report["shared_token"] for (x, gg, s_), r in rows.items() if gg == g} for g in (0, 1)}
    assert all(len(t) == 1 for t in tokens.values()) and tokens[0] != tokens[1]
    with ResultsStore(tmp_path) as store:
        assert sorted(r["builds"] for r in store.shared_rows()) == [1, 1]
    # a rerun skips everything and builds nothing
    again = run_study(parse_study(raw), tmp_path, workers=2, quiet=True)
    assert (again.skipped, again.done, again.shared_built) == (16, 0, 0)
    # extending the sweep reuses the cached shared work for the new points
    more = run_study(parse_study(probe([1.0, 2.0, 3.0, 4.0, 5.0], g=(0, 1), seeds=(0, 2))), tmp_path, workers=2,
                     quiet=True)
    assert (more.skipped, more.done, more.shared_built, more.shared_reused) == (16, 4, 0, 2)


def test_failing_task_is_recorded_with_its_reason_and_the_sweep_goes_on(tmp_path):
    raw = probe([1.0, 2.0, 3.0])
    raw["sweep"]["experiment.fail"] = [False, True]
    s = run_study(parse_study(raw), tmp_path, workers=2, quiet=True)
    assert (s.done, s.failed) == (3, 3)
    with ResultsStore(tmp_path) as store:
        for r in store.tasks():
            if r.params["experiment"]["fail"]:
                assert r.state == "failed" and r.status.startswith("failed: ValueError: probe asked to fail")
                assert r.metrics == {}
            else:
                assert r.status == "done"
    # failed tasks are finished: a rerun skips them unless asked to retry them
    assert run_study(parse_study(raw), tmp_path, workers=1, quiet=True).skipped == 6
    retry = run_study(parse_study(raw), tmp_path, workers=1, quiet=True, retry_failed=True)
    assert (retry.skipped, retry.failed) == (3, 3)
    with ResultsStore(tmp_path) as store:
        assert store.count() == 6


def test_dying_worker_is_retried_then_recorded_failed(tmp_path):
    # x=1 exits on attempt 1 only, x=3 is SIGKILLed on attempt 1 only (both succeed on the
    # retry); x=2 is SIGKILLed on every attempt
    raw = probe([0.0], retries=1)
    raw["sweep"] = {"mode": "zip", "experiment.x": [0.0, 1.0, 2.0, 3.0],
                    "experiment.die_attempts": [[], [1], [1, 2], [1]],
                    "experiment.die_signal": [False, False, True, True]}
    s = run_study(parse_study(raw), tmp_path, workers=2, quiet=True)
    assert (s.done, s.failed) == (3, 1)
    rows = {r.params["experiment"]["x"]: r for r in ResultsStore(tmp_path).tasks()}
    assert rows[0.0].metrics["attempt"] == 1
    assert rows[1.0].status == "done" and rows[1.0].metrics["attempt"] == 2
    assert rows[3.0].status == "done" and rows[3.0].metrics["attempt"] == 2
    assert rows[2.0].status == "failed: worker process died (exit code -9); gave up after 2 attempts"


def test_in_process_executor_and_bad_worker_counts(tmp_path):
    s = run_study(parse_study(probe([1.0, 2.0])), tmp_path, workers=0, quiet=True)
    assert s.done == 2
    with pytest.raises(InputError, match="--workers"):
        run_study(parse_study(probe([5.0])), tmp_path / "b", workers=-1, quiet=True)


def test_second_coordinator_on_one_directory_is_refused(tmp_path):
    import fcntl

    tmp_path.mkdir(exist_ok=True)
    with open(tmp_path / ".lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        with pytest.raises(InputError, match="in use by another running sweep"):
            run_study(parse_study(probe([1.0])), tmp_path, workers=0, quiet=True)


# -- kill -9 of the coordinator ----------------------------------------------------------

def _count(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as con:
            return con.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


KILL_SPEC = probe([float(x) for x in range(10)], g=(0, 1), sleep=0.15)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    assert run_study(parse_study(KILL_SPEC), out, workers=2, quiet=True).done == 20
    return out


@pytest.mark.parametrize("kill_after", [0, 6])
def test_sweep_killed_with_sigkill_and_rerun_loses_and_duplicates_nothing(tmp_path, kill_after, uninterrupted):
    raw = KILL_SPEC
    spec = tmp_path / "probe.toml"
    spec.write_text(tomli_w.dumps(raw))

    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "genanalysis", "run", str(spec), "--out", str(out),
                             "--workers", "2", "--quiet"], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    if kill_after == 0:
        time.sleep(0.8)  # mid start-up: workers spawning, shared work being built
    else:
        while _count(out / "results.sqlite") < kill_after and time.time() < deadline:
            time.sleep(0.02)
    assert proc.poll() is None, proc.stderr.read().decode()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    killed_at = _count(out / "results.sqlite")
    assert killed_at < 20
    # the orphaned workers notice and exit on their own
    deadline = time.time() + 10
    while _alive(proc.pid) and time.time() < deadline:
        time.sleep(0.1)
    assert not _alive(proc.pid), "worker processes outlived their killed coordinator"

    rerun = run_study(parse_study(raw), out, workers=2, quiet=True)
    assert rerun.skipped == killed_at and rerun.done == 20 - killed_at and rerun.failed == 0
    with ResultsStore(out) as a, ResultsStore(uninterrupted) as b:
        got = {r.hash: (r.status, r.metrics) for r in a.tasks(current=False)}
        want = {r.hash: (r.status, r.metrics) for r in b.tasks(current=False)}
        assert a.count() == 20 and len(got) == 20
        assert got == want
        # shared work: each training set built once per directory and never rebuilt after a
        # complete write (a build in flight at the kill may run again)
        assert {r["hash"] for r in a.shared_rows()} == {r["hash"] for r in b.shared_rows()}


# -- dask.distributed --------------------------------------------------------------------

@pytest.fixture(scope="module")
def dask_cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=40) as cluster:
        yield cluster


def test_sweep_on_a_dask_local_cluster(tmp_path, dask_cluster):
    raw = probe([1.0, 2.0, 3.0], g=(0, 1))
    raw["sweep"]["experiment.fail"] = [False, True]
    s = run_study(parse_study(raw), tmp_path, scheduler=dask_cluster.scheduler_address, quiet=True)
    assert (s.total, s.done, s.failed, s.shared_built) == (12, 6, 6, 2)
    assert "dask scheduler" in s.backend
    rows = ResultsStore(tmp_path).tasks()
    assert len(rows) == 12
    for r in rows:
        ex = r.params["experiment"]
        if ex["fail"]:
            assert r.status.startswith("failed: ValueError: probe asked to fail")
        else:
            assert r.status == "done" and r.metrics["y"] == ex["x"] ** 2 + r.params["seed"]
    # the same spec run locally gives the same rows (the backend is not part of a result)
    local = run_study(parse_study(raw), tmp_path / "local", workers=2, quiet=True)
    assert local.done == 6
    want = {r.hash: (r.status.split(" (at ")[0], r.metrics) for r in ResultsStore(tmp_path / "local").tasks()}
    got = {r.hash: (r.status.split(" (at ")[0], r.metrics) for r in rows}
    assert got == want


def test_dask_task_over_its_time_limit_is_recorded_failed_and_the_sweep_completes(tmp_path, dask_cluster):
    # each node runs in a child process of its dask worker, killed at the limit (which
    # counts the child's imports: generous, so that a loaded machine does not stop the others)
    raw = probe([0.0], retries=0)
    raw["study"]["task_timeout_s"] = 12
    raw["sweep"] = {"mode": "zip", "experiment.x": [1.0, 2.0, 3.0], "experiment.sleep": [0.0, 60.0, 0.0]}
    t0 = time.monotonic()
    s = run_study(parse_study(raw), tmp_path, scheduler=dask_cluster.scheduler_address, quiet=True)
    assert time.monotonic() - t0 < 55
    assert (s.total, s.done, s.failed) == (3, 2, 1)
    rows = {r.params["experiment"]["x"]: r for r in ResultsStore(tmp_path).tasks()}
    assert rows[1.0].status == "done" and rows[3.0].metrics["y"] == 9.0
    assert rows[2.0].state == "failed"
    assert "exceeded the time limit of 12 s (study.task_timeout_s); its child process was stopped" in rows[2.0].status
    # the workers survive their stopped children
    assert len(dask_cluster.scheduler_info["workers"]) == 2


def test_a_sweep_whose_dask_workers_are_all_gone_says_so(tmp_path):
    from distributed import LocalCluster

    raw = probe([1.0, 2.0])
    spec = tmp_path / "p.toml"
    spec.write_text(tomli_w.dumps(raw))
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=40) as cluster:
        cluster.scale(0)
        deadline = time.time() + 30
        while cluster.scheduler_info["workers"] and time.time() < deadline:
            time.sleep(0.1)
        assert not cluster.scheduler_info["workers"]
        proc = subprocess.Popen([sys.executable, "-m", "genanalysis", "run", str(spec), "--out", str(tmp_path / "o"),
                                 "--scheduler", cluster.scheduler_address, "--quiet"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            line = ""
            deadline = time.time() + 60
            while time.time() < deadline and "has no workers" not in line:
                line = proc.stderr.readline()
                if not line and proc.poll() is not None:
                    break
        finally:
            proc.kill()
            proc.wait()
    assert f"the dask scheduler {cluster.scheduler_address} has no workers" in line, line
    assert "waiting" in line and "start workers or stop the sweep" in line


@pytest.mark.slow
def test_dying_dask_worker_is_retried_then_recorded_failed(tmp_path, dask_cluster):
    # dask reruns a task whose worker died up to its allowed-failures (default 3), then
    # raises KilledWorker; the engine then counts one death and resubmits (retries = 1)
    raw = probe([0.0], retries=1)
    raw["sweep"] = {"mode": "zip", "experiment.x": [0.0, 1.0, 2.0], "experiment.die_attempts": [[], [1], [1, 2]]}
    s = run_study(parse_study(raw), tmp_path, scheduler=dask_cluster.scheduler_address, quiet=True)
    assert (s.done, s.failed) == (2, 1)
    rows = {r.params["experiment"]["x"]: r for r in ResultsStore(tmp_path).tasks()}
    assert rows[1.0].status == "done" and rows[1.0].metrics["attempt"] == 2
    assert rows[2.0].status.startswith("failed: dask worker died (KilledWorker); gave up after 2 attempts")


# -- progress bar --------------------------------------------------------------------------

def _run_in_pty(argv):
    import fcntl
    import pty
    import struct
    import termios

    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.execvp(sys.executable, [sys.executable, "-m", "genanalysis", *argv])
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    out = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out.decode("utf-8", "replace")


def test_progress_bar_on_a_terminal_and_not_elsewhere(tmp_path):
    raw = probe([1.0, 2.0, 3.0], seeds=(0, 1))
    spec = tmp_path / "p.toml"
    spec.write_text(tomli_w.dumps(raw))
    code, text = _run_in_pty(["run", str(spec), "--out", str(tmp_path / "a"), "--workers", "1"])
    assert code == 0
    assert "6/6" in text and "task/s" in text and "<00:00" in text  # counts, rate, ETA
    code, text = _run_in_pty(["run", str(spec), "--out", str(tmp_path / "b"), "--workers", "0", "--quiet"])
    assert code == 0 and "6/6" not in text and text.strip() == ""
    proc = subprocess.run([sys.executable, "-m", "genanalysis", "run", str(spec), "--out", str(tmp_path / "c"),
                           "--workers", "0"], capture_output=True, text=True, check=True)
    assert "6/6" not in proc.stderr and "6 tasks: 6 done" in proc.stderr
