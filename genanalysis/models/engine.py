"""Energies, forces, virials and exact force constants of site-energy models on A-features.

Units: positions Å, energies eV, forces eV/Å, virials eV, Hessians eV/Å².

Every model here has the form E = Σ_i ε(A_i), with A_i = Σ_{j ∈ N(i)} φ(D_ij) the density
projections of :mod:`genanalysis.models.basis` and D_ij = x_j − x_i (+ lattice shift). The
chain rule then separates a cheap per-site part (∂ε/∂A, ∂²ε/∂A², from the model) from a
per-pair geometric part (∇φ, ∇²φ, from the basis), so that

* ∂E/∂D_p = g_{i(p)} · ∇φ(D_p)                      (forces and virials, one pass over pairs)
* ∂²E/∂D_p∂D_q = ∇φ(D_p)ᵀ M_i ∇φ(D_q) + δ_pq g_i · ∇²φ(D_p)   (p, q neighbours of the same i)

with g_i = ∂ε/∂A_i and M_i = ∂²ε/∂A_i². Only pairs with a common centre couple, so the
position Hessian couples atoms closer than 2·r_cut and is assembled sparsely. The same
routines, called with one "output" per feature, give the design-matrix rows of the linear
fit (docs/models.md §2). Everything is vectorised over neighbour-list arrays; loops run
over memory-bounded chunks only.

Sign conventions: forces F = −∂E/∂x; virial W = −∂E/∂ε = −Σ_p D_p ⊗ ∂E/∂D_p
(= −stress·volume, ASE's stress sign); Hessian H = ∂²E/∂x∂x, atom-major (3n × 3n).
"""

from __future__ import annotations

import math
from functools import cached_property

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch
from ase import Atoms
from matscipy.neighbours import neighbour_list

from genanalysis.exceptions import InputError, OverlapError
from genanalysis.lattice import atoms_dim  # noqa: F401 - re-exported: engine.atoms_dim
from genanalysis.memory import check_memory
from genanalysis.models import kernels

__all__ = ["Geometry", "GeometryCache", "geometry", "model_geometry", "projections", "pair_gradients",
           "forces_virial", "held_pair_terms", "pair_operator", "hessian_sparse", "hessian_dense_rows",
           "translation_orbit"]

#: elements per chunk of the largest temporary array (float64) — bounds memory to ~200 MB
_BUDGET = 2.5e7


class Geometry:
    """Neighbour-list arrays of a configuration (pairs sorted by centre i).

    ``D`` (P, 3) Å pair vectors x_j − x_i + shift (a torch view of ``Dn``); ``start``
    (n + 1,) the pair offsets of each centre; ``pad`` (n, z_max) pair indices of each
    centre, padded with P (a dummy pair whose derivatives are zero; built on first use).
    """

    def __init__(self, n: int, i: np.ndarray, j: np.ndarray, D: np.ndarray, dim: int):
        self.n, self.i, self.j, self.dim = n, i, j, dim
        self.Dn = np.ascontiguousarray(D, dtype=np.float64)
        zero = np.flatnonzero(np.einsum("pa,pa->p", self.Dn, self.Dn) == 0.0) if len(i) else ()
        if len(zero):
            # two atoms on one point (a model driven into collapse): the pair terms divide by r,
            # and the compiled kernels would raise ZeroDivisionError; this is a numerical finding
            p = int(zero[0])
            raise OverlapError(f"atoms {int(i[p])} and {int(j[p])} coincide (distance 0 Å)")
        self.D = torch.from_numpy(self.Dn)
        self.start = np.concatenate([[0], np.cumsum(np.bincount(i, minlength=n))]).astype(np.int64)

    @property
    def P(self) -> int:
        return len(self.i)

    @cached_property
    def pad(self) -> np.ndarray:
        n, i = self.n, self.i
        counts = np.diff(self.start)
        zmax = max(int(counts.max()) if len(i) else 0, 1)
        slot = np.arange(len(i)) - self.start[:-1][i]
        pad = np.full((n, zmax), len(i), dtype=np.int64)
        pad[i, slot] = np.arange(len(i))
        return pad

    @property
    def zmax(self) -> int:
        return self.pad.shape[1]


def _sorted(n, i, j, D, dim) -> Geometry:
    order = np.argsort(i, kind="stable")
    return Geometry(n, i[order].astype(np.int64), j[order].astype(np.int64), D[order], dim)


