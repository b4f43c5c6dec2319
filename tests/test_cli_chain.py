"""A user's whole chain on the command line: trainingset → fit → evaluate (2D, small).

Each step must succeed (exit 0), and what the last one prints must be what the library
computes for the same saved model and options, with the bound's terms related as (T8) of
docs/theory.md says. Units: Å, eV, eV/Å, eV/Å².
"""

import json
import subprocess
import sys

import numpy as np
import pytest


def _run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "genanalysis", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


def test_trainingset_fit_evaluate_from_the_command_line(tmp_path):
    (tmp_path / "ts.toml").write_text(
        'potential = "builtin:morse"\nlattice = "triangular"\ndefects = ["perfect", "vacancy"]\nsizes = [4, 6]\n'
        'configs_per_size = 3\nrattle = 0.03\nseed = 1\n[observations]\nperfect = "EFV"\nvacancy = "EF"\n')
    p = _run("trainingset", "ts.toml", "--out", "ts", "--json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)
    assert summary["failures"] == []
    # 2 groups × 2 sizes × (the relaxed cell + 3 rattled copies)
    assert sum(row["configurations"] for by_size in summary["counts"].values() for row in by_size.values()) == 16
    (tmp_path / "fit.toml").write_text(
        'training_set = "ts"\nvalidation_fraction = 0.2\n[model]\ncutoff = 2.5\ndegree = 6\nl_max = 3\n'
        'r_in = 0.6\n[loss]\nE = 1.0\nF = 1.0\nV = 0.1\n')
    p = _run("fit", "fit.toml", "--out", "model", "--json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    assert report["validation"]["all"]["F"]["rmse"] < 0.1  # eV/Å
    p = _run("evaluate", "--model", "model", "--reference", "builtin:morse", "--lattice", "triangular",
             "--defect", "vacancy", "--size", "8", "--json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr  # 0: the model has a stable equilibrium
    out = json.loads(p.stdout)
    assert out["status"] == "converged", out.get("reason")

    # the library on the same saved model and options gives the same numbers
    from genanalysis.experiment import ExperimentSpec, evaluate
    from genanalysis.potentials import load_potential

    lib = evaluate(load_potential(str(tmp_path / "model")), "builtin:morse",
                   ExperimentSpec(lattice="triangular", defect="vacancy", size=8)).to_dict()
    for key in ("error_energy_norm", "reference_energy_norm", "formation_energy_error", "residual_dual_norm",
                "stability_reference", "stability_model", "stability_model_at_reference", "effectivity",
                "force_constant_error", "lattice_stress_error", "elastic_constant_error"):
        assert out[key] == pytest.approx(lib[key], rel=1e-9, abs=1e-14), key

    # the bound's terms as (T8) relates them: bound (2/c)·‖f‖₋₁ with c the model's stability
    # at ū, η = error·c/‖f‖₋₁, and the error within the bound (η ≤ 2)
    err, res, c = out["error_energy_norm"], out["residual_dual_norm"], out["stability_model_at_reference"]
    assert 0 < err < out["reference_energy_norm"] and res > 0 and c > 0
    assert out["relative_error"] == pytest.approx(err / out["reference_energy_norm"], rel=1e-12)
    assert out["a_posteriori_bound"] == pytest.approx(2 * res / c, rel=1e-12)
    assert out["effectivity"] == pytest.approx(err * c / res, rel=1e-12)
    assert err <= out["a_posteriori_bound"] and out["effectivity"] <= 2.0
    assert np.isfinite(out["formation_energy_error"])
