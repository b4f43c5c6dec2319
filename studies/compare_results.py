"""Compare two results databases metric by metric (a refactor must not move the numbers).

    python studies/compare_results.py OLD/results.sqlite NEW/results.sqlite [--rtol R] [--fit-report]

Tasks are matched by their parameter tree (``tasks.params``, canonical JSON); for every
metric of ``tasks.metrics`` (and, with ``--fit-report``, every leaf of the fit report) the
largest relative difference over the matched tasks is printed, |a − b| / max(|a|, |b|)
(dimensionless; 0 for bit-equal values), with the number of tasks in which the value
differs beyond ``--rtol`` (default 0: any difference counts). Text values (statuses,
reasons, hashes) are compared for equality. Exits 1 if anything differs beyond ``--rtol``
or a task or metric is in one database only, else 0.
"""

from __future__ import annotations

import argparse
import json
import math
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


def _tasks(path: str, fit_report: bool) -> dict:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT params, state, status, metrics, fit_report FROM tasks").fetchall()
    out = {}
    for params, state, status, metrics, report in rows:
        key = json.dumps(json.loads(params), sort_keys=True)
        values = {"state": state, "status": status}
        values.update(_leaves(json.loads(metrics or "{}")))
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


def compare(old: str, new: str, rtol: float = 0.0, fit_report: bool = False) -> tuple[list[str], bool]:
    """Lines of the comparison and whether the databases agree within ``rtol``."""
    a, b = _tasks(old, fit_report), _tasks(new, fit_report)
    lines, same = [], True
    only = [("old", k) for k in a.keys() - b.keys()] + [("new", k) for k in b.keys() - a.keys()]
    for which, k in only:
        lines.append(f"task only in the {which} database: {k}")
        same = False
    worst: dict[str, float] = defaultdict(float)
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
            if d > rtol:
                differing[name] += 1
    n = len(a.keys() & b.keys())
    lines.append(f"{n} tasks matched by their parameters; tolerance rtol = {rtol:g}")
    lines.append(f"{'metric':<48} {'max rel. diff':>14} {'tasks differing':>16}")
    for name in sorted(worst):
        lines.append(f"{name:<48} {worst[name]:>14.3g} {differing[name]:>16}")
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
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--rtol", type=float, default=0.0, help="relative tolerance (default 0: bit-equal)")
    ap.add_argument("--fit-report", action="store_true", help="also compare every leaf of the fit reports")
    args = ap.parse_args(argv)
    lines, same = compare(args.old, args.new, args.rtol, args.fit_report)
    print("\n".join(lines))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
