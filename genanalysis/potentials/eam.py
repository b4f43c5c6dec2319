"""One vectorised engine for single-species EAM and pair potentials.

    E = Σ_i F(ρ_i) + Σ_{pairs p} φ(r_p),    ρ_i = Σ_{p ∋ i} f(r_p)

over a half pair list (each unordered pair once; periodic images, including an atom's own
images, are separate pairs — see :mod:`genanalysis.potentials.neighbours`). Pair
potentials are the case F = 0 (no density). Units: r in Å, φ and F in eV, f in the
density units of the embedding function; forces eV/Å, virial eV, Hessian eV/Å².

With e_p = R_p/r_p and g_p = φ'(r_p) + (F'(ρ_i) + F'(ρ_j)) f'(r_p) (= ∂E/∂r_p):

* forces: −g_p e_p on j, +g_p e_p on i; virial = −Σ_p g_p R_p⊗R_p / r_p;
* site energies: F(ρ_i) + ½ Σ_{p∋i} φ(r_p);
* Hessian = Σ_p K_p (pair pattern: +K on the (i,i), (j,j) blocks, −K on (i,j), (j,i)) with
  K_p = a_p e e^T + b_p (I − e e^T), a_p = φ'' + (F'_i + F'_j) f'', b_p = g_p / r_p,
  plus the embedding curvature Σ_a F''(ρ_a) ∇ρ_a ∇ρ_a^T = Gᵀ diag(F'') G with G the sparse
  (n × 3n) density gradient. The matrix-free product applies G, then diag(F''), then Gᵀ
  without ever forming the second-neighbour coupling.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from genanalysis.potentials.base import Observation, Potential
from genanalysis.potentials.functions import FusedRadialTables
from genanalysis.potentials.neighbours import NeighbourCache, PairList

__all__ = ["EAMPotential", "PairPotential"]


def _scatter3(idx: np.ndarray, vec: np.ndarray, n: int) -> np.ndarray:
    """Σ over rows of ``vec`` (P, 3) into ``n`` atoms by index ``idx``."""
    return np.stack([np.bincount(idx, weights=vec[:, c], minlength=n) for c in range(3)], axis=1)


def _add(out: np.ndarray, idx: np.ndarray, lo: int, hi: int, w: np.ndarray) -> None:
    """out[idx] += w for a block whose indices lie in lo..hi (bincount over that range)."""
    out[lo:hi + 1] += np.bincount(idx - lo, weights=w, minlength=hi - lo + 1)


_C3 = np.arange(3)


def threads() -> int:
    """Threads for the pair passes: ``GENANALYSIS_THREADS`` (default 1). The blocks are
    split in contiguous halves with private accumulators; NumPy releases the GIL in its
    element-wise loops and gathers (not in ``bincount``), so two threads give well under
    2x — measured in docs/performance.md."""
    try:
        return max(1, min(64, int(os.environ.get("GENANALYSIS_THREADS", "1"))))
    except ValueError:
        return 1


_POOL: dict = {}


def _map_blocks(fn, pb) -> list:
    """``fn(bounds)`` over the blocks of ``pb``, on :func:`threads` threads (contiguous
    shares of about equal pair counts); returns each share's result."""
    t = threads()
    bounds = pb.bounds
    if t == 1 or len(bounds) < 2 * t:
        return [fn(bounds)]
    cuts = np.searchsorted([b[1] for b in bounds], np.linspace(0, len(pb), t + 1)[1:-1])
    shares = np.split(np.arange(len(bounds)), cuts)
    pool = _POOL.get(t)
    if pool is None:
        from concurrent.futures import ThreadPoolExecutor

        pool = _POOL[t] = ThreadPoolExecutor(max_workers=t, thread_name_prefix="genanalysis-pairs")
    futures = [pool.submit(fn, [bounds[k] for k in share]) for share in shares if len(share)]
    return [f.result() for f in futures]


def _sum(parts):
    """Sum of per-share accumulators (the first is reused)."""
    parts = iter(parts)
    total = next(parts)
    for p in parts:
        total += p
    return total


def _add3(out: np.ndarray, idx: np.ndarray, lo: int, hi: int, y: np.ndarray) -> None:
    """out[idx] += y (rows of 3-vectors) for a block whose indices lie in lo..hi."""
    m = hi - lo + 1
    flat = ((idx - lo) * 3)[:, None] + _C3
    out[lo:hi + 1] += np.bincount(flat.ravel(), weights=y.ravel(), minlength=3 * m).reshape(m, 3)


