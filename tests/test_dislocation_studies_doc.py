"""docs/dislocations.md §7 holds the tables that studies/dislocation_study_tables.py prints
from the raw rows in docs/data/dislocation_study_*.json (aggregation and fits only: no
physics is recomputed), so every number of the studies can be recomputed from the data."""

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
    for part in ("radius", "size", "virial"):
        path = ROOT / "docs" / "data" / f"dislocation_study_{part}.json"
        text = path.read_text(encoding="utf-8")
        data = json.loads(text)
        assert data["meta"]["command"].startswith("python studies/dislocation_studies.py --part " + part)
        assert data["rows"] and all(r["part"] == part for r in data["rows"])
        assert not re.search(r'"/[A-Za-z_]+/', text), "an absolute path in the raw rows"
