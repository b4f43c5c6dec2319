"""Calibration of the reference dislocation problem in the clamped cylinder
(docs/dislocations.md §4): for each kind and free radius R, the reference (builtin:W)
relaxation from the Stroh predictor — Newton iterations, Hessian products, time, max force
— the excess and core energies per length (D1)–(D3) within a fixed radius r_E, and the
geometry error ‖D(ū_R − ū_{R_max})‖ on the sites of the R-cylinder.

    python studies/dislocation_calibration.py [--radii 6 8 10 14 20 28 40] [--out docs/data/dislocation_calibration.json]

Every number of docs/dislocations.md §4 is a row of the JSON this writes (raw per-run data).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from genanalysis.defect import perfect_energy_per_atom
from genanalysis.dislocation import (KINDS, core_energy, cylinder, distances_from_line, elastic_prelog, excess_energy,
                                     relax_cylinder, seed_cylinder, site_keys)
from genanalysis.norms import energy_norm, stencil
from genanalysis.potentials import load_potential
from studyio import write_rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--radii", type=float, nargs="+", default=[6, 8, 10, 14, 20, 28, 40])
    ap.add_argument("--energy-radius", type=float, default=6.0, help="r_E of (D1), Å (≤ the smallest R)")
    ap.add_argument("--potential", default="builtin:W")
    ap.add_argument("--out", default="docs/data/dislocation_calibration.json")
    ap.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    ap.add_argument("--start-from", type=float, default=None, metavar="R_S",
                    help="controlled core: relax the R_S cylinder from the predictor first, then start every R "
                         "from its relaxed displacements on the free sites they share (the clamped shell stays at "
                         "the predictor)")
    args = ap.parse_args(argv)
    pot = load_potential(args.potential)
    radii = sorted(args.radii)
    rows = []
    for kind in args.kinds:
        runs = {}
        seed = None
        if args.start_from is not None:
            seed_atoms = cylinder(pot, kind, args.start_from)
            seed_rel = relax_cylinder(seed_atoms, pot)
            seed = seed_rel.atoms
        for R in radii:
            atoms = cylinder(pot, kind, R)
            if seed is not None:
                atoms = seed_cylinder(atoms, seed)
            t0 = time.perf_counter()
            rel = relax_cylinder(atoms, pot)
            if seed is not None:  # the norms and the predictor energy refer to the predictor cylinder
                atoms = cylinder(pot, kind, R)
            wall = time.perf_counter() - t0
            e_predictor = float(pot.observe(atoms).energy)  # E(û): the relaxation energy is E(ū_R) − E(û)
            a = float(atoms.info["a"])
            e0 = perfect_energy_per_atom(pot, "bcc", a, 1, "W")
            site = pot.observe(rel.atoms).site_energies
            b = float(np.linalg.norm(atoms.info["burgers"]))
            prelog = elastic_prelog(kind, a, np.asarray(atoms.info["elastic_constants"]))
            exc_rE = excess_energy(site, atoms, e0, args.energy_radius)
            exc_R = excess_energy(site, atoms, e0, R)
            runs[R] = (atoms, rel)
            rows.append(dict(kind=kind, radius=R, clamp_width=atoms.info["clamp_width"], n_atoms=len(atoms),
                             n_free=int((~atoms.arrays["clamped"]).sum()), status=rel.status,
                             iterations=rel.iterations, force_evaluations=rel.force_evaluations,
                             hvp_evaluations=rel.hvp_evaluations, max_force=rel.max_force, wall_time=wall,
                             energy=rel.energy, predictor_energy=e_predictor,
                             relaxation_energy=(rel.energy - e_predictor) / atoms.info["period"],
                             burgers=b, elastic_prelog=prelog, energy_radius=args.energy_radius,
                             excess_energy_rE=exc_rE, core_energy_rE=core_energy(exc_rE, prelog, args.energy_radius, b),
                             excess_energy_R=exc_R, core_energy_R=core_energy(exc_R, prelog, R, b)))
            print(json.dumps(rows[-1]), flush=True)
        big_atoms, big_rel = runs[radii[-1]]
        index = {k: i for i, k in enumerate(site_keys(big_atoms))}
        u_big = big_rel.atoms.positions - big_atoms.arrays["lattice_positions"]
        for row in rows:
            if row["kind"] != kind or row["radius"] == radii[-1]:
                continue
            atoms, rel = runs[row["radius"]]
            idx = np.array([index[k] for k in site_keys(atoms)])
            u = rel.atoms.positions - atoms.arrays["lattice_positions"]
            diff = u - u_big[idx]
            st = stencil(atoms)
            row["geometry_error"] = energy_norm(diff, st)  # every pair of the R-cylinder (its shell too)
            inner = distances_from_line(atoms) < args.energy_radius
            row["geometry_error_inner"] = energy_norm(diff, st, sites=inner)
            row["max_displacement_difference_inner"] = float(np.linalg.norm(diff[inner], axis=1).max())
    meta = dict(potential=args.potential, radii=radii, r_max=radii[-1], energy_radius=args.energy_radius,
                load_average=os.getloadavg(), machine=platform.machine(), fmax=1e-8,
                kinds=args.kinds, start_from=args.start_from,
                command="python studies/dislocation_calibration.py " + " ".join(
                    ["--radii", *map(lambda r: f"{r:g}", radii), "--energy-radius", f"{args.energy_radius:g}"]
                    + (["--kinds", *args.kinds] if args.kinds != list(KINDS) else [])
                    + ([f"--start-from {args.start_from:g}"] if args.start_from is not None else [])
                    + ([f"--out {args.out}"] if args.out != "docs/data/dislocation_calibration.json" else [])),
                units=dict(radius="Å", clamp_width="Å", max_force="eV/Å", wall_time="s", energy="eV",
                           predictor_energy="eV", relaxation_energy="eV/Å",
                           burgers="Å", elastic_prelog="eV/Å", excess_energy_rE="eV/Å", core_energy_rE="eV/Å",
                           excess_energy_R="eV/Å", core_energy_R="eV/Å", geometry_error="Å",
                           geometry_error_inner="Å", max_displacement_difference_inner="Å"))
    write_rows(args.out, meta, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
