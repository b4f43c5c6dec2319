"""The training-set specification: which cells, which configurations, which observations.

Units: lattice constant ``a`` and ``rattle`` in Å, strain amplitude dimensionless,
finite-difference step ``fd_step`` in Å, relaxation tolerance ``fmax`` in eV/Å.

A spec is a frozen dataclass read from / written to TOML (docs/trainingset.md lists every
key with its unit and default). All validation that needs no potential happens on
construction, so a bad spec is refused before any work is done; the checks that need the
potential (element present, Hessian available) happen in :func:`build` before the first
reference evaluation.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field, fields

import tomli_w

from genanalysis.constraints import DEFAULT_FMAX, DEFAULT_MAX_ITER, RELAX_CONSTRAINTS, check_arguments
from genanalysis.data import OBSERVATION_TYPES
from genanalysis.exceptions import InputError, check_number
from genanalysis.jsonutil import sha256_json
from genanalysis.lattice import LATTICES, cell_atoms, parse_defect, smallest_size
from genanalysis.memory import CELL_BYTES_PER_ATOM, check_memory
from genanalysis.tomlutil import read_toml

__all__ = ["StrainSpec", "TrainingSetSpec", "parse_observations", "parse_group", "group_atoms", "is_dislocation",
           "is_cylinder", "CYLINDER_OBSERVATIONS"]

#: prefix of a dislocation group: ``dislocation:KIND``, a periodic quadrupole cell of size N
DISLOCATION_PREFIX = "dislocation"

#: prefix of a clamped-cylinder group: ``dislocation-cylinder:KIND``, a cylinder of free
#: radius R_N = 2 N a in its clamped shell, periodic along the line only
CYLINDER_PREFIX = "dislocation-cylinder"

#: what a cylinder group may observe: forces and force-constant rows of its free atoms. Its
#: energy and virial include the free surface of the clamped shell in vacuum, which no bulk
#: cell has, so E and V are refused
CYLINDER_OBSERVATIONS = "FH"


def is_dislocation(group: str) -> bool:
    """Whether a training-set group is a dislocation quadrupole (``dislocation:KIND``)."""
    return str(group).partition(":")[0] == DISLOCATION_PREFIX


def is_cylinder(group: str) -> bool:
    """Whether a training-set group is a clamped dislocation cylinder (``dislocation-cylinder:KIND``)."""
    return str(group).partition(":")[0] == CYLINDER_PREFIX


def parse_group(lattice: str, group) -> str:
    """Canonical name of a training-set group: a point defect or ``perfect``
    (:func:`genanalysis.lattice.parse_defect`), ``dislocation:KIND`` (``dislocation`` alone
    is the screw), the periodic quadrupole cell of :func:`genanalysis.dislocation_cells.quadrupole_cell`,
    or ``dislocation-cylinder:KIND`` (alone: the screw), the clamped cylinder of
    :func:`genanalysis.dislocation_cells.cylinder_atoms` of free radius R_N = 2 N a; the
    dislocations on the bcc lattice only."""
    if not (is_dislocation(group) or is_cylinder(group)):
        return str(parse_defect(lattice, group))
    from genanalysis.dislocation_cells import KIND_CHOICE, QUADRUPOLE_KINDS, check_quadrupole_kind

    what = "dislocation quadrupole" if is_dislocation(group) else "clamped dislocation cylinder"
    if lattice != "bcc":
        raise InputError(f"defect {group!r}: {what} cells are built on the bcc lattice only, not {lattice!r}")
    prefix, _, kind = str(group).partition(":")
    kind = kind or QUADRUPOLE_KINDS[0]
    if is_cylinder(group):
        return f"{CYLINDER_PREFIX}:{KIND_CHOICE.check(f'{prefix}:KIND', kind)}"
    return f"{DISLOCATION_PREFIX}:{check_quadrupole_kind(kind)}"


def group_atoms(lattice: str, group: str, n: int) -> int:
    """Atoms of the size-``n`` cell of a group (a point defect's cell, before its ±1 atom;
    the quadrupole cell of a dislocation group; an estimate for a cylinder, whose clamped
    width depends on the potential's cutoff)."""
    if is_dislocation(group):
        from genanalysis.dislocation_cells import quadrupole_atoms

        return quadrupole_atoms(group.partition(":")[2], n)
    if is_cylinder(group):
        from genanalysis.dislocation_cells import training_cylinder_atoms

        return training_cylinder_atoms(group.partition(":")[2], n)
    return cell_atoms(lattice, n)

#: bump when the meaning of a spec field changes, so that old hashes no longer match
SPEC_VERSION = 1

#: largest admissible strain amplitude (dimensionless); beyond it cells invert or collapse
MAX_STRAIN = 0.2


def parse_observations(codes, where: str = "observations") -> str:
    """Canonical observation string (subset of ``EFVH`` in that order) from ``"EFV"``,
    ``"E,F"`` or ``["E", "F"]``; :class:`InputError` names any unknown code."""
    if isinstance(codes, str):
        items = [ch for token in codes.replace(",", " ").replace("+", " ").split() for ch in token]
    elif isinstance(codes, (list, tuple)):
        items = []
        for c in codes:
            if not isinstance(c, str):
                raise InputError(f"{where}: observation {c!r} is not one of {', '.join(OBSERVATION_TYPES)}")
            items.extend(c.strip())
    else:
        raise InputError(f"{where}: expected a string such as 'EFV' or a list of codes, got {codes!r}")
    bad = sorted({c for c in items if c.upper() not in OBSERVATION_TYPES})
    if bad:
        raise InputError(
            f"{where}: unknown observation type(s) {', '.join(map(repr, bad))}; "
            f"choose from {', '.join(OBSERVATION_TYPES)} (energy, forces, virial, force constants)"
        )
    have = {c.upper() for c in items}
    out = "".join(c for c in OBSERVATION_TYPES if c in have)
    if not out:
        raise InputError(f"{where}: no observation type requested; choose a subset of {''.join(OBSERVATION_TYPES)}")
    return out


def _whole(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
        raise InputError(f"{name}={value!r} must be a whole number ≥ {minimum}")
    value = int(value)
    if value < minimum:
        raise InputError(f"{name}={value} is not admissible; use {name} ≥ {minimum}")
    return value


def _real(value, name: str, unit: str, *, minimum: float = 0.0, maximum: float = math.inf,
          strict: bool = False) -> float:
    return check_number(value, name, unit=unit, minimum=minimum, maximum=maximum, strict=strict)


@dataclass(frozen=True)
class StrainSpec:
    """Random homogeneous strains: ``count`` strained copies of each relaxed cell, the
    symmetric strain ε having independent entries uniform in ``[-amplitude, amplitude]``
    (dimensionless; only the in-plane entries for 2D lattices)."""

    amplitude: float = 0.0
    count: int = 0

    def __post_init__(self):
        object.__setattr__(self, "count", _whole(self.count, "strains.count", 0))
        object.__setattr__(
            self, "amplitude",
            _real(self.amplitude, "strains.amplitude", "(dimensionless strain)", maximum=MAX_STRAIN),
        )
        if self.count > 0 and self.amplitude == 0.0:
            raise InputError(
                f"strains.count={self.count} with strains.amplitude=0 gives unstrained copies; "
                f"set 0 < amplitude ≤ {MAX_STRAIN} or count = 0"
            )


@dataclass(frozen=True)
class TrainingSetSpec:
    """A training set: defect (and perfect) cells of linear sizes ``sizes``, relaxed with the
    reference potential, then rattled and strained, with the observations of each group.

    Keys (units, defaults) — see docs/trainingset.md:

    * ``potential`` (str): ``builtin:NAME``, an EAM file path or ``python:MODULE:CALLABLE``.
    * ``lattice`` (str): ``bcc``, ``fcc`` or ``triangular``.
    * ``element`` (str | None): element of a multi-element potential file.
    * ``a`` (Å | None): lattice constant; None = the potential's equilibrium value.
    * ``defects`` (tuple of str): ``perfect``, ``vacancy``, ``interstitial[:VARIANT]``,
      ``dislocation[:KIND]`` (bcc; a periodic quadrupole cell, :func:`parse_group`),
      ``dislocation-cylinder[:KIND]`` (bcc; a clamped cylinder, forces only);
      each is a group (``config_type``), named canonically (``interstitial:dumbbell110``).
    * ``sizes`` (tuple of int ≥ 1): cell sizes N (N×N×N conventional cells, N×N in 2D; for a
      dislocation group the quadrupole of 3N glide distances between its cores, 36 N² atoms).
    * ``configs_per_size`` (int ≥ 0): rattled configurations per group and size.
    * ``rattle`` (Å ≥ 0): standard deviation of the Gaussian displacements about ū_N.
    * ``strains`` (:class:`StrainSpec`): amplitude (dimensionless) and count.
    * ``include_relaxed`` (bool): also include ū_N itself (default True).
    * ``observations`` (group → codes): subset of ``EFVH`` per group (of ``FH`` for a
      cylinder group); in TOML either one string for all groups or a table with optional
      ``default`` key. Unset: ``EF`` for every group, ``F`` for a cylinder group.
    * ``seed`` (int ≥ 0): seed of all random displacements and strains.
    * ``fd_step`` (Å | None): finite-difference step for force constants when the
      potential has no analytic Hessian; None = the observation module's default; 0 =
      finite differences disabled (then H needs an analytic Hessian).
    * ``fmax`` (eV/Å, in (0, 1]): relaxation tolerance on the largest force; ``max_iter``
      (≥ 1): its iteration cap (defaults and ranges those of the solver,
      :data:`genanalysis.constraints.RELAX_CONSTRAINTS`).
    """

    potential: str
    lattice: str
    defects: tuple[str, ...] = ("perfect", "vacancy")
    sizes: tuple[int, ...] = (2, 3)
    element: str | None = None
    a: float | None = None
    configs_per_size: int = 2
    rattle: float = 0.01
    strains: StrainSpec = field(default_factory=StrainSpec)
    include_relaxed: bool = True
    observations: tuple[tuple[str, str], ...] = ()
    seed: int = 0
    fd_step: float | None = None
    fmax: float = DEFAULT_FMAX
    max_iter: int = DEFAULT_MAX_ITER

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        if not isinstance(self.potential, str) or not self.potential.strip():
            raise InputError(f"potential={self.potential!r} must name a potential (builtin:NAME, a file, python:MODULE:CALLABLE)")
        if self.lattice not in LATTICES:
            raise InputError(f"lattice={self.lattice!r} is not supported; choose one of {', '.join(LATTICES)}")
        if self.element is not None and (not isinstance(self.element, str) or not self.element):
            raise InputError(f"element={self.element!r} must be a chemical symbol such as 'W'")
        if self.a is not None:
            set_("a", _real(self.a, "a", "Å", strict=True))
        # defects: canonical names, order kept, duplicates refused
        defects = self.defects
        if isinstance(defects, str):
            defects = (defects,)
        if not defects:
            raise InputError("defects=[] names no group; use e.g. ['perfect', 'vacancy']")
        canon = tuple(parse_group(self.lattice, d) for d in defects)
        if len(set(canon)) != len(canon):
            raise InputError(f"defects={list(defects)} lists a group twice (canonical names {list(canon)})")
        set_("defects", canon)
        sizes = self.sizes
        if isinstance(sizes, str) or not isinstance(sizes, (int, float, list, tuple)):
            raise InputError(f"sizes={sizes!r} must be a list of whole numbers ≥ 1, e.g. sizes = [2, 3, 4]")
        if isinstance(sizes, (int, float)):
            sizes = (sizes,)
        if not len(sizes):
            raise InputError("sizes=[] gives no cells; use e.g. sizes = [2, 3, 4]")
        sizes = tuple(sorted({_whole(n, "size N", 1) for n in sizes}))
        set_("sizes", sizes)
        for d in canon:
            if d == "perfect" or is_dislocation(d) or is_cylinder(d):
                continue
            n_min = _smallest_size(self.lattice, d)
            small = [n for n in sizes if n < n_min]
            if small:
                raise InputError(
                    f"size N={small[0]} is too small for a {d} on the {self.lattice} lattice; use N ≥ {n_min}"
                )
        set_("configs_per_size", _whole(self.configs_per_size, "configs_per_size", 0))
        set_("rattle", _real(self.rattle, "rattle", "Å"))
        strains = self.strains
        if isinstance(strains, dict):
            unknown = set(strains) - {"amplitude", "count"}
            if unknown:
                raise InputError(f"strains: unknown key(s) {sorted(unknown)}; accepted: amplitude, count")
            strains = StrainSpec(**strains)
        if not isinstance(strains, StrainSpec):
            raise InputError(f"strains={strains!r} must be a table {{amplitude = ..., count = ...}}")
        set_("strains", strains)
        if not isinstance(self.include_relaxed, bool):
            raise InputError(f"include_relaxed={self.include_relaxed!r} must be true or false")
        if self.configs_per_size > 0 and self.rattle == 0.0:
            raise InputError(
                f"configs_per_size={self.configs_per_size} with rattle=0 Å gives identical copies of the "
                "relaxed cell; set rattle > 0 Å or configs_per_size = 0"
            )
        if self.configs_per_group == 0:
            raise InputError(
                "the spec gives zero configurations per group and size (configs_per_size=0, "
                "strains.count=0, include_relaxed=false); ask for at least one"
            )
        set_("observations", _resolve_observations(self.observations, canon))
        _check_cylinder_observations(self.observations)
        self._check_memory()
        set_("seed", _whole(self.seed, "seed", 0))
        if self.fd_step is not None:
            set_("fd_step", _real(self.fd_step, "fd_step", "Å", maximum=0.1))
        # the relaxation's own declarations: a tolerance the solver refuses is refused here
        fmax, max_iter = check_arguments(RELAX_CONSTRAINTS, fmax=self.fmax, max_iter=self.max_iter)
        set_("fmax", fmax)
        set_("max_iter", max_iter)

    def _check_memory(self) -> None:
        """Refuse a training set whose configurations (positions and observations, force
        constants (d·n)² per configuration) cannot fit in memory."""
        dim = LATTICES[self.lattice][0]
        total = 0.0
        for group in self.defects:
            hessian = "H" in self.observations_of(group)
            for n in self.sizes:
                atoms = float(group_atoms(self.lattice, group, n))
                per = atoms * (CELL_BYTES_PER_ATOM + 8 * (2 * dim + 1)) + (8.0 * (dim * atoms) ** 2 if hessian else 0.0)
                total += per * self.configs_per_group
        check_memory(f"the training set (configs_per_size={self.configs_per_size}, sizes={list(self.sizes)}: "
                     f"{self.n_configurations:,} configurations)", total)

    # ------------------------------------------------------------------ derived

    @property
    def configs_per_group(self) -> int:
        """Configurations per group and size: relaxed + rattled + strained."""
        return int(self.include_relaxed) + self.configs_per_size + self.strains.count

    @property
    def n_configurations(self) -> int:
        return self.configs_per_group * len(self.sizes) * len(self.defects)

    def observations_of(self, group: str) -> str:
        """Observation codes (e.g. ``"EFV"``) requested for a group."""
        return dict(self.observations)[group]

    @property
    def needs_hessian(self) -> bool:
        return any("H" in codes for _, codes in self.observations)

    # ------------------------------------------------------------------ I/O

    def to_dict(self) -> dict:
        """Plain dict (TOML-ready: None values omitted)."""
        d = asdict(self)
        d["defects"] = list(self.defects)
        d["sizes"] = list(self.sizes)
        d["observations"] = dict(self.observations)
        return {k: v for k, v in d.items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict) -> "TrainingSetSpec":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"training-set spec: unknown key(s) {unknown}; accepted keys: {sorted(known)}")
        for key in ("potential", "lattice"):
            if key not in data:
                raise InputError(f"training-set spec: the key {key!r} is required")
        data = dict(data)
        for key in ("defects", "sizes"):
            if key in data and isinstance(data[key], list):
                data[key] = tuple(data[key])
        return cls(**data)

    @classmethod
    def from_toml(cls, path) -> "TrainingSetSpec":
        data = read_toml(path, "training-set spec")
        if "trainingset" in data and isinstance(data["trainingset"], dict) and len(data) == 1:
            data = data["trainingset"]
        return cls.from_dict(data)

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())

    def content_hash(self) -> str:
        """SHA-256 (hex) of the canonical JSON of the resolved spec: independent of TOML key
        order, of how defects/observations were spelled, and of the run."""
        return sha256_json({"version": SPEC_VERSION, **self.to_dict()})


