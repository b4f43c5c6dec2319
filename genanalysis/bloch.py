"""Block-circulant operators on the perfect n-cell and their Bloch symbols.

A periodic operator on the perfect n-cell (a Hessian, the stencil Laplacian) commutes with
the lattice translations, so it is block-circulant over the grid of unit cells
(:func:`genanalysis.lattice.site_grid`): one block row ``C(R)`` (the couplings of the
``nb·dim`` unknowns of cell R with those of cell 0) determines it, and the FFT over the grid
turns it into its Bloch symbol ``Ĉ(k)``, one Hermitian (nb·dim)² matrix per wave vector of
the cell. Functions of the operator (its pseudo-inverse, inverse square root) are functions
of the symbol, applied per wave vector. Used by the solver's preconditioner
(:class:`genanalysis.defect.LatticePreconditioner`) and the force-constant error of the
experiment (:func:`genanalysis.experiment.force_constant_error`).

Units: those of the operator (eV/Å² for Hessians; the Laplacian is dimensionless).
"""

from __future__ import annotations

import numpy as np

from genanalysis.lattice import site_grid

__all__ = ["block_row", "symbol", "symbol_function", "hessian_block_row"]


def block_row(apply, lattice: str, n: int, dim: int, stride: int = 3) -> np.ndarray:
    """C(R) (grid..., m, m), m = nb·dim, of the periodic operator ``apply`` (a vector of the
    n-cell, atom-major with ``stride`` components per atom, to its image) on the perfect
    n-cell built by :func:`genanalysis.lattice.perfect_cell`: ``C(R)[i, j]`` is the
    coupling of unknown i of cell R with unknown j of cell 0 (the image of the unit vector
    of unknown j of cell 0; the first ``dim`` components of each atom count). Costs m
    products."""
    shape, nb = site_grid(lattice, n)
    m = nb * dim
    n_atoms = int(np.prod(shape)) * nb
    out = np.zeros(shape + (m, m))
    for b in range(nb):
        for alpha in range(dim):
            v = np.zeros((n_atoms, stride))
            v[b, alpha] = 1.0  # atom b of grid cell 0
            col = np.asarray(apply(v.ravel())).reshape(-1, stride)[:, :dim]
            out[..., :, b * dim + alpha] = col.reshape(shape + (m,))
    return out


def symbol(blocks: np.ndarray) -> np.ndarray:
    """The Bloch symbol Ĉ(k) (grid..., m, m) of a block row C(R) (grid..., m, m): its FFT
    over the grid axes, symmetrised to its Hermitian part (which it is, up to round-off,
    for a symmetric operator)."""
    s = np.fft.fftn(blocks, axes=tuple(range(blocks.ndim - 2)))
    return 0.5 * (s + np.conj(np.swapaxes(s, -1, -2)))


def symbol_function(sym: np.ndarray, f) -> np.ndarray:
    """``V f(w) Vᴴ`` per wave vector, for the eigen-decomposition ``Ĉ(k) = V diag(w) Vᴴ``
    of a Hermitian symbol; ``f`` maps the array of all eigenvalues (grid..., m) to the
    values of the function (so a cut-off may depend on the whole spectrum)."""
    w, v = np.linalg.eigh(sym)
    return np.einsum("...ij,...j,...kj->...ik", v, f(w), np.conj(v))


def hessian_block_row(potential, atoms, lattice: str, n: int, dim: int) -> np.ndarray:
    """C(R) (grid..., m, m), eV/Å², of ``potential``'s Hessian on the perfect n-cell
    ``atoms`` (:func:`genanalysis.lattice.perfect_cell`), from m = nb·dim products of its
    matrix-free ``linearise``; the first ``dim`` components of each atom count. Raises
    :class:`~genanalysis.exceptions.NonFiniteError` when a force constant is not finite."""
    from genanalysis.exceptions import NonFiniteError

    op = potential.linearise(atoms)
    c = block_row(lambda v: op @ v, lattice, n, dim, stride=3)
    if not np.all(np.isfinite(c)):
        raise NonFiniteError("the perfect-lattice force constants are not finite")
    return c
