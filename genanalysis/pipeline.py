"""The main job: training set → fit → generalisation experiment, as one sweep task kind.

A study names ``task = "generalisation"`` and gives three tables (docs/studies.md §1):

* ``[trainingset]``: the keys of :class:`~genanalysis.trainingset.TrainingSetSpec`
  (docs/trainingset.md) plus three conveniences: ``size`` (one training cell size N,
  shorthand for ``sizes = [N]``, so that N is a numeric sweep axis), ``fc_cells`` (N_p > 0
  adds perfect-lattice cells of size N_p observing ``fc_observations``, default ``"EFH"``:
  the "small defect cells + perfect-lattice force constants" data) and ``extra`` (a list
  of further training-set tables; each inherits ``potential``, ``element``, ``lattice``,
  ``a``, ``seed``, ``rattle``, ``fmax``, ``max_iter``, ``fd_step`` from the base table);
  ``seed`` defaults to the study's seed;
* ``[fit]``: the keys of :class:`~genanalysis.fit.FitSpec` except ``training_set``
  (``model``, ``loss``, ``validation_fraction``, ``seed`` (default: the study's), ``rcond``,
  ``on_rank_deficient``) plus ``drop_unobserved`` (default true: a loss weight of an
  observation type that the training set does not carry is set to 0 and the change noted
  in the fit report, so one fit table serves a sweep over observation sets) and
  ``spatial = {amplitude, radius}``, shorthand for the loss's spatial weights
  (``loss.spatial``, :class:`~genanalysis.fit.SpatialWeights`);
* ``[experiment]``: ``defect`` and ``size`` (the test domain M) and the optional fields of
  :class:`~genanalysis.experiment.ExperimentSpec` (``a``, ``fmax``, ``r_stencil``, ``start``,
  ``core_radius``, ``check_size``, ``stability``, ``max_iter``). The reference and the
  lattice are the training set's (the model is judged against the potential it was fitted
  to); ``a`` defaults to the lattice constant the training set was built at.

Work is shared: the training set is built once per distinct ``[trainingset]`` table and
seed (shared kind ``generalisation.trainingset``; the reference's content-addressed cache
is shared by every training set of a results directory, so sets that differ only in
observation types or sizes reuse each other's relaxations and evaluations), and the model
is fitted once per (training set, ``[fit]``, seed) (shared kind ``generalisation.fit``, whose
content hash includes the training set's), so a vacancy and an interstitial test of the same
model share one fit, and fits to other data or other loss weights never do. The fitted model
is named ``fit:FIT_HASH`` (:func:`genanalysis.fit.fit_hash`: the fit spec and the training
set's content). A failed fit is a result:
the task records ``status = "fit failure"`` and the reason. The experiment's own statuses
(``converged``, ``no stable equilibrium``, ``solver failure``, ``reference failure``)
pass through unchanged.

The reference defect equilibrium ū on the test domain is shared too (shared kind
``generalisation.reference``, :func:`reference_key`): content-addressed by the reference's
identity (spec, element and the SHA-256 of the file that defines it), the lattice, ``a``, the
defect, M and the solver tolerances (``fmax``, ``max_iter``), it is relaxed once and every
task on that domain — every training set, fit, seed and start — reads it; likewise the
convergence check's domain ``check_size``.

**The test-domain standard.** A study that sweeps the training cell size is refused unless
every test domain is at least four times the largest training cell of the sweep,
``M ≥ 4·N_max`` (N over the defect cells; perfect-lattice cells do not count): with M close
to N the "generalisation" closes trivially as N → M (docs/theory.md §4). A study that must
break it (the demo's runtime, a study *of* M) sets ``[experiment] allow_small_test_domain =
true`` and says why.

Units: Å, eV, eV/Å, eV/Å², virials eV; fit errors E and V eV/atom, F eV/Å, H eV/Å²;
reference work in atom-evaluations (see :func:`reference_work`).
"""

from __future__ import annotations

import functools
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from genanalysis.data import TrainingData
from genanalysis.exceptions import InputError
from genanalysis.lattice import atoms_dim

__all__ = [
    "KIND",
    "UNITS",
    "TrainingData",
    "trainingset_specs",
    "fit_spec",
    "experiment_spec",
    "validate",
    "validate_study",
    "reference_key",
    "reference_equilibrium_work",
    "reference_work",
    "build_training_data",
    "fit_model",
    "generalisation_task",
    "run_point",
]

