"""The train -> fit -> evaluate pipeline as a sweep task kind (genanalysis.pipeline).

Small 2D systems (triangular builtin:morse) so that every test runs the real stages: the
reference builds the training set, the linear model is fitted, the experiment relaxes both
defects. Properties are checked with hypothesis where the stage is cheap (specs, counting,
hashing); the end-to-end checks compare against independent recomputation.
"""

from __future__ import annotations

import dataclasses
import math
import sqlite3
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genanalysis.data import Configuration
from genanalysis.exceptions import InputError
from genanalysis.pipeline import (
    KIND,
    fit_spec,
    reference_work,
    run_point,
    trainingset_specs,
    validate,
)

TS = {"potential": "builtin:morse", "lattice": "triangular", "defects": ["perfect", "vacancy"],
      "size": 3, "configs_per_size": 1, "rattle": 0.03, "observations": "EF"}
FIT = {"model": {"kind": "ace", "cutoff": 2.5, "degree": 4, "body_order": 3, "l_max": 2},
       "loss": {"E": 1.0, "F": 1.0, "V": 1.0, "H": 0.01}, "validation_fraction": 0.0}
EXPERIMENT = {"defect": "vacancy", "size": 5}


def params(ts=None, fit=None, ex=None, seed=0):
    return {"trainingset": dict(TS, **(ts or {})), "fit": dict(FIT, **(fit or {})),
            "experiment": dict(EXPERIMENT, **(ex or {})), "seed": seed}


# ------------------------------------------------------------------ tables and validation


@given(n=st.integers(2, 9), n_p=st.integers(0, 6), seed=st.integers(0, 10**6),
       obs=st.sampled_from(["E", "EF", "EFV", "EFH", "EFVH"]))
@settings(max_examples=40, deadline=None)
def test_trainingset_table_expands_to_specs(n, n_p, seed, obs):
    table = dict(TS, size=n, observations=obs, fc_cells=n_p)
    specs = trainingset_specs(table, seed)
    assert specs[0].sizes == (n,)
    assert specs[0].seed == seed  # the study's seed when the table sets none
    assert all(codes == obs for _, codes in specs[0].observations)
    assert len(specs) == 1 + (n_p > 0)
    if n_p:
        fc = specs[1]
        assert fc.defects == ("perfect",) and fc.sizes == (n_p,)
        assert dict(fc.observations) == {"perfect": "EFH"}
        for k in ("potential", "lattice", "a", "seed", "rattle", "fmax"):
            assert getattr(fc, k) == getattr(specs[0], k)
    # the table's own seed wins over the study's
    assert trainingset_specs(dict(table, seed=7), seed)[0].seed == 7
    # key order is irrelevant: the same resolved specs, hence the same content hashes
    rev = dict(reversed(list(table.items())))
    assert [s.content_hash() for s in trainingset_specs(rev, seed)] == [s.content_hash() for s in specs]


@pytest.mark.parametrize("stage, change, key", [
    ("trainingset", {"size": 0}, "trainingset.size"),
    ("trainingset", {"sizes": [2]}, "trainingset.size"),
    ("trainingset", {"fc_cells": -1}, "trainingset.fc_cells"),
    ("trainingset", {"observations": "EFX"}, "observations"),
    ("trainingset", {"rattle": -0.1}, "rattle"),
    ("trainingset", {"extra": [{"size": 2}]}, "trainingset.extra[0].size"),
    ("fit", {"training_set": "x"}, "fit.training_set"),
    ("fit", {"loss": {"E": -1.0}}, "loss weight E"),
    ("fit", {"model": {"kind": "gp"}}, "model kind"),
    ("fit", {"drop_unobserved": "yes"}, "fit.drop_unobserved"),
    ("experiment", {"size": 0}, "experiment.size"),
    ("experiment", {"size": 1}, "experiment.size=1"),
    ("experiment", {"defect": "antisite"}, "experiment.defect"),
    ("experiment", {"reference": "builtin:W"}, "experiment.reference"),
    ("experiment", {"check_size": 4}, "experiment.check_size"),
    ("experiment", {"start": "random"}, "experiment.start"),
])
def test_bad_tables_are_refused_naming_the_key(stage, change, key):
    p = params()
    p[stage] = dict(p[stage], **change)
    with pytest.raises(InputError) as err:
        validate(p)
    assert key in str(err.value)


