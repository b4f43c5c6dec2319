"""Conservative against direct-force models in static defect simulations (docs/directforce.md).

    python studies/directforce_compare.py --systems morse --seeds 0 1 2       # d = 2
    python studies/directforce_compare.py --systems w --seeds 0 1              # d = 3
    python studies/directforce_compare.py --table docs/data/directforce_compare_morse.json ...

The question of seed 000 (issue 18 item 3): does a model that predicts forces without an
energy (kind ``directforce``, docs/models.md §10) beat the linear ACE model (an energy) on
accuracy or speed in static defect simulations, at equal parameter count and equal data?

For each system (``morse``: 2D triangular Morse, training cells N = 4, test domain M = 12;
``w``: bcc W EAM, N = 2, M = 4), seed (the training set's rattles and strains, and the
validation split) and matched size (``SIZES``: the two kinds at exactly the same number of
coefficients), three models are fitted to one training set (studies/directforce_compare/
SYSTEM.toml, E, F, V observed):

* ``ace_efv``: the linear ACE on all the data (E, F, V; loss weights 1, 1, 1);
* ``ace_f``: the linear ACE on the forces only (the same observations as the direct-force model);
* ``df``: the direct-force model on the forces (it predicts no E or V; those rows are dropped).

Each is evaluated on a vacancy and an interstitial (``genanalysis.experiment.evaluate``, both
relaxations from the unrelaxed cell to fmax = 1e-8 eV/Å; the ACE by the energy Newton–CG
solver, the direct-force model by Newton–GMRES), with the reference equilibrium ū relaxed
once per (system, defect). A row records every metric of ``evaluate`` (less the softening
study's parity profile) and, compared here: the fit errors (train and held-out 20 %, F eV/Å,
E and V eV/atom where predicted), the defect geometry error ‖D(ū^ML − ū)‖ (Å) and the
largest core displacement error (Å), the residual ‖f^ML(ū)‖₋₁ (eV/Å), the bound (T8) or
(T19) and the effectivity, the stability constant c or inf-sup constant γ (eV/Å²), the
perfect lattice's phonon-frequency ratios (from the Hessian; for the direct-force model its
symmetrised stiffness) and force-constant error (eV/Å²), the antisymmetric part of the
stiffness ‖½(K − Kᵀ)‖_F/‖K‖_F at ū^ML, at the perfect lattice and at a rattled perfect
cell, the net force and loop work, the model solver's Newton and Krylov iterations, force
and Jacobian-product counts, and ``--repeats`` timed solves (s, the smallest) of the model
from the same start: the ACE by its energy solver (``relax``) and by the energy-free one
(``relax_forces``, the same solver as the direct-force model's, so that the model's cost is
separated from the solver's). Torch and BLAS run on one thread. Writes
docs/data/directforce_compare_SYSTEM.json (meta + one row per model and defect) and, with
``--table``, prints the tables and draws docs/figures/directforce-compare.png from such files.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import pathlib
import re
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "studies"))

from studyio import write_rows  # noqa: E402

HERE = ROOT / "studies" / "directforce_compare"
SYSTEMS = {
    "morse": dict(features=dict(cutoff=2.5), size=12, element=None),
    "w": dict(features=dict(cutoff=5.0, r_in=2.0), size=4, element=None),
}
#: matched sizes: (name, linear ACE parameters, direct-force parameters); both have the
#: number of coefficients in the name (checked when fitted). ``pair_degree = "match"``: the
#: ACE's number of pair radial functions is set so that its count equals the direct-force
#: model's (the 2D and 3D bases differ by a few invariants at body order 4).
SIZES = (
    ("p35", dict(body_order=3, degree=7, l_max=2), dict(body_order=3, degree=2, l_max=2, pair_degree=5)),
    ("p42", dict(body_order=3, degree=8, l_max=1), dict(body_order=2, degree=1, l_max=0, pair_degree=6)),
    ("p55", dict(body_order=4, degree=7, l_max=2), dict(body_order=3, degree=4, l_max=2, pair_degree=5)),
    ("p72", dict(body_order=4, degree=8, l_max=1, pair_degree="match"), dict(body_order=2, degree=1, l_max=0,
                                                                             pair_degree=8)),
    ("p110", dict(body_order=4, degree=9, l_max=2, pair_degree="match"), dict(body_order=2, degree=1, l_max=0,
                                                                              pair_degree=10)),
    # the p110 direct-force model against an ACE that keeps a fine pair basis (32 radial functions)
    ("p110b", dict(body_order=4, degree=9, l_max=1, pair_degree="match"), dict(body_order=2, degree=1, l_max=0,
                                                                               pair_degree=10)),
)
#: the sizes run by default (p110b is the check of §4 of docs/directforce.md, run with --sizes)
DEFAULT_SIZES = ("p35", "p42", "p55", "p72", "p110")


def coefficients(size: str) -> int:
    """The number of coefficients a size name states (p110b -> 110)."""
    return int(re.match(r"p(\d+)", size)[1])


def matched(ace: dict, df: dict, features: dict, dim: int) -> dict:
    """The ACE parameters of a matched size with ``pair_degree = "match"`` resolved: the
    pair radial count that gives the linear ACE the direct-force model's number of
    coefficients (the pair features are one per radial function)."""
    from genanalysis.models.basis import ACESpec
    from genanalysis.models.directforce import DirectForceACE
    from genanalysis.models.linear import LinearACE

    if ace.get("pair_degree") != "match":
        return ace
    target = DirectForceACE(ACESpec(dim=dim, **features, **df)).n_params
    base = dict(ace, pair_degree=2 * ace["degree"])
    count = LinearACE(ACESpec(dim=dim, **features, **base)).n_params
    return dict(ace, pair_degree=base["pair_degree"] + target - count)
MODELS = ("ace_efv", "ace_f", "df")
DEFECTS = ("vacancy", "interstitial")
FMAX = 1e-8
UNITS = {"fit_rmse_F": "eV/Å", "fit_rmse_E": "eV/atom", "fit_rmse_V": "eV/atom", "error_energy_norm": "Å",
         "max_core_displacement_error": "Å", "residual_dual_norm": "eV/Å", "a_posteriori_bound": "Å",
         "stability": "eV/Å²", "force_constant_error": "eV/Å²", "net_force_model": "eV/Å",
         "loop_work_model": "eV", "solve_seconds": "s", "formation_energy_error": "eV", "fit_seconds": "s"}


def training_set(system: str, seed: int, work: pathlib.Path, configs: int | None = None):
    from genanalysis.trainingset import read_training_set
    from genanalysis.trainingset.build import build
    from genanalysis.trainingset.spec import TrainingSetSpec

    spec = dataclasses.replace(TrainingSetSpec.from_toml(HERE / f"{system}.toml"), seed=seed)
    if configs is not None:
        spec = dataclasses.replace(spec, configs_per_size=configs)
    out = work / f"{system}-seed{seed}" if configs is None else work / f"{system}-seed{seed}-c{configs}"
    build(spec, out)
    return spec, read_training_set(out)


def fit_models(system: str, size: tuple, configs, seed: int) -> dict:
    """The three models of the module docstring at one matched size: {label: (FitResult, s)}."""
    from genanalysis.fit import FitSpec, LossWeights, ModelSpec, fit

    name, ace, df = size
    feats = SYSTEMS[system]["features"]
    ace = matched(ace, df, feats, _dim(configs[0].atoms))
    out = {}
    for label in MODELS:
        kind, params = ("directforce", df) if label == "df" else ("ace", ace)
        loss = LossWeights(E=0.0, F=1.0, V=0.0) if label == "ace_f" else LossWeights(E=1.0, F=1.0, V=1.0)
        spec = FitSpec(training_set=f"{system}.toml", model=ModelSpec(kind=kind, **feats, **params), loss=loss,
                       validation_fraction=0.2, seed=seed)
        t0 = time.perf_counter()
        out[label] = (fit(configs, spec), time.perf_counter() - t0)
    counts = {label: r.report["n_params"] for label, (r, _) in out.items()}
    if len(set(counts.values())) != 1:
        raise AssertionError(f"size {name}: parameter counts differ {counts}")
    return out


def _dim(atoms) -> int:
    from genanalysis.lattice import atoms_dim

    return atoms_dim(atoms)


def _antisymmetry(pot, atoms) -> float:
    from genanalysis.forcesolve import nonconservative_measures

    return nonconservative_measures(atoms, pot, loop_points=4)["antisymmetry"]


def perfect_cells(system: str, spec, element: str):
    """(perfect M-cell, the same rattled by 0.03 Å with seed 0) of the system's lattice."""
    from genanalysis.lattice import defect_cell
    from genanalysis.potentials import load_potential

    a = load_potential(spec.potential).equilibrium_lattice_constant(spec.lattice)
    cell = defect_cell(spec.lattice, a, SYSTEMS[system]["size"], "perfect", element)
    rattled = cell.copy()
    rng = np.random.default_rng(0)
    dim = 2 if spec.lattice == "triangular" else 3
    rattled.positions[:, :dim] += rng.normal(scale=0.03, size=(len(cell), dim))
    return cell, rattled


