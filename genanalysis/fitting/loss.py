"""The loss of every fit, defined once: weights per observation type, group and atom, and
the weighted residual terms of one configuration.

Units: energies eV, forces eV/Å, virials eV, force constants eV/Å²; weights are
dimensionless multipliers of the squared residuals (so each weight carries the inverse
squared unit of its observation) and the loss is dimensionless.

The loss (docs/models.md §3), summed over the configurations c of group g:

    L = Σ_c [ w_E(g) ΔE_c²/n_c + w_F(g) Σ_a α_a |ΔF_a|² + w_V(g) ‖ΔW_c‖²_F/n_c
              + w_H(g) Σ_a α_a ‖ΔH_{a·}‖²_F ]  (+ ridge)

n_c atoms; α_a the per-atom weights (:func:`atom_weights`: the configuration's own
``atom_weights`` times the spatial weights of ``LossWeights.spatial``); ΔH_{a·} the 3 × 3n row block
of atom a. In d = 2 only in-plane components enter (z is frozen). w(g) = w(type) ×
groups[g][type] (group multipliers default to 1).

:func:`terms` writes one configuration's part as Σ_t ‖s_t ⊙ (P_t(model) − y_t)‖²: per
observation type t the square-root weights s_t of its residual entries, the reference
values y_t and a selector that :func:`select` applies to model-shaped arrays. The linear
fit stacks s_t ⊙ P_t(design) as weighted rows; the network fit evaluates the same sum on
torch predictions (:mod:`genanalysis.fitting.network`), the force-constant term through
Hessian-vector products with the row weights of :func:`hessian_row_weights`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from genanalysis.data import OBSERVATION_TYPES, Configuration
from genanalysis.exceptions import InputError, check_number
from genanalysis.lattice import atoms_dim

__all__ = ["LossWeights", "SpatialWeights", "spatial_weights", "Term", "plane", "atom_weights", "observed_atoms", "hessian_rows", "hessian_row_weights", "terms",
           "select"]


def _num(value, name, *, minimum=0.0, strict=False, maximum=math.inf) -> float:
    return check_number(value, name, minimum=minimum, maximum=maximum, strict=strict)


@dataclass(frozen=True)
class SpatialWeights:
    """Per-atom loss weights around the defect, α_a = 1 + amplitude · exp(−(r_a/radius)²)
    (:func:`spatial_weights`): ``amplitude`` ≥ 0 (dimensionless), ``radius`` > 0 (Å)."""

    amplitude: float
    radius: float

    def __post_init__(self):
        object.__setattr__(self, "amplitude", check_number(self.amplitude, "spatial.amplitude"))
        object.__setattr__(self, "radius", check_number(self.radius, "spatial.radius", unit="Å", strict=True))

    @classmethod
    def from_table(cls, table) -> "SpatialWeights | None":
        """From ``{amplitude = A, radius = R}`` (None stays None)."""
        if table is None or isinstance(table, cls):
            return table
        if not isinstance(table, dict) or set(table) != {"amplitude", "radius"}:
            raise InputError(f"spatial={table!r}: give a table {{amplitude = A ≥ 0, radius = R > 0 (Å)}}")
        return cls(table["amplitude"], table["radius"])


def spatial_weights(atoms, amplitude: float, radius: float) -> np.ndarray:
    """Per-atom loss weights emphasising the defect core (dimensionless):
    ``α_a = 1 + amplitude · exp(−(r_a / radius)²)``, with r_a (Å) the minimum-image distance
    of atom a from ``atoms.info["defect_centre"]``. A perfect cell (no defect) gets α = 1."""
    amplitude = _num(amplitude, "spatial.amplitude")
    radius = _num(radius, "spatial.radius (Å)", strict=True)
    from genanalysis.lattice import distances_from_centre

    if atoms.info.get("defect_centre") is None or atoms.info.get("defect", "perfect") == "perfect":
        return np.ones(len(atoms))
    r = distances_from_centre(atoms)
    return 1.0 + amplitude * np.exp(-((r / radius) ** 2))


@dataclass(frozen=True)
class LossWeights:
    """Weights per observation type (E eV⁻², F (eV/Å)⁻², V eV⁻², H (eV/Å²)⁻²), group
    multipliers ``groups = {group: {type: multiplier}}``, whether to use per-atom weights,
    the spatial weights around the defect (:class:`SpatialWeights` or None), and the ridge λ ≥ 0 (dimensionless; the linear fit applies it to the unit-norm-scaled
    coefficients, the network fit as weight decay on its weight matrices — docs/models.md §3)."""

    E: float = 1.0
    F: float = 1.0
    V: float = 0.0
    H: float = 0.0
    groups: dict = field(default_factory=dict)
    atom_weights: bool = True
    spatial: SpatialWeights | None = None
    ridge: float = 0.0

    def __post_init__(self):
        for t in OBSERVATION_TYPES:
            _num(getattr(self, t), f"loss weight {t}")
        if not isinstance(self.groups, dict):
            raise InputError(f"loss.groups must be a table {{group: {{type: multiplier}}}}, got {self.groups!r}")
        for g, table in self.groups.items():
            if not isinstance(table, dict):
                raise InputError(f"loss.groups.{g} must be a table of multipliers per type, got {table!r}")
            for t, v in table.items():
                if t not in OBSERVATION_TYPES:
                    raise InputError(f"loss.groups.{g}: unknown observation type {t!r}; use E, F, V or H")
                _num(v, f"loss.groups.{g}.{t}")
        _num(self.ridge, "ridge")
        object.__setattr__(self, "spatial", SpatialWeights.from_table(self.spatial))
        if self.spatial is not None and not self.atom_weights:
            raise InputError("loss.spatial is set but loss.atom_weights = false ignores per-atom weights; "
                             "drop one of them")
        if all(getattr(self, t) == 0 for t in OBSERVATION_TYPES):
            raise InputError("all loss weights E, F, V, H are zero; give at least one a positive weight")

    def weight(self, group: str, code: str) -> float:
        return float(getattr(self, code)) * float(self.groups.get(group, {}).get(code, 1.0))


def plane(dim: int) -> np.ndarray:
    """Indices of the components that enter the loss in dimension ``dim`` (d = 2: x, y)."""
    return np.arange(dim)


def observed_atoms(conf: Configuration) -> np.ndarray:
    """(n,) bool: the atoms whose rows are observations — all but those of own weight 0 (the
    clamped shell of a cylinder training cell, docs/trainingset.md)."""
    return np.ones(len(conf), bool) if conf.atom_weights is None else np.asarray(conf.atom_weights) != 0


def atom_weights(conf: Configuration, loss: LossWeights) -> np.ndarray:
    """α (n,) dimensionless: the spatial weights of ``loss.spatial`` times the
    configuration's ``atom_weights`` (each 1 when absent). When ``loss.atom_weights`` is
    false every α is 1 except on atoms whose own weight is 0: a zero weight marks an atom
    whose rows are not observations (the clamped shell of a cylinder training cell,
    docs/trainingset.md), and ignoring the weights must not bring them in."""
    if not loss.atom_weights:
        return observed_atoms(conf).astype(float)
    if loss.spatial is None:
        return np.ones(len(conf)) if conf.atom_weights is None else np.asarray(conf.atom_weights, float)
    w = spatial_weights(conf.atoms, loss.spatial.amplitude, loss.spatial.radius)
    return w if conf.atom_weights is None else w * np.asarray(conf.atom_weights, float)


def hessian_rows(conf: Configuration, alpha: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Row atoms of the force-constant observation and the multiplicity of each row: a
    perfect crystal with uniform weights ``alpha`` needs atom 0's rows only, times n
    (the translation orbit: ‖ΔH‖²_F = n ‖ΔH_{0·}‖²_F)."""
    from genanalysis.models.engine import translation_orbit

    n = len(conf)
    uniform = alpha is None or np.allclose(alpha, alpha[0])
    if n > 1 and uniform and translation_orbit(conf.atoms):
        return np.array([0]), float(n)
    return np.arange(n), 1.0


