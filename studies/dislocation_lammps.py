"""The clamped-cylinder reference relaxation against LAMMPS (docs/dislocations.md §4):
builtin:W tabulated as eam/alloy, the same atoms and clamped shell in both codes; energies
(eV) and positions (Å) compared, plus the tabulated against the analytic potential.

    python studies/dislocation_lammps.py [--radius 8] [--out docs/data/dislocation_lammps.json]

Needs ``lmp``; uses the driver of tests/test_dislocation_lammps.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from genanalysis.dislocation import KINDS, cylinder, relax_cylinder
from genanalysis.potentials import load_potential
from genanalysis.potentials.builtin import tungsten_zhou
from genanalysis.potentials.eamfile import write_eam_file

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from test_dislocation_lammps import _lammps  # noqa: E402

from studyio import write_rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--radius", type=float, default=8.0)
    ap.add_argument("--out", default="docs/data/dislocation_lammps.json")
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        path = str(work / "W.eam.alloy")
        write_eam_file(path, tungsten_zhou(), "eam/alloy", n_r=4000, n_rho=2000, rho_max=60.0, atomic_numbers=[74])
        pot, analytic = load_potential(path), load_potential("builtin:W")
        for kind in KINDS:
            atoms = cylinder(pot, kind, args.radius)
            e0, _ = _lammps(atoms, work, path, minimize=False)
            rel = relax_cylinder(atoms, pot)
            e1, xyz = _lammps(atoms, work, path, minimize=True)
            d = xyz - rel.atoms.positions
            period = atoms.cell[2, 2]
            d[:, 2] -= period * np.round(d[:, 2] / period)
            rel_analytic = relax_cylinder(atoms, analytic)
            rows.append(dict(kind=kind, radius=args.radius, n_atoms=len(atoms),
                             n_clamped=int(atoms.arrays["clamped"].sum()),
                             unrelaxed_energy_ours=pot.observe(atoms).energy, unrelaxed_energy_lammps=e0,
                             relaxed_energy_ours=rel.energy, relaxed_energy_lammps=e1,
                             relaxed_energy_difference=rel.energy - e1, max_position_difference=float(np.abs(d).max()),
                             ours_iterations=rel.iterations, ours_max_force=rel.max_force,
                             relaxed_energy_analytic=rel_analytic.energy))
            print(json.dumps(rows[-1]), flush=True)
    meta = dict(command=f"python studies/dislocation_lammps.py --radius {args.radius:g}",
                table="builtin:W as eam/alloy, n_r=4000, n_rho=2000, rho_max=60",
                lammps="min_style cg, minimize 0 1e-12, fix setforce 0 0 0 on the clamped group",
                units=dict(energies="eV", max_position_difference="Å", ours_max_force="eV/Å"))
    write_rows(args.out, meta, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
