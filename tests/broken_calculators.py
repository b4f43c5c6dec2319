"""Calculators broken on purpose, to prove the property checks name what is wrong and by
how much (tests/test_testing.py; also as ``python:broken_calculators:...`` specs)."""

import numpy as np
from ase.calculators.calculator import all_changes

from genanalysis.potentials import load_potential
from genanalysis.potentials.base import PotentialCalculator

#: strength of the rotation-breaking term, eV/Å²
C_ZZ = 0.01


class ScaledForces(PotentialCalculator):
    """builtin:W with its forces multiplied by ``factor`` (energy and stress untouched)."""

    def __init__(self, factor=1.1, **kwargs):
        super().__init__(load_potential("builtin:W"), **kwargs)
        self.factor = factor

    def calculate(self, *args, **kwargs):
        super().calculate(*args, **kwargs)
        self.results["forces"] = self.factor * self.results["forces"]


def z_spread(positions):
    """E_z = C Σ_i (z_i − z̄)² (eV), its forces (eV/Å) and virial −∂E/∂ε (eV): translation-
    and permutation-invariant, extensive under repetition in x, but not rotation-invariant."""
    dz = positions[:, 2] - positions[:, 2].mean()
    energy = C_ZZ * float(np.sum(dz**2))
    forces = np.zeros_like(positions)
    forces[:, 2] = -2.0 * C_ZZ * dz
    dx = positions - positions.mean(axis=0)
    grad = np.zeros((3, 3))
    grad[2] = 2.0 * C_ZZ * (dz @ dx)  # ∂E/∂ε_zb
    return energy, forces, -0.5 * (grad + grad.T)


class RotationBreaking(PotentialCalculator):
    """builtin:W plus E_z of :func:`z_spread` (energy, forces, stress consistent)."""

    def __init__(self, **kwargs):
        super().__init__(load_potential("builtin:W"), **kwargs)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        e, f, v = z_spread(self.atoms.positions)
        vol = abs(self.atoms.get_volume())
        self.results["energy"] += e
        self.results["free_energy"] += e
        self.results["forces"] = self.results["forces"] + f
        self.results["stress"] = self.results["stress"] - (v / vol).flat[[0, 4, 8, 5, 2, 1]]
        self.results.pop("energies", None)

    def get_hessian(self, atoms=None, format="sparse", divide_by_masses=False):
        raise NotImplementedError("no Hessian for the broken calculator")


def scaled_forces():
    return ScaledForces(1.1)


def rotation_breaking():
    return RotationBreaking()
