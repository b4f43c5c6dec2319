"""The relaxation benchmark (``genanalysis bench relax``): small and fast cells only; the
timings themselves are measured by the command, not asserted here (docs/performance.md)."""

from __future__ import annotations

import json
import os
import shutil
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genanalysis.bench import BenchCase, BenchResult, _run_measured, format_table, run_case
from genanalysis.cli import main
from genanalysis.exceptions import InputError

W_ZHOU = "/usr/share/lammps/potentials/W_zhou.eam.alloy"  # Debian lammps-data


def _bench_json(capsys, *extra):
    code = main(["bench", "relax", "--potential", "builtin:W", "--sizes", "3", "--no-lammps", "--no-ase",
                 "--json", *extra])
    out = json.loads(capsys.readouterr().out)
    return code, out


def test_bench_ours_only_reports_a_converged_relaxation(capsys):
    from genanalysis.defect import solve_defect

    code, out = _bench_json(capsys, "--fmax", "1e-8")
    assert code == 0
    (row,) = out["results"]
    assert row["code"] == "genanalysis" and row["status"] == "converged"
    assert row["atoms"] == 2 * 3**3 - 1
    assert row["max_force"] <= 1e-8
    assert row["force_evaluations"] >= 1 and row["iterations"] >= 1
    assert row["wall_time"] >= row["solve_time"] > 0
    assert row["peak_memory_mib"] > 20
    # the subprocess relaxed the same problem as the library call in this process
    ref = solve_defect("builtin:W", "bcc", out["a"], "vacancy", 3, fmax=1e-8)
    assert abs(row["formation_energy"] - ref.formation_energy) < 1e-8
    assert "no trimming" in out["cutoff"] or "trimming" in out["cutoff"]


def test_bench_table_has_units_and_one_row_per_run(capsys):
    code = main(["bench", "relax", "--potential", "builtin:W", "--sizes", "3", "--no-lammps", "--no-ase"])
    text = capsys.readouterr().out
    assert code == 0
    rows = [line for line in text.splitlines() if line.startswith("| genanalysis")]
    assert len(rows) == 1
    assert "eV/Å" in text and "MiB" in text


