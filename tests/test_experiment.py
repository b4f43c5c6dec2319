"""The generalisation experiment: identity gives zero error, surrogate errors are linear in η
with an O(1) effectivity, the far field responds as the estimate bounds it, failures are
results, lattice errors agree with closed forms, the command line and the sweep kind."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genanalysis.exceptions import InputError
from genanalysis.experiment import ExperimentSpec, evaluate, surrogate_task
from genanalysis.lattice import nearest_neighbour_distance
from genanalysis.potentials import Potential, load_potential

#: small, fast systems: bcc W (d = 3) and the triangular Morse lattice (d = 2)
W = ("builtin:W", "bcc", "vacancy", 4)
MORSE = ("builtin:morse", "triangular", "interstitial", 6)


def _run(model, system, **kw):
    base, lattice, defect, size = system
    return evaluate(model, base, ExperimentSpec(lattice, defect, size, **kw))


@pytest.mark.parametrize("system", [W, MORSE], ids=["W-bcc", "morse-triangular"])
@pytest.mark.parametrize("start", ["unrelaxed", "reference"])
def test_identical_model_gives_zero_error_and_residual(system, start):
    res = _run(system[0], system, start=start, profile_radii=())
    assert res.status == "converged" and res.reason == ""
    assert res.error_energy_norm <= 1e-9 * max(1.0, res.reference_energy_norm)
    assert abs(res.formation_energy_error) <= 1e-9
    assert res.max_core_displacement_error <= 1e-9
    # the residual is the reference's own (forces below fmax = 1e-8 eV/Å)
    assert res.residual_dual_norm == pytest.approx(res.reference_residual_dual_norm, abs=1e-15)
    assert res.residual_dual_norm < 1e-7
    assert res.force_constant_error == 0.0 and res.lattice_stress_error == 0.0
    assert res.elastic_constant_error == 0.0 and res.dipole_error == 0.0
    assert res.stability_model == pytest.approx(res.stability_reference, rel=1e-9)
    assert res.stability_reference > 0
    if start == "reference":
        assert res.model_relaxation["iterations"] == 0


FAMILIES = ["core", "force_constants", "bond_stiffness", "stress"]


@pytest.mark.parametrize("system", [W, MORSE], ids=["W-bcc", "morse-triangular"])
@pytest.mark.parametrize("family", FAMILIES)
def test_surrogate_error_is_linear_in_eta_with_stable_effectivity(system, family):
    etas = np.array([1e-4, 1e-3, 1e-2])
    rows = [_run(f"surrogate:{system[0]}?family={family}&eta={float(eta)!r}", system, lattice_terms=False, profile_radii=())
            for eta in etas]
    assert all(r.status == "converged" for r in rows), [r.reason for r in rows]
    err = np.array([r.error_energy_norm for r in rows])
    res = np.array([r.residual_dual_norm for r in rows])
    slope = np.polyfit(np.log(etas), np.log(err), 1)[0]
    assert abs(slope - 1.0) <= 0.05, slope
    assert abs(np.polyfit(np.log(etas), np.log(res), 1)[0] - 1.0) <= 0.05
    eff = np.array([r.effectivity for r in rows])
    assert np.all(eff <= 2.0)  # the a-posteriori bound (T8) holds
    assert np.all(eff >= 0.01)  # and is not vacuous
    assert eff.max() / eff.min() <= 1.15
    ratio = np.array([r.bound_ratio for r in rows])
    np.testing.assert_allclose(ratio, eff / 2.0, rtol=1e-12)


def test_far_field_force_error_is_absent_for_core_and_bounded_for_force_constants():
    """The core family's force error vanishes beyond its support; the force-constant family's
    far-field tail ‖(f^ML − f)(ū)·1_{|ℓ|>R}‖₋₁ is non-zero and decays at least as fast as the
    estimate's ε_FC R^{-d/2} (an upper bound, docs/experiment.md §5)."""
    base, lattice = "builtin:morse", "triangular"
    r_nn = nearest_neighbour_distance(lattice, load_potential(base).equilibrium_lattice_constant(lattice))
    radii = r_nn * np.array([3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
    tails = {}
    for fam in ("core", "force_constants"):
        res = evaluate(f"surrogate:{base}?family={fam}&eta=1e-3", base,
                       ExperimentSpec(lattice, "interstitial", 20, stability=False, lattice_terms=False,
                                      profile_radii=radii))
        tails[fam] = np.array([p["force_error_tail"] for p in res.residual_profile])
    # beyond the band |ρ/ρ₀ − 1| > δ the core family is the reference: its force error there is
    # round-off (two sums of the same terms in a different order), ten orders below the band's
    assert np.all(tails["core"][-2:] <= 1e-12), tails["core"]
    assert np.all(tails["core"][:2] >= 1e-7), tails["core"]
    assert np.all(tails["force_constants"] > 0)
    slope = np.polyfit(np.log(radii), np.log(tails["force_constants"]), 1)[0]
    assert slope <= -2 / 2 + 0.25, slope


def test_check_convergence_reports_the_change_in_m():
    res = _run("surrogate:builtin:morse?family=force_constants&eta=1e-3", MORSE, check_size=10,
               lattice_terms=False, stability=False, profile_radii=())
    c = res.convergence
    assert c["size"] == 10 and c["status"] == "converged"
    assert c["error_energy_norm_change"] == pytest.approx(c["error_energy_norm"] - res.error_energy_norm)
    ident = _run("builtin:morse", MORSE, check_size=True, lattice_terms=False, stability=False,
                 profile_radii=())
    assert ident.convergence["size"] == 6 + 3
    assert abs(ident.convergence["error_energy_norm"]) <= 1e-12


def test_no_stable_equilibrium_is_a_result_with_what_is_computable():
    res = _run("surrogate:builtin:morse?family=core&eta=-300", MORSE, stability=True, profile_radii=())
    assert res.status == "no stable equilibrium"
    assert "too close" in res.reason or "basin" in res.reason or "stability" in res.reason
    assert res.error_energy_norm is None and res.formation_energy_error is None
    assert res.residual_dual_norm is not None and res.residual_dual_norm > 0
    assert res.force_constant_error == 0.0 and res.lattice_stress_error == 0.0  # core family: lattice unchanged
    json.dumps(res.to_dict())


def test_triangular_lattice_errors_match_closed_forms():
    """Bond stiffness ηκ on the 3 first-shell bonds per atom: ΔC₁₁ = (9/8) ηκ a²/A,
    A = (√3/2) a² the area per atom; ε_FC is the definition's largest |λ| of ΔH x = λ L x
    (translations removed), computed here densely on the same cell. Bond tension ητ:
    virial per atom = −(3/2) ητ a I₂."""
    base, lattice = "builtin:morse", "triangular"
    a = load_potential(base).equilibrium_lattice_constant(lattice)
    eta = 0.01
    res = evaluate(f"surrogate:{base}?family=bond_stiffness&eta={eta}", base,
                   ExperimentSpec(lattice, "vacancy", 6, a=a, stability=False, profile_radii=()))
    dc = np.subtract(res.elastic_constants_model, res.elastic_constants_reference)
    assert dc[0, 0] == pytest.approx(9.0 / 8.0 * eta / (math.sqrt(3) / 2), rel=1e-5)
    assert res.elastic_constant_error == pytest.approx(np.abs(dc).max())
    from genanalysis.lattice import perfect_cell
    from genanalysis.norms import riesz_matrix, stencil

    cell = perfect_cell(lattice, a, 6)
    idx = (np.arange(len(cell))[:, None] * 3 + np.arange(2)[None, :]).ravel()
    model = load_potential(f"surrogate:{base}?family=bond_stiffness&eta={eta}", lattice=lattice, a=a)
    dh = (model.hessian(cell) - load_potential(base).hessian(cell)).toarray()[idx][:, idx]
    w, u = np.linalg.eigh(riesz_matrix(stencil(cell, None)).toarray())
    keep = w > 1e-10 * w.max()  # translations (the kernel of L) removed
    s = u[:, keep] / np.sqrt(w[keep])
    assert res.force_constant_error == pytest.approx(np.abs(np.linalg.eigvalsh(s.T @ dh @ s)).max(), rel=1e-9)
    assert res.force_constant_error > 0
    assert res.lattice_stress_error < 1e-12
    res = evaluate(f"surrogate:{base}?family=stress&eta={eta}", base,
                   ExperimentSpec(lattice, "vacancy", 6, a=a, stability=False, profile_radii=()))
    dv = np.subtract(res.lattice_virial_model, res.lattice_virial_reference)
    np.testing.assert_allclose(dv, -1.5 * eta * a * np.eye(2), atol=1e-12)
    assert res.lattice_stress_error == pytest.approx(1.5 * eta * a * math.sqrt(2), rel=1e-10)


@settings(max_examples=4, deadline=None)
@given(eta=st.floats(1e-4, 1e-2))
def test_force_constant_error_is_linear_and_elastic_error_in_gpa(eta):
    res = _run(f"surrogate:builtin:W?family=force_constants&eta={eta!r}", W, stability=False, profile_radii=())
    ref = _run("surrogate:builtin:W?family=force_constants&eta=1e-3", W, stability=False, profile_radii=())
    assert res.force_constant_error == pytest.approx(ref.force_constant_error * eta / 1e-3, rel=1e-6)
    from scipy.constants import e as electron_volt  # J

    gpa_per_ev_a3 = electron_volt / 1e-30 / 1e9  # 1 eV/Å³ in GPa, from SI (CODATA; the code's digits may be older)
    assert res.elastic_constant_error_gpa == pytest.approx(res.elastic_constant_error * gpa_per_ev_a3, rel=1e-7)
    assert res.lattice_stress_error < 1e-12


@pytest.mark.parametrize("base, lattice, n", [("builtin:W", "bcc", 4), ("builtin:morse", "triangular", 6)],
                         ids=["W-bcc", "morse-triangular"])
def test_force_constant_error_from_products_equals_the_assembled_hessians(base, lattice, n):
    from genanalysis.experiment import _hessian_operator, force_constant_error
    from genanalysis.lattice import perfect_cell
    from genanalysis.norms import riesz_matrix, stencil

    ref = load_potential(base)
    a = ref.equilibrium_lattice_constant(lattice)
    model = load_potential(f"surrogate:{base}?family=force_constants&eta=0.003", lattice=lattice, a=a)
    cell = perfect_cell(lattice, a, n)
    dim = int(cell.info["dim"])
    idx = (np.arange(len(cell))[:, None] * 3 + np.arange(dim)[None, :]).ravel()
    lap = riesz_matrix(stencil(cell, None))
    assembled = force_constant_error(model.hessian(cell).tocsr()[idx][:, idx], ref.hessian(cell).tocsr()[idx][:, idx],
                                     lap, lattice, n, dim)
    products = force_constant_error(_hessian_operator(model, cell, dim), _hessian_operator(ref, cell, dim),
                                    lap, lattice, n, dim)
    assert assembled[0] > 0
    # ε_FC is a difference of two Hessians ~300× larger: round-off of H, not of ε_FC, sets the floor
    np.testing.assert_allclose(products, assembled, rtol=1e-9)


def test_core_radius_and_stencil_are_stated():
    res = _run("builtin:W", W, r_stencil=3.0, core_radius=4.0, stability=False, lattice_terms=False, profile_radii=())
    d = res.to_dict()
    assert d["r_stencil"] == 3.0 and d["core_radius"] == 4.0 and d["size"] == 4 and d["n_atoms"] == 127
    assert d["units"]["error_energy_norm"] == "Å" and d["units"]["elastic_constant_error"] == "eV/Å³"
    m = _run("builtin:morse", MORSE, stability=False, profile_radii=()).to_dict()
    assert m["units"]["elastic_constant_error"] == "eV/Å²"


@pytest.mark.parametrize("kw, key", [
    (dict(size=0), "size=0"), (dict(lattice="triangular", size=1), "size=1"), (dict(size=2.5), "size=2.5"), (dict(fmax=-1.0), "fmax=-1.0"),
    (dict(fmax=2.0), "fmax=2.0"), (dict(max_iter=0), "max_iter=0"), (dict(start="elsewhere"), "start='elsewhere'"),
    (dict(core_radius=-1.0), "core_radius=-1.0"), (dict(a=0.0), "a=0.0"), (dict(r_stencil=float("nan")), "r_stencil"),
    (dict(check_size=3), "check_size=3"), (dict(stability="yes"), "stability='yes'"), (dict(lattice="hcp"), "lattice"),
    (dict(defect="antisite"), "defect='antisite'"), (dict(basin_fraction=0.0), "basin_fraction"),
    (dict(profile_radii=(1.0, -2.0)), "profile_radii[1]"),
])
def test_bad_spec_raises_one_input_error_naming_the_field(kw, key):
    args = dict(lattice="bcc", defect="vacancy", size=3)
    args.update(kw)
    with pytest.raises(InputError) as err:
        ExperimentSpec(**args)
    assert str(err.value).startswith(key) and "\n" not in str(err.value)


def test_spec_states_the_defaults_and_normalises():
    s = ExperimentSpec("bcc", "interstitial", 4, check_size=True, profile_radii=[2, 3.5])
    assert (s.fmax, s.max_iter, s.start, s.stability, s.lattice_terms) == (1e-8, 200, "unrelaxed", True, True)
    assert s.check_size == 6 and s.profile_radii == (2.0, 3.5) and s.defect == "interstitial:dumbbell110"
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.size = 5
    with pytest.raises(InputError, match="needs a spec of type ExperimentSpec"):
        evaluate("builtin:W", "builtin:W", {"lattice": "bcc"})


class _Wrapped(Potential):
    """builtin:morse with one method replaced (to inject bugs and numerical failures)."""

    def __init__(self, **override):
        self.base = load_potential("builtin:morse")
        self.name, self.cutoff, self.species = "wrapped", self.base.cutoff, self.base.species
        self.override = override

    def observe(self, atoms):
        return self.override.get("observe", self.base.observe)(atoms)

    def hessian(self, atoms):
        return self.base.hessian(atoms)


def test_a_bug_in_the_model_propagates_instead_of_a_status():
    def broken(atoms):
        raise TypeError("unsupported operand type(s)")

    with pytest.raises(TypeError, match="unsupported operand"):
        _run(_Wrapped(observe=broken), MORSE, profile_radii=())


def test_numerical_failures_of_the_model_are_results_with_their_status():
    base = load_potential("builtin:morse")

    def uphill(atoms):  # forces of the wrong sign: no line search can accept a step
        ev = base.observe(atoms)
        return dataclasses.replace(ev, forces=-ev.forces)

    res = _run(_Wrapped(observe=uphill), MORSE, lattice_terms=False, profile_radii=())
    assert res.status == "solver failure" and res.reason.startswith("model relaxation: line search failed"), res.reason
    assert res.reference_relaxation["converged"] and res.residual_dual_norm > 0

    def nan_forces(atoms):
        ev = base.observe(atoms)
        return dataclasses.replace(ev, forces=np.full_like(ev.forces, np.nan))

    res = _run(_Wrapped(observe=nan_forces), MORSE, lattice_terms=False, stability=False, profile_radii=())
    assert res.status == "solver failure" and res.residual_dual_norm is None
    assert "model forces at ū: the model forces are not finite" in res.reason
    assert "model relaxation: energy or forces not finite" in res.reason


def test_the_status_classifier_ranks_reference_then_instability_then_solver():
    from genanalysis.exceptions import ConvergenceError, InstabilityError, NonFiniteError, OverlapError
    from genanalysis.experiment import classify

    solver, overlap = ("model", ConvergenceError("a")), ("model", OverlapError("b"))
    assert classify([]) == ("converged", "")
    assert classify([solver, ("model", NonFiniteError("c"))]) == ("solver failure", "a; c")
    assert classify([solver, overlap]) == ("no stable equilibrium", "a; b")
    assert classify([("model", InstabilityError("d")), ("reference", ConvergenceError("e"))])[0] == "reference failure"


def test_fitted_model_directory_is_a_model_spec(tmp_path):
    models = pytest.importorskip("genanalysis.models.io")
    from genanalysis.models.basis import ACESpec
    from genanalysis.models.linear import LinearACE
    from genanalysis.potentials import Potential

    models.save_model(LinearACE(ACESpec(cutoff=2.5, degree=2, body_order=2, dim=2, l_max=0)), tmp_path / "m")
    pot = load_potential(str(tmp_path / "m"))
    assert isinstance(pot, Potential)
    # an untrained (zero) model has no stable equilibrium: reported, never raised
    res = evaluate(str(tmp_path / "m"), "builtin:morse", ExperimentSpec("triangular", "vacancy", 4, profile_radii=()))
    assert res.status == "no stable equilibrium"
    assert res.residual_dual_norm == 0.0 and res.force_constant_error > 0


def test_command_line_json_and_exit_codes(capsys):
    from genanalysis.cli import main

    rc = main(["evaluate", "--model", "surrogate:builtin:morse?family=stress&eta=1e-3", "--reference",
               "builtin:morse", "--lattice", "triangular", "--defect", "vacancy", "--size", "5", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    for key in ("status", "error_energy_norm", "relative_error", "formation_energy_error", "residual_dual_norm",
                "stability_reference", "stability_model", "effectivity", "force_constant_error",
                "lattice_stress_error", "elastic_constant_error", "units"):
        assert key in out and out[key] is not None, key
    assert out["status"] == "converged" and out["lattice_stress_error"] > 0
    for bad in (["--size", "0"], ["--size", "5", "--check-size", "4"], ["--size", "5", "--lattice", "hcp"]):
        argv = ["evaluate", "--model", "builtin:morse", "--reference", "builtin:morse", "--lattice", "triangular",
                "--defect", "vacancy", *bad]
        assert main(argv) == 2
        assert capsys.readouterr().err.startswith("genanalysis: error:")


def test_sweep_task_kind_runs_and_validates():
    from genanalysis.sweep.registry import get_task_kind

    kind = get_task_kind("experiment.surrogate")
    params = {"experiment": {"reference": "builtin:morse", "lattice": "triangular", "defect": "vacancy", "size": 4,
                             "family": "core", "eta": 1e-3, "stability": False}}
    kind.validate(params)
    metrics = surrogate_task(params, {}, None)
    assert metrics["status"] == "converged" and metrics["error_energy_norm"] > 0
    json.dumps(metrics)
    with pytest.raises(InputError, match="experiment.colour"):
        kind.validate({"experiment": {**params["experiment"], "colour": 1}})
    with pytest.raises(InputError):
        kind.validate({"experiment": {**params["experiment"], "family": "nope"}})
