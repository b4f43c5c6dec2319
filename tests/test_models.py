"""Physical invariants of the fitted-model classes (linear ACE-style and network).

Units: Å, eV, eV/Å, eV (virials), eV/Å². Models with random coefficients are real
instances of the model class: every property below must hold for any coefficients.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genanalysis.lattice import defect_cell, perfect_cell
from genanalysis.testing import strategies as gst
from genanalysis.models.basis import ACEBasis, ACESpec, _coupling_tensor, real_fourier, real_sph_harm
from genanalysis.models.linear import LinearACE
from genanalysis.models.mlp import MLPACE

A_W = 3.165
SPEC3 = ACESpec(cutoff=4.0, degree=5, l_max=2, r_in=2.0)
SPEC2 = ACESpec(cutoff=3.5, degree=5, l_max=3, r_in=1.0, dim=2)
SETTINGS = settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _linear(spec=SPEC3, seed=0):
    m = LinearACE(spec)
    m.coef_ = np.random.default_rng(seed).normal(size=m.n_params) * 0.1
    return m


def _mlp(spec=SPEC3, seed=0):
    m = MLPACE(spec, hidden=(6, 5), seed=seed)
    with torch.no_grad():
        m.net[-1].weight.mul_(100.0)
    m.sigma = torch.full((m.basis.K,), 2.0)
    return m


MODELS = {"linear": _linear, "mlp": _mlp}


def _cluster(seed: int, n: int = 7) -> Atoms:
    """A compact non-periodic cluster with distances 2–4 Å."""
    rng = np.random.default_rng(seed)
    base = perfect_cell("bcc", A_W, 2, "W").positions[:n]
    return Atoms("W" * n, positions=base + rng.normal(scale=0.15, size=base.shape), pbc=False)


def _periodic(seed: int, defect="vacancy") -> Atoms:
    at = defect_cell("bcc", A_W, 2, defect, "W")
    at.positions += np.random.default_rng(seed).normal(scale=0.08, size=at.positions.shape)
    return at


def _orthogonal(seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return q * np.sign(np.diag(r))  # det ±1: rotations and reflections


# ---------------------------------------------------------------------------------------
# the basis
# ---------------------------------------------------------------------------------------


def test_angular_bases_are_orthonormal():
    z, w = np.polynomial.legendre.leggauss(12)
    phi = 2 * np.pi * np.arange(24) / 24
    Z, P = np.meshgrid(z, phi, indexing="ij")
    s = np.sqrt(1 - Z**2)
    u = torch.tensor(np.stack([s * np.cos(P), s * np.sin(P), Z], -1).reshape(-1, 3))
    Y = real_sph_harm(u, 4).numpy()
    W = (w[:, None] * np.full(24, 2 * np.pi / 24)).ravel()
    assert np.allclose(np.einsum("q,qa,qb->ab", W, Y, Y), np.eye(25), atol=1e-12)
    th = 2 * np.pi * np.arange(20) / 20
    F = real_fourier(torch.tensor(np.stack([np.cos(th), np.sin(th)], -1)), 4).numpy()
    assert np.allclose(F.T @ F * (2 * np.pi / 20), np.eye(9), atol=1e-12)


@given(seed=st.integers(0, 10_000))
@SETTINGS
def test_gaunt_coupling_is_rotation_invariant(seed):
    """Σ G_abc Y_a(Qu) Y_b(Qv) Y_c(Qw) = Σ G_abc Y_a(u) Y_b(v) Y_c(w) for Q ∈ O(3)."""
    rng = np.random.default_rng(seed)
    G = _coupling_tensor(3, 3)
    u = rng.normal(size=(3, 3))
    u /= np.linalg.norm(u, axis=1)[:, None]
    Q = _orthogonal(seed)
    f = lambda x: np.einsum("abc,a,b,c->", G, *real_sph_harm(torch.tensor(x), 3).numpy())  # noqa: E731
    assert f(u @ Q.T) == pytest.approx(f(u), abs=1e-12)


@pytest.mark.parametrize("spec", [SPEC3, SPEC2, ACESpec(cutoff=5.0, degree=4, l_max=4, pair_degree=9)])
@given(data=st.data())
@settings(max_examples=10, deadline=None)
def test_analytic_pair_derivatives_match_autodiff(spec, data):
    """∇φ, ∇²φ by the product rule on explicit polynomials = nested autodiff of φ, for any
    pair vectors D (inside and beyond the cutoff, and inside r_in)."""
    b = ACEBasis(spec)
    D = torch.tensor(data.draw(gst.pair_vectors(20, r_min=0.3, r_max=1.3 * spec.cutoff, dim=spec.dim)))
    J, H = b.phi_derivatives(D, order=2)
    J0, H0 = b._phi_derivatives_autodiff(D, order=2)
    scale = max(float(H0.abs().max()), 1.0)
    assert torch.allclose(J, J0, atol=1e-13 * scale) and torch.allclose(H, H0, atol=1e-13 * scale)
    assert torch.allclose(b._polys.values(D), (real_sph_harm if spec.dim == 3 else real_fourier)(
        D / torch.linalg.norm(D, dim=1, keepdim=True), spec.l_max) * torch.linalg.norm(D, dim=1, keepdim=True)
        ** b.l_of_comp, atol=1e-12)


def test_size_knob_grows_the_basis():
    sizes = [ACEBasis(ACESpec(cutoff=5.0, degree=d, l_max=3)).K for d in (4, 6, 8, 10)]
    assert all(a < b for a, b in zip(sizes, sizes[1:]))
    b = ACEBasis(ACESpec(cutoff=5.0, degree=6, body_order=4))
    assert set(b.body_orders) == {2, 3, 4}


# ---------------------------------------------------------------------------------------
# invariances
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", MODELS)
@given(seed=st.integers(0, 10_000))
@SETTINGS
def test_invariance_rotation_reflection_translation_permutation(kind, seed):
    m = MODELS[kind](seed=seed % 5)
    at = _cluster(seed)
    r0 = m.predict(at)
    Q = _orthogonal(seed)
    rng = np.random.default_rng(seed + 1)
    moved = at.copy()
    moved.positions = at.positions @ Q.T + rng.normal(size=3) * 3.0
    r1 = m.predict(moved)
    assert r1["energy"] == pytest.approx(r0["energy"], abs=1e-10)
    assert np.allclose(r1["forces"], r0["forces"] @ Q.T, atol=1e-10)
    assert np.allclose(r1["energies"], r0["energies"], atol=1e-10)
    perm = rng.permutation(len(at))
    r2 = m.predict(at[perm])
    assert r2["energy"] == pytest.approx(r0["energy"], abs=1e-10)
    assert np.allclose(r2["forces"], r0["forces"][perm], atol=1e-12)
    assert np.allclose(r2["energies"], r0["energies"][perm], atol=1e-12)


@given(seed=st.integers(0, 10_000))
@SETTINGS
def test_periodic_rotation_with_cell(seed):
    m = _linear(seed=seed % 3)
    at = _periodic(seed)
    Q = _orthogonal(seed)
    rot = at.copy()
    rot.set_cell(np.array(at.cell) @ Q.T, scale_atoms=False)
    rot.positions = at.positions @ Q.T
    r0, r1 = m.predict(at), m.predict(rot)
    assert r1["energy"] == pytest.approx(r0["energy"], abs=1e-10)
    assert np.allclose(r1["virial"], Q @ r0["virial"] @ Q.T, atol=1e-10)


@given(seed=st.integers(0, 10_000))
@SETTINGS
def test_two_dimensional_model_is_invariant_in_the_plane(seed):
    m = _linear(SPEC2, seed=seed % 3)
    at = perfect_cell("triangular", 1.5, 4, "X")
    rng = np.random.default_rng(seed)
    at.positions[:, :2] += rng.normal(scale=0.05, size=(len(at), 2))
    r0 = m.predict(at)
    th = rng.uniform(0, 2 * np.pi)
    Q = np.eye(3)
    Q[:2, :2] = [[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]]
    if seed % 2:
        Q[1] *= -1  # a reflection of the plane
    rot = at.copy()
    rot.set_cell(np.array(at.cell) @ Q.T, scale_atoms=False)
    rot.positions = at.positions @ Q.T
    r1 = m.predict(rot)
    assert r1["energy"] == pytest.approx(r0["energy"], abs=1e-10)
    assert np.allclose(r1["forces"], r0["forces"] @ Q.T, atol=1e-10)
    assert np.all(r0["forces"][:, 2] == 0.0)


# ---------------------------------------------------------------------------------------
# derivatives
# ---------------------------------------------------------------------------------------


def _energy(m, at, x):
    a = at.copy()
    a.positions = x
    return m.predict(a)["energy"]


#: periodic W configurations the derivative properties are held on: defect or perfect
#: cells of up to 2×2×2 conventional cells, strained and rattled
W_CONFIGS = gst.configurations("bcc", A_W, symbol="W", max_size=2, max_strain=0.02, max_rattle=0.08)


@pytest.mark.parametrize("kind", MODELS)
@given(coefficients=st.integers(0, 3), at=W_CONFIGS, data=st.data())
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_forces_are_minus_gradient_and_virial_is_strain_derivative(kind, coefficients, at, data):
    """F = −∇E along any displacement field, and V = −∂E/∂ε for every strain component."""
    m = MODELS[kind](seed=coefficients)
    r = m.predict(at)
    h = 1e-5
    v = data.draw(gst.displacements(len(at)))
    v /= np.linalg.norm(v)
    fd = -(_energy(m, at, at.positions + h * v) - _energy(m, at, at.positions - h * v)) / (2 * h)
    # central differences err by ~h²·|∂³E|/6: ~1e-9 relative on a strongly rattled cell (a
    # directional derivative of 204 eV/Å differed by 2e-7 eV/Å), so the bound is relative
    assert fd == pytest.approx(float(np.sum(r["forces"] * v)), rel=1e-8, abs=1e-7)

    def strained(eps):
        s = at.copy()
        s.set_cell(np.array(at.cell) @ (np.eye(3) + eps), scale_atoms=True)
        return m.predict(s)["energy"]

    V = np.zeros((3, 3))
    for al in range(3):
        for be in range(3):
            e = np.zeros((3, 3))
            e[al, be] = h
            V[al, be] = -(strained(e) - strained(-e)) / (2 * h)
    assert np.allclose(V, r["virial"], rtol=1e-8, atol=1e-7)
    assert np.allclose(r["virial"], r["virial"].T, atol=1e-10)


@pytest.mark.parametrize("kind", MODELS)
@given(coefficients=st.integers(0, 3), at=W_CONFIGS, data=st.data())
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_hessian_exact_symmetric_acoustic_sum_rule(kind, coefficients, at, data):
    """H symmetric, rows summing to zero over atoms (translations), a row = −∂F/∂x_k, and
    hessian_rows = those rows of H."""
    m = MODELS[kind](seed=coefficients)
    H = m.hessian(at).toarray()
    n = len(at)
    assert np.allclose(H, H.T, atol=1e-12 * max(1.0, np.abs(H).max()))
    assert np.abs(H.reshape(3 * n, n, 3).sum(axis=1)).max() < 1e-11 * max(1.0, np.abs(H).max())
    h = 1e-5
    k = data.draw(st.integers(0, 3 * n - 1), label="row")
    xp, xm = at.positions.copy().ravel(), at.positions.copy().ravel()
    xp[k] += h
    xm[k] -= h

    def F(x):
        a = at.copy()
        a.positions = x.reshape(-1, 3)
        return m.predict(a)["forces"].ravel()

    assert np.allclose(-(F(xp) - F(xm)) / (2 * h), H[k], atol=1e-7)
    rows = m.hessian_rows(at, [k // 3])
    assert np.allclose(rows, H[3 * (k // 3): 3 * (k // 3) + 3], atol=1e-12)


@pytest.mark.parametrize("kind", MODELS)
def test_force_constants_continuous_across_the_cutoff(kind):
    """A neighbour crossing r_cut: E, F and H jump by O(δ^k) — C² envelope."""
    m = MODELS[kind](seed=1)
    rc = m.cutoff

    def obs(r):
        at = Atoms("W3", positions=[[0, 0, 0], [-2.6, 0.5, 0.3], [r, 0.4, 0.2]], pbc=False)
        out = m.predict(at)
        return out["energy"], out["forces"], m.hessian(at).toarray()

    def d2(r):  # distance between atoms 0 and 2 = r_cut exactly at r = r0
        return np.sqrt(r**2 + 0.4**2 + 0.2**2)

    from scipy.optimize import brentq

    r0 = brentq(lambda r: d2(r) - rc, 3.0, 5.0)
    jumps = []
    for delta in (1e-3, 1e-4):
        (e1, f1, h1), (e2, f2, h2) = obs(r0 - delta), obs(r0 + delta)
        jumps.append((abs(e1 - e2), np.abs(f1 - f2).max(), np.abs(h1 - h2).max()))
        assert h1.shape == h2.shape
    scale = np.abs(obs(r0 - 0.5)[2]).max()
    assert jumps[1][2] < 1e-3 * scale  # force constants continuous
    assert jumps[0][2] / jumps[1][2] > 5  # and the jump vanishes linearly (third derivative jumps)
    assert jumps[1][1] < 1e-6 and jumps[1][0] < 1e-9


# ---------------------------------------------------------------------------------------
# design rows, plugs and persistence
# ---------------------------------------------------------------------------------------


@given(at=W_CONFIGS, data=st.data())
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_design_rows_reproduce_the_model(at, data):
    """The model is linear in its coefficients: design rows · coef = its E, F, V and H, for
    any coefficients (eV), and the rows of selected atoms are those rows."""
    from hypothesis.extra.numpy import arrays

    m = _linear()
    m.coef_ = data.draw(arrays(np.float64, m.n_params, elements=st.floats(-0.2, 0.2, allow_nan=False)), label="coef")
    r = m.predict(at, hessian=True)
    d = m.design(at, "EFVH")
    assert d["E"] @ m.coef_ == pytest.approx(r["energy"], abs=1e-10)
    assert np.allclose(d["F"] @ m.coef_, r["forces"], atol=1e-12)
    assert np.allclose(d["V"] @ m.coef_, r["virial"], atol=1e-11)
    assert np.allclose(d["H"] @ m.coef_, r["hessian"].toarray(), atol=1e-12)
    rows = sorted(data.draw(st.sets(st.integers(0, len(at) - 1), min_size=1, max_size=2), label="rows"))
    dr = m.design(at, "H", hessian_rows=rows)["H"]
    assert np.allclose(dr, d["H"][np.concatenate([np.arange(3 * i, 3 * i + 3) for i in rows])], atol=1e-13)


@pytest.mark.parametrize("kind", MODELS)
def test_calculator_and_persistence(kind, tmp_path):
    import genanalysis
    from genanalysis.models.calculator import model_calculator
    from genanalysis.models.io import load_fitted, save_model
    from genanalysis.potentials.base import Potential

    m = MODELS[kind](seed=2)
    at = _periodic(3)
    r = m.predict(at)
    save_model(m, tmp_path / "m", element="W")
    m2, header = load_fitted(tmp_path / "m")
    assert header["kind"] == m.kind
    calc = genanalysis.load_model(tmp_path / "m")
    assert isinstance(calc.potential, Potential) and calc.potential.cutoff == m.cutoff
    at.calc = calc
    assert at.get_potential_energy() == pytest.approx(r["energy"], abs=1e-12)
    assert np.allclose(at.get_forces(), r["forces"], atol=1e-12)
    assert np.allclose(at.get_stress(voigt=False), -r["virial"] / at.get_volume(), atol=1e-12)
    assert np.allclose(at.get_potential_energies(), r["energies"], atol=1e-12)
    Hs = calc.get_hessian(at, format="sparse")
    Hd = calc.get_hessian(at, format="dense")
    assert np.allclose(Hs.toarray(), Hd) and np.allclose(Hd, m.hessian(at).toarray(), atol=1e-12)
    assert np.allclose(model_calculator(m2).get_hessian(at, format="dense"), Hd, atol=1e-12)


def test_bad_inputs_are_refused(tmp_path):
    from genanalysis.exceptions import InputError
    from genanalysis.models.io import load_fitted

    with pytest.raises(InputError, match="cutoff"):
        ACESpec(cutoff=-1.0)
    with pytest.raises(InputError, match="body_order"):
        ACESpec(body_order=7)
    with pytest.raises(InputError, match="r_in"):
        ACESpec(cutoff=3.0, r_in=4.0)
    with pytest.raises(InputError, match="dim=2"):
        _linear().predict(perfect_cell("triangular", 1.5, 3))
    with pytest.raises(InputError, match="no fitted model"):
        load_fitted(tmp_path)
    with pytest.raises(InputError, match="shape"):
        LinearACE(SPEC3, np.zeros(3))
