"""Tables of docs/studies.md §11 (the training-size rate in the interpolation regime, d = 2)
from the per-task data of studies/rate_2d_pilot.toml.

    genanalysis run studies/rate_2d_pilot.toml --out results/rate_2d_pilot     # slow: ~20 min on 2 shared cores
    python studies/rate_2d.py --results results/rate_2d_pilot                  # exports docs/data/rate_2d/*.json, prints
    python studies/rate_2d.py                                                  # the same from docs/data/rate_2d/*.json

Per N (cells): the training force RMSE (eV/Å), ‖D(ū^ML − ū)‖ (Å), the residuals r_test and
r_train (eV/Å), the transfer terms t_H and t_far (eV/Å), the check ratio, the coverage
distance (Å); then log-log slopes against N (95 % intervals, theory.compare_bound against
the upper bounds −d/2, −d, −3d/2). Aggregation only: no physics is recomputed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import pathlib

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
DATA = ROOT / "docs" / "data" / "rate_2d"
KEYS = ("fit_rmse_F_train", "error_energy_norm", "residual_dual_norm", "train_residual_dual_norm",
        "transfer_hessian_term", "transfer_tail_term", "decomposition_ratio", "coverage_distance")


def _figures_module():
    spec = importlib.util.spec_from_file_location("pipeline_figures", ROOT / "studies" / "pipeline_figures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _f(v, spec=".2e"):
    return "—" if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) else format(v, spec)


def tables(out) -> str:
    from theory import compare_bound, fit_slope

    rows = sorted((r for r in out.rows if r.state == "done"), key=lambda r: (r.params["experiment"].get("fmax", 0),
                                                                              r.params["trainingset"]["size"]))
    lines = ["| fmax (eV/Å) | N | status | F RMSE train (eV/Å) | ‖D(ū^ML − ū)‖ (Å) | r_test (eV/Å) | r_train (eV/Å) | "
             "t_H (eV/Å) | t_far (eV/Å) | r_test/(r_train + t) | δ_cov (Å) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    series = {}
    for r in rows:
        m = r.metrics
        fmax = r.params["experiment"].get("fmax", 1e-8)
        lines.append(f"| {fmax:g} | {r.params['trainingset']['size']} | {m.get('status')} | "
                     + " | ".join(_f(m.get(k), ".2f" if k == "decomposition_ratio" else ".2e") for k in KEYS) + " |")
        if m.get("status") == "converged":
            for k in ("residual_dual_norm", "coverage_distance", "error_energy_norm"):
                v = m.get(k)
                if isinstance(v, float) and v > 0:
                    series.setdefault((fmax, k), []).append((r.params["trainingset"]["size"], v))
    fits = ["| fmax (eV/Å) | quantity | fit range | fitted slope | 95 % CI | n | predicted upper bound | verdict |",
            "|---|---|---|---|---|---|---|---|"]
    for (fmax, k), pts in sorted(series.items()):
        n, y = np.array(sorted(pts), float).T
        fit = fit_slope(n, y)
        for e in (-1.0, -2.0, -3.0):
            v = compare_bound(fit, e)
            fits.append(f"| {fmax:g} | {k} | {n.min():g}–{n.max():g} | {fit.slope:.2f} | "
                        f"[{fit.ci_low:.2f}, {fit.ci_high:.2f}] | {fit.n_points} | {e:g} | {v.label} |")
    return "\n".join(lines) + "\n\n" + "\n".join(fits)


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", action="append", default=[], help="a results directory (repeatable)")
    args = ap.parse_args(argv)
    mod = _figures_module()
    for res in args.results:
        out, _ = mod._load(pathlib.Path(res))
        mod.export_tasks(out, pathlib.Path(res).name, DATA)
    text = []
    for path in sorted(DATA.glob("*.json")):
        out, _ = mod.load_tasks(path)
        text.append(f"{path.stem}:\n\n" + tables(out))
    print("\n\n".join(text))
    return "\n\n".join(text)


if __name__ == "__main__":
    main()
