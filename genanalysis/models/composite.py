"""Composite models: a sum of terms fitted together by the one linear least squares
(docs/models.md §11, docs/design.md).

Units: coefficients eV (every basis function is dimensionless); energies eV, forces eV/Å,
virials eV, force constants eV/Å². Float64 throughout.

    E = n·c_0 + Σ_terms E_t,   each E_t linear in its own coefficients,

with the terms

* ``pair``: E = Σ_i Σ_k c_k A_{k,0}(i), the two-body features of the ACE basis
  (:mod:`genanalysis.models.basis`: radial functions R_k(r) = T_k(x(r))·(1 − r/r_cut)³ on
  the isotropic channel) — a pair potential φ(r) = 2 Y_0 Σ_k c_k R_k(r) per pair;
* ``ace``: the ACE invariants of the kept body orders ``orders`` (e.g. ``[3]``: three-body
  only, so that a pair term and a three-body term do not share columns);
* ``embedding``: an EAM-like term E = Σ_i F(ρ_i) on a fixed density
  ρ_i = Σ_j (1 − r_ij/r_cut)³ (the basis's R_0, the envelope: dimensionless, ≥ 0, C² at the
  cutoff) with F in a basis: F(ρ) = Σ_{m=1}^{M} c_m t(ρ/ρ_s)^m, t(x) = √(x + δ) − √δ.
  t behaves like the Finnis–Sinclair √ρ in the crystal (x ≈ 1 for ρ_s the lattice density)
  and stays smooth down to ρ = 0 (δ > 0; F(0) = 0: an isolated atom has no embedding energy);
  its powers span what the ACE polynomials do not (polynomials of ρ are already ACE
  invariants of the isotropic channel).

Why the density is fixed and F is fitted: E = Σ_i F(Σ_j g(r_ij)) is linear in F's
coefficients for a fixed g, and bilinear (not linear) in (F, g) — fitting g under a fixed
non-linear F makes the loss non-quadratic in the coefficients, so it would need a second,
iterative fit. With F in a basis the composite stays linear in every coefficient and the
existing loss (:mod:`genanalysis.fitting.loss`) is minimised by the existing QR + SVD
solve (:func:`genanalysis.fit.fit_linear`), whose R factor gives the Fisher information.
Several embedding terms of different cutoffs (densities) may be summed.

Every term is a site-energy model of the density projections of an ACE basis, so forces,
virials, the exact sparse Hessian, matrix-free Hessian–vector products, elastic constants
and design rows come from the same engine (:mod:`genanalysis.models.engine`): ``pair`` and
``ace`` terms are :class:`~genanalysis.models.linear.LinearACE` models with the columns of
their dropped features held at zero; the embedding term supplies ∂ε/∂A and ∂²ε/∂A² of its
one-component basis. ``features`` (per term) keeps only the named basis functions — what
the adaptive design (studies/composite_design.py) removes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch
from ase import Atoms

from genanalysis.constraints import check_keys
from genanalysis.exceptions import InputError, check_number
from genanalysis.jsonutil import sha256_json
from genanalysis.models import engine
from genanalysis.models.basis import ACEBasis, ACEParams, ACESpec, isotropic_harmonic
from genanalysis.models.linear import LinearACE

__all__ = ["TermSpec", "CompositeSpec", "CompositeModel", "TERM_KINDS"]

#: the term kinds of a composite model
TERM_KINDS = ("pair", "embedding", "ace")


@dataclass(frozen=True)
class TermSpec(ACEParams):
    """One term of a composite model: ``kind`` (:data:`TERM_KINDS`), a unique ``name``
    (default: the kind, numbered when repeated), the basis parameters of :class:`ACEParams`
    (``pair``: its radial functions are ``pair_degree`` or 2·``degree``; ``embedding``: only
    ``cutoff`` and ``r_in`` matter), ``orders`` the body orders an ``ace`` term keeps
    (empty: all of 2…``body_order``), ``n_embed`` ≥ 1 the embedding basis size M,
    ``density_scale`` ρ_s > 0 and ``delta`` δ > 0 of t(x) = √(x + δ) − √δ (dimensionless),
    and ``features`` the basis functions kept (their names in the term; empty: all)."""

    kind: str = "ace"
    name: str = ""
    orders: tuple = ()
    n_embed: int = 4
    density_scale: float = 1.0
    delta: float = 0.01
    features: tuple = ()

    def __post_init__(self):
        if self.kind not in TERM_KINDS:
            raise InputError(f"term kind={self.kind!r} is not supported; choose {', '.join(TERM_KINDS)}")
        if self.kind == "pair":
            object.__setattr__(self, "body_order", 2)
            object.__setattr__(self, "l_max", 0)
        if self.kind == "embedding":
            for k, v in (("degree", 1), ("body_order", 2), ("l_max", 0), ("pair_degree", 1)):
                object.__setattr__(self, k, v)
        super().__post_init__()
        if not isinstance(self.name, str):
            raise InputError(f"term name={self.name!r} must be a string")
        orders = tuple(int(o) for o in self.orders)
        if any(o not in range(2, self.body_order + 1) for o in orders) or len(set(orders)) != len(orders):
            raise InputError(f"term orders={list(self.orders)!r} must be distinct body orders in 2…{self.body_order}")
        object.__setattr__(self, "orders", tuple(sorted(orders)))
        if self.kind != "ace" and orders:
            raise InputError(f"orders= applies to an 'ace' term only, not to a {self.kind!r} term")
        if isinstance(self.n_embed, bool) or int(self.n_embed) != self.n_embed or not 1 <= self.n_embed <= 12:
            raise InputError(f"n_embed={self.n_embed!r} must be a whole number in 1…12")
        object.__setattr__(self, "n_embed", int(self.n_embed))
        object.__setattr__(self, "density_scale", check_number(self.density_scale, "density_scale", strict=True))
        object.__setattr__(self, "delta", check_number(self.delta, "delta", strict=True))
        feats = tuple(self.features)
        if not all(isinstance(f, str) for f in feats) or len(set(feats)) != len(feats):
            raise InputError(f"features={list(self.features)!r} must be distinct feature names")
        object.__setattr__(self, "features", feats)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["orders"], d["features"] = list(self.orders), list(self.features)
        return d

    @classmethod
    def from_dict(cls, d: dict, defaults: ACEParams | None = None) -> "TermSpec":
        """A term from a table; basis parameters it omits are taken from ``defaults``."""
        if isinstance(d, TermSpec):
            return d
        check_keys(d, cls, "composite term")
        base = {f.name: getattr(defaults, f.name) for f in fields(ACEParams)} if defaults is not None else {}
        return cls(**{**base, **d})


@dataclass(frozen=True)
class CompositeSpec:
    """The terms (:class:`TermSpec`, names made unique) and the dimension (2 or 3)."""

    terms: tuple
    dim: int = 3

    def __post_init__(self):
        terms = tuple(TermSpec.from_dict(t) for t in self.terms)
        if not terms:
            raise InputError("a composite model needs at least one term")
        if self.dim not in (2, 3):
            raise InputError(f"dim={self.dim!r} must be 2 or 3")
        named, seen = [], {}
        for t in terms:
            name = t.name or t.kind
            seen[name] = seen.get(name, 0) + 1
            named.append(t if t.name else TermSpec(**{**asdict(t), "name": name if seen[name] == 1 else f"{name}{seen[name]}"}))
        names = [t.name for t in named]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise InputError(f"composite term names must be unique; repeated: {', '.join(dup)}")
        object.__setattr__(self, "terms", tuple(named))

    @property
    def cutoff(self) -> float:
        return max(t.cutoff for t in self.terms)

    def to_dict(self) -> dict:
        return {"terms": [t.to_dict() for t in self.terms], "dim": self.dim}

    def content_hash(self) -> str:
        return sha256_json(self.to_dict())[:16]


def _basis_spec(t: TermSpec, dim: int) -> ACESpec:
    return ACESpec(**{f.name: getattr(t, f.name) for f in fields(ACEParams)}, dim=dim)


class _ACETerm:
    """A ``pair`` or ``ace`` term: a :class:`LinearACE` whose kept features carry the term's
    coefficients and whose constant and dropped features are zero."""

    def __init__(self, t: TermSpec, dim: int):
        self.lin = LinearACE(_basis_spec(t, dim))
        names = self.lin.basis.names
        orders = t.orders or tuple(range(2, t.body_order + 1))
        keep = [k for k, nm in enumerate(names) if int(nm[0]) in orders]
        if t.features:
            missing = sorted(set(t.features) - {names[k] for k in keep})
            if missing:
                raise InputError(f"term {t.name!r}: feature(s) {', '.join(missing[:4])} are not in its basis")
            keep = [k for k in keep if names[k] in set(t.features)]
        if not keep:
            raise InputError(f"term {t.name!r} keeps no feature (orders {list(orders)}, body_order {t.body_order})")
        self.cols = np.array(keep, dtype=np.int64)
        self.names = [names[k] for k in keep]
        self.cutoff = t.cutoff

    def set_coef(self, c: np.ndarray) -> None:
        full = np.zeros(self.lin.n_params)
        full[1 + self.cols] = c
        self.lin.coef_ = full

    def predict(self, atoms):
        r = self.lin.predict(atoms)
        return r["energies"], r["forces"], r["virial"]

    def energy_forces(self, atoms, linearise):
        return self.lin.energy_forces(atoms, linearise=linearise)

    def linearise(self, atoms):
        return self.lin.linearise(atoms)

    def hessian(self, atoms):
        return self.lin.hessian(atoms)

    def hessian_rows(self, atoms, rows):
        return self.lin.hessian_rows(atoms, rows)

    def elastic_constants(self, atoms):
        return self.lin.elastic_constants(atoms)

    def design(self, atoms, kinds, hessian_rows):
        d = self.lin.design(atoms, kinds, hessian_rows=hessian_rows)
        return {k: v[..., 1 + self.cols] for k, v in d.items()}


class _EmbeddingTerm:
    """E = Σ_i Σ_m c_m t(x_i)^m, x_i = ρ_i/ρ_s, ρ_i = A_0(i)/Y_0 (module docstring), on the
    one-component ACE basis (one radial function R_0, the isotropic channel)."""

    def __init__(self, t: TermSpec, dim: int):
        self.basis = ACEBasis(_basis_spec(t, dim))
        assert self.basis.n_A == 1
        self.kappa = 1.0 / (isotropic_harmonic(dim) * t.density_scale)  # dx/dA
        self.delta = t.delta
        names = [f"t^{m}" for m in range(1, t.n_embed + 1)]
        keep = list(range(t.n_embed))
        if t.features:
            missing = sorted(set(t.features) - set(names))
            if missing:
                raise InputError(f"term {t.name!r}: feature(s) {', '.join(missing)} are not in its basis "
                                 f"({', '.join(names)})")
            keep = [k for k in keep if names[k] in set(t.features)]
        self.powers = np.array(keep, dtype=np.float64) + 1.0
        self.names = [names[k] for k in keep]
        self.cutoff = t.cutoff
        self.c = np.zeros(len(keep))

    def set_coef(self, c: np.ndarray) -> None:
        self.c = np.asarray(c, dtype=np.float64).copy()

    def _x(self, geom):
        A = engine.projections(self.basis, geom).numpy()[:, 0]
        return self.kappa * A

    def _functions(self, x: np.ndarray):
        """f_m, ∂f_m/∂A, ∂²f_m/∂A² per site (n, M) in eV per unit coefficient."""
        s = np.sqrt(x + self.delta)
        t = s - math.sqrt(self.delta)
        t1, t2 = 0.5 / s, -0.25 / s**3
        m = self.powers[None, :]
        tt = t[:, None]
        f = tt**m
        f1 = m * tt ** (m - 1) * t1[:, None]
        f2 = m * (m - 1) * tt ** np.maximum(m - 2, 0) * t1[:, None] ** 2 + m * tt ** (m - 1) * t2[:, None]
        return f, self.kappa * f1, self.kappa**2 * f2

    def _pass(self, atoms):
        geom = engine.model_geometry(self, atoms)
        f, f1, f2 = self._functions(self._x(geom))
        e, g, h = f @ self.c, f1 @ self.c, f2 @ self.c
        dEdD = engine.pair_gradients(self.basis, geom, torch.from_numpy(g[:, None])).numpy()
        return geom, e, g, h, dEdD

    def predict(self, atoms):
        geom, e, _, _, dEdD = self._pass(atoms)
        F, W = engine.forces_virial_np(geom, dEdD)
        return e, F, W

    def _pair_hvp(self, geom, g, h):
        """δD (P, 3) ↦ δ(∂E/∂D) = T_p δD_p + ∇φ_p h_i Σ_{q ∈ i} ∇φ_q·δD_q (eV/Å)."""
        J = self.basis.phi_derivatives(geom.D).numpy()[:, 0, :]  # (P, 3) 1/Å
        T = engine.pair_curvature(self.basis, geom, g[:, None])  # (P, 3, 3) eV/Å²

        def pair_hvp(dD):
            s = np.bincount(geom.i, weights=np.einsum("pa,pa->p", J, dD), minlength=geom.n)
            return np.einsum("pab,pb->pa", T, dD) + (h * s)[geom.i, None] * J

        return pair_hvp

    def energy_forces(self, atoms, linearise):
        geom, e, g, h, dEdD = self._pass(atoms)
        F, _ = engine.forces_virial_np(geom, dEdD)
        return float(e.sum()), F, (engine.pair_operator(geom, self._pair_hvp(geom, g, h)) if linearise else None)

    def linearise(self, atoms):
        geom, _, g, h, _ = self._pass(atoms)
        return engine.pair_operator(geom, self._pair_hvp(geom, g, h))

    def _site_fn(self, g, h, torch_out: bool):
        def site_fn(C):
            a, b = g[C][:, None, None], h[C][:, None, None, None]
            return (torch.from_numpy(a), torch.from_numpy(b)) if torch_out else (a, b)

        return site_fn

    def hessian(self, atoms):
        geom, _, g, h, _ = self._pass(atoms)
        return engine.hessian_sparse(self.basis, geom, self._site_fn(g, h, False), torch.zeros(1, 1, dtype=torch.int64))

    def hessian_rows(self, atoms, rows):
        geom, _, g, h, _ = self._pass(atoms)
        return engine.hessian_dense_rows(self.basis, geom, self._site_fn(g, h, True),
                                         torch.zeros(1, 1, dtype=torch.int64), np.asarray(rows))[0].numpy()

    def elastic_constants(self, atoms):
        from genanalysis.potentials.base import born_elastic_constants

        geom, _, g, h, dEdD = self._pass(atoms)
        return born_elastic_constants(atoms, geom.Dn, dEdD, self._pair_hvp(geom, g, h))

    def design(self, atoms, kinds, hessian_rows):
        geom = engine.geometry(atoms, self.cutoff)
        f, f1, f2 = self._functions(self._x(geom))
        M = f.shape[1]
        out = {}
        if "E" in kinds:
            out["E"] = f.sum(axis=0)
        if "F" in kinds or "V" in kinds:
            J = self.basis.phi_derivatives(geom.D)[:, 0, :]  # (P, 3)
            dEdD = J[:, :, None] * torch.from_numpy(f1[geom.i])[:, None, :]  # (P, 3, M)
            F, W = engine.forces_virial(geom, dEdD)
            if "F" in kinds:
                out["F"] = F.numpy()
            if "V" in kinds:
                out["V"] = W.numpy()
        if "H" in kinds:
            def site_fn(C):
                return torch.from_numpy(f1[C][:, :, None]), torch.from_numpy(f2[C][:, :, None, None])

            H = engine.hessian_dense_rows(self.basis, geom, site_fn, torch.zeros(M, 1, dtype=torch.int64), hessian_rows)
            out["H"] = H.permute(1, 2, 0).numpy()
        return out


class CompositeModel:
    """A sum of terms (module docstring) sharing one constant one-body coefficient.

    ``coef_`` (1 + Σ_t K_t,) eV: c_0, then each term's coefficients in the order of
    ``spec.terms``; ``feature_names`` ``"1b"`` then ``"<term>:<feature>"``; ``term_columns``
    the columns of each term. ``fit`` lives in :mod:`genanalysis.fit` (the linear least
    squares of every linear model); this class evaluates."""

    kind = "composite"

    def __init__(self, spec: CompositeSpec, coef: np.ndarray | None = None):
        self.spec = spec
        self.terms = [(_EmbeddingTerm if t.kind == "embedding" else _ACETerm)(t, spec.dim) for t in spec.terms]
        self.term_columns: dict[str, np.ndarray] = {}
        start = 1
        for t, term in zip(spec.terms, self.terms):
            self.term_columns[t.name] = np.arange(start, start + len(term.names))
            start += len(term.names)
        self._p = start
        self.coef_ = np.zeros(self._p) if coef is None else np.asarray(coef, dtype=np.float64).copy()
        if self.coef_.shape != (self._p,):
            raise InputError(f"coefficient vector has shape {self.coef_.shape}; the model needs ({self._p},)")

    @classmethod
    def of_terms(cls, terms, dim: int, defaults: ACEParams | None = None) -> "CompositeModel":
        """The unfitted model of term tables (dicts or :class:`TermSpec`) in dimension ``dim``."""
        return cls(CompositeSpec(tuple(TermSpec.from_dict(t, defaults) for t in terms), dim))

    @property
    def cutoff(self) -> float:
        return self.spec.cutoff

    @property
    def n_params(self) -> int:
        return self._p

    @property
    def feature_names(self) -> list[str]:
        return ["1b"] + [f"{t.name}:{nm}" for t, term in zip(self.spec.terms, self.terms) for nm in term.names]

    def information_groups(self) -> dict[str, np.ndarray]:
        """Columns per term (``term <name>``): the blocks of the per-term Fisher information
        (:func:`genanalysis.identifiability.fisher_information`)."""
        return {f"term {k}": v for k, v in self.term_columns.items()}

    def _sync(self) -> None:
        for (name, cols), term in zip(self.term_columns.items(), self.terms):
            term.set_coef(self.coef_[cols])

    def _check(self, atoms: Atoms) -> None:
        d = engine.atoms_dim(atoms)
        if d != self.spec.dim:
            raise InputError(f"configuration has dim={d} but the model was built for dim={self.spec.dim}")

    # -- evaluation: sums over the terms --------------------------------------------------

    def predict(self, atoms: Atoms, hessian: bool = False) -> dict:
        """energy (eV), energies (n,) eV, forces (n, 3) eV/Å, virial (3, 3) eV and, if asked,
        hessian (sparse 3n × 3n, eV/Å²)."""
        self._check(atoms)
        self._sync()
        n = len(atoms)
        energies, F, W = np.full(n, float(self.coef_[0])), np.zeros((n, 3)), np.zeros((3, 3))
        for term in self.terms:
            e, f, w = term.predict(atoms)
            energies, F, W = energies + e, F + f, W + w
        out = {"energy": float(energies.sum()), "energies": energies, "forces": F, "virial": W}
        if hessian:
            out["hessian"] = self.hessian(atoms)
        return out

    def energy_forces(self, atoms: Atoms, linearise: bool = False):
        """(energy eV, forces (n, 3) eV/Å, Hessian operator or None): the terms' fused passes."""
        self._check(atoms)
        self._sync()
        energy, F, op = float(self.coef_[0]) * len(atoms), np.zeros((len(atoms), 3)), None
        for term in self.terms:
            e, f, o = term.energy_forces(atoms, linearise)
            energy, F = energy + e, F + f
            op = o if op is None else (op + o if o is not None else op)
        return energy, F, op

    def linearise(self, atoms: Atoms) -> spla.LinearOperator:
        """Matrix-free Hessian-vector products (eV/Å² · Å → eV/Å): the sum of the terms'."""
        self._check(atoms)
        self._sync()
        ops = [term.linearise(atoms) for term in self.terms]
        out = ops[0]
        for o in ops[1:]:
            out = out + o
        return out

    def hessian(self, atoms: Atoms) -> sp.csr_array:
        """Exact force constants (eV/Å², sparse 3n × 3n): the sum of the terms'."""
        self._check(atoms)
        self._sync()
        return sp.csr_array(sum(term.hessian(atoms) for term in self.terms))

    def hessian_rows(self, atoms: Atoms, rows) -> np.ndarray:
        """Rows of the force-constant matrix for the atoms ``rows``: (3·len(rows), 3n), eV/Å²."""
        self._check(atoms)
        self._sync()
        return sum(term.hessian_rows(atoms, rows) for term in self.terms)

    def elastic_constants(self, atoms: Atoms) -> np.ndarray:
        """Analytic clamped-ion elastic constants (Voigt; eV/Å³, 2D eV/Å²): linear in E, the
        sum of the terms'."""
        self._check(atoms)
        self._sync()
        return sum(term.elastic_constants(atoms) for term in self.terms)

    # -- design rows ------------------------------------------------------------------------

    def design(self, atoms: Atoms, kinds: str = "EFV", hessian_rows: np.ndarray | None = None) -> dict:
        """Per-coefficient observations (as :meth:`LinearACE.design`): E (p,), F (n, 3, p),
        V (3, 3, p), H (3r, 3n, p); column 0 the one-body constant, then the terms'."""
        self._check(atoms)
        n = len(atoms)
        parts = [term.design(atoms, kinds, hessian_rows) for term in self.terms]
        out = {}
        for k in kinds:
            if k not in "EFVH":
                continue
            first = np.array([float(n)]) if k == "E" else np.zeros(parts[0][k].shape[:-1] + (1,))
            out[k] = np.concatenate([first] + [d[k] for d in parts], axis=-1)
        return out

    # -- persistence --------------------------------------------------------------------------

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """(JSON-able header, arrays) for :mod:`genanalysis.models.io`."""
        return {"kind": self.kind, "spec": self.spec.to_dict(), "feature_names": self.feature_names}, {
            "coef": self.coef_}

    @classmethod
    def from_state(cls, header: dict, arrays: dict) -> "CompositeModel":
        s = header["spec"]
        return cls(CompositeSpec(tuple(TermSpec.from_dict(t) for t in s["terms"]), int(s["dim"])), arrays["coef"])
