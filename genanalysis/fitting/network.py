"""Training the network (:class:`~genanalysis.models.mlp.MLPACE`) on the loss of
:mod:`genanalysis.fitting.loss`, evaluated in torch.

Units: energies eV, forces eV/Å, virials eV, force constants eV/Å²; the loss is
dimensionless. Float64 throughout.

:class:`ConfigurationLoss` evaluates one configuration's loss terms (the same
:func:`~genanalysis.fitting.loss.terms` the linear fit stacks as weighted rows) for any
site-energy function ε(B) of the invariant features B, differentiably in its parameters:
forces and virials through precomputed feature Jacobians ∂B/∂D, the force-constant term
Σ_a w_H α_a ‖ΔH_{a·}‖²_F through Hessian-vector products (double backward through the
model): Σ_k c_k ‖diag(s) ΔH v_k‖² with s the row weights of
:func:`~genanalysis.fitting.loss.hessian_row_weights`. With the coordinate vectors as v_k
and c_k = 1 this is the term exactly; training uses ``hessian_probes`` fixed Gaussian v_k
and c_k = 1/probes (E_v ‖ΔH v‖² = ‖ΔH‖²_F), so a configuration's force constants cost a few
backward passes, never a 3n × 3n matrix.

:func:`train_network` minimises, by full-batch Adam and then L-BFGS (strong Wolfe line
search),

    (1/N_c) [ Σ_c L_c + λ Σ_l ‖W_l‖²_F ]

N_c training configurations, λ = ``LossWeights.ridge`` and W_l the network's weight
matrices (biases are not penalised): the same objective as the linear fit's
Σ_c L_c + λ‖ĉ‖², with the network's weights — which act on standardised features and
tanh activations — in the place of the unit-norm-scaled coefficients (docs/models.md §3).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from genanalysis.exceptions import InputError
from genanalysis.fitting.loss import (
    hessian_row_weights,
    plane,
    select,
    terms,
    weighted_kinds,
)
from genanalysis.lattice import atoms_dim
from genanalysis.models import engine
from genanalysis.models.linear import feature_pair_jacobian
from genanalysis.models.mlp import MLPACE

__all__ = ["ConfigurationLoss", "train_network", "weight_penalty"]


class ConfigurationLoss:
    """One configuration's loss as a torch function of a site-energy model.

    ``basis`` and ``cutoff`` (Å) those of the model; ``probes``: the number of Gaussian
    probe vectors of the force-constant term (drawn from ``rng``), or None for the exact
    term (one probe per in-plane coordinate)."""

    def __init__(self, basis, cutoff: float, conf, loss, *, probes: int | None = None, rng=None):
        self.conf, self.basis = conf, basis
        self.n = len(conf)
        self.dim = atoms_dim(conf.atoms)
        self.pl = torch.tensor(plane(self.dim))
        self.geom = engine.geometry(conf.atoms, cutoff)
        A = engine.projections(basis, self.geom)
        self.B = basis.features(A)
        self.dBdD = feature_pair_jacobian(basis, self.geom, A)
        self.it, self.jt = torch.tensor(self.geom.i), torch.tensor(self.geom.j)
        kinds = weighted_kinds(conf, loss)
        self.terms = [(term, torch.tensor(term.sqrt_weight), torch.tensor(term.reference))
                      for term in terms(conf, loss, kinds.replace("H", ""))]
        self.needs_gradient = any(t in kinds for t in "FV")
        self.energy = float(conf.energy) if "E" in kinds else None
        self.probes = None
        if "H" in kinds:
            if probes is None:
                coords = [3 * a + c for a in range(self.n) for c in range(self.dim)]
                v = np.zeros((len(coords), 3 * self.n))
                v[np.arange(len(coords)), coords] = 1.0
                v = v.reshape(-1, self.n, 3)
                self.probe_coefficient = 1.0
            else:
                if probes < 1:
                    raise InputError(f"hessian_probes={probes} but force constants are weighted; use ≥ 1 probe")
                v = rng.normal(size=(probes, self.n, 3))
                v[:, :, self.dim:] = 0.0
                self.probe_coefficient = 1.0 / probes
            H = conf.hessian.tocsr()
            rows = np.repeat(hessian_row_weights(conf, loss), 3)
            Hv = np.stack([rows * (H @ vk.ravel()) for vk in v])
            if self.dim == 2:
                Hv.reshape(len(v), self.n, 3)[:, :, 2] = 0.0
            self.probes = torch.tensor(v)
            self.Hv_ref = torch.tensor(Hv)
            self.rows = torch.tensor(rows)

    def value(self, site_energy) -> torch.Tensor:
        """L_c (dimensionless) for the site energies ``site_energy(B)`` (n,) eV."""
        B = self.B.clone().requires_grad_(True)
        E = site_energy(B).sum()
        predicted = {"E": E}
        if self.needs_gradient:
            (s,) = torch.autograd.grad(E, B, create_graph=True)
            dEdD = torch.einsum("pak,pk->pa", self.dBdD, s[self.it])
            predicted["F"], predicted["V"] = engine.forces_virial(self.geom, dEdD)
        L = torch.zeros(())
        for term, sw, ref in self.terms:
            L = L + ((sw * (select(term, predicted, self.conf) - ref)) ** 2).sum()
        if self.probes is not None:
            L = L + self._hessian_term(site_energy)
        return L

    def _hessian_term(self, site_energy) -> torch.Tensor:
        """Σ_k c_k ‖diag(s) (H_model − H_ref) v_k‖² by double backward through the model."""
        b = self.basis
        D = self.geom.D.clone().requires_grad_(True)
        A = torch.zeros(self.n, b.n_A).index_add(0, self.it, b.phi(D))
        E = site_energy(b.features(A)).sum()
        (dEdD,) = torch.autograd.grad(E, D, create_graph=True)
        total = torch.zeros(())
        for k in range(self.probes.shape[0]):
            v = self.probes[k]
            dv = v[self.jt] - v[self.it]
            (hD,) = torch.autograd.grad((dEdD * dv).sum(), D, create_graph=True)
            Hv = torch.zeros(self.n, 3).index_add(0, self.jt, hD).index_add(0, self.it, -hD).reshape(-1)
            r = (self.rows * Hv - self.Hv_ref[k]).view(self.n, 3)[:, self.pl]
            total = total + (r**2).sum()
        return total * self.probe_coefficient


def weight_penalty(model: MLPACE) -> torch.Tensor:
    """Σ_l ‖W_l‖²_F over the network's weight matrices (biases excluded)."""
    return sum((layer.weight**2).sum() for layer in model.net if isinstance(layer, torch.nn.Linear))


