"""The unit of training and validation data: one configuration with its observations.

Units: energy eV, forces eV/Å, virial eV (``virial = −stress·volume``, with ASE's stress,
positive under tension: a compressed cell has a positive virial), force
constants (Hessian of the total energy) eV/Å² as a sparse (3n × 3n) matrix, rows and
columns ordered atom-major (x, y, z of atom 0, then atom 1, ...).

Every stage that produces or consumes training data (``trainingset``, ``fit``) speaks
this type; the on-disk formats (extxyz, npz, ase.db) convert to and from it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from ase import Atoms

from genanalysis.lattice import atoms_dim

__all__ = ["Configuration", "TrainingData", "OBSERVATION_TYPES", "configurations_hash"]

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


def configurations_hash(configs) -> str:
    """SHA-256 (64 hex digits) of the content of ``configs``, in order: everything a fit
    reads — group, observation codes, species, positions (Å), cell (Å), pbc, ``dim``, the
    defect and its centre (Å; spatial loss weights use them), energy (eV), forces (eV/Å),
    virial (eV), force constants (eV/Å², as a canonical sparse matrix) and atom weights.
    Two training sets with equal hashes fit identically; ``meta`` is not included."""
    h = hashlib.sha256()

    def put(tag: str, value) -> None:
        if value is None:
            h.update(f"{tag}:none;".encode())
            return
        a = np.ascontiguousarray(value)
        h.update(f"{tag}:{a.dtype.str}{a.shape};".encode())
        h.update(a.tobytes())

    for c in configs:
        at = c.atoms
        head = json.dumps({"group": c.group, "observed": c.observed, "dim": atoms_dim(at),
                           "defect": at.info.get("defect")}, sort_keys=True)
        put("head", np.frombuffer(head.encode(), np.uint8))
        put("numbers", np.asarray(at.numbers, np.int64))
        put("positions", np.asarray(at.positions, np.float64))
        put("cell", np.asarray(at.cell, np.float64))
        put("pbc", np.asarray(at.pbc, bool))
        centre = at.info.get("defect_centre")
        put("centre", None if centre is None else np.asarray(centre, np.float64))
        put("energy", None if c.energy is None else np.array([float(c.energy)]))
        put("forces", None if c.forces is None else np.asarray(c.forces, np.float64))
        put("virial", None if c.virial is None else np.asarray(c.virial, np.float64))
        if c.hessian is None:
            put("hessian", None)
        else:
            H = sp.csr_array(c.hessian, dtype=np.float64, copy=True)
            H.sum_duplicates()
            H.sort_indices()
            put("hessian", np.asarray(H.shape, np.int64))
            put("indptr", np.asarray(H.indptr, np.int64))
            put("indices", np.asarray(H.indices, np.int64))
            put("data", H.data)
        put("weights", None if c.atom_weights is None else np.asarray(c.atom_weights, np.float64))
    return h.hexdigest()


@dataclass
class TrainingData:
    """A built training set as the pipeline shares it between its stages: the
    configurations, the lattice constant ``a`` (Å) they were built at, the element, the
    reference potential's spec, the lattice, per-set build summaries and the reference work
    (:func:`genanalysis.pipeline.reference_work`)."""

    configs: list[Configuration]
    a: float
    element: str
    potential: str
    lattice: str
    summaries: list = field(default_factory=list)
    work: dict = field(default_factory=dict)
