"""``genanalysis fit FITSPEC.toml --out DIR [--json] [--fisher]``: fit a model to a training set
(docs/models.md). Writes DIR/model.json + DIR/model.npz (load with
``genanalysis.load_model(DIR)``), DIR/report.json and DIR/fitspec.toml (with ``--fisher``, a
linear model's Fisher information and its parts, DIR/fisher.json); exit code 0, or 2 on
bad input (including a rank-deficient design when ``on_rank_deficient = "error"``)."""

from __future__ import annotations

import json
import sys
import warnings

from genanalysis.commands import add_memory_limit, check_output_dir
from genanalysis.exceptions import InputError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "fit",
        help="fit a linear ACE-style or neural-network model with per-type and per-group loss weights",
        description=__doc__.splitlines()[0].replace("``", ""),
    )
    p.add_argument("spec", metavar="FITSPEC.toml", help="fit spec (keys in docs/models.md)")
    p.add_argument("--out", metavar="DIR", required=True, help="directory for the model and its report")
    p.add_argument("--json", action="store_true", help="print the fit report as JSON")
    p.add_argument("--fisher", action="store_true",
                   help="write DIR/fisher.json: the linear fit's Fisher information JᵀWJ, its spectrum and its "
                        "parts per term, observation type, group and cell size (docs/models.md §9)")
    add_memory_limit(p)
    p.set_defaults(func=run)


def _resolve(spec_path, training_set: str) -> str:
    from pathlib import Path

    p = Path(training_set)
    if not p.is_absolute():
        p = Path(spec_path).resolve().parent / p
    return str(p)


def run(args) -> int:
    from pathlib import Path

    import tomli_w

    from genanalysis.fit import FitSpec, FitWarning, fit
    from genanalysis.models.io import save_model

    check_output_dir(args.out)  # before the fit, which an unwritable output would lose
    spec = FitSpec.from_toml(args.spec)
    if args.fisher and spec.model.kind not in ("ace", "composite"):
        raise InputError(f"--fisher needs a linear model (model kind 'ace' or 'composite'), not {spec.model.kind!r}")
    from genanalysis.trainingset import load_training_set

    sets = spec.training_set if isinstance(spec.training_set, tuple) else (spec.training_set,)
    configs = []
    for ts in sets:
        ts_path = _resolve(args.spec, ts)
        if not Path(ts_path).exists():
            raise InputError(f"training_set {ts!r} (resolved to {ts_path!r}) does not exist")
        configs += load_training_set(ts_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fit(configs, spec, partial_information=args.fisher)
    for w in caught:
        if issubclass(w.category, FitWarning):
            print(f"genanalysis: warning: {w.message}", file=sys.stderr)
    symbols = sorted({s for c in configs for s in c.atoms.get_chemical_symbols()})
    element = symbols[0] if len(symbols) == 1 else "X"
    out = Path(args.out)
    save_model(result.model, out, element=element,
               extra={"name": f"fit:{result.report['fit_hash']}", "fit_hash": result.report["fit_hash"],
                      "fit_spec_hash": result.report["spec_hash"],
                      "training_set_hash": result.report["training_set_hash"], "training_set": list(sets)})
    report = dict(result.report, train_indices=result.train, validation_indices=result.validation)
    (out / "report.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
    (out / "fitspec.toml").write_text(tomli_w.dumps(_toml_safe(spec.to_dict())))
    if args.fisher:
        from genanalysis.identifiability import fisher_information

        info = dict(fisher_information(result.model), fit_hash=result.report["fit_hash"])
        (out / "fisher.json").write_text(json.dumps(info, indent=1) + "\n")
    if args.json:
        json.dump(report, sys.stdout, indent=1, default=float)
        sys.stdout.write("\n")
    else:
        _print(report, out)
    return 0


def _toml_safe(d):
    if isinstance(d, dict):
        return {k: _toml_safe(v) for k, v in d.items() if v is not None}
    if isinstance(d, (tuple, list)):
        return [_toml_safe(v) for v in d]
    return d


def _print(report: dict, out) -> None:
    s = report["solver"]
    print(f"fit {report['fit_hash']} ({report['model_kind']}, {report['n_params']} parameters, "
          f"{report['n_train']} training / {report['n_validation']} validation configurations, "
          f"{report['fit_seconds']:.1f} s)")
    if "condition_number" in s:
        print(f"design: {s['n_rows']} rows, condition number {s['condition_number']:.3g}, effective rank "
              f"{s['effective_rank']}/{s['n_params']}{' (RANK DEFICIENT)' if s['rank_deficient'] else ''}")
    scale = {"E": (1e3, "meV/atom"), "F": (1e3, "meV/Å"), "V": (1e3, "meV/atom"), "H": (1.0, "eV/Å²")}
    print(f"{'split':<11} {'group':<24} {'type':<4} {'RMSE':>11} {'MAE':>11}  unit")
    for split in ("train", "validation"):
        for g, per in report[split].items():
            for t, st in per.items():
                f, u = scale[t]
                print(f"{split:<11} {g:<24} {t:<4} {st['rmse'] * f:>11.4g} {st['mae'] * f:>11.4g}  {u}")
    print(f"wrote {out}/model.json, model.npz, report.json, fitspec.toml" + (", fisher.json" if (out / "fisher.json").exists() else ""))
