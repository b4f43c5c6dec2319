"""The fast paths behind the benchmark: blocked pair passes, fused tables, minimum-image
separations, reused work arrays and the folded lattice preconditioner. Each is held against
the plain route it replaces (same physics, different arithmetic order), on small cells."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import genanalysis.relaxation as relaxation
import genanalysis.potentials.neighbours as nbm
from genanalysis.lattice import defect_cell, perfect_cell
from genanalysis.potentials.builtin import morse, tungsten_zhou
from genanalysis.potentials.eamfile import load_eam_file, write_eam_file
from genanalysis.potentials.functions import FusedRadialTables, TimesInverse, UniformCubicTable

W = tungsten_zhou()
A_W = W.equilibrium_lattice_constant("bcc")
FAST = settings(max_examples=10, deadline=None)


@pytest.fixture(scope="module")
def tabulated(tmp_path_factory):
    """builtin:W written as an eam/alloy file and read back (tabulated: the fused path)."""
    path = tmp_path_factory.mktemp("eam") / "W.eam.alloy"
    write_eam_file(str(path), W, "eam/alloy", n_r=4000, n_rho=2000, rho_max=60.0)
    return str(path)


def _rattled(atoms, seed, amplitude=0.05):
    rng = np.random.default_rng(seed)
    atoms = atoms.copy()
    atoms.positions += rng.normal(scale=amplitude, size=(len(atoms), 3))
    return atoms


@FAST
@given(seed=st.integers(0, 2**31 - 1))
def test_fused_tables_equal_the_separate_ones(tabulated, seed):
    pot = load_eam_file(tabulated)
    assert isinstance(pot.phi, TimesInverse) and isinstance(pot.f, UniformCubicTable)
    fused = FusedRadialTables.from_functions(pot.phi, pot.f, pot.cutoff)
    assert fused is not None
    rng = np.random.default_rng(seed)
    r = rng.uniform(1.0, pot.cutoff + pot.skin, 5000)
    (p0, p1, p2), (f0, f1, f2) = fused(r, 2)
    inside = r < pot.cutoff
    for got, want in zip((p0, p1, p2), pot.phi(r, 2)):
        assert np.allclose(got[inside], want[inside], rtol=1e-12, atol=1e-13)
        assert np.all(got[~inside] == 0.0)  # beyond the cutoff: exactly nothing
    for got, want in zip((f0, f1, f2), pot.f(r, 2)):
        assert np.allclose(got[inside], want[inside], rtol=1e-12, atol=1e-13)
        assert np.all(got[~inside] == 0.0)
    (q0, q1), (g0, g1) = fused(r, 1)
    assert np.array_equal(q0, p0) and np.array_equal(q1, p1) and np.array_equal(g1, f1)


@FAST
@given(seed=st.integers(0, 2**31 - 1), block=st.sampled_from([7, 64, 1000]))
def test_results_do_not_depend_on_the_block_size(tabulated, seed, block):
    atoms = _rattled(defect_cell("bcc", A_W, 3, "vacancy", "W"), seed)
    v = np.random.default_rng(seed).normal(size=3 * len(atoms))
    out = []
    default = nbm.BLOCK
    try:
        for size in (default, block):
            nbm.BLOCK = size
            for pot in (tungsten_zhou(), load_eam_file(tabulated)):
                e, f, op = pot.energy_forces(atoms, linearise=True)
                ev = pot.observe(atoms)
                assert len(pot._neighbours.blocks(atoms).bounds) == -(-len(pot._neighbours.blocks(atoms)) // size)
                out.append((e, f, op @ v, ev.virial, ev.site_energies))
    finally:
        nbm.BLOCK = default
    for ref, got in zip(out[:2], out[2:]):
        assert got[0] == pytest.approx(ref[0], abs=1e-9)
        for a, b in zip(ref[1:], got[1:]):
            assert np.allclose(a, b, atol=1e-11)


@FAST
@given(seed=st.integers(0, 2**31 - 1))
def test_minimum_image_equals_image_codes(seed):
    """A cell wider than 2·(cutoff + 2·skin) uses the minimum-image route; forcing the
    image-code route on the same list gives the same energy, forces and Hessian products."""
    pot = tungsten_zhou()
    n = int(np.ceil(2 * (pot.cutoff + 2 * pot.skin) / A_W)) + 1
    atoms = _rattled(defect_cell("bcc", A_W, n, "vacancy", "W"), seed, 0.08)
    atoms.positions[:7] += 3 * A_W * n  # unwrapped atoms: images must still be found
    pb = pot._neighbours.blocks(atoms)
    assert pb.box is not None
    v = np.random.default_rng(seed).normal(size=3 * len(atoms))
    e1, f1, op1 = pot.energy_forces(atoms, linearise=True)
    hv1 = op1 @ v
    pb.box = None
    e2, f2, op2 = pot.energy_forces(atoms, linearise=True)
    assert e1 == pytest.approx(e2, abs=1e-9)
    assert np.allclose(f1, f2, atol=1e-11) and np.allclose(hv1, op2 @ v, atol=1e-11)


def test_permuting_atoms_permutes_forces():
    """The list is sorted by i internally; any atom order gives the same physics."""
    atoms = _rattled(defect_cell("bcc", A_W, 3, "vacancy", "W"), 1)
    perm = np.random.default_rng(2).permutation(len(atoms))
    shuffled = atoms[perm]
    e1, f1, _ = tungsten_zhou().energy_forces(atoms)
    e2, f2, _ = tungsten_zhou().energy_forces(shuffled)
    assert e1 == pytest.approx(e2, abs=1e-9)
    assert np.allclose(f1[perm], f2, atol=1e-11)


def test_kept_operator_survives_later_calls():
    """Work arrays are reused between calls only when nothing else holds them."""
    pot = tungsten_zhou()
    a1 = _rattled(defect_cell("bcc", A_W, 3, "vacancy", "W"), 3)
    a2 = _rattled(a1, 4, 0.02)
    v = np.random.default_rng(5).normal(size=3 * len(a1))
    op1 = pot.linearise(a1)
    before = op1 @ v
    pot.energy_forces(a2, linearise=True)
    pot.observe(a2)
    op2 = pot.linearise(a2)
    assert np.array_equal(op1 @ v, before)
    assert not np.allclose(op2 @ v, before)
    assert np.allclose(op1 @ v, tungsten_zhou().linearise(a1) @ v, atol=1e-11)


def test_energy_forces_equals_evaluate_and_linearise():
    pot = tungsten_zhou()
    atoms = _rattled(defect_cell("bcc", A_W, 3, "interstitial", "W"), 6)
    e, f, op = pot.energy_forces(atoms, linearise=True)
    ev = pot.observe(atoms)
    v = np.random.default_rng(7).normal(size=3 * len(atoms))
    assert e == pytest.approx(ev.energy, abs=1e-10) and np.allclose(f, ev.forces, atol=1e-12)
    assert np.allclose(op @ v, pot.hessian(atoms) @ v, atol=1e-10)
    e1, f1, none = pot.energy_forces(atoms)
    assert none is None and e1 == pytest.approx(e, abs=1e-10) and np.allclose(f1, f, atol=1e-12)


@pytest.mark.parametrize("pot, lattice, n", [(W, "bcc", 12), (morse(), "triangular", 30)])
def test_folded_preconditioner_equals_the_direct_one(monkeypatch, pot, lattice, n):
    """The n-cell block row folded from the small force-constant cell is the n-cell's own."""
    a = pot.equilibrium_lattice_constant(lattice)
    k = relaxation._force_constant_cell(pot, lattice, a)
    assert k < n
    folded = relaxation.LatticePreconditioner(pot, lattice, a, n)
    monkeypatch.setattr(relaxation, "_force_constant_cell", lambda *args: None)
    direct = relaxation.LatticePreconditioner(pot, lattice, a, n)
    assert np.abs(folded._pinv - direct._pinv).max() <= 1e-10 * np.abs(direct._pinv).max()
    assert folded.kappa == pytest.approx(direct.kappa, rel=1e-12)


