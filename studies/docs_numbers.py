"""The numbers docs/studies.md, docs/calibration.md and docs/experiment.md quote in their
readings, recomputed from docs/data/*.json and, for the elastic constants, from the code.

    python studies/docs_numbers.py [--skip-elastic] [--vacancy-tail]

Prints: the factors of docs/studies.md §3 (ratios of mean ‖D(ū^ML − ū)‖ between training
sizes, from the mean tables in docs/data/studies.json; dimensionless) and its floors (Å);
the calibration verdicts of the W interstitial fitted on N ≥ 7 and the vacancy's local
slopes at the largest N (docs/data/calibration.json); the cubic elastic constants of the
built-in W EAM (GPa) and its Zener ratio A = 2 C44 / (C11 − C12) (dimensionless).
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import re
from collections import defaultdict

ROOT = pathlib.Path(__file__).resolve().parents[1]
DATA = ROOT / "docs" / "data"
NUM = re.compile(r"^([0-9.]+e[+-][0-9]+)")
FSETS = ("EF", "EFV", "EFH", "EFVH")


def mean_table(table: str) -> dict:
    """{(defect, observations): {N: mean}} of a rendered training-size table (converged only)."""
    lines = [ln for ln in table.splitlines() if ln.startswith("|") and not ln.startswith("|---")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    out = defaultdict(dict)
    for ln in lines[1:]:
        row = dict(zip(head, (c.strip() for c in ln.strip("|").split("|"))))
        for obs in head[2:]:
            m = NUM.match(row[obs])
            if m:
                out[(row["defect"], obs)][int(row["N"])] = float(m.group(1))
    return out


def _span(values, fmt=".3g"):
    return f"{format(min(values), fmt)} … {format(max(values), fmt)}"


def studies_numbers() -> None:
    data = json.loads((DATA / "studies.json").read_text())
    m = mean_table(data["training_size_2d"]["table"])
    print("docs/studies.md §3 (d = 2): ratios of mean errors")
    drop = {k: v[2] / v[3] for k, v in m.items() if k[1] in FSETS and 2 in v and 3 in v}
    for k, r in sorted(drop.items()):
        print(f"  N = 2 → 3  {k[0]:12s} {k[1]:5s} factor {r:.3g}")
    print(f"  N = 2 → 3, every F-containing set, both defects: factor {_span(drop.values())}")
    for obs in ("EF", "EFV"):
        v = m[("vacancy", obs)]
        print(f"  N = 4 → 6  vacancy {obs:4s} factor {v[4] / v[6]:.3g}")
    vac = [m[("vacancy", o)][n] for o in ("EF", "EFV") for n in (6, 8)]
    print(f"  floor: vacancy EF/EFV at N = 6, 8: {_span(vac)} Å")
    inter = [m[("interstitial", o)][8] for o in FSETS]
    inter3 = [m[("interstitial", o)][n] for o in FSETS for n in (3, 4, 6, 8)]
    print(f"  interstitial, F-containing sets at N = 8: {_span(inter)} Å; at 3 ≤ N ≤ 8: {_span(inter3)} Å")
    m3 = mean_table(data["training_size_3d"]["table"])
    print("docs/studies.md §4 (d = 3): vacancy")
    for obs in ("EF", "EFV"):
        v = m3[("vacancy", obs)]
        print(f"  {obs:4s} N = 2 → 3 factor {v[2] / v[3]:.3g}; N = 3 → 4 change {v[4] / v[3] - 1:+.1%}")


def elastic_numbers() -> None:
    """Cubic elastic constants and Zener ratio of the built-in W EAM (clamped-ion central
    differences of the virial, genanalysis.experiment.elastic_constants), and the dipole
    tensors of its vacancy and ⟨110⟩ dumbbell in a relaxed M = 4 cell (P = V(ū_M) − V_perfect,
    eV), with the anisotropy of P: (largest − smallest eigenvalue) / |mean eigenvalue|."""
    import numpy as np

    from genanalysis.defect import relax
    from genanalysis.experiment import EV_PER_A3_IN_GPA, elastic_constants
    from genanalysis.lattice import defect_cell, perfect_cell
    from genanalysis.potentials import load_potential

    pot = load_potential("builtin:W")
    a = pot.equilibrium_lattice_constant("bcc")
    perfect = perfect_cell("bcc", a, 2, "W")
    C = elastic_constants(pot, perfect) * EV_PER_A3_IN_GPA
    c11, c12, c44 = C[0, 0], C[0, 1], C[3, 3]
    print(f"docs/experiment.md §5: builtin:W, a = {a:.5f} Å: C11 = {c11:.1f}, C12 = {c12:.1f}, C44 = {c44:.1f} GPa")
    print(f"  Zener ratio A = 2 C44/(C11 − C12) = {2 * c44 / (c11 - c12):.4f}; Cauchy C12 − C44 = {c12 - c44:.1f} GPa")
    m = 4
    v_perf = np.asarray(pot.observe(perfect_cell("bcc", a, m, "W")).virial)
    for defect in ("vacancy", "interstitial"):
        rel = relax(defect_cell("bcc", a, m, defect, "W"), pot, fmax=1e-8)
        P = np.asarray(pot.observe(rel.atoms).virial) - v_perf
        w = np.linalg.eigvalsh(0.5 * (P + P.T))
        print(f"  {defect:12s} (M = {m}, {rel.status}): eigenvalues of P = {', '.join(f'{x:.3f}' for x in w)} eV; "
              f"anisotropy (max − min)/|mean| = {(w.max() - w.min()) / abs(w.mean()):.3g}")


def calibration_numbers() -> None:
    """W interstitial geometry and energy errors fitted on N ≥ 7 (theory.compare.fit_slope,
    judge), and the W vacancy's local slopes between consecutive sizes at the largest N."""
    import numpy as np

    from theory.compare import fit_slope, judge

    data = json.loads((DATA / "calibration.json").read_text())
    rates = {"geometry_error": "supercell_geometry", "energy_error": "supercell_energy"}
    print("docs/calibration.md: bcc W")
    for case in ("bcc-W-interstitial", "bcc-W-vacancy"):
        rows = [r for r in data[case]["rows"] if r["status"] == "converged"]
        n = np.array([r["size"] for r in rows], float)
        for q, rate in rates.items():
            y = np.array([r[q] for r in rows])
            keep = n >= 7
            fit = fit_slope(n[keep], y[keep])
            v = judge(fit, rate, 3)
            short = judge(fit, rate, 3, min_range=fit.range_ratio)  # the interval's own verdict
            local = np.diff(np.log(y)) / np.diff(np.log(n))
            tail = ", ".join(f"{int(a)}→{int(b)}: {s:.2f}" for a, b, s in zip(n[-4:-1], n[-3:], local[-3:]))
            print(f"  {case:20s} {q:15s} N ≥ 7: {fit.slope:.2f} [{fit.ci_low:.2f}, {fit.ci_high:.2f}] "
                  f"({fit.n_points} points, range ×{fit.range_ratio:.2f}) → {v.label}; by the interval alone "
                  f"{short.label}; local slopes {tail}")


