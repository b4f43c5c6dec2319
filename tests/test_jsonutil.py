"""json_ready: nested NumPy results become strict JSON without losing finite values."""

import json
import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from genanalysis.jsonutil import json_ready

floats = st.floats(allow_nan=True, allow_infinity=True)


@given(st.lists(floats, min_size=1, max_size=6), st.integers(-10**6, 10**6))
def test_strict_json_and_finite_values_kept(values, k):
    obj = {"arr": np.array(values), "scalar": np.float64(values[0]), "int": np.int64(k), 3: tuple(values)}
    out = json.loads(json.dumps(json_ready(obj, nonfinite_as_none=True), allow_nan=False))
    assert out["int"] == k and set(out) == {"arr", "scalar", "int", "3"}
    for got in (out["arr"], out["3"]):
        for g, v in zip(got, values):
            assert (g is None) if not math.isfinite(v) else g == v


@given(st.lists(floats, min_size=1, max_size=6))
def test_default_keeps_nonfinite_floats(values):
    out = json_ready({"arr": np.array(values)})
    assert len(out["arr"]) == len(values)
    assert all((math.isnan(a) and math.isnan(b)) or a == b for a, b in zip(out["arr"], values))


# ---------------------------------------------------------------- canonical JSON and hashes

from genanalysis.jsonutil import arrays_sha256, canonical_json, sha256_json  # noqa: E402

json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(),
                                     st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=6)),
                           lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                   st.dictionaries(st.text(max_size=4), inner, max_size=4)),
                           max_leaves=10)


def _reordered(obj):
    if isinstance(obj, dict):
        return {k: _reordered(obj[k]) for k in reversed(list(obj))}
    if isinstance(obj, list):
        return [_reordered(v) for v in obj]
    return obj


@given(json_values)
def test_canonical_json_is_independent_of_key_order_and_parses_back(obj):
    text = canonical_json(obj)
    assert canonical_json(_reordered(obj)) == text and sha256_json(_reordered(obj)) == sha256_json(obj)
    assert json.loads(text) == obj and ", " not in text.replace('", "', "")


@given(st.dictionaries(st.text(max_size=4), st.integers(), min_size=1, max_size=4), st.integers())
def test_hashes_differ_when_a_value_differs(d, extra):
    key = next(iter(d))
    assert sha256_json(d) != sha256_json(dict(d, **{key: d[key] + 1 + abs(extra)}))


def test_canonical_json_refuses_nan_unless_asked():
    import pytest

    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})
    assert canonical_json({"x": float("nan")}, allow_nan=True) == '{"x":NaN}'


@given(st.lists(st.floats(allow_nan=True), min_size=1, max_size=8), st.integers(0, 7))
def test_arrays_checksum_sees_one_bit_dtype_and_shape(values, i):
    a = np.array(values)
    base = arrays_sha256({"a": a})
    assert arrays_sha256({"a": a.copy()}) == base
    b = a.copy()
    b.view(np.uint64)[i % len(b)] ^= 1
    assert arrays_sha256({"a": b}) != base
    assert arrays_sha256({"a": a.astype(np.float32)}) != base
    assert arrays_sha256({"a": a.reshape(1, -1)}) != base
    assert arrays_sha256({"b": a}) != base
