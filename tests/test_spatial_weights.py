"""Spatial loss weights around the defect: shape, invariances, and their effect on a fit."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genanalysis.exceptions import InputError
from genanalysis.fit import spatial_weights
from genanalysis.lattice import defect_cell
from genanalysis.pipeline import fit_spec


@given(amp=st.floats(0, 50), radius=st.floats(0.5, 10), shift=st.lists(st.floats(-3, 3), min_size=3, max_size=3))
@settings(max_examples=25, deadline=None)
def test_weights_peak_at_the_defect_and_follow_it_through_the_periodic_cell(amp, radius, shift):
    at = defect_cell("bcc", 3.16, 3, "interstitial:octahedral", "W")
    w = spatial_weights(at, amp, radius)
    assert np.all(w >= 1.0) and np.all(w <= 1.0 + amp + 1e-12)
    added = np.flatnonzero(at.arrays["site_index"] < 0)[0]
    assert w[added] == pytest.approx(1.0 + amp)                    # the interstitial sits at the centre
    moved = at.copy()                                               # rigid translation of atoms and centre
    moved.positions += shift
    moved.info["defect_centre"] = list(np.asarray(at.info["defect_centre"]) + shift)
    moved.wrap()
    assert np.allclose(spatial_weights(moved, amp, radius), w)


def test_perfect_cells_are_not_weighted():
    assert np.all(spatial_weights(defect_cell("fcc", 3.6, 2, "perfect"), 10.0, 2.0) == 1.0)


@pytest.mark.parametrize("table, words", [({"amplitude": -1, "radius": 2}, "fit: spatial.amplitude=-1"),
                                          ({"amplitude": 1, "radius": 0}, "fit: spatial.radius=0"),
                                          ({"amplitude": True, "radius": 1}, "amplitude=True"),
                                          ({"amplitude": 1}, "fit: spatial=")])
def test_bad_spatial_tables_are_named(table, words):
    with pytest.raises(InputError, match=words):
        fit_spec({"spatial": table})


def test_spatial_weights_need_per_atom_weights_on():
    with pytest.raises(InputError, match="atom_weights = false"):
        fit_spec({"spatial": {"amplitude": 1.0, "radius": 2.0}, "loss": {"atom_weights": False}})
    with pytest.raises(InputError, match="both given"):
        fit_spec({"spatial": {"amplitude": 1.0, "radius": 2.0}, "loss": {"spatial": {"amplitude": 1.0, "radius": 2.0}}})


def test_spatial_weights_change_the_fit_and_zero_amplitude_does_not():
    from genanalysis.fit import FitSpec, fit
    from genanalysis.observe import observe
    from genanalysis.data import Configuration

    rng = np.random.default_rng(0)
    configs = []
    for k in range(4):
        at = defect_cell("triangular", 0.9682, 5, ("vacancy", "perfect")[k % 2])
        at.positions[:, :2] += rng.normal(scale=0.03, size=(len(at), 2))
        obs = observe(at, "builtin:morse", "EF")
        configs.append(Configuration(at, group=at.info["defect"], energy=obs["energy"], forces=obs["forces"]))
    def spec(spatial=None):
        return FitSpec.from_dict({"training_set": "-", "validation_fraction": 0.0,
                                  "model": {"cutoff": 2.5, "degree": 4, "body_order": 3, "l_max": 2},
                                  "loss": {} if spatial is None else {"spatial": spatial}})

    plain = fit(configs, spec())
    same = fit(configs, spec({"amplitude": 0.0, "radius": 2.0}))
    core = fit(configs, spec({"amplitude": 20.0, "radius": 1.5}))
    assert np.array_equal(plain.model.coef_, same.model.coef_)
    assert not np.allclose(plain.model.coef_, core.model.coef_)
    # the spatial weights are part of the fit's identity; the data are the same
    assert len({r.report["spec_hash"] for r in (plain, same, core)}) == 3
    assert len({r.report["fit_hash"] for r in (plain, same, core)}) == 3
    assert len({r.report["training_set_hash"] for r in (plain, same, core)}) == 1
