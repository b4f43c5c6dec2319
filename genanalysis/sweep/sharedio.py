"""The on-disk format of shared work: data only, checked against its name and its content.

A shared-work result is one ``.npz`` file (NumPy's zip of ``.npy`` arrays, read with
``allow_pickle=False``): the arrays of the value, plus ``__header__``, the UTF-8 bytes of
a JSON header. Nothing in it is code, and nothing is ever unpickled.

The header holds

* ``format`` (``"genanalysis-shared"``) and ``version`` (:data:`VERSION`);
* ``hash``: the content hash of the shared node that produced it (the one in the file's
  name, ``KIND-HASH.npz``);
* ``value``: the value as a JSON tree in which every node is typed (below);
* ``checksum``: SHA-256 of the canonical JSON of ``value`` and of every array (name,
  dtype, shape and bytes), in name order.

A file whose header, hash or checksum does not match — truncated, corrupt, tampered, or
not ours at all — is :class:`SharedFileError`; the sweep engine treats it as missing and
builds the work again.

**Value types** (anything else is refused when the result is written, with the path of
the offending part): ``None``, ``bool``, ``int``, ``float`` (NaN and ±inf included),
``str`` (a NaN float is kept bit for bit, sign included); ``list``, ``tuple``; ``dict`` (keys of those scalar types or tuples of them);
NumPy arrays of numeric, boolean or fixed-width string dtype, and NumPy scalars (both kept
with their dtype, bit for bit); SciPy CSR sparse arrays and matrices; ``ase.Atoms``
(numbers, positions, cell, pbc, ``info`` and per-atom ``arrays``; no calculator, no
constraints); and the training-data records :class:`~genanalysis.data.Configuration` and
:class:`~genanalysis.data.TrainingData`. That covers every shared kind of the package and
the JSON-like results plug-ins return.
"""

from __future__ import annotations

import dataclasses
import io
import json
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from genanalysis.jsonutil import arrays_sha256, canonical_json

__all__ = ["SharedFileError", "VERSION", "dumps", "loads", "load", "check", "hash_of_name"]

FORMAT = "genanalysis-shared"
VERSION = 1
_HEADER = "__header__"


class SharedFileError(Exception):
    """A shared-work file that is not a valid, matching result (corrupt, truncated, tampered)."""


def _records() -> dict[str, type]:
    from genanalysis.data import Configuration, TrainingData

    return {"Configuration": Configuration, "TrainingData": TrainingData}


