"""Lattices and point defects: counts, placement at the centre, coordination, bad input."""

import numpy as np
import pytest
from ase.neighborlist import neighbor_list
from hypothesis import given, settings
from hypothesis import strategies as st

from genanalysis.exceptions import InputError
from genanalysis.lattice import (
    defect_cell, nearest_neighbour_distance, parse_defect, perfect_cell, shell_radii, smallest_size,
)

LAT = {"bcc": (2, 3, 8), "fcc": (4, 3, 12), "triangular": (1, 2, 6)}  # basis, d, coordination


@given(lattice=st.sampled_from(sorted(LAT)), n=st.integers(1, 5), a=st.floats(0.8, 5.0))
@settings(max_examples=30, deadline=None)
def test_perfect_cell_counts_and_coordination(lattice, n, a):
    nb, d, z = LAT[lattice]
    atoms = perfect_cell(lattice, a, n)
    assert len(atoms) == nb * n**d
    assert atoms.info["dim"] == d
    # every site has the lattice's coordination, periodic images included, at every n
    r1 = nearest_neighbour_distance(lattice, a)
    i = neighbor_list("i", atoms, 1.01 * r1)
    assert np.all(np.bincount(i, minlength=len(atoms)) == z)
    if d == 2:
        assert np.all(atoms.positions[:, 2] == 0.0)
        assert tuple(atoms.pbc) == (True, True, False)


@given(lattice=st.sampled_from(sorted(LAT)), n=st.integers(2, 5), a=st.floats(0.8, 5.0),
       kind=st.sampled_from(["vacancy", "interstitial"]))
@settings(max_examples=40, deadline=None)
def test_defect_sits_at_centre(lattice, n, a, kind):
    nb, d, _ = LAT[lattice]
    atoms = defect_cell(lattice, a, n, kind)
    centre = np.array(atoms.info["defect_centre"])
    assert np.allclose(centre[:d], 0.5 * np.array(atoms.cell)[:d].sum(axis=0)[:d])
    dist = np.linalg.norm(atoms.positions - centre, axis=1)
    if kind == "vacancy":
        assert len(atoms) == nb * n**d - 1
        assert dist.min() == pytest.approx(nearest_neighbour_distance(lattice, a), rel=1e-9)
    else:
        spec = parse_defect(lattice, kind)
        assert len(atoms) == nb * n**d + 1
        added = atoms.arrays["site_index"] < 0
        if spec.variant == "dumbbell110":
            assert added.sum() == 2
            assert np.allclose(atoms.positions[added].mean(axis=0), centre)
        else:
            assert added.sum() == 1 and dist[added][0] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("lattice", sorted(LAT))
def test_site_index_maps_to_translated_perfect_sites(lattice):
    a, n = 1.7, 3
    perf = perfect_cell(lattice, a, n)
    atoms = defect_cell(lattice, a, n, "vacancy")
    s = atoms.arrays["site_index"]
    shift = atoms.positions - perf.positions[s]
    cell = np.array(perf.cell)
    d = perf.info["dim"]
    frac = np.linalg.solve(cell[:d, :d].T, (shift - shift[0])[:, :d].T).T
    assert np.allclose(frac - np.round(frac), 0.0, atol=1e-9)  # one rigid translation mod the cell
    assert atoms.info["vacant_sites"][0] not in set(s)


def test_shells():
    assert np.allclose(shell_radii("bcc", 2.0, 3), [np.sqrt(3), 2.0, 2 * np.sqrt(2)])
    assert np.allclose(shell_radii("fcc", 1.0, 2), [1 / np.sqrt(2), 1.0])
    assert np.allclose(shell_radii("triangular", 1.0, 3), [1.0, np.sqrt(3), 2.0])


@pytest.mark.parametrize("args, match", [
    (("bcc", 3.0, 0, "vacancy"), "n=0"),
    (("bcc", 3.0, -2, "vacancy"), "n=-2"),
    (("bcc", 3.0, 2.5, "vacancy"), "whole number"),
    (("hcp", 3.0, 2, "vacancy"), "hcp"),
    (("fcc", 3.0, 2, "interstitial:dumbbell110"), "dumbbell110"),
    (("bcc", -1.0, 2, "vacancy"), "a=-1"),
    (("bcc", 3.0, 2, "antisite"), "antisite"),
    (("triangular", 1.0, 1, "vacancy"), "n ≥ 2"),
])
def test_bad_input_is_named(args, match):
    with pytest.raises(InputError, match=match):
        defect_cell(*args)


def test_smallest_sizes_small_cells_are_legitimate():
    assert smallest_size("bcc", 3.16, "vacancy") == 1
    assert smallest_size("bcc", 3.16, "interstitial") == 1
    assert smallest_size("triangular", 1.0, "vacancy") == 2


@given(lattice=st.sampled_from(sorted(LAT)), n=st.integers(2, 4), seed=st.integers(0, 2**31))
@settings(max_examples=20, deadline=None)
def test_minimum_image_is_shortest_and_equivalent(lattice, n, seed):
    from genanalysis.lattice import minimum_image

    atoms = perfect_cell(lattice, 1.3, n)
    d = atoms.info["dim"]
    cell = np.array(atoms.cell)
    rng = np.random.default_rng(seed)
    v = np.zeros((8, 3))
    v[:, :d] = rng.uniform(-0.2, 0.2, (8, d)) * n * 1.3  # short vectors ...
    shifted = v.copy()
    shifted[:, :d] += rng.integers(-3, 4, (8, d)) @ cell[:d, :d]  # ... moved by lattice vectors of the cell
    assert np.allclose(minimum_image(shifted, cell, d), v, atol=1e-9)
