"""The ``genanalysis`` command line.

Each subcommand lives in ``genanalysis/commands/NAME.py`` and defines
``register(subparsers)`` (adds its parser and sets ``func``) — one module per command so
that the pipeline's stages stay independent. Bad input (:class:`InputError`) becomes one
line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

from genanalysis import __version__
from genanalysis.exceptions import InputError

#: subcommands in the order ``--help`` lists them (modules that do not exist yet are skipped)
COMMANDS = ["defect", "trainingset", "fit", "evaluate", "softening", "run", "plot", "report", "demo", "calibrate", "bench"]


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # usage errors: one line, exit 2
        self.exit(2, f"genanalysis: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="genanalysis", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"genanalysis {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        modname = f"genanalysis.commands.{name}"
        if importlib.util.find_spec(modname) is None:
            continue
        importlib.import_module(modname).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from genanalysis.memory import limit_override
    from genanalysis.threads import thread_limit

    try:
        with limit_override(getattr(args, "memory_limit", None)), thread_limit(getattr(args, "threads", None)):
            return int(args.func(args) or 0)
    except InputError as exc:
        print(f"genanalysis: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("genanalysis: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
