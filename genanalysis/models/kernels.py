"""Compiled per-pair and per-site kernels of the ACE-style models (numba).

Units: pair vectors Å; φ dimensionless, ∇φ 1/Å, ∇²φ 1/Å²; site energies and their
A-derivatives eV; pair gradients eV/Å; Hessians eV/Å².

Why compiled: the one-particle basis φ(D) of :mod:`genanalysis.models.basis` is a few
hundred floating-point operations per pair (a Chebyshev recurrence, a handful of
monomials of the pair vector, their products), and a site's invariants a few hundred more.
Written with array operations, every one of these becomes a separate pass over (pairs ×
functions) temporaries, and call and memory overhead, not arithmetic, sets the cost. Here
the factors of a block of pairs (a centre's neighbours) are computed together with the
pair index innermost, and the site polynomial runs over blocks of sites innermost: loops
the compiler vectorises, so that neither the Chebyshev recurrence's chain of dependent
multiplications nor the scattered updates of ∂ε/∂A serialise the work.

The formulas are those of :meth:`ACEBasis.phi_derivatives` (docs/models.md §1):

* R_n(r) = T_n(x) (1 − r/r_c)³, x = 1 − 2 (r − r_in)/(r_c − r_in), n < n_rad;
* S_a(D) = Σ_c C[a, c] x^i y^j z^k, the solid harmonics (Fourier modes in 2D) as explicit
  polynomials (coefficient table of :class:`basis._Polys`);
* φ_{n,a} = Q_{n,λ(a)} S_a with Q = R_n r^{−λ} (n < degree), and the pair-only radials
  φ = R_n S_0 (n ≥ degree);
* ∇φ = Q' û S + Q ∇S,  ∇²φ = Q'' û ûᵀ S + (Q'/r)(I − û ûᵀ) S + Q' (û ∇Sᵀ + ∇S ûᵀ) + Q ∇²S.

In 2D (atoms in the plane z = 0) the z-components of D are taken as zero and the
z-derivatives vanish (the identity in the second term is diag(1, 1, 0)).

The site part of a linear model, ε(A) = c_0 + Σ_t w_t A_{a_t} A_{b_t} A_{c_t}, is a sum of
monomials in the density projections A (index n_A = the constant 1), so its gradient, its
Hessian and its Hessian-vector product are exact sums over the same list.

Every kernel is compiled once and cached on disk (``cache=True``): the first call in a
fresh installation pays a few seconds of compilation, later processes load it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["BasisTables", "tables", "feature_tables", "projections", "pair_vjp", "pair_curvature", "pair_phi_derivatives",
           "pair_factors", "design_efv", "design_hessian", "site_energy_grad", "site_hessian", "hessian_blocks", "block_pattern"]


class BasisTables:
    """The numeric tables of an :class:`~genanalysis.models.basis.ACEBasis` the kernels read
    (plain numpy arrays, in the basis's layout of A)."""

    def __init__(self, basis):
        spec = basis.spec
        C = basis._polys.C.numpy()
        E = basis._polys.E.numpy().astype(np.int64)
        L = spec.l_max
        # every monomial of degree ≤ L in degree order, each its parent times one axis
        allm = sorted(((i, j, k) for i in range(L + 1) for j in range(L + 1 - i) for k in range(L + 1 - i - j)),
                      key=lambda e: (sum(e), e))
        pos = {e: m for m, e in enumerate(allm)}
        mon = np.zeros((len(allm), 2), dtype=np.int64)
        for m, e in enumerate(allm[1:], start=1):
            ax = next(c for c in range(3) if e[c] > 0)
            mon[m] = pos[tuple(e[c] - (c == ax) for c in range(3))], ax
        # S_a (block 0), ∂_c S_a (block 1 + c), ∂_c∂_e S_a for c ≤ e (block 4 + 3c + e), row
        # block · n_comp + a of the angular rows: coefficient × monomial, by derivative order
        trip: list[list[tuple[int, int, int, float]]] = [[], [], []]
        for a in range(C.shape[0]):
            for c_ in np.flatnonzero(C[a]):
                e, cf = tuple(int(v) for v in E[c_]), float(C[a, c_])
                trip[0].append((0, a, pos[e], cf))
                for c in range(3):
                    if e[c] > 0:
                        d = tuple(e[k] - (k == c) for k in range(3))
                        trip[1].append((1 + c, a, pos[d], cf * e[c]))
                        for f in range(c, 3):
                            if d[f] > 0:
                                d2 = tuple(d[k] - (k == f) for k in range(3))
                                trip[2].append((4 + 3 * c + f, a, pos[d2], cf * e[c] * d[f]))
        flat = trip[0] + trip[1] + trip[2]
        counts = np.cumsum([len(t) for t in trip])
        self.scal = np.array([spec.cutoff, spec.r_in, 0.0 if spec.dim == 2 else 1.0])
        self.ints = np.array([basis.n_rad, basis.n_mb, basis.n_comp, basis.n_A, L, len(allm), *counts], dtype=np.int64)
        self.lam = basis.l_of_comp.numpy().astype(np.int64)
        self.mon = mon
        nc = C.shape[0]
        self.trip = np.array([(t[0] * nc + t[1], t[2]) for t in flat], dtype=np.int64).reshape(-1, 2)
        self.tcoef = np.array([t[3] for t in flat], dtype=np.float64)

    def args(self):
        return self.scal, self.ints, self.lam, self.mon, self.trip, self.tcoef


def feature_tables(basis) -> tuple:
    """(feature of each monomial (T,), its coefficient (T,), its A-indices (T, 3) with n_A
    = the constant 1, K): the invariants B_k = Σ_{t: mono_k[t] = k} mono_coef[t] Π_s A1[gidx[t, s]]
    as the design and feature kernels read them (built once per basis object)."""
    t = basis.__dict__.get("_feature_tables")
    if t is None:
        S1 = np.concatenate([basis.S.numpy(), np.full((basis.K, 1), basis.n_A)], axis=1)
        mk = np.ascontiguousarray(basis.mono_k.numpy(), dtype=np.int64)
        gidx = np.ascontiguousarray(S1[mk[:, None], basis.mono_slot.numpy()], dtype=np.int64)
        t = basis._feature_tables = (mk, np.ascontiguousarray(basis.mono_coef.numpy(), dtype=np.float64), gidx,
                                     int(basis.K))
    return t


def tables(basis) -> tuple:
    """The kernels' table arguments of ``basis`` (built once per basis object)."""
    t = basis.__dict__.get("_kernel_tables")
    if t is None:
        t = basis._kernel_tables = BasisTables(basis)
    return t.args()


# ------------------------------------------------------------------------------ a block of pairs
#
# The factors of a block of z pairs are computed together, pair index innermost (contiguous),
# so that every step — the Chebyshev recurrence, the monomials, the angular sums — is a loop
# over the block's pairs that the compiler vectorises; one pair at a time, the recurrence is a
# chain of dependent multiplications and the cost is latency, not arithmetic. Row layout of the
# block scratch ``wk`` (rows × z_block), offsets from :func:`_rows`:
#   R_k, R_k', R_k'' (k < n_rad) at k, n_rad + k, 2 n_rad + k; T_k, T_k', T_k'' (Chebyshev)
#   at oT + the same; monomial m at oM + m; S_a, ∂_c S_a, ∂_c∂_e S_a at oS + a,
#   oS + (1 + c) n_comp + a, oS + (4 + 3c + e) n_comp + a; r, 1/r, û, x, envelope and its two
#   r-derivatives, D at oG + 0…11; r^{−λ} at oL + λ.


@njit(cache=True)
def _rows(ints):
    """(oT, oM, oS, oG, oL, rows) of the block scratch (see above)."""
    n_rad, nc, L, nm = ints[0], ints[2], ints[4], ints[5]
    oT = 3 * n_rad
    oM = 6 * n_rad
    oS = oM + nm
    oG = oS + 13 * nc
    oL = oG + 12
    return oT, oM, oS, oG, oL, oL + L + 1


@njit(cache=True)
def _scratch(ints, z):
    """Block scratch of :func:`_factors` for blocks of up to ``z`` pairs."""
    return np.zeros((_rows(ints)[5], max(z, 1)))


@njit(cache=True)
def _factors(D, p0, z, scal, ints, mon, trip, tcoef, order, wk):
    """The radial and angular factors of the pair vectors D[p0 : p0 + z] (Å; the z-component
    taken as 0 in 2D)
    into ``wk`` (:func:`_scratch`): R_n and its r-derivatives up to ``order`` (R' always),
    S_a and its derivatives up to ``order``, r, 1/r, û, r^{−λ}. Every φ_{n,a} is a product
    of one radial and one angular factor.

    The angular part is branch-free: the monomials x^i y^j z^k of degree ≤ l_max, each its
    parent times one coordinate (``mon``), then S_a, ∂_c S_a, ∂_c∂_e S_a (c ≤ e) as sums of
    coefficient × monomial over the flat list ``trip`` (row, monomial), ``tcoef``
    (:class:`BasisTables`), its first ints[6 + order] entries."""
    rc, r_in, mz = scal[0], scal[1], scal[2]
    n_rad, nc, L, nm = ints[0], ints[2], ints[4], ints[5]
    oT, oM, oS, oG, oL, _ = _rows(ints)
    xs = -2.0 / (rc - r_in)
    for q in range(z):
        d0, d1, d2 = D[p0 + q, 0], D[p0 + q, 1], D[p0 + q, 2]
        if mz == 0.0:
            d2 = 0.0
        r = np.sqrt(d0 * d0 + d1 * d1 + d2 * d2)
        ir = 1.0 / r
        w = 1.0 - r / rc
        wk[oG, q], wk[oG + 1, q] = r, ir
        wk[oG + 2, q], wk[oG + 3, q], wk[oG + 4, q] = d0 * ir, d1 * ir, d2 * ir
        wk[oG + 5, q] = 1.0 + xs * (r - r_in)
        wk[oG + 6, q] = w * w * w
        wk[oG + 7, q] = -3.0 / rc * w * w
        wk[oG + 8, q] = 6.0 / (rc * rc) * w
        wk[oG + 9, q], wk[oG + 10, q], wk[oG + 11, q] = d0, d1, d2
    # Chebyshev radials T_k(x) with the (1 − r/r_c)³ envelope, and their r-derivatives
    t0, t1, t2 = oT, oT + n_rad, oT + 2 * n_rad
    for q in range(z):
        wk[t0, q], wk[t1, q], wk[t2, q] = 1.0, 0.0, 0.0
    if n_rad > 1:
        for q in range(z):
            wk[t0 + 1, q], wk[t1 + 1, q], wk[t2 + 1, q] = wk[oG + 5, q], 1.0, 0.0
    for k in range(2, n_rad):
        for q in range(z):
            x = wk[oG + 5, q]
            wk[t0 + k, q] = 2.0 * x * wk[t0 + k - 1, q] - wk[t0 + k - 2, q]
            wk[t1 + k, q] = 2.0 * wk[t0 + k - 1, q] + 2.0 * x * wk[t1 + k - 1, q] - wk[t1 + k - 2, q]
        if order >= 2:
            for q in range(z):
                x = wk[oG + 5, q]
                wk[t2 + k, q] = 4.0 * wk[t1 + k - 1, q] + 2.0 * x * wk[t2 + k - 1, q] - wk[t2 + k - 2, q]
    for k in range(n_rad):
        for q in range(z):
            env, denv = wk[oG + 6, q], wk[oG + 7, q]
            wk[k, q] = wk[t0 + k, q] * env
            wk[n_rad + k, q] = wk[t1 + k, q] * xs * env + wk[t0 + k, q] * denv
        if order >= 2:
            for q in range(z):
                env, denv, d2env = wk[oG + 6, q], wk[oG + 7, q], wk[oG + 8, q]
                wk[2 * n_rad + k, q] = (wk[t2 + k, q] * xs * xs * env + 2.0 * wk[t1 + k, q] * xs * denv
                                        + wk[t0 + k, q] * d2env)
    # monomials of degree ≤ L: mv[m] = mv[parent] · D[axis]
    for q in range(z):
        wk[oM, q] = 1.0
    for m in range(1, nm):
        src, ax = oM + mon[m, 0], oG + 9 + mon[m, 1]
        for q in range(z):
            wk[oM + m, q] = wk[src, q] * wk[ax, q]
    rows = 1 if order == 0 else (4 if order == 1 else 13)
    for s in range(oS, oS + rows * nc):
        for q in range(z):
            wk[s, q] = 0.0
    for t in range(ints[6 + order]):
        s, m, cf = oS + trip[t, 0], oM + trip[t, 1], tcoef[t]
        for q in range(z):
            wk[s, q] += cf * wk[m, q]
    if order >= 2:  # ∂_e∂_c = ∂_c∂_e
        for c in range(3):
            for e in range(c):
                for a in range(nc):
                    for q in range(z):
                        wk[oS + (4 + 3 * c + e) * nc + a, q] = wk[oS + (4 + 3 * e + c) * nc + a, q]
    # r^{−λ} by repeated multiplication, one value per channel
    for q in range(z):
        wk[oL, q] = 1.0
    for k in range(1, L + 1):
        for q in range(z):
            wk[oL + k, q] = wk[oL + k - 1, q] * wk[oG + 1, q]


@njit(cache=True)
def _pair(wk, q, scal, ints, lam, order, phi, J, H):
    """φ (n_A,), and for order ≥ 1 ∇φ (n_A, 3), for order 2 ∇²φ (n_A, 3, 3), of pair ``q``
    of a block whose factors :func:`_factors` put into ``wk``, into the given arrays:
    φ = Q S_a with Q = R_n r^{−λ} (n < degree), φ = R_n S_0 (n ≥ degree) and the product
    rule of the module docstring."""
    mz = scal[2]
    n_rad, Dm, nc = ints[0], ints[1], ints[2]
    oT, oM, oS, oG, oL, _ = _rows(ints)
    r, ir = wk[oG, q], wk[oG + 1, q]
    u = (wk[oG + 2, q], wk[oG + 3, q], wk[oG + 4, q])
    f = 0
    for n in range(Dm):
        R, dR = wk[n, q], wk[n_rad + n, q]
        for a in range(nc):
            la = float(lam[a])
            rl = wk[oL + lam[a], q]
            S = wk[oS + a, q]
            Q = R * rl
            phi[f] = Q * S
            if order >= 1:
                dQ = (dR - la * R * ir) * rl
                for c in range(3):
                    J[f, c] = dQ * u[c] * S + Q * wk[oS + (1 + c) * nc + a, q]
                if order >= 2:
                    d2Q = (wk[2 * n_rad + n, q] - 2.0 * la * dR * ir + la * (la + 1.0) * R * (ir * ir)) * rl
                    for c in range(3):
                        for e in range(3):
                            uu = u[c] * u[e]
                            pr = ((1.0 if (c == e and (c < 2 or mz != 0.0)) else 0.0) - uu) / r
                            H[f, c, e] = (d2Q * (uu * S) + dQ * (pr * S + (u[c] * wk[oS + (1 + e) * nc + a, q]
                                                                         + wk[oS + (1 + c) * nc + a, q] * u[e]))
                                          + Q * wk[oS + (4 + 3 * c + e) * nc + a, q])
            f += 1
    S0 = wk[oS, q]
    for n in range(Dm, n_rad):
        phi[f] = wk[n, q] * S0
        if order >= 1:
            for c in range(3):
                J[f, c] = (wk[n_rad + n, q] * S0) * u[c]
            if order >= 2:
                for c in range(3):
                    for e in range(3):
                        uu = u[c] * u[e]
                        pr = ((1.0 if (c == e and (c < 2 or mz != 0.0)) else 0.0) - uu) / r
                        H[f, c, e] = (wk[2 * n_rad + n, q] * uu + wk[n_rad + n, q] * pr) * S0
        f += 1


#: pairs per block of the passes over a pair list
_BLOCK = 64


@njit(cache=True)
def _contract(J, g, nA, out, p):
    """out[p] = Σ_f g_f ∇φ_f for one pair's ∇φ ``J`` (n_A, 3)."""
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    for f in range(nA):
        gf = g[f]
        s0 += gf * J[f, 0]
        s1 += gf * J[f, 1]
        s2 += gf * J[f, 2]
    out[p, 0], out[p, 1], out[p, 2] = s0, s1, s2


# ------------------------------------------------------------------------------ pair passes


@njit(cache=True)
def pair_phi_derivatives(D, order, scal, ints, lam, mon, trip, tcoef):
    """φ (P, n_A), ∇φ (P, n_A, 3), ∇²φ (P, n_A, 3, 3) (the last two zero-sized below
    ``order``) of pair vectors D (P, 3) Å."""
    P, nA = D.shape[0], ints[3]
    wk = _scratch(ints, _BLOCK)
    phi = np.zeros((P, nA))
    J = np.zeros((P if order >= 1 else 0, nA, 3))
    H = np.zeros((P if order >= 2 else 0, nA, 3, 3))
    Jd = np.zeros((nA, 3))
    Hd = np.zeros((nA, 3, 3))
    for p0 in range(0, P, _BLOCK):
        z = min(_BLOCK, P - p0)
        _factors(D, p0, z, scal, ints, mon, trip, tcoef, order, wk)
        for q in range(z):
            p = p0 + q
            Jp = J[p] if order >= 1 else Jd
            Hp = H[p] if order >= 2 else Hd
            _pair(wk, q, scal, ints, lam, order, phi[p], Jp, Hp)
    return phi, J, H


@njit(cache=True)
def projections(D, i, n, scal, ints, lam, mon, trip, tcoef):
    """A (n, n_A) = Σ_{p: i_p = a} φ(D_p), dimensionless."""
    nA = ints[3]
    wk = _scratch(ints, _BLOCK)
    phi, J, H = np.zeros(nA), np.zeros((nA, 3)), np.zeros((nA, 3, 3))
    A = np.zeros((n, nA))
    P = D.shape[0]
    for p0 in range(0, P, _BLOCK):
        z = min(_BLOCK, P - p0)
        _factors(D, p0, z, scal, ints, mon, trip, tcoef, 0, wk)
        for q in range(z):
            _pair(wk, q, scal, ints, lam, 0, phi, J, H)
            a = i[p0 + q]
            for f in range(nA):
                A[a, f] += phi[f]
    return A


@njit(cache=True)
def pair_vjp(D, i, G, scal, ints, lam, mon, trip, tcoef):
    """∂E/∂D_p = Σ_f G[i_p, f] ∇φ_f(D_p) (P, 3), eV/Å, for G = ∂ε/∂A (n, n_A) eV."""
    nA = ints[3]
    wk = _scratch(ints, _BLOCK)
    phi, J, H = np.zeros(nA), np.zeros((nA, 3)), np.zeros((nA, 3, 3))
    P = D.shape[0]
    out = np.zeros((P, 3))
    for p0 in range(0, P, _BLOCK):
        z = min(_BLOCK, P - p0)
        _factors(D, p0, z, scal, ints, mon, trip, tcoef, 1, wk)
        for q in range(z):
            _pair(wk, q, scal, ints, lam, 1, phi, J, H)
            _contract(J, G[i[p0 + q]], nA, out, p0 + q)
    return out


@njit(cache=True)
def pair_curvature(D, i, G, scal, ints, lam, mon, trip, tcoef):
    """T_p = Σ_f G[i_p, f] ∇²φ_f(D_p) (P, 3, 3), eV/Å²: the δ_pq part of the pair-space
    Hessian."""
    nA = ints[3]
    wk = _scratch(ints, _BLOCK)
    phi, J, H = np.zeros(nA), np.zeros((nA, 3)), np.zeros((nA, 3, 3))
    P = D.shape[0]
    T = np.zeros((P, 3, 3))
    for p0 in range(0, P, _BLOCK):
        z = min(_BLOCK, P - p0)
        _factors(D, p0, z, scal, ints, mon, trip, tcoef, 2, wk)
        for q in range(z):
            _pair(wk, q, scal, ints, lam, 2, phi, J, H)
            p = p0 + q
            a = i[p]
            for f in range(nA):
                g = G[a, f]
                for c in range(3):
                    for e in range(3):
                        T[p, c, e] += g * H[f, c, e]
    return T


# ------------------------------------------------------------------------------ linear sites


#: sites per block of the site polynomial: the monomial loop runs over a block's sites
#: innermost (one SIMD vector), so that the scattered updates of ∂ε/∂A do not serialise
_SITES = 16
#: sites per block of the Hessian product: it reads the block's pair factors twice (δA, then
#: the contraction), and 8 centres' factors stay in cache between the two
_HVP_SITES = 8


@njit(cache=True)
def _site_block(a1, w, idx, e, g):
    """ε − c_0 = Σ_t w_t Π_s a1[idx[t, s]] into e (_SITES,) and ∂ε/∂A1 into g (n_A + 1,
    _SITES) for a block of sites, a1 (n_A + 1, _SITES) = their A with the constant 1 at
    row n_A (unused columns: any finite values).

    Consecutive monomials with the same first two indices (i0, i1) share their partial
    product (:meth:`LinearACE.site_tables` sorts them so): for such a run,
    σ = Σ_t w_t a1[i2_t], and ε += a1[i0] a1[i1] σ, g[i0] += a1[i1] σ, g[i1] += a1[i0] σ,
    g[i2_t] += w_t a1[i0] a1[i1] — one multiply-add and one update of g per monomial
    instead of four and three."""
    for b in range(_SITES):
        e[b] = 0.0
    for f in range(g.shape[0]):
        for b in range(_SITES):
            g[f, b] = 0.0
    T = w.shape[0]
    sig = np.zeros(_SITES)
    p01 = np.zeros(_SITES)
    t = 0
    while t < T:
        i0, i1 = idx[t, 0], idx[t, 1]
        for b in range(_SITES):
            p01[b] = a1[i0, b] * a1[i1, b]
            sig[b] = 0.0
        while t < T and idx[t, 0] == i0 and idx[t, 1] == i1:
            i2, wt = idx[t, 2], w[t]
            for b in range(_SITES):
                sig[b] += wt * a1[i2, b]
                g[i2, b] += wt * p01[b]
            t += 1
        for b in range(_SITES):
            e[b] += p01[b] * sig[b]
            g[i0, b] += a1[i1, b] * sig[b]
            g[i1, b] += a1[i0, b] * sig[b]


@njit(cache=True)
def _site_hvp_block(a1, d1, w, idx, dg):
    """δg (n_A + 1, _HVP_SITES) = ∂²ε/∂A² · δA for a block of sites, from a1 of
    :func:`_site_block` and δA in d1 (n_A + 1, _HVP_SITES; row n_A zero)."""
    for f in range(dg.shape[0]):
        for b in range(_HVP_SITES):
            dg[f, b] = 0.0
    for t in range(w.shape[0]):
        i0, i1, i2 = idx[t, 0], idx[t, 1], idx[t, 2]
        wt = w[t]
        for b in range(_HVP_SITES):
            x0, x1, x2 = a1[i0, b], a1[i1, b], a1[i2, b]
            y0, y1, y2 = d1[i0, b], d1[i1, b], d1[i2, b]
            dg[i0, b] += wt * (y1 * x2 + x1 * y2)
            dg[i1, b] += wt * (y0 * x2 + x0 * y2)
            dg[i2, b] += wt * (y0 * x1 + x0 * y1)


@njit(cache=True)
def site_energy_grad(A, w, idx, grad):
    """ε_a − c_0 = Σ_t w_t Π_s A1[a, idx[t, s]] (n,) eV and, if ``grad``, ∂ε/∂A (n, n_A) eV;
    A1 is A with a constant 1 appended (index n_A)."""
    n, nA = A.shape
    e = np.zeros(n)
    g = np.zeros((n if grad else 0, nA))
    a1 = np.ones((nA + 1, _SITES))
    eb = np.zeros(_SITES)
    gb = np.zeros((nA + 1, _SITES))
    for c0 in range(0, n, _SITES):
        nb = min(_SITES, n - c0)
        for b in range(nb):
            for f in range(nA):
                a1[f, b] = A[c0 + b, f]
        _site_block(a1, w, idx, eb, gb)
        for b in range(nb):
            e[c0 + b] = eb[b]
            if grad:
                for f in range(nA):
                    g[c0 + b, f] = gb[f, b]
    return e, g


@njit(cache=True)
def site_hessian(A, w, idx):
    """M (n, n_A, n_A) = ∂²ε/∂A² per site, eV."""
    n, nA = A.shape
    M = np.zeros((n, nA + 1, nA + 1))
    a1 = np.ones(nA + 1)
    for a in range(n):
        for f in range(nA):
            a1[f] = A[a, f]
        for t in range(w.shape[0]):
            i0, i1, i2 = idx[t, 0], idx[t, 1], idx[t, 2]
            wt = w[t]
            M[a, i0, i1] += wt * a1[i2]
            M[a, i1, i0] += wt * a1[i2]
            M[a, i0, i2] += wt * a1[i1]
            M[a, i2, i0] += wt * a1[i1]
            M[a, i1, i2] += wt * a1[i0]
            M[a, i2, i1] += wt * a1[i0]
    return np.ascontiguousarray(M[:, :nA, :nA])


# ------------------------------------------------------------------------------ sparse Hessian


@njit(cache=True)
def block_pattern(n, start, j):
    """Block sparsity of the position Hessian: atoms x, y couple when both are local atoms
    (the centre or a neighbour) of one centre. ``start`` (n+1) pair offsets of each centre
    (pairs sorted by centre), ``j`` neighbour atoms. Returns (indptr (n+1), indices) of
    the (n × n) block pattern, columns sorted."""
    # centres each atom is local to: itself and the centres it neighbours
    cnt = np.ones(n, dtype=np.int64)
    for p in range(j.shape[0]):
        cnt[j[p]] += 1
    cptr = np.zeros(n + 1, dtype=np.int64)
    for a in range(n):
        cptr[a + 1] = cptr[a] + cnt[a]
    cen = np.empty(cptr[n], dtype=np.int64)
    fill = cptr[:-1].copy()
    for a in range(n):
        cen[fill[a]] = a
        fill[a] += 1
    for c in range(n):
        for p in range(start[c], start[c + 1]):
            b = j[p]
            cen[fill[b]] = c
            fill[b] += 1
    mark = -np.ones(n, dtype=np.int64)
    rows = np.zeros(n + 1, dtype=np.int64)
    buf = np.empty(n, dtype=np.int64)
    # first pass: counts; second: indices
    for sweep in range(2):
        if sweep == 1:
            indices = np.empty(rows[n], dtype=np.int64)
            mark[:] = -1
        for a in range(n):
            m = 0
            for t in range(cptr[a], cptr[a + 1]):
                c = cen[t]
                for p in range(start[c] - 1, start[c + 1]):  # the centre, then its neighbours
                    b = c if p < start[c] else j[p]
                    if mark[b] != a:
                        mark[b] = a
                        buf[m] = b
                        m += 1
            if sweep == 0:
                rows[a + 1] = rows[a] + m
            else:
                s = np.sort(buf[:m])
                indices[rows[a]:rows[a] + m] = s
    return rows, indices


@njit(cache=True)
def _find(indices, lo, hi, col):
    return lo + np.searchsorted(indices[lo:hi], col)


@njit(cache=True)
def hessian_blocks(D, start, j, centres, G, M, indptr, indices, data, scal, ints, lam, mon, trip, tcoef):
    """Add the position-Hessian blocks of the site energies of ``centres`` (eV/Å²) into the
    block-sparse ``data`` (nnz, 3, 3) with pattern (indptr, indices).

    Per centre i with pairs p: pair-space Hessian h_pq = ∇φ_pᵀ M_i ∇φ_q + δ_pq Σ_f G_if ∇²φ_f(D_p);
    D_p = x_{j_p} − x_i gives blocks (j_p, j_q) += h_pq, (i, j_q) −= Σ_p h_pq,
    (j_p, i) −= Σ_q h_pq, (i, i) += Σ_pq h_pq. ``G`` (c, n_A), ``M`` (c, n_A, n_A) of the
    centres in order."""
    nA = ints[3]
    phi = np.zeros(nA)
    zmax = 0
    for k in range(centres.shape[0]):
        c = centres[k]
        zmax = max(zmax, start[c + 1] - start[c])
    wk = _scratch(ints, zmax)
    Jl = np.zeros((nA, 3 * zmax))
    Hp = np.zeros((nA, 3, 3))
    Jp = np.zeros((nA, 3))
    Tl = np.zeros((zmax, 3, 3))
    loc = np.zeros(zmax + 1, dtype=np.int64)
    for k in range(centres.shape[0]):
        ci = centres[k]
        p0 = start[ci]
        z = start[ci + 1] - p0
        if z == 0:
            continue
        _factors(D, p0, z, scal, ints, mon, trip, tcoef, 2, wk)
        for q in range(z):
            _pair(wk, q, scal, ints, lam, 2, phi, Jp, Hp)
            for f in range(nA):
                for c in range(3):
                    Jl[f, 3 * q + c] = Jp[f, c]
            for c in range(3):
                for e in range(3):
                    s = 0.0
                    for f in range(nA):
                        s += G[k, f] * Hp[f, c, e]
                    Tl[q, c, e] = s
        Jz = np.ascontiguousarray(Jl[:, : 3 * z])
        h = Jz.T @ (np.ascontiguousarray(M[k]) @ Jz)  # (3z, 3z)
        for q in range(z):
            for c in range(3):
                for e in range(3):
                    h[3 * q + c, 3 * q + e] += Tl[q, c, e]
        # local atoms: 0 = the centre, 1 + q = neighbour q; row/column sums for the centre
        loc[0] = ci
        for q in range(z):
            loc[q + 1] = j[p0 + q]
        hs = np.zeros((z + 1, 3, z + 1, 3))
        for q in range(z):
            for c in range(3):
                for s in range(z):
                    for e in range(3):
                        v = h[3 * q + c, 3 * s + e]
                        hs[q + 1, c, s + 1, e] += v
                        hs[0, c, s + 1, e] -= v
                        hs[q + 1, c, 0, e] -= v
                        hs[0, c, 0, e] += v
        for x in range(z + 1):
            ax = loc[x]
            lo, hi = indptr[ax], indptr[ax + 1]
            for y in range(z + 1):
                pos = _find(indices, lo, hi, loc[y])
                for c in range(3):
                    for e in range(3):
                        data[pos, c, e] += hs[x, c, y, e]
    return data


# ------------------------------------------------------------------------------ linear model, fused
#
# The fused passes work per centre on the factored basis (docs/models.md §2):
# φ_{n,a} = R_n S̃_a and ∇φ_{n,a} = R_n' S̃_a û + R_n V_a with S̃_a = r^{−λ} S_a and
# V_a = r^{−λ} ∇S_a − (λ/r) S̃_a û (n < degree; the pair-only radials n ≥ degree take a = 0,
# the constant S_0, λ = 0, V_0 = 0). A centre's A is then a sum over its pairs of
# radial × angular products, and a contraction Σ_f g_f ∇φ_f is two radial sums per
# angular component, γ_a = Σ_n g_{n,a} R_n and δ_a = Σ_n g_{n,a} R_n', and
# (Σ_a δ_a S̃_a) û + Σ_a γ_a V_a — each a loop over the block's pairs. Radial factors are
# rows of a 2D array (R_n at row n, R_n' at row n_rad + n), angular ones (4, n_comp, ·)
# (S̃, V_x, V_y, V_z), û (3, ·), pairs along the last axis at a column offset.


@njit(cache=True)
def _zmax(start):
    zmax = 1
    for c in range(start.shape[0] - 1):
        zmax = max(zmax, start[c + 1] - start[c])
    return zmax


@njit(cache=True)
def _angular(wk, z, ints, lam, FS, o):
    """S̃_a and V_a of the block's pairs (factors in ``wk``) into FS[:, :, o : o + z]."""
    nc = ints[2]
    oT, oM, oS, oG, oL, _ = _rows(ints)
    for a in range(nc):
        la = float(lam[a])
        rl = oL + lam[a]
        for q in range(z):
            st = wk[rl, q] * wk[oS + a, q]
            li = la * wk[oG + 1, q] * st
            FS[0, a, o + q] = st
            FS[1, a, o + q] = wk[rl, q] * wk[oS + nc + a, q] - li * wk[oG + 2, q]
            FS[2, a, o + q] = wk[rl, q] * wk[oS + 2 * nc + a, q] - li * wk[oG + 3, q]
            FS[3, a, o + q] = wk[rl, q] * wk[oS + 3 * nc + a, q] - li * wk[oG + 4, q]


@njit(cache=True, fastmath={"reassoc", "contract"})
def _radial_sum(R, o, X, ox, Y, oy, z, ints, with_y, out):
    """out_{n,a} = Σ_q R_n X_a (+ R_n' Y_a if ``with_y``) over the block's pairs q, for the
    features f = (n, a) (pair-only radials: a = 0); R's rows from column ``o``, X and Y
    (n_comp, ·) from columns ``ox``, ``oy``."""
    n_rad, Dm, nc = ints[0], ints[1], ints[2]
    f = 0
    for n in range(Dm):
        for a in range(nc):
            s = 0.0
            if with_y:
                for q in range(z):
                    s += R[n, o + q] * X[a, ox + q] + R[n_rad + n, o + q] * Y[a, oy + q]
            else:
                for q in range(z):
                    s += R[n, o + q] * X[a, ox + q]
            out[f] = s
            f += 1
    for n in range(Dm, n_rad):
        s = 0.0
        if with_y:
            for q in range(z):
                s += R[n, o + q] * X[0, ox + q] + R[n_rad + n, o + q] * Y[0, oy + q]
        else:
            for q in range(z):
                s += R[n, o + q] * X[0, ox + q]
        out[f] = s
        f += 1


@njit(cache=True)
def _contract_block(R, FS, U, o, z, g, ints, acc, out, p0):
    """out[p0 + q] = Σ_f g_f ∇φ_f(D_q) for the block's pairs from their factors (R, FS, U
    from column ``o``): γ_a, δ_a into acc[0], acc[1], then (Σ_a δ_a S̃_a) û + Σ_a γ_a V_a;
    ``acc`` (≥ 2, n_comp, z) scratch, acc[2, 0:4] the pair sums."""
    n_rad, Dm, nc = ints[0], ints[1], ints[2]
    for a in range(nc):
        for q in range(z):
            acc[0, a, q] = 0.0
            acc[1, a, q] = 0.0
    f = 0
    for n in range(Dm):
        for a in range(nc):
            gf = g[f]
            for q in range(z):
                acc[0, a, q] += gf * R[n, o + q]
                acc[1, a, q] += gf * R[n_rad + n, o + q]
            f += 1
    for n in range(Dm, n_rad):
        gf = g[f]
        for q in range(z):
            acc[0, 0, q] += gf * R[n, o + q]
            acc[1, 0, q] += gf * R[n_rad + n, o + q]
        f += 1
    s = acc[2]
    for k in range(4):
        for q in range(z):
            s[k, q] = 0.0
    for a in range(nc):
        for q in range(z):
            ga = acc[0, a, q]
            s[0, q] += acc[1, a, q] * FS[0, a, o + q]
            s[1, q] += ga * FS[1, a, o + q]
            s[2, q] += ga * FS[2, a, o + q]
            s[3, q] += ga * FS[3, a, o + q]
    for q in range(z):
        out[p0 + q, 0] = s[0, q] * U[0, o + q] + s[1, q]
        out[p0 + q, 1] = s[0, q] * U[1, o + q] + s[2, q]
        out[p0 + q, 2] = s[0, q] * U[2, o + q] + s[3, q]


@njit(cache=True)
def linear_forces(D, start, w, idx, scal, ints, lam, mon, trip, tcoef):
    """One pass over the centres of a linear model, in blocks of :data:`_SITES` centres: per
    centre the factors of its pairs (kept for the block) and A_i; per block ε_i − c_0 and
    g_i = ∂ε/∂A_i (:func:`_site_block`); per centre ∂E/∂D_p = g_i · ∇φ(D_p).
    Returns (ε − c_0 (n,) eV, ∂E/∂D (P, 3) eV/Å, A (n, n_A), g (n, n_A) eV)."""
    n_rad, nc, nA = ints[0], ints[2], ints[3]
    n = start.shape[0] - 1
    z_max = _zmax(start)
    wk = _scratch(ints, z_max)
    oG = _rows(ints)[3]
    cols = _SITES * z_max
    R, FS, U = np.zeros((2 * n_rad, cols)), np.zeros((4, nc, cols)), np.zeros((3, cols))
    acc = np.zeros((3, max(nc, 4), z_max))
    a1 = np.ones((nA + 1, _SITES))
    g1 = np.zeros((nA + 1, _SITES))
    eb = np.zeros(_SITES)
    gc = np.zeros(nA + 1)
    ac = np.zeros(nA)
    e = np.zeros(n)
    out = np.zeros((D.shape[0], 3))
    A = np.zeros((n, nA))
    G = np.zeros((n, nA))
    for c0 in range(0, n, _SITES):
        nb = min(_SITES, n - c0)
        q0 = start[c0]
        for b in range(nb):
            p0 = start[c0 + b]
            z = start[c0 + b + 1] - p0
            o = p0 - q0
            _factors(D, p0, z, scal, ints, mon, trip, tcoef, 1, wk)
            _angular(wk, z, ints, lam, FS, o)
            for k in range(2 * n_rad):
                for q in range(z):
                    R[k, o + q] = wk[k, q]
            for k in range(3):
                for q in range(z):
                    U[k, o + q] = wk[oG + 2 + k, q]
            _radial_sum(R, o, FS[0], o, FS[0], o, z, ints, False, ac)
            for f in range(nA):
                a1[f, b] = ac[f]
                A[c0 + b, f] = ac[f]
        _site_block(a1, w, idx, eb, g1)
        for b in range(nb):
            p0 = start[c0 + b]
            z = start[c0 + b + 1] - p0
            e[c0 + b] = eb[b]
            for f in range(nA):
                gc[f] = g1[f, b]
                G[c0 + b, f] = gc[f]
            _contract_block(R, FS, U, p0 - q0, z, gc, ints, acc, out, p0)
    return e, out, A, G


@njit(cache=True)
def pair_factors(D, scal, ints, lam, mon, trip, tcoef):
    """The factors of φ and ∇φ of every pair (see above): radial (2·n_rad, P), angular
    (4, n_comp, P), û (3, P) — 8·(2·n_rad + 4·n_comp + 3) bytes per pair, kept by a Hessian
    operator so that its products do not evaluate the basis again."""
    P = D.shape[0]
    n_rad = ints[0]
    wk = _scratch(ints, _BLOCK)
    oG = _rows(ints)[3]
    R = np.zeros((2 * n_rad, P))
    FS = np.zeros((4, ints[2], P))
    U = np.zeros((3, P))
    for p0 in range(0, P, _BLOCK):
        z = min(_BLOCK, P - p0)
        _factors(D, p0, z, scal, ints, mon, trip, tcoef, 1, wk)
        _angular(wk, z, ints, lam, FS, p0)
        for q in range(z):
            for k in range(2 * n_rad):
                R[k, p0 + q] = wk[k, q]
            for c in range(3):
                U[c, p0 + q] = wk[oG + 2 + c, q]
    return R, FS, U


@njit(cache=True)
def _centre_dA(p0, z, dD, R, FS, U, ints, xy, dc):
    """δA (n_A,) of one centre into ``dc``: Σ_q ∇φ(D_q) · δD_q over its ``z`` pairs from
    ``p0``, from the factored ∇φ: δA_{n,a} = Σ_q R_n' (S̃_a û·δD) + R_n (V_a·δD);
    ``xy`` (2, n_comp, ≥ z) scratch."""
    nc = ints[2]
    for a in range(nc):
        for q in range(z):
            p = p0 + q
            v0, v1, v2 = dD[p, 0], dD[p, 1], dD[p, 2]
            xy[0, a, q] = FS[1, a, p] * v0 + FS[2, a, p] * v1 + FS[3, a, p] * v2
            xy[1, a, q] = FS[0, a, p] * (U[0, p] * v0 + U[1, p] * v1 + U[2, p] * v2)
    # X = V·δD pairs with R, Y = S̃ û·δD with R'
    _radial_sum(R, p0, xy[0], 0, xy[1], 0, z, ints, True, dc)


@njit(cache=True)
def _centre_contract(p0, z, gc, R, FS, U, T, dD, ints, acc, out):
    """out[p] = δg · ∇φ(D_p) + T_p δD_p for one centre's ``z`` pairs from ``p0``."""
    _contract_block(R, FS, U, p0, z, gc, ints, acc, out, p0)
    for p in range(p0, p0 + z):
        v0, v1, v2 = dD[p, 0], dD[p, 1], dD[p, 2]
        for c3 in range(3):
            out[p, c3] += T[p, c3, 0] * v0 + T[p, c3, 1] * v1 + T[p, c3, 2] * v2


@njit(cache=True)
def linear_hvp(start, dD, A, T, R, FS, U, w, idx, ints):
    """Pair-space Hessian product of a linear model: δ(∂E/∂D_p) (P, 3) eV/Å for pair
    displacements δD (P, 3) Å, = ∇φ_pᵀ M_i Σ_q ∇φ_q δD_q + T_p δD_p with M_i = ∂²ε/∂A_i²
    (applied through the monomials, never formed), T from :func:`pair_curvature` and ∇φ in
    factored form from :func:`pair_factors`. Fused over blocks of :data:`_HVP_SITES` centres
    (δA, the site polynomial's product, the contraction) so that a block's pair factors
    are read while still in cache."""
    nA = ints[3]
    nc = ints[2]
    n = start.shape[0] - 1
    z_max = _zmax(start)
    a1 = np.ones((nA + 1, _HVP_SITES))
    d1 = np.zeros((nA + 1, _HVP_SITES))
    dg = np.zeros((nA + 1, _HVP_SITES))
    dc = np.zeros(nA)
    gc = np.zeros(nA + 1)
    xy = np.zeros((2, nc, z_max))
    acc = np.zeros((3, max(nc, 4), z_max))
    out = np.zeros((dD.shape[0], 3))
    for c0 in range(0, n, _HVP_SITES):
        nb = min(_HVP_SITES, n - c0)
        for b in range(nb):
            p0 = start[c0 + b]
            _centre_dA(p0, start[c0 + b + 1] - p0, dD, R, FS, U, ints, xy, dc)
            for f in range(nA):
                a1[f, b] = A[c0 + b, f]
                d1[f, b] = dc[f]
        _site_hvp_block(a1, d1, w, idx, dg)
        for b in range(nb):
            p0 = start[c0 + b]
            for f in range(nA):
                gc[f] = dg[f, b]
            _centre_contract(p0, start[c0 + b + 1] - p0, gc, R, FS, U, T, dD, ints, acc, out)
    return out


@njit(cache=True)
def pair_dA(start, dD, R, FS, U, ints):
    """δA (n, n_A) = Σ_{p: i_p = i} ∇φ(D_p) · δD_p for pair displacements δD (P, 3) Å, from
    the factored ∇φ of :func:`pair_factors` (the first half of a product whose site part is
    not the linear polynomial: the network's)."""
    nA, nc = ints[3], ints[2]
    n = start.shape[0] - 1
    xy = np.zeros((2, nc, _zmax(start)))
    dA = np.zeros((n, nA))
    for c in range(n):
        p0 = start[c]
        _centre_dA(p0, start[c + 1] - p0, dD, R, FS, U, ints, xy, dA[c])
    return dA


@njit(cache=True)
def pair_contract(start, dG, R, FS, U, T, dD, ints):
    """δ(∂E/∂D_p) (P, 3) eV/Å = δg_{i_p} · ∇φ(D_p) + T_p δD_p: the second half, for
    δg = ∂²ε/∂A² δA (n, n_A) eV and the pair curvature T of :func:`pair_curvature`."""
    nc = ints[2]
    n = start.shape[0] - 1
    acc = np.zeros((3, max(nc, 4), _zmax(start)))
    out = np.zeros((dD.shape[0], 3))
    for c in range(n):
        p0 = start[c]
        _centre_contract(p0, start[c + 1] - p0, dG[c], R, FS, U, T, dD, ints, acc, out)
    return out


# ------------------------------------------------------------------------------ features per site
#
# The invariants B_k(A) = Σ_{t: mono_k[t] = k} mono_coef[t] Π_s A1[gidx[t, s]] of every site
# and their first and second A-derivatives contracted with per-site weights: what a model
# that is not linear in B (the network) chains through.


@njit(cache=True)
def site_features(A, mono_k, mono_coef, gidx, K):
    """B (n, K) of the sites' projections A (n, n_A) (dimensionless)."""
    n, nA = A.shape
    B = np.zeros((n, K))
    a1 = np.ones(nA + 1)
    for c in range(n):
        for f in range(nA):
            a1[f] = A[c, f]
        for t in range(mono_k.shape[0]):
            B[c, mono_k[t]] += mono_coef[t] * (a1[gidx[t, 0]] * a1[gidx[t, 1]] * a1[gidx[t, 2]])
    return B


@njit(cache=True)
def feature_chain(A, dA, Ub, Sb, mono_k, mono_coef, gidx, K):
    """Per site: δB = (∂B/∂A) δA (n, K), and Σ_k Ub_k ∂B_k/∂A + Sb_k (∂²B_k/∂A²) δA
    (n, n_A) — for Ub = ∂ε/∂B alone (δA = 0) the chain rule's ∂ε/∂A, for Ub = (∂²ε/∂B²) δB
    and Sb = ∂ε/∂B the second half of a Hessian product. ``Ub``, ``Sb`` (n, K)."""
    n, nA = A.shape
    dB = np.zeros((n, K))
    out = np.zeros((n, nA + 1))
    a1 = np.ones(nA + 1)
    d1 = np.zeros(nA + 1)
    for c in range(n):
        for f in range(nA):
            a1[f] = A[c, f]
            d1[f] = dA[c, f]
        for t in range(mono_k.shape[0]):
            i0, i1, i2 = gidx[t, 0], gidx[t, 1], gidx[t, 2]
            x0, x1, x2 = a1[i0], a1[i1], a1[i2]
            y0, y1, y2 = d1[i0], d1[i1], d1[i2]
            k, ct = mono_k[t], mono_coef[t]
            dB[c, k] += ct * (y0 * x1 * x2 + x0 * y1 * x2 + x0 * x1 * y2)
            u, sw = ct * Ub[c, k], ct * Sb[c, k]
            out[c, i0] += u * (x1 * x2) + sw * (y1 * x2 + x1 * y2)
            out[c, i1] += u * (x0 * x2) + sw * (y0 * x2 + x0 * y2)
            out[c, i2] += u * (x0 * x1) + sw * (y0 * x1 + x0 * y1)
    return dB, np.ascontiguousarray(out[:, :nA])


@njit(cache=True)
def _centre_basis(D, p0, z, nA, scal, ints, lam, mon, trip, tcoef, phi, Jl, H, wk, a1):
    """A of one centre into ``a1[:nA]``: the basis φ of its ``z`` pairs from ``p0`` summed,
    with ∇φ of its q-th pair kept in ``Jl[q]`` (:func:`_pair`)."""
    _factors(D, p0, z, scal, ints, mon, trip, tcoef, 1, wk)
    for f in range(nA):
        a1[f] = 0.0
    for q in range(z):
        _pair(wk, q, scal, ints, lam, 1, phi, Jl[q], H)
        for f in range(nA):
            a1[f] += phi[f]


@njit(cache=True)
def design_efv(D, start, j, mono_k, mono_coef, gidx, K, virial, pair_out, scal, ints, lam, mon, trip, tcoef):
    """Design rows of a linear model (the observations per unit coefficient): per feature k
    Σ_i B_k(A_i) (K,), the forces −∂/∂x Σ_i B_k (n, 3, K) eV/Å per eV and, if ``virial``,
    −Σ_p D_p ⊗ ∂B_k/∂D_p (3, 3, K); if ``pair_out`` has P rows, ∂B_{i(p),k}/∂D_p (P, 3, K)
    1/Å into it (the network's training takes its features' pair Jacobian from here). Features are the monomials t of the basis:
    B_k = Σ_{t: mono_k[t] = k} mono_coef[t] Π_s A1[gidx[t, s]] (A1 = A with the constant
    1 at index n_A). Per centre: φ, ∇φ of its pairs (:func:`_pair`), A, and the three
    A-derivatives of each monomial, then ∂B_k/∂D_p = Σ over those of value × ∇φ_f(D_p)."""
    nA = ints[3]
    n = start.shape[0] - 1
    T = mono_k.shape[0]
    z_max = _zmax(start)
    wk, Jl, phi, H = _scratch(ints, z_max), np.zeros((z_max, nA, 3)), np.zeros(nA), np.zeros((nA, 3, 3))
    a1 = np.ones(nA + 1)
    tri = np.zeros((3 * T,))
    tri_f = np.zeros(3 * T, dtype=np.int64)
    E = np.zeros(K)
    F = np.zeros((n, 3, K))
    W = np.zeros((3, 3, K))
    d = np.zeros((3, K))
    for c in range(n):
        p0 = start[c]
        z = start[c + 1] - p0
        _centre_basis(D, p0, z, nA, scal, ints, lam, mon, trip, tcoef, phi, Jl, H, wk, a1)
        for t in range(T):
            i0, i1, i2 = gidx[t, 0], gidx[t, 1], gidx[t, 2]
            x0, x1, x2 = a1[i0], a1[i1], a1[i2]
            ct = mono_coef[t]
            E[mono_k[t]] += ct * (x0 * x1 * x2)
            tri[3 * t], tri_f[3 * t] = ct * (x1 * x2), i0
            tri[3 * t + 1], tri_f[3 * t + 1] = ct * (x0 * x2), i1
            tri[3 * t + 2], tri_f[3 * t + 2] = ct * (x0 * x1), i2
        for q in range(z):
            p = p0 + q
            for k in range(K):
                d[0, k] = 0.0
                d[1, k] = 0.0
                d[2, k] = 0.0
            for t in range(T):
                k = mono_k[t]
                for s in range(3):
                    f = tri_f[3 * t + s]
                    if f < nA:
                        v = tri[3 * t + s]
                        d[0, k] += v * Jl[q, f, 0]
                        d[1, k] += v * Jl[q, f, 1]
                        d[2, k] += v * Jl[q, f, 2]
            b = j[p]
            for e in range(3):
                for k in range(K):
                    F[c, e, k] += d[e, k]
                    F[b, e, k] -= d[e, k]
            if pair_out.shape[0] > 0:
                for e in range(3):
                    for k in range(K):
                        pair_out[p, e, k] = d[e, k]
            if virial:
                for a in range(3):
                    da = D[p, a]
                    for e in range(3):
                        for k in range(K):
                            W[a, e, k] -= da * d[e, k]
    return E, F, W


@njit(cache=True)
def gather_pairs(V, i, j):
    """δD_p = V[j_p] − V[i_p] (P, 3) for atom displacements V (n, 3)."""
    out = np.empty((i.shape[0], 3))
    for p in range(i.shape[0]):
        for c in range(3):
            out[p, c] = V[j[p], c] - V[i[p], c]
    return out


@njit(cache=True)
def scatter_pairs(Y, i, j, n):
    """Σ_p Y_p (e_{j_p} − e_{i_p}) (n, 3): the transpose of :func:`gather_pairs` (with
    Y = ∂E/∂D this is ∂E/∂x, minus the forces)."""
    out = np.zeros((n, 3))
    for p in range(i.shape[0]):
        for c in range(3):
            out[j[p], c] += Y[p, c]
            out[i[p], c] -= Y[p, c]
    return out


@njit(cache=True)
def design_hessian(D, start, j, pos, nr, mono_k, mono_coef, gidx, K, scal, ints, lam, mon, trip, tcoef):
    """Force-constant design rows of a linear model: H (3·nr, 3n, K + 1) eV/Å² per eV,
    H[3 pos[a] + c, 3 b + e, 1 + k] = ∂²(Σ_i B_k(A_i))/∂x_{a,c}∂x_{b,e} for the row atoms a
    with ``pos[a] ≥ 0`` (their row block ``pos[a]`` < nr); column 0 (the one-body term)
    stays zero. Features as in :func:`design_efv` (monomials t of weight mono_coef[t] in
    the A-indices gidx[t], n_A = the constant 1).

    Per centre i, in the positions of its local atoms (0 = the centre, 1 + q = neighbour q,
    ∂A_f/∂x = −Σ_q ∇φ_f(D_q) and ∇φ_f(D_q)), every monomial w x_0 x_1 x_2 adds
    w Σ_{s≠s'} x_{rest} ∂x_s ⊗ ∂x_{s'} — for a row u_f = ∂A_f/∂x_{a,c}, the column vector
    w (α_0 ∂x_0 + α_1 ∂x_1 + α_2 ∂x_2) with α_0 = x_2 u_1 + x_1 u_2 etc. — and the pair
    curvature δ_pq Σ_f (∂B_k/∂A_f) ∇²φ_f(D_q) on the blocks (q, q), (q, i), (i, q), (i, i).
    Only centres with a wanted local atom are visited, and only the wanted rows formed:
    memory is the output, 9·nr·n·(K + 1) doubles."""
    nA = ints[3]
    n = start.shape[0] - 1
    T = mono_k.shape[0]
    z_max = _zmax(start)
    wk = _scratch(ints, z_max)
    phi = np.zeros(nA)
    Jp = np.zeros((nA, 3))
    Hl = np.zeros((z_max, nA + 1, 3, 3))
    G = np.zeros((nA + 1, 3 * (z_max + 1)))  # ∂A_f/∂(local atom, axis); row n_A zero
    a1 = np.ones(nA + 1)
    buf = np.zeros((K, 3 * (z_max + 1)))
    Tq = np.zeros((z_max, 3, 3, K))
    loc = np.zeros(z_max + 1, dtype=np.int64)
    out = np.zeros((3 * nr, 3 * n, K + 1))
    for ci in range(n):
        p0 = start[ci]
        z = start[ci + 1] - p0
        want = pos[ci] >= 0
        for q in range(z):
            if pos[j[p0 + q]] >= 0:
                want = True
        if not want or z == 0:
            continue
        loc[0] = ci
        for q in range(z):
            loc[q + 1] = j[p0 + q]
        ncol = 3 * (z + 1)
        _factors(D, p0, z, scal, ints, mon, trip, tcoef, 2, wk)
        for f in range(nA):
            a1[f] = 0.0
            for c in range(3):
                G[f, c] = 0.0
        for q in range(z):
            _pair(wk, q, scal, ints, lam, 2, phi, Jp, Hl[q])
            for f in range(nA):
                a1[f] += phi[f]
                for c in range(3):
                    G[f, 3 * (q + 1) + c] = Jp[f, c]
                    G[f, c] -= Jp[f, c]
        # pair curvature per feature: Tq[q, :, :, k] = Σ_f ∂B_k/∂A_f ∇²φ_f(D_q)
        for q in range(z):
            for c in range(3):
                for e in range(3):
                    for k in range(K):
                        Tq[q, c, e, k] = 0.0
        for t in range(T):
            i0, i1, i2 = gidx[t, 0], gidx[t, 1], gidx[t, 2]
            x0, x1, x2 = a1[i0], a1[i1], a1[i2]
            w, k = mono_coef[t], mono_k[t]
            g0, g1, g2 = w * x1 * x2, w * x0 * x2, w * x0 * x1
            for q in range(z):
                for c in range(3):
                    for e in range(3):
                        Tq[q, c, e, k] += g0 * Hl[q, i0, c, e] + g1 * Hl[q, i1, c, e] + g2 * Hl[q, i2, c, e]
        for x in range(z + 1):
            r = pos[loc[x]]
            if r < 0:
                continue
            for c in range(3):
                rc = 3 * x + c
                for k in range(K):
                    for y in range(ncol):
                        buf[k, y] = 0.0
                for t in range(T):
                    i0, i1, i2 = gidx[t, 0], gidx[t, 1], gidx[t, 2]
                    x0, x1, x2 = a1[i0], a1[i1], a1[i2]
                    u0, u1, u2 = G[i0, rc], G[i1, rc], G[i2, rc]
                    w, k = mono_coef[t], mono_k[t]
                    b0 = w * (x2 * u1 + x1 * u2)
                    b1 = w * (x2 * u0 + x0 * u2)
                    b2 = w * (x1 * u0 + x0 * u1)
                    if b0 == 0.0 and b1 == 0.0 and b2 == 0.0:
                        continue
                    for y in range(ncol):
                        buf[k, y] += b0 * G[i0, y] + b1 * G[i1, y] + b2 * G[i2, y]
                # the curvature: row of neighbour q → (q, q) +T, (q, centre) −T; the centre's
                # row → (centre, q) −T, (centre, centre) +Σ_q T
                if x > 0:
                    q = x - 1
                    for e in range(3):
                        for k in range(K):
                            tv = Tq[q, c, e, k]
                            buf[k, 3 * x + e] += tv
                            buf[k, e] -= tv
                else:
                    for q in range(z):
                        for e in range(3):
                            for k in range(K):
                                tv = Tq[q, c, e, k]
                                buf[k, 3 * (q + 1) + e] -= tv
                                buf[k, e] += tv
                row = 3 * r + c
                for y in range(z + 1):
                    b = loc[y]
                    for e in range(3):
                        col = 3 * b + e
                        for k in range(K):
                            out[row, col, k + 1] += buf[k, 3 * y + e]
    return out