#: the task kind a study names
KIND = "generalisation"
SHARED_TRAININGSET = "generalisation.trainingset"
SHARED_FIT = "generalisation.fit"
SHARED_REFERENCE = "generalisation.reference"

#: the test domain of a study of training size must be this many times its largest training cell
TEST_DOMAIN_RATIO = 4
#: the [experiment] key that lets a study break that standard (it must say why)
ALLOW_SMALL = "allow_small_test_domain"

#: keys of the [trainingset] table that are not TrainingSetSpec fields
_TS_CONVENIENCE = ("size", "fc_cells", "fc_observations", "extra")
#: keys an ``extra`` / ``fc_cells`` training set inherits from the base table
_TS_INHERITED = ("potential", "element", "lattice", "a", "seed", "rattle", "fmax", "max_iter", "fd_step")
#: keys of the [fit] table
_FIT_KEYS = ("model", "loss", "validation_fraction", "seed", "rcond", "on_rank_deficient", "drop_unobserved",
             "spatial")

#: units of the metrics this kind adds to the experiment's, and of its sweep axes
UNITS = {
    "trainingset.size": "cells",
    "trainingset.fc_cells": "cells",
    "trainingset.rattle": "Å",
    "experiment.size": "cells",
    "fit.model.degree": "1",
    "fit.model.cutoff": "Å",
    "fit.loss.E": "eV⁻²",
    "fit.loss.F": "(eV/Å)⁻²",
    "fit.loss.V": "eV⁻²",
    "fit.loss.H": "(eV/Å²)⁻²",
    "fit_rmse_E_train": "eV/atom", "fit_rmse_E_validation": "eV/atom",
    "fit_rmse_F_train": "eV/Å", "fit_rmse_F_validation": "eV/Å",
    "fit_rmse_V_train": "eV/atom", "fit_rmse_V_validation": "eV/atom",
    "fit_rmse_H_train": "eV/Å²", "fit_rmse_H_validation": "eV/Å²",
    "fit_n_params": "1",
    "fit_condition_number": "1",
    "fit_seconds": "s",
    "ts_configurations": "1",
    "ts_atoms": "atoms",
    "ts_observed_values": "1",
    "reference_work": "atom-evaluations",
    "reference_work_analytic": "atom-evaluations",
    "task_seconds": "s",
}


# --------------------------------------------------------------------------- the tables


def _table(params, stage: str) -> dict:
    t = params.get(stage, {})
    if not isinstance(t, dict):
        raise InputError(f"[{stage}] must be a table, got {t!r}")
    return dict(t)


def _seed(params) -> int:
    s = params.get("seed", 0)
    if isinstance(s, bool) or not isinstance(s, int) or s < 0:
        raise InputError(f"seed={s!r} must be a whole number ≥ 0")
    return s


def _ts_spec(table: dict, where: str):
    from genanalysis.trainingset import TrainingSetSpec

    try:
        return TrainingSetSpec.from_dict(table)
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None
    except TypeError as exc:  # a wrongly typed value the dataclass did not anticipate
        raise InputError(f"{where}: {exc}") from None


