"""The SQLite results database: round trips, one row per hash, flattened columns, tables."""

from __future__ import annotations

import csv
import math
import sqlite3

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genanalysis.results import ResultsStore, markdown_table, results_table, write_csv

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
metrics = st.dictionaries(st.text("abcdefgh_", min_size=1, max_size=8),
                          st.one_of(finite, st.integers(-10**9, 10**9), st.lists(finite, max_size=3),
                                    st.text(max_size=6)), max_size=6)


def record(m, status="done", reason=""):
    return {"status": status, "reason": reason, "metrics": m, "fit_report": {"rmse": 0.1}, "attempt": 1,
            "started": 1.0, "finished": 2.5, "wall_s": 1.5, "cpu_s": 1.2, "host": "h",
            "versions": {"python": "3.11"}}


@given(metrics, st.integers(0, 1000))
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_task_round_trip_and_flattened_columns(tmp_path, m, size):
    with ResultsStore(tmp_path / "r.sqlite") as store:
        params = {"trainingset": {"size": size, "obs": "EF"}, "seed": 3}
        store.set_points([(0, "h0", {"trainingset.size": size})])
        store.record_task(hash="h0", kind="k", study="s", point=0, params=params,
                          overrides={"trainingset.size": size}, record=record(m))
        (row,) = store.tasks()
        assert row.params == params and row.metrics == m and row.status == "done" and row.wall_s == 1.5
        assert row.fit_report == {"rmse": 0.1} and row.versions == {"python": "3.11"}
        db = store._db
        assert db.execute("SELECT value FROM task_params WHERE hash='h0' AND key='trainingset.size'").fetchone() == (
            size,)
        numeric = {k: float(v) for k, v in m.items() if isinstance(v, (int, float))}
        got = dict(db.execute("SELECT name, value FROM task_metrics WHERE hash='h0'").fetchall())
        assert got == numeric


def test_one_row_per_hash_and_the_latest_record_wins(tmp_path):
    with ResultsStore(tmp_path) as store:
        for i in range(3):
            store.record_task(hash="same", kind="k", study="s", point=0, params={"seed": 0}, overrides={},
                              record=record({"e": float(i)}, "failed" if i < 2 else "done", "boom"))
        assert store.count() == 1
        assert store.states() == {"same": "done"}
        assert store.tasks(current=False)[0].metrics == {"e": 2.0}
        assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_failed_status_carries_its_reason_on_one_line(tmp_path):
    with ResultsStore(tmp_path) as store:
        store.record_task(hash="f", kind="k", study="s", point=0, params={}, overrides={},
                          record=record({}, "failed", "ValueError: bad\nsecond line"))
        (row,) = store.tasks(current=False)
        assert row.status == "failed: ValueError: bad second line" and row.reason == "ValueError: bad second line"


def test_current_points_select_the_study_rows(tmp_path):
    with ResultsStore(tmp_path) as store:
        for h in ("a", "b", "c"):
            store.record_task(hash=h, kind="k", study="s", point=None, params={"x": h}, overrides={}, record=record({}))
        store.set_points([(0, "c", {"x": "c"}), (1, "a", {"x": "a"}), (2, "missing", {})])
        assert [r.hash for r in store.tasks()] == ["c", "a"]
        assert [r.point for r in store.tasks()] == [0, 1]
        assert store.count() == 3


def test_a_reader_sees_committed_rows_while_the_writer_is_open(tmp_path):
    with ResultsStore(tmp_path) as store:
        store.record_task(hash="a", kind="k", study="s", point=0, params={}, overrides={}, record=record({"e": 1.0}))
        with sqlite3.connect(tmp_path / "results.sqlite") as other:
            assert other.execute("SELECT COUNT(*) FROM tasks").fetchone()[0] == 1


@given(st.lists(finite, min_size=1, max_size=5))
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_csv_keeps_full_precision_and_markdown_has_every_row(tmp_path, values):
    with ResultsStore(tmp_path / "t.sqlite") as store:
        store.set_points([(i, f"h{i}", {"x": i}) for i in range(len(values))])
        for i, v in enumerate(values):
            store.record_task(hash=f"h{i}", kind="k", study="s", point=i, params={"x": i}, overrides={"x": i},
                              record=record({"err": v}))
        cols, rows = results_table(store.tasks(), ["x"])
    write_csv(tmp_path / "t.csv", cols, rows)
    with open(tmp_path / "t.csv") as fh:
        back = list(csv.DictReader(fh))
    assert [float(r["err"]) for r in back] == values
    assert cols[:4] == ["point", "hash", "x", "status"]
    md = markdown_table(cols, rows)
    assert md.count("\n") == len(values) + 2
    assert all(math.isfinite(float(r["wall_s"])) for r in back)
