"""Force constants of the perfect lattice: one block row determines the matrix (translation
invariance Φ(ℓ, k) = Φ(0, k − ℓ)), also under homogeneous strain, in 2D and 3D; defect
cells are not compressed."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from genanalysis.lattice import defect_cell, perfect_cell
from genanalysis.potentials import load_potential
from genanalysis.trainingset import fc as fcmod

CASES = [("bcc", "builtin:W", 3.1648), ("fcc", "builtin:morse", None), ("triangular", "builtin:morse", None)]


@functools.lru_cache(maxsize=None)
def _pot(spec):
    return load_potential(spec)


def _a(lattice, spec, a):
    return a if a is not None else _pot(spec).equilibrium_lattice_constant(lattice)


@settings(max_examples=12, deadline=None)
@given(case=st.sampled_from(CASES), n=st.integers(2, 4), seed=st.integers(0, 2**31), amp=st.sampled_from([0.0, 0.02]))
def test_one_block_row_expands_to_the_analytic_matrix(case, n, seed, amp):
    lattice, spec, a = case
    pot = _pot(spec)
    atoms = perfect_cell(lattice, _a(lattice, spec, a), n, pot.species[0])
    dim = atoms.info["dim"]
    rng = np.random.default_rng(seed)
    eps = np.zeros((3, 3))
    eps[:dim, :dim] = rng.uniform(-amp, amp, (dim, dim))
    eps = 0.5 * (eps + eps.T)
    F = np.eye(3) + eps
    atoms.set_cell(np.asarray(atoms.cell) @ F.T, scale_atoms=False)
    atoms.positions = atoms.positions @ F.T
    H = sp.csr_array(pot.hessian(atoms))
    cols, blocks = fcmod.block_row(H, 0)
    full = fcmod.expand_row(cols, blocks, atoms.positions, atoms.cell, atoms.pbc)
    scale = np.abs(H.toarray()).max()
    assert np.abs(full.toarray() - H.toarray()).max() <= 1e-10 * scale
    # the expansion is deterministic and compresses back to the same row, exactly
    again = fcmod.compress_translation_invariant(full, atoms.positions, atoms.cell, atoms.pbc)
    assert again is not None
    assert np.array_equal(again[0], cols) and np.array_equal(again[1], blocks)


def test_translation_map_is_a_permutation_per_column():
    atoms = perfect_cell("bcc", 3.0, 3)
    cols = np.arange(len(atoms))
    k = fcmod.translation_map(atoms.positions, atoms.cell, atoms.pbc, cols)
    for j in range(len(cols)):
        assert sorted(k[:, j]) == list(range(len(atoms)))
    assert np.array_equal(k[0], cols)  # translating by 0 changes nothing
    assert np.array_equal(k[:, 0], np.arange(len(atoms)))


def test_defect_cells_are_not_compressed():
    pot = _pot("builtin:W")
    atoms = defect_cell("bcc", 3.1648, 3, "vacancy", "W")
    H = pot.hessian(atoms)
    assert fcmod.compress_translation_invariant(H, atoms.positions, atoms.cell, atoms.pbc) is None
    with pytest.raises(ValueError, match="not a perfect Bravais lattice"):
        fcmod.translation_map(atoms.positions, atoms.cell, atoms.pbc, np.arange(len(atoms)))


def test_phonopy_layout_convention():
    pot = _pot("builtin:W")
    atoms = perfect_cell("bcc", 3.1648, 2, "W")
    atoms.positions += np.random.default_rng(0).normal(scale=0.05, size=atoms.positions.shape)
    H = sp.csr_array(pot.hessian(atoms))
    fc = fcmod.to_phonopy(H)
    dense = H.toarray()
    i, j = 3, 11
    assert np.array_equal(fc[i, j], dense[3 * i:3 * i + 3, 3 * j:3 * j + 3])
    assert np.array_equal(fcmod.from_phonopy(fc).toarray(), dense)
