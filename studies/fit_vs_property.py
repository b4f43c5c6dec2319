"""Does fit accuracy predict simulation accuracy? Rank correlations of fit metrics against
property errors over the fitted models of studies/fit_vs_property_2d.toml
(docs/fit-vs-property.md, issue 17 item 2).

    genanalysis run studies/fit_vs_property_2d.toml --out results/fit_vs_property_2d --workers 1
    python studies/fit_vs_property.py --results results/fit_vs_property_2d
                         # exports docs/data/fit_vs_property_2d.json, then as below
    python studies/fit_vs_property.py
                         # the table and figure from docs/data/fit_vs_property_2d.json only
                         # (aggregation, no physics recomputed)

For every (fit metric, property error) pair: Spearman's ρ over the models that report both
(scipy.stats.spearmanr) and a percentile bootstrap 95 % interval (tasks resampled with
replacement, ``--bootstrap`` resamples, seeded). Writes docs/data/fit_vs_property.json
(the table's numbers), docs/figures/fit-vs-property.png and prints the Markdown table
quoted in docs/fit-vs-property.md (tests/test_fit_vs_property.py checks it).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import pathlib

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
DATA = ROOT / "docs" / "data" / "fit_vs_property_2d.json"
SUMMARY = ROOT / "docs" / "data" / "fit_vs_property.json"
FIG = ROOT / "docs" / "figures" / "fit-vs-property.png"
NAME = "fit_vs_property_2d"

# predictors: the usual fit RMSEs (train and held out) and the two a-posteriori quantities
PREDICTORS = {
    "fit_rmse_E_train": "RMSE E train",
    "fit_rmse_E_validation": "RMSE E held out",
    "fit_rmse_F_train": "RMSE F train",
    "fit_rmse_F_validation": "RMSE F held out",
    "fit_rmse_V_train": "RMSE V train",
    "fit_rmse_V_validation": "RMSE V held out",
    "residual_dual_norm": "‖f^ML(ū)‖₋₁",
    "a_posteriori_bound": "(2/c)‖f^ML(ū)‖₋₁",
}
PROPERTIES = {
    "error_energy_norm": "‖D(ū^ML − ū)‖",
    "formation_energy_error": "\\|ΔE_f\\|",
    "dipole_error": "‖ΔP‖",
    "elastic_constant_error": "max \\|ΔC\\|",
    "phonon_error": "max \\|ω^ML/ω − 1\\|",
}


def _pipeline():
    """studies/pipeline_figures.py: the one per-task JSON export/import of the sweep studies."""
    spec = importlib.util.spec_from_file_location("pipeline_figures", ROOT / "studies" / "pipeline_figures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _fin(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def model_values(metrics: dict) -> dict:
    """One task's predictors and property errors (absolute values; None where not reported).
    The phonon error is the largest relative deviation of the perfect lattice's paired
    frequencies, max(ω_max ratio − 1, 1 − ω_min ratio)."""
    out = {k: (abs(metrics[k]) if _fin(metrics.get(k)) else None) for k in (*PREDICTORS, *PROPERTIES)}
    lo, hi = metrics.get("phonon_frequency_ratio_min"), metrics.get("phonon_frequency_ratio_max")
    out["phonon_error"] = max(abs(hi - 1.0), abs(1.0 - lo)) if _fin(lo) and _fin(hi) else None
    return out


def load(path: pathlib.Path = DATA) -> list[dict]:
    """Per-model values of every done task of the exported study data."""
    doc = json.loads(pathlib.Path(path).read_text())
    rows = []
    for t in doc["tasks"]:
        if t["state"] != "done" or not t["metrics"]:
            continue
        m = t["metrics"]
        v = model_values(m)
        model = t["params"]["fit"]["model"]
        v.update(kind=model.get("kind", "ace"), hidden=tuple(model.get("hidden") or ()), degree=model["degree"],
                 body_order=model["body_order"], configs=m.get("ts_configurations"), seed=t["params"]["seed"],
                 status=m.get("status"))
        rows.append(v)
    return rows


def _ranks(x: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(x, axis=-1)


def spearman_ci(x, y, n_boot: int, seed: int = 0) -> dict:
    """Spearman's ρ of x against y and its percentile bootstrap 95 % interval."""
    from scipy.stats import spearmanr

    x, y = np.asarray(x, float), np.asarray(y, float)
    rho = float(spearmanr(x, y).statistic)
    idx = np.random.default_rng(seed).integers(0, len(x), size=(n_boot, len(x)))
    rx, ry = _ranks(x[idx]), _ranks(y[idx])
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    den = np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1))
    ok = den > 0                                  # resamples of one distinct value have no ρ
    boot = (rx * ry).sum(axis=1)[ok] / den[ok]
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return {"rho": rho, "lo": float(lo), "hi": float(hi), "n": int(len(x))}


