"""Reference potentials: built-in analytic ones, LAMMPS EAM files, any ASE calculator — and
the one resolver of potential specs, :func:`load_potential`, that every stage uses.

Units throughout: Å, eV, eV/Å, eV (virials), eV/Å² (Hessians). See docs/potentials.md.
"""

from __future__ import annotations

import functools
import importlib
import os
from dataclasses import dataclass
from pathlib import Path

from genanalysis.exceptions import InputError
from genanalysis.potentials.base import Observation, Potential, PotentialCalculator

__all__ = ["Observation", "Potential", "PotentialCalculator", "Scheme", "SCHEMES", "load_potential",
           "neighbour_radius"]


@dataclass(frozen=True)
class Scheme:
    """How one kind of spec string is resolved: ``target`` names ``module:function``, called
    as ``function(spec, **options)`` with those of ``format``, ``element``, ``lattice``,
    ``a`` that it lists in ``options``. The module is imported on first use, so the
    resolvers of specs built above this package (surrogates, fitted models) are never
    imported by it at import time."""

    target: str
    options: tuple[str, ...] = ()

    def resolve(self, spec: str, options: dict) -> Potential:
        module, _, name = self.target.partition(":")
        fn = getattr(importlib.import_module(module), name)
        return fn(spec, **{k: v for k, v in options.items() if k in self.options})


#: spec prefix -> its resolver
SCHEMES: dict[str, Scheme] = {
    "builtin:": Scheme("genanalysis.potentials:_builtin_spec", ("element",)),
    "python:": Scheme("genanalysis.potentials:_python_spec"),
    "surrogate:": Scheme("genanalysis.surrogates:surrogate_from_spec", ("lattice", "a")),
}
#: a directory holding ``model.json`` (or the path of that file): a model saved by ``genanalysis fit``
FITTED_MODEL = Scheme("genanalysis.models.io:model_potential")
#: any other path: a LAMMPS EAM file
EAM_FILE = Scheme("genanalysis.potentials:_eam_spec", ("format", "element"))


def neighbour_radius(potential) -> float:
    """The radius (Å) of ``potential``'s neighbour list — its cutoff plus its Verlet skin —
    for memory estimates; 0 when it declares no finite cutoff (an external calculator)."""
    def finite(x) -> float:
        return float(x) if isinstance(x, (int, float)) and 0 < x < float("inf") else 0.0

    cutoff = finite(getattr(potential, "cutoff", 0.0))  # an external calculator's is inf: unknown
    return cutoff + finite(getattr(potential, "skin", 0.0)) if cutoff else 0.0


def load_potential(spec, *, format: str | None = None, element: str | None = None, lattice: str | None = None,
                   a: float | None = None, atoms=None) -> Potential:
    """The :class:`Potential` of ``spec``; the one resolver of the toolkit (every stage and
    command resolves through it, so all accept the same specs):

    * ``builtin:W`` (analytic Zhou–Johnson–Wadley EAM), ``builtin:morse``, ``builtin:lj``;
    * a path to a LAMMPS EAM file (``eam``, ``eam/alloy``, ``eam/fs``; detected from the
      contents, ``format`` overrides; ``element`` picks the element of a multi-element file);
    * ``python:MODULE:CALLABLE[?OPTIONS]`` — a callable returning an ASE calculator
      (options: :func:`genanalysis.potentials.wrapper.potential_from_python_spec`);
    * ``surrogate:BASE?family=F&eta=E...`` — a synthetic surrogate
      (:func:`genanalysis.surrogates.surrogate_from_spec`); ``lattice`` and ``a`` (Å) fill
      what the spec leaves out;
    * a directory holding ``model.json`` (or the path of that file) — a fitted model saved
      by ``genanalysis fit`` (:func:`genanalysis.models.io.model_potential`);
    * a :class:`Potential` (returned as is) or an ASE calculator (wrapped).

    ``atoms``: a cell built by :mod:`genanalysis.lattice`; its ``info['lattice']`` and
    ``info['a']`` fill ``lattice`` and ``a`` when they are not given. ``element`` given to a
    spec that does not choose elements is checked against the potential's species.

    Built-in and file potentials are loaded once and shared between calls (they carry the
    lattice-constant and neighbour-list caches); an edited file is re-read. Raises
    :class:`InputError` naming the value and what is accepted.
    """
    from ase.calculators.calculator import BaseCalculator

    if isinstance(spec, Potential):
        return spec
    if isinstance(spec, BaseCalculator):
        from genanalysis.potentials.wrapper import ASECalculatorPotential

        return ASECalculatorPotential(spec)
    if not isinstance(spec, str):
        raise InputError(
            f"potential {spec!r} of type {type(spec).__name__} is not supported; give 'builtin:NAME', "
            "a path to an EAM file, 'python:MODULE:CALLABLE', 'surrogate:BASE?...', a fitted-model "
            "directory, a Potential or an ASE calculator"
        )
    if atoms is not None:
        lattice = atoms.info.get("lattice") if lattice is None else lattice
        a = atoms.info.get("a") if a is None else a
    scheme = next((s for prefix, s in SCHEMES.items() if spec.startswith(prefix)), None)
    if scheme is None:
        scheme = FITTED_MODEL if _fitted_model_path(spec) else EAM_FILE
    if format is not None and "format" not in scheme.options:
        raise InputError(f"format={format!r} applies to EAM files, not to {spec}")
    pot = scheme.resolve(spec, {"format": format, "element": element, "lattice": lattice, "a": a})
    if element is not None and "element" not in scheme.options:
        species = tuple(pot.species or ())
        if species and species != ("X",) and element not in species:
            raise InputError(f"element {element!r} is not described by {spec}; it describes {', '.join(species)}")
    return pot


def _fitted_model_path(spec: str) -> bool:
    p = Path(spec)
    try:
        return (p.is_dir() and (p / "model.json").is_file()) or (p.is_file() and p.name == "model.json")
    except OSError:
        return False


def _builtin_spec(spec: str, *, element: str | None = None) -> Potential:
    from genanalysis.potentials.builtin import BUILTINS

    name = spec.partition(":")[2]
    if name not in BUILTINS:
        raise InputError(
            f"unknown built-in potential {spec!r}; choose one of {', '.join('builtin:' + k for k in BUILTINS)}"
        )
    pot = _builtin(name)
    if element is not None and element not in pot.species:
        raise InputError(f"element {element!r} is not described by {spec}; it describes {', '.join(pot.species)}")
    return pot


def _python_spec(spec: str) -> Potential:
    from genanalysis.potentials.wrapper import potential_from_python_spec

    return potential_from_python_spec(spec)


def _eam_spec(spec: str, *, format: str | None = None, element: str | None = None) -> Potential:
    return _eam_file(spec, format, element, _mtime(spec))


# Loaded potentials are shared (they hold the lattice-constant and neighbour-list caches);
# files are keyed on their modification time so an edited file is re-read.
@functools.lru_cache(maxsize=None)
def _builtin(name: str) -> Potential:
    from genanalysis.potentials.builtin import BUILTINS

    return BUILTINS[name]()


def _mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


@functools.lru_cache(maxsize=16)
def _eam_file(path: str, format, element, mtime) -> Potential:
    from genanalysis.potentials.eamfile import load_eam_file

    return load_eam_file(path, format=format, element=element)
