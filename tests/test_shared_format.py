"""Shared work on disk carries data only (genanalysis.sweep.sharedio), checked on every read.

Round trips are exact (types, dtypes and bits, NaN and -0.0 included) for every value type
the format declares; anything else is refused when written; a file that is truncated,
corrupted, written for another node or not ours at all (a pickle, say) is refused when
read — and the sweep engine builds such work again instead of failing or executing it.
"""

from __future__ import annotations

import math
import pickle
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from ase import Atoms
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from genanalysis.data import Configuration, TrainingData
from genanalysis.sweep import parse_study, run_study, sharedio
from genanalysis.sweep.worker import load_shared

H = "ab" * 32  # a node hash

# ------------------------------------------------------------------ values and round trips

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                    st.text(max_size=8))
dtypes = st.one_of(hnp.floating_dtypes(endianness="="), hnp.integer_dtypes(endianness="="),
                   hnp.boolean_dtypes(), hnp.complex_number_dtypes(endianness="="),
                   hnp.unicode_string_dtypes(endianness="=", min_len=1, max_len=4))
arrays = dtypes.flatmap(lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=0, max_dims=3, max_side=4)))
np_scalars = arrays.map(lambda a: a.reshape(-1)[0] if a.size else a.dtype.type(0))
keys = st.one_of(st.text(max_size=6), st.integers(-5, 5), st.tuples(st.integers(0, 3), st.text(max_size=2)))
values = st.recursive(
    st.one_of(scalars, arrays, np_scalars),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.tuples(inner, inner),
                            st.dictionaries(keys, inner, max_size=4)),
    max_leaves=12,
)


