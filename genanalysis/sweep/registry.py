"""Registries the pipeline's stages plug into: task kinds, shared work, stage validators.

A **task kind** is a function ``fn(params, shared, ctx) -> metrics`` run once per sweep
point; ``params`` is the point's full parameter tree (``{"trainingset": {...}, "fit":
{...}, "experiment": {...}, "seed": ...}``), ``shared`` maps each declared need to the
result of its shared work, ``ctx`` is a :class:`~genanalysis.sweep.worker.TaskContext`.
It returns a mapping of JSON-serialisable metrics, or an
:class:`~genanalysis.sweep.worker.Outcome` carrying a fit report beside the metrics.

A **shared-work kind** has the same signature and returns data of the value types of
:mod:`~genanalysis.sweep.sharedio` (JSON values, NumPy arrays, CSR matrices, ``ase.Atoms``,
training-data records); it is computed once per distinct input (its content hash) and
cached on disk in that data-only format, so every task
needing the same training set or reference equilibrium triggers one build.

A **need** says which shared work a kind uses and which part of the parameter tree
determines it: ``needs={"trainingset": "trainingset"}`` (the subtree at that dotted path),
``needs={"ts": ("my.dataset", ["trainingset", "seed"])}`` (an alias, a shared kind and
several paths), or a callable ``params -> JSON value``.

Units: the registries carry none themselves; ``units`` maps metric names and dotted
parameter paths to the unit strings the plots print on their axes (e.g. ``"eV/Å"``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from genanalysis.exceptions import InputError

__all__ = [
    "Need",
    "Kind",
    "register_task_kind",
    "register_shared",
    "register_validator",
    "task_kind",
    "get_task_kind",
    "get_shared",
    "validators",
    "select",
    "lookup",
    "STAGES",
]

#: the sections of a study spec that hold a stage's parameters (plus the scalar ``seed``)
STAGES = ("trainingset", "fit", "experiment")

#: the module holding the table of built-in kinds (``BUILTIN``: name -> "module:function"
#: registering it), looked up by name on first use of a name not registered yet, so that
#: the sweep layer imports no stage
BUILTIN_TABLE = "genanalysis.tasks"

Selector = str | Sequence[str] | Callable[[Mapping[str, Any]], Any]


@dataclass(frozen=True)
class Need:
    """One shared input of a kind: which shared-work kind, and which parameters determine it."""

    alias: str
    kind: str
    selector: Selector


@dataclass(frozen=True, eq=False)
class Kind:
    """A registered task or shared-work kind.

    ``version`` is the code-version salt of every content hash of this kind: bump it when a
    change of the code changes the results, and every cached result of the kind is redone.
    """

    name: str
    fn: Callable
    needs: tuple[Need, ...] = ()
    version: str = "1"
    units: Mapping[str, str] = field(default_factory=dict)
    validate: Callable[[Mapping[str, Any]], None] | None = None
    validate_study: Callable[[Sequence[Mapping[str, Any]]], None] | None = None


_TASKS: dict[str, Kind] = {}
_SHARED: dict[str, Kind] = {}
_VALIDATORS: dict[str, list[Callable[[Mapping[str, Any]], None]]] = {}


def _normalise_needs(needs) -> tuple[Need, ...]:
    if needs is None:
        return ()
    if not isinstance(needs, Mapping):
        raise InputError(f"needs={needs!r} must be a mapping alias -> selector or (kind, selector)")
    out = []
    for alias, value in needs.items():
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):
            kind, selector = value
        else:
            kind, selector = alias, value
        if not (callable(selector) or isinstance(selector, str) or
                (isinstance(selector, Sequence) and all(isinstance(s, str) for s in selector))):
            raise InputError(
                f"need {alias!r}: selector {selector!r} must be a dotted path, a list of dotted "
                "paths or a callable params -> JSON value"
            )
        out.append(Need(str(alias), str(kind), selector))
    return tuple(out)


def _make_kind(name, fn, needs, version, units, validate, validate_study=None) -> Kind:
    if not isinstance(name, str) or not name:
        raise InputError(f"kind name {name!r} must be a non-empty string")
    if not callable(fn):
        raise InputError(f"kind {name!r}: {fn!r} is not callable")
    return Kind(name, fn, _normalise_needs(needs), str(version), dict(units or {}), validate, validate_study)


def register_task_kind(name: str, fn: Callable, *, needs=None, version: str = "1",
                       units: Mapping[str, str] | None = None,
                       validate: Callable[[Mapping[str, Any]], None] | None = None,
                       validate_study: Callable[[Sequence[Mapping[str, Any]]], None] | None = None) -> Kind:
    """Register ``fn(params, shared, ctx) -> metrics`` as the task kind ``name``.

    ``fn`` must be a module-level function (it is sent to worker processes by reference).
    ``validate(params)`` raises :class:`InputError` for a bad sweep point; it runs for every
    point before any work starts. ``validate_study(points_params)`` does the same for what
    only the points together can say (e.g. a test domain against the largest training cell
    of the sweep). Re-registering a name replaces it.
    """
    kind = _make_kind(name, fn, needs, version, units, validate, validate_study)
    _TASKS[name] = kind
    return kind


def register_shared(name: str, fn: Callable, *, needs=None, version: str = "1",
                    units: Mapping[str, str] | None = None) -> Kind:
    """Register ``fn(params, shared, ctx) -> object`` as the shared-work kind ``name``.

    ``params`` is whatever the needing kind's selector picked out of the point's parameters;
    the result must be data of the value types of :mod:`~genanalysis.sweep.sharedio` (it is
    cached on disk under its content hash; anything else fails the build with the reason).
    """
    kind = _make_kind(name, fn, needs, version, units, None)
    _SHARED[name] = kind
    return kind


def register_validator(stage: str, fn: Callable[[Mapping[str, Any]], None]) -> None:
    """Register ``fn(table)`` to validate the ``[stage]`` table of every sweep point.

    ``stage`` is one of :data:`STAGES`. ``fn`` raises :class:`InputError` (or ``ValueError``)
    naming the offending key; the sweep reports it as ``stage.key`` before any work starts.
    """
    if stage not in STAGES:
        raise InputError(f"stage {stage!r} has no validator hook; choose one of {', '.join(STAGES)}")
    _VALIDATORS.setdefault(stage, []).append(fn)


def validators(stage: str) -> list[Callable[[Mapping[str, Any]], None]]:
    """The validators registered for ``stage`` (in registration order)."""
    return list(_VALIDATORS.get(stage, ()))


def task_kind(name: str, *, needs=None, version: str = "1", units=None, validate=None):
    """Decorator form of :func:`register_task_kind`."""

    def deco(fn):
        register_task_kind(name, fn, needs=needs, version=version, units=units, validate=validate)
        fn.__sweep_kind__ = name
        return fn

    return deco


def _builtin() -> dict[str, str]:
    return dict(importlib.import_module(BUILTIN_TABLE).BUILTIN)


def _call(ref: str) -> None:
    module, _, attr = ref.partition(":")
    getattr(importlib.import_module(module), attr)()


def _register_builtin(name: str) -> None:
    """Register the built-in kind ``name`` (and its family), if it is one."""
    ref = _builtin().get(name)
    if ref is not None:
        _call(ref)


def _register_builtins_of(module: str) -> None:
    """Register every built-in kind whose functions live in package ``module``'s project."""
    if module.split(".")[0] == BUILTIN_TABLE.split(".")[0]:
        for ref in dict.fromkeys(_builtin().values()):
            _call(ref)