def train_network(configs, model_spec, loss, *, seed: int = 0, dim: int = 3, progress=None):
    """Fit an :class:`~genanalysis.models.mlp.MLPACE` to ``configs`` (see the module
    docstring): (model, diagnostics)."""
    torch.manual_seed(seed)
    model = MLPACE(model_spec.ace_spec(dim), hidden=model_spec.hidden, seed=seed)
    rng = np.random.default_rng(seed)
    items = [ConfigurationLoss(model.basis, model.cutoff, c, loss, probes=model_spec.hessian_probes, rng=rng)
             for c in configs]
    Ball = torch.cat([it.B for it in items])
    model.mu = Ball.mean(0)
    sd = Ball.std(0)
    model.sigma = torch.where(sd > 1e-12 * (1 + Ball.abs().mean(0)), sd, torch.ones_like(sd))
    with_E = [it for it in items if it.energy is not None]
    model.e0 = float(sum(it.energy for it in with_E) / sum(it.n for it in with_E)) if with_E else 0.0
    params = list(model.net.parameters())
    nconf = len(items)
    ridge = float(loss.ridge)

    def total():
        L = sum(it.value(model.site_energy) for it in items)
        if ridge > 0:
            L = L + ridge * weight_penalty(model)
        return L / nconf

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
    diag = {"solver": "Adam (full batch) then L-BFGS (strong Wolfe)" + (f", weight decay λ={ridge:g}" if ridge > 0
                                                                         else ""),
            "n_params": model.n_params, "epochs": model_spec.epochs,
            "lbfgs_iterations": model_spec.lbfgs_iterations, "hessian_probes": model_spec.hessian_probes,
            "final_loss": history[-1] if history else None, "initial_loss": history[0] if history else None,
            "train_seconds": time.perf_counter() - t0}
    for p in params:
        p.requires_grad_(False)
    return model, diag