def timed_solves(pot, start, label: str, repeats: int) -> dict:
    """The smallest of ``repeats`` wall times (s) of the model's solvers from ``start``."""
    from genanalysis.forcesolve import relax_forces
    from genanalysis.relaxation import relax

    solvers = [("relax_forces", relax_forces)] + ([("relax", relax)] if label != "df" else [])
    out = {}
    for name, solve in solvers:
        best, rel = math.inf, None
        for _ in range(repeats):
            pot.clear_caches()  # no neighbour list carried over from the last solve
            t0 = time.perf_counter()
            rel = solve(start, pot, fmax=FMAX)
            best = min(best, time.perf_counter() - t0)
        out[name] = {"seconds": best, "converged": bool(rel.converged), "iterations": rel.iterations,
                     "force_evaluations": rel.force_evaluations, "products": rel.hvp_evaluations,
                     "krylov_iterations": getattr(rel, "krylov_iterations", None), "status": rel.status}
    return out


def run(system: str, seeds, repeats: int, work: pathlib.Path, configs: int | None = None, sizes=SIZES) -> list:
    from genanalysis.experiment import ExperimentSpec, evaluate, reference_equilibrium
    from genanalysis.lattice import defect_cell
    from genanalysis.models.io import potential_of

    rows = []
    refs = {}
    for seed in seeds:
        spec, data = training_set(system, seed, work, configs)
        element = data[0].atoms.get_chemical_symbols()[0]
        perfect, rattled = perfect_cells(system, spec, element)
        for size in sizes:
            fits = fit_models(system, size, data, seed)
            for label, (fr, fit_s) in fits.items():
                pot = potential_of(fr.model, name=f"{system}/{size[0]}/{label}/seed{seed}", element=element)
                rep = fr.report
                fit_row = {f"fit_rmse_{t}_{s}": rep[s]["all"][t]["rmse"] for s in ("train", "validation")
                           for t in rep[s]["all"]}
                base = {"system": system, "seed": seed, "match": size[0], "model": label, "kind": fr.model.kind,
                        "n_params": rep["n_params"], "fit_seconds": fit_s, "configurations": len(data),
                        "configs_per_size": spec.configs_per_size, **fit_row,
                        "antisymmetry_perfect": _antisymmetry(pot, perfect),
                        "antisymmetry_rattled_perfect": _antisymmetry(pot, rattled)}
                for defect in DEFECTS:
                    es = ExperimentSpec(lattice=spec.lattice, defect=defect, size=SYSTEMS[system]["size"], fmax=FMAX)
                    key = (defect,)
                    if key not in refs:
                        refs[key] = reference_equilibrium(spec.potential, es)
                    t0 = time.perf_counter()
                    res = evaluate(pot, spec.potential, es, reference_equilibrium=refs[key])
                    m = res.metrics()
                    m.pop("parity_profile", None)  # the softening study's profile: not compared here
                    row = dict(base, defect=defect, evaluate_seconds=time.perf_counter() - t0,
                               model_relaxation=res.model_relaxation, **m)
                    row["stability"] = m.get("inf_sup_model_at_reference", m.get("stability_model_at_reference"))
                    if repeats:
                        start = defect_cell(spec.lattice, res.a, SYSTEMS[system]["size"], defect, element)
                        row["timed"] = timed_solves(pot, start, label, repeats)
                    rows.append(row)
                    mr = res.model_relaxation or {}
                    print(f"{system} seed {seed} {size[0]:4s} {label:7s} {defect:12s} {row['status']:22s} "
                          f"err {m.get('error_energy_norm', math.nan) or math.nan:.3e} Å  "
                          f"res {m.get('residual_dual_norm') or math.nan:.3e}  "
                          f"Fval {row.get('fit_rmse_F_validation', math.nan):.3e}  "
                          f"newton {mr.get('iterations')} krylov {mr.get('krylov_iterations')}  "
                          f"t {row.get('timed', {}).get('relax_forces', {}).get('seconds', math.nan):.3f} s",
                          flush=True)
    return rows


