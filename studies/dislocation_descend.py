"""The screw core from the predictor with and without descending along negative curvature
(docs/dislocations.md §2): builtin:W, R = 10 Å; iterations, final max force, stability.

    python studies/dislocation_descend.py [--out docs/data/dislocation_descend.json]
"""

from __future__ import annotations

import argparse
import json

from genanalysis.defect import relax, stability_constant
from genanalysis.dislocation import cylinder
from genanalysis.potentials import load_potential
from studyio import write_rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--radius", type=float, default=10.0)
    ap.add_argument("--max-iter", type=int, default=400)
    ap.add_argument("--out", default="docs/data/dislocation_descend.json")
    args = ap.parse_args(argv)
    pot = load_potential("builtin:W")
    atoms = cylinder(pot, "screw", args.radius)
    rows = []
    for descend in (False, True):
        rel = relax(atoms, pot, descend=descend, max_iter=args.max_iter)
        rows.append(dict(descend=descend, status=rel.status, iterations=rel.iterations, max_force=rel.max_force,
                         energy=rel.energy, stability_constant=stability_constant(rel.atoms, pot, atoms)))
        print(json.dumps(rows[-1]), flush=True)
    meta = dict(command=f"python studies/dislocation_descend.py --radius {args.radius:g} --max-iter {args.max_iter}",
                units=dict(max_force="eV/Å", energy="eV", stability_constant="eV/Å²"))
    write_rows(args.out, meta, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
