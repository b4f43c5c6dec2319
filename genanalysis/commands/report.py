"""``genanalysis report DIR [--json]``: measured rates against predicted ones, and the results table."""

from __future__ import annotations

import json
import sys

from genanalysis.commands import add_results_dir
from genanalysis.results import SUCCESS_STATUSES, status_counts

#: tasks listed by status in the text report (the JSON lists every one)
_SHOWN = 10


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "report", help="measured rates (slope, CI, predicted, verdict) and the results table of a study",
        description="For each rate of the study: quantity, fitted slope, confidence interval, predicted slope, "
                    "verdict. Also writes DIR/results.csv and DIR/results.md (every task).")
    add_results_dir(p)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=main)


def main(args) -> int:
    from genanalysis.sweep.outputs import load_output, rate_report, write_tables

    out = load_output(args.dir)
    results = rate_report(out)
    try:
        tables = write_tables(out, results)
    except OSError as exc:  # a read-only directory: the report itself is still worth having
        print(f"genanalysis: warning: results.csv and results.md not written into {args.dir} ({exc.strerror})",
              file=sys.stderr)
        tables = {"markdown": "(not written)", "csv": "(not written)"}
    done = sum(r.state == "done" for r in out.rows)
    failed = [{"point": r.point, "hash": r.hash, "reason": r.reason} for r in out.rows if r.state == "failed"]
    by_status = status_counts(r.result_status for r in out.rows)
    unsuccessful = [{"point": r.point, "hash": r.hash, "status": r.result_status,
                     "reason": str(r.metrics.get("reason") or "")} for r in out.rows
                    if r.state == "done" and r.result_status not in SUCCESS_STATUSES]
    if args.json:
        print(json.dumps({
            "study": out.study.name,
            "tasks": {"points": out.n_points, "recorded": len(out.rows), "done": done, "failed": len(failed),
                      "missing": out.n_points - len(out.rows), "by_status": by_status},
            "rates": [r.as_dict() for r in results],
            "failed": failed,
            "unsuccessful": unsuccessful,
            "tables": {k: str(v) for k, v in tables.items()},
        }, indent=2))
        return 0
    results_by = {s: n for s, n in by_status.items() if s != "failed"}
    detail = f" ({', '.join(f'{n} {s}' for s, n in results_by.items())})" if unsuccessful else ""
    print(f"{out.study.name}: {out.n_points} points, {done} done{detail}, {len(failed)} failed, "
          f"{out.n_points - len(out.rows)} not run")
    for u in unsuccessful[:_SHOWN]:
        print(f"  point {u['point']} ({u['hash'][:12]}): {u['status']}" + (f": {u['reason']}" if u["reason"] else ""))
    for f in failed[:_SHOWN]:
        print(f"  point {f['point']} ({f['hash'][:12]}): failed: {f['reason']}")
    hidden = max(0, len(unsuccessful) - _SHOWN) + max(0, len(failed) - _SHOWN)
    if hidden:
        print(f"  ... and {hidden} more (genanalysis report {args.dir} --json lists them all)")
    for res in results:
        d, t = res.as_dict(), res.text(".3f")
        print(f"  {d['quantity']} vs {d['against']} ({t['group']}): slope {t['slope'] or 'n/a'} {t['ci'] or 'n/a'} "
              f"(n={d['n_points']}), predicted {t['predicted_slope'] or 'n/a'} [{d['predicted']}] -> "
              f"{d['verdict_label']}"
              + (f"  ({d['note']})" if d["note"] else ""))
    print(f"tables: {tables['markdown']}, {tables['csv']}")
    return 0
