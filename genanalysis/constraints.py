"""Declared input constraints: each input states once what it accepts, and one routine per
kind of constraint checks it and words the error — an :class:`InputError` naming the value
and the accepted range or choices.

A spec declares a table ``{field: constraint}`` and calls :func:`check_fields` in its
``__post_init__``; a public function with its own contract checks its arguments with
:func:`check_arguments` against the same declarations. Messages begin with ``name=value``,
so a caller can name the field as its user knows it (``experiment.fmax``, ``--fmax``) with
:func:`renamed`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields

from genanalysis.exceptions import InputError, check_number

__all__ = ["Number", "Whole", "Choice", "Flag", "check_fields", "check_arguments", "check_keys", "renamed",
           "RELAX_CONSTRAINTS", "DEFAULT_FMAX", "DEFAULT_MAX_ITER"]


@dataclass(frozen=True)
class Number:
    """A finite real in ``[minimum, maximum]`` (``(minimum, maximum]`` with ``strict``), in
    ``unit``; None accepted when ``optional``."""

    unit: str = ""
    minimum: float = 0.0
    maximum: float = math.inf
    strict: bool = False
    optional: bool = False

    def check(self, name: str, value):
        if value is None and self.optional:
            return None
        return check_number(value, name, unit=self.unit, minimum=self.minimum, maximum=self.maximum,
                            strict=self.strict)


@dataclass(frozen=True)
class Whole:
    """A whole number ≥ ``minimum`` (and ≤ ``maximum``); None accepted when ``optional``."""

    minimum: int = 0
    maximum: float = math.inf
    unit: str = ""
    optional: bool = False

    def check(self, name: str, value):
        if value is None and self.optional:
            return None
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not (
                self.minimum <= value <= self.maximum):
            rng = f"≥ {self.minimum}" + (f" and ≤ {self.maximum:g}" if math.isfinite(self.maximum) else "")
            raise InputError(f"{name}={value!r}{' ' + self.unit if self.unit else ''} must be a whole number {rng}")
        return int(value)


@dataclass(frozen=True)
class Choice:
    """One of ``options``; ``meaning`` (optional) words them for the message."""

    options: tuple[str, ...]
    meaning: str = ""

    def check(self, name: str, value):
        if not isinstance(value, str) or value not in self.options:
            choices = self.meaning or " or ".join(repr(o) for o in self.options)
            raise InputError(f"{name}={value!r} is not accepted; choose {choices}")
        return value


@dataclass(frozen=True)
class Flag:
    """True or false."""

    def check(self, name: str, value):
        if not isinstance(value, bool):
            raise InputError(f"{name}={value!r} must be true or false")
        return value


def check_keys(table, klass, where: str) -> None:
    """Refuse a table (dict) with keys that are not fields of the dataclass ``klass``:
    :class:`InputError` "``where``: unknown key(s) …; known: …"."""
    if not isinstance(table, dict):
        raise InputError(f"{where} must be a table, not {type(table).__name__}")
    known = {f.name for f in fields(klass)}
    bad = sorted(set(table) - known)
    if bad:
        raise InputError(f"{where}: unknown key(s) {', '.join(bad)}; known: {', '.join(sorted(known))}")


def check_fields(obj, constraints: Mapping[str, object]) -> None:
    """Check every field of the frozen dataclass ``obj`` named in ``constraints`` and store
    its normalised value (a float for a :class:`Number`, an int for a :class:`Whole`)."""
    for name, c in constraints.items():
        object.__setattr__(obj, name, c.check(name, getattr(obj, name)))


def check_arguments(constraints: Mapping[str, object], **values) -> tuple:
    """The normalised ``values`` (in the order given), each checked against its constraint."""
    return tuple(constraints[name].check(name, v) for name, v in values.items())


def renamed(exc: InputError, fields: Iterable[str], name: Callable[[str], str], where: str = "") -> InputError:
    """``exc`` with its leading field name (``field=`` or ``field:``) replaced by ``name(field)``;
    a message that names no field is prefixed with ``where:`` (returned as is without)."""
    text = str(exc)
    for f in sorted(fields, key=len, reverse=True):
        if text.startswith((f"{f}=", f"{f}:")):
            return InputError(name(f) + text[len(f):])
    return InputError(f"{where}: {text}") if where else exc


#: the accepted relaxation tolerance (eV/Å) and iteration cap, declared once:
#: :func:`genanalysis.relaxation.relax` checks its arguments against them and every spec that
#: relaxes shares them
RELAX_CONSTRAINTS = {"fmax": Number("eV/Å", maximum=1.0, strict=True), "max_iter": Whole(1)}
#: the default relaxation tolerance (eV/Å) and iteration cap, stated once (here, where the
#: command line's help texts can read them without importing the solver)
DEFAULT_FMAX = 1e-8
DEFAULT_MAX_ITER = 200
