"""Observations of a configuration: the one routine for each, used by every stage.

Units and conventions (docs/potentials.md):

* energy: total energy, eV;
* forces: (n, 3), eV/Å, ``−∂E/∂x``;
* virial: (3, 3), eV, ``virial = −stress·volume = −∂E/∂ε`` for a homogeneous symmetric
  strain ε (ASE's stress sign: a cell pulled beyond its equilibrium size has positive
  stress, hence negative virial). For the 2D triangular lattice (``pbc = (True, True,
  False)``, all z = 0) only the in-plane 2×2 block is meaningful; the zz component is
  0 and the volume of ASE's stress is that of the cell with its (arbitrary) z height.
* force constants: the Hessian ``∂²E/∂x∂x`` as a sparse (3n × 3n) CSR array, eV/Å²,
  atom-major (x0, y0, z0, x1, ...): analytic when the potential provides one (every
  built-in and EAM-file potential; ASE calculators with ``get_hessian``), otherwise
  central finite differences of the forces.

``potential`` is a :class:`~genanalysis.potentials.Potential` (or any spec of
:func:`~genanalysis.potentials.load_potential`, resolved by it with the cell's lattice and
lattice constant).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from genanalysis.data import OBSERVATION_TYPES
from genanalysis.exceptions import InputError
from genanalysis.potentials import load_potential

__all__ = ["energy", "forces", "virial", "force_constants", "observe"]


def energy(atoms, potential) -> float:
    """Total energy of ``atoms``, eV."""
    return load_potential(potential, atoms=atoms).evaluate(atoms).energy


def forces(atoms, potential) -> np.ndarray:
    """Forces (n, 3) on ``atoms``, eV/Å."""
    return load_potential(potential, atoms=atoms).evaluate(atoms).forces


def virial(atoms, potential) -> np.ndarray:
    """Virial (3, 3), eV: ``−stress·volume = −∂E/∂ε`` (see the module docstring)."""
    return load_potential(potential, atoms=atoms).evaluate(atoms).virial


def force_constants(atoms, potential, *, fd_step: float | None = None) -> sp.csr_array:
    """Hessian (3n × 3n, eV/Å², CSR, atom-major) of ``atoms``.

    ``fd_step=None``: the potential's analytic Hessian when it has one, else central
    differences of the forces with the potential's default step (1e-4 Å). A number (Å)
    forces central finite differences of the forces with that step, for any potential.
    """
    from genanalysis.potentials.wrapper import ASECalculatorPotential, finite_difference_hessian

    pot = load_potential(potential, atoms=atoms)
    if fd_step is None:
        return pot.hessian(atoms)
    if isinstance(pot, ASECalculatorPotential):
        return pot.hessian(atoms, fd_step=fd_step)
    return finite_difference_hessian(atoms, lambda at: pot.evaluate(at).forces, fd_step)


def observe(atoms, potential, kinds: str = "EFVH", *, fd_step: float | None = None) -> dict:
    """The observations named by ``kinds`` (letters of ``EFVH``): a dict with keys
    ``energy`` (eV), ``forces`` (eV/Å), ``virial`` (eV), ``hessian`` (eV/Å²) — the field
    names of :class:`genanalysis.data.Configuration`. E, F and V come from one evaluation."""
    bad = sorted(set(kinds) - set(OBSERVATION_TYPES))
    if bad or not kinds:
        raise InputError(
            f"observation kinds {kinds!r} are not understood; use letters of {''.join(OBSERVATION_TYPES)}"
        )
    pot = load_potential(potential, atoms=atoms)
    out: dict = {}
    if set(kinds) & {"E", "F", "V"}:
        ev = pot.evaluate(atoms)
        if "E" in kinds:
            out["energy"] = ev.energy
        if "F" in kinds:
            out["forces"] = ev.forces
        if "V" in kinds:
            out["virial"] = ev.virial
    if "H" in kinds:
        out["hessian"] = force_constants(atoms, pot, fd_step=fd_step)
    return out
