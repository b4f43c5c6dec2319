"""Training the network (genanalysis.fitting.network): standardised features stored in the
model, L-BFGS after Adam, early stopping on the validation split, several seeds, and the
trained network's forces are still −∇E. Tiny data and few iterations: these test the
mechanics, not the accuracy (studies/network_vs_linear.py measures that)."""

from __future__ import annotations

import numpy as np
import pytest

from genanalysis.data import Configuration
from genanalysis.exceptions import InputError
from genanalysis.fit import FitSpec, LossWeights, ModelSpec, fit
from genanalysis.fitting.network import BatchLoss, ConfigurationLoss, train_network
from genanalysis.models import engine
from genanalysis.models.io import load_fitted, save_model
from morsecells import rattled_morse_cells

LOSS = LossWeights(E=1.0, F=1.0, V=0.5)
GEOM = dict(kind="mlp", cutoff=2.5, degree=3, body_order=3, l_max=1, hidden=(6,), hessian_probes=1)


def _morse(count: int, seed: int) -> list[Configuration]:
    """Rattled perfect and vacancy cells of the triangular Morse crystal (d = 2), E, F, V."""
    return rattled_morse_cells(count, seed, rattle=0.05)


@pytest.fixture(scope="module")
def data():
    return _morse(4, 0)


def _loss_of(model, configs) -> float:
    items = [ConfigurationLoss(model.basis, model.cutoff, c, LOSS) for c in configs]
    return float(BatchLoss(items).value(model.site_energy).detach()) / len(items)


def test_batched_loss_is_the_sum_of_the_configuration_losses(data):
    model, _ = train_network(data[:3], ModelSpec(**GEOM, epochs=3, lbfgs_iterations=0), LOSS, dim=2)
    items = [ConfigurationLoss(model.basis, model.cutoff, c, LOSS) for c in data]
    one = sum(float(it.value(model.site_energy).detach()) for it in items)
    assert float(BatchLoss(items).value(model.site_energy).detach()) == pytest.approx(one, rel=1e-12)


def test_standardisation_round_trips_through_save_and_load(data, tmp_path):
    res = fit(data, FitSpec(training_set="unused", model=ModelSpec(**GEOM, epochs=5, lbfgs_iterations=3),
                            loss=LOSS, validation_fraction=0.0))
    m = res.model
    B = np.concatenate([m.basis.features(engine.projections(m.basis, engine.geometry(c.atoms, m.cutoff))).numpy()
                        for c in data])
    assert np.allclose(m.mu.numpy(), B.mean(0), rtol=1e-12, atol=1e-14)
    varying = B.std(0) > 1e-9
    assert varying.any() and not np.allclose(m.sigma.numpy()[varying], 1.0)
    assert np.allclose(m.sigma.numpy()[varying], B.std(0, ddof=1)[varying], rtol=1e-12)
    save_model(m, tmp_path / "m", element="X")
    with np.load(next((tmp_path / "m").glob("*.npz")), allow_pickle=False) as z:
        assert "mu" in z and "sigma" in z
    back, _ = load_fitted(tmp_path / "m")
    assert np.array_equal(back.mu.numpy(), m.mu.numpy()) and np.array_equal(back.sigma.numpy(), m.sigma.numpy())
    at = data[1].atoms
    r0, r1 = m.predict(at), back.predict(at)
    assert r1["energy"] == r0["energy"] and np.array_equal(r1["forces"], r0["forces"])


def test_lbfgs_lowers_the_loss_below_adam_alone_on_the_same_budget(data):
    spec = dict(GEOM, validate_every=0)
    _, adam = train_network(data, ModelSpec(**spec, epochs=25, lbfgs_iterations=0), LOSS, dim=2)
    _, both = train_network(data, ModelSpec(**spec, epochs=5, lbfgs_iterations=20), LOSS, dim=2)
    assert both["steps"] <= 25 and adam["steps"] == 25
    assert both["final_loss"] < 0.5 * adam["final_loss"], (both["final_loss"], adam["final_loss"])