def hessian_row_weights(conf: Configuration, loss: LossWeights, rows: np.ndarray | None = None,
                        mult: float = 1.0) -> np.ndarray:
    """√(w_H(g) · mult · α_a) for the row atoms a in ``rows`` (default: all): the
    square-root weight of atom a's force-constant rows, each standing for ``mult`` rows."""
    alpha = atom_weights(conf, loss)
    return np.sqrt(loss.weight(conf.group, "H") * mult * (alpha if rows is None else alpha[rows]))


class Term(NamedTuple):
    """One observation type's part of a configuration's loss: Σ (s ⊙ (select(P) − y))²."""

    code: str
    sqrt_weight: np.ndarray
    reference: np.ndarray
    selector: object


def weighted_kinds(conf: Configuration, loss: LossWeights) -> str:
    """The observation codes of ``conf`` that enter the loss with positive weight."""
    return "".join(t for t in OBSERVATION_TYPES if t in conf.observed and loss.weight(conf.group, t) > 0)


def terms(conf: Configuration, loss: LossWeights, kinds: str | None = None) -> list[Term]:
    """The :class:`Term` of every observation of ``conf`` in ``kinds`` (default: all) with
    positive weight. Entries with zero weight (α_a = 0) are left out, so a zero weight
    removes an observation exactly."""
    n, dim = len(conf), atoms_dim(conf.atoms)
    alpha = atom_weights(conf, loss)
    pl = plane(dim)
    out = []
    for t in OBSERVATION_TYPES if kinds is None else kinds:
        w = loss.weight(conf.group, t)
        if w <= 0 or t not in conf.observed:
            continue
        if t == "E":
            out.append(Term(t, np.array([math.sqrt(w / n)]), np.array([conf.energy]), None))
        elif t == "F":
            sw = np.repeat(np.sqrt(w * alpha), dim)
            keep = sw > 0
            out.append(Term(t, sw[keep], np.asarray(conf.forces)[:, pl].reshape(-1)[keep], keep))
        elif t == "V":
            out.append(Term(t, np.full(dim * dim, math.sqrt(w / n)),
                            np.asarray(conf.virial)[np.ix_(pl, pl)].reshape(-1), None))
        elif t == "H":
            rows, mult = hessian_rows(conf, alpha)
            cols = (3 * np.arange(n)[:, None] + pl[None, :]).reshape(-1)
            ridx = (3 * rows[:, None] + pl[None, :]).reshape(-1)
            Href = conf.hessian.tocsr()[ridx][:, cols].toarray()
            sw = np.repeat(hessian_row_weights(conf, loss, rows, mult), dim)
            keep = sw > 0
            W = np.broadcast_to(sw[:, None], Href.shape)[keep].reshape(-1)
            out.append(Term(t, W, Href[keep].reshape(-1), (rows, keep)))
    return out


def select(term: Term, predicted: dict, conf: Configuration):
    """The components of ``predicted[term.code]`` that ``term`` weighs, flattened like
    ``term.reference``. ``predicted`` holds model-shaped arrays — numpy or torch, with
    optional trailing axes (a design's parameter axis): E (…), F (n, 3, …), V (3, 3, …),
    H (3r, 3n, …) for the rows r of :func:`hessian_rows`."""
    t, sel = term.code, term.selector
    dim = atoms_dim(conf.atoms)
    pl = plane(dim)
    n = len(conf)
    x = predicted[t]
    if t == "E":
        return x[None]
    if t == "F":
        y = x[:, pl].reshape((n * dim,) + tuple(x.shape[2:]))
        return y[sel]
    if t == "V":
        return x[np.ix_(pl, pl)].reshape((dim * dim,) + tuple(x.shape[2:]))
    if t == "H":
        rows, keep = sel
        cols = (3 * np.arange(n)[:, None] + pl[None, :]).reshape(-1)
        local = (3 * np.arange(len(rows))[:, None] + pl[None, :]).reshape(-1)
        y = x[local][:, cols]
        return y[keep].reshape((-1,) + tuple(x.shape[2:]))
    raise AssertionError(t)