@functools.lru_cache(maxsize=None)
def _smallest_size(lattice: str, defect: str) -> int:
    return smallest_size(lattice, 1.0, defect)  # whether a defect fits is scale-free


def _resolve_observations(obs, groups: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """(group, codes) for every group, from a string, a mapping or (group, codes) pairs;
    a group no entry names observes ``EF`` (a cylinder group ``F``)."""
    if obs is None or (not isinstance(obs, str) and len(obs) == 0):
        return tuple((g, _default_codes(g)) for g in groups)
    if isinstance(obs, (str, list)) and not (isinstance(obs, list) and obs and isinstance(obs[0], (list, tuple))):
        codes = parse_observations(obs)
        return tuple((g, codes) for g in groups)
    mapping = dict(obs)
    default = mapping.pop("default", None)
    resolved: dict[str, str] = {}
    for key, codes in mapping.items():
        # accept e.g. "interstitial" for "interstitial:dumbbell110"
        match = [g for g in groups if g == key or g.split(":")[0] == key]
        if not match:
            raise InputError(
                f"observations: group {key!r} is not among the defects {list(groups)} (or 'default')"
            )
        for g in match:
            if g == key or g not in resolved:
                resolved[g] = parse_observations(codes, f"observations.{key}")
    out = []
    for g in groups:
        if g in resolved:
            out.append((g, resolved[g]))
        elif default is not None:
            out.append((g, parse_observations(default, "observations.default")))
        else:
            out.append((g, _default_codes(g)))
    return tuple(out)


def _default_codes(group: str) -> str:
    return "F" if is_cylinder(group) else "EF"


def _check_cylinder_observations(observations) -> None:
    """Refuse E or V of a cylinder group: a cylinder in vacuum has a free surface (its
    clamped shell's outer atoms), so its energy and virial are not those of a bulk cell."""
    for group, codes in observations:
        bad = "".join(c for c in codes if c not in CYLINDER_OBSERVATIONS)
        if is_cylinder(group) and bad:
            raise InputError(
                f"observations.{group} = {codes!r}: a clamped cylinder in vacuum has a free surface, so its "
                f"{' and '.join({'E': 'energy (E)', 'V': 'virial (V)'}[c] for c in bad)} "
                f"{'are not those' if len(bad) > 1 else 'is not that'} of a bulk cell; a cylinder group accepts a subset of {CYLINDER_OBSERVATIONS!r} (forces and force-constant "
                f"rows of its free atoms) — give it its own entry, e.g. \"{group}\" = \"F\"")
