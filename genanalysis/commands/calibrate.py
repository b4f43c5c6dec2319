"""``genanalysis calibrate``: the supercell rates of the reference problem
(docs/theory.md (T10)–(T11); docs/calibration.md).

Relaxes the defect in cells of sizes N and in a reference cell M ≫ N, and prints the
geometry error ‖D(ū_N − ū_M)‖ (Å), the formation-energy error (eV), the dipole tensor
(eV) and the decay of |Dū| (Å), with fitted slopes against the predicted ones.
"""

from __future__ import annotations

import json
import sys

from genanalysis.commands import add_memory_limit


def _sizes(text: str) -> list[int]:
    from genanalysis.exceptions import InputError

    try:
        given = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise InputError(f"--sizes {text!r} must be comma-separated whole numbers, e.g. 2,3,4,6") from None
    if not given:
        raise InputError("--sizes is empty; give e.g. 2,3,4,6")
    dup = sorted({n for n in given if given.count(n) > 1})
    if dup:
        raise InputError(f"--sizes {text!r} lists N={dup[0]} twice; give each size once")
    if min(given) < 1:
        raise InputError(f"--sizes {text!r}: N={min(given)} is not a cell size; use whole numbers ≥ 1")
    return sorted(given)


def register(sub) -> None:
    p = sub.add_parser("calibrate", help="measure the supercell rates of the reference defect problem",
                       description=__doc__)
    p.add_argument("--potential", required=True, help="builtin:NAME, EAM file or python:MODULE:CALLABLE")
    p.add_argument("--lattice", required=True, help="bcc, fcc or triangular")
    p.add_argument("--a", type=float, help="lattice constant, Å (default: equilibrium)")
    p.add_argument("--defect", required=True, help="vacancy, interstitial or interstitial:KIND")
    p.add_argument("--sizes", required=True, help="cell sizes N, comma-separated")
    p.add_argument("--reference-size", type=int, required=True, help="reference cell size M ≫ N")
    p.add_argument("--fmax", type=float, default=1e-9, help="force tolerance, eV/Å (default 1e-9)")
    p.add_argument("--min-size", type=int, help="leave sizes below this out of the slope fits")
    p.add_argument("--plot", help="write the log-log plot to this PNG file")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_memory_limit(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from genanalysis.calibration import calibrate, plot_case, rates
    from genanalysis.commands import check_output_file
    from genanalysis.exceptions import InputError

    sizes = _sizes(args.sizes)
    if args.reference_size <= max(sizes):
        raise InputError(f"--reference-size {args.reference_size} must exceed the largest size {max(sizes)}")
    if args.min_size is not None and not 1 <= args.min_size <= max(sizes):
        raise InputError(f"--min-size {args.min_size} must be a cell size in 1..{max(sizes)} (the largest of --sizes)")
    if args.plot:  # before the relaxations, which an unwritable plot would lose
        check_output_file(args.plot, "--plot")
    case = calibrate(args.potential, args.lattice, args.defect, sizes, args.reference_size, a=args.a, fmax=args.fmax)
    fits = rates(case, min_size=args.min_size)
    if args.plot:
        plot_case(case, fits, args.plot)
    out = {"potential": args.potential, "lattice": args.lattice, "a": case.a, "defect": args.defect,
           "reference": case.reference, "rows": case.rows, "rates": fits,
           "decay": {"r": case.decay[0].tolist(), "max_gradient": case.decay[1].tolist()},
           "stencil": "nearest-neighbour shell", "units": {"a": "Å", "geometry_error": "Å", "energy_error": "eV",
                                                          "formation_energy": "eV", "dipole_tensor": "eV"}}
    if args.json:
        json.dump(out, sys.stdout, indent=2, default=float)
        sys.stdout.write("\n")
        return 0
    print(f"{'N':>4} {'atoms':>7} {'E_f (eV)':>14} {'|ΔE_f| (eV)':>12} {'‖DΔu‖ (Å)':>12} {'tr P (eV)':>10}  status")
    for r in case.rows:
        print(f"{r['size']:>4} {r['n_atoms']:>7} {r['formation_energy']:>14.8f} {r['energy_error']:>12.3e} "
              f"{r['geometry_error']:>12.3e} {r['dipole_trace']:>10.4f}  {r['status']}")
    print(f"reference M={case.reference_size}: E_f = {case.reference['formation_energy']:.8f} eV, "
          f"tr P = {case.reference['dipole_trace']:.4f} eV")
    for f in fits:
        print(f"{f['quantity']:>15}: slope {f['slope']:.3f} [{f.get('ci_low', float('nan')):.3f}, "
              f"{f.get('ci_high', float('nan')):.3f}] vs {f['predicted_slope']:.3f} → {f.get('verdict_label', f['verdict'])}")
    return 0