def test_missing_required_keys_are_named():
    for stage, key in (("trainingset", "potential"), ("experiment", "defect"), ("experiment", "size")):
        p = params()
        del p[stage][key]
        with pytest.raises(InputError, match=f"{stage}.{key}"):
            validate(p)


def test_study_names_the_kind_without_imports_and_validates_before_work(tmp_path):
    from genanalysis.sweep import parse_study, run_study
    from genanalysis.sweep.plan import build_plan

    raw = {"study": {"name": "p", "task": KIND}, **params(ex={"size": 12}),
           "sweep": {"trainingset.size": [2, 3], "experiment.defect": ["vacancy", "interstitial"]}}
    plan = build_plan(parse_study(raw))
    # 4 tasks; 2 training sets and 2 fits: the vacancy and interstitial tests share each fit;
    # one reference equilibrium per test defect, shared by both training sizes (and the
    # empty one of "no convergence check")
    assert len(plan.tasks) == 4
    kinds = sorted(n.kind.name for n in plan.shared.values())
    assert kinds == ["generalisation.fit"] * 2 + ["generalisation.reference"] * 3 + ["generalisation.trainingset"] * 2
    bad = dict(raw, experiment=dict(EXPERIMENT, size=-3))
    with pytest.raises(InputError, match="experiment.size"):
        run_study(parse_study(bad), tmp_path / "never")
    assert not (tmp_path / "never").exists()


# ------------------------------------------------------------------ reference work


def _cell(n_side: int, perfect: bool, obs: str) -> Configuration:
    import scipy.sparse as sp

    from genanalysis.lattice import defect_cell, perfect_cell

    atoms = perfect_cell("triangular", 1.0, n_side) if perfect else defect_cell("triangular", 1.0, n_side, "vacancy")
    n = len(atoms)
    c = Configuration(atoms=atoms, group="perfect" if perfect else "vacancy")
    if "E" in obs:
        c.energy = 0.0
    if "F" in obs:
        c.forces = np.zeros((n, 3))
    if "V" in obs:
        c.virial = np.zeros((3, 3))
    if "H" in obs:
        c.hessian = sp.csr_array((3 * n, 3 * n))
    return c


cells = st.tuples(st.integers(2, 5), st.booleans(), st.sampled_from(["E", "EF", "EFV", "EFH", "H", "EFVH"]))


@given(a=st.lists(cells, min_size=1, max_size=4), b=st.lists(cells, min_size=1, max_size=4))
@settings(max_examples=30, deadline=None)
def test_reference_work_is_additive_and_force_constants_cost_what_finite_differences_cost(a, b):
    ca = [_cell(*x) for x in a]
    cb = [_cell(*x) for x in b]
    wa, wb, wab = reference_work(ca), reference_work(cb), reference_work(ca + cb)
    for k in wab:
        assert wab[k] == wa[k] + wb[k]
    assert wab["ts_atoms"] == sum(len(c) for c in ca + cb) == wab["reference_work_analytic"]
    # every configuration: one evaluation; force constants by central differences add
    # 6 displaced evaluations (perfect crystal: one symmetry-distinct atom) or 2·d·n (any other cell)
    expected = sum(len(c) * (1 + (0 if "H" not in c.observed else (6 if c.group == "perfect" else 4 * len(c))))
                   for c in ca + cb)
    assert wab["reference_work"] == expected
    assert wab["reference_work"] >= wab["reference_work_analytic"]


# ------------------------------------------------------------------ the stages end to end


