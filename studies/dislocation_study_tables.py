"""Tables, fits and verdicts of docs/dislocations.md §7 from the raw rows of
studies/dislocation_studies.py (docs/data/dislocation_study_{radius,size,virial}.json for
the screw, docs/data/dislocation_study_{edge,mixed}_{radius,size,virial}.json for the
edge and mixed).

    python studies/dislocation_study_tables.py [--json]

Fits:

* log-log slope of q(R) (:func:`theory.fit_slope`, 95 % interval) judged
  (:func:`theory.judge`, d = 2) against ``far_field_force_constants_dislocation`` (R^0 ×
  log^{1/2}: the error does not converge with the domain) for the error and the residual;
* the sqrt(log R) law q(R)² = α + β ln R by ordinary least squares, β with its 95 %
  t-interval, for the error ‖D(ū^ML − ū)‖, the residual ‖f^ML(ū)‖₋₁ and the predictor
  difference ‖D(û^ML − û)‖ (the linear-elastic part that ΔC alone produces, (T22));
* β against the linear-elastic expectation: the local β between successive radii,
  (q(R_{i+1})² − q(R_i)²)/ln(R_{i+1}/R_i), of the error and of the predictor difference,
  and the law with its first correction, q² = α + β ln R + γ/R (least squares, β's 95 %
  t-interval), whose β is compared with the predictor difference's;
* the virial weight (the ``virial`` part): β from the two radii, (q(R₂)² − q(R₁)²)/ln(R₂/R₁),
  for the error and for the predictor difference;
* against the training size N (the ``size`` part): the log-log slope of the error over N,
  judged against ``training_size_{E,EF,EFV}`` at d = 2 (hypotheses).
"""

from __future__ import annotations

import argparse
import json
import math
import os

import numpy as np
from scipy import stats

from theory import fit_slope, judge

KINDS = ("screw", "edge", "mixed")
PARTS = ("radius", "size", "virial")
GPA = 160.21766208  # 1 eV/Å³ in GPa


def data_path(kind: str, part: str) -> str:
    """The raw rows of one kind and part: the screw's files carry no kind in their name."""
    return f"docs/data/dislocation_study_{part}.json" if kind == "screw" else \
        f"docs/data/dislocation_study_{kind}_{part}.json"


DATA = {(kind, part): data_path(kind, part) for kind in KINDS for part in PARTS}


def load(kind, part):
    path = DATA[kind, part]
    if not os.path.exists(path):
        return None
    return json.load(open(path, encoding="utf-8"))


def log_law(R, q, r_min: float = 0.0):
    """q² = α + β ln R on R ≥ r_min: β, its 95 % t-interval, α, the points used."""
    R, q = np.asarray(R, float), np.asarray(q, float)
    keep = R >= r_min
    x, y = np.log(R[keep]), q[keep] ** 2
    res = stats.linregress(x, y)
    t = stats.t.ppf(0.975, len(x) - 2)
    return dict(beta=res.slope, ci=(res.slope - t * res.stderr, res.slope + t * res.stderr), alpha=res.intercept,
                r_range=(float(R[keep].min()), float(R[keep].max())), n=int(keep.sum()))


def corrected_log_law(R, q, r_min: float = 0.0):
    """q² = α + β ln R + γ/R on R ≥ r_min (least squares): β, its 95 % t-interval, α, γ;
    None with fewer than four points (no degree of freedom left for an interval)."""
    R, q = np.asarray(R, float), np.asarray(q, float)
    keep = R >= r_min
    if keep.sum() < 4:
        return None
    X = np.column_stack([np.ones(keep.sum()), np.log(R[keep]), 1.0 / R[keep]])
    y = q[keep] ** 2
    coef = np.linalg.lstsq(X, y, rcond=None)[0]
    dof = int(keep.sum()) - 3
    s2 = float(np.sum((X @ coef - y) ** 2)) / dof
    se = math.sqrt(s2 * np.linalg.inv(X.T @ X)[1, 1])
    t = stats.t.ppf(0.975, dof)
    return dict(beta=float(coef[1]), ci=(float(coef[1] - t * se), float(coef[1] + t * se)), alpha=float(coef[0]),
                gamma=float(coef[2]), r_range=(float(R[keep].min()), float(R[keep].max())), n=int(keep.sum()))


def fmt(x, p=3):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return f"{x:.{p}g}"


