"""The identifiability width s_N against the training-cell size N (docs/studies.md §10).

    python studies/identifiability_width.py [--quick] [--json FILE]

d = 2, triangular `builtin:morse`. Training set per N: perfect, vacancy and interstitial
(centre) cells of size N, each relaxed with the reference, plus ``rattles`` copies rattled
by 0.005 Å and one strained by 0.5 %. Observation sets: ``EF`` (energies and forces on
every cell), ``EF+Hlat`` (plus force constants of the unrattled perfect cells) and ``EFH``
(plus force constants of the relaxed defect cells too). Linear model: cutoff 2.5 Å, degree
12, body order 4, l_max 2 (293 coefficients; ``--quick``: degree 8, 81). For each set and
test defect the width s_N (Å, genanalysis.identifiability, Hutchinson with ``probes``
probes, both priors of ``PRIORS`` with scale 1 eV) on a test domain M = 4·N_max relaxed
with the reference; the log-log slope of s_N over the N whose cells are at least 2·r_cut
wide (genanalysis.lattice.cell_width), compared as an upper bound (theory.compare,
`compare_bound`) with −d/2 (EF), −d (EF+Hlat) and −3d/2 (EFH), docs/theory.md §4
(T13), (T18). No floor:
the width has none. Whatever the verdict is, it is printed. ``--noise σ`` (units of the
weighted rows: eV/Å for forces at weight 1) replaces exact data by data with noise σ, whose
posterior never collapses to zero.

Cost: the full run is long (slow-marked in the tests, hours of CPU for the EFH sets at
large N); ``--quick`` (N = 3, 4, 6, 8, M = 32, degree 8) takes a few minutes.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings

import numpy as np

from genanalysis.data import Configuration
from genanalysis.defect import relax
from genanalysis.fit import LossWeights, ModelSpec, fit_linear
from genanalysis.identifiability import PRIORS, width_for_priors
from genanalysis.lattice import cell_width, defect_cell
from genanalysis.potentials import load_potential
from theory.compare import compare_bound, fit_slope

REFERENCE, LATTICE, D = "builtin:morse", "triangular", 2
CUTOFF = 2.5
SETS = {"EF": -D / 2, "EF+Hlat": -float(D), "EFH": -1.5 * D}
FULL = dict(sizes=(3, 4, 6, 8, 10, 12), degree=12, body_order=4, probes=20, rattles=2, h_defect_max=8)
QUICK = dict(sizes=(3, 4, 6, 8), degree=8, body_order=4, probes=10, rattles=1, h_defect_max=6)


def training_cells(pot, a: float, n: int, rattles: int, seed: int) -> list[tuple[str, str, object]]:
    """(group, kind, atoms): relaxed, rattled and strained cells of size n."""
    rng = np.random.default_rng(seed + 1000 * n)
    out = []
    for group in ("perfect", "vacancy", "interstitial"):
        cell = defect_cell(LATTICE, a, n, group, "X")
        relaxed = cell if group == "perfect" else relax(cell, pot, fmax=1e-8).atoms
        out.append((group, "relaxed", relaxed))
        for _ in range(rattles):
            at = relaxed.copy()
            at.positions[:, :D] += rng.normal(scale=0.005, size=(len(at), D))
            out.append((group, "rattled", at))
        at = relaxed.copy()
        eps = np.eye(3)
        eps[:D, :D] += 0.005 * rng.normal(size=(D, D))
        at.set_cell(np.array(at.cell) @ eps.T, scale_atoms=True)
        out.append((group, "strained", at))
    return out


def configurations(pot, cells, obs: str, n: int, h_defect_max: int) -> list[Configuration]:
    out = []
    for group, kind, at in cells:
        ev = pot.observe(at)
        want_h = kind != "rattled" and ((obs in ("EF+Hlat", "EFH") and group == "perfect")
                                        or (obs == "EFH" and group != "perfect" and kind == "relaxed"
                                            and n <= h_defect_max))
        out.append(Configuration(at, group=group, energy=ev.energy, forces=ev.forces,
                                 hessian=pot.hessian(at) if want_h else None))
    return out


def run(sizes, degree, body_order, probes, rattles, h_defect_max, seed: int = 0, noise: float = 0.0,
        log=sys.stderr) -> dict:
    pot = load_potential(REFERENCE)
    a = pot.equilibrium_lattice_constant(LATTICE)
    spec = ModelSpec(cutoff=CUTOFF, degree=degree, body_order=body_order, l_max=2)
    loss = LossWeights(E=1.0, F=1.0, H=0.01)
    m = 4 * max(sizes)
    t0 = time.perf_counter()
    tests = {}
    for defect in ("vacancy", "interstitial"):
        cell0 = defect_cell(LATTICE, a, m, defect, "X")
        tests[defect] = (cell0, relax(cell0, pot, fmax=1e-9).atoms)
    rows = []
    for n in sizes:
        cells = training_cells(pot, a, n, rattles, seed)
        for obs in SETS:
            configs = configurations(pot, cells, obs, n, h_defect_max)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # rank deficiency is what is measured
                model, diag = fit_linear(configs, spec, loss)
            for defect, (cell0, atoms) in tests.items():
                res = width_for_priors(model, model.r_factor_, atoms, pot, reference_cell=cell0, probes=probes,
                                       seed=seed, noise=noise)
                for prior, r in res.items():
                    rows.append(dict(N=n, observations=obs, defect=defect, prior=prior, M=m, n_params=model.n_params,
                                     rank=diag["effective_rank"], width=r.width, width_stderr=r.width_stderr,
                                     unseen=r.unseen, formation_energy_spread=r.formation_energy_spread,
                                     dipole_spread=r.dipole_spread, cell_width=cell_width(LATTICE, a, n),
                                     defect_cell_h=obs == "EFH" and n <= h_defect_max))
                    print(f"  N={n} {obs:7s} {defect:12s} {prior}: s_N = {r.width:.3e} ± {r.width_stderr:.1e} Å "
                          f"(rank {diag['effective_rank']}/{model.n_params}, unseen {r.unseen})", file=log)
    fits = []
    for obs, pred in SETS.items():
        for defect in tests:
            for prior in PRIORS:
                pts = [r for r in rows if r["observations"] == obs and r["defect"] == defect and r["prior"] == prior
                       and r["cell_width"] >= 2 * CUTOFF and r["width"] > 0
                       and (obs != "EFH" or r["defect_cell_h"])]
                entry = dict(observations=obs, defect=defect, prior=prior, predicted=pred,
                             fit_range=[p["N"] for p in pts])
                if len(pts) >= 2:
                    f = fit_slope([p["N"] for p in pts], [p["width"] for p in pts])
                    v = compare_bound(f, pred)
                    entry.update(slope=f.slope, ci=[f.ci_low, f.ci_high], verdict=v.label, reason=v.reason)
                else:
                    entry.update(slope=None, ci=None, verdict="inconclusive",
                                 reason=f"{len(pts)} sizes with cells ≥ 2·r_cut wide and a non-zero width")
                fits.append(entry)
    return dict(reference=REFERENCE, lattice=LATTICE, a=a, cutoff=CUTOFF, model=dict(degree=degree,
                body_order=body_order, l_max=2), sizes=list(sizes), M=m, probes=probes, rattles=rattles,
                priors=PRIORS, prior_scale_eV=1.0, noise=noise, rows=rows, fits=fits, wall_seconds=time.perf_counter() - t0)


def table(out: dict) -> str:
    lines = ["| observations | defect | prior | fit range N | fitted slope | 95 % CI | predicted (upper bound) | "
             "verdict |", "|---|---|---|---|---|---|---|---|"]
    for f in out["fits"]:
        s = "—" if f["slope"] is None else f"{f['slope']:.2f}"
        ci = "—" if f["ci"] is None or not all(map(math.isfinite, f["ci"])) else \
            f"[{f['ci'][0]:.2f}, {f['ci'][1]:.2f}]"
        fr = "—" if not f["fit_range"] else f"{f['fit_range'][0]}–{f['fit_range'][-1]}"
        lines.append(f"| {f['observations']} | {f['defect']} | {f['prior']} | {fr} | {s} | {ci} | "
                     f"{f['predicted']:g} | {f['verdict']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="N = 3, 4, 6, 8, M = 32, degree 8 (a few minutes)")
    ap.add_argument("--json", help="write every row and fit as JSON to this file")
    ap.add_argument("--noise", type=float, default=0.0,
                    help="noise σ of the weighted rows (eV/Å for forces at weight 1; default 0: exact data)")
    args = ap.parse_args(argv)
    out = run(**(QUICK if args.quick else FULL), noise=args.noise)
    print(table(out))
    print(f"(M = {out['M']}, model degree {out['model']['degree']}, body order {out['model']['body_order']}; "
          f"{out['probes']} probes; noise σ = {out['noise']:g}; wall {out['wall_seconds']:.0f} s)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)
            fh.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
