"""The training-set builder: relax, derive configurations, observe, cache, write.

Units: Å, eV, eV/Å, eV (virials), eV/Å² (force constants); strains dimensionless.

Pipeline (docs/trainingset.md §2), for every group (defect) and cell size N:

1. ū_N — the defect cell relaxed with the reference in its fixed periodic cell
   (:func:`genanalysis.relaxation.relax`); the perfect lattice needs no relaxation (every
   force vanishes by symmetry on a Bravais lattice).
2. Configurations derived from ū_N: ū_N itself (``relaxed``), ``configs_per_size``
   ``rattle``d copies (independent Gaussian displacements of standard deviation
   ``rattle`` Å per Cartesian component, in-plane only in 2D) and ``strains.count``
   ``strain``ed copies (x ↦ (I + ε) x applied to positions and cell, ε symmetric with
   entries uniform in [−amplitude, amplitude]). Every random draw is seeded by
   (seed, group, N, kind, index), so adding sizes or configurations never changes the
   existing ones.
3. Observations (E, F, V, H per group) with the reference, in parallel over
   configurations (process pool; ``workers=1`` runs in-process). Force constants come
   from the analytic Hessian; on perfect-lattice configurations only the first block row
   is computed (analytic, or 6 displaced force calls of one atom by central differences)
   and expanded by translation invariance (:mod:`genanalysis.trainingset.fc`).
4. A cache under ``OUT/cache``: relaxations and each configuration's observations are
   stored under a SHA-256 of everything that determines them (potential identity including
   the potential file's content, lattice, a, defect, N, relaxation tolerance, seed, kind,
   index, rattle, strain amplitude, and the geometry itself). Rebuilding recomputes
   nothing already there; adding a size evaluates only its configurations.
5. Files: ``trainingset.xyz`` (extxyz), ``force_constants.npz`` (if any H), optional
   ``trainingset.db`` (ase.db), ``spec.toml``, ``manifest.json``, ``failures.json``.

A configuration whose reference evaluation fails, or a cell whose relaxation does not
converge, is listed in the summary and in ``failures.json``; it is never silently dropped.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import importlib.util
import json
import os
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from ase import Atoms

from genanalysis.jsonutil import json_ready, sha256_json
from genanalysis.data import OBSERVATION_TYPES, Configuration
from genanalysis.exceptions import InputError
from genanalysis.lattice import atoms_dim, defect_cell, perfect_cell
from genanalysis.trainingset import fc as fcmod
from genanalysis.trainingset import io as tio
from genanalysis.trainingset.spec import TrainingSetSpec, is_cylinder, is_dislocation

__all__ = ["BuildSummary", "build", "group_cell", "potential_identity", "derive_configurations", "CACHE_VERSION"]

#: bump when the meaning of cached data changes
CACHE_VERSION = 2

#: relative tolerance on the agreement between an analytic perfect-lattice Hessian and its
#: expansion from one block row (translation invariance); a larger deviation means the
#: cell is not the perfect lattice it claims to be, and the full matrix is kept
ROW_CHECK_RTOL = 1e-9

XYZ_NAME = "trainingset.xyz"
FC_NAME = "force_constants.npz"
DB_NAME = "trainingset.db"
MANIFEST_NAME = "manifest.json"
FAILURES_NAME = "failures.json"
SPEC_NAME = "spec.toml"


@dataclass
class BuildSummary:
    """What :func:`build` did. ``counts[group][N]`` maps ``configurations`` and each
    observation code to the number of configurations carrying it; ``evaluations`` counts
    reference work done now vs found in the cache."""

    spec_hash: str
    out_dir: str
    potential: dict
    a: float
    counts: dict
    files: list
    evaluations: dict
    failures: list = field(default_factory=list)
    wall_time: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def n_configurations(self) -> int:
        return sum(v["configurations"] for g in self.counts.values() for v in g.values())


# --------------------------------------------------------------------------- hashing

def _file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def potential_identity(spec: str, element: str | None = None) -> dict:
    """What identifies a reference potential for caching: its spec string, the element,
    and the SHA-256 of the file that defines it (EAM file, or the module of a
    ``python:MODULE:CALLABLE``); built-ins are identified by the package version."""
    ident = {"spec": spec, "element": element}
    if spec.startswith("builtin:"):
        from genanalysis import __version__

        ident["version"] = __version__
    elif spec.startswith("python:"):
        module = spec.split(":")[1]
        try:
            found = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            found = None
        if found is not None and found.origin and os.path.isfile(found.origin):
            ident["sha256"] = _file_sha(Path(found.origin))
    else:
        path = Path(spec)
        if path.is_file():
            ident["sha256"] = _file_sha(path)
    return ident


def _geometry_digest(atoms: Atoms) -> str:
    h = hashlib.sha256()
    for arr in (atoms.numbers.astype(np.int64), np.ascontiguousarray(atoms.positions, dtype=np.float64),
                np.ascontiguousarray(np.asarray(atoms.cell), dtype=np.float64), np.asarray(atoms.pbc, bool)):
        h.update(arr.tobytes())
    return h.hexdigest()


def _stream_seed(seed: int, *labels) -> np.random.Generator:
    digest = hashlib.sha256("|".join(map(str, labels)).encode()).digest()
    return np.random.default_rng(np.random.SeedSequence([seed, int.from_bytes(digest[:8], "little")]))


# --------------------------------------------------------------------------- potentials

#: the reference of a worker process, resolved once by :func:`_init_worker`
_WORKER_POTENTIAL = None


def _init_worker(spec: str, element: str | None) -> None:
    global _WORKER_POTENTIAL
    from genanalysis.potentials import load_potential

    _WORKER_POTENTIAL = load_potential(spec, element=element)


def _has_analytic_hessian(pot) -> bool:
    """Whether the potential has an analytic Hessian (every built-in and EAM potential; an
    ASE calculator only with ``get_hessian``)."""
    flag = getattr(pot, "has_analytic_hessian", True)
    return bool(flag() if callable(flag) else flag)


def _fd_step(pot, fd_step) -> float:
    from genanalysis.potentials.wrapper import DEFAULT_FD_STEP

    return float(fd_step) if fd_step else float(getattr(pot, "fd_step", DEFAULT_FD_STEP))


def _check_potential(spec: TrainingSetSpec):
    """Load the potential and refuse what it cannot do, before any evaluation."""
    from genanalysis.potentials import load_potential

    try:
        pot = load_potential(spec.potential, element=spec.element)
    except InputError:
        raise
    except Exception as exc:  # a broken file or module is the user's input, not a crash
        raise InputError(f"cannot load potential {spec.potential!r}: {type(exc).__name__}: {exc}") from None
    species = tuple(getattr(pot, "species", ()) or ())
    if spec.element is not None:
        if species and spec.element not in species:
            raise InputError(
                f"potential {spec.potential!r} lacks element {spec.element!r}; it describes {', '.join(species)}"
            )
        symbol = spec.element
    else:
        if len(species) > 1:
            raise InputError(
                f"potential {spec.potential!r} describes several elements ({', '.join(species)}); "
                "choose one with element = ..."
            )
        symbol = species[0] if species else "X"
    if spec.needs_hessian and spec.fd_step == 0.0 and not _has_analytic_hessian(pot):
        groups = [g for g, codes in spec.observations if "H" in codes]
        raise InputError(
            f"observation H (force constants) requested for {groups}, but potential {spec.potential!r} has no "
            "analytic Hessian and finite differences are disabled (fd_step = 0); set fd_step > 0 Å or drop H"
        )
    return pot, symbol


# --------------------------------------------------------------------------- geometry

@dataclass
class _Item:
    """One configuration to be built: where it comes from, its geometry and its hash."""

    group: str
    size: int
    kind: str  # relaxed | rattle | strain
    index: int
    atoms: Atoms
    hash: str
    translation_invariant: bool
    strain: list | None = None


def derive_configurations(spec: TrainingSetSpec, group: str, size: int, relaxed: Atoms, parent_key: str,
                          identity: dict) -> list[_Item]:
    """The configurations of one (group, N) cell, derived from its relaxed state ``relaxed``
    (positions Å): relaxed, rattled (Gaussian, σ = ``rattle`` Å), strained (ε uniform in
    [−amplitude, amplitude], symmetric). Deterministic in (seed, group, N, kind, index)."""
    dim = atoms_dim(relaxed)
    items: list[_Item] = []
    perfect = group == "perfect"

    def add(kind, index, atoms, extra, strain=None):
        atoms.info["dim"] = dim
        key = {"v": CACHE_VERSION, "potential": identity, "parent": parent_key, "kind": kind, "index": index,
               "seed": spec.seed, **extra, "geometry": _geometry_digest(atoms)}
        items.append(_Item(group, size, kind, index, atoms, sha256_json(key),
                           translation_invariant=perfect and kind != "rattle", strain=strain))

    if spec.include_relaxed:
        add("relaxed", 0, relaxed.copy(), {})
    for k in range(spec.configs_per_size):
        rng = _stream_seed(spec.seed, group, size, "rattle", k)
        disp = rng.normal(0.0, spec.rattle, size=(len(relaxed), 3))
        disp[:, dim:] = 0.0
        at = relaxed.copy()
        at.positions = at.positions + disp
        add("rattle", k, at, {"rattle": spec.rattle})
    for k in range(spec.strains.count):
        rng = _stream_seed(spec.seed, group, size, "strain", k)
        amp = spec.strains.amplitude
        eps = np.zeros((3, 3))
        iu = np.triu_indices(dim)
        eps[iu] = rng.uniform(-amp, amp, size=len(iu[0]))
        eps = np.triu(eps) + np.triu(eps, 1).T
        F = np.eye(3) + eps
        at = relaxed.copy()
        at.set_cell(np.asarray(at.cell) @ F.T, scale_atoms=False)
        at.positions = at.positions @ F.T
        add("strain", k, at, {"amplitude": amp}, strain=eps.tolist())
    return items


# --------------------------------------------------------------------------- workers

def group_cell(lattice: str, a: float, size: int, group: str, symbol: str, pot) -> Atoms:
    """The unrelaxed size-N cell of a group: the point-defect n-cell; for a dislocation
    group the periodic quadrupole cell (:func:`genanalysis.dislocation_cells.quadrupole_cell`);
    for a cylinder group the clamped cylinder of free radius R_N = 2 N a and clamped width
    twice ``pot``'s cutoff (:func:`genanalysis.dislocation_cells.cylinder_atoms`, its atoms'
    ``clamped`` mask kept). Both predictors take the reference ``pot``'s elastic constants
    at ``a`` (the bcc one-cell constants, as the experiment's cylinder takes them)."""
    if is_dislocation(group) or is_cylinder(group):
        from genanalysis.observe import elastic_constants

        kind = group.partition(":")[2]
        C = np.asarray(elastic_constants(pot, perfect_cell("bcc", a, 1, symbol)), dtype=float)
        if is_dislocation(group):
            from genanalysis.dislocation_cells import quadrupole_cell

            return quadrupole_cell(kind, a, C, size, symbol)
        from genanalysis.dislocation_cells import cylinder_atoms, default_clamp_width, training_cylinder_radius

        atoms = cylinder_atoms(kind, training_cylinder_radius(size, a), a, C, clamp_width=default_clamp_width(pot),
                               symbol=symbol)
        atoms.info["n"] = int(size)
        atoms.arrays["site_index"] = np.arange(len(atoms))
        return atoms
    return defect_cell(lattice, a, size, group, symbol)


def _relax_task(lattice, a, defect, size, symbol, fmax, max_iter, pot=None):
    """Relax one defect cell (positions Å); returns a plain dict (picklable)."""
    try:
        from genanalysis.relaxation import relax

        pot = pot if pot is not None else _WORKER_POTENTIAL
        atoms = group_cell(lattice, a, size, defect, symbol, pot)
        r = relax(atoms, pot, fmax=fmax, max_iter=max_iter)
        return {"ok": True, "positions": np.asarray(r.atoms.positions, float), "numbers": atoms.numbers.copy(),
                "cell": np.asarray(atoms.cell, float), "pbc": np.asarray(atoms.pbc, bool),
                "site_index": np.asarray(atoms.arrays["site_index"]), "info": _plain(atoms.info),
                **({"clamped": np.asarray(atoms.arrays["clamped"], bool)} if "clamped" in atoms.arrays else {}),
                "status": str(r.status),
                "converged": bool(r.converged), "iterations": int(r.iterations),
                "force_evaluations": int(r.force_evaluations),
                "hvp_evaluations": int(getattr(r, "hvp_evaluations", 0)),
                "max_force": float(r.max_force), "energy": float(r.energy)}
    except Exception as exc:  # reported, never dropped
        return {"ok": False, "status": f"{type(exc).__name__}: {exc}", "converged": False,
                "traceback": traceback.format_exc(limit=4)}


def _fd_rows(pot, atoms: Atoms, atom_indices, step: float):
    """Central-difference force constants of the rows of ``atom_indices``: 6 force calls
    per atom, Φ(ℓa, kb) = −(F_kb(x + h e_ℓa) − F_kb(x − h e_ℓa)) / 2h, eV/Å²."""
    from genanalysis.potentials.wrapper import force_derivative

    n = len(atoms)
    work = atoms.copy()
    work.calc = None
    x0 = work.positions.copy()
    unit = np.zeros((n, 3))
    rows = []
    for ell in atom_indices:  # one displaced atom per pass: the finite-difference method itself
        block = np.empty((3, n, 3))
        for a in range(3):
            unit[ell, a] = 1.0
            block[a] = force_derivative(lambda at: pot.observe(at).forces, work, x0, unit, step)
            unit[ell, a] = 0.0
        rows.append(block)
    return rows  # each (3, n, 3): [a, k, b]


def _force_constants(pot, atoms: Atoms, fd_step, translation_invariant: bool):
    """(3n × 3n) force constants (eV/Å²), how they were obtained, and the reference calls
    made. Perfect-lattice cells need only their first block row: the analytic row, or 6
    displaced force calls of atom 0 (phonopy's one symmetry-distinct atom of a Bravais
    lattice), expanded by translation invariance. Other cells: the analytic Hessian, or
    central differences (6n force calls) from :func:`genanalysis.observe.force_constants`."""
    from genanalysis.observe import force_constants

    n = len(atoms)
    analytic = _has_analytic_hessian(pot)
    if translation_invariant:
        if analytic:
            h = sp.csr_array(force_constants(atoms, pot))
            cols, blocks = fcmod.block_row(h, 0)
            full = fcmod.expand_row(cols, blocks, atoms.positions, atoms.cell, atoms.pbc)
            scale = abs(h).max() if h.nnz else 1.0
            if (full - h).nnz == 0 or abs(full - h).max() <= ROW_CHECK_RTOL * scale:
                return full, "analytic-row", 1
            return h, "analytic", 1
        block = _fd_rows(pot, atoms, [0], _fd_step(pot, fd_step))[0]  # (3, n, 3)
        blocks = block.transpose(1, 0, 2)  # (n, 3a, 3b): Φ(0, k)
        keep = np.flatnonzero(np.abs(blocks).reshape(n, -1).max(axis=1) > 0)
        full = fcmod.expand_row(keep, blocks[keep], atoms.positions, atoms.cell, atoms.pbc)
        return full, "fd-row", 6
    if analytic:
        return sp.csr_array(force_constants(atoms, pot)), "analytic", 1
    return sp.csr_array(force_constants(atoms, pot, fd_step=_fd_step(pot, fd_step))), "fd", 6 * n


def _observe_task(atoms, kinds, fd_step, translation_invariant, pot=None):
    """Reference observations ``kinds`` (subset of EFVH) of one configuration."""
    try:
        pot = pot if pot is not None else _WORKER_POTENTIAL
        out = {"ok": True, "calls": 0}
        efv = "".join(k for k in kinds if k in "EFV")
        if efv:
            from genanalysis.observe import observe

            obs = observe(atoms, pot, efv)  # one evaluation for E, F and V
            out["calls"] += 1
            if "energy" in obs:
                out["energy"] = float(obs["energy"])
            if "forces" in obs:
                out["forces"] = np.array(obs["forces"], dtype=np.float64).reshape(-1, 3)
            if "virial" in obs:
                out["virial"] = np.array(obs["virial"], dtype=np.float64).reshape(3, 3)
        if "H" in kinds:
            h, how, calls = _force_constants(pot, atoms, fd_step, translation_invariant)
            out["hessian"] = h
            out["hessian_method"] = how
            out["calls"] += calls
        for key in ("energy", "forces", "virial"):
            if key in out and not np.all(np.isfinite(out[key])):
                hint = " (does the calculator implement stress?)" if key == "virial" else ""
                raise FloatingPointError(f"the reference returned a non-finite {key}{hint}")
        return out
    except Exception as exc:  # reported, never dropped
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=4)}