# ------------------------------------------------------------------------------ tables


def _stats(values) -> str:
    v = np.array([x for x in values if x is not None and math.isfinite(x)], float)
    if v.size == 0:
        return "–"
    if v.size == 1:
        return f"{v[0]:.3g}"
    return f"{np.median(v):.3g} [{v.min():.3g}, {v.max():.3g}]"


def _relaxation(r: dict, key: str):
    return (r.get("model_relaxation") or {}).get(key)


def _timed(r: dict, solver: str, key: str = "seconds"):
    return (r.get("timed") or {}).get(solver, {}).get(key)


def _per_iteration(r: dict, solver: str):
    s, n = _timed(r, solver), _timed(r, solver, "iterations")
    return s / n if s is not None and n else None


#: the columns of the two tables of each (system, defect): accuracy, then the lattice, the
#: non-conservative part and the solver
def _stable(key: str):
    """The metric ``key`` of a row whose model equilibrium converged and is stable, else None."""
    return lambda r: r.get(key) if r["status"] == "converged" else None


ACCURACY = [
    ("converged", None),
    ("F RMSE held-out (eV/Å)", lambda r: r.get("fit_rmse_F_validation")),
    ("‖D(ū^ML−ū)‖ (Å)", _stable("error_energy_norm")),
    ("core error (Å)", _stable("max_core_displacement_error")),
    ("‖f^ML(ū)‖₋₁ (eV/Å)", lambda r: r.get("residual_dual_norm")),
    ("bound (Å)", lambda r: r.get("a_posteriori_bound")),
    ("η", _stable("effectivity")),
    ("c or γ at ū (eV/Å²)", lambda r: r.get("stability")),
]
SOLVER = [
    ("ω^ML/ω − 1", lambda r: None if r.get("phonon_frequency_ratio") is None else r["phonon_frequency_ratio"] - 1),
    ("FC error (eV/Å²)", lambda r: r.get("force_constant_error")),
    ("antisym. perfect", lambda r: r.get("antisymmetry_perfect")),
    ("antisym. rattled perfect", lambda r: r.get("antisymmetry_rattled_perfect")),
    ("antisym. at ū^ML", _stable("antisymmetry_model")),
    ("Newton it.", lambda r: _relaxation(r, "iterations")),
    ("PTC steps", lambda r: _relaxation(r, "continuation_steps")),
    ("GMRES it. / CG products", lambda r: _relaxation(r, "krylov_iterations") if r["kind"] == "directforce"
     else _relaxation(r, "hvp_evaluations")),
    ("solve (s), Newton–GMRES", lambda r: _timed(r, "relax_forces")),
    ("s per iteration", lambda r: _per_iteration(r, "relax_forces")),
    ("solve (s), energy solver", lambda r: _timed(r, "relax")),
]


