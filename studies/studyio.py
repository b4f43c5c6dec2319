"""What the study scripts share: their raw data file, ``{"meta": …, "rows": […]}`` as
indented JSON (docs/data/…), written where the script's ``--out`` names."""

from __future__ import annotations

import json
import os


def write_rows(path: str, meta: dict, rows: list) -> None:
    """Write ``{"meta": meta, "rows": rows}`` to ``path`` (its directory created if missing)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump({"meta": meta, "rows": rows}, fh, indent=1)


def w_size_study(doc: str, default_out: str, argv=None):
    """The opening of a study over cell sizes N on bcc W (builtin:W): ``--sizes`` (default
    1 2 3) and ``--out`` (default ``default_out``) parsed from ``argv``; returns (args,
    the potential, its equilibrium lattice constant in Å)."""
    import argparse

    from genanalysis.potentials import load_potential

    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--out", default=default_out)
    args = ap.parse_args(argv)
    pot = load_potential("builtin:W")
    return args, pot, float(pot.equilibrium_lattice_constant("bcc"))
