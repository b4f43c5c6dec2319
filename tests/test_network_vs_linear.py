"""docs/studies.md §7 holds the network-against-linear table as studies/network_vs_linear.py
--table computes it from the recorded per-model data (aggregation only, no training), and
the recorded networks meet the issue's target: held-out force RMSE within 2× that of the
linear model on the same invariants and data."""

from __future__ import annotations

import json

import pytest
from studyload import ROOT, load_study

FILES = [ROOT / "docs" / "data" / f"network_vs_linear_{name}.json" for name in ("morse", "w", "linear_sizes", "morse_d10", "w_d10")]


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
