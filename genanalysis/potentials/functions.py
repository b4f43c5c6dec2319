"""Radial and embedding functions with their first and second derivatives.

Every function object is called as ``fn(x, order)`` and returns a tuple
``(value, first derivative, ..., order-th derivative)`` of float64 arrays shaped like
``x`` (``order`` ∈ {0, 1, 2}). Radial functions take distances in Å and return eV (pair
functions φ) or density units (density functions f); embedding functions take the
dimensionless density ρ and return eV. Derivatives are with respect to the argument
(eV/Å, eV/Å² for φ).

Everything here is vectorised over the input array: these are evaluated once per
neighbour pair (or atom) per force call, the hot path of the toolkit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import CubicSpline

__all__ = [
    "SmoothCutoff",
    "product_rule",
    "ZhouRadial",
    "ZhouEmbedding",
    "Morse",
    "LennardJones",
    "UniformCubicTable",
    "TimesInverse",
    "FusedRadialTables",
]


@dataclass(frozen=True)
class SmoothCutoff:
    """Switching function S(r): 1 for r ≤ r_inner, 0 for r ≥ r_outer (Å), and in between
    S = 1 − (35t⁴ − 84t⁵ + 70t⁶ − 20t⁷), t = (r − r_inner)/(r_outer − r_inner): the
    degree-7 smoothstep, whose first three derivatives vanish at both ends (C³), so that
    force constants of the switched function are continuous in r."""

    r_inner: float
    r_outer: float

    def __post_init__(self):
        if not (0 < self.r_inner < self.r_outer):
            raise ValueError(
                f"cutoff interval [{self.r_inner}, {self.r_outer}] Å must satisfy 0 < r_inner < r_outer"
            )

    def __call__(self, r: np.ndarray, order: int = 0):
        w = self.r_outer - self.r_inner
        t = np.clip((np.asarray(r, dtype=np.float64) - self.r_inner) / w, 0.0, 1.0)
        t2 = t * t
        t3 = t2 * t
        s = 1.0 - t3 * t * (35.0 + t * (-84.0 + t * (70.0 - 20.0 * t)))
        out = [s]
        if order >= 1:
            # dS/dt = −140 t³ (1 − t)³
            out.append(-140.0 * t3 * (1.0 - t) ** 3 / w)
        if order >= 2:
            # d²S/dt² = −420 t² (1 − t)² (1 − 2t)
            out.append(-420.0 * t2 * (1.0 - t) ** 2 * (1.0 - 2.0 * t) / (w * w))
        return tuple(out)


def product_rule(g: tuple, s: tuple, order: int) -> tuple:
    """Product rule for (g·S) and its derivatives up to ``order`` (≤ 2): ``g`` and ``s`` are
    (value, first, second derivative) of the two factors (at least ``order + 1`` of each)."""
    out = [g[0] * s[0]]
    if order >= 1:
        out.append(g[1] * s[0] + g[0] * s[1])
    if order >= 2:
        out.append(g[2] * s[0] + 2.0 * g[1] * s[1] + g[0] * s[2])
    return tuple(out)


@dataclass(frozen=True)
class ZhouRadial:
    """Σ_k a_k exp(−b_k (r/r_e − 1)) / (1 + (r/r_e − c_k)^20), times a smooth cutoff.

    The Zhou–Johnson–Wadley forms (Phys. Rev. B 69, 144113 (2004), eqs. 3–4): the density
    f(r) is one term (a = f_e, b = β, c = λ); the pair potential φ(r) is two terms
    (A, α, κ) and (−B, β, λ). r and r_e in Å; value in the units of a_k.
    """

    r_e: float
    terms: tuple[tuple[float, float, float], ...]
    cutoff: SmoothCutoff

    def __call__(self, r: np.ndarray, order: int = 0):
        r = np.asarray(r, dtype=np.float64)
        x = r / self.r_e
        re = self.r_e
        total = [np.zeros_like(x) for _ in range(order + 1)]
        for a, b, c in self.terms:
            u = a * np.exp(-b * (x - 1.0))
            y = x - c
            y18 = y**18
            y19 = y18 * y
            v = 1.0 + y19 * y
            iv = 1.0 / v
            total[0] += u * iv
            if order >= 1:
                du = -b / re * u
                dv = 20.0 * y19 / re
                total[1] += du * iv - u * dv * iv * iv
            if order >= 2:
                ddu = (b / re) ** 2 * u
                ddv = 380.0 * y18 / re**2
                total[2] += (ddu - (2.0 * du * dv + u * ddv) * iv + 2.0 * u * dv * dv * iv * iv) * iv
        inside = r < self.cutoff.r_outer
        s = self.cutoff(r, order)
        return tuple(np.where(inside, v_, 0.0) for v_ in product_rule(tuple(total), s, order))


@dataclass(frozen=True)
class ZhouEmbedding:
    """Zhou–Johnson–Wadley embedding energy F(ρ) (eV), Phys. Rev. B 69, 144113 (2004), eq. 5:

    * ρ < ρ_n:        Σ_{i=0..3} F_ni (ρ/ρ_n − 1)^i
    * ρ_n ≤ ρ < ρ_0:  Σ_{i=0..3} F_i (ρ/ρ_e − 1)^i
    * ρ ≥ ρ_0:        F_e (1 − η ln(ρ/ρ_s)) (ρ/ρ_s)^η
    """

    rho_e: float
    rho_s: float
    rho_n: float
    rho_0: float
    Fn: tuple[float, float, float, float]
    F: tuple[float, float, float, float]
    F_e: float
    eta: float

    @staticmethod
    def _poly(c, x, scale, order):
        c0, c1, c2, c3 = c
        out = [c0 + x * (c1 + x * (c2 + x * c3))]
        if order >= 1:
            out.append((c1 + x * (2.0 * c2 + 3.0 * c3 * x)) / scale)
        if order >= 2:
            out.append((2.0 * c2 + 6.0 * c3 * x) / scale**2)
        return out

    def __call__(self, rho: np.ndarray, order: int = 0):
        rho = np.asarray(rho, dtype=np.float64)
        low = self._poly(self.Fn, rho / self.rho_n - 1.0, self.rho_n, order)
        mid = self._poly(self.F, rho / self.rho_e - 1.0, self.rho_e, order)
        y = np.maximum(rho, 1e-300) / self.rho_s
        ly = np.log(y)
        eta, Fe, rs = self.eta, self.F_e, self.rho_s
        yeta = y**eta
        high = [Fe * (1.0 - eta * ly) * yeta]
        if order >= 1:
            high.append(-Fe * eta * eta * ly * yeta / y / rs)
        if order >= 2:
            high.append(-Fe * eta * eta * ((eta - 1.0) * ly + 1.0) * yeta / (y * y) / rs**2)
        is_low = rho < self.rho_n
        is_high = rho >= self.rho_0
        return tuple(np.where(is_low, lo, np.where(is_high, hi, mi)) for lo, mi, hi in zip(low, mid, high))


@dataclass(frozen=True)
class Morse:
    """Morse pair potential φ(r) = D (e^{−2α(r−r₀)} − 2 e^{−α(r−r₀)}) times a smooth cutoff.

    D in eV, α in 1/Å, r₀ in Å; minimum −D at r₀ (before the cutoff)."""

    D: float
    alpha: float
    r0: float
    cutoff: SmoothCutoff

    def __call__(self, r: np.ndarray, order: int = 0):
        r = np.asarray(r, dtype=np.float64)
        e = np.exp(-self.alpha * (r - self.r0))
        a, D = self.alpha, self.D
        g = [D * (e * e - 2.0 * e)]
        if order >= 1:
            g.append(D * (-2.0 * a * e * e + 2.0 * a * e))
        if order >= 2:
            g.append(D * (4.0 * a * a * e * e - 2.0 * a * a * e))
        inside = r < self.cutoff.r_outer
        return tuple(np.where(inside, v, 0.0) for v in product_rule(tuple(g), self.cutoff(r, order), order))


@dataclass(frozen=True)
class LennardJones:
    """Lennard-Jones pair potential φ(r) = 4ε((σ/r)¹² − (σ/r)⁶) times a smooth cutoff.

    ε in eV, σ in Å; minimum −ε at r = 2^{1/6} σ (before the cutoff)."""

    epsilon: float
    sigma: float
    cutoff: SmoothCutoff

    def __call__(self, r: np.ndarray, order: int = 0):
        r = np.asarray(r, dtype=np.float64)
        ir = 1.0 / r
        s6 = (self.sigma * ir) ** 6
        s12 = s6 * s6
        e4 = 4.0 * self.epsilon
        g = [e4 * (s12 - s6)]
        if order >= 1:
            g.append(e4 * (-12.0 * s12 + 6.0 * s6) * ir)
        if order >= 2:
            g.append(e4 * (156.0 * s12 - 42.0 * s6) * ir * ir)
        inside = r < self.cutoff.r_outer
        return tuple(np.where(inside, v, 0.0) for v in product_rule(tuple(g), self.cutoff(r, order), order))


class UniformCubicTable:
    """The interpolating cubic spline through values tabulated on a uniform grid
    x_k = k·h, k = 0..N−1, evaluated in O(1) per point.

    The spline is C² with not-a-knot end conditions — the same interpolant as FITPACK's
    ``InterpolatedUnivariateSpline(k=3)`` that matscipy uses, so both codes agree to
    round-off — but it is stored as per-interval polynomial coefficients: evaluation is
    ``k = floor(x/h)`` and a Horner step, never a knot search. Beyond the last grid point
    the table is continued as LAMMPS does: held at its last value (``extrapolate='hold'``,
    used for the radial functions, whose tables end at zero) or continued linearly with
    the end slope (``extrapolate='linear'``, used for the embedding function F(ρ)).
    Below x = 0 the first interval's polynomial is used.
    """

    def __init__(self, h: float, values: np.ndarray, extrapolate: str = "hold"):
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 1 or len(values) < 4:
            raise ValueError(f"a table needs at least 4 values on its grid, got shape {values.shape}")
        if not (h > 0 and math.isfinite(h)):
            raise ValueError(f"grid spacing h={h} must be positive")
        if extrapolate not in ("hold", "linear"):
            raise ValueError(f"extrapolate={extrapolate!r}; choose 'hold' or 'linear'")
        self.h = float(h)
        self.n = len(values)
        self.x_max = (self.n - 1) * self.h
        spline = CubicSpline(np.arange(self.n) * self.h, values, bc_type="not-a-knot")
        # spline.c[m, k]: coefficient of (x − x_k)^(3−m) on interval k
        self._c = np.ascontiguousarray(spline.c[::-1].T)  # (N−1, 4): c0 + c1 t + c2 t² + c3 t³
        # the same coefficients stored by power: four contiguous gathers per evaluation
        # are several times faster than one gather of (P, 4) rows
        self._cs = tuple(np.ascontiguousarray(spline.c[3 - m]) for m in range(4))
        self._end = (float(values[-1]), float(spline(self.x_max, 1)))
        self.extrapolate = extrapolate

    def __call__(self, x: np.ndarray, order: int = 0):
        x = np.asarray(x, dtype=np.float64)
        k = np.minimum((x * (1.0 / self.h)).astype(np.intp), self.n - 2)
        np.maximum(k, 0, out=k)
        t = x - k * self.h
        c0, c1, c2, c3 = (c.take(k) for c in self._cs)
        out = [c0 + t * (c1 + t * (c2 + t * c3))]
        if order >= 1:
            out.append(c1 + t * (2.0 * c2 + 3.0 * c3 * t))
        if order >= 2:
            out.append(2.0 * c2 + 6.0 * c3 * t)
        beyond = x > self.x_max
        if np.any(beyond):
            y_end, dy_end = self._end
            if self.extrapolate == "hold":
                ext = [y_end, 0.0, 0.0]
            else:
                ext = [y_end + dy_end * (x - self.x_max), dy_end, 0.0]
            out = [np.where(beyond, e, o) for o, e in zip(out, ext)]
        return tuple(out)


class TimesInverse:
    """φ(r) = g(r)/r for a function g of r (Å): setfl and funcfl tables store r·φ(r)."""

    def __init__(self, g):
        self.g = g

    def __call__(self, r: np.ndarray, order: int = 0):
        r = np.asarray(r, dtype=np.float64)
        g = self.g(r, order)
        ir = 1.0 / r
        out = [g[0] * ir]
        if order >= 1:
            out.append((g[1] - out[0]) * ir)
        if order >= 2:
            out.append((g[2] - 2.0 * out[1]) * ir)
        return tuple(out)


class FusedRadialTables:
    """φ(r) = g(r)/r and f(r) of a tabulated EAM file evaluated together (Å in; eV, eV/Å,
    eV/Å² for φ and density units for f), for the hot path.

    Both tables share the r grid, so one index ``k = ⌊r/h⌋`` and eight coefficient gathers
    (stored by power, contiguous) serve both, and the "hold" continuation of
    :class:`UniformCubicTable` beyond the last grid point is an extra constant row. Pairs at
    r ≥ ``cutoff`` are sent to an all-zero row, so they contribute exactly nothing without
    a mask. Agrees with calling ``TimesInverse(g)`` and ``f`` separately to round-off."""

    def __init__(self, g: UniformCubicTable, f: UniformCubicTable, cutoff: float):
        self.h = g.h
        self.n = g.n
        self.cutoff = float(cutoff)
        rows = []
        for tab in (g, f):
            for m in range(4):
                hold = tab._end[0] if m == 0 else 0.0
                rows.append(np.concatenate([tab._cs[m], [hold, 0.0]]))  # row N−1: hold; row N: zero
        self._cs = tuple(np.ascontiguousarray(r) for r in rows)

    @classmethod
    def from_functions(cls, phi, f, cutoff: float):
        """The fused evaluator when ``phi`` is ``TimesInverse(UniformCubicTable)`` and ``f``
        a ``UniformCubicTable`` on the same grid, both held constant beyond it; else None."""
        if not (isinstance(phi, TimesInverse) and isinstance(phi.g, UniformCubicTable)
                and isinstance(f, UniformCubicTable)):
            return None
        g = phi.g
        if g.h != f.h or g.n != f.n or g.extrapolate != "hold" or f.extrapolate != "hold":
            return None
        return cls(g, f, cutoff)

    def __call__(self, r: np.ndarray, order: int = 1):
        """((φ, φ', …), (f, f', …)) up to ``order`` (1 or 2) at distances ``r`` (Å, > 0)."""
        k = (r * (1.0 / self.h)).astype(np.intp)
        np.minimum(k, self.n - 1, out=k)
        k[r >= self.cutoff] = self.n
        t = r - k * self.h
        a0, a1, a2, a3, b0, b1, b2, b3 = (c.take(k) for c in self._cs)
        ir = 1.0 / r
        # g = r·φ and its derivatives, then φ = g/r, φ' = (g' − φ)/r, φ'' = (g'' − 2φ')/r
        g0 = a0 + t * (a1 + t * (a2 + t * a3))
        phi = g0 * ir
        g1 = a1 + t * (2.0 * a2 + 3.0 * t * a3)
        dphi = (g1 - phi) * ir
        f0 = b0 + t * (b1 + t * (b2 + t * b3))
        df = b1 + t * (2.0 * b2 + 3.0 * t * b3)
        if order < 2:
            return (phi, dphi), (f0, df)
        ddphi = (2.0 * a2 + 6.0 * t * a3 - 2.0 * dphi) * ir
        ddf = 2.0 * b2 + 6.0 * t * b3
        return (phi, dphi, ddphi), (f0, df, ddf)
