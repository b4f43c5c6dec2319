"""The Ortner–Wang generalisation estimate as an object: symbolic terms and numeric values.

Units throughout: lengths R, L, |ℓ| in Å; site volume v in Å^d; displacements and ``Dū`` in
Å; forces and the dual norm ``‖f‖_{-1}`` in eV/Å (the Riesz map is the dimensionless graph
Laplacian of the stencil); the stability constant c in eV/Å²; the error terms
``ε_core`` and ``ε_σ`` (force / site-gradient errors) in eV/Å, ``ε_FC`` (force-constant
error) in eV/Å², ``ε_3`` (third-derivative error) in eV/Å³; the decay constant C of
``|Dū(ℓ)| ≤ C |ℓ|^{-p}`` in Å^{1+p}. Equation numbers refer to docs/theory.md.

Two statements (docs/theory.md §3):

* (T8) a-posteriori bound (theorem): ``‖D(ū^ML − ū)‖ ≤ (2/c) ‖f^ML(ū)‖_{-1}``; its
  effectivity is ``η = ‖D(ū^ML − ū)‖ · c / ‖f^ML(ū)‖_{-1}`` (expected ≤ 2).
* (T9) splitting of the residual (derived):
  ``‖f^ML(ū)‖_{-1} ≲ ε_core + ε_σ √n_σ + ε_FC ‖Dū‖_{ℓ²(|ℓ|>R)} + ε_3 ‖|Dū|²‖_{ℓ²(|ℓ|>R)}``
  with the tails from (T7). The ``≲`` hides a constant that depends on the stencil only;
  the estimate sets it to one, so the effectivity of (T8) and the ratio of (T9) to a
  measured residual are what the studies report.

Use :func:`residual_terms` for the symbols and :class:`Estimate` to substitute measured
numbers::

    est = Estimate(d=3, R=6.0, c=2.1, eps_core=0.02, eps_fc=0.05, decay_constant=1.3,
                   site_volume=15.7)
    est.terms()        # {"core": ..., "lattice_stress": ..., "force_constants": ..., ...}
    est.error_bound()  # Å
"""

from __future__ import annotations

import functools
import math
import numbers
from dataclasses import asdict, dataclass

import sympy as sp

from theory import tails
from theory.tails import C, L, R, d, field_tail_norm, v

__all__ = [
    "eps_core",
    "eps_sigma",
    "n_sigma",
    "eps_fc",
    "eps_3",
    "c",
    "TERMS",
    "residual_terms",
    "residual_bound",
    "error_bound",
    "a_posteriori_bound",
    "effectivity",
    "Estimate",
]

#: core error (eV/Å), lattice-stress error (eV/Å), number of stencil-affected sites,
#: force-constant error (eV/Å²), third-order error (eV/Å³), stability constant (eV/Å²)
eps_core, eps_sigma = sp.symbols("epsilon_core epsilon_sigma", nonnegative=True)
n_sigma = sp.Symbol("n_sigma", nonnegative=True)
eps_fc, eps_3 = sp.symbols("epsilon_FC epsilon_3", nonnegative=True)
c = sp.Symbol("c", positive=True)

#: names of the terms of (T9), in order
TERMS = ("core", "lattice_stress", "force_constants", "third_order")


def residual_terms(dim=d, decay=None, *, upper=sp.oo) -> dict[str, sp.Expr]:
    """The four terms of the residual bound (T9), each in eV/Å, as sympy expressions.

    ``dim`` is d (symbol or 2/3); ``decay`` the exponent p of ``|Dū(ℓ)| ≤ C|ℓ|^{-p}``
    (default ``p = d``, a point defect, (T10)); ``upper`` the domain radius L in Å
    (``∞`` for the infinite lattice; a finite value or the symbol :data:`theory.tails.L`
    is required when ``2p ≤ d``, e.g. a dislocation ``p = 1, d = 2``, (T6)).

    * ``core``: ``ε_core`` — MLIP force error on the core environments |ℓ| ≤ R at ū;
    * ``lattice_stress``: ``ε_σ √n_σ`` — the lattice-stress (first-derivative) error
      ``ε_σ`` telescopes away on the homogeneous lattice and survives only on the ``n_σ``
      sites whose neighbourhood is not the lattice's (the core);
    * ``force_constants``: ``ε_FC · C (S_{2p}(R))^{1/2}``, (T7) with k = 1;
    * ``third_order``: ``ε_3 · C² (S_{4p}(R))^{1/2}``, (T7) with k = 2.
    """
    decay = dim if decay is None else decay
    return {
        "core": eps_core,
        "lattice_stress": eps_sigma * sp.sqrt(n_sigma),
        "force_constants": eps_fc * field_tail_norm(decay, dim, 1, upper=upper),
        "third_order": eps_3 * field_tail_norm(decay, dim, 2, upper=upper),
    }


