"""Benchmark (not a test): the linear fit of one large defect cell's every force-constant
row, streamed (docs/performance.md).

    python studies/bench_fc_stream.py [--n 6] [--out docs/performance_data/fc_stream.json]

A vacancy in an n×n×n bcc W cell (builtin:W, a = 3.157 Å, rattled 0.05 Å, seed 0), its
energy, forces, virial and full force constants from the reference; the 300-function basis
(cutoff 4.6 Å, degree 12, body order 4) fitted to it with weights E = F = V = 1, H = 0.01
(one configuration: the solve is rank-deficient and that is not the point). Recorded: the
weighted rows (all 9·n_atoms² force-constant rows of the cell), the rows the streamed QR
factorises (a design row is non-zero only for atom pairs within the model's coupling
range, both local to one centre: 9·nnz of the block pattern), the piece size, CPU and wall
seconds of the fit (design rows + streamed QR + solve) and the process's peak resident
memory (MiB), one thread.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np

from genanalysis.data import Configuration
from genanalysis.fit import LossWeights, ModelSpec, fit_linear
from genanalysis.lattice import defect_cell
from genanalysis.memory import hessian_chunk_atoms
from genanalysis.models import engine, kernels
from genanalysis.potentials import load_potential
from genanalysis.threads import one_thread
from studyio import write_rows

SPEC = ModelSpec(cutoff=4.6, degree=12, body_order=4, l_max=2, r_in=2.0)


def run(n: int) -> dict:
    pot = load_potential("builtin:W")
    at = defect_cell("bcc", 3.157, n, "vacancy", "W")
    at.positions += np.random.default_rng(0).normal(scale=0.05, size=at.positions.shape)
    ob = pot.observe(at)
    conf = Configuration(atoms=at, group="vacancy", energy=ob.energy, forces=ob.forces, virial=ob.virial,
                         hessian=pot.hessian(at))
    loss = LossWeights(E=1.0, F=1.0, V=1.0, H=0.01)
    small = defect_cell("bcc", 3.157, 2, "vacancy", "W")
    ob2 = pot.observe(small)
    fit_linear([Configuration(atoms=small, group="vacancy", energy=ob2.energy, forces=ob2.forces, virial=ob2.virial,
                              hessian=pot.hessian(small))], SPEC, loss, on_rank_deficient="ignore")  # kernels loaded
    c0, t0 = time.process_time(), time.perf_counter()
    model, diag = fit_linear([conf], SPEC, loss, on_rank_deficient="ignore")
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    geom = engine.geometry(at, model.cutoff)
    _, indices = kernels.block_pattern(geom.n, geom.start, geom.j)
    k = len(at)
    return {"n": n, "atoms": k, "parameters": int(model.n_params), "rows": int(diag["n_rows"]),
            "rows_per_type": diag["rows_per_type"], "hessian_rows_nonzero": 9 * int(len(indices)),
            "hessian_rows_all": 9 * k * k, "piece_row_atoms": hessian_chunk_atoms(k, model.n_params),
            "fit_cpu_time": cpu, "fit_wall_time": wall,
            "peak_memory_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--out", default="docs/performance_data/fc_stream.json")
    args = ap.parse_args()
    with one_thread():
        row = run(args.n)
    write_rows(args.out, {"units": {"fit_cpu_time": "s", "fit_wall_time": "s", "peak_memory_mib": "MiB"},
                          "load_average_after": [round(x, 2) for x in os.getloadavg()]}, [row])
    print(row)


if __name__ == "__main__":
    main()
