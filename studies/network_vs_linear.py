"""The network against the linear model on the same invariants and data (docs/studies.md §7.1).

    python studies/network_vs_linear.py --sets morse --widths 8 16 --seeds 3 --out docs/data/network_vs_linear_morse.json
    python studies/network_vs_linear.py --sets w --widths 8 16 --seeds 3 --out docs/data/network_vs_linear_w.json
    python studies/network_vs_linear.py --sets morse w --widths --linear-degrees 8 10 \
        --out docs/data/network_vs_linear_linear_sizes.json          # larger linear models only
    python studies/network_vs_linear.py --sets morse --widths 8 --degree 10 --linear-degrees 10 --seeds 3 \
        --no-unwhitened --linear-skip --epochs 0 --out docs/data/network_vs_linear_morse_d10_skip.json   # linear + network
    python studies/network_vs_linear.py --table docs/data/network_vs_linear_{morse,w,linear_sizes}.json
    python studies/network_vs_linear.py --quick                        # minutes: 50 Adam + 300 L-BFGS, one seed

Data: studies/network_vs_linear/morse.toml (d = 2, triangular Morse, N = 4) and w.toml
(d = 3, bcc W, N = 2), 36 configurations each with E, F, V, 20 % held out per group. The
same features for both models (morse: cutoff 2.5 Å, D = 6, body order 3, l_max 2; W:
cutoff 5 Å, r_in 2 Å, same degree and orders) and loss (E = F = V = 1). Networks: one
hidden layer of each of ``--widths``, Adam then L-BFGS in whitened feature coordinates,
early stopping on the validation split (patience 30 checks of 10 iterations), ``--seeds``
initialisations; and, for the diagnosis, the first width trained without whitening
(``--no-unwhitened`` skips it). ``--linear-degrees`` sets the linear models' degrees,
``--degree`` the networks' invariants; ``--linear-skip`` gives the networks a linear
readout in parallel, started at the linear fit (``model.linear_skip``, docs/models.md §3;
rows ``-skip``); ``--epochs`` the Adam epochs before L-BFGS; ``--ridge`` one or more
weight decays λ (a network row per value, ``-ridgeλ``; the linear models are fitted
without). Torch runs on one thread. Writes ``--out`` (default
docs/data/network_vs_linear[_quick].json: per model the held-out and training RMSE, the
solver report with every initialisation's validation loss, the wall-clock and CPU time of
the fit in s, and the command) and prints the held-out RMSE (E, V meV/atom; F meV/Å).
"""

from __future__ import annotations

import argparse
import functools
import json
import pathlib
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
    ap.add_argument("--widths", type=int, nargs="*", default=[8, 16],
                    help="hidden-layer widths (default 8 16; none: linear models only)")
    ap.add_argument("--linear-degrees", type=int, nargs="+", default=[6],
                    help="degrees of the linear models (default 6, the networks' invariants)")
    ap.add_argument("--degree", type=int, default=None,
                    help="degree D of the networks' invariants (default 6, the features of the docstring)")
    ap.add_argument("--no-unwhitened", action="store_true", help="skip the unwhitened diagnosis run")
    ap.add_argument("--linear-skip", action="store_true",
                    help="networks with a linear readout in parallel, started at the linear fit (rows '-skip')")
    ap.add_argument("--epochs", type=int, default=None, help="Adam epochs before L-BFGS (default 50 quick, 100 full)")
    ap.add_argument("--ridge", type=float, nargs="+", default=[0.0],
                    help="the networks' weight decay: the loss's ridge λ, one network row per value (default 0; "
                         "the linear models are fitted without)")
    ap.add_argument("--table", nargs="+", default=None, metavar="FILE",
                    help="print the comparison table of these data files (no fitting)")
    ap.add_argument("--lbfgs", type=int, default=None, help="L-BFGS iterations (default 300 quick, 3000 full)")
    ap.add_argument("--out", default=None,
                    help="data file (default docs/data/network_vs_linear[_quick].json)")
    ap.add_argument("--work", default=str(ROOT / "results" / "network_vs_linear"),
                    help="directory for the built training sets (default results/network_vs_linear)")
    args = ap.parse_args()
    if args.table:
        print(table([json.loads(pathlib.Path(f).read_text()) for f in args.table]))
        return
    torch.set_num_threads(1)
    schedule = dict(epochs=50, lbfgs_iterations=300) if args.quick else dict(epochs=100, lbfgs_iterations=3000)
    if args.lbfgs is not None:
        schedule["lbfgs_iterations"] = args.lbfgs
    if args.epochs is not None:
        schedule["epochs"] = args.epochs
    seeds = args.seeds or (1 if args.quick else 3)
    train = network.train_network
    rows = {}
    for name in args.sets:
        out = pathlib.Path(args.work) / f"{name}.trainingset"
        configs = load_training_set(HERE / f"{name}.toml", out_dir=out)
        deg = args.degree or FEATURES[name]["degree"]
        tag = (("" if deg == FEATURES[name]["degree"] else f"-D{deg}") + ("-skip" if args.linear_skip else "")
               + (f"-lbfgs{args.lbfgs}" if args.lbfgs not in (None, 3000) and not args.quick else ""))
        runs = [(_linear_label(name, d), "ace", dict(degree=d), True, 0.0) for d in args.linear_degrees]
        nets = [(f"mlp{w}{tag}" + (f"-ridge{lam:g}" if lam else ""), "mlp",
                 dict(hidden=(w,), degree=deg, seeds=seeds, validate_every=10, patience=30,
                      linear_skip=args.linear_skip, **schedule), True, lam)
                for w in args.widths for lam in args.ridge]
        runs += nets
        if nets and not args.no_unwhitened:
            runs.append((f"mlp{args.widths[0]}-unwhitened", "mlp", nets[0][2], False, nets[0][4]))
        for label, kind, extra, whiten, lam in runs:
            network.train_network = train if whiten else functools.partial(train, whiten=False)
            spec = FitSpec(training_set=f"{name}.toml", model=ModelSpec(kind=kind, **{**FEATURES[name], **extra}),
                           loss=LossWeights(E=1.0, F=1.0, V=1.0, ridge=lam), validation_fraction=0.2, seed=0)
            t0, c0 = time.perf_counter(), time.process_time()
            rep = fit(configs, spec).report
            network.train_network = train
            row = {"degree": spec.model.degree, "n_params": rep["n_params"], "seconds": time.perf_counter() - t0,
                   "linear_skip": spec.model.linear_skip, "ridge": lam,
                   "cpu_seconds": time.process_time() - c0, "whitened": whiten, "model": label,
                   "train": rep["train"]["all"], "validation": rep["validation"]["all"],
                   "solver": rep["solver"], "spec_hash": rep["spec_hash"], "n_configurations": len(configs)}
            rows[f"{name}/{label}"] = row
            v = {t: 1e3 * s["rmse"] for t, s in row["validation"].items()}
            tr = 1e3 * row["train"]["F"]["rmse"]
            print(f"{name:5s} {label:16s} params {rep['n_params']:4d}  held-out E {v['E']:.3f} meV/atom  "
                  f"F {v['F']:.2f} meV/Å (train {tr:.2f})  V {v['V']:.3f} meV/atom  {row['seconds']:.0f} s (CPU {row['cpu_seconds']:.0f} s)",
                  flush=True)
    # the options that decide the numbers (no paths: --work and --out only say where files go)
    command = ("python studies/network_vs_linear.py" + (" --quick" if args.quick else "")
               + f" --sets {' '.join(args.sets)} --widths {' '.join(map(str, args.widths))}"
               + f" --seeds {seeds} --lbfgs {schedule['lbfgs_iterations']}"
               + f" --linear-degrees {' '.join(map(str, args.linear_degrees))}"
               + (f" --degree {args.degree}" if args.degree else "") + (" --no-unwhitened" if args.no_unwhitened else "")
               + (f" --epochs {schedule['epochs']}" if args.epochs is not None else "")
               + (" --linear-skip" if args.linear_skip else "") + (f" --ridge {' '.join(f'{v:g}' for v in args.ridge)}" if args.ridge != [0.0] else ""))
    data = {"study": "network_vs_linear", "schedule": schedule, "seeds": seeds, "quick": args.quick, "rows": rows, "command": command,
            "units": {"E": "eV/atom", "F": "eV/Å", "V": "eV/atom", "seconds": "s"}}
    name = "network_vs_linear_quick.json" if args.quick else "network_vs_linear.json"
    out = pathlib.Path(args.out) if args.out else ROOT / "docs" / "data" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1, default=float) + "\n")


