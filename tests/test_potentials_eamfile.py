"""LAMMPS EAM files: analytic functions tabulated in each format (funcfl, setfl, fs) and read
back reproduce the analytic engine to interpolation accuracy; format detection and
override; element selection by name; errors; agreement with matscipy's EAM calculator."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from genanalysis.exceptions import InputError
from genanalysis.lattice import defect_cell, perfect_cell
from genanalysis.potentials import load_potential
from genanalysis.potentials.builtin import ZHOU_W, tungsten_zhou
from genanalysis.potentials.eam import EAMPotential
from genanalysis.potentials.eamfile import detect_format, write_eam_file
from genanalysis.potentials.functions import SmoothCutoff, UniformCubicTable, ZhouEmbedding, ZhouRadial
from genanalysis.testing import strategies as gst

BUILTIN_W = tungsten_zhou()
A_W = BUILTIN_W.equilibrium_lattice_constant("bcc")
GRID = dict(n_r=3001, n_rho=3001, rho_max=120.0)
# The Zhou embedding is piecewise, with a jump of F‴ at ρ_n = 0.85 ρ_e that any cubic
# interpolant resolves only to O(h³); the file tests use its smooth middle branch for all ρ,
# so that the tolerances measure the reading of the files, not that kink.
def SMOOTH_F(rho, order=0):
    return tuple(ZhouEmbedding._poly(ZHOU_W["F"], np.asarray(rho) / ZHOU_W["rho_e"] - 1.0, ZHOU_W["rho_e"], order))


W = EAMPotential(name="smooth-W", element="W", cutoff=6.0, phi=BUILTIN_W.phi, f=BUILTIN_W.f, F=SMOOTH_F,
                 mass=ZHOU_W["mass"])


def repulsive_w() -> EAMPotential:
    """W with a purely repulsive pair term (funcfl stores Z(r)² ≥ 0)."""
    p = ZHOU_W
    cut = SmoothCutoff(5.5, 6.0)
    phi = ZhouRadial(p["r_e"], ((p["A"], p["alpha"], p["kappa"]),), cut)
    return EAMPotential(name="repulsive-W", element="W", cutoff=6.0, phi=phi, f=W.f, F=W.F, mass=p["mass"])


def other_element(symbol: str = "Mo") -> EAMPotential:
    """A second element for multi-element files: W's functions, scaled."""
    scaled = lambda fn, s: (lambda x, order=0: tuple(s * v for v in fn(x, order)))  # noqa: E731
    return EAMPotential(name=symbol, element=symbol, cutoff=6.0, phi=scaled(W.phi, 0.7), f=scaled(W.f, 1.3),
                        F=W.F, mass=95.95)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("eam")
    paths = {
        "eam": d / "W.eam",
        "eam/alloy": d / "W.eam.alloy",
        "eam/fs": d / "WMo.eam.fs",
        "alloy2": d / "MoW.eam.alloy",
    }
    write_eam_file(paths["eam"], repulsive_w(), "eam", atomic_numbers=[74], **GRID)
    write_eam_file(paths["eam/alloy"], W, "eam/alloy", atomic_numbers=[1], **GRID)  # Z=1, as W_zhou
    write_eam_file(paths["eam/fs"], [W, other_element()], "eam/fs", atomic_numbers=[74, 42],
                   cross_density=lambda at, due, r: 0.5 * W.f(r)[0], **GRID)
    write_eam_file(paths["alloy2"], [other_element(), W], "eam/alloy", atomic_numbers=[42, 74], **GRID)
    return {k: str(v) for k, v in paths.items()}


def rattled(seed, amplitude=0.1):
    at = defect_cell("bcc", A_W, 2, "vacancy", "W")
    at.positions += np.random.default_rng(seed).normal(scale=amplitude, size=at.positions.shape)
    return at


def test_format_detection(files):
    assert detect_format(files["eam"]) == "eam"
    assert detect_format(files["eam/alloy"]) == "eam/alloy"
    assert detect_format(files["eam/fs"]) == "eam/fs"
    assert detect_format(files["alloy2"]) == "eam/alloy"


@settings(max_examples=8, deadline=None)
@given(which=st.sampled_from(["eam", "eam/alloy", "eam/fs", "alloy2"]),
       u=gst.displacements(15, max_amplitude=0.2), v=gst.displacements(15))
def test_tabulated_reproduces_analytic(files, which, u, v):
    """A file written from an analytic potential reads back as that potential on any
    displacement u (Å) of a vacancy cell, and its Hessian products along any v."""
    analytic = repulsive_w() if which == "eam" else W
    table = load_potential(files[which], element="W")
    assert table.species == ("W",)
    at = defect_cell("bcc", A_W, 2, "vacancy", "W")
    at.positions += u
    ea, et = analytic.observe(at), table.observe(at)
    # Interpolation error of the cubic spline on the 2 mÅ grid: tolerances ~10x the worst
    # case measured over 40 seeds (5e-12 eV/atom, 4e-8 eV/Å, 2e-7 eV, 2e-4 eV/Å² for H·v);
    # a misread table gives errors of order one.
    assert abs(et.energy - ea.energy) <= 1e-10 * len(at)
    assert np.abs(et.forces - ea.forces).max() < 4e-7
    assert np.abs(et.virial - ea.virial).max() < 2e-6
    v = v.ravel()
    assert np.abs(table.linearise(at) @ v - analytic.linearise(at) @ v).max() < 2e-3 * np.abs(v).max()


