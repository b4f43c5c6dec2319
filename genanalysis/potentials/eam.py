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

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from genanalysis.potentials.base import Evaluation, Potential
from genanalysis.potentials.neighbours import NeighbourCache, PairList

__all__ = ["EAMPotential", "PairPotential"]


def _scatter3(idx: np.ndarray, vec: np.ndarray, n: int) -> np.ndarray:
    """Σ over rows of ``vec`` (P, 3) into ``n`` atoms by index ``idx``."""
    return np.stack([np.bincount(idx, weights=vec[:, c], minlength=n) for c in range(3)], axis=1)


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

    # -- energy, forces, virial ---------------------------------------------------------
    def _densities(self, pl: PairList, order: int):
        fv = self.f(pl.r, order)
        rho = np.bincount(pl.i, weights=fv[0], minlength=pl.n_atoms)
        rho += np.bincount(pl.j, weights=fv[0], minlength=pl.n_atoms)
        return fv, rho

    def evaluate(self, atoms) -> Evaluation:
        """Energy (eV), forces (eV/Å), virial (eV) and site energies (eV)."""
        pl = self.pairs(atoms)
        n = pl.n_atoms
        phi, dphi = self.phi(pl.r, 1)
        pair_site = 0.5 * (np.bincount(pl.i, weights=phi, minlength=n) + np.bincount(pl.j, weights=phi, minlength=n))
        if self.is_pair:
            g = dphi
            site = pair_site
        else:
            (fv, df), rho = self._densities(pl, 1)
            Fv, dF = self.F(rho, 1)
            g = dphi + (dF[pl.i] + dF[pl.j]) * df
            site = pair_site + Fv
        gR = (g / pl.r)[:, None] * pl.R  # ∂E/∂R_p
        forces = _scatter3(pl.i, gR, n) - _scatter3(pl.j, gR, n)
        virial = -(gR.T @ pl.R)
        virial = 0.5 * (virial + virial.T)
        return Evaluation(energy=float(site.sum()), forces=forces, virial=virial, site_energies=site)

    # -- second derivatives ---------------------------------------------------------------
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
        derivatives are computed once here; each product is a few passes over the pair
        arrays (about one force call), memory O(pairs)."""
        n, i, j, e, a, b, df, ddF = self._curvature(atoms)
        amb = a - b

        def matvec(v):
            V = np.asarray(v, dtype=np.float64).reshape(n, 3)
            dv = V[j] - V[i]
            s = np.einsum("pc,pc->p", e, dv)
            coef = amb * s
            if df is not None:
                t = df * s
                w = ddF * (np.bincount(i, weights=t, minlength=n) + np.bincount(j, weights=t, minlength=n))
                coef += df * (w[i] + w[j])
            y = coef[:, None] * e + b[:, None] * dv
            return (_scatter3(j, y, n) - _scatter3(i, y, n)).ravel()

        return spla.LinearOperator((3 * n, 3 * n), matvec=matvec, rmatvec=matvec, dtype=np.float64)


class PairPotential(EAMPotential):
    """A pair potential E = Σ_pairs φ(r) (the EAM engine with F = 0)."""

    def __init__(self, *, name: str, phi, cutoff: float, element: str = "X", skin: float | None = None,
                 mass: float | None = None, meta: dict | None = None):
        super().__init__(name=name, element=element, cutoff=cutoff, phi=phi, skin=skin, mass=mass, meta=meta)