def trainingset_specs(table: dict, seed: int = 0) -> list:
    """The :class:`~genanalysis.trainingset.TrainingSetSpec` list of a ``[trainingset]``
    table (the base set first, then ``fc_cells``, then each ``extra``); ``seed`` is the
    study's, used when the table sets none. Raises InputError naming ``trainingset.KEY``."""
    table = dict(table)
    base = {k: v for k, v in table.items() if k not in _TS_CONVENIENCE}
    base.setdefault("seed", seed)
    if "size" in table:
        n = table["size"]
        if "sizes" in table:
            raise InputError("trainingset.size and trainingset.sizes both given; use one (size = N is sizes = [N])")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InputError(f"trainingset.size={n!r}: the training cell size N must be a whole number ≥ 1")
        base["sizes"] = [n]
    for k in ("potential", "lattice"):
        if k not in base:
            raise InputError(f"trainingset.{k}: required")
    specs = [_ts_spec(base, "trainingset")]
    inherited = {k: base[k] for k in _TS_INHERITED if k in base}
    fc = table.get("fc_cells", 0)
    if isinstance(fc, bool) or not isinstance(fc, int) or fc < 0:
        raise InputError(f"trainingset.fc_cells={fc!r} must be a whole number ≥ 0 (0: no perfect-lattice "
                         "force-constant cells)")
    if "fc_observations" in table and not fc:
        raise InputError("trainingset.fc_observations is set but fc_cells = 0; set fc_cells = N_p ≥ 1")
    if fc:
        fct = dict(inherited, defects=["perfect"], sizes=[fc], observations=table.get("fc_observations", "EFH"))
        for k in ("configs_per_size", "strains", "include_relaxed"):
            if k in base:
                fct[k] = base[k]
        specs.append(_ts_spec(fct, "trainingset.fc_cells"))
    extra = table.get("extra", [])
    if not isinstance(extra, list) or not all(isinstance(e, dict) for e in extra):
        raise InputError(f"trainingset.extra={extra!r} must be a list of training-set tables")
    for i, e in enumerate(extra):
        bad = sorted(set(e) & set(_TS_CONVENIENCE))
        if bad:
            raise InputError(f"trainingset.extra[{i}].{bad[0]}: not accepted in an extra set; use sizes")
        specs.append(_ts_spec(dict(inherited, **e), f"trainingset.extra[{i}]"))
    return specs


def fit_spec(table: dict, seed: int = 0, training_set: str = "<sweep>"):
    """(:class:`~genanalysis.fit.FitSpec`, drop_unobserved) of a ``[fit]`` table."""
    from genanalysis.fit import FitSpec
    from genanalysis.fitting import external

    table = dict(table)
    if table.get("kind") == external.KIND:
        return external.ExternalFitSpec.from_table(table, seed), False
    if "kind" in table:
        raise InputError(f"fit.kind={table['kind']!r}: the only fit kind is {external.KIND!r} (a model trained by "
                         "its own tool); the toolkit's own model kinds go in fit.model.kind")
    bad = sorted(set(table) - set(_FIT_KEYS))
    if bad:
        raise InputError(f"fit.{bad[0]}: unknown key; accepted: {', '.join(_FIT_KEYS)} "
                         "(the training set comes from [trainingset])")
    spatial = table.pop("spatial", None)
    if spatial is not None:
        loss = table.get("loss", {})
        if isinstance(loss, dict):
            if "spatial" in loss:
                raise InputError("fit.spatial and fit.loss.spatial both given; use one")
            table["loss"] = dict(loss, spatial=spatial)
    drop = table.pop("drop_unobserved", True)
    if not isinstance(drop, bool):
        raise InputError(f"fit.drop_unobserved={drop!r} must be true or false")
    table.setdefault("seed", seed)
    try:
        spec = FitSpec.from_dict(dict(table, training_set=training_set))
    except InputError as exc:
        raise InputError(f"fit: {exc}") from None
    except TypeError as exc:
        raise InputError(f"fit: {exc}") from None
    return spec, drop


def _allow_small(table: dict) -> bool:
    allow = table.get(ALLOW_SMALL, False)
    if not isinstance(allow, bool):
        raise InputError(f"experiment.{ALLOW_SMALL}={allow!r} must be true or false")
    return allow


def experiment_spec(table: dict, lattice: str, a: float | None = None):
    """The :class:`~genanalysis.experiment.ExperimentSpec` of an ``[experiment]`` table
    (``defect``, ``size`` and the optional keys) on the training set's ``lattice``; ``a``
    (Å) is the table's, else the given one (the training set's). ``allow_small_test_domain``
    is the study's, not the experiment's (:func:`validate_study`)."""
    from genanalysis.experiment import TABLE_KEYS, ExperimentSpec

    table = dict(table)
    _allow_small(table)
    table.pop(ALLOW_SMALL, None)
    return ExperimentSpec.from_table(table, accepted=tuple(k for k in TABLE_KEYS if k != "lattice") + (ALLOW_SMALL,),
                                     hint=" (the reference and lattice are the training set's)", lattice=lattice, a=a)


