"""Studies (a)-(d) of issue 16 §7 (docs/dislocations.md §7): linear ACE models of builtin:W
fitted on strained and rattled perfect cells plus dislocation cells of size N of one kind,
evaluated on that dislocation in clamped cylinders of free radius R.

    python studies/dislocation_studies.py --part radius [--kind KIND] [--radii 6 8 10 14 20 28 40 56 80]
    python studies/dislocation_studies.py --part size   [--kind KIND] [--sizes 1 2 3] [--observations E EF EFV]
    python studies/dislocation_studies.py --part virial [--kind KIND] [--weights 0 0.01 0.1 1 10 100]

KIND is ``screw`` (default), ``edge`` or ``mixed``. Each part writes its raw rows to
docs/data/dislocation_study_PART.json (the screw) or docs/data/dislocation_study_KIND_PART.json
(one row per fitted model and R: the experiment's metrics, the fit's report, the model's
elastic constants and the predictor-difference norm below); `python
studies/dislocation_study_tables.py` prints the tables, fits and verdicts of
docs/dislocations.md §7 from them. Work files (training sets, models) go under --work
(default results/dislocation_studies, not tracked).

Training data (identical across parts except where a part varies it):

* ``perfect``: perfect bcc cells N = 2, 3 (16, 54 atoms), the relaxed cell, 4 rattled
  (σ = 0.1 Å) and 3 strained (|ε_ij| ≤ 0.02) copies each;
* the dislocation cells of size N, relaxed, 2 rattled (σ = 0.05 Å) and 1 strained
  (|ε_ij| ≤ 0.01) copies: for the screw ``dislocation:screw``, the periodic quadrupole
  (36 N² atoms); for the edge and mixed, which have no quadrupole cell (docs/dislocations.md
  §6), ``dislocation-cylinder:KIND``, the clamped cylinder of free radius 2 N a, observing
  the forces of its free atoms only;
* observations E, EF or EFV on the perfect cells and the quadrupole (V: the virials, which
  on the strained perfect cells measure the elastic constants), F on a cylinder (which has
  no E or V to observe; with E alone a cylinder gives nothing, so E is not run for the edge
  and mixed); loss weights E = F = 1, V = the part's weight.

Model: the 47-parameter linear ACE of docs/dislocations.md §5 (cutoff 6 Å, degree 8, body
order 3, l_max 3). Experiment: the dislocation of KIND, w = 12 Å, predictor from builtin:W's
elastic constants, the reference of the screw started from the relaxed R_S = 10 Å core (a
controlled core, docs/dislocations.md §4; the edge and mixed have one core structure and
start from the predictor), the model from ū (``start = reference``), fmax 1e-8 eV/Å.

Beside the metrics every row carries ``predictor_difference_norm``: ‖D(û^ML − û)‖ over the
free sites (Å), the energy norm of the difference between the Stroh fields of the model's
and the reference's elastic constants — the linear-elastic far-field part of the error,
whose square grows like ln R with the coefficient that (T22) attributes to ΔC.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import time
import warnings

import numpy as np

from genanalysis.dislocation import cylinder, predictor, predictor_elastic_constants, relax_cylinder
from genanalysis.experiment_dislocation import DislocationSpec, evaluate_dislocation
from genanalysis.fit import FitSpec, fit
from genanalysis.models.io import save_model
from genanalysis.norms import energy_norm, stencil
from genanalysis.potentials import load_potential
from genanalysis.trainingset import TrainingSetSpec, build, read_training_set
from studyio import write_rows

REFERENCE = "builtin:W"
MODEL = {"kind": "ace", "cutoff": 6.0, "degree": 8, "body_order": 3, "l_max": 3, "r_in": 2.0}
SEED_RADIUS = 10.0  # the screw's controlled core (docs/dislocations.md §4)
KINDS = ("screw", "edge", "mixed")


def perfect_spec(obs: str, seed: int) -> TrainingSetSpec:
    return TrainingSetSpec(potential=REFERENCE, lattice="bcc", defects=("perfect",), sizes=(2, 3), configs_per_size=4,
                           rattle=0.1, strains={"amplitude": 0.02, "count": 3}, observations=obs, seed=seed)


def quadrupole_spec(obs: str, n: int, seed: int) -> TrainingSetSpec:
    return TrainingSetSpec(potential=REFERENCE, lattice="bcc", defects=("dislocation",), sizes=(n,),
                           configs_per_size=2, rattle=0.05, strains={"amplitude": 0.01, "count": 1},
                           observations=obs, seed=seed)


def cylinder_spec(kind: str, n: int, seed: int) -> TrainingSetSpec:
    """The clamped training cylinders of ``kind`` (free radius 2 N a), forces of the free atoms."""
    return TrainingSetSpec(potential=REFERENCE, lattice="bcc", defects=(f"dislocation-cylinder:{kind}",), sizes=(n,),
                           configs_per_size=2, rattle=0.05, strains={"amplitude": 0.01, "count": 1},
                           observations="F", seed=seed)


def dislocation_spec(kind: str, obs: str, n: int, seed: int) -> TrainingSetSpec:
    """The dislocation cells of a training set: the screw's quadrupole, else the kind's cylinder."""
    return quadrupole_spec(obs, n, seed) if kind == "screw" else cylinder_spec(kind, n, seed)


def fit_model(work: str, name: str, obs: str, n: int | None, v_weight: float, seed: int = 0, kind: str = "screw"):
    """Build the training sets and fit one model; returns (model directory, fit report, CPU s).
    ``n`` None: no dislocation cells (perfect cells only)."""
    t0 = time.process_time()
    specs = [perfect_spec(obs, seed)] + ([] if n is None else [dislocation_spec(kind, obs, n, seed)])
    dirs = []
    for spec in specs:
        d = os.path.join(work, "sets", spec.content_hash()[:16])
        build(spec, d, workers=1)
        dirs.append(d)
    configs = [c for d in dirs for c in read_training_set(d)]
    weights = {"E": 1.0, "F": 1.0, "V": float(v_weight), "H": 0.0}
    loss = {t: (w if t in obs else 0.0) for t, w in weights.items()}
    fs = FitSpec.from_dict({"training_set": dirs, "validation_fraction": 0.0, "seed": seed, "model": MODEL,
                            "loss": loss})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fit(configs, fs)
    out = os.path.join(work, "models", name)
    save_model(result.model, out, element="W")
    report = json.loads(json.dumps(result.report, default=str))
    report["warnings"] = sorted({str(w.message)[:200] for w in caught})
    return out, report, time.process_time() - t0


@functools.lru_cache(maxsize=None)
def _elastic_constants(model_dir: str | None):
    """(a, C) of the reference (``model_dir`` None) or of a fitted model at the reference's
    lattice constant a: computed once per model, not once per radius."""
    ref = load_potential(REFERENCE)
    a = float(ref.equilibrium_lattice_constant("bcc"))
    pot = ref if model_dir is None else load_potential(model_dir, lattice="bcc", a=a)
    return a, predictor_elastic_constants(pot, a, "W")


def predictor_difference(model_dir: str, radius: float, kind: str) -> dict:
    """‖D(û^ML − û)‖ over the free sites of the R-cylinder (Å), the model's C (eV/Å³) and ΔC."""
    ref = load_potential(REFERENCE)
    a, C = _elastic_constants(None)
    Cm = _elastic_constants(model_dir)[1]
    atoms = cylinder(ref, kind, radius, clamp_width=12.0)
    rel = atoms.arrays["lattice_positions"].copy()
    rel[:, :2] -= np.asarray(atoms.info["core"])
    du = predictor(kind, a, Cm).displacement(rel) - predictor(kind, a, C).displacement(rel)
    free = ~atoms.arrays["clamped"]
    st = stencil(atoms)
    return {"predictor_difference_norm": energy_norm(du, st, sites=free),
            "elastic_constants_model": Cm.tolist(), "elastic_constants_reference": C.tolist(),
            "delta_C_frobenius": float(np.linalg.norm(Cm - C))}


