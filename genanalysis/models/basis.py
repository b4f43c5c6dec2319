"""Invariant many-body features of an atomic environment (the ACE construction).

Units: distances Å; the features themselves are dimensionless (the radial functions are
dimensionless polynomials of r/r_cut), so a linear model's coefficients are in eV.

The construction (docs/models.md §1), for a centre atom i with neighbours j, r_ij < r_cut:

* one-particle basis φ_{n,a}(r_ij) = R_n(r_ij) · Y_a(r̂_ij), with
  R_n(r) = T_n(x(r)) · (1 − r/r_cut)^3, T_n the Chebyshev polynomials,
  x(r) = 1 − 2 (r − r_in)/(r_cut − r_in); the envelope's triple zero at r_cut makes every
  feature, its gradient and its Hessian continuous when a neighbour crosses the cutoff (C²).
  Y_a: real spherical harmonics (d = 3, channel λ = l with 2l+1 components) or the
  orthonormal real Fourier basis 1, cos mθ, sin mθ of the plane (d = 2, channel λ = m).
* density projections A_{n,a} = Σ_j φ_{n,a}(r_ij);
* invariants ("correlation order" ν = body order − 1):
  ν = 1: A_{n,0} (pair terms);
  ν = 2: Σ_{a ∈ λ} A_{n1,a} A_{n2,a} = ∫ ρ_{n1,λ} ρ_{n2,λ} (three-body);
  ν = 3: Σ G_{abc} A_{n1,a} A_{n2,b} A_{n3,c}, G_{abc} = ∫ Y_a Y_b Y_c over the sphere
  (circle) — the Gaunt coupling (four-body).
  Every invariant is an integral over the sphere of products of channel projections of the
  neighbour density, hence invariant under rotations and reflections (O(d)), translations
  and permutations of neighbours.
* size knob: total degree D; a product of factors (n_t, λ_t) is kept when
  Σ_t (n_t + 1 + w_λ·λ_t) ≤ D and λ_t ≤ λ_max.

Every feature is stored as a sparse polynomial in the A's (a list of monomials), which
gives exact first and second derivatives without autograd through the products.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch

from genanalysis.exceptions import InputError
from genanalysis.jsonutil import sha256_json
from genanalysis.memory import ace_bytes, ace_features, check_memory

__all__ = ["ACEParams", "ACESpec", "ACEBasis", "BasisModel", "isotropic_harmonic"]

torch.set_default_dtype(torch.float64)


@dataclass(frozen=True)
class ACEParams:
    """Hyper-parameters of the invariant features other than the dimension (the fit's
    model spec extends these; the data give the dimension).

    cutoff (Å) > r_in (Å) ≥ 0; degree D ≥ 1 (the size knob: larger D → more features);
    body_order 2…4; l_max ≥ 0 the largest angular channel; w_l > 0 the weight of an
    angular channel in the total degree; pair_degree: number of radial functions of the
    two-body features (0: 2·``degree``) — pair terms are cheap, so they resolve finer radial
    detail (the Zhou W EAM's pair and density functions switch over ~0.1 Å near 3.1 and
    3.5 Å).
    """

    cutoff: float = 5.0
    degree: int = 8
    body_order: int = 4
    l_max: int = 3
    w_l: float = 1.0
    r_in: float = 0.0
    pair_degree: int = 0

    def __post_init__(self):
        if not (math.isfinite(self.cutoff) and self.cutoff > 0):
            raise InputError(f"cutoff={self.cutoff} Å must be a positive finite number")
        if not (0.0 <= self.r_in < self.cutoff):
            raise InputError(f"r_in={self.r_in} Å must lie in [0, cutoff={self.cutoff})")
        if isinstance(self.degree, bool) or int(self.degree) != self.degree or self.degree < 1:
            raise InputError(f"degree={self.degree!r} must be a whole number ≥ 1")
        if self.body_order not in (2, 3, 4):
            raise InputError(f"body_order={self.body_order!r} is not supported; use 2, 3 or 4")
        if isinstance(self.l_max, bool) or int(self.l_max) != self.l_max or not 0 <= self.l_max <= 8:
            raise InputError(f"l_max={self.l_max!r} must be a whole number in 0…8")
        if not (self.w_l > 0):
            raise InputError(f"w_l={self.w_l} must be > 0")
        if isinstance(self.pair_degree, bool) or int(self.pair_degree) != self.pair_degree or self.pair_degree < 0:
            raise InputError(f"pair_degree={self.pair_degree!r} must be a whole number ≥ 0 (0: 2·degree)")
        # the feature count does not depend on the dimension: a fit spec is refused here,
        # when it is read, before its training set is loaded or a sweep does any work
        check_memory(f"degree={self.degree} (body_order {self.body_order}, l_max {self.l_max}: "
                     f"{ace_features(self.degree, self.body_order, self.l_max, self.w_l, self.pair_degree):.3g} "
                     "features)", ace_bytes(self.degree, self.body_order, self.l_max, self.w_l, self.pair_degree))

    def ace_spec(self, dim: int) -> "ACESpec":
        """The :class:`ACESpec` of these parameters in dimension ``dim``, each value of the
        type of its default (a TOML ``cutoff = 6`` is 6.0 Å)."""
        return ACESpec(**{f.name: type(f.default)(getattr(self, f.name)) for f in fields(ACEParams)}, dim=dim)


@dataclass(frozen=True)
class ACESpec(ACEParams):
    """Hyper-parameters of the invariant features (:class:`ACEParams`) and the dimension:
    dim 3 (spherical harmonics) or 2 (Fourier, atoms in the plane z = 0)."""

    dim: int = 3

    def __post_init__(self):
        super().__post_init__()
        if self.dim not in (2, 3):
            raise InputError(f"dim={self.dim!r} must be 2 or 3")

    def to_dict(self) -> dict:
        return asdict(self)

    def content_hash(self) -> str:
        return sha256_json(self.to_dict())[:16]


# ---------------------------------------------------------------------------------------
# angular bases
# ---------------------------------------------------------------------------------------


def _channel_components(dim: int, l_max: int) -> list[list[int]]:
    """Component indices of each angular channel λ = 0…l_max."""
    if dim == 3:
        return [list(range(l * l, l * l + 2 * l + 1)) for l in range(l_max + 1)]
    return [[0]] + [[2 * m - 1, 2 * m] for m in range(1, l_max + 1)]


def real_sph_harm(u: torch.Tensor, l_max: int) -> torch.Tensor:
    """Orthonormal real spherical harmonics Y_{lm}(u) of unit vectors ``u`` (..., 3),
    index l² + l + m. Written as polynomials in (x, y, z) — no angles, so smooth at the
    poles and exact under autograd."""
    return solid_harmonics(u, l_max, unit=True)


def solid_harmonics(D: torch.Tensor, l_max: int, unit: bool = False) -> torch.Tensor:
    """Real solid harmonics S_{lm}(D) = |D|^l Y_{lm}(D/|D|) (..., (l_max+1)²): homogeneous
    polynomials of degree l in (x, y, z) (Å^l). ``unit``: D is known to be a unit vector
    (r² = 1 in the recurrence)."""
    x, y, z = D[..., 0], D[..., 1], D[..., 2]
    r2 = 1.0 if unit else x * x + y * y + z * z
    # C_m + i S_m = (x + i y)^m
    C, S = [torch.ones_like(x)], [torch.zeros_like(x)]
    for m in range(1, l_max + 1):
        Cm, Sm = x * C[m - 1] - y * S[m - 1], x * S[m - 1] + y * C[m - 1]
        C.append(Cm)
        S.append(Sm)
    # P~_l^m(z): associated Legendre without the (1 − z²)^{m/2} factor
    P = {}
    for m in range(l_max + 1):
        P[(m, m)] = torch.full_like(z, float(np.prod(np.arange(1, 2 * m, 2))) if m else 1.0)
        if m + 1 <= l_max:
            P[(m + 1, m)] = (2 * m + 1) * z * P[(m, m)]
        for l in range(m + 2, l_max + 1):
            P[(l, m)] = ((2 * l - 1) * z * P[(l - 1, m)] - (l + m - 1) * r2 * P[(l - 2, m)]) / (l - m)
    out = []
    for l in range(l_max + 1):
        comps = [None] * (2 * l + 1)
        for m in range(l + 1):
            norm = math.sqrt((2 * l + 1) / (4 * math.pi) * math.factorial(l - m) / math.factorial(l + m))
            if m == 0:
                comps[l] = norm * P[(l, 0)]
            else:
                comps[l + m] = math.sqrt(2.0) * norm * P[(l, m)] * C[m]
                comps[l - m] = math.sqrt(2.0) * norm * P[(l, m)] * S[m]
        out.extend(comps)
    return torch.stack(out, dim=-1)


def isotropic_harmonic(dim: int) -> float:
    """The constant (l = 0) member of the orthonormal angular basis: 1/√(2π) on the circle
    (d = 2), Y_00 = 1/(2√π) on the sphere (d = 3); dimensionless. A pair term's isotropic
    projection A_{k,0} is Σ_j R_k(r_ij) times this."""
    if dim not in (2, 3):
        raise ValueError(f"dim={dim!r}: the angular basis is defined for d = 2 and d = 3")
    return 1.0 / math.sqrt(2 * math.pi) if dim == 2 else 0.5 / math.sqrt(math.pi)


def real_fourier(u: torch.Tensor, m_max: int) -> torch.Tensor:
    """Orthonormal real Fourier basis of the circle at in-plane unit vectors ``u`` (..., ≥2):
    1/√(2π), cos mθ/√π, sin mθ/√π as polynomials in (x, y)."""
    x, y = u[..., 0], u[..., 1]
    out = [torch.full_like(x, isotropic_harmonic(2))]
    C, S = torch.ones_like(x), torch.zeros_like(x)
    for _ in range(m_max):
        C, S = x * C - y * S, x * S + y * C
        out.extend([C / math.sqrt(math.pi), S / math.sqrt(math.pi)])
    return torch.stack(out, dim=-1)


class _Polys:
    """The solid angular functions as explicit polynomials: S_a(D) = Σ_c C[a, c] x^i y^j z^k
    over monomials c = (i, j, k) of degree ≤ l_max, built by running the solid-harmonic
    (or Fourier) recurrence on coefficient tables — so values, gradients and Hessians are
    exact and vectorised, with no autodiff."""

    def __init__(self, dim: int, l_max: int):
        def mul(p, q):
            out: dict = {}
            for a, ca in p.items():
                for b, cb in q.items():
                    k = (a[0] + b[0], a[1] + b[1], a[2] + b[2])
                    out[k] = out.get(k, 0.0) + ca * cb
            return out

        def add(p, q, sp=1.0, sq=1.0):
            out = {k: sp * v for k, v in p.items()}
            for k, v in q.items():
                out[k] = out.get(k, 0.0) + sq * v
            return out

        X, Y, Z = {(1, 0, 0): 1.0}, {(0, 1, 0): 1.0}, {(0, 0, 1): 1.0}
        ONE = {(0, 0, 0): 1.0}
        C, S = [ONE], [{}]
        for m in range(1, l_max + 1):
            C.append(add(mul(X, C[m - 1]), mul(Y, S[m - 1]), 1.0, -1.0))
            S.append(add(mul(X, S[m - 1]), mul(Y, C[m - 1])))
        comps: list[dict] = []
        if dim == 3:
            r2 = {(2, 0, 0): 1.0, (0, 2, 0): 1.0, (0, 0, 2): 1.0}
            P: dict = {}
            for m in range(l_max + 1):
                P[(m, m)] = {(0, 0, 0): float(np.prod(np.arange(1, 2 * m, 2))) if m else 1.0}
                if m + 1 <= l_max:
                    P[(m + 1, m)] = {k: (2 * m + 1) * v for k, v in mul(Z, P[(m, m)]).items()}
                for l in range(m + 2, l_max + 1):
                    P[(l, m)] = add(mul(Z, P[(l - 1, m)]), mul(r2, P[(l - 2, m)]),
                                    (2 * l - 1) / (l - m), -(l + m - 1) / (l - m))
            for l in range(l_max + 1):
                row = [None] * (2 * l + 1)
                for m in range(l + 1):
                    nrm = math.sqrt((2 * l + 1) / (4 * math.pi) * math.factorial(l - m) / math.factorial(l + m))
                    if m == 0:
                        row[l] = {k: nrm * v for k, v in P[(l, 0)].items()}
                    else:
                        row[l + m] = {k: math.sqrt(2.0) * nrm * v for k, v in mul(P[(l, m)], C[m]).items()}
                        row[l - m] = {k: math.sqrt(2.0) * nrm * v for k, v in mul(P[(l, m)], S[m]).items()}
                comps.extend(row)
        else:
            comps.append({(0, 0, 0): isotropic_harmonic(2)})
            for m in range(1, l_max + 1):
                comps.append({k: v / math.sqrt(math.pi) for k, v in C[m].items()})
                comps.append({k: v / math.sqrt(math.pi) for k, v in S[m].items()})
        monos = sorted({k for c in comps for k in c})
        idx = {k: i for i, k in enumerate(monos)}
        coef = np.zeros((len(comps), len(monos)))
        for a, c in enumerate(comps):
            for k, v in c.items():
                coef[a, idx[k]] = v
        self.L = l_max
        self.E = torch.tensor(monos, dtype=torch.int64)  # (nm, 3)
        self.C = torch.tensor(coef)  # (n_comp, nm)

    def _powers(self, D):
        p = [torch.ones_like(D)]
        for _ in range(self.L):
            p.append(p[-1] * D)
        return torch.stack(p, dim=-1)  # (P, 3, L+1)

    def values(self, D: torch.Tensor, order: int = 0):
        """S (P, n_comp) and, for order ≥ 1, ∇S (P, n_comp, 3), for order 2 ∇²S (P, n_comp, 3, 3)."""
        pw = self._powers(D)
        E = self.E
        ax = torch.arange(3)

        def mono(shift):  # Π_d c_d x_d^{e_d − shift_d}, with c the falling-factorial factors
            e = E - shift  # (nm, 3)
            ok = (e >= 0).all(dim=1)
            fac = torch.ones(E.shape[0], dtype=D.dtype)
            for d in range(3):
                for t in range(int(shift[d])):
                    fac = fac * (E[:, d] - t).to(D.dtype)
            v = pw[:, ax, e.clamp(min=0)]  # (P, nm, 3)
            return v.prod(dim=-1) * (fac * ok)

        zero = torch.zeros(3, dtype=torch.int64)
        S = mono(zero) @ self.C.T
        if order == 0:
            return S
        eye = torch.eye(3, dtype=torch.int64)
        dS = torch.stack([mono(eye[a]) @ self.C.T for a in range(3)], dim=-1)
        if order == 1:
            return S, dS
        d2S = torch.stack([torch.stack([mono(eye[a] + eye[b]) @ self.C.T for b in range(3)], -1)
                           for a in range(3)], dim=-2)
        return S, dS, d2S


def _coupling_tensor(dim: int, l_max: int) -> np.ndarray:
    """G_abc = ∫ Y_a Y_b Y_c by a quadrature exact for polynomials of degree 3·l_max."""
    if dim == 3:
        nz = (3 * l_max) // 2 + 2
        zq, wz = np.polynomial.legendre.leggauss(nz)
        nphi = 3 * l_max + 2
        phi = 2 * np.pi * np.arange(nphi) / nphi
        Z, PHI = np.meshgrid(zq, phi, indexing="ij")
        s = np.sqrt(1 - Z**2)
        u = np.stack([s * np.cos(PHI), s * np.sin(PHI), Z], -1).reshape(-1, 3)
        w = (wz[:, None] * np.full(nphi, 2 * np.pi / nphi)[None, :]).ravel()
        Y = real_sph_harm(torch.tensor(u), l_max).numpy()
    else:
        nt = 3 * l_max + 2
        th = 2 * np.pi * np.arange(nt) / nt
        u = np.stack([np.cos(th), np.sin(th)], -1)
        w = np.full(nt, 2 * np.pi / nt)
        Y = real_fourier(torch.tensor(u), l_max).numpy()
    G = np.einsum("q,qa,qb,qc->abc", w, Y, Y, Y)
    G[np.abs(G) < 1e-12] = 0.0
    return G


# ---------------------------------------------------------------------------------------
# the basis
# ---------------------------------------------------------------------------------------


class ACEBasis:
    """The features of an :class:`ACESpec`: one-particle basis φ (torch), and every
    invariant as a sparse polynomial of the density projections A.

    Attributes: ``n_rad`` radial functions, ``n_comp`` angular components,
    ``n_A = degree·n_comp + (n_rad − degree)`` (the extra pair radials are isotropic); ``names`` one label per feature (the constant one-body term is
    *not* a feature here — models add it); ``S`` (K, S_max) the A-indices feature k depends
    on (padded with ``n_A``, a dummy slot that holds the constant 1); monomials
    ``mono_k`` (T,), ``mono_coef`` (T,), ``mono_slot`` (T, 3) slots into the row S[k].
    """

    def __init__(self, spec: ACESpec):
        self.spec = spec
        D, lm, w = spec.degree, spec.l_max, spec.w_l
        self.channels = _channel_components(spec.dim, lm)
        self.n_comp = sum(len(c) for c in self.channels)
        self.n_pair = int(spec.pair_degree) or 2 * D
        self.n_rad = max(D, self.n_pair)
        # A layout: radial n < D with every angular component, then the extra pair-only
        # radials D ≤ n < n_pair with the isotropic component only
        self.n_mb = D
        self.n_A = D * self.n_comp + (self.n_rad - D)
        self.l_of_comp = torch.tensor([lam for lam, comps in enumerate(self.channels) for _ in comps])
        self._polys = _Polys(spec.dim, lm)
        deg = lambda n, lam: n + 1 + w * lam  # noqa: E731
        fidx = lambda n, a: n * self.n_comp + a if n < D else D * self.n_comp + (n - D)  # noqa: E731
        feats: list[tuple[str, list[tuple[float, tuple[int, ...]]]]] = []
        for n in range(self.n_pair):
            feats.append((f"2b n={n}", [(1.0, (fidx(n, 0),))]))
        if spec.body_order >= 3:
            for lam, comps in enumerate(self.channels):
                for n1 in range(D):
                    for n2 in range(n1, D):
                        if deg(n1, lam) + deg(n2, lam) <= D + 1e-9:
                            feats.append((f"3b n={n1},{n2} l={lam}",
                                          [(1.0, (fidx(n1, a), fidx(n2, a))) for a in comps]))
        if spec.body_order >= 4:
            G = _coupling_tensor(spec.dim, lm)
            factors = [(n, lam) for lam in range(lm + 1) for n in range(D) if deg(n, lam) <= D]
            for t in itertools.combinations_with_replacement(factors, 3):
                if sum(deg(n, lam) for n, lam in t) > D + 1e-9:
                    continue
                (n1, l1), (n2, l2), (n3, l3) = t
                mons = []
                for a in self.channels[l1]:
                    for b in self.channels[l2]:
                        for c in self.channels[l3]:
                            if G[a, b, c] != 0.0:
                                mons.append((float(G[a, b, c]), (fidx(n1, a), fidx(n2, b), fidx(n3, c))))
                if mons and self._nonzero(mons):
                    feats.append((f"4b n={n1},{n2},{n3} l={l1},{l2},{l3}", mons))
        self.names = [f[0] for f in feats]
        self.K = len(feats)
        # local slot tables
        S_rows, mk, mc, ms = [], [], [], []
        for k, (_, mons) in enumerate(feats):
            idx = sorted({i for _, m in mons for i in m})
            pos = {i: s for s, i in enumerate(idx)}
            S_rows.append(idx)
            for c, m in mons:
                slots = [pos[i] for i in m]
                mk.append(k)
                mc.append(c)
                ms.append(slots + [-1] * (3 - len(slots)))  # -1: the constant slot
        self.S_max = max(len(r) for r in S_rows)
        S = np.full((self.K, self.S_max), self.n_A, dtype=np.int64)
        for k, r in enumerate(S_rows):
            S[k, : len(r)] = r
        ms = np.array(ms, dtype=np.int64)
        ms[ms < 0] = self.S_max  # constant slot sits after the real ones
        self.S = torch.tensor(S)
        self.mono_k = torch.tensor(mk, dtype=torch.int64)
        self.mono_coef = torch.tensor(mc)
        self.mono_slot = torch.tensor(ms)
        self.body_orders = np.array([int(n[0]) for n in self.names])

    @staticmethod
    def _nonzero(mons) -> bool:
        """Drop a coupled triple whose symmetrised polynomial vanishes identically."""
        acc: dict[tuple[int, ...], float] = {}
        for c, m in mons:
            key = tuple(sorted(m))
            acc[key] = acc.get(key, 0.0) + c
        return any(abs(v) > 1e-12 for v in acc.values())

    # -- one-particle basis ---------------------------------------------------------------

    def _radial(self, r: torch.Tensor, order: int = 0):
        """R_n(r) (..., n_rad), dimensionless: Chebyshev polynomials × (1 − r/r_cut)³; with
        ``order`` ≥ 1 also dR/dr (1/Å) and, for 2, d²R/dr² (1/Å²), by the Chebyshev
        recurrences."""
        spec = self.spec
        xs = -2.0 / (spec.cutoff - spec.r_in)  # dx/dr
        x = 1.0 + xs * (r - spec.r_in)
        w = 1.0 - r / spec.cutoff
        env = w**3
        T, dT, d2T = [torch.ones_like(x), x], [torch.zeros_like(x), torch.ones_like(x)], [torch.zeros_like(x)] * 2
        for _ in range(2, self.n_rad):
            T.append(2.0 * x * T[-1] - T[-2])
            dT.append(2.0 * T[-2] + 2.0 * x * dT[-1] - dT[-2])
            d2T.append(4.0 * dT[-2] + 2.0 * x * d2T[-1] - d2T[-2])
        k = self.n_rad
        T = torch.stack(T[:k], dim=-1)
        R = T * env[..., None]
        if order == 0:
            return R
        dT = torch.stack(dT[:k], dim=-1)
        denv = -3.0 / spec.cutoff * w**2
        dR = dT * xs * env[..., None] + T * denv[..., None]
        if order == 1:
            return R, dR
        d2T = torch.stack(d2T[:k], dim=-1)
        d2env = 6.0 / spec.cutoff**2 * w
        d2R = d2T * xs**2 * env[..., None] + 2.0 * dT * xs * denv[..., None] + T * d2env[..., None]
        return R, dR, d2R

    def phi(self, D: torch.Tensor) -> torch.Tensor:
        """φ_{n,a}(D) for pair vectors D (..., 3) in Å → (..., n_A), dimensionless."""
        if self.spec.dim == 2:
            D = torch.cat([D[..., :2], torch.zeros_like(D[..., 2:3])], dim=-1)
        r = torch.linalg.norm(D, dim=-1)
        R = self._radial(r)
        lam = self.l_of_comp.to(D.dtype)
        Q = R[..., : self.n_mb, None] * r[..., None, None] ** (-lam)  # (..., D, n_comp)
        S = self._polys.values(D.reshape(-1, 3)).reshape(*D.shape[:-1], self.n_comp)
        mb = (Q * S[..., None, :]).reshape(*D.shape[:-1], self.n_mb * self.n_comp)
        extra = R[..., self.n_mb:] * S[..., :1]
        return torch.cat([mb, extra], dim=-1)

    def phi_derivatives(self, D: torch.Tensor, order: int = 1):
        """∇φ (P, n_A, 3) in 1/Å and, for order 2, also ∇²φ (P, n_A, 3, 3) in 1/Å².

        Analytic product rule on φ = Q_{n,λ}(r) S_a(D), Q = R_n r^{−λ}, S the solid
        harmonics: ∇φ = Q' û S + Q ∇S and
        ∇²φ = Q'' û ûᵀ S + (Q'/r)(I − û ûᵀ) S + Q' (û ∇Sᵀ + ∇S ûᵀ) + Q ∇²S,
        with R', R'' from the Chebyshev recurrences and ∇S, ∇²S from the explicit
        polynomials of :class:`_Polys`, evaluated per pair by the compiled kernel of
        :mod:`genanalysis.models.kernels` (no autodiff)."""
        from genanalysis.models import kernels

        Dn = np.ascontiguousarray(D.detach().numpy(), dtype=np.float64).reshape(-1, 3)
        _, J, H = kernels.pair_phi_derivatives(Dn, int(order), *kernels.tables(self))
        if order == 1:
            return torch.from_numpy(J)
        return torch.from_numpy(J), torch.from_numpy(H)

    def _phi_derivatives_autodiff(self, D: torch.Tensor, order: int = 1):
        """Reference implementation of :meth:`phi_derivatives` by nested forward-mode
        autodiff of the whole φ (slow; used by the tests)."""
        from torch.func import jvp, vmap

        P = D.shape[0]
        T = torch.eye(3, dtype=D.dtype)[:, None, :].expand(3, P, 3)
        J = vmap(lambda t: jvp(self.phi, (D,), (t,))[1])(T).permute(1, 2, 0)
        if order == 1:
            return J

        def column(ta):
            return vmap(lambda tc: jvp(lambda d: jvp(self.phi, (d,), (ta,))[1], (D,), (tc,))[1])(T)

        return J, vmap(column)(T).permute(2, 3, 0, 1)

    # -- invariants as polynomials of A ----------------------------------------------------

    def local(self, A: torch.Tensor) -> torch.Tensor:
        """Gather A (n, n_A) into the per-feature slots (n, K, S_max + 1), last slot = 1."""
        A1 = torch.cat([A, torch.ones(A.shape[0], 1, dtype=A.dtype)], dim=1)
        loc = A1[:, self.S]
        return torch.cat([loc, torch.ones(A.shape[0], self.K, 1, dtype=A.dtype)], dim=2)

    def _terms(self, A: torch.Tensor):
        loc = self.local(A)  # (n, K, S+1)
        v = loc[:, self.mono_k[:, None], self.mono_slot]  # (n, T, 3)
        return v

    def features(self, A: torch.Tensor) -> torch.Tensor:
        """B (n, K): the invariants of every site, from its projections A (n, n_A)."""
        v = self._terms(A)
        vals = self.mono_coef * v.prod(dim=-1)
        B = torch.zeros(A.shape[0], self.K, dtype=A.dtype)
        return B.index_add_(1, self.mono_k, vals)

    def feature_derivatives(self, A: torch.Tensor, second: bool = True):
        """g (n, K, S_max) = ∂B_k/∂A_{S[k,s]} and, if ``second``, M (n, K, S_max, S_max)
        = ∂²B_k/∂A∂A in local slots. Exact: every B_k is a polynomial of degree ≤ 3."""
        n = A.shape[0]
        v = self._terms(A)  # (n, T, 3)
        c = self.mono_coef
        Sx = self.S_max + 1
        g = torch.zeros(n, self.K * Sx, dtype=A.dtype)
        base = self.mono_k * Sx
        others = [(1, 2), (0, 2), (0, 1)]
        for s in range(3):
            o1, o2 = others[s]
            g.index_add_(1, base + self.mono_slot[:, s], c * v[:, :, o1] * v[:, :, o2])
        g = g.view(n, self.K, Sx)[:, :, : self.S_max]
        if not second:
            return g, None
        M = torch.zeros(n, self.K * Sx * Sx, dtype=A.dtype)
        base2 = self.mono_k * Sx * Sx
        for s, t in itertools.permutations(range(3), 2):
            rest = 3 - s - t
            M.index_add_(1, base2 + self.mono_slot[:, s] * Sx + self.mono_slot[:, t], c * v[:, :, rest])
        M = M.view(n, self.K, Sx, Sx)[:, :, : self.S_max, : self.S_max]
        return g, M


class BasisModel:
    """What the models on an :class:`ACEBasis` share (the linear, direct-force and network
    models): the spec and its basis, the cutoff (Å), the coefficient vector's check, and
    the refusal of a configuration of another dimension."""

    def __init__(self, spec: ACESpec):
        self.spec = spec
        self.basis = ACEBasis(spec)

    @property
    def cutoff(self) -> float:
        return self.spec.cutoff

    @staticmethod
    def _coefficients(coef, size: int) -> np.ndarray:
        """``coef`` as a float copy of shape (size,) (zeros for None); InputError otherwise."""
        out = np.zeros(size) if coef is None else np.asarray(coef, dtype=np.float64).copy()
        if out.shape != (size,):
            raise InputError(f"coefficient vector has shape {out.shape}; the model needs ({size},)")
        return out

    def _check(self, atoms) -> None:
        from genanalysis.lattice import atoms_dim

        d = atoms_dim(atoms)
        if d != self.spec.dim:
            raise InputError(f"configuration has dim={d} but the model was built for dim={self.spec.dim}")