def validate_study(points) -> None:
    """The test-domain standard, over all points of a study: if the training cell size
    varies across the sweep (or within a point's set), every test domain must be
    ``M ≥ 4·N_max``, unless the point sets ``experiment.allow_small_test_domain = true``.
    Raises one InputError naming the values and the rule."""
    sizes = []
    for params in points:
        specs = trainingset_specs(_table(params, "trainingset"), _seed(params))
        sizes.append({n for s in specs if any(d != "perfect" for d in s.defects) for n in s.sizes})
    every = set().union(*sizes)
    if len(every) < 2:
        return  # not a study of training size
    n_max = max(every)
    for params in points:
        table = _table(params, "experiment")
        m = table.get("size")
        if _allow_small(table) or not isinstance(m, int) or isinstance(m, bool):
            continue
        if m < TEST_DOMAIN_RATIO * n_max:
            raise InputError(f"experiment.size={m}: a study of training size needs test domains M ≥ "
                             f"{TEST_DOMAIN_RATIO}·N_max = {TEST_DOMAIN_RATIO * n_max} (N_max = {n_max}); set "
                             f"experiment.{ALLOW_SMALL} = true to run it anyway and say why")


def validate(params) -> None:
    """Check the three tables of a sweep point before any work; errors name ``stage.key``.

    Registered as the kind's validator rather than as stage validators: stage validators
    apply to every study of the process whatever its task kind, and these tables mean
    something only to this kind."""
    from genanalysis.lattice import check_cell

    seed = _seed(params)
    specs = trainingset_specs(_table(params, "trainingset"), seed)
    fspec, _ = fit_spec(_table(params, "fit"), seed)
    if hasattr(fspec, "check_tools"):
        fspec.check_tools()
    _check_fit_memory(specs, fspec)
    ex = experiment_spec(_table(params, "experiment"), specs[0].lattice)
    check_cell(specs[0].lattice, ex.size, what=f"experiment.size={ex.size}")
    if any(s.lattice != specs[0].lattice or s.potential != specs[0].potential for s in specs[1:]):
        raise InputError("trainingset.extra: every set must share the base set's potential and lattice")
    _check_potential(specs[0].potential, specs[0].element)


def _check_fit_memory(specs, fspec) -> None:
    """Refuse, before any work, a linear fit whose largest training configuration's design
    and QR cannot fit in memory (:func:`genanalysis.memory.fit_bytes`; the fit checks the
    built configurations again). Lower bound: a configuration has one atom fewer than its
    cell, and a relaxed perfect cell needs one atom's force-constant rows (rattled cells and
    defect cells need all of them)."""
    from genanalysis.lattice import LATTICES, cell_atoms
    from genanalysis.memory import ace_features, check_memory, design_rows, fit_bytes

    m = getattr(fspec, "model", None)  # an external fit has no model of ours
    if getattr(m, "kind", None) != "ace":
        return
    p = ace_features(m.degree, m.body_order, m.l_max, m.w_l, m.pair_degree) + 1
    worst, where = (0.0, 0.0), ""
    for ts in specs:
        dim = LATTICES[ts.lattice][0]
        for group in ts.defects:
            kinds = "".join(t for t in ts.observations_of(group) if fspec.loss.weight(group, t) > 0)
            for size in ts.sizes:
                n = cell_atoms(ts.lattice, size) - (group != "perfect")
                r = n if group != "perfect" or ts.configs_per_size > 0 else 1
                rows = design_rows(n, dim, kinds, r if "H" in kinds else 0)
                if rows[1] > worst[1]:
                    worst, where = rows, f"{group} cell of size {size}, {kinds}"
    if where:
        check_memory(f"the fit's design ({worst[1]:,.0f} rows of the {where} × {p:,.0f} parameters)",
                     fit_bytes(*worst, p))


@functools.lru_cache(maxsize=16)
def _check_potential(potential: str, element: str | None) -> None:
    """The reference resolves (a built-in name, a readable file, an importable callable):
    checked once per distinct spec, before any work, rather than in every task."""
    from genanalysis.potentials import load_potential

    try:
        load_potential(potential, element=element)
    except InputError as exc:
        raise InputError(f"trainingset.potential: {exc}") from None


# --------------------------------------------------------------------------- shared work


