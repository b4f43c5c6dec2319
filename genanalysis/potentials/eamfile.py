"""Tabulated EAM potentials from LAMMPS files: ``eam`` (DYNAMO funcfl), ``eam/alloy``
(setfl) and ``eam/fs`` (Finnis–Sinclair setfl).

The file is parsed by :func:`matscipy.calculators.eam.io.read_eam`; the format is detected
by counting the numbers in the file against what each format's header announces
(``format=`` overrides, and is checked the same way). A single-element eam/fs file has
exactly the layout of an eam/alloy file and is read as such (the two are then the same
potential). The element is chosen by name (``element=``) or is the only one in the file;
the atomic-number field is not used to identify it (some published files, e.g.
``W_zhou.eam.alloy``, write 1 for W).

Units (LAMMPS ``metal``): r in Å, energies eV. matscipy returns r·φ(r) (eV·Å) for every
format: for funcfl it has already converted the effective charge Z(r) to
r·φ = 27.2·0.529·Z(r)², the LAMMPS convention. Each table is interpolated by
:class:`~genanalysis.potentials.functions.UniformCubicTable` (C² cubic spline, O(1) per
pair, same interpolant as matscipy's), and φ = (r·φ)/r.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from genanalysis.exceptions import InputError
from genanalysis.potentials.eam import EAMPotential
from genanalysis.potentials.functions import TimesInverse, UniformCubicTable

__all__ = ["FORMATS", "detect_format", "load_eam_file", "write_eam_file", "EAMFileInfo"]

FORMATS = ("eam", "eam/alloy", "eam/fs")


@dataclass(frozen=True)
class EAMFileInfo:
    """What the header of an EAM file announces, and how many numbers follow it."""

    format: str
    elements: tuple[str, ...]
    n_rho: int
    n_r: int
    expected: int
    found: int


def _numbers(lines: list[str]) -> int:
    return sum(len(line.split("#", 1)[0].split()) for line in lines)


def _read_lines(path: str) -> list[str]:
    if not os.path.isfile(path):
        raise InputError(
            f"potential {path!r} is neither a built-in ('builtin:W', 'builtin:morse', 'builtin:lj'), "
            "'python:MODULE:CALLABLE', nor an existing EAM file"
        )
    try:
        with open(path, encoding="utf-8", errors="strict") as fh:
            return fh.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"EAM file {path!r} is unreadable: {exc}") from None


def _header_grid(words: list[str]) -> tuple[int, int]:
    if len(words) != 5:
        raise ValueError("grid line needs 5 values")
    n_rho, _, n_r, _, _ = int(words[0]), float(words[1]), int(words[2]), float(words[3]), float(words[4])
    if n_rho < 4 or n_r < 4:
        raise ValueError("too few grid points")
    return n_rho, n_r


def _candidates(lines: list[str]) -> list[EAMFileInfo]:
    """How the file parses under each format (formats whose header cannot be read omitted)."""
    out = []
    try:  # funcfl: comment; "Z mass a lattice"; "Nrho drho Nr dr cutoff"; F, Z(r), rho(r)
        w = lines[1].split()
        if len(w) == 4:
            int(w[0]), float(w[1]), float(w[2])
            n_rho, n_r = _header_grid(lines[2].split("#", 1)[0].split())
            out.append(EAMFileInfo("eam", (), n_rho, n_r, n_rho + 2 * n_r, _numbers(lines[3:])))
    except (ValueError, IndexError):
        pass
    try:  # setfl: 3 comments; "N el..."; grid; per element "Z mass a lat" F rho(s); pairs
        w = lines[3].split("#", 1)[0].split()
        n_el = int(w[0])
        elements = tuple(w[1:])
        if n_el >= 1 and len(elements) == n_el:
            n_rho, n_r = _header_grid(lines[4].split("#", 1)[0].split())
            found = _numbers(lines[5:])
            pairs = n_el * (n_el + 1) // 2 * n_r
            for fmt, dens in (("eam/alloy", 1), ("eam/fs", n_el)):
                out.append(EAMFileInfo(fmt, elements, n_rho, n_r, n_el * (4 + n_rho + dens * n_r) + pairs, found))
    except (ValueError, IndexError):
        pass
    return out


def detect_format(path: str) -> str:
    """The LAMMPS EAM format of the file at ``path`` ('eam', 'eam/alloy' or 'eam/fs'),
    from the count of its numbers against each format's header."""
    lines = _read_lines(path)
    matches = [c.format for c in _candidates(lines) if c.expected == c.found]
    if not matches:
        raise InputError(f"EAM file {path!r} is unreadable: {_describe(lines)}")
    return matches[0]


