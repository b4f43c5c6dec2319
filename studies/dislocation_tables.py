"""The tables of docs/dislocations.md §4, printed from the raw data in docs/data/
(dislocation_calibration.json, dislocation_lammps.json, dislocation_evaluate_fit.json) as Markdown.

    python studies/dislocation_tables.py
"""

from __future__ import annotations

import json
import math


def main() -> int:
    cal = json.load(open("docs/data/dislocation_calibration.json", encoding="utf-8"))
    m = cal["meta"]
    print(f"R_max = {m['r_max']:g} Å, r_E = {m['energy_radius']:g} Å, load average {m['load_average'][0]:.1f}\n")
    print("| kind | R (Å) | atoms | free | Newton its | H·v products | max force (eV/Å) | wall (s) | "
          "E_core(r_E) (eV/Å) | E_core(R) (eV/Å) | E_rel (eV/Å) | ‖D(ū_R − ū_Rmax)‖ (Å) | same, sites ρ < r_E (Å) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    rows = list(cal["rows"])
    for name in ("dislocation_calibration_screw_from10.json", "dislocation_calibration_screw_from40.json"):
        seeded = json.load(open("docs/data/" + name, encoding="utf-8"))
        rows += [dict(r, kind=f"{r['kind']} (from R_S = {seeded['meta']['start_from']:g})") for r in seeded["rows"]]
    for r in rows:
        g = r.get("geometry_error")
        gi = r.get("geometry_error_inner")
        fmt = (lambda v: "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3g}")
        print(f"| {r['kind']} | {r['radius']:g} | {r['n_atoms']} | {r['n_free']} | {r['iterations']} | "
              f"{r['hvp_evaluations']} | {r['max_force']:.1e} | {r['wall_time']:.2f} | {r['core_energy_rE']:.4f} | "
              f"{r['core_energy_R']:.4f} | {r['relaxation_energy']:.4f} | {fmt(g)} | {fmt(gi)} |")
    lmp = json.load(open("docs/data/dislocation_lammps.json", encoding="utf-8"))
    print("\n| kind | atoms (clamped) | E unrelaxed, ours − LAMMPS (eV) | E relaxed, ours (eV) | ours − LAMMPS (eV) | "
          "max position difference (Å) | tabulated − analytic, relaxed (eV) |")
    print("|---|---|---|---|---|---|---|")
    for r in lmp["rows"]:
        print(f"| {r['kind']} | {r['n_atoms']} ({r['n_clamped']}) | "
              f"{r['unrelaxed_energy_ours'] - r['unrelaxed_energy_lammps']:.1e} | {r['relaxed_energy_ours']:.6f} | "
              f"{r['relaxed_energy_difference']:.1e} | {r['max_position_difference']:.1e} | "
              f"{r['relaxed_energy_ours'] - r['relaxed_energy_analytic']:.1e} |")
    fit = json.load(open("docs/data/dislocation_evaluate_fit.json", encoding="utf-8"))
    print("\n| run | status | model its (max force eV/Å) | ‖D(ū^ML − ū)‖ (Å) | ‖f^ML(ū)‖₋₁ (eV/Å) | c ref / model at ū / "
          "model at ū^ML (eV/Å²) | bound (Å) | η | ΔE_core (eV/Å) | ΔC (GPa) | ε_FC (eV/Å²) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")

    def f(v, spec=".3g"):
        return "—" if v is None else format(v, spec)

    for name, r in fit["runs"].items():
        if name == "fit_report":
            continue
        mr = r.get("model_relaxation") or {}
        print(f"| {name} | {r['status']} | {mr.get('iterations')} ({f(mr.get('max_force'), '.1e')}) | "
              f"{f(r['error_energy_norm'])} | {f(r['residual_dual_norm'])} | {f(r['stability_reference'])} / "
              f"{f(r['stability_model_at_reference'])} / {f(r['stability_model'])} | {f(r['a_posteriori_bound'])} | "
              f"{f(r['effectivity'])} | {f(r['core_energy_error'])} | {f(r['elastic_constant_error_gpa'])} | "
              f"{f(r['force_constant_error'])} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
