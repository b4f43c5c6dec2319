"""The network model next to the linear one on the same features and data (docs/models.md §5).

    python studies/fit_mlp.py [--work DIR] [--max-atoms 17]     # ~5 min on 2 cores

Data: the training sets of studies/fit_convergence (builtin:W), restricted to cells of at
most ``--max-atoms`` atoms (default 17: N = 2) to keep the full-batch network training
short; the fit spec is studies/fit_convergence/fit.toml with degree 8, once with
kind = "ace" and once with kind = "mlp" (hidden 16, 16; 100 Adam epochs, 30 L-BFGS
iterations, 2 Hessian probes).
Writes docs/data/fit_mlp.json and prints the held-out RMSE (E, V meV/atom; F meV/Å;
H eV/Å²).
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
    ap.add_argument("--work", default=None, help="directory for the built training sets")
    ap.add_argument("--max-atoms", type=int, default=17, help="largest cell kept (atoms)")
    args = ap.parse_args()
    base = FitSpec.from_toml(HERE / "fit.toml")
    configs = []
    for ts in base.training_set:
        out = pathlib.Path(args.work) / (pathlib.Path(ts).stem + ".trainingset") if args.work else None
        configs += [c for c in load_training_set(HERE / ts, out_dir=out) if len(c) <= args.max_atoms]
    rows = {}
    for kind, extra in (("ace", {}), ("mlp", dict(hidden=(16, 16), epochs=100, lbfgs_iterations=30, hessian_probes=2))):
        spec = dataclasses.replace(base, model=dataclasses.replace(base.model, kind=kind, degree=8, **extra))
        t0 = time.perf_counter()
        rep = fit(configs, spec).report
        rows[kind] = {"n_params": rep["n_params"], "seconds": time.perf_counter() - t0,
                      "train": rep["train"]["all"], "validation": rep["validation"]["all"],
                      "solver": rep["solver"], "spec_hash": spec.content_hash()}
        v = {t: s["rmse"] for t, s in rows[kind]["validation"].items()}
        h = f"{v['H']:.4f} eV/Å²" if "H" in v else "n/a (no held-out force constants)"
        print(f"{kind:4s} params {rep['n_params']:5d}  val E {1e3 * v['E']:.3f} meV/atom  "
              f"F {1e3 * v['F']:.2f} meV/Å  V {1e3 * v['V']:.3f} meV/atom  H {h}  "
              f"({rows[kind]['seconds']:.0f} s)", flush=True)
    data = {"study": "fit_mlp", "n_configurations": len(configs), "max_atoms": args.max_atoms, "rows": rows,
            "units": {"E": "eV/atom", "F": "eV/Å", "V": "eV/atom", "H": "eV/Å²"}}
    (ROOT / "docs" / "data").mkdir(parents=True, exist_ok=True)
    (ROOT / "docs" / "data" / "fit_mlp.json").write_text(json.dumps(data, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
