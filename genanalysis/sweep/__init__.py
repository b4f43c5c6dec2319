"""Parameter sweeps: study specs, content-hashed tasks, shared work, local or dask execution.

The pieces, in the order data flows through them:

- :mod:`~genanalysis.sweep.spec` — the TOML study spec and its sweep axes;
- :mod:`~genanalysis.sweep.registry` — task kinds, shared work and stage validators the
  pipeline's stages register (``register_task_kind``, ``register_shared``,
  ``register_validator``);
- :mod:`~genanalysis.sweep.plan` — the graph of content-hashed nodes;
- :mod:`~genanalysis.sweep.engine` — :func:`run_study`: skip finished tasks, build shared
  work once, run the rest, record each result in the database (:mod:`genanalysis.results`);
- :mod:`~genanalysis.sweep.rates` — measured slopes against predicted ones.

docs/sweeps.md is the user guide.
"""

from genanalysis.sweep.engine import RunSummary, run_study
from genanalysis.sweep.plan import Plan, build_plan, content_hash
from genanalysis.sweep.registry import register_shared, register_task_kind, register_validator, task_kind
from genanalysis.sweep.spec import Rate, Study, load_study, parse_study
from genanalysis.sweep.worker import Outcome, TaskContext

__all__ = [
    "Outcome",
    "Plan",
    "Rate",
    "RunSummary",
    "Study",
    "TaskContext",
    "build_plan",
    "content_hash",
    "load_study",
    "parse_study",
    "register_shared",
    "register_task_kind",
    "register_validator",
    "run_study",
    "task_kind",
]
