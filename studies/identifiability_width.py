"""The identifiability width s_N against the training-cell size N (docs/studies.md §10, §12a).

    python studies/identifiability_width.py [--quick] [--dim 2|3] [--defect D ...] [--noise σ ...] [--json FILE]
        [--probes K] [--dipole | --no-dipole] [--h-defect-max N]      # override the run's settings
    python studies/identifiability_width.py --tables FILE      # a stored run's tables, no computation

d = 2, triangular `builtin:morse` (``--dim 3``: bcc `builtin:W`, model cutoff 4.6 Å with
r_in = 2.0 Å, N = 3 … 6, M = 24, defect-cell force constants up to N = 4). Training set per
N: perfect, vacancy and interstitial (centre; bcc: the ⟨110⟩ dumbbell) cells of size N,
each relaxed with the reference, plus ``rattles`` copies rattled by 0.005 Å and one
strained by 0.5 %. Observation sets: ``EF`` (energies and forces on
every cell), ``EF+Hlat`` (plus force constants of the unrattled perfect cells) and ``EFH``
(plus force constants of the relaxed defect cells too). Linear model: cutoff 2.5 Å, degree
12, body order 4, l_max 2 (293 coefficients; ``--quick``: degree 8, 81). For each set and
test defect the width s_N (Å, genanalysis.identifiability, Hutchinson with ``probes``
probes, both priors of ``PRIORS`` with scale 1 eV) on a test domain M = 4·N_max relaxed
with the reference; the log-log slope of s_N over the N whose cells are at least 2·r_cut
wide (genanalysis.lattice.cell_width), compared as an upper bound (theory.compare,
`compare_bound`) with −d/2 (EF), −d (EF+Hlat) and −3d/2 (EFH), docs/theory.md §4
(T13), (T18). No floor is subtracted (the posterior has none in exact arithmetic; measured,
the width levels off: docs/studies.md §12a). Whatever the verdict is, it is printed. ``--noise σ`` (units of the
weighted rows: eV/Å for forces at weight 1; repeatable, every level on the same fits)
replaces exact data by data with noise σ, whose posterior never collapses to zero.

Cost (one thread, measured: docs/studies.md §12): the full d = 2 run (N ≤ 12, M = 48,
293 coefficients, two noise levels) ~2 min of CPU; each d = 3 test defect (M = 24, 300
coefficients) ~3 min; ``--quick`` a few minutes (slow-marked in the tests).
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
from genanalysis.identifiability import PRIORS, model_designs, width_for_priors
from genanalysis.lattice import cell_width, defect_cell, perfect_cell
from genanalysis.potentials import load_potential
from theory.compare import compare_bound, fit_slope

#: per dimension: reference, lattice, element, model cutoff and inner radius (Å)
CASES = {2: dict(reference="builtin:morse", lattice="triangular", element="X", cutoff=2.5, r_in=None),
         3: dict(reference="builtin:W", lattice="bcc", element="W", cutoff=4.6, r_in=2.0)}
SETS = ("EF", "EF+Hlat", "EFH")
#: the predicted upper-bound exponent of s_N in N per set: −d/2, −d, −3d/2 (T13), (T18)
EXPONENT = {"EF": 0.5, "EF+Hlat": 1.0, "EFH": 1.5}
#: d = 3 is sized to the CPU budget (docs/studies.md §12): 6 probes, no dipole spread (two
#: reference virials per probe), N from 3 (the first cell ≥ 2·r_cut = 9.2 Å wide)
FULL = {2: dict(sizes=(3, 4, 6, 8, 10, 12), degree=12, body_order=4, probes=20, rattles=2, h_defect_max=12,
                dipole=True),
        3: dict(sizes=(3, 4, 5, 6), degree=12, body_order=4, probes=6, rattles=2, h_defect_max=4, dipole=False)}
QUICK = {2: dict(sizes=(3, 4, 6, 8), degree=8, body_order=4, probes=10, rattles=1, h_defect_max=6, dipole=True),
         3: dict(sizes=(2, 3, 4), degree=8, body_order=4, probes=10, rattles=1, h_defect_max=3, dipole=False)}
DEFECTS = ("vacancy", "interstitial")


def training_cells(pot, a: float, n: int, rattles: int, seed: int, dim: int = 2) -> list[tuple[str, str, object]]:
    """(group, kind, atoms): relaxed, rattled and strained cells of size n."""
    case = CASES[dim]
    rng = np.random.default_rng(seed + 1000 * n)
    out = []
    for group in ("perfect", "vacancy", "interstitial"):
        cell = defect_cell(case["lattice"], a, n, group, case["element"])
        relaxed = cell if group == "perfect" else relax(cell, pot, fmax=1e-8).atoms
        out.append((group, "relaxed", relaxed))
        for _ in range(rattles):
            at = relaxed.copy()
            at.positions[:, :dim] += rng.normal(scale=0.005, size=(len(at), dim))
            out.append((group, "rattled", at))
        at = relaxed.copy()
        eps = np.eye(3)
        eps[:dim, :dim] += 0.005 * rng.normal(size=(dim, dim))
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


def run(sizes, degree, body_order, probes, rattles, h_defect_max, dipole: bool = True, seed: int = 0,
        noises=(0.0,), dim: int = 2, defects=DEFECTS, log=sys.stderr) -> dict:
    case = CASES[dim]
    lattice = case["lattice"]
    pot = load_potential(case["reference"])
    a = pot.equilibrium_lattice_constant(lattice)
    spec = ModelSpec(cutoff=case["cutoff"], degree=degree, body_order=body_order, l_max=2,
                     **({} if case["r_in"] is None else {"r_in": case["r_in"]}))
    loss = LossWeights(E=1.0, F=1.0, H=0.01)
    m = 4 * max(sizes)
    t0 = time.perf_counter()
    tests = {}
    for defect in defects:
        cell0 = defect_cell(lattice, a, m, defect, case["element"])
        tests[defect] = (cell0, relax(cell0, pot, fmax=1e-9).atoms)
    rows, seconds, designs = [], {}, {}
    for n in sizes:
        cells = training_cells(pot, a, n, rattles, seed, dim)
        for obs in SETS:
            t1 = time.process_time()
            configs = configurations(pot, cells, obs, n, h_defect_max)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # rank deficiency is what is measured
                model, diag = fit_linear(configs, spec, loss)
            seconds[f"fit N={n} {obs}"] = time.process_time() - t1
            for defect, (cell0, atoms) in tests.items():
                if defect not in designs:  # the basis's rows at ū_M: one model class, shared by every fit
                    t1 = time.process_time()
                    designs[defect] = model_designs(model, atoms, perfect_cell(lattice, a, m, case["element"]),
                                                    dipole=dipole)
                    seconds[f"designs {defect}"] = time.process_time() - t1
                for noise in noises:
                    t1 = time.process_time()
                    res = width_for_priors(model, model.r_factor_, atoms, pot, reference_cell=cell0, probes=probes,
                                           seed=seed, noise=noise, dipole=dipole, designs=designs[defect])
                    seconds[f"width N={n} {obs} {defect} σ={noise:g}"] = time.process_time() - t1
                    for prior, r in res.items():
                        rows.append(dict(N=n, observations=obs, defect=defect, prior=prior, noise=noise, M=m,
                                         n_params=model.n_params, rank=diag["effective_rank"], width=r.width,
                                         width_stderr=r.width_stderr, unseen=r.unseen,
                                         formation_energy_spread=r.formation_energy_spread,
                                         dipole_spread=r.dipole_spread, cell_width=cell_width(lattice, a, n),
                                         defect_cell_h=obs == "EFH" and n <= h_defect_max))
                        print(f"  N={n} {obs:7s} {defect:12s} {prior} σ={noise:g}: s_N = {r.width:.3e} ± "
                              f"{r.width_stderr:.1e} Å (rank {diag['effective_rank']}/{model.n_params}, "
                              f"unseen {r.unseen})", file=log, flush=True)
    out = dict(dim=dim, reference=case["reference"], lattice=lattice, a=a, cutoff=case["cutoff"], r_in=case["r_in"],
               model=dict(degree=degree, body_order=body_order, l_max=2), sizes=list(sizes), M=m, probes=probes,
               rattles=rattles, h_defect_max=h_defect_max, dipole=dipole, priors=PRIORS, prior_scale_eV=1.0, noises=list(noises),
               defects=list(defects), rows=rows, cpu_seconds=seconds, wall_seconds=time.perf_counter() - t0)
    out["fits"] = fits(out)
    return out


def fits(out: dict) -> list[dict]:
    """The slope of s_N against N per (noise, set, defect, prior), over the N whose cells are
    at least 2·r_cut wide, with a non-zero width and (EFH) defect-cell force constants;
    compared as an upper bound with −(d/2, d, 3d/2). Aggregation of ``out["rows"]`` only."""
    dim = out.get("dim", 2)
    res = []
    for noise in out.get("noises", [out.get("noise", 0.0)]):
        for obs in SETS:
            pred = -EXPONENT[obs] * dim
            for defect in out.get("defects", DEFECTS):
                for prior in out["priors"]:
                    pts = [r for r in out["rows"] if r.get("noise", out.get("noise", 0.0)) == noise
                           and r["observations"] == obs and r["defect"] == defect and r["prior"] == prior
                           and r["cell_width"] >= 2 * out["cutoff"] and r["width"] > 0
                           and (obs != "EFH" or r["defect_cell_h"])]
                    entry = dict(noise=noise, observations=obs, defect=defect, prior=prior, predicted=pred,
                                 fit_range=[p["N"] for p in pts])
                    if len(pts) >= 2:
                        f = fit_slope([p["N"] for p in pts], [p["width"] for p in pts])
                        v = compare_bound(f, pred)
                        entry.update(slope=f.slope, ci=[f.ci_low, f.ci_high], verdict=v.label, reason=v.reason)
                    else:
                        entry.update(slope=None, ci=None, verdict="inconclusive",
                                     reason=f"{len(pts)} sizes with cells ≥ 2·r_cut wide and a non-zero width")
                    res.append(entry)
    return res


def _width(r) -> str:
    return "0" if r["width"] == 0 else f"{r['width']:.1e} ± {r['width_stderr']:.0e}"


def widths_table(out: dict, noise: float) -> str:
    """s_N (Å, ± one standard error of the Hutchinson mean) per N and set at one noise level."""
    pri = list(out["priors"])
    cols = [(d, q) for d in out.get("defects", DEFECTS) for q in pri]
    lines = ["| N | set | " + " | ".join(f"{d}, {q}" for d, q in cols) + " |", "|---|---|" + "---|" * len(cols)]
    by = {(r["N"], r["observations"], r["defect"], r["prior"]): r for r in out["rows"]
          if r.get("noise", out.get("noise", 0.0)) == noise}
    for n in out["sizes"]:
        for obs in SETS:
            cells = [by.get((n, obs, d, q)) for d, q in cols]
            if any(c is None for c in cells):
                continue
            tag = obs if obs != "EFH" or cells[0]["defect_cell_h"] else f"{obs} (no defect-cell H: = EF+Hlat)"
            lines.append(f"| {n} | {tag} | " + " | ".join(_width(c) for c in cells) + " |")
    return "\n".join(lines)


def table(out: dict) -> str:
    """The slopes of s_N against N (:func:`fits`) with their range, interval and verdict."""
    lines = ["| σ (eV/Å) | observations | defect | prior | fit range N | fitted slope | 95 % CI | "
             "predicted (upper bound) | verdict |", "|---|---|---|---|---|---|---|---|---|"]
    for f in out["fits"]:
        s = "—" if f["slope"] is None else f"{f['slope']:.2f}"
        ci = "—" if f["ci"] is None or not all(map(math.isfinite, f["ci"])) else \
            f"[{f['ci'][0]:.2f}, {f['ci'][1]:.2f}]"
        fr = "—" if not f["fit_range"] else f"{f['fit_range'][0]}–{f['fit_range'][-1]}"
        lines.append(f"| {f.get('noise', out.get('noise', 0.0)):g} | {f['observations']} | {f['defect']} | "
                     f"{f['prior']} | {fr} | {s} | {ci} | {f['predicted']:g} | {f['verdict']} |")
    return "\n".join(lines)


def tables(out: dict) -> str:
    """Every table of a run (the width per N at each noise level, then the slopes), as
    docs/studies.md §12 holds them; recomputes the fits from the rows."""
    out = dict(out, fits=fits(out))
    parts = [f"σ = {noise:g} eV/Å, s_N (Å):\n\n" + widths_table(out, noise) for noise in out["noises"]]
    return "\n\n".join(parts + [table(out)])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer, smaller sizes and a degree-8 model (a few minutes)")
    ap.add_argument("--dim", type=int, choices=sorted(CASES), default=2,
                    help="2: triangular builtin:morse (default); 3: bcc builtin:W")
    ap.add_argument("--json", help="write every row and fit as JSON to this file")
    ap.add_argument("--noise", type=float, action="append",
                    help="noise σ of the weighted rows (eV/Å for forces at weight 1; repeatable, every level on the "
                         "same fits; default 0: exact data)")
    ap.add_argument("--defect", action="append", choices=DEFECTS,
                    help="test defect (repeatable; default both)")
    ap.add_argument("--tables", metavar="JSON", help="print the tables of a stored run (no computation) and exit")
    ap.add_argument("--probes", type=int, metavar="K", help="Hutchinson probes (default: the run's, FULL/QUICK)")
    ap.add_argument("--dipole", action=argparse.BooleanOptionalAction, default=None,
                    help="also the propagated spread of E_f and of the dipole tensor (default: the run's)")
    ap.add_argument("--h-defect-max", type=int, metavar="N",
                    help="defect-cell force constants (EFH) up to this N (default: the run's)")
    args = ap.parse_args(argv)
    if args.tables:
        with open(args.tables) as fh:
            text = tables(json.load(fh))
        print(text)
        return text
    noises = tuple(args.noise) if args.noise else (0.0,)
    if any(not (math.isfinite(v) and v >= 0) for v in noises):
        raise SystemExit(f"--noise {noises}: every σ must be a finite number ≥ 0")
    settings = dict((QUICK if args.quick else FULL)[args.dim])
    for key, value in (("probes", args.probes), ("dipole", args.dipole), ("h_defect_max", args.h_defect_max)):
        if value is not None:
            settings[key] = value
    if settings["probes"] < 2:
        raise SystemExit(f"--probes {settings['probes']}: at least 2 (the standard error needs two)")
    if settings["h_defect_max"] < 0:
        raise SystemExit(f"--h-defect-max {settings['h_defect_max']}: a cell size N ≥ 0")
    out = run(**settings, noises=noises, dim=args.dim,
              defects=tuple(args.defect) if args.defect else DEFECTS)
    print(tables(out))
    print(f"(d = {out['dim']}, M = {out['M']}, model degree {out['model']['degree']}, body order "
          f"{out['model']['body_order']}; {out['probes']} probes; σ = {', '.join(f'{v:g}' for v in noises)}; "
          f"wall {out['wall_seconds']:.0f} s)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)
            fh.write("\n")
    return 0


if __name__ == "__main__":
    rc = main()
    raise SystemExit(0 if isinstance(rc, str) else rc)
