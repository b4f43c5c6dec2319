"""``genanalysis bench relax``: time defect relaxation against LAMMPS and ASE + matscipy.

Each code relaxes the same periodic n-cell in its own subprocess (wall time and peak memory
are that process's); the table gives atoms, force evaluations, iterations, the final max
atomic force (eV/Å), the formation energy (eV), times (s), peak memory (MiB) and the ratio
of wall times to LAMMPS's. See docs/performance.md.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict


def _sizes(text: str) -> list[int]:
    from genanalysis.exceptions import InputError

    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise InputError(f"--sizes {text!r} must be comma-separated whole numbers, e.g. 10,20,40") from None
    if not sizes or any(n < 1 or n > 200 for n in sizes):
        raise InputError(f"--sizes {text!r}: every size must be in 1..200")
    return sizes


def register(sub) -> None:
    p = sub.add_parser("bench", help="performance benchmarks (relaxation against LAMMPS and ASE + matscipy)",
                       description=__doc__)
    bsub = p.add_subparsers(dest="bench_command", metavar="BENCHMARK", parser_class=type(p))
    r = bsub.add_parser("relax", help="time a defect relaxation against LAMMPS and ASE + matscipy", description=__doc__)
    r.add_argument("--potential", required=True, help="EAM file (LAMMPS and ASE need one) or builtin:NAME")
    r.add_argument("--lattice", default="bcc", help="bcc, fcc or triangular (default bcc)")
    r.add_argument("--defect", default="vacancy", help="vacancy, interstitial[:KIND] or perfect (default vacancy)")
    r.add_argument("--a", type=float, help="lattice constant, Å (default: the potential's equilibrium value)")
    r.add_argument("--element", help="element of the potential (default: its first species)")
    r.add_argument("--sizes", default="10,20,40", help="cell sizes n, comma-separated (default 10,20,40)")
    r.add_argument("--fmax", type=float, default=1e-6, help="force tolerance, eV/Å (default 1e-6)")
    r.add_argument("--nprocs", type=int, default=1, help="threads for our solver (default 1)")
    r.add_argument("--lammps-np", type=int, help="MPI ranks for LAMMPS (default: --nprocs)")
    r.add_argument("--ase-max-n", type=int, default=10, help="run ASE + matscipy only up to this n (default 10)")
    r.add_argument("--lammps-max-n", type=int, help="run LAMMPS only up to this n (default: every size)")
    r.add_argument("--plot", metavar="PNG", help="also write the scaling plot (solve time against atoms) here")
    r.add_argument("--timeout", type=float, default=3600.0, help="seconds per run before it is killed (default 3600)")
    r.add_argument("--no-lammps", action="store_true", help="skip LAMMPS")
    r.add_argument("--no-ase", action="store_true", help="skip ASE + matscipy")
    r.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    r.set_defaults(func=run_relax)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_relax(args) -> int:
    from genanalysis.bench import CODES, cutoff_note, format_table, run_benchmark
    from genanalysis.exceptions import InputError
    from genanalysis.lattice import parse_defect
    from genanalysis.potentials import load_potential

    sizes = _sizes(args.sizes)
    if not (args.fmax > 0 and args.fmax < 1):
        raise InputError(f"--fmax {args.fmax} must be a force in eV/Å in (0, 1)")
    if not 1 <= args.nprocs <= 64:
        raise InputError(f"--nprocs {args.nprocs} must be in 1..64")
    if args.lammps_np is not None and not 1 <= args.lammps_np <= 64:
        raise InputError(f"--lammps-np {args.lammps_np} must be in 1..64")
    if args.plot and not args.plot.endswith(".png"):
        raise InputError(f"--plot {args.plot!r} must name a .png file")
    if args.timeout <= 0:
        raise InputError(f"--timeout {args.timeout} must be a positive number of seconds")
    parse_defect(args.lattice, args.defect)
    pot = load_potential(args.potential)
    element = args.element or (pot.species[0] if pot.species else "X")
    a = args.a if args.a is not None else pot.equilibrium_lattice_constant(args.lattice)
    if not a > 0:
        raise InputError(f"--a {a} must be a positive lattice constant in Å")
    codes = [c for c in CODES if not (c == "lammps" and args.no_lammps) and not (c == "ase" and args.no_ase)]
    note = cutoff_note(pot)

    def progress(res):
        if not args.json:
            print(f"  {res.code:>12} n={res.n:<4} {res.status}"
                  + (f"  wall {res.wall_time:.2f} s" if res.wall_time is not None else ""), file=sys.stderr)

    results = run_benchmark(args.potential, args.lattice, args.defect, sizes, a=a, fmax=args.fmax, element=element,
                            codes=codes, nprocs=args.nprocs, lammps_nprocs=args.lammps_np,
                            ase_max_n=args.ase_max_n, lammps_max_n=args.lammps_max_n, timeout=args.timeout,
                            progress=progress)
    if args.plot:
        from genanalysis.bench import plot_scaling

        plot_scaling(results, args.plot, f"{args.defect} in {args.lattice} {element}, max force ≤ {args.fmax:g} eV/Å")
    if args.json:
        out = {
            "potential": args.potential, "lattice": args.lattice, "defect": args.defect, "a": a,
            "element": element, "fmax": args.fmax, "nprocs": args.nprocs,
            "lammps_np": args.lammps_np or args.nprocs, "cutoff": note,
            "units": {"a": "Å", "max_force": "eV/Å", "energy": "eV", "formation_energy": "eV",
                      "solve_time": "s", "wall_time": "s", "peak_memory_mib": "MiB"},
            "results": [asdict(r) for r in results],
        }
        json.dump(out, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print(f"# {args.defect} in {args.lattice} {element}, a = {a:.6f} Å, fmax = {args.fmax:g} eV/Å; "
              f"threads {args.nprocs}, LAMMPS ranks {args.lammps_np or args.nprocs}; {note}")
        print(format_table(results))
    failed = [r for r in results if r.status.startswith("failed")]
    return 1 if failed else 0
