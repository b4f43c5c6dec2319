"""``genanalysis demo [--out DIR] [--workers K] [--quick]``: the main job in one command.

A small default study on the built-in W EAM (bcc, d = 3; docs/studies.md §2): training
sets of perfect and vacancy cells of size N ∈ {2, 3, 4} observing EF, EFV or EFH, a linear
ACE-style model fitted to each, and the generalisation experiment on a vacancy in a test
domain of M = 4 conventional cells (127 atoms; below the standard M ≥ 4·N_max, which the
demo's spec overrides for its runtime, saying so). Writes into DIR (default
``./genanalysis-demo``): ``results.sqlite`` (the results database), ``results.md`` /
``results.csv`` (every metric), ``summary.md`` / ``summary.csv`` (the table printed here),
and ``plots/*.png`` (error against N with fitted and predicted slopes, the bound against
the measured error, the effectivity of each task; see :mod:`genanalysis.plots`). Rerunning reuses
every finished task. ``--quick``: N ∈ {2, 3} with EF only (about a minute).

Units: Å, eV, eV/Å, eV/Å²; fit errors meV/Å.
"""

from __future__ import annotations

import copy
import csv
import io
import sys
import time
from pathlib import Path

from genanalysis.commands.run import parse_workers
from genanalysis.exceptions import InputError

DEFAULT_OUT = "genanalysis-demo"

#: the demo study (a study spec as a TOML-shaped dict; docs/sweeps.md §2)
DEMO_STUDY = {
    "seed": 0,
    "study": {
        "name": "genanalysis-demo",
        "task": "generalisation",
        "description": "bcc W (builtin:W): simulation error of a fitted linear ACE model on a vacancy "
                       "against the training cell size N, for observation sets EF, EFV, EFH",
    },
    "trainingset": {
        "potential": "builtin:W",
        "lattice": "bcc",
        "defects": ["perfect", "vacancy"],
        "size": 2,                    # N, swept
        "configs_per_size": 2,
        "rattle": 0.05,               # Å
        "strains": {"amplitude": 0.01, "count": 1},
        "observations": "EF",         # swept
    },
    "fit": {
        "model": {"kind": "ace", "cutoff": 4.6, "degree": 6, "body_order": 3, "l_max": 2, "r_in": 2.0},
        "loss": {"E": 1.0, "F": 1.0, "V": 1.0, "H": 0.01},
        "validation_fraction": 0.0,
    },
    # M = 4 < 4·N_max = 16 breaks the test-domain standard (docs/studies.md §1): a bcc 16-cell
    # has 8192 atoms, and the model's Hessians there take far longer than the demo's few
    # minutes. The demo shows the pipeline; the rate is measured by the studies.
    "experiment": {"defect": "vacancy", "size": 4, "fmax": 1e-8, "allow_small_test_domain": True},
    "sweep": {"mode": "product", "trainingset.size": [2, 3, 4], "trainingset.observations": ["EF", "EFV", "EFH"]},
    "rates": [
        {"quantity": "error_energy_norm", "against": "trainingset.size", "where": {"trainingset.observations": o},
         "predicted": f"training_size_{o}", "d": 3, "label": "simulation error against N"}
        for o in ("EF", "EFV", "EFH")
    ],
}


def demo_study(quick: bool = False, *, scale: str | None = None) -> dict:
    """The demo's study spec (a dict). ``quick``: N ∈ {2, 3}, EF only. ``scale="tiny"``
    (tests): the same pipeline on the 2D triangular Morse crystal, N ∈ {2, 3}, M = 5, a
    small model — seconds instead of minutes."""
    raw = copy.deepcopy(DEMO_STUDY)
    if quick:
        raw["sweep"] = {"mode": "product", "trainingset.size": [2, 3], "trainingset.observations": ["EF"]}
        raw["rates"] = raw["rates"][:1]
    if scale == "tiny":
        raw["study"]["description"] = "tiny 2D version of the demo (tests)"
        raw["trainingset"].update(potential="builtin:morse", lattice="triangular", configs_per_size=1, rattle=0.03)
        raw["fit"]["model"] = {"kind": "ace", "cutoff": 2.5, "degree": 4, "body_order": 3, "l_max": 2}
        raw["experiment"]["size"] = 5
        raw["sweep"] = {"mode": "product", "trainingset.size": [2, 3], "trainingset.observations": ["EF", "EFH"]}
        raw["rates"] = [dict(r, d=2) for r in raw["rates"] if r["where"]["trainingset.observations"] in ("EF", "EFH")]
    elif scale is not None:
        raise InputError(f"scale={scale!r}; the only test scale is 'tiny'")
    return raw


