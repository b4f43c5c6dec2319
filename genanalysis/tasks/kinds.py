"""Registration of the built-in task kinds (listed in :data:`genanalysis.tasks.BUILTIN`).

Each function registers a family of kinds with their needs, code versions, units and
validators; the registry calls it the first time a study names one of them. The kinds'
functions live with their stage (:mod:`genanalysis.pipeline`,
:mod:`genanalysis.experiment`) and reach worker processes by reference.
"""

from __future__ import annotations

from genanalysis.sweep.registry import register_shared, register_task_kind

__all__ = ["register_generalisation", "register_experiment", "register_dislocation"]


def _trainingset_of(params):
    """The part of a sweep point a training-set build reads: ``[trainingset]`` and the seed."""
    return {"trainingset": params.get("trainingset", {}), "seed": params.get("seed", 0)}


def _fit_of(params):
    """The part of a sweep point a fit reads beside its training set: ``[fit]`` and the seed."""
    return {"fit": params.get("fit", {}), "seed": params.get("seed", 0)}


def register_generalisation() -> None:
    """``generalisation`` (the main job) and its shared work ``generalisation.trainingset``
    (one build per ``[trainingset]`` table and seed), ``generalisation.fit`` (one fit per
    training set, ``[fit]`` table and seed) and ``generalisation.reference`` (one reference
    equilibrium per test domain, :func:`genanalysis.pipeline.reference_key`)."""
    from genanalysis import experiment, pipeline

    units = {k: v for k, v in experiment.UNITS.items() if "." not in k}
    units.update(pipeline.UNITS)
    ts = (pipeline.SHARED_TRAININGSET, _trainingset_of)
    register_shared(pipeline.SHARED_TRAININGSET, pipeline.build_training_data, version="1")
    # version 2: the fit's report and model name carry the training set's content hash;
    # version 3: that hash is of the canonical JSON text (genanalysis.jsonutil), so a fit
    # stored under version 2 names its model by a hash no longer computed: refitted
    register_shared(pipeline.SHARED_FIT, pipeline.fit_model, version="3", needs={"trainingset": ts})
    register_shared(pipeline.SHARED_REFERENCE, pipeline.reference_equilibrium_work, version="1")
    register_task_kind(pipeline.KIND, pipeline.generalisation_task, version="1", units=units,
                       validate=pipeline.validate, validate_study=pipeline.validate_study,
                       needs={"trainingset": ts, "fit": (pipeline.SHARED_FIT, _fit_of),
                              "reference": (pipeline.SHARED_REFERENCE, pipeline.reference_key),
                              "reference_check": (pipeline.SHARED_REFERENCE, pipeline.check_reference_key)})


def register_experiment() -> None:
    """``experiment.surrogate`` (a synthetic surrogate against its reference) and
    ``experiment.evaluate`` (any model spec against a reference)."""
    from genanalysis import experiment

    units = {k: v for k, v in experiment.UNITS.items() if "." not in k}
    units.update({"experiment.size": "cells", "experiment.eta": "1", "experiment.a": "Å"})
    register_task_kind("experiment.surrogate", experiment.surrogate_task, version="1", units=units,
                       validate=experiment.validate_surrogate_point)
    register_task_kind("experiment.evaluate", experiment.evaluate_task, version="1", units=units,
                       validate=experiment.validate_evaluate_point)


def register_dislocation() -> None:
    """``experiment.dislocation``: a model against a reference on a straight bcc dislocation
    in a clamped cylinder (:mod:`genanalysis.experiment_dislocation`)."""
    from genanalysis import experiment, experiment_dislocation

    units = {k: v for k, v in experiment.UNITS.items() if "." not in k}
    units.update(experiment_dislocation.DISLOCATION_UNITS)
    units.update({"experiment.radius": "Å", "experiment.clamp_width": "Å", "experiment.a": "Å",
                  "experiment.energy_radius": "Å", "size": "cells (perfect lattice terms)"})
    register_task_kind("experiment.dislocation", experiment_dislocation.dislocation_task, version="1", units=units,
                       validate=experiment_dislocation.validate_dislocation_point)
