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


def test_the_saved_values_give_the_same_table_and_the_absolute_difference(tmp_path):
    old = _db(tmp_path / "o.sqlite", [({"n": 2}, {"zero": 1e-13, "e": 2.0}, {})])
    new = _db(tmp_path / "n.sqlite", [({"n": 2}, {"zero": -1e-13, "e": 2.0 + 4e-9}, {})])
    lines, same = compare_results.compare(old, new)
    row = {ln.split()[0]: ln.split()[1:] for ln in lines if ln.split()[0] in ("zero", "e")}
    assert float(row["zero"][0]) == 2.0 and float(row["zero"][1]) == 2e-13       # relative 2, absolute 2e-13
    assert abs(float(row["e"][1]) - 4e-9) < 1e-12 and not same
    data = compare_results.pairs(old, new)
    assert compare_results.compare_tasks(*compare_results.from_pairs(json.loads(json.dumps(data)))) == (lines, same)


def test_the_refactor_check_of_docs_sweeps_is_recomputed_from_its_data():
    """docs/sweeps.md §9: every task keeps its state and status, and each metric moves by
    no more than the table says (fit and model side ≤ 8.1e-9, geometry ≤ 2.9e-7, the elastic
    constants' method change 3.9e-6)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    data = json.loads((root / "docs" / "data" / "refactor_check_loss_weights_2d.json").read_text())
    assert len(data["rows"]) == 32 and not data["meta"]["only_old"] and not data["meta"]["only_new"]
    worst = {}
    for t in data["rows"]:
        assert (t["old"]["state"], t["old"]["status"]) == (t["new"]["state"], t["new"]["status"])
        for k in t["old"].keys() & t["new"].keys():
            d = compare_results._difference(t["old"][k], t["new"][k])
            if d is not None:
                worst[k] = max(worst.get(k, 0.0), d)
    model = ["fit_rmse_F_train", "residual_dual_norm", "force_constant_error", "a_posteriori_bound", "lattice_stress_error"]
    geometry = ["error_energy_norm", "effectivity", "dipole_error", "formation_energy_error", "max_displacement_error"]
    assert 0 < max(worst[k] for k in model) <= 8.1e-9
    assert 8.1e-9 < max(worst[k] for k in geometry) <= 2.95e-7
    assert 2.9e-7 < worst["elastic_constant_error"] <= 3.95e-6
    assert worst["formation_energy_reference"] == worst["reference_energy_norm"] == 0.0


def test_the_demo_check_of_docs_sweeps_is_recomputed_from_its_data():
    """docs/sweeps.md §9, the demo: same states and statuses; every metric within 8.7e-10
    relative but the elastic-constant error (2.9e-6) and the components that are zero by
    symmetry (absolute differences ≤ 5e-14 eV)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    data = json.loads((root / "docs" / "data" / "refactor_check_demo.json").read_text())
    assert len(data["rows"]) == 9 and data["meta"]["ignored_params"] == ["experiment.allow_small_test_domain"]
    for t in data["rows"]:
        assert (t["old"]["state"], t["old"]["status"]) == (t["new"]["state"], t["new"]["status"])
        for k in t["old"].keys() & t["new"].keys():
            a, b = t["old"][k], t["new"][k]
            d = compare_results._difference(a, b)
            if d is None:
                continue
            if k.startswith("elastic_constant_error"):
                assert d <= 2.95e-6
            elif k.startswith("dipole_") and k.count(".") == 2 and k.split(".")[1] != k.split(".")[2]:
                assert abs(a - b) <= 5e-14 and max(abs(a), abs(b)) <= 7e-14
            else:
                assert d <= 8.7e-10, k


def test_an_ignored_flag_lets_tasks_match_and_nothing_else(tmp_path):
    old = _db(tmp_path / "o.sqlite", [({"experiment": {"size": 4}}, {"e": 1.0}, {})])
    new = _db(tmp_path / "n.sqlite", [({"experiment": {"size": 4, "allow": True}}, {"e": 1.0}, {})])
    assert not compare_results.compare(old, new)[1]
    assert compare_results.compare(old, new, ignore=("experiment.allow",))[1]
    assert not compare_results.compare(old, new, ignore=("experiment.size",))[1]
