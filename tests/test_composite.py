"""Composite models (genanalysis.models.composite): a sum of pair, embedding and ACE terms
fitted by the one linear least squares. A composite of one term is the plain model of that
term; the Fisher information of a composite fit is its design's normal matrix; a term with
no information (no neighbour inside its cutoff) leaves the fit unchanged when removed; the
embedding term's forces, Hessian, products and elastic constants are the derivatives of its
energy; save/load round trip; the energy is invariant under rotations, reflections and
translations. Units: Å, eV, eV/Å, eV/Å²; the Fisher information 1/eV²."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genanalysis.exceptions import InputError
from genanalysis.fit import FitSpec, LossWeights, ModelSpec, fit_linear
from genanalysis.fitting.loss import select, terms, weighted_kinds
from genanalysis.identifiability import fisher_information
from genanalysis.lattice import perfect_cell
from genanalysis.models.composite import CompositeModel
from genanalysis.models.io import load_fitted, model_potential, save_model
from morsecells import rattled_morse_cells

BASE = dict(cutoff=2.5, degree=4, body_order=3, l_max=2)
TERMS = [{"kind": "pair"}, {"kind": "embedding", "n_embed": 3, "density_scale": 1.5}, {"kind": "ace", "orders": [3]}]
LOSS = LossWeights(E=1.0, F=1.0, V=0.5)


@pytest.fixture(scope="module")
def configs():
    return rattled_morse_cells(4, 0, rattle=0.03, groups=("vacancy", "perfect"))


def _fit(configs, spec, loss=LOSS):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the small sets leave some directions undetermined
        return fit_linear(configs, spec, loss, partial_information=True)[0]


def _composite(terms=TERMS, **base):
    return ModelSpec(kind="composite", terms=terms, **{**BASE, **base})


def test_a_composite_of_one_term_is_the_plain_model(configs):
    plain = _fit(configs, ModelSpec(**BASE))
    one = _fit(configs, _composite([{"kind": "ace"}]))
    assert one.n_params == plain.n_params
    assert np.allclose(one.coef_, plain.coef_, rtol=1e-9, atol=1e-12)
    assert np.allclose(one.r_factor_.T @ one.r_factor_, plain.r_factor_.T @ plain.r_factor_, rtol=1e-12)
    at = configs[0].atoms
    a, b = one.predict(at), plain.predict(at)
    assert a["energy"] == pytest.approx(b["energy"], rel=1e-12)
    assert np.allclose(a["forces"], b["forces"], atol=1e-10)
    pair = _fit(configs, _composite([{"kind": "pair"}]))
    plain2 = _fit(configs, ModelSpec(**{**BASE, "body_order": 2}))
    assert np.allclose(pair.coef_, plain2.coef_, rtol=1e-9, atol=1e-12)


def _direct(model, configs, loss):
    rows = []
    for conf in configs:
        kinds = weighted_kinds(conf, loss)
        d = model.design(conf.atoms, kinds)
        rows += [b.sqrt_weight[:, None] * select(b, d, conf) for b in terms(conf, loss, kinds)]
    return np.vstack(rows)


def test_fisher_information_of_a_composite_fit_is_the_normal_matrix(configs):
    model = _fit(configs, _composite())
    J = _direct(CompositeModel(model.spec), configs, LOSS)
    normal = J.T @ J
    assert np.linalg.norm(model.r_factor_.T @ model.r_factor_ - normal) <= 1e-10 * np.linalg.norm(normal)
    f = fisher_information(model)
    assert set(f["per_term"]) == {"term pair", "term embedding", "term ace"}
    assert sum(v["n_params"] for v in f["per_term"].values()) == model.n_params - 1  # the constant is no term
    for label, cols in model.information_groups().items():
        assert f["per_term"][label]["trace"] == pytest.approx(np.trace(normal[np.ix_(cols, cols)]), rel=1e-10)
        assert f["per_term"][label]["given_others_trace"] <= f["per_term"][label]["trace"] * (1 + 1e-12)
    assert f["parts_deviation"] <= 1e-12


def test_removing_a_term_without_information_leaves_the_fit_unchanged(configs):
    blind = {"kind": "pair", "name": "blind", "cutoff": 0.5, "degree": 2}  # no neighbour within 0.5 Å
    kept = [TERMS[0], TERMS[2]]  # pair + three-body: full rank on these cells (the embedding overlaps them)
    with_it = _fit(configs, _composite(kept + [blind]))
    without = _fit(configs, _composite(kept))
    f = fisher_information(with_it)
    assert f["per_term"]["term blind"]["trace"] == 0.0
    assert set(f["uninformed_features"]) == {"blind:2b n=0", "blind:2b n=1", "blind:2b n=2", "blind:2b n=3"}
    cols = with_it.term_columns["blind"]
    assert not np.any(with_it.coef_[cols])
    assert np.allclose(np.delete(with_it.coef_, cols), without.coef_, rtol=1e-8, atol=1e-12)
    for conf in configs:
        a, b = with_it.predict(conf.atoms), without.predict(conf.atoms)
        assert a["energy"] == pytest.approx(b["energy"], rel=1e-12)
        assert np.allclose(a["forces"], b["forces"], atol=1e-10)


def test_an_uninformative_embedding_coefficient_is_the_minimum_norm_direction(configs):
    """Removing basis functions (``features``) keeps the named ones only."""
    full = CompositeModel.of_terms(TERMS, 2, ModelSpec(**BASE))
    cut = CompositeModel.of_terms([TERMS[0], {**TERMS[1], "features": ["t^1", "t^3"]}, TERMS[2]], 2,
                                  ModelSpec(**BASE))
    assert cut.n_params == full.n_params - 1
    assert "embedding:t^2" not in cut.feature_names and "embedding:t^3" in cut.feature_names
    with pytest.raises(InputError, match="not in its basis"):
        CompositeModel.of_terms([{**TERMS[1], "features": ["t^9"]}], 2, ModelSpec(**BASE))


def _embedding_model():
    m = CompositeModel.of_terms([{"kind": "embedding", "cutoff": 2.5, "n_embed": 3, "density_scale": 1.5},
                                 {"kind": "pair", "cutoff": 2.5, "degree": 2}], 2)
    m.coef_ = np.array([0.1, -1.0, 0.3, 0.05, 0.2, -0.1, 0.05, 0.02])
    return m


def test_embedding_term_derivatives(configs):
    m = _embedding_model()
    at = configs[0].atoms
    r = m.predict(at, hessian=True)
    H = r["hessian"].toarray()
    assert np.allclose(H, H.T, atol=1e-10)
    h = 1e-5
    for i, c in ((0, 0), (3, 1)):
        ap, am = at.copy(), at.copy()
        ap.positions[i, c] += h
        am.positions[i, c] -= h
        pp, pm = m.predict(ap), m.predict(am)
        assert -(pp["energy"] - pm["energy"]) / (2 * h) == pytest.approx(r["forces"][i, c], abs=1e-7)
        col = -(pp["forces"] - pm["forces"]).ravel() / (2 * h)
        assert np.abs(col - H[:, 3 * i + c]).max() <= 1e-6 * max(1.0, np.abs(col).max())
    v = np.random.default_rng(1).normal(size=3 * len(at))
    assert np.allclose(m.linearise(at) @ v, H @ v, atol=1e-10)
    e, F, op = m.energy_forces(at, linearise=True)
    assert e == pytest.approx(r["energy"], rel=1e-13) and np.allclose(F, r["forces"], atol=1e-12)
    assert np.allclose(op @ v, H @ v, atol=1e-10)
    assert np.allclose(m.hessian_rows(at, np.array([0, 2])), H[np.r_[0:3, 6:9]], atol=1e-10)
    d = m.design(at, "EFVH")
    assert d["E"] @ m.coef_ == pytest.approx(r["energy"], rel=1e-12)
    assert np.allclose(d["F"] @ m.coef_, r["forces"], atol=1e-10)
    assert np.allclose(d["V"] @ m.coef_, r["virial"], atol=1e-10)
    assert np.allclose(d["H"] @ m.coef_, H, atol=1e-9)


def test_embedding_elastic_constants_are_the_strain_derivative_of_the_stress():
    m = _embedding_model()
    pc = perfect_cell("triangular", 1.0 * 2 ** (1 / 6) * 1.1, 4, "X")
    C = m.elastic_constants(pc)
    cell = np.array(pc.cell)
    h = 1e-5
    for b, (k, l) in enumerate(((0, 0), (1, 1), (0, 1))):
        s = []
        for sgn in (1.0, -1.0):
            E = np.zeros((3, 3))
            E[k, l] += 0.5 * sgn * h
            E[l, k] += 0.5 * sgn * h
            at = pc.copy()
            at.set_cell(cell @ (np.eye(3) + E).T, scale_atoms=True)
            s.append(-m.predict(at)["virial"] / abs(np.cross(at.cell[0], at.cell[1])[2]))  # σ = −W/Ω(ε)
        ds = (s[0] - s[1]) / (2 * h)
        assert np.allclose([ds[0, 0], ds[1, 1], ds[0, 1]], C[:, b], atol=1e-6 * np.abs(C).max())


def test_save_load_round_trip(configs, tmp_path):
    model = _fit(configs, _composite())
    save_model(model, tmp_path / "m", element="X")
    back, header = load_fitted(tmp_path / "m")
    assert header["kind"] == "composite" and back.feature_names == model.feature_names
    assert np.array_equal(back.coef_, model.coef_)
    at = configs[1].atoms
    a, b = model.predict(at, hessian=True), back.predict(at, hessian=True)
    assert a["energy"] == b["energy"] and np.array_equal(a["forces"], b["forces"])
    assert np.array_equal(a["hessian"].toarray(), b["hessian"].toarray())
    assert model_potential(tmp_path / "m").observe(at).energy == a["energy"]


def test_fit_spec_reads_composite_terms_and_refuses_bad_ones():
    spec = FitSpec.from_dict({"training_set": "ts", "model": {"kind": "composite", "cutoff": 3.0, "terms": TERMS}})
    t = spec.model.terms
    assert [x.kind for x in t] == ["pair", "embedding", "ace"] and t[0].cutoff == 3.0  # inherited
    again = FitSpec.from_dict({**spec.to_dict()})
    assert again.content_hash() == spec.content_hash()
    plain = FitSpec.from_dict({"training_set": "ts"})
    assert "terms" not in plain.to_dict()["model"]  # the other kinds hash as before
    with pytest.raises(InputError, match="unknown key"):
        ModelSpec(kind="composite", terms=[{"kind": "pair", "radius": 2.0}])
    with pytest.raises(InputError, match="composite"):
        ModelSpec(kind="ace", terms=[{"kind": "pair"}])
    with pytest.raises(InputError, match="needs model.terms"):
        ModelSpec(kind="composite")
    with pytest.raises(InputError, match="term kind"):
        ModelSpec(kind="composite", terms=[{"kind": "spline"}])
    with pytest.raises(InputError, match="unique"):
        ModelSpec(kind="composite", terms=[{"kind": "pair", "name": "a"}, {"kind": "ace", "name": "a"}])
    with pytest.raises(InputError, match="orders"):
        ModelSpec(kind="composite", terms=[{"kind": "ace", "body_order": 3, "orders": [4]}])


@settings(max_examples=8, deadline=None)
@given(st.floats(0.0, 2 * math.pi), st.booleans(), st.floats(-1.0, 1.0))
def test_energy_is_invariant_under_rotations_reflections_and_translations(configs, angle, mirror, shift):
    m = _embedding_model()
    at = configs[0].atoms
    c, s = math.cos(angle), math.sin(angle)
    Q = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ np.diag([1.0, -1.0 if mirror else 1.0, 1.0])
    moved = at.copy()
    moved.set_cell(np.array(at.cell) @ Q.T)
    moved.positions = at.positions @ Q.T + np.array([shift, -0.5 * shift, 0.0])
    a, b = m.predict(at), m.predict(moved)
    assert b["energy"] == pytest.approx(a["energy"], rel=1e-11, abs=1e-11)
    assert np.allclose(b["forces"], a["forces"] @ Q.T, atol=1e-10)


def test_fit_and_evaluate_commands_take_a_composite_model(tmp_path):
    import json

    from clirun import genanalysis, morse_training_set

    def run(*args):
        return genanalysis(tmp_path, *args)

    morse_training_set(tmp_path, 'observations = "EFV"\n')
    (tmp_path / "fit.toml").write_text(
        'training_set = "ts"\nvalidation_fraction = 0.0\n[model]\nkind = "composite"\ncutoff = 2.5\nl_max = 2\n'
        '[[model.terms]]\nkind = "pair"\ndegree = 3\n[[model.terms]]\nkind = "embedding"\nn_embed = 2\n'
        'density_scale = 1.66\n[loss]\nE = 1.0\nF = 1.0\nV = 1.0\n')
    assert (p := run("fit", "fit.toml", "--out", "model", "--fisher")).returncode == 0, p.stderr
    f = json.loads((tmp_path / "model" / "fisher.json").read_text())
    assert set(f["per_term"]) == {"term pair", "term embedding"}
    assert "[[model.terms]]" in (tmp_path / "model" / "fitspec.toml").read_text()
    p = run("evaluate", "--model", "model", "--reference", "builtin:morse", "--lattice", "triangular",
            "--defect", "vacancy", "--size", "6", "--no-stability", "--json")
    assert p.returncode in (0, 3), p.stderr
    assert json.loads(p.stdout)["model"]


def test_coincident_atoms_are_an_overlap_failure_not_a_crash(configs):
    """A model driven into collapse puts two atoms on one point: the pair terms divide by r,
    which is a numerical finding (OverlapError, a result row), not a ZeroDivisionError."""
    from genanalysis.exceptions import OverlapError

    at = configs[0].atoms.copy()
    at.positions[1] = at.positions[0]
    for model in (_embedding_model(), CompositeModel.of_terms([{"kind": "ace"}], 2, ModelSpec(**BASE))):
        with pytest.raises(OverlapError, match="coincide"):
            model.energy_forces(at)


def test_design_page_tables_are_the_recorded_data():
    """docs/design.md quotes what studies/composite_design.py prints from docs/data/."""
    import json

    from studyload import ROOT, load_study

    mod = load_study("composite_design")
    page = (ROOT / "docs" / "design.md").read_text()
    for name, quoted in (("morse2d", mod.tables), ("w3d", mod.tables), ("morse2d_loose", mod.summary),
                         ("w3d_one_density", mod.summary)):
        doc = json.loads((ROOT / "docs" / "data" / f"composite_design_{name}.json").read_text())
        for line in quoted(doc).splitlines():
            assert line in page, f"{name}: {line}"


def test_feature_degrees_and_the_identifiability_prior_of_a_composite_model():
    from genanalysis.identifiability import feature_degrees, prior_precision

    m = CompositeModel.of_terms(TERMS, 2, ModelSpec(**BASE))
    deg = feature_degrees(m)
    names = m.feature_names
    assert deg[0] == 0 and len(deg) == m.n_params
    assert deg[names.index("pair:2b n=3")] == 4.0  # radial index + 1
    assert deg[names.index("embedding:t^2")] == 2.0
    assert deg[names.index("ace:3b n=0,0 l=1")] == 4.0  # (0 + 1 + 1) twice
    assert np.all(prior_precision(m) > 0)


def test_a_sweep_point_fits_and_evaluates_a_composite_model(tmp_path):
    """``[fit] model = { kind = "composite", terms = [...] }`` in a study: the pipeline's fit
    and experiment stages take it like any linear kind."""
    from genanalysis.pipeline import run_point

    ts = {"potential": "builtin:morse", "lattice": "triangular", "defects": ["perfect", "vacancy"], "size": 3,
          "configs_per_size": 1, "rattle": 0.03, "observations": "EFV"}
    fit = {"model": {"kind": "composite", "cutoff": 2.5, "l_max": 2,
                     "terms": [{"kind": "pair", "degree": 4}, {"kind": "ace", "orders": [3], "degree": 3}]},
           "loss": {"E": 1.0, "F": 1.0, "V": 1.0}, "validation_fraction": 0.0}
    out = run_point(ts, fit, {"defect": "vacancy", "size": 5}, seed=0, workdir=tmp_path)
    model, header = load_fitted(out.info["model_dir"])
    assert header["kind"] == "composite" and [t.name for t in model.spec.terms] == ["pair", "ace"]
    assert out.metrics["status"] == "converged" and math.isfinite(out.metrics["error_energy_norm"])


def test_embedding_powers_span_the_density_which_is_the_first_pair_feature(configs):
    """t² + 2√δ t = ρ/ρ_s, and ρ = A_0/Y_0 is the pair feature 2b n=0 at the same cutoff: an
    embedding and a pair term of one cutoff share exactly one direction (docs/models.md §11)."""
    m = CompositeModel.of_terms([{"kind": "pair", "cutoff": 2.5, "degree": 2},
                                 {"kind": "embedding", "cutoff": 2.5, "n_embed": 2, "density_scale": 1.5,
                                  "delta": 0.04}], 2)
    d = m.design(configs[0].atoms, "EF")
    names = m.feature_names
    col = {k: names.index(k) for k in ("pair:2b n=0", "embedding:t^1", "embedding:t^2")}
    y0 = 1.0 / math.sqrt(2 * math.pi)
    for k in ("E", "F"):
        lhs = d[k][..., col["embedding:t^2"]] + 2 * math.sqrt(0.04) * d[k][..., col["embedding:t^1"]]
        assert np.allclose(lhs, d[k][..., col["pair:2b n=0"]] / (y0 * 1.5), rtol=1e-10, atol=1e-10)
