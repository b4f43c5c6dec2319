"""The shipped tiny MACE model (examples/mace) through the whole experiment on the command
line: clean JSON (mace prints on stdout at import), the MACE Hessian layout read and
checked, Hessian–vector products by autograd equal to MACE's own Hessian. The test extra installs mace-torch, so it runs in the default suite (about a minute
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
    rep = out["model_hessian"]  # MACE exposes its torch module: products by autograd, checked
    assert rep["requested"] == "auto" and rep["source"] == "autograd" and rep["check"]["passed"], rep
    assert rep["hvps"] > 0
    assert out["residual_dual_norm"] > 0
    assert out["status"] == "converged" and 0 < out["effectivity"] < 2


def test_autograd_products_equal_maces_own_hessian():
    """hessian=autograd (the default for MACE) against MACE's get_hessian (its (3n, n, 3)
    layout, read by the wrapper), on a rattled cell: products and assembled Hessians."""
    import sys as _sys

    import numpy as np

    from genanalysis.lattice import perfect_cell
    from genanalysis.potentials import load_potential

    _sys.path.insert(0, str(EXAMPLE))
    try:
        own = load_potential("python:mace_w:make?hessian=calculator")
        auto = load_potential("python:mace_w:make")
    finally:
        _sys.path.remove(str(EXAMPLE))
    atoms = perfect_cell("bcc", 3.1648494583, 2, "W")
    atoms.positions += np.random.default_rng(3).normal(scale=0.03, size=atoms.positions.shape)
    H = own.hessian(atoms).toarray()
    assert own.hessian_report()["layout"] == "dense (3n, n, 3)"
    V = np.random.default_rng(4).normal(size=(H.shape[0], 3))
    HV = auto.linearise(atoms) @ V
    assert np.linalg.norm(HV - H @ V) <= 1e-12 * np.linalg.norm(H @ V)
    assert np.abs(auto.hessian(atoms).toarray() - H).max() <= 1e-12 * np.abs(H).max()
    assert auto.hessian_report()["source"] == "autograd" and auto.hessian_report()["check"]["passed"]


def test_an_autograd_hessian_beyond_the_memory_limit_is_refused(monkeypatch):
    import sys as _sys

    from genanalysis.exceptions import InputError
    from genanalysis.lattice import perfect_cell
    from genanalysis.potentials import load_potential

    _sys.path.insert(0, str(EXAMPLE))
    try:
        pot = load_potential("python:mace_w:make")
    finally:
        _sys.path.remove(str(EXAMPLE))
    atoms = perfect_cell("bcc", 3.1648494583, 2, "W")
    monkeypatch.setenv("GENANALYSIS_MEMORY_LIMIT_GB", "0.00001")  # 10 kB; the Hessian takes 37 kB
    with pytest.raises(InputError, match="autograd Hessian of 16 atoms"):
        pot.hessian(atoms)
