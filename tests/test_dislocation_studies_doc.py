"""docs/dislocations.md §7 holds the tables that studies/dislocation_study_tables.py prints
from the raw rows in docs/data/dislocation_study_*.json (the screw, the edge and the mixed
dislocation; aggregation and fits only: no physics is recomputed), so every number of the
studies can be recomputed from the data."""

from __future__ import annotations

import contextlib
import io
import json
import re

from studyload import ROOT, load_study


def _printed(*args) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert load_study("dislocation_study_tables").main(list(args)) == 0
    return out.getvalue()


def test_every_study_table_is_in_the_page():
    doc = (ROOT / "docs" / "dislocations.md").read_text(encoding="utf-8")
    blocks = [b for b in _printed().split("\n\n") if b.startswith("|")]
    assert len(blocks) >= 6
    for block in blocks:
        assert block.strip() in doc, f"docs/dislocations.md lacks the table starting {block[:80]!r}"


def test_the_raw_rows_say_how_they_were_made_and_hold_no_local_paths():
    tables = load_study("dislocation_study_tables")
    for (kind, part), rel in tables.DATA.items():
        path = ROOT / rel
        if kind != "screw" and part != "radius" and not path.exists():
            continue  # the edge's and mixed's N and virial parts are optional (budget); the rest must exist
        text = path.read_text(encoding="utf-8")
        data = json.loads(text)
        command = "python studies/dislocation_studies.py --part " + part + ("" if kind == "screw" else f" --kind {kind}")
        assert data["meta"]["command"].startswith(command)
        assert data["meta"].get("kind", "screw") == kind
        assert data["rows"] and all(r["part"] == part and r.get("kind", "screw") == kind for r in data["rows"])
        assert not re.search(r'"/[A-Za-z_]+/', text), "an absolute path in the raw rows"


def test_the_edge_and_mixed_are_fitted_to_their_own_cylinders():
    for kind in ("edge", "mixed"):
        data = json.loads((ROOT / "docs" / "data" / f"dislocation_study_{kind}_radius.json").read_text(encoding="utf-8"))
        assert data["meta"]["training"]["cylinder"]["defects"] == [f"dislocation-cylinder:{kind}"]
        assert {r["observations"] for r in data["rows"]} == {"EF", "EFV"}
