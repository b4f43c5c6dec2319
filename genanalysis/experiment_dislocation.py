"""The generalisation experiment for a straight dislocation: a model's equilibrium in the
clamped cylinder against the reference's (docs/dislocations.md §3).

:func:`evaluate_dislocation` builds one cylinder (:mod:`genanalysis.dislocation`: free
radius R, clamped shell at the Stroh predictor of the reference's or the model's elastic
constants, ``elastic``), relaxes the reference and the model in it from the same start,
and runs the stages of the point-defect experiment (:mod:`genanalysis.experiment`) on it
unchanged — they honour the clamped shell through the cell's ``arrays['clamped']``:
``‖D(ū^ML − ū)‖`` (Å, fields vanishing on the clamped shell), the residual
``‖f^ML(ū)‖₋₁`` (eV/Å, dual norm on the free atoms), the stability constants (eV/Å²,
free atoms), the effectivity, ε_FC, the elastic-constant error ΔC and the lattice-stress
error (perfect n-cell, n = ``lattice_size``). Dislocation terms on top: the excess energy
per length of the free region (D1) for each potential, the prelogarithmic factor of the
predictor (D2), the core energies (D3) and the core-energy error.

Not reported for a cylinder (None): the dipole tensor (a cylinder in vacuum has no cell
virial to read it from) and the point-defect "formation energy" (the cylinder's total
energy includes its outer surface; the excess energy of the free region replaces it).

Units: Å, eV, eV/Å (forces, dual norms and energies per length alike), eV/Å².
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np

from genanalysis import experiment as ex
from genanalysis.constraints import Choice, Number, Whole, check_fields, renamed
from genanalysis.dislocation import (CYLINDER_CONSTRAINTS, check_clamp_width, core_energy, cylinder_atoms,
                                     default_clamp_width, distances_from_line, elastic_prelog, excess_energy,
                                     predictor_elastic_constants)
from genanalysis.exceptions import InputError
from genanalysis.potentials import load_potential

__all__ = ["DISLOCATION_CONSTRAINTS", "DISLOCATION_UNITS", "DislocationSpec", "DislocationExperimentResult",
           "evaluate_dislocation", "dislocation_task", "validate_dislocation_point", "TABLE_KEYS"]

#: what each DislocationSpec field accepts (the relaxation's own tolerance and cap included)
DISLOCATION_CONSTRAINTS = {
    "dislocation": CYLINDER_CONSTRAINTS["kind"],
    "radius": CYLINDER_CONSTRAINTS["radius"],
    "clamp_width": CYLINDER_CONSTRAINTS["clamp_width"],
    "elastic": Choice(("reference", "model"), "'reference' or 'model' (whose elastic constants the predictor uses)"),
    **ex.SOLVE_CONSTRAINTS,
    "start": Choice(("unrelaxed", "reference"),
                    "'unrelaxed' (the predictor cylinder) or 'reference' (the reference equilibrium ū)"),
    "energy_radius": Number("Å", strict=True, optional=True),
    "lattice_size": Whole(1, maximum=64, unit="cells"),
}

#: keys of an ``[experiment]`` table of the ``experiment.dislocation`` task kind
TABLE_KEYS = ("dislocation", "radius", "clamp_width", "elastic", "a", "fmax", "max_iter", "start", "r_stencil",
              "core_radius", "energy_radius", "lattice_size", "stability")

#: units of the dislocation terms (beside :data:`genanalysis.experiment.UNITS`)
DISLOCATION_UNITS = {
    "radius": "Å",
    "clamp_width": "Å",
    "energy_radius": "Å",
    "burgers": "Å",
    "elastic_prelog": "eV/Å",
    "excess_energy_reference": "eV/Å",
    "excess_energy_model": "eV/Å",
    "core_energy_reference": "eV/Å",
    "core_energy_model": "eV/Å",
    "core_energy_error": "eV/Å",
    "n_free": "atoms",
}


@dataclass(frozen=True)
class DislocationSpec(ex.SolveOptions):
    """One dislocation experiment (docs/dislocations.md §3), validated on construction.

    * ``dislocation``: ``screw``, ``edge`` or ``mixed`` (bcc 1/2⟨111⟩); ``radius`` R (Å) of
      the free region; ``clamp_width`` w (Å; None = 2 × the larger cutoff, at least one);
    * ``elastic``: whose elastic constants the predictor uses, ``reference`` or ``model``
      (each at the experiment's a);
    * ``a`` (Å): None = the reference's equilibrium bcc lattice constant;
    * ``fmax`` (eV/Å), ``max_iter``: of both relaxations; ``start``: the model's start,
      ``unrelaxed`` (the predictor cylinder, as the reference) or ``reference`` (ū);
    * ``r_stencil``, ``core_radius`` (Å): as for point defects; ``energy_radius`` (Å,
      ≤ R; None = R): the region of the excess and core energies (D1), (D3);
    * ``lattice_size``: the perfect n-cell of ε_FC, ΔC and the lattice stress;
    * ``stability``, ``lattice_terms``, ``basin_fraction``: as for point defects.
    """

    dislocation: str
    radius: float
    clamp_width: float | None = None
    elastic: str = "reference"
    energy_radius: float | None = None
    lattice_size: int = 4

    lattice = "bcc"

    def __post_init__(self):
        check_fields(self, DISLOCATION_CONSTRAINTS)
        if self.energy_radius is not None and self.energy_radius > self.radius:
            raise InputError(f"energy_radius={self.energy_radius:g} Å must not exceed the free radius "
                             f"R = {self.radius:g} Å")
        if self.profile_radii is not None:
            object.__setattr__(self, "profile_radii", tuple(
                Number("Å", strict=True).check(f"profile_radii[{i}]", r) for i, r in enumerate(self.profile_radii)))

    @property
    def size(self) -> int:
        """The perfect n-cell of the lattice terms (the shared stages read ``size``)."""
        return self.lattice_size

    @property
    def defect(self) -> str:
        return f"dislocation:{self.dislocation}"

    @classmethod
    def from_table(cls, table, *, accepted=TABLE_KEYS, where: str = "experiment") -> "DislocationSpec":
        """The spec of a sweep table (its keys among ``accepted``); errors name ``where.KEY``."""
        table = dict(table)
        bad = sorted(set(table) - set(accepted))
        if bad:
            raise InputError(f"{where}.{bad[0]}: unknown key; accepted: {', '.join(accepted)}")
        for k in ("dislocation", "radius"):
            if k not in table:
                raise InputError(f"{where}.{k}: required")
        try:
            return cls(**{k: v for k, v in table.items() if k in TABLE_KEYS})
        except InputError as exc:
            raise renamed(exc, TABLE_KEYS, lambda f: f"{where}.{f}", where) from None


@dataclass
class DislocationExperimentResult(ex.ExperimentResult):
    """:class:`~genanalysis.experiment.ExperimentResult` of a cylinder plus the dislocation
    terms (units :data:`DISLOCATION_UNITS`). ``size`` is the perfect n-cell of the lattice
    terms; ``n_atoms`` counts the clamped shell too, ``n_free`` the free atoms."""

    dislocation: str = ""
    radius: float | None = None
    clamp_width: float | None = None
    elastic: str = "reference"
    n_free: int | None = None
    burgers: float | None = None
    energy_radius: float | None = None
    elastic_prelog: float | None = None
    excess_energy_reference: float | None = None
    excess_energy_model: float | None = None
    core_energy_reference: float | None = None
    core_energy_model: float | None = None
    core_energy_error: float | None = None
    cylinder_relaxation_iterations: dict | None = None

    def units(self) -> dict:
        u = super().units()
        u.update(DISLOCATION_UNITS)
        u["size"] = "cells (perfect lattice terms)"
        return u


def _resolve(model, reference, spec: DislocationSpec) -> ex.Problem:
    """Stage 1: both potentials, a, the predictor's elastic constants, the cylinder and its stencil."""
    from genanalysis.lattice import nearest_neighbour_distance
    from genanalysis.norms import stencil, stencil_radius

    ref_pot = load_potential(reference)
    a = float(ref_pot.equilibrium_lattice_constant("bcc") if spec.a is None else spec.a)
    model_pot = load_potential(model, lattice="bcc", a=a)
    symbol = ref_pot.species[0] if getattr(ref_pot, "species", None) else "X"
    w = default_clamp_width(ref_pot, model_pot) if spec.clamp_width is None else spec.clamp_width
    check_clamp_width(w, ref_pot, model_pot)
    C = predictor_elastic_constants(ref_pot if spec.elastic == "reference" else model_pot, a, symbol)
    cell = cylinder_atoms(spec.dislocation, spec.radius, a, C, clamp_width=w, symbol=symbol)
    r_stencil = stencil_radius("bcc", a) if spec.r_stencil is None else spec.r_stencil
    r_nn = nearest_neighbour_distance("bcc", a)
    if spec.profile_radii is None:  # the force-error tail inside the free region
        radii = tuple(f * r_nn for f in (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0) if f * r_nn < spec.radius)
        spec = dataclasses.replace(spec, profile_radii=radii)
    return ex.Problem(spec=spec, model=model_pot, reference=ref_pot, a=a, dim=3, defect=spec.defect, symbol=symbol,
                      cell=cell, r_stencil=float(r_stencil), stencil=stencil(cell, r_stencil), r_nn=r_nn,
                      core_radius=2.0 * r_nn if spec.core_radius is None else spec.core_radius,
                      distances=distances_from_line(cell))


def _energy_stage(p: ex.Problem, res: DislocationExperimentResult, lat, rel_ref, rel_ml) -> None:
    """The excess energies per length of the free region (D1), the predictor's
    prelogarithmic factor (D2), the core energies (D3) and their error."""
    r = res.energy_radius
    b = res.burgers
    res.elastic_prelog = elastic_prelog(p.spec.dislocation, p.a, np.asarray(p.cell.info["elastic_constants"]))
    e_ref = ex.lattice_energy_per_atom(p, lat, "reference")
    res.excess_energy_reference = excess_energy(p.reference.observe(rel_ref.atoms).site_energies, p.cell, e_ref, r)
    res.core_energy_reference = core_energy(res.excess_energy_reference, res.elastic_prelog, r, b)
    if rel_ml is not None and rel_ml.converged:
        e_ml = ex.lattice_energy_per_atom(p, lat, "model")
        res.excess_energy_model = excess_energy(p.model.observe(rel_ml.atoms).site_energies, p.cell, e_ml, r)
        res.core_energy_model = core_energy(res.excess_energy_model, res.elastic_prelog, r, b)
        res.core_energy_error = res.core_energy_model - res.core_energy_reference


def evaluate_dislocation(model, reference, spec: DislocationSpec, *, seed=None) -> DislocationExperimentResult:
    """Run the dislocation experiment ``spec`` (module docstring; docs/dislocations.md §3).

    The stages are the point-defect experiment's (:func:`genanalysis.experiment.evaluate`)
    on the cylinder — lattice terms → reference equilibrium ū → residual at ū → stability
    at ū → model equilibrium ū^ML → errors → stability at ū^ML and effectivity — then the
    energies per length; numerical failures become ``status`` and ``reason``
    (:func:`genanalysis.experiment.classify`).

    ``seed``: a relaxed reference cylinder of the same kind (any R) whose displacements
    start the reference relaxation on the free sites they share (a controlled core,
    :func:`genanalysis.dislocation.seed_cylinder`); the norms still refer to the predictor."""
    t0 = time.perf_counter()
    p = ex._resolve_stage(_resolve, model, reference, spec, DislocationSpec, "evaluate_dislocation")
    cell = p.cell
    free = ~np.asarray(cell.arrays["clamped"], dtype=bool)
    res = DislocationExperimentResult(
        status="converged", reason="", model=ex._spec_name(model), reference=ex._spec_name(reference),
        lattice="bcc", a=p.a, defect=spec.defect, size=spec.lattice_size, dim=3, n_atoms=len(cell),
        r_stencil=p.r_stencil, core_radius=p.core_radius, fmax=spec.fmax, start=spec.start,
        dislocation=spec.dislocation, radius=spec.radius, clamp_width=float(cell.info["clamp_width"]),
        elastic=spec.elastic, n_free=int(free.sum()), burgers=float(np.linalg.norm(cell.info["burgers"])),
        energy_radius=spec.radius if spec.energy_radius is None else spec.energy_radius,
    )
    failures = ex._Failures()
    lat = ex._lattice_stage(p, res) if spec.lattice_terms else None
    # a cylinder in vacuum has no cell virial: no dipole tensor (the stages skip it without virials)
    lat_nv = None if lat is None else dataclasses.replace(lat, virial_reference=None, virial_model=None)
    stored = None
    if seed is not None:  # the reference relaxed from the seeded start, handed to the stage as stored
        from genanalysis.dislocation import relax_cylinder, seed_cylinder

        rel0 = relax_cylinder(seed_cylinder(cell, seed), p.reference, fmax=spec.fmax, max_iter=spec.max_iter)
        atoms0 = rel0.atoms.copy()
        atoms0.calc = None
        stored = {"version": ex.REFERENCE_EQUILIBRIUM_VERSION, "a": p.a, "lattice": "bcc", "defect": spec.defect,
                  "size": spec.size, "n_atoms": len(cell), "fmax": spec.fmax, "max_iter": spec.max_iter,
                  "atoms": atoms0, "relaxation": rel0.summary()}
    rel_ref, u_ref, ev_ref = ex._reference_stage(p, res, lat_nv, failures, stored)
    if seed is not None:
        res.reference_relaxation = dict(rel0.summary(), start="seed")
    ex._residual_stage(p, res, rel_ref, ev_ref, failures)
    modes: list = []  # each stability constant's LOBPCG starts from the previous one's mode
    if spec.stability:
        ex._stability_at_reference(p, res, rel_ref, modes)
    rel_ml = ex._model_stage(p, res, rel_ref, failures)
    if rel_ml is not None and ex._error_stage(p, res, rel_ml, u_ref, lat_nv, failures) and spec.stability:
        ex._effectivity_stage(p, res, rel_ml, failures, modes)
    if rel_ref.converged:
        _energy_stage(p, res, lat, rel_ref, rel_ml)
    # the cylinder's total energy includes its outer surface: no formation energy
    res.formation_energy_reference = res.formation_energy_model = res.formation_energy_error = None
    res.status, res.reason = ex.classify(failures)
    res.model_hessian, res.reference_hessian = ex._hessian_source(p.model), ex._hessian_source(p.reference)
    res.wall_time = time.perf_counter() - t0
    return res


# --------------------------------------------------------------------------- the sweep task kind


def _point(params) -> tuple[str, str, DislocationSpec]:
    table = dict(params.get("experiment", {}))
    own = {k: table.pop(k) for k in ("reference", "model") if k in table}
    for k in ("reference", "model"):
        if k not in own:
            raise InputError(f"experiment.{k}: required for experiment.dislocation")
    return own["model"], own["reference"], DislocationSpec.from_table(table)


def dislocation_task(params, shared, ctx):
    """Sweep task ``experiment.dislocation``: ``[experiment]`` keys reference, model,
    dislocation, radius (and optionally clamp_width, elastic, a, fmax, max_iter, start,
    r_stencil, core_radius, energy_radius, lattice_size, stability); returns the result's
    metrics."""
    return evaluate_dislocation(*_point(params)).metrics()


def validate_dislocation_point(params) -> None:
    """Check a dislocation task's parameters as the task will read them (raises InputError)."""
    _point(params)

