"""docs/directforce.md holds what studies/directforce_compare.py computes from the raw
per-model data docs/data/directforce_compare_*.json, and the study's sizes are matched."""

from __future__ import annotations

import pathlib

import pytest
from studyload import load_study

from genanalysis.models.basis import ACESpec
from genanalysis.models.directforce import DirectForceACE
from genanalysis.models.linear import LinearACE

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def study():
    return load_study("directforce_compare")


def test_the_page_holds_the_tables_as_computed(study):
    page = (ROOT / "docs" / "directforce.md").read_text()
    names = [n for m in study._BLOCK.finditer(page) for n in m["files"].split()]
    assert names, "docs/directforce.md has no table blocks"
    missing = [n for n in names if not (ROOT / "docs" / "data" / n).is_file()]
    if missing:
        pytest.skip(f"no data {missing}")
    assert study.render_page(page) == page, ("docs/directforce.md does not hold the tables the data give: run "
                                             "python studies/directforce_compare.py --page docs/directforce.md")


@pytest.mark.parametrize("dim", [2, 3])
def test_every_matched_size_has_equal_parameter_counts(study, dim):
    for system, cfg in study.SYSTEMS.items():
        for name, ace, df in study.SIZES:
            a = study.matched(ace, df, cfg["features"], dim)
            n_ace = LinearACE(ACESpec(dim=dim, **cfg["features"], **a)).n_params
            n_df = DirectForceACE(ACESpec(dim=dim, **cfg["features"], **df)).n_params
            assert n_ace == n_df == study.coefficients(name), (system, name, dim, n_ace, n_df)
