"""Adaptive design of a composite model guided by the Fisher information and multi-property
errors (issue 18 item 4, seed 002; docs/design.md).

    python studies/composite_design.py --run                 # d = 2 Morse, seeds 0-4 (≈ 1 min CPU,
                                                             # one thread): docs/data/composite_design_morse2d.json
    python studies/composite_design.py --run --system w3d --seeds 0 1 2
                                                             # bcc W: docs/data/composite_design_w3d.json
    python studies/composite_design.py [--system w3d]        # the tables of docs/design.md from
                                                             # the data file only (no physics recomputed)

Systems (:data:`SYSTEMS`): d = 2 triangular builtin:morse (training cells N = 4) and bcc
builtin:W (N = 2, 3). Training set: perfect, vacancy and interstitial cells, rattled, one ±1 %
strain, E, F, V, seeded; a second set of the same kind (seed 1000 + the training seed) is the
validation set. Every model is fitted by :func:`genanalysis.fit.fit_linear` with the same
loss (E = F = V = 1).

The loop (each step recorded in the data file):

1. **single-term models**: pair, embedding, three-body and four-body ACE terms each alone;
   the best by the score starts the design.
2. **moves** from the current model: add an absent term; grow a term's basis (pair: two more
   radial functions; embedding: one more power; ACE: degree + 1); remove the basis function
   whose information given the others is the smallest fraction of its own,
   when below ``PRUNE`` (a numerically redundant direction of the Fisher information; one at
   a time); drop the whole term whose information given the other terms is the smallest
   fraction of its own (with two or more terms).
3. **Fisher filter**: a move that adds columns is fitted, and its new columns' information
   given all the others (the Schur complement of I = RᵀR, trace relative to the whole trace)
   is computed; below ``MIN_UNIQUE`` the move adds nothing the data can determine and is
   not evaluated further (recorded as ``filtered``).
4. **score** of each remaining move: the mean of log10 of six errors — validation RMSE of E
   (eV/atom), F (eV/Å), V (eV/atom); max |ΔC| of the perfect lattice's elastic constants
   (eV/Å², 3D eV/Å³); the design defect's (the vacancy's) geometry error ‖D(ū^ML − ū)‖ (Å)
   and formation-energy error (eV) in its test domain (``design_domain``;
   ``genanalysis.experiment.evaluate``); a model whose vacancy relaxation does not
   converge has no score (recorded, never chosen). The best move is taken when it lowers the
   score by more than ``MIN_GAIN``; the loop stops otherwise, or at ``MAX_PARAMS``.

Held out (used by no decision, ``held_out``): the interstitial and a larger vacancy domain, for the
designed model and the fixed ACE models (body order 3 and 4) whose parameter count is
closest to it. The Fisher spectrum (sloppiness), per term, per observation type and group of
the designed and the fixed models are stored as well.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import tempfile
import time
import warnings

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
DATA = ROOT / "docs" / "data"
FIGURE = ROOT / "docs" / "figures" / "design.png"

#: the systems: reference, lattice, basis defaults, training set, design and held-out domains
SYSTEMS = {
    "morse2d": dict(
        reference="builtin:morse", lattice="triangular", base=dict(cutoff=2.5, l_max=2),
        training=dict(sizes=[4], configs_per_size=3, rattle=0.03),
        design_domain=("vacancy", 8), held_out=(("interstitial", 10), ("vacancy", 12)),
        start_terms={"pair": {"kind": "pair", "degree": 3},
                     "embedding": {"kind": "embedding", "n_embed": 3},
                     "ace3": {"kind": "ace", "orders": [3], "degree": 4, "body_order": 3},
                     "ace4": {"kind": "ace", "orders": [4], "degree": 5, "body_order": 4}}),
    "w3d": dict(
        reference="builtin:W", lattice="bcc", base=dict(cutoff=4.6, r_in=2.0, l_max=2),
        training=dict(sizes=[2, 3], configs_per_size=2, rattle=0.05),
        design_domain=("vacancy", 3), held_out=(("interstitial", 4), ("vacancy", 5)),
        start_terms={"pair": {"kind": "pair", "degree": 4},
                     "embedding": {"kind": "embedding", "n_embed": 3},
                     # a second density: the first two shells only (3.16, 2.74 Å < 3.6 Å < 4.47 Å)
                     "embedding_short": {"kind": "embedding", "n_embed": 3, "cutoff": 3.6},
                     "ace3": {"kind": "ace", "orders": [3], "degree": 6, "body_order": 3},
                     "ace4": {"kind": "ace", "orders": [4], "degree": 6, "body_order": 4}}),
}
LOSS = dict(E=1.0, F=1.0, V=1.0)
#: a basis function whose information given the others is below PRUNE × its own is removed
PRUNE = 1e-6
#: a move whose new columns carry less than MIN_UNIQUE of the whole trace given the others is filtered
MIN_UNIQUE = 1e-6
MIN_GAIN = 0.01
#: relative difference below which two held-out errors count as the same (the same model)
SAME = 1e-6
MAX_PARAMS = 45
MAX_STEPS = 8
SCORE_KEYS = ("rmse_E", "rmse_F", "rmse_V", "elastic_constant_error", "design_error_energy_norm",
              "design_formation_energy_error")


def _training_toml(system: dict, seed: int) -> str:
    """The training-set spec (TOML) of ``system`` with the random ``seed`` (rattles, strains)."""
    t = system["training"]
    return (f'potential = "{system["reference"]}"\nlattice = "{system["lattice"]}"\n'
            'defects = ["perfect", "vacancy", "interstitial"]\n'
            f'sizes = {t["sizes"]}\nconfigs_per_size = {t["configs_per_size"]}\nrattle = {t["rattle"]}\n'
            f'seed = {seed}\nobservations = "EFV"\n[strains]\namplitude = 0.01\ncount = 1\n')


class Study:
    def __init__(self, work: pathlib.Path, system: dict, seed: int):
        from genanalysis.experiment import ExperimentSpec, reference_equilibrium
        from genanalysis.potentials import load_potential
        from genanalysis.trainingset import load_training_set

        self.system, self.lattice, self.base = system, system["lattice"], system["base"]
        self.dim = 2 if self.lattice == "triangular" else 3
        self.ref = load_potential(system["reference"])
        self.a = self.ref.equilibrium_lattice_constant(self.lattice)
        sets = []
        for name, sd in (("train", seed), ("validation", 1000 + seed)):
            (work / f"{name}.toml").write_text(_training_toml(system, sd))
            sets.append(load_training_set(work / f"{name}.toml", out_dir=work / name))
        self.train, self.validation = sets
        self.specs, self.stored = {}, {}
        for defect, size in (system["design_domain"],) + tuple(system["held_out"]):
            spec = ExperimentSpec(lattice=self.lattice, defect=defect, size=size, stability=False,
                                  lattice_terms=(defect, size) == system["design_domain"], rattle_amplitudes=(),
                                  profile_radii=())
            self.specs[(defect, size)] = spec
            self.stored[(defect, size)] = reference_equilibrium(self.ref, spec)
        self.rho = self._lattice_density()

    def _lattice_density(self, rc: float | None = None) -> float:
        """ρ of the perfect lattice, Σ_j (1 − r/r_c)³ (r_c: the term's cutoff, default the
        basis's): the embedding's density scale ρ_s."""
        from genanalysis.lattice import perfect_cell
        from genanalysis.models import engine

        at = perfect_cell(self.lattice, self.a, 6 if self.dim == 2 else 3, "X")
        rc = float(rc or self.base["cutoff"])
        r = np.linalg.norm(engine.geometry(at, rc).Dn, axis=1)
        return float(np.sum((1 - r / rc) ** 3) / len(at))

    def term(self, t: dict) -> dict:
        if t["kind"] != "embedding":
            return dict(t)
        return dict(t, density_scale=self.rho if "cutoff" not in t else self._lattice_density(t["cutoff"]))

    def fit(self, terms: list[dict] | None, plain: dict | None = None):
        from genanalysis.fit import LossWeights, ModelSpec, fit_linear

        spec = (ModelSpec(kind="composite", terms=[self.term(t) for t in terms], **self.base) if terms is not None
                else ModelSpec(**{**self.base, **plain}))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # rank deficiency is reported in the row, not raised
            model, diag = fit_linear(self.train, spec, LossWeights(**LOSS), partial_information=True)
        return model, diag

    def errors(self, model) -> dict:
        from genanalysis.fit import observation_errors

        res = observation_errors(model, self.validation)
        out = {}
        for t in "EFV":
            x = np.concatenate([c for per in res.values() for c in per[t]])
            out[f"rmse_{t}"] = float(np.sqrt(np.mean(x**2)))
        return out

    def experiment(self, model, defect: str, size: int, prefix: str | None = None) -> dict:
        from genanalysis.experiment import evaluate
        from genanalysis.models.io import potential_of

        r = evaluate(potential_of(model), self.ref, self.specs[(defect, size)],
                     reference_equilibrium=self.stored[(defect, size)])
        prefix = prefix or defect
        out = {f"{prefix}_status": r.status, f"{prefix}_reason": r.reason}
        for k in ("error_energy_norm", "formation_energy_error", "dipole_error", "max_core_displacement_error",
                  "residual_dual_norm"):
            v = getattr(r, k)
            out[f"{prefix}_{k}"] = None if v is None else abs(float(v))
        if r.elastic_constant_error is not None:
            out["elastic_constant_error"] = float(r.elastic_constant_error)
        out[f"{prefix}_wall_time"] = r.wall_time
        return out

    def evaluate(self, model) -> dict:
        row = self.errors(model)
        row.update(self.experiment(model, *self.system["design_domain"], prefix="design"))
        vals = [row.get(k) for k in SCORE_KEYS]
        # a model whose vacancy does not converge (no stable equilibrium, solver failure) has no
        # score: it is recorded, never chosen
        ok = row["design_status"] == "converged" and all(isinstance(v, float) and math.isfinite(v) for v in vals)
        row["score"] = float(np.mean([math.log10(max(v, 1e-300)) for v in vals])) if ok else None
        return row


def _information(model) -> dict:
    """The parts of the Fisher information a row keeps: its spectrum's sloppiness, per term,
    per observation type and group."""
    from genanalysis.identifiability import fisher_information

    f = fisher_information(model)
    keep = {"total": f["total"], "scaled": {k: f["scaled"][k] for k in ("condition", "within")},
            "uninformed_features": f["uninformed_features"], "parts_deviation": f["parts_deviation"],
            "per_term": {k: {q: v[q] for q in ("n_params", "trace", "given_others_trace", "given_others_smallest")}
                         for k, v in f["per_term"].items()}}
    for part in ("per_type", "per_group"):
        keep[part] = {k: {q: v[q] for q in ("trace", "share", "rows")} for k, v in f[part].items()}
    return keep


def _grow(t: dict) -> dict | None:
    t = dict(t)
    if t["kind"] == "pair":
        t["degree"] += 1
    elif t["kind"] == "embedding":
        if t["n_embed"] >= 8:
            return None
        t["n_embed"] += 1
    else:
        t["degree"] += 1
    t.pop("features", None)
    return t


def _redundant(model) -> dict[str, list[str]]:
    """The one basis function whose information given the others, relative to its own, is
    smallest, when that is below PRUNE (a nearly redundant direction of the Fisher
    information): {term: [feature]}; never a term's last function. One at a time: functions
    redundant one by one need not be redundant together."""
    from genanalysis.identifiability import information_given_others

    r = model.r_factor_
    own = np.sum(r * r, axis=0)
    best = None
    for t, term in zip(model.spec.terms, model.terms):
        cols = model.term_columns[t.name]
        if len(cols) < 2:
            continue
        for i, c in enumerate(cols):
            frac = 0.0 if own[c] == 0 else information_given_others(r, [c])[0] / own[c]
            if frac < PRUNE and (best is None or frac < best[0]):
                best = (frac, t.name, term.names[i])
    return {} if best is None else {best[1]: [best[2]]}


def _new_columns(model, before: list[str]) -> list[int]:
    old = set(before)
    return [k for k, nm in enumerate(model.feature_names) if nm not in old]


def _moves(terms: dict[str, dict], model, start_terms: dict) -> list[tuple[str, dict[str, dict]]]:
    out = []
    for name, t in start_terms.items():
        if name not in terms:
            out.append((f"add {name}", {**terms, name: dict(t, name=name)}))
    for name, t in terms.items():
        g = _grow(t)
        if g is not None:
            out.append((f"grow {name}", {**terms, name: g}))
    red = _redundant(model)
    if red:
        new = {}
        for name, t in terms.items():
            if name in red:
                term = model.terms[list(terms).index(name)]
                new[name] = dict(t, features=[f for f in term.names if f not in set(red[name])])
            else:
                new[name] = t
        out.append(("remove " + "; ".join(f"{k}:{f}" for k, v in red.items() for f in v), new))
    weakest = _weakest_term(model)
    if weakest is not None:
        out.append((f"drop {weakest}", {k: v for k, v in terms.items() if k != weakest}))
    return out


def _weakest_term(model) -> str | None:
    """Of two or more terms, the one whose information given all the others is the smallest
    fraction of its own (the term the data see least on its own); None for a single term."""
    from genanalysis.identifiability import information_given_others

    if len(model.spec.terms) < 2:
        return None
    r = model.r_factor_
    frac = {}
    for name, cols in model.term_columns.items():
        own = float(np.sum(r[:, cols] ** 2))
        frac[name] = information_given_others(r, cols)[0] / own if own > 0 else 0.0
    return min(frac, key=frac.get)


def run(work: pathlib.Path, system_name: str, seed: int, drop: tuple = ()) -> dict:
    """One design loop and its held-out comparison, training set seed ``seed`` (validation
    set seed 1000 + ``seed``), without the starting terms named in ``drop``."""
    t0 = time.process_time()
    system = SYSTEMS[system_name]
    s = Study(work, system, seed)
    bad = sorted(set(drop) - set(system["start_terms"]))
    if bad:
        raise SystemExit(f"--drop-term {', '.join(bad)}: not a starting term of {system_name} "
                         f"({', '.join(system['start_terms'])})")
    start_terms = {k: v for k, v in system["start_terms"].items() if k not in drop}
    steps = []

    def candidate(label, terms):
        model, diag = s.fit([dict(t, name=n) for n, t in terms.items()])
        row = {"move": label, "terms": {n: s.term(t) for n, t in terms.items()}, "n_params": model.n_params,
               "effective_rank": diag["effective_rank"], "condition_number": diag["condition_number"]}
        return model, row

    # 1. single-term models
    rows, best = [], None
    for name, t in start_terms.items():
        model, row = candidate(f"single {name}", {name: dict(t, name=name)})
        row.update(s.evaluate(model), information=_information(model))
        rows.append(row)
        if row["score"] is not None and (best is None or row["score"] < best[1]["score"]):
            best = (model, row, {name: dict(t, name=name)})
    steps.append({"step": 0, "candidates": rows, "accepted": best[1]["move"]})
    model, current, terms = best
    # 2. moves
    for step in range(1, MAX_STEPS + 1):
        rows, choice = [], None
        total = float(np.sum(model.r_factor_**2))
        for label, new_terms in _moves(terms, model, start_terms):
            m, row = candidate(label, new_terms)
            if m.n_params > MAX_PARAMS:
                row.update(status="over budget")
                rows.append(row)
                continue
            from genanalysis.identifiability import information_given_others

            cols = _new_columns(m, model.feature_names)
            if cols:
                tr, sm = information_given_others(m.r_factor_, cols)
                row.update(new_columns=len(cols), new_information_given_others=tr / float(np.sum(m.r_factor_**2)),
                           new_information_smallest=sm)
                if tr < MIN_UNIQUE * total:
                    row.update(status="filtered")
                    rows.append(row)
                    continue
            row.update(s.evaluate(m), information=_information(m), status="evaluated")
            rows.append(row)
            if row["score"] is not None and (choice is None or row["score"] < choice[1]["score"]):
                choice = (m, row, new_terms)
        gain = None if choice is None else current["score"] - choice[1]["score"]
        accepted = choice is not None and gain > MIN_GAIN
        steps.append({"step": step, "candidates": rows, "accepted": choice[1]["move"] if accepted else None,
                      "gain": gain})
        if not accepted:
            break
        model, current, terms = choice
    designed = {"terms": current["terms"], "n_params": model.n_params, "score": current["score"]}
    # 3. held out: the designed model against fixed ACE models of the same size
    held = []
    for label, mdl in [("designed", model)] + _fixed(s, model):
        row = {"model": label, "n_params": mdl.n_params}
        if label != "designed":
            row["spec"] = mdl.spec.to_dict()
            row.update(s.evaluate(mdl), information=_information(mdl))
        else:
            row.update({k: current[k] for k in current if k not in ("move", "terms")})
        for defect, size in system["held_out"]:
            row[f"held_out_{defect}_{size}"] = s.experiment(mdl, defect, size)
        held.append(row)
    meta = {"study": f"composite_design_{system_name}", "reference": system["reference"],
            "lattice": s.lattice, "training": system["training"], "design_domain": system["design_domain"],
            "a": s.a, "density_scale": s.rho, "base": s.base, "loss": LOSS, "start_terms": start_terms,
            "prune": PRUNE, "min_unique": MIN_UNIQUE, "min_gain": MIN_GAIN, "max_params": MAX_PARAMS,
            "score_keys": list(SCORE_KEYS), "held_out": [list(h) for h in system["held_out"]]}
    return meta, {"seed": seed, "n_train": len(s.train), "n_validation": len(s.validation), "steps": steps,
                  "designed": designed, "held_out": held, "cpu_seconds": time.process_time() - t0}


def _fixed(s: Study, model) -> list:
    """The plain ACE models whose parameter count is closest to the designed ``model``'s:
    body order 3 and 4 with the default pair radials (2·degree), and body order 3 with as
    many pair radials as the designed model has (``pair_degree``; only when it has a pair
    term), so that a win by pair resolution alone shows. Labels "FAMILY (degree d)"."""
    from genanalysis.fit import ModelSpec, linear_model

    p = model.n_params
    pair = next((len(tm.names) for t, tm in zip(model.spec.terms, model.terms) if t.kind == "pair"), None)
    families = [("ACE-3", dict(body_order=3)), ("ACE-4", dict(body_order=4))]
    if pair is not None:
        families.append(("ACE-3 with the designed pair radials", dict(body_order=3, pair_degree=pair)))
    out = []
    for label, kw in families:
        sizes = {}
        for d in range(2, 12):  # degrees whose basis has features of the family's body order
            m = linear_model(ModelSpec(**s.base, degree=d, **kw), s.dim)
            if int(m.basis.body_orders.max()) == kw["body_order"]:
                sizes[d] = m.n_params
        d = min(sizes, key=lambda k: (abs(sizes[k] - p), k))
        extra = f", {kw['pair_degree']} pair radials" if "pair_degree" in kw else ""
        out.append((f"{label} (degree {d}{extra})", s.fit(None, dict(degree=d, **kw))[0]))
    return out


# ----------------------------------------------------------------------------- tables from the data


def _g(v, fmt=".3g"):
    return "—" if v is None else format(v, fmt)


def step_table(run: dict) -> str:
    """Every candidate of every step of one run."""
    lines = ["| step | move | params | score | rmse F (eV/Å) | design defect geometry (Å) | its E_f err (eV) | "
             "new info given others | status |", "|---|---|---|---|---|---|---|---|---|"]
    for st in run["steps"]:
        for c in st["candidates"]:
            status = "**accepted**" if c["move"] == st["accepted"] else c.get("status", "evaluated")
            if status == "evaluated" and c.get("score") is None:
                status = f"no score ({c.get('design_status')})"
            lines.append(f"| {st['step']} | {c['move']} | {c['n_params']} | {_g(c.get('score'))} | "
                         f"{_g(c.get('rmse_F'))} | {_g(c.get('design_error_energy_norm'))} | "
                         f"{_g(c.get('design_formation_energy_error'))} | "
                         f"{_g(c.get('new_information_given_others'))} | {status} |")
    return "\n".join(lines)


def _held(row: dict, defect: str, size: int, what: str):
    return row[f"held_out_{defect}_{size}"].get(f"{defect}_{what}")


def held_out_table(doc: dict) -> str:
    """The designed and the fixed models of every run on the held-out defects."""
    ho = doc["meta"]["held_out"]
    lines = ["| seed | model | params | score | " + " | ".join(f"{d} M={m}: geometry (Å) | {d} M={m}: E_f err (eV)"
                                                          for d, m in ho) + " | Fisher condition | "
             "eigenvalues ≥ 1e-8·λ_max |", "|---|---|---|---|" + "---|---|" * len(ho) + "---|---|"]
    for run in doc["runs"]:
        for r in run["held_out"]:
            cells = []
            for d, m in ho:
                ok = _held(r, d, m, "status") == "converged"
                cells += [_g(_held(r, d, m, "error_energy_norm")) if ok else _held(r, d, m, "status"),
                          _g(_held(r, d, m, "formation_energy_error")) if ok else "—"]
            info = r["information"]["total"]
            name = r["model"] + (" (" + " + ".join(f"{k} {_size(t)}" for k, t in run["designed"]["terms"].items()) + ")"
                                 if r["model"] == "designed" else "")
            lines.append(f"| {run['seed']} | {name} | {r['n_params']} | {_g(r.get('score'))} | " + " | ".join(cells)
                         + f" | {_g(info['condition'])} | {info['within']['1e-8']} |")
    return "\n".join(lines)


def _size(t: dict) -> str:
    if t["kind"] == "embedding":
        return f"M={t['n_embed']}"
    return f"degree {t['degree']}" + (f", {len(t['features'])} kept" if t.get("features") else "")


def summary(doc: dict) -> str:
    """Per held-out error: fixed / designed over the runs (geometric mean, range, and in how
    many runs the designed model is better, the same within ``SAME`` — the same model, when
    the design is a plain ACE — or worse), for each fixed model."""
    ho = doc["meta"]["held_out"]
    family = lambda r: r["model"].split(" (")[0]  # noqa: E731 - "FAMILY (degree d)"
    fixed_bos = list(dict.fromkeys(family(r) for run in doc["runs"] for r in run["held_out"][1:]))
    lines = ["| fixed model | held-out error | fixed / designed: geometric mean | range | designed better / same / worse |",
             "|---|---|---|---|---|"]
    for fb in fixed_bos:
        for d, m in ho:
            for what, label in (("error_energy_norm", "geometry"), ("formation_energy_error", "E_f")):
                ratios, n = [], 0
                for run in doc["runs"]:
                    des = run["held_out"][0]
                    fix = next((r for r in run["held_out"] if family(r) == fb), None)
                    if fix is None:
                        continue
                    a, b = _held(des, d, m, what), _held(fix, d, m, what)
                    n += 1
                    if (_held(des, d, m, "status") == "converged" and _held(fix, d, m, "status") == "converged"
                            and a and b):
                        ratios.append(b / a)
                if not ratios:
                    lines.append(f"| {fb} | {d} M={m} {label} | — | — | — |")
                    continue
                gm = math.exp(float(np.mean(np.log(ratios))))
                better = sum(x > 1 + SAME for x in ratios)
                same = sum(abs(x - 1) <= SAME for x in ratios)
                lines.append(f"| {fb} | {d} M={m} {label} | {gm:.3g} | {min(ratios):.3g}–{max(ratios):.3g} | "
                             f"{better} / {same} / {len(ratios) - better - same}"
                             + (f" (of {n} runs, {len(ratios)} converged)" if n != len(ratios) else "") + " |")
    return "\n".join(lines)


def figure(docs: dict[str, dict], path: pathlib.Path) -> None:
    """Left: the score of the accepted model at every step, per system and seed. Right: the
    Fisher eigenvalues λ/λ_max (descending) of the designed model and the fixed ones, seed 0
    of each system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for (name, doc), ls in zip(docs.items(), ("-", "--")):
        for run in doc["runs"]:
            path_scores = []
            for st in run["steps"]:
                acc = next((c for c in st["candidates"] if c["move"] == st["accepted"]), None)
                if acc is not None:
                    path_scores.append(acc["score"])
            axes[0].plot(range(len(path_scores)), path_scores, ls, marker="o", ms=3, label=f"{name} seed {run['seed']}")
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("score: mean log10 of the six errors")
    axes[0].legend(fontsize=6, ncol=2)
    for ax, (name, doc) in zip(axes[1:], docs.items()):
        for r in doc["runs"][0]["held_out"]:
            ev = np.array(r["information"]["total"]["eigenvalues"])
            ax.semilogy(np.arange(1, len(ev) + 1), np.maximum(ev / ev[0], 1e-20), marker=".", label=r["model"])
        ax.set_title(f"{name}, seed 0: Fisher eigenvalues", fontsize=9)
        ax.set_xlabel("index")
        ax.set_ylabel("λ / λ_max")
        ax.legend(fontsize=6)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def information_table(doc: dict) -> str:
    """Seed 0: the share of the Fisher information's trace per observation type and group,
    and per term (composite) or body order (ACE) its trace share and the part it keeps given
    all the others (given-others trace / own trace), for the designed and the fixed models."""
    run = doc["runs"][0]
    types = ["E", "F", "V"]
    groups = sorted({g for r in run["held_out"] for g in r["information"]["per_group"]})
    lines = ["| model | " + " | ".join(f"share {t}" for t in types) + " | " + " | ".join(f"share {g}" for g in groups)
             + " | blocks: trace share (given others / own) |",
             "|---|" + "---|" * (len(types) + len(groups)) + "---|"]
    for r in run["held_out"]:
        info = r["information"]
        total = info["total"]["trace"]
        blocks = [(k.replace("term ", "").replace("body order ", ""), v) for k, v in info["per_term"].items()
                  if k.startswith(("term ", "body order "))]
        cells = [_g(info["per_type"].get(t, {}).get("share"), ".2f") for t in types]
        cells += [_g(info["per_group"].get(g, {}).get("share"), ".2f") for g in groups]
        bl = "; ".join(f"{k}: {v['trace'] / total:.2f} ({v['given_others_trace'] / v['trace']:.1e})" for k, v in blocks)
        lines.append(f"| {r['model']} | " + " | ".join(cells) + f" | {bl} |")
    return "\n".join(lines)


def tables(doc: dict) -> str:
    return "\n\n".join([step_table(doc["runs"][0]), held_out_table(doc), summary(doc), information_table(doc)])


def main(argv=None) -> dict:
    global PRUNE, MIN_UNIQUE
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--system", choices=sorted(SYSTEMS), default="morse2d")
    ap.add_argument("--run", action="store_true", help="run the design loop (else: tables from the data file)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="training-set seeds (one loop each)")
    ap.add_argument("--prune", type=float, default=PRUNE, help=f"PRUNE (default {PRUNE:g})")
    ap.add_argument("--min-unique", type=float, default=MIN_UNIQUE, help=f"MIN_UNIQUE (default {MIN_UNIQUE:g})")
    ap.add_argument("--drop-term", action="append", default=[], metavar="NAME",
                    help="leave this starting term out of the pool (repeatable)")
    ap.add_argument("--out", help="the data file (default docs/data/composite_design_SYSTEM.json)")
    ap.add_argument("--figure", action="store_true", help="also draw docs/figures/design.png from both data files")
    args = ap.parse_args(argv)
    out = pathlib.Path(args.out or DATA / f"composite_design_{args.system}.json")
    if args.run:
        PRUNE, MIN_UNIQUE = args.prune, args.min_unique
        runs, meta = [], None
        for seed in args.seeds:
            with tempfile.TemporaryDirectory() as work:
                meta, r = run(pathlib.Path(work), args.system, seed, drop=tuple(args.drop_term))
            runs.append(r)
        meta["cpu_seconds"] = sum(r["cpu_seconds"] for r in runs)
        # compact: the per-candidate eigen-spectra would triple the file indented
        out.write_text(json.dumps({"meta": meta, "runs": runs}, separators=(",", ":"), default=float) + "\n")
    doc = json.loads(out.read_text())
    print(tables(doc))
    if args.figure:
        docs = {n: json.loads((DATA / f"composite_design_{n}.json").read_text()) for n in ("morse2d", "w3d")}
        figure(docs, FIGURE)
    return doc


if __name__ == "__main__":
    main()
