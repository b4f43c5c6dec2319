"""Bad inputs across every subcommand: exit code 2, exactly one line on stderr naming what
was wrong, no traceback, and nothing written (no output file or directory created, no
results database changed).

The commands run in-process (:func:`genanalysis.cli.main`); each case is a function
``case(w) -> (argv, needles, paths_that_must_not_appear)`` building what it needs in the
work directory ``w``. A few fixtures (a training set, a fitted model, a finished sweep) are
built once per module.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
import tomli_w

from genanalysis.cli import main

TS = {"potential": "builtin:morse", "lattice": "triangular", "defects": ["perfect"], "sizes": [3],
      "configs_per_size": 1, "rattle": 0.03, "observations": "EF"}
FIT = {"training_set": "ts", "model": {"kind": "ace", "cutoff": 2.5, "degree": 4, "body_order": 3, "l_max": 2}}
TOY = {"study": {"name": "toy", "task": "toy.series", "imports": ["toykinds"]},
       "trainingset": {"size": 4}, "experiment": {"p": 2.0}, "sweep": {"trainingset.size": [4, 8]}}
PIPE = {"study": {"name": "pipe", "task": "generalisation"},
        "trainingset": {"potential": "builtin:morse", "lattice": "triangular", "defects": ["perfect", "vacancy"],
                        "size": 3, "configs_per_size": 1, "rattle": 0.03, "observations": "EF"},
        "fit": {"model": {"kind": "ace", "cutoff": 2.5, "degree": 4, "body_order": 3, "l_max": 2}},
        "experiment": {"defect": "vacancy", "size": 5}, "sweep": {"seed": [0, 1]}}
EVAL = ["--reference", "builtin:morse", "--lattice", "triangular", "--defect", "vacancy", "--size", "5"]
CAL = ["calibrate", "--potential", "builtin:morse", "--lattice", "triangular", "--defect", "vacancy"]


def _quiet(argv):
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(argv) == 0


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A training set, a fitted model and a finished toy sweep, built once."""
    b = tmp_path_factory.mktemp("base")
    (b / "ts.toml").write_text(tomli_w.dumps(TS))
    _quiet(["trainingset", str(b / "ts.toml"), "--out", str(b / "ts")])
    (b / "fit.toml").write_text(tomli_w.dumps(FIT))
    _quiet(["fit", str(b / "fit.toml"), "--out", str(b / "model")])
    (b / "toy.toml").write_text(tomli_w.dumps(TOY))
    _quiet(["run", str(b / "toy.toml"), "--out", str(b / "res"), "--workers", "0", "--quiet"])
    return b


def _toml(w: Path, name: str, raw: dict) -> str:
    (w / name).write_text(tomli_w.dumps(raw))
    return str(w / name)


def _copy(base: Path, w: Path, name: str) -> Path:
    shutil.copytree(base / name, w / name)
    return w / name


def _toy(**changes):
    raw = json.loads(json.dumps(TOY))
    for path, value in changes.items():
        table, _, key = path.rpartition(".")
        raw[table][key] = value
    return raw


# -- the cases: name -> function(w, base) -> (argv, needles, must_not_exist) ---------------------

def fit_out_is_a_file(w, base):
    (w / "afile").write_text("x")
    shutil.copytree(base / "ts", w / "ts")
    return ["fit", _toml(w, "fit.toml", FIT), "--out", str(w / "afile")], ["--out", "not a directory"], []


def fit_degree_four(w, base):
    shutil.copytree(base / "ts", w / "ts")
    raw = dict(FIT, model=dict(FIT["model"], degree="four"))
    return ["fit", _toml(w, "fit.toml", raw), "--out", str(w / "m")], ["model.degree='four'", "whole number"], ["m"]


def fit_spec_is_a_directory(w, base):
    return ["fit", str(w), "--out", str(w / "m")], ["is a directory"], ["m"]


def fit_degree_too_large_for_memory(w, base):
    shutil.copytree(base / "ts", w / "ts")
    raw = dict(FIT, model=dict(FIT["model"], degree=100000))
    return ["fit", _toml(w, "fit.toml", raw), "--out", str(w / "m")], ["degree=100000", "needs about"], ["m"]


def calibrate_plot_into_missing_directory(w, base):
    return [*CAL, "--sizes", "3,4", "--reference-size", "6", "--plot", "/nonexistent/x.png"], \
        ["--plot", "does not exist"], []


