"""Hypothesis strategies for property-based tests of interatomic potentials.

Geometry comes from :mod:`genanalysis.lattice` (lengths Å); strains are dimensionless
symmetric 3×3 matrices (only the in-plane block for 2D lattices); rattles are Gaussian
displacements with standard deviation in Å. Needs ``hypothesis`` (the ``test`` extra).

    from hypothesis import given
    from genanalysis.testing import strategies as gst

    @given(gst.configurations("bcc", 3.1648, symbol="W"))
    def test_something(atoms): ...
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from genanalysis.lattice import DEFECTS, LATTICES, atoms_dim, defect_cell, dimension, perfect_cell, smallest_size

__all__ = ["lattices", "point_defects", "supercells", "defect_cells", "strains", "strained", "rattles",
           "rattled", "displacements", "pair_vectors", "configurations", "training_specs"]


def lattices(names=None) -> st.SearchStrategy[str]:
    """A lattice name (``bcc``, ``fcc``, ``triangular``, or one of ``names``)."""
    return st.sampled_from(list(names or LATTICES))


def point_defects(lattice: str, *, perfect: bool = True) -> st.SearchStrategy[str]:
    """A defect name valid on ``lattice``: ``perfect`` (if allowed), ``vacancy``,
    ``interstitial:VARIANT``."""
    table = DEFECTS[lattice]
    names = (["perfect"] if perfect else []) + ["vacancy"] + [f"interstitial:{v}" for v in table["interstitial"]]
    return st.sampled_from(names)


def supercells(lattice: str, a: float, *, symbol: str = "X", sizes=(1, 3)) -> st.SearchStrategy:
    """A perfect periodic n-cell of ``lattice`` with lattice constant ``a`` (Å), n drawn
    from the inclusive range ``sizes``."""
    return st.integers(*sizes).map(lambda n: perfect_cell(lattice, a, n, symbol))


@st.composite
def defect_cells(draw, lattice: str, a: float, *, symbol: str = "X", max_size: int = 3, perfect: bool = True):
    """An unrelaxed point-defect cell (or a perfect one): the defect of
    :func:`point_defects`, size from the smallest that holds it to ``max_size``."""
    defect = draw(point_defects(lattice, perfect=perfect))
    n_min = 1 if defect == "perfect" else smallest_size(lattice, a, defect, symbol)
    n = draw(st.integers(n_min, max(n_min, max_size)))
    return defect_cell(lattice, a, n, defect, symbol)


@st.composite
def strains(draw, dim: int = 3, *, max_strain: float = 0.01):
    """A symmetric strain ε (3×3, entries in [−max_strain, max_strain]; zero outside the
    in-plane block when ``dim`` is 2)."""
    eps = np.zeros((3, 3))
    for i in range(dim):
        for j in range(i, dim):
            eps[i, j] = eps[j, i] = draw(st.floats(-max_strain, max_strain, allow_nan=False))
    return eps


def strained(atoms, eps):
    """A copy of ``atoms`` with cell and positions deformed by (I + ε)."""
    out = atoms.copy()
    out.set_cell(np.asarray(atoms.cell) @ (np.eye(3) + eps), scale_atoms=True)
    return out


def rattled(atoms, amplitude: float, seed: int):
    """A copy of ``atoms`` displaced by Gaussian noise of standard deviation ``amplitude``
    (Å) from ``seed`` (in-plane for 2D lattices)."""
    out = atoms.copy()
    dim = atoms_dim(atoms)
    noise = np.random.default_rng(seed).normal(scale=amplitude, size=(len(atoms), 3))
    noise[:, dim:] = 0.0
    out.positions = atoms.positions + noise
    return out


@st.composite
def rattles(draw, atoms, *, max_amplitude: float = 0.05):
    """``atoms`` rattled with an amplitude in [0, max_amplitude] Å and a drawn seed."""
    amp = draw(st.floats(0.0, max_amplitude, allow_nan=False))
    return rattled(atoms, amp, draw(st.integers(0, 2**32 - 1)))


def displacements(n: int, dim: int = 3, *, max_amplitude: float = 1.0) -> st.SearchStrategy:
    """A displacement field (n, 3) in Å, each in-plane component (the first ``dim``) in
    [−max_amplitude, max_amplitude], the others zero; never identically zero. Drawn entry by
    entry, so hypothesis shrinks it towards a single displaced component."""
    from hypothesis.extra.numpy import arrays

    entries = st.floats(-max_amplitude, max_amplitude, allow_nan=False, allow_subnormal=False)
    return (arrays(np.float64, (n, dim), elements=entries).filter(lambda u: bool(np.abs(u).max() > 1e-3 * max_amplitude))
            .map(lambda u: np.pad(u, ((0, 0), (0, 3 - dim)))))


def pair_vectors(max_pairs: int = 20, *, r_min: float = 0.5, r_max: float = 6.0, dim: int = 3) -> st.SearchStrategy:
    """An (m, 3) array of pair vectors D (Å) with r_min ≤ |D| ≤ r_max, 1 ≤ m ≤ ``max_pairs``
    (in-plane, third component zero, when ``dim`` is 2)."""
    comp = st.floats(-r_max, r_max, allow_nan=False, allow_subnormal=False)
    vec = st.tuples(*[comp] * dim).map(lambda v: list(v) + [0.0] * (3 - dim)).filter(
        lambda v: r_min <= float(np.linalg.norm(v)) <= r_max)
    return st.lists(vec, min_size=1, max_size=max_pairs).map(lambda vs: np.array(vs, dtype=np.float64))


@st.composite
def configurations(draw, lattice: str, a: float, *, symbol: str = "X", max_size: int = 3,
                   max_strain: float = 0.01, max_rattle: float = 0.05, perfect: bool = True):
    """A training- or test-like configuration: a defect cell (:func:`defect_cells`),
    strained (:func:`strains`) and rattled (:func:`rattles`)."""
    cell = draw(defect_cells(lattice, a, symbol=symbol, max_size=max_size, perfect=perfect))
    cell = strained(cell, draw(strains(dimension(lattice), max_strain=max_strain)))
    return draw(rattles(cell, max_amplitude=max_rattle))


@st.composite
def training_specs(draw, potential: str = "builtin:W", lattice: str = "bcc", *, max_size: int = 3):
    """A valid :class:`~genanalysis.trainingset.spec.TrainingSetSpec`: a non-empty set of
    groups (perfect and defects), sizes that hold them (up to ``max_size``), observation
    codes per group (subsets of EFV, H on perfect cells), rattle, strains and seed."""
    from genanalysis.trainingset.spec import StrainSpec, TrainingSetSpec

    names = ["perfect", "vacancy"] + [f"interstitial:{v}" for v in DEFECTS[lattice]["interstitial"]]
    defects = draw(st.lists(st.sampled_from(names), min_size=1, max_size=len(names), unique=True))
    n_min = max(1 if d == "perfect" else smallest_size(lattice, 1.0, d) for d in defects)
    sizes = draw(st.lists(st.integers(n_min, max(n_min, max_size)), min_size=1, max_size=3, unique=True))
    codes = st.sets(st.sampled_from("EFV"), min_size=1).map(lambda s: "".join(sorted(s, key="EFV".index)))
    observations = {d: draw(codes) + ("H" if d == "perfect" and draw(st.booleans()) else "") for d in defects}
    cps = draw(st.integers(0, 2))
    rattle = draw(st.floats(0.001, 0.05)) if cps else 0.0
    count = draw(st.integers(0, 2))
    strain = StrainSpec(amplitude=draw(st.floats(1e-4, 0.01)) if count else 0.0, count=count)
    include_relaxed = True if cps == 0 and count == 0 else draw(st.booleans())
    return TrainingSetSpec(potential=potential, lattice=lattice, defects=tuple(defects), sizes=tuple(sizes),
                           configs_per_size=cps, rattle=rattle, strains=strain, include_relaxed=include_relaxed,
                           observations=observations, seed=draw(st.integers(0, 2**31)))
