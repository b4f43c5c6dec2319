"""Lattices, periodic supercells and point defects.

Lengths in Å. Every function takes plain numbers and returns an :class:`ase.Atoms`.

Geometry conventions (docs/reference.md §1):

* ``bcc`` and ``fcc`` (d = 3): an n×n×n supercell of the *conventional cubic* cell of side
  ``a``, as LAMMPS builds it with ``lattice bcc a`` and ``region block 0 n 0 n 0 n``:
  2n³ (bcc) or 4n³ (fcc) sites, fixed cubic cell ``n·a``, periodic in x, y, z.
* ``triangular`` (d = 2): n×n primitive cells with ``a1 = a(1, 0)``, ``a2 = a(1/2, √3/2)``:
  n² sites in the plane z = 0, periodic in x and y only. Atoms move only in the plane;
  ``atoms.info["dim"] == 2`` tells every solver to keep the z components fixed.

Sites are ordered cell by cell (cell index i, j, k row-major, then basis index), so the
perfect cell is block-circulant in that order; :func:`site_grid` returns the map back.

A point defect is placed at the geometric centre of the cell: the whole crystal is first
translated so that the defect's reference point (the vacant site, the interstitial
position, the dumbbell centre) lies at the centre, then the defect is made. The
translation leaves the periodic crystal unchanged, so ``info["site_index"]`` maps every
atom of the defect cell to the perfect-lattice site it came from (-1 for added atoms).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from ase import Atoms

from genanalysis.exceptions import InputError
from genanalysis.memory import CELL_BYTES_PER_ATOM, check_memory, pairs_bytes

__all__ = [
    "atoms_dim",
    "LATTICES",
    "DEFECTS",
    "DefectSpec",
    "parse_defect",
    "dimension",
    "nearest_neighbour_distance",
    "cell_width",
    "shell_radii",
    "perfect_cell",
    "defect_cell",
    "site_grid",
    "smallest_size",
    "cell_atoms",
    "check_cell",
    "minimum_image",
    "distances_from_centre",
]

#: lattice name -> (dimension, basis in units of the cell vectors)
LATTICES: dict[str, tuple[int, np.ndarray]] = {
    "bcc": (3, np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]])),
    "fcc": (3, np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.5, 0.0, 0.5], [0.0, 0.5, 0.5]])),
    "triangular": (2, np.array([[0.0, 0.0, 0.0]])),
}

#: lattice name -> defect kind -> interstitial kinds (the first is the default)
DEFECTS: dict[str, dict[str, tuple[str, ...]]] = {
    "bcc": {"vacancy": (), "interstitial": ("dumbbell110", "octahedral")},
    "fcc": {"vacancy": (), "interstitial": ("octahedral",)},
    "triangular": {"vacancy": (), "interstitial": ("centre",)},
}

#: height of the (non-periodic) cell vector of the 2D lattice, Å; never used by physics
_SLAB_HEIGHT = 20.0


@dataclass(frozen=True)
class DefectSpec:
    """A point defect: ``kind`` is ``perfect``, ``vacancy`` or ``interstitial``; ``variant``
    names the interstitial site (``dumbbell110``, ``octahedral``, ``centre``)."""

    kind: str
    variant: str = ""

    def __str__(self) -> str:
        return f"{self.kind}:{self.variant}" if self.variant else self.kind


def atoms_dim(atoms) -> int:
    """The dimension d (2 or 3) of a configuration: ``atoms.info["dim"]``, 3 when unset.
    A d = 2 configuration lies in the x–y plane (z is a spectator)."""
    return int(atoms.info.get("dim", 3))


def _check_lattice(lattice: str) -> None:
    if lattice not in LATTICES:
        raise InputError(f"lattice {lattice!r} is not supported; choose one of {', '.join(LATTICES)}")


def parse_defect(lattice: str, defect: str | DefectSpec) -> DefectSpec:
    """Parse ``vacancy``, ``interstitial``, ``interstitial:KIND`` or ``perfect`` for a lattice."""
    _check_lattice(lattice)
    if isinstance(defect, DefectSpec):
        defect = str(defect)
    kind, _, variant = str(defect).partition(":")
    if kind == "perfect" and not variant:
        return DefectSpec("perfect")
    table = DEFECTS[lattice]
    if kind not in table:
        allowed = ", ".join(["perfect", *table, *(f"interstitial:{v}" for v in table["interstitial"])])
        raise InputError(f"defect {defect!r} is not supported on the {lattice} lattice; choose one of {allowed}")
    variants = table[kind]
    if kind == "vacancy":
        if variant:
            raise InputError(f"defect {defect!r}: a vacancy takes no variant; use 'vacancy'")
        return DefectSpec("vacancy")
    if not variant:
        variant = variants[0]
    if variant not in variants:
        raise InputError(
            f"interstitial variant {variant!r} is not supported on the {lattice} lattice; "
            f"choose one of {', '.join(variants)}"
        )
    return DefectSpec("interstitial", variant)


def dimension(lattice: str) -> int:
    """Spatial dimension d of the lattice (2 or 3)."""
    _check_lattice(lattice)
    return LATTICES[lattice][0]


def cell_width(lattice: str, a: float, n: int) -> float:
    """Narrowest width (Å) of the periodic n-cell (distance between opposite faces, periodic
    directions only) for lattice constant ``a`` (Å): an environment of radius r_cut sees
    every atom at most once when the width is at least 2·r_cut."""
    _check_lattice(lattice)
    cell, pbc = _cell(lattice, _check_a(a), _check_n(n))
    volume = abs(np.linalg.det(cell))
    normals = np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]])
    widths = volume / np.linalg.norm(normals, axis=1)
    return float(min(w for w, periodic in zip(widths, pbc) if periodic))


def nearest_neighbour_distance(lattice: str, a: float) -> float:
    """Nearest-neighbour distance, Å, for lattice constant ``a`` (Å)."""
    _check_lattice(lattice)
    return {"bcc": math.sqrt(3.0) / 2.0, "fcc": 1.0 / math.sqrt(2.0), "triangular": 1.0}[lattice] * a


def _check_a(a: float) -> float:
    a = float(a)
    if not (math.isfinite(a) and a > 0):
        raise InputError(f"lattice constant a={a} Å must be a positive finite number")
    return a


def _check_n(n) -> int:
    if isinstance(n, bool) or int(n) != n:
        raise InputError(f"cell size n={n!r} must be a whole number ≥ 1")
    n = int(n)
    if n < 1:
        raise InputError(f"cell size n={n} is not admissible; use n ≥ 1")
    return n


def _cell(lattice: str, a: float, n: int) -> tuple[np.ndarray, tuple[bool, bool, bool]]:
    if lattice == "triangular":
        cell = np.array([[a, 0.0, 0.0], [0.5 * a, 0.5 * math.sqrt(3.0) * a, 0.0], [0.0, 0.0, 0.0]])
        cell *= n
        cell[2, 2] = _SLAB_HEIGHT
        return cell, (True, True, False)
    return np.eye(3) * (a * n), (True, True, True)


def cell_atoms(lattice: str, n: int) -> int:
    """Atoms of the perfect n-cell of ``lattice`` (a point defect adds or removes one)."""
    dim, basis = LATTICES[lattice]
    return len(basis) * int(n) ** dim


def check_cell(lattice: str, n: int, what: str | None = None, *, a: float | None = None,
               radius: float | None = None) -> None:
    """Refuse (:class:`InputError`) an n-cell too large to build in the available memory
    (:mod:`genanalysis.memory`); ``what`` names the value in the message. With the lattice
    constant ``a`` (Å) and the neighbour-list ``radius`` (Å: a potential's cutoff and skin)
    the estimate includes the cell's neighbour list, so that a cell whose atoms fit but whose
    pairs do not is refused before either is built."""
    _check_lattice(lattice)
    atoms = cell_atoms(lattice, _check_n(n))
    estimate, pairs = float(atoms) * CELL_BYTES_PER_ATOM, ""
    if a is not None and radius:
        dim = LATTICES[lattice][0]
        volume = (a * n) ** 3 if dim == 3 else 0.5 * math.sqrt(3.0) * (a * n) ** 2
        estimate += pairs_bytes(atoms, atoms / volume, radius, dim)
        pairs = f" and their neighbour list within {radius:.3g} Å"
    check_memory(f"{what or f'cell size n={n}'} ({lattice}: {atoms:,} atoms{pairs})", estimate)


def perfect_cell(lattice: str, a: float, n: int, symbol: str = "X") -> Atoms:
    """The perfect n×n(×n) periodic supercell (see the module docstring for the geometry)."""
    _check_lattice(lattice)
    a, n = _check_a(a), _check_n(n)
    check_cell(lattice, n)
    dim, basis = LATTICES[lattice]
    cell, pbc = _cell(lattice, a, n)
    if dim == 3:
        grid = np.indices((n, n, n)).reshape(3, -1).T.astype(float)
    else:
        ij = np.indices((n, n)).reshape(2, -1).T.astype(float)
        grid = np.column_stack([ij, np.zeros(len(ij))])
    frac = (grid[:, None, :] + basis[None, :, :]).reshape(-1, 3)
    positions = frac @ (cell / n)  # the 2D basis has no z component
    atoms = Atoms(symbols=[symbol] * len(positions), positions=positions, cell=cell, pbc=pbc)
    atoms.info.update(
        lattice=lattice, a=a, n=n, dim=dim, defect="perfect",
        defect_centre=_centre(cell, dim).tolist(),
    )
    atoms.arrays["site_index"] = np.arange(len(atoms))
    return atoms


def site_grid(lattice: str, n: int) -> tuple[tuple[int, ...], int]:
    """Shape of the cell grid and the number of basis sites: site ``s`` of a perfect cell
    sits in grid cell ``np.unravel_index(s // nb, shape)`` with basis index ``s % nb``."""
    dim, basis = LATTICES[lattice]
    return (n,) * dim, len(basis)


def _centre(cell: np.ndarray, dim: int) -> np.ndarray:
    c = 0.5 * cell[:dim].sum(axis=0)
    c[dim:] = 0.0
    return c


def _defect_geometry(lattice: str, a: float, spec: DefectSpec) -> tuple[np.ndarray, np.ndarray]:
    """(reference point relative to a lattice site, positions of added atoms relative to the
    reference point). Lengths in Å."""
    if spec.kind in ("perfect", "vacancy"):
        return np.zeros(3), np.zeros((0, 3))
    if lattice == "bcc" and spec.variant == "octahedral":
        return np.array([0.5, 0.5, 0.0]) * a, np.zeros((1, 3))
    if lattice == "bcc" and spec.variant == "dumbbell110":
        # two atoms share the site, split along [110]; the initial separation a/√2 is
        # only a starting point for the relaxation
        half = 0.5 * (a / math.sqrt(2.0)) * np.array([1.0, 1.0, 0.0]) / math.sqrt(2.0)
        return np.zeros(3), np.array([half, -half])
    if lattice == "fcc" and spec.variant == "octahedral":
        return np.array([0.5, 0.5, 0.5]) * a, np.zeros((1, 3))
    if lattice == "triangular" and spec.variant == "centre":
        return np.array([0.5, 0.5 / math.sqrt(3.0), 0.0]) * a, np.zeros((1, 3))
    raise InputError(f"defect {spec} is not supported on the {lattice} lattice")  # pragma: no cover


def minimum_image(vectors: np.ndarray, cell: np.ndarray, dim: int = 3) -> np.ndarray:
    """Difference vectors (k, 3), Å, reduced to their minimum image in the periodic
    directions of ``cell`` (the first ``dim`` rows) by rounding fractional coordinates; exact
    for vectors shorter than half the cell's narrowest width. Components beyond ``dim`` are
    returned unchanged."""
    out = np.array(vectors, dtype=float, copy=True).reshape(-1, 3)
    c = np.asarray(cell, float)[:dim, :dim]
    frac = np.linalg.solve(c.T, out[:, :dim].T).T
    out[:, :dim] = (frac - np.round(frac)) @ c
    return out


def distances_from_centre(atoms: Atoms) -> np.ndarray:
    """Minimum-image distance (Å) of every atom from ``atoms.info["defect_centre"]``."""
    dim = atoms_dim(atoms)
    rel = minimum_image(atoms.positions - np.asarray(atoms.info["defect_centre"]), np.array(atoms.cell), dim)
    return np.linalg.norm(rel[:, :dim], axis=1)


def _too_close(atoms: Atoms, r_min: float) -> bool:
    """Whether an added (interstitial) atom is closer than r_min (Å) to another atom or
    image. Sites of the perfect lattice cannot be: only the added atoms need checking,
    which keeps the check O(n) for million-atom cells."""
    from ase.geometry import get_distances

    added = np.flatnonzero(atoms.arrays.get("site_index", np.zeros(len(atoms), int)) < 0)
    if len(added) == 0:
        return False
    dim = atoms_dim(atoms)
    cell = np.array(atoms.cell)
    # images of an added atom itself lie a full cell vector away
    if np.min(np.linalg.norm(cell[:dim], axis=1)) < r_min:
        return True
    widths = atoms.cell.volume / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)
    if dim == 3 and r_min < 0.5 * widths.min():
        # rounding fractional differences is the exact minimum image within half a width
        diff = (atoms.positions[None, :, :] - atoms.positions[added, None, :]).reshape(-1, 3)
        d = np.linalg.norm(minimum_image(diff, cell), axis=1).reshape(len(added), len(atoms))
    else:
        _, d = get_distances(atoms.positions[added], atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    d[np.arange(len(added)), added] = np.inf
    return bool(np.any(d < r_min))


def _build_defect(lattice: str, a: float, n: int, spec: DefectSpec, symbol: str) -> Atoms:
    atoms = perfect_cell(lattice, a, n, symbol)
    dim = atoms.info["dim"]
    cell = np.array(atoms.cell)
    centre = _centre(cell, dim)
    ref_offset, added = _defect_geometry(lattice, a, spec)
    # translate the crystal so that (site 0 + ref_offset) sits at the centre, then wrap
    shift = centre - (atoms.positions[0] + ref_offset)
    atoms.positions += shift
    atoms.wrap()
    if dim == 2:
        atoms.positions[:, 2] = 0.0
    site_index = np.arange(len(atoms))
    vacant: list[int] = []
    if spec.kind == "vacancy" or (spec.kind == "interstitial" and spec.variant == "dumbbell110"):
        # the site at the centre: nearest by minimum image
        dist = np.linalg.norm(minimum_image(atoms.positions - centre, cell, dim)[:, :dim], axis=1)
        s = int(np.argmin(dist))
        vacant.append(s)
        keep = np.ones(len(atoms), bool)
        keep[s] = False
        atoms = atoms[keep]
        site_index = site_index[keep]
    if len(added):
        extra = Atoms([symbol] * len(added), positions=centre + added)
        atoms += extra
        site_index = np.concatenate([site_index, -np.ones(len(added), int)])
    atoms.arrays["site_index"] = site_index
    atoms.info.update(
        lattice=lattice, a=a, n=n, dim=dim, defect=str(spec),
        defect_centre=centre.tolist(), vacant_sites=vacant,
        n_sites_perfect=int(len(site_index) - len(added) + len(vacant)),
    )
    return atoms


def _fits(atoms: Atoms, lattice: str, a: float) -> bool:
    n_defect = int(np.sum(atoms.arrays["site_index"] < 0))
    if len(atoms) - n_defect < 1:
        return False
    return not _too_close(atoms, 0.5 * nearest_neighbour_distance(lattice, a))


def smallest_size(lattice: str, a: float, defect: str | DefectSpec, symbol: str = "X") -> int:
    """Smallest n for which the defect fits into the n-cell."""
    spec = parse_defect(lattice, defect)
    for n in range(1, 64):
        if _fits(_build_defect(lattice, a, n, spec, symbol), lattice, a):
            return n
    raise InputError(f"defect {spec} does not fit into any {lattice} cell up to n=63")  # pragma: no cover


def defect_cell(lattice: str, a: float, n: int, defect: str | DefectSpec, symbol: str = "X") -> Atoms:
    """The n-cell with one point defect at its centre, unrelaxed.

    ``defect`` is ``perfect``, ``vacancy``, ``interstitial`` (the lattice's default
    variant) or ``interstitial:VARIANT``. Periodic cells smaller than the interaction
    range are legitimate. Refused (:class:`InputError`, naming the smallest admissible n)
    only where the defect does not fit: no atom left besides the defect, or two atoms
    closer than half the nearest-neighbour distance.

    ``info`` carries lattice, a, n, dim, defect, defect_centre (Å) and vacant_sites;
    ``arrays["site_index"]`` maps atoms to sites of :func:`perfect_cell` (-1: added atom).
    """
    _check_lattice(lattice)
    a, n = _check_a(a), _check_n(n)
    spec = parse_defect(lattice, defect)
    if spec.kind == "perfect":
        return perfect_cell(lattice, a, n, symbol)
    atoms = _build_defect(lattice, a, n, spec, symbol)
    if not _fits(atoms, lattice, a):
        n_min = smallest_size(lattice, a, spec, symbol)
        raise InputError(
            f"cell size n={n} is too small for a {spec} on the {lattice} lattice; use n ≥ {n_min}"
        )
    return atoms


def shell_radii(lattice: str, a: float, count: int = 4) -> np.ndarray:
    """Radii (Å) of the first ``count`` neighbour shells of the perfect lattice."""
    _check_lattice(lattice)
    a = _check_a(a)
    n = 2 * count + 2
    atoms = perfect_cell(lattice, a, n)
    centre = _centre(np.array(atoms.cell), atoms.info["dim"])
    d = np.linalg.norm(atoms.positions - atoms.positions[np.argmin(np.linalg.norm(atoms.positions - centre, axis=1))], axis=1)
    radii = np.unique(np.round(d[d > 1e-9], 8))
    return radii[:count]
