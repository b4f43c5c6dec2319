"""Half neighbour lists with a Verlet skin, reused while atoms move little.

A pair list holds every unordered pair of sites once: ``(i, j, S)`` with the separation
vector ``R = x_j − x_i + S·cell`` (Å). Periodic cells smaller than the cutoff are
legitimate: one atom may appear several times as a neighbour (different image shifts S),
and an atom may neighbour its own images (``i == j``, S ≠ 0), exactly as in LAMMPS. The
list is built by :func:`matscipy.neighbours.neighbour_list` (which handles such cells)
(or, for orthorhombic periodic cells wider than twice the reach, a periodic
:class:`scipy.spatial.cKDTree`, which returns each pair once and is about 3x faster)
with radius ``cutoff + skin`` and reused — only R and |R| recomputed — as long as no atom
has moved more than ``3·skin/8`` since it was built and the cell, pbc and atomic numbers
are unchanged (the cache key); see :class:`NeighbourCache` for the two levels.

For the hot path (:mod:`.eam`) the cached list is also kept compactly, as
:class:`PairBlocks`: indices int32 (when the atom count allows), the image shift as a small
integer code into a table of shift vectors (one byte or two per pair instead of 24), and the
pairs cut into blocks of ``BLOCK`` pairs with the index ranges each block touches, so that
every pass over the pairs works on cache-sized temporaries, scatters by ``np.bincount``
into the block's own index range, and never holds more than a few O(P) arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matscipy.neighbours import neighbour_list
from scipy.spatial import cKDTree

from genanalysis.memory import check_memory, pairs_bytes

__all__ = ["PairList", "PairBlocks", "NeighbourCache", "BLOCK"]

#: pairs per block of the chunked passes (temporaries of 8·BLOCK bytes stay in cache)
BLOCK = 1 << 15


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


@dataclass
class PairBlocks:
    """The cached half list within ``cutoff + skin`` (Å) for chunked passes.

    ``i, j``: atom indices (int32 or int64), sorted by i; ``code``: index into ``shifts``
    (K, 3), Å, so that ``R = x_j − x_i + shifts[code]``; ``box``: the box lengths (Å) when
    the cell is orthorhombic, periodic and wider than 2·(cutoff + 2·skin) in every
    direction — then the minimum-image convention gives the same R without the codes.
    ``bounds``: per block ``(start, stop, i_lo, i_hi, j_lo, j_hi, seg_start, seg_atom)``:
    the pair slice, the (inclusive) ranges of i and j in it, and the runs of equal i
    (block-local starts and their atoms) for ``np.add.reduceat`` scatters."""

    i: np.ndarray
    j: np.ndarray
    code: np.ndarray
    shifts: np.ndarray
    bounds: list
    n_atoms: int
    box: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.i)

    def separations(self, X: np.ndarray, start: int, stop: int, ib=None, jb=None):
        """Components (Rx, Ry, Rz) (Å) and |R| (Å) of the pairs ``start:stop``, from
        coordinates stored by component, ``X`` (3, n)."""
        ib = self.i[start:stop].astype(np.intp) if ib is None else ib
        jb = self.j[start:stop].astype(np.intp) if jb is None else jb
        if self.box is None:
            cb = self.code[start:stop].astype(np.intp)
        comps = []
        for c in range(3):
            d = X[c].take(jb)
            d -= X[c].take(ib)
            if self.box is not None:
                L = self.box[c]
                d -= L * np.rint(d * (1.0 / L))
            else:
                d += self.shifts[:, c].take(cb)
            comps.append(d)
        r2 = comps[0] * comps[0]
        r2 += comps[1] * comps[1]
        r2 += comps[2] * comps[2]
        return comps, np.sqrt(r2, out=r2)


def _check_pairs_memory(atoms, radius: float) -> None:
    """Refuse a pair list that cannot fit in memory, before the search allocates it."""
    cell = np.asarray(atoms.cell, dtype=np.float64)
    pbc = np.asarray(atoms.pbc, dtype=bool)
    dim = 2 if pbc[0] and pbc[1] and not pbc[2] else 3
    size = abs(np.linalg.det(cell)) if dim == 3 else float(np.linalg.norm(np.cross(cell[0], cell[1])))
    if not (np.isfinite(size) and size > 0):
        return
    n = len(atoms)
    check_memory(f"the neighbour list of {n:,} atoms within {radius:.3g} Å", pairs_bytes(n, n / size, radius, dim))


def _codes(S: np.ndarray, cell: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Image shifts S (P, 3) as small integer codes into a table of shift vectors (Å)."""
    smax = int(np.abs(S).max()) if len(S) else 0
    base = 2 * smax + 1
    code = ((S[:, 0].astype(np.int32) + smax) * base + (S[:, 1] + smax)) * base + (S[:, 2] + smax)
    code = code.astype(np.int16 if base**3 <= np.iinfo(np.int16).max else np.int32)
    grid = np.indices((base, base, base)).reshape(3, -1).T - smax
    return code, np.ascontiguousarray(grid.astype(np.float64) @ cell)


