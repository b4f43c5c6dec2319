"""Built-in potentials and the EAM/pair engine: invariants and derivatives held against
finite differences of the level below (energy -> forces -> force constants; energy ->
virial), small periodic cells against large ones, and matscipy's pair calculators."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import assume, given, settings, strategies as st

from genanalysis.exceptions import InputError
from genanalysis.lattice import defect_cell, perfect_cell
from genanalysis.potentials import Potential, load_potential
from genanalysis.potentials.builtin import lennard_jones, morse, tungsten_zhou
from genanalysis.potentials.eam import PairPotential
from genanalysis.testing.properties import fourth_order_difference

W = tungsten_zhou()
MORSE = morse()
LJ = lennard_jones()
A_W = W.equilibrium_lattice_constant("bcc")
A_MORSE = MORSE.equilibrium_lattice_constant("triangular")
A_LJ = LJ.equilibrium_lattice_constant("fcc")

FAST = settings(max_examples=8, deadline=None)


def config(kind: str, seed: int, amplitude: float = 0.08):
    """A rattled small cell: ``W`` (bcc vacancy, n=2), ``morse`` (triangular, n=4, 2D) or
    ``lj`` (fcc, n=2); returns (potential, atoms)."""
    rng = np.random.default_rng(seed)
    if kind == "W":
        pot, atoms = W, defect_cell("bcc", A_W, 2, "vacancy", "W")
    elif kind == "morse":
        pot, atoms = MORSE, perfect_cell("triangular", A_MORSE, 4)
    else:
        pot, atoms = LJ, perfect_cell("fcc", A_LJ, 2)
    scale = amplitude * (A_W if kind == "W" else 1.0) / 3.0
    dx = rng.normal(scale=scale, size=(len(atoms), 3))
    if kind == "morse":
        dx[:, 2] = 0.0
    atoms.positions += dx
    return pot, atoms


def smooth_derivative(e, h: float, tol: float) -> float:
    """d e(t)/dt at t = 0 by the fourth-order central difference of genanalysis.testing
    (truncation O(h⁴), round-off ~1e-16·|e|/h). The W embedding function F(ρ) is piecewise and
    its pieces do not join exactly C¹ at ρ_n = 0.85 ρ_e (an atom crossing it put a slope jump
    into a strain stencil), so a stencil that straddles it measures the kink, not the
    derivative: when the steps h and h/2 disagree by more than ``tol`` the draw is discarded.
    A wrong analytic derivative still fails, since both steps then agree with each other and
    not with it."""
    d1, d2 = fourth_order_difference(e, h), fourth_order_difference(e, h / 2)
    assume(abs(d1 - d2) <= tol)
    return d2


KINDS = st.sampled_from(["W", "morse", "lj"])
SEEDS = st.integers(0, 2**31 - 1)


def _energy(pot, atoms, x):
    at = atoms.copy()
    at.positions = x.reshape(-1, 3)
    return pot.observe(at).energy


def _forces(pot, atoms, x):
    at = atoms.copy()
    at.positions = x.reshape(-1, 3)
    return pot.observe(at).forces.ravel()


@FAST
@given(KINDS, SEEDS)
def test_forces_are_minus_energy_gradient(kind, seed):
    pot, atoms = config(kind, seed)
    rng = np.random.default_rng(seed + 1)
    v = rng.normal(size=3 * len(atoms))
    if kind == "morse":
        v.reshape(-1, 3)[:, 2] = 0
    v /= np.linalg.norm(v)
    x, h = atoms.positions.ravel(), 1e-4

    def e(t):
        return _energy(pot, atoms, x + t * v)

    # fourth order: a second-order difference leaves h²/6·E''' ≈ 1e-6 eV/Å on stiff draws
    f = pot.observe(atoms).forces.ravel()
    tol = 1e-7 * max(1.0, np.abs(f).max())
    fd = smooth_derivative(e, h, tol / 4)
    assert fd == pytest.approx(-f @ v, abs=tol)


@FAST
@given(KINDS, SEEDS)
def test_virial_is_minus_strain_derivative(kind, seed):
    pot, atoms = config(kind, seed)
    rng = np.random.default_rng(seed + 2)
    B = rng.normal(size=(3, 3))
    B = 0.5 * (B + B.T)
    if kind == "morse":  # 2D: in-plane strain only
        B[2, :] = B[:, 2] = 0
    h = 1e-4

    def e_strained(t):
        at = atoms.copy()
        at.set_cell(atoms.cell @ (np.eye(3) + t * B), scale_atoms=True)
        return pot.observe(at).energy

    virial = pot.observe(atoms).virial
    tol = 1e-6 * max(1.0, np.abs(virial).max())
    fd = smooth_derivative(e_strained, h, tol / 4)
    assert np.allclose(virial, virial.T, atol=1e-12)
    assert -np.sum(virial * B) == pytest.approx(fd, abs=tol)


@FAST
@given(KINDS, SEEDS)
def test_hessian_is_force_derivative_symmetric_and_sum_rule(kind, seed):
    pot, atoms = config(kind, seed)
    H = pot.hessian(atoms)
    n = len(atoms)
    assert isinstance(H, sp.csr_array) and H.shape == (3 * n, 3 * n) and H.dtype == np.float64
    scale = abs(H).max()
    assert abs(H - H.T).max() <= 1e-12 * scale
    for c in range(3):  # rigid translation along c: no restoring force
        t = np.zeros((n, 3))
        t[:, c] = 1.0
        assert np.abs(H @ t.ravel()).max() <= 1e-10 * scale
    rng = np.random.default_rng(seed + 3)
    v = rng.normal(size=3 * n)
    v /= np.linalg.norm(v)
    x, h = atoms.positions.ravel(), 1e-4
    fd = -(_forces(pot, atoms, x + h * v) - _forces(pot, atoms, x - h * v)) / (2 * h)
    assert np.abs(H @ v - fd).max() <= 1e-6 * scale


@FAST
@given(KINDS, SEEDS)
def test_linearise_matches_hessian(kind, seed):
    pot, atoms = config(kind, seed)
    H = pot.hessian(atoms)
    op = pot.linearise(atoms)
    v = np.random.default_rng(seed).normal(size=3 * len(atoms))
    assert op.shape == H.shape
    assert np.allclose(op @ v, H @ v, rtol=0, atol=1e-11 * abs(H).max() * np.abs(v).max())


@FAST
@given(KINDS, SEEDS, st.floats(-np.pi, np.pi), st.floats(-np.pi, np.pi))
def test_invariance_translation_rotation_permutation(kind, seed, theta, psi):
    pot, atoms = config(kind, seed)
    ev = pot.observe(atoms)
    rng = np.random.default_rng(seed)
    # translation
    at = atoms.copy()
    shift = rng.normal(size=3)
    if kind == "morse":
        shift[2] = 0
    at.positions += shift
    assert pot.observe(at).energy == pytest.approx(ev.energy, abs=1e-10 * abs(ev.energy))
    # rotation of cell and positions together (in-plane for the 2D lattice)
    if kind == "morse":
        Q = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    else:
        a1 = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
        a2 = np.array([[1, 0, 0], [0, np.cos(psi), -np.sin(psi)], [0, np.sin(psi), np.cos(psi)]])
        Q = a1 @ a2
    at = atoms.copy()
    at.set_cell(atoms.cell @ Q.T, scale_atoms=False)
    at.positions = atoms.positions @ Q.T
    er = pot.observe(at)
    assert er.energy == pytest.approx(ev.energy, abs=1e-10 * abs(ev.energy))
    assert np.allclose(er.forces, ev.forces @ Q.T, atol=1e-9)
    assert np.allclose(er.virial, Q @ ev.virial @ Q.T, atol=1e-9)
    # permutation
    perm = rng.permutation(len(atoms))
    at = atoms[perm]
    ep = pot.observe(at)
    assert ep.energy == pytest.approx(ev.energy, abs=1e-10 * abs(ev.energy))
    assert np.allclose(ep.forces, ev.forces[perm], atol=1e-10)
    assert np.allclose(ep.site_energies, ev.site_energies[perm], atol=1e-10)


@FAST
@given(KINDS, SEEDS)
def test_site_energies_sum_to_energy(kind, seed):
    pot, atoms = config(kind, seed)
    ev = pot.observe(atoms)
    assert ev.site_energies.shape == (len(atoms),)
    assert ev.site_energies.sum() == pytest.approx(ev.energy, rel=1e-13)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_small_bcc_cells_agree_with_large(n):
    """Cells smaller than the cutoff (several images of one atom, even of the atom itself,
    in one neighbourhood) give the same energy per atom as a large cell."""
    big = perfect_cell("bcc", A_W, 6, "W")
    e_big = W.observe(big).energy / len(big)
    small = perfect_cell("bcc", A_W, n, "W")
    assert W.observe(small).energy / len(small) == pytest.approx(e_big, abs=1e-12)


@FAST
@given(KINDS, SEEDS, st.integers(2, 3))
def test_replicated_cell_is_extensive(kind, seed, k):
    """A rattled small periodic cell and its k-fold replica: energy × k^d, forces tiled,
    Hessian-vector products of tiled vectors tiled."""
    pot, atoms = config(kind, seed)
    if kind == "W":  # the 1-cell (2 atoms), whose neighbourhoods hold many self images
        atoms = perfect_cell("bcc", A_W, 1, "W")
        atoms.positions += np.random.default_rng(seed).normal(scale=0.05, size=(2, 3))
    reps = (k, k, 1) if kind == "morse" else (k, k, k)
    big = atoms.repeat(reps)
    m = int(np.prod(reps))
    e, eb = pot.observe(atoms), pot.observe(big)
    assert eb.energy == pytest.approx(m * e.energy, rel=1e-12)
    assert np.allclose(eb.forces, np.tile(e.forces, (m, 1)), atol=1e-10)
    assert np.allclose(eb.virial, m * e.virial, atol=1e-9)
    v = np.random.default_rng(seed).normal(size=(len(atoms), 3))
    hv = pot.linearise(atoms) @ v.ravel()
    hvb = pot.linearise(big) @ np.tile(v, (m, 1)).ravel()
    assert np.allclose(hvb, np.tile(hv, m), atol=1e-9)


def test_perfect_lattices_are_in_equilibrium():
    for pot, lattice, a, symbol in [(W, "bcc", A_W, "W"), (MORSE, "triangular", A_MORSE, "X"), (LJ, "fcc", A_LJ, "X")]:
        at = perfect_cell(lattice, a, 3, symbol)
        ev = pot.observe(at)
        assert np.abs(ev.forces).max() < 1e-10
        assert np.abs(ev.virial).max() < 1e-8 * len(at)
        # and a is a minimum of the energy per atom
        e = [pot.observe(perfect_cell(lattice, a * s, 3, symbol)).energy for s in (0.995, 1.0, 1.005)]
        assert e[1] < e[0] and e[1] < e[2]


def test_builtin_w_lattice_constant_and_cohesive_energy():
    # Zhou et al. fit W to a = 3.165 Å; the tabulated LAMMPS file gives -8.76 eV/atom
    assert A_W == pytest.approx(3.165, abs=2e-3)
    at = perfect_cell("bcc", A_W, 2, "W")
    assert W.observe(at).energy / len(at) == pytest.approx(-8.760, abs=1e-3)


def test_calculator_speaks_ase():
    from ase.calculators.calculator import Calculator

    pot, atoms = config("W", 7)
    calc = W.calculator()
    assert isinstance(calc, Calculator)
    atoms.calc = calc
    ev = W.observe(atoms)
    assert atoms.get_potential_energy() == pytest.approx(ev.energy)
    assert np.allclose(atoms.get_forces(), ev.forces)
    assert np.allclose(atoms.get_potential_energies(), ev.site_energies)
    stress = atoms.get_stress(voigt=False)
    assert np.allclose(stress * atoms.get_volume(), -ev.virial)
    from ase.calculators.fd import calculate_numerical_stress

    numerical = calculate_numerical_stress(atoms, eps=1e-5, voigt=False)
    assert np.allclose(numerical, stress, atol=1e-7)
    H = calc.get_hessian(atoms)
    Hd = calc.get_hessian(atoms, format="dense")
    assert isinstance(Hd, np.ndarray) and np.allclose(H.toarray(), Hd)


def test_neighbour_list_reused_within_half_skin():
    pot = tungsten_zhou()
    atoms = perfect_cell("bcc", A_W, 3, "W")
    pot.observe(atoms)
    builds = pot._neighbours.builds
    rng = np.random.default_rng(0)
    small = atoms.copy()
    small.positions += rng.uniform(-1, 1, size=(len(atoms), 3)) * 0.2 * pot.skin
    e_reused = pot.observe(small)
    assert pot._neighbours.builds == builds
    e_fresh = tungsten_zhou().observe(small)
    assert e_reused.energy == pytest.approx(e_fresh.energy, abs=1e-12)
    assert np.allclose(e_reused.forces, e_fresh.forces, atol=1e-13)
    big = atoms.copy()
    big.positions[0] += [0.6 * pot.skin, 0, 0]
    pot.observe(big)
    assert pot._neighbours.builds == builds + 1


def test_species_checked():
    with pytest.raises(InputError, match="Cu"):
        W.observe(perfect_cell("bcc", A_W, 1, "Cu"))
    assert W.observe(perfect_cell("bcc", A_W, 1, "X")).energy < 0


def test_load_potential_builtins_and_errors():
    assert load_potential("builtin:W").name == "builtin:W"
    assert isinstance(load_potential("builtin:morse"), Potential)
    assert load_potential(W) is W
    with pytest.raises(InputError, match=r"builtin:nope.*builtin:W"):
        load_potential("builtin:nope")
    with pytest.raises(InputError, match="42"):
        load_potential(42)


class _MatscipyFunction:
    """A matscipy pair interaction as an engine function ``fn(r, order)``."""

    def __init__(self, interaction):
        self.fn = interaction

    def __call__(self, r, order=0):
        inside = r < self.fn.cutoff
        vals = [self.fn(r), self.fn.first_derivative(r), self.fn.second_derivative(r)][: order + 1]
        return tuple(np.where(inside, v, 0.0) for v in vals)


def test_pair_engine_matches_matscipy():
    from matscipy.calculators.pair_potential import LennardJonesQuadratic
    from matscipy.calculators.pair_potential import PairPotential as MSPair

    lj = LennardJonesQuadratic(1.0, 1.0, 2.5)
    ours = PairPotential(name="lj-quadratic", phi=_MatscipyFunction(lj), cutoff=2.5, element="Ar")
    atoms = perfect_cell("fcc", A_LJ, 3, "Ar")
    atoms.positions += np.random.default_rng(1).normal(scale=0.03, size=(len(atoms), 3))
    ev = ours.observe(atoms)
    ref = atoms.copy()
    ref.calc = MSPair({(18, 18): lj}, cutoff=2.5)
    assert ev.energy == pytest.approx(ref.get_potential_energy(), rel=1e-12)
    assert np.allclose(ev.forces, ref.get_forces(), atol=1e-10)
    assert np.allclose(-ev.virial / atoms.get_volume(), ref.get_stress(voigt=False), atol=1e-10)
    H_ref = ref.calc.get_hessian(ref)
    assert abs(ours.hessian(atoms) - sp.csr_array(H_ref)).max() < 1e-9
