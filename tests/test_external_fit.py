"""External fits in sweeps (genanalysis.fitting.external): a training program the toolkit
does not know (examples/external/morse_fit.py, a least-squares Morse fitter reading the
exported extxyz) trains the model of a sweep point, and the experiment evaluates what it
wrote. Failures of the program are results; a spec the tools refuse is one line."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from genanalysis.exceptions import InputError
from genanalysis.fitting.external import ExternalFitSpec
from genanalysis.pipeline import fit_spec, run_point, validate

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "external"
TS = {"potential": "builtin:morse", "lattice": "triangular", "defects": ["perfect", "vacancy"],
      "size": 3, "configs_per_size": 2, "rattle": 0.03, "observations": "EF"}
FIT = {"kind": "external", "command": [sys.executable, str(EXAMPLE / "morse_fit.py"), "{train}", "params.json"],
       "output": "params.json", "load": "python:morse_fit:load", "validation_fraction": 0.25}
EXPERIMENT = {"defect": "vacancy", "size": 5}


@pytest.fixture(autouse=True)
def _loader_importable(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))


def _params(fit=None, ts=None):
    return {"trainingset": dict(TS, **(ts or {})), "fit": dict(FIT, **(fit or {})), "experiment": EXPERIMENT,
            "seed": 1}


def test_an_external_fit_goes_through_the_experiment(tmp_path):
    out = run_point(TS, FIT, EXPERIMENT, seed=1, workdir=tmp_path)
    m = out.metrics
    assert m["fit_status"] == "fitted" and m["status"] == "converged", m.get("reason")
    # a Morse model of the Morse reference (ASE's smoothing differs from the reference's
    # switch on [2.0, 2.5] Å): a close fit, and a close defect
    assert m["fit_rmse_F_validation"] < 5e-3  # eV/Å
    assert m["relative_error"] < 1e-2
    rep = out.fit_report
    assert rep["model_kind"] == "external" and rep["exit_code"] == 0
    assert rep["n_train"] + rep["n_validation"] == m["ts_configurations"]
    assert (tmp_path / "artifacts" / "fit" / "train" / "params.json").is_file()
    assert (tmp_path / "artifacts" / "fit" / "train" / "train.log").read_text().startswith("fitted")


def test_the_command_and_its_hyper_parameters_are_the_fits_identity():
    a, _ = fit_spec(FIT)
    b, _ = fit_spec(dict(FIT, command=FIT["command"] + ["--rcut1", "2.1"]))
    c, _ = fit_spec(dict(FIT, load="python:morse_fit:other"))
    d, _ = fit_spec(dict(FIT, validation_fraction=0.0))
    hashes = {s.content_hash() for s in (a, b, c, d)}
    assert len(hashes) == 4
    assert fit_spec(dict(FIT))[0].content_hash() == a.content_hash()


@pytest.mark.parametrize("command, reason", [
    ([sys.executable, "-c", "import sys; print('diverged at epoch 3'); sys.exit(3)"], "exited with code 3"),
    ([sys.executable, "-c", "print('done')"], "wrote no file"),
    ([sys.executable, "-c", "open('params.json', 'w').write('{{}}')"], "failed on the model file: KeyError"),
])
def test_a_failed_training_run_is_a_result(tmp_path, command, reason):
    out = run_point(TS, dict(FIT, command=command), EXPERIMENT, seed=1, workdir=tmp_path)
    assert out.metrics["status"] == "fit failure"
    assert reason in out.metrics["reason"]
    if "code 3" in reason:
        assert "diverged at epoch 3" in out.metrics["reason"]  # the program's last words


def test_a_training_run_over_its_time_limit_is_a_fit_failure(tmp_path):
    fit = dict(FIT, command=[sys.executable, "-c", "import time; time.sleep(30)"], timeout_s=0.5)
    out = run_point(TS, fit, EXPERIMENT, seed=1, workdir=tmp_path)
    assert out.metrics["status"] == "fit failure" and "timeout_s=0.5" in out.metrics["reason"]


@pytest.mark.parametrize("change, message", [
    ({"command": ["no-such-training-program", "{train}"]}, "not found on PATH"),
    ({"command": "python train.py"}, "non-empty list of strings"),
    ({"command": [sys.executable, "{training_file}"]}, "unknown or malformed placeholder"),
    ({"load": "python:no_such_module_xyz:load"}, "cannot import module"),
    ({"load": "python:morse_fit:no_such_loader"}, "has no callable"),
    ({"load": "examples/model.json"}, "must be 'python:MODULE:CALLABLE'"),
    ({"output": "../outside.json"}, "relative to the command's work directory"),
    ({"keys": "nosuch"}, "fit.keys='nosuch'"),
    ({"timeout_s": -1}, "fit.timeout_s"),
    ({"model": {"kind": "ace"}}, "not a key of an external fit"),
    ({"kind": "mace"}, "the only fit kind is 'external'"),
])
def test_bad_external_fit_tables_are_refused_before_any_work(change, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace("[", r"\[")):
        validate(_params(fit=change))


def test_required_keys_are_named():
    for key in ("command", "output", "load"):
        table = {k: v for k, v in FIT.items() if k != key}
        with pytest.raises(InputError, match=f"fit.{key}: required"):
            ExternalFitSpec.from_table(table)


def test_a_sweep_of_external_fits_runs_and_resumes_without_retraining(tmp_path):
    """The study spec of studies/ through the CLI, in worker processes; a rerun reuses the
    fits (nothing retrained: the training logs are untouched)."""
    spec = ROOT / "studies" / "external_morse_2d.toml"
    out = tmp_path / "res"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(EXAMPLE), os.environ.get("PYTHONPATH", "")]))
    # a smaller test domain: this tests the mechanism, not the rate
    text = spec.read_text().replace("size = 12 ", "allow_small_test_domain = true\nsize = 5 ")
    small = tmp_path / "study.toml"
    small.write_text(text)
    cmd = [sys.executable, "-m", "genanalysis", "run", str(small), "--out", str(out), "--workers", "2", "--quiet"]
    subprocess.run(cmd, check=True, env=env, timeout=600, cwd=tmp_path)
    with sqlite3.connect(out / "results.sqlite") as db:
        states = [r[0] for r in db.execute("SELECT state FROM tasks")]
    assert states == ["done", "done"]
    logs = sorted(out.rglob("train.log"))
    assert len(logs) == 2
    stamps = [p.stat().st_mtime_ns for p in logs]
    subprocess.run(cmd, check=True, env=env, timeout=600, cwd=tmp_path)
    assert [p.stat().st_mtime_ns for p in sorted(out.rglob("train.log"))] == stamps


def test_the_mace_study_table_is_an_external_fit():
    """studies/external_mace_w.toml parses into an external fit (running it needs the mace
    extra; its tools are checked only where they are installed)."""
    from genanalysis.tomlutil import read_toml

    study = read_toml(ROOT / "studies" / "external_mace_w.toml", "study spec")
    spec, _ = fit_spec(study["fit"], study["seed"])
    assert isinstance(spec, ExternalFitSpec) and spec.command[0] == "mace_run_train"
    argv = spec.argv(Path("/t.xyz"), Path("/v.xyz"), Path("/w"), 7)
    assert argv[argv.index("--train_file") + 1] == "/t.xyz" and argv[argv.index("--seed") + 1] == "7"
    assert (ROOT / "examples" / "mace" / "mace_w.py").read_text().count("def load(") == 1


def test_a_gap_trained_by_gap_fit_goes_through_the_experiment(tmp_path, monkeypatch):
    """The second family: QUIP's gap_fit (the test extra installs it) trains a two-body +
    SOAP GAP on the exported W set, with the command of studies/external_gap_w.toml; the
    model is an XML file plus sparse-point files beside it (extra_outputs)."""
    pytest.importorskip("quippy", reason="quippy-ase is not installed: pip install -e '.[test]'")
    from genanalysis.tomlutil import read_toml

    monkeypatch.syspath_prepend(str(ROOT / "examples" / "gap"))
    study = read_toml(ROOT / "studies" / "external_gap_w.toml", "study spec")
    ts = dict(study["trainingset"], size=2, configs_per_size=3, observations="EFV")
    out = run_point(ts, study["fit"], {"defect": "vacancy", "size": 3}, seed=1, workdir=tmp_path)
    m = out.metrics
    assert m["fit_status"] == "fitted", m.get("reason")
    assert m["status"] == "converged", m.get("reason")
    assert 0 < m["fit_rmse_F_train"] < 0.1  # eV/Å: a GAP of the W EAM on its own data
    assert np.isfinite(m["fit_rmse_V_train"])  # QUIP's calculator gives the stress
    assert m["error_energy_norm"] > 0 and m["effectivity"] > 0
    files = sorted(p.name for p in (tmp_path / "artifacts" / "fit" / "train").glob("w.xml*"))
    assert files[0] == "w.xml" and len(files) == 3  # the model and its two sparse-point files
