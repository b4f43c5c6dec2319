"""Training-set files: extended XYZ, force-constant ``.npz`` and ``ase.db`` (SQLite).

Units: positions and cell Å, energy eV, forces eV/Å, virial eV (``virial = −stress·V``,
ASE's sign convention), stress eV/Å³, force constants eV/Å².

Every writer here is exact: floats are written with the shortest representation that
reads back to the same double (Python's ``repr``), so write → read gives identical arrays
(``tests/test_trainingset_io.py`` checks it with hypothesis).

Extended XYZ key names are configurable (:class:`ExtxyzKeys`). The presets:

* ``ace`` — what ACEpotentials.jl's ``acefit!`` reads by default: ``energy`` (eV),
  ``force`` (per-atom, eV/Å), ``virial`` (9 numbers, eV), ``config_type``;
* ``mace`` — what ``mace_run_train`` reads by default: ``REF_energy``, ``REF_forces``,
  ``REF_virials`` (eV), ``REF_stress`` (eV/Å³), ``config_type``;
* ``both`` (the default) — both sets in the same file, so one file feeds either code.

Non-observation metadata: ``atoms.info`` entries are written as extxyz key=value pairs
(lists as JSON), :attr:`Configuration.meta` entries with the prefix ``meta_``, and the
training-set spec hash as ``spec_hash`` on every frame.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from genanalysis.jsonutil import json_ready
from genanalysis.data import Configuration
from genanalysis.exceptions import InputError
from genanalysis.trainingset import fc as fcmod

__all__ = [
    "ExtxyzKeys",
    "KEY_PRESETS",
    "write_extxyz",
    "read_extxyz",
    "write_force_constants",
    "read_force_constants",
    "write_db",
    "read_db",
]

FC_FORMAT_VERSION = 1


@dataclass(frozen=True)
class ExtxyzKeys:
    """Key names under which observations are written to / read from extended XYZ.

    Each field is a tuple: the writer writes every name, the reader takes the first one
    present. ``stress`` is derived (−virial/V, eV/Å³); it is read only when no virial key is
    present."""

    energy: tuple[str, ...] = ("energy", "REF_energy")
    forces: tuple[str, ...] = ("force", "REF_forces")
    virial: tuple[str, ...] = ("virial", "REF_virials")
    stress: tuple[str, ...] = ("REF_stress",)
    config_type: str = "config_type"


KEY_PRESETS: dict[str, ExtxyzKeys] = {
    "both": ExtxyzKeys(),
    "ace": ExtxyzKeys(energy=("energy",), forces=("force",), virial=("virial",), stress=()),
    "mace": ExtxyzKeys(energy=("REF_energy",), forces=("REF_forces",), virial=("REF_virials",),
                       stress=("REF_stress",)),
}


def _keys(keys) -> ExtxyzKeys:
    if isinstance(keys, ExtxyzKeys):
        return keys
    if keys in KEY_PRESETS:
        return KEY_PRESETS[keys]
    raise InputError(f"extxyz key preset {keys!r} is not known; choose one of {', '.join(KEY_PRESETS)}")


# --------------------------------------------------------------------------- extxyz

_BARE = re.compile(r"^[A-Za-z0-9_.+\-:/]+$")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")
#: header keys that readers match without regard to case (an ``info['lattice']`` written as
#: ``lattice=bcc`` is read as a malformed ``Lattice`` by some of them)
_CASELESS = ("lattice", "properties", "pbc")
#: prefix of the info keys written under another name for that reason
_ESCAPED = "info_"


def _escape(name: str) -> str:
    return _ESCAPED + name if name.lower() in _CASELESS else name


def _unescape(key: str) -> str:
    rest = key[len(_ESCAPED):]
    return rest if key.startswith(_ESCAPED) and rest.lower() in _CASELESS else key


def _fmt_float(x) -> str:
    return repr(float(x))


def _quote(s: str) -> str:
    if s and _BARE.match(s) and s not in ("T", "F", "True", "False"):
        try:
            float(s)
        except ValueError:
            return s
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _fmt_value(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "T" if value else "F"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return _fmt_float(value)
    if isinstance(value, str):
        quoted = _quote(value)
        # anything that would need quotes is JSON-encoded, so that no string can read back
        # as a number, a boolean or an array
        return quoted if not quoted.startswith('"') else _quote("json:" + json.dumps(value))
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple, dict)):
        return _quote("json:" + json.dumps(value, separators=(",", ":")))
    raise InputError(f"cannot write info value {value!r} of type {type(value).__name__} to extxyz")


def _tokenize(line: str) -> list[tuple[str, str, bool]]:
    """(key, value, was_quoted) triples of an extxyz comment line."""
    out, i, n = [], 0, len(line)
    while i < n:
        while i < n and line[i].isspace():
            i += 1
        if i >= n:
            break
        j = i
        while j < n and line[j] not in "= \t":
            j += 1
        key = line[i:j]
        if j < n and line[j] == "=":
            j += 1
            if j < n and line[j] == '"':
                j += 1
                buf = []
                while j < n and line[j] != '"':
                    if line[j] == "\\" and j + 1 < n:
                        j += 1
                    buf.append(line[j])
                    j += 1
                out.append((key, "".join(buf), True))
                j += 1
            else:
                k = j
                while j < n and not line[j].isspace():
                    j += 1
                out.append((key, line[k:j], False))
        else:
            out.append((key, "T", False))
        i = j
    return out


def _parse_value(text: str, quoted: bool):
    if quoted and text.startswith("json:"):
        return json.loads(text[5:])
    if not quoted:
        if text in ("T", "True"):
            return True
        if text in ("F", "False"):
            return False
        for conv in (int, float):
            try:
                return conv(text)
            except ValueError:
                pass
        return text
    parts = text.split()
    if len(parts) > 1:
        try:
            return np.array([int(p) for p in parts])
        except ValueError:
            try:
                return np.array([float(p) for p in parts])
            except ValueError:
                return text
    return text


_TYPECODE = {"i": "I", "u": "I", "f": "R", "b": "L", "U": "S", "S": "S"}


def write_extxyz(path, configs: list[Configuration], *, keys="both", spec_hash: str | None = None) -> Path:
    """Write configurations to an extended XYZ file (exact floats); returns the path.

    Each frame carries ``config_type`` = the group, the spec hash (if given), the
    observations under every name of ``keys`` (:class:`ExtxyzKeys` or a preset name), the
    per-atom arrays of ``atoms.arrays`` and the ``atom_weights``."""
    keys = _keys(keys)
    path = Path(path)
    lines: list[str] = []
    for c in configs:
        atoms = c.atoms
        n = len(atoms)
        cols: list[tuple[str, str, int, np.ndarray]] = [("species", "S", 1, np.array(atoms.get_chemical_symbols()))]
        cols.append(("pos", "R", 3, atoms.positions))
        if c.forces is not None:
            f = np.asarray(c.forces, dtype=np.float64).reshape(n, 3)
            cols += [(k, "R", 3, f) for k in keys.forces]
        if c.atom_weights is not None:
            cols.append(("atom_weights", "R", 1, np.asarray(c.atom_weights, dtype=np.float64).reshape(n)))
        for name, arr in atoms.arrays.items():
            if name in ("numbers", "positions"):
                continue
            if not _KEY.match(name) or name in ("species", "pos", "atom_weights", *keys.forces):
                raise InputError(f"per-atom array {name!r} cannot be written to extxyz (reserved or invalid name)")
            arr = np.asarray(arr)
            code = _TYPECODE.get(arr.dtype.kind)
            if code is None:
                raise InputError(f"per-atom array {name!r} has unsupported dtype {arr.dtype}")
            width = 1 if arr.ndim == 1 else int(np.prod(arr.shape[1:]))
            cols.append((name, code, width, arr.reshape(n, -1) if width > 1 else arr.reshape(n)))
        props = ":".join(f"{name}:{code}:{width}" for name, code, width, _ in cols)
        header = {
            "Lattice": " ".join(_fmt_float(x) for x in np.asarray(atoms.cell, float).reshape(-1)),
            "Properties": props,
            "pbc": " ".join("T" if p else "F" for p in atoms.pbc),
        }
        parts = [f'Lattice="{header["Lattice"]}"', f"Properties={props}", f'pbc="{header["pbc"]}"']
        parts.append(f"{keys.config_type}={_quote(c.group)}")
        if spec_hash is not None:
            parts.append(f"spec_hash={spec_hash}")
        if c.energy is not None:
            parts += [f"{k}={_fmt_float(c.energy)}" for k in keys.energy]
        if c.virial is not None:
            v = np.asarray(c.virial, dtype=np.float64).reshape(3, 3)
            vtxt = " ".join(_fmt_float(x) for x in v.reshape(-1))
            parts += [f'{k}="{vtxt}"' for k in keys.virial]
            if keys.stress:
                vol = abs(float(np.linalg.det(np.asarray(atoms.cell, float))))
                stxt = " ".join(_fmt_float(x) for x in (-v / vol).reshape(-1))
                parts += [f'{k}="{stxt}"' for k in keys.stress]
        reserved = {"Lattice", "Properties", "pbc", keys.config_type, "spec_hash", *keys.energy,
                    *keys.virial, *keys.stress}
        for name, value in atoms.info.items():
            if name in reserved or not _KEY.match(name) or name.startswith("meta_") or _unescape(name) != name:
                raise InputError(f"atoms.info key {name!r} cannot be written to extxyz (reserved or invalid name)")
            parts.append(f"{_escape(name)}={_fmt_value(value)}")
        for name, value in c.meta.items():
            if not _KEY.match(f"meta_{name}"):
                raise InputError(f"meta key {name!r} cannot be written to extxyz (invalid name)")
            parts.append(f"meta_{name}={_fmt_value(value)}")
        lines.append(str(n))
        lines.append(" ".join(parts))
        rows = [[] for _ in range(n)]
        for name, code, width, arr in cols:
            if code == "R":
                fmt = _fmt_float
            elif code == "L":
                fmt = lambda x: "T" if x else "F"  # noqa: E731
            elif code == "I":
                fmt = lambda x: str(int(x))  # noqa: E731
            else:
                fmt = str
            vals = arr.tolist()
            for i in range(n):
                v = vals[i]
                rows[i].extend(fmt(x) for x in v) if width > 1 else rows[i].append(fmt(v))
        lines.extend(" ".join(r) for r in rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + ("\n" if lines else ""))
    return path


def read_extxyz(path, *, keys="both") -> list[Configuration]:
    """Read configurations written by :func:`write_extxyz` (or any extxyz with the named
    keys) back, bit for bit."""
    keys = _keys(keys)
    path = Path(path)
    try:
        text = path.read_text().splitlines()
    except OSError as exc:
        raise InputError(f"cannot read extxyz file {str(path)!r}: {exc.strerror}") from None
    out: list[Configuration] = []
    i = 0
    while i < len(text):
        if not text[i].strip():
            i += 1
            continue
        try:
            n = int(text[i])
        except ValueError:
            raise InputError(f"{path}: line {i + 1}: expected an atom count, got {text[i][:40]!r}") from None
        info = {}
        raw = {}
        for k, v, q in _tokenize(text[i + 1]):
            raw[k] = (v, q)
        body = [ln.split() for ln in text[i + 2:i + 2 + n]]
        if len(body) != n:
            raise InputError(f"{path}: frame at line {i + 1} has {len(body)} atom lines, expected {n}")
        i += 2 + n
        cell = np.array([float(x) for x in raw.pop("Lattice", ("0 " * 9, False))[0].split()]).reshape(3, 3)
        pbc_txt = raw.pop("pbc", ("T T T", True))[0].split()
        pbc = [p in ("T", "True") for p in pbc_txt]
        props = raw.pop("Properties", ("species:S:1:pos:R:3", False))[0].split(":")
        columns = {}
        col = 0
        for j in range(0, len(props), 3):
            name, code, width = props[j], props[j + 1], int(props[j + 2])
            cells = [row[col:col + width] for row in body]
            col += width
            if code == "R":
                arr = np.array([[float(x) for x in r] for r in cells], dtype=np.float64)
            elif code == "I":
                arr = np.array([[int(x) for x in r] for r in cells], dtype=np.int64)
            elif code == "L":
                arr = np.array([[x in ("T", "True") for x in r] for r in cells], dtype=bool)
            else:
                arr = np.array([[x for x in r] for r in cells])
            columns[name] = arr if width > 1 else arr.reshape(n)
        symbols = list(columns.pop("species"))
        atoms = Atoms(symbols=symbols, positions=columns.pop("pos").reshape(n, 3), cell=cell, pbc=pbc)
        group = raw.pop(keys.config_type, ("default", False))[0]
        energy = forces = virial = None
        for k in keys.energy:
            if k in raw:
                energy = float(raw[k][0])
                break
        for k in keys.forces:
            if k in columns:
                forces = columns[k].reshape(n, 3)
                break
        for k in keys.virial:
            if k in raw:
                virial = np.array([float(x) for x in raw[k][0].split()]).reshape(3, 3)
                break
        if virial is None:
            for k in keys.stress:
                if k in raw:
                    vol = abs(float(np.linalg.det(cell)))
                    virial = -np.array([float(x) for x in raw[k][0].split()]).reshape(3, 3) * vol
                    break
        for k in (*keys.energy, *keys.virial, *keys.stress):
            raw.pop(k, None)
        weights = columns.pop("atom_weights", None)
        for k in keys.forces:
            columns.pop(k, None)
        for name, arr in columns.items():
            atoms.arrays[name] = arr
        meta = {}
        spec_hash = raw.pop("spec_hash", None)
        for k, (v, q) in raw.items():
            val = _parse_value(v, q)
            k = _unescape(k)
            if k.startswith("meta_"):
                meta[k[5:]] = val
            else:
                info[k] = val
        if spec_hash is not None:
            meta.setdefault("spec_hash", spec_hash[0])
        atoms.info.update(info)
        out.append(Configuration(atoms=atoms, group=str(group), energy=energy, forces=forces,
                                 virial=virial, atom_weights=weights, meta=meta))
    return out


# --------------------------------------------------------------------------- force constants

def write_force_constants(path, configs: list[Configuration], *, layout: str = "bsr",
                          spec_hash: str | None = None, translation_invariant: bool = True) -> Path:
    """Write the force constants (eV/Å²) of every configuration that has them to an
    ``.npz``: entry ``i`` belongs to ``configs[i]`` (the extxyz frame order).

    ``layout="bsr"``: block-sparse (``c{i}_indptr``, ``c{i}_indices``, ``c{i}_blocks`` of
    shape (n_blocks, 3, 3)); a perfect-lattice matrix that equals the expansion of its
    first block row *exactly* is stored as that row (``c{i}_row_columns``,
    ``c{i}_row_blocks`` plus the geometry to expand it), unless
    ``translation_invariant=False``. ``layout="phonopy"``: dense ``c{i}_fc`` of shape
    (n, n, 3, 3). A JSON index (``index``) lists entries, their atom counts and storage."""
    if layout not in ("bsr", "phonopy"):
        raise InputError(f"force-constant layout {layout!r} is not known; choose 'bsr' or 'phonopy'")
    arrays: dict[str, np.ndarray] = {}
    index = {"format_version": FC_FORMAT_VERSION, "units": "eV/Å^2", "layout": layout,
             "spec_hash": spec_hash, "entries": []}
    for i, c in enumerate(configs):
        if c.hessian is None:
            continue
        n = len(c.atoms)
        h = sp.csr_array(c.hessian)
        if h.shape != (3 * n, 3 * n):
            raise InputError(f"configuration {i}: Hessian shape {h.shape} does not match {n} atoms (3n × 3n)")
        entry = {"index": i, "n_atoms": n, "config_hash": c.meta.get("hash")}
        if layout == "phonopy":
            arrays[f"c{i}_fc"] = fcmod.to_phonopy(h, n)
            entry["storage"] = "phonopy"
        else:
            row = None
            if translation_invariant and c.meta.get("translation_invariant", False):
                row = fcmod.compress_translation_invariant(h, c.atoms.positions, c.atoms.cell, c.atoms.pbc)
            if row is not None:
                arrays[f"c{i}_row_columns"], arrays[f"c{i}_row_blocks"] = row
                arrays[f"c{i}_positions"] = np.asarray(c.atoms.positions, dtype=np.float64)
                arrays[f"c{i}_cell"] = np.asarray(c.atoms.cell, dtype=np.float64)
                arrays[f"c{i}_pbc"] = np.asarray(c.atoms.pbc, dtype=bool)
                entry["storage"] = "row"
            else:
                arrays[f"c{i}_indptr"], arrays[f"c{i}_indices"], arrays[f"c{i}_blocks"] = fcmod.to_blocks(h)
                entry["storage"] = "bsr"
        index["entries"].append(entry)
    arrays["index"] = np.array(json.dumps(index))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    return path


def read_force_constants(path, *, layout: str = "sparse") -> dict[int, object]:
    """Read an ``.npz`` written by :func:`write_force_constants`: ``{i: matrix}`` with the
    (3n × 3n) CSR matrix (``layout="sparse"``) or phonopy's (n, n, 3, 3) array
    (``layout="phonopy"``), eV/Å²; row-stored perfect-lattice entries are expanded."""
    if layout not in ("sparse", "phonopy"):
        raise InputError(f"force-constant layout {layout!r} is not known; choose 'sparse' or 'phonopy'")
    try:
        z = np.load(Path(path), allow_pickle=False)
    except OSError as exc:
        raise InputError(f"cannot read force-constant file {str(path)!r}: {exc}") from None
    with z:
        index = json.loads(str(z["index"]))
        if index.get("format_version") != FC_FORMAT_VERSION:
            raise InputError(f"{path}: force-constant format version {index.get('format_version')} is not "
                             f"supported (expected {FC_FORMAT_VERSION})")
        out: dict[int, object] = {}
        for e in index["entries"]:
            i, n, storage = e["index"], e["n_atoms"], e["storage"]
            if storage == "phonopy":
                fc = np.array(z[f"c{i}_fc"])
                out[i] = fc if layout == "phonopy" else fcmod.from_phonopy(fc)
                continue
            if storage == "row":
                h = fcmod.expand_row(z[f"c{i}_row_columns"], z[f"c{i}_row_blocks"], z[f"c{i}_positions"],
                                     z[f"c{i}_cell"], z[f"c{i}_pbc"])
            else:
                h = fcmod.from_blocks(z[f"c{i}_indptr"], z[f"c{i}_indices"], z[f"c{i}_blocks"], n)
            out[i] = fcmod.to_phonopy(h, n) if layout == "phonopy" else h
    return out


# --------------------------------------------------------------------------- ase.db

def write_db(path, configs: list[Configuration], *, spec_hash: str | None = None, append: bool = False) -> Path:
    """Export to an ``ase.db`` SQLite file. Energy, forces and stress (eV/Å³) go to the
    row's calculator results (what ASE tools show); the exact observations (virial eV,
    force constants eV/Å² block-sparse, weights), ``atoms.info`` and meta go to ``data``;
    ``config_type`` is a key-value pair."""
    from ase.db import connect

    path = Path(path)
    if path.exists() and not append:
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    with connect(str(path), type="db") as db:
        for i, c in enumerate(configs):
            atoms = c.atoms.copy()
            atoms.info = {}
            results = {}
            if c.energy is not None:
                results["energy"] = float(c.energy)
            if c.forces is not None:
                results["forces"] = np.asarray(c.forces, dtype=np.float64).reshape(-1, 3)
            if c.virial is not None:
                vol = abs(float(np.linalg.det(np.asarray(atoms.cell, float))))
                s = -np.asarray(c.virial, float).reshape(3, 3) / vol
                results["stress"] = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
            if results:
                atoms.calc = SinglePointCalculator(atoms, **results)
            data = {"info_json": json.dumps(_jsonable(c.atoms.info)), "meta_json": json.dumps(_jsonable(c.meta)),
                    "group": c.group}
            if c.energy is not None:
                data["energy"] = np.array([float(c.energy)])
            if c.forces is not None:
                data["forces"] = np.asarray(c.forces, dtype=np.float64).reshape(-1, 3)
            if c.virial is not None:
                data["virial"] = np.asarray(c.virial, dtype=np.float64).reshape(3, 3)
            if c.atom_weights is not None:
                data["atom_weights"] = np.asarray(c.atom_weights, dtype=np.float64)
            if c.hessian is not None:
                data["hessian_indptr"], data["hessian_indices"], data["hessian_blocks"] = fcmod.to_blocks(c.hessian)
            for name, arr in c.atoms.arrays.items():
                if name not in ("numbers", "positions"):
                    data[f"array_{name}"] = np.asarray(arr)
            kvp = {"config_type": c.group, "index": i}
            if spec_hash is not None:
                kvp["spec_hash"] = spec_hash
            db.write(atoms, key_value_pairs=kvp, data=data)
    return path


def read_db(path) -> list[Configuration]:
    """Import configurations from an ``ase.db`` written by :func:`write_db` (exact), or
    from any ase.db whose rows carry energy/forces/stress (virial = −stress·V)."""
    from ase.db import connect

    path = Path(path)
    if not path.exists():
        raise InputError(f"ase.db file {str(path)!r} does not exist")
    out = []
    with connect(str(path), type="db") as db:
        for row in db.select():
            atoms = row.toatoms()
            atoms.calc = None
            data = row.data or {}
            n = len(atoms)
            group = data.get("group", row.get("config_type", "default"))
            if "energy" in data:
                energy = float(np.asarray(data["energy"]).reshape(-1)[0])
            else:
                energy = float(row.energy) if row.get("energy") is not None else None
            forces = data.get("forces", row.get("forces"))
            virial = data.get("virial")
            if virial is None and row.get("stress") is not None:
                s = np.asarray(row.stress, float)
                vol = abs(float(np.linalg.det(np.asarray(atoms.cell, float))))
                sig = np.array([[s[0], s[5], s[4]], [s[5], s[1], s[3]], [s[4], s[3], s[2]]])
                virial = -sig * vol
            hessian = None
            if "hessian_blocks" in data:
                hessian = fcmod.from_blocks(data["hessian_indptr"], data["hessian_indices"],
                                            data["hessian_blocks"], n)
            info = json.loads(data["info_json"]) if "info_json" in data else {}
            meta = json.loads(data["meta_json"]) if "meta_json" in data else {}
            atoms.info.update(info)
            for key, arr in data.items():
                if key.startswith("array_"):
                    atoms.arrays[key[6:]] = np.asarray(arr)
            out.append(Configuration(
                atoms=atoms, group=str(group), energy=energy,
                forces=None if forces is None else np.asarray(forces, dtype=np.float64).reshape(n, 3),
                virial=None if virial is None else np.asarray(virial, dtype=np.float64).reshape(3, 3),
                hessian=hessian,
                atom_weights=None if data.get("atom_weights") is None else np.asarray(data["atom_weights"], float),
                meta=meta,
            ))
    return out


def _jsonable(obj):
    return json_ready(obj)