def tables(rows: list) -> str:
    """Markdown tables of the rows (median [min, max] over seeds), as docs/directforce.md
    shows them: per (system, defect) one of accuracy and one of the lattice, the
    non-conservative part and the solver."""
    import itertools

    out = []
    rows = sorted(rows, key=lambda r: (r["system"], r["defect"], coefficients(r["match"]), r["match"],
                                       MODELS.index(r["model"])))
    for (system, defect), group in itertools.groupby(rows, key=lambda r: (r["system"], r["defect"])):
        group = list(group)
        seeds = sorted({r["seed"] for r in group})
        for title, cols in (("accuracy", ACCURACY), ("lattice, non-conservative part, solver", SOLVER)):
            out.append(f"\n**{system}, {defect}: {title}** (seeds {', '.join(map(str, seeds))}; median [min, max])\n")
            out.append("| size | model | " + " | ".join(c for c, _ in cols) + " |")
            out.append("|---|---|" + "---|" * len(cols))
            for (size, model), cell in itertools.groupby(group, key=lambda r: (r["match"], r["model"])):
                cell = list(cell)
                vals = [f"{sum(r['status'] == 'converged' for r in cell)}/{len(cell)}" if f is None
                        else _stats([f(r) for r in cell]) for _, f in cols]
                out.append(f"| {size} | {model} | " + " | ".join(vals) + " |")
    return "\n".join(out)


