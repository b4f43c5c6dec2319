"""The surrogate study of docs/experiment.md §5: V^ML = V + ηW for each family of
genanalysis.surrogates, in d = 2 (builtin:morse, triangular) and d = 3 (builtin:W, bcc).

    python studies/surrogates.py [--quick] [--json FILE] [--figure FILE]

Part A — linearity in η and the effectivity of the a-posteriori bound (T8): for every
family, system and defect, η ∈ {1e-4, 1e-3, 1e-2}; the log-log slope of ‖D(ū^ML − ū)‖
and of the residual against η (expected 1), and the range of the effectivity.

Part B — the far field: on the largest domain, the tail ‖(f^ML − f)(ū)·1_{|ℓ|>R}‖₋₁ of
the force error at ū against R (the estimate bounds the force-constant term by
ε_FC ‖Dū‖_{ℓ²(|ℓ|>R)} ∝ R^{-d/2}; the core family must give exactly zero beyond its
support), and the change of the residual and the error with the test domain M, fitted
reported as its relative spread over M for each family.

Prints Markdown tables (the ones in docs/experiment.md). Units: Å, eV, eV/Å.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import numpy as np

from genanalysis.experiment import ExperimentSpec, _inscribed_width, evaluate
from genanalysis.lattice import nearest_neighbour_distance
from genanalysis.potentials import load_potential

FAMILIES = ("core", "force_constants", "bond_stiffness", "stress")
ETAS = (1e-4, 1e-3, 1e-2)
#: (base, lattice, d, eta-sweep size, domain sizes)
SYSTEMS = {
    "morse": ("builtin:morse", "triangular", 2, 24, (8, 12, 16, 24, 32, 48)),
    "W": ("builtin:W", "bcc", 3, 6, (4, 6, 12, 24)),
}
QUICK = {
    "morse": ("builtin:morse", "triangular", 2, 12, (8, 12, 16, 24)),
    "W": ("builtin:W", "bcc", 3, 4, (4, 5, 6)),
}


def _slope(x, y) -> float:
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = (x > 0) & (y > 0) & np.isfinite(y)
    if ok.sum() < 2:
        return math.nan
    return float(np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)[0])


def part_a(systems) -> list[dict]:
    rows = []
    for name, (base, lattice, d, size, _) in systems.items():
        for defect in ("vacancy", "interstitial"):
            for fam in FAMILIES:
                res = [evaluate(f"surrogate:{base}?family={fam}&eta={eta!r}", base,
                                ExperimentSpec(lattice, defect, size, lattice_terms=(eta == ETAS[-1]), profile_radii=()))
                       for eta in ETAS]
                eff = [r.effectivity for r in res if r.effectivity is not None]
                last = res[-1]
                rows.append(dict(
                    system=name, d=d, defect=defect, family=fam, size=size, n_atoms=last.n_atoms,
                    status=",".join(sorted({r.status for r in res})),
                    error_slope=_slope(ETAS, [r.error_energy_norm for r in res]),
                    residual_slope=_slope(ETAS, [r.residual_dual_norm for r in res]),
                    effectivity_min=min(eff) if eff else None, effectivity_max=max(eff) if eff else None,
                    relative_error_at_1e_2=last.relative_error, residual_at_1e_2=last.residual_dual_norm,
                    eps_fc_at_1e_2=last.force_constant_error, stress_error_at_1e_2=last.lattice_stress_error,
                    elastic_error_at_1e_2=last.elastic_constant_error, r_stencil=last.r_stencil,
                ))
                print(f"  A {name} {defect} {fam}: slope {rows[-1]['error_slope']:.4f}", file=sys.stderr)
    return rows


def part_b(systems, eta: float = 1e-3, *, defect: str = "interstitial", families=FAMILIES) -> list[dict]:
    """Far-field tails and M-convergence of each family for the test ``defect``."""
    rows = []
    for name, (base, lattice, d, _, sizes) in systems.items():
        a = load_potential(base).equilibrium_lattice_constant(lattice)
        r_nn = nearest_neighbour_distance(lattice, a)
        for fam in families:
            per_m = []
            for m in sizes:
                big = m == sizes[-1]
                radii = r_nn * np.array([2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0]) if big else ()
                r = evaluate(f"surrogate:{base}?family={fam}&eta={eta!r}", base,
                             ExperimentSpec(lattice, defect, m, a=a, stability=False, lattice_terms=False,
                                            profile_radii=radii))
                per_m.append(r)
            big = per_m[-1]
            half = 0.5 * _inscribed_width(big.start_atoms)  # beyond it the tail leaves the domain
            prof = [p for p in big.residual_profile if 3.9 * r_nn <= p["radius"] <= half]
            tail_r = [p["radius"] for p in prof]
            tail_v = [p["force_error_tail"] for p in prof]
            res_m = np.array([r.residual_dual_norm for r in per_m])
            err_m = np.array([r.error_energy_norm for r in per_m])
            rows.append(dict(
                system=name, d=d, defect=defect, family=fam, eta=eta, sizes=list(sizes), n_atoms_max=big.n_atoms,
                tail_radii=tail_r, tail=tail_v, tail_slope=_slope(tail_r, tail_v),
                tail_all_zero=bool(all(v == 0.0 for v in tail_v)),
                zero_beyond=next((rr for rr, v in zip(tail_r, tail_v)
                                  if all(w == 0.0 for w in tail_v[tail_r.index(rr):])), None),
                residual_spread=float((res_m.max() - res_m.min()) / res_m.max()),
                error_spread=float((err_m.max() - err_m.min()) / err_m.max()),
                residual=res_m.tolist(), error=err_m.tolist(),
                predicted_tail_bound=-d / 2,
            ))
            print(f"  B {name} {fam}: tail slope {rows[-1]['tail_slope']:.3f}", file=sys.stderr)
    return rows


def _fmt(x, spec=".3g"):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return format(x, spec)


def tables(a_rows, b_rows) -> str:
    out = ["### A. Linearity in η and effectivity (η = 1e-4, 1e-3, 1e-2)", "",
           "| system | d | defect | M (atoms) | family | slope ‖D(ū^ML−ū)‖ | slope residual | effectivity range | "
           "relative error at η=1e-2 | ε_FC at 1e-2 (eV/Å²) | stress error at 1e-2 (eV/atom) | status |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in a_rows:
        out.append(f"| {r['system']} | {r['d']} | {r['defect']} | {r['size']} ({r['n_atoms']}) | {r['family']} | "
                   f"{_fmt(r['error_slope'], '.4f')} | {_fmt(r['residual_slope'], '.4f')} | "
                   f"{_fmt(r['effectivity_min'])}–{_fmt(r['effectivity_max'])} | {_fmt(r['relative_error_at_1e_2'])} | "
                   f"{_fmt(r['eps_fc_at_1e_2'])} | {_fmt(r['stress_error_at_1e_2'])} | {r['status']} |")
    out += ["", "### B. Far field: force-error tail against R, and convergence in the test domain M "
            "(interstitial, η = 1e-3)", "",
            "| system | d | family | largest M (atoms) | tail slope (R ≥ 4 r_nn) | bound −d/2 | "
            "residual over M: (max − min)/max | error over M: (max − min)/max |",
            "|---|---|---|---|---|---|---|---|"]
    for r in b_rows:
        if not r["tail_radii"]:
            tail = "– (domain too small)"
        elif r["zero_beyond"] is not None and r["tail_all_zero"]:
            tail = "exactly 0"
        elif r["zero_beyond"] is not None:
            tail = f"exactly 0 for R ≥ {r['zero_beyond']:.2f} Å"
        else:
            tail = _fmt(r["tail_slope"], ".2f")
        out.append(f"| {r['system']} | {r['d']} | {r['family']} | {r['sizes'][-1]} ({r['n_atoms_max']}) | {tail} | "
                   f"{r['predicted_tail_bound']:.1f} | {_fmt(r['residual_spread'], '.2e')} | "
                   f"{_fmt(r['error_spread'], '.2e')} |")
    return "\n".join(out)


def figure(b_rows, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = sorted({r["system"] for r in b_rows})
    fig, axes = plt.subplots(1, len(systems), figsize=(5 * len(systems), 4))
    for ax, name in zip(np.atleast_1d(axes), systems):
        for r in (r for r in b_rows if r["system"] == name):
            x, y = np.array(r["tail_radii"]), np.array(r["tail"])
            ok = y > 0
            if ok.any():
                ax.loglog(x[ok], y[ok], "o-", label=f"{r['family']} (slope {r['tail_slope']:.2f})")
        d = next(r["d"] for r in b_rows if r["system"] == name)
        x0 = np.array(next(r["tail_radii"] for r in b_rows if r["system"] == name))
        if len(x0):
            ref = next(r for r in b_rows if r["system"] == name and r["family"] == "force_constants")
            if ref["tail"] and ref["tail"][0] > 0:
                ax.loglog(x0, ref["tail"][0] * (x0 / x0[0]) ** (-d / 2), "k--", label=f"bound R^(-{d}/2)")
        ax.set_xlabel("R (Å)")
        ax.set_ylabel("‖(f^ML − f)(ū)·1_{|ℓ|>R}‖₋₁ (eV/Å)")
        ax.set_title(f"{name}, d = {d}, interstitial, η = 1e-3")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=150)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes (about a minute)")
    p.add_argument("--json", help="write all rows as JSON to this file")
    p.add_argument("--figure", help="write the far-field figure (PNG) to this file")
    args = p.parse_args(argv)
    systems = QUICK if args.quick else SYSTEMS
    t0 = time.perf_counter()
    a_rows = part_a(systems)
    b_rows = part_b(systems)
    print(tables(a_rows, b_rows))
    print(f"\n(wall time {time.perf_counter() - t0:.0f} s; stencil: nearest-neighbour shell)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"A": a_rows, "B": b_rows}, fh, indent=1)
    if args.figure:
        figure(b_rows, args.figure)
    return 0


if __name__ == "__main__":
    sys.exit(main())