def test_bench_without_a_file_skips_lammps_and_ase_with_a_note(capsys):
    code = main(["bench", "relax", "--potential", "builtin:W", "--sizes", "3", "--json", "--a", "3.14"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    by_code = {r["code"]: r for r in out["results"]}
    for other in ("lammps", "ase"):
        assert by_code[other]["status"] == "skipped"
        assert by_code[other]["note"]


@pytest.mark.parametrize("args, needle", [
    (["--sizes", "a,b"], "--sizes"),
    (["--sizes", "0"], "--sizes"),
    (["--fmax", "-1"], "--fmax"),
    (["--nprocs", "0"], "--nprocs"),
    (["--defect", "antisite"], "antisite"),
    (["--timeout", "0"], "--timeout"),
])
def test_bench_bad_input_is_one_line_and_exit_2(capsys, args, needle):
    code = main(["bench", "relax", "--potential", "builtin:W", "--no-lammps", "--no-ase", *args])
    err = capsys.readouterr().err
    assert code == 2
    assert needle in err and len(err.strip().splitlines()) == 1


@settings(max_examples=30, deadline=None)
@given(n=st.integers(-5, 0), fmax=st.floats(allow_nan=True, allow_infinity=True).filter(lambda f: not f > 0 or f == float("inf")))
def test_bench_case_rejects_bad_sizes_and_tolerances(n, fmax):
    with pytest.raises(InputError, match="n="):
        BenchCase("genanalysis", "builtin:W", "bcc", "vacancy", n, 3.1, 1e-6, "W")
    with pytest.raises(InputError, match="fmax"):
        BenchCase("genanalysis", "builtin:W", "bcc", "vacancy", 3, 3.1, fmax, "W")


def test_peak_memory_is_the_measured_process_own(tmp_path):
    """A child touching 300 MiB reports at least that, and not the parent's memory."""
    ballast = np.ones(40_000_000)  # 305 MiB in this process: must not leak into the child's figure
    code, wall, peak, out, err = _run_measured(
        [sys.executable, "-c", "b = bytearray(300 * 2**20); b[::4096] = b'x' * len(b[::4096]); print('ok')"],
        str(tmp_path), dict(os.environ), 60.0)
    assert code == 0 and out.strip() == "ok" and wall > 0
    assert 300 <= peak < 300 + 0.5 * ballast.nbytes / 2**20
    del ballast


def test_timeout_kills_the_run(tmp_path):
    code, wall, _, _, _ = _run_measured([sys.executable, "-c", "import time; time.sleep(30)"], str(tmp_path),
                                        dict(os.environ), 1.0)
    assert code == -9 and wall < 10


def test_format_table_marks_missing_values():
    text = format_table([BenchResult("lammps", "cg", 3, status="skipped", note="no lmp")])
    assert "skipped — no lmp" in text and "—" in text.splitlines()[-1]


@pytest.mark.lammps
@pytest.mark.skipif(shutil.which("lmp") is None or not os.path.isfile(W_ZHOU), reason="needs lmp and lammps-data")
@pytest.mark.parametrize("defect, n, atoms", [("vacancy", 4, 2 * 4**3 - 1), ("interstitial", 3, 2 * 3**3 + 1)])
def test_formation_energy_agrees_with_lammps(tmp_path, defect, n, atoms):
    """Same cell, same file, both converged tightly: formation energies within 1e-6 eV
    (the vacancy through LAMMPS's lattice commands, the dumbbell through a data file)."""
    rows = {}
    for code in ("genanalysis", "lammps"):
        case = BenchCase(code, W_ZHOU, "bcc", defect, n, 3.157, 1e-8, "W")
        rows[code] = run_case(case, str(tmp_path / code), timeout=300)
    ours, lmp = rows["genanalysis"], rows["lammps"]
    assert ours.status == "converged" and ours.max_force <= 1e-8
    assert lmp.atoms == ours.atoms == atoms
    assert abs(lmp.extra["perfect_energy_per_atom"] - ours.extra["perfect_energy_per_atom"]) < 1e-12
    assert lmp.max_force < 1e-6
    assert abs(ours.formation_energy - lmp.formation_energy) < 1e-6


def test_bench_writes_the_scaling_plot(tmp_path, capsys):
    png = tmp_path / "scaling.png"
    code = main(["bench", "relax", "--potential", "builtin:W", "--sizes", "3,4", "--no-lammps", "--no-ase",
                 "--plot", str(png), "--fmax", "1e-6"])
    capsys.readouterr()
    assert code == 0 and png.stat().st_size > 1000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_model_reports_cost_per_atom(capsys):
    code = main(["bench", "model", "--sizes", "2,3", "--repeats", "1", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    rows = out["rows"]
    assert [r["atoms"] for r in rows] == [16, 54]
    for r in rows:
        assert r["status"] == "ok" and r["time"] > 0 and r["peak_memory_mib"] > 20
        assert r["us_per_atom"] == pytest.approx(1e6 * r["time"] / r["atoms"])
        # the same cell timed for the reference potential, and the products and Hessians
        assert r["reference"] == "builtin:W"
        assert min(r["hvp_time"], r["hessian_time"], r["ref_time"], r["ref_hvp_time"], r["ref_hessian_time"]) > 0
    assert np.isfinite(out["exponent"]) and out["evaluate"] == []


def test_bench_model_table_and_evaluate_timing(capsys, tmp_path):
    """The table prints model and reference costs with their ratios; --evaluate-sizes times
    `genanalysis evaluate` of a saved model against `genanalysis defect`."""
    from genanalysis.models.basis import ACESpec
    from genanalysis.models.io import save_model
    from genanalysis.models.linear import LinearACE

    m = LinearACE(ACESpec(cutoff=4.6, degree=4, body_order=3, l_max=1, r_in=2.0))
    m.coef_[1] = 1e-3  # a weak pair repulsion: the cell stays near the lattice
    save_model(m, tmp_path / "m", element="W")
    code = main(["bench", "model", "--model", str(tmp_path / "m"), "--sizes", "2", "--repeats", "1",
                 "--evaluate-sizes", "2"])
    text = capsys.readouterr().out
    assert code in (0, 1)
    assert "E+F model/ref" in text and "HVP/E+F model" in text
    table = [ln for ln in text.splitlines() if ln.startswith("| 2 |")]
    assert len(table) == 2  # one cost row, one evaluate row
    assert table[1].split("|")[2].strip() == "15"  # the vacancy 2-cell


def test_bench_model_times_the_linear_fit_of_the_models_basis(capsys, tmp_path, monkeypatch):
    from genanalysis.models.basis import ACESpec
    from genanalysis.models.io import save_model
    from genanalysis.models.linear import LinearACE

    save_model(LinearACE(ACESpec(cutoff=4.0, degree=4, body_order=3, l_max=1, r_in=2.0)), tmp_path / "m", element="W")
    monkeypatch.chdir(tmp_path)  # a relative model path reaches the measured processes
    code = main(["bench", "model", "--model", "m", "--sizes", "2", "--repeats", "1", "--fit-sizes", "2,3", "--json"])
    out = json.loads(capsys.readouterr().out)
    fit = out["fit"]
    assert code == 0 and out["rows"][0]["status"] == "ok" and fit["status"] == "ok"
    # perfect and vacancy cells of N = 2, 3: two rattled, the relaxed and one strained configuration each
    assert fit["configurations"] == 16 and fit["largest_cell"] == 54
    assert fit["n_params"] == LinearACE(ACESpec(cutoff=4.0, degree=4, body_order=3, l_max=1)).n_params
    assert fit["rows"] == sum(1 + 3 * n + 9 for n in (16, 15, 54, 53) for _ in range(4))
    assert fit["fit_cpu_time"] > 0 and fit["peak_memory_mib"] > 20


def test_bench_model_evaluate_timing_needs_a_model(capsys):
    code = main(["bench", "model", "--sizes", "2", "--evaluate-sizes", "2"])
    assert code == 2 and "--model" in capsys.readouterr().err


def test_bench_model_rejects_a_missing_model(capsys, tmp_path):
    code = main(["bench", "model", "--model", str(tmp_path / "nothing"), "--sizes", "2"])
    assert code == 2 and "nothing" in capsys.readouterr().err


@given(k=st.floats(0.5, 3.0), c=st.floats(1e-6, 1e3))
@settings(max_examples=25, deadline=None)
def test_scaling_exponent_recovers_a_power_law(k, c):
    from genanalysis.bench import scaling_exponent

    atoms = np.array([100, 1000, 10_000, 100_000])
    assert scaling_exponent(atoms, c * atoms**k) == pytest.approx(k, abs=1e-9)


def test_bench_replays_a_saved_run(tmp_path, capsys):
    code = main(["bench", "relax", "--potential", "builtin:W", "--sizes", "3,4", "--no-lammps", "--no-ase",
                 "--json"])
    saved = capsys.readouterr().out
    assert code == 0
    path = tmp_path / "run.json"
    path.write_text(saved)
    png = tmp_path / "replayed.png"
    assert main(["bench", "relax", "--from-json", str(path), "--plot", str(png)]) == 0
    text = capsys.readouterr().out
    rows = [line for line in text.splitlines() if line.startswith("| genanalysis")]
    assert len(rows) == 2 and "atoms^" in text and png.stat().st_size > 1000
    data = json.loads(saved)
    assert "genanalysis" in data["exponents"]
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert main(["bench", "relax", "--from-json", str(bad)]) == 2


def test_bench_model_fit_with_force_constants_and_the_saved_tables(capsys, tmp_path, monkeypatch):
    """--fit-observations EFVH fits every cell's force constants too (a perfect crystal's
    through atom 0's rows); --from-json prints the tables of the saved run without rerunning."""
    from genanalysis.models.basis import ACESpec
    from genanalysis.models.io import save_model
    from genanalysis.models.linear import LinearACE

    save_model(LinearACE(ACESpec(cutoff=4.0, degree=4, body_order=3, l_max=1, r_in=2.0)), tmp_path / "m", element="W")
    monkeypatch.chdir(tmp_path)
    code = main(["bench", "model", "--model", "m", "--sizes", "2", "--repeats", "1", "--fit-sizes", "2",
                 "--fit-observations", "EFVH", "--json"])
    text = capsys.readouterr().out
    fit = json.loads(text)["fit"]
    assert code == 0 and fit["status"] == "ok" and fit["observations"] == "EFVH"
    # rattled perfect cells (2 × 16 atoms) and vacancy cells (4 × 15 atoms): every row; the
    # relaxed and the strained perfect cell: atom 0's rows
    assert fit["rows_per_type"]["H"] == 2 * 48 * 48 + 2 * 3 * 48 + 4 * 45 * 45
    (tmp_path / "run.json").write_text(text)
    assert main(["bench", "model", "--from-json", "run.json"]) == 0
    out = capsys.readouterr().out
    assert "E+F model/ref" in out and "EFVH training set" in out and "| 2 | 16 |" in out