def wins(rows: list) -> str:
    """Per system, over its (defect, size, seed) cells: does the direct-force model beat each
    ACE model on the geometry (a stable equilibrium where the ACE's is not, or both stable
    and the smaller ‖D(ū^ML − ū)‖) and on the solve time (its Newton–GMRES against the ACE's
    energy solver, and against the ACE by the same Newton–GMRES)? Counts."""
    out = []
    by = {}
    for r in rows:
        by.setdefault((r["system"], r["defect"], r["match"], r["seed"]), {})[r["model"]] = r
    t = _timed
    for system in sorted({k[0] for k in by}):
        for other in ("ace_efv", "ace_f"):
            acc = both = fast = fast_same = tot = 0
            for key, cell in by.items():
                if key[0] != system or "df" not in cell or other not in cell:
                    continue
                d, o = cell["df"], cell[other]
                tot += 1
                ok_d, ok_o = d["status"] == "converged", o["status"] == "converged"
                both += ok_d and ok_o
                if ok_d and (not ok_o or d["error_energy_norm"] < o["error_energy_norm"]):
                    acc += 1
                if None not in (t(d, "relax_forces"), t(o, "relax")) and t(d, "relax_forces") < t(o, "relax"):
                    fast += 1
                td, to = t(d, "relax_forces"), t(o, "relax_forces")
                if None not in (td, to) and td < to:
                    fast_same += 1
            out.append(f"{system}: direct-force against {other}: the better stable equilibrium in {acc}/{tot} cases "
                       f"(both stable in {both}); the faster solve in {fast}/{tot} (its Newton–GMRES against the "
                       f"ACE's energy solver) and in {fast_same}/{tot} (both by Newton–GMRES)")
        bound = []
        for model in MODELS:
            st = [r for r in rows if r["system"] == system and r["model"] == model and r["status"] == "converged"]
            ratio = max((r["bound_ratio"] for r in st if r.get("bound_ratio") is not None), default=None)
            bound.append(f"{model} {len(st)}/{sum(r['system'] == system and r['model'] == model for r in rows)}"
                         + (f", error/bound at most {ratio:.2g}" if ratio is not None else ""))
        out.append(f"{system}: stable equilibria and the bound: " + "; ".join(bound))
        rel = [r.get("model_relaxation") or {} for r in rows if r["system"] == system and r["model"] == "df"]
        ptc = sorted(int(m["solver"].rsplit(" ", 1)[1]) for m in rel if m.get("continuation_steps"))
        out.append(f"{system}: direct-force model relaxations converged to fmax in "
                   f"{sum(bool(m.get('converged')) for m in rel)}/{len(rel)}, "
                   f"{len(ptc)} of them by pseudo-transient continuation"
                   + (f" (from Newton iteration {', '.join(map(str, ptc))})" if ptc else ""))
    return "\n".join(out)


