"""The energy norm, its Riesz map and the dual norm: definitions (R1), (R2) and invariances."""

import numpy as np
import pytest
import scipy.sparse.linalg as spla
from hypothesis import given, settings
from hypothesis import strategies as st

from genanalysis.lattice import defect_cell
from genanalysis.norms import dual_norm, energy_norm, riesz_matrix, stencil

CASES = [("bcc", 3.0, 3, "vacancy"), ("fcc", 3.6, 2, "interstitial"), ("triangular", 1.0, 5, "vacancy"),
         ("bcc", 3.0, 1, "perfect")]


@pytest.fixture(scope="module", params=CASES, ids=lambda c: f"{c[0]}-{c[3]}-n{c[2]}")
def st_(request):
    return stencil(defect_cell(*request.param))


@given(seed=st.integers(0, 2**31), shift=st.lists(st.floats(-5, 5), min_size=3, max_size=3))
@settings(max_examples=20, deadline=None)
def test_energy_norm_is_quadratic_form_and_translation_invariant(st_, seed, shift):
    rng = np.random.default_rng(seed)
    u = rng.standard_normal((st_.n, 3))
    lap = riesz_matrix(st_)
    v = u[:, : st_.dim].ravel()
    assert energy_norm(u, st_) ** 2 == pytest.approx(v @ (lap @ v), rel=1e-12)
    assert energy_norm(u + np.array(shift), st_) == pytest.approx(energy_norm(u, st_), rel=1e-12, abs=1e-12)


@given(seed=st.integers(0, 2**31))
@settings(max_examples=10, deadline=None)
def test_dual_norm_is_the_supremum(st_, seed):
    rng = np.random.default_rng(seed)
    f = rng.standard_normal((st_.n, 3))
    f[:, st_.dim:] = 0
    f -= f.mean(axis=0)
    norm = dual_norm(f, st_)
    # every test function gives a lower bound ...
    for _ in range(5):
        v = rng.standard_normal((st_.n, 3))
        assert np.sum(f[:, : st_.dim] * v[:, : st_.dim]) / energy_norm(v, st_) <= norm * (1 + 1e-9)
    # ... and the Riesz representative attains it
    lap = riesz_matrix(st_)
    w, info = spla.cg(lap, f[:, : st_.dim].ravel(), rtol=1e-13, atol=0, maxiter=10000)
    assert info == 0
    assert np.sum(f[:, : st_.dim].ravel() * w) / energy_norm(w.reshape(st_.n, st_.dim), st_) == pytest.approx(norm, rel=1e-6)


@given(seed=st.integers(0, 2**31), scale=st.floats(1e-3, 1e3))
@settings(max_examples=10, deadline=None)
def test_dual_norm_of_riesz_image_and_homogeneity(st_, seed, scale):
    rng = np.random.default_rng(seed)
    u = rng.standard_normal((st_.n, st_.dim))
    f = (riesz_matrix(st_) @ u.ravel()).reshape(st_.n, st_.dim)
    assert dual_norm(f, st_) == pytest.approx(energy_norm(u, st_), rel=1e-6)
    assert dual_norm(scale * f, st_) == pytest.approx(scale * dual_norm(f, st_), rel=1e-6)


def test_small_cell_counts_images():
    # bcc n=1 vacancy: one atom left; all its stencil pairs are its own images: norm 0
    s = stencil(defect_cell("bcc", 3.0, 1, "vacancy"))
    assert s.n == 1 and len(s.i) == 0
    s2 = stencil(defect_cell("bcc", 3.0, 1, "perfect"))
    assert len(s2.i) == 2 * 8  # each of 2 atoms sees 8 images of the other
