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

__all__ = ["BatchLoss", "ConfigurationLoss", "finetune_network", "standardise", "train_network", "weight_penalty",
           "whitening"]


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
        self.dBdD = feature_pair_jacobian(basis, self.geom)
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


class BatchLoss:
    """Σ_c L_c over many configurations in one pass through the network: the sites of all
    configurations are stacked, so one forward and one (double) backward serve them all.

    The residual entries are gathered from the stacked predictions by index maps that
    :func:`~genanalysis.fitting.loss.select` itself builds (applied to arrays of indices),
    so the weighting and the component selection stay those of the one loss definition.
    The force-constant terms (when weighted) are added per configuration."""

    def __init__(self, items: list[ConfigurationLoss]):
        self.items = items
        self.B = torch.cat([it.B for it in items])
        self.dBdD = torch.cat([it.dBdD for it in items])
        site_off = np.cumsum([0] + [it.n for it in items])
        self.site_conf = torch.tensor(np.repeat(np.arange(len(items)), [it.n for it in items]))
        self.it = torch.cat([it.it + int(o) for it, o in zip(items, site_off)])
        self.jt = torch.cat([it.jt + int(o) for it, o in zip(items, site_off)])
        self.pair_conf = torch.cat([torch.full((len(it.it),), c) for c, it in enumerate(items)])
        self.D = torch.cat([it.geom.D for it in items])
        self.n_sites, self.n_conf = int(site_off[-1]), len(items)
        self.needs_gradient = any(it.needs_gradient for it in items)
        idx, sw, ref = {"E": [], "F": [], "V": []}, {"E": [], "F": [], "V": []}, {"E": [], "F": [], "V": []}
        for c, it in enumerate(items):
            o = int(site_off[c])
            index = {"E": np.array(c), "F": 3 * (o + np.arange(it.n))[:, None] + np.arange(3)[None, :],
                     "V": 9 * c + np.arange(9).reshape(3, 3)}
            for term, w, r in it.terms:
                idx[term.code].append(torch.as_tensor(np.asarray(select(term, index, it.conf)).reshape(-1)))
                sw[term.code].append(w)
                ref[term.code].append(r)
        self.gather = [(t, torch.cat(idx[t]), torch.cat(sw[t]), torch.cat(ref[t])) for t in "EFV" if idx[t]]
        self.hessian_items = [it for it in items if it.probes is not None]

    def value(self, site_energy) -> torch.Tensor:
        """Σ_c L_c (dimensionless) for the site energies ``site_energy(B)`` eV."""
        B = self.B.clone().requires_grad_(True)
        eps = site_energy(B)
        predicted = {"E": torch.zeros(self.n_conf).index_add(0, self.site_conf, eps)}
        if self.needs_gradient:
            (s,) = torch.autograd.grad(eps.sum(), B, create_graph=True)
            dEdD = torch.einsum("pak,pk->pa", self.dBdD, s[self.it])
            F = torch.zeros(self.n_sites, 3).index_add(0, self.it, dEdD).index_add(0, self.jt, -dEdD)
            W = torch.zeros(self.n_conf, 3, 3).index_add(0, self.pair_conf,
                                                        -self.D[:, :, None] * dEdD[:, None, :])
            predicted["F"], predicted["V"] = F.reshape(-1), W.reshape(-1)
        L = torch.zeros(())
        for t, idx, sw, ref in self.gather:
            L = L + ((sw * (predicted[t][idx] - ref)) ** 2).sum()
        for it in self.hessian_items:
            L = L + it._hessian_term(site_energy)
        return L


def weight_penalty(model: MLPACE) -> torch.Tensor:
    """Σ_l ‖W_l‖²_F over the network's weight matrices (biases excluded)."""
    return sum((layer.weight**2).sum() for layer in model.net if isinstance(layer, torch.nn.Linear))


def standardise(model: MLPACE, B: torch.Tensor) -> None:
    """Set the model's feature mean μ and standard deviation σ (dimensionless, per
    feature) from the training sites' features ``B`` (n, K); a feature constant over the
    training sites keeps σ = 1."""
    model.mu = B.mean(0)
    sd = B.std(0) if B.shape[0] > 1 else torch.zeros(B.shape[1], dtype=B.dtype)
    model.sigma = torch.where(sd > 1e-12 * (1 + B.abs().mean(0)), sd, torch.ones_like(sd))


