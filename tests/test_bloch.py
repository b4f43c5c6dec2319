"""Bloch symbols of block-circulant operators on the perfect n-cell: the symbols' eigenvalues
over the cell's wave vectors are the operator's spectrum, and a function of the symbol is
the function of the operator."""

from __future__ import annotations

import numpy as np
import pytest

from genanalysis import bloch
from genanalysis.lattice import perfect_cell
from genanalysis.potentials import load_potential


def _hessian(spec, lattice, n):
    pot = load_potential(spec)
    cell = perfect_cell(lattice, pot.equilibrium_lattice_constant(lattice), n, pot.species[0])
    dim = int(cell.info["dim"])
    idx = (np.arange(len(cell))[:, None] * 3 + np.arange(dim)[None, :]).ravel()
    return pot.hessian(cell).toarray()[np.ix_(idx, idx)], dim


@pytest.mark.parametrize("spec, lattice, n", [("builtin:morse", "triangular", 4), ("builtin:morse", "fcc", 2),
                                               ("builtin:W", "bcc", 3)])
def test_symbol_eigenvalues_are_the_spectrum_of_the_operator(spec, lattice, n):
    h, dim = _hessian(spec, lattice, n)
    sym = bloch.symbol(bloch.block_row(lambda v: h @ v, lattice, n, dim, stride=dim))
    scale = np.abs(h).max()
    np.testing.assert_allclose(np.sort(np.linalg.eigvalsh(sym).ravel()), np.linalg.eigvalsh(h), atol=1e-10 * scale)
    # a function of the symbol is that function of the operator: its square, per wave vector
    sq = bloch.symbol_function(sym, lambda w: w * w)
    np.testing.assert_allclose(sq, sym @ sym, atol=1e-10 * scale * scale)


def test_block_row_reads_every_atom_component_of_a_full_operator():
    h, dim = _hessian("builtin:morse", "triangular", 3)
    n3 = 3 * (h.shape[0] // dim)
    full = np.zeros((n3, n3))  # the same operator on 3 components per atom (z decoupled)
    keep = np.arange(n3).reshape(-1, 3)[:, :dim].ravel()
    full[np.ix_(keep, keep)] = h
    a = bloch.block_row(lambda v: full @ v, "triangular", 3, dim)
    b = bloch.block_row(lambda v: h @ v, "triangular", 3, dim, stride=dim)
    np.testing.assert_array_equal(a, b)
