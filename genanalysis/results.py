"""The results database: one SQLite file per study directory, one row per task.

Schema (``results.sqlite``, WAL journal; all JSON columns are UTF-8 JSON text):

``tasks``
    ``hash`` (unique content hash), ``kind``, ``study``, ``point`` (index in the sweep),
    ``params`` (JSON, the point's full parameter tree), ``overrides`` (JSON, the values its
    sweep axes take), ``state`` (``done`` | ``failed``), ``status`` (``done`` or
    ``failed: reason``), ``metrics`` (JSON: what identifies the result), ``fit_report``
    (JSON or NULL), ``info`` (JSON or NULL: what is true of this run only, e.g. timings and
    paths of the files the task wrote), ``attempts``,
    ``started``/``finished``/``recorded`` (Unix time, s), ``wall_s``/``cpu_s`` (s), ``host``,
    ``versions`` (JSON: python, numpy, torch, genanalysis).
``task_params``
    the parameters flattened: ``(hash, key, value)`` with ``key`` a dotted path, so that
    ``SELECT hash FROM task_params WHERE key = 'trainingset.size' AND value = 4`` works.
``task_metrics``
    the numeric scalar metrics flattened: ``(hash, name, value)``.
``shared``
    one row per piece of shared work built: ``hash``, ``kind``, ``params``, ``status``,
    ``builds`` (how many times it was computed), ``wall_s``, ``finished``.
``points``
    the current study's sweep points: ``(point, hash, overrides)``.
``meta``
    key/value: ``schema``, ``study`` (the spec as JSON), ``units`` (JSON).

Every finished task is one transaction written by the coordinating process, so a sweep
killed at any moment leaves whole rows only; a rerun finds them by hash and skips them.
Units: times in seconds; metrics carry the units their task kind declares (``meta.units``).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genanalysis.exceptions import InputError

__all__ = ["ResultsStore", "TaskRow", "DB_NAME", "results_table", "write_csv", "markdown_table", "result_status",
           "status_counts", "SUCCESS_STATUSES"]

DB_NAME = "results.sqlite"
SCHEMA = 1

_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS tasks (
    hash TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    study TEXT,
    point INTEGER,
    params TEXT NOT NULL,
    overrides TEXT,
    state TEXT NOT NULL CHECK (state IN ('done', 'failed')),
    status TEXT NOT NULL,
    metrics TEXT,
    fit_report TEXT,
    attempts INTEGER,
    started REAL,
    finished REAL,
    wall_s REAL,
    cpu_s REAL,
    host TEXT,
    versions TEXT,
    recorded REAL,
    info TEXT
);
CREATE TABLE IF NOT EXISTS task_params (
    hash TEXT NOT NULL, key TEXT NOT NULL, value, PRIMARY KEY (hash, key)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS task_params_key ON task_params (key, value);
CREATE TABLE IF NOT EXISTS task_metrics (
    hash TEXT NOT NULL, name TEXT NOT NULL, value REAL, PRIMARY KEY (hash, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS shared (
    hash TEXT PRIMARY KEY, kind TEXT, params TEXT, status TEXT, builds INTEGER DEFAULT 0,
    wall_s REAL, finished REAL);
CREATE TABLE IF NOT EXISTS points (point INTEGER PRIMARY KEY, hash TEXT NOT NULL, overrides TEXT);
"""


_TASK_COLUMNS = ("hash", "kind", "study", "point", "params", "overrides", "state", "status", "metrics", "fit_report",
                 "attempts", "started", "finished", "wall_s", "cpu_s", "host", "versions", "recorded", "info")


def _dumps(obj: Any) -> str | None:
    return None if obj is None else json.dumps(obj, sort_keys=True, allow_nan=True)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _decode(text: str | None, where: str) -> Any:
    try:
        return _loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"results database: {where} is not valid JSON ({exc}); the row is damaged") from None


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(tree, Mapping) and (tree or not prefix):
        for key, value in tree.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    else:
        out[prefix] = tree
    return out


