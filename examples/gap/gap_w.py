"""The loader of GAP models trained by ``gap_fit`` (QUIP's fitting program, from the
``gap`` extra: ``pip install -e '.[gap]'``) inside a sweep (``[fit] kind = "external"``,
``studies/external_gap_w.toml``, docs/external-models.md §6):

    load = "python:gap_w:load"

A GAP model is an XML file plus its sparse-point files beside it (``extra_outputs``); it
is data, not code.
"""


def load(path):
    """QUIP's ASE calculator of the GAP model ``path`` (the XML file ``gap_fit`` wrote)."""
    from quippy.potential import Potential

    return Potential(param_filename=str(path))