def figure(rows: list, path: pathlib.Path) -> None:
    """Geometry error against held-out force RMSE (top) and solve time against geometry
    error (bottom), per system; open markers the interstitial, crosses the equilibria that
    are not stable (or not found), at their distance from ū where there is one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = sorted({r["system"] for r in rows})
    fig, axes = plt.subplots(2, len(systems), figsize=(5.2 * len(systems), 8), squeeze=False)
    marks = {"ace_efv": ("o", "C0"), "ace_f": ("s", "C1"), "df": ("^", "C3")}
    for j, system in enumerate(systems):
        for model, (mk, col) in marks.items():
            solver = "relax_forces" if model == "df" else "relax"
            sel = [r for r in rows if r["system"] == system and r["model"] == model
                   and r.get("error_energy_norm") is not None]
            for defect, fill in (("vacancy", col), ("interstitial", "none")):
                for stable in (True, False):
                    s = [r for r in sel if r["defect"] == defect and (r["status"] == "converged") == stable]
                    kw = (dict(marker=mk, edgecolors=col, facecolors=fill) if stable
                          else dict(marker="x", color=col, alpha=0.6))
                    label = f"{model}, {defect}" if stable else (f"{model}, not stable" if defect == "vacancy"
                                                                 else None)
                    axes[0, j].scatter([r["fit_rmse_F_validation"] for r in s],
                                       [r["error_energy_norm"] for r in s], label=label, **kw)
                    s = [r for r in s if _timed(r, solver) is not None]
                    axes[1, j].scatter([r["error_energy_norm"] for r in s], [_timed(r, solver) for r in s], **kw)
        for ax in axes[:, j]:
            ax.set_xscale("log")
            ax.set_yscale("log")
        axes[0, j].set(title=f"{system}", xlabel="held-out force RMSE (eV/Å)", ylabel="‖D(ū^ML − ū)‖ (Å)")
        axes[1, j].set(xlabel="‖D(ū^ML − ū)‖ (Å)", ylabel="solve wall time (s): ACE energy solver, df Newton–GMRES")
        axes[0, j].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


_BLOCK = re.compile(r"(<!-- tables: (?P<files>[^>]*?) -->\n)(?P<body>.*?)(<!-- end tables -->)", re.S)


def load_rows(files) -> list:
    """The rows of the JSON files (paths, or names in docs/data)."""
    out = []
    for f in files:
        path = pathlib.Path(f)
        if not path.is_file():
            path = ROOT / "docs" / "data" / f
        out.extend(json.loads(path.read_text())["rows"])
    return out


def _meta(name: str) -> dict:
    return json.loads((ROOT / "docs" / "data" / name).read_text())["meta"]


def render_page(text: str) -> str:
    """``text`` with every block ``<!-- tables: FILES -->`` … ``<!-- end tables -->`` filled
    with the tables and counts of those files of docs/data (what docs/directforce.md holds)."""
    def fill(m):
        files = m["files"].split()
        rows = load_rows(files)
        runs = "; ".join(f"`{f}`: {_meta(f)['wall_seconds']:.0f} s wall (`{_meta(f)['command']}`)" for f in files)
        return f"{m.group(1)}{tables(rows).strip()}\n\n{wins(rows)}\n\nRuns: {runs}.\n{m.group(4)}"

    return _BLOCK.sub(fill, text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--systems", nargs="+", default=["morse"], choices=sorted(SYSTEMS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--repeats", type=int, default=3, help="timed solves per model and defect (0: none)")
    ap.add_argument("--configs", type=int, default=None,
                    help="configurations per defect group (default: the spec's, 6); the data-size check")
    ap.add_argument("--sizes", nargs="+", default=None, choices=[s[0] for s in SIZES],
                    help=f"matched sizes to run (default {' '.join(DEFAULT_SIZES)})")
    ap.add_argument("--work", default=str(ROOT / "results" / "directforce_compare"),
                    help="directory for the built training sets (default results/directforce_compare)")
    ap.add_argument("--out", default=None, help="JSON file (default docs/data/directforce_compare_SYSTEM.json)")
    ap.add_argument("--table", nargs="+", default=None, help="print the tables of these JSON files and draw the figure")
    ap.add_argument("--figure", default=str(ROOT / "docs" / "figures" / "directforce-compare.png"))
    ap.add_argument("--page", default=None, help="fill the table blocks of this page (docs/directforce.md) in place")
    args = ap.parse_args()
    if args.page:
        page = pathlib.Path(args.page)
        page.write_text(render_page(page.read_text()))
        return
    if args.table:
        rows = load_rows(args.table)
        print(tables(rows))
        print()
        print(wins(rows))
        figure(rows, pathlib.Path(args.figure))
        return
    import torch

    torch.set_num_threads(1)
    work = pathlib.Path(args.work)
    for system in args.systems:
        t0 = time.perf_counter()
        sizes = [s for s in SIZES if s[0] in (args.sizes or DEFAULT_SIZES)]
        rows = run(system, args.seeds, args.repeats, work, args.configs, sizes)
        dim = 2 if system == "morse" else 3
        meta_sizes = [[n, matched(a, d, SYSTEMS[system]["features"], dim), d] for n, a, d in sizes]
        meta = {"study": "directforce_compare", "system": system, "seeds": args.seeds, "repeats": args.repeats,
                "fmax": FMAX, "test_domain": SYSTEMS[system]["size"], "sizes": meta_sizes,
                "configs_per_size": args.configs,
                "command": "python studies/directforce_compare.py " + " ".join(sys.argv[1:]), "units": UNITS,
                "wall_seconds": time.perf_counter() - t0}
        tag = ("" if args.configs is None else f"_c{args.configs}") + ("" if args.sizes is None else
                                                                       "_" + "-".join(args.sizes))
        out = args.out or str(ROOT / "docs" / "data" / f"directforce_compare_{system}{tag}.json")
        write_rows(out, meta, json_ready(rows))


def json_ready(rows):
    from genanalysis.jsonutil import json_ready as ready

    return ready(rows, nonfinite_as_none=True)


if __name__ == "__main__":
    main()
