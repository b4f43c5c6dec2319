"""Fitted models as reference-style potentials and ASE calculators.

Units: Å, eV, eV/Å, eV (virials), eV/Å² (force constants).

:class:`ModelPotential` implements :class:`genanalysis.potentials.base.Potential`
(observe / hessian / linearise / calculator / cutoff), so a fitted model plugs in
wherever a reference potential does; its :meth:`calculator` is the ASE calculator
(energy, free_energy, forces, stress, energies, and ``get_hessian(atoms, format=
'sparse'|'dense', divide_by_masses=False)`` with matscipy's signature).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from genanalysis.potentials.base import Observation, Potential, PotentialCalculator

__all__ = ["ModelPotential", "model_calculator"]


class ModelPotential(Potential):
    """A fitted model (:class:`~genanalysis.models.linear.LinearACE` or
    :class:`~genanalysis.models.mlp.MLPACE`) behind the reference-potential interface."""

    def __init__(self, model, name: str | None = None, element: str = "X"):
        self.model = model
        self.name = name or f"model:{model.kind}"
        self.cutoff = float(model.cutoff)
        self.species = (element,)

    @property
    def fused_linearise(self) -> bool:
        """Whether the model's ``energy_forces(linearise=True)`` returns its Hessian operator
        from the force pass (the linear and network models: the operator holds that pass's
        A and ∂ε/∂A and computes its pair terms at the first product)."""
        return bool(getattr(self.model, "fused_linearise", False))

    def check_species(self, atoms) -> None:
        """A model fitted to one element describes that element (and the placeholder X); a
        model saved without an element ("X") accepts any single-species configuration."""
        if self.species == ("X",):
            return
        super().check_species(atoms)

    def observe(self, atoms) -> Observation:
        self.check_species(atoms)
        r = self.model.predict(atoms)
        return Observation(energy=float(r["energy"]), forces=np.asarray(r["forces"]),
                          virial=np.asarray(r["virial"]), site_energies=np.asarray(r["energies"]))

    def hessian(self, atoms) -> sp.csr_array:
        self.check_species(atoms)
        return self.model.hessian(atoms)


    def energy_forces(self, atoms, linearise: bool = False):
        """(energy eV, forces eV/Å, Hessian operator or None): the model's fused pass when
        it has one (the linear model), else its evaluation and no operator (callers then
        call :meth:`linearise` when they need products)."""
        self.check_species(atoms)
        fn = getattr(self.model, "energy_forces", None)
        if fn is not None:
            return fn(atoms, linearise=linearise)
        r = self.model.predict(atoms)
        return float(r["energy"]), np.asarray(r["forces"]), None

    def linearise(self, atoms) -> spla.LinearOperator:
        """Hessian-vector products (eV/Å² · Å → eV/Å): the model's matrix-free operator when
        it has one, else products with its assembled sparse Hessian."""
        self.check_species(atoms)
        fn = getattr(self.model, "linearise", None)
        return fn(atoms) if fn is not None else super().linearise(atoms)

    def elastic_constants(self, atoms) -> np.ndarray | None:
        """Analytic clamped-ion elastic constants (Voigt, eV/Å³; 2D eV/Å²) when the model
        provides them, else None (callers then take finite differences of virials)."""
        fn = getattr(self.model, "elastic_constants", None)
        return None if fn is None else fn(atoms)

def model_calculator(model, name: str | None = None, element: str = "X") -> PotentialCalculator:
    """The ASE calculator of a fitted model."""
    return ModelPotential(model, name=name, element=element).calculator()