def reference_work(configs) -> dict:
    """What the training set cost the reference, counted from its configurations.

    * ``ts_configurations``, ``ts_atoms`` (Σ n over configurations);
    * ``ts_observed_values``: scalar observations (E: 1, F: d·n, V: d², H: (d·n)² per
      configuration; a perfect crystal's force constants counted as one block row, d × d·n,
      since the rest follows by translation);
    * ``reference_work``: atom-evaluations of a reference that gives forces and has no
      Hessian (a DFT code): one evaluation of n atoms per configuration, plus, for force
      constants by central finite differences, 6 displaced evaluations for a perfect crystal
      (the one symmetry-distinct atom, phonopy-style) and 2·d·n for any other cell;
    * ``reference_work_analytic``: the same with analytic Hessians (one evaluation per
      configuration whatever it observes).
    Relaxations of the defect cells are not counted (both kinds of data need them once per
    cell size). Units: atom-evaluations (n atoms evaluated once = n)."""
    from genanalysis.models.engine import translation_orbit

    out = {"ts_configurations": 0, "ts_atoms": 0, "ts_observed_values": 0, "reference_work": 0,
           "reference_work_analytic": 0}
    per_type = {t: 0 for t in "EFVH"}
    for c in configs:
        n = len(c)
        dim = atoms_dim(c.atoms)
        obs = c.observed
        out["ts_configurations"] += 1
        out["ts_atoms"] += n
        out["reference_work_analytic"] += n
        work = n
        if "E" in obs:
            per_type["E"] += 1
        if "F" in obs:
            per_type["F"] += dim * n
        if "V" in obs:
            per_type["V"] += dim * dim
        if "H" in obs:
            perfect = n > 1 and translation_orbit(c.atoms)
            per_type["H"] += (dim * dim * n) if perfect else (dim * n) ** 2
            work += n * (6 if perfect else 2 * dim * n)
        out["reference_work"] += work
    out["ts_observed_values"] = sum(per_type.values())
    out.update({f"ts_observed_{t}": v for t, v in per_type.items()})
    return out


def _workdir(ctx, what: str) -> Path:
    art = getattr(ctx, "artifacts", "") if ctx is not None else ""
    if art:
        return Path(art)
    return Path(tempfile.mkdtemp(prefix=f"genanalysis-{what}-"))


def _share_cache(build_dir: Path) -> None:
    """Point ``build_dir/cache`` at one reference cache per results directory
    (``DIR/artifacts/reference-cache``), so training sets that overlap (the same cells with
    other observation types, another size) reuse relaxations and observations. The cache is
    content-addressed with atomic writes, so concurrent builders are safe."""
    artifacts = build_dir.parent
    if artifacts.name != "artifacts":
        return
    common = artifacts / "reference-cache"
    common.mkdir(parents=True, exist_ok=True)
    link = build_dir / "cache"
    if link.exists() or link.is_symlink():
        return
    build_dir.mkdir(parents=True, exist_ok=True)
    try:
        os.symlink(common, link, target_is_directory=True)
    except OSError:  # a filesystem without symlinks: each set keeps its own cache
        pass


def build_training_data(params, shared, ctx) -> TrainingData:
    """Shared work ``generalisation.trainingset``: build every set of the ``[trainingset]``
    table (``params = {"trainingset": ..., "seed": ...}``) with the reference, in-process
    (the sweep runs builds in parallel), and return the concatenated configurations."""
    from genanalysis.trainingset import build, read_training_set

    specs = trainingset_specs(params.get("trainingset", {}), int(params.get("seed", 0)))
    root = _workdir(ctx, "trainingset")
    configs, summaries = [], []
    a = None
    for i, spec in enumerate(specs):
        d = root / f"set{i}-{spec.content_hash()[:12]}"
        _share_cache(d)
        summary = build(spec, d, workers=1)
        if summary.failures:
            f = summary.failures[0]
            raise RuntimeError(f"training set {i}: {len(summary.failures)} reference failure(s), first: "
                               f"{f.get('stage')} {f.get('group')} N={f.get('size')}: {f.get('reason')}")
        if a is None:
            a = float(summary.a)
        configs += read_training_set(d)
        summaries.append({"spec_hash": summary.spec_hash, "dir": str(d), "a": summary.a, "counts": summary.counts,
                          "evaluations": summary.evaluations, "wall_time": summary.wall_time})
    symbols = sorted({s for c in configs for s in c.atoms.get_chemical_symbols()})
    element = symbols[0] if len(symbols) == 1 else "X"
    return TrainingData(configs=configs, a=float(a), element=element, potential=specs[0].potential,
                        lattice=specs[0].lattice, summaries=summaries, work=reference_work(configs))


