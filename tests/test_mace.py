"""The shipped tiny MACE model (examples/mace) through the whole experiment on the command
line: clean JSON (mace prints on stdout at import), the MACE Hessian layout read and
checked. The test extra installs mace-torch, so it runs in the default suite (about a minute
of CPU, nearly all MACE's own Hessians: 3n backward passes each)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mace", reason="mace-torch is not installed: pip install -e '.[mace]'")

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "mace"


def test_evaluate_the_shipped_mace_model():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(EXAMPLE), os.environ.get("PYTHONPATH", "")]))
    p = subprocess.run([sys.executable, "-m", "genanalysis", "evaluate", "--model", "python:mace_w:make",
                        "--reference", "builtin:W", "--lattice", "bcc", "--defect", "vacancy", "--size", "3",
                        "--json"], capture_output=True, text=True, env=env, timeout=3600)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)  # nothing but the JSON object on stdout
    assert "cuequivariance" in p.stderr  # mace's import-time line went to stderr
    for key in ("status", "residual_dual_norm", "stability_model_at_reference", "force_constant_error",
                "elastic_constant_error", "lattice_stress_error"):
        assert key in out
    rep = out["model_hessian"]
    assert rep["source"] == "calculator" and rep["layout"] == "dense (3n, n, 3)" and rep["check"]["passed"], rep
    assert out["residual_dual_norm"] > 0
    assert out["status"] == "converged" and 0 < out["effectivity"] < 2