def correlations(rows: list[dict], n_boot: int = 2000, seed: int = 0) -> dict:
    """{property: {predictor: {rho, lo, hi, n}}} over the models reporting both (pairs with
    fewer than 4 such models are left out)."""
    res = {}
    for j, prop in enumerate(PROPERTIES):
        res[prop] = {}
        for i, pred in enumerate(PREDICTORS):
            pairs = [(r[pred], r[prop]) for r in rows if r[pred] is not None and r[prop] is not None]
            if len(pairs) < 4:
                continue
            x, y = zip(*pairs)
            res[prop][pred] = spearman_ci(x, y, n_boot, seed + 100 * j + i)
    return res


#: the model subsets whose correlations are compared (docs/fit-vs-property.md §2)
SUBSETS = {"all": lambda r: True, "linear": lambda r: r["kind"] != "mlp", "networks": lambda r: r["kind"] == "mlp"}
OURS = ("residual_dual_norm", "a_posteriori_bound")


def subset_correlations(rows: list[dict], n_boot: int = 2000, seed: int = 0) -> dict:
    """{subset: correlations} for every subset of :data:`SUBSETS` that has models."""
    out = {}
    for name, keep in SUBSETS.items():
        sub = [r for r in rows if keep(r)]
        if len(sub) >= 4:
            out[name] = correlations(sub, n_boot, seed)
    return out


def subsets_table(by_subset: dict) -> str:
    """Markdown: per property and model subset, the number of models, the best predictor,
    ρ of the residual and of the bound, and the best RMSE with its ρ."""
    lines = ["| property | models | best predictor: ρ [95 %] | ‖f^ML(ū)‖₋₁ | (2/c)‖f^ML(ū)‖₋₁ | best RMSE: ρ [95 %] |",
             "|---|---|---|---|---|---|"]

    def cell(c):
        return f"{c['rho']:.2f} [{c['lo']:.2f}, {c['hi']:.2f}] (n = {c['n']})" if c else "—"

    for prop, plabel in PROPERTIES.items():
        for name, corr in by_subset.items():
            c = corr.get(prop) or {}
            if not c:
                continue
            n = max(v["n"] for v in c.values())  # the models that report the property
            best = _best(c)
            rmse = [k for k in c if k not in OURS]
            br = max(rmse, key=lambda k: c[k]["rho"]) if rmse else None
            lines.append(f"| {plabel} | {name} ({n}) | {PREDICTORS[best]}: {cell(c[best])} | "
                         f"{cell(c.get(OURS[0]))} | {cell(c.get(OURS[1]))} | "
                         f"{PREDICTORS[br] + ': ' + cell(c[br]) if br else '—'} |")
    return "\n".join(lines)


def _best(c: dict) -> str:
    """The predictor of largest ρ among those every model reporting the property has (the
    bound needs a model stable at ū, so it can be missing where the RMSEs are not)."""
    n = max(v["n"] for v in c.values())
    return max((k for k in c if c[k]["n"] == n), key=lambda k: c[k]["rho"])


def table(corr: dict) -> str:
    """Markdown: predictors as rows, properties as columns, ρ [95 % interval]; the best
    predictor of each property (largest ρ, :func:`_best`) in bold."""
    props = list(PROPERTIES)
    ns = [sorted({c["n"] for c in corr[p].values()}) for p in props]
    head = "| fit metric | " + " | ".join(f"{PROPERTIES[p]} (n = {'/'.join(map(str, n))})"
                                          for p, n in zip(props, ns)) + " |"
    lines = [head, "|---|" + "---|" * len(props)]
    best = {p: _best(corr[p]) for p in props}
    for pred, label in PREDICTORS.items():
        cells = []
        for p in props:
            c = corr[p][pred]
            s = f"{c['rho']:.2f} [{c['lo']:.2f}, {c['hi']:.2f}]"
            cells.append(f"**{s}**" if best[p] == pred else s)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def census(rows: list[dict]) -> str:
    """One line: how many models, which families, how many converged."""
    lin = [r for r in rows if r["kind"] != "mlp"]
    net = [r for r in rows if r["kind"] == "mlp"]
    fam = sorted({(r["degree"], r["body_order"]) for r in lin}, key=lambda t: (t[1], t[0]))
    widths = sorted({r["hidden"] for r in net})
    conf = sorted({r["configs"] for r in rows if r["configs"] is not None})
    conv = sum(r["status"] == "converged" for r in rows)
    feats = sorted({(r["degree"], r["body_order"]) for r in net})
    nets = (f"; {len(net)} networks, hidden layers {', '.join(str(list(w)) for w in widths)} on the invariants "
            f"(degree, body order) {', '.join(f'({d}, {b})' for d, b in feats)}" if net else "")
    return (f"{len(rows)} fitted models ({len(lin)} linear of {len(fam)} families (degree, body order) "
            f"{', '.join(f'({d}, {b})' for d, b in fam)}{nets}; training sets of {', '.join(map(str, conf))} "
            f"configurations; seeds {', '.join(map(str, sorted({r['seed'] for r in rows})))}); "
            f"{conv} converged defect relaxations")


