"""Training sets of varying cell size and observation type (docs/trainingset.md).

Units: Å, eV, eV/Å, eV (virials), eV/Å² (force constants).

* :class:`TrainingSetSpec` — the spec (frozen; TOML; stable :meth:`content_hash`);
* :func:`build` — relax, derive, observe (cached, parallel), write; returns a
  :class:`BuildSummary`;
* :func:`load_training_set` — the list of :class:`~genanalysis.data.Configuration` of a
  built directory, or of a spec TOML (built or completed first);
* :mod:`.io` — extxyz, force-constant ``.npz`` and ``ase.db`` readers and writers;
* :mod:`.fc` — block-sparse force constants, translation invariance, phonopy layout.
"""

from __future__ import annotations

import json
from pathlib import Path

from genanalysis.data import Configuration
from genanalysis.exceptions import InputError
from genanalysis.trainingset.build import (
    MANIFEST_NAME,
    XYZ_NAME,
    BuildSummary,
    build,
    potential_identity,
)
from genanalysis.trainingset import io as tio
from genanalysis.trainingset.io import (
    KEY_PRESETS,
    ExtxyzKeys,
    read_db,
    read_extxyz,
    read_force_constants,
    write_db,
    write_extxyz,
    write_force_constants,
)
from genanalysis.trainingset.spec import StrainSpec, TrainingSetSpec

__all__ = [
    "TrainingSetSpec",
    "StrainSpec",
    "BuildSummary",
    "build",
    "load_training_set",
    "read_training_set",
    "default_out_dir",
    "potential_identity",
    *tio.__all__,  # the readers and writers, re-exported
]


def default_out_dir(spec_path) -> Path:
    """Where a spec ``DIR/NAME.toml`` is built when no directory is given: ``DIR/NAME.trainingset``."""
    p = Path(spec_path)
    return p.with_name(p.stem + ".trainingset")


def read_training_set(directory) -> list[Configuration]:
    """The configurations of a directory written by :func:`build`: extxyz frames with
    their force constants (expanded from the ``.npz``) and metadata, in build order."""
    d = Path(directory)
    manifest_path = d / MANIFEST_NAME
    if not manifest_path.is_file():
        raise InputError(f"{str(d)!r} is not a built training set (no {MANIFEST_NAME}); build it with "
                         "`genanalysis trainingset SPEC.toml --out DIR`")
    manifest = json.loads(manifest_path.read_text())
    keys = ExtxyzKeys(**{k: tuple(v) if isinstance(v, list) else v for k, v in manifest["keys"].items()})
    configs = read_extxyz(d / manifest["files"].get("extxyz", XYZ_NAME), keys=keys)
    fc_name = manifest["files"].get("force_constants")
    if fc_name:
        for i, h in read_force_constants(d / fc_name).items():
            configs[i].hessian = h
    return configs


def load_training_set(path, *, out_dir=None, workers: int | None = None) -> list[Configuration]:
    """The training set at ``path`` as a list of :class:`~genanalysis.data.Configuration`.

    ``path`` is a directory written by :func:`build`, or a spec TOML, which is built or
    completed first (in ``out_dir``, default :func:`default_out_dir`; cached work is reused,
    so loading an already built spec does no reference evaluation)."""
    p = Path(path)
    if p.is_dir():
        return read_training_set(p)
    if p.is_file() and p.suffix.lower() == ".toml":
        spec = TrainingSetSpec.from_toml(p)
        out = Path(out_dir) if out_dir is not None else default_out_dir(p)
        build(spec, out, workers=workers)
        return read_training_set(out)
    raise InputError(f"training set {str(p)!r} is neither a built directory nor a spec .toml file")