def whitening(B_hat: torch.Tensor, rcond: float = 1e-12) -> torch.Tensor:
    """M (K, r) such that the training sites' standardised features ``B_hat`` (n, K,
    centred) have identity covariance in the coordinates z = B̂ M: M = V_r diag(1/s_r)
    from the singular values s of B̂/√(n − 1), keeping the r directions with s > rcond·s_max
    (a direction the training sites do not vary along is not a coordinate). Dimensionless."""
    n = max(B_hat.shape[0] - 1, 1)
    _, s, Vt = torch.linalg.svd(B_hat / n**0.5, full_matrices=False)
    keep = s > rcond * s[0] if len(s) and s[0] > 0 else torch.zeros(len(s), dtype=torch.bool)
    return Vt[keep].T / s[keep]


class _Trainee:
    """The network in its training coordinates: the first layer acts on whitened features
    z = B̂ M (:func:`whitening`) through weights W' (h × r), the stored first layer being
    W = W' Mᵀ (h × K), on the model's standardised features B̂ = (B − μ)/σ — so the model
    and its file are those of a network on standardised features, and the objective is
    the same function of W. Only the coordinates the optimiser steps in change: the
    standardised invariants are nearly collinear (their covariance over the sites has a
    condition number ~1e5–1e6 on the studies' data), so in B̂ the first layer's
    directions of small feature variance — where the force information sits — are
    reached at the rate of the smallest eigenvalue; in z every direction has unit
    variance, which is also the input distribution the 1/√r initialisation assumes.
    ``M`` None: train the model's own weights (no whitening)."""

    def __init__(self, model: MLPACE, M: torch.Tensor | None, seed: int, skip_scale: torch.Tensor | None = None):
        self.model, self.M = model, M
        first = model.net[0]
        self.rest = model.net[1:]
        if M is None:
            self.W = first.weight
        else:
            gen = torch.Generator().manual_seed(int(seed))
            h, r = first.weight.shape[0], M.shape[1]
            self.W = torch.nn.Parameter(torch.randn(h, r, generator=gen) / max(r, 1) ** 0.5)
        self.b = first.bias
        self.params = [self.W, self.b] + list(self.rest.parameters())
        # the linear readout w = w₀ + u/g in the linear fit's scaled coordinates ĉ = g ⊙ w
        # (g = ``skip_scale``): the coordinates, and with the ridge the penalty λ‖ĉ‖², of
        # the linear least squares the skip starts from
        self.g = skip_scale
        if model.skip is not None:
            if skip_scale is None:
                raise InputError("a network with linear_skip trains from its linear fit's column scales")
            self.w0 = model.skip.detach().clone()
            self.u = torch.nn.Parameter(torch.zeros_like(self.w0))
            self.params.append(self.u)

    def skip_weight(self) -> torch.Tensor | None:
        return None if self.model.skip is None else self.w0 + self.u / self.g

    def first_weight(self) -> torch.Tensor:
        return self.W if self.M is None else self.W @ self.M.T

    def site_energy(self, B: torch.Tensor) -> torch.Tensor:
        """ε (n,) eV: the model's site energy with the first layer in training coordinates."""
        m = self.model
        x = (B - m.mu) / m.sigma
        h = x @ self.first_weight().T + self.b if self.M is None else (x @ self.M) @ self.W.T + self.b
        eps = m.e0 + self.rest(h).squeeze(-1)
        return eps if m.skip is None else eps + x @ self.skip_weight()

    def penalty(self) -> torch.Tensor:
        """Σ_l ‖W_l‖²_F of the stored weight matrices (:func:`weight_penalty`), plus the
        linear fit's ‖ĉ‖² = ‖g ⊙ w‖² of the linear readout (with ``linear_skip``)."""
        P = (self.first_weight() ** 2).sum() + sum(
            (layer.weight**2).sum() for layer in self.rest if isinstance(layer, torch.nn.Linear))
        return P if self.model.skip is None else P + ((self.g * self.skip_weight()) ** 2).sum()

    def state(self) -> list[torch.Tensor]:
        return [p.detach().clone() for p in self.params]

    def load(self, state: list[torch.Tensor]) -> None:
        with torch.no_grad():
            for p, v in zip(self.params, state):
                p.copy_(v)

    def commit(self) -> None:
        """Write the trained first layer into the model (W = W' Mᵀ)."""
        if self.M is not None:
            with torch.no_grad():
                self.model.net[0].weight.copy_(self.first_weight())
        if self.model.skip is not None:
            self.model.skip = self.skip_weight().detach().clone()


