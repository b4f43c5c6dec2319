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

Only the linear model is fine-tuned (no network fine-tune function exists in this version).
Writes docs/data/softening.json (every metric of every model) and docs/figures/softening-*.png.
Training sets are built under --work (default results/softening).
"""

from __future__ import annotations

import argparse
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
    return {"study": "softening", "command": "python studies/softening.py", "amplitudes": list(AMPLITUDES),
            "systems": SYSTEMS, "features": FEATURES, "pretrain_ridge": PRETRAIN_RIDGE,
            "finetune_ridge": FINETUNE_RIDGE, "n_configurations": {k: len(v) for k, v in sets.items()},
            "network_finetune": "not run: no network fine-tune function in this version",
            "wall_time": time.perf_counter() - t0, "rows": rows,
            "units": {"amplitude": "Å", "error_energy_norm": "Å", "force_constant_error": "eV/Å²",
                      "residual_dual_norm": "eV/Å", "a_posteriori_bound": "Å", "energy_above_minimum": "eV/atom",
                      "wall_time": "s", "ratios, slopes, effectivity": "1"}}


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
        if r["kind"] == "ridge_scan":
            continue
        sp = " / ".join(_f(_slope(r, "perfect", a), "{:.2f}") for a in amps)
        sd = " / ".join(_f(_slope(r, "defect", a), "{:.2f}") for a in amps)
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
                         ("The fine-tuning ridge", ("ridge_scan",))):
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
              "fine-tuned": ("finetuned", "ridge_scan")}
    for label, kinds in groups.items():
        ms = [r["metrics"] for r in data["rows"] if r["kind"] in kinds and not _round_off(r["metrics"])
              and r["metrics"].get("effectivity") is not None]
        eta = np.array([m["effectivity"] for m in ms])
        holds = sum(m["a_posteriori_bound"] >= m["error_energy_norm"] for m in ms)
        out.append(f"| {label} | {len(ms)} | {eta.min():.3f} | {np.median(eta):.3f} | {eta.max():.3f} | "
                   f"{holds}/{len(ms)} |")
    n0 = sum(_round_off(r["metrics"]) for r in data["rows"])
    out.append(f"| scaled surrogates (error and residual at round-off, η = 0/0) | {n0} | | | | |")
    from scipy.stats import spearmanr

    ft = [r["metrics"] for r in data["rows"] if r["kind"] in ("finetuned", "ridge_scan")]
    err = [m["error_energy_norm"] for m in ft]
    out += ["", f"Spearman rank correlation over the {len(ft)} fine-tuned models of the geometry error with the "
                f"bound: {spearmanr(err, [m['a_posteriori_bound'] for m in ft])[0]:.2f}; with ε_FC: "
                f"{spearmanr(err, [m['force_constant_error'] for m in ft])[0]:.2f}."]
    return "\n".join(out)


def _round_off(m: dict) -> bool:
    """Error and residual both at the solver's tolerance (the scaled surrogates: V^ML = (1 − η)V
    has the reference's equilibria), where η is a ratio of round-off."""
    return m["error_energy_norm"] < 1e-9 and m["residual_dual_norm"] < 1e-6


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
        if r["kind"] not in ("surrogate", "pretrained", "control"):
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

    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for kind, marker in (("surrogate", "o"), ("pretrained", "s"), ("control", "D"), ("finetuned", "^"),
                         ("ridge_scan", "x")):
        rs = [r["metrics"] for r in data["rows"] if r["kind"] == kind and r["metrics"].get("effectivity") is not None
              and r["metrics"]["error_energy_norm"] > 1e-9]
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
