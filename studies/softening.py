"""Softened models and one-point fine-tuning (docs/softening.md).

    python studies/softening.py            # computes everything (~1–2 min on a loaded 2-core machine)
    python studies/softening.py --tables   # the tables of docs/softening.md from docs/data/softening.json

Models, each run through the generalisation experiment (`evaluate`, vacancy; its softening
metrics, ε_FC, residual, bound and effectivity):

* surrogates with a known softening (d = 2 triangular Morse, M = 8; d = 3 bcc W, M = 4):
  ``scaled`` (V^ML = (1 − η)V) and ``softening`` (curvature lowered away from the lattice);
* a "broad pre-trained" linear model (d = 2 Morse): fitted to near-equilibrium perfect cells
  only (N = 3, 4; rattles of 0.01 Å and strains of 1 %), with a small ridge — and, as a
  control, the same fit without ridge;
* the pre-trained model fine-tuned by the least-change update
  (:func:`genanalysis.fit.finetune_linear`, ridge towards the pre-trained coefficients) with
  1, 2, 4, 8 added configurations of one type: ``defect`` (the relaxed vacancy N = 4 cell,
  then rattles of 0.03 Å of it), ``rattle`` (perfect N = 4 cells rattled by 0.1 Å: a
  high-temperature snapshot), ``strain`` (perfect N = 4 cells under random strains of up to
  5 %); and a scan of the fine-tuning ridge.

* a "broad pre-trained" **network** (Behler–Parrinello, one hidden layer of ``NET_HIDDEN``
  on the same invariants) trained on the same near-equilibrium perfect cells (20 % held out
  for early stopping), and its least-change fine-tunes
  (:func:`genanalysis.fitting.network.finetune_network`: ``NET_STEPS`` L-BFGS iterations
  from the pre-trained weights, ridge ``NET_FINETUNE_RIDGE`` towards them) on the same 1, 2,
  4, 8 added configurations of each type.

Writes docs/data/softening.json (every metric of every model) and docs/figures/softening-*.png.
Training sets are built under --work (default results/softening).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import pathlib
import sys
import time
import warnings

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
DATA = ROOT / "docs" / "data" / "softening.json"
FIGURES = ROOT / "docs" / "figures"

AMPLITUDES = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3)
SYSTEMS = {"morse": dict(reference="builtin:morse", lattice="triangular", defect="vacancy", size=8),
           "W": dict(reference="builtin:W", lattice="bcc", defect="vacancy", size=4)}
SURROGATES = {"morse": ["family=scaled&eta=0.1", "family=scaled&eta=0.3", "family=softening&eta=3&width=0.05",
                        "family=softening&eta=10&width=0.05"],
              "W": ["family=scaled&eta=0.1", "family=scaled&eta=0.3", "family=softening&eta=3",
                    "family=softening&eta=10"]}
FEATURES = dict(cutoff=2.5, degree=6, body_order=3, l_max=2)
PRETRAIN_RIDGE = 1e-6
FINETUNE_RIDGE = 1e-4
COUNTS = (1, 2, 4, 8)
RIDGE_SCAN = (1e-8, 1e-4, 1e-2, 1.0, 100.0)
#: the pre-trained network: one hidden layer, trained as in studies/network_vs_linear.py
NET_HIDDEN = (8,)
NET_SCHEDULE = dict(epochs=100, lbfgs_iterations=3000, seeds=2, validate_every=10, patience=30)
#: least-change ridges of the network fine-tune: the linear model's 1e-4, and stronger anchors
NET_FINETUNE_RIDGES = (1e-4, 1e-2, 1.0, 100.0)
NET_STEPS = 50
#: a shorter fine-tune (L-BFGS steps) at the smallest ridge: a few steps instead of 50
NET_FEW_STEPS = 5

#: the metrics the tables show (all are in the JSON)
KEYS = ("status", "error_energy_norm", "formation_energy_ratio", "phonon_frequency_ratio", "elastic_constant_ratio",
        "force_constant_error", "residual_dual_norm", "a_posteriori_bound", "effectivity")


def _trainingsets(work: pathlib.Path) -> dict:
    from genanalysis.trainingset import read_training_set
    from genanalysis.trainingset.build import build
    from genanalysis.trainingset.spec import StrainSpec, TrainingSetSpec

    common = dict(potential="builtin:morse", lattice="triangular", observations=(("default", "EFV"),))
    specs = {
        "pretrain": TrainingSetSpec(defects=("perfect",), sizes=(3, 4), configs_per_size=4, rattle=0.01,
                                    strains=StrainSpec(0.01, 2), **common),
        "defect": TrainingSetSpec(defects=("vacancy",), sizes=(4,), configs_per_size=7, rattle=0.03, **common),
        "rattle": TrainingSetSpec(defects=("perfect",), sizes=(4,), configs_per_size=8, rattle=0.1,
                                  include_relaxed=False, **common),
        "strain": TrainingSetSpec(defects=("perfect",), sizes=(4,), configs_per_size=0, strains=StrainSpec(0.05, 8),
                                  include_relaxed=False, **common),
    }
    out = {}
    for name, spec in specs.items():
        build(spec, work / name, workers=1)
        out[name] = read_training_set(work / name)
    return out


def _evaluate(model, system: str) -> dict:
    from genanalysis.experiment import ExperimentSpec, evaluate

    s = SYSTEMS[system]
    res = evaluate(model, s["reference"], ExperimentSpec(s["lattice"], s["defect"], s["size"],
                                                         rattle_amplitudes=AMPLITUDES))
    return res.metrics()


def compute(work: pathlib.Path) -> dict:
    from genanalysis.fit import LossWeights, ModelSpec, finetune_linear, fit_linear
    from genanalysis.models.calculator import ModelPotential

    t0 = time.perf_counter()
    rows = []
    for system, queries in SURROGATES.items():
        for q in queries:
            spec = f"surrogate:{SYSTEMS[system]['reference']}?{q}"
            rows.append({"kind": "surrogate", "system": system, "name": q, "model": spec,
                         "metrics": _evaluate(spec, system)})
            print(f"{system:5s} {q:40s} done", flush=True)
    sets = _trainingsets(work)
    loss = LossWeights(E=1.0, F=1.0, V=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rank warnings of the small perfect-lattice set are reported in fit
        control, dc = fit_linear(sets["pretrain"], ModelSpec(**FEATURES), loss)
        pre, dp = fit_linear(sets["pretrain"], ModelSpec(**FEATURES), LossWeights(E=1.0, F=1.0, V=1.0,
                                                                                 ridge=PRETRAIN_RIDGE))
    for name, model, diag in (("fit without ridge (control)", control, dc),
                              (f"pre-trained (ridge {PRETRAIN_RIDGE:g})", pre, dp)):
        rows.append({"kind": "pretrained" if "pre" in name else "control", "system": "morse", "name": name,
                     "fit": {k: diag[k] for k in ("n_params", "n_rows", "condition_number", "effective_rank")},
                     "metrics": _evaluate(ModelPotential(model), "morse")})
    for kind in ("defect", "rattle", "strain"):
        for n in COUNTS:
            tuned, diag = finetune_linear(pre, sets[kind][:n], loss, ridge=FINETUNE_RIDGE)
            rows.append({"kind": "finetuned", "system": "morse", "name": f"+{n} {kind}", "type": kind, "added": n,
                         "ridge": FINETUNE_RIDGE, "finetune": diag, "metrics": _evaluate(ModelPotential(tuned), "morse")})
        print(f"fine-tuned on {kind} done", flush=True)
    for kind, n in (("defect", 2), ("rattle", 1)):
        for lam in RIDGE_SCAN:
            tuned, diag = finetune_linear(pre, sets[kind][:n], loss, ridge=lam)
            rows.append({"kind": "ridge_scan", "system": "morse", "name": f"+{n} {kind}, ridge {lam:g}", "type": kind,
                         "added": n, "ridge": lam, "finetune": diag,
                         "metrics": _evaluate(ModelPotential(tuned), "morse")})
    rows += _network_rows(sets, loss)
    return {"study": "softening", "command": "python studies/softening.py", "amplitudes": list(AMPLITUDES),
            "systems": SYSTEMS, "features": FEATURES, "pretrain_ridge": PRETRAIN_RIDGE,
            "finetune_ridge": FINETUNE_RIDGE, "n_configurations": {k: len(v) for k, v in sets.items()},
            "network": {"hidden": list(NET_HIDDEN), "schedule": NET_SCHEDULE, "validation_fraction": 0.2,
                        "finetune_ridges": list(NET_FINETUNE_RIDGES), "finetune_steps": NET_STEPS,
                        "few_steps": NET_FEW_STEPS,
                        "finetune_method": "lbfgs"},
            "wall_time": time.perf_counter() - t0, "rows": rows,
            "units": {"amplitude": "Å", "error_energy_norm": "Å", "force_constant_error": "eV/Å²",
                      "residual_dual_norm": "eV/Å", "a_posteriori_bound": "Å", "energy_above_minimum": "eV/atom",
                      "wall_time": "s", "ratios, slopes, effectivity": "1"}}


def _network_rows(sets: dict, loss) -> list[dict]:
    """The pre-trained network (near-equilibrium perfect cells only, early-stopped on 20 % of
    them) and its least-change fine-tunes on 1, 2, 4, 8 added configurations of each type."""
    import torch

    from genanalysis.fit import FitSpec, ModelSpec, fit
    from genanalysis.fitting.network import finetune_network
    from genanalysis.models.calculator import ModelPotential

    torch.set_num_threads(1)
    spec = FitSpec(training_set="pretrain", model=ModelSpec(kind="mlp", hidden=NET_HIDDEN, **FEATURES, **NET_SCHEDULE),
                   loss=loss, validation_fraction=0.2, seed=0)
    t0, c0 = time.perf_counter(), time.process_time()
    res = fit(sets["pretrain"], spec)
    rep = res.report
    fitrow = {"n_params": rep["n_params"], "seconds": time.perf_counter() - t0,
              "cpu_seconds": time.process_time() - c0, "n_train": rep["n_train"], "n_validation": rep["n_validation"],
              "rmse_train": {t: v["rmse"] for t, v in rep["train"]["all"].items()},
              "rmse_validation": {t: v["rmse"] for t, v in rep["validation"]["all"].items()},
              "solver": {k: rep["solver"][k] for k in ("chosen_seed", "steps", "best_step", "best_validation_loss",
                                                       "seed_scores", "final_loss", "train_seconds")}}
    pre = res.model
    rows = [{"kind": "pretrained_network", "system": "morse", "name": f"network {list(NET_HIDDEN)} pre-trained",
             "fit": fitrow, "metrics": _evaluate(ModelPotential(pre), "morse")}]
    print(f"pre-trained network done ({fitrow['seconds']:.0f} s)", flush=True)
    for lam in NET_FINETUNE_RIDGES:
        tune_loss = dataclasses.replace(loss, ridge=lam)
        for kind in ("defect", "rattle", "strain"):
            for n in COUNTS:
                tuned, diag = finetune_network(pre, sets[kind][:n], tune_loss, NET_STEPS)
                rows.append({"kind": "finetuned_network", "system": "morse", "name": f"network +{n} {kind}, λ {lam:g}",
                             "type": kind, "added": n, "ridge": lam, "finetune": diag,
                             "metrics": _evaluate(ModelPotential(tuned), "morse")})
        print(f"network fine-tuned with ridge {lam:g} done", flush=True)
    lam = NET_FINETUNE_RIDGES[0]
    for kind in ("defect", "rattle", "strain"):
        for n in COUNTS:
            tuned, diag = finetune_network(pre, sets[kind][:n], dataclasses.replace(loss, ridge=lam), NET_FEW_STEPS)
            rows.append({"kind": "finetuned_network_few", "system": "morse",
                         "name": f"network +{n} {kind}, λ {lam:g}, {NET_FEW_STEPS} steps", "type": kind, "added": n,
                         "ridge": lam, "finetune": diag, "metrics": _evaluate(ModelPotential(tuned), "morse")})
    print(f"network fine-tuned with {NET_FEW_STEPS} steps done", flush=True)
    return rows


# --------------------------------------------------------------------------- tables and figures


def _slope(row: dict, cell: str, amplitude: float):
    for p in row["metrics"].get("parity_profile") or []:
        if p["cell"] == cell and math.isclose(p["amplitude"], amplitude):
            return p["slope"]
    return None


def _f(v, fmt="{:.3g}") -> str:
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    return fmt.format(v)


def tables(data: dict) -> str:
    amps = data["amplitudes"]
    out = []
    head = ("| model | s perfect " + " / ".join(f"{a:g}" for a in amps) + " Å | s defect " + " / ".join(
        f"{a:g}" for a in amps) + " Å |")
    out += ["#### Parity slope against the rattle amplitude", "", head, "|---|---|---|"]
    for r in data["rows"]:
        if r["kind"] == "ridge_scan" or r["kind"].startswith("finetuned_network"):
            continue
        sp = " / ".join(_f(_slope(r, "perfect", a), "{:.2f}") for a in amps)
        sd = " / ".join(_f(_slope(r, "defect", a), "{:.2f}") for a in amps)
        out.append(f"| {r['system']} {r['name']} | {sp} | {sd} |")
    nets = [r for r in data["rows"] if r["kind"].startswith("finetuned_network")]
    if nets:
        low = [a for a in amps if a <= 0.1]
        out += ["", "#### Parity slope of the fine-tuned networks up to 0.1 Å", "",
                "| model | s perfect " + " / ".join(f"{a:g}" for a in low) + " Å | s defect "
                + " / ".join(f"{a:g}" for a in low) + " Å |", "|---|---|---|"]
        for r in nets:
            sp = " / ".join(_f(_slope(r, "perfect", a), "{:.2f}") for a in low)
            sd = " / ".join(_f(_slope(r, "defect", a), "{:.2f}") for a in low)
            out.append(f"| {r['system']} {r['name']} | {sp} | {sd} |")
    out += ["", "#### Energy above the minimum (reference, eV/atom) at each amplitude, perfect cell", "",
            "| system | " + " | ".join(f"{a:g} Å" for a in amps) + " |", "|---|" + "---|" * len(amps)]
    for system in data["systems"]:
        r = next(x for x in data["rows"] if x["system"] == system)
        e = {p["amplitude"]: p["energy_above_minimum_reference"] for p in r["metrics"]["parity_profile"]
             if p["cell"] == "perfect"}
        out.append(f"| {system} | " + " | ".join(_f(e.get(a)) for a in amps) + " |")
    cols = ("‖D(ū^ML − ū)‖ (Å)", "E_f ratio", "ω ratio", "C ratio", "ε_FC (eV/Å²)", "‖f^ML(ū)‖₋₁ (eV/Å)",
            "bound (Å)", "η")
    for title, kinds in (("Surrogates, the pre-trained model and its control", ("surrogate", "control", "pretrained")),
                         ("Fine-tuned (least-change ridge λ = %g)" % data["finetune_ridge"], ("finetuned",)),
                         ("The fine-tuning ridge", ("ridge_scan",)),
                         ("The network: pre-trained and fine-tuned (%d L-BFGS steps, least-change λ = %s)"
                          % (data["network"]["finetune_steps"],
                             ", ".join(f"{x:g}" for x in data["network"]["finetune_ridges"])),
                          ("pretrained_network", "finetuned_network")),
                         ("The network fine-tuned with %d L-BFGS steps only (λ = %g)"
                          % (data["network"]["few_steps"], data["network"]["finetune_ridges"][0]),
                          ("finetuned_network_few",))):
        out += ["", f"#### {title}", "", "| model | " + " | ".join(cols) + " | status |",
                "|---|" + "---|" * (len(cols) + 1)]
        for r in data["rows"]:
            if r["kind"] not in kinds:
                continue
            m = r["metrics"]
            vals = [m.get(k) for k in KEYS[1:]]
            if _round_off(m):  # error and residual at the solver's tolerance: η is 0/0
                vals[-1] = "0/0"
            out.append(f"| {r['system']} {r['name']} | " + " | ".join(_f(v) for v in vals) + f" | {m['status']} |")
    out += ["", "#### Effectivity of the bound (T8), η = ‖D(ū^ML − ū)‖ · c / ‖f^ML(ū)‖₋₁ (bound holds iff η ≤ 2)", "",
            "| models | count | η min | η median | η max | bound ≥ error |", "|---|---|---|---|---|---|"]
    groups = {"surrogates (softening family)": ("surrogate",), "pre-trained and control": ("pretrained", "control"),
              "fine-tuned": ("finetuned", "ridge_scan"),
              "network, pre-trained and fine-tuned": ("pretrained_network", "finetuned_network",
                                                      "finetuned_network_few")}
    for label, kinds in groups.items():
        ms = [r["metrics"] for r in data["rows"] if r["kind"] in kinds and not _round_off(r["metrics"])
              and r["metrics"].get("effectivity") is not None]
        if not ms:
            continue
        eta = np.array([m["effectivity"] for m in ms])
        holds = sum(m["a_posteriori_bound"] >= m["error_energy_norm"] for m in ms)
        out.append(f"| {label} | {len(ms)} | {eta.min():.3f} | {np.median(eta):.3f} | {eta.max():.3f} | "
                   f"{holds}/{len(ms)} |")
    n0 = sum(_round_off(r["metrics"]) for r in data["rows"])
    out.append(f"| scaled surrogates (error and residual at round-off, η = 0/0) | {n0} | | | | |")
    from scipy.stats import spearmanr

    for what, kinds in (("fine-tuned models", ("finetuned", "ridge_scan")),
                        ("fine-tuned networks", ("finetuned_network", "finetuned_network_few"))):
        ft = [r["metrics"] for r in data["rows"] if r["kind"] in kinds and _fin(r["metrics"].get("error_energy_norm"))
              and _fin(r["metrics"].get("a_posteriori_bound"))]
        if len(ft) < 3:
            continue
        err = [m["error_energy_norm"] for m in ft]
        out += ["", f"Spearman rank correlation over the {len(ft)} {what} of the geometry error with the "
                    f"bound: {spearmanr(err, [m['a_posteriori_bound'] for m in ft])[0]:.2f}; with ε_FC: "
                    f"{spearmanr(err, [m['force_constant_error'] for m in ft])[0]:.2f}."]
    return "\n".join(out)


def _fin(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _round_off(m: dict) -> bool:
    """Error and residual both at the solver's tolerance (the scaled surrogates: V^ML = (1 − η)V
    has the reference's equilibria), where η is a ratio of round-off."""
    e, r = m.get("error_energy_norm"), m.get("residual_dual_norm")
    return _fin(e) and _fin(r) and e < 1e-9 and r < 1e-6


