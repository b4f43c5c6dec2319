"""Saving and loading fitted models in safe formats: ``model.json`` (kind, hyper-parameters,
provenance, and ``arrays_sha256``, the checksum of the arrays) + ``model.npz`` (float64
arrays, read with ``allow_pickle=False``). Nothing is ever unpickled; a torch network is
stored as its ``state_dict`` arrays. Arrays that do not match the checksum in model.json
(changed, truncated or swapped since they were saved) are refused with one line: the
checksum detects damage and edits of the arrays alone; it is not a signature.

Units of the stored arrays: linear coefficients eV; network weights act on standardised
(dimensionless) features and return eV.
"""

from __future__ import annotations

import importlib
import json
import zipfile
from pathlib import Path

import numpy as np

from genanalysis.exceptions import InputError
from genanalysis.jsonutil import arrays_sha256

__all__ = ["save_model", "load_fitted", "load_model", "model_potential", "potential_of", "model_class", "model_from_state",
           "MODEL_KINDS", "MODEL_JSON", "MODEL_NPZ", "FORMAT_VERSION"]

MODEL_JSON = "model.json"
MODEL_NPZ = "model.npz"
#: 2: model.json carries ``arrays_sha256``
FORMAT_VERSION = 2


#: model kind -> (module, class name): the one table of the fitted-model classes
_CLASSES = {"ace": ("genanalysis.models.linear", "LinearACE"), "mlp": ("genanalysis.models.mlp", "MLPACE"),
            "directforce": ("genanalysis.models.directforce", "DirectForceACE"),
            "composite": ("genanalysis.models.composite", "CompositeModel")}
#: the model kinds a fit spec may name and a saved model may carry
MODEL_KINDS = tuple(_CLASSES)


def model_class(kind: str):
    """The class of the model kind ``kind`` (``ace``: LinearACE, ``mlp``: MLPACE,
    ``directforce``: DirectForceACE, forces without an energy; ``composite``: CompositeModel,
    a sum of pair, embedding and ACE terms)."""
    if kind not in _CLASSES:
        raise InputError(f"model kind {kind!r} is not supported; choose {' or '.join(map(repr, MODEL_KINDS))}")
    module, name = _CLASSES[kind]
    return getattr(importlib.import_module(module), name)


def model_from_state(header: dict, arrays: dict):
    """The model of a ``state()`` pair (header with ``kind``, float64 arrays)."""
    return model_class(header.get("kind")).from_state(header, arrays)


def save_model(model, directory, *, element: str = "X", extra: dict | None = None) -> Path:
    """Write ``model.json`` and ``model.npz`` into ``directory`` (created); returns it."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    header, arrays = model.state()
    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()}
    header = dict(header, format_version=FORMAT_VERSION, element=element, arrays_sha256=arrays_sha256(arrays),
                  **(extra or {}))
    np.savez(d / MODEL_NPZ, **arrays)
    (d / MODEL_JSON).write_text(json.dumps(header, indent=1, sort_keys=True) + "\n")
    return d


def _paths(path) -> tuple[Path, Path]:
    p = Path(path)
    if p.is_dir():
        p = p / MODEL_JSON
    if p.suffix == ".npz":
        p = p.with_suffix(".json")
    if not p.is_file():
        raise InputError(f"no fitted model at {str(path)!r} (expected a directory with {MODEL_JSON} and {MODEL_NPZ})")
    npz = p.with_name(MODEL_NPZ) if p.name == MODEL_JSON else p.with_suffix(".npz")
    if not npz.is_file():
        raise InputError(f"fitted model {str(p)!r} has no arrays file {npz.name}")
    return p, npz


def load_fitted(path):
    """(model, header) of a model saved by :func:`save_model` (directory or model.json)."""
    jpath, npz = _paths(path)
    try:
        header = json.loads(jpath.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{str(jpath)!r} is not valid JSON: {exc}") from None
    if not isinstance(header, dict):
        raise InputError(f"{str(jpath)!r} holds a JSON {type(header).__name__}, not a model header (a JSON object)")
    if header.get("format_version") != FORMAT_VERSION:
        raise InputError(f"{str(jpath)!r} has format_version {header.get('format_version')!r}; "
                         f"this version reads {FORMAT_VERSION} (refit the model to write it)")
    kind = header.get("kind")
    if kind not in MODEL_KINDS:
        raise InputError(f"{str(jpath)!r}: unknown model kind {kind!r}; known: {', '.join(MODEL_KINDS)}")
    try:
        with np.load(npz, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"{str(npz)!r} is not a readable arrays file ({type(exc).__name__}); refit the model") from None
    if arrays_sha256(arrays) != header.get("arrays_sha256"):
        raise InputError(f"{str(npz)!r} does not match the arrays checksum in {jpath.name} (changed or damaged "
                         "since it was saved); refusing to load it")
    try:
        return model_from_state(header, arrays), header
    except InputError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as exc:
        # a header or arrays edited by hand, or written for another kind
        raise InputError(f"{str(jpath)!r} does not describe a valid {kind!r} model with its arrays "
                         f"({type(exc).__name__}: {str(exc)[:200]})") from None


def model_potential(path):
    """The :class:`~genanalysis.models.calculator.ModelPotential` of the model saved at
    ``path`` (directory or model.json): what :func:`genanalysis.potentials.load_potential`
    resolves a fitted-model path to (a model with its own ``potential`` — the direct-force
    model, which has no energy — builds that one)."""
    model, header = load_fitted(path)
    return potential_of(model, name=header.get("name"), element=header.get("element", "X"))


def potential_of(model, name: str | None = None, element: str = "X"):
    """The Potential of a fitted model: its own ``potential`` when it has one (the
    direct-force model, which has no energy), else a
    :class:`~genanalysis.models.calculator.ModelPotential`."""
    from genanalysis.models.calculator import ModelPotential

    make = getattr(model, "potential", None)
    return make(name=name, element=element) if make is not None else ModelPotential(model, name=name, element=element)


def load_model(path):
    """The ASE calculator of the model saved at ``path`` (see :func:`save_model`)."""
    return model_potential(path).calculator()