class _Encoder:
    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}

    def array(self, a: np.ndarray, where: str) -> str:
        if a.dtype.hasobject or a.dtype.kind not in "biufcUS":
            raise TypeError(f"{where}: an array of dtype {a.dtype} cannot be stored (numbers, booleans and "
                            "fixed-width strings only)")
        key = f"a{len(self.arrays)}"
        self.arrays[key] = a if a.flags.c_contiguous else np.array(a, order="C")  # shape kept (0-d too)
        return key

    def key(self, k, where: str):
        if k is None or isinstance(k, (bool, int, str)) or (isinstance(k, float) and type(k) is float):
            return k
        if isinstance(k, tuple):
            return {"tuple": [self.key(x, where) for x in k]}
        raise TypeError(f"{where}: a dict key of type {type(k).__name__} cannot be stored")

    def __call__(self, v, where: str = "value"):
        if type(v) is float and v != v:  # JSON's NaN has no sign and no payload: keep the bits
            return {"nan": struct.pack("<d", v).hex()}
        if v is None or type(v) in (bool, int, float, str):
            return v
        if isinstance(v, np.generic):
            return {"scalar": self.array(np.asarray(v), where)}
        if isinstance(v, np.ndarray):
            return {"array": self.array(v, where)}
        if isinstance(v, list):
            return {"list": [self(x, f"{where}[{i}]") for i, x in enumerate(v)]}
        if type(v) is tuple:
            return {"tuple": [self(x, f"{where}[{i}]") for i, x in enumerate(v)]}
        if isinstance(v, dict):
            return {"dict": [[self.key(k, where), self(x, f"{where}[{k!r}]")] for k, x in v.items()]}
        name = type(v).__name__
        records = _records()
        if records.get(name) is type(v):
            fields = {f.name: self(getattr(v, f.name), f"{where}.{f.name}") for f in dataclasses.fields(v)}
            return {name: fields}
        if _is_atoms(v):
            return {"Atoms": self.atoms(v, where)}
        if _is_csr(v):
            return {"csr": {"matrix": not _is_sparray(v), "shape": list(v.shape),
                            "data": self.array(v.data, f"{where}.data"),
                            "indices": self.array(v.indices, f"{where}.indices"),
                            "indptr": self.array(v.indptr, f"{where}.indptr")}}
        raise TypeError(f"{where} is a {type(v).__module__}.{name}, which shared work cannot store "
                        "(JSON values, NumPy arrays, CSR matrices, ase.Atoms, Configuration, TrainingData)")

    def atoms(self, atoms, where: str) -> dict:
        if atoms.calc is not None:
            raise TypeError(f"{where}: ase.Atoms with a calculator attached cannot be stored; detach it first")
        if atoms.constraints:
            raise TypeError(f"{where}: ase.Atoms with constraints cannot be stored")
        arrays = {k: self.array(np.asarray(a), f"{where}.arrays[{k!r}]") for k, a in atoms.arrays.items()}
        return {"cell": self.array(np.asarray(atoms.cell.array), f"{where}.cell"),
                "pbc": self.array(np.asarray(atoms.pbc), f"{where}.pbc"),
                "arrays": arrays, "info": self(dict(atoms.info), f"{where}.info")}


def _is_atoms(v) -> bool:
    from ase import Atoms

    return type(v) is Atoms


def _is_csr(v) -> bool:
    import scipy.sparse as sp

    return type(v) in (sp.csr_array, sp.csr_matrix)


def _is_sparray(v) -> bool:
    import scipy.sparse as sp

    return isinstance(v, sp.sparray)


class _Decoder:
    def __init__(self, arrays):
        self.arrays = arrays

    def array(self, key) -> np.ndarray:
        if not isinstance(key, str) or key not in self.arrays:
            raise SharedFileError(f"refers to a missing array {key!r}")
        return self.arrays[key]

    def key(self, k):
        if isinstance(k, dict):
            if list(k) != ["tuple"] or not isinstance(k["tuple"], list):
                raise SharedFileError(f"a dict key {k!r} is not a value")
            return tuple(self.key(x) for x in k["tuple"])
        return k

    def __call__(self, node):
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if not isinstance(node, dict) or len(node) != 1:
            raise SharedFileError(f"a value node {str(node)[:60]!r} is not typed")
        (tag, body), = node.items()
        if tag == "nan":
            try:
                value = struct.unpack("<d", bytes.fromhex(body))[0]
            except (TypeError, ValueError, struct.error):
                raise SharedFileError(f"a NaN node {str(body)[:40]!r} is not 8 bytes of hex") from None
            if value == value:
                raise SharedFileError(f"a NaN node {body!r} holds a number")
            return value
        if tag == "scalar":
            return self.array(body)[()]
        if tag == "array":
            return self.array(body)
        if tag == "list":
            return [self(x) for x in body]
        if tag == "tuple":
            return tuple(self(x) for x in body)
        if tag == "dict":
            return {self.key(k): self(x) for k, x in body}
        if tag == "Atoms":
            from ase import Atoms

            arrays = {k: self.array(a) for k, a in body["arrays"].items()}
            atoms = Atoms(numbers=arrays.pop("numbers"), positions=arrays.pop("positions"),
                          cell=self.array(body["cell"]), pbc=self.array(body["pbc"]))
            for k, a in arrays.items():
                atoms.arrays[k] = a
            atoms.info.update(self(body["info"]))
            return atoms
        if tag == "csr":
            import scipy.sparse as sp

            cls = sp.csr_matrix if body["matrix"] else sp.csr_array
            return cls((self.array(body["data"]), self.array(body["indices"]), self.array(body["indptr"])),
                       shape=tuple(body["shape"]))
        cls = _records().get(tag)
        if cls is None:
            raise SharedFileError(f"holds a value of unknown type {tag!r}")
        names = [f.name for f in dataclasses.fields(cls)]
        if sorted(body) != sorted(names):
            raise SharedFileError(f"a {tag} has the fields {sorted(body)}, expected {sorted(names)}")
        return cls(**{k: self(body[k]) for k in names})


