"""Test-wide set-up: the toy task kinds (tests/toykinds.py) are registered, and this
directory is on ``PYTHONPATH`` so that command-line subprocesses and sweep workers (local
or dask) import them by name."""

import os
import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)
_path = os.environ.get("PYTHONPATH", "")
if HERE not in _path.split(os.pathsep):
    os.environ["PYTHONPATH"] = os.pathsep.join([p for p in (_path, HERE) if p])

import toykinds  # noqa: E402,F401 - registers the toy kinds
