"""External fits: a model class trained by its own tool inside a sweep.

A ``[fit]`` table with ``kind = "external"`` names a training command, the file it
writes and the user's loader of that file::

    [fit]
    kind = "external"
    command = ["mace_run_train", "--train_file", "{train}", "--valid_file", "{valid}",
               "--seed", "{seed}", "--name", "w", "--energy_key", "REF_energy", ...]
    output = "w.model"                 # relative to the work directory the command runs in
    extra_outputs = []                 # glob patterns of files the model needs beside it
    load = "python:mace_w:load"        # load(path) -> an ASE calculator
    keys = "mace"                      # extxyz key names of the exported set
    validation_fraction = 0.1
    timeout_s = 3600

What happens (:func:`fit_external`): the training set is split per group exactly as the
toolkit's own fits split it (:func:`genanalysis.fit.split`), written as extxyz
(``{train}``; the held-out part as ``{valid}``), and the command runs in its own work
directory (``{workdir}``; ``{seed}`` is the sweep point's seed; a literal brace is
written twice, ``{{`` and ``}}``) with its standard output
and error kept in ``train.log``. A non-zero exit, a missing output, an output that is not
a file, a time-out, a loader that fails on the output or a model whose errors are not
finite is a **fit failure**, a result
with its reason; a command that cannot be found or a loader module that cannot be
imported is refused when the study is validated, before any work. The fitted model is then
measured by the toolkit on both splits (the same report as the toolkit's own fits).

The model files' bytes travel inside the sweep's shared-work result (a data-only npz,
checked against its SHA-256), so every task evaluates the file the command wrote and a
changed or truncated copy is rebuilt rather than used. The *loader* is the user's code:
genanalysis never unpickles anything itself, but a loader may (a MACE model file is a torch
pickle), so resume or extend a sweep with such a loader only on a results directory you
produced yourself.

The command, its hyper-parameters, the output name, the loader and the split are all in
the ``[fit]`` table, so they are all part of the fit's identity (the shared-work hash and
``fit_hash``): changing any of them trains again.
"""

from __future__ import annotations

import hashlib
import math
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genanalysis.constraints import check_number
from genanalysis.exceptions import InputError

__all__ = ["KIND", "ExternalFitSpec", "ExternalFitError", "PotentialObservations", "fit_external",
           "external_potential", "files_sha256", "PLACEHOLDERS"]

#: the ``[fit] kind`` of an external fit
KIND = "external"
#: the placeholders a command may use, and what they become
PLACEHOLDERS = {
    "train": "path of the exported training split (extxyz)",
    "valid": "path of the exported held-out split (extxyz; empty file when nothing is held out)",
    "workdir": "the directory the command runs in",
    "seed": "the sweep point's seed",
}
_KEYS = ("kind", "command", "output", "extra_outputs", "load", "keys", "validation_fraction", "seed", "timeout_s",
         "max_model_mb")
#: the largest model file accepted by default (MB); the file travels in the shared-work result
DEFAULT_MAX_MODEL_MB = 512.0


class ExternalFitError(Exception):
    """An external training run that produced no usable model: a result (fit failure)."""


