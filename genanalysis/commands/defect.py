"""``genanalysis defect``: relax one point defect in a periodic n-cell with a reference potential,
or (``--defect screw|edge|mixed --radius R``) one straight bcc dislocation in a clamped
cylinder of free radius R (docs/dislocations.md).

Prints one JSON object (``--json``) or a short table. Exit codes: 0 converged, 3 the solver
did not converge (the JSON says why), 2 bad input (one line on stderr).
"""

from __future__ import annotations

from genanalysis.commands import add_domain_options, add_memory_limit, add_relaxation_options, add_threads_option


def register(sub) -> None:
    p = sub.add_parser(
        "defect",
        help="relax a point defect with a reference potential; formation energy, forces, stability",
        description=__doc__,
    )
    p.add_argument("--potential", required=True, help="potential spec: builtin:NAME, EAM file (eam, eam/alloy, eam/fs), python:MODULE:CALLABLE, "
                   "fitted-model directory or surrogate:BASE?family=F&eta=E")
    p.add_argument("--format", choices=["eam", "eam/alloy", "eam/fs"], help="EAM file format (default: detected from the file)")
    p.add_argument("--element", help="element of a multi-element potential file")
    add_domain_options(p, defects="vacancy, interstitial, interstitial:KIND or perfect; or the dislocation screw, "
                                   "edge or mixed",
                       a_of="potential", size="cell size n: n×n×n conventional cells (3D) or n×n (2D); point defects",
                       clamp="width of the clamped shell of a dislocation cylinder, Å (default 2 × the cutoff)")
    add_relaxation_options(p)
    p.add_argument("--stability", action="store_true", help="also compute the stability constant (eV/Å²)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_memory_limit(p)
    add_threads_option(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from genanalysis.constraints import DEFAULT_FMAX, DEFAULT_MAX_ITER, RELAX_CONSTRAINTS, check_arguments, renamed
    from genanalysis.defect import solve_defect
    from genanalysis.exceptions import InputError
    from genanalysis.lattice import LATTICES, check_cell
    from genanalysis.potentials import load_potential
    from genanalysis.stdio import stdout_to_stderr

    fmax = DEFAULT_FMAX if args.fmax is None else args.fmax
    max_iter = DEFAULT_MAX_ITER if args.max_iter is None else args.max_iter
    try:  # the solver's own declarations, checked before the potential is loaded
        check_arguments(RELAX_CONSTRAINTS, fmax=fmax, max_iter=max_iter)
    except InputError as exc:
        raise renamed(exc, RELAX_CONSTRAINTS, lambda f: "--" + f.replace("_", "-")) from None
    from genanalysis.commands.dislocation import is_dislocation, run_defect

    if is_dislocation(args):
        return run_defect(args, fmax, max_iter)
    for opt in ("lattice", "size"):
        if getattr(args, opt) is None:
            raise InputError(f"--{opt}: required for a point defect (a dislocation takes --radius instead)")
    if args.lattice in LATTICES:  # a cell too large is refused before the potential is read
        check_cell(args.lattice, args.size, what=f"--size {args.size}")
    with stdout_to_stderr():  # a calculator's own prints must not mix into the output
        pot = load_potential(args.potential, format=args.format, element=args.element, lattice=args.lattice,
                             a=args.a)
        res = solve_defect(pot, args.lattice, args.a, args.defect, args.size, fmax=fmax,
                           stability=args.stability, max_iter=max_iter, element=args.element)
    rel = res.relaxation
    out = {
        "potential": args.potential,
        "lattice": args.lattice,
        "a": float(res.reference.info["a"]),
        "defect": res.reference.info["defect"],
        "size": args.size,
        "n_atoms": len(res.reference),
        "formation_energy": res.formation_energy,
        "energy": rel.energy,
        "perfect_energy_per_atom": res.perfect_energy_per_atom,
        "max_force": rel.max_force,
        "fmax": fmax,
        "status": rel.status,
        "iterations": rel.iterations,
        "force_evaluations": rel.force_evaluations,
        "hvp_evaluations": rel.hvp_evaluations,
        "preconditioner": rel.preconditioner,
        "wall_time": rel.wall_time,
        "units": {"a": "Å", "formation_energy": "eV", "energy": "eV", "max_force": "eV/Å",
                  "stability_constant": "eV/Å²", "wall_time": "s"},
    }
    if args.stability:
        out["stability_constant"] = res.stability_constant
    if not getattr(pot, "has_energy", True):  # a direct-force model: no energy, the inf-sup constant for c
        from genanalysis.models.directforce import NO_ENERGY

        out.update(formation_energy=None, energy=None, perfect_energy_per_atom=None, not_available=NO_ENERGY,
                   krylov_iterations=rel.krylov_iterations, net_force=rel.net_force)
        out["units"].update(net_force="eV/Å")
    if callable(getattr(pot, "hessian_report", None)):  # an external calculator: which Hessians, at what cost
        out["hessian"] = pot.hessian_report()
    from genanalysis.commands import print_result

    print_result(out, args.json)
    return 0 if rel.converged else 3

