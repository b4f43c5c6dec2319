"""``genanalysis run STUDY.toml --out DIR``: run a study's sweep into a results directory."""

from __future__ import annotations

import sys

from genanalysis.commands import add_memory_limit
from genanalysis.exceptions import InputError


def parse_workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise InputError(f"--workers {text!r}: need a whole number in 0..1024 (0 runs in-process)") from None
    if not 0 <= value <= 1024:
        raise InputError(f"--workers {value}: need a whole number in 0..1024 (0 runs in-process)")
    return value


def parse_connect_timeout(text: str | None) -> float:
    from genanalysis.sweep.executors import DEFAULT_CONNECT_TIMEOUT_S

    if text is None:
        return DEFAULT_CONNECT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 3600:
        raise InputError(f"--connect-timeout {text!r}: need a number of seconds in (0, 3600]")
    return value


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "run", help="run a study (TOML spec) into a results directory",
        description="Run every unfinished task of a study spec; rerunning skips finished tasks. "
                    "Results go to DIR/results.sqlite, shared work to DIR/shared/.")
    p.add_argument("spec", metavar="STUDY.toml", help="the study spec (docs/sweeps.md)")
    p.add_argument("--out", metavar="DIR", help="output directory (default: ./NAME-of-the-study)")
    p.add_argument("--workers", metavar="K", type=str, default=None,
                   help="local worker processes (default: one per CPU; 0 runs in-process)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="address of a dask.distributed scheduler (tcp://host:port) to run the tasks on")
    p.add_argument("--connect-timeout", metavar="S", type=str, default=None,
                   help="seconds to wait for the --scheduler to answer before giving up (default 5)")
    p.add_argument("--retry-failed", action="store_true", help="rerun tasks recorded as failed")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary line")
    add_memory_limit(p)
    p.set_defaults(func=main)


def main(args) -> int:
    from genanalysis.sweep import load_study, run_study

    study = load_study(args.spec)
    workers = None if args.workers is None else parse_workers(args.workers)
    connect_timeout = parse_connect_timeout(args.connect_timeout)
    out = args.out or study.name
    summary = run_study(study, out, workers=workers, scheduler=args.scheduler, quiet=args.quiet,
                        retry_failed=args.retry_failed, connect_timeout=connect_timeout)
    if not args.quiet:
        print(summary, file=sys.stderr)
    return 0 if summary.ok else 1