def residual_bound(dim=d, decay=None, *, upper=sp.oo) -> sp.Expr:
    """Right-hand side of (T9): the sum of :func:`residual_terms` (eV/Å)."""
    return sp.Add(*residual_terms(dim, decay, upper=upper).values())


def error_bound(dim=d, decay=None, *, upper=sp.oo) -> sp.Expr:
    """A-priori error bound (T8)+(T9): ``(2/c) × residual_bound`` (Å)."""
    return 2 / c * residual_bound(dim, decay, upper=upper)


def a_posteriori_bound(residual: float, stability: float) -> float:
    """(T8): ``(2/c) ‖f^ML(ū)‖_{-1}`` in Å, from a measured residual (eV/Å) and c (eV/Å²)."""
    _check_positive("stability constant c", stability, "eV/Å²")
    _check_nonnegative("residual ‖f^ML(ū)‖_{-1}", residual, "eV/Å")
    return 2.0 * residual / stability


def effectivity(error: float, residual: float, stability: float) -> float:
    """Effectivity (T8) ``η = ‖D(ū^ML − ū)‖ / (‖f^ML(ū)‖_{-1}/c)`` (dimensionless).

    ``error`` in Å, ``residual`` in eV/Å, ``stability`` c in eV/Å². The bound (T8) holds
    iff η ≤ 2; η ≪ 0.1 would mean the bound is far from sharp.
    """
    _check_positive("stability constant c", stability, "eV/Å²")
    _check_nonnegative("error ‖D(ū^ML − ū)‖", error, "Å")
    _check_positive("residual ‖f^ML(ū)‖_{-1}", residual, "eV/Å")
    return error * stability / residual


def _check_finite(name: str, value: float, unit: str) -> None:
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{name}={value!r} must be a finite number ({unit})")


def _check_positive(name: str, value: float, unit: str) -> None:
    _check_finite(name, value, unit)
    if value <= 0:
        raise ValueError(f"{name}={value!r} must be > 0 ({unit})")


def _check_nonnegative(name: str, value: float, unit: str) -> None:
    _check_finite(name, value, unit)
    if value < 0:
        raise ValueError(f"{name}={value!r} must be ≥ 0 ({unit})")


