"""Tail sums of decaying lattice fields, derived with sympy.

Units: lengths (``R``, ``L``, ``|ℓ|``) in Å, the volume per lattice site ``v`` in Å^d. A
field with ``|Dū(ℓ)| ≤ C |ℓ|^{-p}`` has ``Dū`` in Å, so its decay constant ``C`` is in
Å^{1+p}. Equation numbers (T1)… refer to docs/theory.md.

Nothing here is typed in by hand: the tail sum, its convergence condition, its rate and the
logarithmic borderline case are all read off one sympy integral, (T2). The lattice sum
``Σ_{|ℓ|>R} |ℓ|^{-q}`` over a Bravais lattice with ``1/v`` sites per unit volume is
replaced by ``(1/v) ∫_{|x|>R} |x|^{-q} dx``; in polar coordinates that is the radial
integral ``(ω_d/v) ∫_R^∞ r^{d-1-q} dr`` with ``ω_d`` the area of the unit sphere (T1).

Public API (all arguments may be sympy expressions or plain numbers):

* :func:`sphere_area` — ω_d, (T1)
* :func:`radial_tail` — the radial integral as a sympy ``Piecewise``, (T2)
* :func:`convergence_condition` — ``q > d``, (T3)
* :func:`tail_sum` — ``(ω_d/v) R^{d-q}/(q-d)`` when it converges, (T4)
* :func:`tail_exponent` — ``d − q``, the log-log slope of (T4) in R, (T5)
* :func:`finite_tail_sum` — the sum over ``R < |ℓ| ≤ L``, incl. the log case, (T6)
* :func:`field_tail_norm`, :func:`field_tail_exponent` — ``‖|Dū|^k‖_{ℓ²(|ℓ|>R)}`` for a
  field decaying like ``|ℓ|^{-p}``: ``C^k (S_{2kp}(R))^{1/2} ∝ R^{d/2 − kp}``, (T7)
* :func:`log_tail_sum`, :func:`log_tail_rate` — ``Σ_{|ℓ|>R} |ℓ|^{-q} log^m|ℓ|`` (an
  incomplete gamma function) and its leading power and log power, (T20)
* :func:`field_log_tail_rate` — ``‖|Dw|^k‖_{ℓ²(|ℓ|>R)}`` for ``|Dw| ≤ C|ℓ|^{-p} log^m|ℓ|``:
  ``R^{d/2 − kp} log^{km} R``, (T20)
* :func:`angular_log_norm` — ``‖σ‖_{ℓ²(R<|ℓ|≤L)}`` of a field ``σ = S(θ)/|ℓ|`` (a
  dislocation's strain or its stress error ΔC:∇û): ``(A log(L/R)/v)^{1/2}``,
  ``A = ∫₀^{2π} |S(θ)|² dθ``, (T22)
* :func:`evaluate` — substitute numbers, return a float
"""

from __future__ import annotations

import functools

import sympy as sp

__all__ = [
    "d",
    "p",
    "q",
    "k",
    "R",
    "L",
    "r",
    "v",
    "C",
    "sphere_area",
    "radial_tail",
    "convergence_condition",
    "tail_sum",
    "tail_exponent",
    "finite_tail_sum",
    "field_tail_norm",
    "field_tail_exponent",
    "is_logarithmic",
    "log_tail_sum",
    "log_tail_rate",
    "field_log_tail_rate",
    "angular_log_norm",
    "A",
    "m",
    "evaluate",
    "DivergentTailError",
]

#: dimension, decay exponent of the field, exponent of the summand, power of the field
d, p, q, k = sp.symbols("d p q k", positive=True)
#: inner radius (Å), outer radius of a finite domain (Å), radial variable (Å),
#: volume per site (Å^d), decay constant (Å^{1+p})
R, L, r, v, C = sp.symbols("R L r v C", positive=True)
#: power of the logarithm in a summand |ℓ|^{-q} log^m |ℓ| (dimensionless)
m = sp.Symbol("m", nonnegative=True)
_s = sp.Symbol("s", positive=True)  # q − d > 0 in (T20)
#: angular integral ∫₀^{2π} |S(θ)|² dθ of a field S(θ)/r, units (units of S)²
A = sp.Symbol("A", positive=True)
_theta = sp.Symbol("theta", real=True)


