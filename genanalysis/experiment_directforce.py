"""The generalisation experiment of a direct-force model (no energy): the stages of
:func:`genanalysis.experiment.evaluate` that need an energy, replaced by what the model has.

Units: Å, eV/Å, eV/Å² (inf-sup constants), eV (loop work).

* stability: the inf-sup constant γ of the stiffness K = −∂F/∂x between the energy norm and
  its dual (:func:`genanalysis.forcesolve.inf_sup_constant`) at ū (``inf_sup_model_at_reference``)
  and at ū^ML (``inf_sup_model``) replaces the stability constant c; the a-posteriori bound
  (T19) is ``(2/γ)‖f^ML(ū)‖₋₁`` and the effectivity ``η = ‖D(ū^ML − ū)‖ γ / ‖f^ML(ū)‖₋₁``;
  the equilibrium ū^ML is unstable (status ``no stable equilibrium``) when γ vanishes
  (relative to the largest singular value, below 10⁻¹⁰) or an eigenvalue of K v = λ L v
  has a real part ≤ 0;
* what it lacks, measured at ū^ML (:func:`genanalysis.forcesolve.nonconservative_measures`):
  the antisymmetric part of K, the acoustic-sum-rule violation, the net force, the work
  around a closed loop; and the net force of the residual at ū;
* what it cannot report: every energy-based quantity (formation energy, dipole tensor,
  virials, elastic constants, the stability constants of the model) is None, with the
  reason in ``not_available``.
"""

from __future__ import annotations

from genanalysis.exceptions import InputError, InstabilityError, NumericalFailure
from genanalysis.forcesolve import inf_sup_constant, nonconservative_measures

__all__ = ["QUANTITIES", "UNITS", "LABELS", "ENERGY_QUANTITIES", "stability_at_reference", "stability_at_model",
           "not_available"]

#: the metrics a direct-force experiment adds: key -> (unit, words for tables and plots)
QUANTITIES = {
    "inf_sup_model_at_reference": ("eV/Å²", "inf-sup constant γ of the model at ū (T19)"),
    "inf_sup_model": ("eV/Å²", "inf-sup constant γ of the model at ū^ML"),
    "symmetric_minimum_model": ("eV/Å²", "smallest eigenvalue of the symmetrised stiffness at ū^ML"),
    "spectral_minimum_model": ("eV/Å²", "smallest real part of the stiffness spectrum at ū^ML"),
    "antisymmetric_norm_model": ("1", "antisymmetric part of the stiffness in the energy norm"),
    "antisymmetry_model": ("1", "‖½(K − Kᵀ)‖_F / ‖K‖_F at ū^ML"),
    "asr_violation_model": ("1", "acoustic-sum-rule violation of the stiffness at ū^ML"),
    "net_force_model": ("eV/Å", "net force |Σ F_i| at ū^ML"),
    "net_force_residual": ("eV/Å", "net force |Σ f^ML_i| at ū"),
    "loop_work_model": ("eV", "work of the forces around a closed loop"),
    "loop_work_predicted_model": ("eV", "loop work predicted by the antisymmetric part"),
    "loop_radius": ("Å", "radius of the closed loop"),
}
#: their units
UNITS = {k: unit for k, (unit, _) in QUANTITIES.items()}
#: their names in words (genanalysis.sweep.labels)
LABELS = {k: words for k, (_, words) in QUANTITIES.items()}

#: the result fields that need an energy
ENERGY_QUANTITIES = ("formation_energy_model", "formation_energy_error", "dipole_model", "dipole_error",
                     "stability_model", "stability_model_at_reference", "elastic_constants_model",
                     "elastic_constant_error", "elastic_constant_error_gpa", "lattice_virial_model",
                     "lattice_stress_error")


def _inf_sup(p, atoms, notes: list, what: str) -> dict | None:
    try:
        return inf_sup_constant(atoms, p.model, p.cell, r_stencil=p.r_stencil)
    except (NumericalFailure, InputError) as exc:  # too large for the dense solve, or not finite
        notes.append(f"{what}: {type(exc).__name__}: {exc}")
        return None


def stability_at_reference(p, res) -> None:
    """γ at ū and the a-posteriori bound (T19) ``2‖f^ML(ū)‖₋₁/γ``."""
    out = res.direct_force
    g = _inf_sup(p, res.reference_atoms, res.notes, "inf-sup constant of the model at ū")
    if g is None:
        return
    out["inf_sup_model_at_reference"] = g["inf_sup"]
    if g["inf_sup"] > 0 and res.residual_dual_norm is not None:
        res.a_posteriori_bound = 2.0 * res.residual_dual_norm / g["inf_sup"]


def stability_at_model(p, res, rel_ml, failures) -> None:
    """γ and the spectrum at ū^ML (unstable: InstabilityError recorded), the
    non-conservative measures there, and the effectivity with γ at ū."""
    out = res.direct_force
    g = _inf_sup(p, rel_ml.atoms, res.notes, "inf-sup constant of the model at ū^ML")
    if g is not None:
        out.update(inf_sup_model=g["inf_sup"], symmetric_minimum_model=g["symmetric_minimum"],
                   spectral_minimum_model=g["spectral_minimum"], antisymmetric_norm_model=g["antisymmetric_norm"])
        with failures.record("model"):
            if g["inf_sup"] <= 1e-10 * g["largest_singular_value"]:
                raise InstabilityError(f"inf-sup constant of the model at ū^ML is {g['inf_sup']:.3g} eV/Å²: the "
                                       "stiffness is singular")
            if g["spectral_minimum"] <= 0:
                raise InstabilityError(f"the stiffness of the model at ū^ML has an eigenvalue of real part "
                                       f"{g['spectral_minimum']:.3g} eV/Å² ≤ 0 (K v = λ L v)")
    nc = nonconservative_measures(rel_ml.atoms, p.model)
    out.update(antisymmetry_model=nc["antisymmetry"], asr_violation_model=nc["asr_violation"],
               net_force_model=nc["net_force"], loop_work_model=nc["loop_work"],
               loop_work_predicted_model=nc["loop_work_predicted"], loop_radius=nc["loop_radius"])
    gamma = out.get("inf_sup_model_at_reference")
    if gamma and res.residual_dual_norm and res.error_energy_norm is not None:
        res.effectivity = res.error_energy_norm * gamma / res.residual_dual_norm
        if res.a_posteriori_bound:
            res.bound_ratio = res.error_energy_norm / res.a_posteriori_bound


def not_available(res, reason: str) -> None:
    """Set every energy-based quantity of ``res`` to None, the reason in ``not_available``."""
    for k in ENERGY_QUANTITIES:
        setattr(res, k, None)
    res.direct_force["not_available"] = ", ".join(ENERGY_QUANTITIES) + f": {reason}"
