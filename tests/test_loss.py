"""One loss for both fits: the linear least squares' weighted rows and the network's torch
loss are the same function of the model, and the ridge means weight decay in the network.

Units: eV, eV/Å, eV (virials), eV/Å²; losses dimensionless. Data from the built-in W EAM
(bcc, d = 3) and Morse (triangular, d = 2) references.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genanalysis.data import Configuration
from genanalysis.fit import FitSpec, LossWeights, ModelSpec, fit, fit_linear
from genanalysis.fitting.loss import select, terms, weighted_kinds
from genanalysis.fitting.network import ConfigurationLoss, weight_penalty
from genanalysis.lattice import defect_cell
from genanalysis.potentials import load_potential


def _data(dim: int) -> list[Configuration]:
    """Rattled perfect and vacancy cells with E, F, V; force constants on a rattled vacancy
    cell and on an unrattled perfect cell (a translation orbit: one row block × n); random
    per-atom weights (one of them zero) on two cells."""
    rng = np.random.default_rng(4)
    if dim == 3:
        pot, lattice, a, n, elem = load_potential("builtin:W"), "bcc", 3.165, 2, "W"
    else:
        pot = load_potential("builtin:morse")
        lattice, a, n, elem = "triangular", pot.equilibrium_lattice_constant("triangular"), 4, "X"
    out = []
    for k in range(6):
        group = ("perfect", "vacancy")[k % 2]
        at = defect_cell(lattice, a, n, group, elem)
        if k != 4:
            at.positions[:, :dim] += rng.normal(scale=0.05, size=(len(at), dim))
        ev = pot.observe(at)
        weights = None
        if k in (1, 2):
            weights = rng.uniform(0.2, 3.0, size=len(at))
            weights[0] = 0.0
        out.append(Configuration(at, group=group, energy=ev.energy, forces=ev.forces, virial=ev.virial,
                                 hessian=pot.hessian(at) if k in (3, 4) else None, atom_weights=weights))
    return out


MODELS = {3: ModelSpec(cutoff=4.0, degree=4, l_max=2, r_in=2.0), 2: ModelSpec(cutoff=2.5, degree=4, l_max=2)}
LOSS = LossWeights(E=1.3, F=0.7, V=0.4, H=0.02, groups={"vacancy": {"F": 2.0, "H": 3.0}})


def _torch_loss(model, configs, loss) -> float:
    c = torch.tensor(model.coef_)

    def site_energy(B):
        return c[0] + B @ c[1:]

    return sum(float(ConfigurationLoss(model.basis, model.cutoff, conf, loss).value(site_energy).detach())
               for conf in configs)


def _row_loss(model, configs, loss) -> float:
    """Σ over the linear fit's weighted rows of (s ⊙ (A c − y))² at the model's coefficients."""
    total = 0.0
    for conf in configs:
        kinds = weighted_kinds(conf, loss)
        blocks = terms(conf, loss, kinds)
        hrows = next((b.selector[0] for b in blocks if b.code == "H"), None)
        design = model.design(conf.atoms, kinds, hessian_rows=hrows)
        for b in blocks:
            total += float(np.sum((b.sqrt_weight * (select(b, design, conf) @ model.coef_ - b.reference)) ** 2))
    return total


@pytest.mark.parametrize("dim", [3, 2])
def test_linear_rows_and_torch_loss_are_one_loss(dim):
    """At the least-squares solution the torch loss equals the solver's weighted residual
    sum of squares, and at any coefficients it equals the sum over the weighted rows."""
    configs = _data(dim)
    model, diag = fit_linear(configs, MODELS[dim], LOSS)
    assert not diag["rank_deficient"]
    rss = diag["weighted_residual_norm"] ** 2
    assert rss > 0
    assert _torch_loss(model, configs, LOSS) == pytest.approx(rss, rel=1e-10)
    model.coef_ = model.coef_ + np.random.default_rng(dim).normal(size=model.n_params) * 1e-2
    rows = _row_loss(model, configs, LOSS)
    assert rows > rss
    assert _torch_loss(model, configs, LOSS) == pytest.approx(rows, rel=1e-10)


def test_ridge_is_weight_decay_in_the_network():
    """Same data, same seed: a ridge λ > 0 leaves the network with smaller weights, and the
    reported loss includes the penalty."""
    configs = _data(3)[:4]
    base = dict(training_set="unused", validation_fraction=0.0, seed=5,
                model=ModelSpec(kind="mlp", cutoff=4.0, degree=3, l_max=1, hidden=(6,), epochs=20,
                                lbfgs_iterations=5, hessian_probes=1))
    norms = {}
    for ridge in (0.0, 10.0):
        res = fit(configs, FitSpec(loss=LossWeights(E=1.0, F=1.0, ridge=ridge), **base))
        norms[ridge] = float(weight_penalty(res.model))
        assert ("weight decay" in res.report["solver"]["solver"]) == (ridge > 0)
    assert norms[10.0] < 0.8 * norms[0.0], norms
