"""The task kinds genanalysis ships, declared in one table.

:data:`BUILTIN` maps each built-in kind name (task kinds and shared-work kinds alike) to
``"module:function"``, the function that registers it (through the public
:mod:`genanalysis.sweep.registry` API, together with the kinds it goes with). The sweep's
registry looks a name it does not know up here, by this module's name, and calls that
function on first use: nothing registers as an import side effect, and the sweep layer
imports none of the stages (the stages' modules are imported only when a study names one
of their kinds). Plug-ins register their own kinds from a module listed in
``study.imports`` (docs/sweeps.md §4).

This module imports nothing; it is data only.
"""

__all__ = ["BUILTIN"]

#: kind name -> "module:function" registering it
BUILTIN = {
    "generalisation": "genanalysis.tasks.kinds:register_generalisation",
    "generalisation.trainingset": "genanalysis.tasks.kinds:register_generalisation",
    "generalisation.fit": "genanalysis.tasks.kinds:register_generalisation",
    "generalisation.reference": "genanalysis.tasks.kinds:register_generalisation",
    "experiment.surrogate": "genanalysis.tasks.kinds:register_experiment",
    "experiment.evaluate": "genanalysis.tasks.kinds:register_experiment",
    "experiment.dislocation": "genanalysis.tasks.kinds:register_dislocation",
}