def _describe(lines: list[str]) -> str:
    cands = _candidates(lines)
    if not cands:
        return "its header matches none of the formats eam, eam/alloy, eam/fs"
    return "; ".join(f"as {c.format} it should hold {c.expected} numbers but holds {c.found}" for c in cands)


def load_eam_file(path: str, *, format: str | None = None, element: str | None = None,
                  skin: float | None = None) -> EAMPotential:
    """A single-species :class:`EAMPotential` from a LAMMPS EAM file (see module docstring)."""
    from matscipy.calculators.eam.io import read_eam

    path = os.fspath(path)
    lines = _read_lines(path)
    if format is not None and format not in FORMATS:
        raise InputError(f"EAM format {format!r} is not supported; choose one of {', '.join(FORMATS)}")
    detected = detect_format(path)
    if format is None:
        format = detected
    else:
        info = {c.format: c for c in _candidates(lines)}.get(format)
        if info is None or info.expected != info.found:
            why = "its header does not parse" if info is None else (
                f"that format expects {info.expected} numbers, the file holds {info.found}")
            raise InputError(f"format {format!r} does not match EAM file {path!r} ({why}); it reads as {detected}")
    try:
        _, params, F, f, rep = read_eam(path, kind=format)
    except Exception as exc:  # matscipy raises bare ValueErrors and IndexErrors
        raise InputError(f"EAM file {path!r} is unreadable as {format}: {exc}") from None

    if format == "eam":
        from ase.data import chemical_symbols

        z = int(params.atomic_numbers[0])
        file_symbol = chemical_symbols[z] if 0 < z < len(chemical_symbols) else "X"
        symbol = element or file_symbol
        k = 0
    else:
        elements = [str(s) for s in params.symbols]
        if element is None:
            if len(elements) != 1:
                raise InputError(
                    f"EAM file {path!r} describes elements {', '.join(elements)}; choose one with element=SYMBOL"
                )
            element = elements[0]
        if element not in elements:
            raise InputError(
                f"element {element!r} is not in EAM file {path!r}; it describes {', '.join(elements)}"
            )
        symbol, k = element, elements.index(element)

    dr, drho = params.distance_grid_spacing, params.density_grid_spacing
    density = f[k, k] if f.ndim == 3 else f[k]
    for label, table in (("embedding F(ρ)", F[k]), ("density f(r)", density), ("pair r·φ(r)", rep[k, k])):
        bad = ~np.isfinite(np.asarray(table, dtype=np.float64))
        if bad.any():
            raise InputError(f"EAM file {path!r}: the {label} table of {symbol} holds {int(bad.sum())} value(s) "
                             f"that are not finite (nan/inf), the first at index {int(np.argmax(bad))}")
    for label, step in (("distance grid spacing", dr), ("density grid spacing", drho), ("cutoff", params.cutoff)):
        if not (np.isfinite(step) and step > 0):
            raise InputError(f"EAM file {path!r}: the {label} {step!r} must be a positive finite number")
    return EAMPotential(
        name=path,
        element=symbol,
        cutoff=float(params.cutoff),
        phi=TimesInverse(UniformCubicTable(dr, rep[k, k], extrapolate="hold")),
        f=UniformCubicTable(dr, density, extrapolate="hold"),
        F=UniformCubicTable(drho, F[k], extrapolate="linear"),
        skin=skin,
        mass=float(params.atomic_masses[k]),
        meta={"format": format, "file_atomic_number": int(params.atomic_numbers[k]),
              "n_r": int(params.number_of_distance_grid_points), "dr": float(dr),
              "n_rho": int(params.number_of_density_grid_points), "drho": float(drho)},
    )


