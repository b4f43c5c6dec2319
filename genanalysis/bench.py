"""Benchmark of defect relaxation: our solver, LAMMPS and ASE + matscipy on the same cell.

Units: lengths Å, energies eV, forces eV/Å, times s, memory MiB.

Every run is one subprocess, so that its wall time and peak resident memory are its own
(``os.wait4`` returns the child's ``ru_maxrss``; for ``mpirun`` this is the largest rank,
not the sum). The three codes relax the same periodic n-cell with one point defect at a
fixed cell:

* ``genanalysis`` — :func:`genanalysis.defect.relax` (Newton–Krylov with the FFT
  perfect-lattice preconditioner) on :func:`genanalysis.lattice.defect_cell`;
* ``lammps`` — ``lmp`` (or ``mpirun -np K lmp``) with ``lattice bcc a``, ``region block 0 n
  0 n 0 n``, ``create_atoms``, the atom at the box centre deleted (our vacancy: the centre
  of the box is a bcc lattice site for every n, so the two cells are the same up to a lattice
  translation and the atom order), ``min_style cg``, ``min_modify norm max`` (stop on the
  largest atomic force, not on the 2-norm of the 3N force vector) and ``minimize 0 FMAX
  100000 100000``. The force actually reached is read from a dump of the final forces. Other
  defects are written as a data file from our geometry;
* ``ase`` — ASE ``LBFGS`` driving matscipy's ``EAM`` calculator (FITPACK splines), only for
  small cells since a force call costs ~1.5 s per 2 000 atoms.

The formation energy is ``E_def − N_def·e₀`` with e₀ the energy per atom of the one-cell
perfect lattice, each code using its own e₀. *Solve* times are the relaxation alone (ours:
``relax``; LAMMPS: the ``minimize`` command, set-up included, timed by marker files written
around it); *process* wall and CPU times are whole subprocesses. ``ratio_to_lammps`` is
solve over LAMMPS's solve at the same n. Nothing in the tables is trimmed: the potential's
cutoff is used as given (:func:`cutoff_note` says whether a shorter one would be exact).
``run_model_scaling`` times a fitted model's energy and forces, Hessian-vector product and
sparse Hessian against the cell size, next to a reference potential's on the same cells;
``run_evaluate_timing`` times ``genanalysis evaluate`` against ``genanalysis defect``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from genanalysis.exceptions import InputError
from genanalysis.potentials import load_potential
from genanalysis.threads import THREAD_VARS

__all__ = ["BenchCase", "BenchResult", "run_case", "run_benchmark", "format_table", "plot_scaling", "cutoff_note",
           "lammps_available", "run_model_scaling", "run_evaluate_timing", "scaling_exponent", "CODES"]

#: codes the benchmark knows, in table order
CODES = ("genanalysis", "lammps", "ase")


@dataclass(frozen=True)
class BenchCase:
    """One relaxation to time. ``potential``: ``builtin:NAME`` or an EAM file path; ``a``
    lattice constant (Å); ``fmax`` force tolerance (eV/Å); ``nprocs`` MPI ranks (LAMMPS) or
    threads (ours, numpy/BLAS and pair work)."""

    code: str
    potential: str
    lattice: str
    defect: str
    n: int
    a: float
    fmax: float
    element: str
    nprocs: int = 1

    def __post_init__(self):
        if self.code not in CODES:
            raise InputError(f"code {self.code!r} is not benchmarked; choose one of {', '.join(CODES)}")
        if not (isinstance(self.n, int) and self.n >= 1):
            raise InputError(f"cell size n={self.n!r} must be a whole number ≥ 1")
        if not (self.fmax > 0 and math.isfinite(self.fmax)):
            raise InputError(f"fmax={self.fmax} eV/Å must be positive and finite")
        if not (self.a > 0 and math.isfinite(self.a)):
            raise InputError(f"lattice constant a={self.a} Å must be positive and finite")
        if not (isinstance(self.nprocs, int) and 1 <= self.nprocs <= 64):
            raise InputError(f"nprocs={self.nprocs!r} must be a whole number in 1..64")


@dataclass
class BenchResult:
    """What one run measured. Energies eV, forces eV/Å, times s, memory MiB."""

    code: str
    """the code that ran: ``genanalysis``, ``lammps`` or ``ase`` (module docstring)"""
    method: str
    """its minimiser in words (ours: Newton–Krylov, FFT lattice preconditioner; LAMMPS:
    ``min_style cg`` and its MPI ranks; ASE: LBFGS with matscipy's EAM)"""
    n: int
    atoms: int | None = None
    force_evaluations: int | None = None
    hvp_evaluations: int | None = None
    iterations: int | None = None
    max_force: float | None = None
    energy: float | None = None
    formation_energy: float | None = None
    solve_time: float | None = None
    wall_time: float | None = None
    cpu_time: float | None = None
    peak_memory_mib: float | None = None
    status: str = ""
    note: str = ""
    ratio_to_lammps: float | None = None
    extra: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- helpers


def lammps_available() -> str | None:
    """Path of the ``lmp`` executable, or None."""
    return shutil.which("lmp")


def cutoff_note(potential) -> str:
    """Whether the tabulated functions of an EAM file vanish before its cutoff (so a
    shorter cutoff would be exact), as one line. The benchmark never trims."""
    pot = load_potential(potential)
    last = _last_nonzero_radius(pot)
    if last is None:
        return f"cutoff {pot.cutoff:.6g} Å used as given"
    if last < pot.cutoff - 1e-12:
        return (f"cutoff {pot.cutoff:.6g} Å used as given (the tables are exactly zero beyond "
                f"{last:.6g} Å, so trimming to it would be allowed; not done here)")
    return f"cutoff {pot.cutoff:.6g} Å used as given (the tables are non-zero up to it: no trimming allowed)"


def _last_nonzero_radius(pot) -> float | None:
    """Largest grid radius (Å) at which φ or f is non-zero, probed on a fine grid."""
    if not hasattr(pot, "phi") or not pot.cutoff:
        return None
    r = np.linspace(0.5, pot.cutoff, 200_001)
    vals = np.abs(pot.phi(r, 0)[0])
    if getattr(pot, "f", None) is not None:
        vals = np.maximum(vals, np.abs(pot.f(r, 0)[0]))
    nz = np.nonzero(vals > 0)[0]
    return float(r[nz[-1]]) if len(nz) else 0.0


def _is_file(potential: str) -> bool:
    return not potential.startswith(("builtin:", "python:")) and os.path.isfile(potential)


def _eam_style(potential: str) -> str:
    from genanalysis.potentials.eamfile import detect_format

    return detect_format(potential)


# --------------------------------------------------------------------------- child side


def _child_genanalysis(case: BenchCase) -> dict:
    from genanalysis.defect import formation_energy, perfect_energy_per_atom, relax
    from genanalysis.lattice import defect_cell

    t0 = time.perf_counter()
    pot = load_potential(case.potential)
    atoms = defect_cell(case.lattice, case.a, case.n, case.defect, case.element)
    t_setup = time.perf_counter() - t0
    c0 = time.process_time()
    rel = relax(atoms, pot, fmax=case.fmax)
    solve_cpu = time.process_time() - c0
    e0 = perfect_energy_per_atom(pot, case.lattice, case.a, 1, case.element)
    return {
        "atoms": len(atoms), "force_evaluations": rel.force_evaluations, "hvp_evaluations": rel.hvp_evaluations,
        "iterations": rel.iterations, "max_force": rel.max_force, "energy": rel.energy,
        "formation_energy": formation_energy(rel.energy, len(atoms), e0), "solve_time": rel.wall_time,
        "status": rel.status,
        "extra": {"setup_time": t_setup, "solve_cpu": solve_cpu, "history": rel.history,
                  "perfect_energy_per_atom": e0,
                  "threads": int(os.environ.get("GENANALYSIS_THREADS", "1"))},
    }


def _child_ase(case: BenchCase) -> dict:
    from ase.optimize import LBFGS
    from matscipy.calculators.eam import EAM

    from genanalysis.lattice import defect_cell, perfect_cell

    atoms = defect_cell(case.lattice, case.a, case.n, case.defect, case.element)
    del atoms.arrays["site_index"]
    calc = EAM(case.potential)
    # matscipy identifies the element by the file's atomic-number field (W_zhou.eam.alloy
    # writes 1 for W): label the atoms with that number; LBFGS does not use masses
    z = int(np.asarray(calc._db_atomic_numbers).ravel()[0])
    atoms.numbers[:] = z
    perfect = perfect_cell(case.lattice, case.a, 1, case.element)
    perfect.numbers[:] = z
    perfect.calc = calc
    e0 = perfect.get_potential_energy() / len(perfect)
    calls = {"n": 0}
    orig = calc.calculate

    def counted(*args, **kwargs):
        calls["n"] += 1
        return orig(*args, **kwargs)

    calc.calculate = counted
    atoms.calc = calc
    t0 = time.perf_counter()
    opt = LBFGS(atoms, logfile=None)
    converged = bool(opt.run(fmax=case.fmax, steps=10_000))
    t = time.perf_counter() - t0
    f = atoms.get_forces()
    e = atoms.get_potential_energy()
    return {
        "atoms": len(atoms), "force_evaluations": calls["n"], "iterations": int(opt.nsteps),
        "max_force": float(np.sqrt((f * f).sum(axis=1).max())), "energy": float(e),
        "formation_energy": float(e - len(atoms) * e0), "solve_time": t,
        "status": "converged" if converged else "not converged (10 000 steps)",
        "extra": {"perfect_energy_per_atom": float(e0)},
    }


def _cpu_best(fn, repeats: int) -> tuple[float, list[float]]:
    """(fastest, all) CPU seconds (this process) of ``repeats`` calls of ``fn`` after one
    untimed warm-up call (neighbour lists, compiled kernels, buffers)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return min(times), times


def _child_model(spec: dict) -> dict:
    """Time a fitted model on a rattled perfect n-cell (CPU s, fastest of the repeats):
    energy + forces, one Hessian-vector product and the sparse Hessian — and the same
    three for the reference potential ``spec['reference']`` on the same cell."""
    from genanalysis.lattice import perfect_cell
    from genanalysis.models.calculator import ModelPotential
    from genanalysis.potentials import load_potential

    if spec.get("model"):
        from genanalysis.models.io import load_fitted

        model, header = load_fitted(spec["model"])
        name = header.get("name") or spec["model"]
    else:
        from genanalysis.models.basis import ACESpec
        from genanalysis.models.linear import LinearACE

        model = LinearACE(ACESpec())
        # the cost of an evaluation does not depend on the coefficient values
        model.coef_ = np.random.default_rng(0).normal(size=model.coef_.shape)
        name = "LinearACE(ACESpec()) with random coefficients"
    pot = ModelPotential(model, name=name)
    atoms = perfect_cell(spec["lattice"], spec["a"], spec["n"], "X")
    atoms.positions += np.random.default_rng(1).normal(scale=0.02, size=atoms.positions.shape)
    v = np.random.default_rng(2).normal(size=3 * len(atoms))
    reps = spec["repeats"]
    out = {"atoms": len(atoms), "name": name, "cutoff": pot.cutoff, "n_params": int(getattr(model, "n_params", 0))}
    out["time"], out["times"] = _cpu_best(lambda: pot.energy_forces(atoms), reps)
    out["energy"] = float(pot.observe(atoms).energy)
    op = pot.linearise(atoms)
    out["hvp_time"], _ = _cpu_best(lambda: op @ v, reps)  # one product, operator built
    out["hessian_time"], _ = _cpu_best(lambda: pot.hessian(atoms), 1)
    if spec.get("reference"):
        ref = load_potential(spec["reference"])
        out["reference"] = spec["reference"]
        out["ref_time"], _ = _cpu_best(lambda: ref.energy_forces(atoms), reps)
        rop = ref.linearise(atoms)
        out["ref_hvp_time"], _ = _cpu_best(lambda: rop @ v, reps)
        out["ref_hessian_time"], _ = _cpu_best(lambda: ref.hessian(atoms), 1)
    return out


def _child_fit(spec: dict) -> dict:
    """Build a training set of the reference (perfect and vacancy cells of sizes
    ``spec['sizes']``, 2 rattled configurations each plus the relaxed one and a strained
    copy; observations ``spec['observations']``, EFV or EFVH) and time the linear fit of
    ``spec['model']`` (ACE parameters) on it: the design assembly with the streamed QR and
    solve (CPU and wall s), the rows, the parameters. With H the force-constant rows of
    every atom of each cell enter (weight 0.01; a relaxed perfect cell's, atom 0's only)."""
    from genanalysis.fit import LossWeights, ModelSpec, fit_linear
    from genanalysis.trainingset import TrainingSetSpec, build, read_training_set

    obs = spec.get("observations", "EFV")
    work = tempfile.mkdtemp(prefix="bench-fit-")
    try:
        ts = TrainingSetSpec.from_dict({"potential": spec["reference"], "lattice": spec["lattice"], "a": spec["a"],
                                        "defects": ["perfect", "vacancy"], "sizes": list(spec["sizes"]),
                                        "configs_per_size": 2, "rattle": 0.05, "observations": obs, "seed": 0,
                                        "strains": {"amplitude": 0.01, "count": 1}})
        t0 = time.perf_counter()
        build(ts, work, workers=1)
        configs = read_training_set(work)
        t_build = time.perf_counter() - t0
    finally:
        shutil.rmtree(work, ignore_errors=True)
    model_spec = ModelSpec(**spec["model"])
    loss = LossWeights(E=1.0, F=1.0, V=1.0, H=0.01 if "H" in obs else 0.0)
    fit_linear(configs[:1], model_spec, loss, on_rank_deficient="ignore")  # compiled kernels loaded
    c0, t0 = time.process_time(), time.perf_counter()
    model, diag = fit_linear(configs, model_spec, loss, on_rank_deficient="ignore")
    return {"configurations": len(configs), "atoms_total": int(sum(len(c) for c in configs)),
            "largest_cell": int(max(len(c) for c in configs)), "n_params": int(model.n_params),
            "rows": int(diag["n_rows"]), "fit_cpu_time": time.process_time() - c0,
            "fit_wall_time": time.perf_counter() - t0, "trainingset_wall_time": t_build, "observations": obs,
            "rows_per_type": diag["rows_per_type"]}


def run_fit_timing(model_params: dict, reference: str, lattice: str, a: float, sizes, *, nprocs: int = 1,
                   timeout: float = 3600.0, observations: str = "EFV") -> dict:
    """:func:`_child_fit` in a subprocess: its timings, the run's wall time (s) and peak
    memory (MiB)."""
    spec = {"model": model_params, "reference": reference, "lattice": lattice, "a": float(a),
            "sizes": [int(n) for n in sizes], "observations": observations}
    work = tempfile.mkdtemp(prefix="bench-fit-")
    try:
        code, wall, mem, stdout, stderr = _run_measured(
            [sys.executable, "-m", "genanalysis.bench", "fit", json.dumps(spec)], work, _child_env(nprocs), timeout)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    row = {"sizes": spec["sizes"], "wall_time": wall, "peak_memory_mib": mem, "status": "ok"}
    if code != 0:
        row["status"] = "timed out" if code == -9 else f"failed: {(stderr.strip() or '?').splitlines()[-1][:200]}"
    else:
        row.update(json.loads(stdout.strip().splitlines()[-1]))
    return row


def run_model_scaling(model: str | None, lattice: str, a: float, sizes, *, repeats: int = 3, nprocs: int = 1,
                      timeout: float = 3600.0, reference: str | None = None) -> list[dict]:
    """Energy + forces of a fitted model (or the default linear ACE model) on perfect cells
    of each size, one subprocess per size: atoms, seconds per call (s), microseconds per
    atom, peak memory (MiB)."""
    rows = []
    for n in sizes:
        spec = {"model": model, "lattice": lattice, "a": float(a), "n": int(n), "repeats": int(repeats),
                "reference": reference}
        work = tempfile.mkdtemp(prefix="bench-model-")
        try:
            code, wall, mem, stdout, stderr = _run_measured(
                [sys.executable, "-m", "genanalysis.bench", "model", json.dumps(spec)], work, _child_env(nprocs),
                timeout)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        row = {"n": int(n), "wall_time": wall, "peak_memory_mib": mem, "status": "ok"}
        if code != 0:
            row["status"] = "timed out" if code == -9 else f"failed: {(stderr.strip() or '?').splitlines()[-1][:200]}"
        else:
            out = json.loads(stdout.strip().splitlines()[-1])
            row.update(out)
            row["us_per_atom"] = 1e6 * out["time"] / out["atoms"]
        rows.append(row)
    return rows


def run_evaluate_timing(model: str, reference: str, lattice: str, sizes, *, defect: str = "vacancy",
                        nprocs: int = 1, timeout: float = 3600.0) -> list[dict]:
    """Wall time (s), CPU time (s) and peak memory (MiB) of ``genanalysis evaluate`` of a
    fitted ``model`` against ``reference`` and of the reference alone, ``genanalysis
    defect``, at each test-domain size M (one subprocess each, run one after the other)."""
    rows = []
    for m in sizes:
        row = {"size": int(m)}
        cmds = {
            "evaluate": ["evaluate", "--model", model, "--reference", reference, "--lattice", lattice,
                         "--defect", defect, "--size", str(m), "--json"],
            "defect": ["defect", "--potential", reference, "--lattice", lattice, "--defect", defect,
                       "--size", str(m), "--json"],
        }
        for what, args in cmds.items():
            work = tempfile.mkdtemp(prefix=f"bench-{what}-")
            try:
                code, wall, mem, stdout, stderr = _run_measured([sys.executable, "-m", "genanalysis", *args], work,
                                                                _child_env(nprocs), timeout)
                cpu = _run_measured.cpu
            finally:
                shutil.rmtree(work, ignore_errors=True)
            row[what] = {"wall_time": wall, "cpu_time": cpu, "peak_memory_mib": mem,
                         "status": "ok" if code in (0, 3) else ("timed out" if code == -9 else
                                                                 f"failed: {(stderr.strip() or '?').splitlines()[-1][:200]}")}
            if code in (0, 3):
                try:
                    row["atoms"] = int(json.loads(stdout)["n_atoms"])
                except (ValueError, KeyError, TypeError):
                    pass
        rows.append(row)
    return rows


def scaling_exponent(atoms, times) -> float:
    """Least-squares slope of log(time) against log(atoms)."""
    x, y = np.log(np.asarray(atoms, float)), np.log(np.asarray(times, float))
    return float(np.polyfit(x, y, 1)[0]) if len(x) >= 2 else math.nan


def _child_main(argv: list[str]) -> int:
    if argv and argv[0] in ("model", "fit"):
        child = _child_model if argv[0] == "model" else _child_fit
        sys.stdout.write(json.dumps(child(json.loads(argv[1]))) + "\n")
        return 0
    case = BenchCase(**json.loads(argv[0]))
    os.environ.setdefault("OMP_NUM_THREADS", str(case.nprocs))
    out = _child_genanalysis(case) if case.code == "genanalysis" else _child_ase(case)
    sys.stdout.write(json.dumps(out) + "\n")
    return 0


# --------------------------------------------------------------------------- parent side


#: A minimal launcher between us and the measured process. A forked child starts with the
#: high-water RSS of the process it was forked from (Linux carries it over exec), so the
#: measured process must be forked from something small: this launcher (no site imports,
#: ~10 MiB) forks it, waits, and writes RUSAGE_CHILDREN's ru_maxrss (KiB) — the largest
#: RSS of any process in the measured tree (for mpirun: the largest rank, not the sum).
_LAUNCHER = (
    "import os, sys, resource\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    os.execvp(sys.argv[2], sys.argv[2:])\n"
    "_, status = os.waitpid(pid, 0)\n"
    "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "open(sys.argv[1], 'w').write('%d %.6f' % (u.ru_maxrss, u.ru_utime + u.ru_stime))\n"
    "sys.exit(os.waitstatus_to_exitcode(status) % 256)\n"
)


def _run_measured(cmd: list[str], cwd: str, env: dict, timeout: float) -> tuple[int, float, float, str, str]:
    """Run ``cmd``; return (exit code, wall s, peak RSS MiB, stdout, stderr). The CPU time
    (user + system, s, all processes of the run) is left in ``_run_measured.cpu``."""
    out_path, err_path = os.path.join(cwd, "stdout.txt"), os.path.join(cwd, "stderr.txt")
    rss_path = os.path.join(cwd, "maxrss.txt")
    with open(out_path, "w") as out, open(err_path, "w") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-S", "-c", _LAUNCHER, rss_path, *cmd], cwd=cwd, env=env,
                                stdout=out, stderr=err, start_new_session=True)
        deadline = t0 + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                os.killpg(proc.pid, 9)  # the launcher leads its own session: this ends the tree
                pid, status, usage = os.wait4(proc.pid, 0)
                status = -9
                break
            time.sleep(0.02)
        wall = time.perf_counter() - t0
    proc.returncode = 0  # reaped above; keep Popen from waiting again
    code = os.waitstatus_to_exitcode(status) if status != -9 else -9
    with open(out_path) as fh:
        stdout = fh.read()
    with open(err_path) as fh:
        stderr = fh.read()
    try:
        with open(rss_path) as fh:
            rss_kib, cpu = fh.read().split()
        peak, _run_measured.cpu = float(rss_kib) / 1024.0, float(cpu)
    except (OSError, ValueError):
        peak, _run_measured.cpu = math.nan, math.nan
    return code, wall, peak, stdout, stderr


def _child_env(nprocs: int) -> dict:
    env = dict(os.environ)
    env.update({var: str(nprocs) for var in THREAD_VARS})
    env["GENANALYSIS_THREADS"] = str(nprocs)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _lammps_script(case: BenchCase, style: str, data_file: str | None) -> str:
    n, a = case.n, case.a
    if data_file is None:
        if case.lattice != "bcc" or case.defect not in ("vacancy", "perfect"):
            raise InputError("internal: lattice commands only for bcc vacancy/perfect")  # pragma: no cover
        c = 0.5 * n * a
        build = f"""lattice {case.lattice} {a:.17g}
region box block 0 {n} 0 {n} 0 {n}
create_box 1 box
create_atoms 1 box
"""
        defect = "" if case.defect == "perfect" else f"""region vac sphere {c:.17g} {c:.17g} {c:.17g} 0.01 units box
delete_atoms region vac
"""
        perfect = ""
    else:
        build = f"""lattice {case.lattice} {a:.17g}
region box block 0 {n} 0 {n} 0 {n}
create_box 1 box
create_atoms 1 box
"""
        perfect = ""
        defect = f"""delete_atoms group all
read_data {data_file} add merge
"""
    coeff = f"pair_coeff 1 1 {case.potential}" if style == "eam" else f"pair_coeff * * {case.potential} {case.element}"
    # e₀ from the one-cell lattice, as ours: LAMMPS's single running energy sum over a large
    # perfect cell drifts (identical addends round the same way), by ~1e-9 eV/atom at n = 40
    return f"""units metal
boundary p p p
atom_style atomic
lattice {case.lattice} {a:.17g}
region one block 0 1 0 1 0 1
create_box 1 one
create_atoms 1 box
mass 1 1.0
pair_style {style}
{coeff}
thermo_style custom step pe
thermo_modify format float %.17g
run 0
print "CELL1_PE_PER_ATOM $(pe/atoms:%.17g)"
clear
units metal
boundary p p p
atom_style atomic
atom_modify map array
{build}mass 1 1.0
pair_style {style}
{coeff}
thermo_style custom step pe fnorm
thermo_modify format float %.17g
run 0
print "PERFECT_PE_PER_ATOM $(pe/atoms:%.17g)"
{perfect}{defect}print "DEFECT_ATOMS $(atoms)"
min_style cg
min_modify norm max
reset_timestep 0
shell touch minimize.start
minimize 0 {case.fmax:.17g} 100000 100000
shell touch minimize.end
print "FINAL_PE $(pe:%.17g)"
print "FINAL_ITERATIONS $(step)"
write_dump all custom final.dump id fx fy fz modify format float %.17g
"""


def _parse_lammps(log: str, workdir: str) -> dict:
    vals: dict = {}
    for line in log.splitlines():
        w = line.split()
        if not w:
            continue
        if w[0] == "PERFECT_PE_PER_ATOM":
            vals["e0_ncell"] = float(w[1])
        elif w[0] == "CELL1_PE_PER_ATOM":
            vals["e0"] = float(w[1])
        elif w[0] == "DEFECT_ATOMS":
            vals["atoms"] = int(w[1])
        elif w[0] == "FINAL_PE":
            vals["energy"] = float(w[1])
        elif w[0] == "FINAL_ITERATIONS":
            vals["iterations"] = int(w[1])
        elif line.strip().startswith("Iterations, force evaluations"):
            vals["iterations"], vals["force_evaluations"] = int(w[-2]), int(w[-1])
        elif line.startswith("Loop time of"):
            vals["loop_time"] = float(w[3])
        elif line.strip().startswith("Stopping criterion"):
            vals["criterion"] = line.split("=", 1)[1].strip()
    forces = np.loadtxt(os.path.join(workdir, "final.dump"), skiprows=9, ndmin=2)[:, 1:4]
    vals["max_force"] = float(np.sqrt((forces * forces).sum(axis=1).max()))
    # the minimisation's wall time, setup (neighbour lists, first forces) included, as ours
    try:
        start = os.stat(os.path.join(workdir, "minimize.start")).st_mtime_ns
        end = os.stat(os.path.join(workdir, "minimize.end")).st_mtime_ns
        vals["solve_time"] = (end - start) * 1e-9
    except OSError:
        vals["solve_time"] = vals.get("loop_time")
    return vals


def _run_lammps(case: BenchCase, workdir: str, timeout: float) -> BenchResult:
    method = "min_style cg" + (f", mpirun -np {case.nprocs}" if case.nprocs > 1 else ", 1 rank")
    res = BenchResult("lammps", method, case.n)
    lmp = lammps_available()
    if lmp is None:
        res.status = "skipped"
        res.note = "lmp not installed (apt-get install lammps lammps-data)"
        return res
    if not _is_file(case.potential):
        res.status = "skipped"
        res.note = f"LAMMPS needs an EAM file; {case.potential} is not one"
        return res
    style = {"eam": "eam", "eam/alloy": "eam/alloy", "eam/fs": "eam/fs"}[_eam_style(case.potential)]
    data_file = None
    if not (case.lattice == "bcc" and case.defect in ("vacancy", "perfect")):
        from ase.io import write

        from genanalysis.lattice import defect_cell

        atoms = defect_cell(case.lattice, case.a, case.n, case.defect, case.element)
        if case.lattice != "bcc" and case.lattice != "fcc":
            res.status = "skipped"
            res.note = f"no LAMMPS comparison for the {case.lattice} lattice"
            return res
        data_file = "defect.data"
        write(os.path.join(workdir, data_file), atoms, format="lammps-data", atom_style="atomic")
    with open(os.path.join(workdir, "in.lmp"), "w") as fh:
        fh.write(_lammps_script(case, style, data_file))
    cmd = [lmp, "-in", "in.lmp", "-log", "none", "-nocite"]
    if case.nprocs > 1:
        mpirun = shutil.which("mpirun")
        if mpirun is None:
            res.status = "skipped"
            res.note = "mpirun not found for a multi-rank LAMMPS run"
            return res
        extra = ["--allow-run-as-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
        cmd = [mpirun, *extra, "--oversubscribe", "-np", str(case.nprocs), *cmd]
    env = _child_env(1)
    code, wall, mem, stdout, stderr = _run_measured(cmd, workdir, env, timeout)
    res.wall_time, res.peak_memory_mib, res.cpu_time = wall, mem, _run_measured.cpu
    if code != 0:
        res.status = f"failed (exit {code})"
        res.note = (stderr.strip() or stdout.strip()).splitlines()[-1][:200] if (stderr.strip() or stdout.strip()) else ""
        return res
    v = _parse_lammps(stdout, workdir)
    res.atoms = v.get("atoms")
    res.iterations = v.get("iterations")
    res.force_evaluations = v.get("force_evaluations")
    res.energy = v.get("energy")
    res.max_force = v.get("max_force")
    res.solve_time = v.get("solve_time")
    if res.energy is not None and "e0" in v and res.atoms:
        res.formation_energy = res.energy - res.atoms * v["e0"]
        res.extra["perfect_energy_per_atom"] = v["e0"]
        if "e0_ncell" in v:
            res.extra["perfect_energy_per_atom_ncell"] = v["e0_ncell"]
            res.extra["formation_energy_ncell_e0"] = res.energy - res.atoms * v["e0_ncell"]
    res.status = "converged" if (res.max_force is not None and res.max_force <= case.fmax) else "not converged"
    res.note = f"stopping criterion: {v.get('criterion', '?')}"
    return res


def run_case(case: BenchCase, workdir: str | None = None, timeout: float = 3600.0) -> BenchResult:
    """Run one case in its own subprocess and return what it measured."""
    own = workdir is None
    work = tempfile.mkdtemp(prefix=f"bench-{case.code}-") if own else workdir
    os.makedirs(work, exist_ok=True)
    try:
        if case.code == "lammps":
            return _run_lammps(case, work, timeout)
        method = "Newton–Krylov, FFT lattice preconditioner" if case.code == "genanalysis" else "ASE LBFGS + matscipy EAM"
        res = BenchResult(case.code, method, case.n)
        if case.code == "ase" and not _is_file(case.potential):
            res.status = "skipped"
            res.note = f"matscipy's EAM needs an EAM file; {case.potential} is not one"
            return res
        cmd = [sys.executable, "-m", "genanalysis.bench", json.dumps(asdict(case))]
        code, wall, mem, stdout, stderr = _run_measured(cmd, work, _child_env(case.nprocs), timeout)
        res.wall_time, res.peak_memory_mib, res.cpu_time = wall, mem, _run_measured.cpu
        if code != 0:
            res.status = f"failed (exit {code})"
            tail = (stderr.strip() or "no output").splitlines()[-1]
            res.note = "timed out" if code == -9 else tail[:200]
            return res
        out = json.loads(stdout.strip().splitlines()[-1])
        extra = out.pop("extra", {})
        for k, v in out.items():
            setattr(res, k, v)
        res.extra = extra
        return res
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)


def run_benchmark(potential: str, lattice: str, defect: str, sizes, *, a: float, fmax: float, element: str,
                  codes=CODES, nprocs: int = 1, lammps_nprocs: int | None = None, ase_max_n: int = 10,
                  lammps_max_n: int | None = None, timeout: float = 3600.0, progress=None) -> list[BenchResult]:
    """Run every code on every size. ``ratio_to_lammps`` is our solve time over LAMMPS's
    minimisation time at the same n; ``extra['wall_ratio_to_lammps']`` the same for whole
    processes (start-up, geometry and output included)."""
    results: list[BenchResult] = []
    for n in sizes:
        row: dict[str, BenchResult] = {}
        for code in codes:
            if code == "ase" and n > ase_max_n:
                res = BenchResult("ase", "ASE LBFGS + matscipy EAM", n, status="skipped",
                                  note=f"n={n} > {ase_max_n} (too slow)")
            elif code == "lammps" and lammps_max_n is not None and n > lammps_max_n:
                res = BenchResult("lammps", "min_style cg", n, status="skipped", note=f"n={n} > {lammps_max_n}")
            else:
                procs = (lammps_nprocs or nprocs) if code == "lammps" else nprocs
                case = BenchCase(code, potential, lattice, defect, int(n), float(a), float(fmax), element, procs)
                res = run_case(case, timeout=timeout)
            row[code] = res
            if progress:
                progress(res)
        ref = row.get("lammps")
        for res in row.values():
            if ref is not None and ref.status != "skipped" and ref.solve_time and res.solve_time:
                res.ratio_to_lammps = res.solve_time / ref.solve_time
            if ref is not None and ref.status != "skipped" and ref.wall_time and res.wall_time:
                res.extra["wall_ratio_to_lammps"] = res.wall_time / ref.wall_time
        results.extend(row.values())
    return results


def plot_scaling(results: list[BenchResult], path: str, title: str = "") -> None:
    """Log-log plot of solve time (s) against atoms for each code, with an
    N·log N reference through our largest cell (N ∝ n³); written to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    styles = {"genanalysis": ("o-", "genanalysis (Newton–Krylov, FFT preconditioner)"),
              "lammps": ("s--", "LAMMPS min_style cg"), "ase": ("^:", "ASE LBFGS + matscipy EAM")}
    for code, (style, label) in styles.items():
        pts = sorted((r.atoms, r.solve_time, r.status == "converged") for r in results
                     if r.code == code and r.solve_time and r.atoms)
        if pts:
            x, y, ok = np.array(pts, dtype=float).T
            line = ax.loglog(x, y, style, label=label)[0]
            stalled = ok == 0
            if stalled.any():  # stopped above the tolerance: open symbols
                ax.loglog(x[stalled], y[stalled], style[0], mfc="white", mec=line.get_color(), ms=9,
                          label=f"{code}: stopped above the tolerance")
    ours = sorted((r.atoms, r.solve_time) for r in results
                  if r.code == "genanalysis" and r.solve_time and r.atoms and r.status == "converged")
    if len(ours) >= 2:
        x = np.geomspace(ours[0][0], ours[-1][0], 50)
        x1, y1 = ours[-1]
        ax.loglog(x, y1 * (x * np.log(x)) / (x1 * np.log(x1)), "k-", lw=0.8, alpha=0.5, label="∝ N log N")
    ax.set_xlabel("atoms N")
    ax.set_ylabel("time to converge (s, wall)")
    if title:
        ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _fmt(v, spec: str) -> str:
    return "—" if v is None else format(v, spec)


def format_table(results: list[BenchResult]) -> str:
    """A Markdown table of the results (units in the header)."""
    head = ("| code | n | atoms | force evals | HVPs | iterations | max force (eV/Å) | E_f (eV) | "
            "solve (s) | solve CPU (s) | process wall (s) | process CPU (s) | peak mem (MiB) | solve / LAMMPS | "
            "wall / LAMMPS | status |")
    lines = [head, "|" + "---|" * 16]
    for r in results:
        status = r.status + (f" — {r.note}" if r.note else "")
        lines.append(
            f"| {r.code} | {r.n} | {_fmt(r.atoms, 'd')} | {_fmt(r.force_evaluations, 'd')} | "
            f"{_fmt(r.hvp_evaluations, 'd')} | {_fmt(r.iterations, 'd')} | {_fmt(r.max_force, '.2e')} | "
            f"{_fmt(r.formation_energy, '.9f')} | {_fmt(r.solve_time, '.2f')} | "
            f"{_fmt(r.extra.get('solve_cpu'), '.2f')} | {_fmt(r.wall_time, '.2f')} | "
            f"{_fmt(r.cpu_time, '.2f')} | {_fmt(r.peak_memory_mib, '.0f')} | {_fmt(r.ratio_to_lammps, '.2f')} | "
            f"{_fmt(r.extra.get('wall_ratio_to_lammps'), '.2f')} | {status} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":  # the subprocess side of run_case
    sys.exit(_child_main(sys.argv[1:]))
