"""A Behler–Parrinello-style network on the ACE invariants, trained with the shared loss.

Units: energies eV, forces eV/Å, virials eV, force constants eV/Å². Float64 throughout.

Site energy ε_i = e_0 + N((B_i − μ)/σ): B_i the invariant features of
:mod:`genanalysis.models.basis`, μ, σ their mean and standard deviation over the training
sites (fixed after fitting), N a fully connected tanh network with one output, e_0 the
mean training energy per atom. Forces, virials and exact Hessians follow from the same
site-pair chain rule as the linear model (:mod:`genanalysis.models.engine`), with
∂ε/∂A = (∂N/∂B)(∂B/∂A) and ∂²ε/∂A² = (∂B/∂A)ᵀ ∂²N/∂B² (∂B/∂A) + Σ_k ∂N/∂B_k ∂²B_k/∂A².

Training (docs/models.md §3): the loss of :mod:`genanalysis.fit`, averaged over the
training configurations, minimised by full-batch Adam and then L-BFGS (strong Wolfe line
search). Force-constant terms use Hessian-vector products (double backward through the
model) with fixed Gaussian probe vectors v: E_v‖ΔH v‖² = ‖ΔH‖²_F, so a configuration's
force constants cost a few extra backward passes, never a 3n × 3n matrix.
"""

from __future__ import annotations

import math
import time

import numpy as np
import scipy.sparse as sp
import torch
from ase import Atoms

from genanalysis.exceptions import InputError
from genanalysis.models import engine
from genanalysis.models.basis import ACEBasis, ACESpec
from genanalysis.models.linear import feature_pair_jacobian

__all__ = ["MLPACE", "train_mlp"]


class MLPACE:
    """Per-site network on normalised invariants. ``hidden``: layer widths."""

    kind = "mlp"

    def __init__(self, spec: ACESpec, hidden=(32, 32), seed: int = 0):
        self.spec = spec
        self.hidden = tuple(int(h) for h in hidden)
        self.basis = ACEBasis(spec)
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

    @property
    def cutoff(self) -> float:
        return self.spec.cutoff

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.net.parameters()) + 1

    def _check(self, atoms: Atoms) -> None:
        d = engine.atoms_dim(atoms)
        if d != self.spec.dim:
            raise InputError(f"configuration has dim={d} but the model was built for dim={self.spec.dim}")

    def site_energy(self, B: torch.Tensor) -> torch.Tensor:
        """ε (n,) eV from features B (n, K)."""
        return self.e0 + self.net((B - self.mu) / self.sigma).squeeze(-1)

    # -- evaluation -------------------------------------------------------------------------

    def evaluate(self, atoms: Atoms, hessian: bool = False) -> dict:
        """energy (eV), energies (n,) eV, forces (n, 3) eV/Å, virial (3, 3) eV [, hessian]."""
        self._check(atoms)
        geom = engine.geometry(atoms, self.cutoff)
        A = engine.projections(self.basis, geom).requires_grad_(True)
        with torch.enable_grad():
            eps = self.site_energy(self.basis.features(A))
            (G,) = torch.autograd.grad(eps.sum(), A)
        F, W = engine.forces_virial(geom, engine.pair_gradients(self.basis, geom, G))
        e = eps.detach().numpy()
        out = {"energy": float(e.sum()), "energies": e, "forces": F.numpy(), "virial": W.numpy()}
        if hessian:
            out["hessian"] = self.hessian(atoms)
        return out

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
        geom = engine.geometry(atoms, self.cutoff)
        A = engine.projections(self.basis, geom)
        S = torch.arange(self.basis.n_A)[None, :]
        with torch.no_grad():
            return engine.hessian_sparse(self.basis, geom, self._site_fn(A), S)

    def hessian_rows(self, atoms: Atoms, rows) -> np.ndarray:
        """Force-constant rows of the atoms ``rows``: (3·len(rows), 3n), eV/Å²."""
        self._check(atoms)
        geom = engine.geometry(atoms, self.cutoff)
        A = engine.projections(self.basis, geom)
        S = torch.arange(self.basis.n_A)[None, :]
        with torch.no_grad():
            return engine.hessian_dense_rows(self.basis, geom, self._site_fn(A), S, np.asarray(rows))[0].numpy()

    # -- persistence --------------------------------------------------------------------------

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        arrays = {f"net.{k}": v.detach().numpy() for k, v in self.net.state_dict().items()}
        arrays.update(mu=self.mu.numpy(), sigma=self.sigma.numpy(), e0=np.array(self.e0))
        return {"kind": self.kind, "spec": self.spec.to_dict(), "hidden": list(self.hidden)}, arrays

    @classmethod
    def from_state(cls, header: dict, arrays: dict) -> "MLPACE":
        m = cls(ACESpec(**header["spec"]), hidden=header["hidden"])
        sd = {k[4:]: torch.tensor(v) for k, v in arrays.items() if k.startswith("net.")}
        try:
            m.net.load_state_dict(sd)
        except RuntimeError as exc:
            raise InputError(f"stored network weights do not match hidden={m.hidden}: {exc}") from None
        m.mu, m.sigma, m.e0 = torch.tensor(arrays["mu"]), torch.tensor(arrays["sigma"]), float(arrays["e0"])
        return m


# ---------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------


