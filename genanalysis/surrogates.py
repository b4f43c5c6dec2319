"""Synthetic surrogate models ``V^ML = V + η·W`` (docs/experiment.md §2).

A surrogate is the reference potential plus a perturbation W of prescribed structure, so
that each switches on one term of the residual splitting (docs/theory.md (T9)) and
leaves the others off, with no fitting noise. Surrogates are built on the EAM/pair engine
(:class:`~genanalysis.potentials.eam.EAMPotential`): W is a pair function added to φ or an
embedding function added to F, so energies, forces, virials, exact sparse Hessians and the
matrix-free ``linearise`` come from the engine unchanged.

Families (``a`` the lattice constant, r₁ the nearest-neighbour distance, g = r₂ − r₁ the gap
to the second shell, ρ₀ the site density of the perfect lattice, all at ``a``):

``core``
    W = E₀ Σ_i w(ρ_i/ρ₀ − 1) with w(x) = x² (1 − S(|x|)), S the C³ switch equal to 1 for
    |x| ≤ δ and 0 for |x| ≥ 2δ (default δ = 0.01, E₀ = 1 eV). W vanishes *identically* for
    site densities within 1 % of the lattice's, so on the perfect lattice, and under any small
    homogeneous strain, the energy, virial, force constants and every higher derivative are
    those of the reference: only ε_core is on. ρ is the reference's own EAM density; a pair
    reference gets an auxiliary density f(r) = exp(−3(r/r₁ − 1)) · S_c(r) (S_c its switch
    on [0.8, 1]×cutoff).
``bond_stiffness``
    W = κ Σ_pairs ½ (r − r₁)² B(r), B ≡ 1 for |r − r₁| ≤ 0.15 g and 0 for |r − r₁| ≥ 0.4 g
    (C³ in between; default κ = 1 eV/Å²). At the lattice w(r₁) = w'(r₁) = 0, w''(r₁) = κ,
    w'''(r₁) = 0: energy and virial unchanged, the first-shell bond stiffness raised by ηκ —
    ε_FC (and the elastic constants) on, lattice stress off.
``force_constants``
    W = E₀ Σ_i ½ x_i² B(|x_i|), x_i = ρ_i/ρ₀ − 1, B ≡ 1 for |x| ≤ 0.05 and 0 for |x| ≥ 0.1
    (C³ between; default E₀ = 1 eV; density as for ``core``). At the lattice g(ρ₀) = g'(ρ₀) = 0,
    g''(ρ₀) = E₀/ρ₀²: energy and virial unchanged, force constants changed (through the
    density gradients: a many-body, bulk-modulus-only change of the elastic constants) —
    ε_FC on, lattice stress off. The default far-field family.
``stress``
    W = τ Σ_pairs (r − r₁) B(r) (default τ = 1 eV/Å): w(r₁) = 0, w'(r₁) = τ, w''(r₁) = 0.
    The energy per atom is unchanged and the lattice stress (virial) changes. A
    rotation-invariant energy with a non-zero first derivative necessarily changes the
    Cartesian force constants by the geometric term (w'(r₁)/r₁)(I − e⊗e) per first-shell bond
    (the lattice is pre-stressed); the radial stiffness w'' is untouched. So this family
    switches on ε_σ plus that unavoidable tangential part of ε_FC (docs/experiment.md §2).
``scaled``
    W = −s V (default s = 1, dimensionless): V^ML = (1 − ηs) V, the uniformly softened
    (ηs > 0) or stiffened (ηs < 0) reference. Every force, force constant, elastic constant
    and energy is scaled by 1 − ηs; every equilibrium (the lattice constant, ū) is the
    reference's: ε_FC = |ηs|·‖H‖ on, the geometry error and the residual zero. Requires
    ηs < 1 (docs/softening.md).
``softening``
    W = −E₀ Σ_i h(x_i), h(x) = ½ x² (1 − exp(−x²/δ²)), x_i = ρ_i/ρ₀ − 1 (default δ = 0.01,
    E₀ = 1 eV; density as for ``core``). h vanishes with its first three derivatives at
    x = 0 and h'' tends to 1 for |x| ≫ δ: the embedding curvature is lowered by ηE₀/ρ₀²
    away from the lattice's density and not at it, so the softening grows with the distance
    from equilibrium. The perfect lattice's energy, virial, force constants and elastic
    constants are the reference's (lattice terms off); rattled and defect cells are softer
    (docs/softening.md).

Spec syntax (:func:`parse_surrogate_spec`)::

    surrogate:BASE?family=core&eta=1e-3[&scale=S][&width=δ][&lattice=L&a=A]

BASE is any spec :func:`~genanalysis.potentials.load_potential` accepts that yields an EAM
or pair potential (``builtin:W``, ``builtin:morse``, an EAM file); ``scale`` replaces E₀, κ
or τ (eV, eV/Å², eV/Å); ``lattice`` and ``a`` (Å) default to the experiment's. Units: Å, eV.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from urllib.parse import parse_qsl

import numpy as np

from genanalysis.exceptions import InputError
from genanalysis.potentials.eam import EAMPotential
from genanalysis.potentials.functions import SmoothCutoff, product_rule

__all__ = [
    "FAMILIES",
    "SurrogateSpec",
    "SurrogatePotential",
    "parse_surrogate_spec",
    "make_surrogate",
    "lattice_density",
    "ShellBump",
    "DensityBand",
    "DensityQuadratic",
    "DensitySoftening",
    "Scaled",
    "Combination",
    "AuxiliaryDensity",
]

#: family -> (default scale, its unit, the term of (T9) it switches on)
FAMILIES: dict[str, tuple[float, str, str]] = {
    "core": (1.0, "eV", "ε_core"),
    "force_constants": (1.0, "eV", "ε_FC (force constants, elastic constants; bulk modulus only)"),
    "bond_stiffness": (1.0, "eV/Å²", "ε_FC (first-shell bond stiffness)"),
    "stress": (1.0, "eV/Å", "ε_σ (lattice stress) + geometric part of ε_FC"),
    "scaled": (1.0, "1", "ε_FC (V scaled by 1 − ηs: every force constant; no equilibrium moves)"),
    "softening": (1.0, "eV", "ε_core (curvature lowered away from the lattice's density; lattice terms unchanged)"),
}

#: family aliases accepted in specs
_ALIASES = {"fc": "force_constants", "far_field": "force_constants", "bond": "bond_stiffness", "virial": "stress",
            "uniform": "scaled", "soft": "softening"}

#: default half-width δ of the core family's zero band, relative density
DEFAULT_WIDTH = 0.01


# --------------------------------------------------------------------------- radial functions


@dataclass(frozen=True)
class Combination:
    """Σ_k c_k · fn_k(x): a linear combination of functions ``fn(x, order)`` (same units)."""

    terms: tuple

    def __call__(self, x, order: int = 0):
        x = np.asarray(x, dtype=np.float64)
        out = [np.zeros_like(x) for _ in range(order + 1)]
        for coef, fn in self.terms:
            if coef == 0.0:
                continue
            for k, v in enumerate(fn(x, order)):
                out[k] = out[k] + coef * v
        return tuple(out)


def _switch_of_abs(t, inner: float, outer: float, order: int) -> tuple:
    """B(|t|) and its derivatives in t, B the C³ switch (1 for |t| ≤ inner, 0 for |t| ≥ outer):
    B is even in t, so B' picks up sign(t) and B'' does not."""
    b = SmoothCutoff(inner, outer)(np.abs(t), order)
    sign = np.sign(t)
    return tuple(v * sign if k == 1 else v for k, v in enumerate(b))


