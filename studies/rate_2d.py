"""Tables of docs/studies.md §11 (the training-size rate in the interpolation regime, d = 2:
the pilot) and §12 (the study: vacancy and interstitial, EF / EF+Hlat / EFH, five seeds)
from the per-task data of studies/rate_2d_pilot.toml and studies/rate_2d_{vacancy,interstitial}.toml.

    genanalysis run studies/rate_2d_pilot.toml --out results/rate_2d_pilot     # slow: ~20 min on 2 shared cores
    python studies/rate_2d.py --results results/rate_2d_pilot                  # exports docs/data/rate_2d/*.json, prints
    python studies/rate_2d.py                                                  # §11 from docs/data/rate_2d/rate_2d_pilot*.json
    python studies/rate_2d.py --study                                          # §12 from docs/data/rate_2d/rate_2d_{vacancy,interstitial}.json
    python studies/rate_2d.py --study --dim 3                                  # §12d from docs/data/rate_3d/rate_3d_{vacancy,interstitial}{,_more,_mcheck}.json
    python studies/rate_2d.py --study --variant pair96                         # §12b's richer interstitial model, docs/data/rate_2d/rate_2d_interstitial_pair96.json

§12 per (set, N): the tasks converged, the training force RMSE (median and largest, eV/Å),
the error e(N) = ‖D(ū^ML − ū)‖ (median and range over seeds, Å), r_train, r_test and the
tail t_far beyond the training cell (eV/Å), the ratio r_test/(r_train + t) and the floor-subtracted e(N) − r_train/c (c the model's
stability constant at its equilibrium, eV/Å²); then per set the log-log slope of e(N) and of
e(N) − r_train/c over every converged seed (the positive values only), fitted on N ≥ 6 with a
95 % interval and judged as the upper bound "rate up to N^e" (theory.compare_up_to); and
the M-convergence check (rate_2d_{vacancy,interstitial}_mcheck: the same models at M′ > M).

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
#: the d = 3 study's data (studies/rate_3d_specs.py)
DATA3 = ROOT / "docs" / "data" / "rate_3d"
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


STUDY_DEFECTS = ("vacancy", "interstitial")
#: the richer-model variants of the study (studies/rate_2d_specs.py VARIANTS): suffix → (defect, heading)
STUDY_VARIANTS = {"pair96": ("interstitial", "interstitial, model with 96 pair radial functions (pair_degree = 96, 365 coefficients)")}
#: observation set of a task: the number of ``extra`` force-constant sets (studies/rate_2d_specs.py)
SET_NAMES = {0: "EF", 1: "EF+Hlat", 2: "EFH"}
#: the predicted upper-bound exponent in N per set, d = 2: −d/2, −d, −3d/2
PREDICTED = {"EF": -1.0, "EF+Hlat": -2.0, "EFH": -3.0}
#: fits use the cells at least 2·r_cut = 5 Å wide: N ≥ 6
N_MIN = 6
#: d = 3 (bcc W, r_cut = 4.6 Å, a = 3.165 Å): the bounds −d/2, −d, −3d/2, and the cells at
#: least 2·r_cut = 9.2 Å wide, N ≥ 3
PREDICTED_3D = {"EF": -1.5, "EF+Hlat": -3.0, "EFH": -4.5}
N_MIN_3D = 3


def _set(r) -> str:
    return SET_NAMES[len(r.params["trainingset"].get("extra") or [])]


def _floor_subtracted(m) -> float | None:
    """e(N) − r_train/c (Å): the error less the part the training residual explains."""
    e, r, c = m.get("error_energy_norm"), m.get("train_residual_dual_norm"), m.get("stability_model")
    if not all(isinstance(v, float) and math.isfinite(v) for v in (e, r, c)) or c <= 0:
        return None
    return e - r / c


def study_tables(out, defect: str, dim: int = 2, label: str | None = None) -> str:
    """§12's two tables of one test defect (module docstring): per (set, N), then the slopes.
    ``dim = 3`` (§12d): the d = 3 bounds and fit range, and columns r_train/c (Å) and the
    task's CPU seconds (the shared training set and fit not included). ``label``: the
    heading's name of the study (default ``defect``)."""
    from theory import compare_up_to, fit_slope

    predicted, n_min = (PREDICTED, N_MIN) if dim == 2 else (PREDICTED_3D, N_MIN_3D)

    done = [r for r in out.rows if r.state == "done"]
    fmax = {r.params["experiment"].get("fmax") for r in done}
    head = (f"{label or defect} (test domain M = {sorted({r.params['experiment']['size'] for r in done})[0]}, fmax = "
            f"{', '.join(f'{v:g}' for v in sorted(fmax))} eV/Å, seeds "
            f"{', '.join(map(str, sorted({r.params['seed'] for r in done})))}):")
    lines = ["| set | N | converged | F RMSE train median / max (eV/Å) | e(N) median [min, max] (Å) | "
             "r_train median (eV/Å) | r_test median (eV/Å) | t_far median (eV/Å) | r_test/(r_train + t) median | "
             "e − r_train/c median (Å), > 0 |" + (" r_train/c median (Å) | task CPU median (s) |" if dim == 3 else ""),
             "|---|---|---|---|---|---|---|---|---|---|" + ("---|---|" if dim == 3 else "")]
    series: dict = {}
    for obs in SET_NAMES.values():
        for n in sorted({r.params["trainingset"]["size"] for r in done}):
            rs = [r for r in done if _set(r) == obs and r.params["trainingset"]["size"] == n]
            if not rs:
                continue
            conv = [r.metrics for r in rs if r.metrics.get("status") == "converged"]
            rmse = [m["fit_rmse_F_train"] for m in conv if isinstance(m.get("fit_rmse_F_train"), float)]
            err = [m["error_energy_norm"] for m in conv if isinstance(m.get("error_energy_norm"), float)]
            fs = [v for v in map(_floor_subtracted, conv) if v is not None]

            def med(key):
                return float(np.median([m[key] for m in conv])) if conv else math.nan

            e_txt = (f"{np.median(err):.2e} [{min(err):.2e}, {max(err):.2e}]" if err else "—")
            f_txt = (f"{np.median(fs):.2e}, {sum(v > 0 for v in fs)}/{len(fs)}" if fs else "—")
            rc = [m["train_residual_dual_norm"] / m["stability_model"] for m in conv
                  if _floor_subtracted(m) is not None]
            cpu = [r.cpu_s for r in rs if isinstance(r.cpu_s, float)]
            rc_txt = (f" {_f(float(np.median(rc)) if rc else None)} | {_f(float(np.median(cpu)) if cpu else None, '.0f')} |"
                      if dim == 3 else "")
            lines.append(f"| {obs} | {n} | {len(conv)}/{len(rs)} | "
                         f"{_f(float(np.median(rmse)) if rmse else None)} / {_f(max(rmse) if rmse else None)} | "
                         f"{e_txt} | {_f(med('train_residual_dual_norm'))} | {_f(med('residual_dual_norm'))} | "
                         f"{_f(med('transfer_tail_term'))} | "
                         f"{_f(med('decomposition_ratio'), '.2f')} | {f_txt} |" + rc_txt)
            if n >= n_min:
                series.setdefault((obs, "e(N)"), []).extend((n, v) for v in err if v > 0)
                series.setdefault((obs, "e(N) − r_train/c"), []).extend((n, v) for v in fs if v > 0)
    fits = ["| set | quantity | fit range N | points | fitted slope | 95 % CI | predicted upper bound | floor | "
            "verdict |", "|---|---|---|---|---|---|---|---|---|"]
    for obs in SET_NAMES.values():
        for q in ("e(N)", "e(N) − r_train/c"):
            pts = series.get((obs, q), [])
            floor = "none subtracted" if q == "e(N)" else "r_train/c per task"
            ns = sorted({n for n, _ in pts})
            if len(ns) < 2:
                fits.append(f"| {obs} | {q} | {'–'.join(map(str, ns[:1])) or '—'} | {len(pts)} | — | — | "
                            f"{predicted[obs]:g} | {floor} | inconclusive |")
                continue
            n, y = np.array(pts, float).T
            fit = fit_slope(n, y)
            v = compare_up_to(fit, predicted[obs])
            fits.append(f"| {obs} | {q} | {ns[0]}–{ns[-1]} | {len(pts)} | {fit.slope:.2f} | "
                        f"[{fit.ci_low:.2f}, {fit.ci_high:.2f}] | {predicted[obs]:g} | {floor} | {v.label} |")
    return head + "\n\n" + "\n".join(lines) + "\n\n" + "\n".join(fits)