@dataclass(frozen=True)
class ExternalFitSpec:
    """A validated ``[fit]`` table of kind ``external`` (module docstring). ``command``:
    argv list (placeholders :data:`PLACEHOLDERS` in braces); ``output``: the file the
    command writes, relative to its work directory; ``extra_outputs``: glob patterns (relative
to it) of files the model needs beside ``output`` (e.g. a GAP's sparse-point files);
``load``: ``python:MODULE:CALLABLE``
    (options as for a ``python:`` potential) called with the output's path and returning an
    ASE calculator; ``keys``: extxyz key preset of the export; ``timeout_s`` (s);
    ``max_model_mb`` (MB)."""

    command: tuple
    output: str
    load: str
    extra_outputs: tuple = ()
    keys: str = "mace"
    validation_fraction: float = 0.1
    seed: int = 0
    timeout_s: float = 3600.0
    max_model_mb: float = DEFAULT_MAX_MODEL_MB

    @classmethod
    def from_table(cls, table: dict, seed: int = 0) -> "ExternalFitSpec":
        """The spec of a ``[fit]`` table (``kind = "external"``); raises :class:`InputError`
        naming ``fit.KEY`` and what it accepts."""
        bad = sorted(set(table) - set(_KEYS))
        if bad:
            raise InputError(f"fit.{bad[0]}: not a key of an external fit; accepted: {', '.join(_KEYS)}")
        for key in ("command", "output", "load"):
            if key not in table:
                raise InputError(f"fit.{key}: required when fit.kind = {KIND!r}")
        command = table["command"]
        if isinstance(command, str) or not isinstance(command, (list, tuple)) or not command \
                or not all(isinstance(a, str) for a in command):
            raise InputError(f"fit.command={command!r} must be a non-empty list of strings (the argv of the "
                             "training command)")
        for arg in command:
            try:
                arg.format(**{k: "" for k in PLACEHOLDERS})
            except (KeyError, IndexError, ValueError) as exc:
                raise InputError(f"fit.command argument {arg!r}: unknown or malformed placeholder ({exc}); "
                                 f"accepted: {', '.join('{' + k + '}' for k in PLACEHOLDERS)}") from None
        output = table["output"]
        if not isinstance(output, str) or not output or Path(output).is_absolute() or ".." in Path(output).parts:
            raise InputError(f"fit.output={output!r} must be a file name relative to the command's work directory")
        extra = table.get("extra_outputs", [])
        if isinstance(extra, str) or not isinstance(extra, (list, tuple)) or not all(
                isinstance(g, str) and g and not Path(g).is_absolute() and ".." not in Path(g).parts for g in extra):
            raise InputError(f"fit.extra_outputs={extra!r} must be a list of glob patterns relative to the "
                             "command's work directory")
        load = table["load"]
        if not isinstance(load, str) or not load.startswith("python:"):
            raise InputError(f"fit.load={load!r} must be 'python:MODULE:CALLABLE' (called with the output's path)")
        from genanalysis.trainingset.io import KEY_PRESETS

        keys = table.get("keys", "mace")
        if keys not in KEY_PRESETS:
            raise InputError(f"fit.keys={keys!r}; choose one of {', '.join(KEY_PRESETS)}")
        s = table.get("seed", seed)
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise InputError(f"fit.seed={s!r} must be a whole number ≥ 0")
        return cls(command=tuple(command), output=output, load=load, extra_outputs=tuple(extra), keys=keys,
                   validation_fraction=check_number(table.get("validation_fraction", 0.1), "fit.validation_fraction",
                                                    minimum=0.0, maximum=0.9),
                   seed=s,
                   timeout_s=check_number(table.get("timeout_s", 3600.0), "fit.timeout_s", minimum=0.0, strict=True),
                   max_model_mb=check_number(table.get("max_model_mb", DEFAULT_MAX_MODEL_MB), "fit.max_model_mb",
                                             minimum=0.0, strict=True))

    def check_tools(self) -> None:
        """Refuse, before any work, a command that cannot be found and a loader whose module
        cannot be imported or has no such callable (the loader is not called)."""
        exe = self.command[0]
        if shutil.which(exe) is None and not (Path(exe).is_file()):
            raise InputError(f"fit.command: the program {exe!r} is not found on PATH")
        from genanalysis.potentials.wrapper import python_callable

        python_callable(self.load, f"fit.load={self.load!r}")

    def content_hash(self) -> str:
        """SHA-256 of every field (the command and its hyper-parameters included)."""
        import dataclasses

        from genanalysis.jsonutil import sha256_json

        return sha256_json({"kind": KIND, **dataclasses.asdict(self)})

    def fit_hash(self, configs) -> str:
        """The fit's identity (16 hex digits): this spec and the training set's content."""
        from genanalysis.data import configurations_hash
        from genanalysis.jsonutil import sha256_json

        return sha256_json({"spec": self.content_hash(), "training_set": configurations_hash(configs)})[:16]

    def argv(self, train: Path, valid: Path, workdir: Path, seed: int) -> list[str]:
        values = {"train": str(train), "valid": str(valid), "workdir": str(workdir), "seed": str(seed)}
        return [a.format(**values) for a in self.command]


def external_potential(load: str, path):
    """The :class:`~genanalysis.potentials.wrapper.ASECalculatorPotential` that the user's
    loader ``load`` (``python:MODULE:CALLABLE[?OPTIONS]``) makes of the model file ``path``."""
    from genanalysis.potentials.wrapper import potential_from_python_spec

    return potential_from_python_spec(load, str(path))


class PotentialObservations:
    """A :class:`~genanalysis.potentials.Potential` seen as a fitted model by the fit report
    (:func:`genanalysis.fit.fit_report`): energy (eV), forces (eV/Å), virial (eV) and rows
    of the force-constant matrix (eV/Å²)."""

    def __init__(self, potential):
        self.potential = potential

    def predict(self, atoms) -> dict:
        ev = self.potential.observe(atoms)
        return {"energy": ev.energy, "forces": ev.forces, "virial": ev.virial}

    def hessian_rows(self, atoms, rows) -> np.ndarray:
        H = self.potential.hessian(atoms).tocsr()
        idx = (3 * np.asarray(rows)[:, None] + np.arange(3)[None, :]).reshape(-1)
        return H[idx].toarray()


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])[-400:]


