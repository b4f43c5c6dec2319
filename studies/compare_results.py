"""Compare two results databases metric by metric (a refactor must not move the numbers).

    python studies/compare_results.py OLD/results.sqlite NEW/results.sqlite [--rtol R] [--fit-report]
        [--ignore-param KEY] [--json OUT --label OLD NEW]
    python studies/compare_results.py --from-json OUT [--rtol R]

Tasks are matched by their parameter tree (``tasks.params``, canonical JSON); for every
metric of ``tasks.metrics`` (and, with ``--fit-report``, every leaf of the fit report) the
largest relative difference over the matched tasks is printed, |a − b| / max(|a|, |b|)
(dimensionless; 0 for bit-equal values), the largest absolute one |a − b| (in the metric's
own unit) and the largest |a| (its scale: a value that is zero by symmetry shows a large
relative difference of round-off, which the absolute one unmasks), with the number of tasks
in which the value differs beyond ``--rtol`` (default 0: any difference counts). Text values
(statuses, reasons, hashes) are compared for equality. Exits 1 if anything differs beyond
``--rtol`` or a task or metric is in one database only, else 0.

``--json OUT`` also writes the raw material of the table, data only: every matched task's
parameters and, for each metric, its old and new value (docs/data/ keeps such files, so the
table a doc quotes is recomputed by ``--from-json`` without the databases).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sqlite3
import sys
from collections import defaultdict


def _leaves(obj, prefix=""):
    """(dotted key, value) of every scalar leaf of a nested JSON value (lists by index)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves(v, f"{prefix}{k}.")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _leaves(v, f"{prefix}{i}.")
    else:
        yield prefix[:-1], obj


def _without(params: dict, ignore: tuple[str, ...]) -> dict:
    """``params`` without the dotted keys ``ignore`` (a flag that changes no computation,
    added to one side's study spec, must not stop its tasks from matching)."""
    params = json.loads(json.dumps(params))
    for dotted in ignore:
        *path, last = dotted.split(".")
        table = params
        for k in path:
            table = table.get(k, {}) if isinstance(table, dict) else {}
        if isinstance(table, dict):
            table.pop(last, None)
    return params


def _relative(value, root: str):
    """A path inside the results directory ``root`` as relative to it (two runs of one study
    in two directories name the same artefact alike; saved values name no local path)."""
    if isinstance(value, str) and os.path.isabs(value) and value.startswith(root + os.sep):
        return os.path.relpath(value, root)
    return value


def _tasks(path: str, fit_report: bool, ignore: tuple[str, ...] = ()) -> dict:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT params, state, status, metrics, fit_report FROM tasks").fetchall()
    root = os.path.dirname(os.path.abspath(path))
    out = {}
    for params, state, status, metrics, report in rows:
        key = json.dumps(_without(json.loads(params), ignore), sort_keys=True)
        values = {"state": state, "status": status}
        values.update((k, _relative(v, root)) for k, v in _leaves(json.loads(metrics or "{}")))
        if fit_report:
            values.update((f"fit_report.{k}", v) for k, v in _leaves(json.loads(report or "{}")))
        out[key] = values
    return out


def _difference(a, b) -> float | None:
    """Relative difference of two numbers (None for non-numbers; inf if one is not finite
    and the other differs)."""
    if isinstance(a, bool) or isinstance(b, bool) or not all(isinstance(x, (int, float)) for x in (a, b)):
        return None
    if a == b or (math.isnan(a) and math.isnan(b)):
        return 0.0
    if not (math.isfinite(a) and math.isfinite(b)):
        return math.inf
    return abs(a - b) / max(abs(a), abs(b))


def compare(old: str, new: str, rtol: float = 0.0, fit_report: bool = False,
            ignore: tuple[str, ...] = ()) -> tuple[list[str], bool]:
    """Lines of the comparison and whether the databases agree within ``rtol`` (tasks
    matched by their parameters without the dotted keys ``ignore``)."""
    return compare_tasks(_tasks(old, fit_report, ignore), _tasks(new, fit_report, ignore), rtol)


def pairs(old: str, new: str, fit_report: bool = False, ignore: tuple[str, ...] = ()) -> dict:
    """The raw material of a comparison, data only (JSON-ready): ``rows``, one
    ``{"params", "old", "new"}`` per matched task with every metric of each side, and in
    ``meta`` the tasks of one side only (``only_old`` / ``only_new``)."""
    a, b = _tasks(old, fit_report, ignore), _tasks(new, fit_report, ignore)
    return {"meta": {"ignored_params": list(ignore), "only_old": [json.loads(k) for k in sorted(a.keys() - b.keys())],
                     "only_new": [json.loads(k) for k in sorted(b.keys() - a.keys())]},
            "rows": [{"params": json.loads(k), "old": a[k], "new": b[k]} for k in sorted(a.keys() & b.keys())]}


