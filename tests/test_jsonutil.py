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