def _in_rho(derivatives: tuple, rho0: float) -> tuple:
    """Derivatives in ρ of g(x), x = ρ/ρ₀ − 1, from those in x: the k-th over ρ₀^k."""
    return tuple(v / rho0**k if k else v for k, v in enumerate(derivatives))


@dataclass(frozen=True)
class ShellBump:
    """w(r) = (r − r₁)^power / power! · B(r), Å → (Å^power); B ≡ 1 for |r − r₁| ≤ inner,
    0 for |r − r₁| ≥ outer, the C³ switch between (inner, outer in Å).

    ``power = 2``: w(r₁) = w'(r₁) = 0, w''(r₁) = 1, w'''(r₁) = 0 (a bond-stiffness change);
    ``power = 1``: w(r₁) = 0, w'(r₁) = 1, w''(r₁) = 0 (a bond-tension change)."""

    r1: float
    inner: float
    outer: float
    power: int

    def __call__(self, r, order: int = 0):
        t = np.asarray(r, dtype=np.float64) - self.r1
        if self.power == 2:
            p = (0.5 * t * t, t, np.ones_like(t))
        elif self.power == 1:
            p = (t, np.ones_like(t), np.zeros_like(t))
        else:  # pragma: no cover - guarded by the constructor callers
            raise ValueError(f"power={self.power}; use 1 or 2")
        return product_rule(p, _switch_of_abs(t, self.inner, self.outer, order), order)