def reference_key(params, size_key: str = "size") -> dict | None:
    """What determines the reference equilibrium of a point's test domain (the selector of
    the shared kind ``generalisation.reference``): the reference's identity (spec, element,
    SHA-256 of its defining file; :func:`genanalysis.trainingset.build.potential_identity`),
    the lattice, ``a`` (the experiment's, else the training set's, else None: the reference's
    equilibrium constant), the defect (canonical name), the domain size (``size``, or the
    convergence check's ``check_size``: None if the point has no check) and the solver
    tolerances ``fmax`` and ``max_iter``. Seeds, fits and the model's start do not enter."""
    from genanalysis.trainingset.build import potential_identity

    ts = _table(params, "trainingset")
    spec = experiment_spec(_table(params, "experiment"), ts.get("lattice"), ts.get("a"))
    size = spec.size if size_key == "size" else spec.check_size
    if size is None:
        return None
    return {"potential": ts.get("potential"), "identity": potential_identity(ts.get("potential"), ts.get("element")),
            "lattice": spec.lattice, "a": None if spec.a is None else repr(float(spec.a)), "defect": spec.defect,
            "size": int(size), "fmax": repr(float(spec.fmax)), "max_iter": int(spec.max_iter)}


def check_reference_key(params) -> dict | None:
    """:func:`reference_key` of the convergence check's domain (None without a check)."""
    return reference_key(params, "check_size")


def reference_equilibrium_work(params, shared, ctx):
    """Shared work ``generalisation.reference``: the reference equilibrium of one test
    domain (:func:`genanalysis.experiment.reference_equilibrium`), data only; None for a
    point without that domain (no convergence check)."""
    from genanalysis.experiment import ExperimentSpec, reference_equilibrium

    if params is None:
        return None
    spec = ExperimentSpec(lattice=params["lattice"], defect=params["defect"], size=params["size"],
                          a=None if params["a"] is None else float(params["a"]), fmax=float(params["fmax"]),
                          max_iter=params["max_iter"])
    return reference_equilibrium(params["potential"], spec)


def _drop_unobserved(spec, configs):
    """FitSpec with the weights of unobserved types set to 0 (and the notes saying so)."""
    import dataclasses

    from genanalysis.data import OBSERVATION_TYPES

    have = {t for c in configs for t in c.observed}
    changes = {t: 0.0 for t in OBSERVATION_TYPES if t not in have and getattr(spec.loss, t) > 0}
    if not changes:
        return spec, []
    notes = [f"loss weight {t}={getattr(spec.loss, t):g} set to 0: the training set carries no {t}" for t in changes]
    if all((getattr(spec.loss, t) if t not in changes else 0.0) == 0 for t in OBSERVATION_TYPES):
        return spec, notes  # nothing left to fit: let fit() say so
    return dataclasses.replace(spec, loss=dataclasses.replace(spec.loss, **changes)), notes


def fit_model(params, shared, ctx) -> dict:
    """Shared work ``generalisation.fit``: fit the ``[fit]`` model to the training set.

    Returns a dict: ``status`` (``"fitted"`` or ``"fit failure"``), ``reason``, the model's
    ``kind``, ``header`` and ``arrays`` (:meth:`state`, rebuilt by
    :func:`genanalysis.models.io` conventions), ``report`` (the fit report with the notes and
    warnings) and ``model_dir`` (the model saved with ``save_model``, usable as
    ``genanalysis evaluate --model DIR``). A fit that raises is a result, not a crash."""
    from genanalysis.fit import fit
    from genanalysis.models.io import save_model

    data: TrainingData = shared["trainingset"]
    spec, drop = fit_spec(params.get("fit", {}), int(params.get("seed", 0)))
    if not hasattr(spec, "model"):
        return _fit_external(spec, data, ctx, int(params.get("seed", 0)))
    notes = []
    if drop:
        spec, notes = _drop_unobserved(spec, data.configs)
    configs = data.configs
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = fit(configs, spec)
    except Exception as exc:  # noqa: BLE001 - a failed fit is a result
        return {"status": "fit failure", "reason": f"{type(exc).__name__}: {exc}"[:500], "report": {"notes": notes},
                "seconds": time.perf_counter() - t0}
    report = dict(result.report)
    report["notes"] = list(report.get("notes", [])) + notes
    report["warnings"] = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    header, arrays = result.model.state()
    coef_ok = all(np.all(np.isfinite(np.asarray(v, float))) for v in arrays.values())
    out = {"status": "fitted" if coef_ok else "fit failure",
           "reason": "" if coef_ok else "the fitted parameters are not finite",
           "kind": getattr(result.model, "kind", spec.model.kind),
           "header": header, "arrays": {k: np.asarray(v, np.float64) for k, v in arrays.items()},
           "element": data.element, "report": report, "seconds": time.perf_counter() - t0, "model_dir": None}
    if getattr(ctx, "artifacts", ""):
        try:
            out["model_dir"] = str(save_model(result.model, Path(ctx.artifacts) / "model", element=data.element,
                                              extra={"name": f"fit:{report['fit_hash']}",
                                                     "fit_hash": report["fit_hash"],
                                                     "fit_spec_hash": report["spec_hash"],
                                                     "training_set_hash": report["training_set_hash"]}))
        except OSError as exc:
            report["notes"].append(f"model not saved: {exc}")
    return out


