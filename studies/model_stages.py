"""Benchmark (not a test): where a linear model's energy + forces spend their time, stage
by stage, side by side with the EAM engine on the same cell (docs/performance.md).

    python studies/model_stages.py [--n 8] [--repeats 9] [--out docs/performance_data/model_stages.json]

For the demo's basis (27 parameters) and the 300-function basis (degree 12, body order 4),
coefficients 1e-3·N(0, 1) (seed 0; costs do not depend on them), on a rattled perfect bcc W
n-cell (0.05 Å, seed 0), CPU µs per atom, fastest of ``--repeats`` calls, one thread:

* ``energy_forces`` — the whole call (``LinearACE.energy_forces``);
* ``force_pass`` — the compiled pass alone (``kernels.linear_forces``: factors, A, site
  polynomial, contraction);
* ``pair_factors`` — the radial and angular factors of every pair alone
  (``kernels.pair_factors``, which also stores them);
* ``site_polynomial`` — ε and ∂ε/∂A of every site from A alone (``kernels.site_energy_grad``);
* ``geometry`` — the cached neighbour list's refresh (``engine.model_geometry``);
* ``eam_energy_forces`` — ``builtin:W``'s energy and forces on the same cell.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from genanalysis.lattice import perfect_cell
from genanalysis.models import engine, kernels
from genanalysis.models.basis import ACESpec
from genanalysis.models.linear import LinearACE
from genanalysis.potentials import load_potential
from genanalysis.threads import one_thread
from studyio import write_rows

SPECS = {"demo basis": ACESpec(cutoff=4.6, degree=6, body_order=3, l_max=2, r_in=2.0),
         "300 functions": ACESpec(cutoff=4.6, degree=12, body_order=4, l_max=2, r_in=2.0)}


def _best_us(fn, repeats: int, atoms: int) -> float:
    fn()
    best = np.inf
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return 1e6 * best / atoms


def run(n: int, repeats: int) -> list[dict]:
    ref = load_potential("builtin:W")
    at = perfect_cell("bcc", 3.157, n, "W")
    at.positions += np.random.default_rng(0).normal(scale=0.05, size=at.positions.shape)
    rows = []
    for name, spec in SPECS.items():
        m = LinearACE(spec)
        m.coef_ = 1e-3 * np.random.default_rng(0).normal(size=m.n_params)
        geom = engine.model_geometry(m, at)
        tabs = kernels.tables(m.basis)
        w, idx = m.site_tables()
        A = kernels.projections(geom.Dn, geom.i, geom.n, *tabs)
        k = len(at)
        rows.append({
            "model": name, "n": n, "atoms": k, "parameters": m.n_params, "monomials": len(w),
            "monomial_runs": int(len({(int(a), int(b)) for a, b in idx[:, :2]})), "pairs": int(geom.P),
            "energy_forces": _best_us(lambda: m.energy_forces(at), repeats, k),
            "force_pass": _best_us(lambda: kernels.linear_forces(geom.Dn, geom.start, w, idx, *tabs), repeats, k),
            "pair_factors": _best_us(lambda: kernels.pair_factors(geom.Dn, *tabs), repeats, k),
            "site_polynomial": _best_us(lambda: kernels.site_energy_grad(A, w, idx, True), repeats, k),
            "geometry": _best_us(lambda: engine.model_geometry(m, at), repeats, k),
            "eam_energy_forces": _best_us(lambda: ref.energy_forces(at), repeats, k),
        })
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--out", default="docs/performance_data/model_stages.json")
    args = ap.parse_args()
    with one_thread():
        rows = run(args.n, args.repeats)
    load = os.getloadavg()
    write_rows(args.out, {"units": "µs of CPU time per atom, fastest of the repeats", "repeats": args.repeats,
                          "load_average_after": [round(x, 2) for x in load]}, rows)
    for r in rows:
        print({k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items()})


if __name__ == "__main__":
    main()
