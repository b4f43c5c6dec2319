"""Measured R-slopes of the reference dislocation calibration against the derived rates
of ``python -m theory --json`` (docs/dislocations.md §4.1), printed as a Markdown table.

    python studies/dislocation_rates.py [--json]

Reads the raw runs docs/data/dislocation_calibration.json (every kind, from the predictor)
and docs/data/dislocation_calibration_screw_from10.json, ..._from40.json (the screw with a
controlled core: every R started from the relaxed R_S = 10 or 40 Å cylinder). Each quantity
q(R) is differenced against the largest cylinder, |q(R) − q(R_max)|, and fitted on
R ≤ R_max/2 (nearer R_max the difference is biased low by the error of q(R_max) itself)
with :func:`theory.compare.fit_slope`; the verdict is :func:`theory.compare.judge` against
the named rate (an upper bound: a faster decay is consistent).
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from theory import fit_slope, judge
from theory.rates import RATES

SERIES = (
    ("docs/data/dislocation_calibration.json", "predictor"),
    ("docs/data/dislocation_calibration_screw_from10.json", "from R_S = 10"),
    ("docs/data/dislocation_calibration_screw_from40.json", "from R_S = 40"),
)
#: measured quantity -> (how it is read from a row, the rate it is held against)
QUANTITIES = (
    ("‖D(ū_R − ū_Rmax)‖, all sites (Å)", lambda r, big: r.get("geometry_error"), "cylinder_geometry_dislocation"),
    ("E_rel(R) − E_rel(R_max) (eV/Å)", lambda r, big: r["relaxation_energy"] - big["relaxation_energy"],
     "cylinder_energy_dislocation"),
    ("‖D(ū_R − ū_Rmax)‖, sites ρ < r_E (Å)", lambda r, big: r.get("geometry_error_inner"),
     "cylinder_core_dislocation"),
    ("|E_core(r_E; R) − E_core(r_E; R_max)| (eV/Å)",
     lambda r, big: abs(r["core_energy_rE"] - big["core_energy_rE"]), "cylinder_core_dislocation"),
)


def rows():
    out = []
    for path, start in SERIES:
        data = json.load(open(path, encoding="utf-8"))
        r_max = data["meta"]["r_max"]
        for kind in dict.fromkeys(r["kind"] for r in data["rows"]):
            if start == "predictor" and kind == "screw":
                continue  # two core structures along R: no rate (docs/dislocations.md §4)
            runs = [r for r in data["rows"] if r["kind"] == kind]
            big = next(r for r in runs if r["radius"] == r_max)
            used = [r for r in runs if r["radius"] <= r_max / 2]
            R = np.array([r["radius"] for r in used])
            for label, read, rate in QUANTITIES:
                y = np.array([read(r, big) for r in used], dtype=float)
                fit = fit_slope(R, y)
                v = judge(fit, rate, 2)
                out.append(dict(kind=kind, start=start, quantity=label, rate=rate, r_max=r_max,
                                radii=R.tolist(), values=y.tolist(), fit=fit.as_dict(), verdict=v.as_dict(),
                                predicted=RATES[rate].value(2), log_power=str(RATES[rate].log_power),
                                status=RATES[rate].status))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print the fits and verdicts as JSON")
    args = ap.parse_args(argv)
    out = rows()
    if args.json:
        print(json.dumps(out, indent=1, ensure_ascii=False))
        return 0
    print("| kind (start) | quantity | R fitted (Å) | slope [95 % CI] | rate (status) | predicted | verdict |")
    print("|---|---|---|---|---|---|---|")
    for o in out:
        f, v = o["fit"], o["verdict"]
        lp = "" if o["log_power"] == "0" else f" × log^{o['log_power']} R"
        print(f"| {o['kind']} ({o['start']}) | {o['quantity']} | {f['x_range_used'][0]:g}–{f['x_range_used'][1]:g} | "
              f"{f['slope']:.2f} [{f['ci_low']:.2f}, {f['ci_high']:.2f}] | {o['rate']} ({o['status']}) | "
              f"R^{o['predicted']:g}{lp} | {v['label']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
