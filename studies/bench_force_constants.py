"""Benchmark: force constants analytically vs by finite displacements (phonopy-style).

Units: times in s of CPU time of this process (``time.process_time``, best of
``--repeats``; less sensitive than wall time to other jobs on a shared machine), force
constants eV/Å², cell sizes N (N×N×N conventional bcc cells,
2N³ atoms, one vacancy removes one).

For builtin:W (bcc, equilibrium lattice constant) and N = 2…6 it measures, side by side
in one run (absolute times are noisy on shared machines; compare the ratios):

* ``analytic``   — the analytic sparse Hessian of the potential (one call);
* ``fd-sym``     — phonopy-style finite displacements of the symmetry-distinct atoms only:
  a Bravais lattice has one, so 6 displaced force calls (±h along x, y, z) give the first
  block row, expanded to the full matrix by translation invariance (what the training-set
  builder does without an analytic Hessian);
* ``fd-all``     — finite displacements of every atom (6n force calls), what a defect cell
  needs (no translation symmetry), on the perfect and the vacancy cell;

and the largest deviation of each finite-difference matrix from the analytic one,
relative to the largest analytic entry, the storage of the full block-sparse matrix vs
one block row, and log-log slopes of time against the number of atoms.

    python studies/bench_force_constants.py [--sizes 2 3 4 5 6] [--json OUT.json]

prints a Markdown table (the one in docs/trainingset.md).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from genanalysis.lattice import defect_cell, perfect_cell
from genanalysis.observe import force_constants
from genanalysis.potentials import load_potential
from genanalysis.trainingset import fc as fcmod
from genanalysis.trainingset.build import _fd_rows

FD_STEP = 1e-4  # Å, central differences


def _best(fn, repeats):
    best, out = np.inf, None
    for _ in range(repeats):
        t0 = time.process_time()
        out = fn()
        best = min(best, time.process_time() - t0)
    return best, out


def _fd_sym(pot, atoms):
    n = len(atoms)
    block = _fd_rows(pot, atoms, [0], FD_STEP)[0].transpose(1, 0, 2)
    keep = np.flatnonzero(np.abs(block).reshape(n, -1).max(axis=1) > 0)
    return fcmod.expand_row(keep, block[keep], atoms.positions, atoms.cell, atoms.pbc)


def _dev(h, ref):
    ref = ref.toarray()
    return float(np.abs(h.toarray() - ref).max() / np.abs(ref).max())


def run(sizes, repeats=3):
    pot = load_potential("builtin:W")
    a = pot.equilibrium_lattice_constant("bcc")
    rows = []
    for n in sizes:
        atoms = perfect_cell("bcc", a, n, "W")
        vac = defect_cell("bcc", a, n, "vacancy", "W")
        pot.observe(atoms)  # warm the neighbour list
        t_an, h_an = _best(lambda: force_constants(atoms, pot), repeats)
        t_sym, h_sym = _best(lambda: _fd_sym(pot, atoms), repeats)
        slow = 1 if len(atoms) > 200 else repeats  # 6n force calls: seconds per repeat
        t_all, h_all = _best(lambda: force_constants(atoms, pot, fd_step=FD_STEP), slow)
        pot.observe(vac)
        t_van, h_van = _best(lambda: force_constants(vac, pot), repeats)
        t_vall, h_vall = _best(lambda: force_constants(vac, pot, fd_step=FD_STEP), slow)
        indptr, indices, blocks = fcmod.to_blocks(h_an)
        cols, rblocks = fcmod.block_row(h_an, 0)
        rows.append({
            "N": n, "atoms": len(atoms), "a": a,
            "t_analytic": t_an, "t_fd_sym": t_sym, "t_fd_all": t_all,
            "t_vac_analytic": t_van, "t_vac_fd_all": t_vall,
            "dev_fd_sym": _dev(h_sym, h_an), "dev_fd_all": _dev(h_all, h_an), "dev_vac_fd_all": _dev(h_vall, h_van),
            "bytes_full": int(indptr.nbytes + indices.nbytes + blocks.nbytes),
            "bytes_row": int(cols.nbytes + rblocks.nbytes),
            "force_calls_fd_sym": 6, "force_calls_fd_all": 6 * len(atoms),
        })
        print(f"# N={n} done", flush=True)
    slopes = {}
    natoms = np.log([r["atoms"] for r in rows])
    for key in ("t_analytic", "t_fd_sym", "t_fd_all", "t_vac_analytic", "t_vac_fd_all"):
        if len(rows) >= 2:
            slopes[key] = float(np.polyfit(natoms, np.log([r[key] for r in rows]), 1)[0])
    return rows, slopes


def table(rows, slopes) -> str:
    lines = [
        "| N | atoms | analytic (s) | fd-sym, 6 calls (s) | fd-all, 6n calls (s) | fd-all / analytic | "
        "fd-sym / analytic | max dev fd-sym | max dev fd-all | vacancy: fd-all / analytic | full / row storage |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['N']} | {r['atoms']} | {r['t_analytic']:.3g} | {r['t_fd_sym']:.3g} | {r['t_fd_all']:.3g} | "
            f"{r['t_fd_all'] / r['t_analytic']:.3g} | {r['t_fd_sym'] / r['t_analytic']:.3g} | "
            f"{r['dev_fd_sym']:.1e} | {r['dev_fd_all']:.1e} | {r['t_vac_fd_all'] / r['t_vac_analytic']:.3g} | "
            f"{r['bytes_full'] / r['bytes_row']:.0f} |"
        )
    if slopes:
        lines.append("")
        lines.append("log-log slope of time vs number of atoms: " + ", ".join(
            f"{k[2:]} {v:.2f}" for k, v in slopes.items()))
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[2, 3, 4, 5, 6])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", default=None, help="also write the measurements to this JSON file")
    args = p.parse_args(argv)
    rows, slopes = run(args.sizes, args.repeats)
    print(table(rows, slopes))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"rows": rows, "slopes": slopes, "fd_step": FD_STEP}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
