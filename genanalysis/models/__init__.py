"""Fitted interatomic models: the linear ACE-style model, composite models (sums of pair,
embedding and ACE terms), a network on the same invariants,
their ASE calculators and safe persistence (docs/models.md).

Units: Å, eV, eV/Å, eV (virials), eV/Å² (force constants).

Names are imported lazily so that ``import genanalysis`` stays light.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "ACESpec": "genanalysis.models.basis",
    "ACEBasis": "genanalysis.models.basis",
    "LinearACE": "genanalysis.models.linear",
    "MLPACE": "genanalysis.models.mlp",
    "CompositeModel": "genanalysis.models.composite",
    "ModelPotential": "genanalysis.models.calculator",
    "model_calculator": "genanalysis.models.calculator",
    "save_model": "genanalysis.models.io",
    "load_model": "genanalysis.models.io",
    "load_fitted": "genanalysis.models.io",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'genanalysis.models' has no attribute {name!r}")
