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


def _refused(capsys, argv, *needles):
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in (*needles, "needs about", f"the {ENV_LIMIT} limit of {LIMIT_GB} GB"):
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
