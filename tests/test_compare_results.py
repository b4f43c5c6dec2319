"""studies/compare_results.py finds a moved number, a changed text and a missing task, and
calls equal databases equal."""

import json
import sqlite3

from studyload import load_study

compare_results = load_study("compare_results")


def _db(path, tasks):
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE tasks (params TEXT, state TEXT, status TEXT, metrics TEXT, fit_report TEXT)")
        for params, metrics, report in tasks:
            db.execute("INSERT INTO tasks VALUES (?, 'done', 'ok', ?, ?)",
                       (json.dumps(params), json.dumps(metrics), json.dumps(report)))
    return str(path)


def test_equal_databases_agree_and_differences_are_found(tmp_path):
    base = [({"n": 2}, {"error": 0.1, "status": "converged", "dipole": [[1.0, 2.0]]}, {"fit_hash": "aa"}),
            ({"n": 3}, {"error": 0.05, "status": "converged", "dipole": [[1.5, 2.5]]}, {"fit_hash": "bb"})]
    a = _db(tmp_path / "a.sqlite", base)
    assert compare_results.compare(a, _db(tmp_path / "same.sqlite", base))[1]
    moved = [base[0], ({"n": 3}, {**base[1][1], "dipole": [[1.5, 2.5 * (1 + 1e-12)]]}, base[1][2])]
    lines, same = compare_results.compare(a, _db(tmp_path / "moved.sqlite", moved))
    assert not same and any(ln.startswith("dipole.0.1") and ln.split()[-1] == "1" for ln in lines)
    assert compare_results.compare(a, str(tmp_path / "moved.sqlite"), rtol=1e-9)[1]
    rehashed = [(p, m, {"fit_hash": "zz"}) for p, m, _ in base]
    assert compare_results.compare(a, _db(tmp_path / "h.sqlite", rehashed))[1]  # fit reports not compared
    assert not compare_results.compare(a, str(tmp_path / "h.sqlite"), fit_report=True)[1]
    lines, same = compare_results.compare(a, _db(tmp_path / "short.sqlite", base[:1]))
    assert not same and any("only in the old" in ln for ln in lines)
