"""The clamped dislocation cylinders of the training sets (docs/dislocations.md §6,
docs/trainingset.md), relaxed with builtin:W exactly as the builder relaxes them
(:func:`genanalysis.trainingset.build.group_cell`, the clamped shell held at the predictor):
atoms, free atoms, free radius R_N = 2 N a and clamped width, Newton iterations, the largest
force on a free atom (the relaxation's measure) and on a clamped atom (what the free surface
does to the shell, the forces a training set leaves out), and the largest relaxation
displacement of a free atom from the predictor, for the screw, edge and mixed at N = 1, 2, 3.

    python studies/dislocation_cylinder_cells.py [--sizes 1 2 3] [--out docs/data/dislocation_cylinder_cells.json]
"""

from __future__ import annotations

import time

import numpy as np

from genanalysis.relaxation import relax
from genanalysis.trainingset.build import group_cell
from studyio import w_size_study, write_rows


def main(argv=None) -> int:
    args, pot, a = w_size_study(__doc__, "docs/data/dislocation_cylinder_cells.json", argv)
    rows = []
    for kind in ("screw", "edge", "mixed"):
        for n in args.sizes:
            cell = group_cell("bcc", a, n, f"dislocation-cylinder:{kind}", "W", pot)
            t0 = time.perf_counter()
            rel = relax(cell, pot, fmax=1e-8)  # holds arrays['clamped'] fixed
            seconds = time.perf_counter() - t0
            clamped = np.asarray(cell.arrays["clamped"], bool)
            forces = np.linalg.norm(pot.observe(rel.atoms).forces, axis=1)
            moved = np.linalg.norm(rel.atoms.positions - cell.positions, axis=1)
            rows.append(dict(kind=kind, size=n, radius=cell.info["radius"], clamp_width=cell.info["clamp_width"],
                             atoms=len(cell), free_atoms=int((~clamped).sum()), period=cell.info["period"],
                             status=str(rel.status), iterations=rel.iterations,
                             max_force_free=float(forces[~clamped].max()), max_force_clamped=float(forces[clamped].max()),
                             max_displacement_free=float(moved[~clamped].max()),
                             max_displacement_clamped=float(moved[clamped].max()), relax_seconds=seconds))
    meta = dict(potential="builtin:W", a=a, cutoff=float(pot.cutoff), fmax=1e-8,
                command="python studies/dislocation_cylinder_cells.py",
                units=dict(radius="Å", clamp_width="Å", period="Å", max_force="eV/Å", max_displacement="Å",
                           relax_seconds="s (wall, one thread)"))
    write_rows(args.out, meta, rows)
    print("| kind | N | R (Å) | atoms | free atoms | Newton its | max free force (eV/Å) | max clamped force (eV/Å) "
          "| max free displacement from predictor (Å) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['kind']} | {r['size']} | {r['radius']:.2f} | {r['atoms']} | {r['free_atoms']} | {r['iterations']} "
              f"| {r['max_force_free']:.1e} | {r['max_force_clamped']:.2f} | {r['max_displacement_free']:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
