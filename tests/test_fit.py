"""The loss and the fits: exactness of the linear least squares, weights, bad input, CLI.

Units: eV, eV/Å, eV (virials), eV/Å². Data are generated either by a linear model with
random coefficients (its own span: the fit must recover it) or by the built-in W EAM.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genanalysis.data import Configuration
from genanalysis.exceptions import InputError
from genanalysis.fit import (
    FitSpec,
    LossWeights,
    ModelSpec,
    RankDeficiencyWarning,
    check_data,
    fit,
    fit_linear,
    split,
)
from genanalysis.lattice import defect_cell, perfect_cell
from genanalysis.models.linear import LinearACE

A_W = 3.165
MSPEC = ModelSpec(cutoff=4.0, degree=4, l_max=2, r_in=2.0)


def _cells(seed=0, count=6):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(count):
        defect = ("perfect", "vacancy")[k % 2]
        at = defect_cell("bcc", A_W, 2, defect, "W")
        at.positions += rng.normal(scale=0.07, size=at.positions.shape)
        at.set_cell(np.array(at.cell) @ (np.eye(3) + 0.01 * rng.normal(size=(3, 3))), scale_atoms=True)
        out.append((defect, at))
    return out


def _label(model_or_pot, cells, kinds="EFV", h_every=3):
    configs = []
    for k, (group, at) in enumerate(cells):
        if hasattr(model_or_pot, "coef_"):
            r = model_or_pot.predict(at, hessian="H" in kinds and k % h_every == 0)
            e, f, v, h = r["energy"], r["forces"], r["virial"], r.get("hessian")
        else:
            ev = model_or_pot.observe(at)
            e, f, v = ev.energy, ev.forces, ev.virial
            h = model_or_pot.hessian(at) if "H" in kinds and k % h_every == 0 else None
        configs.append(Configuration(at, group=group, energy=e if "E" in kinds else None,
                                     forces=f if "F" in kinds else None, virial=v if "V" in kinds else None,
                                     hessian=h))
    return configs


@pytest.fixture(scope="module")
def truth():
    m = LinearACE(MSPEC.ace_spec(3))
    m.coef_ = np.random.default_rng(1).normal(size=m.n_params) * np.r_[1.0, np.full(m.n_params - 1, 0.05)]
    return m


@pytest.fixture(scope="module")
def w_data():
    from genanalysis.potentials import load_potential

    return _label(load_potential("builtin:W"), _cells(3, 8), "EFVH", h_every=4)


def test_linear_fit_recovers_coefficients_in_its_own_span(truth):
    data = _label(truth, _cells(0, 6), "EFVH")
    model, diag = fit_linear(data, MSPEC, LossWeights(E=1.0, F=1.0, V=0.5, H=0.1))
    assert not diag["rank_deficient"] and diag["effective_rank"] == truth.n_params
    err = np.abs(model.coef_ - truth.coef_).max() / np.abs(truth.coef_).max()
    assert err < 1e-12 * diag["condition_number"] + 1e-12, (err, diag["condition_number"])


_CACHE: dict = {}


@given(scale=st.floats(1e-3, 1e3))
@settings(max_examples=3, deadline=None)
def test_scaling_all_weights_leaves_the_fit_unchanged(w_data, scale):
    base = LossWeights(E=1.0, F=2.0, V=0.3, H=0.05, groups={"vacancy": {"F": 3.0}}, ridge=1e-8)
    scaled = LossWeights(E=scale, F=2.0 * scale, V=0.3 * scale, H=0.05 * scale,
                         groups={"vacancy": {"F": 3.0}}, ridge=1e-8)
    m1, _ = fit_linear(w_data, MSPEC, base, design_cache=_CACHE)
    m2, _ = fit_linear(w_data, MSPEC, scaled, design_cache=_CACHE)
    assert np.allclose(m1.coef_, m2.coef_, rtol=1e-8, atol=1e-10 * np.abs(m1.coef_).max())


def test_zero_weight_removes_an_observation_exactly(w_data):
    """Corrupting observations whose weight is zero changes nothing; a group with zero
    multipliers is equivalent to leaving its configurations out."""
    loss = LossWeights(E=1.0, F=1.0, V=0.0, H=0.0)
    m1, _ = fit_linear(w_data, MSPEC, loss, design_cache=_CACHE)
    corrupt = [Configuration(c.atoms, c.group, c.energy, c.forces, c.virial * 7.0 + 3.0,
                             None if c.hessian is None else c.hessian * 5.0) for c in w_data]
    m2, _ = fit_linear(corrupt, MSPEC, loss)
    assert np.array_equal(m1.coef_, m2.coef_)
    drop = LossWeights(E=1.0, F=1.0, groups={"vacancy": {"E": 0.0, "F": 0.0}})
    m3, _ = fit_linear(w_data, MSPEC, drop, design_cache=_CACHE)
    m4, _ = fit_linear([c for c in w_data if c.group != "vacancy"], MSPEC, LossWeights(E=1.0, F=1.0))
    assert np.array_equal(m3.coef_, m4.coef_)
    # zero per-atom weights remove those atoms' force rows exactly
    masked = [Configuration(c.atoms, c.group, c.energy, c.forces.copy(), atom_weights=np.r_[0.0, np.ones(len(c) - 1)])
              for c in w_data]
    for c in masked:
        c.forces[0] += 10.0
    ref = [Configuration(c.atoms, c.group, c.energy, c.forces, atom_weights=np.r_[0.0, np.ones(len(c) - 1)])
           for c in w_data]
    m5, _ = fit_linear(masked, MSPEC, LossWeights(E=1.0, F=1.0))
    m6, _ = fit_linear(ref, MSPEC, LossWeights(E=1.0, F=1.0))
    assert np.array_equal(m5.coef_, m6.coef_)


def test_fit_report_and_force_constants_weight(w_data):
    spec = FitSpec(training_set="unused", model=MSPEC, loss=LossWeights(E=1.0, F=1.0, V=0.1, H=0.1),
                   validation_fraction=0.25, seed=3)
    res = fit(w_data, spec)
    rep = res.report
    assert set(rep) >= {"train", "validation", "solver", "spec_hash"}
    assert rep["n_train"] + rep["n_validation"] == len(w_data) and rep["n_validation"] == 2
    for split_name in ("train", "validation"):
        for g in ("perfect", "vacancy", "all"):
            for t in "EFV":
                s = rep[split_name][g][t]
                assert 0 <= s["mae"] <= s["rmse"] and s["count"] > 0
    # the force-constant error falls when force constants are weighted
    no_h = fit(w_data, FitSpec(training_set="unused", model=MSPEC, loss=LossWeights(E=1.0, F=1.0, V=0.1, H=0.0),
                               validation_fraction=0.25, seed=3)).report
    assert rep["train"]["all"]["H"]["rmse"] < no_h["train"]["all"]["H"]["rmse"]


def test_split_is_seeded_and_stratified(w_data):
    a = split(w_data, 0.5, 7)
    assert a == split(w_data, 0.5, 7)
    tr, va = a
    assert sorted(tr + va) == list(range(len(w_data)))
    for g in ("perfect", "vacancy"):
        assert sum(w_data[i].group == g for i in va) == 2


def test_bad_input(w_data, truth):
    ef = _label(truth, _cells(0, 2), "EF")
    with pytest.raises(InputError, match="F=-1"):
        LossWeights(F=-1.0)
    with pytest.raises(InputError, match="all loss weights"):
        LossWeights(E=0.0, F=0.0, V=0.0, H=0.0)
    with pytest.raises(InputError, match="H=0.5 > 0 but no configuration carries H"):
        check_data(ef, LossWeights(H=0.5))
    with pytest.raises(InputError, match="empty"):
        check_data([], LossWeights())
    with pytest.raises(InputError, match="defct"):
        check_data(ef, LossWeights(groups={"defct": {"F": 2.0}}))
    with pytest.raises(InputError, match="weight zero"):
        check_data(ef, LossWeights(groups={"perfect": {"E": 0.0, "F": 0.0}, "vacancy": {"E": 0.0, "F": 0.0}}))
    with pytest.raises(InputError, match="model kind"):
        ModelSpec(kind="gp")
    with pytest.raises(InputError, match="unknown key"):
        FitSpec.from_dict({"training_set": "x", "model": {"degre": 3}})
    # a model far too large for one energy: rank deficiency is reported, never hidden
    one = _label(truth, _cells(0, 1), "E")
    big = ModelSpec(cutoff=4.0, degree=6, l_max=2)
    with pytest.warns(RankDeficiencyWarning, match="effective rank"):
        _, diag = fit_linear(one, big, LossWeights(E=1.0, F=0.0))
    assert diag["rank_deficient"] and diag["effective_rank"] < diag["n_params"]
    with pytest.raises(InputError, match="effective rank"):
        fit_linear(one, big, LossWeights(E=1.0, F=0.0), on_rank_deficient="error")


def test_spec_hash_is_stable_and_toml_roundtrips(tmp_path):
    p = tmp_path / "f.toml"
    p.write_text('training_set = "ts"\nseed = 2\n[model]\ndegree = 5\nhidden = [4, 4]\n'
                 '[loss]\nV = 0.5\n[loss.groups.vacancy]\nF = 2.0\n')
    s1, s2 = FitSpec.from_toml(p), FitSpec.from_toml(p)
    assert s1 == s2 and s1.content_hash() == s2.content_hash()
    assert s1.loss.weight("vacancy", "F") == 2.0 and s1.loss.weight("perfect", "F") == 1.0
    assert FitSpec.from_dict(s1.to_dict()).content_hash() == s1.content_hash()
    assert FitSpec.from_dict(dict(s1.to_dict(), seed=3)).content_hash() != s1.content_hash()


def test_mlp_training_lowers_the_loss(w_data):
    spec = FitSpec(training_set="unused",
                   model=ModelSpec(kind="mlp", cutoff=4.0, degree=3, l_max=1, hidden=(8,), epochs=15,
                                   lbfgs_iterations=5, hessian_probes=1),
                   loss=LossWeights(E=1.0, F=1.0, V=0.1, H=0.01), validation_fraction=0.0)
    res = fit(w_data[:4], spec)
    d = res.report["solver"]
    assert d["final_loss"] < 0.5 * d["initial_loss"]
    assert res.report["train"]["all"]["F"]["rmse"] > 0


def test_cli_fit_end_to_end(tmp_path, capsys):
    from genanalysis.cli import main

    import genanalysis

    ts = tmp_path / "ts.toml"
    ts.write_text('potential = "builtin:W"\nlattice = "bcc"\ndefects = ["perfect", "vacancy"]\nsizes = [2]\n'
                  'configs_per_size = 3\nrattle = 0.05\n[observations]\nperfect = "EFVH"\ndefault = "EFV"\n')
    fs = tmp_path / "fit.toml"
    fs.write_text('training_set = "ts.toml"\nvalidation_fraction = 0.25\n[model]\ncutoff = 4.0\ndegree = 4\n'
                  'l_max = 2\nr_in = 2.0\n[loss]\nE = 1.0\nF = 1.0\nV = 0.1\nH = 0.01\n')
    assert main(["fit", str(fs), "--out", str(tmp_path / "m"), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["model_kind"] == "ace" and rep["validation"]["all"]["F"]["rmse"] < 0.5
    calc = genanalysis.load_model(tmp_path / "m")
    at = perfect_cell("bcc", A_W, 2, "W")
    at.calc = calc
    assert np.isfinite(at.get_potential_energy())
    bad = tmp_path / "bad.toml"
    bad.write_text('training_set = "ts.toml"\n[loss]\nF = -2.0\n')
    assert main(["fit", str(bad), "--out", str(tmp_path / "m2")]) == 2
    assert "F=-2" in capsys.readouterr().err
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        missing = tmp_path / "missing.toml"
        missing.write_text('training_set = "nothere"\n')
        assert main(["fit", str(missing), "--out", str(tmp_path / "m3")]) == 2


def test_two_dimensional_fit_uses_in_plane_components_only():
    """Triangular lattice (atoms in the plane): the fit sees only in-plane force, virial and
    force-constant components, and out-of-plane model derivatives vanish."""
    from genanalysis.potentials import load_potential

    pot = load_potential("builtin:morse")
    a = pot.equilibrium_lattice_constant("triangular")
    rng = np.random.default_rng(0)
    cs = []
    for k in range(6):
        at = defect_cell("triangular", a, 4, ("perfect", "vacancy")[k % 2], "X")
        at.positions[:, :2] += rng.normal(scale=0.03, size=(len(at), 2))
        ev = pot.observe(at)
        cs.append(Configuration(at, group=("perfect", "vacancy")[k % 2], energy=ev.energy, forces=ev.forces,
                                virial=ev.virial, hessian=pot.hessian(at) if k < 2 else None))
    spec = FitSpec(training_set="unused", model=ModelSpec(cutoff=2.5, degree=5, l_max=3, r_in=0.8),
                   loss=LossWeights(E=1.0, F=1.0, V=1.0, H=0.01), validation_fraction=0.0)
    res = fit(cs, spec)
    assert res.model.spec.dim == 2
    rep = res.report["train"]["all"]
    n = len(cs[0])
    assert rep["F"]["count"] == sum(2 * len(c) for c in cs)
    assert rep["H"]["count"] == (2 * n) ** 2 + (2 * len(cs[1])) ** 2
    assert rep["F"]["rmse"] < 0.05
    H = res.model.hessian(cs[1].atoms).toarray().reshape(len(cs[1]), 3, len(cs[1]), 3)
    assert np.all(H[:, 2] == 0.0) and np.all(H[:, :, :, 2] == 0.0)


def test_streamed_qr_folds_zero_design_rows_into_the_residual():
    """Rows with an all-zero design part (force constants of uncoupled atom pairs) skip the
    factorisation; RᵀR, Rᵀz and the residual norm equal those of the whole [A | y]."""
    from genanalysis.fit import _StreamedQR

    rng = np.random.default_rng(0)
    A = rng.normal(size=(300, 7))
    A[rng.random(300) < 0.6] = 0.0
    y = rng.normal(size=300)
    qr = _StreamedQR(7)
    for a in range(0, 300, 45):
        qr.add(A[a:a + 45], y[a:a + 45])
    R, z, resid = qr.result()
    full = np.linalg.qr(np.column_stack([A, y]), mode="r")
    assert qr.nrows_total == 300
    assert np.allclose(R.T @ R, A.T @ A, rtol=1e-12, atol=1e-10)
    assert np.allclose(R.T @ z, A.T @ y, rtol=1e-12, atol=1e-10)
    assert abs(resid - abs(full[7, 7])) <= 1e-12 * abs(full[7, 7])
