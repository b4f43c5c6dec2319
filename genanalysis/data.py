"""The unit of training and validation data: one configuration with its observations.

Units: energy eV, forces eV/Å, virial eV (``virial = −stress·volume``, with ASE's stress,
positive under tension: a compressed cell has a positive virial), force
constants (Hessian of the total energy) eV/Å² as a sparse (3n × 3n) matrix, rows and
columns ordered atom-major (x, y, z of atom 0, then atom 1, ...).

Every stage that produces or consumes training data (``trainingset``, ``fit``) speaks
this type; the on-disk formats (extxyz, npz, ase.db) convert to and from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from ase import Atoms

__all__ = ["Configuration", "OBSERVATION_TYPES"]

#: observation codes: E energy, F forces, V virial, H force constants
OBSERVATION_TYPES = ("E", "F", "V", "H")


@dataclass
class Configuration:
    """A configuration and the reference observations made on it (None = not observed)."""

    atoms: Atoms
    group: str = "default"
    energy: float | None = None
    forces: np.ndarray | None = None
    virial: np.ndarray | None = None
    hessian: sp.csr_array | None = None
    #: optional per-atom spatial weights for the loss (dimensionless, ≥ 0)
    atom_weights: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    @property
    def observed(self) -> str:
        """The observation codes present, in canonical order, e.g. ``"EFV"``."""
        have = {"E": self.energy, "F": self.forces, "V": self.virial, "H": self.hessian}
        return "".join(k for k in OBSERVATION_TYPES if have[k] is not None)

    def __len__(self) -> int:
        return len(self.atoms)