def figure(rows: list[dict], path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("fit_rmse_F_validation", "error_energy_norm"), ("a_posteriori_bound", "error_energy_norm"),
              ("fit_rmse_V_validation", "elastic_constant_error"), ("fit_rmse_F_validation", "phonon_error"),
              ("fit_rmse_E_validation", "formation_energy_error"), ("residual_dual_norm", "formation_energy_error")]
    families = (("linear, body order 2", "o", lambda r: r["kind"] != "mlp" and r["body_order"] == 2),
                ("linear, body order 3", "s", lambda r: r["kind"] != "mlp" and r["body_order"] == 3),
                ("network", "^", lambda r: r["kind"] == "mlp"))
    fig, axes = plt.subplots(3, 2, figsize=(9, 11))
    for ax, (x, y) in zip(axes.flat, panels):
        for label, mk, keep in families:
            pts = [(r[x], r[y], r["configs"]) for r in rows
                   if keep(r) and r[x] is not None and r[y] is not None and r[x] > 0 and r[y] > 0]
            if pts:
                px, py, pc = zip(*pts)
                sc = ax.scatter(px, py, c=pc, marker=mk, cmap="viridis", label=label,
                                edgecolors="k" if mk == "^" else "none", linewidths=0.5)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"{PREDICTORS[x].replace(chr(92), '')}")
        ax.set_ylabel(PROPERTIES[y].replace("\\", ""))
        if x == "a_posteriori_bound":
            lim = [min(ax.get_xlim()[0], ax.get_ylim()[0]), max(ax.get_xlim()[1], ax.get_ylim()[1])]
            ax.plot(lim, lim, "k--", lw=0.8, label="error = bound")
        ax.legend(fontsize=7)
    fig.colorbar(sc, ax=axes, label="training configurations")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> dict:
    """Print (and return) the census and table; with ``--results`` first export the data."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default=None, help="the run's --out directory (exports docs/data/fit_vs_property_2d.json)")
    ap.add_argument("--data", default=str(DATA), help="per-task data (default docs/data/fit_vs_property_2d.json)")
    ap.add_argument("--figure", default=str(FIG), help="figure path (default docs/figures/fit-vs-property.png)")
    ap.add_argument("--summary", default=str(SUMMARY), help="where the correlations go ('' for nowhere)")
    ap.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples (default 2000)")
    ap.add_argument("--no-figure", action="store_true")
    args = ap.parse_args(argv)
    data = pathlib.Path(args.data)
    if args.results is not None:
        pf = _pipeline()
        out = pf._load(pathlib.Path(args.results))[0]
        if out is None:
            raise SystemExit(f"{args.results}: no results.sqlite")
        written = pf.export_tasks(out, NAME, data.parent)
        if written != data:
            written.replace(data)
    rows = load(data)
    by_subset = subset_correlations(rows, args.bootstrap)
    corr = by_subset["all"]
    text = census(rows) + "\n\n" + table(corr) + "\n\n" + subsets_table(by_subset)
    if args.summary:
        pathlib.Path(args.summary).write_text(json.dumps(
            {"source": "docs/data/fit_vs_property_2d.json", "bootstrap": args.bootstrap,
             "census": census(rows), "correlations": corr,
             "subsets": {k: v for k, v in by_subset.items() if k != "all"}}, indent=1) + "\n")
    if not args.no_figure:
        figure(rows, pathlib.Path(args.figure))
    print(text)
    return {"rows": rows, "correlations": corr, "table": table(corr), "census": census(rows), "text": text,
            "subsets": by_subset, "subsets_table": subsets_table(by_subset)}


if __name__ == "__main__":
    main()
