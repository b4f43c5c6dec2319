"""The generalisation experiment: a model's point-defect equilibrium against the reference's,
and every term of the Ortner–Wang estimate (THEORY.md §3, §6; docs/experiment.md).

For (model, reference, lattice, a, defect, test-domain size M) :func:`evaluate` relaxes the
reference and the model defect in the same periodic M-cell (fixed cell) from the same
start, and measures

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
  for a few radii R, the measured counterpart of the tail terms of (T9).

Failure is a result: a model without a stable equilibrium near ū (negative stability
constant, relaxation diverging or not converging, atoms closer than half the
nearest-neighbour distance, leaving the basin) gives ``status`` and ``reason``, and every
quantity that does not need ū^ML is still reported. Only bad input raises
(:class:`~genanalysis.exceptions.InputError`).

Model and reference specs: everything :func:`~genanalysis.potentials.load_potential`
accepts (``builtin:NAME``, an EAM file, ``python:MODULE:CALLABLE``, a fitted-model
directory saved by ``genanalysis fit``, ``surrogate:BASE?family=F&eta=E...``), or a
Potential.

Units: Å, eV, eV/Å, eV/Å², virials eV; elastic constants eV/Å³ (3D) or eV/Å² (2D).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from genanalysis.exceptions import InputError
from genanalysis.jsonutil import json_ready
from genanalysis.lattice import distances_from_centre, minimum_image
from genanalysis.potentials import load_potential

__all__ = [
    "UNITS",
    "EV_PER_A3_IN_GPA",
    "ExperimentResult",
    "LatticeErrors",
    "evaluate",
    "lattice_errors",
    "force_constant_error",
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

#: statuses of a result
STATUSES = ("converged", "no stable equilibrium", "solver failure", "reference failure")


# --------------------------------------------------------------------------- helpers


def _dim_index(n: int, dim: int) -> np.ndarray:
    return (np.arange(n)[:, None] * 3 + np.arange(dim)[None, :]).ravel()


def _displacement(atoms, start) -> np.ndarray:
    """Relaxed minus start positions (n, 3), Å, by minimum image."""
    dim = int(start.info.get("dim", 3))
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


# --------------------------------------------------------------------------- perfect lattice


def _bloch_blocks(h, lattice: str, n: int, dim: int) -> np.ndarray:
    """C(R) (grid..., m, m), m = nb·dim: the couplings between cell 0 and cell R of a periodic
    operator on the perfect n-cell (atom-major with ``dim`` components per atom)."""
    from genanalysis.lattice import site_grid

    shape, nb = site_grid(lattice, n)
    m = nb * dim
    rows = np.asarray(h[:m].toarray() if hasattr(h, "toarray") else h[:m])
    n_cells = int(np.prod(shape))
    return rows.reshape(m, n_cells, m).transpose(1, 0, 2).reshape(shape + (m, m))


def force_constant_error(h_model, h_reference, lap, lattice: str, n: int, dim: int) -> tuple[float, float]:
    """ε_FC of the perfect n-cell (eV/Å²): (operator norm, largest block norm).

    The operator norm is ``sup_v |⟨(H^ML − H) v, v⟩| / ‖Dv‖²`` over displacements of the
    cell, i.e. the largest |λ| of the generalised problem ΔĤ(k) x = λ L̂(k) x over the
    cell's wave vectors k (Bloch symbols of the block-circulant Hessians and the stencil
    Laplacian; translations removed at k = 0): the factor with which a displacement's
    energy norm turns into a force error's dual norm, ``‖ΔH u‖₋₁ ≤ ε_FC ‖Du‖``. The block
    norm is max over pairs (ℓ, k) of the spectral norm of the 3×3 block ΔΦ(ℓ − k); for
    cells smaller than twice the cutoff, periodic images add into the blocks.
    """
    dh = _bloch_blocks(h_model, lattice, n, dim) - _bloch_blocks(h_reference, lattice, n, dim)
    lb = _bloch_blocks(lap, lattice, n, dim)
    axes = tuple(range(dh.ndim - 2))
    m = dh.shape[-1]
    nb = m // dim
    blocks = dh.reshape(dh.shape[:-2] + (nb, dim, nb, dim)).swapaxes(-3, -2)
    block_norm = float(np.linalg.norm(blocks.reshape(-1, dim, dim), ord=2, axis=(1, 2)).max())
    dk = np.fft.fftn(dh, axes=axes).reshape(-1, m, m)
    lk = np.fft.fftn(lb, axes=axes).reshape(-1, m, m)
    dk = 0.5 * (dk + np.conj(dk.swapaxes(-1, -2)))
    lk = 0.5 * (lk + np.conj(lk.swapaxes(-1, -2)))
    w, v = np.linalg.eigh(lk)
    tol = 1e-10 * float(np.abs(w).max())
    winv = np.where(w > tol, 1.0 / np.sqrt(np.maximum(w, tol)), 0.0)
    s = np.einsum("kij,kj,klj->kil", v, winv, np.conj(v))  # L̂^{-1/2} (pseudo-inverse at k = 0)
    a = s @ dk @ s
    lam = np.linalg.eigvalsh(0.5 * (a + np.conj(a.swapaxes(-1, -2))))
    return float(np.abs(lam).max()), block_norm


def _voigt(dim: int) -> list[tuple[int, int]]:
    return [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)] if dim == 3 else [(0, 0), (1, 1), (0, 1)]


def _measure(atoms, dim: int) -> float:
    cell = np.array(atoms.cell)
    if dim == 3:
        return abs(float(np.linalg.det(cell)))
    return abs(float(np.cross(cell[0], cell[1])[2]))


def elastic_constants(potential, atoms, *, step: float = 1e-4) -> np.ndarray:
    """Stress–strain coefficients C_ab = ∂σ_a/∂ε_b (Voigt, engineering shear strains) of a
    perfect periodic cell, by central differences of the virial: σ = −virial/Ω with Ω the
    volume (3D, eV/Å³) or the in-plane area (2D, eV/Å²); strain ``step`` (dimensionless)
    applied to cell and positions (clamped ions: exact for the one-atom-per-primitive-cell
    lattices here, whose internal relaxation vanishes by inversion symmetry)."""
    dim = int(atoms.info.get("dim", 3))
    pairs = _voigt(dim)
    out = np.zeros((len(pairs), len(pairs)))
    cell0 = np.array(atoms.cell)
    pos0 = atoms.positions.copy()
    for b, (p, q) in enumerate(pairs):
        sig = []
        for sgn in (1.0, -1.0):
            eps = np.zeros((3, 3))
            h = sgn * step
            if p == q:
                eps[p, p] = h
            else:
                eps[p, q] = eps[q, p] = 0.5 * h
            f = np.eye(3) + eps
            work = atoms.copy()
            work.calc = None
            work.set_cell(cell0 @ f.T, scale_atoms=False)
            work.positions = pos0 @ f.T
            v = np.asarray(potential.evaluate(work).virial, dtype=float)
            s = -v / _measure(work, dim)
            sig.append(np.array([s[i, j] for i, j in pairs]))
        out[:, b] = (sig[0] - sig[1]) / (2.0 * step)
    return out


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
    virial_reference: np.ndarray | None = field(default=None, repr=False)
    virial_model: np.ndarray | None = field(default=None, repr=False)
    notes: tuple = ()


def lattice_errors(model, reference, lattice: str, a: float, n: int, *, symbol: str = "X",
                   r_stencil: float | None = None, elastic: bool = True) -> LatticeErrors:
    """Perfect-lattice terms of the estimate on the perfect n-cell at lattice constant ``a`` (Å).

    Each quantity is computed independently; one that fails (e.g. a model that cannot give
    a Hessian) is None with the reason in ``notes``.
    """
    from genanalysis.lattice import perfect_cell
    from genanalysis.norms import riesz_matrix, stencil

    cell = perfect_cell(lattice, a, n, symbol)
    dim = int(cell.info["dim"])
    N = len(cell)
    notes = []
    res: dict = {}
    try:
        ev_r, ev_m = reference.evaluate(cell), model.evaluate(cell)
        vr = np.asarray(ev_r.virial, float)[:dim, :dim] / N
        vm = np.asarray(ev_m.virial, float)[:dim, :dim] / N
        res.update(lattice_virial_reference=vr.tolist(), lattice_virial_model=vm.tolist(),
                   lattice_stress_error=_finite(float(np.linalg.norm(vm - vr))),
                   energy_per_atom_reference=ev_r.energy / N, energy_per_atom_model=ev_m.energy / N,
                   virial_reference=np.asarray(ev_r.virial, float), virial_model=np.asarray(ev_m.virial, float))
    except Exception as exc:  # a model failing on the perfect lattice is a result
        notes.append(f"lattice stress: {type(exc).__name__}: {exc}")
    try:
        idx = _dim_index(N, dim)
        hr = reference.hessian(cell).tocsr()[idx][:, idx]
        hm = model.hessian(cell).tocsr()[idx][:, idx]
        lap = riesz_matrix(stencil(cell, r_stencil))
        op, blk = force_constant_error(hm, hr, lap, lattice, n, dim)
        res.update(force_constant_error=op, force_constant_error_max_block=blk)
    except InputError:  # bad input (a calculator Hessian that fails its check) is not a result
        raise
    except Exception as exc:
        notes.append(f"force constants: {type(exc).__name__}: {exc}")
    if elastic:
        try:
            cr, cm = elastic_constants(reference, cell), elastic_constants(model, cell)
            res.update(elastic_constants_reference=cr.tolist(), elastic_constants_model=cm.tolist(),
                       elastic_constant_error=_finite(float(np.abs(cm - cr).max())))
        except Exception as exc:
            notes.append(f"elastic constants: {type(exc).__name__}: {exc}")
    keys = [f.name for f in LatticeErrors.__dataclass_fields__.values() if f.name != "notes"]
    return LatticeErrors(**{k: res.get(k) for k in keys}, notes=tuple(notes))


# --------------------------------------------------------------------------- the experiment


@dataclass
class ExperimentResult:
    """Outcome of :func:`evaluate`. Every quantity of THEORY.md §6 that could be computed;
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
    reference_relaxation: dict | None = None
    model_relaxation: dict | None = None
    convergence: dict | None = None
    notes: list = field(default_factory=list)
    model_hessian: dict | None = None
    reference_hessian: dict | None = None
    wall_time: float | None = None
    identifiability: dict | None = None
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
        keep.update({k: d[k] for k in ("dipole_reference", "dipole_model", "residual_profile", "convergence")
                     if d.get(k) is not None})
        keep.update(d.get("identifiability") or {})
        return keep


