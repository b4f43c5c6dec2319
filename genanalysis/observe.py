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
from genanalysis.potentials.base import VOIGT

__all__ = ["energy", "forces", "virial", "force_constants", "elastic_constants", "observe"]


def energy(atoms, potential) -> float:
    """Total energy of ``atoms``, eV."""
    return load_potential(potential, atoms=atoms).observe(atoms).energy


def forces(atoms, potential) -> np.ndarray:
    """Forces (n, 3) on ``atoms``, eV/Å."""
    return load_potential(potential, atoms=atoms).observe(atoms).forces


def virial(atoms, potential) -> np.ndarray:
    """Virial (3, 3), eV: ``−stress·volume = −∂E/∂ε`` (see the module docstring)."""
    return load_potential(potential, atoms=atoms).observe(atoms).virial


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
    return finite_difference_hessian(atoms, lambda at: pot.observe(at).forces, fd_step)


def _measure(atoms, dim: int) -> float:
    cell = np.array(atoms.cell)
    if dim == 3:
        return abs(float(np.linalg.det(cell)))
    return abs(float(np.cross(cell[0], cell[1])[2]))


def elastic_constants(potential, atoms, *, step: float = 1e-4) -> np.ndarray:
    """Stress–strain coefficients C_ab = ∂σ_a/∂ε_b (Voigt, engineering shear strains) of a
    perfect periodic cell, by central differences of the virial: σ = −virial/Ω with Ω the
    volume (3D, eV/Å³) or the in-plane area (2D, eV/Å²); strain ``step`` (dimensionless)
    applied to cell and positions (clamped ions: exact for the one-atom-per-primitive-cell
    lattices here, whose internal relaxation vanishes by inversion symmetry). A potential
    with an analytic ``elastic_constants(atoms)`` (the same clamped-ion quantity) is asked
    for it instead; finite differences remain for the others (e.g. ASE calculators)."""
    analytic = getattr(potential, "elastic_constants", None)
    C = analytic(atoms) if analytic is not None else None
    if C is not None:
        return np.asarray(C, dtype=float)
    dim = int(atoms.info.get("dim", 3))
    pairs = VOIGT[dim]
    out = np.zeros((len(pairs), len(pairs)))
    cell0 = np.array(atoms.cell)
    pos0 = atoms.positions.copy()
    for b, (p, q) in enumerate(pairs):
        sig = []
        for sgn in (1.0, -1.0):
            eps = np.zeros((3, 3))
            h = sgn * step
            if p == q:
                eps[p, p] = h
            else:
                eps[p, q] = eps[q, p] = 0.5 * h
            f = np.eye(3) + eps
            work = atoms.copy()
            work.calc = None
            work.set_cell(cell0 @ f.T, scale_atoms=False)
            work.positions = pos0 @ f.T
            v = np.asarray(potential.observe(work).virial, dtype=float)
            s = -v / _measure(work, dim)
            sig.append(np.array([s[i, j] for i, j in pairs]))
        out[:, b] = (sig[0] - sig[1]) / (2.0 * step)
    return out


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
        ev = pot.observe(atoms)
        if "E" in kinds:
            out["energy"] = ev.energy
        if "F" in kinds:
            out["forces"] = ev.forces
        if "V" in kinds:
            out["virial"] = ev.virial
    if "H" in kinds:
        out["hessian"] = force_constants(atoms, pot, fd_step=fd_step)
    return out
