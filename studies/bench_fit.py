"""Benchmark (not a test): wall time of a linear fit of a few hundred configurations with
force constants (docs/models.md §6).

    python studies/bench_fit.py [--degree 10] [--work DIR]

Training data: studies/bench_fit/defects.toml (perfect, vacancy, dumbbell cells N = 2, 3,
E+F+V) and studies/bench_fit/force_constants.toml (perfect cells N = 2, 3 with full force
constants, rattled 0.05 Å or strained). Prints the counts, the time to assemble the
design matrix, to solve, and to evaluate the report, and writes docs/data/bench_fit.json.
Times are wall-clock seconds on whatever machine runs it; torch uses its default threads.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import torch

from genanalysis.fit import FitSpec, LossWeights, ModelSpec, fit
from genanalysis.trainingset import load_training_set

ROOT = pathlib.Path(__file__).resolve().parents[1]
HERE = ROOT / "studies" / "bench_fit"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--degree", type=int, default=10)
    ap.add_argument("--work", default=None, help="directory for the built training sets")
    args = ap.parse_args()
    t0 = time.perf_counter()
    configs = []
    for name in ("defects", "force_constants"):
        out = pathlib.Path(args.work) / f"bench_fit-{name}.trainingset" if args.work else None
        configs += load_training_set(HERE / f"{name}.toml", out_dir=out)
    t_data = time.perf_counter() - t0
    spec = FitSpec(training_set=["bench_fit/defects.toml", "bench_fit/force_constants.toml"],
                   model=ModelSpec(cutoff=6.0, degree=args.degree, l_max=3, r_in=2.0),
                   loss=LossWeights(E=1.0, F=1.0, V=1.0, H=0.01), validation_fraction=0.1)
    t1 = time.perf_counter()
    res = fit(configs, spec)
    t_fit = time.perf_counter() - t1
    rep = res.report
    n_h = sum(1 for c in configs if c.hessian is not None)
    out = {
        "n_configurations": len(configs), "n_with_force_constants": n_h,
        "n_atoms_total": sum(len(c) for c in configs), "degree": args.degree, "n_params": rep["n_params"],
        "design_rows": rep["solver"]["n_rows"], "rows_per_type": rep["solver"]["rows_per_type"],
        "seconds_training_set": t_data, "seconds_assembly_and_solve": rep["fit_seconds"],
        "seconds_design_assembly": rep["solver"]["assembly_seconds"],
        "seconds_total_fit_with_report": t_fit, "torch_threads": torch.get_num_threads(),
        "validation_rmse": {t: v["rmse"] for t, v in rep["validation"]["all"].items()},
    }
    print(json.dumps(out, indent=1))
    (ROOT / "docs" / "data").mkdir(parents=True, exist_ok=True)
    (ROOT / "docs" / "data" / "bench_fit.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