def _sql_value(v: Any) -> Any:
    if v is None or isinstance(v, (int, float, str)) and not isinstance(v, bool):
        return v
    if isinstance(v, bool):
        return int(v)
    return json.dumps(v, sort_keys=True)


#: result statuses of a task stored ``done`` that mean success (a task that reports none is ``done``)
SUCCESS_STATUSES = ("done", "converged")


def result_status(state: str, metrics: Mapping[str, Any] | None) -> str:
    """What became of a task: ``failed`` (it raised or its worker died), else the ``status``
    its metrics report (``converged``, ``no stable equilibrium``, ``solver failure``, ``fit
    failure``, ...: a result, stored ``done``), else ``done``."""
    if state != "done":
        return "failed"
    status = (metrics or {}).get("status")
    return status if isinstance(status, str) and status else "done"


def status_counts(statuses: Iterable[str] | Mapping[str, int]) -> dict[str, int]:
    """Counts by status (of a list of statuses, or counts to order): successes first, then
    the other results, ``failed`` last."""
    if isinstance(statuses, Mapping):
        counts = dict(statuses)
    else:
        counts = {}
        for s in statuses:
            counts[s] = counts.get(s, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (kv[0] == "failed", kv[0] not in SUCCESS_STATUSES, kv[0])))


@dataclass
class TaskRow:
    """One task as stored: parameters and metrics decoded from JSON."""

    hash: str
    kind: str
    point: int | None
    params: dict
    overrides: dict
    state: str
    status: str
    metrics: dict = field(default_factory=dict)
    fit_report: dict | None = None
    attempts: int = 1
    wall_s: float | None = None
    cpu_s: float | None = None
    started: float | None = None
    finished: float | None = None
    host: str | None = None
    versions: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    @property
    def reason(self) -> str:
        return self.status.partition(": ")[2] if self.state == "failed" else ""

    @property
    def result_status(self) -> str:
        """:func:`result_status` of this row."""
        return result_status(self.state, self.metrics)


