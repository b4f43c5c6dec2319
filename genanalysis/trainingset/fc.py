"""Force constants as training data: block-sparse storage and translation invariance.

Units: force constants Φ = ∂²E/∂u∂u in eV/Å², positions in Å.

A Hessian here is a scipy sparse (3n × 3n) matrix ordered atom-major (``data.py``); its
3×3 blocks ``Φ(ℓ, k)`` are stored block-sparse (``indptr``, ``indices``, ``blocks`` of a
BSR matrix). On a perfect Bravais lattice (also homogeneously strained) every site is
equivalent, so ``Φ(ℓ, k) = Φ(0, k − ℓ)`` (docs/theory.md (T17)):
the first block row determines the whole matrix. :func:`expand_row` rebuilds the matrix
from that row — deterministically, so storing a row and expanding it on read reproduces
the array bit for bit — and :func:`translation_map` finds, for every site ℓ, the site
``ℓ + (m − 0)`` of each row entry ``m`` by matching fractional coordinates.

:func:`to_phonopy` / :func:`from_phonopy` convert to and from phonopy's dense
``(n, n, 3, 3)`` layout, ``fc[i, j, a, b] = ∂²E/∂u_{i,a}∂u_{j,b}``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.spatial import cKDTree

__all__ = [
    "to_blocks",
    "from_blocks",
    "block_row",
    "translation_map",
    "expand_row",
    "compress_translation_invariant",
    "to_phonopy",
    "from_phonopy",
]

#: fractional-coordinate tolerance when matching translated sites (dimensionless)
_MATCH_TOL = 1e-6


def to_blocks(hessian) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(indptr, indices, blocks)`` of the 3×3 block-sparse form of a (3n × 3n) matrix
    (eV/Å²); ``blocks`` has shape (n_blocks, 3, 3), block rows sorted by column."""
    h = sp.bsr_array(sp.csr_array(hessian), blocksize=(3, 3))
    h.sort_indices()
    return h.indptr.astype(np.int64), h.indices.astype(np.int64), np.asarray(h.data, dtype=np.float64)


def from_blocks(indptr, indices, blocks, n_atoms: int) -> sp.csr_array:
    """Inverse of :func:`to_blocks`: the (3n × 3n) CSR matrix, eV/Å²."""
    n3 = 3 * int(n_atoms)
    blocks = np.asarray(blocks, dtype=np.float64).reshape(-1, 3, 3)
    h = sp.bsr_array((blocks, np.asarray(indices), np.asarray(indptr)), shape=(n3, n3))
    return sp.csr_array(h)


def block_row(hessian, row: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Block columns and 3×3 blocks (eV/Å²) of block row ``row``."""
    indptr, indices, blocks = to_blocks(hessian)
    sl = slice(indptr[row], indptr[row + 1])
    return indices[sl].copy(), blocks[sl].copy()


def _fractional(positions: np.ndarray, cell: np.ndarray, pbc) -> np.ndarray:
    cell = np.asarray(cell, float)
    frac = np.linalg.solve(cell.T, np.asarray(positions, float).T).T
    periodic = np.asarray(pbc, bool)
    frac[:, ~periodic] = 0.0  # non-periodic directions (2D slab height) carry no translation
    return frac


def translation_map(positions, cell, pbc, columns: np.ndarray) -> np.ndarray:
    """``k[ℓ, j]``: the atom at ``x_ℓ + x_{columns[j]} − x_0`` (periodic), for a perfect
    Bravais cell. Shape (n, len(columns)); raises ``ValueError`` when a translated site is
    not an atom, i.e. the cell is not a perfect Bravais lattice."""
    frac = _fractional(positions, cell, pbc)
    frac = frac - np.floor(frac)
    frac[frac >= 1.0] = 0.0
    tree = cKDTree(frac, boxsize=1.0)
    shift = frac[columns] - frac[0]  # (m, 3)
    target = frac[:, None, :] + shift[None, :, :]
    target = target - np.floor(target)
    target[target >= 1.0] = 0.0
    dist, idx = tree.query(target.reshape(-1, 3))
    if np.any(dist > _MATCH_TOL):
        raise ValueError(
            f"the cell is not a perfect Bravais lattice: a translated site misses every atom by "
            f"{dist.max():.3g} (fractional)"
        )
    return idx.reshape(len(frac), len(columns))


def expand_row(columns, blocks, positions, cell, pbc) -> sp.csr_array:
    """The full (3n × 3n) force-constant matrix (eV/Å²) of a perfect cell from its first
    block row: ``Φ(ℓ, ℓ + (m − 0)) = Φ(0, m)``."""
    columns = np.asarray(columns, dtype=np.int64)
    blocks = np.asarray(blocks, dtype=np.float64).reshape(-1, 3, 3)
    n = len(positions)
    kmap = translation_map(positions, cell, pbc, columns)  # (n, m)
    rows = np.repeat(np.arange(n), len(columns))
    cols = kmap.reshape(-1)
    data = np.broadcast_to(blocks, (n,) + blocks.shape).reshape(-1, 3, 3)
    order = np.lexsort((cols, rows))
    rows, cols, data = rows[order], cols[order], data[order]
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))])
    h = sp.bsr_array((np.ascontiguousarray(data), cols, indptr), shape=(3 * n, 3 * n))
    return sp.csr_array(h)


def compress_translation_invariant(hessian, positions, cell, pbc, *, rtol: float = 0.0):
    """``(columns, blocks)`` of the first block row if the matrix equals its expansion from
    that row (exactly for ``rtol=0``; else to ``rtol`` in the max norm), otherwise None."""
    try:
        columns, blocks = block_row(hessian, 0)
        full = expand_row(columns, blocks, positions, cell, pbc)
    except ValueError:
        return None
    h = sp.csr_array(hessian)
    if full.shape != h.shape:
        return None
    diff = abs(full - h).max() if (full - h).nnz else 0.0
    scale = abs(h).max() if h.nnz else 0.0
    if rtol == 0.0:
        same = diff == 0.0 and _same_pattern(full, h)
    else:
        same = diff <= rtol * scale
    return (columns, blocks) if same else None


def _same_pattern(a, b) -> bool:
    ia, ja, _ = to_blocks(a)
    ib, jb, _ = to_blocks(b)
    return np.array_equal(ia, ib) and np.array_equal(ja, jb)


def to_phonopy(hessian, n_atoms: int | None = None) -> np.ndarray:
    """Dense phonopy layout ``(n, n, 3, 3)``, eV/Å²: ``fc[i, j, a, b] = H[3i+a, 3j+b]``."""
    h = sp.csr_array(hessian)
    n = h.shape[0] // 3 if n_atoms is None else int(n_atoms)
    return h.toarray().reshape(n, 3, n, 3).transpose(0, 2, 1, 3).copy()


def from_phonopy(fc: np.ndarray) -> sp.csr_array:
    """Inverse of :func:`to_phonopy`: the (3n × 3n) CSR matrix, eV/Å² (zeros dropped)."""
    fc = np.asarray(fc, dtype=np.float64)
    n = fc.shape[0]
    return sp.csr_array(fc.transpose(0, 2, 1, 3).reshape(3 * n, 3 * n))