def test_early_stopping_returns_the_best_validation_state(data):
    val = _morse(2, 1)
    spec = ModelSpec(**dict(GEOM, hidden=(12,)), epochs=20, lbfgs_iterations=20, validate_every=5)
    model, diag = train_network(data[:2], spec, LOSS, dim=2, validation=val)
    hist = diag["validation_history"]
    assert len(hist) >= 4 and hist[0][0] == 0
    losses = [v for _, v in hist]
    assert diag["best_validation_loss"] == min(losses)
    assert diag["best_step"] == hist[int(np.argmin(losses))][0]
    assert _loss_of(model, val) == pytest.approx(min(losses), rel=1e-10)
    # patience stops the run after that many checks without improvement
    stopped, d2 = train_network(data[:2], ModelSpec(**dict(GEOM, hidden=(12,)), epochs=20, lbfgs_iterations=20,
                                                    validate_every=5, patience=1), LOSS, dim=2, validation=val)
    h2 = d2["validation_history"]
    improved = [h2[k][1] < min(v for _, v in h2[:k]) for k in range(1, len(h2))]
    assert d2["steps"] == 40 or not improved[-1]


def test_several_seeds_keep_the_lowest_validation_loss(data):
    val = _morse(2, 2)
    spec = ModelSpec(**GEOM, epochs=5, lbfgs_iterations=5, seeds=2)
    model, diag = train_network(data[:3], spec, LOSS, seed=4, dim=2, validation=val)
    scores = diag["seed_scores"]
    assert len(scores) == 2 and diag["chosen_seed"] == 4 + int(np.argmin(scores))
    assert _loss_of(model, val) == pytest.approx(min(scores), rel=1e-10)


def test_trained_network_forces_are_minus_the_energy_gradient(data):
    model, _ = train_network(data, ModelSpec(**GEOM, epochs=5, lbfgs_iterations=10), LOSS, dim=2)
    at = data[1].atoms.copy()
    F = model.predict(at)["forces"]
    assert np.abs(F[:, :2]).max() > 1e-3  # a trained, not a flat, network
    h = 1e-5
    for a in (0, 3):
        for c in (0, 1):
            p, m = at.copy(), at.copy()
            p.positions[a, c] += h
            m.positions[a, c] -= h
            fd = -(model.predict(p)["energy"] - model.predict(m)["energy"]) / (2 * h)
            assert fd == pytest.approx(F[a, c], rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("field, value", [("seeds", 0), ("validate_every", -1), ("patience", 1.5)])
def test_bad_training_settings_are_refused(field, value):
    with pytest.raises(InputError, match=field):
        ModelSpec(**GEOM, **{field: value})


def test_whitening_decorrelates_the_training_features():
    """z = B̂ M has identity covariance over the sites, and a direction the sites do not
    vary along is dropped rather than divided by zero."""
    import torch

    from genanalysis.fitting.network import whitening

    rng = np.random.default_rng(0)
    base = rng.normal(size=(200, 3)) * [1.0, 1e-3, 1e-6]
    mix = rng.normal(size=(3, 4))  # four collinear features of three directions
    B = torch.tensor(base @ mix)
    B = B - B.mean(0)
    M = whitening(B)
    assert M.shape == (4, 3)
    z = B @ M
    assert np.allclose((z.T @ z / (len(z) - 1)).numpy(), np.eye(3), atol=1e-8)


def test_whitened_training_stores_a_network_on_standardised_features(data):
    """The first layer trained in whitened coordinates is written back as weights on the
    standardised features: the saved model's loss is the training's final loss."""
    model, diag = train_network(data, ModelSpec(**GEOM, epochs=5, lbfgs_iterations=10, validate_every=0),
                                LOSS, dim=2)
    assert model.net[0].weight.shape == (6, model.basis.K)
    assert _loss_of(model, data) == pytest.approx(diag["final_loss"], rel=1e-10)
    _, plain = train_network(data, ModelSpec(**GEOM, epochs=5, lbfgs_iterations=10, validate_every=0),
                             LOSS, dim=2, whiten=False)
    assert plain["final_loss"] != diag["final_loss"]


def test_finetuning_with_no_added_data_returns_the_pretrained_model(data):
    from genanalysis.fitting.network import finetune_network

    model, _ = train_network(data, ModelSpec(**GEOM, epochs=3, lbfgs_iterations=3, validate_every=0), LOSS, dim=2)
    for added, steps in (([], 10), (data[:1], 0)):
        tuned, diag = finetune_network(model, added, LOSS, steps)
        assert tuned is not model and diag["steps"] == 0
        for a, b in zip(model.net.state_dict().values(), tuned.net.state_dict().values()):
            assert torch_equal(a, b)
        at = data[2].atoms
        assert np.array_equal(tuned.predict(at)["forces"], model.predict(at)["forces"])


def test_finetuning_lowers_the_added_loss_and_the_anchor_limits_the_change(data):
    from genanalysis.fitting.network import finetune_network

    model, _ = train_network(data[:2], ModelSpec(**GEOM, epochs=3, lbfgs_iterations=3, validate_every=0), LOSS,
                             dim=2)
    before = [p.detach().clone() for p in model.net.parameters()]
    added = _morse(1, 7)
    change = {}
    for ridge in (0.0, 100.0):
        loss = LossWeights(E=1.0, F=1.0, V=0.5, ridge=ridge)
        tuned, diag = finetune_network(model, added, loss, 10)
        assert 0 < diag["steps"] <= 10 and diag["final_loss"] < diag["initial_loss"]
        change[ridge] = sum(float(((a - b) ** 2).sum()) for a, b in
                            zip(tuned.net.parameters(), model.net.parameters()) if a.dim() == 2)
    assert change[100.0] < change[0.0]
    assert all(torch_equal(a, b) for a, b in zip(before, model.net.parameters()))  # pre-trained unchanged


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))


