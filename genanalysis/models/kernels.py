"""Compiled per-pair and per-site kernels of the ACE-style models (numba).

Units: pair vectors Å; φ dimensionless, ∇φ 1/Å, ∇²φ 1/Å²; site energies and their
A-derivatives eV; pair gradients eV/Å; Hessians eV/Å².

Why compiled: the one-particle basis φ(D) of :mod:`genanalysis.models.basis` is a few
hundred floating-point operations per pair (a Chebyshev recurrence, a handful of
monomials of the pair vector, their products), and a site's invariants a few hundred more.
Written with array operations, every one of these becomes a separate pass over (pairs ×
functions) temporaries, and call and memory overhead, not arithmetic, sets the cost. Here
each pair (or site) is one loop iteration over small stack-sized scratch arrays.

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

__all__ = ["BasisTables", "tables", "projections", "pair_vjp", "pair_curvature", "pair_phi_derivatives",
           "pair_factors", "design_efv", "site_energy_grad", "site_hvp", "site_hessian", "hessian_blocks", "block_pattern"]


class BasisTables:
    """The numeric tables of an :class:`~genanalysis.models.basis.ACEBasis` the kernels read
    (plain numpy arrays, in the basis's layout of A)."""

    def __init__(self, basis):
        spec = basis.spec
        pol = basis._polys
        C = pol.C.numpy()
        ptr, mono, coef = [0], [], []
        for a in range(C.shape[0]):
            nz = np.flatnonzero(C[a])
            mono.extend(nz.tolist())
            coef.extend(C[a, nz].tolist())
            ptr.append(len(mono))
        self.scal = np.array([spec.cutoff, spec.r_in, 0.0 if spec.dim == 2 else 1.0])
        self.ints = np.array([basis.n_rad, basis.n_mb, basis.n_comp, basis.n_A, spec.l_max], dtype=np.int64)
        self.lam = basis.l_of_comp.numpy().astype(np.int64)
        self.expo = pol.E.numpy().astype(np.int64)
        self.ptr = np.array(ptr, dtype=np.int64)
        self.mono = np.array(mono, dtype=np.int64)
        self.coef = np.array(coef, dtype=np.float64)

    def args(self):
        return self.scal, self.ints, self.lam, self.expo, self.ptr, self.mono, self.coef


def tables(basis) -> tuple:
    """The kernels' table arguments of ``basis`` (built once per basis object)."""
    t = basis.__dict__.get("_kernel_tables")
    if t is None:
        t = basis._kernel_tables = BasisTables(basis)
    return t.args()


# ------------------------------------------------------------------------------ one pair


@njit(cache=True)
def _factors(d0, d1, d2, scal, ints, expo, ptr, mono, coef, order, wk):
    """The radial and angular factors of one pair vector (d0, d1, d2) Å (d2 = 0 in 2D) into
    ``wk`` (of :func:`_scratch`): rows 0–2 R_n, R_n', R_n'' (n < n_rad), rows 9–21 S_a,
    ∇S_a, ∇²S_a (a < n_comp; derivatives up to ``order``), row 22 r^{−λ} (λ ≤ l_max).
    Returns r (Å). Every φ_{n,a} is a product of one radial and one angular factor."""
    rc, r_in = scal[0], scal[1]
    n_rad, nc, L = ints[0], ints[2], ints[4]
    r = np.sqrt(d0 * d0 + d1 * d1 + d2 * d2)
    # Chebyshev radials with the (1 − r/r_c)³ envelope, and their r-derivatives
    xs = -2.0 / (rc - r_in)
    x = 1.0 + xs * (r - r_in)
    w = 1.0 - r / rc
    env = w * w * w
    wk[3, 0], wk[4, 0], wk[5, 0] = 1.0, 0.0, 0.0
    if n_rad > 1:
        wk[3, 1], wk[4, 1], wk[5, 1] = x, 1.0, 0.0
    for k in range(2, n_rad):
        wk[3, k] = 2.0 * x * wk[3, k - 1] - wk[3, k - 2]
        if order >= 1:
            wk[4, k] = 2.0 * wk[3, k - 1] + 2.0 * x * wk[4, k - 1] - wk[4, k - 2]
        if order >= 2:
            wk[5, k] = 4.0 * wk[4, k - 1] + 2.0 * x * wk[5, k - 1] - wk[5, k - 2]
    denv = -3.0 / rc * w * w
    d2env = 6.0 / (rc * rc) * w
    for k in range(n_rad):
        wk[0, k] = wk[3, k] * env
        if order >= 1:
            wk[1, k] = wk[4, k] * xs * env + wk[3, k] * denv
        if order >= 2:
            wk[2, k] = wk[5, k] * xs * xs * env + 2.0 * wk[4, k] * xs * denv + wk[3, k] * d2env
    # monomials x^i y^j z^k of degree ≤ L with their derivatives
    wk[6, 0], wk[7, 0], wk[8, 0] = 1.0, 1.0, 1.0
    for k in range(1, L + 1):
        wk[6, k] = wk[6, k - 1] * d0
        wk[7, k] = wk[7, k - 1] * d1
        wk[8, k] = wk[8, k - 1] * d2
    for a in range(nc):
        sv = 0.0
        g0 = 0.0
        g1 = 0.0
        g2 = 0.0
        h00 = 0.0
        h11 = 0.0
        h22 = 0.0
        h01 = 0.0
        h02 = 0.0
        h12 = 0.0
        for t in range(ptr[a], ptr[a + 1]):
            m = mono[t]
            cf = coef[t]
            e0, e1, e2 = expo[m, 0], expo[m, 1], expo[m, 2]
            sv += cf * (wk[6, e0] * wk[7, e1] * wk[8, e2])
            if order >= 1:
                if e0 > 0:
                    g0 += cf * (e0 * wk[6, e0 - 1] * wk[7, e1] * wk[8, e2])
                if e1 > 0:
                    g1 += cf * (e1 * wk[6, e0] * wk[7, e1 - 1] * wk[8, e2])
                if e2 > 0:
                    g2 += cf * (e2 * wk[6, e0] * wk[7, e1] * wk[8, e2 - 1])
            if order >= 2:
                if e0 > 1:
                    h00 += cf * (e0 * (e0 - 1) * wk[6, e0 - 2] * wk[7, e1] * wk[8, e2])
                if e1 > 1:
                    h11 += cf * (e1 * (e1 - 1) * wk[6, e0] * wk[7, e1 - 2] * wk[8, e2])
                if e2 > 1:
                    h22 += cf * (e2 * (e2 - 1) * wk[6, e0] * wk[7, e1] * wk[8, e2 - 2])
                if e0 > 0 and e1 > 0:
                    h01 += cf * (e0 * e1 * wk[6, e0 - 1] * wk[7, e1 - 1] * wk[8, e2])
                if e0 > 0 and e2 > 0:
                    h02 += cf * (e0 * e2 * wk[6, e0 - 1] * wk[7, e1] * wk[8, e2 - 1])
                if e1 > 0 and e2 > 0:
                    h12 += cf * (e1 * e2 * wk[6, e0] * wk[7, e1 - 1] * wk[8, e2 - 1])
        wk[9, a] = sv
        if order >= 1:
            wk[10 + 0, a], wk[10 + 1, a], wk[10 + 2, a] = g0, g1, g2
        if order >= 2:
            wk[13 + 0, a], wk[13 + 4, a], wk[13 + 8, a] = h00, h11, h22
            wk[13 + 1, a], wk[13 + 3, a] = h01, h01
            wk[13 + 2, a], wk[13 + 6, a] = h02, h02
            wk[13 + 5, a], wk[13 + 7, a] = h12, h12
    ir = 1.0 / r
    # r^{−λ} by repeated multiplication, one value per channel
    wk[22, 0] = 1.0
    for k in range(1, L + 1):
        wk[22, k] = wk[22, k - 1] * ir
    return r


@njit(cache=True)
def _pair(d0, d1, d2, scal, ints, lam, expo, ptr, mono, coef, order, phi, J, H, wk):
    """φ (n_A,), and for order ≥ 1 ∇φ (n_A, 3), for order 2 ∇²φ (n_A, 3, 3), of one pair
    vector (d0, d1, d2) Å, into the given arrays; ``wk`` scratch of :func:`_scratch`."""
    mz = scal[2]
    n_rad, Dm, nc = ints[0], ints[1], ints[2]
    if mz == 0.0:
        d2 = 0.0
    r = _factors(d0, d1, d2, scal, ints, expo, ptr, mono, coef, order, wk)
    ir = 1.0 / r
    u0, u1, u2 = d0 * ir, d1 * ir, d2 * ir
    u = (u0, u1, u2)
    f = 0
    for n in range(Dm):
        for a in range(nc):
            la = float(lam[a])
            rl = wk[22, lam[a]]
            Q = wk[0, n] * rl
            phi[f] = Q * wk[9, a]
            if order >= 1:
                dQ = (wk[1, n] - la * wk[0, n] * ir) * rl
                for c in range(3):
                    J[f, c] = dQ * u[c] * wk[9, a] + Q * wk[10 + c, a]
                if order >= 2:
                    d2Q = (wk[2, n] - 2.0 * la * wk[1, n] * ir + la * (la + 1.0) * wk[0, n] * (ir * ir)) * rl
                    for c in range(3):
                        for e in range(3):
                            uu = u[c] * u[e]
                            pr = ((1.0 if (c == e and (c < 2 or mz != 0.0)) else 0.0) - uu) / r
                            H[f, c, e] = (d2Q * (uu * wk[9, a]) + dQ * (pr * wk[9, a] + (u[c] * wk[10 + e, a] + wk[10 + c, a] * u[e]))
                                          + Q * wk[13 + 3 * c + e, a])
            f += 1
    S0 = wk[9, 0]
    for n in range(Dm, n_rad):
        phi[f] = wk[0, n] * S0
        if order >= 1:
            for c in range(3):
                J[f, c] = (wk[1, n] * S0) * u[c]
            if order >= 2:
                for c in range(3):
                    for e in range(3):
                        uu = u[c] * u[e]
                        pr = ((1.0 if (c == e and (c < 2 or mz != 0.0)) else 0.0) - uu) / r
                        H[f, c, e] = (wk[2, n] * uu + wk[1, n] * pr) * S0
        f += 1


@njit(cache=True)
def _scratch(ints):
    m = max(ints[0], ints[2], ints[4] + 1, 2)
    return np.zeros((23, m))


@njit(cache=True)
def _pair_scratch(ints):
    """Work space of :func:`_pair` and its outputs φ, ∇φ, ∇²φ for one pair."""
    nA = ints[3]
    return _scratch(ints), np.zeros(nA), np.zeros((nA, 3)), np.zeros((nA, 3, 3))


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
def pair_phi_derivatives(D, order, scal, ints, lam, expo, ptr, mono, coef):
    """φ (P, n_A), ∇φ (P, n_A, 3), ∇²φ (P, n_A, 3, 3) (the last two zero-sized below
    ``order``) of pair vectors D (P, 3) Å."""
    P, nA = D.shape[0], ints[3]
    wk = _scratch(ints)
    phi = np.zeros((P, nA))
    J = np.zeros((P if order >= 1 else 0, nA, 3))
    H = np.zeros((P if order >= 2 else 0, nA, 3, 3))
    Jd = np.zeros((nA, 3))
    Hd = np.zeros((nA, 3, 3))
    for p in range(P):
        Jp = J[p] if order >= 1 else Jd
        Hp = H[p] if order >= 2 else Hd
        _pair(D[p, 0], D[p, 1], D[p, 2], scal, ints, lam, expo, ptr, mono, coef, order, phi[p], Jp, Hp, wk)
    return phi, J, H


@njit(cache=True)
def projections(D, i, n, scal, ints, lam, expo, ptr, mono, coef):
    """A (n, n_A) = Σ_{p: i_p = a} φ(D_p), dimensionless."""
    nA = ints[3]
    wk, phi, J, H = _pair_scratch(ints)
    A = np.zeros((n, nA))
    for p in range(D.shape[0]):
        _pair(D[p, 0], D[p, 1], D[p, 2], scal, ints, lam, expo, ptr, mono, coef, 0, phi, J, H, wk)
        a = i[p]
        for f in range(nA):
            A[a, f] += phi[f]
    return A


@njit(cache=True)
def pair_vjp(D, i, G, scal, ints, lam, expo, ptr, mono, coef):
    """∂E/∂D_p = Σ_f G[i_p, f] ∇φ_f(D_p) (P, 3), eV/Å, for G = ∂ε/∂A (n, n_A) eV."""
    nA = ints[3]
    wk, phi, J, H = _pair_scratch(ints)
    out = np.zeros((D.shape[0], 3))
    for p in range(D.shape[0]):
        _pair(D[p, 0], D[p, 1], D[p, 2], scal, ints, lam, expo, ptr, mono, coef, 1, phi, J, H, wk)
        _contract(J, G[i[p]], nA, out, p)
    return out


@njit(cache=True)
def pair_curvature(D, i, G, scal, ints, lam, expo, ptr, mono, coef):
    """T_p = Σ_f G[i_p, f] ∇²φ_f(D_p) (P, 3, 3), eV/Å²: the δ_pq part of the pair-space
    Hessian."""
    nA = ints[3]
    wk, phi, J, H = _pair_scratch(ints)
    T = np.zeros((D.shape[0], 3, 3))
    for p in range(D.shape[0]):
        _pair(D[p, 0], D[p, 1], D[p, 2], scal, ints, lam, expo, ptr, mono, coef, 2, phi, J, H, wk)
        a = i[p]
        for f in range(nA):
            g = G[a, f]
            for c in range(3):
                for e in range(3):
                    T[p, c, e] += g * H[f, c, e]
    return T


# ------------------------------------------------------------------------------ linear sites


@njit(cache=True)
def site_energy_grad(A, w, idx, grad):
    """ε_a − c_0 = Σ_t w_t Π_s A1[a, idx[t, s]] (n,) eV and, if ``grad``, ∂ε/∂A (n, n_A) eV;
    A1 is A with a constant 1 appended (index n_A)."""
    n, nA = A.shape
    e = np.zeros(n)
    g = np.zeros((n if grad else 0, nA + 1))
    a1 = np.ones(nA + 1)
    for a in range(n):
        for f in range(nA):
            a1[f] = A[a, f]
        s = 0.0
        for t in range(w.shape[0]):
            i0, i1, i2 = idx[t, 0], idx[t, 1], idx[t, 2]
            x0, x1, x2 = a1[i0], a1[i1], a1[i2]
            s += w[t] * (x0 * x1 * x2)
            if grad:
                g[a, i0] += w[t] * (x1 * x2)
                g[a, i1] += w[t] * (x0 * x2)
                g[a, i2] += w[t] * (x0 * x1)
        e[a] = s
    return e, g[:, :nA]


@njit(cache=True)
def site_hvp(A, dA, w, idx):
    """δg (n, n_A) = ∂²ε/∂A² · δA per site, eV, for δA (n, n_A)."""
    n, nA = A.shape
    dg = np.zeros((n, nA + 1))
    a1 = np.ones(nA + 1)
    d1 = np.zeros(nA + 1)
    for a in range(n):
        for f in range(nA):
            a1[f] = A[a, f]
            d1[f] = dA[a, f]
        for t in range(w.shape[0]):
            i0, i1, i2 = idx[t, 0], idx[t, 1], idx[t, 2]
            wt = w[t]
            dg[a, i0] += wt * (d1[i1] * a1[i2] + a1[i1] * d1[i2])
            dg[a, i1] += wt * (d1[i0] * a1[i2] + a1[i0] * d1[i2])
            dg[a, i2] += wt * (d1[i0] * a1[i1] + a1[i0] * d1[i1])
    return dg[:, :nA]


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
def hessian_blocks(D, start, j, centres, G, M, indptr, indices, data, scal, ints, lam, expo, ptr, mono, coef):
    """Add the position-Hessian blocks of the site energies of ``centres`` (eV/Å²) into the
    block-sparse ``data`` (nnz, 3, 3) with pattern (indptr, indices).

    Per centre i with pairs p: pair-space Hessian h_pq = ∇φ_pᵀ M_i ∇φ_q + δ_pq Σ_f G_if ∇²φ_f(D_p);
    D_p = x_{j_p} − x_i gives blocks (j_p, j_q) += h_pq, (i, j_q) −= Σ_p h_pq,
    (j_p, i) −= Σ_q h_pq, (i, i) += Σ_pq h_pq. ``G`` (c, n_A), ``M`` (c, n_A, n_A) of the
    centres in order."""
    nA = ints[3]
    wk = _scratch(ints)
    phi = np.zeros(nA)
    zmax = 0
    for k in range(centres.shape[0]):
        c = centres[k]
        zmax = max(zmax, start[c + 1] - start[c])
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
        for q in range(z):
            p = p0 + q
            _pair(D[p, 0], D[p, 1], D[p, 2], scal, ints, lam, expo, ptr, mono, coef, 2, phi, Jp, Hp, wk)
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


@njit(cache=True)
def _site_grad1(a1, w, idx, g):
    """ε − c_0 of one site and ∂ε/∂A into g (n_A + 1,), from A1 = (A, 1)."""
    for f in range(g.shape[0]):
        g[f] = 0.0
    s = 0.0
    for t in range(w.shape[0]):
        i0, i1, i2 = idx[t, 0], idx[t, 1], idx[t, 2]
        x0, x1, x2 = a1[i0], a1[i1], a1[i2]
        wt = w[t]
        s += wt * (x0 * x1 * x2)
        g[i0] += wt * (x1 * x2)
        g[i1] += wt * (x0 * x2)
        g[i2] += wt * (x0 * x1)
    return s


@njit(cache=True)
def _centre_scratch(start, ints):
    """Scratch of a pass over centres: basis work space, ∇φ of a centre's pairs (z_max,
    n_A, 3), φ and ∇²φ of one pair."""
    nA = ints[3]
    zmax = 1
    for c in range(start.shape[0] - 1):
        zmax = max(zmax, start[c + 1] - start[c])
    return _scratch(ints), np.zeros((zmax, nA, 3)), np.zeros(nA), np.zeros((nA, 3, 3))


@njit(cache=True)
def _pair_factored(d0, d1, d2, scal, ints, lam, expo, ptr, mono, coef, wk, q, Rz, Sz, Uz):
    """The factors of φ and ∇φ of one pair, into row q of the centre scratch:
    φ_{n,a} = R_n S̃_a and ∇φ_{n,a} = R_n' S̃_a û + R_n V_a with S̃_a = r^{−λ} S_a and
    V_a = r^{−λ} ∇S_a − (λ/r) S̃_a û (n < degree; the pair-only radials n ≥ degree take
    a = 0, the constant S_0, λ = 0, V_0 = 0). The same φ, ∇φ as :func:`_pair`, without
    forming the n_A × 3 products."""
    if scal[2] == 0.0:
        d2 = 0.0
    r = _factors(d0, d1, d2, scal, ints, expo, ptr, mono, coef, 1, wk)
    ir = 1.0 / r
    for k in range(ints[0]):
        Rz[q, 0, k] = wk[0, k]
        Rz[q, 1, k] = wk[1, k]
    u0, u1, u2 = d0 * ir, d1 * ir, d2 * ir
    Uz[q, 0], Uz[q, 1], Uz[q, 2] = u0, u1, u2
    for a in range(ints[2]):
        rl = wk[22, lam[a]]
        st = rl * wk[9, a]
        li = float(lam[a]) * ir * st
        Sz[q, a, 0] = st
        Sz[q, a, 1] = rl * wk[10, a] - li * u0
        Sz[q, a, 2] = rl * wk[11, a] - li * u1
        Sz[q, a, 3] = rl * wk[12, a] - li * u2


@njit(cache=True)
def _radial_outer(Rz, q, x, y, ints, out):
    """out_{n,a} += R_n x_a + R_n' y_a over the features (n, a) of one pair (pair-only
    radials: a = 0)."""
    n_rad, Dm, nc = ints[0], ints[1], ints[2]
    f = 0
    for n in range(Dm):
        R, dR = Rz[q, 0, n], Rz[q, 1, n]
        for a in range(nc):
            out[f] += R * x[a] + dR * y[a]
            f += 1
    for n in range(Dm, n_rad):
        out[f] += Rz[q, 0, n] * x[0] + Rz[q, 1, n] * y[0]
        f += 1


@njit(cache=True)
def _contract_factored(Rz, Sz, Uz, q, g, ints, gd, out, p):
    """out[p] = Σ_f g_f ∇φ_f of one pair from its factors: with γ_a = Σ_n g_{n,a} R_n and
    δ_a = Σ_n g_{n,a} R_n', Σ_a δ_a S̃_a û + Σ_a γ_a V_a; ``gd`` (≥ 2, n_comp) scratch."""
    n_rad, Dm, nc = ints[0], ints[1], ints[2]
    for a in range(nc):
        gd[0, a] = 0.0
        gd[1, a] = 0.0
    f = 0
    for n in range(Dm):
        R, dR = Rz[q, 0, n], Rz[q, 1, n]
        for a in range(nc):
            gf = g[f]
            gd[0, a] += gf * R
            gd[1, a] += gf * dR
            f += 1
    for n in range(Dm, n_rad):
        gd[0, 0] += g[f] * Rz[q, 0, n]
        gd[1, 0] += g[f] * Rz[q, 1, n]
        f += 1
    s = 0.0
    v0 = 0.0
    v1 = 0.0
    v2 = 0.0
    for a in range(nc):
        s += gd[1, a] * Sz[q, a, 0]
        ga = gd[0, a]
        v0 += ga * Sz[q, a, 1]
        v1 += ga * Sz[q, a, 2]
        v2 += ga * Sz[q, a, 3]
    out[p, 0] = s * Uz[q, 0] + v0
    out[p, 1] = s * Uz[q, 1] + v1
    out[p, 2] = s * Uz[q, 2] + v2


@njit(cache=True)
def _centre_basis(D, p0, z, nA, scal, ints, lam, expo, ptr, mono, coef, phi, Jl, H, wk, a1):
    """A of one centre into ``a1[:nA]``: the basis φ of its ``z`` pairs from ``p0`` summed,
    with ∇φ of its q-th pair kept in ``Jl[q]`` (:func:`_pair`)."""
    for f in range(nA):
        a1[f] = 0.0
    for q in range(z):
        p = p0 + q
        _pair(D[p, 0], D[p, 1], D[p, 2], scal, ints, lam, expo, ptr, mono, coef, 1, phi, Jl[q], H, wk)
        for f in range(nA):
            a1[f] += phi[f]


@njit(cache=True)
def linear_forces(D, start, w, idx, scal, ints, lam, expo, ptr, mono, coef):
    """One pass over the centres of a linear model: per centre the basis of its pairs (kept
    in scratch), A_i, ε_i − c_0 and g_i = ∂ε/∂A_i, then ∂E/∂D_p = g_i · ∇φ(D_p).
    Returns (ε − c_0 (n,) eV, ∂E/∂D (P, 3) eV/Å, A (n, n_A), g (n, n_A) eV)."""
    nA = ints[3]
    n = start.shape[0] - 1
    wk, Jl, phi, H = _centre_scratch(start, ints)
    a1 = np.ones(nA + 1)
    g1 = np.zeros(nA + 1)
    e = np.zeros(n)
    out = np.zeros((D.shape[0], 3))
    A = np.zeros((n, nA))
    G = np.zeros((n, nA))
    for c in range(n):
        p0 = start[c]
        z = start[c + 1] - p0
        _centre_basis(D, p0, z, nA, scal, ints, lam, expo, ptr, mono, coef, phi, Jl, H, wk, a1)
        e[c] = _site_grad1(a1, w, idx, g1)
        for f in range(nA):
            A[c, f] = a1[f]
            G[c, f] = g1[f]
        for q in range(z):
            _contract(Jl[q], g1, nA, out, p0 + q)
    return e, out, A, G


@njit(cache=True)
def pair_factors(D, scal, ints, lam, expo, ptr, mono, coef):
    """The factors of φ and ∇φ (:func:`_pair_factored`) of every pair: radial (P, 2, n_rad),
    angular (P, n_comp, 4), û (P, 3) — 8·(2·n_rad + 4·n_comp + 3) bytes per pair, kept by a
    Hessian operator so that its products do not evaluate the basis again."""
    P = D.shape[0]
    wk = _scratch(ints)
    Rz = np.zeros((P, 2, ints[0]))
    Sz = np.zeros((P, ints[2], 4))
    Uz = np.zeros((P, 3))
    for p in range(P):
        _pair_factored(D[p, 0], D[p, 1], D[p, 2], scal, ints, lam, expo, ptr, mono, coef, wk, p, Rz, Sz, Uz)
    return Rz, Sz, Uz


@njit(cache=True)
def linear_hvp(start, dD, A, T, Rz, Sz, Uz, w, idx, ints):
    """Pair-space Hessian product of a linear model: δ(∂E/∂D_p) (P, 3) eV/Å for pair
    displacements δD (P, 3) Å, = ∇φ_pᵀ M_i Σ_q ∇φ_q δD_q + T_p δD_p with M_i = ∂²ε/∂A_i²
    (applied through the monomials, never formed), T from :func:`pair_curvature` and ∇φ in
    factored form from :func:`pair_factors`: δA_{n,a} = R_n' (S̃_a û·δD) + R_n (V_a·δD)."""
    nA = ints[3]
    nc = ints[2]
    n = start.shape[0] - 1
    a1 = np.ones(nA + 1)
    d1 = np.zeros(nA + 1)
    dg = np.zeros(nA + 1)
    vec = np.zeros((4, nc))
    out = np.zeros((dD.shape[0], 3))
    x, y = vec[2], vec[3]
    for c in range(n):
        p0 = start[c]
        z = start[c + 1] - p0
        for f in range(nA):
            a1[f] = A[c, f]
            d1[f] = 0.0
        for p in range(p0, p0 + z):
            v0, v1, v2 = dD[p, 0], dD[p, 1], dD[p, 2]
            s1 = Uz[p, 0] * v0 + Uz[p, 1] * v1 + Uz[p, 2] * v2
            for a in range(nc):
                x[a] = Sz[p, a, 1] * v0 + Sz[p, a, 2] * v1 + Sz[p, a, 3] * v2
                y[a] = Sz[p, a, 0] * s1
            _radial_outer(Rz, p, x, y, ints, d1)
        for f in range(nA + 1):
            dg[f] = 0.0
        for t in range(w.shape[0]):
            i0, i1, i2 = idx[t, 0], idx[t, 1], idx[t, 2]
            wt = w[t]
            dg[i0] += wt * (d1[i1] * a1[i2] + a1[i1] * d1[i2])
            dg[i1] += wt * (d1[i0] * a1[i2] + a1[i0] * d1[i2])
            dg[i2] += wt * (d1[i0] * a1[i1] + a1[i0] * d1[i1])
        for p in range(p0, p0 + z):
            _contract_factored(Rz, Sz, Uz, p, dg, ints, vec, out, p)
            v0, v1, v2 = dD[p, 0], dD[p, 1], dD[p, 2]
            for c3 in range(3):
                out[p, c3] += T[p, c3, 0] * v0 + T[p, c3, 1] * v1 + T[p, c3, 2] * v2
    return out


@njit(cache=True)
def design_efv(D, start, j, mono_k, mono_coef, gidx, K, virial, scal, ints, lam, expo, ptr, mono, coef):
    """Design rows of a linear model (the observations per unit coefficient): per feature k
    Σ_i B_k(A_i) (K,), the forces −∂/∂x Σ_i B_k (n, 3, K) eV/Å per eV and, if ``virial``,
    −Σ_p D_p ⊗ ∂B_k/∂D_p (3, 3, K). Features are the monomials t of the basis:
    B_k = Σ_{t: mono_k[t] = k} mono_coef[t] Π_s A1[gidx[t, s]] (A1 = A with the constant
    1 at index n_A). Per centre: φ, ∇φ of its pairs (:func:`_pair`), A, and the three
    A-derivatives of each monomial, then ∂B_k/∂D_p = Σ over those of value × ∇φ_f(D_p)."""
    nA = ints[3]
    n = start.shape[0] - 1
    T = mono_k.shape[0]
    wk, Jl, phi, H = _centre_scratch(start, ints)
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
        _centre_basis(D, p0, z, nA, scal, ints, lam, expo, ptr, mono, coef, phi, Jl, H, wk, a1)
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
