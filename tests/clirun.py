"""The command line in a test's directory, and the small Morse training set the fit-command
tests build with it."""

from __future__ import annotations

import subprocess
import sys

#: a training-set spec (TOML) of triangular builtin:morse perfect and vacancy cells M = 3,
#: two rattled configurations each; append the ``observations`` line or table
MORSE_TRAINING_SET = ('potential = "builtin:morse"\nlattice = "triangular"\ndefects = ["perfect", "vacancy"]\n'
                      'sizes = [3]\nconfigs_per_size = 2\nrattle = 0.03\nseed = 1\n')


def genanalysis(cwd, *args, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -m genanalysis ARGS`` in ``cwd`` (output captured as text)."""
    return subprocess.run([sys.executable, "-m", "genanalysis", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)


def morse_training_set(cwd, observations: str, out: str = "ts") -> None:
    """Build :data:`MORSE_TRAINING_SET` with ``observations`` (TOML text) into ``cwd/out``
    (in this process: what ``genanalysis trainingset ts.toml --out OUT`` writes, without
    another interpreter start)."""
    from genanalysis.trainingset import load_training_set

    (cwd / "ts.toml").write_text(MORSE_TRAINING_SET + observations)
    load_training_set(cwd / "ts.toml", out_dir=cwd / out)
