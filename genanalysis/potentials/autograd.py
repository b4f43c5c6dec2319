"""Hessian–vector products by automatic differentiation through a torch-based ASE
calculator's own module (``hessian="autograd"`` of
:class:`~genanalysis.potentials.wrapper.ASECalculatorPotential`).

One forward pass builds the forces with their graph at a configuration; each product
H·v = −∂(F·v)/∂x is then one backward pass through that graph — the cost of about one
force call, against 3n backward passes for an assembled Hessian. Exact to round-off (no
step), so it is checked once against central differences of the forces like a
calculator's Hessian.

Supported: calculators that expose their models the way MACE's does — ``models`` (a list
of torch modules called as ``model(data, compute_force=True, training=True)`` and returning
``"forces"``), ``_atoms_to_batch(atoms)`` and ``_clone_batch(batch)`` whose ``to_dict()``
holds ``"positions"`` in the order of ``atoms``. A committee's products are the mean of its
members'. Anything else is refused in one line by :func:`torch_products`.
"""

from __future__ import annotations

import numpy as np

from genanalysis.exceptions import InputError

__all__ = ["torch_products", "supports_autograd"]


def supports_autograd(calc) -> bool:
    """Whether ``calc`` exposes its torch modules in the supported form (module docstring)."""
    models = getattr(calc, "models", None)
    return (isinstance(models, (list, tuple)) and len(models) > 0 and callable(getattr(calc, "_atoms_to_batch", None))
            and callable(getattr(calc, "_clone_batch", None)))


class _Graph:
    """The forces of every committee member at one configuration, with their graphs."""

    def __init__(self, calc, atoms):
        import torch

        batch = calc._atoms_to_batch(atoms)
        self.members = []
        for model in calc.models:
            data = calc._clone_batch(batch).to_dict()
            out = model(data, compute_force=True, compute_stress=False, training=True)
            forces, pos = out["forces"], data["positions"]
            if forces is None or not forces.requires_grad or tuple(forces.shape) != (len(atoms), 3):
                raise InputError(f"{type(calc).__name__}: its model returned forces without a graph over the "
                                 "positions; choose hessian=calculator or hessian=fd")
            self.members.append((forces, pos))
        self.dtype = self.members[0][0].dtype
        self.torch = torch

    def product(self, V: np.ndarray) -> np.ndarray:
        torch = self.torch
        V = np.asarray(V, dtype=np.float64)
        cols = V.reshape(V.shape[0], -1)
        out = np.zeros_like(cols)
        for forces, pos in self.members:
            for j in range(cols.shape[1]):
                v = torch.as_tensor(cols[:, j].reshape(-1, 3), dtype=self.dtype)
                (g,) = torch.autograd.grad(forces, pos, grad_outputs=v, retain_graph=True)
                out[:, j] -= g.detach().cpu().numpy().reshape(-1).astype(np.float64)
        out /= len(self.members)
        return out.reshape(V.shape)


def torch_products(calc, atoms):
    """``product(V)``: H·V (eV/Å² times V's Å; V of shape (3n,) or (3n, k)) at ``atoms`` by
    autograd through ``calc``'s modules. Raises :class:`InputError` for a calculator that
    does not expose them."""
    if not supports_autograd(calc):
        raise InputError(f"hessian='autograd' needs a calculator that exposes its torch modules as MACE's does "
                         f"(models, _atoms_to_batch, _clone_batch); {type(calc).__name__} does not")
    return _Graph(calc, atoms).product
