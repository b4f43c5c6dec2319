"""The geometry of straight dislocations in bcc that sits below the solvers: matscipy's
dislocation classes, their frame, the periodic quadrupole cell of a training set and the
clamped cylinder's atoms (docs/dislocations.md §1, §6). The cylinder taken from a potential,
its relaxation and the experiment are :mod:`genanalysis.dislocation`; this module needs only
the elastic constants as numbers, so the training-set spec and builder can use it.

Units: Å; elastic constants eV/Å³ (Voigt, cubic axes).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from ase import Atoms

from genanalysis.constraints import Choice, Number, check_arguments
from genanalysis.exceptions import InputError
from genanalysis.memory import CELL_BYTES_PER_ATOM, check_memory

__all__ = ["KINDS", "KIND_CHOICE", "QUADRUPOLE_KINDS", "check_quadrupole_kind", "quadrupole_atoms", "quadrupole_cell",
           "CYLINDER_RADIUS_PER_SIZE", "training_cylinder_radius", "training_cylinder_atoms", "CYLINDER_CONSTRAINTS",
           "cylinder_atoms", "default_clamp_width", "check_clamp_width"]

#: dislocation kind -> the matscipy class that builds it
KINDS = {"screw": "BCCScrew111Dislocation", "edge": "BCCEdge111Dislocation", "mixed": "BCCMixed111Dislocation"}

#: what a dislocation kind accepts
KIND_CHOICE = Choice(tuple(KINDS), "'screw', 'edge' or 'mixed' (the 1/2<111> dislocations of bcc)")

#: 1 eV/Å³ in GPa (matscipy takes its elastic constants in GPa)
_GPA = 160.21766208


def _matscipy_class(kind: str):
    import matscipy.dislocation as md

    kind = KIND_CHOICE.check("kind", kind)
    return getattr(md, KINDS[kind])


def _dislocation(kind: str, a: float, C: np.ndarray, symbol: str):
    cls = _matscipy_class(kind)
    C = np.asarray(C, dtype=float)
    if C.shape != (6, 6) or not np.all(np.isfinite(C)):
        raise InputError(f"elastic constants: a finite 6×6 Voigt matrix (eV/Å³) is needed, got shape {C.shape}")
    zener = 2.0 * C[3, 3] / (C[0, 0] - C[0, 1]) if C[0, 0] != C[0, 1] else math.inf
    if abs(zener - 1.0) < 1e-7:  # the sextic eigenproblem is degenerate: matscipy's field would be garbage
        raise InputError(f"elastic constants: exactly isotropic (Zener ratio 2C44/(C11−C12) = {zener:.9g}); the "
                         "Stroh predictor needs some anisotropy (|ratio − 1| ≥ 1e-7)")
    return cls(float(a), C=C * _GPA, symbol=symbol)


def _frame(disl) -> np.ndarray:
    """Rows: the cell axes as unit vectors in the cubic frame."""
    ax = np.asarray(disl.axes, dtype=float)
    return ax / np.linalg.norm(ax, axis=1)[:, None]


def estimate_cylinder_atoms(kind: str, a: float, outer: float) -> float:
    """Atoms of a cylinder of outer radius ``outer`` (Å) around a ``kind`` line, one
    period along the line (bcc, 2/a³ atoms per Å³), before the cut to whole sites."""
    period = {"screw": math.sqrt(3.0) / 2.0, "edge": math.sqrt(6.0), "mixed": math.sqrt(3.0) / 2.0}[kind] * a
    return math.pi * outer ** 2 * period / (0.5 * a ** 3)


#: free radius of the training-set cylinder of size n, in lattice constants: R_n = 2 n a
#: (n = 1, 2, 3: 6.3, 12.7, 19.0 Å for builtin:W), the cylinder's counterpart of the
#: quadrupole's 3n glide distances between cores
CYLINDER_RADIUS_PER_SIZE = 2.0

#: clamped width (in lattice constants) assumed by :func:`training_cylinder_atoms`, an
#: estimate for memory checks made before the potential (and so its cutoff) is known: twice
#: a cutoff of about two lattice constants
_ESTIMATE_CLAMP_IN_A = 4.0


def training_cylinder_radius(n: int, a: float) -> float:
    """Free radius (Å) of the clamped training-set cylinder of size ``n`` (≥ 1):
    ``CYLINDER_RADIUS_PER_SIZE · n · a``."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InputError(f"cylinder size n={n!r} must be a whole number ≥ 1")
    return CYLINDER_RADIUS_PER_SIZE * int(n) * float(a)


def training_cylinder_atoms(kind: str, n: int) -> int:
    """Estimated atoms (free and clamped) of the training-set cylinder of size ``n``, for
    memory checks before the potential is known (a clamped width of 4 a assumed)."""
    kind = KIND_CHOICE.check("kind", kind)
    return int(math.ceil(estimate_cylinder_atoms(kind, 1.0, training_cylinder_radius(n, 1.0) + _ESTIMATE_CLAMP_IN_A)))


#: dislocation kinds whose periodic quadrupole cells :func:`quadrupole_cell` builds
QUADRUPOLE_KINDS = ("screw",)

