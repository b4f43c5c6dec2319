"""The subcommands of ``genanalysis`` (one module each, see :mod:`genanalysis.cli`) and the
checks they share: outputs are checked before any computation, so that a computation is
never lost to an output that cannot be written."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from genanalysis.exceptions import InputError

__all__ = ["check_output_dir", "check_output_file", "print_result", "print_experiment", "add_memory_limit",
           "add_relaxation_options", "add_domain_options", "add_comparison_parser", "add_results_dir",
           "add_model_options", "add_threads_option"]


def _memory_limit_gb(text: str) -> float:
    import argparse

    from genanalysis.memory import FLAG, parse_limit

    try:
        return parse_limit(text, FLAG)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix(f"{FLAG} ")) from None


def add_memory_limit(parser) -> None:
    """``--memory-limit GB``: the memory a command may plan to use, instead of what the
    machine has available (:mod:`genanalysis.memory`; same as GENANALYSIS_MEMORY_LIMIT_GB)."""
    parser.add_argument("--memory-limit", metavar="GB", type=_memory_limit_gb, default=None,
                        help="refuse requests estimated above GB gigabytes (10⁹ bytes) instead of above the "
                             "memory available now; for big machines or swap (same as "
                             "GENANALYSIS_MEMORY_LIMIT_GB)")


def _threads(text: str) -> int:
    import argparse

    from genanalysis.threads import parse_threads

    try:
        return parse_threads(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--threads ")) from None


def add_threads_option(parser) -> None:
    """``--threads K``: BLAS/OpenMP/torch threads of the command (default 1;
    :mod:`genanalysis.threads`), applied around the command by :func:`genanalysis.cli.main`."""
    parser.add_argument("--threads", metavar="K", type=_threads, default=1,
                        help="BLAS/OpenMP/torch threads (default 1: bit-for-bit the sweep's numbers, and "
                             "LOBPCG's dense products ran 10x slower threaded on a loaded machine)")


def add_model_options(parser) -> None:
    """``--model`` and ``--reference`` (both required) of the commands that compare a model
    with a reference potential."""
    parser.add_argument("--model", required=True,
                        help="model spec: builtin:NAME, EAM file, python:MODULE:CALLABLE, fitted-model directory, "
                             "or surrogate:BASE?family=F&eta=E")
    parser.add_argument("--reference", required=True,
                        help="reference potential spec (builtin:NAME, EAM file, python:...)")


def add_comparison_parser(sub, name: str, *, help: str, description: str, defects: str, size: str, clamp: str):
    """The parser of a command that holds a model against a reference on one defect
    (``evaluate``, ``softening``): ``--model``/``--reference``, the domain options (the
    lattice constant defaults to the reference's) and the tolerances of both relaxations.
    Returns it for the command's own options."""
    p = sub.add_parser(name, help=help, description=description)
    add_model_options(p)
    add_domain_options(p, defects=defects, a_of="reference", size=size, clamp=clamp)
    add_relaxation_options(p, of=" of both relaxations", per=" per relaxation")
    return p


def add_results_dir(parser) -> None:
    """The positional ``DIR`` of the commands that read a study's results directory."""
    parser.add_argument("dir", metavar="DIR", help="a directory written by `genanalysis run`")


def _writable_ancestor(p: Path, flag: str, value: str) -> None:
    anc = p
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        raise InputError(f"{flag} {value!r}: {str(anc)!r} is a file, so the path cannot be created")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise InputError(f"{flag} {value!r}: the directory {str(anc)!r} is not writable")


def check_output_dir(path: str | os.PathLike, flag: str = "--out") -> Path:
    """``path`` as a directory that can be created or written; InputError otherwise."""
    p = Path(path).expanduser().absolute()
    if p.exists() and not p.is_dir():
        raise InputError(f"{flag} {str(path)!r} exists and is not a directory; name a new or existing directory")
    _writable_ancestor(p, flag, str(path))
    return p


def check_output_file(path: str | os.PathLike, flag: str) -> Path:
    """``path`` as a file that can be written (its directory exists); InputError otherwise."""
    p = Path(path).expanduser().absolute()
    if p.is_dir():
        raise InputError(f"{flag} {str(path)!r} is a directory; name a file")
    if not p.parent.is_dir():
        raise InputError(f"{flag} {str(path)!r}: the directory {str(p.parent)!r} does not exist")
    if not os.access(p.parent, os.W_OK | os.X_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise InputError(f"{flag} {str(path)!r} cannot be written (permission denied)")
    return p


def print_result(out: dict, as_json: bool) -> None:
    """Print ``out`` (its ``units`` naming each key's unit) as one JSON object, or as a
    table of ``key  value unit``."""
    if as_json:
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for k, v in out.items():
            if k != "units":
                unit = out["units"].get(k, "")
                print(f"{k:>24}  {v}{' ' + unit if unit else ''}")


def print_experiment(out: dict, keys, where: str, as_json: bool) -> None:
    """Print an experiment's ``to_dict()`` as one JSON object, or as a table of ``keys``
    (values with their ``units``) under the model and the reference (``where`` names the
    problem)."""
    if as_json:
        json.dump(out, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
        return
    units = out["units"]
    print(f"{'model':>30}  {out['model']}")
    print(f"{'reference':>30}  {out['reference']}  ({where})")
    for k in keys:
        v = out.get(k)
        if v is None or v == "":
            continue
        unit = units.get(k, "")
        unit = "" if unit == "1" else unit
        text = f"{v:.6g}" if isinstance(v, float) else str(v)
        print(f"{k:>30}  {text}{' ' + unit if unit else ''}")


def add_relaxation_options(parser, of: str = "", per: str = "") -> None:
    """``--fmax`` and ``--max-iter`` (default None: the solver's defaults, stated once in
    :mod:`genanalysis.constraints` and read from there for the help, without loading the
    solver); ``of``/``per`` word what they apply to (" of both relaxations")."""
    from genanalysis.constraints import DEFAULT_FMAX, DEFAULT_MAX_ITER

    fmax = f"{DEFAULT_FMAX:g}".replace("e-0", "e-")  # 1e-8, as the docs write it
    parser.add_argument("--fmax", type=float, help=f"force tolerance{of}, eV/Å (default {fmax})")
    parser.add_argument("--max-iter", type=int, help=f"Newton iterations{per} at most (default {DEFAULT_MAX_ITER})")


def add_domain_options(parser, *, defects: str, a_of: str, size: str, clamp: str) -> None:
    """The options that choose the defect and its domain, shared by ``defect`` and
    ``evaluate``: ``--lattice``, ``--a`` (Å; default the equilibrium value of ``a_of``),
    ``--defect`` (help ``defects``), ``--size`` of a point defect's cell (help ``size``),
    and a dislocation's ``--radius`` and ``--clamp-width`` (Å; help ``clamp``)."""
    parser.add_argument("--lattice", help="bcc, fcc or triangular (required for a point defect; a dislocation is bcc)")
    parser.add_argument("--a", type=float, help=f"lattice constant, Å (default: the {a_of}'s equilibrium value)")
    parser.add_argument("--defect", required=True, help=defects)
    parser.add_argument("--size", type=int, help=size)
    parser.add_argument("--radius", type=float, help="free radius R of a dislocation cylinder, Å")
    parser.add_argument("--clamp-width", type=float, help=clamp)