def fit_external(configs, spec: ExternalFitSpec, workdir=None, *, seed: int | None = None) -> dict:
    """Train with the external command on ``configs`` and measure the result.

    Returns ``{"potential", "files" ({name relative to the work directory: bytes} of
    ``output`` and ``extra_outputs``), "files_sha256" (:func:`files_sha256`), "report",
    "seconds", "workdir"}``; ``report`` is :func:`genanalysis.fit.fit_report`'s
    (RMSE per split, group and type) plus the command, its exit code and run time.
    Raises :class:`ExternalFitError` for a run that gave no usable model (its reason names
    the exit code and the last lines of the log) and :class:`InputError` for a spec the
    tools refuse."""
    from genanalysis.fit import fit_report, split
    from genanalysis.trainingset.io import write_extxyz

    if not configs:
        raise InputError("the training set is empty; build it first (`genanalysis trainingset`)")
    work = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="genanalysis-external-"))
    work.mkdir(parents=True, exist_ok=True)
    seed = spec.seed if seed is None else seed
    train, val = split(configs, spec.validation_fraction, spec.seed)
    train_path, valid_path = work / "train.xyz", work / "valid.xyz"
    write_extxyz(train_path, [configs[i] for i in train], keys=spec.keys)
    if val:
        write_extxyz(valid_path, [configs[i] for i in val], keys=spec.keys)
    else:
        valid_path.write_text("")
    out = work / spec.output
    for stale in [out, *(p for g in spec.extra_outputs for p in work.glob(g))]:
        if stale.is_file():
            stale.unlink()
    argv = spec.argv(train_path.resolve(), valid_path.resolve(), work.resolve(), seed)
    log = work / "train.log"
    t0 = time.perf_counter()
    with open(log, "wb") as fh:
        try:
            proc = subprocess.run(argv, cwd=work, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  timeout=spec.timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise ExternalFitError(f"the training command ran over fit.timeout_s={spec.timeout_s:g} s") from None
        except OSError as exc:
            raise ExternalFitError(f"the training command could not start: {exc}") from None
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise ExternalFitError(f"the training command exited with code {proc.returncode}; "
                               f"its last output: {_tail(log)}")
    if not out.is_file():
        raise ExternalFitError(f"the training command exited 0 but wrote no file {spec.output!r} "
                               f"in its work directory; its last output: {_tail(log)}")
    names = [spec.output] + sorted({p.relative_to(work).as_posix() for g in spec.extra_outputs
                                    for p in work.glob(g) if p.is_file()} - {spec.output})
    size_mb = sum((work / n).stat().st_size for n in names) / 1e6
    if size_mb > spec.max_model_mb:
        raise ExternalFitError(f"the model files ({', '.join(names)}) are {size_mb:.1f} MB, over "
                               f"fit.max_model_mb={spec.max_model_mb:g}")
    files = {n: (work / n).read_bytes() for n in names}
    try:
        potential = external_potential(spec.load, out)
    except Exception as exc:  # noqa: BLE001 - the user's loader on the program's output: a result
        raise ExternalFitError(f"the loader {spec.load} failed on the model file: "
                               f"{type(exc).__name__}: {exc}") from None
    report = fit_report(PotentialObservations(potential), configs, train, val)
    bad = [f"{split_}/{t}" for split_ in ("train", "validation")
           for t, st in report.get(split_, {}).get("all", {}).items()
           if t != "V" and not math.isfinite(st["rmse"])]
    if bad:
        raise ExternalFitError(f"the trained model gives non-finite errors ({', '.join(bad)})")
    from genanalysis.data import configurations_hash

    report.update(spec_hash=spec.content_hash(), training_set_hash=configurations_hash(configs),
                  fit_hash=spec.fit_hash(configs), model_kind=KIND, command=argv, exit_code=proc.returncode, training_seconds=seconds,
                  n_train=len(train), n_validation=len(val))
    return {"potential": potential, "files": files, "files_sha256": files_sha256(files),
            "report": report, "seconds": seconds, "workdir": str(work)}


def files_sha256(files: dict) -> str:
    """SHA-256 of a set of model files (``{relative name: bytes}``): names and contents."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode("utf-8") + b"\0" + hashlib.sha256(files[name]).digest())
    return h.hexdigest()
