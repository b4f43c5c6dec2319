"""From a study to a graph of content-hashed nodes: tasks and the shared work they need.

Every node's hash is the SHA-256 of the canonical JSON (sorted keys, no whitespace) of
everything that determines its result: role, kind name, the kind's code version, its
parameters, the hashes of the shared work it reads, and the engine salt :data:`SALT`.
The study's name, the output directory and the execution backend are *not* part of it:
the same point in another study is the same task.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from genanalysis import jsonutil
from genanalysis.exceptions import InputError
from genanalysis.sweep.registry import STAGES, Kind, get_shared, get_task_kind, select, validators
from genanalysis.sweep.spec import Study

__all__ = ["SALT", "canonical_json", "content_hash", "Node", "Plan", "build_plan"]

#: engine salt: bump when the meaning of a stored result changes for every kind
SALT = "genanalysis.sweep/1"


def canonical_json(obj: Any) -> str:
    """:func:`genanalysis.jsonutil.canonical_json` of sweep parameters; InputError if not JSON."""
    try:
        return jsonutil.canonical_json(obj)
    except (TypeError, ValueError) as exc:
        raise InputError(f"parameters are not plain JSON values (numbers, strings, lists, tables): {exc}") from None


def content_hash(obj: Any) -> str:
    """SHA-256 (hex) of :func:`canonical_json` of ``obj``."""
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()


@dataclass(frozen=True, eq=False)
class Node:
    """A task (one sweep point) or a piece of shared work, identified by its content hash."""

    hash: str
    role: str
    kind: Kind
    params: Any
    deps: tuple[tuple[str, str], ...] = ()  # (alias, hash of the shared node)
    point: int | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class Plan:
    """The nodes of a study: ``tasks`` in sweep-point order, ``shared`` by hash."""

    study: Study
    kind: Kind
    tasks: tuple[Node, ...]
    shared: Mapping[str, Node]

    def units(self) -> dict[str, str]:
        """Units of metrics and parameters declared by the task kind and its shared work."""
        out: dict[str, str] = {}
        for node in self.shared.values():
            out.update(node.kind.units)
        out.update(self.kind.units)
        return out


def _first_bad_leaf(value: Any, where: str) -> tuple[str, Any] | None:
    """The dotted path and value of the first leaf that is not plain JSON (nan, inf, a date)."""
    if isinstance(value, Mapping):
        items = [(f"{where}.{k}", v) for k, v in value.items()]
    elif isinstance(value, (list, tuple)):
        items = [(f"{where}[{i}]", v) for i, v in enumerate(value)]
    else:
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            return where, value
        return None
    for path, v in items:
        bad = _first_bad_leaf(v, path)
        if bad:
            return bad
    return None


def _check_json(value: Any, where: str) -> None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        bad = _first_bad_leaf(value, where)
        if bad:
            raise InputError(f"{bad[0]}={bad[1]!r}: not a plain JSON value (a finite number, string, boolean, "
                             "list or table)") from None
        raise InputError(f"{where}: not a plain JSON value ({exc})") from None


def _validate_points(study: Study, kind: Kind, points) -> None:
    seen: dict[tuple[str, str], None] = {}
    for point in points:
        label = ", ".join(f"{k}={v!r}" for k, v in point.overrides.items()) or "base"
        for stage in STAGES:
            table = point.params.get(stage, {})
            _check_json(table, stage)
            key = (stage, canonical_json(table))
            if key in seen:
                continue
            seen[key] = None
            for fn in validators(stage):
                try:
                    fn(table)
                except (InputError, ValueError, TypeError, KeyError) as exc:
                    raise InputError(f"[{stage}] of sweep point {point.index} ({label}): {exc}") from None
        if kind.validate is not None:
            try:
                kind.validate(point.params)
            except (InputError, ValueError, TypeError, KeyError) as exc:
                raise InputError(f"sweep point {point.index} ({label}): {exc}") from None
    if kind.validate_study is not None:
        kind.validate_study([point.params for point in points])


def _shared_node(kind: Kind, params: Mapping[str, Any], shared: dict[str, Node], depth: int = 0) -> list[tuple[str, str]]:
    if depth > 20:
        raise InputError(f"shared work of {kind.name!r} needs itself (a cycle of needs)")
    deps = []
    for need in kind.needs:
        skind = get_shared(need.kind)
        sparams = select(need, params)
        _check_json(sparams, f"shared input {need.alias!r}")
        sdeps = _shared_node(skind, params, shared, depth + 1)
        h = content_hash({"role": "shared", "kind": skind.name, "version": skind.version, "params": sparams,
                          "deps": dict(sdeps), "salt": SALT})
        if h not in shared:
            shared[h] = Node(h, "shared", skind, sparams, tuple(sdeps))
        deps.append((need.alias, h))
    return deps


def build_plan(study: Study) -> Plan:
    """Import the study's modules, resolve its kinds, validate every point, hash every node."""
    for module in study.imports:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise InputError(f"study.imports: cannot import {module!r}: {exc}") from None
    kind = get_task_kind(study.task)
    points = study.points()
    _validate_points(study, kind, points)
    shared: dict[str, Node] = {}
    tasks = []
    by_hash: dict[str, int] = {}
    for point in points:
        deps = _shared_node(kind, point.params, shared)
        h = content_hash({"role": "task", "kind": kind.name, "version": kind.version, "params": point.params,
                          "deps": dict(deps), "salt": SALT})
        if h in by_hash:
            raise InputError(f"sweep points {by_hash[h]} and {point.index} are the same task; make the axes distinct")
        by_hash[h] = point.index
        tasks.append(Node(h, "task", kind, point.params, tuple(deps), point.index, dict(point.overrides)))
    return Plan(study, kind, tuple(tasks), shared)