@dataclass(frozen=True)
class DensityBand:
    """g(ρ) = (ρ/ρ₀ − 1)² (1 − S(|ρ/ρ₀ − 1|)), S the C³ switch on [δ, 2δ]: zero with every
    derivative for |ρ/ρ₀ − 1| ≤ δ (dimensionless; multiply by an energy)."""

    rho0: float
    width: float

    def __call__(self, rho, order: int = 0):
        x = np.asarray(rho, dtype=np.float64) / self.rho0 - 1.0
        s = _switch_of_abs(x, self.width, 2.0 * self.width, order)
        m = (1.0 - s[0],) + tuple(-v for v in s[1:])  # 1 − S(|x|) and its derivatives in x
        return _in_rho(product_rule((x * x, 2.0 * x, 2.0), m, order), self.rho0)


@dataclass(frozen=True)
class DensityQuadratic:
    """g(ρ) = ½ x² B(|x|), x = ρ/ρ₀ − 1, B ≡ 1 for |x| ≤ inner and 0 for |x| ≥ outer (C³
    switch between): g(ρ₀) = g'(ρ₀) = 0, g''(ρ₀) = 1/ρ₀², third derivative 0 near ρ₀
    (dimensionless; multiply by an energy)."""

    rho0: float
    inner: float
    outer: float

    def __call__(self, rho, order: int = 0):
        x = np.asarray(rho, dtype=np.float64) / self.rho0 - 1.0
        b = _switch_of_abs(x, self.inner, self.outer, order)
        return _in_rho(product_rule((0.5 * x * x, x, 1.0), b, order), self.rho0)


@dataclass(frozen=True)
class DensitySoftening:
    """h(ρ) = ½ x² (1 − exp(−x²/δ²)) B(|x|), x = ρ/ρ₀ − 1, δ = ``width``, B ≡ 1 for
    |x| ≤ 0.5 and 0 for |x| ≥ 1 (the C³ switch between; it keeps the softened energy
    bounded below under strong compression), dimensionless (multiply by an energy): h ~
    x⁴/(2δ²) at small x, so h and its first three derivatives vanish at ρ₀, and h'' tends to
    1/ρ₀² for δ ≪ |x| ≤ 0.5."""

    rho0: float
    width: float

    def __call__(self, rho, order: int = 0):
        rho = np.asarray(rho, dtype=np.float64)
        x = rho / self.rho0 - 1.0
        q = x * x / (self.width * self.width)
        e = np.exp(-q)
        h = (0.5 * x * x * (1.0 - e), x * (1.0 - e) + x * q * e, (1.0 - e) + 5.0 * q * e - 2.0 * q * q * e)
        return _in_rho(product_rule(h, _switch_of_abs(x, 0.5, 1.0, order), order), self.rho0)


@dataclass(frozen=True)
class Scaled:
    """c · fn(x): the function ``fn(x, order)`` times the number ``c``."""

    c: float
    fn: object

    def __call__(self, x, order: int = 0):
        return tuple(self.c * v for v in self.fn(x, order))


@dataclass(frozen=True)
class AuxiliaryDensity:
    """f(r) = exp(−β(r/r₁ − 1)) · S(r) (dimensionless), S the C³ switch on [r_inner, r_outer] Å:
    the density the ``core`` family embeds for a pair reference."""

    r1: float
    beta: float
    r_inner: float
    r_outer: float

    def __call__(self, r, order: int = 0):
        r = np.asarray(r, dtype=np.float64)
        e = np.exp(-self.beta * (r / self.r1 - 1.0))
        k = self.beta / self.r1
        g = (e, -k * e, k * k * e)
        s = SmoothCutoff(self.r_inner, self.r_outer)(r, order)
        out = product_rule(g, s, order)
        inside = r < self.r_outer
        return tuple(np.where(inside, v, 0.0) for v in out)


@dataclass(frozen=True)
class _Zero:
    """The zero function (embedding of a pair reference before the perturbation)."""

    def __call__(self, x, order: int = 0):
        z = np.zeros_like(np.asarray(x, dtype=np.float64))
        return tuple(z for _ in range(order + 1))


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class SurrogateSpec:
    """A surrogate: ``base`` (a potential spec), ``family``, ``eta`` (dimensionless), ``scale``
    (E₀ eV, κ eV/Å² or τ eV/Å; None = the family default), ``width`` (δ of ``core``),
    ``lattice`` and ``a`` (Å; None = supplied by the caller)."""

    base: str
    family: str
    eta: float
    scale: float | None = None
    width: float = DEFAULT_WIDTH
    lattice: str | None = None
    a: float | None = None

    def __str__(self) -> str:
        q = [f"family={self.family}", f"eta={self.eta!r}"]
        if self.scale is not None:
            q.append(f"scale={self.scale!r}")
        if self.width != DEFAULT_WIDTH:
            q.append(f"width={self.width!r}")
        if self.lattice is not None:
            q.append(f"lattice={self.lattice}")
        if self.a is not None:
            q.append(f"a={self.a!r}")
        return f"surrogate:{self.base}?{'&'.join(q)}"


