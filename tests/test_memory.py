"""Requests too large for the machine are refused before anything is allocated: one line
naming the value, the estimate and the limit; GENANALYSIS_MEMORY_LIMIT_GB overrides the
limit (here it fixes it, so the tests do not depend on the machine's free memory)."""

from __future__ import annotations

import json

import pytest

from genanalysis.cli import main
from genanalysis.exceptions import InputError
from genanalysis.memory import ENV_LIMIT, ace_features, memory_limit

LIMIT_GB = 16


@pytest.fixture(autouse=True)
def _limit(monkeypatch):
    monkeypatch.setenv(ENV_LIMIT, str(LIMIT_GB))


def _refused(capsys, argv, *needles, needs_limit=True):
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    limit = [f"the limit of {LIMIT_GB} GB set by {ENV_LIMIT}"] if needs_limit else []
    for needle in (*needles, "needs about", *limit):
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("lattice, size, atoms", [("bcc", 400, "128,000,000"), ("bcc", 100000, None),
                                                  ("triangular", 20000, "400,000,000")])
def test_defect_cell_too_large_is_refused(capsys, lattice, size, atoms):
    line = _refused(capsys, ["defect", "--potential", "builtin:W", "--lattice", lattice, "--defect", "vacancy",
                             "--size", str(size)], f"--size {size}")
    if atoms:
        assert f"{atoms} atoms" in line


def test_the_override_raises_the_limit(monkeypatch):
    from genanalysis.lattice import check_cell

    with pytest.raises(InputError, match="cell size n=400"):
        check_cell("bcc", 400)
    monkeypatch.setenv(ENV_LIMIT, "1000")
    check_cell("bcc", 400)  # 25.6 GB of cell arrays: allowed now
    monkeypatch.setenv(ENV_LIMIT, "lots")
    with pytest.raises(InputError, match=ENV_LIMIT):
        memory_limit()
    monkeypatch.delenv(ENV_LIMIT)
    limit, source = memory_limit()
    assert source in ("MemAvailable", "unknown") and (limit is None or limit > 0)


def test_basis_feature_count_is_exact_up_to_three_body_and_a_lower_bound_for_four():
    from genanalysis.models.basis import ACEBasis, ACESpec

    for degree, body, l_max, dim, w in [(6, 3, 2, 3, 1.0), (8, 3, 3, 2, 1.0), (9, 3, 3, 3, 0.5), (6, 2, 2, 3, 1.0),
                                        (7, 4, 2, 3, 1.0), (6, 4, 3, 2, 1.0)]:
        n = len(ACEBasis(ACESpec(degree=degree, body_order=body, l_max=l_max, dim=dim, w_l=w)).names)
        est = ace_features(degree, body, l_max, w)
        assert est == n if body <= 3 else 0 < est <= n


def test_fit_of_a_huge_basis_is_refused(tmp_path, capsys):
    from genanalysis.models.basis import ACESpec

    with pytest.raises(InputError, match=r"degree=100000 \(body_order 3, l_max 2"):
        ACESpec(degree=100000, body_order=3, l_max=2)
    # the command line: tests/test_bad_inputs.py::...[fit_degree_too_large_for_memory]


def test_model_file_with_a_huge_degree_is_refused(tmp_path, capsys):
    from genanalysis.models.basis import ACESpec
    from genanalysis.models.io import save_model
    from genanalysis.models.linear import LinearACE

    spec = ACESpec(cutoff=2.5, degree=4, body_order=3, l_max=2, dim=2)
    model = LinearACE(spec)
    d = save_model(model, tmp_path / "model", element="X")
    header = json.loads((d / "model.json").read_text())
    header["spec"]["degree"] = 10**6
    (d / "model.json").write_text(json.dumps(header))
    _refused(capsys, ["evaluate", "--model", str(d), "--reference", "builtin:morse", "--lattice", "triangular",
                      "--defect", "vacancy", "--size", "5"], "degree=1000000")


def test_training_set_of_1e8_configurations_is_refused(tmp_path, capsys):
    spec = tmp_path / "ts.toml"
    spec.write_text('potential = "builtin:W"\nlattice = "bcc"\ndefects = ["vacancy"]\nsizes = [3]\n'
                    'configs_per_size = 100000000\nrattle = 0.01\n')
    _refused(capsys, ["trainingset", str(spec), "--out", str(tmp_path / "ts")], "configs_per_size=100000000")
    assert not (tmp_path / "ts").exists()


