"""A tiny MACE model of bcc W, trained by mace_run_train on a genanalysis training set
(docs/external-models.md has the recipe), as a ``python:`` spec:

    PYTHONPATH=examples/mace genanalysis evaluate --model python:mace_w:make ...

The model file is a torch pickle: loading it runs code from the file. It is loaded only
here, by this function the user names explicitly; genanalysis never loads such a file by
itself (fitted-model directories hold data-only formats).
"""

from pathlib import Path

#: the model file beside this module
MODEL = Path(__file__).with_name("w_tiny.model")


def make():
    """The MACE calculator of :data:`MODEL` (CPU, double precision)."""
    from mace.calculators import MACECalculator

    return MACECalculator(model_paths=str(MODEL), device="cpu", default_dtype="float64")


def load(path):
    """The MACE calculator of a model file ``path`` that ``mace_run_train`` wrote: the
    loader of ``[fit] kind = "external"`` in ``studies/external_mace_w.toml``."""
    from mace.calculators import MACECalculator

    return MACECalculator(model_paths=str(path), device="cpu", default_dtype="float64")