def check_table(out, defect: str) -> str:
    """The M-convergence check of one test defect (studies/rate_2d_{defect}_mcheck.toml): per
    (set, N, seed) the error at M and at M′ (Å) and |e(M′) − e(M)|/e(M′), r_test at M′ (eV/Å)."""
    lines = ["| defect | set | N | seed | status M / M′ | e(M) (Å) | e(M′) (Å) | relative change of e, M → M′ | "
             "r_test(M′) (eV/Å) |", "|---|---|---|---|---|---|---|---|---|"]
    done = sorted((r for r in out.rows if r.state == "done"),
                  key=lambda r: (len(r.params["trainingset"].get("extra") or []), r.params["trainingset"]["size"],
                                 r.params["seed"]))
    for r in done:
        m, c = r.metrics, r.metrics.get("convergence") or {}
        lines.append(f"| {defect} | {_set(r)} | {r.params['trainingset']['size']} | {r.params['seed']} | "
                     f"{m.get('status')} / {c.get('status', '—')} (M′ = {c.get('size', '—')}) | "
                     f"{_f(m.get('error_energy_norm'))} | {_f(c.get('error_energy_norm'))} | "
                     f"{_f(c.get('error_energy_norm_relative_change'))} | {_f(c.get('residual_dual_norm'))} |")
    return "\n".join(lines)


