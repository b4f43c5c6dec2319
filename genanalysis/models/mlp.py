"""A Behler–Parrinello-style network on the ACE invariants.

Units: energies eV, forces eV/Å, virials eV, force constants eV/Å². Float64 throughout.

Site energy ε_i = e_0 + N((B_i − μ)/σ): B_i the invariant features of
:mod:`genanalysis.models.basis`, μ, σ their mean and standard deviation over the training
sites (fixed after fitting), N a fully connected tanh network with one output, e_0 the
mean training energy per atom. With ``linear_skip`` a linear readout of the same
standardised invariants runs in parallel to the hidden layers,
ε_i = e_0 + w·B̂_i + N(B̂_i), B̂_i = (B_i − μ)/σ: the linear model of
:mod:`genanalysis.models.linear` plus a network (:meth:`MLPACE.set_linear` makes it exactly
a given linear model, the network's output layer at zero). Forces, virials and exact Hessians follow from the same
site-pair chain rule as the linear model (:mod:`genanalysis.models.engine`), with
∂ε/∂A = (∂N/∂B)(∂B/∂A) and ∂²ε/∂A² = (∂B/∂A)ᵀ ∂²N/∂B² (∂B/∂A) + Σ_k ∂N/∂B_k ∂²B_k/∂A².

The basis side is the linear model's compiled kernels (:mod:`genanalysis.models.kernels`):
A, B and the chain through ∂B/∂A, ∂²B/∂A² per site, the forces' pair contraction, and
matrix-free Hessian products on the held pair factors (:meth:`MLPACE.linearise`); only the
network, ∂N/∂B and the products (∂²N/∂B²) δB, is torch.

The model only evaluates; its training on the fit's loss is
:func:`genanalysis.fitting.network.train_network` (docs/models.md §3).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch
from ase import Atoms

from genanalysis.exceptions import InputError
from genanalysis.models import engine, kernels
from genanalysis.models.basis import ACESpec, BasisModel

__all__ = ["MLPACE"]


class MLPACE(BasisModel):
    """Per-site network on normalised invariants. ``hidden``: layer widths;
    ``linear_skip``: add the linear readout ``skip`` w (K,) eV of the standardised features
    in parallel to the network (zero until set)."""

    kind = "mlp"
    #: energy_forces(linearise=True) returns the Hessian operator of the same pass
    fused_linearise = True

    def __init__(self, spec: ACESpec, hidden=(32, 32), seed: int = 0, linear_skip: bool = False):
        super().__init__(spec)
        if not isinstance(linear_skip, bool):
            raise InputError(f"linear_skip={linear_skip!r} must be true or false")
        self.hidden = tuple(int(h) for h in hidden)
        K = self.basis.K
        gen = torch.Generator().manual_seed(int(seed))
        layers, width = [], K
        for h in self.hidden:
            lin = torch.nn.Linear(width, h, dtype=torch.float64)
            torch.nn.init.normal_(lin.weight, std=1.0 / math.sqrt(width), generator=gen)
            torch.nn.init.zeros_(lin.bias)
            layers += [lin, torch.nn.Tanh()]
            width = h
        out = torch.nn.Linear(width, 1, dtype=torch.float64)
        torch.nn.init.normal_(out.weight, std=1e-2 / math.sqrt(width), generator=gen)
        torch.nn.init.zeros_(out.bias)
        self.net = torch.nn.Sequential(*layers, out)
        self.mu = torch.zeros(K)
        self.sigma = torch.ones(K)
        self.e0 = 0.0
        #: the linear readout w (K,) eV on the standardised features, or None (no skip)
        self.skip = torch.zeros(K, dtype=torch.float64) if linear_skip else None

    @property
    def linear_skip(self) -> bool:
        return self.skip is not None

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.net.parameters()) + 1 + (self.basis.K if self.linear_skip else 0)

    def site_energy(self, B: torch.Tensor) -> torch.Tensor:
        """ε (n,) eV from features B (n, K)."""
        x = (B - self.mu) / self.sigma
        eps = self.e0 + self.net(x).squeeze(-1)
        return eps if self.skip is None else eps + x @ self.skip

    def set_linear(self, coef) -> None:
        """Make the model the linear model ε = c_0 + Σ_k c_k B_k (``coef`` (1 + K,) eV, the
        :class:`~genanalysis.models.linear.LinearACE` coefficients) on its standardised
        features: skip w = c ⊙ σ, e_0 = c_0 + c·μ, and the network's output layer (weights
        and bias) zero, so N ≡ 0. Needs ``linear_skip``; μ, σ are the model's own (set them
        first)."""
        if self.skip is None:
            raise InputError("set_linear() needs a model with linear_skip = true")
        c = torch.as_tensor(np.asarray(coef, dtype=np.float64))
        K = self.basis.K
        if c.shape != (1 + K,):
            raise InputError(f"linear coefficients have shape {tuple(c.shape)}; the model needs ({1 + K},)")
        self.skip = (c[1:] * self.sigma).clone()
        self.e0 = float(c[0] + c[1:] @ self.mu)
        out = self.net[-1]
        with torch.no_grad():
            out.weight.zero_()
            out.bias.zero_()

    # -- evaluation -------------------------------------------------------------------------

    def _pass(self, atoms: Atoms, graph: bool = False):
        """(geometry, site energies ε (n,) eV, ∂E/∂D (P, 3) eV/Å, A (n, n_A), G = ∂ε/∂A eV,
        B (torch, requires grad), s = ∂ε/∂B (torch; with ``graph`` differentiable again))."""
        self._check(atoms)
        geom = engine.model_geometry(self, atoms)
        tabs = kernels.tables(self.basis)
        mono = kernels.feature_tables(self.basis)
        A = kernels.projections(geom.Dn, geom.i, geom.n, *tabs)
        Bt = torch.from_numpy(kernels.site_features(A, *mono)).requires_grad_(True)
        with torch.enable_grad():
            eps = self.site_energy(Bt)
            (s,) = torch.autograd.grad(eps.sum(), Bt, create_graph=graph)
        zero = np.zeros_like(A)
        sn = np.ascontiguousarray(s.detach().numpy())
        G = kernels.feature_chain(A, zero, sn, np.zeros_like(sn), *mono)[1]
        dEdD = kernels.pair_vjp(geom.Dn, geom.i, G, *tabs)
        return geom, eps.detach().numpy(), dEdD, A, G, Bt, s

    def predict(self, atoms: Atoms, hessian: bool = False) -> dict:
        """energy (eV), energies (n,) eV, forces (n, 3) eV/Å, virial (3, 3) eV [, hessian]."""
        geom, e, dEdD, _, _, _, _ = self._pass(atoms)
        F, W = engine.forces_virial_np(geom, dEdD)
        out = {"energy": float(e.sum()), "energies": e, "forces": F, "virial": W}
        if hessian:
            out["hessian"] = self.hessian(atoms)
        return out

    def energy_forces(self, atoms: Atoms, linearise: bool = False):
        """(energy eV, forces (n, 3) eV/Å, Hessian operator or None) from one pass; the
        operator (:meth:`linearise`) reuses the pass's A, ∂ε/∂A and the network's graph."""
        geom, e, dEdD, A, G, Bt, s = self._pass(atoms, graph=linearise)
        F = -kernels.scatter_pairs(dEdD, geom.i, geom.j, geom.n)
        return float(e.sum()), F, (self._operator(geom, A, G, Bt, s) if linearise else None)

    def linearise(self, atoms: Atoms) -> spla.LinearOperator:
        """Matrix-free Hessian-vector products at ``atoms`` (eV/Å² · Å → eV/Å)."""
        geom, _, _, A, G, Bt, s = self._pass(atoms, graph=True)
        return self._operator(geom, A, G, Bt, s)

    def _operator(self, geom, A, G, Bt, s) -> spla.LinearOperator:
        """H v through the pairs as for the linear model (:func:`kernels.pair_dA`,
        :func:`kernels.pair_contract` on the held pair factors and curvature T), with the
        site part δg = (∂B/∂A)ᵀ (∂²N/∂B²) δB + Σ_k (∂N/∂B_k) (∂²B_k/∂A²) δA, δB = (∂B/∂A) δA
        (:func:`kernels.feature_chain`; (∂²N/∂B²) δB by a second backward pass)."""
        mono = kernels.feature_tables(self.basis)
        ints = kernels.tables(self.basis)[1]
        sn = np.ascontiguousarray(s.detach().numpy())
        zero = np.zeros_like(sn)
        held: dict = {}

        def pair_hvp(dD):
            if not held:
                held.update(engine.held_pair_terms(self.basis, geom, G))
            dA = kernels.pair_dA(geom.start, dD, *held["F"], ints)
            dB, _ = kernels.feature_chain(A, dA, zero, zero, *mono)
            with torch.enable_grad():
                (hB,) = torch.autograd.grad(s, Bt, grad_outputs=torch.from_numpy(dB), retain_graph=True)
            _, dG = kernels.feature_chain(A, dA, np.ascontiguousarray(hB.numpy()), sn, *mono)
            return kernels.pair_contract(geom.start, dG, *held["F"], held["T"], dD, ints)

        return engine.pair_operator(geom, pair_hvp)

    def _site_fn(self, A: torch.Tensor):
        b = self.basis
        nA, K = b.n_A, b.K
        from torch.func import hessian, vmap

        def eps1(Bi):
            return self.site_energy(Bi[None])[0]

        def site_fn(C):
            Ac = A[torch.tensor(C)]
            c = Ac.shape[0]
            gl, Ml = b.feature_derivatives(Ac, second=True)
            Bc = b.features(Ac).requires_grad_(True)
            with torch.enable_grad():
                (s,) = torch.autograd.grad(self.site_energy(Bc).sum(), Bc)
            Hnn = vmap(hessian(eps1))(Bc.detach())  # (c, K, K)
            Jd = torch.zeros(c, K, nA + 1)
            Jd.scatter_add_(2, b.S.expand(c, K, b.S_max), gl)
            Jd = Jd[:, :, :nA]
            g = torch.einsum("ck,ckf->cf", s, Jd)
            M = torch.einsum("ckf,ckl,clg->cfg", Jd, Hnn, Jd)
            Md = torch.zeros(c, (nA + 1) ** 2)
            idx = (b.S[:, :, None] * (nA + 1) + b.S[:, None, :]).reshape(-1)
            Md.index_add_(1, idx, (Ml * s[:, :, None, None]).reshape(c, -1))
            M = M + Md.view(c, nA + 1, nA + 1)[:, :nA, :nA]
            return g[:, None], M[:, None]

        return site_fn

    def hessian(self, atoms: Atoms) -> sp.csr_array:
        """Exact force constants (eV/Å²), sparse (3n × 3n), atom-major."""
        self._check(atoms)
        geom, A, S = engine.hessian_inputs(self.basis, atoms, self.cutoff)
        with torch.no_grad():
            return engine.hessian_sparse(self.basis, geom, self._site_fn(A), S)

    def hessian_rows(self, atoms: Atoms, rows) -> np.ndarray:
        """Force-constant rows of the atoms ``rows``: (3·len(rows), 3n), eV/Å²."""
        self._check(atoms)
        geom, A, S = engine.hessian_inputs(self.basis, atoms, self.cutoff)
        with torch.no_grad():
            return engine.hessian_dense_rows(self.basis, geom, self._site_fn(A), S, np.asarray(rows))[0].numpy()

    # -- persistence --------------------------------------------------------------------------

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        arrays = {f"net.{k}": v.detach().numpy() for k, v in self.net.state_dict().items()}
        arrays.update(mu=self.mu.numpy(), sigma=self.sigma.numpy(), e0=np.array(self.e0))
        header = {"kind": self.kind, "spec": self.spec.to_dict(), "hidden": list(self.hidden)}
        if self.skip is not None:  # a model without the skip keeps the header and arrays it had
            header["linear_skip"] = True
            arrays["skip"] = self.skip.detach().numpy()
        return header, arrays

    @classmethod
    def from_state(cls, header: dict, arrays: dict) -> "MLPACE":
        skip = header.get("linear_skip", False)
        if not isinstance(skip, bool):
            raise InputError(f"stored linear_skip={skip!r} must be true or false")
        if skip != ("skip" in arrays):
            raise InputError(f"stored linear_skip={skip} but the arrays {'lack' if skip else 'carry'} 'skip'")
        m = cls(ACESpec(**header["spec"]), hidden=header["hidden"], linear_skip=skip)
        if skip:
            w = np.asarray(arrays["skip"], dtype=np.float64)
            if w.shape != (m.basis.K,):
                raise InputError(f"stored skip weights have shape {w.shape}; the model needs ({m.basis.K},)")
            m.skip = torch.tensor(w)
        sd = {k[4:]: torch.tensor(v) for k, v in arrays.items() if k.startswith("net.")}
        try:
            m.net.load_state_dict(sd)
        except RuntimeError as exc:
            raise InputError(f"stored network weights do not match hidden={m.hidden}: {exc}") from None
        m.mu, m.sigma, m.e0 = torch.tensor(arrays["mu"]), torch.tensor(arrays["sigma"]), float(arrays["e0"])
        return m
