"""theory: the generalisation estimate and its predicted rates, symbolically (sympy).

Never imports ``genanalysis``: it is the independent half of every empirical check.

* :mod:`theory.tails` — tail sums ``Σ_{|ℓ|>R} |ℓ|^{-q}`` derived from the radial integral,
  convergence condition, rates, the logarithmic case (docs/theory.md (T1)–(T7));
* :mod:`theory.estimate` — the estimate's terms and the a-posteriori bound ((T8)–(T9));
* :mod:`theory.rates` — predicted rates with status and assumptions ((T10)–(T13));
* :mod:`theory.compare` — log-log slope fits and verdicts ((T14)–(T16)).

Command line: ``python -m theory [--json]``.
"""

from theory.compare import (
    SlopeFit,
    Verdict,
    compare,
    compare_bound,
    compare_up_to,
    fit_slope,
    judge,
)
from theory.estimate import Estimate, a_posteriori_bound, effectivity, residual_terms
from theory.rates import RATES, Rate, predicted, rates_table

__all__ = [
    "Estimate",
    "RATES",
    "Rate",
    "SlopeFit",
    "Verdict",
    "a_posteriori_bound",
    "compare",
    "compare_bound",
    "compare_up_to",
    "effectivity",
    "fit_slope",
    "judge",
    "predicted",
    "rates_table",
    "residual_terms",
]