def calibrate_duplicate_sizes(w, base):
    return [*CAL, "--sizes", "3,3,4", "--reference-size", "6"], ["--sizes", "N=3 twice"], []


def calibrate_negative_min_size(w, base):
    return [*CAL, "--sizes", "3,4", "--reference-size", "6", "--min-size", "-2"], ["--min-size -2", "1..4"], []


def evaluate_model_kind_swapped(w, base):
    m = _copy(base, w, "model")
    header = json.loads((m / "model.json").read_text())
    (m / "model.json").write_text(json.dumps(dict(header, kind="mlp")))
    return ["evaluate", "--model", str(m), *EVAL], ["model.json", "'mlp' model"], []


def evaluate_model_header_is_a_list(w, base):
    m = _copy(base, w, "model")
    (m / "model.json").write_text("[1, 2]")
    return ["evaluate", "--model", str(m), *EVAL], ["model.json", "JSON list"], []


def evaluate_model_huge_degree(w, base):
    m = _copy(base, w, "model")
    header = json.loads((m / "model.json").read_text())
    header["spec"]["degree"] = 10**6
    (m / "model.json").write_text(json.dumps(header))
    return ["evaluate", "--model", str(m), *EVAL], ["degree=1000000", "needs about"], []


def defect_eam_file_with_nan(w, base):
    from genanalysis.potentials.builtin import tungsten_zhou
    from genanalysis.potentials.eamfile import write_eam_file

    path = w / "W.eam.alloy"
    write_eam_file(path, tungsten_zhou(), "eam/alloy", atomic_numbers=[74], n_r=200, n_rho=200, rho_max=100.0)
    lines = path.read_text().splitlines()
    words = lines[10].split()
    words[0] = "nan"
    lines[10] = " ".join(words)
    path.write_text("\n".join(lines) + "\n")
    return ["defect", "--potential", str(path), "--lattice", "bcc", "--defect", "vacancy", "--size", "3"], \
        ["W.eam.alloy", "not finite"], []


def defect_size_too_large_for_memory(w, base):
    return ["defect", "--potential", "builtin:W", "--lattice", "bcc", "--defect", "vacancy", "--size", "100000"], \
        ["--size 100000", "needs about"], []


def defect_cell_fits_but_its_neighbour_list_does_not(w, base):
    # 25.6 GB of atoms pass a 30 GB limit; with the pairs within the cutoff they do not
    return ["defect", "--potential", "builtin:W", "--lattice", "bcc", "--defect", "vacancy", "--size", "400",
            "--memory-limit", "30"], ["cell size n=400", "neighbour list within", "set by --memory-limit"], []


def defect_memory_limit_not_a_number(w, base):
    return ["defect", "--potential", "builtin:W", "--lattice", "bcc", "--defect", "vacancy", "--size", "3",
            "--memory-limit", "lots"], ["--memory-limit", "'lots'", "positive number of GB"], []


def trainingset_sizes_is_a_string(w, base):
    return ["trainingset", _toml(w, "ts.toml", dict(TS, sizes="two")), "--out", str(w / "o")], \
        ["sizes='two'", "list of whole numbers"], ["o"]


def trainingset_configs_per_size_too_large_for_memory(w, base):
    raw = dict(TS, configs_per_size=10**8)
    return ["trainingset", _toml(w, "ts.toml", raw), "--out", str(w / "o")], \
        ["configs_per_size=100000000", "needs about"], ["o"]


def run_study_name_dotdot(w, base):
    return ["run", _toml(w, "s.toml", _toy(**{"study.name": ".."})), "--workers", "0"], ["study.name", "'..'"], \
        ["results.sqlite", "../results.sqlite"]


def run_workers_and_scheduler(w, base):
    return ["run", _toml(w, "s.toml", TOY), "--out", str(w / "o"), "--workers", "2", "--scheduler",
            "tcp://127.0.0.1:9"], ["--workers and --scheduler"], ["o"]


def run_scheduler_not_an_address(w, base):
    return ["run", _toml(w, "s.toml", TOY), "--out", str(w / "o"), "--scheduler", "notaurl"], \
        ["--scheduler 'notaurl'", "tcp://HOST:PORT"], ["o"]