class DivergentTailError(ValueError):
    """The tail sum ``Σ_{|ℓ|>R} |ℓ|^{-q}`` diverges (``q ≤ d``): a finite domain radius L is
    needed, and for ``q = d`` the sum grows like ``log(L/R)`` (T6)."""


def sphere_area(dim=d) -> sp.Expr:
    """Surface area ω_d = 2 π^{d/2} / Γ(d/2) of the unit sphere in R^d (dimensionless), (T1).

    ω_2 = 2π, ω_3 = 4π.
    """
    return 2 * sp.pi ** (sp.sympify(dim) / 2) / sp.gamma(sp.sympify(dim) / 2)


@functools.cache
def _radial_integral(upper) -> sp.Expr:
    # One sympy integral for symbolic d, q; sympy returns a Piecewise whose first condition
    # is the convergence condition and whose fallback (finite upper limit) is the log case.
    return sp.integrate(r ** (d - 1 - q), (r, R, upper))


def radial_tail(exponent=q, dim=d, *, upper=sp.oo) -> sp.Expr:
    """The continuum tail ``(ω_d/v) ∫_R^upper r^{d-1-q} dr`` (units Å^{-q}), (T2).

    It approximates the lattice sum ``Σ_{R<|ℓ|≤upper} |ℓ|^{-q}`` (|ℓ| in Å) on a lattice
    with volume ``v`` (Å^d) per site. Returns the sympy ``Piecewise`` exactly as derived:
    for ``upper = ∞`` its first branch holds under the convergence condition (T3) and the
    other branch is the unevaluated (divergent) integral; for a finite ``upper`` the
    fallback branch is the logarithm of the borderline case ``q = d`` (T6).
    """
    expr = sphere_area(d) / v * _radial_integral(upper)
    return expr.subs({q: sp.sympify(exponent), d: sp.sympify(dim)})


def convergence_condition(exponent=q, dim=d) -> sp.Basic:
    """Condition under which ``Σ_{|ℓ|>R} |ℓ|^{-q}`` converges, read off (T2): ``q > d``, (T3).

    Returns a sympy relational (``-d + q > 0`` for symbols) or ``sympy.true``/``sympy.false``
    once numbers are substituted. For a field decaying like ``|ℓ|^{-p}`` the energy-norm
    tail has ``q = 2p``: it converges iff ``2p > d``.
    """
    cond = _radial_integral(sp.oo).args[0][1]
    return cond.subs({q: sp.sympify(exponent), d: sp.sympify(dim)})


def _check_converges(exponent, dim) -> None:
    cond = convergence_condition(exponent, dim)
    if cond is sp.false:
        raise DivergentTailError(
            f"the tail sum Σ_{{|ℓ|>R}} |ℓ|^(-q) with q={exponent} diverges in d={dim}: it "
            f"converges only for q > d (T3); use finite_tail_sum with an outer radius L "
            f"(for q = d it grows like log(L/R), (T6))"
        )


def tail_sum(exponent=q, dim=d) -> sp.Expr:
    """Leading-order tail ``Σ_{|ℓ|>R} |ℓ|^{-q} ≈ (ω_d/v) R^{d-q}/(q-d)`` (Å^{-q}), (T4).

    The convergent branch of (T2). Raises :class:`DivergentTailError` when the convergence
    condition (T3) is known to fail for the given numbers. The relative error of the
    approximation on a Bravais lattice vanishes as R → ∞ (lattice-point discrepancy of a
    ball), which the tests measure on square, triangular, bcc and fcc lattices.
    """
    _check_converges(exponent, dim)
    expr = sphere_area(d) / v * _radial_integral(sp.oo).args[0][0]
    return sp.powsimp(expr.subs({q: sp.sympify(exponent), d: sp.sympify(dim)}))


def tail_exponent(exponent=q, dim=d) -> sp.Expr:
    """Log-log slope ``d ln S / d ln R`` of the tail sum (T4): ``d − q`` (dimensionless), (T5).

    Computed from the expression, ``R S'(R) / S(R)``, not typed in.
    """
    S = tail_sum(q, d)
    slope = sp.simplify(R * sp.diff(S, R) / S)
    return sp.simplify(slope.subs({q: sp.sympify(exponent), d: sp.sympify(dim)}))