@pytest.fixture(scope="module")
def point(tmp_path_factory):
    work = tmp_path_factory.mktemp("pipeline")
    out = run_point(TS, FIT, EXPERIMENT, seed=0, workdir=work)
    return out, work


def _training_data(work):
    """The point fixture's training set, rebuilt from the reference cache (no new evaluations)."""
    from genanalysis.pipeline import build_training_data
    from genanalysis.sweep import TaskContext

    return build_training_data({"trainingset": TS, "seed": 0}, {},
                               TaskContext("ts", "t", 1, str(work / "artifacts" / "ts")))


def test_pipeline_point_reports_every_metric_finite(point):
    out, _ = point
    m = out.metrics
    assert m["status"] == "converged", m.get("reason")
    for k in ("error_energy_norm", "relative_error", "formation_energy_error", "residual_dual_norm",
              "stability_reference", "stability_model", "stability_model_at_reference", "effectivity",
              "force_constant_error", "lattice_stress_error", "fit_rmse_F_train", "reference_work"):
        assert isinstance(m[k], (int, float)) and math.isfinite(m[k]), k
    assert m["error_energy_norm"] > 0 and m["stability_model_at_reference"] > 0
    # the a-posteriori bound (T8) holds for this fitted model
    assert 0 < m["effectivity"] <= 2.0
    # V and H are not in the data: their weights were dropped, and the report says so
    assert any("V=1 set to 0" in n for n in out.fit_report["notes"])
    assert any("H=0.01 set to 0" in n for n in out.fit_report["notes"])


def test_saved_model_is_the_model_the_task_evaluated(point):
    """The model the pipeline saved (``genanalysis evaluate --model DIR``) gives the energies,
    forces and virials of the model the task evaluated, on every training configuration."""
    from genanalysis.potentials import load_potential
    from genanalysis.pipeline import _model_from, fit_model

    out, work = point
    data = _training_data(work)
    in_memory = _model_from(fit_model(params(), {"trainingset": data}, None))
    saved = load_potential(out.info["model_dir"])
    for c in data.configs:
        a, b = in_memory.observe(c.atoms), saved.observe(c.atoms)
        assert a.energy == b.energy
        np.testing.assert_array_equal(a.forces, b.forces)
        np.testing.assert_array_equal(a.virial, b.virial)