class EAMPotential(Potential):
    """Single-species EAM: pair function ``phi(r)`` (eV), density ``f(r)``, embedding
    ``F(rho)`` (eV), each a callable ``fn(x, order) -> (value, d1, ..., d_order)`` (see
    :mod:`genanalysis.potentials.functions`). ``f`` and ``F`` None gives a pair potential.
    ``cutoff`` (Å): φ and f vanish for r ≥ cutoff. ``skin`` (Å): Verlet skin of the cached
    neighbour list (default 5 % of the cutoff). ``mass`` in amu (informational)."""

    def __init__(self, *, name: str, element: str, cutoff: float, phi, f=None, F=None,
                 skin: float | None = None, mass: float | None = None, meta: dict | None = None):
        if (f is None) != (F is None):
            raise ValueError("an EAM needs both a density function f and an embedding function F (or neither)")
        self.name = name
        self.species = (element,)
        self.cutoff = float(cutoff)
        self.phi, self.f, self.F = phi, f, F
        self.mass = mass
        self.meta = dict(meta or {})
        self.skin = 0.05 * self.cutoff if skin is None else float(skin)
        self._neighbours = NeighbourCache(self.cutoff, self.skin)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, cutoff={self.cutoff} Å)"

    @property
    def is_pair(self) -> bool:
        return self.f is None

    def pairs(self, atoms) -> PairList:
        """Half pair list within the cutoff (cached; see :mod:`.neighbours`)."""
        self.check_species(atoms)
        return self._neighbours.pairs(atoms)

    # -- the chunked passes (hot path) ---------------------------------------------------
    def _buffer(self, name: str, shape: tuple) -> np.ndarray:
        """A per-pair work array, reused between calls while nothing else holds it.

        Fresh arrays of this size come from mmap and cost a page fault per 4 KiB on first
        touch (about a third of a force call at 10⁷ pairs); reusing them avoids that. An
        array still referenced elsewhere (e.g. by a Hessian operator the caller kept) is
        never handed out again: a new one is made instead."""
        pool = self.__dict__.setdefault("_pool", {})
        arr = pool.get(name)
        # references: the pool's, ``arr`` and getrefcount's argument
        if arr is None or arr.shape != shape or sys.getrefcount(arr) > 3:
            arr = np.empty(shape)
            pool[name] = arr
        return arr

    def release_buffers(self) -> None:
        """Drop the per-pair work arrays kept for reuse (up to 8 float64 per pair of the
        last cell evaluated, e.g. ~4 GB after a 10⁶-atom relaxation)."""
        self.__dict__.pop("_pool", None)

    def _radial(self, r: np.ndarray, order: int):
        """(φ and derivatives, f and derivatives or None) at r (Å), zero for r ≥ cutoff."""
        fused = self.__dict__.get("_fused", False)
        if fused is False:
            fused = None if self.f is None else FusedRadialTables.from_functions(self.phi, self.f, self.cutoff)
            self._fused = fused
        if fused is not None:
            return fused(r, order)
        mask = (r < self.cutoff).astype(np.float64)
        ph = tuple(v * mask for v in self.phi(r, order))
        fv = None if self.f is None else tuple(v * mask for v in self.f(r, order))
        return ph, fv

    def _pass(self, atoms, order: int, site: bool = False, virial: bool = True):
        """One sweep over the pairs in blocks (see :class:`.neighbours.PairBlocks`): energy
        (eV), forces (eV/Å), virial (eV), site energies (eV, if ``site``) and, for
        ``order == 2``, the per-pair curvature data of :meth:`_operator`.

        Two block passes: the first evaluates the radial functions once per pair, scatters
        the densities and keeps the unit vectors e_p and the radial derivatives; the second
        (after F'(ρ)) forms g_p = ∂E/∂r_p and scatters forces. Everything per pair is
        stored by component (contiguous gathers); scatters onto i use ``np.add.reduceat``
        over the runs of equal i (the list is sorted by i), onto j ``np.bincount`` over the
        block's j range. Memory: 6 (order 1) or 8 (order 2) float64 per pair."""
        pb = self._neighbours.blocks(atoms)
        X = np.ascontiguousarray(np.asarray(atoms.positions, dtype=np.float64).T)
        n, P = pb.n_atoms, len(pb)
        eam = not self.is_pair
        buf = self._buffer
        E = buf("E", (3, P))
        rr = buf("rr", (P,))  # |R|, later b = g/r
        d1 = buf("d1", (P,))  # φ'
        df = buf("df", (P,)) if eam else None
        d2 = buf("d2", (P,)) if order >= 2 else None  # φ'', later a − b
        ddf = buf("ddf", (P,)) if (order >= 2 and eam) else None
        self._radial(np.ones(1), order)  # settle the lazily chosen table path before threads

        def first(bounds):
            rho = np.zeros(n)
            site_e = np.zeros(n) if site else None
            energy = 0.0
            for s, e, ilo, ihi, jlo, jhi, seg, segi in bounds:
                ib = pb.i[s:e].astype(np.intp)
                jb = pb.j[s:e].astype(np.intp)
                R, r = pb.separations(X, s, e, ib, jb)
                ph, fv = self._radial(r, order)
                energy += float(ph[0].sum())
                if site:
                    half = 0.5 * ph[0]
                    site_e[segi] += np.add.reduceat(half, seg)
                    _add(site_e, jb, jlo, jhi, half)
                d1[s:e] = ph[1]
                if d2 is not None:
                    d2[s:e] = ph[2]
                if eam:
                    rho[segi] += np.add.reduceat(fv[0], seg)
                    _add(rho, jb, jlo, jhi, fv[0])
                    df[s:e] = fv[1]
                    if ddf is not None:
                        ddf[s:e] = fv[2]
                ir = 1.0 / r
                for c in range(3):
                    np.multiply(R[c], ir, out=E[c, s:e])
                rr[s:e] = r
            return energy, rho, site_e

        parts = _map_blocks(first, pb)
        energy = sum(p[0] for p in parts)
        rho = _sum(p[1] for p in parts)
        site_e = _sum(p[2] for p in parts) if site else None
        ddF = None
        dF = None
        if eam:
            Fv = self.F(rho, order)
            dF = Fv[1]
            ddF = Fv[2] if order >= 2 else None
            energy += float(Fv[0].sum())
            if site:
                site_e += Fv[0]

        def second(bounds):
            F = np.zeros((3, n))
            vir = np.zeros((3, 3))
            for s, e, ilo, ihi, jlo, jhi, seg, segi in bounds:
                jb = pb.j[s:e].astype(np.intp)
                g = d1[s:e]
                if eam:
                    sF = dF.take(pb.i[s:e].astype(np.intp))
                    sF += dF.take(jb)
                    g = g + sF * df[s:e]
                r = rr[s:e]
                for c in range(3):
                    gE = g * E[c, s:e]
                    F[c, segi] += np.add.reduceat(gE, seg)
                    _add(F[c], jb, jlo, jhi, -gE)
                    if virial:
                        gE *= r
                        for c2 in range(c + 1):
                            vir[c, c2] -= float(np.dot(gE, E[c2, s:e]))
                if order >= 2:
                    b = np.divide(g, r, out=rr[s:e])  # r no longer needed
                    a = d2[s:e]
                    if eam:
                        sF *= ddf[s:e]
                        a += sF
                    a -= b
            return F, vir

        parts = _map_blocks(second, pb)
        F = _sum(p[0] for p in parts)
        vir = _sum(p[1] for p in parts)
        vir = np.tril(vir) + np.tril(vir, -1).T
        curvature = (pb, E, d2, rr, df, ddF) if order >= 2 else None
        return energy, np.ascontiguousarray(F.T), vir, site_e, curvature

    def _operator(self, curvature) -> spla.LinearOperator:
        """Matrix-free Hessian from the per-pair data of :meth:`_pass` (eV/Å²): per pair
        K_p (v_j − v_i) with K_p = (a − b) e eᵀ + b I, plus Gᵀ diag(F'') G v."""
        pb, E, amb, b, df, ddF = curvature
        n = pb.n_atoms

        def diff(V, ib, jb):
            out = []
            for c in range(3):
                d = V[c].take(jb)
                d -= V[c].take(ib)
                out.append(d)
            return out

        def projected(V, s, e, scale):
            """The pair block [s, e): atom indices, the differences v_j − v_i and the
            projection scale·(R̂·(v_j − v_i))."""
            ib = pb.i[s:e].astype(np.intp)
            jb = pb.j[s:e].astype(np.intp)
            dv = diff(V, ib, jb)
            t = E[0, s:e] * dv[0]
            t += E[1, s:e] * dv[1]
            t += E[2, s:e] * dv[2]
            t *= scale[s:e]
            return ib, jb, dv, t

        def density_part(V, bounds):
            w = np.zeros(n)
            for s, e, ilo, ihi, jlo, jhi, seg, segi in bounds:
                _, jb, _, t = projected(V, s, e, df)
                w[segi] += np.add.reduceat(t, seg)
                _add(w, jb, jlo, jhi, t)
            return w

        def product_part(V, w, bounds):
            out = np.zeros((3, n))
            for s, e, ilo, ihi, jlo, jhi, seg, segi in bounds:
                ib, jb, dv, coef = projected(V, s, e, amb)
                if w is not None:
                    wij = w.take(ib)
                    wij += w.take(jb)
                    wij *= df[s:e]
                    coef += wij
                bb = b[s:e]
                for c in range(3):
                    y = coef * E[c, s:e]
                    dv[c] *= bb
                    y += dv[c]
                    out[c, segi] -= np.add.reduceat(y, seg)
                    _add(out[c], jb, jlo, jhi, y)
            return out

        def matvec(v):
            V = np.ascontiguousarray(np.asarray(v, dtype=np.float64).reshape(n, 3).T)
            w = None
            if df is not None:
                w = _sum(_map_blocks(lambda bounds: density_part(V, bounds), pb))
                w *= ddF
            out = _sum(_map_blocks(lambda bounds: product_part(V, w, bounds), pb))
            return np.ascontiguousarray(out.T).ravel()

        return spla.LinearOperator((3 * n, 3 * n), matvec=matvec, rmatvec=matvec, dtype=np.float64)

    # -- energy, forces, virial ---------------------------------------------------------
    def observe(self, atoms) -> Observation:
        """Energy (eV), forces (eV/Å), virial (eV) and site energies (eV)."""
        self.check_species(atoms)
        energy, forces, virial, site, _ = self._pass(atoms, 1, site=True)
        return Observation(energy=energy, forces=forces, virial=virial, site_energies=site)

    fused_linearise = True

    def energy_forces(self, atoms, linearise: bool = False):
        """(energy eV, forces eV/Å, Hessian operator or None) in one sweep over the pairs:
        with ``linearise`` the matrix-free Hessian at the same configuration comes with the
        forces (what a Newton step needs) for about the cost of the forces alone."""
        self.check_species(atoms)
        energy, forces, _, _, curv = self._pass(atoms, 2 if linearise else 1, virial=False)
        return energy, forces, (self._operator(curv) if linearise else None)

    # -- second derivatives ---------------------------------------------------------------
    def _densities(self, pl: PairList, order: int):
        fv = self.f(pl.r, order)
        rho = np.bincount(pl.i, weights=fv[0], minlength=pl.n_atoms)
        rho += np.bincount(pl.j, weights=fv[0], minlength=pl.n_atoms)
        return fv, rho

    def _curvature(self, atoms):
        """Per-pair data of the Hessian at ``atoms``: (pairs without self images, e, a, b,
        f', F'') with F''/f' None for pair potentials."""
        pl = self.pairs(atoms)
        n = pl.n_atoms
        _, dphi, ddphi = self.phi(pl.r, 2)
        if self.is_pair:
            a, g = ddphi, dphi
            df = ddF = None
        else:
            (_, df, ddf), rho = self._densities(pl, 2)
            _, dF, ddF = self.F(rho, 2)
            s = dF[pl.i] + dF[pl.j]
            a = ddphi + s * ddf
            g = dphi + s * df
        b = g / pl.r
        # an atom's own images are rigidly attached to it: they contribute no curvature
        real = pl.i != pl.j
        e = pl.R[real] / pl.r[real, None]
        i, j = pl.i[real], pl.j[real]
        return n, i, j, e, a[real], b[real], (None if df is None else df[real]), ddF

    def hessian(self, atoms) -> sp.csr_array:
        """Exact sparse Hessian (3n × 3n, eV/Å², atom-major), assembled from COO without
        loops over atoms."""
        n, i, j, e, a, b, df, ddF = self._curvature(atoms)
        # K_p = (a − b) e e^T + b I, flattened row-major (P, 9)
        K = ((a - b)[:, None, None] * e[:, :, None] * e[:, None, :])
        K[:, [0, 1, 2], [0, 1, 2]] += b[:, None]
        K = K.reshape(-1, 9)
        diag = np.stack([np.bincount(i, weights=K[:, c], minlength=n) + np.bincount(j, weights=K[:, c], minlength=n)
                         for c in range(9)], axis=1)
        r3, c3 = np.divmod(np.arange(9), 3)
        rows = np.concatenate([
            (3 * i[:, None] + r3).ravel(), (3 * j[:, None] + r3).ravel(),
            (3 * np.arange(n)[:, None] + r3).ravel(),
        ])
        cols = np.concatenate([
            (3 * j[:, None] + c3).ravel(), (3 * i[:, None] + c3).ravel(),
            (3 * np.arange(n)[:, None] + c3).ravel(),
        ])
        data = np.concatenate([-K.ravel(), -K.ravel(), diag.ravel()])
        H = sp.csr_array(sp.coo_array((data, (rows, cols)), shape=(3 * n, 3 * n)))
        if df is not None:
            G = self._density_gradient(n, i, j, e, df)
            H = H + sp.csr_array(G.T @ sp.diags_array(ddF) @ G)
        H.sum_duplicates()
        return sp.csr_array(H)

    @staticmethod
    def _density_gradient(n, i, j, e, df) -> sp.csr_array:
        """G[a, 3k + c] = ∂ρ_a/∂x_k,c (sparse n × 3n): each pair adds f' e to (i, j),
        (j, j) and −f' e to (i, i), (j, i)."""
        v = (df[:, None] * e).ravel()
        c3 = np.arange(3)
        rows = np.concatenate([np.repeat(i, 3), np.repeat(i, 3), np.repeat(j, 3), np.repeat(j, 3)])
        cols = np.concatenate([(3 * j[:, None] + c3).ravel(), (3 * i[:, None] + c3).ravel(),
                               (3 * i[:, None] + c3).ravel(), (3 * j[:, None] + c3).ravel()])
        data = np.concatenate([v, -v, -v, v])
        return sp.csr_array(sp.coo_array((data, (rows, cols)), shape=(n, 3 * n)))

    def linearise(self, atoms) -> spla.LinearOperator:
        """Matrix-free Hessian-vector products (eV/Å² · Å → eV/Å): pair geometry and
        derivatives are computed once here; each product is two block passes over the pair
        arrays (one for pair potentials), memory O(pairs)."""
        self.check_species(atoms)
        return self._operator(self._pass(atoms, 2)[4])

    def elastic_constants(self, atoms) -> np.ndarray:
        """Clamped-ion elastic constants (Voigt; eV/Å³, 2D eV/Å²) of a periodic cell,
        analytic (:func:`genanalysis.potentials.base.born_elastic_constants`): per pair
        ∂E/∂R = g e and the pair-space product K_p δR_p + f'_p e_p (F''_i w_i + F''_j w_j),
        w_a = Σ_{q∋a} f'_q e_q·δR_q — with every image pair, an atom's own included (a
        strain moves those too)."""
        from genanalysis.potentials.base import born_elastic_constants

        pl = self.pairs(atoms)
        n = pl.n_atoms
        _, dphi, ddphi = self.phi(pl.r, 2)
        if self.is_pair:
            a, g, df, ddF = ddphi, dphi, None, None
        else:
            (_, df, ddf), rho = self._densities(pl, 2)
            _, dF, ddF = self.F(rho, 2)
            s = dF[pl.i] + dF[pl.j]
            a, g = ddphi + s * ddf, dphi + s * df
        e = pl.R / pl.r[:, None]
        b = g / pl.r

        def pair_hvp(dR):
            er = np.einsum("pc,pc->p", e, dR)
            out = ((a - b) * er)[:, None] * e + b[:, None] * dR
            if df is not None:
                w = np.bincount(pl.i, weights=df * er, minlength=n) + np.bincount(pl.j, weights=df * er, minlength=n)
                w *= ddF
                out += (df * (w[pl.i] + w[pl.j]))[:, None] * e
            return out

        return born_elastic_constants(atoms, pl.R, g[:, None] * e, pair_hvp)


class PairPotential(EAMPotential):
    """A pair potential E = Σ_pairs φ(r) (the EAM engine with F = 0)."""

    def __init__(self, *, name: str, phi, cutoff: float, element: str = "X", skin: float | None = None,
                 mass: float | None = None, meta: dict | None = None):
        super().__init__(name=name, element=element, cutoff=cutoff, phi=phi, skin=skin, mass=mass, meta=meta)