class _Best:
    """The training state of the lowest monitored loss seen so far."""

    def __init__(self):
        self.loss, self.state, self.step = float("inf"), None, -1

    def offer(self, loss: float, trainee: _Trainee, step: int) -> bool:
        if loss < self.loss:
            self.loss, self.step = loss, step
            self.state = trainee.state()
            return True
        return False


def _train_one(trainee, train_loss, val_loss, model_spec, ridge, nconf, progress, seed_index):
    """Adam then L-BFGS on one initialisation, monitoring the validation loss every
    ``validate_every`` iterations (when there is a validation set): the trainee ends with
    the weights of the lowest validation loss seen; ``patience`` checks without
    improvement stop the run. Returns the history dict."""
    params = trainee.params
    every = int(model_spec.validate_every)
    patience = int(model_spec.patience)
    monitor = val_loss is not None and every > 0
    best, since = _Best(), 0
    n_total = model_spec.epochs + model_spec.lbfgs_iterations
    history = {"train": [], "validation": []}

    def total():
        L = train_loss.value(trainee.site_energy)
        if ridge > 0:
            L = L + ridge * trainee.penalty()
        return L / nconf

    def check(step) -> bool:
        """Record the validation loss at ``step``; True to stop."""
        nonlocal since
        if not monitor:
            return False
        v = float(val_loss.value(trainee.site_energy).detach()) / val_loss.n_conf
        history["validation"].append((step, v))
        if best.offer(v, trainee, step):
            since = 0
        else:
            since += 1
        return patience > 0 and since >= patience

    step, stopped = 0, False
    history["start_loss"] = float(total().detach())
    check(0)
    opt = torch.optim.Adam(params, lr=model_spec.lr)
    for _ in range(model_spec.epochs):
        opt.zero_grad()
        L = total()
        L.backward()
        opt.step()
        step += 1
        history["train"].append((step, float(L.detach())))
        if progress:
            progress(step + seed_index * n_total, n_total * model_spec.seeds)
        if step % every == 0 if every else False:
            if check(step):
                stopped = True
                break
    if model_spec.lbfgs_iterations > 0 and not stopped:
        lb = torch.optim.LBFGS(params, lr=1.0, max_iter=every if monitor else int(model_spec.lbfgs_iterations),
                               line_search_fn="strong_wolfe", tolerance_grad=1e-12, tolerance_change=1e-15,
                               history_size=50)

        def closure():
            lb.zero_grad()
            L = total()
            L.backward()
            return L

        left = int(model_spec.lbfgs_iterations)
        while left > 0:
            chunk = min(left, every) if monitor else left
            lb.param_groups[0].update(max_iter=chunk, max_eval=4 * chunk)
            before = lb.state[lb._params[0]].get("n_iter", 0)
            lb.step(closure)
            done = lb.state[lb._params[0]].get("n_iter", 0) - before
            step += done
            left -= done
            history["train"].append((step, float(total().detach())))
            if progress:
                progress(min(step, n_total) + seed_index * n_total, n_total * model_spec.seeds)
            if check(step) or done == 0:
                break  # early stop, or L-BFGS made no more progress
    if monitor and best.state is not None:
        trainee.load(best.state)
    trainee.commit()
    history["best_validation"] = best.loss if monitor else None
    history["best_step"] = best.step if monitor else None
    history["steps"] = step
    return history