def vacancy_tail() -> None:
    """The prediction of docs/experiment.md §5: the force_constants surrogate's force-error
    tail on the W vacancy (isotropic P), η = 1e-3, M = 4…24, as part B of
    studies/surrogates.py measures it for the interstitial (slope of the tail over R ≥ 4 r_nn)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("surrogates", ROOT / "studies" / "surrogates.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for fam in ("force_constants", "bond_stiffness"):
        (row,) = mod.part_b({"W": mod.SYSTEMS["W"]}, defect="vacancy", families=(fam,))
        radii = ", ".join(f"{r:.1f}" for r in row["tail_radii"])
        print(f"docs/experiment.md §5: W vacancy, {fam}, M = {row['sizes'][-1]} ({row['n_atoms_max']} atoms): "
              f"tail slope {row['tail_slope']:.2f} over R = {radii} Å (bound −1.5)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-elastic", action="store_true", help="leave out the elastic constants (a few s)")
    ap.add_argument("--vacancy-tail", action="store_true",
                    help="also measure the W vacancy's surrogate force-error tails (a few minutes)")
    args = ap.parse_args()
    studies_numbers()
    calibration_numbers()
    if not args.skip_elastic:
        elastic_numbers()
    if args.vacancy_tail:
        vacancy_tail()


if __name__ == "__main__":
    main()
