"""Any ASE calculator as a :class:`~genanalysis.potentials.base.Potential`.

Units: Å, eV, eV/Å, eV (virial = −stress·volume), eV/Å² (Hessians). Energies, forces and
stresses come from the calculator. Force constants come from ``calc.get_hessian(atoms)``
when the calculator has one (matscipy's calculators do), otherwise from central finite
differences of the forces with step ``fd_step`` (Å, default 1e-4: truncation error
O(h²·∂³F) ~1e-8 relative, round-off ~ε_F/h; 6n force calls), unless finite differences
are disabled (``allow_fd=False``), in which case asking for a Hessian is an error.
"""

from __future__ import annotations

import importlib
import math

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from ase.calculators.calculator import BaseCalculator, PropertyNotImplementedError

from genanalysis.exceptions import InputError
from genanalysis.potentials.base import Evaluation, Potential

__all__ = ["ASECalculatorPotential", "calculator_from_python_spec", "finite_difference_hessian", "DEFAULT_FD_STEP"]

#: default central-difference step for force constants, Å
DEFAULT_FD_STEP = 1e-4


def _check_step(fd_step) -> float:
    step = float(fd_step)
    if not (math.isfinite(step) and 0 < step <= 0.1):
        raise InputError(f"finite-difference step fd_step={fd_step} Å is outside the accepted range (0, 0.1]")
    return step


def finite_difference_hessian(atoms, forces, fd_step: float = DEFAULT_FD_STEP) -> sp.csr_array:
    """Hessian (eV/Å², (3n × 3n) CSR, atom-major) by central differences of
    ``forces(atoms) -> (n, 3)`` eV/Å with step ``fd_step`` Å, symmetrised (½(H + Hᵀ)).
    Costs 6n force calls and a dense (3n)² work array (meant for cells of up to a few
    thousand atoms); entries that are exactly zero are not stored."""
    step = _check_step(fd_step)
    work = atoms.copy()
    x0 = atoms.positions.copy()
    n3 = 3 * len(atoms)
    cols = np.empty((n3, n3))
    for k in range(n3):  # one column per coordinate: inherent to finite differences
        a, c = divmod(k, 3)
        work.positions = x0
        work.positions[a, c] += step
        fp = np.asarray(forces(work)).ravel()
        work.positions = x0
        work.positions[a, c] -= step
        fm = np.asarray(forces(work)).ravel()
        cols[:, k] = -(fp - fm) / (2.0 * step)
    H = 0.5 * (cols + cols.T)
    return sp.csr_array(H)


def calculator_from_python_spec(spec: str):
    """Call ``CALLABLE`` of ``MODULE`` for ``python:MODULE:CALLABLE``; it must return an ASE
    calculator."""
    _, _, rest = spec.partition(":")
    module, _, attr = rest.partition(":")
    if not module or not attr:
        raise InputError(f"potential spec {spec!r} must have the form python:MODULE:CALLABLE")
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise InputError(f"potential spec {spec!r}: cannot import module {module!r} ({exc})") from None
    factory = getattr(mod, attr, None)
    if factory is None or not callable(factory):
        raise InputError(f"potential spec {spec!r}: module {module!r} has no callable {attr!r}")
    calc = factory()
    if not isinstance(calc, BaseCalculator):
        raise InputError(
            f"potential spec {spec!r}: {attr}() returned {type(calc).__name__}, not an ASE calculator"
        )
    return calc


