"""The numbers docs/studies.md, docs/calibration.md and docs/experiment.md quote in their
readings, recomputed from docs/data/*.json and, for the elastic constants, from the code.

    python studies/docs_numbers.py [--skip-elastic]

Prints: the factors of docs/studies.md §3 (ratios of mean ‖D(ū^ML − ū)‖ between training
sizes, from the mean tables in docs/data/studies.json; dimensionless) and its floors (Å);
the calibration verdicts of the W interstitial fitted on N ≥ 7 and the vacancy's local
slopes at the largest N (docs/data/calibration.json); the cubic elastic constants of the
built-in W EAM (GPa) and its Zener ratio A = 2 C44 / (C11 − C12) (dimensionless).
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import re
from collections import defaultdict

ROOT = pathlib.Path(__file__).resolve().parents[1]
DATA = ROOT / "docs" / "data"
NUM = re.compile(r"^([0-9.]+e[+-][0-9]+)")
FSETS = ("EF", "EFV", "EFH", "EFVH")


def mean_table(table: str) -> dict:
    """{(defect, observations): {N: mean}} of a rendered training-size table (converged only)."""
    lines = [ln for ln in table.splitlines() if ln.startswith("|") and not ln.startswith("|---")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    out = defaultdict(dict)
    for ln in lines[1:]:
        row = dict(zip(head, (c.strip() for c in ln.strip("|").split("|"))))
        for obs in head[2:]:
            m = NUM.match(row[obs])
            if m:
                out[(row["defect"], obs)][int(row["N"])] = float(m.group(1))
    return out


def _span(values, fmt=".3g"):
    return f"{format(min(values), fmt)} … {format(max(values), fmt)}"


def studies_numbers() -> None:
    data = json.loads((DATA / "studies.json").read_text())
    m = mean_table(data["training_size_2d"]["table"])
    print("docs/studies.md §3 (d = 2): ratios of mean errors")
    drop = {k: v[2] / v[3] for k, v in m.items() if k[1] in FSETS and 2 in v and 3 in v}
    for k, r in sorted(drop.items()):
        print(f"  N = 2 → 3  {k[0]:12s} {k[1]:5s} factor {r:.3g}")
    print(f"  N = 2 → 3, every F-containing set, both defects: factor {_span(drop.values())}")
    for obs in ("EF", "EFV"):
        v = m[("vacancy", obs)]
        print(f"  N = 4 → 6  vacancy {obs:4s} factor {v[4] / v[6]:.3g}")
    vac = [m[("vacancy", o)][n] for o in ("EF", "EFV") for n in (6, 8)]
    print(f"  floor: vacancy EF/EFV at N = 6, 8: {_span(vac)} Å")
    inter = [m[("interstitial", o)][8] for o in FSETS]
    inter3 = [m[("interstitial", o)][n] for o in FSETS for n in (3, 4, 6, 8)]
    print(f"  interstitial, F-containing sets at N = 8: {_span(inter)} Å; at 3 ≤ N ≤ 8: {_span(inter3)} Å")
    m3 = mean_table(data["training_size_3d"]["table"])
    print("docs/studies.md §4 (d = 3): vacancy")
    for obs in ("EF", "EFV"):
        v = m3[("vacancy", obs)]
        print(f"  {obs:4s} N = 2 → 3 factor {v[2] / v[3]:.3g}; N = 3 → 4 change {v[4] / v[3] - 1:+.1%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-elastic", action="store_true", help="leave out the elastic constants (a few s)")
    args = ap.parse_args()
    studies_numbers()


if __name__ == "__main__":
    main()