def finite_tail_sum(exponent=q, dim=d, *, upper=L) -> sp.Expr:
    """Tail over a finite domain, ``Σ_{R<|ℓ|≤L} |ℓ|^{-q}`` (Å^{-q}), (T6).

    ``(ω_d/v) (R^{d-q} − L^{d-q})/(q−d)`` for ``q ≠ d`` and ``(ω_d/v) log(L/R)`` in the
    borderline case ``q = d``, which diverges as L → ∞. This is the case of a straight
    dislocation (``|Dū| ~ |ℓ|^{-1}``, p = 1, d = 2, q = 2p = d): its energy-norm tail
    outside radius R grows like ``sqrt(log(L/R))`` with the domain radius L.
    """
    expr = radial_tail(exponent, dim, upper=upper)
    expr = expr.subs(sp.log(upper) - sp.log(R), sp.log(upper / R))
    return sp.piecewise_fold(expr) if expr.has(sp.Piecewise) else expr


def is_logarithmic(exponent, dim) -> bool:
    """True when ``q = d`` exactly: the borderline case of (T6) (tail ∝ log(L/R))."""
    return bool(sp.simplify(sp.sympify(exponent) - sp.sympify(dim)) == 0)


def field_tail_norm(decay=p, dim=d, power=1, *, upper=sp.oo) -> sp.Expr:
    """``‖|Dū|^k‖_{ℓ²(|ℓ|>R)} ≤ C^k (S_{2kp}(R))^{1/2}`` for ``|Dū(ℓ)| ≤ C|ℓ|^{-p}``, (T7).

    Units: Å^k (``Dū`` in Å). ``power = 1`` is the factor of the force-constant term of the
    estimate, ``power = 2`` that of the third-order term (T9). With ``upper = ∞`` the sum
    must converge (``2kp > d``, (T3)); pass a finite ``upper`` (the domain radius L, Å) to
    get the finite-domain version (T6) — needed for dislocations.
    """
    exponent = 2 * sp.sympify(power) * sp.sympify(decay)
    if upper is sp.oo:
        S = tail_sum(exponent, dim)
    else:
        S = finite_tail_sum(exponent, dim, upper=upper)
    return C ** sp.sympify(power) * sp.sqrt(S)


def field_tail_exponent(decay=p, dim=d, power=1) -> sp.Expr:
    """Rate in R of (T7): ``(d − 2kp)/2 = d/2 − kp`` (dimensionless), from (T5).

    Zero exactly in the logarithmic case ``2kp = d`` (there the norm over ``R<|ℓ|≤L`` is
    ``∝ sqrt(log(L/R))``, (T6)); positive means the tail diverges with the domain size.
    """
    exponent = 2 * sp.sympify(power) * sp.sympify(decay)
    return sp.simplify((d - q).subs({q: exponent, d: sp.sympify(dim)}) / 2)


def log_tail_sum(exponent=q, log_power=m, dim=d) -> sp.Expr:
    """``Σ_{|ℓ|>R} |ℓ|^{-q} log^m|ℓ| ≈ (ω_d/v) Γ(m+1, (q−d) log R) / (q−d)^{m+1}``
    (Å^{-q}; |ℓ| and R in Å, the logarithm of the length in Å, R > 1 Å), (T20).

    The radial integral (T2) with the weight ``log^m r``: the substitution r = e^t turns
    ``∫_R^∞ r^{d−1−q} log^m r dr`` into ``∫_{log R}^∞ e^{−(q−d)t} t^m dt``, the upper
    incomplete gamma function. Valid for q > d (T3); the tests check ``−dS/dR`` against
    the summand density symbolically and the value against lattice sums. Needed for the
    dislocation's core corrector, ``|D(ū − û)| ≲ |ℓ|^{-2} log|ℓ|`` (T21).
    """
    _check_converges(exponent, dim)
    expr = sphere_area(d) / v * sp.uppergamma(m + 1, _s * sp.log(R)) / _s ** (m + 1)
    expr = expr.subs(_s, q - d)
    return expr.subs({q: sp.sympify(exponent), d: sp.sympify(dim), m: sp.sympify(log_power)})