class ResultsStore:
    """The SQLite results database of one study directory (see the module docstring).

    Open it on the directory or the file; use it as a context manager or call ``close()``.
    Writes happen only in the coordinating process, one transaction per finished task.
    """

    def __init__(self, path: str | Path, *, readonly: bool = False):
        path = Path(path)
        if path.is_dir() or path.suffix != ".sqlite":
            path = path / DB_NAME
        self.path = path
        self.readonly = readonly
        with self._guard():
            if readonly:  # reading a copied or read-only directory writes nothing into it
                try:
                    self._db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
                    self._db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
                except sqlite3.OperationalError:  # WAL without its index files in a read-only directory
                    self._db = sqlite3.connect(f"{path.resolve().as_uri()}?immutable=1", uri=True,
                                               isolation_level=None)
                self._columns = {r[1] for r in self._db.execute("PRAGMA table_info(tasks)")}
                if not self._columns:
                    raise InputError(f"{str(path)!r} is not a results database (it has no tasks table)")
                return
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), timeout=60.0, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL with WAL survives a killed process (only power loss can drop the last commits)
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_DDL)
            if "info" not in {r[1] for r in self._db.execute("PRAGMA table_info(tasks)")}:
                self._db.execute("ALTER TABLE tasks ADD COLUMN info TEXT")  # a database of an earlier version
            self._columns = set(_TASK_COLUMNS)
            with self._txn():
                self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA),))

    @contextlib.contextmanager
    def _guard(self):
        """A damaged database file is bad input (one line naming it), not a traceback."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise
            raise InputError(f"{str(self.path)!r} is not a readable results database ({exc}); restore it or "
                             "run the study into a new directory") from None

    # -- plumbing -----------------------------------------------------------------------
    class _Txn:
        def __init__(self, db):
            self.db = db

        def __enter__(self):
            self.db.execute("BEGIN IMMEDIATE")

        def __exit__(self, exc_type, exc, tb):
            self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")
            return False

    def _txn(self):
        return self._Txn(self._db)

    def close(self) -> None:
        self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # -- meta and the current study ------------------------------------------------------
    def set_meta(self, key: str, value: Any) -> None:
        with self._txn():
            # key order kept: a spec's sweep axes are ordered
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value, default=str)))

    def get_meta(self, key: str, default: Any = None) -> Any:
        with self._guard():
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else _decode(row[0], f"meta {key!r}")

    def set_points(self, points: Iterable[tuple[int, str, Mapping[str, Any]]]) -> None:
        """Replace the current study's sweep points ``(point, hash, overrides)``."""
        with self._txn():
            self._db.execute("DELETE FROM points")
            self._db.executemany("INSERT INTO points VALUES (?, ?, ?)",
                                 [(int(p), h, _dumps(dict(o))) for p, h, o in points])

    def points(self) -> list[tuple[int, str, dict]]:
        with self._guard():
            rows = self._db.execute("SELECT point, hash, overrides FROM points ORDER BY point").fetchall()
        return [(p, h, _decode(o, f"point {p}") or {}) for p, h, o in rows]

    # -- tasks ---------------------------------------------------------------------------
    def states(self) -> dict[str, str]:
        """``hash -> 'done' | 'failed'`` for every task stored."""
        with self._guard():
            return dict(self._db.execute("SELECT hash, state FROM tasks").fetchall())

    def record_task(self, *, hash: str, kind: str, study: str | None, point: int | None,
                    params: Mapping[str, Any], overrides: Mapping[str, Any], record: Mapping[str, Any]) -> None:
        """Store one finished task (``record`` as returned by the worker) in one transaction.

        A row with the same hash is replaced (a rerun of a failed task), so each hash is
        present exactly once.
        """
        state = "done" if record.get("status") == "done" else "failed"
        reason = str(record.get("reason") or "unknown reason").replace("\n", " ")
        status = "done" if state == "done" else f"failed: {reason}"
        metrics = record.get("metrics") or {}
        row = (hash, kind, study, point, json.dumps(params, sort_keys=True), _dumps(dict(overrides)), state, status,
               _dumps(metrics), _dumps(record.get("fit_report")), int(record.get("attempt", 1)),
               record.get("started"), record.get("finished"), record.get("wall_s"), record.get("cpu_s"),
               record.get("host"), _dumps(record.get("versions") or {}), time.time(), _dumps(record.get("info")))
        flat_params = [(hash, k, _sql_value(v)) for k, v in _flatten(dict(params)).items()]
        flat_metrics = [(hash, k, float(v)) for k, v in _flatten(metrics).items()
                        if isinstance(v, (int, float)) and not isinstance(v, bool)]
        with self._txn():
            self._db.execute(f"INSERT OR REPLACE INTO tasks ({', '.join(_TASK_COLUMNS)}) VALUES "
                             f"({','.join('?' * len(row))})", row)
            self._db.execute("DELETE FROM task_params WHERE hash = ?", (hash,))
            self._db.execute("DELETE FROM task_metrics WHERE hash = ?", (hash,))
            self._db.executemany("INSERT INTO task_params VALUES (?, ?, ?)", flat_params)
            self._db.executemany("INSERT INTO task_metrics VALUES (?, ?, ?)", flat_metrics)

    def record_shared(self, *, hash: str, kind: str, params: Any, record: Mapping[str, Any]) -> None:
        """Count one build of a piece of shared work (its result lives in the cache directory)."""
        status = "done" if record.get("status") == "done" else f"failed: {record.get('reason')}"
        with self._txn():
            self._db.execute(
                "INSERT INTO shared (hash, kind, params, status, builds, wall_s, finished) VALUES (?,?,?,?,1,?,?) "
                "ON CONFLICT(hash) DO UPDATE SET status=excluded.status, builds=builds+1, "
                "wall_s=excluded.wall_s, finished=excluded.finished",
                (hash, kind, json.dumps(params, sort_keys=True), status, record.get("wall_s"), record.get("finished")))

    def adopt_shared(self, *, hash: str, kind: str, params: Any) -> None:
        """Record shared work whose result is on disk but whose row is not (the coordinator
        was killed between the atomic write of the result and this row): zero builds."""
        with self._txn():
            self._db.execute(
                "INSERT OR IGNORE INTO shared (hash, kind, params, status, builds, wall_s, finished) "
                "VALUES (?,?,?,'done',0,NULL,NULL)", (hash, kind, json.dumps(params, sort_keys=True)))

    def shared_rows(self) -> list[dict]:
        rows = self._db.execute("SELECT hash, kind, params, status, builds, wall_s FROM shared").fetchall()
        return [dict(hash=h, kind=k, params=_loads(p), status=s, builds=b, wall_s=w) for h, k, p, s, b, w in rows]

    def tasks(self, *, current: bool = True) -> list[TaskRow]:
        """The stored tasks: those of the current study's points (in point order) or all."""
        cols = ["hash", "kind", "point", "params", "overrides", "state", "status", "metrics", "fit_report",
                "attempts", "wall_s", "cpu_s", "started", "finished", "host", "versions", "info"]
        cols = [c for c in cols if c in self._columns]  # a database of an earlier version lacks info
        if current:
            sel = ", ".join(f"p.{c}" if c in ("point", "overrides") else f"t.{c}" for c in cols)
            sql = f"SELECT {sel} FROM points p JOIN tasks t ON t.hash = p.hash ORDER BY p.point"
        else:
            sql = f"SELECT {', '.join(cols)} FROM tasks ORDER BY point, hash"
        out = []
        with self._guard():
            found = self._db.execute(sql).fetchall()
        for r in found:
            d = dict(zip(cols, r))
            for key in ("params", "overrides", "metrics", "fit_report", "versions", "info"):
                d[key] = _decode(d.get(key), f"task {d['hash'][:12]} column {key}")
            d["info"] = d["info"] or {}
            d["overrides"] = d["overrides"] or {}
            d["metrics"] = d["metrics"] or {}
            d["versions"] = d["versions"] or {}
            out.append(TaskRow(**d))
        return out

    def count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]


