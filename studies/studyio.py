"""What the study scripts share: their raw data file, ``{"meta": …, "rows": […]}`` as
indented JSON (docs/data/…), written where the script's ``--out`` names."""

from __future__ import annotations

import json
import os


def write_rows(path: str, meta: dict, rows: list) -> None:
    """Write ``{"meta": meta, "rows": rows}`` to ``path`` (its directory created if missing)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump({"meta": meta, "rows": rows}, fh, indent=1)