def evaluate(model_dir: str, radius: float, seed_atoms, kind: str) -> dict:
    t0 = time.process_time()
    spec = DislocationSpec(dislocation=kind, radius=radius, clamp_width=12.0, start="reference")
    res = evaluate_dislocation(model_dir, REFERENCE, spec, seed=seed_atoms)
    row = json.loads(json.dumps(res.metrics(), default=str))
    row["cpu_time"] = time.process_time() - t0
    row.update(predictor_difference(model_dir, radius, kind))
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", required=True, choices=("radius", "size", "virial"))
    ap.add_argument("--kind", default="screw", choices=KINDS)
    ap.add_argument("--work", default="results/dislocation_studies")
    ap.add_argument("--out", default=None,
                    help="default docs/data/dislocation_study_PART.json (screw), ..._KIND_PART.json (edge, mixed)")
    ap.add_argument("--radii", type=float, nargs="+", default=[6, 8, 10, 14, 20, 28, 40, 56, 80])
    ap.add_argument("--radius", type=float, default=20.0, help="R of the size and virial parts, Å")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--observations", nargs="+", default=None,
                    help="default E EF EFV (screw), EF EFV (edge, mixed: a cylinder observes no E)")
    ap.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.01, 0.1, 1.0, 10.0, 100.0])
    args = ap.parse_args(argv)
    kind = args.kind
    screw = kind == "screw"
    observations = args.observations or (["E", "EF", "EFV"] if screw else ["EF", "EFV"])
    if not screw and "E" in observations:
        raise SystemExit(f"--observations {' '.join(observations)}: E alone is not run for the {kind}: its "
                         "cylinder cells observe forces only, so an E model has no dislocation data; use EF, EFV")
    tag = "" if screw else f"{kind}_"
    out = args.out or f"docs/data/dislocation_study_{tag}{args.part}.json"
    ref = load_potential(REFERENCE)
    # the screw's controlled core; the edge and mixed have one core structure (§4): from the predictor
    seed_atoms = relax_cylinder(cylinder(ref, kind, SEED_RADIUS, clamp_width=12.0), ref).atoms if screw else None
    rows = []

    def run(label: str, obs: str, n, v_weight: float, radii):
        name = f"{tag}{label}_{obs}_N{n}_V{v_weight:g}"
        model_dir, report, fit_cpu = fit_model(args.work, name, obs, n, v_weight, kind=kind)
        for R in radii:
            row = dict(part=args.part, kind=kind, model_name=name, observations=obs, training_size=n,
                       virial_weight=v_weight, fit_cpu_time=fit_cpu, fit_report=report,
                       **evaluate(model_dir, R, seed_atoms, kind))
            rows.append(row)
            print(json.dumps({k: row.get(k) for k in ("model_name", "radius", "n_atoms", "status", "error_energy_norm",
                                                      "residual_dual_norm", "effectivity", "predictor_difference_norm",
                                                      "cpu_time")}), flush=True)
            write_rows(out, meta, rows)  # every row on disk as soon as it exists

    command = "python studies/dislocation_studies.py --part " + args.part + ("" if screw else f" --kind {kind}")
    dislocation_cells = (quadrupole_spec("EF", 1, 0) if screw else cylinder_spec(kind, 1, 0)).to_dict()
    meta = dict(reference=REFERENCE, model=MODEL, kind=kind, clamp_width=12.0,
                seed_radius=SEED_RADIUS if screw else None, start="reference", fmax=1e-8,
                machine=platform.machine(), load_average=os.getloadavg(),
                training=dict(perfect=perfect_spec("EF", 0).to_dict(),
                              **{("quadrupole" if screw else "cylinder"): dislocation_cells}),
                units=dict(radius="Å", error_energy_norm="Å", residual_dual_norm="eV/Å", effectivity="1",
                           elastic_constant_error="eV/Å³", predictor_difference_norm="Å", core_energy_error="eV/Å",
                           cpu_time="s", fit_cpu_time="s", elastic_constants_model="eV/Å³ (Voigt, cubic axes)"))
    if args.part == "radius":
        meta["command"] = command + " --radii " + " ".join(f"{r:g}" for r in args.radii)
        for obs in ("EF", "EFV"):
            run("radius", obs, 2, 1.0, args.radii)
    elif args.part == "size":
        meta["command"] = (command + f" --radius {args.radius:g} --sizes " + " ".join(map(str, args.sizes))
                           + " --observations " + " ".join(observations))
        for obs in observations:
            for n in [None, *args.sizes]:
                run("size", obs, n, 1.0, [args.radius])
    else:
        meta["command"] = command + f" --radius {args.radius:g} --weights " + " ".join(f"{w:g}" for w in args.weights)
        for w in args.weights:
            run("virial", "EFV", 2, w, [args.radius, 2 * args.radius])
    write_rows(out, meta, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
