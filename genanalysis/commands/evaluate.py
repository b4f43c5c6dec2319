"""``genanalysis evaluate``: the generalisation experiment for one (model, reference, defect, M).

Relaxes the defect with the reference and with the model in the same periodic M-cell from
the same start and prints every term of the estimate (docs/experiment.md). MODEL is any
potential spec, a fitted-model directory (``model.json``) or a surrogate
``surrogate:BASE?family=F&eta=E`` (F one of core, force_constants, bond_stiffness, stress,
scaled, softening). Exit codes: 0 when the model
has a stable equilibrium (``status`` converged), 3 otherwise (the output says why), 2 bad
input. ``--defect screw|edge|mixed --radius R`` runs the dislocation experiment in a clamped
cylinder of free radius R instead (docs/dislocations.md).
"""

from __future__ import annotations

from genanalysis.commands import add_comparison_parser, add_memory_limit, add_threads_option

#: ExperimentSpec fields that are options of this command (an option not given takes the
#: spec's default, stated there alone)
_OPTIONS = ("lattice", "defect", "size", "a", "fmax", "max_iter", "start", "r_stencil", "core_radius", "check_size")

#: the keys the short (non-JSON) table prints, in order
_SUMMARY = (
    "status", "reason", "n_atoms", "r_stencil", "error_energy_norm", "relative_error", "formation_energy_error",
    "max_core_displacement_error", "dipole_error", "residual_dual_norm", "stability_reference", "stability_model",
    "stability_model_at_reference", "effectivity", "bound_ratio", "force_constant_error", "elastic_constant_error",
    "elastic_constant_error_gpa", "lattice_stress_error", "parity_slope_perfect", "parity_slope_defect",
    "phonon_frequency_ratio", "elastic_constant_ratio", "formation_energy_ratio", "wall_time",
)
#: and those of a direct-force model (no energy: docs/experiment.md §7)
_DIRECT_FORCE = ("inf_sup_model_at_reference", "inf_sup_model", "antisymmetry_model", "asr_violation_model",
                 "net_force_model", "loop_work_model", "not_available")


def register(sub) -> None:
    p = add_comparison_parser(
        sub, "evaluate", description=__doc__,
        help="model vs reference defect equilibrium: error, residual, stability, effectivity, lattice errors",
        defects="vacancy, interstitial or interstitial:KIND; or the dislocation screw, edge or mixed",
        size="test-domain size M (periodic M-cell); point defects",
        clamp="clamped shell of a dislocation cylinder, Å (default 2 × cutoff)")
    p.add_argument("--elastic", choices=["reference", "model"],
                   help="whose elastic constants the dislocation predictor uses (default: the reference's)")
    p.add_argument("--energy-radius", type=float, help="radius of the dislocation core energy, Å (default R)")
    p.add_argument("--lattice-size", type=int, help="perfect n-cell of a dislocation's lattice terms (default 4)")
    p.add_argument("--r-stencil", type=float, help="stencil radius of the norms, Å (default: nearest-neighbour shell)")
    p.add_argument("--core-radius", type=float, help="core radius of the max displacement error, Å (default 2 r_nn)")
    p.add_argument("--start", choices=["unrelaxed", "reference"],
                   help="model relaxation start: the unrelaxed defect cell (default) or the reference equilibrium")
    p.add_argument("--check-size", type=int, help="rerun at this larger M and report the change (convergence in M)")
    p.add_argument("--no-stability", action="store_true", help="skip the stability constants and the effectivity")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_memory_limit(p)
    add_threads_option(p)
    p.set_defaults(func=run)


def spec_of(args):
    """The :class:`~genanalysis.experiment.ExperimentSpec` of the command line; errors name the option."""
    from genanalysis.constraints import renamed
    from genanalysis.exceptions import InputError
    from genanalysis.experiment import ExperimentSpec

    given = {k: getattr(args, k) for k in _OPTIONS if getattr(args, k) is not None}
    try:
        return ExperimentSpec(**given, stability=not args.no_stability)
    except InputError as exc:
        raise renamed(exc, _OPTIONS, lambda f: "--" + f.replace("_", "-")) from None


def run(args) -> int:
    from genanalysis.commands import print_experiment
    from genanalysis.commands.dislocation import is_dislocation, run_evaluate
    from genanalysis.exceptions import InputError
    from genanalysis.experiment import evaluate
    from genanalysis.stdio import stdout_to_stderr

    if is_dislocation(args):
        return run_evaluate(args)
    for opt in ("lattice", "size"):
        if getattr(args, opt) is None:
            raise InputError(f"--{opt}: required for a point defect (a dislocation takes --radius instead)")
    spec = spec_of(args)
    with stdout_to_stderr():  # a calculator's own prints must not mix into the output
        res = evaluate(args.model, args.reference, spec)
    out = res.to_dict()
    print_experiment({**out, **(out.get("direct_force") or {})}, _SUMMARY + _DIRECT_FORCE, f"{out['lattice']}, a = {out['a']:.6g} Å, {out['defect']}, M = {out['size']}",
                     args.json)
    if not args.json and out.get("convergence"):
        c = out["convergence"]
        print(f"{'convergence':>30}  M2 = {c['size']}: error {c['error_energy_norm']} Å "
              f"(change {c['error_energy_norm_change']} Å)")
    return 0 if res.ok else 3