def _save(fig, name: str) -> pathlib.Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = FIGURES / name
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def figures(data: dict) -> list[pathlib.Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    FIGURES.mkdir(parents=True, exist_ok=True)
    paths = []
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for r in data["rows"]:
        if r["kind"] not in ("surrogate", "pretrained", "control", "pretrained_network"):
            continue
        prof = [p for p in r["metrics"]["parity_profile"] if p["cell"] == "defect"]
        a = [p["amplitude"] for p in prof]
        s = [np.nan if p["slope"] is None else p["slope"] for p in prof]
        e = [p["energy_above_minimum_reference"] for p in prof]
        ax = axes[0] if r["system"] == "W" else axes[1]
        style = "--" if r["kind"] != "surrogate" else "-"
        ax.semilogx(a, s, style, marker="o", label=r["name"])
        if r["system"] == "morse":
            axes[2].semilogx(e, s, style, marker="o", label=r["name"])
    axes[0].set_title("bcc W, M = 4: rattled ū")
    axes[1].set_title("triangular Morse, M = 8: rattled ū")
    axes[2].set_title("triangular Morse: against the energy above ū")
    for ax in axes[:2]:
        ax.set_xlabel("rattle amplitude A (Å)")
    axes[2].set_xlabel("reference energy above the minimum (eV/atom)")
    for ax in axes:
        ax.set_ylabel("force-parity slope s (1)")
        ax.axhline(1.0, color="grey", lw=0.5)
        ax.legend(fontsize=7)
    paths.append(_save(fig, "softening-parity.png"))

    pre = next(r for r in data["rows"] if r["kind"] == "pretrained")
    fig, axes = plt.subplots(1, 4, figsize=(17, 4.2))
    panels = [("parity slope s, ū rattled by 0.05 Å (1)", lambda r: _slope(r, "defect", 0.05)),
              ("formation-energy ratio E_f^ML/E_f (1)", lambda r: r["metrics"].get("formation_energy_ratio")),
              ("phonon-frequency ratio ω^ML/ω (1)", lambda r: r["metrics"].get("phonon_frequency_ratio")),
              ("defect geometry error ‖D(ū^ML − ū)‖ (Å)", lambda r: r["metrics"].get("error_energy_norm"))]
    for ax, (label, get) in zip(axes, panels):
        for kind, marker in (("defect", "o"), ("rattle", "s"), ("strain", "^")):
            rs = [r for r in data["rows"] if r["kind"] == "finetuned" and r["type"] == kind]
            x = [0] + [r["added"] for r in rs]
            y = [get(pre)] + [get(r) for r in rs]
            ax.plot(x, [np.nan if v is None else v for v in y], marker=marker, label=kind)
        ax.set_xlabel("added configurations (0 = pre-trained)")
        ax.set_ylabel(label)
        ax.set_xticks([0, *COUNTS])
        if "error" not in label:
            ax.axhline(1.0, color="grey", lw=0.5)
        ax.legend(fontsize=8)
    paths.append(_save(fig, "softening-finetune.png"))

    pre_net = next((r for r in data["rows"] if r["kind"] == "pretrained_network"), None)
    if pre_net is not None:
        lams = data["network"]["finetune_ridges"]
        fig, axes = plt.subplots(3, 4, figsize=(17, 11), squeeze=False)
        for i, kind in enumerate(("defect", "rattle", "strain")):
            for ax, (label, get) in zip(axes[i], panels):
                for j, lam in enumerate(lams):
                    rs = [r for r in data["rows"] if r["kind"] == "finetuned_network" and r["type"] == kind
                          and r["ridge"] == lam]
                    x = [0] + [r["added"] for r in rs]
                    y = [get(pre_net)] + [get(r) for r in rs]
                    ax.plot(x, [np.nan if v is None else v for v in y], marker="o", color=f"C{j}", label=f"λ = {lam:g}")
                ax.set_title(f"network, added {kind} cells", fontsize=9)
                ax.set_xlabel("added configurations (0 = pre-trained)")
                ax.set_ylabel(label, fontsize=8)
                ax.set_xticks([0, *COUNTS])
                if "error" in label:
                    ax.set_yscale("log")
                else:
                    ax.axhline(1.0, color="grey", lw=0.5)
                ax.legend(fontsize=7)
        paths.append(_save(fig, "softening-finetune-network.png"))

    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for kind, marker in (("surrogate", "o"), ("pretrained", "s"), ("control", "D"), ("finetuned", "^"),
                         ("ridge_scan", "x"), ("pretrained_network", "P"), ("finetuned_network", "v"),
                         ("finetuned_network_few", "<")):
        rs = [r["metrics"] for r in data["rows"] if r["kind"] == kind and r["metrics"].get("effectivity") is not None
              and _fin(r["metrics"].get("error_energy_norm")) and r["metrics"]["error_energy_norm"] > 1e-9]
        ax.loglog([m["error_energy_norm"] for m in rs], [m["a_posteriori_bound"] for m in rs], marker, label=kind)
    lim = ax.get_xlim()
    ax.plot(lim, lim, color="grey", lw=0.5, label="bound = error")
    ax.set_xlabel("defect geometry error ‖D(ū^ML − ū)‖ (Å)")
    ax.set_ylabel("bound (2/c)‖f^ML(ū)‖₋₁ (Å)")
    ax.legend(fontsize=8)
    paths.append(_save(fig, "softening-bound.png"))
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", action="store_true", help="print the tables from docs/data/softening.json only")
    ap.add_argument("--work", default=str(ROOT / "results" / "softening"), help="directory of the built training sets")
    args = ap.parse_args()
    if args.tables:
        print(tables(json.loads(DATA.read_text())))
        return
    data = compute(pathlib.Path(args.work))
    DATA.parent.mkdir(parents=True, exist_ok=True)
    DATA.write_text(json.dumps(data, indent=1, ensure_ascii=False, default=float) + "\n")
    for p in figures(data):
        print("wrote", p.relative_to(ROOT), file=sys.stderr)
    print(tables(data))
    print(f"\nwall time {data['wall_time']:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
