"""The compiled kernels of the linear ACE-style model against a plain reference.

Units: Å, eV, eV/Å, eV (virials), eV/Å². The reference below is the model written out
directly in torch — φ of every pair vector, A = Σ φ, the invariants B(A), E = Σ c·B — and
differentiated by autograd: it shares no code with the compiled per-pair and per-site
kernels, so agreement to 1e-12 relative checks the kernels' algebra (and finite differences
of the energy check the reference itself).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genanalysis.lattice import defect_cell, perfect_cell
from genanalysis.models import engine
from genanalysis.models.basis import ACESpec
from genanalysis.models.linear import LinearACE

A_W = 3.165
SPECS = {
    "3d-bo3": ACESpec(cutoff=4.0, degree=5, body_order=3, l_max=2, r_in=2.0),
    "3d-bo4": ACESpec(cutoff=3.6, degree=5, body_order=4, l_max=2, r_in=1.5),
    "3d-bo2": ACESpec(cutoff=4.0, degree=4, body_order=2, l_max=0, r_in=1.0, pair_degree=7),
    "2d-bo4": ACESpec(cutoff=3.5, degree=5, body_order=4, l_max=3, r_in=1.0, dim=2),
}
SETTINGS = settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _model(spec, seed):
    m = LinearACE(spec)
    m.coef_ = np.random.default_rng(seed).normal(size=m.n_params) * 0.1
    return m


def _cell(spec, seed):
    rng = np.random.default_rng(seed)
    if spec.dim == 2:
        at = defect_cell("triangular", 2.8, 3, "vacancy", "W")
        at.positions[:, :2] += rng.normal(scale=0.08, size=(len(at), 2))
    else:
        at = defect_cell("bcc", A_W, 2, "vacancy", "W")
        at.positions += rng.normal(scale=0.08, size=at.positions.shape)
    return at


def _reference(model, atoms):
    """(energy, forces, virial, Hessian) of the linear model by torch autograd of the
    plain formula (no compiled kernel)."""
    b = model.basis
    geom = engine.geometry(atoms, model.cutoff)
    n = geom.n
    i, j = torch.tensor(geom.i), torch.tensor(geom.j)
    x0 = torch.tensor(atoms.positions, dtype=torch.float64)
    shift = geom.D - (x0[j] - x0[i])  # lattice shifts of the pairs
    c = torch.tensor(model.coef_)
    mask = torch.ones(3, dtype=torch.float64)
    if b.spec.dim == 2:
        mask[2] = 0.0

    def energy_of_D(D):
        A = torch.zeros(n, b.n_A, dtype=torch.float64).index_add(0, i, b.phi(D))
        return c[0] * n + (b.features(A) @ c[1:]).sum()

    def energy_of_x(xf):
        x = xf.view(n, 3) * mask
        return energy_of_D(x[j] - x[i] + shift)

    D = geom.D.clone().requires_grad_(True)
    E = energy_of_D(D)
    (dEdD,) = torch.autograd.grad(E, D)
    virial = -(geom.D.T @ dEdD)
    xf = x0.reshape(-1).clone().requires_grad_(True)
    (g,) = torch.autograd.grad(energy_of_x(xf), xf)
    H = torch.autograd.functional.hessian(energy_of_x, x0.reshape(-1), vectorize=True)
    return float(E.detach()), -g.view(n, 3).numpy(), virial.numpy(), H.numpy()


def _rel(a, b):
    return float(np.abs(np.asarray(a) - np.asarray(b)).max() / max(np.abs(np.asarray(b)).max(), 1e-300))


def _plain_sites(basis, atoms, cutoff):
    """(geometry, x0 (n·3,) torch, site_A(x) → A (n, n_A)): the projections of the plain
    formula as a torch function of the flat positions (the lattice shifts of the pairs
    kept; in 2D the z-components masked), for autograd references."""
    geom = engine.geometry(atoms, cutoff)
    n = geom.n
    i, j = torch.tensor(geom.i), torch.tensor(geom.j)
    x0 = torch.tensor(atoms.positions, dtype=torch.float64)
    shift = geom.D - (x0[j] - x0[i])
    mask = torch.tensor([1.0, 1.0, 0.0 if basis.spec.dim == 2 else 1.0], dtype=torch.float64)

    def site_A(xf):
        x = xf.view(n, 3) * mask
        return torch.zeros(n, basis.n_A, dtype=torch.float64).index_add(0, i, basis.phi(x[j] - x[i] + shift))

    return geom, x0.reshape(-1), site_A


@pytest.mark.parametrize("name", SPECS)
@given(seed=st.integers(0, 10_000))
@SETTINGS
def test_compiled_model_matches_the_autograd_reference(name, seed):
    """Energy, forces, virial, sparse Hessian and Hessian-vector products of the compiled
    kernels = the autograd reference, to 1e-12 relative."""
    spec = SPECS[name]
    m = _model(spec, seed % 7)
    at = _cell(spec, seed)
    E, F, W, H = _reference(m, at)
    r = m.predict(at)
    assert r["energy"] == pytest.approx(E, rel=1e-12)
    assert _rel(r["forces"], F) < 1e-12
    assert _rel(r["virial"], W) < 1e-12
    Hm = m.hessian(at).toarray()
    assert _rel(Hm, H) < 1e-12
    e2, f2, op = m.energy_forces(at, linearise=True)
    assert e2 == pytest.approx(E, rel=1e-12) and _rel(f2, F) < 1e-12
    V = np.random.default_rng(seed).normal(size=(3 * len(at), 2))
    assert _rel(op @ V[:, 0], H @ V[:, 0]) < 1e-12
    assert _rel(op.matmat(V), H @ V) < 1e-12
    rows = [0, len(at) - 1]
    r3 = (3 * np.array(rows)[:, None] + np.arange(3)).ravel()
    assert _rel(m.hessian_rows(at, rows), H[r3]) < 1e-12


@pytest.mark.parametrize("name", ["3d-bo4", "2d-bo4"])
def test_hessian_vector_product_matches_finite_differences_of_forces(name):
    """H v = −(F(x + h v) − F(x − h v)) / 2h to the truncation error of the difference."""
    spec = SPECS[name]
    m = _model(spec, 3)
    at = _cell(spec, 11)
    v = np.random.default_rng(5).normal(size=(len(at), 3))
    if spec.dim == 2:
        v[:, 2] = 0.0
    op = m.linearise(at)
    h = 1e-5
    fs = []
    for s in (1.0, -1.0):
        w = at.copy()
        w.positions = at.positions + s * h * v
        fs.append(m.predict(w)["forces"])
    fd = -(fs[0] - fs[1]) / (2 * h)
    assert _rel(op @ v.ravel(), fd.ravel()) < 1e-7


def test_neighbour_cache_gives_the_pairs_of_a_fresh_search():
    """The Verlet-skin cache reuses its list for small moves and rebuilds for large ones;
    either way it holds exactly the pairs (and pair vectors) within the cutoff."""
    cutoff = 4.2
    cache = engine.GeometryCache(cutoff)
    at = perfect_cell("bcc", A_W, 3, "W")
    rng = np.random.default_rng(0)

    def pairs(g):
        key = np.round(np.c_[g.i, g.j, g.Dn], 9)
        return key[np.lexsort(key.T[::-1])]

    for scale in (0.0, 0.02, 0.02, 0.5, 0.01):
        moved = at.copy()
        moved.positions += rng.normal(scale=scale, size=at.positions.shape)
        got, want = cache(moved), engine.geometry(moved, cutoff)
        assert got.P == want.P and np.array_equal(pairs(got), pairs(want))
        assert np.array_equal(got.start, want.start)


class _OnlyObserve:
    """A potential seen through ``observe`` alone: the finite-difference route."""

    def __init__(self, potential):
        self.potential = potential

    def observe(self, atoms):
        return self.potential.observe(atoms)


def _elastic_cases():
    from genanalysis.potentials import load_potential

    W, morse = load_potential("builtin:W"), load_potential("builtin:morse")
    lin3, lin2 = _model(SPECS["3d-bo4"], 1), _model(SPECS["2d-bo4"], 2)
    # lattice constants off the potentials' equilibria: the stress term −tr(E_b) σ counts
    return {
        "eam-bcc": (W, perfect_cell("bcc", 3.12, 2, "W")),
        "eam-fcc": (W, perfect_cell("fcc", 4.0, 2, "W")),
        "pair-triangular": (morse, perfect_cell("triangular", 1.05, 3, "X")),
        "linear-bcc": (lin3, perfect_cell("bcc", 3.05, 2, "W")),
        "linear-triangular": (lin2, perfect_cell("triangular", 2.7, 3, "W")),
    }


@pytest.mark.parametrize("case", ["eam-bcc", "eam-fcc", "pair-triangular", "linear-bcc", "linear-triangular"])
def test_analytic_elastic_constants_match_finite_differences(case):
    """Born-term elastic constants (EAM engine, pair potentials, the linear model) =
    central differences of the virial, to 1e-6 relative, in 3D and 2D."""
    from genanalysis.experiment import elastic_constants
    from genanalysis.models.calculator import ModelPotential

    pot, cell = _elastic_cases()[case]
    if isinstance(pot, LinearACE):
        pot = ModelPotential(pot)
    C = elastic_constants(pot, cell)
    fd = elastic_constants(_OnlyObserve(pot), cell, step=1e-4)
    assert C.shape == fd.shape == ((6, 6) if cell.info["dim"] == 3 else (3, 3))
    assert np.abs(C - fd).max() <= 1e-6 * np.abs(fd).max()


@pytest.mark.parametrize("name", SPECS)
def test_factored_basis_equals_the_full_basis(name):
    """φ_{n,a} = R_n S̃_a and ∇φ_{n,a} = R_n' S̃_a û + R_n V_a (kernels.pair_factors, what
    the Hessian operator holds) = φ, ∇φ of kernels.pair_phi_derivatives, to 1e-12."""
    from genanalysis.models import kernels

    spec = SPECS[name]
    m = _model(spec, 0)
    geom = engine.geometry(_cell(spec, 4), m.cutoff)
    tabs = kernels.tables(m.basis)
    phi, J, _ = kernels.pair_phi_derivatives(geom.Dn, 1, *tabs)
    R, FS, U = kernels.pair_factors(geom.Dn, *tabs)
    n_rad, Dm, nc = m.basis.n_rad, m.basis.n_mb, m.basis.n_comp
    a = np.r_[np.tile(np.arange(nc), Dm), np.zeros(n_rad - Dm, int)]
    n = np.r_[np.repeat(np.arange(Dm), nc), np.arange(Dm, n_rad)]
    assert phi.shape[1] == len(n)
    Rn, dRn, St, V = R[n].T, R[n_rad + n].T, FS[0, a].T, FS[1:, a].transpose(2, 1, 0)  # (P, n_A[, 3])
    phi_f = Rn * St
    J_f = (dRn * St)[..., None] * U.T[:, None, :] + Rn[..., None] * V
    assert _rel(phi_f, phi) < 1e-12
    assert _rel(J_f, J) < 1e-12


@pytest.mark.parametrize("name", SPECS)
def test_design_rows_match_autograd_of_every_feature(name):
    """E, F, V design rows of kernels.design_efv = Σ_i B_k, −∂/∂x Σ_i B_k and
    −Σ_p D_p ⊗ ∂(Σ_i B_k)/∂D_p by torch autograd of the plain formula, to 1e-12 relative,
    and so is its per-pair Jacobian of the features."""
    spec = SPECS[name]
    m = _model(spec, 0)
    at = _cell(spec, 9)
    b = m.basis
    geom, x0, site_A = _plain_sites(b, at, m.cutoff)
    n, i = geom.n, torch.tensor(geom.i)

    def features_of_D(D):
        return b.features(torch.zeros(n, b.n_A, dtype=torch.float64).index_add(0, i, b.phi(D))).sum(0)

    def features_of_x(xf):
        return b.features(site_A(xf)).sum(0)

    dBdx = torch.autograd.functional.jacobian(features_of_x, x0).numpy()  # (K, 3n)
    dBdD = torch.autograd.functional.jacobian(features_of_D, geom.D.clone()).numpy()  # (K, P, 3)
    d = m.design(at, "EFV")
    assert _rel(d["E"][1:], features_of_D(geom.D).numpy()) < 1e-12 and d["E"][0] == n
    assert _rel(d["F"][..., 1:], -dBdx.T.reshape(n, 3, -1)) < 1e-12
    assert _rel(d["V"][..., 1:], -np.einsum("pa,kpb->abk", geom.Dn, dBdD)) < 1e-12
    assert not d["F"][..., 0].any() and not d["V"][..., 0].any()
    # the same pass's per-pair Jacobian ∂B_{i(p),k}/∂D_p (what the network's training holds)
    from genanalysis.models.linear import feature_pair_jacobian

    assert _rel(feature_pair_jacobian(b, geom).numpy(), dBdD.transpose(1, 2, 0)) < 1e-12


@pytest.mark.parametrize("name", SPECS)
def test_force_constant_design_rows_match_autograd_and_finite_differences(name):
    """H design rows of kernels.design_hessian = ∂²(Σ_i B_k)/∂x∂x by torch autograd of the
    plain formula (two random combinations of the features) to 1e-12 relative, a subset of
    rows = those rows of all, and = −∂F_k/∂x by
    central differences of the compiled force rows to 1e-6 relative; the model's own rows
    (one output, the site polynomial) are those of its sparse Hessian."""
    spec = SPECS[name]
    m = _model(spec, 0)
    at = _cell(spec, 11)
    b = m.basis
    geom, x0, site_A = _plain_sites(b, at, m.cutoff)
    n = geom.n

    def features_of_x(xf):
        return b.features(site_A(xf)).sum(0)

    # every feature through two random combinations of them (one Hessian each)
    V = np.random.default_rng(5).normal(size=(b.K, 2))
    ref = np.stack([torch.autograd.functional.hessian(lambda xf: features_of_x(xf) @ torch.tensor(v),
                                                      x0, vectorize=True).numpy() for v in V.T], axis=-1)
    d = m.design(at, "H")["H"]
    assert d.shape == (3 * n, 3 * n, 1 + b.K) and not d[..., 0].any()
    assert _rel(d[..., 1:] @ V, ref) < 1e-12
    rows = np.array([n - 1, 0, 2])
    r3 = (3 * rows[:, None] + np.arange(3)).reshape(-1)
    assert _rel(m.design(at, "H", hessian_rows=rows)["H"], d[r3]) < 1e-15
    # finite differences of the force rows: H[:, 3b + e] = −∂F/∂x_{b,e}
    h = 1e-5
    for b_, e in [(0, 0), (n // 2, 1)] + ([] if spec.dim == 2 else [(n - 1, 2)]):
        fd = []
        for s in (1, -1):
            a2 = at.copy()
            a2.positions[b_, e] += s * h
            fd.append(m.design(a2, "F")["F"].reshape(3 * n, -1))
        col = -(fd[0] - fd[1]) / (2 * h)
        assert np.abs(d[:, 3 * b_ + e] - col).max() <= 1e-6 * np.abs(d).max()
    H = m.hessian(at).toarray()
    assert _rel(m.hessian_rows(at, rows), H[r3]) < 1e-12


def test_streamed_force_constant_rows_give_the_same_fit(monkeypatch):
    """A defect cell's force-constant rows streamed in pieces of two row atoms (no whole
    design block) give the fit of the unstreamed rows, to 1e-10 relative."""
    from genanalysis import fit as fitmod
    from genanalysis.data import Configuration
    from genanalysis.fit import LossWeights, ModelSpec
    from genanalysis.potentials import load_potential

    pot = load_potential("builtin:W")
    rng = np.random.default_rng(3)
    confs = []
    for s in range(3):
        at = defect_cell("bcc", A_W, 2, "vacancy", "W")
        at.positions += rng.normal(scale=0.05, size=at.positions.shape)
        ob = pot.observe(at)
        confs.append(Configuration(atoms=at, group="vacancy", energy=ob.energy, forces=ob.forces,
                                   virial=ob.virial, hessian=pot.hessian(at)))
    mspec = ModelSpec(cutoff=4.0, degree=4, body_order=3, l_max=1, r_in=2.0)
    loss = LossWeights(E=1.0, F=1.0, V=1.0, H=0.1)
    m1, d1 = fitmod.fit_linear(confs, mspec, loss)
    monkeypatch.setattr(fitmod, "hessian_chunk_atoms", lambda n, p: 2)
    m2, d2 = fitmod.fit_linear(confs, mspec, loss)
    assert d1["n_rows"] == d2["n_rows"] and d1["rows_per_type"] == d2["rows_per_type"]
    assert _rel(m2.coef_, m1.coef_) < 1e-10
    assert abs(d2["weighted_residual_norm"] - d1["weighted_residual_norm"]) <= 1e-10 * d1["weighted_residual_norm"]


@pytest.mark.parametrize("name", ["3d-bo3", "3d-bo4", "2d-bo4"])
def test_network_runs_on_the_compiled_features_and_products(name):
    """The network model's energy, forces and matrix-free Hessian products (compiled A, B,
    chain through ∂B/∂A and ∂²B/∂A², pair factors; torch for the network only) = torch
    autograd of the plain formula ε = N((B(Σ φ) − μ)/σ) to 1e-12 relative; its products =
    central differences of its forces to 1e-6."""
    from genanalysis.models.calculator import ModelPotential
    from genanalysis.models.mlp import MLPACE

    spec = SPECS[name]
    m = MLPACE(spec, hidden=(6, 5), seed=1)
    with torch.no_grad():
        m.net[-1].weight.mul_(100.0)
    m.mu = torch.linspace(0.0, 0.5, m.basis.K, dtype=torch.float64)
    m.sigma = torch.full((m.basis.K,), 2.0, dtype=torch.float64)
    at = _cell(spec, 13)
    geom, x0, site_A = _plain_sites(m.basis, at, m.cutoff)
    n = geom.n
    mask = np.array([1.0, 1.0, 0.0 if spec.dim == 2 else 1.0])

    def energy_of_x(xf):
        return m.site_energy(m.basis.features(site_A(xf))).sum()

    xf = x0.clone().requires_grad_(True)
    E_t = energy_of_x(xf)
    (g,) = torch.autograd.grad(E_t, xf)
    E = float(E_t.detach())
    H = torch.autograd.functional.hessian(energy_of_x, x0, vectorize=True).numpy()
    r = m.predict(at)
    assert abs(r["energy"] - E) <= 1e-12 * abs(E)
    assert _rel(r["forces"], -g.view(n, 3).numpy()) < 1e-12
    X = np.random.default_rng(2).normal(size=(3 * n, 2)) * mask[np.arange(3 * n) % 3, None]
    e2, F2, op = ModelPotential(m).energy_forces(at, linearise=True)
    assert _rel(F2, r["forces"]) < 1e-15 and e2 == r["energy"]
    assert _rel(op @ X, H @ X) < 1e-12
    assert _rel(m.linearise(at) @ X, H @ X) < 1e-12
    h, v = 1e-5, X[:, 0].reshape(n, 3)
    fp, fm = at.copy(), at.copy()
    fp.positions += h * v
    fm.positions -= h * v
    fd = -(m.predict(fp)["forces"] - m.predict(fm)["forces"]).ravel() / (2 * h)
    assert np.abs(op @ X[:, 0] - fd).max() <= 1e-6 * np.abs(fd).max()
