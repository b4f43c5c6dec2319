"""Half neighbour lists with a Verlet skin, reused while atoms move little.

A pair list holds every unordered pair of sites once: ``(i, j, S)`` with the separation
vector ``R = x_j − x_i + S·cell`` (Å). Periodic cells smaller than the cutoff are
legitimate: one atom may appear several times as a neighbour (different image shifts S),
and an atom may neighbour its own images (``i == j``, S ≠ 0), exactly as in LAMMPS. The
list is built by :func:`matscipy.neighbours.neighbour_list` (which handles such cells)
with radius ``cutoff + skin`` and reused — only R and |R| recomputed — as long as no atom
has moved more than ``skin/2`` since it was built and the cell, pbc and atomic numbers
are unchanged (the cache key).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matscipy.neighbours import neighbour_list

__all__ = ["PairList", "NeighbourCache"]


@dataclass
class PairList:
    """Pairs within the cutoff: indices ``i, j`` (int64, each unordered pair once),
    separation vectors ``R`` (P, 3) Å from i to j, distances ``r`` (P,) Å."""

    i: np.ndarray
    j: np.ndarray
    R: np.ndarray
    r: np.ndarray
    n_atoms: int

    def __len__(self) -> int:
        return len(self.r)


class NeighbourCache:
    """Builds half pair lists for one cutoff (Å), caching the last ``size`` lists."""

    def __init__(self, cutoff: float, skin: float, size: int = 4):
        self.cutoff = float(cutoff)
        self.skin = float(skin)
        self.size = size
        self._entries: dict = {}
        self.builds = 0  # number of full neighbour searches (for tests and benchmarks)

    @staticmethod
    def _key(atoms) -> tuple:
        numbers = atoms.numbers
        return (
            np.asarray(atoms.cell, dtype=np.float64).tobytes(),
            tuple(bool(p) for p in atoms.pbc),
            len(numbers),
            numbers.tobytes(),
        )

    def _build(self, atoms):
        i, j, S = neighbour_list("ijS", atoms, self.cutoff + self.skin)
        i = i.astype(np.int64)
        j = j.astype(np.int64)
        # keep each unordered pair once: i < j, or a self image with a "positive" shift
        s_key = (S[:, 0] * 4096 + S[:, 1]) * 4096 + S[:, 2]
        keep = (i < j) | ((i == j) & (s_key > 0))
        i, j, S = i[keep], j[keep], S[keep].astype(np.float64)
        shift = S @ np.asarray(atoms.cell, dtype=np.float64)
        self.builds += 1
        return {"positions": atoms.positions.copy(), "i": i, "j": j, "shift": shift}

    def pairs(self, atoms) -> PairList:
        """The pair list of ``atoms`` within the cutoff (rebuilt only when needed)."""
        key = self._key(atoms)
        pos = np.asarray(atoms.positions, dtype=np.float64)
        entry = self._entries.get(key)
        if entry is not None:
            moved = pos - entry["positions"]
            if len(pos) and np.max(np.einsum("ij,ij->i", moved, moved)) > (0.5 * self.skin) ** 2:
                entry = None
        if entry is None:
            entry = self._build(atoms)
            if len(self._entries) >= self.size:
                self._entries.pop(next(iter(self._entries)))
        else:
            self._entries.pop(key)
        self._entries[key] = entry  # most recent last
        i, j = entry["i"], entry["j"]
        R = pos[j] - pos[i]
        R += entry["shift"]
        r = np.sqrt(np.einsum("ij,ij->i", R, R))
        inside = r < self.cutoff
        if not inside.all():
            i, j, R, r = i[inside], j[inside], R[inside], r[inside]
        return PairList(i=i, j=j, R=R, r=r, n_atoms=len(pos))