def _fit_external(spec, data: TrainingData, ctx, seed: int) -> dict:
    """:func:`fit_model` for ``[fit] kind = "external"``
    (:mod:`genanalysis.fitting.external`): the model file's bytes and the user's loader go
    into the shared result; a run that gave no usable model is a fit failure."""
    from genanalysis.fitting.external import ExternalFitError, fit_external

    t0 = time.perf_counter()
    work = _workdir(ctx, "external") / "train"
    try:
        res = fit_external(data.configs, spec, work, seed=seed)
    except ExternalFitError as exc:
        return {"status": "fit failure", "reason": str(exc)[:500], "report": {"notes": []},
                "seconds": time.perf_counter() - t0}
    return {"status": "fitted", "reason": "", "kind": "external", "load": spec.load, "output": spec.output,
            "files": {name: np.frombuffer(raw, dtype=np.uint8).copy() for name, raw in res["files"].items()},
            "files_sha256": res["files_sha256"], "element": data.element, "report": res["report"],
            "seconds": time.perf_counter() - t0, "model_dir": res["workdir"]}


def _materialise(files: dict, sha: str, root=None) -> Path:
    """Write the model files once into a directory named by their hash (``root``: default
    the system's temporary directory) and return it; files already there with the right
    content are kept. Raises ValueError when ``files`` do not have the hash ``sha``."""
    from genanalysis.fitting.external import files_sha256
    from genanalysis.sweep.worker import atomic_write_bytes

    if files_sha256(files) != sha:
        raise ValueError(f"external model files do not match their SHA-256 {sha[:12]}…")

    base = Path(root if root is not None else tempfile.gettempdir()) / "genanalysis-external-models" / sha[:32]
    for name, data in files.items():
        path = base / name
        if not (path.is_file() and path.read_bytes() == data):
            atomic_write_bytes(str(path), data)
    return base


def _external_model_from(fitted: dict):
    """The loaded external model of a shared fit: its files are written once into a
    directory named by their SHA-256 (checked) and the main one is handed to the loader."""
    from genanalysis.fitting.external import external_potential

    files = {name: np.asarray(arr, dtype=np.uint8).tobytes() for name, arr in fitted["files"].items()}
    base = _materialise(files, fitted["files_sha256"])
    pot = external_potential(fitted["load"], base / fitted["output"])
    pot.name = f"external:{fitted['report'].get('fit_hash', fitted['files_sha256'][:16])}"
    return pot


def _model_from(fitted: dict):
    from genanalysis.models.io import model_from_state, potential_of

    if fitted.get("kind") == "external":
        return _external_model_from(fitted)
    header = dict(fitted["header"])
    kind = header.setdefault("kind", fitted.get("kind"))
    model = model_from_state(header, fitted["arrays"])
    return potential_of(model, name=f"fit:{fitted['report'].get('fit_hash', kind)}", element=fitted["element"])