def _match(obj, name: str, table: dict[str, Kind]) -> Kind | None:
    registered = getattr(obj, "__sweep_kind__", None)
    if registered in table:
        return table[registered]
    if name in table:  # the import registered it under its reference
        return table[name]
    for kind in table.values():  # a registered kind's function named by its module path
        if kind.fn is obj:
            return kind
    return None


def _resolve(name: str, table: dict[str, Kind], what: str) -> Kind:
    if name in table:
        return table[name]
    _register_builtin(name)
    if name in table:
        return table[name]
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            obj = importlib.import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            raise InputError(f"{what} {name!r} cannot be imported: {exc}") from None
        kind = _match(obj, name, table)
        if kind is None:
            _register_builtins_of(module)
            kind = _match(obj, name, table)
        if kind is not None:
            return kind
        kind = _make_kind(name, obj, None, "1", None, None)
        table[name] = kind
        return kind
    known = sorted(set(table) | set(_builtin()))
    raise InputError(f"{what} {name!r} is not registered; known: {', '.join(known)}, or 'module:function'")


def get_task_kind(name: str) -> Kind:
    """The task kind ``name``: registered, built in (:data:`genanalysis.tasks.BUILTIN`) or ``"module:function"``."""
    return _resolve(name, _TASKS, "task kind")


def get_shared(name: str) -> Kind:
    """The shared-work kind ``name`` (registered, built in, or ``"module:function"``)."""
    return _resolve(name, _SHARED, "shared-work kind")


_MISSING = object()


def lookup(tree: Mapping[str, Any], path: str, default=_MISSING):
    """The value at dotted ``path`` of a nested mapping (``""`` is the whole tree)."""
    if path == "":
        return tree
    node: Any = tree
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            if default is _MISSING:
                raise KeyError(path)
            return default
        node = node[part]
    return node


def select(need: Need, params: Mapping[str, Any]) -> Any:
    """The JSON value that determines ``need``'s shared work for the sweep point ``params``."""
    sel = need.selector
    try:
        if callable(sel):
            return sel(params)
        if isinstance(sel, str):
            return lookup(params, sel)
        return {path: lookup(params, path) for path in sel}
    except KeyError as exc:
        raise InputError(
            f"shared input {need.alias!r} ({need.kind}) reads parameter {exc.args[0]!r}, "
            "which this study does not set"
        ) from None
