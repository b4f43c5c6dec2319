"""``genanalysis softening``: is a model softer than the reference? (docs/softening.md)

Rattles the perfect cell and the reference's relaxed defect cell by Gaussian displacements of
each amplitude (Å, standard deviation per component) and prints the least-squares slope of
the model's forces against the reference's (1: no softening; below 1: softer), with its
standard error and the energy above the minimum; then the model-to-reference ratios of the
perfect lattice's phonon frequencies and elastic constants and of the formation energy.
MODEL and REFERENCE are any potential specs (a fitted-model directory, a surrogate
``surrogate:BASE?family=scaled|softening&eta=E``, ...). Exit codes: 0 every part computed,
3 the model failed on a part (the output says which), 2 bad input.
"""

from __future__ import annotations

from genanalysis.commands import add_comparison_parser, add_memory_limit

#: the summary keys the short (non-JSON) table prints, in order
_SUMMARY = ("status", "reason", "n_atoms_perfect", "parity_amplitude", "parity_slope_perfect",
            "parity_slope_perfect_stderr", "parity_slope_defect", "parity_slope_defect_stderr",
            "energy_ratio_perfect", "energy_ratio_defect", "phonon_frequency_ratio", "phonon_frequency_ratio_min",
            "phonon_frequency_ratio_max", "phonon_imaginary_modes", "elastic_constant_ratio",
            "formation_energy_reference", "formation_energy_model", "formation_energy_ratio", "wall_time")


def _amplitudes(text: str) -> tuple[float, ...]:
    import argparse

    try:
        return tuple(float(t) for t in text.replace(",", " ").split())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of amplitudes in Å") from None


def register(sub) -> None:
    p = add_comparison_parser(
        sub, "softening", description=__doc__,
        help="softening diagnostics: force-parity slope on rattled cells, phonon, elastic and formation-energy ratios",
        defects="vacancy, interstitial or interstitial:KIND (point defects only)",
        size="cell size n of the perfect and the defect cell", clamp="not used (point defects only)")
    p.add_argument("--amplitudes", type=_amplitudes, default=None,
                   help="rattle amplitudes, Å, comma-separated (default 0.01,0.03,0.1,0.3)")
    p.add_argument("--samples", type=int, default=1, help="rattled cells per amplitude and cell (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the rattles (default 0)")
    p.add_argument("--out", help="also write the JSON object to this file")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_memory_limit(p)
    p.set_defaults(func=run)


def run(args) -> int:
    import json

    from genanalysis.commands import check_output_file, print_experiment
    from genanalysis.constraints import DEFAULT_FMAX, DEFAULT_MAX_ITER, RELAX_CONSTRAINTS, check_arguments, renamed
    from genanalysis.exceptions import InputError
    from genanalysis.lattice import LATTICES, check_cell
    from genanalysis.softening import DEFAULT_AMPLITUDES, check_amplitudes, diagnostics
    from genanalysis.stdio import stdout_to_stderr

    for opt in ("radius", "clamp_width"):
        if getattr(args, opt) is not None:
            raise InputError(f"--{opt.replace('_', '-')}: the softening diagnostics are for point defects "
                             "(vacancy, interstitial); a dislocation is not supported")
    for opt in ("lattice", "size"):
        if getattr(args, opt) is None:
            raise InputError(f"--{opt}: required")
    if args.lattice not in LATTICES:
        raise InputError(f"--lattice {args.lattice!r} is not supported; choose one of {', '.join(LATTICES)}")
    check_cell(args.lattice, args.size, what=f"--size {args.size}")
    amplitudes = check_amplitudes(DEFAULT_AMPLITUDES if args.amplitudes is None else args.amplitudes, "--amplitudes")
    if not amplitudes:
        raise InputError("--amplitudes: give at least one amplitude in Å")
    if args.samples < 1:
        raise InputError(f"--samples {args.samples}: use a whole number ≥ 1")
    if args.seed < 0:
        raise InputError(f"--seed {args.seed}: use a whole number ≥ 0")
    fmax = DEFAULT_FMAX if args.fmax is None else args.fmax
    max_iter = DEFAULT_MAX_ITER if args.max_iter is None else args.max_iter
    try:
        check_arguments(RELAX_CONSTRAINTS, fmax=fmax, max_iter=max_iter)
    except InputError as exc:
        raise renamed(exc, RELAX_CONSTRAINTS, lambda f: "--" + f.replace("_", "-")) from None
    out_path = check_output_file(args.out, "--out") if args.out else None
    with stdout_to_stderr():  # a calculator's own prints must not mix into the output
        out = diagnostics(args.model, args.reference, lattice=args.lattice, defect=args.defect, size=args.size,
                          a=args.a, amplitudes=amplitudes, samples=args.samples, seed=args.seed, fmax=fmax,
                          max_iter=max_iter)
    if out_path is not None:
        out_path.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print_experiment(out, _SUMMARY, f"{out['lattice']}, a = {out['a']:.6g} Å, {out['defect']}, n = {out['size']}",
                     args.json)
    if not args.json:
        print(f"{'cell':>10} {'A (Å)':>8} {'slope':>10} {'stderr':>10} {'ΔE ref (eV/atom)':>18} {'ΔE ratio':>10}")
        for r in out["parity_profile"]:
            def g(v):
                return "—" if v is None else f"{v:.4g}"

            print(f"{r['cell']:>10} {r['amplitude']:>8g} {g(r['slope']):>10} {g(r['stderr']):>10} "
                  f"{g(r['energy_above_minimum_reference']):>18} {g(r['energy_ratio']):>10}")
    return 0 if out["status"] == "converged" else 3
