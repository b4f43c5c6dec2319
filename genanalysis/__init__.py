"""genanalysis: generalisation analysis of machine-learned interatomic potentials.

Units throughout the package: lengths in Å, energies in eV, forces in eV/Å,
virials in eV, force constants (Hessians) in eV/Å².
"""

__version__ = "0.1.0"

from genanalysis.exceptions import InputError  # noqa: E402


def load_model(path):
    """Load a fitted model saved by ``genanalysis fit`` and return its ASE calculator."""
    from genanalysis.models.io import load_model as _load

    return _load(path)


__all__ = ["InputError", "load_model", "__version__"]
