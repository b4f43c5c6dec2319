"""Hessians of external ASE calculators: the field's layouts (matscipy's sparse (3n, 3n),
MACE's dense (3n, n, 3) and its committee list), the conformance check that refuses a
Hessian that is not one, the report of which source was used, and clean --json output
when the calculator prints on stdout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from ase.calculators.emt import EMT
from hypothesis import given, settings, strategies as st

import external_calculators as xc
from genanalysis.exceptions import InputError
from genanalysis.lattice import defect_cell, perfect_cell
from genanalysis.potentials import load_potential
from genanalysis.potentials.wrapper import ASECalculatorPotential, finite_difference_hessian, hessian_from_layout
from genanalysis.testing import strategies as gst

W = load_potential("builtin:W")
A_W = W.equilibrium_lattice_constant("bcc")
TESTS = Path(__file__).parent


def w_cell(seed, n=2, amplitude=0.04):
    at = defect_cell("bcc", A_W, n, "vacancy", "W")
    at.positions += np.random.default_rng(seed).normal(scale=amplitude, size=at.positions.shape)
    return at


@settings(max_examples=10, deadline=None)
@given(n=st.integers(1, 6), data=st.data())
def test_layouts_are_read_by_shape(n, data):
    """Every accepted layout of any matrix gives back that matrix."""
    from hypothesis.extra.numpy import arrays

    H = data.draw(arrays(np.float64, (3 * n, 3 * n), elements=st.floats(-1e3, 1e3, allow_nan=False)), label="H")
    for raw, layout in ((H, "dense (3n, 3n)"), (sp.coo_array(H), "sparse (3n, 3n)"),
                        (H.reshape(3 * n, n, 3), "dense (3n, n, 3)"), (H.reshape(n, 3, n, 3), "dense (n, 3, n, 3)")):
        got, info = hessian_from_layout(raw, n)
        assert info == {"layout": layout, "committee": 1}
        assert np.array_equal(got.toarray(), H)
    with pytest.raises(InputError, match=rf"shape \({n}, 3, {3 * n}\) for n = {n} atoms; accepted layouts"):
        hessian_from_layout(H.reshape(n, 3, 3 * n), n)


def test_committee_mean_and_spread():
    rng = np.random.default_rng(3)
    members = [rng.normal(size=(6, 6)) for _ in range(3)]
    got, info = hessian_from_layout([m.reshape(6, 2, 3) for m in members], 2)
    mean, std = np.mean(members, axis=0), np.std(members, axis=0)
    assert np.allclose(got.toarray(), mean, rtol=0, atol=1e-14)
    assert info["committee"] == 3 and info["layout"] == "committee of 3 × dense (3n, n, 3)"
    assert info["committee_spread"] == pytest.approx(np.linalg.norm(std) / np.linalg.norm(mean), rel=1e-12)
    assert info["committee_spread_max"] == pytest.approx(std.max(), rel=1e-12)


@settings(max_examples=4, deadline=None)
@given(at=gst.configurations("bcc", A_W, symbol="W", max_size=2, perfect=False))
def test_mace_layout_is_the_exact_hessian(at):
    pot = load_potential(xc.mace_layout_w())
    assert pot.has_analytic_hessian
    H = pot.hessian(at)
    assert abs(H - W.hessian(at)).max() < 1e-12
    u = np.random.default_rng(1).normal(size=3 * len(at))
    assert np.allclose(pot.linearise(at) @ u, W.linearise(at) @ u, rtol=0, atol=1e-10)
    rep = pot.hessian_report()
    assert rep["source"] == "calculator" and rep["layout"] == "dense (3n, n, 3)" and rep["hessians"] == 2
    assert rep["check"]["passed"] and rep["check"]["probe_error"] < 1e-6 and rep["check"]["asymmetry"] < 1e-12
    assert rep["hessian_time"] > 0


def test_matscipy_eam_calculator(tmp_path):
    """matscipy's EAM calculator (sparse get_hessian) on a setfl file of builtin:W's functions."""
    from matscipy.calculators.eam import EAM

    from genanalysis.potentials.eamfile import write_eam_file

    path = tmp_path / "W.eam.alloy"
    write_eam_file(path, W, "eam/alloy", atomic_numbers=[74], n_r=3001, n_rho=3001, rho_max=120.0)
    pot = ASECalculatorPotential(EAM(str(path)))
    at = w_cell(2)
    H = pot.hessian(at)
    rep = pot.hessian_report()
    assert rep["layout"] == "sparse (3n, 3n)" and rep["check"]["passed"], rep
    assert abs(H - load_potential(str(path)).hessian(at)).max() < 1e-6


def test_calculator_without_hessian_uses_directional_differences():
    at = perfect_cell("fcc", 3.6, 2, "Cu")
    at.positions += np.random.default_rng(4).normal(scale=0.03, size=at.positions.shape)
    pot = ASECalculatorPotential(EMT())
    assert not pot.has_analytic_hessian
    op = pot.linearise(at)
    H = pot.hessian(at)
    u = np.random.default_rng(5).normal(size=3 * len(at))
    assert np.allclose(op @ u, H @ u, rtol=1e-6, atol=1e-7)
    rep = pot.hessian_report()
    assert rep["source"] == "finite differences" and rep["hvps"] == 1 and rep["hessians"] == 1
    assert "check" not in rep


@pytest.mark.parametrize("how, message", [
    ("negated", "disagrees with central differences of its forces"),
    ("component-major", "disagrees with central differences of its forces"),
    ("asymmetric", "is not symmetric"),
    ("transposed-layout", "accepted layouts"),
])
def test_a_hessian_that_is_not_one_is_refused(how, message):
    pot = ASECalculatorPotential(xc.Rearranged(W, how))
    with pytest.raises(InputError, match=message):
        pot.hessian(w_cell(6))


@pytest.mark.parametrize("how", ["negated", "asymmetric"])
def test_failed_check_can_fall_back_to_finite_differences(how):
    pot = ASECalculatorPotential(xc.Rearranged(W, how), on_check_failure="fd")
    at = w_cell(7)
    H = pot.hessian(at)
    assert not pot.has_analytic_hessian
    rep = pot.hessian_report()
    assert rep["source"] == "finite differences" and "fallback_reason" in rep
    assert abs(H - finite_difference_hessian(at, pot.forces)).max() == 0
    assert abs(H - W.hessian(at)).max() < 1e-5


def test_committee_calculator_reports_its_spread():
    calc = xc.committee_w()
    pot = ASECalculatorPotential(calc)
    at = w_cell(8)
    H = pot.hessian(at)
    h1, h2 = (p.hessian(at).toarray() for p in calc.potentials)
    assert np.allclose(H.toarray(), 0.5 * (h1 + h2), rtol=0, atol=1e-12)
    pot.observe(at)
    rep = pot.hessian_report()
    assert rep["committee"] == 2 and rep["check"]["passed"]
    assert rep["committee_spread_max"] == pytest.approx(0.5 * np.abs(h1 - h2).max(), rel=1e-9)
    f1, f2 = (p.observe(at).forces for p in calc.potentials)
    assert rep["committee_forces_std_max"] == pytest.approx(0.5 * np.abs(f1 - f2).max(), rel=1e-9)
    assert rep["committee_forces_std_max"] > 0


def test_python_spec_options(monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))
    pot = load_potential("python:external_calculators:mace_layout_w?hessian=fd&fd_step=2e-4")
    assert not pot.has_analytic_hessian and pot.fd_step == 2e-4
    assert pot.name == "python:external_calculators:mace_layout_w?hessian=fd&fd_step=2e-4"
    pot = load_potential("python:external_calculators:negated_w?on_check_failure=fd")
    pot.hessian(w_cell(9))
    assert pot.hessian_report()["source"] == "finite differences"
    with pytest.raises(InputError, match="unknown option 'nope'"):
        load_potential("python:external_calculators:mace_layout_w?nope=1")
    with pytest.raises(InputError, match="hessian='bogus'; choose one of auto, calculator, fd"):
        load_potential("python:external_calculators:mace_layout_w?hessian=bogus")
    with pytest.raises(InputError, match="has no get_hessian"):
        ASECalculatorPotential(EMT(), hessian="calculator")


def _cli(*args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "genanalysis", *args], capture_output=True, text=True, env=env,
                          timeout=600)


def test_evaluate_json_is_clean_with_a_noisy_calculator():
    p = _cli("evaluate", "--model", "python:noisy_calculator:make", "--reference", "builtin:W", "--lattice", "bcc",
             "--defect", "vacancy", "--size", "3", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)  # the whole of stdout is one JSON object
    assert "a banner printed at import" in p.stderr and "written to fd 1" in p.stderr and "computing" in p.stderr
    assert out["status"] == "converged" and out["error_energy_norm"] < 1e-8
    rep = out["model_hessian"]
    assert rep["source"] == "calculator" and rep["layout"] == "dense (3n, n, 3)" and rep["check"]["passed"]
    assert rep["hessians"] > 0 and rep["hessian_time"] > 0
    assert out["reference_hessian"] == {"source": "analytic"}


def test_defect_json_is_clean_with_a_noisy_calculator():
    p = _cli("defect", "--potential", "python:noisy_calculator:make?cutoff=6.0", "--lattice", "bcc", "--defect", "vacancy",
             "--size", "2", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["status"] == "converged" and "computing" in p.stderr
    assert out["hessian"]["layout"] == "dense (3n, n, 3)"


def test_refused_hessian_is_one_line_on_the_command_line():
    p = _cli("evaluate", "--model", "python:external_calculators:negated_w", "--reference", "builtin:W",
             "--lattice", "bcc", "--defect", "vacancy", "--size", "3", "--json")
    assert p.returncode == 2 and p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "disagrees with central differences" in lines[0], p.stderr


def test_autograd_is_refused_for_a_calculator_without_torch_modules():
    from ase.calculators.emt import EMT

    from genanalysis.potentials.wrapper import ASECalculatorPotential

    with pytest.raises(InputError, match="does not expose its torch modules"):
        ASECalculatorPotential(EMT(), hessian="autograd")
    assert ASECalculatorPotential(EMT()).hessian_report()["source"] == "finite differences"  # auto
