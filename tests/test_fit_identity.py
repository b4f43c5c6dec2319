"""The fit's identity is (fit spec, training-set content): fits to other data or other
spatial weights never share a hash or a shared-work (cache) entry; identical inputs do.

Units: Å, eV, eV/Å, eV/Å²; hashes are hex strings. Small 2D systems (triangular Morse).
"""

from __future__ import annotations

import copy

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from genanalysis.data import Configuration, configurations_hash
from genanalysis.fit import FitSpec, fit, fit_hash
from genanalysis.lattice import defect_cell
from genanalysis.potentials import load_potential

POT = load_potential("builtin:morse")
A = POT.equilibrium_lattice_constant("triangular")
SPEC = {"validation_fraction": 0.0, "model": {"cutoff": 2.5, "degree": 4, "body_order": 3, "l_max": 2}}


def _configs(seed: int, hessian: bool = True) -> list[Configuration]:
    rng = np.random.default_rng(seed)
    out = []
    for k in range(4):
        defect = ("vacancy", "perfect")[k % 2]
        at = defect_cell("triangular", A, 4, defect)
        at.positions[:, :2] += rng.normal(scale=0.03, size=(len(at), 2))
        ev = POT.observe(at)
        out.append(Configuration(at, group=defect, energy=ev.energy, forces=ev.forces, virial=ev.virial,
                                 hessian=POT.hessian(at) if hessian and k == 1 else None))
    return out


BASE = _configs(0)


def _perturb(configs, field: str, index: int):
    out = copy.deepcopy(configs)
    c = out[index % len(out)]
    if field == "positions":
        c.atoms.positions[0, 0] = np.nextafter(c.atoms.positions[0, 0], np.inf)
    elif field == "energy":
        c.energy = np.nextafter(c.energy, np.inf)
    elif field == "forces":
        c.forces[-1, 1] += 1e-12
    elif field == "virial":
        c.virial[0, 1] += 1e-12
    elif field == "group":
        c.group = c.group + "x"
    elif field == "atom_weights":
        c.atom_weights = np.ones(len(c))
    elif field == "defect_centre":
        c.atoms.info["defect_centre"] = list(np.asarray(c.atoms.info.get("defect_centre", [0.0, 0.0, 0.0])) + 1e-9)
    elif field == "order":
        out = out[1:] + out[:1]
    elif field == "hessian":
        out[1].hessian = out[1].hessian * (1 + 1e-12)
    return out


@given(field=st.sampled_from(["positions", "energy", "forces", "virial", "group", "atom_weights",
                              "defect_centre", "order", "hessian"]), index=st.integers(0, 3))
@settings(max_examples=30, deadline=None)
def test_training_set_hash_sees_every_input_of_the_fit(field, index):
    assert configurations_hash(copy.deepcopy(BASE)) == configurations_hash(BASE)
    assert configurations_hash(_perturb(BASE, field, index)) != configurations_hash(BASE)


def test_fits_to_other_data_have_other_identities():
    spec = FitSpec.from_dict(dict(SPEC, training_set="a"))
    moved = FitSpec.from_dict(dict(SPEC, training_set="elsewhere/b"))
    other = _configs(1)
    r0, r1 = fit(BASE, spec), fit(other, spec)
    again = fit(_configs(0), moved)  # the same data, rebuilt, at another path: the same fit
    assert r0.report["spec_hash"] == r1.report["spec_hash"] == again.report["spec_hash"]
    assert r0.report["training_set_hash"] != r1.report["training_set_hash"]
    assert r0.report["fit_hash"] != r1.report["fit_hash"]
    assert again.report["fit_hash"] == r0.report["fit_hash"] == fit_hash(spec, BASE)
    assert np.array_equal(again.model.coef_, r0.model.coef_)
    assert not np.allclose(r1.model.coef_, r0.model.coef_)


def test_sweep_shares_fits_exactly_when_data_and_spec_agree():
    """The shared 'fit' work of the pipeline is keyed by the [fit] table (spatial weights
    included) and the training set's node: tasks that differ only in the test defect share
    a fit; tasks that differ in training data or spatial weights never do."""
    from genanalysis.sweep import parse_study
    from genanalysis.sweep.plan import build_plan

    raw = {"study": {"name": "identity", "task": "generalisation"}, "seed": 0,
           "trainingset": {"potential": "builtin:morse", "lattice": "triangular", "defects": ["perfect", "vacancy"],
                           "size": 3, "configs_per_size": 1, "rattle": 0.03, "observations": "EF"},
           "fit": dict(SPEC, spatial={"amplitude": 0.0, "radius": 2.0}),
           "experiment": {"defect": "vacancy", "size": 12},
           "sweep": {"mode": "product", "trainingset.size": [2, 3], "fit.spatial.amplitude": [0.0, 5.0],
                     "experiment.defect": ["vacancy", "interstitial"]}}
    plan = build_plan(parse_study(raw))
    assert len(plan.tasks) == 8
    fit_of, ts_of = {}, {}
    for task in plan.tasks:
        deps = dict(task.deps)
        key = (task.params["trainingset"]["size"], task.params["fit"]["spatial"]["amplitude"])
        fit_of.setdefault(key, set()).add(deps["fit"])
        ts_of.setdefault(key[0], set()).add(deps["trainingset"])
        assert dict(plan.shared[deps["fit"]].deps)["trainingset"] == deps["trainingset"]
    assert all(len(v) == 1 for v in fit_of.values()) and all(len(v) == 1 for v in ts_of.values())
    assert len({h for v in fit_of.values() for h in v}) == 4
    assert len({h for v in ts_of.values() for h in v}) == 2
    assert build_plan(parse_study(copy.deepcopy(raw))).shared.keys() == plan.shared.keys()
