"""A user's whole chain on the command line: trainingset → fit → evaluate (2D, small)."""

import json
import subprocess
import sys

import numpy as np


def _run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "genanalysis", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


def test_trainingset_fit_evaluate_from_the_command_line(tmp_path):
    (tmp_path / "ts.toml").write_text(
        'potential = "builtin:morse"\nlattice = "triangular"\ndefects = ["perfect", "vacancy"]\nsizes = [4, 6]\n'
        'configs_per_size = 3\nrattle = 0.03\nseed = 1\n[observations]\nperfect = "EFV"\nvacancy = "EF"\n')
    p = _run("trainingset", "ts.toml", "--out", "ts", "--json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    (tmp_path / "fit.toml").write_text(
        'training_set = "ts"\nvalidation_fraction = 0.2\n[model]\ncutoff = 2.5\ndegree = 6\nl_max = 3\n'
        'r_in = 0.6\n[loss]\nE = 1.0\nF = 1.0\nV = 0.1\n')
    p = _run("fit", "fit.toml", "--out", "model", "--json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    assert report["validation"]["all"]["F"]["rmse"] < 0.1  # eV/Å
    p = _run("evaluate", "--model", "model", "--reference", "builtin:morse", "--lattice", "triangular",
             "--defect", "vacancy", "--size", "8", "--json", cwd=tmp_path)
    out = json.loads(p.stdout)
    assert p.returncode in (0, 3), p.stderr
    for key in ("status", "error_energy_norm", "relative_error", "formation_energy_error", "residual_dual_norm",
                "stability_reference", "stability_model", "effectivity", "force_constant_error",
                "lattice_stress_error", "elastic_constant_error"):
        assert key in out
    assert np.isfinite(out["residual_dual_norm"]) and out["residual_dual_norm"] > 0
    if out["status"] == "converged":
        assert 0 < out["error_energy_norm"] and out["effectivity"] <= 2.0 + 1e-9