def _linear_label(name: str, degree: int) -> str:
    """The row label of the linear model of ``degree`` on set ``name``: ``ace`` on the
    default invariants, ``ace-DN`` otherwise."""
    return "ace" if degree == FEATURES[name]["degree"] else f"ace-D{degree}"


def table(docs: list[dict]) -> str:
    """Markdown: one row per (set, model) of the data files, held-out E, F, V and training F
    RMSE (meV/atom, meV/Å), the held-out F RMSE over that of the linear model on the same
    invariants (degree D) and set,
    the validation losses of the network's initialisations (best / worst) and the fit's
    wall-clock and CPU time (s)."""
    rows = {}
    for d in docs:
        for key, r in d["rows"].items():
            rows[key] = dict(r, command=d["command"])
    lines = ["| set | model | D | parameters | held-out E (meV/atom) | held-out F (meV/Å) | train F (meV/Å) | "
             "held-out V (meV/atom) | F / linear on the same invariants | seeds: validation loss best / worst | time (s) | CPU (s) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in sorted({k.split("/")[0] for k in rows}, key=lambda n: list(FEATURES).index(n)):
        mine = {k.split("/", 1)[1]: r for k, r in rows.items() if k.split("/")[0] == name}
        for model, r in sorted(mine.items(), key=lambda kv: not kv[0].startswith("ace")):  # stable: run order
            v, t = r["validation"], r["train"]
            deg = r.get("degree", FEATURES[name]["degree"])
            same = mine[_linear_label(name, deg)]["validation"]["F"]["rmse"]  # the linear model on these invariants
            ratio = "—" if model.startswith("ace") else f"{v['F']['rmse'] / same:.2f}"
            sc = r["solver"].get("seed_scores") if isinstance(r["solver"], dict) else None
            seeds = f"{min(sc):.2e} / {max(sc):.2e} ({len(sc)})" if sc else "—"
            desc = model if model.startswith("ace") else (
                f"{model} ({r['solver']['epochs']} Adam + {r['solver']['lbfgs_iterations']} L-BFGS"
                f"{', unwhitened' if not r['whitened'] else ''}{', linear skip' if r.get('linear_skip') else ''}"
                f"{', ridge %g' % r['ridge'] if r.get('ridge') else ''}; stopped at {r['solver']['steps']}, "
                f"best {r['solver']['best_step']})")
            lines.append(f"| {name} | {desc} | {deg} | {r['n_params']} | {1e3 * v['E']['rmse']:.3g} | "
                         f"{1e3 * v['F']['rmse']:.3g} | {1e3 * t['F']['rmse']:.3g} | {1e3 * v['V']['rmse']:.3g} | "
                         f"{ratio} | {seeds} | {r['seconds']:.3g} | {r['cpu_seconds']:.3g} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