def _jsonable(obj):
    return json_ready(obj, nonfinite_as_none=True)

def _check_inputs(size, fmax, core_radius, start, max_iter):
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise InputError(f"test-domain size M={size!r} must be a whole number ≥ 1")
    if not (isinstance(fmax, (int, float)) and math.isfinite(fmax) and 0 < fmax <= 1.0):
        raise InputError(f"fmax={fmax!r} eV/Å must lie in (0, 1]")
    if core_radius is not None and not (math.isfinite(core_radius) and core_radius > 0):
        raise InputError(f"core_radius={core_radius!r} Å must be positive")
    if start not in ("unrelaxed", "reference"):
        raise InputError(f"start={start!r}; choose 'unrelaxed' (the unrelaxed defect cell) or 'reference' (ū)")
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise InputError(f"max_iter={max_iter!r} must be a whole number ≥ 1")


def _spec_name(spec) -> str:
    return spec if isinstance(spec, str) else getattr(spec, "name", type(spec).__name__)


def _default_profile_radii(r_nn: float, r_max: float) -> list[float]:
    radii = [f * r_nn for f in (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)]
    return [r for r in radii if r < r_max]


def evaluate(model, reference, lattice: str, a: float | None, defect: str, size: int, *,
             fmax: float = 1e-8, r_stencil: float | None = None, check_convergence: bool | int = False,
             start: str = "unrelaxed", core_radius: float | None = None, max_iter: int = 200,
             stability: bool = True, lattice_terms: bool = True, profile_radii=None,
             basin_fraction: float = 0.5, identifiability: dict | None = None) -> ExperimentResult:
    """Run the generalisation experiment (docs/experiment.md §3) and return its result.

    ``model``/``reference``: specs (:func:`~genanalysis.potentials.load_potential`) or Potentials; ``a`` the
    lattice constant in Å (None: the reference's equilibrium value); ``defect`` as in
    :func:`genanalysis.lattice.defect_cell`; ``size`` the test domain M (periodic M-cell,
    fixed). ``fmax`` (eV/Å) is the force tolerance of both relaxations; ``r_stencil`` (Å) the
    stencil radius of the norms (default: nearest-neighbour shell); ``start``
    ``"unrelaxed"`` (both from the unrelaxed defect cell) or ``"reference"`` (the model from
    ū); ``core_radius`` (Å, default 2 r_nn) the region of the core displacement error;
    ``check_convergence``: True reruns at M2 = M + max(2, M/2) (a whole number: at that M2) and
    reports the change of the errors under ``convergence``; ``stability=False`` skips the
    three stability constants (and the effectivity); ``lattice_terms=False`` skips the
    perfect-lattice errors; ``profile_radii`` (Å) the radii of the force-error tail profile
    (default multiples of r_nn inside the cell, ``()`` for none); ``basin_fraction``: a model
    equilibrium whose displacement differs from ū by more than this fraction of r_nn at
    some atom is reported as having left the basin. ``identifiability``: None (default) or
    a dict of options of :func:`genanalysis.identifiability.experiment_metrics` (e.g.
    ``{"probes": 20}``): the identifiability width of a linear model fitted in this process
    and the spreads of E_f and P, as metrics ``identifiability_width_<prior>`` etc.
    """
    from genanalysis.defect import formation_energy, relax, stability_constant
    from genanalysis.lattice import defect_cell, dimension, nearest_neighbour_distance, parse_defect
    from genanalysis.norms import dual_norm, energy_norm, stencil, stencil_radius

    t0 = time.perf_counter()
    _check_inputs(size, fmax, core_radius, start, max_iter)
    size = int(size)
    if not 0 < basin_fraction <= 10:
        raise InputError(f"basin_fraction={basin_fraction} must lie in (0, 10]")
    ref_pot = load_potential(reference)
    dim = dimension(lattice)
    spec = parse_defect(lattice, defect)
    if a is None:
        a = ref_pot.equilibrium_lattice_constant(lattice)
    a = float(a)
    if not (math.isfinite(a) and a > 0):
        raise InputError(f"lattice constant a={a} Å must be positive")
    model_pot = load_potential(model, lattice=lattice, a=a)
    symbol = ref_pot.species[0] if getattr(ref_pot, "species", None) else "X"
    cell0 = defect_cell(lattice, a, size, spec, symbol)
    if r_stencil is None:
        r_stencil = stencil_radius(lattice, a)
    r_stencil = float(r_stencil)
    if not (math.isfinite(r_stencil) and r_stencil > 0):
        raise InputError(f"r_stencil={r_stencil} Å must be positive")
    st = stencil(cell0, r_stencil)
    r_nn = nearest_neighbour_distance(lattice, a)
    core_radius = 2.0 * r_nn if core_radius is None else float(core_radius)
    res = ExperimentResult(
        status="converged", reason="", model=_spec_name(model), reference=_spec_name(reference),
        lattice=lattice, a=a, defect=str(spec), size=size, dim=dim, n_atoms=len(cell0),
        r_stencil=r_stencil, core_radius=core_radius, fmax=float(fmax), start=start,
    )
    failures: list[tuple[str, str]] = []

    # perfect-lattice terms: need no defect equilibrium
    lat = None
    if lattice_terms:
        lat = lattice_errors(model_pot, ref_pot, lattice, a, size, symbol=symbol, r_stencil=r_stencil)
        for k in ("force_constant_error", "force_constant_error_max_block", "elastic_constants_reference",
                  "elastic_constants_model", "elastic_constant_error", "lattice_virial_reference",
                  "lattice_virial_model", "lattice_stress_error"):
            setattr(res, k, getattr(lat, k))
        if res.elastic_constant_error is not None and dim == 3:
            res.elastic_constant_error_gpa = res.elastic_constant_error * EV_PER_A3_IN_GPA
        res.notes.extend(lat.notes)

    # the reference equilibrium ū
    rel_ref = relax(cell0, ref_pot, fmax=fmax, max_iter=max_iter)
    res.reference_relaxation = rel_ref.summary()
    res.reference_atoms = rel_ref.atoms
    if not rel_ref.converged:
        failures.append(("reference failure", f"reference relaxation: {rel_ref.status}"))
    u_ref = _displacement(rel_ref.atoms, cell0)
    res.reference_energy_norm = energy_norm(u_ref, st)
    ev_ref_def = ref_pot.evaluate(rel_ref.atoms)
    res.reference_residual_dual_norm = dual_norm(ev_ref_def.forces, st)
    e_atom_ref = lat.energy_per_atom_reference if lat and lat.energy_per_atom_reference is not None else None
    if e_atom_ref is None:
        from genanalysis.defect import perfect_energy_per_atom

        e_atom_ref = perfect_energy_per_atom(ref_pot, lattice, a, size, symbol)
    res.formation_energy_reference = formation_energy(rel_ref.energy, len(cell0), e_atom_ref)
    v_perf_ref = lat.virial_reference if lat is not None else None
    if v_perf_ref is not None:
        res.dipole_reference = (np.asarray(ev_ref_def.virial)[:dim, :dim] - v_perf_ref[:dim, :dim]).tolist()
    dist = distances_from_centre(cell0)
    if identifiability is not None:
        from genanalysis.identifiability import experiment_metrics

        try:  # a CG solve that does not converge is a result; bad options and bugs raise
            res.identifiability = experiment_metrics(getattr(model_pot, "model", model_pot), res, ref_pot,
                                                     **dict(identifiability))
        except FloatingPointError as exc:
            res.notes.append(f"identifiability width: {exc}")

    # residual ‖f^ML(ū)‖₋₁ and the far-field profile of the force error at ū
    try:
        f_ml = np.asarray(model_pot.evaluate(rel_ref.atoms).forces, float)
        if not np.all(np.isfinite(f_ml)):
            raise FloatingPointError("model forces at ū are not finite")
        res.residual_dual_norm = dual_norm(f_ml, st)
        radii = _default_profile_radii(r_nn, 0.5 * _inscribed_width(cell0)) if profile_radii is None else list(profile_radii)
        df = f_ml - np.asarray(ev_ref_def.forces, float)
        res.residual_profile = [
            {"radius": float(r), "force_error_tail": dual_norm(np.where((dist > r)[:, None], df, 0.0), st),
             "sites": int(np.sum(dist > r))}
            for r in radii
        ]
    except Exception as exc:
        failures.append(("solver failure", f"model forces at ū: {type(exc).__name__}: {exc}"))

    if stability:
        res.stability_reference = _safe(lambda: stability_constant(rel_ref.atoms, ref_pot, cell0, r_stencil=r_stencil),
                                        res.notes, "stability of the reference")
        res.stability_model_at_reference = _safe(
            lambda: stability_constant(rel_ref.atoms, model_pot, cell0, r_stencil=r_stencil), res.notes,
            "stability of the model at ū")
        c = res.stability_model_at_reference
        if c is not None and c > 0 and res.residual_dual_norm is not None:
            res.a_posteriori_bound = 2.0 * res.residual_dual_norm / c

    # the model equilibrium ū^ML, from the same start
    start_atoms = cell0 if start == "unrelaxed" else rel_ref.atoms
    res.start_atoms = start_atoms
    rel_ml = None
    try:
        # a model driven out of its range (atoms on top of each other) may divide by zero:
        # that is a finding (reported below), not a warning for the user
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            rel_ml = relax(start_atoms, model_pot, fmax=fmax, max_iter=max_iter)
    except InputError:
        raise
    except Exception as exc:
        failures.append(("solver failure", f"model relaxation raised {type(exc).__name__}: {exc}"))
    if rel_ml is not None:
        res.model_relaxation = rel_ml.summary()
        res.model_atoms = rel_ml.atoms
        if not rel_ml.converged:
            failures.append(("solver failure", f"model relaxation: {rel_ml.status}"))
        finite_pos = bool(np.all(np.isfinite(rel_ml.atoms.positions)))
        min_d = _min_distance(rel_ml.atoms, 0.5 * r_nn) if finite_pos else math.nan
        res.min_distance = _finite(min_d)
        if finite_pos and min_d < 0.5 * r_nn:
            failures.append(("no stable equilibrium",
                             f"atoms too close: {min_d:.3g} Å < half the nearest-neighbour distance {0.5 * r_nn:.3g} Å"))
        if finite_pos:
            u_ml = _displacement(rel_ml.atoms, cell0)
            du = u_ml - u_ref
            amp = np.linalg.norm(du[:, :dim], axis=1)
            res.max_displacement_error = float(amp.max())
            core = dist <= core_radius
            res.max_core_displacement_error = float(amp[core].max()) if core.any() else None
            if amp.max() > basin_fraction * r_nn:
                failures.append(("no stable equilibrium",
                                 f"left the basin of ū: max |ū^ML − ū| = {amp.max():.3g} Å > "
                                 f"{basin_fraction:g} r_nn = {basin_fraction * r_nn:.3g} Å"))
        if finite_pos and rel_ml.converged:  # quantities of the equilibrium ū^ML
            res.error_energy_norm = energy_norm(du, st)
            if res.reference_energy_norm and res.reference_energy_norm > 0:
                res.relative_error = res.error_energy_norm / res.reference_energy_norm
            try:
                ev_ml_def = model_pot.evaluate(rel_ml.atoms)
                e_atom_ml = lat.energy_per_atom_model if lat and lat.energy_per_atom_model is not None else None
                if e_atom_ml is None:
                    from genanalysis.defect import perfect_energy_per_atom

                    e_atom_ml = perfect_energy_per_atom(model_pot, lattice, a, size, symbol)
                res.formation_energy_model = formation_energy(rel_ml.energy, len(cell0), e_atom_ml)
                res.formation_energy_error = res.formation_energy_model - res.formation_energy_reference
                if lat is not None and lat.virial_model is not None and v_perf_ref is not None:
                    res.dipole_model = (np.asarray(ev_ml_def.virial)[:dim, :dim] - lat.virial_model[:dim, :dim]).tolist()
                    res.dipole_error = float(np.linalg.norm(np.subtract(res.dipole_model, res.dipole_reference)))
            except Exception as exc:
                res.notes.append(f"model energy at ū^ML: {type(exc).__name__}: {exc}")
            if stability and rel_ml.converged:
                res.stability_model = _safe(
                    lambda: stability_constant(rel_ml.atoms, model_pot, cell0, r_stencil=r_stencil), res.notes,
                    "stability of the model at ū^ML")
                if res.stability_model is not None and res.stability_model <= 0:
                    failures.append(("no stable equilibrium",
                                     f"stability constant of the model at ū^ML is {res.stability_model:.3g} eV/Å² ≤ 0"))
            c = res.stability_model_at_reference
            if stability and res.residual_dual_norm is not None and c is not None:
                res.effectivity = _effectivity(res.error_energy_norm, res.residual_dual_norm, c)
                if res.a_posteriori_bound:
                    res.bound_ratio = res.error_energy_norm / res.a_posteriori_bound
        if not finite_pos:
            failures.append(("solver failure", "model relaxation produced non-finite positions"))

    if failures:
        # the reference failing makes every comparison moot; a physics verdict beats a solver one
        kinds = [f[0] for f in failures]
        res.status = "reference failure" if "reference failure" in kinds else (
            "no stable equilibrium" if "no stable equilibrium" in kinds else "solver failure")
        res.reason = "; ".join(r for _, r in failures)

    if check_convergence:
        m2 = size + max(2, size // 2) if check_convergence is True else int(check_convergence)
        res.convergence = _convergence(res, model_pot, ref_pot, lattice, a, spec, m2, fmax=fmax, r_stencil=r_stencil,
                                       start=start, max_iter=max_iter, basin_fraction=basin_fraction)
    res.model_hessian, res.reference_hessian = _hessian_source(model_pot), _hessian_source(ref_pot)
    res.wall_time = time.perf_counter() - t0
    return res


def _hessian_source(pot) -> dict:
    """Where a potential's Hessians came from: a wrapped calculator's report
    (:meth:`~genanalysis.potentials.wrapper.ASECalculatorPotential.hessian_report`), else
    analytic."""
    report = getattr(pot, "hessian_report", None)
    return report() if callable(report) else {"source": "analytic"}


def _inscribed_width(atoms) -> float:
    """Smallest distance between opposite faces of the periodic cell (in-plane in 2D), Å."""
    dim = int(atoms.info.get("dim", 3))
    cell = np.array(atoms.cell)[:dim, :dim]
    recip = np.linalg.inv(cell).T
    return float(1.0 / np.linalg.norm(recip, axis=1).max())


def _safe(fn, notes, what):
    try:
        val = float(fn())
        return val if math.isfinite(val) else None
    except Exception as exc:
        notes.append(f"{what}: {type(exc).__name__}: {exc}")
        return None


def _convergence(res, model_pot, ref_pot, lattice, a, spec, m2, **kw) -> dict:
    if m2 <= res.size:
        raise InputError(f"convergence check size M2={m2} must exceed the test-domain size M={res.size}")
    big = evaluate(model_pot, ref_pot, lattice, a, str(spec), m2, check_convergence=False, stability=False,
                   lattice_terms=False, profile_radii=(), **kw)
    out = {"size": m2, "status": big.status, "n_atoms": big.n_atoms}
    for k in ("error_energy_norm", "relative_error", "formation_energy_error", "residual_dual_norm",
              "max_core_displacement_error", "reference_energy_norm"):
        v1, v2 = getattr(res, k), getattr(big, k)
        out[k] = v2
        out[f"{k}_change"] = None if v1 is None or v2 is None else v2 - v1
        out[f"{k}_relative_change"] = (None if v1 is None or v2 is None or v2 == 0 else abs(v2 - v1) / abs(v2))
    return out


# --------------------------------------------------------------------------- sweep task kinds


_EXPERIMENT_KEYS = {"model", "reference", "lattice", "a", "defect", "size", "fmax", "r_stencil", "start",
                    "core_radius", "check_size", "family", "eta", "scale", "width", "stability", "max_iter"}


def _table(params) -> dict:
    ex = dict(params.get("experiment", {}))
    bad = sorted(set(ex) - _EXPERIMENT_KEYS)
    if bad:
        raise InputError(f"experiment.{bad[0]}: unknown key; accepted: {', '.join(sorted(_EXPERIMENT_KEYS))}")
    for k in ("reference", "lattice", "defect", "size"):
        if k not in ex:
            raise InputError(f"experiment.{k}: required")
    return ex


def _surrogate_spec_of(ex) -> str:
    from genanalysis.surrogates import FAMILIES, parse_surrogate_spec

    if "family" not in ex or "eta" not in ex:
        raise InputError("experiment.family and experiment.eta are required for experiment.surrogate")
    q = f"family={ex['family']}&eta={float(ex['eta'])!r}"
    if ex.get("scale") is not None:
        q += f"&scale={float(ex['scale'])!r}"
    if ex.get("width") is not None:
        q += f"&width={float(ex['width'])!r}"
    spec = f"surrogate:{ex['reference']}?{q}"
    parse_surrogate_spec(spec)  # validates
    assert FAMILIES
    return spec


def _run_table(ex, model) -> dict:
    res = evaluate(model, ex["reference"], ex["lattice"], ex.get("a"), ex["defect"], ex["size"],
                   fmax=float(ex.get("fmax", 1e-8)), r_stencil=ex.get("r_stencil"), start=ex.get("start", "unrelaxed"),
                   core_radius=ex.get("core_radius"), check_convergence=ex.get("check_size") or False,
                   stability=bool(ex.get("stability", True)), max_iter=int(ex.get("max_iter", 200)))
    return res.metrics()


def surrogate_task(params, shared, ctx):
    """Sweep task ``experiment.surrogate``: ``[experiment]`` keys reference, lattice, defect,
    size, family, eta (and optionally a, scale, width, fmax, r_stencil, start, core_radius,
    check_size, stability, max_iter); returns :meth:`ExperimentResult.metrics`."""
    ex = _table(params)
    return _run_table(ex, _surrogate_spec_of(ex))


def evaluate_task(params, shared, ctx):
    """Sweep task ``experiment.evaluate``: like ``experiment.surrogate`` with a ``model`` spec
    (any :func:`~genanalysis.potentials.load_potential` spec) instead of family/eta."""
    ex = _table(params)
    if "model" not in ex:
        raise InputError("experiment.model: required for experiment.evaluate")
    return _run_table(ex, ex["model"])


def _validate_surrogate(params):
    ex = _table(params)
    _surrogate_spec_of(ex)
    _check_inputs(ex["size"], float(ex.get("fmax", 1e-8)), ex.get("core_radius"), ex.get("start", "unrelaxed"),
                  int(ex.get("max_iter", 200)))


def _validate_evaluate(params):
    ex = _table(params)
    if "model" not in ex:
        raise InputError("experiment.model: required for experiment.evaluate")
    _check_inputs(ex["size"], float(ex.get("fmax", 1e-8)), ex.get("core_radius"), ex.get("start", "unrelaxed"),
                  int(ex.get("max_iter", 200)))
