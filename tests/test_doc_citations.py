"""Docstrings cite the project's own docs: every equation number ``(Tn)`` that the code,
the theory package or a study cites is one that docs/theory.md defines, and no file cites
the briefing (``THEORY.md``) that is not part of the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [p for d in ("genanalysis", "theory", "studies") for p in sorted((ROOT / d).rglob("*.py"))]
#: an equation label of docs/theory.md: "(Tn)" at the end of a displayed line, or in bold
LABEL = re.compile(r"\((T\d+)\)\s*$|\*\*[^*]*\((T\d+)\)\.?\*\*", re.M)


def _labels() -> set[str]:
    text = (ROOT / "docs" / "theory.md").read_text(encoding="utf-8")
    return {a or b for a, b in LABEL.findall(text)}


def test_theory_md_defines_its_labels():
    labels = _labels()
    assert {f"T{i}" for i in range(1, 19)} <= labels, sorted(labels)


def test_cited_equations_exist():
    labels = _labels()
    bad = []
    for path in SOURCES:
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for label in re.findall(r"\((T\d+)\)", line):
                if label not in labels:
                    bad.append(f"{path.relative_to(ROOT)}:{i}: ({label}) is not defined in docs/theory.md")
    assert not bad, "\n".join(bad)


def test_no_citation_of_a_file_outside_the_repository():
    bad = [f"{p.relative_to(ROOT)}:{i}" for p in [*SOURCES, *sorted((ROOT / "docs").rglob("*.md"))]
           for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if "THEORY.md" in line]
    assert not bad, "cites THEORY.md (not in the repository; cite docs/theory.md): " + ", ".join(bad)