# --------------------------------------------------------------------------- cache

_RELAX_ARRAYS = ("positions", "numbers", "cell", "pbc", "site_index", "clamped")


def _plain(obj):
    return json_ready(obj)


class _Cache:
    """Content-addressed store under ``root``: ``relax/<hash>.npz``, ``obs/<hash>.npz``,
    ``lattice/<hash>.json``. Writes are atomic (temporary file, then rename)."""

    def __init__(self, root: Path):
        self.root = root

    def _path(self, kind: str, key: str, ext: str) -> Path:
        return self.root / kind / key[:2] / f"{key}.{ext}"

    def _write_npz(self, path: Path, arrays: dict) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)

    def get_json(self, kind, key):
        p = self._path(kind, key, "json")
        return json.loads(p.read_text()) if p.exists() else None

    def put_json(self, kind, key, obj):
        p = self._path(kind, key, "json")
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(obj))
        os.replace(tmp, p)

    def get_relax(self, key):
        p = self._path("relax", key, "npz")
        if not p.exists():
            return None
        with np.load(p, allow_pickle=False) as z:
            rec = json.loads(str(z["record"]))
            for name in _RELAX_ARRAYS:
                if name in z:
                    rec[name] = np.array(z[name])
        return rec

    def put_relax(self, key, rec):
        rec = dict(rec)
        rec.pop("traceback", None)
        arrays = {name: np.asarray(rec.pop(name)) for name in _RELAX_ARRAYS if name in rec}
        arrays["record"] = np.array(json.dumps(rec))
        self._write_npz(self._path("relax", key, "npz"), arrays)

    def get_obs(self, key) -> dict:
        p = self._path("obs", key, "npz")
        if not p.exists():
            return {}
        out = {}
        with np.load(p, allow_pickle=False) as z:
            rec = json.loads(str(z["record"]))
            n = rec["n_atoms"]
            if "energy" in z:
                out["energy"] = float(z["energy"][0])
            if "forces" in z:
                out["forces"] = np.array(z["forces"])
            if "virial" in z:
                out["virial"] = np.array(z["virial"])
            if "h_row_columns" in z:
                out["hessian"] = fcmod.expand_row(z["h_row_columns"], z["h_row_blocks"], z["positions"],
                                                  z["cell"], z["pbc"])
            elif "h_blocks" in z:
                out["hessian"] = fcmod.from_blocks(z["h_indptr"], z["h_indices"], z["h_blocks"], n)
            if "hessian" in out:
                out["hessian_method"] = rec.get("hessian_method")
        return out

    def put_obs(self, key, atoms: Atoms, obs: dict, translation_invariant: bool) -> None:
        arrays = {}
        if "energy" in obs:
            arrays["energy"] = np.array([obs["energy"]], dtype=np.float64)
        for k in ("forces", "virial"):
            if k in obs:
                arrays[k] = np.asarray(obs[k], dtype=np.float64)
        if "hessian" in obs:
            row = None
            if translation_invariant:
                row = fcmod.compress_translation_invariant(obs["hessian"], atoms.positions, atoms.cell, atoms.pbc)
            if row is not None:
                arrays["h_row_columns"], arrays["h_row_blocks"] = row
                arrays["positions"] = np.asarray(atoms.positions, float)
                arrays["cell"] = np.asarray(atoms.cell, float)
                arrays["pbc"] = np.asarray(atoms.pbc, bool)
            else:
                arrays["h_indptr"], arrays["h_indices"], arrays["h_blocks"] = fcmod.to_blocks(obs["hessian"])
        arrays["record"] = np.array(json.dumps({"n_atoms": len(atoms), "hessian_method": obs.get("hessian_method")}))
        self._write_npz(self._path("obs", key, "npz"), arrays)


