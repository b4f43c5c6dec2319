"""``genanalysis report DIR [--json]``: measured rates against predicted ones, and the results table."""

from __future__ import annotations

import json


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "report", help="measured rates (slope, CI, predicted, verdict) and the results table of a study",
        description="For each rate of the study: quantity, fitted slope, confidence interval, predicted slope, "
                    "verdict. Also writes DIR/results.csv and DIR/results.md (every task).")
    p.add_argument("dir", metavar="DIR", help="a directory written by `genanalysis run`")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=main)


def main(args) -> int:
    from genanalysis.sweep.outputs import load_output, rate_report, write_tables

    out = load_output(args.dir)
    results = rate_report(out)
    tables = write_tables(out, results)
    done = sum(r.state == "done" for r in out.rows)
    failed = [{"point": r.point, "hash": r.hash, "reason": r.reason} for r in out.rows if r.state == "failed"]
    if args.json:
        print(json.dumps({
            "study": out.study.name,
            "tasks": {"points": out.n_points, "recorded": len(out.rows), "done": done, "failed": len(failed),
                      "missing": out.n_points - len(out.rows)},
            "rates": [r.as_dict() for r in results],
            "failed": failed,
            "tables": {k: str(v) for k, v in tables.items()},
        }, indent=2))
        return 0
    print(f"{out.study.name}: {out.n_points} points, {done} done, {len(failed)} failed, "
          f"{out.n_points - len(out.rows)} not run")
    for res in results:
        d, t = res.as_dict(), res.text(".3f")
        print(f"  {d['quantity']} vs {d['against']} ({t['group']}): slope {t['slope'] or 'n/a'} {t['ci'] or 'n/a'} "
              f"(n={d['n_points']}), predicted {t['predicted_slope'] or 'n/a'} [{d['predicted']}] -> "
              f"{d['verdict_label']}"
              + (f"  ({d['note']})" if d["note"] else ""))
    print(f"tables: {tables['markdown']}, {tables['csv']}")
    return 0