def _fit_metrics(fitted: dict) -> dict:
    rep = fitted.get("report", {})
    out = {"fit_status": fitted["status"]}
    for split in ("train", "validation"):
        per = rep.get(split, {}).get("all", {})
        for t, st in per.items():
            out[f"fit_rmse_{t}_{split}"] = st["rmse"]
    solver = rep.get("solver", {})
    for k in ("condition_number", "effective_rank"):
        if isinstance(solver.get(k), (int, float)):
            out[f"fit_{k}"] = solver[k]
    if "n_params" in rep:
        out["fit_n_params"] = rep["n_params"]
    out["fit_seconds"] = fitted.get("seconds")
    return out


#: metrics true of one run only (seconds), moved to the task's ``info``
_RUN_ONLY = ("wall_time", "fit_seconds")


def generalisation_task(params, shared, ctx):
    """Task kind ``generalisation``: evaluate the fitted model on the test domain.

    Returns an :class:`~genanalysis.sweep.Outcome`: metrics = the experiment's
    (:meth:`ExperimentResult.metrics`, docs/experiment.md §3) + fit errors (``fit_rmse_T_split``)
    + the training set's :func:`reference_work` + ``status``/``reason``; fit report = the full
    report of the fit."""
    from genanalysis.experiment import evaluate

    t0 = time.perf_counter()
    data: TrainingData = shared["trainingset"]
    fitted: dict = shared["fit"]
    spec = experiment_spec(params.get("experiment", {}), data.lattice, data.a)
    metrics = dict(data.work)
    metrics.update(_fit_metrics(fitted))
    metrics["a"] = spec.a
    if fitted["status"] != "fitted":
        metrics.update(status="fit failure", reason=fitted["reason"])
        return _outcome(metrics, fitted, t0)
    model = _model_from(fitted)
    res = evaluate(model, data.potential, spec, reference_equilibrium=_stored(shared.get("reference"), spec),
                   check_reference_equilibrium=_stored(shared.get("reference_check"), spec),
                   training_cells=relaxed_defect_cells(data))
    metrics.update(res.metrics())
    return _outcome(metrics, fitted, t0)


def relaxed_defect_cells(data: TrainingData) -> list:
    """The relaxed point-defect training cells ū_N of a training set (configurations of kind
    ``relaxed`` in a group other than ``perfect``, a dislocation quadrupole or cylinder),
    for the decomposition metrics of the point-defect experiment."""
    from genanalysis.trainingset.spec import is_cylinder, is_dislocation

    return [c.atoms for c in data.configs
            if c.group != "perfect" and not (is_dislocation(c.group) or is_cylinder(c.group))
            and c.meta.get("kind") == "relaxed" and "defect_centre" in c.atoms.info]


def _stored(ref: dict | None, spec) -> dict | None:
    """A shared reference equilibrium, if it was computed at this task's ``a`` (the
    training set's lattice constant when the tables set none); else None (relaxed again)."""
    if ref is None or float(ref["a"]) != float(spec.a):
        return None
    return ref


def _outcome(metrics: dict, fitted: dict, t0: float):
    """The task's Outcome: timings (s) and the saved model's path go beside the metrics
    (``info``), so that equal inputs give equal metrics whatever the run."""
    from genanalysis.sweep import Outcome

    info = {k: metrics.pop(k) for k in _RUN_ONLY if k in metrics}
    info.update(model_dir=fitted.get("model_dir"), task_seconds=time.perf_counter() - t0)
    return Outcome(metrics=metrics, fit_report=fitted.get("report"), info=info)


def run_point(trainingset: dict, fit: dict, experiment: dict, seed: int = 0, workdir=None):
    """One point of the pipeline without the sweep engine (same code path; for scripts and
    tests): returns the task's :class:`~genanalysis.sweep.Outcome`. ``workdir`` holds the
    training set and model (default: a temporary directory)."""
    from genanalysis.sweep import TaskContext

    params = {"trainingset": trainingset, "fit": fit, "experiment": experiment, "seed": seed}
    validate(params)
    root = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="genanalysis-pipeline-"))
    art = root / "artifacts"
    ts = build_training_data({"trainingset": trainingset, "seed": seed}, {}, TaskContext("ts", SHARED_TRAININGSET,
                                                                                         1, str(art / "ts")))
    fitted = fit_model(params, {"trainingset": ts}, TaskContext("fit", SHARED_FIT, 1, str(art / "fit")))
    return generalisation_task(params, {"trainingset": ts, "fit": fitted}, TaskContext("task", KIND, 1, ""))