#: (column, metric, factor, format) of the summary table
_SUMMARY = [
    ("N", "trainingset.size", None, "{}"),
    ("observations", "trainingset.observations", None, "{}"),
    ("status", "status", None, "{}"),
    ("fit F RMSE (meV/Å)", "fit_rmse_F_train", 1e3, "{:.3g}"),
    ("‖D(ū^ML−ū)‖ (Å)", "error_energy_norm", 1.0, "{:.3e}"),
    ("relative", "relative_error", 1.0, "{:.3e}"),
    ("ΔE_f (eV)", "formation_energy_error", 1.0, "{:+.3e}"),
    ("‖f^ML(ū)‖₋₁ (eV/Å)", "residual_dual_norm", 1.0, "{:.3e}"),
    ("c_ML (eV/Å²)", "stability_model_at_reference", 1.0, "{:.3g}"),
    ("effectivity", "effectivity", 1.0, "{:.3g}"),
    ("ε_FC (eV/Å²)", "force_constant_error", 1.0, "{:.3e}"),
    ("reference work (atom-evals)", "reference_work", 1.0, "{:.0f}"),
]


def summary_table(rows) -> tuple[list[str], list[list]]:
    """Columns and raw values (SI-free: units in the column names) of the demo's summary."""
    cols = [c for c, *_ in _SUMMARY]
    out = []
    for r in sorted(rows, key=lambda r: r.point):
        line = []
        for _, key, factor, _fmt in _SUMMARY:
            if key.startswith(("trainingset.", "fit.", "experiment.")):
                node = r.params
                for part in key.split("."):
                    node = node.get(part) if isinstance(node, dict) else None
                line.append(node)
            elif key == "status":
                line.append(r.metrics.get("status", r.status) if r.state == "done" else r.status)
            else:
                v = r.metrics.get(key) if r.metrics else None
                line.append(v * factor if isinstance(v, (int, float)) and factor is not None else v)
        out.append(line)
    return cols, out


def _markdown(cols, values) -> str:
    fmts = [f for *_, f in _SUMMARY]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in values:
        cells = ["" if v is None else (fmt.format(v) if isinstance(v, (int, float)) else str(v))
                 for v, fmt in zip(row, fmts)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_summary(out_dir: Path, rows) -> tuple[Path, Path, str]:
    """Write ``summary.md`` and ``summary.csv``; return their paths and the Markdown text."""
    cols, values = summary_table(rows)
    md = _markdown(cols, values)
    (out_dir / "summary.md").write_text(md, encoding="utf-8")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for row in values:
        w.writerow(["" if v is None else (repr(v) if isinstance(v, float) else v) for v in row])
    (out_dir / "summary.csv").write_text(buf.getvalue(), encoding="utf-8")
    return out_dir / "summary.md", out_dir / "summary.csv", md


def run_demo(out, *, workers: int | None = None, quick: bool = False, scale: str | None = None,
             quiet: bool = False, stream=None) -> dict:
    """Run the demo study into ``out`` and write its tables and plots; return a dict of
    the run summary, rate results and files written (used by the command and the tests)."""
    from genanalysis.sweep import parse_study, run_study
    from genanalysis.plots import plot_study
    from genanalysis.sweep.outputs import load_output, rate_report, write_tables

    stream = stream or sys.stdout
    t0 = time.time()
    study = parse_study(demo_study(quick, scale=scale), default_name="genanalysis-demo")
    summary = run_study(study, out, workers=workers, quiet=quiet)
    output = load_output(out)
    results = rate_report(output)
    tables = write_tables(output, results)
    plots = plot_study(output)
    md_path, csv_path, md = write_summary(Path(out), output.rows)
    print(f"genanalysis demo: {study.description}", file=stream)
    print(str(summary), file=stream)
    print("", file=stream)
    print(md, file=stream)
    for res in results:
        d, t = res.as_dict(), res.text(".2f")
        ci = f" {t['ci']}" if t["ci"] else ""
        print(f"{d['quantity']} vs {d['against']} ({t['group']}): slope {t['slope'] or 'n/a'}{ci}, predicted up to "
              f"{t['predicted_slope'] or 'n/a'} -> {d['verdict_label']}", file=stream)
    outp = Path(out)
    print("", file=stream)
    print(f"results database: {outp / 'results.sqlite'}", file=stream)
    print(f"tables: {md_path}, {csv_path}, {tables['markdown']}, {tables['csv']}", file=stream)
    print(f"plots: {', '.join(str(p) for p in plots)}", file=stream)
    print(f"next: genanalysis report {outp}  |  genanalysis plot {outp}  ({time.time() - t0:.0f} s)", file=stream)
    return {"summary": summary, "rates": results, "tables": tables, "plots": plots,
            "summary_files": (md_path, csv_path)}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo", help="run the default study (bcc W: error against training cell size) and write tables and plots",
        description="The main job in one command: training sets of bcc W (builtin:W) at N = 2, 3, 4 with "
                    "observations EF, EFV, EFH, a linear ACE model fitted to each, the vacancy simulation error "
                    "and every term of the bound; results database, tables and plots into --out.")
    p.add_argument("--out", metavar="DIR", default=DEFAULT_OUT, help=f"output directory (default ./{DEFAULT_OUT})")
    p.add_argument("--workers", metavar="K", default=None,
                   help="local worker processes (default: one per CPU; 0 runs in-process)")
    p.add_argument("--quick", action="store_true", help="N = 2, 3 and EF only (about a minute)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=main)


def main(args) -> int:
    workers = None if args.workers is None else parse_workers(args.workers)
    res = run_demo(args.out, workers=workers, quick=args.quick, quiet=args.quiet)
    return 0 if res["summary"].ok else 1
