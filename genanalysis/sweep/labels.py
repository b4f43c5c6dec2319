"""Names in words for the metrics and fields of the built-in task kinds, for tables and plots.

A results table keeps each raw key (scripts read it) and shows beside it these words and
the unit the task kind declares (``DIR/results.md``; :func:`column_legend`). Units of the
few columns every table has, and of counts no kind declares, are here too; text columns
(a status, a reason) have none.
"""

from __future__ import annotations

from collections.abc import Mapping

from genanalysis.experiment_directforce import LABELS as DIRECT_FORCE_LABELS

__all__ = ["LABELS", "COLUMN_UNITS", "TEXT", "column_name", "column_unit"]

#: words for the quantities and fields of the built-in kinds (metric or dotted field -> words)
LABELS = {
    "error_energy_norm": "simulation error ‖D(ū^ML − ū)‖",
    "a_posteriori_bound": "bound (2/c)‖f^ML(ū)‖₋₁",
    "residual_dual_norm": "residual ‖f^ML(ū)‖₋₁",
    "relative_error": "relative error ‖D(ū^ML − ū)‖ / ‖Dū‖",
    "formation_energy_error": "formation-energy error ΔE_f^ML − ΔE_f",
    "effectivity": "effectivity η = c‖D(ū^ML − ū)‖ / ‖f^ML(ū)‖₋₁",
    "bound_ratio": "error / bound",
    "force_constant_error": "force-constant error ε_FC",
    "stability_model_at_reference": "stability constant c of the model at ū",
    "fit_rmse_F_train": "training force RMSE",
    "trainingset.size": "training cell size N",
    "trainingset.observations": "observations",
    "experiment.size": "test domain size M",
    "trainingset.fc_cells": "force-constant cell size",
    # the rest of the built-in metrics, for tables
    "point": "sweep point",
    "hash": "task hash (first 12 hex digits)",
    "seed": "seed",
    "wall_s": "task wall time",
    "status": "status",
    "reason": "why the status is not a success",
    "a": "lattice constant",
    "dim": "dimension d",
    "size": "test domain size M",
    "n_atoms": "atoms of the test domain",
    "fmax": "force tolerance of the relaxations",
    "r_stencil": "stencil radius of the energy norm",
    "core_radius": "core radius",
    "reference_energy_norm": "reference displacement ‖Dū‖",
    "reference_residual_dual_norm": "reference residual ‖f(ū)‖₋₁",
    "formation_energy_reference": "formation energy ΔE_f (reference)",
    "formation_energy_model": "formation energy ΔE_f^ML (model)",
    "max_core_displacement_error": "largest displacement error in the core",
    "max_displacement_error": "largest displacement error",
    "dipole_reference": "dipole tensor (reference)",
    "dipole_model": "dipole tensor (model)",
    "dipole_error": "dipole-tensor error",
    "stability_reference": "stability constant of the reference at ū",
    "stability_model": "stability constant of the model at ū^ML",
    "force_constant_error_max_block": "largest force-constant block error",
    "elastic_constant_error": "elastic-constant error",
    "elastic_constant_error_gpa": "elastic-constant error",
    "elastic_constants_reference": "elastic constants (reference)",
    "elastic_constants_model": "elastic constants (model)",
    "parity_slope_perfect": "force-parity slope, rattled perfect cell",
    "parity_slope_perfect_stderr": "standard error of the perfect-cell parity slope",
    "parity_slope_defect": "force-parity slope, rattled ū",
    "parity_slope_defect_stderr": "standard error of the defect-cell parity slope",
    "parity_amplitude": "rattle amplitude of the parity slopes",
    "energy_ratio_perfect": "energy above the minimum, model / reference, rattled perfect cell",
    "energy_ratio_defect": "energy above the minimum, model / reference, rattled ū",
    "phonon_frequency_ratio": "phonon frequencies ω^ML/ω (least-squares slope)",
    "phonon_frequency_ratio_min": "smallest phonon-frequency ratio",
    "phonon_frequency_ratio_max": "largest phonon-frequency ratio",
    "phonon_imaginary_modes": "imaginary phonon modes of the model",
    "elastic_constant_ratio": "elastic constants C^ML/C (least-squares slope)",
    "formation_energy_ratio": "formation-energy ratio E_f^ML / E_f",
    "lattice_stress_error": "perfect-lattice virial error",
    "lattice_virial_reference": "perfect-lattice virial (reference)",
    "lattice_virial_model": "perfect-lattice virial (model)",
    "min_distance": "smallest interatomic distance",
    "wall_time": "evaluation wall time",
    "fit_status": "fit status",
    "fit_n_params": "model parameters",
    "fit_effective_rank": "effective rank of the design",
    "fit_condition_number": "condition number of the design",
    "fit_seconds": "fit wall time",
    "fit_rmse_E_train": "training energy RMSE",
    "fit_rmse_V_train": "training virial RMSE",
    "fit_rmse_H_train": "training force-constant RMSE",
    "fit_rmse_E_validation": "validation energy RMSE",
    "fit_rmse_F_validation": "validation force RMSE",
    "fit_rmse_V_validation": "validation virial RMSE",
    "fit_rmse_H_validation": "validation force-constant RMSE",
    "ts_configurations": "training configurations",
    "ts_atoms": "training atoms",
    "ts_observed_E": "observed energies",
    "ts_observed_F": "observed force components",
    "ts_observed_V": "observed virial components",
    "ts_observed_H": "observed force-constant entries",
    "ts_observed_values": "observed values",
    "reference_work": "reference work (measured)",
    "reference_work_analytic": "reference work (counted)",
    "task_seconds": "task time",
    # the decomposition of the error over the training cell (genanalysis/decomposition.py)
    "train_residual_dual_norm": "model residual on the training cell ‖f^ML(ū_N)‖₋₁",
    "transfer_hessian_term": "transfer term t_H = ‖ΔH(ū_N)(ū_M − ū_N)‖₋₁",
    "transfer_tail_term": "tail term t_far (force error beyond the training cell)",
    "transfer_term": "transfer term t(N) = t_H + t_far",
    "decomposition_ratio": "r_test / (r_train + t(N))",
    "coverage_distance": "coverage distance δ_cov",
    "training_cell_width": "training cell width w_N",
    "training_cell_size": "training cell size N",
    "estimate_core": "estimate's core term ε_core",
    "estimate_force_constants": "estimate's force-constant term",
    "estimate_residual": "estimated residual (T9)",
    "estimate_residual_ratio": "estimated / measured residual",
    "measured_core_force_error": "measured core force error ε_core",
    "measured_far_force_error": "measured far-field force error",
    "estimate_far_field_ratio": "estimated / measured far-field term",
    "reference_tail_norm": "tail of the reference displacement ‖Dū‖ beyond R",
    "not_available": "quantities a model cannot report, with the reason",
    # a direct-force model (no energy; docs/experiment.md §7): declared with their units
    **DIRECT_FORCE_LABELS,
}

#: marks a text column (no unit)
TEXT = "text"

#: units of the columns every table has and of counts the kinds do not declare
COLUMN_UNITS = {
    "point": "1", "hash": TEXT, "seed": "1", "wall_s": "s", "status": TEXT, "reason": TEXT, "fit_status": TEXT,
    "not_available": TEXT,
    "dim": "1", "size": "cells", "n_atoms": "atoms", "fit_effective_rank": "1",
    "ts_observed_E": "values", "ts_observed_F": "values", "ts_observed_V": "values", "ts_observed_H": "values",
}


def column_name(key: str) -> str:
    """The words for ``key`` (the key itself when it has none)."""
    return LABELS.get(key, key)


def column_unit(key: str, units: Mapping[str, str]) -> str | None:
    """The unit of column ``key``: the kind's declared one, else the table's; None if unknown."""
    return units.get(key) or COLUMN_UNITS.get(key)