def geometry(atoms: Atoms, cutoff: float) -> Geometry:
    """Neighbour list within ``cutoff`` (Å) of a (periodic or not) configuration."""
    n = len(atoms)
    if n == 0:
        raise InputError("configuration has no atoms")
    if not atoms.pbc.any() and atoms.cell.rank < 3:
        # an isolated cluster: any box that contains it serves the neighbour search
        lo = atoms.positions.min(axis=0)
        span = atoms.positions.max(axis=0) - lo
        atoms = Atoms(positions=atoms.positions - lo + cutoff, cell=np.diag(span + 2 * cutoff + 1.0), pbc=False)
    elif atoms.cell.rank < 3:
        raise InputError("a periodic configuration needs three independent cell vectors (Å)")
    i, j, D = neighbour_list("ijD", atoms, float(cutoff))
    return _sorted(n, i, j, D, atoms_dim(atoms))


class GeometryCache:
    """:func:`geometry` with a Verlet skin: the list within ``cutoff + skin`` (Å) of a
    periodic cell is kept, and while no atom has moved more than skin/2 since it was built
    (same cell, pbc and atom count) only the pair vectors are recomputed and the pairs
    beyond ``cutoff`` dropped — the same pairs as a fresh search, for a relaxation's many
    evaluations at nearby positions. Other configurations go to :func:`geometry`."""

    def __init__(self, cutoff: float, skin: float | None = None):
        self.cutoff = float(cutoff)
        self.skin = 0.05 * self.cutoff if skin is None else float(skin)
        self._entry = None

    def __call__(self, atoms: Atoms) -> Geometry:
        n = len(atoms)
        if n == 0 or not atoms.pbc.all() or atoms.cell.rank < 3:
            return geometry(atoms, self.cutoff)
        cell = np.array(atoms.cell, dtype=np.float64)
        key = (n, cell.tobytes(), atoms_dim(atoms))
        x = np.asarray(atoms.positions, dtype=np.float64)
        e = self._entry
        if e is None or e["key"] != key or float(np.abs(x - e["x"]).max()) > 0.5 * self.skin / math.sqrt(3):
            i, j, S = neighbour_list("ijS", atoms, self.cutoff + self.skin)
            order = np.argsort(i, kind="stable")
            e = self._entry = {"key": key, "x": x.copy(), "i": i[order].astype(np.int64),
                               "j": j[order].astype(np.int64), "shift": S[order].astype(np.float64) @ cell}
        D = x[e["j"]] - x[e["i"]] + e["shift"]
        keep = np.einsum("pa,pa->p", D, D) < self.cutoff * self.cutoff
        return Geometry(n, e["i"][keep], e["j"][keep], D[keep], atoms_dim(atoms))


def model_geometry(model, atoms: Atoms) -> Geometry:
    """The neighbour list of ``atoms`` within ``model.cutoff`` from the model's own
    :class:`GeometryCache` (made on first use), so that a relaxation's many calls at
    nearby positions reuse one search."""
    cache = model.__dict__.get("_geoms")
    if cache is None or cache.cutoff != model.cutoff:
        cache = model._geoms = GeometryCache(model.cutoff)
    return cache(atoms)


def held_pair_terms(basis, geom: Geometry, G: np.ndarray) -> dict:
    """What a matrix-free Hessian operator holds per pair, computed at its first product:
    the curvature T_p = Σ_f G_{i(p) f} ∇²φ_f(D_p) ("T", :func:`kernels.pair_curvature`) and
    the basis factors of ∇φ ("F", :func:`kernels.pair_factors`); together
    8·(2·n_rad + 4·n_comp + 12) bytes per pair, estimated before allocating."""
    check_memory("the Hessian operator's pair factors", 8.0 * geom.Dn.shape[0] * (2 * basis.n_rad + 4 * basis.n_comp + 12))
    tabs = kernels.tables(basis)
    return {"T": kernels.pair_curvature(geom.Dn, geom.i, G, *tabs), "F": kernels.pair_factors(geom.Dn, *tabs)}


