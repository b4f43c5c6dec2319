"""Study specs (TOML): a base parameter tree, sweep axes over its dotted fields, and rates.

A study spec holds the base parameters of every sweep point — the free-form tables
``[trainingset]``, ``[fit]``, ``[experiment]`` and the top-level scalar ``seed`` — plus::

    [study]                      # what to run
    name = "toy-series"          # default: the file's stem
    task = "toy.series"          # a registered task kind, or "module:function"
    retries = 2                  # reruns of a task whose worker died (default 2)
    task_timeout_s = 3600        # optional: wall-time limit (s) of one task or shared build
    fail_on_status = false       # true: results that are not a success (e.g. "no stable
                                 # equilibrium", "fit failure") make `run` exit 1
    imports = ["mypkg.tasks"]    # modules imported first (they register kinds/validators)

    [sweep]                      # axes: dotted field -> list of values
    mode = "product"             # or "zip" (all axes the same length)
    seed = [0, 1, 2]
    "trainingset.size" = [2, 4, 8]   # quoted or as TOML dotted keys: trainingset.size = [...]

    [[rates]]                    # measured rates the report and plots evaluate
    quantity = "error"           # a metric of the task
    against = "trainingset.size" # a swept numeric field
    predicted = -1.5             # a literal exponent, or a name of `python -m theory --json`
    d = 3                        # dimension for a named prediction (int or a dotted field)
    group_by = ["experiment.p"]  # one slope per value of these fields
    where = { "fit.noise" = 0.0 }  # optional: only the points with these values
    fit_range = [4, 64]          # optional: x range of the fit (inclusive), or "auto"
    floor = 1e-4                 # optional: an error floor subtracted before the fit (units of
                                 # the quantity), or a metric name subtracted task by task
    confidence = 0.95            # optional: level of the slope's confidence interval
    tolerance = 0.2              # optional: τ, the slope difference that counts as agreement
    sense = "two_sided"          # optional: "two_sided", "bound" or "up_to" (theory.compare);
                                 # default: the named rate's own sense, else two-sided

Everything is checked here, before any work starts; every error names its key.
Units: none of its own — the parameters carry the units their stages document.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genanalysis.exceptions import InputError
from genanalysis.sweep.registry import STAGES
from genanalysis.tomlutil import read_toml

__all__ = ["Rate", "Study", "Point", "load_study", "parse_study", "flatten", "set_path"]

_TOP = ("study", "sweep", "rates", "seed", *STAGES)
_STUDY_KEYS = ("name", "task", "retries", "imports", "description", "replicate", "task_timeout_s",
               "fail_on_status")
_RATE_KEYS = ("quantity", "against", "predicted", "d", "group_by", "where", "fit_range", "confidence", "tolerance",
              "sense", "label", "floor")
#: comparison rules of theory.compare: two-sided, an upper bound, a "rate up to" hypothesis
SENSES = ("two_sided", "bound", "up_to")
_ROOTS = (*STAGES, "seed")


@dataclass(frozen=True)
class Rate:
    """A measured rate: log-log slope of ``quantity`` against the swept field ``against``."""

    quantity: str
    against: str
    predicted: float | str | None = None
    d: int | str | None = None
    group_by: tuple[str, ...] = ()
    fit_range: tuple[float, float] | str | None = None
    confidence: float = 0.95
    tolerance: float = 0.2
    sense: str | None = None
    label: str | None = None
    where: tuple[tuple[str, Any], ...] = ()
    floor: float | str | None = None


@dataclass(frozen=True)
class Point:
    """One sweep point: its index, the values its axes take, and its full parameter tree."""

    index: int
    overrides: Mapping[str, Any]
    params: Mapping[str, Any]


@dataclass(frozen=True, eq=False)
class Study:
    """A parsed, structurally validated study spec (see the module docstring)."""

    name: str
    task: str
    base: Mapping[str, Any]
    axes: tuple[tuple[str, tuple], ...] = ()
    mode: str = "product"
    rates: tuple[Rate, ...] = ()
    retries: int = 2
    imports: tuple[str, ...] = ()
    replicate: str = "seed"
    description: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict)
    task_timeout_s: float | None = None
    fail_on_status: bool = False

    @property
    def axis_paths(self) -> tuple[str, ...]:
        return tuple(path for path, _ in self.axes)

    def points(self) -> list[Point]:
        """Expand the axes (product or zip) over the base parameters, in a stable order."""
        paths = self.axis_paths
        values = [vals for _, vals in self.axes]
        combos = zip(*values) if self.mode == "zip" else itertools.product(*values)
        if not paths:
            combos = [()]
        out = []
        for index, combo in enumerate(combos):
            params = copy.deepcopy(dict(self.base))
            for path, value in zip(paths, combo):
                set_path(params, path, copy.deepcopy(value))
            out.append(Point(index, dict(zip(paths, combo)), params))
        return out


def _err(key: str, msg: str) -> InputError:
    return InputError(f"{key}: {msg}")


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Leaves of a nested mapping keyed by dotted path (lists are leaves)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, path))
        else:
            out[path] = value
    return out


def set_path(tree: dict, path: str, value: Any) -> None:
    """Set the dotted ``path`` of ``tree`` to ``value``, creating missing tables."""
    parts = path.split(".")
    node = tree
    for i, part in enumerate(parts[:-1]):
        nxt = node.setdefault(part, {})
        if not isinstance(nxt, dict):
            raise _err(f"sweep.{path}", f"'{'.'.join(parts[:i + 1])}' is {nxt!r}, not a table")
        node = nxt
    node[parts[-1]] = value


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _parse_axes(table: Mapping[str, Any], base: Mapping[str, Any]) -> tuple[str, tuple[tuple[str, tuple], ...]]:
    table = dict(table)
    mode = table.pop("mode", "product")
    if mode not in ("product", "zip"):
        raise _err("sweep.mode", f"{mode!r} is not a sweep mode; choose 'product' or 'zip'")
    axes = []
    for path, values in flatten(table).items():
        key = f"sweep.{path}"
        if path.split(".")[0] not in _ROOTS:
            raise _err(key, f"an axis must be a field of {', '.join(_ROOTS)}; got root {path.split('.')[0]!r}")
        if path.startswith("seed."):
            raise _err(key, "'seed' is a scalar, it has no fields")
        if not isinstance(values, list):
            raise _err(key, f"an axis must be a list of values, got {values!r}")
        if not values:
            raise _err(key, "an axis must have at least one value, got []")
        seen = []
        for v in values if mode == "product" else ():  # zipped points are checked whole (by hash)
            if v in seen:
                raise _err(key, f"value {v!r} appears twice; every axis value must be distinct")
            seen.append(v)
        # intermediate components must be tables in the base spec (or absent)
        node: Any = base
        parts = path.split(".")
        for i, part in enumerate(parts[:-1]):
            if not isinstance(node, Mapping):
                break
            node = node.get(part)
            if node is not None and not isinstance(node, Mapping):
                raise _err(key, f"'{'.'.join(parts[:i + 1])}' is {node!r} in the base spec, not a table")
        axes.append((path, tuple(values)))
    paths = [p for p, _ in axes]
    for a in paths:
        for b in paths:
            if a != b and b.startswith(a + "."):
                raise _err(f"sweep.{b}", f"overlaps the axis 'sweep.{a}'; sweep one or the other")
    if mode == "zip" and axes:
        lengths = {p: len(v) for p, v in axes}
        if len(set(lengths.values())) > 1:
            detail = ", ".join(f"{p}: {n}" for p, n in lengths.items())
            raise _err("sweep.mode", f"'zip' needs axes of equal length; got {detail}")
    return mode, tuple(axes)


def _parse_rate(i: int, table: Any, axis_paths: tuple[str, ...], replicate: str) -> Rate:
    where = f"rates[{i}]"
    if not isinstance(table, Mapping):
        raise _err(where, f"must be a table ([[rates]]), got {table!r}")
    for key in table:
        if key not in _RATE_KEYS:
            raise _err(f"{where}.{key}", f"unknown key; accepted: {', '.join(_RATE_KEYS)}")
    for key in ("quantity", "against"):
        if not isinstance(table.get(key), str) or not table.get(key):
            raise _err(f"{where}.{key}", f"required string, got {table.get(key)!r}")
    against = table["against"]
    if against not in axis_paths:
        raise _err(f"{where}.against", f"{against!r} is not a sweep axis; axes: {', '.join(axis_paths) or 'none'}")
    predicted = table.get("predicted")
    if predicted is not None and not (_is_number(predicted) or isinstance(predicted, str)):
        raise _err(f"{where}.predicted", f"must be a number or a theory name, got {predicted!r}")
    d = table.get("d")
    if d is not None:
        if not isinstance(d, str) and (isinstance(d, bool) or d not in (1, 2, 3)):
            raise _err(f"{where}.d", f"dimension must be 1, 2 or 3 (or a dotted field), got {d!r}")
    if isinstance(predicted, str) and d is None:
        raise _err(f"{where}.d", f"a named prediction ({predicted!r}) needs the dimension d = 2 or 3")
    group_by = table.get("group_by", [])
    if isinstance(group_by, str):
        group_by = [group_by]
    if not isinstance(group_by, list) or not all(isinstance(g, str) for g in group_by):
        raise _err(f"{where}.group_by", f"must be a list of dotted fields, got {group_by!r}")
    for g in group_by:
        if g == against or g == replicate:
            raise _err(f"{where}.group_by", f"{g!r} is the rate's x axis or the replicate axis; drop it")
    fit_range = table.get("fit_range")
    if fit_range is not None and fit_range != "auto":
        if (not isinstance(fit_range, list) or len(fit_range) != 2 or not all(map(_is_number, fit_range))
                or not 0 < fit_range[0] < fit_range[1]):
            raise _err(f"{where}.fit_range", f"must be [lo, hi] with 0 < lo < hi, or \"auto\", got {fit_range!r}")
        fit_range = (float(fit_range[0]), float(fit_range[1]))
    confidence = table.get("confidence", 0.95)
    if not _is_number(confidence) or not 0.5 <= confidence < 1:
        raise _err(f"{where}.confidence", f"must lie in [0.5, 1), got {confidence!r}")
    tolerance = table.get("tolerance", 0.2)
    if not _is_number(tolerance) or not 0 < tolerance <= 10:
        raise _err(f"{where}.tolerance", f"must be a slope difference in (0, 10], got {tolerance!r}")
    sense = table.get("sense")
    if sense is not None and sense not in SENSES:
        raise _err(f"{where}.sense", f"{sense!r} is not a comparison rule; choose one of {', '.join(SENSES)}")
    label = table.get("label")
    if label is not None and not isinstance(label, str):
        raise _err(f"{where}.label", f"must be a string, got {label!r}")
    floor = table.get("floor")
    if floor is not None and not ((_is_number(floor) and math.isfinite(floor) and floor >= 0)
                                  or (isinstance(floor, str) and floor)):
        raise _err(f"{where}.floor", f"must be a number ≥ 0 (units of the quantity) or a metric name, got {floor!r}")
    only = table.get("where", {})
    if not isinstance(only, Mapping):
        raise _err(f"{where}.where", f"must be a table of dotted field = value, got {only!r}")
    only = flatten(only)
    for path in only:
        if path.split(".")[0] not in _ROOTS:
            raise _err(f"{where}.where.{path}", f"not a field of {', '.join(_ROOTS)}")
    return Rate(table["quantity"], against, predicted if not _is_number(predicted) else float(predicted),
                d, tuple(group_by), fit_range, float(confidence), float(tolerance), sense, label, tuple(only.items()),
                float(floor) if _is_number(floor) else floor)


def parse_study(raw: Mapping[str, Any], *, default_name: str = "study") -> Study:
    """Validate the structure of a loaded study spec and return a :class:`Study`."""
    if not isinstance(raw, Mapping):
        raise InputError(f"a study spec must be a table, got {type(raw).__name__}")
    for key in raw:
        if key not in _TOP:
            raise _err(key, f"unknown top-level key; accepted: {', '.join(_TOP)}")
    study = raw.get("study")
    if not isinstance(study, Mapping):
        raise _err("study", "missing [study] table (it names the task kind: task = \"...\")")
    for key in study:
        if key not in _STUDY_KEYS:
            raise _err(f"study.{key}", f"unknown key; accepted: {', '.join(_STUDY_KEYS)}")
    task = study.get("task")
    if not isinstance(task, str) or not task:
        raise _err("study.task", f"required: a task kind name or 'module:function', got {task!r}")
    name = study.get("name", default_name)
    if not isinstance(name, str) or not name or name in (".", "..") or any(c in name for c in "/\\\0"):
        raise _err("study.name", f"must be a non-empty string without path separators, other than '.' and '..' "
                   f"(it names the default output directory), got {name!r}")
    retries = study.get("retries", 2)
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 100:
        raise _err("study.retries", f"must be a whole number in 0..100, got {retries!r}")
    timeout = study.get("task_timeout_s")
    if timeout is not None and (not _is_number(timeout) or not 0 < timeout <= 1e7):
        raise _err("study.task_timeout_s", f"must be a number of seconds in (0, 1e7], got {timeout!r}")
    fail_on_status = study.get("fail_on_status", False)
    if not isinstance(fail_on_status, bool):
        raise _err("study.fail_on_status", f"must be true or false, got {fail_on_status!r}")
    imports = study.get("imports", [])
    if not isinstance(imports, list) or not all(isinstance(m, str) and m for m in imports):
        raise _err("study.imports", f"must be a list of module names, got {imports!r}")
    replicate = study.get("replicate", "seed")
    if not isinstance(replicate, str):
        raise _err("study.replicate", f"must be a dotted field, got {replicate!r}")
    description = study.get("description", "")
    if not isinstance(description, str):
        raise _err("study.description", f"must be a string, got {description!r}")

    base: dict[str, Any] = {}
    for stage in STAGES:
        table = raw.get(stage, {})
        if not isinstance(table, Mapping):
            raise _err(stage, f"must be a table [{stage}], got {table!r}")
        base[stage] = copy.deepcopy(dict(table))
    if "seed" in raw:
        seed = raw["seed"]
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise _err("seed", f"must be a whole number ≥ 0, got {seed!r}")
        base["seed"] = seed

    sweep = raw.get("sweep", {})
    if not isinstance(sweep, Mapping):
        raise _err("sweep", f"must be a table [sweep], got {sweep!r}")
    mode, axes = _parse_axes(sweep, base)
    for path, values in axes:
        if path == "seed":
            for v in values:
                if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                    raise _err("sweep.seed", f"seeds must be whole numbers ≥ 0, got {v!r}")
    axis_paths = tuple(p for p, _ in axes)

    rates_raw = raw.get("rates", [])
    if not isinstance(rates_raw, list):
        raise _err("rates", "must be an array of tables ([[rates]])")
    rates = tuple(_parse_rate(i, t, axis_paths, replicate) for i, t in enumerate(rates_raw))
    for i, rate in enumerate(rates):
        values = dict(axes)[rate.against]
        if not all(_is_number(v) and v > 0 for v in values):
            raise _err(f"rates[{i}].against", f"axis {rate.against!r} must take positive numbers for a "
                       f"log-log rate, got {list(values)!r}")
        if isinstance(rate.d, str) and rate.d not in axis_paths and rate.d.split(".")[0] not in _ROOTS:
            raise _err(f"rates[{i}].d", f"{rate.d!r} is not a field of the study")
    return Study(name=name, task=task, base=base, axes=axes, mode=mode, rates=rates, retries=retries,
                 imports=tuple(imports), replicate=replicate, description=description,
                 raw=copy.deepcopy(dict(raw)), task_timeout_s=None if timeout is None else float(timeout),
                 fail_on_status=fail_on_status)


def load_study(path: str | Path) -> Study:
    """Read and validate a study spec from a TOML file."""
    path = Path(path)
    return parse_study(read_toml(path, "study spec"), default_name=path.stem)