def same(a, b) -> bool:
    """Equal in type, dtype, shape and bits (NaN equals NaN of the same bits)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray | np.generic):
        a, b = np.asarray(a), np.asarray(b)
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, float):
        return math.copysign(1, a) == math.copysign(1, b) and (a == b or (math.isnan(a) and math.isnan(b)))
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b


@given(values)
@settings(max_examples=150, deadline=None)
def test_every_declared_value_round_trips_bit_for_bit(value):
    assert same(sharedio.loads(sharedio.dumps(value, H), H), value)


@given(n=st.integers(1, 5), seed=st.integers(0, 2**32 - 1), observed=st.sets(st.sampled_from("EFVH")),
       weights=st.booleans())
@settings(max_examples=25, deadline=None)
def test_training_data_round_trips_with_atoms_and_sparse_force_constants(n, seed, observed, weights):
    rng = np.random.default_rng(seed)
    atoms = Atoms(numbers=rng.integers(1, 80, n), positions=rng.normal(size=(n, 3)) * 3,
                  cell=np.diag(rng.uniform(4, 9, 3)), pbc=[True, True, False])
    atoms.info.update(dim=2, config_type="vacancy", spacing=rng.uniform())
    atoms.arrays["tag_names"] = np.array(["a", "bc", "d", "ee", "f"][:n])
    hess = sp.random_array((3 * n, 3 * n), density=0.4, random_state=seed, format="csr")
    conf = Configuration(atoms=atoms, group="vacancy N=3",
                         energy=float(rng.normal()) if "E" in observed else None,
                         forces=rng.normal(size=(n, 3)) if "F" in observed else None,
                         virial=rng.normal(size=(3, 3)) if "V" in observed else None,
                         hessian=hess if "H" in observed else None,
                         atom_weights=rng.uniform(size=n) if weights else None,
                         meta={"size": 3, "relaxed": True, "spec_hash": "x" * 8})
    data = TrainingData(configs=[conf, conf], a=3.1652, element="W", potential="builtin:W", lattice="bcc",
                        summaries=[{"counts": {"vacancy": {"3": 1}}}], work={"reference_work": 12})
    back = sharedio.loads(sharedio.dumps(data, H), H)
    assert type(back) is TrainingData and len(back.configs) == 2
    for c in back.configs:
        assert c.observed == conf.observed and c.group == conf.group and c.meta == conf.meta
        assert c.atoms.info == atoms.info and c.atoms.calc is None
        for name in ("positions", "numbers", "tag_names"):
            assert same(c.atoms.arrays[name], atoms.arrays[name])
        assert same(np.asarray(c.atoms.cell), np.asarray(atoms.cell)) and same(c.atoms.pbc, atoms.pbc)
        for f in ("forces", "virial", "atom_weights"):
            assert (getattr(c, f) is None) == (getattr(conf, f) is None)
            if getattr(c, f) is not None:
                assert same(getattr(c, f), getattr(conf, f))
        if "H" in observed:
            assert type(c.hessian) is type(hess) and (c.hessian != hess).nnz == 0
            assert same(c.hessian.indptr, hess.indptr) and same(c.hessian.data, hess.data)
        if "E" in observed:
            assert same(c.energy, conf.energy)
    assert (back.a, back.element, back.summaries, back.work) == (data.a, data.element, data.summaries, data.work)


class Opaque:
    pass


@pytest.mark.parametrize("value, where", [
    ({"model": Opaque()}, "value['model']"),
    ([1, lambda x: x], "value[1]"),
    ({"a": np.array([object()], dtype=object)}, "value['a']"),
    ({"when": np.array(["2024-01-01"], dtype="datetime64[D]")}, "value['when']"),
    ({frozenset(): 1}, "dict key"),
])
def test_other_values_are_refused_when_written_naming_the_part(value, where):
    with pytest.raises(TypeError, match=r"cannot") as exc:
        sharedio.dumps(value, H)
    assert where in str(exc.value)


def test_atoms_with_a_calculator_are_refused():
    from ase.calculators.singlepoint import SinglePointCalculator

    atoms = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.7]])
    atoms.calc = SinglePointCalculator(atoms, energy=1.0)
    with pytest.raises(TypeError, match="calculator"):
        sharedio.dumps({"atoms": atoms}, H)


# ------------------------------------------------------------------ files that are not valid


class Marker:
    """Unpickling this creates the file ``path``: the proof that a pickle was executed."""

    def __init__(self, path):
        self.path = Path(path)

    def __reduce__(self):
        return (Path.touch, (self.path,))


def test_damaged_or_foreign_content_is_refused(tmp_path):
    good = sharedio.dumps({"x": np.arange(1000.0), "y": "text"}, H)
    marker = tmp_path / "executed"
    cases = {
        "truncated": good[: len(good) // 2],
        "empty": b"",
        "flipped byte": bytearray(good),
        "another node": sharedio.dumps({"x": np.arange(1000.0), "y": "text"}, "cd" * 32),
        "a pickle": pickle.dumps(Marker(marker)),
        "a pickled array in an npz": _npz_with_object_array(),
    }
    flipped = cases["flipped byte"]
    flipped[len(good) // 2] ^= 0x01
    cases["flipped byte"] = bytes(flipped)
    for name, data in cases.items():
        with pytest.raises(sharedio.SharedFileError):
            sharedio.loads(data, H)
        path = tmp_path / f"k-{H}.npz"
        path.write_bytes(data)
        assert sharedio.check(path) is not None, name
    assert not marker.exists()
    assert sharedio.loads(good, H)["y"] == "text"


def _npz_with_object_array() -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, __header__=np.frombuffer(b"{}", np.uint8), a0=np.array([Opaque()], dtype=object))
    return buf.getvalue()


# ------------------------------------------------------------------ the engine rebuilds


def probe_study(seeds):
    return parse_study({"study": {"name": "shared", "task": "toy.probe"}, "trainingset": {"g": 0},
                        "experiment": {"x": 1.0}, "sweep": {"seed": list(seeds)}})


def _shared_files(out):
    return sorted((out / "shared").glob("*"))


def _tokens(out):
    with sqlite3.connect(out / "results.sqlite") as db:
        return {row[0] for row in db.execute("SELECT json_extract(fit_report, '$.shared_token') FROM tasks")}


@pytest.mark.parametrize("workers", [0, 1])
def test_a_crafted_pickle_where_shared_work_lives_executes_nothing_and_is_rebuilt(tmp_path, workers):
    out = tmp_path / "out"
    first = run_study(probe_study([0, 1]), out, workers=workers, quiet=True)
    assert (first.done, first.shared_built) == (2, 1)
    (shared,) = _shared_files(out)
    assert shared.suffix == ".npz" and sharedio.check(shared) is None
    marker = tmp_path / "executed"
    crafted = pickle.dumps(Marker(marker))
    shared.write_bytes(crafted)  # the file the engine would read
    shared.with_suffix(".pkl").write_bytes(crafted)  # where earlier versions kept it
    again = run_study(probe_study([0, 1, 2]), out, workers=workers, quiet=True)
    assert (again.done, again.failed, again.shared_built, again.skipped) == (1, 0, 1, 2)
    assert not marker.exists()
    assert sharedio.check(shared) is None
    assert load_shared(str(shared))["token"] in _tokens(out)


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_damaged_shared_file_is_rebuilt_on_rerun_and_its_tasks_succeed(tmp_path, damage):
    out = tmp_path / "out"
    run_study(probe_study([0]), out, workers=1, quiet=True)
    (shared,) = _shared_files(out)
    data = bytearray(shared.read_bytes())
    if damage == "truncate":
        data = data[: len(data) - 40]
    else:
        data[len(data) // 3] ^= 0x10
    shared.write_bytes(bytes(data))
    assert sharedio.check(shared) is not None
    # a task reading it now fails with the reason instead of crashing the worker
    from genanalysis.sweep.worker import Payload, TaskContext, execute
    from toykinds import probe_task

    rec = execute(Payload("task", probe_task, {"experiment": {"x": 1.0}}, {"stamp": str(shared)},
                          TaskContext("t" * 64, "toy.probe")))
    assert rec["status"] == "failed" and "SharedFileError" in rec["reason"] and shared.name in rec["reason"]
    again = run_study(probe_study([0, 1, 2]), out, workers=1, quiet=True)
    assert (again.done, again.failed, again.shared_built) == (2, 0, 1)
    assert sharedio.check(shared) is None
    with sqlite3.connect(out / "results.sqlite") as db:
        assert db.execute("SELECT builds FROM shared").fetchall() == [(2,)]
