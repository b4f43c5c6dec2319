"""Predicted rates: each a sympy expression in the dimension d, with its status and assumptions.

A rate says ``quantity ≲ x^{exponent}`` (times ``log(x)^{log_power}`` in borderline cases)
as the variable x (the distance |ℓ| in Å, the supercell size N in lattice constants, the
core radius R in Å, the training-cell size N) grows. Exponents are dimensionless. Equation
numbers (T…) refer to docs/theory.md.

Status:

* ``theorem`` — established in the literature (source named in ``source``);
* ``derived`` — follows in a few lines from theorems; the exponent is computed here from the
  tail sums of :mod:`theory.tails`, not typed in;
* ``hypothesis`` — what the studies must test; may turn out wrong.

Sense of the prediction (used by :func:`theory.compare.judge`):

* ``bound`` — an upper bound ``≤ C x^{e}``: a measured rate *faster* than ``e`` is consistent
  (the leading coefficient can be small), a slower one contradicts it;
* ``up_to`` — a hypothesis "decreases at a rate up to ``x^{e}`` towards a floor", an upper
  bound on the N-dependent part: a measured rate equal to ``e`` on the pre-floor range
  agrees, a faster one is consistent (``faster (consistent)``), a slower one (including no
  decay) is allowed by the wording while the floor is not subtracted but is reported as
  slower (with the floor subtracted, it is the evidence against the bound).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from theory.tails import d, field_log_tail_rate, field_tail_exponent, log_tail_rate, tail_exponent

__all__ = ["Rate", "RATES", "STATUSES", "SENSES", "predicted", "get_rate", "rates_table"]

STATUSES = ("theorem", "derived", "hypothesis")
SENSES = ("bound", "up_to")


@dataclass(frozen=True)
class Rate:
    """One predicted rate ``quantity ≲ variable^{exponent}`` (exponent dimensionless)."""

    name: str
    exponent: sp.Expr
    variable: str
    quantity: str
    status: str
    sense: str
    assumptions: str
    source: str
    equation: str
    dims: tuple[int, ...] = (2, 3)
    log_power: sp.Expr = field(default_factory=lambda: sp.Integer(0))
    floor: bool = False

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status {self.status!r} of {self.name}; use one of {STATUSES}")
        if self.sense not in SENSES:
            raise ValueError(f"sense {self.sense!r} of {self.name}; use one of {SENSES}")
        extra = self.exponent.free_symbols - {d}
        if extra:
            raise ValueError(f"exponent of {self.name} must depend on d only, has {extra}")

    def value(self, dim: int) -> float:
        """The exponent at dimension ``dim`` (2 or 3, if the rate applies there)."""
        if dim not in self.dims:
            raise ValueError(
                f"rate {self.name!r} is not defined for d={dim}; it applies for d in {self.dims}"
            )
        return float(self.exponent.subs(d, dim))

    def as_dict(self) -> dict:
        """JSON-ready entry: exponent as a sympy string in d, values at d = 2, 3 (None where
        the rate does not apply), status, assumptions and the rest of the record."""
        return {
            "exponent": str(self.exponent),
            "d2": self.value(2) if 2 in self.dims else None,
            "d3": self.value(3) if 3 in self.dims else None,
            "status": self.status,
            "assumptions": self.assumptions,
            "quantity": self.quantity,
            "variable": self.variable,
            "sense": self.sense,
            "log_power": str(self.log_power),
            "floor": self.floor,
            "source": self.source,
            "equation": self.equation,
        }


_EOS = "Ehrlacher, Ortner, Shapeev, ARMA 2016"
_BO = "Braun, Ortner, SINUM 2020"
_OW = "Ortner, Wang, arXiv:2209.05366"
_WPO = "Wang, Patel, Ortner, arXiv:2311.01664"
_POINT = "point defect (vacancy or interstitial) in a Bravais lattice, d = 2 or 3; "
_STABLE = "reference equilibrium ū strongly stable; site potential smooth, finite cut-off"
_TRAIN = (
    "fixed flexible model class and fit accuracy ε; error ‖D(ū^ML − ū)‖ vs training-cell "
    "size N decreases towards a floor set by ε, with rate up to N^(-d/2) inherited from "
    "ū_N → ū (supercell_geometry) while the training data determine the far-field terms; "
)


def _rates() -> dict[str, Rate]:
    # Point-defect far field: |Dū| ≲ |ℓ|^{-d}, i.e. decay exponent p = d.
    point_tail = field_tail_exponent(d, d, 1)  # d/2 − d = −d/2, (T7)
    point_tail3 = field_tail_exponent(d, d, 2)  # d/2 − 2d = −3d/2, (T7)
    point_tail_sq = tail_exponent(2 * d, d)  # d − 2d = −d, (T5)
    # Straight dislocation: |Dū| ≲ |ℓ|^{-1} (p = 1), only d = 2.
    disl_tail = field_tail_exponent(1, d, 1)  # d/2 − 1: 0 at d = 2, the log case (T6)
    disl_tail3 = field_tail_exponent(1, d, 2)  # d/2 − 2: −1 at d = 2
    # Clamped cylinder of free radius R: the core corrector w = ū − û decays like
    # |ℓ|^{-2} log|ℓ| (EOS); the cylinder error is its tail (T20), the energy error its square.
    corr_p, corr_m = 2, 1
    geo_e, geo_m = field_log_tail_rate(corr_p, corr_m, 2, 1)  # (−1, 1): R^{-1} log R
    en_e, en_m = log_tail_rate(2 * corr_p, 2 * corr_m, 2)  # (−2, 2): R^{-2} log² R
    # Interior estimate: boundary data |w − w_∞| ~ R^{1−p} log R (|Dw| integrated once);
    # the gradient of its elastic extension at the core is that over R.
    core_e = (1 - corr_p) - 1  # −2
    _cyl = ("clamped cylinder of free radius R (clamped shell ≥ one cut-off at the linear-elastic "
            "predictor û built with the reference's own elastic constants), straight dislocation, "
            "d = 2 (anti-plane or in-plane model on a Bravais lattice); " + _STABLE + "; ")
    _bcc = ("for a 3D straight dislocation periodic along its line (the bcc W cylinders of "
            "docs/dislocations.md: a 2D problem with 3 displacement components, and for the edge "
            "and mixed a multilattice) the same exponent is a hypothesis")

    rates = [
        Rate(
            "decay_point_defect", -d, "|ℓ| (Å)", "|Dū(ℓ)|", "theorem", "bound",
            _POINT + _STABLE + "; far field ū ≈ −∇G:P with elastic dipole P (BHO 2022)",
            _EOS, "(T10)",
        ),
        Rate(
            "supercell_geometry", point_tail, "N (cells)", "‖D(ū_N − ū)‖_{ℓ²(Λ_N)}",
            "theorem", "bound",
            _POINT + "periodic supercell of N^d sites, fixed cell; " + _STABLE
            + "; equals the tail (T7) of ū beyond N/2",
            _BO, "(T11)",
        ),
        Rate(
            "supercell_pointwise", -d, "N (cells)", "sup_ℓ |D(ū_N − ū)(ℓ)|", "theorem",
            "bound", _POINT + "periodic supercell, fixed cell; " + _STABLE, _BO, "(T11)",
        ),
        Rate(
            "supercell_energy", point_tail_sq, "N (cells)", "|E_N(ū_N) − E(ū)|", "theorem",
            "bound",
            _POINT + "periodic supercell, fixed cell; " + _STABLE + "; the leading term is "
            "the image interaction P:S:P/(2V), V ∝ N^d: a defect with a small dipole P can "
            "converge faster over affordable N (faster than the bound)",
            _BO, "(T11)",
        ),
        Rate(
            "far_field_force_constants", point_tail, "R (Å)",
            "ε_FC · ‖Dū‖_{ℓ²(|ℓ|>R)}", "derived", "bound",
            _POINT + "|Dū(ℓ)| ≤ C|ℓ|^(-d) (decay_point_defect) summed by (T4), (T7); "
            "ε_FC fixed (error of the homogeneous force constants)",
            _OW, "(T9)",
        ),
        Rate(
            "far_field_third_order", point_tail3, "R (Å)",
            "ε_3 · ‖|Dū|²‖_{ℓ²(|ℓ|>R)}", "derived", "bound",
            _POINT + "|Dū(ℓ)| ≤ C|ℓ|^(-d) summed by (T4), (T7) with k = 2; "
            "ε_3 fixed (third-derivative error at the lattice)",
            _OW, "(T9)",
        ),
        Rate(
            "training_size_E", -d / 2, "N (training cell)", "‖D(ū^ML − ū)‖ − floor(ε)",
            "hypothesis", "up_to",
            _TRAIN + "energies only (one scalar per N^d atoms): predicted the slowest of the "
            "five, possibly no convergence at all (a measured slope ≈ 0 is consistent with "
            "the hypothesis; −d/2 is the most it can reach)",
            _OW + "; docs/theory.md §4", "(T13)", floor=True,
        ),
        Rate(
            "training_size_EF", -d / 2, "N (training cell)", "‖D(ū^ML − ū)‖ − floor(ε)",
            "hypothesis", "up_to",
            _TRAIN + "energies + forces: the largest improvement over E; forces fix ε_core, "
            "ε_FC only through rattled cells (≈ ε_F/δ + O(δ)), so the far-field term "
            "ε_FC·(N/2)^(-d/2) is expected to set the rate N^(-d/2) before the floor",
            _OW + "; docs/theory.md §4", "(T13)", floor=True,
        ),
        Rate(
            "training_size_EFV", -d / 2, "N (training cell)", "‖D(ū^ML − ū)‖ − floor(ε)",
            "hypothesis", "up_to",
            _TRAIN + "energies + forces + virials: virials of strained perfect cells fix "
            "the elastic constants (long-wavelength force constants), which is expected "
            "to remove most of the far-field term; defect-cell virials constrain the "
            "dipole P: the floor is expected at smaller N than for EF, the N-dependence "
            "(slope up to −d/2) with a smaller prefactor",
            _OW + "; docs/theory.md §4", "(T13)", floor=True,
        ),
        Rate(
            "training_size_EFH", -d / 2, "N (training cell)", "‖D(ū^ML − ū)‖ − floor(ε)",
            "hypothesis", "up_to",
            _TRAIN + "energies + forces + force constants: H fixes ε_FC directly, removing "
            "the far-field term ε_FC R^(-d/2): small defect cells plus perfect-lattice "
            "force constants are predicted to match large defect cells, i.e. the error "
            "reaches the floor at small N (a flat curve at the floor is consistent)",
            _OW + "; docs/theory.md §4", "(T13)", floor=True,
        ),
        Rate(
            "training_size_EFVH", -d / 2, "N (training cell)", "‖D(ū^ML − ū)‖ − floor(ε)",
            "hypothesis", "up_to",
            _TRAIN + "all observations: as EFH (far-field term removed, floor reached at "
            "small N), with the lattice stress and dipole also constrained",
            _OW + "; docs/theory.md §4", "(T13)", floor=True,
        ),
        Rate(
            "decay_dislocation", sp.Integer(-1), "|ℓ| (Å)", "|Dū(ℓ)|", "theorem", "bound",
            "straight dislocation, d = 2 (anti-plane or in-plane) model; " + _STABLE,
            _EOS, "(T12)", dims=(2,),
        ),
        Rate(
            "far_field_force_constants_dislocation", disl_tail, "R (Å)",
            "ε_FC · ‖Dū‖_{ℓ²(R<|ℓ|≤L)}", "derived", "bound",
            "straight dislocation, d = 2, |Dū| ≤ C|ℓ|^(-1): the borderline case 2p = d of "
            "(T3), the tail is C·sqrt(2π log(L/R)/v), (T6): it does not decay in R and "
            "grows with the domain radius L; finite only if the long-wavelength force "
            "constants (elastic tensor, measured by virials of strained cells) are exact",
            _WPO, "(T12)", dims=(2,), log_power=sp.Rational(1, 2),
        ),
        Rate(
            "far_field_third_order_dislocation", disl_tail3, "R (Å)",
            "ε_3 · ‖|Dū|²‖_{ℓ²(|ℓ|>R)}", "derived", "bound",
            "straight dislocation, d = 2, |Dū| ≤ C|ℓ|^(-1) summed by (T4), (T7) with k = 2 "
            "(4p = 4 > d: converges)",
            _WPO, "(T12)", dims=(2,),
        ),
        Rate(
            "decay_dislocation_corrector", sp.Integer(-corr_p), "|ℓ| (Å)", "|D(ū − û)(ℓ)|",
            "theorem", "bound",
            "straight dislocation, d = 2, û the linear-elastic (Stroh) predictor with the "
            "lattice's elastic constants: the core corrector decays one order faster than ū "
            "itself, with a logarithm; " + _STABLE + "; " + _bcc,
            _EOS, "(T21)", dims=(2,), log_power=sp.Integer(corr_m),
        ),
        Rate(
            "cylinder_geometry_dislocation", sp.Integer(geo_e), "R (Å)", "‖D(ū_R − ū)‖",
            "derived", "bound",
            _cyl + "quasi-optimality of the clamped approximation (the error is bounded by "
            "the best approximation of the corrector by fields vanishing beyond R) and the "
            "tail (T20) of |D(ū − û)| ≲ |ℓ|^(-2) log|ℓ| (decay_dislocation_corrector): "
            "R^(-1) log R; the log makes the bound's local log-log slope −1 + 1/ln R, so a "
            "measured slope at or below −1 is consistent; " + _bcc,
            _EOS, "(T21)", dims=(2,), log_power=sp.Integer(geo_m),
        ),
        Rate(
            "cylinder_energy_dislocation", sp.Integer(en_e), "R (Å)",
            "E(ū_R) − E(ū) (relaxation energy from û, per length)", "derived", "bound",
            _cyl + "the energy difference from the predictor, E(ū_R) − E(û), is non-increasing "
            "in R (the admissible fields of R are admissible for R' > R) and, expanded "
            "about the minimiser ū, converges like the square of the geometry error: the "
            "tail sum (T20) of |ℓ|^(-4) log²|ℓ|, R^(-2) log² R; " + _bcc,
            _EOS, "(T21)", dims=(2,), log_power=sp.Integer(en_m),
        ),
        Rate(
            "cylinder_core_dislocation", sp.Integer(core_e), "R (Å)",
            "sup_core |D(ū_R − ū)|, E_core(r_E; ū_R) − E_core(r_E; ū) at fixed r_E",
            "hypothesis", "bound",
            _cyl + "interior estimate (not a theorem here): the error e = ū_R − ū solves the "
            "linearised equation in the cylinder with boundary values −(w − w_∞) of size "
            "R^(-1) log R varying on the scale R, so its gradient at the core is ≲ "
            "R^(-2) log R, and the core energy within a fixed r_E is linear in it (the "
            "analogue of the supercell pointwise rate N^(-d) against the ℓ² rate N^(-d/2), "
            "supercell_pointwise, which is a theorem for point defects); " + _bcc,
            _EOS + "; " + _BO + " (analogue)", "(T21)", dims=(2,), log_power=sp.Integer(1),
        ),
    ]
    return {rate.name: rate for rate in rates}


#: name -> Rate, in the order of docs/theory.md
RATES: dict[str, Rate] = _rates()


def get_rate(name: str) -> Rate:
    """The :class:`Rate` called ``name``; ValueError listing the known names otherwise."""
    try:
        return RATES[name]
    except KeyError:
        raise ValueError(
            f"unknown rate {name!r}; known rates: {', '.join(RATES)}"
        ) from None


def predicted(name: str, d: int) -> float:
    """Predicted exponent (dimensionless) of rate ``name`` in dimension ``d`` (2 or 3).

    >>> predicted("far_field_force_constants", 3)
    -1.5
    """
    if d not in (2, 3):
        raise ValueError(f"dimension d={d!r} is not supported; use d = 2 or 3")
    return get_rate(name).value(d)


def rates_table() -> dict[str, dict]:
    """All rates as the JSON object printed by ``python -m theory --json``."""
    return {name: rate.as_dict() for name, rate in RATES.items()}