# --------------------------------------------------------------------------- the builder

def _run(tasks, fn, workers, pot, spec: TrainingSetSpec):
    """Run ``fn(*args)`` for every task (a tuple): in-process with the loaded potential when
    ``workers == 1``, else in worker processes that each resolve ``spec``'s potential once.
    Returns results in task order."""
    if workers == 1 or len(tasks) <= 1:
        return [fn(*t, pot=pot) for t in tasks]
    with cf.ProcessPoolExecutor(max_workers=min(workers, len(tasks)), initializer=_init_worker,
                                initargs=(spec.potential, spec.element)) as ex:
        futures = [ex.submit(fn, *t) for t in tasks]
        return [f.result() for f in futures]


def _observed_atoms(it: _Item) -> np.ndarray | None:
    """Per-atom weights restricting a cylinder's force (and force-constant) rows to its free
    atoms: 0 on the clamped shell, 1 inside; None (uniform) for every other group. A zero
    weight removes an atom's rows from the loss exactly (:func:`genanalysis.fitting.loss.terms`)."""
    if not is_cylinder(it.group):
        return None
    return np.where(np.asarray(it.atoms.arrays["clamped"], bool), 0.0, 1.0)


def _check_workers(workers) -> int:
    if workers is None:
        return max(1, min(os.cpu_count() or 1, 8))
    if isinstance(workers, bool) or int(workers) != workers or int(workers) < 1:
        raise InputError(f"workers={workers!r} must be a whole number ≥ 1 (1 = in-process)")
    return int(workers)