def _models(rows):
    return list(dict.fromkeys(r["model_name"] for r in rows))


def radius_tables(data, r_min: float, out: dict) -> list[str]:
    lines = []
    rows = data["rows"]
    models = _models(rows)
    lines.append("| model | R (Å) | atoms | status | ‖D(ū^ML − ū)‖ (Å) | ‖f^ML(ū)‖₋₁ (eV/Å) | ‖D(û^ML − û)‖ (Å) "
                 "| c at ū^ML (eV/Å²) | η | ΔE_core (eV/Å) | CPU (s) |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for m in models:
        for r in (r for r in rows if r["model_name"] == m):
            lines.append(f"| {r['observations']} | {r['radius']:g} | {r['n_atoms']} | {r['status']} "
                         f"| {fmt(r.get('error_energy_norm'), 4)} | {fmt(r.get('residual_dual_norm'), 4)} "
                         f"| {fmt(r.get('predictor_difference_norm'), 3)} | {fmt(r.get('stability_model'))} "
                         f"| {fmt(r.get('effectivity'))} | {fmt(r.get('core_energy_error'))} | {r['cpu_time']:.1f} |")
    lines.append("")
    lines.append("| model | ΔC max (GPa) | ‖ΔC‖_F (GPa) | quantity | R fitted (Å) | log-log slope [95 % CI] "
                 "| verdict vs R^0 log^½ | β of q² = α + β ln R [95 % CI] |")
    lines.append("|---|---|---|---|---|---|---|---|")
    out["radius"] = []
    for m in models:
        rs = [r for r in rows if r["model_name"] == m and r["status"] == "converged"]
        R = np.array([r["radius"] for r in rs])
        dc, dcf = rs[0]["elastic_constant_error"] * GPA, rs[0]["delta_C_frobenius"] * GPA
        for key, label in (("error_energy_norm", "‖D(ū^ML − ū)‖ (Å)"), ("residual_dual_norm", "‖f^ML(ū)‖₋₁ (eV/Å)"),
                           ("predictor_difference_norm", "‖D(û^ML − û)‖ (Å)")):
            q = np.array([r[key] for r in rs], float)
            keep = R >= r_min
            fit = fit_slope(R[keep], q[keep])
            verdict = judge(fit, "far_field_force_constants_dislocation", 2).label \
                if key != "predictor_difference_norm" else "—"
            law = log_law(R, q, r_min)
            out["radius"].append(dict(model=m, quantity=key, fit=fit.as_dict(), verdict=verdict, log_law=law,
                                      delta_C_max_GPa=dc, delta_C_frobenius_GPa=dcf))
            lines.append(f"| {rs[0]['observations']} | {dc:.2f} | {dcf:.2f} | {label} | {law['r_range'][0]:g}–"
                         f"{law['r_range'][1]:g} | {fit.slope:.3f} [{fit.ci_low:.3f}, {fit.ci_high:.3f}] | {verdict} "
                         f"| {law['beta']:.3g} [{law['ci'][0]:.3g}, {law['ci'][1]:.3g}] |")
    return lines


def expectation_tables(radius_data: dict, r_min: float, out: dict) -> list[str]:
    """β of the error against the predictor difference's, for every kind and model of the
    radius parts: the global law, the law with a 1/R correction, and the local β."""
    lines = ["| dislocation | model | lattice stress error (GPa) | R fitted (Å) | β_err of α + β ln R [95 % CI] "
             "| β_err of α + β ln R + γ/R [95 % CI] | γ (Å³) | β_pred [95 % CI] | ratio, plain law | ratio, with γ/R |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    local = ["| dislocation | model | R_i–R_{i+1} (Å) | local β_err (Å²) | local β_pred (Å²) | ratio |",
             "|---|---|---|---|---|---|"]
    out["expectation"] = []
    for kind, data in radius_data.items():
        rows = data["rows"]
        for m in _models(rows):
            rs = [r for r in rows if r["model_name"] == m and r["status"] == "converged"]
            R = np.array([r["radius"] for r in rs])
            e = np.array([r["error_energy_norm"] for r in rs], float)
            d = np.array([r["predictor_difference_norm"] for r in rs], float)
            plain, pred = log_law(R, e, r_min), log_law(R, d, r_min)
            corr = corrected_log_law(R, e, r_min)
            stress = rs[0].get("lattice_stress_error")
            cb = "—" if corr is None else f"{corr['beta']:.3g} [{corr['ci'][0]:.3g}, {corr['ci'][1]:.3g}]"
            cg = "—" if corr is None else f"{corr['gamma']:.3g}"
            cr = "—" if corr is None else f"{corr['beta'] / pred['beta']:.2f}"
            lines.append(f"| {kind} | {rs[0]['observations']} | {fmt(None if stress is None else stress * GPA)} "
                         f"| {plain['r_range'][0]:g}–{plain['r_range'][1]:g} "
                         f"| {plain['beta']:.3g} [{plain['ci'][0]:.3g}, {plain['ci'][1]:.3g}] | {cb} | {cg} "
                         f"| {pred['beta']:.3g} [{pred['ci'][0]:.3g}, {pred['ci'][1]:.3g}] "
                         f"| {plain['beta'] / pred['beta']:.2f} | {cr} |")
            steps = []
            for i in range(len(R) - 1):
                if R[i] < r_min:
                    continue
                span = math.log(R[i + 1] / R[i])
                be, bp = (e[i + 1] ** 2 - e[i] ** 2) / span, (d[i + 1] ** 2 - d[i] ** 2) / span
                steps.append(dict(r=(float(R[i]), float(R[i + 1])), beta_error=be, beta_predictor=bp))
                local.append(f"| {kind} | {rs[0]['observations']} | {R[i]:g}–{R[i + 1]:g} | {be:.3g} | {bp:.3g} "
                             f"| {be / bp:.2f} |")
            out["expectation"].append(dict(kind=kind, model=m, plain=plain, corrected=corr, predictor=pred,
                                           local=steps, lattice_stress_error_GPa=None if stress is None else stress * GPA))
    return lines + [""] + local


def size_tables(data, out: dict) -> list[str]:
    rows = data["rows"]
    lines = ["| observations | N (quadrupole) | status | ‖D(ū^ML − ū)‖ (Å) | ‖f^ML(ū)‖₋₁ (eV/Å) | ΔC max (GPa) "
             "| c at ū^ML (eV/Å²) | η | ΔE_core (eV/Å) | train F rmse (eV/Å) | rank |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    if data["meta"].get("kind", "screw") != "screw":
        lines[0] = lines[0].replace("N (quadrupole)", "N (cylinder)")
    for r in rows:
        n = "none" if r["training_size"] is None else r["training_size"]
        rmse = (((r["fit_report"].get("train") or {}).get("all") or {}).get("F") or {}).get("rmse")
        lines.append(f"| {r['observations']} | {n} | {r['status']} | {fmt(r.get('error_energy_norm'), 4)} "
                     f"| {fmt(r.get('residual_dual_norm'), 4)} | {fmt((r.get('elastic_constant_error') or math.nan) * GPA)} "
                     f"| {fmt(r.get('stability_model'))} | {fmt(r.get('effectivity'))} "
                     f"| {fmt(r.get('core_energy_error'))} | {fmt(rmse)} "
                     f"| {r['fit_report']['solver'].get('effective_rank')} of {r['fit_report']['n_params']} |")
    lines += ["", "| observations | N fitted | log-log slope of the error over N [95 % CI] | rate | verdict |",
              "|---|---|---|---|---|"]
    out["size"] = []
    for obs in dict.fromkeys(r["observations"] for r in rows):
        rs = [r for r in rows if r["observations"] == obs and r["training_size"] is not None
              and r["status"] == "converged"]
        if len(rs) < 3:
            lines.append(f"| {obs} | {len(rs)} converged | — | training_size_{obs} | too few points |")
            continue
        N = np.array([r["training_size"] for r in rs], float)
        q = np.array([r["error_energy_norm"] for r in rs], float)
        fit = fit_slope(N, q)
        name = f"training_size_{obs}"
        v = judge(fit, name, 2).label
        out["size"].append(dict(observations=obs, fit=fit.as_dict(), verdict=v))
        lines.append(f"| {obs} | {N.min():g}–{N.max():g} | {fit.slope:.2f} [{fit.ci_low:.2f}, {fit.ci_high:.2f}] "
                     f"| {name} (d = 2) | {v} |")
    return lines


def virial_tables(data, out: dict) -> list[str]:
    rows = data["rows"]
    radii = sorted({r["radius"] for r in rows})
    head = " | ".join(f"‖D(ū^ML − ū)‖ R={R:g} (Å) | ‖f^ML(ū)‖₋₁ R={R:g} (eV/Å)" for R in radii)
    lines = [f"| virial weight | ΔC max (GPa) | ‖ΔC‖_F (GPa) | {head} | β_err (two R) | β_pred (two R) "
             f"| η R={radii[0]:g} | ΔE_core R={radii[0]:g} (eV/Å) | train V rmse (eV) |",
             "|" + "---|" * (7 + 2 * len(radii))]
    out["virial"] = []
    for w in dict.fromkeys(r["virial_weight"] for r in rows):
        rs = {r["radius"]: r for r in rows if r["virial_weight"] == w}
        first = rs[radii[0]]
        cells = " | ".join(f"{fmt(rs[R].get('error_energy_norm'), 4)} | {fmt(rs[R].get('residual_dual_norm'), 4)}"
                           for R in radii)
        rmse = (((first["fit_report"].get("train") or {}).get("all") or {}).get("V") or {}).get("rmse")
        lo, hi = rs[radii[0]], rs[radii[-1]]
        span = math.log(radii[-1] / radii[0])
        beta = (hi["error_energy_norm"] ** 2 - lo["error_energy_norm"] ** 2) / span
        beta_pred = (hi["predictor_difference_norm"] ** 2 - lo["predictor_difference_norm"] ** 2) / span
        lines.append(f"| {w:g} | {fmt(first['elastic_constant_error'] * GPA)} | {fmt(first['delta_C_frobenius'] * GPA)} "
                     f"| {cells} | {beta:.3g} | {beta_pred:.3g} | {fmt(first.get('effectivity'))} "
                     f"| {fmt(first.get('core_energy_error'))} | {fmt(rmse)} |")
        out["virial"].append(dict(weight=w, delta_C_max_GPa=first["elastic_constant_error"] * GPA, beta_error=beta,
                                  beta_predictor=beta_pred, errors={R: rs[R].get("error_energy_norm") for R in radii}))
    return lines


def effectivity_table(parts, out: list) -> list[str]:
    """``parts``: {(kind, part): data}."""
    lines = ["| dislocation | part | models | runs | converged | η min | η median | η max | bound holds (η ≤ 1) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for (kind, part), data in parts.items():
        if data is None:
            continue
        rows = data["rows"]
        eta = np.array([r["effectivity"] for r in rows if r.get("effectivity") is not None], float)
        conv = sum(r["status"] == "converged" for r in rows)
        models = len({r["model_name"] for r in rows})
        lines.append(f"| {kind} | {part} | {models} | {len(rows)} | {conv} | {fmt(eta.min()) if eta.size else '—'} "
                     f"| {fmt(float(np.median(eta))) if eta.size else '—'} | {fmt(eta.max()) if eta.size else '—'} "
                     f"| {int((eta <= 1).sum())} of {eta.size} |")
        out.append(dict(kind=kind, part=part, eta=eta.tolist(), converged=conv, runs=len(rows)))
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--r-min", type=float, default=20.0, help="smallest R of the radius fits, Å (below it the error still falls: the core part dominates)")
    args = ap.parse_args(argv)
    parts = {key: load(*key) for key in DATA}
    out: dict = {}
    lines = []
    for kind in KINDS:
        of = out if kind == "screw" else out.setdefault(kind, {})  # the screw's keys at the top, as before
        name = "" if kind == "screw" else f"{kind}: "
        if parts[kind, "radius"]:
            lines += [f"(a) {name}error against R", ""] + radius_tables(parts[kind, "radius"], args.r_min, of) + [""]
        if parts[kind, "size"]:
            lines += [f"(b) {name}error against N and the observation set", ""] + size_tables(parts[kind, "size"], of) + [""]
        if parts[kind, "virial"]:
            lines += [f"(d) {name}the virial weight", ""] + virial_tables(parts[kind, "virial"], of) + [""]
    out["effectivity"] = []
    lines += ["(c) effectivity", ""] + effectivity_table(parts, out["effectivity"]) + [""]
    radius_data = {k: parts[k, "radius"] for k in KINDS if parts[k, "radius"]}
    lines += ["β against the linear-elastic expectation", ""] + expectation_tables(radius_data, args.r_min, out)
    print(json.dumps(out, indent=1, default=float) if args.json else "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