def test_relaxation_reuses_its_neighbour_list_and_operator():
    """A vacancy relaxation builds one neighbour list for the cell and computes no
    separate Hessian set-ups: the operator comes with the forces."""
    pot = tungsten_zhou()
    atoms = defect_cell("bcc", A_W, 4, "vacancy", "W")
    builds = pot._neighbours.builds
    calls = {"linearise": 0}
    orig = pot.linearise

    def counting(at):
        calls["linearise"] += 1
        return orig(at)

    pot.linearise = counting
    relaxation.shared_lattice_preconditioner(pot, "bcc", float(atoms.info["a"]), 4, "W")  # set-up outside
    calls["linearise"] = 0
    builds = pot._neighbours.builds
    rel = relaxation.relax(atoms, pot, fmax=1e-9)
    assert rel.converged
    assert calls["linearise"] == 0
    assert pot._neighbours.builds == builds + 1


@FAST
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(5, 6), amplitude=st.floats(0.0, 0.3))
def test_tree_search_finds_the_same_pairs_as_matscipy(seed, n, amplitude):
    """The k-d tree search of wide orthorhombic cells and matscipy's search list the same
    pairs with the same image shifts (atoms rattled and some unwrapped)."""
    from matscipy.neighbours import neighbour_list

    cache = nbm.NeighbourCache(W.cutoff, W.skin)
    atoms = _rattled(perfect_cell("bcc", A_W, n, "W"), seed, amplitude)
    atoms.positions[::5] -= np.array(atoms.cell).diagonal()  # outside the box
    assert cache._box(atoms) is not None
    i, j, S = cache._search(atoms)
    mi, mj, mS = neighbour_list("ijS", atoms, cache.cutoff + cache.skin)
    keep = mi < mj
    ours = set(zip(i.tolist(), j.tolist(), map(tuple, S.tolist())))
    ref = set(zip(mi[keep].tolist(), mj[keep].tolist(), map(tuple, mS[keep].tolist())))
    assert len(ours) == len(i)  # each pair once
    # pairs at exactly the search radius may differ by round-off between the two codes
    pos = atoms.positions
    cell = np.array(atoms.cell)

    def r(t):
        return np.linalg.norm(pos[t[1]] - pos[t[0]] + np.array(t[2]) @ cell)

    assert all(abs(r(t) - (cache.cutoff + cache.skin)) < 1e-9 for t in ours ^ ref)