def _family(name: str) -> str:
    fam = _ALIASES.get(name, name)
    if fam not in FAMILIES:
        raise InputError(
            f"surrogate family {name!r} is not known; choose one of {', '.join(FAMILIES)} "
            f"(aliases: {', '.join(f'{k}={v}' for k, v in _ALIASES.items())})"
        )
    return fam


def _number(key: str, text: str, spec: str) -> float:
    try:
        val = float(text)
    except ValueError:
        raise InputError(f"surrogate spec {spec!r}: {key}={text!r} is not a number") from None
    if not math.isfinite(val):
        raise InputError(f"surrogate spec {spec!r}: {key}={text!r} must be finite")
    return val


def parse_surrogate_spec(spec: str) -> SurrogateSpec:
    """Parse ``surrogate:BASE?family=F&eta=E[&scale=S][&width=W][&lattice=L][&a=A]``."""
    if not isinstance(spec, str) or not spec.startswith("surrogate:"):
        raise InputError(f"{spec!r} is not a surrogate spec (surrogate:BASE?family=F&eta=E)")
    body = spec[len("surrogate:"):]
    base, sep, query = body.rpartition("?")
    if not sep or not base:
        raise InputError(
            f"surrogate spec {spec!r} needs a base potential and a query, e.g. "
            "surrogate:builtin:W?family=core&eta=1e-3"
        )
    pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=False)
    allowed = {"family", "eta", "scale", "width", "lattice", "a"}
    seen: dict[str, str] = {}
    for k, v in pairs:
        if k not in allowed:
            raise InputError(f"surrogate spec {spec!r}: unknown key {k!r}; accepted: {', '.join(sorted(allowed))}")
        if k in seen:
            raise InputError(f"surrogate spec {spec!r}: key {k!r} given twice")
        seen[k] = v
    for k in ("family", "eta"):
        if k not in seen:
            raise InputError(f"surrogate spec {spec!r}: missing {k}=...")
    fam = _family(seen["family"])
    eta = _number("eta", seen["eta"], spec)
    scale = _number("scale", seen["scale"], spec) if "scale" in seen else None
    width = _number("width", seen["width"], spec) if "width" in seen else DEFAULT_WIDTH
    if not 0 < width <= 0.25:
        raise InputError(f"surrogate spec {spec!r}: width={width} must lie in (0, 0.25] (relative density)")
    a = _number("a", seen["a"], spec) if "a" in seen else None
    if a is not None and a <= 0:
        raise InputError(f"surrogate spec {spec!r}: a={a} Å must be positive")
    return SurrogateSpec(base, fam, eta, scale, width, seen.get("lattice"), a)


# --------------------------------------------------------------------------- construction


class SurrogatePotential(EAMPotential):
    """``V + η W`` on the EAM engine. Attributes: ``base`` (the reference Potential),
    ``family``, ``eta``, ``scale`` (units of :data:`FAMILIES`), ``lattice``, ``a`` (Å),
    ``anchor`` (r₁ in Å, or ρ₀ for ``core``), ``spec`` (:class:`SurrogateSpec`)."""

    base: EAMPotential
    family: str
    eta: float


def lattice_density(potential: EAMPotential, lattice: str, a: float, density=None) -> float:
    """Site density ρ₀ of the perfect ``lattice`` at ``a`` (Å) for the density function
    ``density`` (default the potential's own), in that function's units."""
    from genanalysis.lattice import perfect_cell

    f = density if density is not None else potential.f
    cell = perfect_cell(lattice, a, 1, potential.species[0])
    from genanalysis.potentials.neighbours import NeighbourCache

    cutoff = potential.cutoff
    pl = NeighbourCache(cutoff, 0.0).pairs(cell)
    fv = f(pl.r, 0)[0]
    rho = np.bincount(pl.i, weights=fv, minlength=pl.n_atoms) + np.bincount(pl.j, weights=fv, minlength=pl.n_atoms)
    return float(rho[0])


