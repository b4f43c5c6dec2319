"""Study specs: expansion of sweep axes, validation before any work, stable content hashes."""

from __future__ import annotations

import copy
import itertools
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genanalysis.exceptions import InputError
from genanalysis.sweep import build_plan, content_hash, load_study, parse_study, register_validator
from genanalysis.sweep import registry
from genanalysis.sweep.plan import canonical_json


def spec(**over):
    raw = {
        "study": {"name": "t", "task": "toy.probe"},
        "trainingset": {"g": 0},
        "experiment": {"x": 1.0},
        "sweep": {"experiment": {"x": [1.0, 2.0, 3.0]}, "seed": [0, 1]},
    }
    for k, v in over.items():
        raw[k] = v
    return raw


# -- expansion -------------------------------------------------------------------------

axis_values = st.lists(st.integers(-50, 50), min_size=1, max_size=4, unique=True)


@given(st.lists(axis_values, min_size=1, max_size=3))
@settings(max_examples=40, deadline=None)
def test_product_expands_to_every_combination_once(axes):
    paths = ["experiment.x", "fit.w", "trainingset.g"][: len(axes)]
    raw = spec(sweep={p: v for p, v in zip(paths, axes)})
    study = parse_study(raw)
    points = study.points()
    assert len(points) == math.prod(len(v) for v in axes)
    got = {tuple(p.overrides[path] for path in paths) for p in points}
    assert got == set(itertools.product(*axes))
    # every point carries its overrides in its parameter tree, the rest is the base
    for p in points:
        for path in paths:
            stage, key = path.split(".")
            assert p.params[stage][key] == p.overrides[path]


@given(st.integers(1, 6), st.integers(1, 3))
@settings(max_examples=20, deadline=None)
def test_zip_pairs_axes_elementwise(n, k):
    paths = ["experiment.x", "fit.w", "trainingset.g"][:k]
    raw = spec(sweep={"mode": "zip", **{p: list(range(i * 10, i * 10 + n)) for i, p in enumerate(paths)}})
    points = parse_study(raw).points()
    assert len(points) == n
    for j, p in enumerate(points):
        assert [p.overrides[path] for path in paths] == [i * 10 + j for i in range(k)]


def test_toml_dotted_and_quoted_axes_are_the_same(tmp_path):
    a = tmp_path / "a.toml"
    b = tmp_path / "b.toml"
    head = '[study]\ntask = "toy.probe"\n[experiment]\nx = 1.0\n'
    a.write_text(head + "[sweep]\nexperiment.x = [1.0, 2.0]\n")
    b.write_text(head + '[sweep]\n"experiment.x" = [1.0, 2.0]\n')
    ha = [t.hash for t in build_plan(load_study(a)).tasks]
    hb = [t.hash for t in build_plan(load_study(b)).tasks]
    assert ha == hb and len(set(ha)) == 2
    assert load_study(a).name == "a"  # default name: the file's stem


# -- hashing ---------------------------------------------------------------------------

json_scalars = st.one_of(st.integers(-1000, 1000), st.floats(allow_nan=False, allow_infinity=False),
                         st.text(max_size=5), st.booleans())
trees = st.recursive(json_scalars, lambda c: st.one_of(st.lists(c, max_size=3),
                                                       st.dictionaries(st.text(max_size=4), c, max_size=4)),
                     max_leaves=12)


def _shuffled(obj, rng):
    if isinstance(obj, dict):
        items = list(obj.items())
        rng.shuffle(items)
        return {k: _shuffled(v, rng) for k, v in items}
    if isinstance(obj, list):
        return [_shuffled(v, rng) for v in obj]
    return obj


@given(st.dictionaries(st.text(max_size=4), trees, max_size=5), st.integers(0, 2**31))
@settings(max_examples=60, deadline=None)
def test_hash_ignores_key_order(tree, seed):
    assert content_hash(tree) == content_hash(_shuffled(tree, random.Random(seed)))


@given(st.integers(-10**6, 10**6), st.integers(-10**6, 10**6))
def test_hash_sees_every_value(a, b):
    assert (content_hash({"x": a}) == content_hash({"x": b})) == (a == b)


def test_task_hash_depends_on_params_and_code_version_not_on_study_name():
    base = build_plan(parse_study(spec()))
    renamed = build_plan(parse_study(spec(study={"name": "other", "task": "toy.probe"})))
    assert [t.hash for t in base.tasks] == [t.hash for t in renamed.tasks]
    changed = build_plan(parse_study(spec(trainingset={"g": 1})))
    assert not set(t.hash for t in base.tasks) & set(t.hash for t in changed.tasks)
    kind = registry.get_task_kind("toy.probe")
    old = kind
    try:
        registry.register_task_kind("toy.probe", kind.fn, needs={"stamp": ("toy.stamp", "trainingset")},
                                    version="999", validate=kind.validate)
        bumped = build_plan(parse_study(spec()))
        assert not set(t.hash for t in base.tasks) & set(t.hash for t in bumped.tasks)
    finally:
        registry._TASKS["toy.probe"] = old