def _joined(mod, paths):
    """One study's tasks from several exported runs of it (the d = 3 seeds 0, 1 and the
    further seeds 2–4 are separate specs, ``rate_3d_{defect}`` and ``rate_3d_{defect}_more``):
    the first file's output with every existing file's rows. A task present twice (the same
    content hash) is an error, not counted twice."""
    out = None
    for path in paths:
        if not path.is_file():
            continue
        o = mod.load_tasks(path)[0]
        if out is None:
            out = o
            continue
        seen = {r.hash for r in out.rows}
        dup = seen & {r.hash for r in o.rows}
        if dup:
            raise ValueError(f"{path}: {len(dup)} task(s) already in {paths[0]}")
        out.rows.extend(o.rows)
    return out


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", action="append", default=[], help="a results directory (repeatable)")
    ap.add_argument("--study", action="store_true", help="print §12's tables (the study) instead of §11's (the pilot)")
    ap.add_argument("--dim", type=int, choices=(2, 3), default=2, help="with --study: 3 prints §12d (bcc W)")
    ap.add_argument("--variant", choices=sorted(STUDY_VARIANTS),
                    help="with --study (d = 2): print the tables of this richer-model variant instead")
    args = ap.parse_args(argv)
    mod = _figures_module()
    for res in args.results:
        out, _ = mod._load(pathlib.Path(res))
        mod.export_tasks(out, pathlib.Path(res).name, DATA3 if args.dim == 3 else DATA)
    text = []
    if args.variant is not None:
        if not args.study or args.dim != 2:
            ap.error(f"--variant {args.variant} goes with --study and --dim 2")
        defect, label = STUDY_VARIANTS[args.variant]
        out, _ = mod.load_tasks(DATA / f"rate_2d_{defect}_{args.variant}.json")
        text = study_tables(out, defect, label=label)
        print(text)
        return text
    if args.study and args.dim == 3:
        text = [study_tables(_joined(mod, [DATA3 / f"rate_3d_{d}.json", DATA3 / f"rate_3d_{d}_more.json"]), d, dim=3)
                for d in STUDY_DEFECTS if (DATA3 / f"rate_3d_{d}.json").is_file()]
        checks = [check_table(mod.load_tasks(DATA3 / f"rate_3d_{d}_mcheck.json")[0], d) for d in STUDY_DEFECTS
                  if (DATA3 / f"rate_3d_{d}_mcheck.json").is_file()]
        if checks:
            text.append("M-convergence check:\n\n" + checks[0] + "".join("\n" + c.split("\n", 2)[2] for c in checks[1:]))
        print("\n\n".join(text))
        return "\n\n".join(text)
    if args.study:
        text = [study_tables(mod.load_tasks(DATA / f"rate_2d_{d}.json")[0], d) for d in STUDY_DEFECTS
                if (DATA / f"rate_2d_{d}.json").is_file()]
        checks = [check_table(mod.load_tasks(DATA / f"rate_2d_{d}_mcheck.json")[0], d) for d in STUDY_DEFECTS
                  if (DATA / f"rate_2d_{d}_mcheck.json").is_file()]
        if checks:  # one table: the header once
            text.append("M-convergence check:\n\n" + checks[0] + "".join("\n" + c.split("\n", 2)[2] for c in checks[1:]))
        print("\n\n".join(text))
        return "\n\n".join(text)
    for path in sorted(DATA.glob("rate_2d_pilot*.json")):
        out, _ = mod.load_tasks(path)
        text.append(f"{path.stem}:\n\n" + tables(out))
    print("\n\n".join(text))
    return "\n\n".join(text)


if __name__ == "__main__":
    main()
