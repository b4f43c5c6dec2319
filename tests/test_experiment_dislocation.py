"""The dislocation experiment (genanalysis.experiment_dislocation), its command line and its
sweep task kind, on small cylinders (free radius 6–7 Å, a few hundred atoms)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from genanalysis.cli import main
from genanalysis.exceptions import InputError
from genanalysis.experiment_dislocation import DislocationSpec, dislocation_task, evaluate_dislocation

SOFT = "surrogate:builtin:W?family=bond_stiffness&eta=0.05"


@pytest.fixture(scope="module")
def mixed():
    return evaluate_dislocation(SOFT, "builtin:W", DislocationSpec("mixed", 6.0, lattice_size=3))


def test_a_model_against_the_reference(mixed):
    r = mixed
    assert r.status == "converged", r.reason
    assert r.reference_relaxation["max_force"] <= 1e-8 and r.model_relaxation["max_force"] <= 1e-8
    assert r.n_free < r.n_atoms and r.clamp_width == pytest.approx(12.0)
    assert r.error_energy_norm > 0 and r.residual_dual_norm > 0
    # the a-posteriori bound (T8) on the free region
    assert r.stability_model_at_reference > 0 and 0 < r.effectivity <= 2.0
    assert r.error_energy_norm <= r.a_posteriori_bound
    assert r.elastic_constant_error > 0 and r.lattice_stress_error is not None
    assert r.core_energy_error == pytest.approx(r.excess_energy_model - r.excess_energy_reference, abs=1e-12)
    assert r.dipole_error is None and r.formation_energy_error is None
    m = r.metrics()
    json.dumps(m)
    assert m["core_energy_error"] == r.core_energy_error and m["n_free"] == r.n_free


def test_the_reference_against_itself_has_no_error():
    r = evaluate_dislocation("builtin:W", "builtin:W", DislocationSpec("screw", 6.0, lattice_terms=False,
                                                                      stability=False))
    assert r.status == "converged"
    assert r.error_energy_norm == pytest.approx(0.0, abs=1e-9)
    assert r.residual_dual_norm < 1e-7 and abs(r.core_energy_error) < 1e-9


def test_either_potential_gives_the_predictor():
    spec = dict(lattice_terms=False, stability=False)
    ref = evaluate_dislocation(SOFT, "builtin:W", DislocationSpec("edge", 6.0, elastic="reference", **spec))
    own = evaluate_dislocation(SOFT, "builtin:W", DislocationSpec("edge", 6.0, elastic="model", **spec))
    assert ref.status == own.status == "converged"
    assert ref.elastic_prelog != pytest.approx(own.elastic_prelog, rel=1e-6)
    assert ref.error_energy_norm != pytest.approx(own.error_energy_norm, rel=1e-6)


@pytest.mark.parametrize("fields, words", [
    (dict(dislocation="loop", radius=6.0), "'screw', 'edge' or 'mixed'"),
    (dict(dislocation="screw", radius=0.0), "radius=0.0"),
    (dict(dislocation="screw", radius=6.0, elastic="both"), "elastic='both'"),
    (dict(dislocation="screw", radius=6.0, energy_radius=7.0), "energy_radius=7"),
])
def test_bad_specs(fields, words):
    with pytest.raises(InputError, match=words):
        DislocationSpec(**fields)


def test_evaluate_and_defect_commands(capsys):
    argv = ["evaluate", "--model", "builtin:W", "--reference", "builtin:W", "--defect", "screw", "--radius", "6",
            "--no-stability", "--lattice-size", "3", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["defect"] == "dislocation:screw" and out["status"] == "converged"
    assert out["units"]["core_energy_error"] == "eV/Å"
    assert main(["defect", "--potential", "builtin:W", "--defect", "edge", "--radius", "6", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "converged" and out["max_force"] <= 1e-8 and out["n_free"] < out["n_atoms"]
    for bad, words in ((["--defect", "screw"], "--radius: required"),
                       (["--defect", "screw", "--radius", "6", "--size", "3"], "--size"),
                       (["--defect", "screw", "--radius", "6", "--lattice", "fcc"], "bcc lattice"),
                       (["--defect", "vacancy", "--radius", "6"], "--radius: only for a dislocation"),
                       (["--defect", "vacancy", "--lattice", "bcc"], "--size: required"),
                       (["--defect", "edge", "--radius", "6", "--clamp-width", "1"], "--clamp-width=1")):
        assert main(["defect", "--potential", "builtin:W", *bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith("genanalysis: error:") and words in err and len(err.strip().splitlines()) == 1
    assert main(["evaluate", "--model", "builtin:W", "--reference", "builtin:W", "--defect", "edge", "--radius",
                 "6", "--elastic", "model", "--energy-radius", "9"]) == 2
    assert "--energy-radius=9" in capsys.readouterr().err


def test_sweep_task_kind_runs_and_validates():
    from genanalysis.sweep.registry import get_task_kind

    kind = get_task_kind("experiment.dislocation")
    params = {"experiment": {"reference": "builtin:W", "model": SOFT, "dislocation": "screw", "radius": 6.0,
                             "stability": False, "lattice_size": 3}}
    kind.validate(params)
    metrics = dislocation_task(params, {}, None)
    assert metrics["status"] == "converged" and metrics["error_energy_norm"] > 0
    assert np.isfinite(metrics["core_energy_error"])
    json.dumps(metrics)
    with pytest.raises(InputError, match="experiment.colour"):
        kind.validate({"experiment": {**params["experiment"], "colour": 1}})
    with pytest.raises(InputError, match="experiment.radius"):
        kind.validate({"experiment": {**params["experiment"], "radius": -2}})
    with pytest.raises(InputError, match="experiment.model"):
        kind.validate({"experiment": {k: v for k, v in params["experiment"].items() if k != "model"}})


def test_a_seeded_reference_keeps_the_seed_core():
    """``seed`` (a controlled core): the reference at R = 8 Å started from the relaxed
    R = 10 Å cylinder lands where the calibration's 'from R_S = 10' series does (E_rel
    −0.1187 eV/Å, docs/dislocations.md §4), not in the predictor's state; a seed of the
    wrong kind is refused."""
    from genanalysis.dislocation import cylinder, relax_cylinder, seed_cylinder
    from genanalysis.potentials import load_potential

    w = load_potential("builtin:W")
    seed = relax_cylinder(cylinder(w, "screw", 10.0), w).atoms
    spec = DislocationSpec("screw", 8.0, lattice_terms=False, stability=False)
    r = evaluate_dislocation("builtin:W", "builtin:W", spec, seed=seed)
    assert r.status == "converged" and r.reference_relaxation["start"] == "seed"
    assert r.error_energy_norm == pytest.approx(0.0, abs=1e-9)
    predictor = cylinder(w, "screw", 8.0)
    e_rel = (r.reference_relaxation["energy"] - w.observe(predictor).energy) / predictor.info["period"]
    assert e_rel == pytest.approx(-0.1187, abs=5e-4)
    with pytest.raises(InputError, match="seed"):
        seed_cylinder(predictor, cylinder(w, "edge", 6.0))
