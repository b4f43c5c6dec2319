"""``genanalysis trainingset SPEC.toml --out DIR [--json] [--workers K]``: build or complete
a training set (docs/trainingset.md). Exit code 0 when every configuration was built, 1
when some are listed in ``DIR/failures.json``, 2 on bad input."""

from __future__ import annotations

import json
import sys

from genanalysis.commands import add_memory_limit
from genanalysis.exceptions import InputError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "trainingset",
        help="build (or complete) a training set of varying cell size and observation type",
        description=" ".join(__doc__.split()).replace("``", ""),
    )
    p.add_argument("spec", metavar="SPEC.toml", help="training-set spec (keys in docs/trainingset.md)")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="output directory (default: SPEC.trainingset next to the spec); its cache makes rebuilds free")
    p.add_argument("--json", action="store_true", help="print the build summary as JSON")
    p.add_argument("--workers", type=int, default=None, metavar="K",
                   help="processes for reference evaluations (default: CPU count, 1 = in-process)")
    p.add_argument("--keys", default="both", choices=["both", "ace", "mace"],
                   help="extxyz key names: ACEpotentials.jl (energy/force/virial), MACE "
                        "(REF_energy/REF_forces/REF_virials/REF_stress) or both (default)")
    p.add_argument("--fc-layout", default="bsr", choices=["bsr", "phonopy"],
                   help="force-constant .npz layout: block-sparse (default) or phonopy (n, n, 3, 3)")
    p.add_argument("--db", action="store_true", help="also export an ase.db (SQLite) file")
    add_memory_limit(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from genanalysis.trainingset import TrainingSetSpec, build, default_out_dir

    if args.workers is not None and args.workers < 1:
        raise InputError(f"--workers {args.workers} is not admissible; use K ≥ 1 (1 = in-process)")
    spec_path = Path(args.spec)
    if not spec_path.is_file():
        raise InputError(f"spec file {args.spec!r} does not exist")
    spec = TrainingSetSpec.from_toml(spec_path)
    out = Path(args.out) if args.out else default_out_dir(spec_path)
    summary = build(spec, out, workers=args.workers, keys=args.keys, fc_layout=args.fc_layout, db=args.db)
    if args.json:
        json.dump(summary.to_dict(), sys.stdout, indent=1, default=str)
        sys.stdout.write("\n")
    else:
        _print_table(summary)
    return 1 if summary.failures else 0


def _print_table(summary) -> None:
    ev = summary.evaluations
    print(f"training set {summary.spec_hash[:12]} in {summary.out_dir}  (a = {summary.a:.6f} Å)")
    print(f"{'group':<28} {'N':>3} {'configs':>8} {'E':>4} {'F':>4} {'V':>4} {'H':>4}")
    for group, by_size in summary.counts.items():
        for n, row in by_size.items():
            print(f"{group:<28} {n:>3} {row['configurations']:>8} {row['E']:>4} {row['F']:>4} {row['V']:>4} {row['H']:>4}")
    print(f"configurations evaluated {ev['configs_evaluated']}, cached {ev['configs_cached']}; "
          f"reference calls {ev['reference_calls']}; relaxations done {ev['relaxations_done']}, "
          f"cached {ev['relaxations_cached']}")
    for f in summary.failures:
        print(f"FAILED {f['stage']} {f['group']} N={f['size']}: {f['error']}")
    for f in summary.files:
        print(f"wrote {f}")
