"""ASE calculators that hand their Hessians over in the layouts other codes use.

Real layout adapters around the project's own potentials (not canned results): what
``get_hessian`` returns is the potential's exact Hessian, rearranged the way MACE
((3n, n, 3), and a list of those for a committee) or a buggy code would. Used by
tests/test_external_hessians.py, in process and through ``python:external_calculators:...``
specs in subprocesses (tests/ on PYTHONPATH).
"""

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from genanalysis.potentials import load_potential
from genanalysis.potentials.base import PotentialCalculator


class MACELayoutCalculator(PotentialCalculator):
    """A potential whose ``get_hessian(atoms)`` returns the dense (3n, n, 3) array MACE
    returns: row 3a+α is the gradient of −F_aα with respect to the positions (n, 3)."""

    def get_hessian(self, atoms=None):
        atoms = self.atoms if atoms is None else atoms
        n = len(atoms)
        return self.potential.hessian(atoms).toarray().reshape(3 * n, n, 3)


class Rearranged(PotentialCalculator):
    """A potential whose Hessian comes back transformed by ``how``: "negated" (−H),
    "component-major" (x0…x(n−1), y0…, z0… ordering), "asymmetric" (H + 1e-2·‖H‖ A, A
    antisymmetric), "transposed-layout" ((n, 3, 3n): no accepted shape)."""

    def __init__(self, potential, how, **kwargs):
        super().__init__(potential, **kwargs)
        self.how = how

    def get_hessian(self, atoms=None):
        atoms = self.atoms if atoms is None else atoms
        n = len(atoms)
        H = self.potential.hessian(atoms).toarray()
        if self.how == "negated":
            return -H
        if self.how == "component-major":
            perm = np.arange(3 * n).reshape(n, 3).T.ravel()
            return H[np.ix_(perm, perm)]
        if self.how == "asymmetric":
            A = np.random.default_rng(1).normal(size=H.shape)
            return H + 1e-2 * np.linalg.norm(H) / np.linalg.norm(A - A.T) * (A - A.T)
        if self.how == "transposed-layout":
            return H.reshape(n, 3, 3 * n)
        raise ValueError(self.how)


class Committee(Calculator):
    """A committee of potentials as MACE presents one: energy and forces are the members'
    mean, ``energy_comm`` and ``forces_comm`` hold the members' values, and
    ``get_hessian`` returns the list of the members' (3n, n, 3) Hessians."""

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, potentials, **kwargs):
        super().__init__(**kwargs)
        self.potentials = list(potentials)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        evs = [p.observe(self.atoms) for p in self.potentials]
        vol = abs(self.atoms.get_volume())
        energies = np.array([e.energy for e in evs])
        forces = np.array([e.forces for e in evs])
        stress = -np.mean([e.virial for e in evs], axis=0) / vol
        self.results.update(energy=float(energies.mean()), free_energy=float(energies.mean()),
                            forces=forces.mean(axis=0), stress=stress.flat[[0, 4, 8, 5, 2, 1]].copy(),
                            energy_comm=energies, forces_comm=forces)

    def get_hessian(self, atoms=None):
        atoms = self.atoms if atoms is None else atoms
        n = len(atoms)
        return [p.hessian(atoms).toarray().reshape(3 * n, n, 3) for p in self.potentials]


def _surrogate(eta):
    return load_potential(f"surrogate:builtin:W?family=bond_stiffness&eta={eta}", lattice="bcc")


def mace_layout_w():
    """builtin:W behind the MACE Hessian layout."""
    return MACELayoutCalculator(load_potential("builtin:W"))


def committee_w():
    """builtin:W and its bond-stiffened surrogate as a two-member committee."""
    return Committee([load_potential("builtin:W"), _surrogate(1e-2)])


def negated_w():
    return Rearranged(load_potential("builtin:W"), "negated")
