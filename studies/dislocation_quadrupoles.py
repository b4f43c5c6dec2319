"""The periodic screw quadrupole cells of the training sets (docs/dislocations.md §6),
relaxed with builtin:W: atoms, Newton iterations, excess energy over the perfect crystal,
and the mean stress, unrelaxed and relaxed, for N = 1, 2, 3; and, for comparison, matscipy's
own quadrupole of the same separation without the two corrections of
:func:`genanalysis.dislocation_cells.quadrupole_cell` (``excess_energy_uncorrected``).

    python studies/dislocation_quadrupoles.py [--sizes 1 2 3] [--out docs/data/dislocation_quadrupoles.json]
"""

from __future__ import annotations

import math

import numpy as np

from genanalysis.defect import perfect_energy_per_atom
from genanalysis.dislocation import elastic_prelog, predictor_elastic_constants
from genanalysis.dislocation_cells import quadrupole_cell
from genanalysis.relaxation import relax
from studyio import w_size_study, write_rows

GPA = 160.21766208


def _uncorrected(a, C, glides):
    """matscipy's quadrupole cell as it builds it (Stroh image sum, no plastic tilt)."""
    import warnings

    import matscipy.dislocation as md

    quad = md.CubicCrystalDislocationQuadrupole(md.BCCScrew111Dislocation, a, C=C * GPA, symbol="W")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, disloc = quad.build_quadrupole(glide_separation=glides, verbose=False, method="adsl",
                                          self_consistent=False)
    return disloc


def main(argv=None) -> int:
    args, pot, a = w_size_study(__doc__, "docs/data/dislocation_quadrupoles.json", argv)
    C = predictor_elastic_constants(pot, a, "W")
    e0 = perfect_energy_per_atom(pot, "bcc", a, 1, "W")
    prelog = elastic_prelog("screw", a, C)
    rows = []
    for n in args.sizes:
        cell = quadrupole_cell("screw", a, C, n, "W")
        rel = relax(cell, pot, fmax=1e-8)
        volume = abs(float(np.linalg.det(cell.cell)))
        stress = {k: (-np.asarray(pot.observe(at).virial) / volume * GPA).tolist() for k, at in
                  (("unrelaxed", cell), ("relaxed", rel.atoms))}
        raw = _uncorrected(a, C, 3 * n)
        raw_rel = relax(raw, pot, fmax=1e-8)
        rows.append(dict(excess_energy_uncorrected_unrelaxed=float(pot.observe(raw).energy - len(raw) * e0),
                         excess_energy_uncorrected=float(raw_rel.energy - len(raw) * e0), size=n, atoms=len(cell), glide_separation=cell.info["glide_separation"], status=rel.status,
                         iterations=rel.iterations, max_force=rel.max_force,
                         excess_energy_unrelaxed=float(pot.observe(cell).energy - len(cell) * e0),
                         excess_energy=float(rel.energy - len(cell) * e0), period=cell.info["period"],
                         stress_unrelaxed_gpa=stress["unrelaxed"], stress_relaxed_gpa=stress["relaxed"]))
    for r0, r1 in zip(rows, rows[1:]):  # the two cores' elastic term between successive sizes
        r1["log_term_from_previous"] = 2 * prelog * r1["period"] * math.log(r1["size"] / r0["size"])
        r1["excess_increase_from_previous"] = r1["excess_energy"] - r0["excess_energy"]
    meta = dict(potential="builtin:W", a=a, elastic_prelog=prelog, command="python studies/dislocation_quadrupoles.py",
                units=dict(excess_energy="eV (per cell: one period L along the line)", stress="GPa", max_force="eV/Å",
                           period="Å", elastic_prelog="eV/Å"))
    write_rows(args.out, meta, rows)
    print("| N | atoms | cores apart (glide distances) | Newton its | max force (eV/Å) | E_exc unrelaxed (eV) "
          "| E_exc relaxed (eV) | increase from N−1 (eV) | 2·E_log·L·ln(N/(N−1)) (eV) | σ_yz unrelaxed (GPa) "
          "| max |σ| relaxed (GPa) | uncorrected: E_exc unrelaxed, relaxed (eV) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        inc = r.get("excess_increase_from_previous")
        log = r.get("log_term_from_previous")
        print(f"| {r['size']} | {r['atoms']} | {r['glide_separation']} | {r['iterations']} | {r['max_force']:.1e} "
              f"| {r['excess_energy_unrelaxed']:.3f} | {r['excess_energy']:.3f} | {'—' if inc is None else f'{inc:.3f}'} "
              f"| {'—' if log is None else f'{log:.3f}'} | {r['stress_unrelaxed_gpa'][1][2]:.3f} "
              f"| {np.abs(r['stress_relaxed_gpa']).max():.2f} | {r['excess_energy_uncorrected_unrelaxed']:.3f}, "
              f"{r['excess_energy_uncorrected']:.1e} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
