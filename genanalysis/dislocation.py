"""Straight dislocations in bcc: the clamped cylinder, its anisotropic-elasticity predictor,
and its relaxation (docs/dislocations.md).

Units: Å, eV; elastic constants eV/Å³ (Voigt, cubic axes); energies per length eV/Å.

Geometry (docs/dislocations.md §1). The three 1/2⟨111⟩ dislocations of bcc, as
:mod:`matscipy.dislocation` builds them (its axes; the line along z, periodic with the
lattice period along the line):

* ``screw``: line [111], b = a/2 [111] (axes x = [11-2], y = [-110], z = [111]);
* ``edge``: line [11-2], b = a/2 [111] on (1-10) (x = [111], y = [1-10], z = [11-2]);
* ``mixed``: line [1-11], b = a/2 [1-1-1], 70.5° between b and the line (x = [1-1-2],
  y = [110], z = [1-11]).

A cylinder of *free* radius R around the line, plus an outer shell of width w (the
*clamped* atoms, ``arrays['clamped']``), is cut from the perfect crystal (atoms whose
in-plane distance from the line is < R + w) and displaced by the predictor û: the
anisotropic (Stroh) linear-elastic field of the dislocation, computed by matscipy
(``method='adsl'``, self-consistent: û evaluated at the displaced positions) from the
elastic constants of a potential — never re-derived here. The clamped atoms stay at the
predictor in every relaxation (:func:`genanalysis.defect.relax` honours
``arrays['clamped']``). The default w is twice the potential's cutoff: the force on a free
atom depends on the site energies of atoms within one cutoff, and those on atoms within
two, so no free atom feels the cylinder's outer surface; w below one cutoff is refused.

The cell is periodic along the line only (``pbc = (False, False, True)``), its x–y box wide
enough to hold the cylinder; ``info`` carries the lattice, a, the dislocation kind, R, w,
the Burgers vector and line direction in the cell frame, the core position and the
elastic constants the predictor used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from ase import Atoms

from genanalysis.dislocation_cells import (  # noqa: F401  (the cells' geometry is re-exported)
    CYLINDER_CONSTRAINTS, KIND_CHOICE, KINDS, QUADRUPOLE_KINDS, _dislocation, _frame, check_clamp_width,
    cylinder_atoms, default_clamp_width, estimate_cylinder_atoms, quadrupole_atoms, quadrupole_cell)
from genanalysis.exceptions import InputError
from genanalysis.lattice import perfect_cell
from genanalysis.relaxation import RelaxedCell

__all__ = [
    "KINDS",
    "CYLINDER_CONSTRAINTS",
    "predictor",
    "predictor_elastic_constants",
    "cylinder",
    "cylinder_atoms",
    "distances_from_line",
    "elastic_prelog",
    "excess_energy",
    "relax_cylinder",
    "core_energy",
    "DislocationResult",
    "solve_dislocation",
    "default_clamp_width",
    "check_clamp_width",
    "site_keys",
    "seed_cylinder",
    "QUADRUPOLE_KINDS",
    "quadrupole_atoms",
    "quadrupole_cell",
]


def predictor_elastic_constants(potential, a: float, symbol: str = "X") -> np.ndarray:
    """The 6×6 elastic constants (Voigt, cubic axes, eV/Å³) of ``potential``'s bcc lattice
    at lattice constant ``a`` (Å): the analytic clamped-ion (Born) constants when the
    potential has them, else central differences of virials
    (:func:`genanalysis.observe.elastic_constants`); exact for bcc, whose internal
    relaxation vanishes by inversion symmetry."""
    from genanalysis.observe import elastic_constants

    C = np.asarray(elastic_constants(potential, perfect_cell("bcc", a, 1, symbol)), dtype=float)
    if C.shape != (6, 6) or not np.all(np.isfinite(C)):
        raise InputError(f"the elastic constants of {getattr(potential, 'name', potential)} at a = {a} Å are not "
                         f"a finite 6×6 matrix")
    return C


class predictor:
    """The Stroh predictor of one dislocation, in the cell frame (x, y in the plane, z
    along the line), centred on the line: ``displacement(points)`` (Å) and
    ``gradient(points)`` (∂u_i/∂x_j, dimensionless) at points (k, 3) Å relative to the
    core; ``burgers`` (3,) Å and ``line`` (3,) in the cell frame. Both are matscipy's
    (``AnisotropicDislocation``), with the branch cut of the displacement on the negative
    x axis (the half-plane y = 0, x < 0)."""

    def __init__(self, kind: str, a: float, C: np.ndarray, symbol: str = "X"):
        self.kind, self.a = kind, float(a)
        self._disl = _dislocation(kind, a, C, symbol)
        self.axes = np.asarray(self._disl.axes)
        self.burgers = _frame(self._disl) @ np.asarray(self._disl.burgers, dtype=float)
        self.line = np.array([0.0, 0.0, 1.0])
        self.C = np.asarray(C, dtype=float)
        self._disl.init_adsl()  # matscipy's own set-up of its Stroh solver for this dislocation
        self._aniso = self._disl.ADstroh

    def displacement(self, points: np.ndarray) -> np.ndarray:
        return np.asarray(self._aniso.displacement(np.atleast_2d(points)), dtype=float)

    def gradient(self, points: np.ndarray) -> np.ndarray:
        # matscipy's array is indexed [point, j, i] for F_ij = δ_ij + ∂u_i/∂x_j
        f = np.asarray(self._aniso.deformation_gradient(np.atleast_2d(points)), dtype=float)
        return np.swapaxes(f, 1, 2) - np.eye(3)


def _rotated_stiffness(C: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """C_ijkl (eV/Å³) of the Voigt matrix ``C`` (cubic axes) in the frame whose rows are ``frame``."""
    from matscipy.elasticity import Voigt_6x6_to_full_3x3x3x3

    c = Voigt_6x6_to_full_3x3x3x3(np.asarray(C, dtype=float))
    return np.einsum("ia,jb,abcd,kc,ld->ijkl", frame, frame, c, frame, frame)


def elastic_prelog(kind: str, a: float, C: np.ndarray, *, points: int = 720) -> float:
    """The prelogarithmic energy factor E_log (eV/Å) of the predictor: the linear-elastic
    energy per length of the annulus r₁ < r < r₂ is E_log · ln(r₂/r₁) (docs/dislocations.md
    (D2)). The energy density of the Stroh field is f(θ)/r², so E_log = ∫₀^{2π} f(θ) dθ,
    evaluated with the trapezoidal rule on ``points`` angles (spectrally accurate: f is
    smooth and periodic). For an isotropic medium: μb²/4π (screw), μb²/(4π(1−ν)) (edge)."""
    pred = predictor(kind, a, C)
    theta = 2.0 * np.pi * np.arange(points) / points
    pts = np.column_stack([np.cos(theta), np.sin(theta), np.zeros(points)])
    g = pred.gradient(pts)
    eps = 0.5 * (g + np.swapaxes(g, 1, 2))
    c = _rotated_stiffness(C, _frame(pred._disl))
    w = 0.5 * np.einsum("pij,ijkl,pkl->p", eps, c, eps)
    return float(w.mean() * 2.0 * np.pi)


def cylinder(potential, kind: str, radius: float, *, a: float | None = None, clamp_width: float | None = None,
             elastic=None, symbol: str | None = None) -> Atoms:
    """:func:`cylinder_atoms` with everything taken from ``potential`` (a Potential or a
    :func:`~genanalysis.potentials.load_potential` spec): a its equilibrium bcc lattice
    constant (unless given), the predictor's elastic constants those of ``elastic`` (a
    potential; default ``potential`` itself) at that a, w = 2 × the cutoff (unless given;
    at least one cutoff)."""
    from genanalysis.potentials import load_potential

    pot = load_potential(potential)
    symbol = symbol or (pot.species[0] if getattr(pot, "species", None) else "X")
    a = float(pot.equilibrium_lattice_constant("bcc") if a is None else a)
    src = pot if elastic is None else load_potential(elastic, lattice="bcc", a=a)
    w = default_clamp_width(pot, src) if clamp_width is None else clamp_width
    check_clamp_width(w, pot, src)
    return cylinder_atoms(kind, radius, a, predictor_elastic_constants(src, a, symbol), clamp_width=w, symbol=symbol)


def distances_from_line(atoms: Atoms, positions: np.ndarray | None = None) -> np.ndarray:
    """In-plane distance (Å) of every atom (of ``positions``, default the lattice sites)
    from the dislocation line ``info['core']``."""
    pos = atoms.arrays["lattice_positions"] if positions is None else np.asarray(positions)
    return np.linalg.norm(pos[:, :2] - np.asarray(atoms.info["core"])[None, :], axis=1)


def site_keys(atoms: Atoms) -> list[tuple]:
    """Each atom's lattice site relative to the line (period along the line folded in),
    rounded to 1e-6 Å: the same site has the same key in every cylinder of the same kind."""
    rel = np.array(atoms.arrays["lattice_positions"], dtype=float)
    rel[:, :2] -= np.asarray(atoms.info["core"])
    rel[:, 2] %= atoms.info["period"]
    return [tuple(r) for r in np.round(rel, 6)]


def seed_cylinder(atoms: Atoms, seed: Atoms) -> Atoms:
    """A *controlled core* start (docs/dislocations.md §4): a copy of the predictor cylinder
    ``atoms`` whose free atoms take the displacements (from their lattice sites) of the
    relaxed cylinder ``seed`` (any radius, the same kind, a and predictor) on the sites the
    two share; the clamped shell and the sites ``seed`` lacks stay at the predictor."""
    if seed.info.get("dislocation") != atoms.info.get("dislocation") or "lattice_positions" not in seed.arrays:
        raise InputError(f"seed: a relaxed {atoms.info.get('dislocation')} cylinder is needed (with its lattice "
                         f"sites), got {seed.info.get('dislocation')!r}")
    if abs(float(seed.info["a"]) - float(atoms.info["a"])) > 1e-12:
        raise InputError(f"seed: its a = {seed.info['a']} Å is not this cylinder's {atoms.info['a']} Å")
    shift = np.asarray(seed.positions) - np.asarray(seed.arrays["lattice_positions"])
    known = dict(zip(site_keys(seed), shift))
    out = atoms.copy()
    pos = out.positions.copy()
    free = ~np.asarray(out.arrays["clamped"], dtype=bool)
    lattice = out.arrays["lattice_positions"]
    for i, k in enumerate(site_keys(out)):
        if free[i] and k in known:
            pos[i] = lattice[i] + known[k]
    out.positions = pos
    return out


def excess_energy(site_energies: np.ndarray, atoms: Atoms, energy_per_atom: float, r: float) -> float:
    """(D1) Energy per length (eV/Å) of the atoms within in-plane distance ``r`` (Å) of the
    line, in excess of the perfect crystal: Σ_{|ℓ|<r} (V_ℓ − e₀) / L, L the period along
    the line, e₀ ``energy_per_atom`` (eV)."""
    inside = distances_from_line(atoms) < r
    return float(np.sum(np.asarray(site_energies)[inside] - energy_per_atom) / atoms.info["period"])


def relax_cylinder(atoms: Atoms, potential, **options):
    """Relax the free atoms of a cylinder, the clamped ones held at the predictor:
    :func:`genanalysis.defect.relax` with its stencil-Laplacian (Dirichlet) preconditioner,
    descending along negative curvature (relax's default with clamped atoms)."""
    from genanalysis.defect import relax

    return relax(atoms, potential, fixed=np.asarray(atoms.arrays["clamped"], dtype=bool), **options)


@dataclass
class DislocationResult(RelaxedCell):
    """A relaxed dislocation cylinder (the ``genanalysis defect --defect screw|edge|mixed``
    command): the predictor cylinder, the relaxation, and the energies per length (eV/Å)
    of docs/dislocations.md (D1)–(D3) over the free region (radius ``radius``, Å)."""

    energy_per_atom: float
    excess_energy: float
    elastic_prelog: float
    core_energy: float
    stability_constant: float | None = None


def core_energy(excess: float, prelog: float, radius: float, burgers: float) -> float:
    """(D3) E_core(R) = E_exc(R) − E_log · ln(R / |b|), eV/Å: the excess energy per length
    within R (D1) less the linear-elastic energy of the annulus |b| < r < R (D2)."""
    return float(excess - prelog * math.log(radius / burgers))


def solve_dislocation(potential, kind: str, radius: float, *, a: float | None = None,
                      clamp_width: float | None = None, fmax: float | None = None, max_iter: int | None = None,
                      stability: bool = False) -> DislocationResult:
    """Build the cylinder from ``potential`` (:func:`cylinder`), relax its free atoms with
    the clamped shell at the predictor, and measure the energies per length over the free
    region; ``stability``: also the stability constant (eV/Å², free atoms, Dirichlet)."""
    from genanalysis.defect import DEFAULT_FMAX, DEFAULT_MAX_ITER, perfect_energy_per_atom, stability_constant
    from genanalysis.potentials import load_potential

    pot = load_potential(potential)
    ref = cylinder(pot, kind, radius, a=a, clamp_width=clamp_width)
    rel = relax_cylinder(ref, pot, fmax=DEFAULT_FMAX if fmax is None else fmax,
                         max_iter=DEFAULT_MAX_ITER if max_iter is None else max_iter)
    a = float(ref.info["a"])
    e0 = perfect_energy_per_atom(pot, "bcc", a, 1, ref.get_chemical_symbols()[0])
    exc = excess_energy(pot.observe(rel.atoms).site_energies, ref, e0, radius)
    prelog = elastic_prelog(kind, a, np.asarray(ref.info["elastic_constants"]))
    c = stability_constant(rel.atoms, pot, ref) if stability else None
    return DislocationResult(ref, rel, e0, exc, prelog,
                             core_energy(exc, prelog, radius, float(np.linalg.norm(ref.info["burgers"]))), c)
