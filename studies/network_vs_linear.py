"""The network against the linear model on the same invariants and data (docs/models.md §5).

    python studies/network_vs_linear.py --quick        # minutes on a loaded 2-core machine
    python studies/network_vs_linear.py                # the longer schedule
    python studies/network_vs_linear.py --sets morse   # one set only

Data: studies/network_vs_linear/morse.toml (d = 2, triangular Morse, N = 4) and w.toml
(d = 3, bcc W, N = 2), 36 configurations each with E, F, V, 20 % held out per group. The
same features for both models (morse: cutoff 2.5 Å, D = 6, body order 3, l_max 2; W:
cutoff 5 Å, r_in 2 Å, same degree and orders) and loss (E = F = V = 1). Network: one
hidden layer of 8, Adam then L-BFGS, early stopping on the validation split, ``--seeds``
initialisations. Writes docs/data/network_vs_linear[_quick].json and prints the held-out
RMSE (E, V meV/atom; F meV/Å) and the training time (s).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

from genanalysis.fit import FitSpec, LossWeights, ModelSpec, fit
from genanalysis.trainingset import load_training_set

ROOT = pathlib.Path(__file__).resolve().parents[1]
HERE = ROOT / "studies" / "network_vs_linear"
FEATURES = {"morse": dict(cutoff=2.5, degree=6, body_order=3, l_max=2),
            "w": dict(cutoff=5.0, degree=6, body_order=3, l_max=2, r_in=2.0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short schedule (50 Adam + 300 L-BFGS, one seed)")
    ap.add_argument("--sets", nargs="+", default=["morse", "w"], choices=sorted(FEATURES))
    ap.add_argument("--seeds", type=int, default=None, help="network initialisations (default 1 quick, 3 full)")
    ap.add_argument("--work", default=str(ROOT / "results" / "network_vs_linear"),
                    help="directory for the built training sets (default results/network_vs_linear)")
    args = ap.parse_args()
    schedule = dict(epochs=50, lbfgs_iterations=300) if args.quick else dict(epochs=100, lbfgs_iterations=1500)
    seeds = args.seeds or (1 if args.quick else 3)
    rows = {}
    for name in args.sets:
        out = pathlib.Path(args.work) / f"{name}.trainingset"
        configs = load_training_set(HERE / f"{name}.toml", out_dir=out)
        for kind, extra in (("ace", {}), ("mlp", dict(hidden=(8,), seeds=seeds, validate_every=10, **schedule))):
            spec = FitSpec(training_set=f"{name}.toml", model=ModelSpec(kind=kind, **FEATURES[name], **extra),
                           loss=LossWeights(E=1.0, F=1.0, V=1.0), validation_fraction=0.2, seed=0)
            t0 = time.perf_counter()
            rep = fit(configs, spec).report
            row = {"n_params": rep["n_params"], "seconds": time.perf_counter() - t0,
                   "train": rep["train"]["all"], "validation": rep["validation"]["all"],
                   "solver": rep["solver"], "spec_hash": rep["spec_hash"], "n_configurations": len(configs)}
            rows[f"{name}/{kind}"] = row
            v = {t: 1e3 * s["rmse"] for t, s in row["validation"].items()}
            tr = 1e3 * row["train"]["F"]["rmse"]
            print(f"{name:5s} {kind:4s} params {rep['n_params']:4d}  held-out E {v['E']:.3f} meV/atom  "
                  f"F {v['F']:.2f} meV/Å (train {tr:.2f})  V {v['V']:.3f} meV/atom  {row['seconds']:.0f} s",
                  flush=True)
    data = {"study": "network_vs_linear", "quick": args.quick, "rows": rows,
            "units": {"E": "eV/atom", "F": "eV/Å", "V": "eV/atom", "seconds": "s"}}
    (ROOT / "docs" / "data").mkdir(parents=True, exist_ok=True)
    name = "network_vs_linear_quick.json" if args.quick else "network_vs_linear.json"
    (ROOT / "docs" / "data" / name).write_text(json.dumps(data, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
