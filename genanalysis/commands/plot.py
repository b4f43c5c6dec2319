"""``genanalysis plot DIR``: convergence plots of a study's results into DIR/plots/."""

from __future__ import annotations

from genanalysis.commands import add_results_dir


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "plot", help="draw convergence plots of a results directory",
        description="Log-log plots of each declared rate (or of --metric against --against): mean ± standard "
                    "error over seeds, fitted slope, predicted slope as a triangle, the floor where one is "
                    "subtracted; without --metric also the bound (2/c)‖f^ML(ū)‖₋₁ against the measured error "
                    "(with y = x) and the effectivity of every converged task. Files go to DIR/plots/.")
    add_results_dir(p)
    p.add_argument("--metric", help="plot this metric ...")
    p.add_argument("--against", help="... against this swept field (dotted, e.g. trainingset.size)")
    p.add_argument("--pdf", action="store_true", help="also write PDF files")
    p.set_defaults(func=main)


def main(args) -> int:
    from genanalysis.plots import plot_study
    from genanalysis.sweep.outputs import load_output

    from genanalysis.exceptions import InputError

    out = load_output(args.dir)
    if args.metric:
        known = sorted({k for r in out.rows for k, v in r.metrics.items()
                        if isinstance(v, (int, float)) and not isinstance(v, bool)})
        if args.metric not in known:
            raise InputError(f"--metric {args.metric!r} is not a numeric metric of {args.dir}; "
                             f"its metrics: {', '.join(known) or 'none (no finished task)'}")
    try:
        files = plot_study(out, quantity=args.metric, against=args.against,
                           formats=("png", "pdf") if args.pdf else ("png",))
    except OSError as exc:
        raise InputError(f"cannot write the plots into {args.dir}/plots ({exc.strerror}); copy the directory "
                         "somewhere writable") from None
    for f in files:
        print(f)
    if not files:
        print(f"no plot drawn: no finished task has a positive value of the metric in {args.dir}")
        return 1
    return 0