def make_surrogate(base, family: str, eta: float, *, lattice: str, a: float, scale: float | None = None,
                   width: float = DEFAULT_WIDTH) -> SurrogatePotential:
    """The surrogate ``base + eta·W_family`` anchored at the perfect ``lattice`` with lattice
    constant ``a`` (Å). ``base``: an EAM/pair :class:`Potential` or a spec for one."""
    from genanalysis.lattice import LATTICES, nearest_neighbour_distance, shell_radii
    from genanalysis.potentials import load_potential

    fam = _family(family)
    pot = load_potential(base)
    if not isinstance(pot, EAMPotential):
        raise InputError(
            f"surrogates perturb EAM or pair potentials; {getattr(pot, 'name', base)!r} is a "
            f"{type(pot).__name__} (use builtin:W, builtin:morse, builtin:lj or an EAM file)"
        )
    if lattice not in LATTICES:
        raise InputError(f"surrogate lattice {lattice!r} is not supported; choose one of {', '.join(LATTICES)}")
    eta = float(eta)
    if not math.isfinite(eta):
        raise InputError(f"surrogate eta={eta} must be finite")
    a = float(a)
    if not (math.isfinite(a) and a > 0):
        raise InputError(f"surrogate lattice constant a={a} Å must be positive")
    if not 0 < width <= 0.25:
        raise InputError(f"surrogate width={width} must lie in (0, 0.25] (relative density)")
    s = FAMILIES[fam][0] if scale is None else float(scale)
    # r₁ exactly (shell_radii rounds to 1e-8 Å, which would leave w'(r₁) ≈ 1e-8 ≠ 0)
    r1 = nearest_neighbour_distance(lattice, a)
    gap = float(shell_radii(lattice, a, 2)[1]) - r1
    phi, f, F = pot.phi, pot.f, pot.F
    cutoff = pot.cutoff
    if fam == "scaled":
        factor = 1.0 - eta * s
        if not factor > 0:
            raise InputError(f"surrogate family 'scaled' needs eta·scale < 1 (V^ML = (1 − eta·scale) V); "
                             f"eta={eta:g} and scale={s:g} give the factor {factor:g}")
        phi = Scaled(factor, phi)
        F = Scaled(factor, F) if F is not None else None
        anchor = factor
    elif fam in ("core", "force_constants", "softening"):
        if f is None:  # pair reference: embed an auxiliary density
            f = AuxiliaryDensity(r1, 3.0, 0.8 * cutoff, cutoff)
            F = _Zero()
        rho0 = lattice_density(pot, lattice, a, density=f)
        if fam == "core":
            g, sign = DensityBand(rho0, width), 1.0
        elif fam == "softening":
            g, sign = DensitySoftening(rho0, width), -1.0
        else:
            g, sign = DensityQuadratic(rho0, 0.05, 0.1), 1.0
        F = Combination(((1.0, F), (sign * eta * s, g)))
        anchor = rho0
    else:
        bump = ShellBump(r1, 0.15 * gap, 0.4 * gap, 2 if fam == "bond_stiffness" else 1)
        phi = Combination(((1.0, phi), (eta * s, bump)))
        cutoff = max(cutoff, r1 + 0.4 * gap)
        anchor = r1
    spec = SurrogateSpec(pot.name, fam, eta, scale, width, lattice, a)
    sur = SurrogatePotential(name=str(spec), element=pot.species[0], cutoff=cutoff, phi=phi, f=f, F=F,
                             skin=pot.skin, mass=pot.mass,
                             meta={**pot.meta, "surrogate": {"family": fam, "eta": eta, "scale": s, "width": width,
                                                             "lattice": lattice, "a": a, "anchor": anchor}})
    sur.base, sur.family, sur.eta, sur.scale = pot, fam, eta, s
    sur.lattice, sur.a, sur.anchor, sur.spec = lattice, a, anchor, spec
    return sur


def surrogate_from_spec(spec: str, *, lattice: str | None = None, a: float | None = None) -> SurrogatePotential:
    """Build a surrogate from its spec string; ``lattice``/``a`` fill what the spec omits
    (``a`` defaults to the base potential's equilibrium lattice constant)."""
    from genanalysis.potentials import load_potential

    sp_ = parse_surrogate_spec(spec)
    lat = sp_.lattice or lattice
    if lat is None:
        raise InputError(f"surrogate spec {spec!r} needs a lattice (lattice=... in the spec, or the experiment's)")
    aa = sp_.a if sp_.a is not None else a
    if aa is None:
        aa = load_potential(sp_.base).equilibrium_lattice_constant(lat)
    return make_surrogate(sp_.base, sp_.family, sp_.eta, lattice=lat, a=aa, scale=sp_.scale, width=sp_.width)
