"""The studies' rate declarations: fits over the training-cell size N exclude cells narrower
than 2·r_cut (an environment of radius r_cut would see an atom twice), and floors parse."""

from __future__ import annotations

import math
import pathlib

import pytest

from genanalysis.lattice import cell_width
from genanalysis.potentials import load_potential
from genanalysis.sweep.spec import load_study, parse_study

STUDIES = pathlib.Path(__file__).resolve().parents[1] / "studies"
SIZE = "trainingset.size"


def _size_studies():
    out = []
    for path in sorted(STUDIES.glob("*.toml")):
        study = load_study(path)
        if any(rate.against == SIZE for rate in study.rates):
            out.append(path)
    return out


@pytest.mark.parametrize("path", _size_studies(), ids=lambda p: p.stem)
def test_size_fits_exclude_cells_narrower_than_twice_the_cutoff(path):
    study = load_study(path)
    ts, model = study.base["trainingset"], study.base["fit"]["model"]
    a = ts.get("a") or load_potential(ts["potential"]).equilibrium_lattice_constant(ts["lattice"])
    r_cut = float(model["cutoff"])
    sizes = dict(study.axes)[SIZE]
    narrow = [n for n in sizes if cell_width(ts["lattice"], a, n) < 2 * r_cut]
    assert narrow, "the studies sweep narrow cells too; the test must see one excluded"
    for rate in study.rates:
        if rate.against != SIZE:
            continue
        assert isinstance(rate.fit_range, tuple), f"{path.stem}: a size fit needs an explicit fit_range"
        lo, hi = rate.fit_range
        kept = [n for n in sizes if lo <= n <= hi]
        assert kept and not set(kept) & set(narrow), (path.stem, kept, narrow)
        assert min(kept) == min(n for n in sizes if n not in narrow)  # no wide cell dropped


def test_cell_width_is_the_face_distance():
    assert cell_width("bcc", 3.0, 4) == pytest.approx(12.0)
    assert cell_width("triangular", 1.0, 2) == pytest.approx(math.sqrt(3.0))
    assert cell_width("fcc", 2.0, 3) == pytest.approx(6.0)


def _rate_study(**rate):
    return parse_study({"study": {"task": "toy.series"}, "sweep": {"trainingset.size": [2, 4, 8]},
                        "rates": [{"quantity": "error", "against": SIZE, **rate}]})


def test_rate_floor_parses_as_number_or_metric():
    assert _rate_study(floor=1e-4).rates[0].floor == 1e-4
    assert _rate_study(floor="floor_estimate").rates[0].floor == "floor_estimate"
    assert _rate_study().rates[0].floor is None
    from genanalysis.exceptions import InputError

    for bad in (-1.0, True, "", [1]):
        with pytest.raises(InputError, match="floor"):
            _rate_study(floor=bad)


def _rows(values):
    from genanalysis.results import TaskRow

    return [TaskRow(f"h{i}", "toy.series", i, {"trainingset": {"size": n}, "seed": 0}, {}, "done", "ok", m)
            for i, (n, m) in enumerate(values)]


@pytest.mark.parametrize("floor", [2e-2, "floor_estimate"])
def test_floor_is_subtracted_before_the_fit(floor):
    """error = floor + N^-1.5: the raw fit is flatter than −1.5, the floor-subtracted one
    recovers it exactly (a number, or each task's own metric), and the table says which floor."""
    from genanalysis.sweep.rates import evaluate_rates

    ns = [4, 8, 16, 32, 64]
    rows = _rows([(n, {"error": 2e-2 + n**-1.5, "floor_estimate": 2e-2}) for n in ns])
    study = _rate_study(floor=floor, predicted=-1.5, sense="up_to")
    (res,) = evaluate_rates(study, rows)
    assert res.fit.slope == pytest.approx(-1.5, abs=1e-9)
    assert res.verdict == "agree" and res.as_dict()["floor"] == floor
    (raw,) = evaluate_rates(_rate_study(predicted=-1.5, sense="up_to"), rows)
    assert raw.fit.slope > -1.0 and raw.verdict == "slower" and raw.as_dict()["floor"] == 0.0


def test_faster_than_an_upper_bound_is_labelled_consistent():
    from genanalysis.sweep.rates import evaluate_rates

    rows = _rows([(n, {"error": n**-3.0}) for n in (4, 8, 16, 32)])
    (res,) = evaluate_rates(_rate_study(predicted=-1.5, sense="up_to"), rows)
    assert res.verdict == "faster" and res.label == "faster (consistent)"
    assert res.as_dict()["verdict_label"] == "faster (consistent)"
    (two,) = evaluate_rates(_rate_study(predicted=-1.5), rows)
    assert two.verdict == "disagree" and two.label == "disagree"
