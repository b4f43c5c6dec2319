"""pytest plugin (entry point ``pytest11``): property tests against a user's calculator.

    pytest --pyargs genanalysis.testing --genanalysis-calculator python:MODULE:CALLABLE \
        [--genanalysis-lattice bcc] [--genanalysis-element W] [--genanalysis-a 3.1648] \
        [--genanalysis-cutoff 5.0] [--genanalysis-examples 5]

Without ``--genanalysis-calculator`` the plugin only adds its options and fixture: no test
of any other suite changes, and the property tests of ``genanalysis.testing`` skip. Nothing
of the toolkit is imported until a test asks for the fixture.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest


def pytest_addoption(parser):
    group = parser.getgroup("genanalysis", "property tests of an interatomic potential (genanalysis.testing)")
    group.addoption("--genanalysis-calculator", default=None, metavar="SPEC",
                    help="potential to test: python:MODULE:CALLABLE (a callable returning an ASE calculator) "
                         "or any genanalysis potential spec (builtin:W is tested through its ASE calculator)")
    group.addoption("--genanalysis-lattice", default="bcc", help="lattice of the test configurations (default bcc)")
    group.addoption("--genanalysis-element", default=None,
                    help="chemical symbol of the atoms (default: the potential's species, else X)")
    group.addoption("--genanalysis-a", type=float, default=None,
                    help="lattice constant, Å (default: the potential's equilibrium value; needs a cutoff)")
    group.addoption("--genanalysis-cutoff", type=float, default=None,
                    help="cutoff radius, Å (default: the calculator's 'cutoff' attribute; no cutoff: the "
                         "smoothness check skips)")
    group.addoption("--genanalysis-examples", type=int, default=5,
                    help="hypothesis examples per property test (default 5)")


@dataclass(frozen=True)
class Target:
    """What the property tests run on: ``potential`` (a Potential around the calculator),
    ``lattice``, ``a`` (Å), ``symbol``, ``cutoff`` (Å or None), ``examples``."""

    spec: str
    potential: object
    lattice: str
    a: float
    symbol: str
    cutoff: float | None
    examples: int


def make_target(spec: str, *, lattice: str = "bcc", element: str | None = None, a: float | None = None,
                cutoff: float | None = None, examples: int = 5) -> Target:
    """Resolve the options into a :class:`Target`. ``builtin:NAME`` and EAM files are
    wrapped through their ASE calculator, so the wrapper is what is tested."""
    import math

    from genanalysis.exceptions import InputError
    from genanalysis.potentials import load_potential
    from genanalysis.potentials.wrapper import ASECalculatorPotential

    pot = load_potential(spec)
    if not isinstance(pot, ASECalculatorPotential):
        pot = ASECalculatorPotential(pot.calculator(), name=spec, cutoff=pot.cutoff, species=pot.species)
    elif cutoff is not None:
        pot.cutoff = float(cutoff)
    if element and not pot.species:
        pot.species = (element,)  # the wrapper then builds its lattices of this element
    symbol = element or (pot.species[0] if pot.species else "X")
    if a is None:
        if not math.isfinite(pot.cutoff):
            raise InputError(f"{spec}: give --genanalysis-a (Å) or --genanalysis-cutoff (Å) to find the lattice "
                             "constant")
        a = pot.equilibrium_lattice_constant(lattice)
    if examples < 1:
        raise InputError(f"--genanalysis-examples {examples} must be at least 1")
    rc = pot.cutoff if math.isfinite(pot.cutoff) else None
    return Target(spec, pot, lattice, float(a), symbol, rc, int(examples))


@pytest.fixture(scope="session")
def genanalysis_target(request) -> Target:
    """The calculator under test (from ``--genanalysis-calculator``); skips without it."""
    spec = request.config.getoption("--genanalysis-calculator")
    if not spec:
        pytest.skip("no --genanalysis-calculator given (e.g. --genanalysis-calculator python:MODULE:CALLABLE)")
    opt = request.config.getoption
    return make_target(spec, lattice=opt("--genanalysis-lattice"), element=opt("--genanalysis-element"),
                       a=opt("--genanalysis-a"), cutoff=opt("--genanalysis-cutoff"),
                       examples=opt("--genanalysis-examples"))
