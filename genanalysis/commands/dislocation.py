"""The dislocation branch of ``genanalysis defect`` and ``genanalysis evaluate``
(``--defect screw|edge|mixed --radius R``; docs/dislocations.md). Not a subcommand of its
own: the two commands hand over here when ``--defect`` names a dislocation."""

from __future__ import annotations

#: ``evaluate`` options that are DislocationSpec fields (an option not given takes the spec's default)
_OPTIONS = ("radius", "clamp_width", "elastic", "a", "fmax", "max_iter", "start", "r_stencil", "core_radius",
            "energy_radius", "lattice_size")

#: the keys the short (non-JSON) table of ``evaluate`` prints, in order
_SUMMARY = (
    "status", "reason", "n_atoms", "n_free", "radius", "clamp_width", "elastic", "r_stencil", "error_energy_norm",
    "reference_energy_norm", "relative_error", "max_core_displacement_error", "residual_dual_norm",
    "stability_reference", "stability_model", "stability_model_at_reference", "effectivity", "bound_ratio",
    "elastic_prelog", "core_energy_reference", "core_energy_model", "core_energy_error", "force_constant_error",
    "elastic_constant_error", "elastic_constant_error_gpa", "lattice_stress_error", "wall_time",
)


def is_dislocation(args) -> bool:
    """Whether ``--defect`` names a dislocation; refuses point-defect options beside it."""
    from genanalysis.dislocation import KINDS
    from genanalysis.exceptions import InputError

    if args.defect not in KINDS:
        if getattr(args, "radius", None) is not None:
            raise InputError(f"--radius: only for a dislocation (--defect {', '.join(KINDS)}); "
                             f"--defect {args.defect} takes --size")
        return False
    if args.lattice not in (None, "bcc"):
        raise InputError(f"--lattice {args.lattice}: a {args.defect} dislocation is on the bcc lattice")
    if args.size is not None:
        raise InputError("--size: a dislocation cylinder takes --radius R (Å), not a cell size")
    if args.radius is None:
        raise InputError(f"--radius: required for the {args.defect} dislocation (free radius R, Å)")
    return True


def run_defect(args, fmax: float, max_iter: int) -> int:
    """``genanalysis defect --defect KIND --radius R``: the reference relaxation of the cylinder."""
    from genanalysis.commands import print_result
    from genanalysis.constraints import check_arguments, renamed
    from genanalysis.dislocation import CYLINDER_CONSTRAINTS, solve_dislocation
    from genanalysis.exceptions import InputError
    from genanalysis.potentials import load_potential
    from genanalysis.stdio import stdout_to_stderr

    try:
        check_arguments(CYLINDER_CONSTRAINTS, radius=args.radius, clamp_width=args.clamp_width)
    except InputError as exc:
        raise renamed(exc, CYLINDER_CONSTRAINTS, lambda f: "--" + f.replace("_", "-")) from None
    with stdout_to_stderr():
        pot = load_potential(args.potential, format=args.format, element=args.element, lattice="bcc", a=args.a)
        try:
            res = solve_dislocation(pot, args.defect, args.radius, a=args.a, clamp_width=args.clamp_width,
                                    fmax=fmax, max_iter=max_iter, stability=args.stability)
        except InputError as exc:  # name the options as the user typed them
            raise renamed(exc, CYLINDER_CONSTRAINTS, lambda f: "--" + f.replace("_", "-")) from None
    rel, ref = res.relaxation, res.reference
    out = {
        "potential": args.potential, "lattice": "bcc", "a": float(ref.info["a"]), "defect": ref.info["defect"],
        "radius": float(ref.info["radius"]), "clamp_width": float(ref.info["clamp_width"]), "n_atoms": len(ref),
        "n_free": int((~ref.arrays["clamped"]).sum()), "burgers": ref.info["burgers"],
        "period": float(ref.info["period"]), "energy": rel.energy, "perfect_energy_per_atom": res.energy_per_atom,
        "excess_energy": res.excess_energy, "elastic_prelog": res.elastic_prelog, "core_energy": res.core_energy,
        "max_force": rel.max_force, "fmax": fmax, "status": rel.status, "iterations": rel.iterations,
        "force_evaluations": rel.force_evaluations, "hvp_evaluations": rel.hvp_evaluations,
        "preconditioner": rel.preconditioner, "wall_time": rel.wall_time,
        "units": {"a": "Å", "radius": "Å", "clamp_width": "Å", "burgers": "Å", "period": "Å", "energy": "eV",
                  "perfect_energy_per_atom": "eV", "excess_energy": "eV/Å", "elastic_prelog": "eV/Å",
                  "core_energy": "eV/Å", "max_force": "eV/Å", "fmax": "eV/Å", "stability_constant": "eV/Å²", "wall_time": "s"},
    }
    if args.stability:
        out["stability_constant"] = res.stability_constant
    print_result(out, args.json)
    return 0 if rel.converged else 3


def spec_of(args):
    """The :class:`~genanalysis.experiment_dislocation.DislocationSpec` of ``evaluate``'s
    command line; errors name the option."""
    from genanalysis.constraints import renamed
    from genanalysis.exceptions import InputError
    from genanalysis.experiment_dislocation import DislocationSpec

    if args.check_size is not None:
        raise InputError("--check-size: not for a dislocation; rerun with a larger --radius")
    given = {k: getattr(args, k) for k in _OPTIONS if getattr(args, k, None) is not None}
    try:
        return DislocationSpec(args.defect, **given, stability=not args.no_stability)
    except InputError as exc:
        raise renamed(exc, _OPTIONS, lambda f: "--" + f.replace("_", "-")) from None


def run_evaluate(args) -> int:
    """``genanalysis evaluate --defect KIND --radius R``: the dislocation experiment."""
    from genanalysis.commands import print_experiment
    from genanalysis.experiment_dislocation import evaluate_dislocation
    from genanalysis.stdio import stdout_to_stderr

    spec = spec_of(args)
    with stdout_to_stderr():
        res = evaluate_dislocation(args.model, args.reference, spec)
    out = res.to_dict()
    print_experiment(out, _SUMMARY, f"bcc, a = {out['a']:.6g} Å, {out['defect']}, R = {out['radius']:g} Å", args.json)
    return 0 if res.ok else 3
