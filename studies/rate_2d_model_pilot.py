"""Which linear model brings the 2D interstitial's training force RMSE below 1e-5 eV/Å
(docs/studies.md §12b, issue 12 item 3): the EF training sets of studies/rate_2d_interstitial.toml
(perfect + interstitial N-cells, each relaxed, 30 rattles of 0.005 Å, 4 strains of ±0.5 %,
seed 0, w_E = 1, w_F = 1/N², no ridge, rcond 1e-12) fitted with richer models.

    python studies/rate_2d_model_pilot.py --work DIR --json docs/data/rate_2d/interstitial_model_pilot.json
    python studies/rate_2d_model_pilot.py                 # the tables from the stored JSON (no computation)

``--work`` is where the training sets are built (outside the repository; reused when present).
Per (model, N): the coefficients, the effective rank, the training force RMSE (all, perfect
group, interstitial group; eV/Å) and the fit's CPU seconds (the design assembly and the
solve, one thread; the first fit's numba compilation is done before, by a warm-up fit not
recorded). Also per group the share of pair distances r < r_cut = 2.5 Å in the reference's
switch interval (2.0, 2.5) Å and in (1.9, 2.0] Å, seed 0, N = 6 and 12.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import resource
import time
import warnings

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
DATA = ROOT / "docs" / "data" / "rate_2d" / "interstitial_model_pilot.json"
SIZES = (6, 8, 10, 12)
BASE = dict(kind="ace", cutoff=2.5, degree=12, body_order=4, l_max=2)
#: the models, study's first: (label, changes to BASE); pair_degree 0 means 2·degree = 24
MODELS = (
    ("study (§12b)", {}),
    ("degree 14", dict(degree=14)),
    ("degree 16", dict(degree=16)),
    ("degree 16, l_max 3", dict(degree=16, l_max=3)),
    ("pair 48", dict(pair_degree=48)),
    ("pair 64", dict(pair_degree=64)),
    ("pair 64, r_in 0.7", dict(pair_degree=64, r_in=0.7)),
    ("pair 96", dict(pair_degree=96)),
    ("pair 96, r_in 0.7", dict(pair_degree=96, r_in=0.7)),
    ("pair 128", dict(pair_degree=128)),
    ("degree 16, pair 96", dict(degree=16, pair_degree=96)),
    ("two-body only, pair 24", dict(body_order=2, l_max=0)),
    ("two-body only, pair 96", dict(body_order=2, l_max=0, pair_degree=96)),
)
TARGET = 1e-5  # eV/Å


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _training_set(work: pathlib.Path, n: int, defect: str = "interstitial", seed: int = 0):
    from genanalysis.trainingset import TrainingSetSpec, build, read_training_set

    d = work / f"ts_{defect}_N{n}_s{seed}"
    if not (d / "manifest.json").is_file():
        build(TrainingSetSpec(potential="builtin:morse", lattice="triangular", defects=("perfect", defect),
                              sizes=(n,), configs_per_size=30, rattle=0.005, strains={"amplitude": 0.005, "count": 4},
                              observations="EF", seed=seed), d, workers=1)
    return read_training_set(d)


def _fit(confs, n: int, model: dict) -> dict:
    from genanalysis.fit import FitSpec, ModelSpec, fit
    from genanalysis.fitting.loss import LossWeights

    spec = FitSpec(training_set="pilot", model=ModelSpec(**model), validation_fraction=0.0, rcond=1e-12,
                   loss=LossWeights(E=1.0, F=1.0 / n**2, V=0.0, H=0.0))
    c0 = _cpu()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rank deficiency is recorded (effective_rank), the minimum-norm solution used
        rep = fit(confs, spec).report
    cpu = _cpu() - c0
    tr = rep["train"]
    group = {g: tr[g]["F"]["rmse"] for g in tr if g != "all"}
    return dict(n_params=int(rep["n_params"]), effective_rank=int(rep["solver"]["effective_rank"]),
                condition_number=float(rep["solver"]["condition_number"]), rmse_F_train=float(tr["all"]["F"]["rmse"]),
                rmse_F_perfect=float(group["perfect"]), rmse_F_defect=float(next(v for g, v in group.items() if g != "perfect")),
                fit_cpu_s=cpu)


def _distances(confs) -> dict:
    from ase.neighborlist import neighbor_list

    out = {}
    for g in sorted({c.group for c in confs}):
        d = np.concatenate([neighbor_list("d", c.atoms, 2.5) for c in confs if c.group == g])
        out[g] = dict(pairs=int(d.size), r_min=float(d.min()), r_max=float(d.max()),
                      share_switch=float(np.mean(d > 2.0)), share_below_switch=float(np.mean((d > 1.9) & (d <= 2.0))))
    return out


def run(work: pathlib.Path) -> dict:
    t0, c0 = time.time(), _cpu()
    rows, dist = [], {}
    _fit(_training_set(work, SIZES[0]), SIZES[0], BASE)  # warm-up: numba compilation, not recorded
    for n in SIZES:
        confs = _training_set(work, n)
        if n in (SIZES[0], SIZES[-1]):
            dist[f"interstitial N={n}"] = _distances(confs)
        for label, change in MODELS:
            model = {**BASE, **change}
            rows.append(dict(label=label, N=n, model=model, **_fit(confs, n, model)))
            print(json.dumps(rows[-1]), flush=True)
    dist["vacancy N=6"] = _distances(_training_set(work, SIZES[0], "vacancy"))
    return dict(meta=dict(description=__doc__.splitlines()[0], sizes=list(SIZES), seed=0, target_rmse_F=TARGET,
                          cpu_seconds=_cpu() - c0, wall_seconds=time.time() - t0, threads=1),
                rows=rows, distances=dist)


def tables(doc: dict) -> str:
    rows = doc["rows"]
    labels = list(dict.fromkeys(r["label"] for r in rows))
    sizes = sorted({r["N"] for r in rows})
    head = ("| model | coefficients | effective rank (N = 6 … 12) | "
            + " | ".join(f"F RMSE train N = {n} (eV/Å)" for n in sizes)
            + " | interstitial group, max over N (eV/Å) | fit CPU, max over N (s) | ≤ 1e-5 at every N |")
    lines = [head, "|" + "---|" * (6 + len(sizes))]
    for lab in labels:
        rs = sorted((r for r in rows if r["label"] == lab), key=lambda r: r["N"])
        ok = all(r["rmse_F_train"] <= doc["meta"]["target_rmse_F"] for r in rs)
        lines.append(f"| {lab} | {rs[0]['n_params']} | {', '.join(str(r['effective_rank']) for r in rs)} | "
                     + " | ".join(f"{r['rmse_F_train']:.2e}" for r in rs)
                     + f" | {max(r['rmse_F_defect'] for r in rs):.2e} | {max(r['fit_cpu_s'] for r in rs):.1f} | "
                     f"{'yes' if ok else 'no'} |")
    dl = ["| training set | group | pairs r < 2.5 Å | r min / max (Å) | share in (1.9, 2.0] Å | "
          "share in the switch (2.0, 2.5) Å |", "|---|---|---|---|---|---|"]
    for ts, groups in doc["distances"].items():
        for g, s in groups.items():
            dl.append(f"| {ts} | {g} | {s['pairs']} | {s['r_min']:.3f} / {s['r_max']:.3f} | "
                      f"{s['share_below_switch']:.3f} | {s['share_switch']:.3f} |")
    m = doc["meta"]
    return ("\n".join(lines) + "\n\n" + "\n".join(dl)
            + f"\n\nPilot cost: {m['cpu_seconds'] / 60:.1f} min CPU ({m['wall_seconds'] / 60:.1f} min wall), one thread.")


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=pathlib.Path, help="build the training sets here and run the pilot")
    ap.add_argument("--json", type=pathlib.Path, default=DATA, help="the pilot's data (written with --work)")
    args = ap.parse_args(argv)
    if args.work is not None:
        doc = run(args.work)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=1) + "\n")
    text = tables(json.loads(args.json.read_text()))
    print(text)
    return text


if __name__ == "__main__":
    main()