def run_scheduler_unreachable(w, base):
    # nothing listens on port 1: one line after the connect timeout, and no directory
    return ["run", _toml(w, "s.toml", TOY), "--out", str(w / "o"), "--scheduler", "tcp://127.0.0.1:1",
            "--connect-timeout", "1"], ["--scheduler 'tcp://127.0.0.1:1'", "nothing answered within 1 s"], ["o"]


_SILENT: list = []  # listening sockets that never answer, kept open while the cases run


def run_scheduler_that_never_answers(w, base):
    # a server that accepts the connection and says nothing (a client alone would wait forever)
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4)
    _SILENT.append(sock)
    address = f"127.0.0.1:{sock.getsockname()[1]}"
    return ["run", _toml(w, "s.toml", TOY), "--out", str(w / "o"), "--scheduler", address, "--connect-timeout",
            "1"], [f"--scheduler {address!r}", "no dask scheduler reachable"], ["o"]


def run_connect_timeout_not_a_number(w, base):
    return ["run", _toml(w, "s.toml", TOY), "--out", str(w / "o"), "--scheduler", "tcp://127.0.0.1:1",
            "--connect-timeout", "soon"], ["--connect-timeout 'soon'", "(0, 3600]"], ["o"]


def run_fit_degree_too_large_for_memory(w, base):
    raw = json.loads(json.dumps(PIPE))
    raw["fit"]["model"]["degree"] = 100000
    return ["run", _toml(w, "s.toml", raw), "--out", str(w / "o"), "--workers", "0"], \
        ["fit: degree=100000", "needs about"], ["o"]


def run_configs_per_size_too_large_for_memory(w, base):
    raw = json.loads(json.dumps(PIPE))
    raw["trainingset"]["configs_per_size"] = 10**8
    return ["run", _toml(w, "s.toml", raw), "--out", str(w / "o"), "--workers", "0"], \
        ["configs_per_size=100000000", "needs about"], ["o"]


def run_fit_design_too_large_for_memory(w, base):
    # the training set itself fits (≈2 GB of force constants), its fit's design does not
    raw = json.loads(json.dumps(PIPE))
    raw["trainingset"].update(size=60, observations="EFH")
    raw["fit"]["loss"] = {"H": 1.0}
    return ["run", _toml(w, "s.toml", raw), "--out", str(w / "o"), "--workers", "0"], \
        ["the fit's design", "rows of the perfect cell of size 60, EFH", "needs about"], ["o"]


def run_memory_limit_flag(w, base):
    raw = json.loads(json.dumps(PIPE))
    raw["experiment"]["size"] = 1000
    return ["run", _toml(w, "s.toml", raw), "--out", str(w / "o"), "--workers", "0", "--memory-limit", "0.1"], \
        ["experiment.size=1000", "the limit of 0.1 GB set by --memory-limit"], ["o"]


def run_spec_is_a_directory(w, base):
    return ["run", str(w), "--out", str(w / "o")], ["is a directory"], ["o"]


def run_p_nan(w, base):
    return ["run", _toml(w, "s.toml", _toy(**{"experiment.p": float("nan")})), "--out", str(w / "o"),
            "--workers", "0"], ["experiment.p=nan"], ["o"]


def run_unknown_potential_in_trainingset(w, base):
    raw = json.loads(json.dumps(PIPE))
    raw["trainingset"]["potential"] = "builtin:nothing"
    return ["run", _toml(w, "s.toml", raw), "--out", str(w / "o"), "--workers", "0"], \
        ["trainingset.potential", "builtin:nothing"], ["o"]


def run_test_domain_too_large_for_memory(w, base):
    raw = json.loads(json.dumps(PIPE))
    raw["experiment"]["size"] = 100000
    return ["run", _toml(w, "s.toml", raw), "--out", str(w / "o"), "--workers", "0"], \
        ["experiment.size=100000", "needs about"], ["o"]


def run_into_a_corrupted_database(w, base):
    res = _copy(base, w, "res")
    db = res / "results.sqlite"
    for f in res.glob("results.sqlite-*"):
        f.unlink()
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 3])
    return ["run", str(base / "toy.toml"), "--out", str(res), "--workers", "0"], \
        ["results.sqlite", "not a readable results database"], []


def report_corrupted_database(w, base):
    argv, needles, _ = run_into_a_corrupted_database(w, base)
    return ["report", argv[3]], needles, [f"{argv[3]}/results.csv"]


