"""The reference-potential interface every stage of the toolkit talks to.

Units: positions and lengths Å, energies eV, forces eV/Å, virials eV, force constants
(Hessians) eV/Å². Sign conventions (docs/potentials.md):

* ``virial = −stress·volume = −∂E/∂ε`` (ε a homogeneous symmetric strain applied to cell and
  positions; ASE's stress is ``(1/V) ∂E/∂ε``). For pair-decomposable energies
  ``virial = −Σ_pairs (∂E/∂r) R⊗R/r``; a stretched cell (atoms pulling together) has a
  negative virial trace.
* Hessians are ``∂²E/∂x_a∂x_b`` ordered atom-major (x0, y0, z0, x1, ...).
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from ase.calculators.calculator import Calculator, all_changes

from genanalysis.exceptions import InputError

__all__ = ["Observation", "Potential", "PotentialCalculator", "VOIGT", "born_elastic_constants"]


@dataclass
class Observation:
    """Observations of one configuration.

    energy: total energy, eV; forces: (n, 3) eV/Å; virial: (3, 3) eV, ``−stress·volume``,
    symmetric; site_energies: (n,) eV, summing to ``energy``.
    """

    energy: float
    forces: np.ndarray
    virial: np.ndarray
    site_energies: np.ndarray


class Potential(abc.ABC):
    """A site-energy potential. Subclasses set ``name``, ``cutoff`` (Å), ``species``."""

    name: str = "potential"
    cutoff: float = 0.0
    species: tuple[str, ...] = ("X",)
    #: whether ``hessian`` is exact (analytic) rather than finite differences of forces
    has_analytic_hessian: bool = True
    #: whether :meth:`energy_forces` with ``linearise=True`` returns the Hessian operator
    #: from the same sweep as the forces, for about their cost (then a solver asks for it at
    #: every trial point); False: the operator costs extra and is built only when needed
    fused_linearise: bool = False

    # -- to implement ---------------------------------------------------------------
    @abc.abstractmethod
    def observe(self, atoms) -> Observation:
        """Energy (eV), forces (eV/Å), virial (eV) and site energies (eV) of ``atoms``."""

    @abc.abstractmethod
    def hessian(self, atoms) -> sp.csr_array:
        """Exact (3n, 3n) Hessian ∂²E/∂x∂x, eV/Å², atom-major ordering."""

    def linearise(self, atoms) -> spla.LinearOperator:
        """Hessian-vector products at this configuration (eV/Å² times the vector's Å).

        The default applies the assembled sparse Hessian; potentials with a cheaper
        matrix-free form override it."""
        H = self.hessian(atoms)
        n3 = H.shape[0]
        return spla.LinearOperator((n3, n3), matvec=lambda v: H @ np.ravel(v), rmatvec=lambda v: H @ np.ravel(v),
                                   matmat=lambda V: H @ V, dtype=np.float64)

    def energy_forces(self, atoms, linearise: bool = False):
        """(energy eV, forces (n, 3) eV/Å, Hessian operator or None) at ``atoms``; the
        operator (:meth:`linearise`) only with ``linearise``. Potentials that get it from
        the force sweep override this and set :attr:`fused_linearise`."""
        ev = self.observe(atoms)
        return ev.energy, ev.forces, (self.linearise(atoms) if linearise else None)

    # -- shared -----------------------------------------------------------------------
    def clear_caches(self) -> None:
        """Forget cached neighbour lists, so that what follows does not depend on what this
        (shared) potential evaluated before in the process: a list drawn at another
        configuration orders its pairs differently, which moves sums in the last digits."""
        cache = self.__dict__.get("_neighbours")
        if cache is not None:
            cache.clear()

    def calculator(self) -> "PotentialCalculator":
        """An ASE calculator backed by this potential (energy, free_energy, forces, stress,
        energies; plus ``get_hessian(atoms, format='sparse'|'dense')``)."""
        return PotentialCalculator(self)

    def check_species(self, atoms) -> None:
        """Refuse atoms whose chemical symbols this potential does not describe."""
        from ase.data import chemical_symbols

        allowed = set(self.species) | ({"X"} if len(self.species) == 1 else set())
        present = np.unique(atoms.numbers)
        bad = {chemical_symbols[z] for z in present} - allowed
        if bad:
            raise InputError(
                f"potential {self.name} does not describe element(s) {', '.join(sorted(bad))}; "
                f"it accepts {', '.join(sorted(allowed))}"
            )

    def equilibrium_lattice_constant(self, lattice: str) -> float:
        """Lattice constant a (Å) minimising the energy per atom of the perfect ``lattice``
        ('bcc', 'fcc', 'triangular'), found as the root of the hydrostatic virial
        (dE/da = −tr(virial)/a) in the one-cell periodic lattice. Cached per lattice."""
        cache = self.__dict__.setdefault("_lattice_constants", {})
        if lattice not in cache:
            cache[lattice] = _equilibrium_lattice_constant(self, lattice)
        return cache[lattice]


def _equilibrium_lattice_constant(potential: Potential, lattice: str) -> float:
    from scipy.optimize import brentq

    from genanalysis.lattice import LATTICES, nearest_neighbour_distance, perfect_cell

    if lattice not in LATTICES:
        raise InputError(f"lattice {lattice!r} is not supported; choose one of {', '.join(LATTICES)}")
    symbol = potential.species[0] if potential.species else "X"

    def cell(a):
        return perfect_cell(lattice, a, 1, symbol)

    def energy(a):
        at = cell(a)
        return potential.observe(at).energy / len(at)

    def pressure_term(a):  # dE/da · a = −tr(virial)
        return -float(np.trace(potential.observe(cell(a)).virial))

    # scan nearest-neighbour distances from 0.1 to 0.95 of the cutoff (geometric grid, 1 %
    # steps) for the lowest energy, then solve for the zero of the hydrostatic virial
    nn = nearest_neighbour_distance(lattice, 1.0)
    a_grid = np.geomspace(0.1, 0.95, 228) * potential.cutoff / nn
    e_grid = np.array([energy(a) for a in a_grid])
    k = int(np.argmin(e_grid))
    if k == 0 or k == len(a_grid) - 1:
        raise InputError(
            f"potential {potential.name}: no energy minimum of the {lattice} lattice for "
            f"nearest-neighbour distances {0.1 * potential.cutoff:.3g}–{0.95 * potential.cutoff:.3g} Å"
        )
    return float(brentq(pressure_term, a_grid[k - 1], a_grid[k + 1], xtol=1e-13, rtol=4 * np.finfo(float).eps))


#: Voigt order of the stress and strain components (3D, 2D in-plane)
VOIGT = {3: [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)], 2: [(0, 0), (1, 1), (0, 1)]}


def born_elastic_constants(atoms, R: np.ndarray, grad: np.ndarray, pair_hvp) -> np.ndarray:
    """Clamped-ion elastic constants C_ab = ∂σ_a/∂ε_b (Voigt, engineering shear strains) of
    a periodic cell, analytically: eV/Å³ (3D) or eV/Å² (2D, per in-plane area).

    ``R`` (P, 3) Å the pair vectors of a site-energy potential (every periodic image,
    including an atom's own), ``grad`` (P, 3) eV/Å = ∂E/∂R_p and ``pair_hvp(δR) → δ∂E/∂R``
    (P, 3) its pair-space Hessian product. A homogeneous strain ε maps R ↦ (I + ε) R and
    σ = (1/Ω) Σ_p R_p ⊗ ∂E/∂R_p (= −virial/Ω), so for the strain direction E_b

        ∂σ/∂ε_b = (1/Ω) Σ_p [E_b R_p ⊗ ∂E/∂R_p + R_p ⊗ H_p(E_b R)] − tr(E_b) σ,

    the Born term plus the change of the measure Ω; positions follow the strain (no
    internal relaxation, exact for a Bravais lattice, whose internal relaxation vanishes by
    inversion symmetry). The same quantity as central differences of the virial."""
    dim = int(atoms.info.get("dim", 3))
    cell = np.array(atoms.cell)
    omega = abs(float(np.linalg.det(cell))) if dim == 3 else abs(float(np.cross(cell[0], cell[1])[2]))
    pairs = VOIGT[dim]
    R = np.asarray(R, dtype=np.float64)
    grad = np.asarray(grad, dtype=np.float64)
    sigma = R.T @ grad / omega
    out = np.zeros((len(pairs), len(pairs)))
    for b, (k, l) in enumerate(pairs):
        E = np.zeros((3, 3))
        E[k, l] += 0.5
        E[l, k] += 0.5
        dR = R @ E.T
        ds = (dR.T @ grad + R.T @ np.asarray(pair_hvp(dR))) / omega - np.trace(E) * sigma
        out[:, b] = [ds[i, j] for i, j in pairs]
    return out


class PotentialCalculator(Calculator):
    """ASE calculator view of a :class:`Potential`.

    Results: energy, free_energy (eV), forces (eV/Å), stress (Voigt, eV/Å³, =
    −virial/volume), energies (site energies, eV). ``get_hessian(atoms, format)`` returns
    the (3n, 3n) Hessian in eV/Å², as matscipy's calculators do.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress", "energies"]

    def __init__(self, potential: Potential, **kwargs):
        super().__init__(**kwargs)
        self.potential = potential

    @property
    def name(self):  # noqa: D401 - ASE uses this for messages
        return f"genanalysis[{self.potential.name}]"

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        ev = self.potential.observe(self.atoms)
        vol = abs(self.atoms.get_volume()) if self.atoms.cell.rank == 3 else math.nan
        stress = -ev.virial / vol
        self.results.update(
            energy=ev.energy,
            free_energy=ev.energy,
            forces=ev.forces,
            stress=stress.flat[[0, 4, 8, 5, 2, 1]].copy(),
            energies=ev.site_energies,
        )

    def get_hessian(self, atoms=None, format="sparse", divide_by_masses=False):
        """Hessian of ``atoms`` (eV/Å²; with ``divide_by_masses`` the dynamical matrix,
        eV/(Å² amu)); ``format`` 'sparse' (CSR) or 'dense' (ndarray)."""
        if format not in ("sparse", "dense"):
            raise InputError(f"format={format!r}; choose 'sparse' or 'dense'")
        atoms = self.atoms if atoms is None else atoms
        H = self.potential.hessian(atoms)
        if divide_by_masses:
            m = np.repeat(atoms.get_masses(), 3)
            s = sp.diags_array(1.0 / np.sqrt(m))
            H = sp.csr_array(s @ H @ s)
        return H.toarray() if format == "dense" else H
