"""docs/studies.md §7 holds the network-against-linear table as studies/network_vs_linear.py
--table computes it from the recorded per-model data (aggregation only, no training), and
the recorded networks meet the issue's target: held-out force RMSE within 2× that of the
linear model on the same invariants and data — on D = 6 the plain networks, on D = 10 (the
best linear model of both sets) the networks with the linear readout in parallel, which
end at or below their linear start's validation loss."""

from __future__ import annotations

import json

import pytest
from studyload import ROOT, load_study

FILES = [ROOT / "docs" / "data" / f"network_vs_linear_{name}.json" for name in ("morse", "w", "linear_sizes", "morse_d10", "w_d10", "morse_d10_skip", "w_d10_skip",
                                              "morse_d10_long", "w_d10_ridge_grid")]


@pytest.fixture(scope="module")
def docs():
    if not all(p.is_file() for p in FILES):
        pytest.skip("no network_vs_linear data")
    return [json.loads(p.read_text()) for p in FILES]


def test_the_page_holds_the_table_as_computed(docs):
    table = load_study("network_vs_linear").table(docs)
    assert table in (ROOT / "docs" / "studies.md").read_text()
    assert len(table.splitlines()) >= 2 + 2 * 4


def test_the_recorded_networks_train_within_twice_the_linear_model(docs):
    rows = {k: r for d in docs for k, r in d["rows"].items()}
    for name in ("morse", "w"):
        best = rows[f"{name}/ace"]["validation"]["F"]["rmse"]
        nets = [r for k, r in rows.items() if k.startswith(f"{name}/mlp") and r["whitened"]
                and r.get("degree", 6) == 6]  # on the linear model's invariants
        assert len(nets) >= 2 and all(r["solver"]["seeds"] >= 3 for r in nets)
        assert all(r["cpu_seconds"] > 0 for r in nets)
        assert min(r["validation"]["F"]["rmse"] for r in nets) <= 2.0 * best


def test_the_skip_networks_train_within_twice_the_best_linear_model(docs):
    rows = {k: r for d in docs for k, r in d["rows"].items()}
    for name in ("morse", "w"):
        linear = rows[f"{name}/ace-D10"]
        best = min(r["validation"]["F"]["rmse"] for k, r in rows.items() if k.startswith(f"{name}/ace"))
        assert best == linear["validation"]["F"]["rmse"]  # degree 10 is the best linear model
        net = rows[f"{name}/mlp8-D10-skip"]
        assert net["linear_skip"] and net["solver"]["seeds"] >= 3 and net["cpu_seconds"] > 0
        assert net["validation"]["F"]["rmse"] <= 2.0 * best
        start = net["solver"]["validation_history"][0]
        assert start[0] == 0 and net["solver"]["best_validation_loss"] <= start[1]
