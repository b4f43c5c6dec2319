"""The defect solver, formation energies, stability constants and the ``defect`` command."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from ase.optimize import BFGS
from hypothesis import given, settings
from hypothesis import strategies as st

from genanalysis.defect import max_force, relax, solve_defect, stability_constant
from genanalysis.lattice import defect_cell
from genanalysis.potentials import load_potential

W = load_potential("builtin:W")
MORSE = load_potential("builtin:morse")
A_W = W.equilibrium_lattice_constant("bcc")
A_M = MORSE.equilibrium_lattice_constant("triangular")


@pytest.mark.parametrize("pot, lattice, defect, n", [
    (W, "bcc", "vacancy", 3), (W, "bcc", "interstitial", 3), (W, "bcc", "interstitial:octahedral", 2),
    (MORSE, "triangular", "vacancy", 6), (MORSE, "triangular", "interstitial", 6),
])
def test_relax_reaches_tolerance_and_reports_it(pot, lattice, defect, n):
    res = solve_defect(pot, lattice, None, defect, n, fmax=1e-9)
    rel = res.relaxation
    assert rel.converged and rel.status == "converged"
    f = pot.observe(rel.atoms).forces
    assert max_force(f) <= 1e-9 and rel.max_force == pytest.approx(max_force(f), rel=1e-6, abs=1e-15)
    if lattice == "triangular":
        assert np.all(rel.atoms.positions[:, 2] == 0.0)  # 2D: atoms stay in the plane
    assert rel.force_evaluations >= rel.iterations + 1


def test_never_silently_unconverged():
    rel = relax(defect_cell("bcc", A_W, 3, "interstitial", "W"), W, fmax=1e-12, max_iter=1)
    assert not rel.converged and "not converged" in rel.status and rel.max_force > 1e-12


def test_iterations_do_not_grow_with_the_cell():
    its = [solve_defect(W, "bcc", A_W, "vacancy", n, fmax=1e-9).relaxation.iterations for n in (3, 5, 8)]
    assert max(its) - min(its) <= 1, its


def test_preconditioners_agree_on_the_equilibrium():
    ref = defect_cell("triangular", A_M, 6, "interstitial")
    e = [relax(ref, MORSE, fmax=1e-10, preconditioner=p).energy for p in ("lattice", "laplacian", "none")]
    assert np.ptp(e) < 1e-9


def test_agrees_with_an_independent_optimiser():
    ref = defect_cell("bcc", A_W, 2, "vacancy", "W")
    ours = relax(ref, W, fmax=1e-8)
    other = ref.copy()
    other.calc = W.calculator()
    BFGS(other, logfile=None).run(fmax=1e-7, steps=500)
    assert ours.energy == pytest.approx(other.get_potential_energy(), abs=1e-9)


@given(scale=st.floats(0.2, 5.0))
@settings(max_examples=5, deadline=None)
def test_formation_energy_and_stability_scale_with_the_energy(scale):
    base = solve_defect(MORSE, "triangular", A_M, "vacancy", 5, stability=True)
    scaled_pot = _scaled(MORSE, scale)
    res = solve_defect(scaled_pot, "triangular", A_M, "vacancy", 5, stability=True)
    assert res.formation_energy == pytest.approx(scale * base.formation_energy, rel=1e-8)
    assert res.stability_constant == pytest.approx(scale * base.stability_constant, rel=1e-6)


def _scaled(pot, s):
    from genanalysis.potentials.base import Observation, Potential

    class ScaledPotential(Potential):
        name = f"scaled:{s}"
        cutoff = pot.cutoff
        species = pot.species

        def observe(self, atoms):
            ev = pot.observe(atoms)
            return Observation(s * ev.energy, s * ev.forces, s * ev.virial, s * ev.site_energies)

        def hessian(self, atoms):
            return s * pot.hessian(atoms)

        def linearise(self, atoms):
            return s * pot.linearise(atoms)

    return ScaledPotential()


def test_stability_dense_and_iterative_paths_agree():
    # the iterative path: matrix-free products, preconditioned by the perfect-lattice FFT
    # inverse (an n-cell) or by the stencil Laplacian's (any other cell)
    res = solve_defect(W, "bcc", A_W, "vacancy", 3)
    dense = stability_constant(res.atoms, W, res.reference)
    iterative = stability_constant(res.atoms, W, res.reference, dense_limit=10, tol=1e-9)
    plain = res.atoms.copy()
    del plain.arrays["site_index"]
    fallback = stability_constant(plain, W, res.reference, dense_limit=10, tol=1e-9)
    assert dense > 0
    assert iterative == pytest.approx(dense, rel=1e-9)
    assert fallback == pytest.approx(dense, rel=1e-9)


def test_stability_mode_from_a_nearby_mode_gives_the_same_constant():
    from genanalysis.defect import stability_mode

    res = solve_defect(W, "bcc", A_W, "vacancy", 3)
    c_ref, v_ref = stability_mode(res.reference, W, res.reference, dense_limit=10, tol=1e-9)
    cold, v = stability_mode(res.atoms, W, res.reference, dense_limit=10, tol=1e-9)
    warm, v_warm = stability_mode(res.atoms, W, res.reference, dense_limit=10, tol=1e-9, guess=v_ref)
    assert c_ref != pytest.approx(cold, rel=1e-6)  # a different problem, a nearby mode
    assert warm == pytest.approx(cold, rel=1e-9)
    assert v.shape == v_warm.shape == (3 * len(res.atoms),)


def test_unstable_stationary_point_has_negative_stability():
    # the octahedral interstitial in bcc W is a saddle point of the energy
    res = solve_defect(W, "bcc", A_W, "interstitial:octahedral", 2, stability=True)
    assert res.relaxation.converged and res.stability_constant < 0


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "genanalysis", *args], capture_output=True, text=True, timeout=300)


def test_defect_command_json():
    p = _cli("defect", "--potential", "builtin:W", "--lattice", "bcc", "--defect", "vacancy", "--size", "3",
             "--stability", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    for key in ("n_atoms", "formation_energy", "max_force", "status", "iterations", "force_evaluations",
                "stability_constant"):
        assert key in out
    assert out["n_atoms"] == 53 and out["status"] == "converged" and out["max_force"] <= 1e-8
    assert out["formation_energy"] == pytest.approx(solve_defect(W, "bcc", out["a"], "vacancy", 3).formation_energy,
                                                    abs=1e-9)


@pytest.mark.parametrize("args, words", [
    (["--potential", "builtin:nothing", "--lattice", "bcc", "--defect", "vacancy", "--size", "3"], "builtin:nothing"),
    (["--potential", "no/such/file.eam", "--lattice", "bcc", "--defect", "vacancy", "--size", "3"], "file.eam"),
    (["--potential", "builtin:W", "--lattice", "hcp", "--defect", "vacancy", "--size", "3"], "hcp"),
    (["--potential", "builtin:W", "--lattice", "bcc", "--defect", "antisite", "--size", "3"], "antisite"),
    (["--potential", "builtin:W", "--lattice", "bcc", "--defect", "vacancy", "--size", "0"], "n=0"),
    (["--potential", "builtin:W", "--element", "Fe", "--lattice", "bcc", "--defect", "vacancy", "--size", "3"], "Fe"),
    (["--potential", "builtin:morse", "--lattice", "triangular", "--defect", "vacancy", "--size", "1"], "n ≥ 2"),
])
def test_defect_command_bad_input_is_one_line(args, words):
    p = _cli("defect", *args)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in p.stderr


# ---------------------------------------------------------------- independent code: LAMMPS

LMP = shutil.which("lmp")
POTENTIALS = "/usr/share/lammps/potentials"
LAMMPS_CASES = [("W_zhou.eam.alloy", "eam/alloy", "W", "bcc", 3.1652, 3),
                ("Cu_u3.eam", "eam", None, "fcc", 3.615, 3),
                ("FeP_mm.eam.fs", "eam/fs", "Fe", "bcc", 2.855, 3)]


def _lammps_energy(atoms, tmp_path, style, path, element, minimize):
    L = np.diag(atoms.cell)
    lines = ["LAMMPS data", "", f"{len(atoms)} atoms", "1 atom types", ""]
    lines += [f"0 {L[0]:.17g} xlo xhi", f"0 {L[1]:.17g} ylo yhi", f"0 {L[2]:.17g} zlo zhi", "", "Masses", "", "1 1.0",
              "", "Atoms # atomic", ""]
    lines += [f"{k + 1} 1 {x:.17g} {y:.17g} {z:.17g}" for k, (x, y, z) in enumerate(atoms.get_positions(wrap=True))]
    (tmp_path / "cell.data").write_text("\n".join(lines) + "\n")
    coeff = f"pair_coeff 1 1 {path}" if style == "eam" else f"pair_coeff * * {path} {element}"
    run = "min_style cg\nmin_modify dmax 0.05\nminimize 0 1e-12 100000 1000000" if minimize else "run 0"
    (tmp_path / "in.lmp").write_text(
        f"units metal\natom_style atomic\natom_modify map array\nboundary p p p\nread_data cell.data\n"
        f"pair_style {style}\n{coeff}\nthermo_style custom pe fmax\n{run}\nprint \"$(pe:%.17g)\" file energy.txt\n")
    subprocess.run([LMP, "-in", "in.lmp", "-log", "none", "-screen", "none"], cwd=tmp_path, check=True, timeout=300)
    return float((tmp_path / "energy.txt").read_text().split()[0])


@pytest.mark.lammps
@pytest.mark.skipif(LMP is None, reason="lmp not installed (apt-get install lammps lammps-data)")
@pytest.mark.parametrize("fname, style, element, lattice, a, n", LAMMPS_CASES, ids=[c[0] for c in LAMMPS_CASES])
def test_relaxed_vacancy_formation_energy_matches_lammps(tmp_path, fname, style, element, lattice, a, n):
    path = os.path.join(POTENTIALS, fname)
    if not os.path.exists(path):
        pytest.skip(f"{fname} not installed")
    pot = load_potential(path, element=element)
    ours = solve_defect(pot, lattice, a, "vacancy", n, fmax=1e-9, element=element)
    assert ours.relaxation.converged
    perfect = defect_cell(lattice, a, n, "perfect", ours.reference.get_chemical_symbols()[0])
    e_perf = _lammps_energy(perfect, tmp_path, style, path, element, minimize=False)
    e_def = _lammps_energy(ours.reference, tmp_path, style, path, element, minimize=True)
    ef_lammps = e_def - len(ours.reference) * e_perf / len(perfect)
    assert ours.formation_energy == pytest.approx(ef_lammps, abs=1e-5)
