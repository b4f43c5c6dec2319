"""The reference relaxation of a clamped dislocation cylinder against LAMMPS: the same atoms,
the same clamped shell (``fix setforce 0 0 0`` on its group), builtin:W written as an
eam/alloy file and read by both codes. Skipped without ``lmp``."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from genanalysis.dislocation import cylinder, relax_cylinder
from genanalysis.potentials import load_potential
from genanalysis.potentials.builtin import tungsten_zhou
from genanalysis.potentials.eamfile import write_eam_file

LMP = shutil.which("lmp")
pytestmark = [pytest.mark.lammps, pytest.mark.skipif(LMP is None, reason="lmp not installed (apt-get install lammps)")]


@pytest.fixture(scope="module")
def tabulated(tmp_path_factory):
    path = tmp_path_factory.mktemp("eam") / "W.eam.alloy"
    write_eam_file(str(path), tungsten_zhou(), "eam/alloy", n_r=4000, n_rho=2000, rho_max=60.0, atomic_numbers=[74])
    return str(path)


def _lammps(atoms, workdir, path, minimize: bool) -> tuple[float, np.ndarray]:
    """LAMMPS energy (eV) and positions (Å, in input order) of ``atoms``: free atoms type 1,
    clamped atoms type 2 (the same element), the clamped group held by setforce."""
    cell = np.array(atoms.cell)
    assert np.allclose(cell, np.diag(np.diag(cell)))  # an orthogonal box
    L = np.diag(cell)
    types = np.where(atoms.arrays["clamped"], 2, 1)
    lines = ["LAMMPS data", "", f"{len(atoms)} atoms", "2 atom types", ""]
    lines += [f"0 {L[0]:.17g} xlo xhi", f"0 {L[1]:.17g} ylo yhi", f"0 {L[2]:.17g} zlo zhi", "", "Masses", "",
              "1 183.84", "2 183.84", "", "Atoms # atomic", ""]
    pos = atoms.positions.copy()
    pos[:, 2] %= L[2]
    lines += [f"{k + 1} {t} {x:.17g} {y:.17g} {z:.17g}" for k, (t, (x, y, z)) in enumerate(zip(types, pos))]
    (workdir / "cyl.data").write_text("\n".join(lines) + "\n")
    run = ("fix hold clamped setforce 0.0 0.0 0.0\nmin_style cg\nmin_modify dmax 0.05\n"
           "minimize 0 1e-12 100000 1000000" if minimize else "run 0")
    (workdir / "in.lmp").write_text(
        "units metal\natom_style atomic\natom_modify map array sort 0 0\nboundary f f p\nread_data cyl.data\n"
        f"pair_style eam/alloy\npair_coeff * * {path} W W\ngroup clamped type 2\n"
        f"thermo_style custom pe fmax\n{run}\nprint \"$(pe:%.17g)\" file energy.txt\n"
        "write_dump all custom final.dump id x y z modify sort id format float %.17g\n")
    subprocess.run([LMP, "-in", "in.lmp", "-log", "none", "-screen", "none"], cwd=workdir, check=True, timeout=600)
    e = float((workdir / "energy.txt").read_text().split()[0])
    dump = (workdir / "final.dump").read_text().splitlines()
    start = dump.index("ITEM: ATOMS id x y z") + 1
    xyz = np.array([[float(v) for v in line.split()[1:]] for line in dump[start:]])
    return e, xyz


@pytest.mark.parametrize("kind", ["screw", "edge", "mixed"])
def test_clamped_cylinder_relaxation_matches_lammps(tmp_path, tabulated, kind):
    pot = load_potential(tabulated)
    atoms = cylinder(pot, kind, 8.0)
    e0_ours = pot.observe(atoms).energy
    e0_lmp, _ = _lammps(atoms, tmp_path, tabulated, minimize=False)
    assert e0_ours == pytest.approx(e0_lmp, abs=1e-6)  # the same potential on the same atoms
    rel = relax_cylinder(atoms, pot, fmax=1e-8)
    assert rel.converged
    e_lmp, xyz = _lammps(atoms, tmp_path, tabulated, minimize=True)
    clamped = atoms.arrays["clamped"]
    period = atoms.cell[2, 2]
    d = xyz - atoms.positions
    d[:, 2] -= period * np.round(d[:, 2] / period)
    assert np.abs(d[clamped]).max() < 1e-12 * period + 1e-9  # LAMMPS held the shell too
    assert rel.energy == pytest.approx(e_lmp, abs=1e-5)
    assert e0_ours - rel.energy > 1e-2  # the relaxation did something