class _Item:
    """Precomputed per-configuration tensors for training."""

    def __init__(self, model: MLPACE, conf, loss, rng, probes: int):
        from genanalysis.fit import _plane

        b = model.basis
        self.n = len(conf)
        self.dim = int(conf.atoms.info.get("dim", 3))
        self.pl = torch.tensor(_plane(self.dim))
        self.geom = engine.geometry(conf.atoms, model.cutoff)
        A = engine.projections(b, self.geom)
        self.B = b.features(A)
        self.dBdD = feature_pair_jacobian(b, self.geom, A)
        self.it, self.jt = torch.tensor(self.geom.i), torch.tensor(self.geom.j)
        alpha = np.ones(self.n) if (conf.atom_weights is None or not loss.atom_weights) else np.asarray(conf.atom_weights, float)
        self.alpha = torch.tensor(alpha)
        self.w = {t: loss.weight(conf.group, t) if t in conf.observed else 0.0 for t in "EFVH"}
        self.E = float(conf.energy) if conf.energy is not None else None
        self.F = torch.tensor(np.asarray(conf.forces)) if conf.forces is not None else None
        self.V = torch.tensor(np.asarray(conf.virial)) if conf.virial is not None else None
        self.probes = None
        if self.w["H"] > 0:
            v = rng.normal(size=(probes, self.n, 3))
            v[:, :, self.dim:] = 0.0
            H = conf.hessian.tocsr()
            rows = np.repeat(np.sqrt(alpha), 3)
            Hv = np.stack([rows * (H @ vk.ravel()) for vk in v])
            if self.dim == 2:
                Hv.reshape(probes, self.n, 3)[:, :, 2] = 0.0
            self.probes = torch.tensor(v)
            self.Hv_ref = torch.tensor(Hv)
            self.rows = torch.tensor(rows)

    def loss(self, model: MLPACE) -> torch.Tensor:
        B = self.B.clone().requires_grad_(True)
        eps = model.site_energy(B)
        E = eps.sum()
        L = torch.zeros(())
        n = self.n
        if self.w["F"] > 0 or self.w["V"] > 0:
            (s,) = torch.autograd.grad(E, B, create_graph=True)
            dEdD = torch.einsum("pak,pk->pa", self.dBdD, s[self.it])
            F, W = engine.forces_virial(self.geom, dEdD)
            if self.w["F"] > 0:
                dF = (F - self.F)[:, self.pl]
                L = L + self.w["F"] * (self.alpha[:, None] * dF**2).sum()
            if self.w["V"] > 0:
                dW = (W - self.V)[self.pl][:, self.pl]
                L = L + self.w["V"] * (dW**2).sum() / n
        if self.w["E"] > 0:
            L = L + self.w["E"] * (E - self.E) ** 2 / n
        if self.w["H"] > 0:
            L = L + self.w["H"] * self._hessian_term(model)
        return L

    def _hessian_term(self, model: MLPACE) -> torch.Tensor:
        """mean_v ‖diag(√α) (H_model − H_ref) v‖² by double backward through the model."""
        b = model.basis
        D = self.geom.D.clone().requires_grad_(True)
        A = torch.zeros(self.n, b.n_A).index_add(0, self.it, b.phi(D))
        E = model.site_energy(b.features(A)).sum()
        (dEdD,) = torch.autograd.grad(E, D, create_graph=True)
        total = torch.zeros(())
        for k in range(self.probes.shape[0]):
            v = self.probes[k]
            dv = v[self.jt] - v[self.it]
            (hD,) = torch.autograd.grad((dEdD * dv).sum(), D, create_graph=True)
            Hv = torch.zeros(self.n, 3).index_add(0, self.jt, hD).index_add(0, self.it, -hD).reshape(-1)
            r = self.rows * Hv - self.Hv_ref[k]
            if self.dim == 2:
                r = r.view(self.n, 3)[:, :2]
            total = total + (r**2).sum()
        return total / self.probes.shape[0]


def train_mlp(configs, model_spec, loss, *, seed: int = 0, dim: int = 3, progress=None):
    """Fit an :class:`MLPACE` to ``configs``: (model, diagnostics)."""
    torch.manual_seed(seed)
    model = MLPACE(model_spec.ace_spec(dim), hidden=model_spec.hidden, seed=seed)
    rng = np.random.default_rng(seed)
    items = [_Item(model, c, loss, rng, model_spec.hessian_probes) for c in configs]
    Ball = torch.cat([it.B for it in items])
    model.mu = Ball.mean(0)
    sd = Ball.std(0)
    model.sigma = torch.where(sd > 1e-12 * (1 + Ball.abs().mean(0)), sd, torch.ones_like(sd))
    with_E = [it for it in items if it.E is not None and it.w["E"] > 0]
    model.e0 = float(sum(it.E for it in with_E) / sum(it.n for it in with_E)) if with_E else 0.0
    params = list(model.net.parameters())
    nconf = len(items)

    def total():
        return sum(it.loss(model) for it in items) / nconf

    t0 = time.perf_counter()
    history = []
    opt = torch.optim.Adam(params, lr=model_spec.lr)
    for ep in range(model_spec.epochs):
        opt.zero_grad()
        L = total()
        L.backward()
        opt.step()
        history.append(float(L.detach()))
        if progress:
            progress(ep + 1, model_spec.epochs + model_spec.lbfgs_iterations)
    if model_spec.lbfgs_iterations > 0:
        lb = torch.optim.LBFGS(params, lr=1.0, max_iter=int(model_spec.lbfgs_iterations),
                               line_search_fn="strong_wolfe", tolerance_grad=1e-12, tolerance_change=1e-15)

        def closure():
            lb.zero_grad()
            L = total()
            L.backward()
            return L

        lb.step(closure)
        history.append(float(total().detach()))
    diag = {"solver": "Adam (full batch) then L-BFGS (strong Wolfe)", "n_params": model.n_params,
            "epochs": model_spec.epochs, "lbfgs_iterations": model_spec.lbfgs_iterations,
            "hessian_probes": model_spec.hessian_probes, "final_loss": history[-1] if history else None,
            "initial_loss": history[0] if history else None, "train_seconds": time.perf_counter() - t0}
    for p in params:
        p.requires_grad_(False)
    return model, diag