def test_sweep_with_a_huge_test_domain_is_refused_at_validation(tmp_path, capsys):
    import tomli_w

    raw = {"study": {"name": "big", "task": "generalisation"},
           "trainingset": {"potential": "builtin:morse", "lattice": "triangular", "defects": ["perfect", "vacancy"],
                           "size": 3, "configs_per_size": 1, "rattle": 0.03, "observations": "EF"},
           "fit": {"model": {"kind": "ace", "cutoff": 2.5, "degree": 4, "body_order": 3, "l_max": 2}},
           "experiment": {"defect": "vacancy", "size": 100000},
           "sweep": {"seed": [0, 1]}}
    spec = tmp_path / "big.toml"
    spec.write_text(tomli_w.dumps(raw))
    _refused(capsys, ["run", str(spec), "--out", str(tmp_path / "out"), "--workers", "0"], "experiment.size=100000")
    assert not (tmp_path / "out").exists()


def test_the_flag_sets_the_limit_for_its_command_and_its_child_processes(monkeypatch, capsys):
    import os
    import subprocess
    import sys

    from genanalysis.lattice import check_cell
    from genanalysis.memory import FLAG, limit_override

    with limit_override(1000.0):  # the flag wins over the environment (16 GB here)
        assert memory_limit() == (1000.0 * 1e9, FLAG)
        check_cell("bcc", 400)
        child = subprocess.run([sys.executable, "-c", "from genanalysis.memory import memory_limit as m; "
                                "print(m()[0])"], capture_output=True, text=True, check=True, env=os.environ)
        assert float(child.stdout) == 1000.0 * 1e9
    assert memory_limit() == (LIMIT_GB * 1e9, ENV_LIMIT)  # restored after the command
    # 100 GB: the 25.6 GB of atoms pass, the ≈450 GB with their pairs do not
    line = _refused(capsys, ["defect", "--potential", "builtin:W", "--lattice", "bcc", "--defect", "vacancy",
                             "--size", "400", "--memory-limit", "100"], "cell size n=400", "neighbour list within",
                    needs_limit=False)
    assert "the limit of 100 GB set by --memory-limit" in line


def test_a_cell_whose_atoms_fit_is_refused_for_its_neighbour_list():
    from genanalysis.lattice import check_cell
    from genanalysis.memory import CELL_BYTES_PER_ATOM, pairs_bytes

    atoms = 2 * 400**3
    assert atoms * CELL_BYTES_PER_ATOM < LIMIT_GB * 1e9 * 2  # the atoms alone would pass a 32 GB limit
    density = 2 / 3.165**3
    assert pairs_bytes(atoms, density, 5.7, 3) > 1e11
    with pytest.raises(InputError, match=r"128,000,000 atoms and their neighbour list within 5\.7 Å"):
        check_cell("bcc", 400, a=3.165, radius=5.7)
    check_cell("bcc", 20, a=3.165, radius=5.7)


@pytest.fixture(scope="module")
def fc_configs(tmp_path_factory):
    """A small training set with force constants, built once."""
    from genanalysis.trainingset import TrainingSetSpec, build, load_training_set

    d = tmp_path_factory.mktemp("fc")
    build(TrainingSetSpec(potential="builtin:morse", lattice="triangular", defects=("vacancy",), sizes=(5,),
                          configs_per_size=1, rattle=0.02, observations="EFH"), d, workers=1)
    return load_training_set(d)


def test_the_design_estimate_is_a_lower_bound_of_the_fit_s_memory(fc_configs):
    # numpy's allocations are traced: the estimate must not exceed the peak it stands for
    import tracemalloc

    from genanalysis import fit as fitmod
    from genanalysis.fit import LossWeights, ModelSpec

    seen = {}
    real = fitmod.check_memory
    fitmod.check_memory = lambda what, estimate: seen.setdefault("estimate", estimate)
    try:
        tracemalloc.start()
        model, diag = fitmod.fit_linear(fc_configs, ModelSpec(cutoff=2.5, degree=6, body_order=3, l_max=2),
                                        LossWeights(H=1.0))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        fitmod.check_memory = real
    assert diag["rows_per_type"]["H"] > 0
    assert 0 < seen["estimate"] <= peak


def test_a_fit_whose_design_does_not_fit_is_refused_before_any_row(fc_configs, monkeypatch):
    from genanalysis import fit as fitmod
    from genanalysis.fit import LossWeights, ModelSpec
    from genanalysis.memory import limit_override

    def no_design(*args, **kwargs):
        raise AssertionError("a design row was computed")

    monkeypatch.setattr("genanalysis.models.linear.LinearACE.design", no_design)
    with limit_override(1e-4), pytest.raises(InputError, match=r"the fit's design \(.* EFH rows of a 24-atom "
                                                                r"configuration × \d+ parameters\) needs about"):
        fitmod.fit_linear(fc_configs, ModelSpec(cutoff=2.5, degree=6, body_order=3, l_max=2), LossWeights(H=1.0))
