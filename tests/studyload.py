"""The scripts of studies/ as modules, for the tests that check a page against its data
(the scripts are not a package: they are run as ``python studies/NAME.py``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_study(name: str, module_name: str | None = None):
    """studies/NAME.py imported as a module (``module_name``, default NAME)."""
    spec = importlib.util.spec_from_file_location(module_name or name, ROOT / "studies" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
