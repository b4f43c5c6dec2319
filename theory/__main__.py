"""``python -m theory``: the predicted rates as a table, or as one JSON object (``--json``).

The JSON object maps each rate name to ``{"exponent": "<sympy expression in d>", "d2":
<value or null>, "d3": <value or null>, "status": "theorem|derived|hypothesis",
"assumptions": "...", ...}`` (exponents dimensionless; see docs/theory.md §6).
"""

from __future__ import annotations

import argparse
import json
import sys

from theory.rates import RATES, rates_table


def _fmt(value) -> str:
    return "—" if value is None else f"{value:g}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m theory",
        description="Predicted rates of the Ortner–Wang generalisation estimate (docs/theory.md).",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--name", action="append", metavar="NAME",
        help="only this rate (repeatable); default: all",
    )
    args = parser.parse_args(argv)
    table = rates_table()
    if args.name:
        unknown = [n for n in args.name if n not in table]
        if unknown:
            print(
                f"python -m theory: unknown rate {unknown[0]!r}; known: {', '.join(table)}",
                file=sys.stderr,
            )
            return 2
        table = {n: table[n] for n in args.name}
    if args.json:
        json.dump(table, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
        return 0
    head = ("name", "quantity", "vs", "exponent", "d=2", "d=3", "status", "sense")
    rows = [
        (name, e["quantity"], RATES[name].variable.split()[0],
         e["exponent"] + ("" if e["log_power"] == "0" else f" (× log^{e['log_power']})"),
         _fmt(e["d2"]), _fmt(e["d3"]), e["status"], e["sense"])
        for name, e in table.items()
    ]
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    for row in [head, tuple("-" * w for w in widths)] + rows:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip())
    print("\nAssumptions and sources: python -m theory --json; derivations: docs/theory.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