# -- the linear readout in parallel (model.linear_skip) ---------------------------------------

SKIP = dict(GEOM, linear_skip=True)


def _linear_of(spec: ModelSpec, configs, loss=LOSS):
    from dataclasses import replace

    from genanalysis.fit import fit_linear

    return fit_linear(configs, replace(spec, kind="ace", linear_skip=False), loss)[0]


@pytest.mark.parametrize("ridge", [0.0, 1e-3])
def test_the_skip_network_starts_as_the_linear_fit_of_the_same_loss(data, ridge):
    """With the network's output layer at zero the model is the linear fit: its
    predictions and its objective (loss + ridge) at the start are the linear fit's."""
    from genanalysis.fit import fit_mlp

    loss = LossWeights(E=1.0, F=1.0, V=0.5, ridge=ridge)
    spec = ModelSpec(**SKIP, epochs=0, lbfgs_iterations=0)
    linear = _linear_of(spec, data, loss)
    model, diag = fit_mlp(data, spec, loss, validation=_morse(2, 3))
    assert model.linear_skip and not model.net[-1].weight.any() and float(model.net[-1].bias) == 0.0
    assert diag["linear_skip"] and diag["linear"]["n_params"] == linear.n_params
    for c in data + _morse(2, 5):
        a, b = linear.predict(c.atoms), model.predict(c.atoms)
        assert b["energy"] == pytest.approx(a["energy"], rel=1e-12, abs=1e-12)
        assert np.allclose(b["forces"], a["forces"], rtol=1e-10, atol=1e-12)
        assert np.allclose(b["virial"], a["virial"], rtol=1e-10, atol=1e-12)
    # the start's objective: the linear fit's L + λ‖ĉ‖² (ĉ its scaled coefficients) plus the
    # hidden layers' weight decay λ Σ_l ‖W_l‖² (the output layer is zero), per configuration
    from genanalysis.fitting.network import weight_penalty

    scale = np.linalg.norm(np.asarray(linear.r_factor_), axis=0)
    objective = (_loss_of(linear_as_site_energy(linear), data)
                 + ridge * (float(np.sum((linear.coef_[1:] * scale[1:]) ** 2)) + float(weight_penalty(model))) / len(data))
    assert diag["start_loss"] == pytest.approx(objective, rel=1e-9)


