"""Reference potentials: built-in analytic ones, LAMMPS EAM files, any ASE calculator.

Units throughout: Å, eV, eV/Å, eV (virials), eV/Å² (Hessians). See docs/potentials.md.
"""

from __future__ import annotations

import functools
import os

from genanalysis.exceptions import InputError
from genanalysis.potentials.base import Evaluation, Potential, PotentialCalculator

__all__ = ["Evaluation", "Potential", "PotentialCalculator", "load_potential"]


def load_potential(spec, *, format: str | None = None, element: str | None = None) -> Potential:
    """A :class:`Potential` from ``spec``:

    * ``builtin:W`` (analytic Zhou–Johnson–Wadley EAM), ``builtin:morse``, ``builtin:lj``;
    * a path to a LAMMPS EAM file (``eam``, ``eam/alloy``, ``eam/fs``; detected from the
      contents, ``format`` overrides; ``element`` picks the element of a multi-element file);
    * ``python:MODULE:CALLABLE[?OPTIONS]`` — a callable returning an ASE calculator
      (options: :func:`genanalysis.potentials.wrapper.potential_from_python_spec`);
    * a :class:`Potential` (returned as is) or an ASE calculator (wrapped).

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
            "a path to an EAM file, 'python:MODULE:CALLABLE', a Potential or an ASE calculator"
        )
    if spec.startswith("builtin:"):
        from genanalysis.potentials.builtin import BUILTINS

        name = spec.partition(":")[2]
        if name not in BUILTINS:
            raise InputError(
                f"unknown built-in potential {spec!r}; choose one of {', '.join('builtin:' + k for k in BUILTINS)}"
            )
        if format is not None:
            raise InputError(f"format={format!r} applies to EAM files, not to {spec}")
        pot = _builtin(name)
        if element is not None and element not in pot.species:
            raise InputError(f"element {element!r} is not described by {spec}; it describes {', '.join(pot.species)}")
        return pot
    if spec.startswith("python:"):
        from genanalysis.potentials.wrapper import potential_from_python_spec

        return potential_from_python_spec(spec)
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
