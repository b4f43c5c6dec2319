"""Fit error against model size for the linear ACE-style model on bcc W (docs/models.md §5).

    python studies/fit_convergence.py            # degrees 4…14, ~15 min on 2 cores
    python studies/fit_convergence.py --quick    # degrees 4…8, ~3 min
    python studies/fit_convergence.py --plot-only  # redraw the figure from the JSON

Training data: studies/fit_convergence/defects.toml (perfect, vacancy, <110> dumbbell
cells N = 2, 3, 4 of builtin:W, rattled 0.05 Å and strained 1 %, E+F+V) and
force_constants.toml (perfect cells N = 2, 3 with force constants); the fit spec is
studies/fit_convergence/fit.toml with ``degree`` swept. 20 % of every group is held out.
Writes docs/data/fit_convergence.json and docs/figures/fit_convergence.png and prints the
table quoted in docs/models.md. Units: E and V meV/atom, F meV/Å, H eV/Å².
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import time

from genanalysis.fit import FitSpec, fit
from genanalysis.trainingset import load_training_set

ROOT = pathlib.Path(__file__).resolve().parents[1]
HERE = ROOT / "studies" / "fit_convergence"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="degrees 4…8 only")
    ap.add_argument("--work", default=None, help="directory for the built training sets (default: next to the specs)")
    ap.add_argument("--plot-only", action="store_true", help="redraw the figure from docs/data/fit_convergence.json")
    args = ap.parse_args()
    if args.plot_only:
        rows = json.loads((ROOT / "docs" / "data" / "fit_convergence.json").read_text())["rows"]
        _plot(rows, ROOT / "docs" / "figures" / "fit_convergence.png")
        return
    degrees = [4, 5, 6, 8] if args.quick else [4, 5, 6, 8, 10, 12, 14]
    base = FitSpec.from_toml(HERE / "fit.toml")
    configs = []
    for ts in base.training_set:
        out = pathlib.Path(args.work) / (pathlib.Path(ts).stem + ".trainingset") if args.work else None
        configs += load_training_set(HERE / ts, out_dir=out)
    rows = []
    for deg in degrees:
        spec = dataclasses.replace(base, model=dataclasses.replace(base.model, degree=deg))
        t0 = time.perf_counter()
        res = fit(configs, spec)
        rep = res.report
        row = {"degree": deg, "n_params": rep["n_params"], "seconds": time.perf_counter() - t0,
               "condition_number": rep["solver"]["condition_number"],
               "effective_rank": rep["solver"]["effective_rank"],
               "train": rep["train"]["all"], "validation": rep["validation"]["all"],
               "validation_by_group": rep["validation"], "spec_hash": spec.content_hash()}
        rows.append(row)
        v = dict(row["validation"])
        v.setdefault("H", {"rmse": float("nan")})
        print(f"degree {deg:2d}  params {row['n_params']:4d}  cond {row['condition_number']:.2e}  "
              f"val E {1e3 * v['E']['rmse']:.3f} meV/atom  F {1e3 * v['F']['rmse']:.2f} meV/Å  "
              f"V {1e3 * v['V']['rmse']:.3f} meV/atom  H {v['H']['rmse']:.4f} eV/Å²  ({row['seconds']:.0f} s)",
              flush=True)
    data = {"study": "fit_convergence", "fit_spec": base.to_dict(), "n_configurations": len(configs),
            "units": {"E": "eV/atom", "F": "eV/Å", "V": "eV/atom", "H": "eV/Å²"}, "rows": rows}
    (ROOT / "docs" / "data").mkdir(parents=True, exist_ok=True)
    (ROOT / "docs" / "data" / "fit_convergence.json").write_text(json.dumps(data, indent=1) + "\n")
    _plot(rows, ROOT / "docs" / "figures" / "fit_convergence.png")
    print("| degree | parameters | condition number | E val (meV/atom) | F val (meV/Å) | V val (meV/atom) "
          "| H val (eV/Å²) | F train (meV/Å) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        v, t = dict(r["validation"]), r["train"]
        v.setdefault("H", {"rmse": float("nan")})
        print(f"| {r['degree']} | {r['n_params']} | {r['condition_number']:.1e} | {1e3 * v['E']['rmse']:.3f} | "
              f"{1e3 * v['F']['rmse']:.2f} | {1e3 * v['V']['rmse']:.3f} | {v['H']['rmse']:.4f} | "
              f"{1e3 * t['F']['rmse']:.2f} |")


def _plot(rows, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    p = [r["n_params"] for r in rows]
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for key, scale, label in (("E", 1e3, "energy (meV/atom)"), ("F", 1e3, "forces (meV/Å)"),
                              ("V", 1e3, "virial (meV/atom)"), ("H", 1e3, "force constants (meV/Å²)")):
        ax.loglog(p, [scale * r["validation"][key]["rmse"] for r in rows], "o-", label=label)
    ax.axhline(10.0, color="grey", ls=":", lw=1)
    ax.set_xticks(p, [f"{n}\n(D={r['degree']})" for n, r in zip(p, rows)], fontsize=7)
    ax.minorticks_off()
    ax.set_xlabel("number of parameters (total degree D)")
    ax.set_ylabel("held-out RMSE")
    ax.set_title("linear ACE-style model, builtin:W, N ≤ 4, rattle 0.05 Å")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