def _checksum(value_json: str, arrays: dict[str, np.ndarray]) -> str:
    return arrays_sha256(arrays, prefix=value_json.encode("utf-8"))


def _canonical(tree) -> str:
    return canonical_json(tree, allow_nan=True)


def dumps(value: Any, node_hash: str) -> bytes:
    """The file content of shared result ``value`` of the node ``node_hash``; TypeError
    naming the part of ``value`` that is not one of the value types above."""
    enc = _Encoder()
    tree = enc(value)
    text = _canonical(tree)
    header = {"format": FORMAT, "version": VERSION, "hash": node_hash, "value": tree,
              "checksum": _checksum(text, enc.arrays)}
    buf = io.BytesIO()
    raw = np.frombuffer(_canonical(header).encode("utf-8"), dtype=np.uint8)
    np.savez(buf, **{_HEADER: raw}, **enc.arrays)
    return buf.getvalue()


def _read(data, node_hash: str) -> tuple[Any, dict[str, np.ndarray]]:
    """The checked (value tree, arrays) of a shared file's content."""
    src = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        with np.load(src, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise SharedFileError(f"is not a readable data-only archive ({type(exc).__name__}: {exc})"[:300]) from None
    raw = arrays.pop(_HEADER, None)
    if raw is None or raw.dtype != np.uint8 or raw.ndim != 1:
        raise SharedFileError("has no header")
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SharedFileError(f"has a header that is not JSON ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT or header.get("version") != VERSION:
        raise SharedFileError(f"is not a {FORMAT} file of version {VERSION}")
    if header.get("hash") != node_hash:
        raise SharedFileError(f"holds the result of node {str(header.get('hash'))[:16]!r}, not {node_hash[:16]!r}")
    tree = header.get("value")
    if header.get("checksum") != _checksum(_canonical(tree), arrays):
        raise SharedFileError("does not match its checksum (changed after it was written)")
    return tree, arrays


def loads(data: bytes, node_hash: str) -> Any:
    """The value stored by :func:`dumps`, checked against ``node_hash`` and its checksum;
    :class:`SharedFileError` if it is not a valid match."""
    tree, arrays = _read(data, node_hash)
    try:
        return _Decoder(arrays)(tree)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SharedFileError(f"holds a malformed value ({type(exc).__name__}: {exc})"[:300]) from None


def hash_of_name(path: str | Path) -> str:
    """The node hash in a shared file's name ``KIND-HASH.npz``."""
    return Path(path).stem.rpartition("-")[2]


def _bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SharedFileError(f"cannot be read ({exc.strerror})") from None


def load(path: str | Path) -> Any:
    """The value of the shared file ``path``, checked against the hash in its name."""
    path = Path(path)
    return loads(_bytes(path), hash_of_name(path))


def check(path: str | Path) -> str | None:
    """Why the shared file ``path`` is not a valid result for the hash in its name
    (``None`` if it is one: readable, matching its name and its checksum)."""
    path = Path(path)
    try:
        _read(_bytes(path), hash_of_name(path))
    except SharedFileError as exc:
        return str(exc)
    return None