#: glide distances between the two cores of the quadrupole of size n: 3n, half the cell's
#: width along the glide direction (three glide distances per matscipy unit cell of the
#: screw), the quadrupolar arrangement in which the image stresses on each core cancel
_GLIDES_PER_SIZE = 3


def quadrupole_atoms(kind: str, n: int) -> int:
    """Atoms of the quadrupole cell of size ``n`` (36 n² for the screw)."""
    check_quadrupole_kind(kind)
    return 36 * int(n) ** 2


def check_quadrupole_kind(kind: str) -> str:
    """``kind`` if :func:`quadrupole_cell` builds it, else :class:`InputError` saying why not."""
    kind = KIND_CHOICE.check("kind", kind)
    if kind not in QUADRUPOLE_KINDS:
        raise InputError(f"dislocation:{kind}: periodic quadrupole cells are built for {', '.join(QUADRUPOLE_KINDS)} "
                         "only (the edge and mixed quadrupoles built the same way keep a large in-plane shear after "
                         "relaxation: the dipole is not kept intact; docs/dislocations.md §6); the clamped cylinders "
                         f"'dislocation-cylinder:{kind}' are built for every kind")
    return kind


def quadrupole_cell(kind: str, a: float, C: np.ndarray, n: int, symbol: str = "X") -> Atoms:
    """A periodic dislocation quadrupole cell of size ``n`` (≥ 1), unrelaxed: the
    training-set cell of a dislocation, as a DFT study would make it (docs/dislocations.md §6).

    matscipy's ``CubicCrystalDislocationQuadrupole`` places a +b/−b dipole on one glide
    plane, 3n glide distances apart (half the rhomboid cell's width: the quadrupolar
    arrangement), and sums the Stroh fields (``method='adsl'``, not self-consistent, from
    the elastic constants ``C``, Voigt, cubic axes, eV/Å³) over periodic images. Two
    corrections make the configuration periodic and free of mean shear:

    * the cell vectors v_k carry the dipole's plastic distortion, v_k ↦ v_k + b (n·v_k) d / A
      (n the glide-plane normal, d the core separation, A the cell's in-plane area), and
    * the conditionally convergent image sum leaves a spurious linear field: the measured
      mismatch u(x + v_k) − u(x) of matscipy's sum is replaced by that distortion through
      the homogeneous correction β with β v_k = t_k − (u(x + v_k) − u(x)), β along the line 0.

    Without them the relaxation releases the boundary mismatch by annihilating the dipole.
    ``info``: lattice, a, n, dim, defect ``dislocation:KIND``, dislocation, core_positions
    (Å), burgers (cell frame, Å, the second core's; the first has −b), period, quadrupole;
    ``arrays``: ``site_index`` (the quadrupole's own perfect sites), ``lattice_positions``."""
    import matscipy.dislocation as md

    kind = check_quadrupole_kind(kind)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InputError(f"quadrupole size n={n!r} must be a whole number ≥ 1")
    n = int(n)
    check_memory(f"a {kind} dislocation quadrupole of size n={n} ({quadrupole_atoms(kind, n):,} atoms)",
                 quadrupole_atoms(kind, n) * CELL_BYTES_PER_ATOM)
    C = np.asarray(C, dtype=float)
    _dislocation(kind, a, C, symbol)  # the same checks of C as the cylinder's
    quad = md.CubicCrystalDislocationQuadrupole(getattr(md, KINDS[kind]), float(a), C=C * _GPA, symbol=symbol)
    options = dict(method="adsl", self_consistent=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # matscipy's notes on small separations and on its solver
        bulk, disloc = quad.build_quadrupole(glide_separation=_GLIDES_PER_SIZE * n, verbose=False, **options)
        cell = np.array(disloc.cell)
        cores = np.asarray(disloc.info["core_positions"], dtype=float)
        # matscipy wraps the displaced atoms: the displacement itself, unwrapped in-plane
        frac = np.linalg.solve(cell.T, (disloc.positions - bulk.positions).T).T
        frac[:, :2] -= np.round(frac[:, :2])
        u = frac @ cell
        mismatch = np.zeros((3, 3))
        for k in range(2):
            uk = quad.periodic_displacements(bulk.positions + cell[k], cell[0], cell[1], cores, verbose=False,
                                             **options)
            diff = uk - u
            diff[:, 2] -= np.round(diff[:, 2] / cell[2, 2]) * cell[2, 2]  # a lattice period along the line
            mismatch[k] = np.median(diff, axis=0)
    frame = _frame(quad.left_dislocation)
    burgers = frame @ np.asarray(disloc.info["burgers_vectors"][1], dtype=float)
    area = abs(float(np.linalg.det(cell[:2, :2])))
    separation = float(cores[1, 0] - cores[0, 0])
    plastic = np.zeros((3, 3))
    for k in range(2):
        plastic[k] = burgers * cell[k, 1] * separation / area
    beta = np.linalg.solve(cell, plastic - mismatch).T  # beta @ v_k = plastic_k − mismatch_k
    atoms = Atoms(symbols=[symbol] * len(bulk), positions=bulk.positions + u + bulk.positions @ beta.T,
                  cell=cell + plastic, pbc=True)
    atoms.wrap()
    atoms.arrays["site_index"] = np.arange(len(atoms))
    atoms.arrays["lattice_positions"] = np.asarray(bulk.positions, dtype=float)
    atoms.info.update(
        lattice="bcc", a=float(a), n=n, dim=3, defect=f"dislocation:{kind}", dislocation=kind, quadrupole=True,
        core_positions=cores.tolist(), burgers=burgers.tolist(), line=[0.0, 0.0, 1.0],
        glide_separation=_GLIDES_PER_SIZE * n, period=float(cell[2, 2]),
        defect_centre=(0.5 * (cores[0] + cores[1])).tolist(),
    )
    return atoms


def distances_from_line(atoms: Atoms, positions: np.ndarray | None = None) -> np.ndarray:
    """In-plane distance (Å) of every atom (of ``positions``, default the lattice sites)
    from the dislocation line ``info['core']``."""
    pos = atoms.arrays["lattice_positions"] if positions is None else np.asarray(positions)
    return np.linalg.norm(pos[:, :2] - np.asarray(atoms.info["core"])[None, :], axis=1)


#: what a cylinder accepts: the free radius R and the clamped width w (Å)
CYLINDER_CONSTRAINTS = {
    "kind": KIND_CHOICE,
    "radius": Number("Å", strict=True, maximum=1000.0),
    "clamp_width": Number("Å", strict=True, optional=True),
}


def cylinder_atoms(kind: str, radius: float, a: float, C: np.ndarray, *, clamp_width: float,
                   symbol: str = "X") -> Atoms:
    """The clamped cylinder (module docstring) of free radius ``radius`` and clamped width
    ``clamp_width`` (Å), lattice constant ``a`` (Å), predictor from the elastic constants
    ``C`` (Voigt, cubic axes, eV/Å³). ``arrays``: ``clamped`` (bool), ``lattice_positions``
    (the perfect-crystal sites, Å). Refused beyond the available memory."""
    kind, radius, clamp_width = check_arguments(CYLINDER_CONSTRAINTS, kind=kind, radius=radius,
                                                clamp_width=clamp_width)
    if clamp_width is None:
        raise InputError("clamp_width: required (Å)")
    outer = radius + clamp_width
    n_est = estimate_cylinder_atoms(kind, a, outer)
    check_memory(f"a {kind} dislocation cylinder of radius R={radius:g} Å + clamped {clamp_width:g} Å "
                 f"(about {n_est:,.0f} atoms)", n_est * CELL_BYTES_PER_ATOM)
    disl = _dislocation(kind, a, C, symbol)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # matscipy's notes on the solver it picks
        bulk, disloc = disl.build_cylinder(outer, fix_width=clamp_width, method="adsl", verbose=False)
    core = np.asarray(disloc.info["core_positions"][0], dtype=float)
    # a box with vacuum around the cylinder: periodic along the line only
    box = np.array(disloc.cell)
    width = 2.0 * outer + 10.0
    shift = np.array([0.5 * width - core[0], 0.5 * width - core[1], 0.0])
    positions = disloc.positions + shift
    lattice = bulk.positions + shift
    rho = np.linalg.norm(lattice[:, :2] - (core[:2] + shift[:2]), axis=1)
    clamped = rho >= radius
    atoms = Atoms(symbols=[symbol] * len(positions), positions=positions,
                  cell=[[width, 0, 0], [0, width, 0], box[2]], pbc=(False, False, True))
    atoms.arrays["clamped"] = clamped
    atoms.arrays["lattice_positions"] = lattice
    frame = _frame(disl)
    atoms.info.update(
        lattice="bcc", a=float(a), dim=3, defect=f"dislocation:{kind}", dislocation=kind,
        radius=float(radius), clamp_width=float(clamp_width), core=(core[:2] + shift[:2]).tolist(),
        defect_centre=(core + shift).tolist(), burgers=(frame @ np.asarray(disl.burgers)).tolist(),
        line=[0.0, 0.0, 1.0], axes=np.asarray(disl.axes).tolist(), elastic_constants=np.asarray(C).tolist(),
        period=float(box[2, 2]),
    )
    return atoms


def _cutoff(*pots) -> float:
    cut = max(float(getattr(p, "cutoff", 0.0) or 0.0) for p in pots)
    if not (cut > 0 and math.isfinite(cut)):
        raise InputError("clamp_width: the potentials state no cutoff; give the clamped width in Å")
    return cut


def default_clamp_width(*pots) -> float:
    """Twice the largest cutoff of ``pots`` (Å): the reach of a force (module docstring)."""
    return 2.0 * _cutoff(*pots)


def check_clamp_width(width: float, *pots) -> None:
    """Refuse a clamped shell narrower than the interaction range (the largest cutoff, Å)."""
    cut = _cutoff(*pots)
    if width < cut:
        raise InputError(f"clamp_width={width:g} Å is narrower than the interaction range {cut:g} Å; use "
                         f"clamp_width ≥ {cut:g} Å (default {2 * cut:g} Å)")