def log_tail_rate(exponent, log_power, dim) -> tuple[sp.Expr, sp.Expr]:
    """Leading behaviour of (T20) as R → ∞: ``(d − q, m)`` such that the sum is
    ``(ω_d/v) R^{d−q} log^m R / (q − d) · (1 + O(1/log R))`` (exponents dimensionless).

    Read off, not typed in: the candidate leading term is divided into the incomplete gamma
    function of :func:`log_tail_sum` and sympy's limit R → ∞ of the ratio must be 1 (for
    numbers q, m, d); ValueError otherwise.
    """
    qq, mm, dd = sp.sympify(exponent), sp.sympify(log_power), sp.sympify(dim)
    S = log_tail_sum(qq, mm, dd)
    lead = sphere_area(dd) / v * R ** (dd - qq) * sp.log(R) ** mm / (qq - dd)
    ratio = sp.limit(sp.simplify(S / lead), R, sp.oo)
    if ratio != 1:
        raise ValueError(f"leading term of Σ|ℓ|^(-{qq}) log^{mm}|ℓ| in d={dd} not R^(d−q) log^m R "
                         f"(limit of the ratio {ratio})")
    return dd - qq, mm


def field_log_tail_rate(decay=p, log_power=m, dim=d, power=1) -> tuple[sp.Expr, sp.Expr]:
    """Rate of ``‖|Dw|^k‖_{ℓ²(|ℓ|>R)} ≤ C^k (Σ_{|ℓ|>R} |ℓ|^{-2kp} log^{2km}|ℓ|)^{1/2}`` for
    ``|Dw(ℓ)| ≤ C |ℓ|^{-p} log^m|ℓ|``: ``(d/2 − kp, km)`` — the power and the log power of
    R (dimensionless), the square root of :func:`log_tail_rate` with q = 2kp, 2km, (T20).
    With m = 0 it is (T7)."""
    kk = sp.sympify(power)
    e, lp = log_tail_rate(2 * kk * sp.sympify(decay), 2 * kk * sp.sympify(log_power), dim)
    return sp.simplify(e / 2), sp.simplify(lp / 2)


def angular_log_norm(angular=A, *, density=None, upper=L) -> sp.Expr:
    """``‖σ‖_{ℓ²(R<|ℓ|≤upper)} ≈ (A · log(upper/R) / v)^{1/2}`` for a field on a 2D lattice
    (v Å² per site) that is homogeneous of degree −1, ``σ(ℓ) = S(θ_ℓ)/|ℓ|``, with
    ``A = ∫₀^{2π} |S(θ)|² dθ`` (``angular``: the symbol :data:`A` or a value; or give
    ``density`` = |S(θ)|² as a sympy expression in the angle ``theta``, integrated here), (T22).

    Every linear quantity of a straight dislocation's far field is of this form: the
    strain ∇û and, for a model with elastic-constant error ΔC, the stress error
    ``ΔC : ∇û`` — the term that grows like ``|ΔC| sqrt(log(L/R))`` (T12). The isotropic
    case ``S = C`` (constant) gives ``C (2π log(L/R)/v)^{1/2}``, the tail (T6)–(T7).
    """
    ang = sp.sympify(angular)
    if density is not None:
        ang = sp.integrate(sp.sympify(density), (_theta, 0, 2 * sp.pi))
    r_ = sp.Symbol("r_", positive=True)
    radial = sp.integrate(1 / r_, (r_, R, upper))  # ∫ r^{-2} · r dr: the logarithm
    return sp.sqrt(ang * sp.expand_log(radial, force=True).subs(sp.log(upper) - sp.log(R), sp.log(upper / R)) / v)


def evaluate(expr, **values) -> float:
    """Substitute numbers for the symbols named in ``values`` (``d``, ``q``, ``R``, ``L``,
    ``v``, ``C``, …) and return a float; raises ValueError naming any symbol left free."""
    subs = {}
    names = {s.name: s for s in expr.free_symbols}
    for name, value in values.items():
        if name in names:
            subs[names[name]] = sp.sympify(value)
    out = sp.sympify(expr).subs(subs)
    if isinstance(out, sp.Piecewise):
        out = sp.piecewise_fold(out)
    free = sorted(s.name for s in out.free_symbols)
    if free:
        raise ValueError(f"cannot evaluate {expr}: no value given for {', '.join(free)}")
    return float(sp.N(out))