def pair_operator(geom: Geometry, pair_hvp) -> spla.LinearOperator:
    """The (3n × 3n) symmetric operator H v = Σ_p (e_j − e_i)ᵀ pair_hvp(δD)_p with
    δD_p = v_j − v_i (eV/Å² · Å → eV/Å), from a pair-space product ``pair_hvp``."""
    n = geom.n

    def matvec(v):
        V = np.ascontiguousarray(np.asarray(v, dtype=np.float64).reshape(n, 3))
        Y = pair_hvp(kernels.gather_pairs(V, geom.i, geom.j))
        return kernels.scatter_pairs(Y, geom.i, geom.j, n).ravel()

    def matmat(X):
        X = np.asarray(X, dtype=np.float64).reshape(3 * n, -1)
        return np.stack([matvec(X[:, k]) for k in range(X.shape[1])], axis=1)

    return spla.LinearOperator((3 * n, 3 * n), matvec=matvec, rmatvec=matvec, matmat=matmat, dtype=np.float64)


def _chunks(total: int, size: int):
    size = max(int(size), 1)
    for a in range(0, total, size):
        yield a, min(a + size, total)


def _np(x) -> np.ndarray:
    return np.ascontiguousarray(x.detach().numpy() if isinstance(x, torch.Tensor) else x, dtype=np.float64)


def projections(basis, geom: Geometry) -> torch.Tensor:
    """A (n, n_A): Σ_j φ(D_ij) for every site (dimensionless)."""
    return torch.from_numpy(kernels.projections(geom.Dn, geom.i, geom.n, *kernels.tables(basis)))


def hessian_inputs(basis, atoms: Atoms, cutoff: float):
    """(geometry, projections A (n, n_A), S = every A-component (1, n_A)) of ``atoms``: what
    :func:`hessian_sparse` and :func:`hessian_dense_rows` take beside a model's site function."""
    geom = geometry(atoms, cutoff)
    return geom, projections(basis, geom), torch.arange(basis.n_A)[None, :]


def _padded_phi_derivatives(basis, geom: Geometry, flat: np.ndarray):
    """∇φ (m, n_A + 1, 3) and ∇²φ (m, n_A + 1, 3, 3) of the padded pair slots ``flat`` (slot
    index P = no pair: zeros; the extra last component is zero too), in 1/Å and 1/Å² (φ is
    dimensionless)."""
    nA = basis.n_A
    real = torch.tensor(flat < geom.P)
    J = torch.zeros(len(flat), nA + 1, 3)
    H = torch.zeros(len(flat), nA + 1, 3, 3)
    if real.any():
        J_, H_ = basis.phi_derivatives(geom.D[flat[real.numpy()]], order=2)
        J[real, :nA], H[real, :nA] = J_, H_
    return J, H


def pair_gradients(basis, geom: Geometry, G: torch.Tensor) -> torch.Tensor:
    """∂E/∂D_p (P, 3) in eV/Å for E = Σ_i ε(A_i) with G = ∂ε/∂A (n, n_A) in eV: one
    vector–Jacobian product of φ per pair (no (P, n_A, 3) array is formed)."""
    return torch.from_numpy(kernels.pair_vjp(geom.Dn, geom.i, _np(G), *kernels.tables(basis)))


def pair_curvature(basis, geom: Geometry, G) -> np.ndarray:
    """T_p = Σ_f G_{i(p) f} ∇²φ_f(D_p) (P, 3, 3) eV/Å² for G = ∂ε/∂A (n, n_A) eV."""
    return kernels.pair_curvature(geom.Dn, geom.i, _np(G), *kernels.tables(basis))


def forces_virial(geom: Geometry, dEdD: torch.Tensor):
    """Forces (n, 3) eV/Å and virial (3, 3) eV from ∂E/∂D (P, 3, ...). Trailing axes of
    ``dEdD`` beyond the first two are carried along (used for design rows)."""
    it, jt = torch.tensor(geom.i), torch.tensor(geom.j)
    F = torch.zeros((geom.n,) + tuple(dEdD.shape[1:]), dtype=dEdD.dtype)
    F.index_add_(0, it, dEdD)
    F.index_add_(0, jt, -dEdD)
    W = -torch.einsum("pa,pb...->ab...", geom.D, dEdD)
    return F, W


def forces_virial_np(geom: Geometry, dEdD: np.ndarray):
    """:func:`forces_virial` of a single output (numpy, compiled scatter): forces (n, 3)
    eV/Å, virial (3, 3) eV."""
    F = -kernels.scatter_pairs(dEdD, geom.i, geom.j, geom.n)
    W = -(geom.Dn.T @ dEdD)
    return F, W