def linear_as_site_energy(linear):
    """A stand-in with the linear model's basis, cutoff and site energy ε(B) = c_0 + c·B."""
    import torch

    class _Lin:
        basis, cutoff = linear.basis, linear.cutoff

        @staticmethod
        def site_energy(B):
            c = torch.as_tensor(linear.coef_)
            return c[0] + B @ c[1:]

    return _Lin()


def test_training_with_the_skip_never_ends_above_its_starting_validation_loss(data):
    """The start (the linear fit) is the first validation check: the returned model's
    validation loss is at most the linear fit's, and below it when training helps."""
    from genanalysis.fit import fit_mlp

    val = _morse(2, 1)
    spec = ModelSpec(**SKIP, epochs=10, lbfgs_iterations=30, validate_every=5, seeds=2)
    model, diag = fit_mlp(data[:3], spec, LOSS, validation=val)
    start = diag["validation_history"][0]
    assert start[0] == 0
    assert start[1] == pytest.approx(_loss_of(linear_as_site_energy(_linear_of(spec, data[:3])), val), rel=1e-10)
    assert _loss_of(model, val) == pytest.approx(diag["best_validation_loss"], rel=1e-10)
    assert diag["best_validation_loss"] <= start[1]
    assert all(s <= start[1] for s in diag["seed_scores"])


def test_a_skip_network_round_trips_through_save_and_load(data, tmp_path):
    from genanalysis.fit import fit_mlp

    model, _ = fit_mlp(data, ModelSpec(**SKIP, epochs=3, lbfgs_iterations=3, validate_every=0), LOSS)
    assert model.n_params == sum(p.numel() for p in model.net.parameters()) + 1 + model.basis.K
    save_model(model, tmp_path / "m", element="X")
    back, header = load_fitted(tmp_path / "m")
    assert header["linear_skip"] is True and back.linear_skip
    assert np.array_equal(back.skip.numpy(), model.skip.numpy())
    at = data[1].atoms
    r0, r1 = model.predict(at), back.predict(at)
    assert r1["energy"] == r0["energy"] and np.array_equal(r1["forces"], r0["forces"])
    # a network without the skip writes neither the key nor the array
    plain, _ = train_network(data, ModelSpec(**GEOM, epochs=1, lbfgs_iterations=0, validate_every=0), LOSS, dim=2)
    header, arrays = plain.state()
    assert "linear_skip" not in header and "skip" not in arrays


@pytest.mark.parametrize("spec, match", [(dict(SKIP, linear_skip=1), "linear_skip=1"),
                                         (dict(SKIP, linear_skip="yes"), "linear_skip='yes'"),
                                         (dict(GEOM, kind="ace", linear_skip=True), "kind='mlp'")])
def test_bad_linear_skip_values_are_refused(spec, match):
    with pytest.raises(InputError, match=match):
        ModelSpec(**spec)


def test_a_skip_spec_hashes_apart_and_a_plain_spec_hashes_as_before():
    base = FitSpec(training_set="x", model=ModelSpec(**GEOM))
    skip = FitSpec(training_set="x", model=ModelSpec(**SKIP))
    assert "linear_skip" not in base.to_dict()["model"] and skip.to_dict()["model"]["linear_skip"] is True
    assert base.content_hash() != skip.content_hash()


def test_the_skip_needs_its_linear_start(data):
    with pytest.raises(InputError, match="linear"):
        train_network(data, ModelSpec(**SKIP, epochs=1, lbfgs_iterations=0), LOSS, dim=2)