def train_network(configs, model_spec, loss, *, seed: int = 0, dim: int = 3, validation=None, progress=None,
                  whiten: bool = True, linear=None):
    """Fit an :class:`~genanalysis.models.mlp.MLPACE` to ``configs`` (see the module
    docstring), early-stopped on ``validation`` (configurations, optional): (model,
    diagnostics). ``model_spec.seeds`` initialisations (seeds ``seed``, ``seed + 1``, …)
    are trained; the one of lowest validation loss (training loss without validation) is
    returned. ``whiten``: train the first layer in whitened feature coordinates
    (:class:`_Trainee`; False trains the stored weights directly, for comparison).

    ``model_spec.linear_skip``: ``linear`` is the fitted
    :class:`~genanalysis.models.linear.LinearACE` of the same invariants, loss and
    training configurations (:func:`genanalysis.fit.fit_mlp` fits it); every
    initialisation starts as that linear model (:meth:`MLPACE.set_linear`: network
    output zero), its linear readout trained in the linear fit's scaled coordinates and,
    with the ridge, penalised as the linear fit penalises its coefficients. The start is
    the first validation check, so the returned model's validation loss is never above
    the linear fit's."""
    ridge = float(loss.ridge)
    skip = bool(getattr(model_spec, "linear_skip", False))
    if skip and linear is None:
        raise InputError("model.linear_skip = true trains from the linear fit of the same loss: pass linear= "
                         "(genanalysis.fit.fit_mlp does)")
    if linear is not None and not skip:
        raise InputError("linear= is the start of a network with model.linear_skip = true; this spec has none")
    rng = np.random.default_rng(seed)
    proto = MLPACE(model_spec.ace_spec(dim), hidden=model_spec.hidden, seed=seed, linear_skip=skip)
    if skip and linear.spec != proto.spec:
        raise InputError(f"the linear start has the basis {linear.spec} and the network {proto.spec}; "
                         "fit the linear model on the network's invariants")
    items = [ConfigurationLoss(proto.basis, proto.cutoff, c, loss, probes=model_spec.hessian_probes, rng=rng)
             for c in configs]
    train_loss = BatchLoss(items)
    val_items = [ConfigurationLoss(proto.basis, proto.cutoff, c, loss, probes=model_spec.hessian_probes, rng=rng)
                 for c in (validation or [])]
    val_loss = BatchLoss(val_items) if val_items else None
    with_E = [it for it in items if it.energy is not None]
    e0 = float(sum(it.energy for it in with_E) / sum(it.n for it in with_E)) if with_E else 0.0
    t0 = time.perf_counter()
    runs, M, g = [], None, None
    for k in range(int(model_spec.seeds)):
        torch.manual_seed(seed + k)
        model = proto if k == 0 else MLPACE(proto.spec, hidden=model_spec.hidden, seed=seed + k, linear_skip=skip)
        standardise(model, train_loss.B)
        model.e0 = e0
        if skip:
            model.set_linear(linear.coef_)
            if g is None:  # ĉ_k = c_k ‖R_{·k}‖ = w_k ‖R_{·k}‖/σ_k (a column no data see: g = 1)
                scale = torch.as_tensor(np.linalg.norm(np.asarray(linear.r_factor_), axis=0)[1:])
                g = torch.where(scale > 0, scale / model.sigma, torch.ones_like(scale))
        if whiten and M is None:
            M = whitening((train_loss.B - model.mu) / model.sigma)
        trainee = _Trainee(model, M if whiten else None, seed + k, g)
        hist = _train_one(trainee, train_loss, val_loss, model_spec, ridge, len(items), progress, k)
        L = train_loss.value(model.site_energy)
        final = float((L + (ridge * trainee.penalty() if ridge > 0 else 0.0)).detach()) / len(items)
        score = hist["best_validation"] if hist["best_validation"] is not None else final
        runs.append((score, k, model, hist, final))
    score, k, model, hist, final = min(runs, key=lambda r: (r[0], r[1]))
    diag = {"solver": "Adam (full batch) then L-BFGS (strong Wolfe)" + (f", weight decay λ={ridge:g}" if ridge > 0
                                                                         else "")
                      + (", early stopping on the validation loss" if hist["best_validation"] is not None else "")
                      + (", linear readout in parallel, started at the linear fit" if skip else ""),
            "n_params": model.n_params, "epochs": model_spec.epochs,
            "lbfgs_iterations": model_spec.lbfgs_iterations, "hessian_probes": model_spec.hessian_probes,
            "seeds": int(model_spec.seeds), "chosen_seed": seed + k, "steps": hist["steps"],
            "best_step": hist["best_step"], "best_validation_loss": hist["best_validation"],
            "seed_scores": [r[0] for r in sorted(runs, key=lambda r: r[1])],
            "validation_history": hist["validation"],
            "final_loss": final, "initial_loss": hist["train"][0][1] if hist["train"] else None,
            "start_loss": hist["start_loss"], "linear_skip": skip,
            "train_seconds": time.perf_counter() - t0}
    for p in model.net.parameters():
        p.requires_grad_(False)
    return model, diag