class ASECalculatorPotential(Potential):
    """An ASE calculator wrapped as a Potential.

    ``cutoff`` (Å; default the calculator's ``cutoff`` attribute if it has one, else
    ``inf``) and ``species`` (default: any) are informational. ``fd_step`` (Å) is the
    central-difference step for force constants when the calculator has no
    ``get_hessian``; ``allow_fd=False`` refuses finite differences instead.

    Site energies come from ``get_potential_energies`` when implemented, otherwise every
    atom gets the equal share E/n (flagged by ``site_energies_exact = False``). The virial
    is ``−stress·volume`` when the calculator implements stress, otherwise NaN.
    """

    def __init__(self, calc, *, name: str | None = None, cutoff: float | None = None,
                 species: tuple[str, ...] = (), fd_step: float = DEFAULT_FD_STEP, allow_fd: bool = True):
        if not isinstance(calc, BaseCalculator):
            raise InputError(f"{calc!r} is not an ASE calculator")
        self.calc = calc
        self.name = name or f"ase:{type(calc).__name__}"
        self.cutoff = float(cutoff if cutoff is not None else getattr(calc, "cutoff", math.inf) or math.inf)
        self.species = tuple(species)
        self.fd_step = _check_step(fd_step)
        self.allow_fd = bool(allow_fd)
        self.site_energies_exact = True

    def __repr__(self) -> str:
        return f"ASECalculatorPotential({self.name!r})"

    def check_species(self, atoms) -> None:
        if self.species:
            super().check_species(atoms)

    def _atoms(self, atoms):
        at = atoms.copy()
        at.calc = self.calc
        return at

    def forces(self, atoms) -> np.ndarray:
        """Forces (n, 3) eV/Å from the calculator."""
        return np.array(self._atoms(atoms).get_forces(), dtype=np.float64)

    def evaluate(self, atoms) -> Evaluation:
        self.check_species(atoms)
        at = self._atoms(atoms)
        energy = float(at.get_potential_energy())
        forces = np.array(at.get_forces(), dtype=np.float64)
        try:
            virial = -np.asarray(at.get_stress(voigt=False), dtype=np.float64) * at.get_volume()
            virial = 0.5 * (virial + virial.T)
        except (PropertyNotImplementedError, NotImplementedError, ValueError):
            virial = np.full((3, 3), np.nan)
        try:
            site = np.array(at.get_potential_energies(), dtype=np.float64)
        except (PropertyNotImplementedError, NotImplementedError, AttributeError):
            site = np.full(len(at), energy / max(len(at), 1))
            self.site_energies_exact = False
        return Evaluation(energy=energy, forces=forces, virial=virial, site_energies=site)

    @property
    def has_analytic_hessian(self) -> bool:
        return callable(getattr(self.calc, "get_hessian", None))

    def hessian(self, atoms, fd_step: float | None = None) -> sp.csr_array:
        """The calculator's Hessian (eV/Å²) if it has ``get_hessian`` and no ``fd_step`` is
        forced, else central finite differences of the forces."""
        self.check_species(atoms)
        if self.has_analytic_hessian and fd_step is None:
            at = self._atoms(atoms)
            H = self.calc.get_hessian(at)
            return sp.csr_array(H)
        if not self.allow_fd and fd_step is None:
            raise InputError(
                f"potential {self.name} has no analytic Hessian (get_hessian) and finite differences "
                "are disabled (allow_fd=False)"
            )
        return finite_difference_hessian(atoms, self.forces, self.fd_step if fd_step is None else fd_step)

    def linearise(self, atoms) -> spla.LinearOperator:
        """Hessian-vector products: the calculator's sparse Hessian if it has one, else
        central differences of the forces along v (2 force calls per product, step
        ``fd_step`` along v/max|v|)."""
        if self.has_analytic_hessian:
            return super().linearise(atoms)
        if not self.allow_fd:
            raise InputError(
                f"potential {self.name} has no analytic Hessian and finite differences are disabled (allow_fd=False)"
            )
        x0 = atoms.positions.copy()
        work = atoms.copy()
        n3 = 3 * len(atoms)
        h = self.fd_step

        def matvec(v):
            v = np.asarray(v, dtype=np.float64).ravel()
            scale = np.abs(v).max()
            if scale == 0:
                return np.zeros(n3)
            d = (v / scale).reshape(-1, 3)
            work.positions = x0 + h * d
            fp = self.forces(work).ravel()
            work.positions = x0 - h * d
            fm = self.forces(work).ravel()
            return -(fp - fm) / (2.0 * h) * scale

        return spla.LinearOperator((n3, n3), matvec=matvec, rmatvec=matvec, dtype=np.float64)

    def equilibrium_lattice_constant(self, lattice: str) -> float:
        if not math.isfinite(self.cutoff):
            raise InputError(
                f"potential {self.name}: give its cutoff (Å) to search for the {lattice} lattice constant"
            )
        return super().equilibrium_lattice_constant(lattice)
