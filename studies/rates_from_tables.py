"""Slopes and verdicts of the training-size studies recomputed from docs/data/studies.json.

    python studies/rates_from_tables.py

The studies' results databases are not kept; docs/data/studies.json holds their mean tables
(mean over seeds of ‖D(ū^ML − ū)‖ in Å, converged tasks only, three significant digits) and
the engine's fits as they were run. This script (1) fits those means again with the rate
declarations of the study specs as they are now (``fit_range`` excluding cells narrower
than 2·r_cut, ``floor``) through the engine's own fit and verdict code
(genanalysis.sweep.rates), and (2) reads the recorded fits again under the current verdict
rules of theory.compare (a decay faster than an upper bound is "faster (consistent)").
Means in a cell with failed tasks are over the converged tasks only, unlike the engine,
which averages every recorded error; such groups are marked. Slopes are dimensionless.
"""

from __future__ import annotations

import json
import math
import pathlib
import re
from collections import defaultdict

import numpy as np

from genanalysis.sweep import rates as R
from genanalysis.sweep.spec import load_study
from theory.compare import SlopeFit, compare_up_to

ROOT = pathlib.Path(__file__).resolve().parents[1]
NUM = re.compile(r"^([0-9.]+e[+-][0-9]+)")


def _means(name: str, table: str) -> dict:
    """{(defect, observations or fc_cells): {N: (mean, partial)}} from a rendered table."""
    lines = [ln for ln in table.splitlines() if ln.startswith("|") and not ln.startswith("|---")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    out = defaultdict(dict)
    for ln in lines[1:]:
        cells = [c.strip() for c in ln.strip("|").split("|")]
        row = dict(zip(head, cells))
        if name == "fc_vs_large_cells_2d":
            m = NUM.match(row["‖D(ū^ML − ū)‖ (Å)"])
            if m:
                bad = row["not converged"].split("/")[0] != "0"
                out[(row["defect"], ("fc_cells", int(row["fc_cells"])))][int(row["N"])] = (float(m.group(1)), bad)
            continue
        for obs in head[2:]:
            m = NUM.match(row[obs])
            if m:
                out[(row["defect"], ("observations", obs))][int(row["N"])] = (float(m.group(1)), "×" in row[obs])
    return out


def refit(name: str, report: dict) -> list[str]:
    study = load_study(ROOT / "studies" / f"{name}.toml")
    series = _means(name, report["table"])
    lines = [f"\n{name} — current specs on the recorded means\n",
             "| group | fit range | floor | fitted slope | 95 % CI | n | predicted | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    for rate in study.rates:
        where = {k.split(".")[-1]: v for k, v in rate.where}
        for (defect, (field, value)), pts in sorted(series.items()):
            if field in where and where[field] != value:
                continue
            if field == "fc_cells" and where:
                continue
            ns = sorted(pts)
            x = np.array(ns, float)
            floor = rate.floor if isinstance(rate.floor, float) else 0.0
            y = np.array([pts[n][0] for n in ns]) - floor
            fit = R.fit_slope(x, y, fit_range=rate.fit_range, confidence=rate.confidence)
            d = rate.d
            pred = R.predicted_exponent(rate.predicted, d)
            v, _ = R.verdict(fit, pred, tolerance=rate.tolerance, sense=rate.sense, name=rate.predicted, d=d)
            used = [n for n in ns if rate.fit_range[0] <= n <= rate.fit_range[1]]
            partial = any(pts[n][1] for n in used)
            fr = f"{used[0]}–{used[-1]}" if used else "—"
            s = "—" if not math.isfinite(fit.slope) else f"{fit.slope:.2f}"
            ci = "—" if not all(map(math.isfinite, fit.ci)) else f"[{fit.ci[0]:.2f}, {fit.ci[1]:.2f}]"
            label = "faster (consistent)" if v == "faster" else v
            lines.append(f"| {field}={value}, defect={defect}{' (converged only)' if partial else ''} | {fr} | "
                         f"{rate.floor or 'none'} | {s} | {ci} | {len(used)} | {pred:.2f} ({rate.predicted}) | {label} |")
    return lines


def reread(name: str, report: dict) -> list[str]:
    """The recorded fits under the current rules: only the verdicts can change."""
    lines = []
    for r in report.get("rates", []):
        if r["fitted_slope"] is None or None in r["ci"] or r["predicted_slope"] is None:
            continue
        lo, hi = r["ci"]
        fit = SlopeFit(r["fitted_slope"], math.nan, lo, hi, math.nan, r["n_points"], tuple(r["fit_range"]),
                       r["confidence"], r["n_points"] - 2, math.nan, False, ())
        new = compare_up_to(fit, r["predicted_slope"], tolerance=r["tolerance"])
        if new.value != r["verdict"]:
            group = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in r["group"].items())
            lines.append(f"| {name} | {group} | {r['fit_range'][0]:g}–{r['fit_range'][1]:g} | "
                         f"{r['fitted_slope']:.2f} [{lo:.2f}, {hi:.2f}] | {r['verdict']} | {new.label} |")
    return lines


def main() -> None:
    data = json.loads((ROOT / "docs" / "data" / "studies.json").read_text())
    changed = ["\nrecorded fits whose verdict the corrected rule changes\n",
               "| study | group | fit range | slope [95 % CI] | recorded verdict | current rule |", "|---|---|---|---|---|---|"]
    for name in ("training_size_2d", "training_size_3d", "training_size_3d_from_reference", "fc_vs_large_cells_2d"):
        if name not in data:
            continue
        print("\n".join(refit(name, data[name])))
        changed += reread(name, data[name])
    print("\n".join(changed))


if __name__ == "__main__":
    main()
