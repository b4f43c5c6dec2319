"""Figures and tables of the pipeline studies (docs/studies.md) from their per-task data.

    python studies/pipeline_figures.py --results DIR    # DIR holds the --out directories;
                                                        # also writes docs/data/tasks/NAME.json
    python studies/pipeline_figures.py                  # the same tables from docs/data/tasks/*.json
                                                        # (no physics recomputed, only aggregation)

``docs/data/tasks/NAME.json`` holds, for one study, its spec, the units of its metrics and
every task's parameters, state and scalar metrics (data only, JSON): every number of the
tables below is recomputed from them (``tests/test_studies_tables.py`` checks that the
tables in docs/studies.md are what this script prints from that data).

Reads ``DIR/training_size_2d``, ``DIR/training_size_3d``,
``DIR/training_size_3d_from_reference``, ``DIR/test_domain_2d``, ``DIR/fc_vs_large_cells_2d``,
``DIR/loss_weights_2d`` and ``DIR/model_size_2d`` (each written by ``genanalysis run
studies/NAME.toml --out DIR/NAME``; missing ones are skipped), and writes
``docs/figures/studies-*.png``, ``docs/data/studies.json`` and prints the Markdown tables
quoted in docs/studies.md. The fitted slopes and verdicts are those of
``genanalysis report DIR/NAME --json`` (the same code: :func:`genanalysis.sweep.outputs.rate_report`).

Units: errors ‖D(ū^ML − ū)‖ in Å, residuals eV/Å, fit errors meV/Å, reference work in
atom-evaluations (genanalysis.pipeline.reference_work), effectivity dimensionless.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
from collections import defaultdict

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIG = ROOT / "docs" / "figures"
DATA = ROOT / "docs" / "data"
OBS = ["E", "EF", "EFV", "EFH", "EFVH"]
MARK = {"vacancy": "o", "interstitial": "s", "interstitial:centre": "s", "interstitial:dumbbell110": "s"}


TASKS = DATA / "tasks"
FORMAT = "genanalysis-study-tasks"


def _load(path: pathlib.Path):
    from genanalysis.sweep.outputs import load_output, rate_report

    if not (path / "results.sqlite").is_file():
        return None, []
    out = load_output(path)
    return out, rate_report(out)


def _scalars(metrics: dict) -> dict:
    """The metrics a table may read: numbers, strings, None and the small lists/dicts the
    experiment reports (dipoles, the residual profile, the convergence check)."""
    return {k: v for k, v in metrics.items() if v is None or isinstance(v, (int, float, str, list, dict))}


def export_tasks(out, name: str, where: pathlib.Path = TASKS) -> pathlib.Path:
    """Write one study's per-task data (``where/NAME.json``): spec, units, every task's
    parameters, state, metrics and wall and CPU seconds. JSON only."""
    where.mkdir(parents=True, exist_ok=True)
    tasks = [{"hash": r.hash, "kind": r.kind, "point": r.point, "params": r.params, "overrides": r.overrides,
              "state": r.state, "status": r.status, "metrics": _scalars(r.metrics),
              **{k: getattr(r, k) for k in ("wall_s", "cpu_s") if getattr(r, k) is not None}} for r in out.rows]
    doc = {"format": FORMAT, "version": 1, "name": name, "study": out.study.raw, "units": out.units,
           "n_points": out.n_points, "tasks": tasks}
    path = where / f"{name}.json"
    path.write_text(json.dumps(doc, indent=0, allow_nan=False, default=_nonfinite) + "\n")
    return path


def _nonfinite(v):
    raise TypeError(f"not JSON data: {v!r}")


def load_tasks(path: pathlib.Path):
    """A :class:`~genanalysis.sweep.outputs.StudyOutput` and its rate report rebuilt from
    ``export_tasks`` data (no results database needed)."""
    from genanalysis.results import TaskRow
    from genanalysis.sweep.outputs import StudyOutput, rate_report
    from genanalysis.sweep.spec import parse_study

    doc = json.loads(pathlib.Path(path).read_text())
    if doc.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} file")
    rows = [TaskRow(hash=t["hash"], kind=t["kind"], point=t["point"], params=t["params"], overrides=t["overrides"],
                    state=t["state"], status=t["status"], metrics=t["metrics"], wall_s=t.get("wall_s"),
                    cpu_s=t.get("cpu_s")) for t in doc["tasks"]]
    out = StudyOutput(pathlib.Path(path), parse_study(doc["study"], default_name=doc["name"]), rows, doc["units"],
                      doc["n_points"])
    return out, rate_report(out)


def _get(tree, dotted, default=None):
    node = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def _rel(path: pathlib.Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _fin(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _fmt(v, spec: str) -> str:
    return format(v, spec) if _fin(v) else "—"


def _rows(out):
    return [r for r in out.rows if r.state == "done" and r.metrics]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _rates_table(results) -> tuple[str, list]:
    lines = ["| rate | group | fit range | floor | fitted slope | 95 % CI | n | predicted | verdict |",
             "|---|---|---|---|---|---|---|---|---|"]
    data = []
    for res in results:
        d, t = res.as_dict(), res.text(".2f")
        group = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in d["group"].items()) or "all"
        s, ci, fr = t["slope"] or "—", t["ci"] or "—", t["fit_range"] or "—"
        p = "—" if t["predicted_slope"] is None else f"{t['predicted_slope']} ({d['predicted']})"
        floor = d["floor"] if isinstance(d["floor"], str) else (f"{d['floor']:g}" if d["floor"] else "none")
        lines.append(f"| {d['quantity']} vs {d['against']} | {group} | {fr} | {floor} | {s} | {ci} | {d['n_points']} | "
                     f"{p} | {d['verdict_label']} |")
        data.append(d)
    return "\n".join(lines), data


def _mean_se(values):
    v = np.array(values, float)
    if len(v) == 0:
        return None, None
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0


def training_size(out, results, tag: str, d: int) -> dict:
    """Error against N per observation set, one panel per test defect; mean ± standard
    error over seeds (converged tasks only; the others are counted in the table)."""
    plt = _plt()
    rows = _rows(out)
    defects = sorted({r.params["experiment"]["defect"] for r in rows})
    fig, axes = plt.subplots(1, len(defects), figsize=(5.2 * len(defects), 4.2), squeeze=False)
    vals = defaultdict(list)
    fails = defaultdict(list)
    for r in rows:
        key = (r.params["experiment"]["defect"], r.params["trainingset"]["observations"], r.params["trainingset"]["size"])
        e = r.metrics.get("error_energy_norm")
        if r.metrics.get("status") == "converged" and _fin(e) and e > 0:
            vals[key].append(e)
        else:
            fails[key].append(r.metrics.get("status"))
    ns = sorted({r.params["trainingset"]["size"] for r in rows})
    for ax, defect in zip(axes[0], defects):
        means = []
        for k, obs in enumerate(OBS):
            pts = [(n, *_mean_se(vals[(defect, obs, n)])) for n in ns if vals[(defect, obs, n)]]
            if not pts:
                continue
            x, y, se = np.array(pts, float).T
            means += list(y)
            ax.errorbar(x, y, yerr=se, marker="o", ms=4, capsize=2, color=f"C{k}", label=obs)
        if means:
            xs = np.array(ns, float)
            y0 = np.exp(np.mean(np.log(means)))
            ax.plot(xs, y0 * (xs / np.sqrt(xs[0] * xs[-1])) ** (-d / 2), "k--", lw=1, label=f"slope −d/2 = {-d / 2:g} (up to)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(ns)
        ax.set_xticklabels([str(n) for n in ns])
        ax.minorticks_off()
        ax.set_xlabel("training cell size N (cells)")
        ax.set_ylabel("‖D(ū^ML − ū)‖ (Å)")
        ax.set_title(f"{tag}: {defect}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = FIG / f"studies-{tag}.png"
    fig.savefig(path, dpi=150)
    plt.close(fig)
    lines = ["| defect | N | " + " | ".join(OBS) + " |", "|---|---|" + "---|" * len(OBS)]
    for defect in defects:
        for n in ns:
            cells = []
            for obs in OBS:
                m, se = _mean_se(vals[(defect, obs, n)])
                f = fails[(defect, obs, n)]
                c = "—" if m is None else (f"{m:.2e}" + (f" ± {se:.0e}" if se else ""))
                if f:
                    c += f" ({len(f)} × {f[0]})"
                cells.append(c)
            lines.append(f"| {defect} | {n} | " + " | ".join(cells) + " |")
    rt, rdata = _rates_table(results)
    return {"figure": _rel(path), "table": "\n".join(lines), "rates_table": rt, "rates": rdata}


def fc_vs_large(out, results) -> dict:
    """Error against reference work, defect cells alone vs with perfect-lattice force
    constants; mean ± standard error over seeds (the work is the same for every seed)."""
    plt = _plt()
    rows = _rows(out)
    defects = sorted({r.params["experiment"]["defect"] for r in rows})
    fig, axes = plt.subplots(1, len(defects), figsize=(5.2 * len(defects), 4.2), squeeze=False)
    lines = ["| defect | N | fc_cells | reference work, FD (atom-evals) | reference work, analytic H | "
             "‖D(ū^ML − ū)‖ (Å) | not converged |", "|---|---|---|---|---|---|---|"]
    for ax, defect in zip(axes[0], defects):
        for k, fc in enumerate(sorted({r.params["trainingset"].get("fc_cells", 0) for r in rows})):
            groups = defaultdict(list)
            for r in rows:
                if r.params["experiment"]["defect"] == defect and r.params["trainingset"].get("fc_cells", 0) == fc:
                    groups[r.params["trainingset"]["size"]].append(r.metrics)
            pts = []
            for n in sorted(groups):
                ms = groups[n]
                errs = [m["error_energy_norm"] for m in ms if m.get("status") == "converged"
                        and _fin(m.get("error_energy_norm"))]
                bad = len(ms) - len(errs)
                mean, se = _mean_se(errs)
                w, wa = ms[0].get("reference_work"), ms[0].get("reference_work_analytic")
                lines.append(f"| {defect} | {n} | {fc} | {w} | {wa} | "
                             f"{'—' if mean is None else f'{mean:.2e} ± {se:.0e}'} | {bad}/{len(ms)} |")
                if mean is not None and mean > 0:
                    pts.append((w, wa, mean, se))
            if not pts:
                continue
            w, wa, e, se = np.array(pts, float).T
            lab = "defect cells only" if fc == 0 else f"+ perfect {fc}×{fc} cells with H"
            ax.errorbar(w, e, yerr=se, marker="o", ms=4, capsize=2, color=f"C{k}", label=f"{lab} (FD work)")
            ax.plot(wa, e, marker="o", mfc="none", ls=":", color=f"C{k}", label=f"{lab} (analytic H)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("reference work (atom-evaluations)")
        ax.set_ylabel("‖D(ū^ML − ū)‖ (Å)")
        ax.set_title(f"fc-vs-large-cells-2d: {defect}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = FIG / "studies-fc-vs-large-cells-2d.png"
    fig.savefig(path, dpi=150)
    plt.close(fig)
    rt, rdata = _rates_table(results)
    return {"figure": _rel(path), "table": "\n".join(lines), "rates_table": rt, "rates": rdata}


def loss_weights(out) -> dict:
    plt = _plt()
    rows = _rows(out)
    defects = sorted({r.params["experiment"]["defect"] for r in rows})
    wv = sorted({_get(r.params, "fit.loss.V") for r in rows})
    wh = sorted({_get(r.params, "fit.loss.H") for r in rows})
    fig, axes = plt.subplots(1, len(defects), figsize=(5.2 * len(defects), 4.2), squeeze=False)
    lines = []
    for ax, defect in zip(axes[0], defects):
        lines += [f"\n{defect}: ‖D(ū^ML − ū)‖ (Å); rows w_V (eV⁻²), columns w_H ((eV/Å²)⁻²)\n",
                  "| w_V \\ w_H | " + " | ".join(f"{h:g}" for h in wh) + " |", "|---|" + "---|" * len(wh)]
        for k, v in enumerate(wv):
            cells, xs, ys = [], [], []
            for h in wh:
                r = [r for r in rows if r.params["experiment"]["defect"] == defect
                     and _get(r.params, "fit.loss.V") == v and _get(r.params, "fit.loss.H") == h]
                e = r[0].metrics.get("error_energy_norm") if r else None
                s = r[0].metrics.get("status") if r else None
                cells.append("—" if e is None else f"{e:.2e}" + ("" if s == "converged" else f" ({s})"))
                if _fin(e) and e > 0:
                    xs.append(h if h > 0 else wh[1] / 10 if len(wh) > 1 else 1e-4)
                    ys.append(e)
            lines.append(f"| {v:g} | " + " | ".join(cells) + " |")
            if xs:
                ax.loglog(xs, ys, marker="o", color=f"C{k}", label=f"w_V = {v:g}")
        ax.set_xlabel("w_H ((eV/Å²)⁻²; leftmost point: w_H = 0)")
        ax.set_ylabel("‖D(ū^ML − ū)‖ (Å)")
        ax.set_title(f"loss-weights-2d: {defect}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = FIG / "studies-loss-weights-2d.png"
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return {"figure": _rel(path), "table": "\n".join(lines)}


def model_size(out) -> dict:
    plt = _plt()
    rows = _rows(out)
    defects = sorted({r.params["experiment"]["defect"] for r in rows})
    fig, axes = plt.subplots(1, len(defects), figsize=(5.2 * len(defects), 4.2), squeeze=False)
    lines = ["| defect | training configurations | model | parameters | F RMSE train (meV/Å) | "
             "F RMSE validation (meV/Å) | ‖D(ū^ML − ū)‖ (Å) | residual (eV/Å) | effectivity | status |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    sizes = sorted({r.metrics.get("ts_configurations") or 0 for r in rows})
    for ax, defect in zip(axes[0], defects):
        for kind, colour in (("ace", "C0"), ("mlp", "C3")):
            for size in sizes:
                pts = []
                for r in rows:
                    m = r.params["fit"]["model"]
                    if (r.params["experiment"]["defect"] != defect or m["kind"] != kind
                            or (r.metrics.get("ts_configurations") or 0) != size):
                        continue
                    name = (f"ace degree {m['degree']}, order {m['body_order']}" if kind == "ace"
                            else f"mlp {m.get('hidden')}, {m.get('epochs')} Adam + {m.get('lbfgs_iterations')} L-BFGS"
                            + (f", best of {m['seeds']}" if m.get("seeds", 1) > 1 else ""))
                    x = r.metrics.get("fit_rmse_F_validation")
                    e = r.metrics.get("error_energy_norm")
                    lines.append(f"| {defect} | {r.metrics.get('ts_configurations')} | {name} | "
                                 f"{r.metrics.get('fit_n_params')} | {1e3 * r.metrics['fit_rmse_F_train']:.3g} | "
                                 f"{'—' if not _fin(x) else f'{1e3 * x:.3g}'} | {'—' if not _fin(e) else f'{e:.2e}'} | "
                                 f"{r.metrics.get('residual_dual_norm', float('nan')):.2e} | "
                                 f"{_fmt(r.metrics.get('effectivity'), '.2f')} | "
                                 f"{r.metrics.get('status')} |")
                    if _fin(x) and _fin(e) and e > 0:
                        pts.append((x * 1e3, e))
                if pts:
                    x, y = np.array(sorted(pts)).T
                    ax.loglog(x, y, marker=("o" if kind == "ace" else "^") if size == sizes[-1] else
                              ("s" if kind == "ace" else "v"), ls="", color=colour,
                              mfc="none" if size != sizes[-1] else colour, label=f"{kind}, {size} configurations")
        ax.set_xlabel("validation force RMSE (meV/Å)")
        ax.set_ylabel("‖D(ū^ML − ū)‖ (Å)")
        ax.set_title(f"model-size-2d: {defect}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = FIG / "studies-model-size-2d.png"
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return {"figure": _rel(path), "table": "\n".join(lines)}


def test_domain(out) -> dict:
    """Error against the test-domain size M at fixed models: is M converged?"""
    plt = _plt()
    rows = _rows(out)
    defects = sorted({r.params["experiment"]["defect"] for r in rows})
    ns = sorted({r.params["trainingset"]["size"] for r in rows})
    ms = sorted({r.params["experiment"]["size"] for r in rows})
    fig, axes = plt.subplots(1, len(defects), figsize=(5.2 * len(defects), 4.2), squeeze=False)
    lines = ["| defect | N | " + " | ".join(f"M = {m}" for m in ms) + f" | change M = 12 → {ms[-1]} |",
             "|---|---|" + "---|" * (len(ms) + 1)]
    for ax, defect in zip(axes[0], defects):
        for k, n in enumerate(ns):
            e = {}
            for r in rows:
                if r.params["experiment"]["defect"] == defect and r.params["trainingset"]["size"] == n:
                    v = r.metrics.get("error_energy_norm")
                    e[r.params["experiment"]["size"]] = v if r.metrics.get("status") == "converged" else None
            cells = [_fmt(e.get(m), ".3e") for m in ms]
            ch = (abs(e[ms[-1]] - e[12]) / e[ms[-1]] if _fin(e.get(12)) and _fin(e.get(ms[-1])) else None)
            lines.append(f"| {defect} | {n} | " + " | ".join(cells) + f" | {_fmt(ch, '.1%')} |")
            pts = [(m, e[m]) for m in ms if _fin(e.get(m))]
            if pts:
                x, y = np.array(pts).T
                ax.semilogy(x, y, marker="o", color=f"C{k}", label=f"N = {n}")
        ax.set_xlabel("test-domain size M (cells)")
        ax.set_ylabel("‖D(ū^ML − ū)‖ (Å)")
        ax.set_title(f"test-domain-2d: {defect}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = FIG / "studies-test-domain-2d.png"
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return {"figure": _rel(path), "table": "\n".join(lines)}


def effectivity(outs) -> dict:
    """Effectivity of the a-posteriori bound (T8) for every fitted model of every study."""
    plt = _plt()
    recs = []
    for name, out in outs.items():
        for r in _rows(out):
            m = r.metrics
            if _fin(m.get("effectivity")) and _fin(m.get("error_energy_norm")):
                recs.append((name, r.params["experiment"]["defect"], m["effectivity"], m["error_energy_norm"],
                             m.get("status")))
    statuses = defaultdict(int)
    for out in outs.values():
        for r in _rows(out):
            statuses[r.metrics.get("status")] += 1
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for k, name in enumerate(outs):
        pts = [(e, eta) for n, _, eta, e, _ in recs if n == name]
        if pts:
            x, y = np.array(pts).T
            ax.semilogx(x, y, marker="o", ls="", ms=4, color=f"C{k}", label=name)
    ax.axhline(2.0, color="k", ls="--", lw=1, label="bound (η = 2)")
    ax.set_xlabel("‖D(ū^ML − ū)‖ (Å)")
    ax.set_ylabel("effectivity η = ‖D(ū^ML − ū)‖·c / ‖f^ML(ū)‖₋₁")
    ax.set_title("effectivity of the a-posteriori bound, every fitted model")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = FIG / "studies-effectivity.png"
    fig.savefig(path, dpi=150)
    plt.close(fig)
    eta = np.array([r[2] for r in recs])
    lines = ["| study | defect | models | η min | η median | η max | η ≤ 2 |", "|---|---|---|---|---|---|---|"]
    groups = defaultdict(list)
    for n, dfc, e, *_ in recs:
        groups[(n, dfc)].append(e)
    for (n, dfc), v in sorted(groups.items()):
        v = np.array(v)
        lines.append(f"| {n} | {dfc} | {len(v)} | {v.min():.3f} | {np.median(v):.3f} | {v.max():.3f} | "
                     f"{int(np.sum(v <= 2))}/{len(v)} |")
    if len(eta):
        lines.append(f"| all | all | {len(eta)} | {eta.min():.3f} | {np.median(eta):.3f} | {eta.max():.3f} | "
                     f"{int(np.sum(eta <= 2))}/{len(eta)} |")
    return {"figure": _rel(path), "table": "\n".join(lines), "statuses": dict(statuses),
            "n": int(len(eta))}


def decomposition(outs) -> dict:
    """The check r_test ≈ r_train + t(N) (docs/theory.md §3.3) and the estimate (T9) against
    the measured residual, for every converged fitted model that reports them."""
    groups = defaultdict(list)
    for name, out in outs.items():
        for r in _rows(out):
            m = r.metrics
            if m.get("status") == "converged" and _fin(m.get("decomposition_ratio")):
                groups[(name, r.params["experiment"]["defect"])].append(m)
    lines = ["| study | defect | models | r_test median (eV/Å) | r_train median (eV/Å) | t_H median (eV/Å) | "
             "t_far median (eV/Å) | ratio r_test/(r_train + t) min / median / max | "
             "(T9)/r_test min / median / max | (T9) far-field term / measured far field, median |",
             "|---|---|---|---|---|---|---|---|---|---|"]

    def med(ms, k):
        v = [m[k] for m in ms if _fin(m.get(k))]
        return float(np.median(v)) if v else None

    def span(ms, k):
        v = np.array([m[k] for m in ms if _fin(m.get(k))])
        return "—" if not len(v) else f"{v.min():.2f} / {np.median(v):.2f} / {v.max():.2f}"

    every = []
    for (name, dfc), ms in sorted(groups.items()):
        every += ms
        lines.append(f"| {name} | {dfc} | {len(ms)} | {_fmt(med(ms, 'residual_dual_norm'), '.2e')} | "
                     f"{_fmt(med(ms, 'train_residual_dual_norm'), '.2e')} | {_fmt(med(ms, 'transfer_hessian_term'), '.2e')} | "
                     f"{_fmt(med(ms, 'transfer_tail_term'), '.2e')} | {span(ms, 'decomposition_ratio')} | "
                     f"{span(ms, 'estimate_residual_ratio')} | {_fmt(med(ms, 'estimate_far_field_ratio'), '.2f')} |")
    if every:
        lines.append(f"| all | all | {len(every)} | | | | | {span(every, 'decomposition_ratio')} | "
                     f"{span(every, 'estimate_residual_ratio')} | {_fmt(med(every, 'estimate_far_field_ratio'), '.2f')} |")
    return {"table": "\n".join(lines), "n": len(every)}


NAMES = ("training_size_2d", "training_size_3d", "training_size_3d_from_reference", "fc_vs_large_cells_2d",
         "loss_weights_2d", "model_size_2d", "test_domain_2d")


def main(argv=None) -> dict:
    """Print (and return) the tables; with ``--results`` also export the per-task data."""
    global FIG
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default=None, help="directory holding the studies' --out directories "
                    "(default: read docs/data/tasks/*.json)")
    ap.add_argument("--data", default=str(TASKS), help="directory of the per-task data (default docs/data/tasks)")
    ap.add_argument("--figures", default=str(FIG), help="where the figures go (default docs/figures)")
    ap.add_argument("--no-summary", action="store_true", help="do not rewrite docs/data/studies.json")
    args = ap.parse_args(argv)
    FIG = pathlib.Path(args.figures)
    FIG.mkdir(parents=True, exist_ok=True)
    data = pathlib.Path(args.data)
    report, outs = {}, {}
    for name in NAMES:
        if args.results is not None:
            out, results = _load(pathlib.Path(args.results) / name)
            if out is not None:
                export_tasks(out, name, data)
        elif (data / f"{name}.json").is_file():
            out, results = load_tasks(data / f"{name}.json")
        else:
            out, results = None, []
        if out is None:
            print(f"({name}: no results; skipped)")
            continue
        outs[name] = out
        n_done = sum(r.state == "done" for r in out.rows)
        head = f"{name}: {out.n_points} points, {n_done} done, {len(out.rows) - n_done} failed tasks"
        if name.startswith("training_size"):
            report[name] = training_size(out, results, name.replace("_", "-"), 2 if name.endswith("2d") else 3)
        elif name == "fc_vs_large_cells_2d":
            report[name] = fc_vs_large(out, results)
        elif name == "loss_weights_2d":
            report[name] = loss_weights(out)
        elif name == "test_domain_2d":
            report[name] = test_domain(out)
        else:
            report[name] = model_size(out)
        report[name]["summary"] = head
        print(f"\n## {head}\n")
        for k in ("table", "rates_table"):
            if k in report[name]:
                print(report[name][k] + "\n")
    if outs:
        report["effectivity"] = effectivity(outs)
        print("\n## effectivity\n\n" + report["effectivity"]["table"])
        print(f"\nstatuses: {report['effectivity']['statuses']}")
        report["decomposition"] = decomposition(outs)
        print("\n## decomposition\n\n" + report["decomposition"]["table"])
    if not args.no_summary:
        # studies without per-task data keep the tables recorded for them before
        summary = DATA / "studies.json"
        old = json.loads(summary.read_text()) if summary.is_file() else {}
        merged = {k: v for k, v in old.items() if k not in report and k in NAMES}
        merged.update(report)
        summary.write_text(json.dumps(merged, indent=1, default=str) + "\n")
        print(f"\nwrote {DATA / 'studies.json'} and the figures in {FIG}")
    return report


if __name__ == "__main__":
    main()
