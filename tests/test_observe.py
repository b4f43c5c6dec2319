"""observe.py and the ASE-calculator wrapper: each observation held against finite
differences of the level below, for built-in potentials and for plain ASE calculators
(with and without an analytic Hessian)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import scipy.sparse as sp
from ase.calculators.emt import EMT
from hypothesis import given, settings, strategies as st

from genanalysis import observe as obs
from genanalysis.exceptions import InputError
from genanalysis.lattice import defect_cell, perfect_cell
from genanalysis.potentials import load_potential
from genanalysis.potentials.wrapper import ASECalculatorPotential
from genanalysis.testing import strategies as gst

W = load_potential("builtin:W")
A_W = W.equilibrium_lattice_constant("bcc")


def w_cell(seed, n=2):
    at = defect_cell("bcc", A_W, n, "vacancy", "W")
    at.positions += np.random.default_rng(seed).normal(scale=0.04, size=at.positions.shape)
    return at


def cu_cell(seed):
    at = perfect_cell("fcc", 3.6, 1, "Cu")
    at.positions += np.random.default_rng(seed).normal(scale=0.04, size=at.positions.shape)
    return at


def test_load_potential_shares_builtins():
    assert load_potential("builtin:W") is W


@pytest.mark.parametrize("spec", ["builtin:W", W, W.calculator()])
def test_observe_accepts_spec_potential_or_calculator(spec):
    at = w_cell(0)
    ev = W.observe(at)
    out = obs.observe(at, spec, "EFVH")
    assert set(out) == {"energy", "forces", "virial", "hessian"}
    assert out["energy"] == pytest.approx(ev.energy, rel=1e-14)
    assert np.allclose(out["forces"], ev.forces, atol=1e-12)
    assert np.allclose(out["virial"], ev.virial, atol=1e-10)
    assert abs(out["hessian"] - W.hessian(at)).max() < 1e-10
    assert obs.energy(at, spec) == pytest.approx(ev.energy, rel=1e-14)
    assert np.allclose(obs.forces(at, spec), ev.forces, atol=1e-12)
    assert np.allclose(obs.virial(at, spec), ev.virial, atol=1e-10)


def test_observe_kinds_validated():
    at = w_cell(0)
    assert set(obs.observe(at, W, "EV")) == {"energy", "virial"}
    with pytest.raises(InputError, match="'EQ'.*EFVH"):
        obs.observe(at, W, "EQ")
    with pytest.raises(InputError, match="EFVH"):
        obs.observe(at, W, "")


@settings(max_examples=5, deadline=None)
@given(gst.configurations("bcc", A_W, symbol="W", max_size=1, max_strain=0.02, max_rattle=0.06))
def test_force_constants_fd_matches_analytic(at):
    """Central differences of the forces = the analytic Hessian, on strained and rattled cells."""
    H = obs.force_constants(at, W)
    H_fd = obs.force_constants(at, W, fd_step=1e-4)
    assert abs(H - H_fd).max() <= 1e-6 * abs(H).max()


def test_fd_step_validated():
    with pytest.raises(InputError, match=r"fd_step=0.5.*\(0, 0.1\]"):
        obs.force_constants(perfect_cell("bcc", A_W, 1, "W"), W, fd_step=0.5)


CU_CELLS = st.builds(gst.rattled, gst.supercells("fcc", 3.6, symbol="Cu", sizes=(1, 1)),
                     st.floats(0.0, 0.06), st.integers(0, 2**31 - 1))


@settings(max_examples=4, deadline=None)
@given(at=CU_CELLS, v=gst.displacements(4), B=gst.strains(3, max_strain=1.0).filter(lambda b: np.abs(b).max() > 1e-2),
       u=gst.displacements(4))
def test_wrapped_calculator_without_hessian(at, v, B, u):
    """EMT has no get_hessian: force constants by central differences, which must be
    symmetric, obey the acoustic sum rule and match the FD matrix-free products; forces are
    −∇E along any direction v, the virial −∂E/∂ε along any symmetric strain B."""
    pot = load_potential(EMT())
    assert isinstance(pot, ASECalculatorPotential) and not pot.has_analytic_hessian
    ev = pot.observe(at)
    assert ev.site_energies.sum() == pytest.approx(ev.energy, rel=1e-12)
    # forces = −∇E along the direction v
    v = v / np.linalg.norm(v)
    h = 1e-4
    ep, em = at.copy(), at.copy()
    ep.positions += h * v
    em.positions -= h * v
    fd = (obs.energy(ep, pot) - obs.energy(em, pot)) / (2 * h)
    assert fd == pytest.approx(-np.sum(ev.forces * v), abs=1e-7)
    # virial = −∂E/∂ε
    es = []
    for t in (h, -h):
        s = at.copy()
        s.set_cell(at.cell @ (np.eye(3) + t * B), scale_atoms=True)
        es.append(obs.energy(s, pot))
    # EMT's own stress matches its energy to ~1e-4 relative; a sign or volume error is O(1)
    # (relative to the virial's scale: the contraction with B can be small by cancellation)
    scale = np.abs(ev.virial).max() * np.abs(B).sum()
    assert -np.sum(ev.virial * B) == pytest.approx((es[0] - es[1]) / (2 * h), abs=1e-3 * scale)
    H = obs.force_constants(at, pot)
    assert isinstance(H, sp.csr_array)
    assert abs(H - H.T).max() < 1e-12
    t = np.tile(np.eye(3), (len(at), 1))
    assert np.abs(H @ t).max() < 1e-5 * abs(H).max()
    u = u.ravel()
    assert np.allclose(pot.linearise(at) @ u, H @ u, atol=1e-5 * abs(H).max() * np.abs(u).max())


def test_wrapped_calculator_with_hessian_uses_it():
    from matscipy.calculators.eam import EAM  # noqa: F401 - matscipy calculators carry get_hessian

    calc = W.calculator()  # has get_hessian
    pot = load_potential(calc)
    assert pot.has_analytic_hessian
    at = w_cell(3)
    assert abs(pot.hessian(at) - W.hessian(at)).max() < 1e-10
    u = np.random.default_rng(0).normal(size=3 * len(at))
    assert np.allclose(pot.linearise(at) @ u, W.linearise(at) @ u, atol=1e-9)


def test_finite_differences_can_be_refused():
    pot = ASECalculatorPotential(EMT(), allow_fd=False)
    with pytest.raises(InputError, match="finite differences are disabled"):
        pot.hessian(cu_cell(0))
    with pytest.raises(InputError, match="finite differences are disabled"):
        obs.force_constants(cu_cell(0), pot)


def test_python_spec(tmp_path, monkeypatch):
    (tmp_path / "my_calcs.py").write_text(
        "from ase.calculators.emt import EMT\n"
        "def make():\n    return EMT()\n"
        "def not_a_calc():\n    return 3\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("my_calcs", None)
    pot = load_potential("python:my_calcs:make")
    at = cu_cell(1)
    ref = at.copy()
    ref.calc = EMT()
    assert pot.observe(at).energy == pytest.approx(ref.get_potential_energy(), rel=1e-14)
    with pytest.raises(InputError, match="not_a_calc.*int.*not an ASE calculator"):
        load_potential("python:my_calcs:not_a_calc")
    with pytest.raises(InputError, match="no callable 'nope'"):
        load_potential("python:my_calcs:nope")
    with pytest.raises(InputError, match="cannot import module 'no_such_module_xyz'"):
        load_potential("python:no_such_module_xyz:make")
    with pytest.raises(InputError, match="python:MODULE:CALLABLE"):
        load_potential("python:my_calcs")


def test_two_dimensional_virial_in_plane():
    """Triangular lattice (pbc z False): forces and virial have no z components, and the
    in-plane virial is the in-plane strain derivative."""
    pot = load_potential("builtin:morse")
    a = pot.equilibrium_lattice_constant("triangular")
    at = perfect_cell("triangular", a * 1.01, 4)
    at.positions[:, :2] += np.random.default_rng(2).normal(scale=0.03, size=(len(at), 2))
    out = obs.observe(at, pot, "EFV")
    assert np.all(out["forces"][:, 2] == 0)
    assert np.all(out["virial"][2] == 0) and np.all(out["virial"][:, 2] == 0)
    h = 1e-6
    B = np.array([[0.3, 0.2, 0], [0.2, -0.5, 0], [0, 0, 0]])
    es = []
    for t in (h, -h):
        s = at.copy()
        s.set_cell(at.cell @ (np.eye(3) + t * B), scale_atoms=True)
        es.append(obs.energy(s, pot))
    assert -np.sum(out["virial"] * B) == pytest.approx((es[0] - es[1]) / (2 * h), rel=1e-6)