def build(spec: TrainingSetSpec, out_dir, *, workers: int | None = None, keys="both", fc_layout: str = "bsr",
          db: bool = False) -> BuildSummary:
    """Build (or complete) the training set ``spec`` in ``out_dir``; returns a
    :class:`BuildSummary`. ``workers``: processes for the reference evaluations (None =
    up to the CPU count, 1 = in-process). ``keys``: extxyz key preset (``both``, ``ace``,
    ``mace``) or :class:`~genanalysis.trainingset.io.ExtxyzKeys`. ``fc_layout``: ``bsr``
    (block-sparse) or ``phonopy`` ((n, n, 3, 3) dense). ``db``: also export ``ase.db``.

    All input is checked (spec, potential, element, Hessian availability, options) before
    the first reference evaluation."""
    t0 = time.perf_counter()
    if not isinstance(spec, TrainingSetSpec):
        raise InputError(f"build() needs a TrainingSetSpec, got {type(spec).__name__}")
    workers = _check_workers(workers)
    keys = tio._keys(keys)
    if fc_layout not in ("bsr", "phonopy"):
        raise InputError(f"fc_layout={fc_layout!r} is not known; choose 'bsr' or 'phonopy'")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"output {str(out)!r} exists and is not a directory")
    pot, symbol = _check_potential(spec)
    identity = potential_identity(spec.potential, spec.element)
    spec_hash = spec.content_hash()
    cache = _Cache(out / "cache")
    stats = {"reference_calls": 0, "configs_evaluated": 0, "configs_cached": 0, "observations_evaluated": 0,
             "observations_cached": 0, "relaxations_done": 0, "relaxations_cached": 0,
             "relaxation_force_evaluations": 0, "relaxation_hessian_products": 0, "lattice_constant": "given"}
    failures: list[dict] = []

    # -- lattice constant
    if spec.a is not None:
        a = float(spec.a)
    else:
        lkey = sha256_json({"v": CACHE_VERSION, "potential": identity, "lattice": spec.lattice, "what": "a_eq"})
        rec = cache.get_json("lattice", lkey)
        if rec is None:
            a = float(pot.equilibrium_lattice_constant(spec.lattice))
            cache.put_json("lattice", lkey, {"a": repr(a)})
            stats["lattice_constant"] = "computed"
        else:
            a = float(rec["a"])
            stats["lattice_constant"] = "cached"

    # -- relaxed cells ū_N
    cells: dict[tuple[str, int], tuple[Atoms, str] | None] = {}
    todo = []
    for group in spec.defects:
        for n in spec.sizes:
            if group == "perfect":
                at = perfect_cell(spec.lattice, a, n, symbol)
                cells[(group, n)] = (at, sha256_json({"v": CACHE_VERSION, "lattice": spec.lattice, "a": repr(a), "n": n,
                                               "symbol": symbol, "defect": "perfect"}))
                continue
            rkey = sha256_json({"v": CACHE_VERSION, "potential": identity, "lattice": spec.lattice, "a": repr(a),
                         "defect": group, "n": n, "symbol": symbol, "fmax": repr(spec.fmax),
                         "max_iter": spec.max_iter})
            rec = cache.get_relax(rkey)
            if rec is None:
                todo.append(((spec.lattice, a, group, n, symbol, spec.fmax, spec.max_iter), (group, n, rkey)))
            else:
                stats["relaxations_cached"] += 1
                cells[(group, n)] = (rec, rkey)
    if todo:
        results = _run([t for t, _ in todo], _relax_task, workers, pot, spec)
        for (_, (group, n, rkey)), rec in zip(todo, results):
            stats["relaxations_done"] += 1
            stats["relaxation_force_evaluations"] += rec.get("force_evaluations", 0)
            stats["relaxation_hessian_products"] += rec.get("hvp_evaluations", 0)
            if rec.get("ok"):
                cache.put_relax(rkey, rec)
            cells[(group, n)] = (rec, rkey)

    # -- configurations
    items: list[_Item] = []
    for group in spec.defects:
        for n in spec.sizes:
            base, pkey = cells[(group, n)]
            if isinstance(base, dict):
                rec = base
                if not rec.get("converged"):
                    failures.append({"stage": "relax", "group": group, "size": n, "configurations_skipped":
                                     spec.configs_per_group, "error": rec.get("status", "relaxation failed"),
                                     "max_force": rec.get("max_force")})
                    continue
                at = Atoms(numbers=rec["numbers"], positions=rec["positions"], cell=rec["cell"], pbc=rec["pbc"])
                at.arrays["site_index"] = rec["site_index"]
                if "clamped" in rec:
                    at.arrays["clamped"] = np.asarray(rec["clamped"], bool)
                at.info.update(rec["info"])
                at.info["relaxation"] = {k: rec[k] for k in ("status", "iterations", "max_force", "energy")}
                base = at
            items.extend(derive_configurations(spec, group, n, base, pkey, identity))

    # -- observations: cached or evaluated
    obs_by_item: list[dict] = []
    tasks, task_items = [], []
    for idx, it in enumerate(items):
        want = spec.observations_of(it.group)
        have = cache.get_obs(it.hash)
        have_codes = {"E": "energy" in have, "F": "forces" in have, "V": "virial" in have, "H": "hessian" in have}
        missing = "".join(c for c in want if not have_codes[c])
        stats["observations_cached"] += len(want) - len(missing)
        obs_by_item.append(have)
        if missing:
            tasks.append((it.atoms, missing, spec.fd_step, it.translation_invariant))
            task_items.append(idx)
        else:
            stats["configs_cached"] += 1
    if tasks:
        results = _run(tasks, _observe_task, workers, pot, spec)
        for idx, res in zip(task_items, results):
            it = items[idx]
            if not res.get("ok"):
                failures.append({"stage": "observe", "group": it.group, "size": it.size, "kind": it.kind,
                                 "index": it.index, "hash": it.hash, "error": res.get("error")})
                obs_by_item[idx] = None
                continue
            stats["reference_calls"] += res.pop("calls", 0)
            stats["configs_evaluated"] += 1
            res.pop("ok", None)
            stats["observations_evaluated"] += sum(k in res for k in ("energy", "forces", "virial", "hessian"))
            merged = {**obs_by_item[idx], **res}
            cache.put_obs(it.hash, it.atoms, merged, it.translation_invariant)
            obs_by_item[idx] = merged

    # -- assemble and write
    configs: list[Configuration] = []
    for it, obs in zip(items, obs_by_item):
        if obs is None:
            continue
        want = spec.observations_of(it.group)
        meta = {"size": it.size, "kind": it.kind, "index": it.index, "hash": it.hash,
                "translation_invariant": it.translation_invariant}
        if it.strain is not None:
            meta["strain"] = it.strain
        if "H" in want and obs.get("hessian_method"):
            meta["hessian_method"] = obs["hessian_method"]
        configs.append(Configuration(
            atoms=it.atoms, group=it.group, atom_weights=_observed_atoms(it),
            energy=obs.get("energy") if "E" in want else None,
            forces=obs.get("forces") if "F" in want else None,
            virial=obs.get("virial") if "V" in want else None,
            hessian=obs.get("hessian") if "H" in want else None,
            meta=meta,
        ))

    out.mkdir(parents=True, exist_ok=True)
    files = [str(out / SPEC_NAME)]
    (out / SPEC_NAME).write_text(spec.to_toml())
    tio.write_extxyz(out / XYZ_NAME, configs, keys=keys, spec_hash=spec_hash)
    files.append(str(out / XYZ_NAME))
    fc_path = out / FC_NAME
    if any(c.hessian is not None for c in configs):
        tio.write_force_constants(fc_path, configs, layout=fc_layout, spec_hash=spec_hash)
        files.append(str(fc_path))
    elif fc_path.exists():
        fc_path.unlink()
    if db:
        tio.write_db(out / DB_NAME, configs, spec_hash=spec_hash)
        files.append(str(out / DB_NAME))
    elif (out / DB_NAME).exists():
        (out / DB_NAME).unlink()  # a stale export of an earlier spec would contradict the xyz
    (out / FAILURES_NAME).write_text(json.dumps(failures, indent=1, default=str) + "\n")
    files.append(str(out / FAILURES_NAME))

    counts: dict = {}
    for c in configs:
        g = counts.setdefault(c.group, {})
        row = g.setdefault(str(c.meta["size"]), {"configurations": 0, **{k: 0 for k in OBSERVATION_TYPES}})
        row["configurations"] += 1
        for k in c.observed:
            row[k] += 1
    summary = BuildSummary(spec_hash=spec_hash, out_dir=str(out), potential=identity, a=a, counts=counts,
                           files=files + [str(out / MANIFEST_NAME)], evaluations=stats, failures=failures,
                           wall_time=time.perf_counter() - t0)
    manifest = {"spec_hash": spec_hash, "potential": identity, "a": repr(a), "symbol": symbol,
                "keys": asdict(keys), "fc_layout": fc_layout,
                "files": {"extxyz": XYZ_NAME, "force_constants": FC_NAME if fc_path.exists() else None,
                          "db": DB_NAME if db else None},
                "configurations": [{"group": c.group, **c.meta} for c in configs],
                "counts": counts, "failures": len(failures)}
    (out / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1) + "\n")
    return summary
