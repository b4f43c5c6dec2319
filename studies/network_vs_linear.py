"""The network against the linear model on the same invariants and data (docs/models.md §5).

    python studies/network_vs_linear.py --quick        # minutes on a loaded 2-core machine
    python studies/network_vs_linear.py                # the longer schedule
    python studies/network_vs_linear.py --sets morse   # one set only
    python studies/network_vs_linear.py --widths 8 16 --seeds 2   # docs/models.md §5

Data: studies/network_vs_linear/morse.toml (d = 2, triangular Morse, N = 4) and w.toml
(d = 3, bcc W, N = 2), 36 configurations each with E, F, V, 20 % held out per group. The
same features for both models (morse: cutoff 2.5 Å, D = 6, body order 3, l_max 2; W:
cutoff 5 Å, r_in 2 Å, same degree and orders) and loss (E = F = V = 1). Networks: one
hidden layer of each of ``--widths``, Adam then L-BFGS in whitened feature coordinates,
early stopping on the validation split (patience 30 checks of 10 iterations), ``--seeds``
initialisations; and, for the diagnosis, the first width trained without whitening.
Torch runs on one thread. Writes docs/data/network_vs_linear[_quick].json and prints the
held-out RMSE (E, V meV/atom; F meV/Å), the wall-clock and CPU time of each fit (s).
"""

from __future__ import annotations

import argparse
import functools
import json
import pathlib
import sys
import time

import torch

import genanalysis.fitting.network as network
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
    ap.add_argument("--widths", type=int, nargs="+", default=[8, 16], help="hidden-layer widths (default 8 16)")
    ap.add_argument("--work", default=str(ROOT / "results" / "network_vs_linear"),
                    help="directory for the built training sets (default results/network_vs_linear)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    schedule = dict(epochs=50, lbfgs_iterations=300) if args.quick else dict(epochs=100, lbfgs_iterations=3000)
    seeds = args.seeds or (1 if args.quick else 3)
    train = network.train_network
    rows = {}
    for name in args.sets:
        out = pathlib.Path(args.work) / f"{name}.trainingset"
        configs = load_training_set(HERE / f"{name}.toml", out_dir=out)
        runs = [("ace", "ace", {}, True)]
        runs += [(f"mlp{w}", "mlp", dict(hidden=(w,), seeds=seeds, validate_every=10, patience=30, **schedule), True)
                 for w in args.widths]
        runs.append((f"mlp{args.widths[0]}-unwhitened", "mlp", runs[1][2], False))
        for label, kind, extra, whiten in runs:
            network.train_network = train if whiten else functools.partial(train, whiten=False)
            spec = FitSpec(training_set=f"{name}.toml", model=ModelSpec(kind=kind, **FEATURES[name], **extra),
                           loss=LossWeights(E=1.0, F=1.0, V=1.0), validation_fraction=0.2, seed=0)
            t0, c0 = time.perf_counter(), time.process_time()
            rep = fit(configs, spec).report
            network.train_network = train
            row = {"n_params": rep["n_params"], "seconds": time.perf_counter() - t0,
                   "cpu_seconds": time.process_time() - c0, "whitened": whiten, "model": label,
                   "train": rep["train"]["all"], "validation": rep["validation"]["all"],
                   "solver": rep["solver"], "spec_hash": rep["spec_hash"], "n_configurations": len(configs)}
            rows[f"{name}/{label}"] = row
            v = {t: 1e3 * s["rmse"] for t, s in row["validation"].items()}
            tr = 1e3 * row["train"]["F"]["rmse"]
            print(f"{name:5s} {label:16s} params {rep['n_params']:4d}  held-out E {v['E']:.3f} meV/atom  "
                  f"F {v['F']:.2f} meV/Å (train {tr:.2f})  V {v['V']:.3f} meV/atom  {row['seconds']:.0f} s (CPU {row['cpu_seconds']:.0f} s)",
                  flush=True)
    data = {"study": "network_vs_linear", "quick": args.quick, "rows": rows, "command": " ".join(sys.argv[1:]),
            "units": {"E": "eV/atom", "F": "eV/Å", "V": "eV/atom", "seconds": "s"}}
    (ROOT / "docs" / "data").mkdir(parents=True, exist_ok=True)
    name = "network_vs_linear_quick.json" if args.quick else "network_vs_linear.json"
    (ROOT / "docs" / "data" / name).write_text(json.dumps(data, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
