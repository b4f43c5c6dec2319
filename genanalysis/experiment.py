"""The generalisation experiment: a model's point-defect equilibrium against the reference's,
and every term of the Ortner–Wang estimate (docs/theory.md §3, (T8)–(T9); docs/experiment.md §3).

For a model, a reference and an :class:`ExperimentSpec` (lattice, a, defect, test-domain
size M, tolerances) :func:`evaluate` relaxes the reference and the model defect in the same
periodic M-cell (fixed cell) from the same start, and measures

* ``‖D(ū^ML − ū)‖`` (Å) on the stencil of the unrelaxed cell, absolute and relative to
  ``‖Dū‖``; the formation-energy error (eV, each potential with its own perfect-lattice
  energy per atom at the same ``a``); ``max_core |ū^ML − ū|`` (Å, sites within
  ``core_radius`` of the defect centre); the dipole-tensor error (eV, virials);
* the residual ``‖f^ML(ū)‖₋₁`` (eV/Å: model forces at the reference equilibrium, dual norm
  on the same stencil, docs/theory.md (T8)); the stability constants (eV/Å²) of the
  reference at ū, of the model at ū^ML, and of the model at ū (the c of (T8)); the
  effectivity ``η = ‖D(ū^ML − ū)‖ · c / ‖f^ML(ū)‖₋₁`` (T8) with c = the model's at ū, and
  ``bound_ratio = ‖D(ū^ML − ū)‖ / ((2/c)‖f^ML(ū)‖₋₁) = η/2`` (≤ 1 iff the bound holds);
* perfect-lattice errors: force constants ε_FC (eV/Å², the operator norm Ḣ¹ → Ḣ⁻¹ of the
  difference of the perfect-lattice Hessians, from their Bloch symbols; also the largest
  3×3 block), elastic constants (finite differences of virials of strained perfect cells,
  eV/Å³ and GPa in 3D, eV/Å² in 2D) and lattice stress (virial per atom, eV);
* the far-field profile of the force error at ū: ``‖(f^ML − f)(ū)·1_{|ℓ|>R}‖₋₁`` (eV/Å)
  for a few radii R, the measured counterpart of the tail terms of (T9);
* softening (:mod:`genanalysis.softening`, docs/softening.md): the force-parity slope of the
  model against the reference on the perfect M-cell and on ū rattled by each of
  ``rattle_amplitudes`` (Å), the phonon-frequency and elastic-constant ratios of the
  perfect lattice and the formation-energy ratio.

Numerical failure is a result: a model without a stable equilibrium near ū (stability
constant ≤ 0, leaving the basin: :class:`~genanalysis.exceptions.InstabilityError`; atoms
closer than half the nearest-neighbour distance: ``OverlapError``), a relaxation that does
not converge (``ConvergenceError``) or non-finite model values (``NonFiniteError``) give
``status`` and ``reason`` (:func:`classify`), and every quantity that does not need ū^ML is
still reported. Bad input raises :class:`~genanalysis.exceptions.InputError` (on building
the spec); any other exception is a bug and propagates.

Model and reference specs: everything :func:`~genanalysis.potentials.load_potential`
accepts (``builtin:NAME``, an EAM file, ``python:MODULE:CALLABLE``, a fitted-model
directory saved by ``genanalysis fit``, ``surrogate:BASE?family=F&eta=E...``), or a
Potential.

Units: Å, eV, eV/Å, eV/Å², virials eV; elastic constants eV/Å³ (3D) or eV/Å² (2D).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from dataclasses import KW_ONLY, asdict, dataclass, field

import numpy as np
import scipy.sparse.linalg as spla

from genanalysis import bloch
from genanalysis.constraints import (DEFAULT_FMAX, DEFAULT_MAX_ITER, RELAX_CONSTRAINTS, Choice, Flag, Number, Whole,
                                     check_fields, renamed)
from genanalysis.decomposition import UNITS as DECOMPOSITION_UNITS
from genanalysis.defect import formation_energy, perfect_energy_per_atom, relax, stability_mode
from genanalysis import experiment_directforce
from genanalysis.exceptions import (InputError, InstabilityError, NonFiniteError, NumericalFailure, OverlapError)
from genanalysis.forcesolve import equilibrate, has_energy
from genanalysis.jsonutil import json_ready
from genanalysis.lattice import LATTICES, atoms_dim, distances_from_centre, minimum_image
from genanalysis.norms import dual_norm, energy_norm
from genanalysis.observe import elastic_constants
from genanalysis.potentials import load_potential
from genanalysis.softening import UNITS as SOFTENING_UNITS
from genanalysis.softening import formation_energy_ratio

__all__ = [
    "UNITS",
    "EV_PER_A3_IN_GPA",
    "ExperimentSpec",
    "SolveOptions",
    "SOLVE_CONSTRAINTS",
    "validate_surrogate_point",
    "validate_evaluate_point",
    "EXPERIMENT_CONSTRAINTS",
    "ExperimentResult",
    "Problem",
    "resolve",
    "classify",
    "LatticeErrors",
    "evaluate",
    "reference_equilibrium",
    "lattice_errors",
    "force_constant_error",
    "force_constant_error_of_rows",
    "elastic_constants",
    "surrogate_task",
    "evaluate_task",
]

#: 1 eV/Å³ in GPa
EV_PER_A3_IN_GPA = 160.21766208

#: units of every reported quantity (2D elastic constants are per area: see ``units`` of a result)
UNITS = {
    "a": "Å",
    "r_stencil": "Å",
    "core_radius": "Å",
    "fmax": "eV/Å",
    "error_energy_norm": "Å",
    "reference_energy_norm": "Å",
    "relative_error": "1",
    "formation_energy_reference": "eV",
    "formation_energy_model": "eV",
    "formation_energy_error": "eV",
    "max_core_displacement_error": "Å",
    "max_displacement_error": "Å",
    "dipole_reference": "eV",
    "dipole_model": "eV",
    "dipole_error": "eV",
    "residual_dual_norm": "eV/Å",
    "reference_residual_dual_norm": "eV/Å",
    "stability_reference": "eV/Å²",
    "stability_model": "eV/Å²",
    "stability_model_at_reference": "eV/Å²",
    "a_posteriori_bound": "Å",
    "effectivity": "1",
    "bound_ratio": "1",
    "force_constant_error": "eV/Å²",
    "force_constant_error_max_block": "eV/Å²",
    "elastic_constant_error": "eV/Å³",
    "elastic_constant_error_gpa": "GPa",
    "elastic_constants_reference": "eV/Å³",
    "elastic_constants_model": "eV/Å³",
    "lattice_stress_error": "eV/atom",
    "lattice_virial_reference": "eV/atom",
    "lattice_virial_model": "eV/atom",
    "min_distance": "Å",
    "residual_profile.radius": "Å",
    "residual_profile.force_error_tail": "eV/Å",
    "model_hessian.hessian_time": "s",
    "model_hessian.hvp_time": "s",
    "model_hessian.committee_spread_max": "eV/Å²",
    "wall_time": "s",
}
UNITS.update(DECOMPOSITION_UNITS)
UNITS.update(SOFTENING_UNITS)
UNITS.update(experiment_directforce.UNITS)

#: statuses of a result
STATUSES = ("converged", "no stable equilibrium", "solver failure", "reference failure")


# --------------------------------------------------------------------------- helpers


def _displacement(atoms, start) -> np.ndarray:
    """Relaxed minus start positions (n, 3), Å, by minimum image."""
    dim = atoms_dim(start)
    return minimum_image(atoms.positions - start.positions, np.array(start.cell), dim)


def _min_distance(atoms, r_max: float) -> float:
    """Smallest interatomic distance (Å), periodic images included; ``inf`` if none < r_max."""
    from ase.neighborlist import neighbor_list

    i, j, d = neighbor_list("ijd", atoms, r_max)
    d = d[i != j] if len(d) else d
    return float(d.min()) if len(d) else math.inf


def _finite(x):
    return None if x is None or not math.isfinite(x) else float(x)


def _effectivity(error: float, residual: float, stability: float) -> float | None:
    """(T8) η = error · c / residual via :func:`theory.estimate.effectivity` (None if undefined)."""
    if not (stability and stability > 0 and residual and residual > 0 and math.isfinite(error)):
        return None
    try:
        from theory.estimate import effectivity
    except ImportError:  # pragma: no cover - theory ships with the toolkit
        return error * stability / residual
    return float(effectivity(float(error), float(residual), float(stability)))


# --------------------------------------------------------------------------- the spec


#: keys of an ``[experiment]`` sweep table that are ExperimentSpec fields
TABLE_KEYS = ("lattice", "defect", "size", "a", "fmax", "r_stencil", "start", "core_radius", "check_size",
              "stability", "max_iter", "rattle_amplitudes")

#: the accepted value of every ExperimentSpec field that needs no other field to judge it;
#: fmax and max_iter are the relaxation's own (:data:`genanalysis.constraints.RELAX_CONSTRAINTS`)
#: declarations of the solve options every experiment spec shares (:class:`SolveOptions`)
SOLVE_CONSTRAINTS = {
    "a": Number("Å", strict=True, optional=True),
    **RELAX_CONSTRAINTS,
    "start": Choice(("unrelaxed", "reference"),
                    "'unrelaxed' (the unrelaxed defect cell) or 'reference' (the reference equilibrium ū)"),
    "r_stencil": Number("Å", strict=True, optional=True),
    "core_radius": Number("Å", strict=True, optional=True),
    "stability": Flag(),
    "lattice_terms": Flag(),
    "basin_fraction": Number(maximum=10.0, strict=True),
}

EXPERIMENT_CONSTRAINTS = {
    "lattice": Choice(tuple(LATTICES)),
    "size": Whole(1, unit="cells"),
    **SOLVE_CONSTRAINTS,
}


@dataclass(frozen=True)
class SolveOptions:
    """The options of the shared stages (keyword-only), common to :class:`ExperimentSpec`
    and the dislocation spec: ``a`` (Å), ``fmax`` (eV/Å), ``max_iter``, ``start``,
    ``r_stencil`` and ``core_radius`` (Å), ``stability``, ``lattice_terms``,
    ``profile_radii`` (Å), ``basin_fraction`` and ``identifiability`` — each documented by
    the spec that uses it."""

    _: KW_ONLY
    a: float | None = None
    fmax: float = DEFAULT_FMAX
    max_iter: int = DEFAULT_MAX_ITER
    start: str = "unrelaxed"
    r_stencil: float | None = None
    core_radius: float | None = None
    stability: bool = True
    lattice_terms: bool = True
    profile_radii: tuple[float, ...] | None = None
    basin_fraction: float = 0.5
    identifiability: dict | None = None


@dataclass(frozen=True)
class ExperimentSpec(SolveOptions):
    """One generalisation experiment (docs/experiment.md §3), validated on construction.

    * ``lattice``: ``bcc``, ``fcc`` or ``triangular``; ``defect`` as in
      :func:`genanalysis.lattice.defect_cell` (stored by its canonical name); ``size``: the
      test domain M (periodic M-cell, fixed), at least the defect's smallest cell;
    * ``a`` (Å): the lattice constant; None = the reference's equilibrium value;
    * ``fmax`` (eV/Å, in (0, 1]) and ``max_iter`` (≥ 1): tolerance and iteration cap of both
      relaxations;
    * ``start``: ``"unrelaxed"`` (both from the unrelaxed defect cell) or ``"reference"``
      (the model from ū);
    * ``r_stencil`` (Å): stencil radius of the norms (None: the nearest-neighbour shell);
      ``core_radius`` (Å): region of the core displacement error (None: 2 r_nn);
    * ``check_size``: a larger M2 at which the errors are measured again (``convergence``
      of the result); True = M + max(2, M/2); None = no check;
    * ``stability``: the three stability constants and the effectivity;
      ``lattice_terms``: the perfect-lattice errors; ``profile_radii`` (Å): radii of the
      force-error tail profile (None: multiples of r_nn inside the cell; ``()``: none);
    * ``basin_fraction``: a model equilibrium whose displacement differs from ū by more
      than this fraction of r_nn at some atom has left the basin;
    * ``identifiability``: None (default) or a dict of options of
      :func:`genanalysis.identifiability.experiment_metrics` (e.g. ``{"probes": 20}``): the
      identifiability width of a linear model fitted in this process and the spreads of
      E_f and P, as metrics ``identifiability_width_<prior>`` etc.;
    * ``rattle_amplitudes`` (Å): the rattles of the force-parity profile (one sample each on
      the perfect M-cell and on ū; None: :data:`genanalysis.softening.DEFAULT_AMPLITUDES`;
      ``()``: no profile).
    """

    lattice: str
    defect: str
    size: int
    check_size: int | None = None
    rattle_amplitudes: tuple[float, ...] | None = None

    def __post_init__(self):
        from genanalysis.lattice import parse_defect, smallest_size

        check_fields(self, EXPERIMENT_CONSTRAINTS)
        try:
            defect = parse_defect(self.lattice, self.defect)
        except InputError as exc:
            raise InputError(f"defect={self.defect!r}: {exc}") from None
        object.__setattr__(self, "defect", str(defect))
        n_min = smallest_size(self.lattice, 1.0, defect)
        if self.size < n_min:
            raise InputError(f"size={self.size}: the test domain is too small for a {defect} on the {self.lattice} "
                             f"lattice; use M ≥ {n_min}")
        c = self.check_size
        if c is True:
            c = self.size + max(2, self.size // 2)
        elif c is False:
            c = None
        c = Whole(1, unit="cells", optional=True).check("check_size", c)
        if c is not None and c <= self.size:
            raise InputError(f"check_size={c} must exceed the test-domain size M = {self.size}")
        object.__setattr__(self, "check_size", c)
        if self.identifiability is not None and not isinstance(self.identifiability, dict):
            raise InputError(f"identifiability={self.identifiability!r} must be None or a dict of options")
        if self.rattle_amplitudes is not None:
            from genanalysis.softening import check_amplitudes

            object.__setattr__(self, "rattle_amplitudes", check_amplitudes(self.rattle_amplitudes, "rattle_amplitudes"))
        if self.profile_radii is not None:
            radii = self.profile_radii
            if isinstance(radii, (str, bytes)) or not hasattr(radii, "__iter__"):
                raise InputError(f"profile_radii={radii!r} must be a list of radii in Å")
            object.__setattr__(self, "profile_radii", tuple(
                Number("Å", strict=True).check(f"profile_radii[{i}]", r) for i, r in enumerate(radii)))

    @classmethod
    def from_table(cls, table, *, accepted=TABLE_KEYS, where: str = "experiment", hint: str = "",
                   **given) -> "ExperimentSpec":
        """The spec of a sweep table (its keys among ``accepted``; ``given`` fills the keys it
        leaves out, e.g. the training set's lattice). Errors name ``where.KEY``."""
        table = dict(table)
        bad = sorted(set(table) - set(accepted))
        if bad:
            raise InputError(f"{where}.{bad[0]}: unknown key{hint}; accepted: {', '.join(accepted)}")
        values = {**given, **{k: v for k, v in table.items() if k in TABLE_KEYS}}
        for k in ("lattice", "defect", "size"):
            if k not in values:
                raise InputError(f"{where}.{k}: required")
        try:
            return cls(**values)
        except InputError as exc:
            raise renamed(exc, TABLE_KEYS, lambda f: f"{where}.{f}", where) from None


# --------------------------------------------------------------------------- perfect lattice


def force_constant_error(h_model, h_reference, lap, lattice: str, n: int, dim: int) -> tuple[float, float]:
    """ε_FC of the perfect n-cell (eV/Å²): (operator norm, largest block norm).

    The operator norm is ``sup_v |⟨(H^ML − H) v, v⟩| / ‖Dv‖²`` over displacements of the
    cell, i.e. the largest |λ| of the generalised problem ΔĤ(k) x = λ L̂(k) x over the
    cell's wave vectors k (Bloch symbols of the block-circulant Hessians and the stencil
    Laplacian; translations removed at k = 0): the factor with which a displacement's
    energy norm turns into a force error's dual norm, ``‖ΔH u‖₋₁ ≤ ε_FC ‖Du‖``. The block
    norm is max over pairs (ℓ, k) of the spectral norm of the 3×3 block ΔΦ(ℓ − k); for
    cells smaller than twice the cutoff, periodic images add into the blocks.

    ``h_model``, ``h_reference``, ``lap``: operators (or matrices) on the ``dim`` components
    of each atom of the cell; :func:`force_constant_error_of_rows` takes their block rows.
    """
    def row(h):
        c = bloch.block_row(lambda v: h @ v, lattice, n, dim, stride=dim)
        if not np.all(np.isfinite(c)):
            raise NonFiniteError("the perfect-lattice force constants are not finite")
        return c

    return force_constant_error_of_rows(row(h_model), row(h_reference), row(lap), dim)


def force_constant_error_of_rows(c_model: np.ndarray, c_reference: np.ndarray, c_laplacian: np.ndarray,
                                 dim: int) -> tuple[float, float]:
    """:func:`force_constant_error` from the block rows C(R) (grid..., m, m) of the two
    perfect-lattice Hessians (eV/Å², :func:`genanalysis.bloch.hessian_block_row`) and of the
    stencil Laplacian (dimensionless)."""
    dh = c_model - c_reference
    m = dh.shape[-1]
    nb = m // dim
    blocks = dh.reshape(dh.shape[:-2] + (nb, dim, nb, dim)).swapaxes(-3, -2)
    block_norm = float(np.linalg.norm(blocks.reshape(-1, dim, dim), ord=2, axis=(1, 2)).max())

    def inverse_sqrt(w):  # L̂^{-1/2}, the pseudo-inverse at k = 0 (translations)
        tol = 1e-10 * float(np.abs(w).max())
        return np.where(w > tol, 1.0 / np.sqrt(np.maximum(w, tol)), 0.0)

    s = bloch.symbol_function(bloch.symbol(c_laplacian), inverse_sqrt)
    a = s @ bloch.symbol(dh) @ s
    lam = np.linalg.eigvalsh(0.5 * (a + np.conj(a.swapaxes(-1, -2))))
    return float(np.abs(lam).max()), block_norm


@dataclass(frozen=True)
class LatticeErrors:
    """Perfect-lattice errors of a model: ε_FC (eV/Å², operator and block norms), elastic
    constants (eV/Å³ in 3D, eV/Å² in 2D; Voigt), virials per atom (eV), energies per atom (eV)."""

    force_constant_error: float | None
    force_constant_error_max_block: float | None
    elastic_constants_reference: list | None
    elastic_constants_model: list | None
    elastic_constant_error: float | None
    lattice_virial_reference: list | None
    lattice_virial_model: list | None
    lattice_stress_error: float | None
    energy_per_atom_reference: float | None
    energy_per_atom_model: float | None
    phonons: dict | None = None
    elastic_constant_ratio: float | None = None
    virial_reference: np.ndarray | None = field(default=None, repr=False)
    virial_model: np.ndarray | None = field(default=None, repr=False)
    notes: tuple = ()


def _hessian_operator(pot, atoms, dim: int) -> spla.LinearOperator:
    """Hessian products (eV/Å² · Å) of ``pot`` at ``atoms`` on the first ``dim`` components
    of each atom: the potential's matrix-free ``linearise`` (the perfect-lattice terms need
    nb·dim products, not the assembled Hessian)."""
    op = pot.linearise(atoms)
    n = len(atoms)

    def matvec(v):
        full = np.zeros((n, 3))
        full[:, :dim] = np.asarray(v, dtype=float).reshape(n, dim)
        return np.asarray(op @ full.ravel()).reshape(n, 3)[:, :dim].ravel()

    return spla.LinearOperator((n * dim, n * dim), matvec=matvec, dtype=float)


def lattice_errors(model, reference, lattice: str, a: float, n: int, *, symbol: str = "X",
                   r_stencil: float | None = None, elastic: bool = True) -> LatticeErrors:
    """Perfect-lattice terms of the estimate on the perfect n-cell at lattice constant ``a`` (Å).

    Each quantity is computed independently; force constants that are not finite leave ε_FC
    and the phonon ratios None with the reason in ``notes`` (a non-finite stress or elastic
    constant error is None). The phonon-frequency and elastic-constant ratios are those of
    :mod:`genanalysis.softening`, from the same Hessian rows and elastic constants.
    """
    from genanalysis.lattice import perfect_cell
    from genanalysis.norms import riesz_matrix, stencil
    from genanalysis.softening import elastic_constant_ratio, phonon_frequency_ratios

    cell = perfect_cell(lattice, a, n, symbol)
    dim = int(cell.info["dim"])
    N = len(cell)
    notes = []
    ev_r, ev_m = reference.observe(cell), model.observe(cell)
    vr = np.asarray(ev_r.virial, float)[:dim, :dim] / N
    vm = np.asarray(ev_m.virial, float)[:dim, :dim] / N
    res = dict(lattice_virial_reference=vr.tolist(), lattice_virial_model=vm.tolist(),
               lattice_stress_error=_finite(float(np.linalg.norm(vm - vr))),
               energy_per_atom_reference=ev_r.energy / N, energy_per_atom_model=ev_m.energy / N,
               virial_reference=np.asarray(ev_r.virial, float), virial_model=np.asarray(ev_m.virial, float))
    lap = riesz_matrix(stencil(cell, r_stencil))
    try:
        c_ref = bloch.hessian_block_row(reference, cell, lattice, n, dim)
        c_ml = bloch.hessian_block_row(model, cell, lattice, n, dim)
        op, blk = force_constant_error_of_rows(c_ml, c_ref, bloch.block_row(lambda v: lap @ v, lattice, n, dim,
                                                                            stride=dim), dim)
        res.update(force_constant_error=op, force_constant_error_max_block=blk,
                   phonons=phonon_frequency_ratios(c_ml, c_ref))
    except NonFiniteError as exc:
        notes.append(f"force constants: {exc}")
    if elastic:
        cr, cm = elastic_constants(reference, cell), elastic_constants(model, cell)
        res.update(elastic_constants_reference=cr.tolist(), elastic_constants_model=cm.tolist(),
                   elastic_constant_error=_finite(float(np.abs(cm - cr).max())),
                   elastic_constant_ratio=elastic_constant_ratio(cm, cr) if np.all(np.isfinite(cm)) else None)
    keys = [f.name for f in LatticeErrors.__dataclass_fields__.values() if f.name != "notes"]
    return LatticeErrors(**{k: res.get(k) for k in keys}, notes=tuple(notes))


# --------------------------------------------------------------------------- the experiment


@dataclass
class ExperimentResult:
    """Outcome of :func:`evaluate`. Every quantity of docs/experiment.md §3 that could be computed;
    None where it could not (see ``status``/``reason``). Units: :data:`UNITS` (and
    ``units`` of :meth:`to_dict`, which states the dimension-dependent ones)."""

    status: str
    reason: str
    model: str
    reference: str
    lattice: str
    a: float
    defect: str
    size: int
    dim: int
    n_atoms: int
    r_stencil: float
    core_radius: float
    fmax: float
    start: str
    error_energy_norm: float | None = None
    """the simulation error ‖D(ū^ML − ū)‖ on the stencil, Å (docs/experiment.md §3 names
    every metric)"""
    reference_energy_norm: float | None = None
    relative_error: float | None = None
    formation_energy_reference: float | None = None
    formation_energy_model: float | None = None
    formation_energy_error: float | None = None
    max_core_displacement_error: float | None = None
    max_displacement_error: float | None = None
    dipole_reference: list | None = None
    dipole_model: list | None = None
    dipole_error: float | None = None
    residual_dual_norm: float | None = None
    reference_residual_dual_norm: float | None = None
    stability_reference: float | None = None
    stability_model: float | None = None
    stability_model_at_reference: float | None = None
    a_posteriori_bound: float | None = None
    effectivity: float | None = None
    bound_ratio: float | None = None
    force_constant_error: float | None = None
    force_constant_error_max_block: float | None = None
    elastic_constants_reference: list | None = None
    elastic_constants_model: list | None = None
    elastic_constant_error: float | None = None
    elastic_constant_error_gpa: float | None = None
    lattice_virial_reference: list | None = None
    lattice_virial_model: list | None = None
    lattice_stress_error: float | None = None
    min_distance: float | None = None
    residual_profile: list | None = None
    parity_slope_perfect: float | None = None
    parity_slope_perfect_stderr: float | None = None
    parity_slope_defect: float | None = None
    parity_slope_defect_stderr: float | None = None
    parity_amplitude: float | None = None
    energy_ratio_perfect: float | None = None
    energy_ratio_defect: float | None = None
    parity_profile: list | None = None
    phonon_frequency_ratio: float | None = None
    phonon_frequency_ratio_min: float | None = None
    phonon_frequency_ratio_max: float | None = None
    phonon_imaginary_modes: int | None = None
    elastic_constant_ratio: float | None = None
    formation_energy_ratio: float | None = None
    reference_relaxation: dict | None = None
    """:meth:`~genanalysis.relaxation.Relaxation.summary` of ū's relaxation (``shared``: read
    from the stored reference equilibrium instead of relaxed here)"""
    model_relaxation: dict | None = None
    """the same of ū^ML's relaxation"""
    convergence: dict | None = None
    notes: list = field(default_factory=list)
    model_hessian: dict | None = None
    reference_hessian: dict | None = None
    wall_time: float | None = None
    identifiability: dict | None = None
    decomposition: dict | None = None
    #: a direct-force model's inf-sup constants, non-conservative measures and what it cannot
    #: report (:mod:`genanalysis.experiment_directforce`); None for a model with an energy
    direct_force: dict | None = None
    reference_atoms: object = field(default=None, repr=False)
    model_atoms: object = field(default=None, repr=False)
    start_atoms: object = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.status == "converged"

    def units(self) -> dict:
        u = dict(UNITS)
        if self.dim == 2:  # per area: no thickness, no GPa
            for k in ("elastic_constant_error", "elastic_constants_reference", "elastic_constants_model"):
                u[k] = "eV/Å²"
            u["elastic_constant_error_gpa"] = "GPa (3D only)"
        return u

    def to_dict(self) -> dict:
        """JSON-ready dict: every field except the Atoms, plus ``units``."""
        d = {k: v for k, v in asdict(self).items() if k not in ("reference_atoms", "model_atoms", "start_atoms")}
        d["units"] = self.units()
        return _jsonable(d)

    def metrics(self) -> dict:
        """Scalar metrics (and status/reason) for a results database row."""
        d = self.to_dict()
        keep = {k: v for k, v in d.items()
                if k in ("status", "reason") or isinstance(v, (int, float)) and not isinstance(v, bool)}
        keep.update({k: d[k] for k in ("dipole_reference", "dipole_model", "residual_profile", "parity_profile",
                                       "convergence") if d.get(k) is not None})
        keep.update(d.get("identifiability") or {})
        keep.update({k: v for k, v in (d.get("decomposition") or {}).items() if not isinstance(v, (list, dict))})
        keep.update(d.get("direct_force") or {})
        return keep


def _jsonable(obj):
    return json_ready(obj, nonfinite_as_none=True)

def _spec_name(spec) -> str:
    return spec if isinstance(spec, str) else getattr(spec, "name", type(spec).__name__)


def _default_profile_radii(r_nn: float, r_max: float) -> list[float]:
    radii = [f * r_nn for f in (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)]
    return [r for r in radii if r < r_max]


def _inscribed_width(atoms) -> float:
    """Smallest distance between opposite faces of the periodic cell (in-plane in 2D), Å."""
    dim = atoms_dim(atoms)
    cell = np.array(atoms.cell)[:dim, :dim]
    recip = np.linalg.inv(cell).T
    return float(1.0 / np.linalg.norm(recip, axis=1).max())


# --------------------------------------------------------------------------- the stages


@dataclass(frozen=True)
class Problem:
    """The resolved experiment (:func:`resolve`): the two Potentials, the lattice constant
    ``a`` (Å), the unrelaxed defect M-cell, its stencil (radius ``r_stencil``, Å), the
    nearest-neighbour distance ``r_nn`` (Å), the core radius (Å) and each site's distance
    from the defect centre (Å)."""

    spec: ExperimentSpec
    model: object
    reference: object
    a: float
    dim: int
    defect: object
    symbol: str
    cell: object
    r_stencil: float
    stencil: object
    r_nn: float
    core_radius: float
    distances: np.ndarray


def resolve(model, reference, spec: ExperimentSpec) -> Problem:
    """Stage 1: resolve both specs (:func:`~genanalysis.potentials.load_potential`; the
    model's surrogate spec takes the experiment's lattice and ``a``) and build the cell."""
    from genanalysis.lattice import check_cell, defect_cell, dimension, nearest_neighbour_distance, parse_defect
    from genanalysis.norms import stencil, stencil_radius
    from genanalysis.potentials import neighbour_radius

    ref_pot = load_potential(reference)
    defect = parse_defect(spec.lattice, spec.defect)
    a = float(ref_pot.equilibrium_lattice_constant(spec.lattice) if spec.a is None else spec.a)
    model_pot = load_potential(model, lattice=spec.lattice, a=a)
    symbol = ref_pot.species[0] if getattr(ref_pot, "species", None) else "X"
    check_cell(spec.lattice, spec.size, f"size M={spec.size}", a=a,
               radius=max(neighbour_radius(ref_pot), neighbour_radius(model_pot)))
    cell = defect_cell(spec.lattice, a, spec.size, defect, symbol)
    r_stencil = stencil_radius(spec.lattice, a) if spec.r_stencil is None else spec.r_stencil
    r_nn = nearest_neighbour_distance(spec.lattice, a)
    return Problem(spec=spec, model=model_pot, reference=ref_pot, a=a, dim=dimension(spec.lattice), defect=defect,
                   symbol=symbol, cell=cell, r_stencil=float(r_stencil), stencil=stencil(cell, r_stencil), r_nn=r_nn,
                   core_radius=2.0 * r_nn if spec.core_radius is None else spec.core_radius,
                   distances=distances_from_centre(cell))


#: what a failure of each kind makes the status, the first that applies winning: the
#: reference failing makes every comparison moot, a physics verdict beats a solver one
_STATUS_OF = (("reference", NumericalFailure, "reference failure"),
              ("model", InstabilityError, "no stable equilibrium"),
              ("model", NumericalFailure, "solver failure"))


def _resolve_stage(resolver, model, reference, spec, spec_type: type, caller: str) -> Problem:
    """The first stage of an experiment (``caller``): refuse a ``spec`` that is not a
    ``spec_type``, resolve the problem with ``resolver`` (:func:`resolve` or the
    dislocation's) and clear both potentials' caches, so that the results are bit-identical
    whichever process ran what before."""
    if not isinstance(spec, spec_type):
        raise InputError(f"{caller}() needs a spec of type {spec_type.__name__}, got {type(spec).__name__}")
    p = resolver(model, reference, spec)
    for pot in (p.reference, p.model):
        pot.clear_caches()
    return p


def classify(failures) -> tuple[str, str]:
    """(status, reason) of the numerical failures met, a list of (``"reference"`` or
    ``"model"``, :class:`~genanalysis.exceptions.NumericalFailure`) in the order met."""
    if not failures:
        return "converged", ""
    reason = "; ".join(str(exc) for _, exc in failures)
    for who, kind, status in _STATUS_OF:
        if any(w == who and isinstance(exc, kind) for w, exc in failures):
            return status, reason
    raise AssertionError(f"unclassified failures {failures!r}")  # pragma: no cover - every kind is listed


class _Failures(list):
    """The failures met so far; ``record(who)`` is a context that keeps a numerical failure
    as a result (and lets every other exception propagate)."""

    @contextlib.contextmanager
    def record(self, who: str):
        try:
            yield
        except NumericalFailure as exc:
            self.append((who, exc))


def _lattice_stage(p: Problem, res: ExperimentResult) -> LatticeErrors:
    """Stage 2: the perfect-lattice terms (they need no defect equilibrium)."""
    lat = lattice_errors(p.model, p.reference, p.spec.lattice, p.a, p.spec.size, symbol=p.symbol,
                         r_stencil=p.r_stencil)
    for k in ("force_constant_error", "force_constant_error_max_block", "elastic_constants_reference",
              "elastic_constants_model", "elastic_constant_error", "lattice_virial_reference",
              "lattice_virial_model", "lattice_stress_error", "elastic_constant_ratio"):
        setattr(res, k, getattr(lat, k))
    for k in ("phonon_frequency_ratio", "phonon_frequency_ratio_min", "phonon_frequency_ratio_max",
              "phonon_imaginary_modes"):
        setattr(res, k, (lat.phonons or {}).get(k))
    if res.elastic_constant_error is not None and p.dim == 3:
        res.elastic_constant_error_gpa = res.elastic_constant_error * EV_PER_A3_IN_GPA
    res.notes.extend(lat.notes)
    return lat


def lattice_energy_per_atom(p: Problem, lat: LatticeErrors | None, which: str) -> float:
    """The perfect lattice's energy per atom (eV) of the ``reference`` or ``model`` of the
    problem: from the lattice terms when computed, else from a perfect cell."""
    e = getattr(lat, f"energy_per_atom_{which}") if lat is not None else None
    if e is None:
        e = perfect_energy_per_atom(getattr(p, which), p.spec.lattice, p.a, p.spec.size, p.symbol)
    return e


#: bump when the meaning of a stored reference equilibrium changes
REFERENCE_EQUILIBRIUM_VERSION = 1


def reference_equilibrium(reference, spec: ExperimentSpec) -> dict:
    """The reference equilibrium ū of ``spec``'s test domain, as data only (the value a sweep
    stores once and every task on the same domain reads; docs/studies.md §1).

    Returns ``{"version", "a" (Å), "lattice", "defect", "size", "n_atoms", "fmax", "max_iter",
    "atoms" (the relaxed M-cell, no calculator), "relaxation" (:meth:`Relaxation.summary`)}``.
    A relaxation that does not converge is stored as it is; :func:`evaluate` turns it into
    ``reference failure`` as if it had relaxed ū itself."""
    from genanalysis.lattice import defect_cell, parse_defect

    ref_pot = load_potential(reference)
    a = float(ref_pot.equilibrium_lattice_constant(spec.lattice) if spec.a is None else spec.a)
    symbol = ref_pot.species[0] if getattr(ref_pot, "species", None) else "X"
    cell = defect_cell(spec.lattice, a, spec.size, parse_defect(spec.lattice, spec.defect), symbol)
    rel = relax(cell, ref_pot, fmax=spec.fmax, max_iter=spec.max_iter)
    atoms = rel.atoms.copy()
    atoms.calc = None
    return {"version": REFERENCE_EQUILIBRIUM_VERSION, "a": a, "lattice": spec.lattice, "defect": spec.defect,
            "size": spec.size, "n_atoms": len(atoms), "fmax": spec.fmax, "max_iter": spec.max_iter,
            "atoms": atoms, "relaxation": rel.summary()}


def _stored_relaxation(p: Problem, stored: dict):
    """The :class:`~genanalysis.defect.Relaxation` of a stored :func:`reference_equilibrium`,
    after checking that it belongs to this problem's test domain (else InputError)."""
    from genanalysis.defect import Relaxation

    want = {"version": REFERENCE_EQUILIBRIUM_VERSION, "lattice": p.spec.lattice, "defect": p.spec.defect,
            "size": p.spec.size, "n_atoms": len(p.cell), "fmax": p.spec.fmax, "max_iter": p.spec.max_iter}
    bad = [k for k, v in want.items() if stored.get(k) != v]
    atoms = stored.get("atoms")
    if not bad and (atoms is None or len(atoms) != len(p.cell)
                    or not np.allclose(np.asarray(atoms.cell), np.asarray(p.cell.cell), rtol=0, atol=1e-12)
                    or not np.array_equal(atoms.numbers, p.cell.numbers)):
        bad = ["atoms"]
    if bad or float(stored.get("a", float("nan"))) != p.a:
        key = bad[0] if bad else "a"
        raise InputError(f"reference_equilibrium: its {key}={stored.get(key)!r} is not this test domain's "
                         f"({want.get(key, p.a)!r}); compute it with reference_equilibrium(reference, spec)")
    s = stored["relaxation"]
    atoms = atoms.copy()
    return Relaxation(atoms=atoms, status=s["status"], converged=bool(s["converged"]), iterations=s["iterations"],
                      force_evaluations=s["force_evaluations"], hvp_evaluations=s["hvp_evaluations"],
                      max_force=s["max_force"], energy=s["energy"], wall_time=s["wall_time"],
                      preconditioner=s["preconditioner"])


def _reference_stage(p: Problem, res: ExperimentResult, lat, failures: _Failures, stored: dict | None = None):
    """Stage 3: the reference equilibrium ū (relaxed here, or the stored
    :func:`reference_equilibrium` of this domain), its energy norm, residual, formation
    energy and dipole tensor. Returns (relaxation, ū, the reference's evaluation at ū)."""
    if stored is None:
        rel = relax(p.cell, p.reference, fmax=p.spec.fmax, max_iter=p.spec.max_iter)
        res.reference_relaxation = rel.summary()
    else:
        rel = _stored_relaxation(p, stored)
        res.reference_relaxation = dict(rel.summary(), shared=True)
    res.reference_atoms = rel.atoms
    with failures.record("reference"):
        rel.check("reference relaxation")
    u_ref = _displacement(rel.atoms, p.cell)
    res.reference_energy_norm = energy_norm(u_ref, p.stencil)
    ev = p.reference.observe(rel.atoms)
    res.reference_residual_dual_norm = dual_norm(ev.forces, p.stencil)
    res.formation_energy_reference = formation_energy(rel.energy, len(p.cell), lattice_energy_per_atom(p, lat, "reference"))
    if lat is not None and lat.virial_reference is not None:
        res.dipole_reference = (np.asarray(ev.virial)[:p.dim, :p.dim] - lat.virial_reference[:p.dim, :p.dim]).tolist()
    return rel, u_ref, ev


def _identifiability_stage(p: Problem, res: ExperimentResult) -> None:
    """Stage 3b (on request): the identifiability width of a linear model at ū."""
    from genanalysis.identifiability import experiment_metrics

    try:  # a CG solve that does not converge is a result; bad options and bugs raise
        res.identifiability = experiment_metrics(getattr(p.model, "model", p.model), res, p.reference,
                                                 **dict(p.spec.identifiability))
    except FloatingPointError as exc:
        res.notes.append(f"identifiability width: {exc}")


def _finite_forces(pot, atoms, what: str) -> np.ndarray:
    f = np.asarray(pot.observe(atoms).forces, float)
    if not np.all(np.isfinite(f)):
        raise NonFiniteError(f"{what}: the model forces are not finite")
    return f


def _decomposition_stage(p: Problem, res: ExperimentResult, rel_ref, ev_ref, u_ref, f_ml, training_cells) -> None:
    """Stage 5b (with training cells): the decomposition r_test ≈ r_train + t(N) on the
    largest relaxed training cell of the test defect, the coverage distance, and the
    estimate (T9) against the measured core and far-field force errors
    (:mod:`genanalysis.decomposition`)."""
    from genanalysis.decomposition import decompose, estimate_terms
    from genanalysis.lattice import parse_defect

    out = estimate_terms(p, u_ref, f_ml, ev_ref.forces, eps_fc=res.force_constant_error,
                         stability=res.stability_model_at_reference, residual_test=res.residual_dual_norm)
    mine = [c for c in training_cells if str(parse_defect(p.spec.lattice, c.info.get("defect", "perfect")))
            == p.spec.defect]
    if mine:
        cell = max(mine, key=lambda c: int(c.info["n"]))
        out["training_cell_size"] = int(cell.info["n"])
        out.update(decompose(p.model, p.reference, p, rel_ref.atoms, f_ml, ev_ref.forces, cell,
                             residual_test=res.residual_dual_norm))
    else:
        res.notes.append(f"decomposition: no relaxed {p.spec.defect} training cell; only the estimate (T9) terms")
    res.decomposition = out


def _residual_stage(p: Problem, res: ExperimentResult, rel_ref, ev_ref, failures: _Failures):
    """Stage 4: the residual ‖f^ML(ū)‖₋₁ and the far-field profile of the force error at ū.
    Returns the model forces at ū (None if they could not be computed)."""
    f_ml = None
    with failures.record("model"):
        f_ml = _finite_forces(p.model, rel_ref.atoms, "model forces at ū")
        res.residual_dual_norm = dual_norm(f_ml, p.stencil)
        radii = (_default_profile_radii(p.r_nn, 0.5 * _inscribed_width(p.cell)) if p.spec.profile_radii is None
                 else list(p.spec.profile_radii))
        df = f_ml - np.asarray(ev_ref.forces, float)
        res.residual_profile = [
            {"radius": float(r), "force_error_tail": dual_norm(np.where((p.distances > r)[:, None], df, 0.0), p.stencil),
             "sites": int(np.sum(p.distances > r))}
            for r in radii
        ]
    return f_ml


def _stability(p: Problem, atoms, pot, notes: list, what: str, modes: list) -> float | None:
    """The stability constant (eV/Å²) at ``atoms``, or None with a note when it cannot be
    computed (non-finite Hessian, eigen-solver failure) or is not finite. ``modes``: the
    eigenvectors found so far in this experiment; the last one starts the eigen-solver (the
    three constants' lowest modes are close) and the new one is appended."""
    try:
        val, mode = stability_mode(atoms, pot, p.cell, r_stencil=p.r_stencil, guess=modes[-1] if modes else None)
    except NumericalFailure as exc:
        notes.append(f"{what}: {type(exc).__name__}: {exc}")
        return None
    modes.append(mode)
    return val if math.isfinite(val) else None


def _stability_at_reference(p: Problem, res: ExperimentResult, rel_ref, modes: list) -> None:
    """Stage 5a: stability constants at ū (reference and model) and the a-posteriori bound."""
    res.stability_reference = _stability(p, rel_ref.atoms, p.reference, res.notes, "stability of the reference", modes)
    if res.direct_force is not None:  # no energy: the inf-sup constant replaces c
        return experiment_directforce.stability_at_reference(p, res)
    res.stability_model_at_reference = _stability(p, rel_ref.atoms, p.model, res.notes, "stability of the model at ū",
                                                  modes)
    c = res.stability_model_at_reference
    if c is not None and c > 0 and res.residual_dual_norm is not None:
        res.a_posteriori_bound = 2.0 * res.residual_dual_norm / c


def _model_stage(p: Problem, res: ExperimentResult, rel_ref, failures: _Failures):
    """Stage 6: the model equilibrium ū^ML from the spec's start; None if the solver met a
    numerical failure before returning."""
    start = p.cell if p.spec.start == "unrelaxed" else rel_ref.atoms
    res.start_atoms = start
    rel = None
    with failures.record("model"):
        # a model driven out of its range (atoms on top of each other) may divide by zero:
        # that is a finding (reported below), not a warning for the user
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            rel = equilibrate(start, p.model, fmax=p.spec.fmax, max_iter=p.spec.max_iter)
    if rel is not None:
        res.model_relaxation = rel.summary()
        res.model_atoms = rel.atoms
        with failures.record("model"):
            rel.check("model relaxation")
    return rel


def _check_overlap(min_d: float, r_min: float) -> None:
    if min_d < r_min:
        raise OverlapError(f"atoms too close: {min_d:.3g} Å < half the nearest-neighbour distance {r_min:.3g} Å")


def _check_basin(max_amp: float, basin_fraction: float, r_nn: float) -> None:
    if max_amp > basin_fraction * r_nn:
        raise InstabilityError(f"left the basin of ū: max |ū^ML − ū| = {max_amp:.3g} Å > "
                               f"{basin_fraction:g} r_nn = {basin_fraction * r_nn:.3g} Å")


def _error_stage(p: Problem, res: ExperimentResult, rel_ml, u_ref, lat, failures: _Failures):
    """Stage 7: overlap and basin checks, displacement errors, ‖D(ū^ML − ū)‖, the
    formation-energy and dipole errors. Returns whether ū^ML is an equilibrium to measure."""
    finite = bool(np.all(np.isfinite(rel_ml.atoms.positions)))
    if not finite:
        res.min_distance = None
        failures.append(("model", NonFiniteError("model relaxation produced non-finite positions")))
        return False
    min_d = _min_distance(rel_ml.atoms, 0.5 * p.r_nn)
    res.min_distance = _finite(min_d)
    with failures.record("model"):
        _check_overlap(min_d, 0.5 * p.r_nn)
    du = _displacement(rel_ml.atoms, p.cell) - u_ref
    amp = np.linalg.norm(du[:, :p.dim], axis=1)
    res.max_displacement_error = float(amp.max())
    core = p.distances <= p.core_radius
    res.max_core_displacement_error = float(amp[core].max()) if core.any() else None
    with failures.record("model"):
        _check_basin(float(amp.max()), p.spec.basin_fraction, p.r_nn)
    if not rel_ml.converged:
        return False
    res.error_energy_norm = energy_norm(du, p.stencil)
    if res.reference_energy_norm and res.reference_energy_norm > 0:
        res.relative_error = res.error_energy_norm / res.reference_energy_norm
    ev = p.model.observe(rel_ml.atoms)
    res.formation_energy_model = formation_energy(rel_ml.energy, len(p.cell), lattice_energy_per_atom(p, lat, "model"))
    res.formation_energy_error = res.formation_energy_model - res.formation_energy_reference
    res.formation_energy_ratio = formation_energy_ratio(res.formation_energy_model, res.formation_energy_reference)
    if lat is not None and lat.virial_model is not None and lat.virial_reference is not None:
        res.dipole_model = (np.asarray(ev.virial)[:p.dim, :p.dim] - lat.virial_model[:p.dim, :p.dim]).tolist()
        res.dipole_error = float(np.linalg.norm(np.subtract(res.dipole_model, res.dipole_reference)))
    return True


def _softening_stage(p: Problem, res: ExperimentResult, rel_ref) -> None:
    """Stage 9: the force-parity profile of the model against the reference on the perfect
    M-cell and on ū, rattled by each of the spec's amplitudes (:mod:`genanalysis.softening`;
    one sample each, seed 0); its summary at the largest amplitude. Last, so that the
    rattled cells leave no trace in the potentials' caches before the other stages; a
    numerical failure on a rattled cell is a note (the defect experiment's status is not
    the profile's)."""
    from genanalysis.lattice import perfect_cell
    from genanalysis.softening import DEFAULT_AMPLITUDES, headline, parity_profile

    amplitudes = DEFAULT_AMPLITUDES if p.spec.rattle_amplitudes is None else p.spec.rattle_amplitudes
    if not amplitudes:
        return
    minima = {"perfect": perfect_cell(p.spec.lattice, p.a, p.spec.size, p.symbol)}
    if rel_ref.converged:
        minima["defect"] = rel_ref.atoms
    try:
        res.parity_profile = parity_profile(p.model, p.reference, minima, amplitudes)
    except NumericalFailure as exc:
        res.notes.append(f"parity profile: {type(exc).__name__}: {exc}")
        return
    for cell in minima:
        for k, v in headline(res.parity_profile, cell).items():
            setattr(res, k, v)


def _effectivity_stage(p: Problem, res: ExperimentResult, rel_ml, failures: _Failures, modes: list) -> None:
    """Stage 8: the model's stability at ū^ML (≤ 0: no stable equilibrium), the
    effectivity η and the bound ratio."""
    if res.direct_force is not None:
        return experiment_directforce.stability_at_model(p, res, rel_ml, failures)
    res.stability_model = _stability(p, rel_ml.atoms, p.model, res.notes, "stability of the model at ū^ML", modes)
    with failures.record("model"):
        if res.stability_model is not None and res.stability_model <= 0:
            raise InstabilityError(f"stability constant of the model at ū^ML is {res.stability_model:.3g} eV/Å² ≤ 0")
    c = res.stability_model_at_reference
    if res.residual_dual_norm is not None and c is not None:
        res.effectivity = _effectivity(res.error_energy_norm, res.residual_dual_norm, c)
        if res.a_posteriori_bound:
            res.bound_ratio = res.error_energy_norm / res.a_posteriori_bound


def evaluate(model, reference, spec: ExperimentSpec, *, reference_equilibrium: dict | None = None,
             check_reference_equilibrium: dict | None = None, training_cells=None) -> ExperimentResult:
    """Run the generalisation experiment ``spec`` (docs/experiment.md §3) and return its result.

    ``model``/``reference``: Potentials, or specs resolved by
    :func:`~genanalysis.potentials.load_potential` (a surrogate model spec takes the
    experiment's lattice and ``a``). The stages: :func:`resolve` → perfect-lattice terms →
    reference equilibrium ū → residual at ū → stability at ū → model equilibrium ū^ML →
    errors and norms → stability at ū^ML and effectivity → the softening parity profile;
    :func:`classify` turns the
    numerical failures met on the way (:class:`~genanalysis.exceptions.NumericalFailure`)
    into ``status`` and ``reason``. Every other exception propagates.

    ``reference_equilibrium``: the stored :func:`reference_equilibrium` of this test domain
    (the same reference, lattice, a, defect, M, fmax and max_iter; checked, else InputError),
    used instead of relaxing ū again; ``check_reference_equilibrium``: the same for the
    convergence check's domain ``check_size``. ``training_cells``: the relaxed defect
    training cells ū_N (Atoms from :func:`~genanalysis.lattice.defect_cell`, relaxed with the
    reference): adds the decomposition metrics of :mod:`genanalysis.decomposition`
    (``train_residual_dual_norm``, ``transfer_term``, ``decomposition_ratio``,
    ``coverage_distance``, the estimate (T9) terms) on the largest cell of the test defect.
    """
    t0 = time.perf_counter()
    p = _resolve_stage(resolve, model, reference, spec, ExperimentSpec, "evaluate")
    res = ExperimentResult(
        status="converged", reason="", model=_spec_name(model), reference=_spec_name(reference),
        lattice=spec.lattice, a=p.a, defect=str(p.defect), size=spec.size, dim=p.dim, n_atoms=len(p.cell),
        r_stencil=p.r_stencil, core_radius=p.core_radius, fmax=spec.fmax, start=spec.start,
    )
    failures = _Failures()
    if not has_energy(p.model):
        res.direct_force = {}
    lat = _lattice_stage(p, res) if spec.lattice_terms else None
    rel_ref, u_ref, ev_ref = _reference_stage(p, res, lat, failures, reference_equilibrium)
    if spec.identifiability is not None and res.direct_force is None:
        _identifiability_stage(p, res)
    f_ml = _residual_stage(p, res, rel_ref, ev_ref, failures)
    if res.direct_force is not None and f_ml is not None:
        res.direct_force["net_force_residual"] = float(np.linalg.norm(f_ml.sum(axis=0)))
    modes: list = []
    if spec.stability:
        _stability_at_reference(p, res, rel_ref, modes)
    if training_cells is not None and f_ml is not None and rel_ref.converged:
        _decomposition_stage(p, res, rel_ref, ev_ref, u_ref, f_ml, training_cells)
    rel_ml = _model_stage(p, res, rel_ref, failures)
    if rel_ml is not None and _error_stage(p, res, rel_ml, u_ref, lat, failures) and spec.stability:
        _effectivity_stage(p, res, rel_ml, failures, modes)
    _softening_stage(p, res, rel_ref)
    if res.direct_force is not None:
        from genanalysis.models.directforce import NO_ENERGY

        experiment_directforce.not_available(res, NO_ENERGY)
    res.status, res.reason = classify(failures)
    if spec.check_size is not None:
        res.convergence = _convergence(res, p, check_reference_equilibrium)
    res.model_hessian, res.reference_hessian = _hessian_source(p.model), _hessian_source(p.reference)
    res.wall_time = time.perf_counter() - t0
    return res


def _hessian_source(pot) -> dict:
    """Where a potential's Hessians came from: a wrapped calculator's report
    (:meth:`~genanalysis.potentials.wrapper.ASECalculatorPotential.hessian_report`), else
    analytic."""
    report = getattr(pot, "hessian_report", None)
    return report() if callable(report) else {"source": "analytic"}


def _convergence(res: ExperimentResult, p: Problem, stored: dict | None = None) -> dict:
    m2 = p.spec.check_size
    big = evaluate(p.model, p.reference, dataclasses.replace(
        p.spec, a=p.a, size=m2, check_size=None, stability=False, lattice_terms=False, profile_radii=(),
        identifiability=None, rattle_amplitudes=()), reference_equilibrium=stored)
    out = {"size": m2, "status": big.status, "n_atoms": big.n_atoms}
    for k in ("error_energy_norm", "relative_error", "formation_energy_error", "residual_dual_norm",
              "max_core_displacement_error", "reference_energy_norm"):
        v1, v2 = getattr(res, k), getattr(big, k)
        out[k] = v2
        out[f"{k}_change"] = None if v1 is None or v2 is None else v2 - v1
        out[f"{k}_relative_change"] = (None if v1 is None or v2 is None or v2 == 0 else abs(v2 - v1) / abs(v2))
    return out


# --------------------------------------------------------------------------- sweep task kinds


#: keys of the experiment.surrogate / experiment.evaluate tables beside the spec's
_SURROGATE_KEYS = ("reference", "family", "eta", "scale", "width")
_EVALUATE_KEYS = ("reference", "model")


def _surrogate_spec_of(ex) -> str:
    from genanalysis.surrogates import parse_surrogate_spec

    if "family" not in ex or "eta" not in ex:
        raise InputError("experiment.family and experiment.eta are required for experiment.surrogate")
    q = f"family={ex['family']}&eta={float(ex['eta'])!r}"
    if ex.get("scale") is not None:
        q += f"&scale={float(ex['scale'])!r}"
    if ex.get("width") is not None:
        q += f"&width={float(ex['width'])!r}"
    spec = f"surrogate:{ex['reference']}?{q}"
    parse_surrogate_spec(spec)  # validates
    return spec


def _parse(params, extra: tuple[str, ...]) -> tuple[dict, ExperimentSpec]:
    """(the model/reference keys, the ExperimentSpec) of an experiment.* table: parsed and
    validated once, by the validator and the task alike."""
    table = dict(params.get("experiment", {}))
    if "reference" not in table:
        raise InputError("experiment.reference: required")
    own = {k: table.pop(k) for k in extra if k in table}
    return own, ExperimentSpec.from_table(table, accepted=TABLE_KEYS + extra, where="experiment")


def _surrogate_point(params) -> tuple[str, str, ExperimentSpec]:
    own, spec = _parse(params, _SURROGATE_KEYS)
    return _surrogate_spec_of(own), own["reference"], spec


def _evaluate_point(params) -> tuple[str, str, ExperimentSpec]:
    own, spec = _parse(params, _EVALUATE_KEYS)
    if "model" not in own:
        raise InputError("experiment.model: required for experiment.evaluate")
    return own["model"], own["reference"], spec


def surrogate_task(params, shared, ctx):
    """Sweep task ``experiment.surrogate``: ``[experiment]`` keys reference, lattice, defect,
    size, family, eta (and optionally a, scale, width, fmax, r_stencil, start, core_radius,
    check_size, stability, max_iter); returns :meth:`ExperimentResult.metrics`."""
    return evaluate(*_surrogate_point(params)).metrics()


def evaluate_task(params, shared, ctx):
    """Sweep task ``experiment.evaluate``: like ``experiment.surrogate`` with a ``model`` spec
    (any :func:`~genanalysis.potentials.load_potential` spec) instead of family/eta."""
    return evaluate(*_evaluate_point(params)).metrics()


def validate_surrogate_point(params) -> None:
    """Check a surrogate task's parameters as the task will read them (raises InputError)."""
    _surrogate_point(params)


def validate_evaluate_point(params) -> None:
    """Check an evaluate task's parameters as the task will read them (raises InputError)."""
    _evaluate_point(params)