def _block(values: np.ndarray) -> list[str]:
    values = np.asarray(values, dtype=np.float64).ravel()
    return [" ".join(f"{v:.16e}" for v in values[k:k + 5]) for k in range(0, len(values), 5)]


def write_eam_file(path: str, potentials: list[EAMPotential] | EAMPotential, format: str, *,
                   n_r: int, n_rho: int, rho_max: float, cutoff: float | None = None,
                   cross_density=None, cross_pair=None, atomic_numbers: list[int] | None = None,
                   lattice: tuple[float, str] = (0.0, "bcc")) -> None:
    """Tabulate analytic EAM potentials onto a LAMMPS file (for tests and conversions).

    ``potentials``: one per element (``species[0]`` names it); funcfl takes exactly one,
    with φ ≥ 0 (the format stores Z(r) = √(r·φ/(27.2·0.529))). Grids: r_k = k·cutoff/(n_r−1)
    Å, ρ_k = k·rho_max/(n_rho−1). For several elements, ``cross_density(a, b, r)`` (eam/fs:
    density at an ``a`` atom due to a ``b`` neighbour; default f_b) and ``cross_pair(a, b, r)``
    (eV; default the geometric mean of the pure φ) give the mixed tables.
    """
    pots = [potentials] if isinstance(potentials, EAMPotential) else list(potentials)
    if format not in FORMATS:
        raise InputError(f"EAM format {format!r} is not supported; choose one of {', '.join(FORMATS)}")
    cutoff = float(cutoff if cutoff is not None else max(p.cutoff for p in pots))
    dr, drho = cutoff / (n_r - 1), rho_max / (n_rho - 1)
    r = np.arange(n_r) * dr
    rho = np.arange(n_rho) * drho
    rs = np.where(r > 0, r, dr)  # φ(0) is not needed: r·φ = 0 there
    names = [p.species[0] for p in pots]
    numbers = atomic_numbers or [0] * len(pots)
    mass = [p.mass or 1.0 for p in pots]
    out = ["tabulated by genanalysis", "", ""]
    grid = f"{n_rho} {drho:.16e} {n_r} {dr:.16e} {cutoff:.16e}"

    def rphi(a, b):
        if a == b:
            return r * pots[a].phi(rs)[0]
        if cross_pair is not None:
            return r * cross_pair(names[a], names[b], rs)
        return r * np.sign(pots[a].phi(rs)[0]) * np.sqrt(np.abs(pots[a].phi(rs)[0] * pots[b].phi(rs)[0]))

    if format == "eam":
        if len(pots) != 1:
            raise InputError("the funcfl format ('eam') holds exactly one element")
        rp = rphi(0, 0)
        if np.any(rp < 0):
            raise InputError("the funcfl format ('eam') cannot store a negative pair potential φ(r)")
        lines = [out[0], f"{numbers[0]} {mass[0]} {lattice[0]} {lattice[1]}", grid]
        lines += _block(pots[0].F(rho)[0]) + _block(np.sqrt(rp / (27.2 * 0.529))) + _block(pots[0].f(r)[0])
    else:
        lines = out + [f"{len(pots)} " + " ".join(names), grid]
        for a, p in enumerate(pots):
            lines.append(f"{numbers[a]} {mass[a]} {lattice[0]} {lattice[1]}")
            lines += _block(p.F(rho)[0])
            if format == "eam/alloy":
                lines += _block(p.f(r)[0])
            else:  # section of element a: density at a b-atom due to an a-neighbour, b = 1..N
                for b in range(len(pots)):
                    dens = p.f(r)[0] if (a == b or cross_density is None) else cross_density(names[b], names[a], r)
                    lines += _block(dens)
        for a in range(len(pots)):
            for b in range(a + 1):
                lines += _block(rphi(a, b))
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