# -- tables -----------------------------------------------------------------------------

def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}" if math.isfinite(v) else str(v)
    if isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=True)
    return str(v)


def results_table(rows: Sequence[TaskRow], axes: Sequence[str] | None = None) -> tuple[list[str], list[list[Any]]]:
    """Columns and values of the results table: point, hash, each axis, status, each scalar
    metric, wall time (s). Axes default to the union of the rows' overrides."""
    if axes is None:
        axes = list(dict.fromkeys(k for r in rows for k in r.overrides))
    metric_names = list(dict.fromkeys(
        k for r in rows for k, v in _flatten(r.metrics).items() if k and not isinstance(v, (dict, list))))
    cols = ["point", "hash", *axes, "status", *metric_names, "wall_s"]
    out = []
    for r in rows:
        flat = _flatten(r.metrics) if r.metrics else {}
        out.append([r.point, r.hash[:12], *(r.overrides.get(a) for a in axes), r.status,
                    *(flat.get(m) for m in metric_names), r.wall_s])
    return cols, out


def write_csv(path: str | Path, cols: Sequence[str], values: Sequence[Sequence[Any]]) -> None:
    """Write a table as CSV (numbers in full precision, JSON for lists/tables)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(cols)
    for row in values:
        writer.writerow(["" if v is None else (repr(v) if isinstance(v, float) else _fmt(v)) for v in row])
    Path(path).write_text(buf.getvalue(), encoding="utf-8")


def markdown_table(cols: Sequence[str], values: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table (numbers to 6 significant digits)."""
    def cell(v):
        return _fmt(v).replace("|", "\\|")

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in values]
    return "\n".join(lines) + "\n"