def from_pairs(data: dict) -> tuple[dict, dict]:
    """The two task tables of :func:`compare_tasks` back from :func:`pairs`' JSON."""
    a, b = {}, {}
    for t in data["rows"]:
        key = json.dumps(t["params"], sort_keys=True)
        a[key], b[key] = t["old"], t["new"]
    for which, table in (("only_old", a), ("only_new", b)):
        for params in data["meta"].get(which, []):
            table[json.dumps(params, sort_keys=True)] = {}
    return a, b


def compare_tasks(a: dict, b: dict, rtol: float = 0.0) -> tuple[list[str], bool]:
    """:func:`compare` on two tables {canonical params: {metric: value}}."""
    lines, same = [], True
    only = [("old", k) for k in a.keys() - b.keys()] + [("new", k) for k in b.keys() - a.keys()]
    for which, k in only:
        lines.append(f"task only in the {which} database: {k}")
        same = False
    worst: dict[str, float] = defaultdict(float)
    worst_abs: dict[str, float] = defaultdict(float)
    scale: dict[str, float] = defaultdict(float)
    differing: dict[str, int] = defaultdict(int)
    text: dict[str, list] = defaultdict(list)
    missing: dict[str, int] = defaultdict(int)
    for k in sorted(a.keys() & b.keys()):
        ta, tb = a[k], b[k]
        for name in sorted(ta.keys() | tb.keys()):
            if name not in ta or name not in tb:
                missing[name] += 1
                continue
            d = _difference(ta[name], tb[name])
            if d is None:
                if ta[name] != tb[name]:
                    text[name].append((ta[name], tb[name]))
                continue
            worst[name] = max(worst[name], d)
            if d:
                worst_abs[name] = max(worst_abs[name], abs(ta[name] - tb[name]) if math.isfinite(d) else math.inf)
            scale[name] = max(scale[name], abs(ta[name]), abs(tb[name]))
            if d > rtol:
                differing[name] += 1
    n = len(a.keys() & b.keys())
    lines.append(f"{n} tasks matched by their parameters; tolerance rtol = {rtol:g}")
    lines.append(f"{'metric':<48} {'max rel. diff':>14} {'max abs. diff':>14} {'max |value|':>12} {'tasks differing':>16}")
    for name in sorted(worst):
        lines.append(f"{name:<48} {worst[name]:>14.3g} {worst_abs[name]:>14.3g} {scale[name]:>12.3g} {differing[name]:>16}")
    for name, pairs in sorted(text.items()):
        lines.append(f"{name}: text differs in {len(pairs)} task(s), e.g. {pairs[0][0]!r} -> {pairs[0][1]!r}")
        same = False
    for name, count in sorted(missing.items()):
        lines.append(f"{name}: in one database only, in {count} task(s)")
        same = False
    if any(differing.values()):
        same = False
    lines.append("same within the tolerance" if same else "DIFFERENT")
    return lines, same


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", nargs="?")
    ap.add_argument("new", nargs="?")
    ap.add_argument("--rtol", type=float, default=0.0, help="relative tolerance (default 0: bit-equal)")
    ap.add_argument("--fit-report", action="store_true", help="also compare every leaf of the fit reports")
    ap.add_argument("--json", metavar="OUT", help="also write every matched task's old and new values to OUT")
    ap.add_argument("--ignore-param", action="append", default=[], metavar="KEY",
                    help="a dotted parameter (experiment.allow_small_test_domain) left out when tasks are matched: "
                         "a flag that changes no computation; repeatable")
    ap.add_argument("--label", nargs=2, metavar=("OLD", "NEW"), default=None,
                    help="with --json: what the two databases are (e.g. the two commits), kept in its meta")
    ap.add_argument("--from-json", metavar="FILE", help="compare the values a --json run wrote, without the databases")
    args = ap.parse_args(argv)
    if args.from_json:
        if args.old or args.new:
            ap.error("--from-json FILE takes no databases")
        with open(args.from_json) as f:
            lines, same = compare_tasks(*from_pairs(json.load(f)), args.rtol)
    else:
        if not (args.old and args.new):
            ap.error("give OLD and NEW databases, or --from-json FILE")
        ignore = tuple(args.ignore_param)
        lines, same = compare(args.old, args.new, args.rtol, args.fit_report, ignore)
        if args.json:
            from studyio import write_rows

            data = pairs(args.old, args.new, args.fit_report, ignore)
            if args.label:
                data["meta"].update(old=args.label[0], new=args.label[1])
            write_rows(args.json, data["meta"], data["rows"])
    print("\n".join(lines))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