def test_shared_work_is_one_node_per_distinct_input():
    plan = build_plan(parse_study(spec(sweep={"experiment.x": [1.0, 2.0], "trainingset.g": [0, 1, 2],
                                              "seed": [0, 1]})))
    assert len(plan.tasks) == 12
    assert len(plan.shared) == 3  # one per trainingset table
    for t in plan.tasks:
        (alias, h), = t.deps
        assert plan.shared[h].params == t.params["trainingset"]


# -- validation names the key ----------------------------------------------------------

@pytest.mark.parametrize("mutate, key", [
    (lambda r: r.update(bogus=1), "bogus"),
    (lambda r: r.pop("study"), "study"),
    (lambda r: r["study"].update(task=""), "study.task"),
    (lambda r: r["study"].update(retries=-1), "study.retries"),
    (lambda r: r["study"].update(colour="red"), "study.colour"),
    (lambda r: r["sweep"].update(mode="cartesian"), "sweep.mode"),
    (lambda r: r["sweep"].update(seed=3), "sweep.seed"),
    (lambda r: r["sweep"].update(seed=[]), "sweep.seed"),
    (lambda r: r["sweep"].update(seed=[1, 1]), "sweep.seed"),
    (lambda r: r["sweep"].update(seed=[-1]), "sweep.seed"),
    (lambda r: r["sweep"].update(model=[1]), "sweep.model"),
    (lambda r: r["sweep"].update({"trainingset.g.h": [1]}), "sweep.trainingset.g.h"),
    (lambda r: r["sweep"].update(mode="zip"), "sweep.mode"),
    (lambda r: r.update(rates=[{"quantity": "y", "against": "fit.w"}]), "rates[0].against"),
    (lambda r: r.update(rates=[{"quantity": "y", "against": "experiment.x", "fit_range": [3, 1]}]),
     "rates[0].fit_range"),
    (lambda r: r.update(rates=[{"quantity": "y", "against": "experiment.x", "predicted": "supercell_energy"}]),
     "rates[0].d"),
    (lambda r: r.update(rates=[{"quantity": "y", "against": "experiment.x", "sense": "sideways"}]),
     "rates[0].sense"),
    (lambda r: r.update(rates=[{"quantity": "y", "against": "experiment.x", "slope": 1}]), "rates[0].slope"),
    (lambda r: r.update(seed=-3), "seed"),
])
def test_structural_errors_name_the_key(mutate, key):
    raw = copy.deepcopy(spec())
    mutate(raw)
    with pytest.raises(InputError) as exc:
        parse_study(raw)
    assert str(exc.value).startswith(key), str(exc.value)


def test_negative_axis_cannot_be_a_log_rate():
    raw = spec(sweep={"experiment.x": [-1.0, 2.0]}, rates=[{"quantity": "y", "against": "experiment.x"}])
    with pytest.raises(InputError, match="positive"):
        parse_study(raw)


def test_kind_validation_runs_on_every_point_before_any_work():
    raw = spec(sweep={"experiment.sleep": [0.0, 1000.0]})
    with pytest.raises(InputError, match=r"experiment.sleep=1000.0"):
        build_plan(parse_study(raw))


def test_registered_stage_validator_sees_each_table_and_its_error_names_the_stage():
    seen = []

    def check(table):
        seen.append(canonical_json(table))
        if table.get("w", 0) < 0:
            raise ValueError(f"w={table['w']} must be ≥ 0")

    register_validator("fit", check)
    try:
        build_plan(parse_study(spec(fit={"w": 1}, sweep={"fit.w": [1, 2], "seed": [0, 1, 2]})))
        assert sorted(set(seen)) == sorted(seen) and len(seen) == 2  # once per distinct table
        with pytest.raises(InputError, match=r"\[fit\] of sweep point 1 \(fit.w=-1\): w=-1"):
            build_plan(parse_study(spec(sweep={"fit.w": [1, -1]})))
    finally:
        registry._VALIDATORS["fit"].remove(check)


def test_unknown_task_kind_and_bad_import_are_input_errors():
    with pytest.raises(InputError, match="not registered"):
        build_plan(parse_study(spec(study={"task": "no.such.kind"})))
    with pytest.raises(InputError, match="cannot be imported"):
        build_plan(parse_study(spec(study={"task": "genanalysis.nowhere:fn"})))
    with pytest.raises(InputError, match="study.imports"):
        build_plan(parse_study(spec(study={"task": "toy.probe", "imports": ["genanalysis.nowhere"]})))


def test_module_function_reference_resolves():
    plan = build_plan(parse_study(spec(study={"task": "toykinds:series_task"},
                                       sweep={"trainingset.size": [1, 2]}, experiment={"p": 2.0})))
    assert plan.kind.name == "toy.series"  # the registered kind, with its needs and version
    assert len(plan.tasks) == 2 and len(plan.shared) == 2


def test_bad_toml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[study\n")
    with pytest.raises(InputError, match="not valid TOML"):
        load_study(bad)
    with pytest.raises(InputError, match="cannot read"):
        load_study(tmp_path / "missing.toml")
