"""Keep third-party output out of a command's standard output.

A calculator loaded through ``python:MODULE:CALLABLE`` may print at import or while it
computes (a banner, a warning on stdout); a command whose stdout is one JSON object must
not carry it. :func:`stdout_to_stderr` sends both Python-level writes to ``sys.stdout``
and writes to file descriptor 1 (C extensions, subprocesses) to standard error while its
block runs.
"""

from __future__ import annotations

import contextlib
import os
import sys

__all__ = ["stdout_to_stderr"]


@contextlib.contextmanager
def stdout_to_stderr():
    """Within the block, standard output goes to standard error (Python- and fd-level)."""
    sys.stdout.flush()
    saved = None
    try:
        saved = os.dup(1)
        os.dup2(2, 1)
    except OSError:  # no usable descriptor 1 or 2: the Python-level redirection still holds
        if saved is not None:
            os.close(saved)
        saved = None
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stderr.flush()
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)
