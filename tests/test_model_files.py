"""Fitted-model files carry data only and a checksum of their arrays (genanalysis.models.io):
a model.npz changed after it was saved is refused with one line, by the loader and on the
command line, and a model saved and loaded is the same model bit for bit."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genanalysis.exceptions import InputError
from genanalysis.models.basis import ACESpec
from genanalysis.models.io import MODEL_JSON, MODEL_NPZ, load_fitted, save_model
from genanalysis.models.linear import LinearACE

SPEC = ACESpec(cutoff=2.5, degree=2, body_order=2, dim=2, l_max=0)


def _model(seed: int) -> LinearACE:
    m = LinearACE(SPEC)
    return LinearACE(SPEC, np.random.default_rng(seed).normal(size=np.shape(m.coef_)))


@given(seed=st.integers(0, 2**32 - 1))
@settings(max_examples=10, deadline=None)
def test_saved_coefficients_load_back_bit_for_bit(tmp_path_factory, seed):
    d = tmp_path_factory.mktemp("m")
    m = _model(seed)
    save_model(m, d)
    back, header = load_fitted(d)
    assert back.coef_.tobytes() == m.coef_.tobytes()
    assert len(header["arrays_sha256"]) == 64


def _tamper(d, how: str) -> None:
    with np.load(d / MODEL_NPZ, allow_pickle=False) as z:
        arrays = {k: z[k].copy() for k in z.files}
    if how == "one coefficient":
        arrays["coef"][0] = np.nextafter(arrays["coef"][0], np.inf)  # one ulp
    elif how == "swapped":
        arrays["coef"] = arrays["coef"][::-1].copy()
    elif how == "extra array":
        arrays["extra"] = np.zeros(2)
    np.savez(d / MODEL_NPZ, **arrays)
    if how == "truncated":
        data = (d / MODEL_NPZ).read_bytes()
        (d / MODEL_NPZ).write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("how", ["one coefficient", "swapped", "extra array", "truncated"])
def test_tampered_arrays_are_refused_with_one_line(tmp_path, how):
    save_model(_model(1), tmp_path)
    _tamper(tmp_path, how)
    with pytest.raises(InputError) as exc:
        load_fitted(tmp_path)
    assert "\n" not in str(exc.value) and MODEL_NPZ in str(exc.value)


def test_a_header_without_the_checksum_is_refused(tmp_path):
    save_model(_model(2), tmp_path)
    header = json.loads((tmp_path / MODEL_JSON).read_text())
    del header["arrays_sha256"]
    (tmp_path / MODEL_JSON).write_text(json.dumps(header))
    with pytest.raises(InputError, match="checksum"):
        load_fitted(tmp_path)
    (tmp_path / MODEL_JSON).write_text(json.dumps([1, 2]))
    with pytest.raises(InputError, match="not a model header"):
        load_fitted(tmp_path)


def test_the_command_line_refuses_a_tampered_model_in_one_line(tmp_path):
    save_model(_model(3), tmp_path / "m", element="X")
    _tamper(tmp_path / "m", "one coefficient")
    proc = subprocess.run([sys.executable, "-m", "genanalysis", "evaluate", "--model", str(tmp_path / "m"),
                           "--reference", "builtin:morse", "--lattice", "triangular", "--defect", "vacancy",
                           "--size", "4"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "checksum" in lines[0] and "Traceback" not in proc.stderr