def translation_orbit(atoms: Atoms, tol: float = 1e-6) -> bool:
    """True when every atom is mapped onto atom 0 by a translation that maps the periodic
    configuration onto itself (a perfect Bravais crystal): then every row block of its
    force-constant matrix is a translate of atom 0's, and ‖H‖²_F = n · ‖H[atom 0]‖²_F."""
    dim = atoms_dim(atoms)
    if len(atoms) < 2 or not all(atoms.pbc[:dim]):
        return False
    cell = np.array(atoms.cell)[:dim, :dim]
    frac = atoms.positions[:, :dim] @ np.linalg.inv(cell)
    grid = int(round(1.0 / tol))

    def keys(f):
        return {tuple(r) for r in np.round((f % 1.0) * grid).astype(np.int64) % grid}

    ref = keys(frac)
    if len(ref) != len(atoms):
        return False
    return all(keys(frac - frac[a] + frac[0]) == ref for a in range(1, len(atoms)))


def _hessian_chunks(basis, geom: Geometry, site_fn, S: torch.Tensor, rows: np.ndarray | None):
    """Yield (row_atom (c, R), col_atom (c, Q), values (c, R, Q, K, 3, 3)) such that
    H_k[3 r + α, 3 col + β] += values[c, ρ, q, k, α, β] with r = row_atom[c, ρ] (−1: padding),
    col = col_atom[c, q], for chunks of centres c.

    Per centre i the pair-space Hessian of output k is h = J_Sᵀ M J_S + diag_p(g·∇²φ(D_p)),
    J_S the gradients of the A-components output k depends on (slots ``S``, index n_A =
    zero padding); positions enter through D_p = x_{j_p} − x_i, i.e. row/column "centre"
    (−Σ_p) and "neighbour p" (+). Only rows of atoms in ``rows`` (None = all) are formed.
    ``site_fn(centres) -> (g (c, K, S_max), M (c, K, S_max, S_max))``.
    """
    n, z, nA = geom.n, geom.zmax, basis.n_A
    K, Smax = S.shape
    want = np.ones(n, bool) if rows is None else np.isin(np.arange(n), rows)
    jpad = np.concatenate([geom.j, [-1]])
    # local row r of centre i: 0 = the centre itself, 1 + p = neighbour in slot p
    local_atom = np.concatenate([np.arange(n)[:, None], jpad[geom.pad]], axis=1)  # (n, z+1), −1 = none
    local_ok = (local_atom >= 0) & want[np.maximum(local_atom, 0)]
    centres = np.flatnonzero(local_ok.any(axis=1))
    Rn = local_ok.sum(axis=1)
    # outer blocks: φ derivatives of the block's pairs; inner chunks: the per-output algebra
    outer = max(1, int(_BUDGET // (z * (nA + 1) * 12)))
    for a0, a1 in _chunks(len(centres), outer):
        Cb = centres[a0:a1]
        Jb, Hb = _padded_phi_derivatives(basis, geom, geom.pad[Cb].reshape(-1))
        Jb = Jb.view(len(Cb), z, nA + 1, 3)
        Hb = Hb.view(len(Cb), z, nA + 1, 3, 3)
        Rmax_b = int(Rn[Cb].max())
        inner = max(1, int(_BUDGET // (K * (3 * Rmax_b * 3 * (z + 1) + Smax * 3 * z * 2))))
        for b0, b1 in _chunks(len(Cb), inner):
            C = Cb[b0:b1]
            c = len(C)
            ok = local_ok[C]
            R = int(ok.sum(axis=1).max())
            # the selected local rows of each centre, padded with row 0 (masked below)
            order = np.argsort(~ok, axis=1, kind="stable")[:, :R]
            rvalid = np.take_along_axis(ok, order, axis=1)
            rsel = torch.tensor(order)
            g, M = site_fn(C)  # (c, K, Smax), (c, K, Smax, Smax)
            JS = Jb[b0:b1][:, :, S].permute(0, 2, 3, 1, 4)  # (c, K, Smax, z, 3)
            # rows: neighbour slot p → J_p; the centre → −Σ_p J_p
            V = torch.gather(JS, 3, (rsel - 1).clamp(min=0)[:, None, None, :, None].expand(c, K, Smax, R, 3))
            if ok[:, 0].any():
                cs = torch.tensor(np.flatnonzero(ok[:, 0]))
                V[cs, :, :, 0] = -JS[cs].sum(dim=3)
            Vt = V.reshape(c, K, Smax, 3 * R).transpose(2, 3)  # (c, K, 3R, Smax)
            JSf = JS.reshape(c, K, Smax, 3 * z)
            if 3 * R <= Smax:  # cheaper association for few rows
                h = torch.matmul(torch.matmul(Vt, M), JSf)
            else:
                h = torch.matmul(Vt, torch.matmul(M, JSf))  # (c, K, 3R, 3z)
            h = h.view(c, K, R, 3, z, 3)
            # δ_pq term: T_p = Σ_s g_s ∇²φ_{S[s]}(D_p), + on row 1+p, − on the centre row
            gd = torch.zeros(c, K, nA + 1)
            gd.scatter_add_(2, S.expand(c, K, Smax), g)
            T = torch.einsum("ckf,cpfab->ckpab", gd[:, :, :nA], Hb[b0:b1][:, :, :nA])  # (c, K, z, 3, 3)
            # the centre's own row, when wanted, is local row 0 (ok[:, 0] sorts first)
            cs = torch.tensor(np.flatnonzero(ok[:, 0]))
            if len(cs):
                h[cs, :, 0] -= T[cs].permute(0, 1, 3, 2, 4)
            nb = rsel > 0
            ci, ri = torch.nonzero(nb, as_tuple=True)
            if len(ci):
                p = rsel[ci, ri] - 1
                h[ci, :, ri, :, p, :] += T[ci, :, p]
            row_atom = np.where(rvalid, np.take_along_axis(local_atom[C], order, axis=1), -1)
            # columns: neighbours (+), and the centre (−Σ_p), yielded as a separate column
            yield row_atom, local_atom[C][:, 1:], h.permute(0, 2, 4, 1, 3, 5)  # (c, R, z, K, 3, 3)
            yield row_atom, local_atom[C][:, :1], -h.sum(dim=4, keepdim=True).permute(0, 2, 4, 1, 3, 5)


def _hessian_dense_gemm(basis, geom: Geometry, site_fn, S: torch.Tensor) -> torch.Tensor:
    """All rows of every output's Hessian, (K, 3n, 3n), as H_k = G_kᵀ blockdiag_i(M_ik) G_k
    + (δ_pq terms), with G_k the (n·S_max × 3n) position Jacobian of the A-components
    output k depends on: dense GEMMs instead of a per-centre scatter of (z+1)² blocks, the
    faster route for small periodic cells (n ≲ a few hundred)."""
    n, z, nA = geom.n, geom.zmax, basis.n_A
    K, Smax = S.shape
    J, Hp = _padded_phi_derivatives(basis, geom, geom.pad.reshape(-1))
    J = J.view(n, z, nA + 1, 3)
    Hp = Hp.view(n, z, nA + 1, 3, 3)
    g, M = site_fn(np.arange(n))  # (n, K, Smax), (n, K, Smax, Smax)
    jpad = np.concatenate([geom.j, [0]])
    col = np.concatenate([np.arange(n)[:, None], jpad[geom.pad]], axis=1)  # (n, z+1)
    valid = np.concatenate([np.ones((n, 1), bool), geom.pad < geom.P], axis=1)
    # flat column index of (centre i, local slot q, β) in a row-block-major G: i·3n + 3·col + β
    gidx = torch.tensor((np.arange(n)[:, None, None] * 3 * n + 3 * col[:, :, None] + np.arange(3)).reshape(-1))
    rows_p = torch.tensor(jpad[geom.pad])  # (n, z) neighbour atoms (padding → 0, zero values)
    cent = torch.arange(n)[:, None].expand(n, z)
    HpT = Hp[:, :, :nA].permute(0, 2, 1, 3, 4).reshape(n, nA, z * 9)
    del Hp
    out = torch.zeros(K, 3 * n, 3 * n)
    kc = max(1, int(_BUDGET // (n * Smax * 3 * n * 3 + n * z * Smax * 3 * 2)))
    for k0, k1 in _chunks(K, kc):
        ks = S[k0:k1]
        c = k1 - k0
        JS = J[:, :, ks]  # (n, z, c, Smax, 3)
        loc = torch.cat([-JS.sum(dim=1, keepdim=True), JS], dim=1)  # (n, z+1, c, Smax, 3)
        loc = loc * torch.tensor(valid, dtype=loc.dtype)[:, :, None, None, None]
        src = loc.permute(2, 3, 0, 1, 4).reshape(c, Smax, -1)  # (c, Smax, n·(z+1)·3)
        G = torch.zeros(c, Smax, n * 3 * n).index_add_(2, gidx, src)
        G = G.view(c, Smax, n, 3 * n).permute(0, 2, 1, 3).contiguous()  # (c, n, Smax, 3n)
        MG = torch.matmul(M[:, k0:k1].transpose(0, 1), G)  # (c, n, Smax, 3n)
        H = torch.bmm(G.reshape(c, n * Smax, 3 * n).transpose(1, 2), MG.reshape(c, n * Smax, 3 * n))
        # δ_pq term T_p = Σ_f g_f ∇²φ_f(D_p) on blocks (j,j) +, (i,j) −, (j,i) −, (i,i) +
        gd = torch.zeros(n, c, nA + 1)
        gd.scatter_add_(2, ks.expand(n, c, Smax), g[:, k0:k1])
        T = torch.bmm(gd[:, :, :nA], HpT).view(n, c, z, 3, 3).transpose(1, 2).reshape(n * z, c, 3, 3)
        Hv = H.view(c, n, 3, n, 3).permute(1, 3, 0, 2, 4)  # (n, n, c, 3, 3) view
        jr, ir = rows_p.reshape(-1), cent.reshape(-1)
        Hv.index_put_((jr, jr), T, accumulate=True)
        Hv.index_put_((ir, jr), -T, accumulate=True)
        Hv.index_put_((jr, ir), -T, accumulate=True)
        Hv.index_put_((ir, ir), T, accumulate=True)
        out[k0:k1] = H
    return out


def hessian_dense_rows(basis, geom: Geometry, site_fn, S: torch.Tensor, rows: np.ndarray | None = None) -> torch.Tensor:
    """Hessian rows of every output: (K, 3·len(rows), 3n) eV/Å² per unit output coefficient."""
    n = geom.n
    if (rows is None or len(np.unique(rows)) == n) and n * S.shape[1] * 3 * n * 3 <= _BUDGET:
        H = _hessian_dense_gemm(basis, geom, site_fn, S)
        if rows is None:
            return H
        r3 = (3 * np.asarray(rows)[:, None] + np.arange(3)).reshape(-1)
        return H[:, torch.tensor(r3)]
    rows = np.arange(n) if rows is None else np.asarray(rows)
    pos = np.full(n, -1)
    pos[rows] = np.arange(len(rows))
    K = S.shape[0]
    nr = len(rows)
    dump = nr * n  # padding rows and columns land here
    out = torch.zeros(nr * n + 1, K * 9)
    for r, cols, vals in _hessian_chunks(basis, geom, site_fn, S, rows):
        rp = np.where(r >= 0, pos[np.maximum(r, 0)], -1)
        idx = rp[:, :, None] * n + cols[:, None, :]
        idx = np.where((rp[:, :, None] >= 0) & (cols[:, None, :] >= 0), idx, dump)
        out.index_add_(0, torch.tensor(idx.reshape(-1)), vals.reshape(-1, K * 9))  # one copy: (c,R,Q) first
    out = out[:-1].view(nr, n, K, 3, 3)
    return out.permute(2, 0, 3, 1, 4).reshape(K, 3 * nr, 3 * n)


def hessian_sparse(basis, geom: Geometry, site_fn, S: torch.Tensor) -> sp.csr_array:
    """The (3n × 3n) Hessian (eV/Å²) of a single-output model as a sparse matrix,
    assembled block by block into its (2·r_cut) block pattern by a compiled kernel
    (no COO triplets). ``site_fn(centres) -> (g (c, 1, n_A), M (c, 1, n_A, n_A))``."""
    n, nA = geom.n, basis.n_A
    if S.shape[0] != 1 or S.shape[1] != nA:
        raise ValueError("hessian_sparse needs a single output over every A-component")
    start = geom.start
    indptr, indices = kernels.block_pattern(n, start, geom.j)
    data = np.zeros((len(indices), 3, 3))
    D = geom.Dn
    tabs = kernels.tables(basis)
    step = max(1, int(_BUDGET // (nA * nA + 1)))
    for a, b in _chunks(n, step):
        C = np.arange(a, b, dtype=np.int64)
        g, M = site_fn(C)
        kernels.hessian_blocks(D, start, geom.j, C, _np(g[:, 0]), _np(M[:, 0]), indptr, indices, data, *tabs)
    return sp.csr_array(sp.bsr_array((data, indices, indptr), shape=(3 * n, 3 * n)))
