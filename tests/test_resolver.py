"""One resolver of potential specs: every stage accepts the same specs, resolved by
:func:`genanalysis.potentials.load_potential`, with the same result as the resolved
Potential; the registry imports no stage above it when it is imported."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from genanalysis.defect import perfect_energy_per_atom, relax, solve_defect, stability_constant
from genanalysis.exceptions import InputError
from genanalysis.lattice import defect_cell
from genanalysis.observe import observe
from genanalysis.potentials import Potential, load_potential

BASE, LATTICE = "builtin:morse", "triangular"
SURROGATE = f"surrogate:{BASE}?family=stress&eta=1e-3"


@pytest.fixture(scope="module")
def fitted_dir(tmp_path_factory):
    from genanalysis.models.basis import ACESpec
    from genanalysis.models.io import save_model
    from genanalysis.models.linear import LinearACE

    model = LinearACE(ACESpec(cutoff=2.5, degree=2, body_order=2, dim=2, l_max=0))
    model.coef_ = np.linspace(-0.1, 0.1, len(model.coef_))
    return str(save_model(model, tmp_path_factory.mktemp("fitted") / "m"))


def _a():
    return load_potential(BASE).equilibrium_lattice_constant(LATTICE)


@pytest.mark.parametrize("which", ["surrogate", "fitted"])
def test_every_stage_accepts_the_specs_evaluate_accepts(which, fitted_dir):
    spec = SURROGATE if which == "surrogate" else fitted_dir
    a = _a()
    pot = load_potential(spec, lattice=LATTICE, a=a)
    assert isinstance(pot, Potential)
    cell = defect_cell(LATTICE, a, 4, "vacancy", pot.species[0] if pot.species != ("X",) else "X")
    by_spec, by_pot = relax(cell, spec, max_iter=5), relax(cell, pot, max_iter=5)
    assert by_spec.energy == by_pot.energy and by_spec.iterations == by_pot.iterations
    np.testing.assert_array_equal(by_spec.atoms.positions, by_pot.atoms.positions)
    o1, o2 = observe(cell, spec, "EFVH"), observe(cell, pot, "EFVH")
    assert o1["energy"] == o2["energy"]
    np.testing.assert_array_equal(o1["forces"], o2["forces"])
    assert (o1["hessian"] != o2["hessian"]).nnz == 0
    assert perfect_energy_per_atom(spec, LATTICE, a) == perfect_energy_per_atom(pot, LATTICE, a)
    assert stability_constant(cell, spec) == stability_constant(cell, pot)
    assert solve_defect(spec, LATTICE, a, "vacancy", 4, max_iter=5).formation_energy == \
        solve_defect(pot, LATTICE, a, "vacancy", 4, max_iter=5).formation_energy


def test_surrogate_spec_takes_lattice_and_a_from_the_cell():
    a = _a()
    cell = defect_cell(LATTICE, a, 4, "vacancy")
    sur = load_potential(SURROGATE, atoms=cell)
    assert sur.lattice == LATTICE and sur.a == a
    assert load_potential(SURROGATE, lattice=LATTICE, a=a).eta == sur.eta
    with pytest.raises(InputError, match="needs a lattice"):
        load_potential(SURROGATE)


def test_options_that_do_not_apply_are_refused():
    with pytest.raises(InputError, match="format"):
        load_potential("builtin:W", format="eam/alloy")
    with pytest.raises(InputError, match="format"):
        load_potential(SURROGATE, lattice=LATTICE, format="eam")
    with pytest.raises(InputError, match="element 'Cu'"):
        load_potential("surrogate:builtin:W?family=core&eta=1e-3", lattice="bcc", element="Cu")
    with pytest.raises(InputError, match="not supported"):
        load_potential(3.5)


def test_importing_the_registry_imports_no_stage_above_it():
    code = ("import sys, genanalysis.potentials as p; p.load_potential('builtin:W'); "
            "bad = [m for m in ('genanalysis.surrogates', 'genanalysis.models', 'genanalysis.experiment', "
            "'genanalysis.defect') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_base_energy_forces_is_evaluate_plus_the_operator(fitted_dir):
    """The base class's energy_forces (what a potential without a fused pass, an ASE
    calculator, inherits) is observe plus the Hessian as operator; the engines, surrogates
    and fitted models fuse it, and their fused pass gives the same."""
    from genanalysis.potentials.base import Potential

    fused = load_potential(fitted_dir)
    assert fused.fused_linearise and load_potential("builtin:W").fused_linearise
    assert not Potential.fused_linearise
    cell = defect_cell(LATTICE, _a(), 3, "vacancy")
    cell.positions[:, :2] += np.random.default_rng(1).normal(0.0, 0.05, (len(cell), 2))
    pot = fused
    e, f, op = Potential.energy_forces(pot, cell)
    ev = pot.observe(cell)
    assert op is None and e == ev.energy
    np.testing.assert_array_equal(f, ev.forces)
    _, _, op = Potential.energy_forces(pot, cell, linearise=True)
    v = np.random.default_rng(2).normal(size=3 * len(cell))
    np.testing.assert_allclose(op @ v, pot.hessian(cell) @ v, rtol=1e-12, atol=1e-12)
    e2, f2, op2 = pot.energy_forces(cell, linearise=True)
    np.testing.assert_allclose(f2, f, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(op2 @ v, op @ v, rtol=1e-12, atol=1e-12)
    assert abs(e2 - e) <= 1e-12 * max(1.0, abs(e))
