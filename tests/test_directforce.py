"""The direct-force model (genanalysis.models.directforce) and the energy-free solver
(genanalysis.forcesolve): equivariance, the exact Jacobian, the conservative special case,
persistence, fitting, and what the model lacks.

Units: Å, eV/Å (forces), eV/Å² (stiffness), eV (loop work).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from genanalysis.data import Configuration
from genanalysis.exceptions import InputError
from genanalysis.forcesolve import gmres_right, inf_sup_constant, nonconservative_measures, relax_forces
from genanalysis.lattice import defect_cell
from genanalysis.models.basis import ACESpec
from genanalysis.models.calculator import ModelPotential
from genanalysis.models.directforce import DirectForceACE, DirectForcePotential
from genanalysis.models.linear import LinearACE

A_W = 3.165
SPEC = ACESpec(cutoff=4.5, degree=4, body_order=3, l_max=2, r_in=1.5)


@pytest.fixture(scope="module")
def model():
    m = DirectForceACE(SPEC)
    m.coef_ = np.random.default_rng(0).normal(size=m.n_params) * 0.02
    return m


def _cell(seed=0, defect="vacancy", n=2, rattle=0.08):
    at = defect_cell("bcc", A_W, n, defect, "W")
    at.positions += np.random.default_rng(seed).normal(scale=rattle, size=at.positions.shape)
    return at


@given(seed=st.integers(0, 2**31 - 1), proper=st.booleans())
@settings(max_examples=6, deadline=None)
def test_forces_are_equivariant_under_rotations_reflections_and_permutations(model, seed, proper):
    """F(Q x + t) = Q F(x) for orthogonal Q (det ±1), F(π x) = π F(x): by construction."""
    rng = np.random.default_rng(seed)
    at = _cell(seed % 1000)
    F = model.forces(at)
    Q = Rotation.random(random_state=seed).as_matrix()
    if not proper:
        Q = Q @ np.diag([1.0, 1.0, -1.0])
    moved = at.copy()
    moved.set_cell(np.array(at.cell) @ Q.T, scale_atoms=False)
    moved.positions = at.positions @ Q.T + rng.normal(size=3)
    assert np.allclose(model.forces(moved), F @ Q.T, atol=1e-10 * np.abs(F).max() + 1e-13)
    perm = rng.permutation(len(at))
    shuffled = at[perm]
    assert np.allclose(model.forces(shuffled), F[perm], atol=1e-13)


@given(seed=st.integers(0, 2**31 - 1), angle=st.floats(0.0, 2 * np.pi), reflect=st.booleans())
@settings(max_examples=6, deadline=None)
def test_2d_forces_are_equivariant_under_in_plane_rotations_reflections_and_permutations(seed, angle, reflect):
    """d = 2 (atoms in the plane z = 0): F(Q x + t) = Q F(x) for Q in O(2), and F(π x) = π F(x)."""
    m = DirectForceACE(ACESpec(cutoff=2.5, degree=3, body_order=3, l_max=2, dim=2))
    rng = np.random.default_rng(seed)
    m.coef_ = rng.normal(size=m.n_params) * 0.1
    at = defect_cell("triangular", 0.968, 4, "interstitial", "X")
    at.positions[:, :2] += rng.normal(scale=0.05, size=(len(at), 2))
    F = m.forces(at)
    c, s_ = np.cos(angle), np.sin(angle)
    Q = np.array([[c, -s_, 0.0], [s_, c, 0.0], [0.0, 0.0, 1.0]])
    if reflect:
        Q = Q @ np.diag([1.0, -1.0, 1.0])
    moved = at.copy()
    moved.set_cell(np.array(at.cell) @ Q.T, scale_atoms=False)
    moved.positions = at.positions @ Q.T + np.array([*rng.normal(size=2), 0.0])
    assert np.allclose(m.forces(moved), F @ Q.T, atol=1e-10 * np.abs(F).max() + 1e-13)
    assert np.allclose(F[:, 2], 0.0)
    perm = rng.permutation(len(at))
    assert np.allclose(m.forces(at[perm]), F[perm], atol=1e-13)


def test_stiffness_is_minus_the_force_jacobian_by_finite_differences(model):
    at = _cell(1)
    K = model.stiffness(at).toarray()
    h = 1e-5
    for a, c in ((0, 0), (3, 2), (len(at) - 1, 1)):
        p, q = at.copy(), at.copy()
        p.positions[a, c] += h
        q.positions[a, c] -= h
        col = -(model.forces(p) - model.forces(q)).ravel() / (2 * h)
        assert np.abs(col - K[:, 3 * a + c]).max() < 1e-8 * np.abs(K).max()
    # and it is not symmetric: the model is not conservative
    assert np.linalg.norm(K - K.T) > 1e-3 * np.linalg.norm(K)


def test_design_rows_reproduce_forces_and_stiffness(model):
    at = _cell(2)
    rows = np.array([0, 5])
    d = model.design(at, "FH", hessian_rows=rows)
    assert np.allclose(d["F"] @ model.coef_, model.forces(at), atol=1e-14)
    r3 = (3 * rows[:, None] + np.arange(3)).ravel()
    assert np.allclose(d["H"] @ model.coef_, model.stiffness(at).toarray()[r3], atol=1e-13)
    with pytest.raises(InputError, match="no E"):
        model.design(at, "EF")


def _w_configs(count=6, n=2, seed=7, hessian_every=0):
    from genanalysis.potentials import load_potential

    W = load_potential("builtin:W")
    rng = np.random.default_rng(seed)
    confs = []
    for k in range(count):
        group = ("perfect", "vacancy")[k % 2]
        at = defect_cell("bcc", A_W, n, group, "W")
        at.positions += rng.normal(scale=0.05, size=at.positions.shape)
        ev = W.observe(at)
        h = W.hessian(at) if hessian_every and k % hessian_every == 0 else None
        confs.append(Configuration(at, group=group, energy=ev.energy, forces=ev.forces, virial=ev.virial, hessian=h))
    return confs


@pytest.fixture(scope="module")
def pair_model():
    """A two-body linear model fitted to the W EAM (a stable bcc vacancy)."""
    from genanalysis.fit import LossWeights, ModelSpec, fit_linear

    ms = ModelSpec(cutoff=4.5, degree=4, body_order=2, l_max=2, r_in=1.5)
    return fit_linear(_w_configs(), ms, LossWeights(E=1.0, F=1.0, V=1.0))[0]


def test_a_conservative_model_written_as_direct_force_model(pair_model):
    """Forces −∇E of a two-body linear model: equal forces, K = the Hessian (zero
    antisymmetric part, zero loop work), the same equilibrium from the energy-free solver as
    from the energy solver, and the inf-sup constant equal to the stability constant."""
    from genanalysis.defect import relax, stability_constant

    df = DirectForceACE.from_linear(pair_model, SPEC)
    at = _cell(3, n=3, rattle=0.03)
    _, F, _ = pair_model.energy_forces(at)
    assert np.allclose(df.forces(at), F, atol=1e-13)
    assert np.allclose(df.stiffness(at).toarray(), pair_model.hessian(at).toarray(), atol=1e-12)
    ref = defect_cell("bcc", A_W, 3, "vacancy", "W")
    energy = relax(ref, ModelPotential(pair_model), fmax=1e-9)
    direct = relax_forces(ref, df.potential(), fmax=1e-9)
    assert energy.converged and direct.converged, (energy.status, direct.status)
    assert np.abs(energy.atoms.positions - direct.atoms.positions).max() < 1e-8
    nc = nonconservative_measures(direct.atoms, df.potential())
    assert nc["antisymmetry"] < 1e-13 and nc["asr_violation"] < 1e-12 and abs(nc["loop_work"]) < 1e-9
    c = stability_constant(energy.atoms, ModelPotential(pair_model), ref)
    g = inf_sup_constant(direct.atoms, df.potential(), ref)
    assert c > 0 and g["inf_sup"] == pytest.approx(c, rel=1e-8)
    assert g["antisymmetric_norm"] < 1e-12


def test_loop_work_matches_the_antisymmetric_part(model):
    at = _cell(4)
    nc = nonconservative_measures(at, model.potential(), loop_radius=0.01)
    assert nc["antisymmetry"] > 1e-3
    assert nc["loop_work"] == pytest.approx(nc["loop_work_predicted"], rel=0.05)
    assert nc["net_force"] > 0  # the acoustic sum rule is not built in


def test_gmres_solves_a_nonsymmetric_system():
    rng = np.random.default_rng(5)
    A = np.eye(40) * 4 + rng.normal(size=(40, 40)) * 0.3
    b = rng.normal(size=(20, 2))
    x, it, flag = gmres_right(lambda v: (A @ v.ravel()).reshape(v.shape), b, lambda r: r / 4.0, 1e-12, 200, 15)
    assert flag == "ok" and np.abs(A @ x.ravel() - b.ravel()).max() < 1e-10 and it <= 200


def test_saved_direct_force_model_loads_as_a_potential_without_energy(model, tmp_path):
    from genanalysis.models.io import save_model
    from genanalysis.potentials import load_potential
    from genanalysis.relaxation import relax

    save_model(model, tmp_path / "df", element="W")
    pot = load_potential(str(tmp_path / "df"))
    assert isinstance(pot, DirectForcePotential) and not pot.has_energy
    at = _cell(6)
    ev = pot.observe(at)
    assert np.isnan(ev.energy) and np.allclose(ev.forces, model.forces(at))
    with pytest.raises(InputError, match="no energy"):
        relax(at, pot)


def test_fit_of_a_direct_force_model_reports_what_it_lacks():
    from genanalysis.fit import FitSpec, LossWeights, ModelSpec, fit_linear, fit_report

    confs = _w_configs(hessian_every=6)
    ms = ModelSpec(kind="directforce", cutoff=4.5, degree=3, body_order=3, l_max=1, r_in=1.5)
    m, diag = fit_linear(confs, ms, LossWeights(E=1.0, F=1.0, V=1.0, H=0.01))
    assert isinstance(m, DirectForceACE) and diag["rows_per_type"]["E"] == 0 and diag["rows_per_type"]["H"] > 0
    rep = fit_report(m, confs, list(range(6)), [])
    assert set(rep["train"]["all"]) == {"F", "H"} and rep["train"]["all"]["F"]["rmse"] < 0.5
    with pytest.raises(InputError, match="forces"):
        from genanalysis.fit import fit

        fit(confs, FitSpec(training_set="x", model=ms, loss=LossWeights(E=1.0, F=0.0)))


@pytest.fixture(scope="module")
def fitted_dir(tmp_path_factory):
    """A direct-force model fitted from the command line to W EAM data of vacancy and
    interstitial 3-cells (perfect 2-cells with force constants)."""
    import json

    from genanalysis.cli import main

    d = tmp_path_factory.mktemp("df")
    (d / "ts.toml").write_text('potential = "builtin:W"\nlattice = "bcc"\ndefects = ["perfect", "vacancy", '
                               '"interstitial"]\nsizes = [3]\nconfigs_per_size = 2\nrattle = 0.05\n'
                               '[observations]\ndefault = "EF"\n')
    (d / "fit.toml").write_text('training_set = "ts.toml"\nvalidation_fraction = 0.0\n[model]\nkind = "directforce"\n'
                                'cutoff = 4.6\ndegree = 4\nbody_order = 3\nl_max = 2\nr_in = 2.0\n'
                                '[loss]\nE = 1.0\nF = 1.0\n')
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["fit", str(d / "fit.toml"), "--out", str(d / "m"), "--json"]) == 0
    rep = json.loads(buf.getvalue())
    assert rep["model_kind"] == "directforce" and "E" in rep["not_available"]
    assert set(rep["train"]["all"]) == {"F"}
    return d / "m"


@pytest.mark.parametrize("defect", ["vacancy", "interstitial"])
def test_evaluate_relaxes_a_defect_with_a_direct_force_model_from_the_command_line(fitted_dir, defect, capsys):
    import json

    from genanalysis.cli import main

    code = main(["evaluate", "--model", str(fitted_dir), "--reference", "builtin:W", "--lattice", "bcc",
                 "--defect", defect, "--size", "3", "--fmax", "1e-8", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["status"] == "converged", out["reason"]
    rel = out["model_relaxation"]
    assert rel["solver"] == "newton-gmres" and rel["max_force"] <= 1e-8 and rel["krylov_iterations"] > 0
    df = out["direct_force"]
    assert df["inf_sup_model_at_reference"] > 0 and df["inf_sup_model"] > 0
    assert out["a_posteriori_bound"] == pytest.approx(2 * out["residual_dual_norm"] / df["inf_sup_model_at_reference"])
    assert 0 < df["antisymmetry_model"] < 1 and "formation_energy_model" in df["not_available"]
    assert out["formation_energy_model"] is None and out["formation_energy_reference"] is not None
    assert out["error_energy_norm"] is not None and out["stability_reference"] > 0


def test_an_unstable_direct_force_equilibrium_is_a_result(fitted_dir):
    """−F has the same zeros as F and the opposite stiffness: Newton–GMRES finds the same
    equilibrium, and the experiment records it as unstable, with its reason."""
    from genanalysis.experiment import ExperimentSpec, evaluate
    from genanalysis.models.io import load_fitted

    model, _ = load_fitted(fitted_dir)
    model.coef_ = -model.coef_
    res = evaluate(model.potential(element="W"), "builtin:W",
                   ExperimentSpec(lattice="bcc", defect="vacancy", size=3, fmax=1e-8, lattice_terms=False))
    assert res.status == "no stable equilibrium" and "real part" in res.reason
    assert res.model_relaxation["converged"]
    assert res.metrics()["status"] == "no stable equilibrium"


def test_pseudo_transient_continuation_finishes_a_hard_start():
    """A direct-force model fitted to W EAM forces (tests/data/directforce_w_hard_start: the
    seed-0, 55-coefficient model of studies/directforce_compare.py) from the unrelaxed bcc
    vacancy 4-cell: Newton on ‖F‖ stalls at max force 0.42 eV/Å (its line search fails a few
    iterations later); the pseudo-transient continuation takes over and converges to 1e-8 eV/Å."""
    from pathlib import Path

    from genanalysis.models.io import load_fitted
    from genanalysis.potentials import load_potential

    model, _ = load_fitted(Path(__file__).parent / "data" / "directforce_w_hard_start")
    a = load_potential("builtin:W").equilibrium_lattice_constant("bcc")
    start = defect_cell("bcc", a, 4, "vacancy", "W")
    rel = relax_forces(start, model.potential(element="W"), fmax=1e-8)
    assert rel.converged and rel.max_force <= 1e-8, rel.status
    assert rel.continuation_steps > 0 and "pseudo-transient continuation from iteration" in rel.solver
    assert rel.summary()["continuation_steps"] == rel.continuation_steps
    f = model.forces(rel.atoms)
    assert np.abs(f - f.mean(axis=0)).max() <= 1e-8 * (1 + 1e-6) * np.sqrt(3)


def test_a_sweep_relaxes_both_defects_with_a_direct_force_model(tmp_path):
    """The generalisation sweep task with ``fit.model.kind = "directforce"`` (2D Morse, 42
    coefficients fitted to forces of 3-cells): both defects of the 6-cell relax to 1e-8 eV/Å
    by Newton–GMRES and their rows carry the inf-sup constant, the bound (T19) and the
    antisymmetric part; no energy-based quantity is reported. (An unstable equilibrium is a
    row too: test_an_unstable_direct_force_equilibrium_is_a_result.)"""
    import sqlite3

    from genanalysis.sweep import parse_study, run_study

    raw = {"study": {"name": "df", "task": "generalisation"}, "seed": 0,
           "trainingset": {"potential": "builtin:morse", "lattice": "triangular", "defects": ["perfect", "vacancy",
                           "interstitial"], "size": 3, "configs_per_size": 2, "rattle": 0.03, "observations": "EF"},
           "fit": {"model": {"kind": "directforce", "cutoff": 2.5, "degree": 1, "body_order": 2, "l_max": 0,
                             "pair_degree": 6}, "loss": {"E": 1.0, "F": 1.0}, "validation_fraction": 0.0},
           "experiment": {"defect": "vacancy", "size": 6, "fmax": 1e-8},
           "sweep": {"experiment.defect": ["vacancy", "interstitial"]}}
    summary = run_study(parse_study(raw), tmp_path / "out", workers=1, quiet=True)
    assert (summary.done, summary.failed) == (2, 0)
    with sqlite3.connect(tmp_path / "out" / "results.sqlite") as db:
        rows = [json_row for (json_row,) in db.execute("SELECT metrics FROM tasks ORDER BY point")]
    import json

    for m in map(json.loads, rows):
        assert m["status"] == "converged", m["reason"]
        assert m.get("formation_energy_model") is None and m["fit_n_params"] == 42
        assert m["inf_sup_model_at_reference"] > 0 and m["a_posteriori_bound"] > 0
        assert m["antisymmetry_model"] > 0 and m["error_energy_norm"] > 0


def test_pseudo_transient_continuation_takes_over_a_stagnating_newton():
    """A direct-force model fitted to W EAM forces (tests/data/directforce_w_stagnation: the
    seed-2, 72-coefficient model of the 24-rattle run of studies/directforce_compare.py) from
    the unrelaxed bcc interstitial 4-cell: Newton's line search keeps accepting steps while the
    max force stays at 5.9 eV/Å (200 iterations without converging before the stagnation
    test); stagnation hands over to the continuation, which converges; without it, Newton
    is still crawling after 30 iterations."""
    from pathlib import Path

    from genanalysis.models.io import load_fitted
    from genanalysis.potentials import load_potential

    model, _ = load_fitted(Path(__file__).parent / "data" / "directforce_w_stagnation")
    a = load_potential("builtin:W").equilibrium_lattice_constant("bcc")
    start = defect_cell("bcc", a, 4, "interstitial", "W")
    rel = relax_forces(start, model.potential(element="W"), fmax=1e-8, max_iter=60)
    assert rel.converged and rel.continuation_steps > 0, rel.status
    plain = relax_forces(start, model.potential(element="W"), fmax=1e-8, max_iter=30, continuation=False)
    assert not plain.converged and plain.max_force > 1.0


@pytest.mark.parametrize("dim", [2, 3])
def test_a_two_body_linear_model_as_direct_force_model_has_its_forces_in_either_dimension(dim):
    """θ_{k0} = 2 Y_0 c_k with the isotropic harmonic of the model's own dimension (1/√(2π)
    on the circle, 1/(2√π) on the sphere): the same forces to round-off, on a rattled
    vacancy cell, for coefficients that are not fitted."""
    from genanalysis.models.linear import LinearACE

    cutoff = 2.5 if dim == 2 else 4.5
    lin = LinearACE(ACESpec(cutoff=cutoff, degree=4, body_order=2, l_max=2, r_in=1.0 if dim == 2 else 1.5, dim=dim))
    lin.coef_ = np.random.default_rng(dim).normal(size=lin.n_params) * 0.02
    df = DirectForceACE.from_linear(lin, ACESpec(cutoff=cutoff, degree=4, body_order=3, l_max=2, r_in=lin.spec.r_in,
                                                 dim=dim))
    at = defect_cell("triangular", 0.968, 4, "vacancy", "X") if dim == 2 else _cell(1, rattle=0.0)
    at.positions[:, :dim] += np.random.default_rng(1).normal(scale=0.03, size=(len(at), dim))
    _, F, _ = lin.energy_forces(at)
    assert np.abs(df.forces(at) - F).max() <= 1e-12 * np.abs(F).max()
    with pytest.raises(InputError, match="dim"):
        DirectForceACE.from_linear(lin, ACESpec(cutoff=cutoff, degree=4, body_order=3, l_max=2, r_in=lin.spec.r_in,
                                                dim=5 - dim))