@pytest.mark.parametrize("threads", ["2", "3"])
def test_threaded_passes_equal_the_serial_ones(monkeypatch, tabulated, threads):
    """Blocks shared among threads with private accumulators: same results to round-off."""
    atoms = _rattled(defect_cell("bcc", A_W, 3, "interstitial", "W"), 11)
    v = np.random.default_rng(12).normal(size=3 * len(atoms))
    monkeypatch.setattr(nbm, "BLOCK", 97)
    out = {}
    for t in ("1", threads):
        monkeypatch.setenv("GENANALYSIS_THREADS", t)
        for name, pot in (("W", tungsten_zhou()), ("tab", load_eam_file(tabulated))):
            assert len(pot._neighbours.blocks(atoms).bounds) >= 8
            e, f, op = pot.energy_forces(atoms, linearise=True)
            ev = pot.observe(atoms)
            out[t, name] = (e, f, op @ v, ev.virial, ev.site_energies)
    for name in ("W", "tab"):
        ref, got = out["1", name], out[threads, name]
        assert got[0] == pytest.approx(ref[0], abs=1e-9)
        for a, b in zip(ref[1:], got[1:]):
            assert np.allclose(a, b, atol=1e-11)


def test_released_buffers_are_rebuilt():
    pot = tungsten_zhou()
    atoms = _rattled(defect_cell("bcc", A_W, 3, "vacancy", "W"), 13)
    e1, f1, _ = pot.energy_forces(atoms)
    assert pot.__dict__.get("_pool")
    pot.release_buffers()
    assert not pot.__dict__.get("_pool")
    e2, f2, _ = pot.energy_forces(atoms)
    assert e1 == e2 and np.array_equal(f1, f2)