def _blocks(i: np.ndarray, j: np.ndarray, code: np.ndarray, shifts: np.ndarray, n_atoms: int, box) -> PairBlocks:
    """Cut a list sorted by i into blocks (see :class:`PairBlocks`)."""
    bounds = []
    for s in range(0, len(i), BLOCK):
        e = min(s + BLOCK, len(i))
        bi, bj = i[s:e], j[s:e]
        seg = np.flatnonzero(np.concatenate(([True], bi[1:] != bi[:-1])))
        bounds.append((s, e, int(bi[0]), int(bi[-1]), int(bj.min()), int(bj.max()), seg, bi[seg].astype(np.intp)))
    return PairBlocks(i=i, j=j, code=code, shifts=shifts, bounds=bounds, n_atoms=n_atoms, box=box)


class NeighbourCache:
    """Builds half pair lists for one cutoff (Å), caching the last ``size`` lists.

    Two levels: the *master* list (a full neighbour search, radius cutoff + skin) and the
    *active* list drawn from it (radius cutoff + skin/4), which every pass uses. A skin of
    5 % of the cutoff takes in whole neighbour shells beyond the cutoff (bcc W: 19 % of the
    pairs, all contributing exactly zero); the active list drops them. The active list is
    redrawn — one distance pass over the master list, no search — once an atom has moved
    more than skin/8 since it was drawn, and the master list is rebuilt once an atom has
    moved more than 3·skin/8 since the search: every pair within the cutoff is then in the
    active list (|Δr| < skin/4 since it was drawn) and every pair within cutoff + skin/4
    was in the master list (|Δr| < 3·skin/4 since the search)."""

    def __init__(self, cutoff: float, skin: float, size: int = 4):
        self.cutoff = float(cutoff)
        self.skin = float(skin)
        self.inner = 0.25 * self.skin
        self.size = size
        self._entries: dict = {}
        self.builds = 0  # number of full neighbour searches (for tests and benchmarks)
        self.draws = 0  # number of active lists drawn from a master list
    def clear(self) -> None:
        """Forget every cached list (the next pass searches afresh)."""
        self._entries.clear()

    @staticmethod
    def _key(atoms) -> tuple:
        numbers = atoms.numbers
        return (
            np.asarray(atoms.cell, dtype=np.float64).tobytes(),
            tuple(bool(p) for p in atoms.pbc),
            len(numbers),
            numbers.tobytes(),
        )

    def _box(self, atoms) -> np.ndarray | None:
        """Box lengths (Å) when the cell is orthorhombic, periodic and wider than
        2·(cutoff + 2·skin): then the minimum image is the only image within reach."""
        cell = np.asarray(atoms.cell, dtype=np.float64)
        diag = np.diag(cell).copy()
        if (all(atoms.pbc) and np.all(cell == np.diag(diag))
                and np.all(diag > 2.0 * (self.cutoff + 2.0 * self.skin))):
            return diag
        return None

    def _search(self, atoms):
        """(i, j, S): every unordered pair within cutoff + skin once."""
        radius = self.cutoff + self.skin
        _check_pairs_memory(atoms, radius)
        box = self._box(atoms)
        if box is not None:
            # a periodic k-d tree lists each pair once (i < j) about 3x faster than
            # matscipy's full list; the image shift is then the minimum image's
            pos = np.asarray(atoms.positions, dtype=np.float64)
            wrapped = pos - box * np.floor(pos / box)
            wrapped[(wrapped >= box) | (wrapped < 0.0)] = 0.0  # round-off at the faces
            pairs = cKDTree(wrapped, boxsize=box).query_pairs(radius, output_type="ndarray")
            itype = np.int32 if len(pos) < np.iinfo(np.int32).max else np.int64
            i, j = pairs[:, 0].astype(itype), pairs[:, 1].astype(itype)
            del pairs
            S = np.empty((len(i), 3), dtype=np.int8)  # minimum image: shifts in {−1, 0, 1}
            step = 1 << 20  # bounded temporaries at 10⁸ pairs
            for s in range(0, len(i), step):
                d = pos[j[s:s + step]] - pos[i[s:s + step]]
                S[s:s + step] = -np.rint(d / box)
            return i, j, S
        i, j, S = neighbour_list("ijS", atoms, radius)
        # keep each unordered pair once: i < j, or a self image with a "positive" shift
        keep = i < j
        self_image = np.nonzero(i == j)[0]
        if len(self_image):
            Ss = S[self_image].astype(np.int64)
            keep[self_image[((Ss[:, 0] * 4096 + Ss[:, 1]) * 4096 + Ss[:, 2]) > 0]] = True
        return i[keep], j[keep], S[keep]

    def _build(self, atoms):
        i, j, S = self._search(atoms)
        if len(i) > 1 and np.any(i[1:] < i[:-1]):
            # sorted by i (runs of equal i for reduceat scatters), then by j (nearby
            # gathers); an unstable sort of the combined key is the cheapest way there
            key = i.astype(np.int64) * len(atoms) + j
            order = np.argsort(key)
            del key
            i, j, S = i[order], j[order], S[order]
            del order
        itype = np.int32 if len(atoms) < np.iinfo(np.int32).max else np.int64
        i = i.astype(itype, copy=False)
        j = j.astype(itype, copy=False)
        cell = np.asarray(atoms.cell, dtype=np.float64)
        code, shifts = _codes(S, cell)
        del S
        box = self._box(atoms)
        self.builds += 1
        master = _blocks(i, j, code, shifts, len(atoms), box)
        return {"positions": atoms.positions.copy(), "master": master, "active": None, "active_positions": None}

    def _draw(self, entry: dict, pos: np.ndarray) -> PairBlocks:
        """The active list: the master list's pairs within cutoff + inner skin at ``pos``."""
        m = entry["master"]
        X = np.ascontiguousarray(pos.T)
        radius = self.cutoff + self.inner
        keep = np.empty(len(m), dtype=bool)
        for s, e, *_ in m.bounds:
            _, r = m.separations(X, s, e)
            np.less(r, radius, out=keep[s:e])
        self.draws += 1
        return _blocks(m.i[keep], m.j[keep], m.code[keep], m.shifts, m.n_atoms, m.box)

    def blocks(self, atoms) -> PairBlocks:
        """The compact pair list of ``atoms`` within at least the cutoff (rebuilt only when
        needed); pairs beyond the cutoff are the caller's to ignore."""
        entry = self._entry(atoms)
        pos = np.asarray(atoms.positions, dtype=np.float64)
        if entry["active"] is not None:
            moved = pos - entry["active_positions"]
            if len(pos) and np.max(np.einsum("ij,ij->i", moved, moved)) > (0.5 * self.inner) ** 2:
                entry["active"] = None
        if entry["active"] is None:
            entry["active"] = None  # free the old one before drawing
            entry["active"] = self._draw(entry, pos)
            entry["active_positions"] = pos.copy()
        return entry["active"]

    def pairs(self, atoms) -> PairList:
        """The pair list of ``atoms`` within the cutoff (rebuilt only when needed)."""
        pos = np.asarray(atoms.positions, dtype=np.float64)
        b = self.blocks(atoms)
        i, j = b.i.astype(np.int64), b.j.astype(np.int64)
        R = pos[j] - pos[i]
        R += b.shifts[b.code]
        r = np.sqrt(np.einsum("ij,ij->i", R, R))
        inside = r < self.cutoff
        if not inside.all():
            i, j, R, r = i[inside], j[inside], R[inside], r[inside]
        return PairList(i=i, j=j, R=R, r=r, n_atoms=len(pos))

    def _entry(self, atoms) -> dict:
        key = self._key(atoms)
        pos = np.asarray(atoms.positions, dtype=np.float64)
        entry = self._entries.get(key)
        if entry is not None:
            moved = pos - entry["positions"]
            if len(pos) and np.max(np.einsum("ij,ij->i", moved, moved)) > (0.5 * (self.skin - self.inner)) ** 2:
                entry = None
        if entry is None:
            entry = self._build(atoms)
            if len(self._entries) >= self.size:
                self._entries.pop(next(iter(self._entries)))
        else:
            self._entries.pop(key)
        self._entries[key] = entry  # most recent last
        return entry