def test_format_override_and_mismatch(files):
    assert load_potential(files["eam/alloy"], format="eam/alloy").meta["format"] == "eam/alloy"
    # a single-element setfl file is also a valid eam/fs file
    assert load_potential(files["eam/alloy"], format="eam/fs").meta["format"] == "eam/fs"
    with pytest.raises(InputError, match=r"format 'eam'.*does not match.*eam/alloy"):
        load_potential(files["eam/alloy"], format="eam")
    with pytest.raises(InputError, match=r"format 'eam/alloy'.*does not match.*eam/fs"):
        load_potential(files["eam/fs"], format="eam/alloy", element="W")
    with pytest.raises(InputError, match="eam/lammps.*eam, eam/alloy, eam/fs"):
        load_potential(files["eam"], format="eam/lammps")


def test_element_selection_by_name_not_atomic_number(files):
    pot = load_potential(files["eam/alloy"])  # file writes Z=1 for W
    assert pot.species == ("W",) and pot.meta["file_atomic_number"] == 1
    mo = load_potential(files["alloy2"], element="Mo")
    w = load_potential(files["alloy2"], element="W")
    at = rattled(3)
    assert w.observe(at).energy == pytest.approx(W.observe(at).energy, rel=1e-9)
    mo_atoms = at.copy()
    mo_atoms.symbols[:] = "Mo"
    assert mo.observe(mo_atoms).energy == pytest.approx(other_element().observe(mo_atoms).energy, rel=1e-9)
    with pytest.raises(InputError, match=r"Mo, W.*element="):
        load_potential(files["alloy2"])
    with pytest.raises(InputError, match=r"'Cu'.*Mo, W"):
        load_potential(files["alloy2"], element="Cu")


def test_unreadable_and_missing_files(tmp_path):
    with pytest.raises(InputError, match="no_such.eam"):
        load_potential(str(tmp_path / "no_such.eam"))
    bad = tmp_path / "bad.eam.alloy"
    bad.write_text("a\nb\nc\n1 W\n10 0.1 10 0.1 1.0\n74 183.84 3.16 bcc\n1 2 3\n")
    with pytest.raises(InputError, match=r"unreadable.*eam/alloy it should hold 34 numbers but holds 7"):
        load_potential(str(bad))
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    with pytest.raises(InputError, match="matches none"):
        load_potential(str(text))


def test_uniform_table_is_the_fitpack_spline():
    """The O(1) table is the same C² interpolant as FITPACK's (what matscipy uses)."""
    from scipy.interpolate import InterpolatedUnivariateSpline

    h = 0.013
    y = np.sin(np.arange(200) * h * 3.0) * np.exp(-np.arange(200) * h)
    ref = InterpolatedUnivariateSpline(np.arange(200) * h, y)
    x = np.random.default_rng(0).uniform(0, 199 * h, 1000)
    tab = UniformCubicTable(h, y)
    v, d1, d2 = tab(x, 2)
    assert np.allclose(v, ref(x), atol=1e-13)
    assert np.allclose(d1, ref(x, 1), atol=1e-11)
    assert np.allclose(d2, ref(x, 2), atol=1e-9)
    # beyond the table: held (radial) or continued linearly (embedding)
    assert tab(np.array([199 * h + 1.0]))[0][0] == pytest.approx(y[-1])
    lin = UniformCubicTable(h, y, extrapolate="linear")
    assert lin(np.array([199 * h + 0.5]), 1)[1][0] == pytest.approx(ref(199 * h, 1))


@pytest.mark.parametrize("which", ["eam", "eam/alloy", "eam/fs"])
def test_calculator_agrees_with_matscipy(files, which):
    from matscipy.calculators.eam import EAM

    pot = load_potential(files[which], element="W")
    at = rattled(11, 0.05)
    at.calc = pot.calculator()
    ref = at.copy()
    ref.numbers[:] = pot.meta["file_atomic_number"]
    ref.calc = EAM(files[which], kind=which)
    e, e_ref = at.get_potential_energy(), ref.get_potential_energy()
    assert e == pytest.approx(e_ref, rel=1e-10)
    f, f_ref = at.get_forces(), ref.get_forces()
    assert np.abs(f - f_ref).max() <= 1e-6 * np.abs(f_ref).max()
    assert np.allclose(at.get_stress(), ref.get_stress(), atol=1e-9)


def test_hessian_agrees_with_matscipy(files):
    from matscipy.calculators.eam import EAM

    pot = load_potential(files["eam/alloy"])
    at = perfect_cell("bcc", A_W, 2, "W")
    at.positions += np.random.default_rng(5).normal(scale=0.05, size=at.positions.shape)
    ref = at.copy()
    ref.numbers[:] = 1
    H_ref = EAM(files["eam/alloy"]).get_hessian(ref)
    H = pot.calculator().get_hessian(at)
    assert abs(H - H_ref).max() <= 1e-8 * abs(H_ref).max()