def finetune_network(model: MLPACE, training_set, loss_weights, steps: int, *, method: str = "lbfgs",
                     lr: float = 1e-3, hessian_probes: int | None = 4, seed: int = 0):
    """One-point (few-point) fine-tuning of a pre-trained network: ``steps`` optimiser
    iterations (``method`` ``lbfgs``, strong Wolfe, or ``adam`` with learning rate ``lr``)
    from the pre-trained weights W⁰ on the added configurations ``training_set``,
    minimising the fit's loss with a least-change penalty towards W⁰,

        (1/N_c) [ Σ_c L_c + λ Σ_l ‖W_l − W⁰_l‖²_F ],   λ = ``loss_weights.ridge``,

    the network's counterpart of the linear fine-tuning's ridge towards the pre-trained
    coefficients. μ, σ and e_0 stay those of the pre-trained model. Returns (a new model,
    diagnostics); the pre-trained model is not changed, and with no configurations or
    ``steps = 0`` the returned model is the pre-trained one (equal weights)."""
    steps = int(steps)
    if steps < 0:
        raise InputError(f"steps={steps} must be a whole number ≥ 0")
    if method not in ("lbfgs", "adam"):
        raise InputError(f"method={method!r}; choose 'lbfgs' or 'adam'")
    header, arrays = model.state()
    tuned = MLPACE.from_state(header, arrays)
    configs = list(training_set)
    diag = {"steps": 0, "method": method, "n_configurations": len(configs), "initial_loss": None,
            "final_loss": None, "seconds": 0.0}
    if not configs or steps == 0:
        for p in tuned.net.parameters():
            p.requires_grad_(False)
        return tuned, diag
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    items = [ConfigurationLoss(tuned.basis, tuned.cutoff, c, loss_weights, probes=hessian_probes, rng=rng)
             for c in configs]
    batch = BatchLoss(items)
    params = list(tuned.net.parameters())
    for p in params:
        p.requires_grad_(True)
    anchors = [(layer.weight, layer.weight.detach().clone()) for layer in tuned.net
               if isinstance(layer, torch.nn.Linear)]
    ridge = float(loss_weights.ridge)

    def total():
        L = batch.value(tuned.site_energy)
        if ridge > 0:
            L = L + ridge * sum(((w - w0) ** 2).sum() for w, w0 in anchors)
        return L / len(items)

    diag["initial_loss"] = float(total().detach())
    if method == "adam":
        opt = torch.optim.Adam(params, lr=lr)
        for _ in range(steps):
            opt.zero_grad()
            L = total()
            L.backward()
            opt.step()
        diag["steps"] = steps
    else:
        opt = torch.optim.LBFGS(params, lr=1.0, max_iter=steps, max_eval=4 * steps, line_search_fn="strong_wolfe",
                                tolerance_grad=1e-12, tolerance_change=1e-15, history_size=50)

        def closure():
            opt.zero_grad()
            L = total()
            L.backward()
            return L

        opt.step(closure)
        diag["steps"] = int(opt.state[opt._params[0]].get("n_iter", 0))
    diag["final_loss"] = float(total().detach())
    diag["seconds"] = time.perf_counter() - t0
    for p in params:
        p.requires_grad_(False)
    return tuned, diag
