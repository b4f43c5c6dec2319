"""``genanalysis bench relax``: time defect relaxation against LAMMPS and ASE + matscipy.

Each code relaxes the same periodic n-cell in its own subprocess (wall time and peak memory
are that process's); the table gives atoms, force evaluations, iterations, the final max
atomic force (eV/Å), the formation energy (eV), times (s), peak memory (MiB) and the ratio
of wall times to LAMMPS's. See docs/performance.md.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict

from genanalysis.commands import add_memory_limit


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
    r.add_argument("--potential", help="EAM file (LAMMPS and ASE need one) or builtin:NAME")
    r.add_argument("--from-json", metavar="FILE", help="do not run: print (and --plot) the results saved by --json")
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
    add_memory_limit(r)
    r.set_defaults(func=run_relax)
    m = bsub.add_parser("model", help="cost of a fitted model (energy+forces, Hessian products, Hessian) "
                                      "against a reference potential and the number of atoms",
                        description="Time a fitted model (a directory written by the fit command) or, without "
                                    "--model, the default linear ACE model on rattled perfect n-cells: energy + "
                                    "forces, one Hessian-vector product and the sparse Hessian, CPU µs per atom, "
                                    "next to the reference potential on the same cells, with the ratios and the "
                                    "fitted exponent of time against atoms (1 = linear); with --evaluate-sizes also "
                                    "the wall/CPU time and peak memory of `genanalysis evaluate` of the model "
                                    "against `genanalysis defect` of the reference alone (3D vacancy).")
    m.add_argument("--model", help="fitted model directory (model.json + model.npz); default: LinearACE(ACESpec())")
    m.add_argument("--reference", default="builtin:W",
                   help="potential timed on the same cells, and of the evaluate runs (default builtin:W; none: skip)")
    m.add_argument("--lattice", default="bcc", help="bcc, fcc (default bcc)")
    m.add_argument("--a", type=float, default=3.157, help="lattice constant, Å (default 3.157)")
    m.add_argument("--sizes", default="4,6,8,12", help="cell sizes n (default 4,6,8,12)")
    m.add_argument("--evaluate-sizes", default="",
                   help="test-domain sizes M of the evaluate/defect timing, e.g. 12,20 (default: none; needs --model)")
    m.add_argument("--fit-sizes", default="",
                   help="also time the linear fit of the model's basis (default: of ACESpec()) to an EFV training "
                        "set of the reference's perfect and vacancy cells of these sizes N, e.g. 2,4,6,8 "
                        "(default: none)")
    m.add_argument("--fit-observations", default="EFV", choices=["EFV", "EFVH"],
                   help="observations of every training configuration of --fit-sizes: EFV, or EFVH with the "
                        "force constants of every atom of every cell (weight H = 0.01; rows streamed) "
                        "(default EFV)")
    m.add_argument("--repeats", type=int, default=3, help="timed calls per size, the fastest counts (default 3)")
    m.add_argument("--nprocs", type=int, default=1, help="threads (torch/BLAS) (default 1)")
    m.add_argument("--timeout", type=float, default=3600.0, help="seconds per size (default 3600)")
    m.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    m.add_argument("--from-json", metavar="FILE", help="do not run: print the tables of a run saved by --json")
    add_memory_limit(m)
    m.set_defaults(func=run_model)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _exponents(results) -> dict:
    """Fitted exponent of solve time against atoms, per code (converged runs, ≥ 2 sizes)."""
    from genanalysis.bench import scaling_exponent

    out = {}
    for code in ("genanalysis", "lammps", "ase"):
        pts = [(r.atoms, r.solve_time) for r in results if r.code == code and r.status == "converged"
               and r.atoms and r.solve_time]
        if len(pts) >= 2:
            out[code] = scaling_exponent(*zip(*pts))
    return out


def _print_exponents(results) -> None:
    for code, k in _exponents(results).items():
        print(f"{code}: solve time ∝ atoms^{k:.2f} over the converged sizes (n³·log n would be ~1.1)")


def _replay(args) -> int:
    from genanalysis.bench import BenchResult, format_table, plot_scaling
    from genanalysis.exceptions import InputError

    try:
        with open(args.from_json, encoding="utf-8") as fh:
            saved = json.load(fh)
        results = [BenchResult(**r) for r in saved["results"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"--from-json {args.from_json!r} is not a saved benchmark ({exc})") from None
    print(f"# {saved['defect']} in {saved['lattice']} {saved['element']}, a = {saved['a']:.6f} Å, "
          f"fmax = {saved['fmax']:g} eV/Å; threads {saved['nprocs']}, LAMMPS ranks {saved['lammps_np']}; "
          f"{saved['cutoff']}")
    print(format_table(results))
    _print_exponents(results)
    if args.plot:
        plot_scaling(results, args.plot, f"{saved['defect']} in {saved['lattice']} {saved['element']}, "
                                         f"max force ≤ {saved['fmax']:g} eV/Å")
    return 0


def run_relax(args) -> int:
    from genanalysis.bench import CODES, cutoff_note, format_table, run_benchmark
    from genanalysis.exceptions import InputError
    from genanalysis.lattice import parse_defect
    from genanalysis.potentials import load_potential

    if args.plot and not args.plot.endswith(".png"):
        raise InputError(f"--plot {args.plot!r} must name a .png file")
    if args.from_json:
        return _replay(args)
    if not args.potential:
        raise InputError("--potential is required (an EAM file or builtin:NAME), unless --from-json is given")
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
            "exponents": _exponents(results),
        }
        json.dump(out, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print(f"# {args.defect} in {args.lattice} {element}, a = {a:.6f} Å, fmax = {args.fmax:g} eV/Å; "
              f"threads {args.nprocs}, LAMMPS ranks {args.lammps_np or args.nprocs}; {note}")
        print(format_table(results))
        _print_exponents(results)
    failed = [r for r in results if r.status.startswith("failed")]
    return 1 if failed else 0


def _model_from_json(path) -> int:
    """Print the tables of a saved ``bench model --json`` run."""
    import argparse

    from genanalysis.exceptions import InputError

    try:
        with open(path, encoding="utf-8") as fh:
            d = json.load(fh)
        rows = d["rows"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"--from-json {path!r} is not a saved model benchmark ({exc})") from None
    ok = [r for r in rows if r["status"] == "ok"]
    reps = d.get("repeats") or max((len(r.get("times", [])) for r in ok), default=0)
    ns = argparse.Namespace(model=d.get("model"), lattice=d.get("lattice"), a=d.get("a"), nprocs=d.get("nprocs"),
                            repeats=reps)
    reference = d.get("reference")
    _print_model_rows(rows, ok, ns, reference, d.get("exponent", float("nan")))
    if d.get("evaluate"):
        _print_evaluate_rows(d["evaluate"], d.get("model"), reference or "builtin:W")
    if d.get("fit") is not None:
        _print_fit_row(d["fit"], reference or "builtin:W")
    return 0


def run_model(args) -> int:
    from genanalysis.bench import run_evaluate_timing, run_fit_timing, run_model_scaling, scaling_exponent
    from genanalysis.exceptions import InputError
    from genanalysis.lattice import LATTICES

    if args.from_json:
        return _model_from_json(args.from_json)

    sizes = _sizes(args.sizes)
    eval_sizes = _sizes(args.evaluate_sizes) if args.evaluate_sizes else []
    fit_sizes = _sizes(args.fit_sizes) if args.fit_sizes else []
    if args.lattice not in LATTICES or args.lattice == "triangular":
        raise InputError(f"--lattice {args.lattice!r}: choose bcc or fcc")
    if not (args.a > 0):
        raise InputError(f"--a {args.a} must be a positive lattice constant in Å")
    if not 1 <= args.repeats <= 100:
        raise InputError(f"--repeats {args.repeats} must be in 1..100")
    if not 1 <= args.nprocs <= 64:
        raise InputError(f"--nprocs {args.nprocs} must be in 1..64")
    if args.model is not None:
        from genanalysis.models.io import load_fitted

        load_fitted(args.model)  # a bad path is an InputError here, not in a subprocess
        args.model = os.path.abspath(args.model)  # the measured processes run in scratch directories
    elif eval_sizes:
        raise InputError("--evaluate-sizes needs --model (a fitted-model directory)")
    reference = None if args.reference in ("", "none") else args.reference
    if reference is not None:
        from genanalysis.potentials import load_potential

        load_potential(reference)
    rows = run_model_scaling(args.model, args.lattice, args.a, sizes, repeats=args.repeats, nprocs=args.nprocs,
                             timeout=args.timeout, reference=reference)
    ok = [r for r in rows if r["status"] == "ok"]
    slope = scaling_exponent([r["atoms"] for r in ok], [r["time"] for r in ok])
    evals = run_evaluate_timing(args.model, reference or "builtin:W", args.lattice, eval_sizes, nprocs=args.nprocs,
                                timeout=args.timeout) if eval_sizes else []
    fit_row = None
    if fit_sizes:
        fit_row = run_fit_timing(_model_params(args.model), reference or "builtin:W", args.lattice, args.a, fit_sizes,
                                 nprocs=args.nprocs, timeout=args.timeout, observations=args.fit_observations)
    if args.json:
        json.dump({"model": args.model, "reference": reference, "lattice": args.lattice, "a": args.a,
                   "nprocs": args.nprocs, "repeats": args.repeats, "exponent": slope, "rows": rows, "evaluate": evals, "fit": fit_row,
                   "units": {"time": "s (CPU)", "us_per_atom": "µs (CPU)", "peak_memory_mib": "MiB",
                             "wall_time": "s", "cpu_time": "s"}}, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        _print_model_rows(rows, ok, args, reference, slope)
        if evals:
            _print_evaluate_rows(evals, args.model, reference or "builtin:W")
        if fit_row is not None:
            _print_fit_row(fit_row, reference or "builtin:W")
    return 0 if len(ok) == len(rows) and all(
        r[w]["status"] == "ok" for r in evals for w in ("evaluate", "defect")) and (
        fit_row is None or fit_row["status"] == "ok") else 1


def _model_params(model) -> dict:
    """The ACE parameters (a dict of :class:`~genanalysis.fit.ModelSpec` fields) of a fitted
    model directory, or of ``ACESpec()``."""
    from genanalysis.models.basis import ACESpec

    if model is None:
        d = ACESpec().to_dict()
    else:
        from genanalysis.models.io import load_fitted

        d = load_fitted(model)[0].spec.to_dict()
    d.pop("dim", None)
    return d


def _print_fit_row(r, reference) -> None:
    print(f"# linear fit (design assembly + streamed QR + solve, one process) to an {r.get('observations', 'EFV')} "
          f"training set of "
          f"{reference}, perfect and vacancy cells N = {','.join(map(str, r['sizes']))}")
    if r["status"] != "ok":
        print(f"fit: {r['status']}")
        return
    print("| configurations | atoms | largest cell | parameters | rows | fit CPU s | fit wall s | training set wall s "
          "| peak MiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| {r['configurations']} | {r['atoms_total']} | {r['largest_cell']} | {r['n_params']} | {r['rows']} "
          f"| {r['fit_cpu_time']:.1f} | {r['fit_wall_time']:.1f} | {r['trainingset_wall_time']:.1f} "
          f"| {r['peak_memory_mib']:.0f} |")


def _us(r, key):
    return 1e6 * r[key] / r["atoms"] if r.get(key) is not None else None


def _print_model_rows(rows, ok, args, reference, slope) -> None:
    name = ok[0]["name"] if ok else args.model
    print(f"# {name} against {reference or 'no reference'}, {args.lattice} a = {args.a} Å, rattled n-cells; "
          f"threads {args.nprocs}; CPU µs per atom, fastest of {args.repeats}; HVP = one Hessian-vector product")
    print("| n | atoms | model E+F | model HVP | model Hessian | ref E+F | ref HVP | ref Hessian "
          "| E+F model/ref | HVP/E+F model | Hessian model/ref | peak MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    f = lambda x, s=".1f": "—" if x is None else format(x, s)  # noqa: E731
    for r in rows:
        if r["status"] != "ok":
            print(f"| {r['n']} | — | — | — | — | — | — | — | — | — | — | {r['status']} |")
            continue
        ef, hv, hs = _us(r, "time"), _us(r, "hvp_time"), _us(r, "hessian_time")
        ref, rhv, rhs = _us(r, "ref_time"), _us(r, "ref_hvp_time"), _us(r, "ref_hessian_time")
        ratio = lambda a, b: None if a is None or b is None else a / b  # noqa: E731
        print(f"| {r['n']} | {r['atoms']} | {f(ef)} | {f(hv)} | {f(hs)} | {f(ref)} | {f(rhv)} | {f(rhs)} "
              f"| {f(ratio(ef, ref), '.2f')} | {f(ratio(hv, ef), '.2f')} | {f(ratio(hs, rhs), '.1f')} "
              f"| {r['peak_memory_mib']:.0f} |")
    print(f"model E+F time ∝ atoms^{slope:.2f} (1 = linear)")


def _print_evaluate_rows(evals, model, reference) -> None:
    print(f"# genanalysis evaluate --model {model} --reference {reference} (3D vacancy) against the reference "
          f"alone, genanalysis defect --potential {reference}; one process each")
    print("| M | atoms | evaluate wall s | evaluate CPU s | evaluate peak MiB | defect wall s | defect CPU s "
          "| defect peak MiB | CPU ratio | status |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in evals:
        e, d = r["evaluate"], r["defect"]
        ratio = e["cpu_time"] / d["cpu_time"] if d["cpu_time"] and d["cpu_time"] > 0 else float("nan")
        st = "ok" if e["status"] == d["status"] == "ok" else f"{e['status']} / {d['status']}"
        print(f"| {r['size']} | {r.get('atoms', '—')} | {e['wall_time']:.1f} | {e['cpu_time']:.1f} "
              f"| {e['peak_memory_mib']:.0f} | {d['wall_time']:.1f} | {d['cpu_time']:.1f} "
              f"| {d['peak_memory_mib']:.0f} | {ratio:.1f} | {st} |")