def report_corrupt_metrics_row(w, base):
    res = _copy(base, w, "res")
    db = sqlite3.connect(res / "results.sqlite")
    with db:
        db.execute("UPDATE tasks SET metrics = '{not json' WHERE point = 0")
    db.close()
    return ["report", str(res)], ["column metrics", "not valid JSON"], [f"{res}/results.csv"]


def report_not_a_results_directory(w, base):
    return ["report", str(w)], ["holds no results.sqlite"], []


def plot_unknown_metric(w, base):
    res = _copy(base, w, "res")
    return ["plot", str(res), "--metric", "nosuch", "--against", "trainingset.size"], \
        ["--metric 'nosuch'", "error_noiseless"], [f"{res}/plots"]


CASES = [fit_out_is_a_file, fit_degree_four, fit_spec_is_a_directory, fit_degree_too_large_for_memory,
         calibrate_plot_into_missing_directory, calibrate_duplicate_sizes, calibrate_negative_min_size,
         evaluate_model_kind_swapped, evaluate_model_header_is_a_list, evaluate_model_huge_degree,
         defect_eam_file_with_nan, defect_size_too_large_for_memory, defect_cell_fits_but_its_neighbour_list_does_not,
         defect_memory_limit_not_a_number, trainingset_sizes_is_a_string,
         trainingset_configs_per_size_too_large_for_memory, run_study_name_dotdot, run_workers_and_scheduler,
         run_scheduler_not_an_address, run_scheduler_unreachable, run_scheduler_that_never_answers,
         run_connect_timeout_not_a_number, run_fit_degree_too_large_for_memory,
         run_configs_per_size_too_large_for_memory, run_fit_design_too_large_for_memory, run_memory_limit_flag,
         run_spec_is_a_directory, run_p_nan, run_unknown_potential_in_trainingset,
         run_test_domain_too_large_for_memory, run_into_a_corrupted_database, report_corrupted_database,
         report_corrupt_metrics_row, report_not_a_results_directory, plot_unknown_metric]


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    # SQLite's own index files (-wal, -shm) of a reader are not writes of the command
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
            if p.is_file() and not p.name.endswith(("-wal", "-shm"))}


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, base, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GENANALYSIS_MEMORY_LIMIT_GB", "16")  # the same refusals on any machine
    w = tmp_path / "w"
    w.mkdir()
    monkeypatch.chdir(w)
    argv, needles, absent = case(w, base)
    capsys.readouterr()
    before = _snapshot(tmp_path)
    try:
        code = main(argv)
    except SystemExit as exc:  # a usage error of the argument parser
        code = exc.code
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("genanalysis: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert _snapshot(tmp_path) == before, "a bad input wrote or changed files"
    for rel in absent:
        assert not (w / rel).exists()


def test_report_of_a_read_only_directory_writes_nothing_into_it(base, tmp_path, capsys):
    # the store is opened read-only (root ignores permissions, so read-only is asserted as
    # "nothing changed" rather than by chmod)
    res = _copy(base, tmp_path, "res")
    for f in res.glob("results.sqlite-*"):
        f.unlink()
    (res / "results.csv").unlink(missing_ok=True)
    before = (res / "results.sqlite").read_bytes()
    from genanalysis.results import ResultsStore

    with ResultsStore(res, readonly=True) as store:
        assert len(store.tasks()) == 2
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            store.set_meta("x", 1)
    assert (res / "results.sqlite").read_bytes() == before


# -- help texts ------------------------------------------------------------------------------------

def _help(capsys, *argv) -> str:
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    return " ".join(capsys.readouterr().out.split())


def test_evaluate_help_lists_every_surrogate_family(capsys):
    from genanalysis.surrogates import FAMILIES

    text = _help(capsys, "evaluate")
    for family in FAMILIES:
        assert family in text


def test_trainingset_help_description_is_whole_sentences(capsys):
    text = _help(capsys, "trainingset")
    description = text.split("positional arguments:")[0]
    assert description.rstrip().endswith(".") and "docs/trainingset.md" in description


def test_defect_help_and_reference_docs_name_the_same_defects(capsys):
    text = _help(capsys, "defect")
    docs = (Path(__file__).resolve().parent.parent / "docs" / "reference.md").read_text()
    for defect in ("vacancy", "interstitial", "perfect"):
        assert defect in text and f"`{defect}`" in docs