@dataclass(frozen=True)
class Estimate:
    """Measured inputs of the estimate (T8)–(T9); methods return its terms as floats.

    Parameters (units):

    * ``d`` — dimension, 2 or 3;
    * ``R`` — core radius, Å (> 0);
    * ``c`` — stability constant of the MLIP at ū, eV/Å² (> 0);
    * ``eps_core`` — core force error, eV/Å;
    * ``eps_fc`` — force-constant error ε_FC, eV/Å²;
    * ``eps_3`` — third-derivative error ε_3, eV/Å³;
    * ``eps_stress`` — lattice-stress error ε_σ, eV/Å, on ``n_stress`` sites;
    * ``decay_constant`` — C of ``|Dū(ℓ)| ≤ C|ℓ|^{-p}``, Å^{1+p};
    * ``decay_exponent`` — p (default d: point defect, (T10); 1 for a dislocation);
    * ``site_volume`` — v, Å^d per site (e.g. a³/2 for bcc);
    * ``domain_radius`` — L in Å, or None for the infinite lattice (needed if 2p ≤ d);
    * ``tail_fc``, ``tail_3`` — measured ``‖Dū‖_{ℓ²(|ℓ|>R)}`` (Å) and
      ``‖|Dū|²‖_{ℓ²(|ℓ|>R)}`` (Å²); when given they replace the decay model (T7).
    """

    d: int
    R: float
    c: float
    eps_core: float
    eps_fc: float = 0.0
    eps_3: float = 0.0
    eps_stress: float = 0.0
    n_stress: float = 0.0
    decay_constant: float = 1.0
    decay_exponent: float | None = None
    site_volume: float = 1.0
    domain_radius: float | None = None
    tail_fc: float | None = None
    tail_3: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.d, bool) or self.d not in (2, 3):
            raise ValueError(f"dimension d={self.d!r} is not supported; use d = 2 or 3")
        _check_positive("core radius R", self.R, "Å")
        _check_positive("stability constant c", self.c, "eV/Å²")
        for name, unit in (("eps_core", "eV/Å"), ("eps_fc", "eV/Å²"), ("eps_3", "eV/Å³"),
                           ("eps_stress", "eV/Å"), ("n_stress", "sites"),
                           ("decay_constant", "Å^(1+p)")):
            _check_nonnegative(name, getattr(self, name), unit)
        _check_positive("site_volume v", self.site_volume, "Å^d")
        if self.decay_exponent is not None:
            _check_positive("decay_exponent p", self.decay_exponent, "dimensionless")
        if self.domain_radius is not None:
            _check_positive("domain_radius L", self.domain_radius, "Å")
            if self.domain_radius <= self.R:
                raise ValueError(
                    f"domain_radius L={self.domain_radius!r} Å must exceed the core radius "
                    f"R={self.R!r} Å"
                )
        for name, unit in (("tail_fc", "Å"), ("tail_3", "Å²")):
            if getattr(self, name) is not None:
                _check_nonnegative(name, getattr(self, name), unit)
        p = self.d if self.decay_exponent is None else self.decay_exponent
        if self.domain_radius is None:
            for power, given in ((1, self.tail_fc), (2, self.tail_3)):
                if given is None and 2 * power * p <= self.d:
                    raise tails.DivergentTailError(
                        f"decay_exponent p={p} in d={self.d}: the tail of |Dū|^{power} "
                        f"diverges (needs 2·{power}·p > d, (T3)); give domain_radius L (Å) "
                        f"or a measured tail_{'fc' if power == 1 else '3'}"
                    )

    @property
    def p(self) -> float:
        """Decay exponent p used (dimensionless)."""
        return float(self.d if self.decay_exponent is None else self.decay_exponent)

    def symbolic(self) -> dict[str, sp.Expr]:
        """The terms (T9) with d, p and L fixed to this estimate's values (other symbols
        free); each in eV/Å."""
        upper = sp.oo if self.domain_radius is None else L
        decay = sp.nsimplify(self.p, rational=True)
        return residual_terms(self.d, decay, upper=upper)

    @staticmethod
    @functools.cache
    def _tail_function(decay, dim: int, power: int, finite: bool):
        # The symbolic tail (T7), compiled once per (p, d, k, finite domain) to a float
        # function of (C, R, v, L): many estimates are evaluated in a sweep.
        upper = L if finite else sp.oo
        return sp.lambdify((C, R, v, L), field_tail_norm(decay, dim, power, upper=upper), "math")

    def tails(self) -> dict[str, float]:
        """``‖Dū‖_{ℓ²(|ℓ|>R)}`` (Å) and ``‖|Dū|²‖_{ℓ²(|ℓ|>R)}`` (Å²) used in (T9): the
        measured values when given, otherwise the decay model (T7)."""
        decay = sp.nsimplify(self.p, rational=True)
        finite = self.domain_radius is not None
        domain = self.domain_radius if finite else math.inf
        out = {}
        for key, power, given in (("fc", 1, self.tail_fc), ("third", 2, self.tail_3)):
            if given is not None:
                out[key] = float(given)
            else:
                f = self._tail_function(decay, self.d, power, finite)
                out[key] = float(f(self.decay_constant, self.R, self.site_volume, domain))
        return out

    def terms(self) -> dict[str, float]:
        """The four terms of (T9) in eV/Å, keyed by :data:`TERMS`."""
        t = self.tails()
        return {
            "core": float(self.eps_core),
            "lattice_stress": float(self.eps_stress * math.sqrt(self.n_stress)),
            "force_constants": float(self.eps_fc * t["fc"]),
            "third_order": float(self.eps_3 * t["third"]),
        }

    def residual(self) -> float:
        """Right-hand side of (T9), eV/Å."""
        return float(sum(self.terms().values()))

    def error_bound(self) -> float:
        """(T8) applied to (T9): ``(2/c) × residual()``, Å."""
        return 2.0 * self.residual() / self.c

    def effectivity(self, error: float) -> float:
        """``error · c / residual()`` (dimensionless) for a measured ``‖D(ū^ML − ū)‖`` in Å:
        how the estimate (T9), used in place of the measured residual in (T8), compares
        with the measured error."""
        return effectivity(error, self.residual(), self.c)

    def as_dict(self) -> dict:
        """Inputs, tails, terms, residual and error bound as plain floats (JSON-ready)."""
        out = asdict(self)
        out.update(tails=self.tails(), terms=self.terms(), residual=self.residual(),
                   error_bound=self.error_bound())
        return out
