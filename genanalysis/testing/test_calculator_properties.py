"""The property tests run by ``pytest --pyargs genanalysis.testing --genanalysis-calculator SPEC``.

Each test draws configurations (defect cells of the chosen lattice, strained and rattled:
:func:`genanalysis.testing.strategies.configurations`) and asserts one property of
:mod:`genanalysis.testing.properties`; a failure message is the property's report (which
property, by how much). Without ``--genanalysis-calculator`` every test skips.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from genanalysis.testing import properties as props
from genanalysis.testing.strategies import configurations


def _for_configurations(target, check, *, max_size=2):
    # no shrinking: each example of a machine-learned model costs seconds, and the report
    # already says which property failed and by how much
    @settings(max_examples=target.examples, deadline=None, derandomize=True, database=None,
              phases=(Phase.explicit, Phase.generate), suppress_health_check=list(HealthCheck))
    @given(atoms=configurations(target.lattice, target.a, symbol=target.symbol, max_size=max_size),
           seed=st.integers(0, 2**16))
    def run(atoms, seed):
        for report in check(target.potential, atoms, seed):
            assert report.passed, str(report)

    run()


@pytest.mark.parametrize("name, check", [
    ("forces = -grad E", lambda pot, at, seed: [props.forces_are_minus_gradient(pot, at, seed=seed)]),
    ("virial = -dE/dstrain", lambda pot, at, seed: [props.virial_is_strain_derivative(pot, at, seed=seed)]),
    ("rotation invariance", lambda pot, at, seed: [props.rotation_invariance(pot, at, seed=seed)]),
    ("reflection invariance", lambda pot, at, seed: [props.reflection_invariance(pot, at, seed=seed)]),
    ("translation invariance", lambda pot, at, seed: [props.translation_invariance(pot, at, seed=seed)]),
    ("permutation invariance", lambda pot, at, seed: [props.permutation_invariance(pot, at, seed=seed)]),
    ("extensivity", lambda pot, at, seed: [props.extensivity(pot, at)]),
])
def test_property(genanalysis_target, name, check):
    _for_configurations(genanalysis_target, check)


def test_hessian_symmetric_with_acoustic_sum_rule(genanalysis_target):
    _for_configurations(genanalysis_target, lambda pot, at, seed: props.hessian_properties(pot, at), max_size=1)


def test_smooth_across_cutoff(genanalysis_target):
    t = genanalysis_target
    report = props.smooth_across_cutoff(t.potential, cutoff=t.cutoff, symbol=t.symbol)
    if report.status == "skipped":
        pytest.skip(report.detail)
    assert report.passed, str(report)
