"""The training-set spec (stable hash, TOML round trip, validation) and the derivation of
configurations (seeded rattles and strains: reproducible, extensible, in-plane in 2D)."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genanalysis.exceptions import InputError
from genanalysis.lattice import defect_cell
from genanalysis.trainingset import TrainingSetSpec
from genanalysis.trainingset.build import derive_configurations
from genanalysis.trainingset.spec import parse_observations

FAST = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

BASE = {
    "potential": "builtin:W",
    "lattice": "bcc",
    "defects": ["perfect", "vacancy", "interstitial"],
    "sizes": [3, 2],
    "configs_per_size": 2,
    "rattle": 0.02,
    "strains": {"amplitude": 0.01, "count": 1},
    "observations": {"perfect": "EFVH", "default": "EF"},
    "seed": 7,
}


@FAST
@given(order=st.permutations(list(BASE)), obs_spelling=st.sampled_from(["FE", "E,F", ["F", "E"], "e f"]),
       sizes=st.permutations([3, 2, 3]))
def test_hash_is_independent_of_key_order_and_spelling(tmp_path, order, obs_spelling, sizes):
    reference = TrainingSetSpec.from_dict(BASE).content_hash()
    data = {k: BASE[k] for k in order}
    data["observations"] = {"default": obs_spelling, "perfect": "HVFE"}
    data["defects"] = ["perfect", "vacancy", "interstitial:dumbbell110"]
    data["sizes"] = list(sizes)
    path = tmp_path / "spec.toml"
    path.write_text(tomli_w.dumps(data))
    spec = TrainingSetSpec.from_toml(path)
    assert spec.content_hash() == reference
    assert spec.observations_of("interstitial:dumbbell110") == "EF"
    assert spec.observations_of("perfect") == "EFVH"


@FAST
@given(seed=st.integers(0, 2**31), rattle=st.floats(0.001, 0.3), count=st.integers(0, 3),
       cps=st.integers(0, 3), relaxed=st.booleans())
def test_toml_round_trip_and_hash_sensitivity(seed, rattle, count, cps, relaxed):
    if cps + count + int(relaxed) == 0:
        cps = 1
    spec = TrainingSetSpec.from_dict({**BASE, "seed": seed, "rattle": rattle, "configs_per_size": cps,
                                      "strains": {"amplitude": 0.02, "count": count}, "include_relaxed": relaxed})
    import tomllib

    back = TrainingSetSpec.from_dict(tomllib.loads(spec.to_toml()))
    assert back == spec
    assert back.content_hash() == spec.content_hash()
    other = TrainingSetSpec.from_dict({**spec.to_dict(), "seed": seed + 1})
    assert other.content_hash() != spec.content_hash()
    assert spec.n_configurations == (cps + count + int(relaxed)) * 3 * 2


def test_hash_is_stable_across_runs():
    """A fixed spec has a fixed hash (caches and result stores rely on it)."""
    h = TrainingSetSpec.from_dict(BASE).content_hash()
    assert len(h) == 64 and h == TrainingSetSpec.from_dict(dict(reversed(list(BASE.items())))).content_hash()
    import subprocess
    import sys

    code = ("from genanalysis.trainingset import TrainingSetSpec;"
            f"print(TrainingSetSpec.from_dict({BASE!r}).content_hash())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "123", "PATH": ""}).stdout.strip()
    assert out == h


@pytest.mark.parametrize("codes, bad", [("EFQ", "'Q'"), (["E", "X"], "'X'"), ("", "no observation")])
def test_unknown_observation_types_are_named(codes, bad):
    with pytest.raises(InputError, match=bad):
        parse_observations(codes)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"sizes": [2, -1]}, "N ≥ 1"),
        ({"sizes": [2.5]}, "whole number"),
        ({"sizes": []}, "no cells"),
        ({"configs_per_size": -1}, "configs_per_size"),
        ({"rattle": float("nan")}, "rattle"),
        ({"rattle": 0.0}, "identical copies"),
        ({"strains": {"amplitude": 0.01, "count": -2}}, "strains.count"),
        ({"strains": {"amplitude": 0.0, "count": 2}}, "unstrained"),
        ({"strains": {"amplitude": 0.01, "number": 2}}, "unknown key"),
        ({"observations": {"divacancy": "E"}}, "not among the defects"),
        ({"defects": ["vacancy", "vacancy"]}, "twice"),
        ({"a": -3.0}, "a=-3.0"),
        ({"fd_step": -1e-3}, "fd_step"),
        ({"fmax": 0.0}, "fmax"),
        ({"fmax": 2.0}, r"fmax=2\.0 eV/Å.*≤ 1"),  # the solver's own range, refused before any work
        ({"max_iter": 0}, "max_iter=0"),
        ({"colour": "red"}, "unknown key"),
    ],
)
def test_bad_values_name_the_value_and_range(change, message):
    with pytest.raises(InputError, match=message):
        TrainingSetSpec.from_dict({**BASE, **change})


def test_missing_required_key_and_bad_toml(tmp_path):
    with pytest.raises(InputError, match="'potential' is required"):
        TrainingSetSpec.from_dict({"lattice": "bcc"})
    p = tmp_path / "x.toml"
    p.write_text("potential = \n")
    with pytest.raises(InputError, match="not valid TOML"):
        TrainingSetSpec.from_toml(p)
    with pytest.raises(InputError, match="cannot read"):
        TrainingSetSpec.from_toml(tmp_path / "missing.toml")


# --------------------------------------------------------------------------- derivation

IDENT = {"spec": "builtin:W"}


@functools.lru_cache(maxsize=None)
def _cell(group, n, lattice, a):
    return defect_cell(lattice, a, n, group, "W")


def _derive(spec, group="vacancy", n=3, lattice="bcc", a=3.16):
    base = _cell(group, n, lattice, a).copy()
    return base, derive_configurations(spec, group, n, base, "parent", IDENT)


@FAST
@given(seed=st.integers(0, 2**31), rattle=st.floats(0.005, 0.2), amp=st.floats(0.001, 0.2))
def test_rattles_and_strains_have_the_requested_statistics(seed, rattle, amp):
    spec = TrainingSetSpec.from_dict({**BASE, "seed": seed, "rattle": rattle, "configs_per_size": 3,
                                      "strains": {"amplitude": amp, "count": 3}})
    base, items = _derive(spec)
    kinds = [it.kind for it in items]
    assert kinds == ["relaxed"] + ["rattle"] * 3 + ["strain"] * 3
    assert np.array_equal(items[0].atoms.positions, base.positions)
    disp = np.concatenate([it.atoms.positions - base.positions for it in items if it.kind == "rattle"])
    # 3·3·53 Gaussian samples: the sample std is within 15 % of σ with overwhelming probability
    assert abs(disp.std() / rattle - 1.0) < 0.15
    for it in items:
        if it.kind != "strain":
            continue
        eps = np.asarray(it.strain)
        assert np.array_equal(eps, eps.T) and np.abs(eps).max() <= amp
        F = np.eye(3) + eps
        assert np.allclose(np.asarray(it.atoms.cell), np.asarray(base.cell) @ F.T, rtol=0, atol=1e-12)
        # homogeneous: fractional coordinates are unchanged
        assert np.allclose(it.atoms.get_scaled_positions(wrap=False), base.get_scaled_positions(wrap=False),
                           rtol=0, atol=1e-12)
    assert len({it.hash for it in items}) == len(items)


@FAST
@given(seed=st.integers(0, 2**31), more=st.integers(1, 3))
def test_adding_configurations_keeps_the_existing_ones(seed, more):
    few = TrainingSetSpec.from_dict({**BASE, "seed": seed, "configs_per_size": 1,
                                     "strains": {"amplitude": 0.01, "count": 1}})
    many = TrainingSetSpec.from_dict({**BASE, "seed": seed, "configs_per_size": 1 + more,
                                      "strains": {"amplitude": 0.01, "count": 1 + more}})
    _, a = _derive(few)
    _, b = _derive(many)
    hashes_b = {it.hash for it in b}
    assert {it.hash for it in a} <= hashes_b
    for it in a:
        twin = next(x for x in b if x.hash == it.hash)
        assert np.array_equal(twin.atoms.positions, it.atoms.positions)


def test_two_dimensional_rattles_and_strains_stay_in_plane():
    spec = TrainingSetSpec(potential="builtin:morse", lattice="triangular", defects=("vacancy",), sizes=(4,),
                           configs_per_size=3, rattle=0.1, strains={"amplitude": 0.05, "count": 3})
    base, items = _derive(spec, "vacancy", 4, "triangular", 1.0)
    for it in items:
        assert np.all(it.atoms.positions[:, 2] == 0.0)
        assert np.array_equal(np.asarray(it.atoms.cell)[2], np.asarray(base.cell)[2])
        if it.strain is not None:
            eps = np.asarray(it.strain)
            assert np.all(eps[2] == 0.0) and np.all(eps[:, 2] == 0.0) and np.abs(eps[:2, :2]).max() > 0