def test_pipeline_fit_equals_a_direct_fit_of_the_same_data(point):
    """The shared fit is the fit stage unchanged: same data, same spec -> same coefficients."""
    from genanalysis.fit import fit
    from genanalysis.models.io import load_fitted
    from genanalysis.trainingset import load_training_set

    out, work = point
    model, _ = load_fitted(out.info["model_dir"])
    ts_dirs = sorted((work / "artifacts" / "ts").glob("set0-*"))
    configs = load_training_set(ts_dirs[0])
    spec, _ = fit_spec(FIT, 0)
    spec = dataclasses.replace(spec, loss=dataclasses.replace(spec.loss, V=0.0, H=0.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        direct = fit(configs, spec)
    np.testing.assert_array_equal(direct.model.coef_, model.coef_)


def test_failed_fit_is_a_result_not_a_crash(point):
    """A virial weight with no virial data and drop_unobserved = false: the fit refuses, and
    the task reports status 'fit failure' with the reason (and the training set's work)."""
    from genanalysis.pipeline import fit_model, generalisation_task

    _, work = point
    data = _training_data(work)
    p = params(fit={"drop_unobserved": False})
    fitted = fit_model(p, {"trainingset": data}, None)
    assert fitted["status"] == "fit failure" and "V=1" in fitted["reason"]
    out = generalisation_task(p, {"trainingset": data, "fit": fitted}, None)
    m = out.metrics
    assert m["status"] == "fit failure" and "V=1" in m["reason"]
    assert m["reference_work"] > 0 and "error_energy_norm" not in m


def test_zero_weight_for_an_unobserved_type_changes_nothing(point):
    """drop_unobserved only removes weights that multiply nothing: on EF data, V = H = 0
    given explicitly and V = 1, H = 0.01 dropped give bit-identical coefficients."""
    from genanalysis.pipeline import fit_model

    _, work = point
    data = _training_data(work)
    a = fit_model(params(), {"trainingset": data}, None)
    b = fit_model(params(fit={"loss": dict(FIT["loss"], V=0.0, H=0.0)}), {"trainingset": data}, None)
    assert a["status"] == b["status"] == "fitted"
    np.testing.assert_array_equal(a["arrays"]["coef"], b["arrays"]["coef"])
    assert b["report"]["notes"] == [] and len(a["report"]["notes"]) == 2


def test_sweep_shares_the_fit_between_test_defects_and_reruns_nothing(tmp_path):
    from genanalysis.sweep import parse_study, run_study

    raw = {"study": {"name": "share", "task": KIND},
           **params(ts={"size": 2}, ex={"size": 4}),
           "sweep": {"experiment.defect": ["vacancy", "interstitial"]}}
    s1 = run_study(parse_study(raw), tmp_path / "out", workers=2, quiet=True)
    assert (s1.done, s1.failed, s1.shared_built) == (2, 0, 5)
    with sqlite3.connect(tmp_path / "out" / "results.sqlite") as db:
        builds = dict(db.execute("SELECT kind, SUM(builds) FROM shared GROUP BY kind").fetchall())
        rows = db.execute("SELECT json_extract(params, '$.experiment.defect'), json_extract(metrics, '$.status'), "
                          "json_extract(metrics, '$.reason') FROM tasks ORDER BY point").fetchall()
    # one reference equilibrium per test defect (plus the empty one of "no convergence check")
    assert builds == {"generalisation.fit": 1, "generalisation.trainingset": 1, "generalisation.reference": 3}
    # the model fitted to N = 2 cells holds both defects in the M = 4 test domain
    assert {d: (s, r) for d, s, r in rows} == {"vacancy": ("converged", ""), "interstitial": ("converged", "")}
    s2 = run_study(parse_study(raw), tmp_path / "out", workers=2, quiet=True)
    assert (s2.skipped, s2.done, s2.shared_built) == (2, 0, 0)


STUDIES = ["training_size_2d", "training_size_3d", "training_size_3d_from_reference", "test_domain_2d",
           "fc_vs_large_cells_2d", "loss_weights_2d", "model_size_2d"]


@pytest.mark.parametrize("name", STUDIES)
def test_study_specs_in_the_repository_validate(name):
    """Every pipeline study in studies/ parses, validates every point and plans its shared work."""
    from pathlib import Path

    from genanalysis.sweep import load_study
    from genanalysis.sweep.plan import build_plan

    path = Path(__file__).resolve().parents[1] / "studies" / f"{name}.toml"
    plan = build_plan(load_study(path))
    assert plan.kind.name == KIND and plan.tasks
    n_fits = sum(n.kind.name == "generalisation.fit" for n in plan.shared.values())
    n_sets = sum(n.kind.name == "generalisation.trainingset" for n in plan.shared.values())
    assert 1 <= n_sets <= n_fits <= len(plan.tasks)


def test_the_pipeline_shared_work_round_trips_through_its_data_only_file(point):
    """The training set and the fit, as the sweep stores them (genanalysis.sweep.sharedio),
    come back equal bit for bit: the fit of the data read back gives the same coefficients,
    and the model read back gives the same forces."""
    from genanalysis.pipeline import _model_from, fit_model
    from genanalysis.sweep import sharedio

    _, work = point
    data = _training_data(work)
    back = sharedio.loads(sharedio.dumps(data, "h" * 64), "h" * 64)
    assert [c.observed for c in back.configs] == [c.observed for c in data.configs]
    for a, b in zip(data.configs, back.configs):
        assert a.energy == b.energy and np.array_equal(a.forces, b.forces)
        assert np.array_equal(a.atoms.positions, b.atoms.positions) and a.atoms.info == b.atoms.info
    fitted = fit_model(params(), {"trainingset": data}, None)
    refit = fit_model(params(), {"trainingset": back}, None)
    np.testing.assert_array_equal(refit["arrays"]["coef"], fitted["arrays"]["coef"])
    stored = sharedio.loads(sharedio.dumps(fitted, "f" * 64), "f" * 64)
    assert stored["report"] == fitted["report"] and stored["header"] == fitted["header"]
    at = data.configs[0].atoms
    np.testing.assert_array_equal(_model_from(stored).observe(at).forces, _model_from(fitted).observe(at).forces)


# ------------------------------------------------------------------ shared reference equilibrium


def test_a_stored_reference_equilibrium_gives_the_same_result_and_belongs_to_its_domain(point):
    """evaluate() with the stored ū of the test domain (through its data-only file) gives
    the metrics of evaluate() relaxing ū itself, bit for bit; a ū of another domain is
    refused (InputError naming the field)."""
    from genanalysis.experiment import evaluate, reference_equilibrium
    from genanalysis.pipeline import _model_from, experiment_spec, fit_model
    from genanalysis.sweep import sharedio

    _, work = point
    data = _training_data(work)
    model = _model_from(fit_model(params(), {"trainingset": data}, None))
    spec = experiment_spec(EXPERIMENT, data.lattice, data.a)
    stored = sharedio.loads(sharedio.dumps(reference_equilibrium(data.potential, spec), "r" * 64), "r" * 64)
    own = evaluate(model, data.potential, spec).metrics()
    shared = evaluate(model, data.potential, spec, reference_equilibrium=stored).metrics()
    for m in (own, shared):
        m.pop("wall_time")
    assert shared == own
    other = reference_equilibrium(data.potential, dataclasses.replace(spec, size=spec.size + 1))
    with pytest.raises(InputError, match="reference_equilibrium: its size"):
        evaluate(model, data.potential, spec, reference_equilibrium=other)


def test_reference_key_ignores_what_does_not_change_the_reference():
    """The reference equilibrium's key: seeds, fits, observations, the model's start do not
    enter it; the domain size, defect and tolerances do."""
    from genanalysis.pipeline import check_reference_key, reference_key

    base = reference_key(params(ex={"size": 12}))
    assert reference_key(params(ts={"observations": "EFH", "size": 2}, fit={"validation_fraction": 0.2},
                                ex={"size": 12, "start": "reference"}, seed=7)) == base
    for ex in ({"size": 13}, {"size": 12, "defect": "interstitial"}, {"size": 12, "fmax": 1e-5},
               {"size": 12, "max_iter": 77}):
        assert reference_key(params(ex=ex)) != base
    assert check_reference_key(params(ex={"size": 12})) is None
    assert check_reference_key(params(ex={"size": 12, "check_size": 16}))["size"] == 16


@given(n_max=st.integers(3, 10), m=st.integers(2, 60))
@settings(max_examples=40, deadline=None)
def test_a_size_sweep_needs_test_domains_four_times_its_largest_cell(n_max, m):
    """The standard M ≥ 4·N_max: a study sweeping N with a smaller M is refused in one line
    naming M and the bound, unless it says allow_small_test_domain = true; a study at one N
    is not a size sweep."""
    from genanalysis.pipeline import validate_study

    points = [params(ts={"size": n}, ex={"size": m}) for n in range(2, n_max + 1)]
    if m >= 4 * n_max:
        validate_study(points)
    else:
        with pytest.raises(InputError, match=f"experiment.size={m}: .* M ≥ 4·N_max = {4 * n_max}"):
            validate_study(points)
    validate_study([params(ts={"size": n}, ex={"size": m, "allow_small_test_domain": True})
                    for n in range(2, n_max + 1)])
    validate_study([params(ts={"size": n_max}, ex={"size": m})])
    with pytest.raises(InputError, match="experiment.allow_small_test_domain='yes'"):
        validate(params(ex={"allow_small_test_domain": "yes"}))
