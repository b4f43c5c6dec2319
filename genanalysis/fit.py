"""Fitting models to training sets: loss weights, weighted least squares, torch training.

Units: energies eV, forces eV/Å, virials eV, force constants eV/Å²; weights are
dimensionless multipliers of the squared residuals (so each weight carries the
inverse squared unit of its observation).

The loss — per observation type, group and atom weights, energies and virials normalised
per atom, forces and force constants summed over atoms, in-plane components only in d = 2 —
is defined once in :mod:`genanalysis.fitting.loss` (docs/models.md §3); both solvers below
minimise it.

Linear model: the weighted design matrix is reduced by a streamed Householder QR (TSQR:
rows of one configuration at a time are stacked under the current R), so memory is
O(K²) whatever the number of force-constant rows; columns are scaled to unit norm, and the
scaled R is solved by SVD — exact, deterministic, with the condition number and effective
rank reported, and a ridge λ applied to the scaled coefficients (λ‖ĉ‖², so scaling every
weight by a constant leaves the fit unchanged). QR + SVD rather than normal equations:
the normal equations square the condition number (≳1e8 for large bases).
"""

from __future__ import annotations

import hashlib
import math
import time
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np

from genanalysis.constraints import check_keys
from genanalysis.data import OBSERVATION_TYPES, Configuration, configurations_hash
from genanalysis.exceptions import InputError, check_number
from genanalysis.fitting.loss import (
    LossWeights,
    SpatialWeights,
    atom_weights,
    hessian_rows,
    observed_atoms,
    plane,
    Term,
    select,
    spatial_weights,
    terms,
    weighted_kinds,
)
from genanalysis.jsonutil import sha256_json
from genanalysis.lattice import atoms_dim
from genanalysis.memory import check_memory, design_rows, fit_bytes, hessian_chunk_atoms
from genanalysis.models.basis import ACEParams
from genanalysis.tomlutil import read_toml

__all__ = ["LossWeights", "SpatialWeights", "spatial_weights", "ModelSpec", "FitSpec", "FitResult", "FitWarning",
           "RankDeficiencyWarning", "split", "fit", "fit_hash", "fit_linear", "finetune_linear", "fit_mlp", "fit_report",
           "observation_errors"]


class FitWarning(UserWarning):
    """Suspicious but admissible fit input (reported, the fit proceeds)."""


class RankDeficiencyWarning(FitWarning):
    """The weighted design matrix does not determine every coefficient."""


def _num(value, name, *, minimum=0.0, strict=False, maximum=math.inf) -> float:
    return check_number(value, name, minimum=minimum, maximum=maximum, strict=strict)


@dataclass(frozen=True)
class ModelSpec(ACEParams):
    """Model kind (``ace`` linear, ``mlp`` Behler–Parrinello network on the same
    invariants, ``directforce`` forces without an energy on the same basis,
    :mod:`genanalysis.models.directforce`, ``composite`` a sum of pair, embedding and ACE
    ``terms``, :mod:`genanalysis.models.composite`) and size: the fields of :class:`~genanalysis.models.basis.ACEParams`
    (cutoff Å, degree, body_order, l_max, w_l, r_in Å, pair_degree; the dimension is taken
    from the data) and, for ``mlp``, hidden layer widths, Adam epochs/learning rate, L-BFGS
    iterations, Hessian probes, the number of initialisations ``seeds`` (the one of lowest
    validation loss is kept), and early stopping (``validate_every``, ``patience``)."""

    kind: str = "ace"
    hidden: tuple = (32, 32)
    epochs: int = 200
    lr: float = 3e-3
    lbfgs_iterations: int = 50
    hessian_probes: int = 4
    seeds: int = 1
    terms: tuple = ()
    """``kind = "composite"``: the terms (tables of :class:`~genanalysis.models.composite.TermSpec`;
    basis parameters a term omits are this spec's)"""
    linear_skip: bool = False
    """``kind = "mlp"``: a linear readout of the invariants in parallel to the hidden layers,
    ε = e_0 + w·B̂ + N(B̂), trained from the linear fit of the same loss with N ≡ 0
    (:meth:`~genanalysis.models.mlp.MLPACE.set_linear`; docs/models.md §3)"""
    validate_every: int = 10
    """the validation loss is checked every ``validate_every`` iterations (0: never); the
    weights of its minimum are kept"""
    patience: int = 0
    """this many checks without improvement stop the run (0: never stop early)"""

    def __post_init__(self):
        from genanalysis.models.io import model_class

        model_class(self.kind)  # refuses an unknown kind
        if self.kind == "composite":
            from genanalysis.models.composite import CompositeSpec, TermSpec

            if not isinstance(self.terms, (list, tuple)) or not self.terms:
                raise InputError("model.kind='composite' needs model.terms: one or more term tables "
                                 "(kind = 'pair', 'embedding' or 'ace')")
            # named and checked once (unique names), so the spec hashes what the model is
            object.__setattr__(self, "terms", CompositeSpec(tuple(TermSpec.from_dict(t, self) for t in self.terms)).terms)
        elif self.terms:
            raise InputError(f"model.terms is for model.kind='composite', not {self.kind!r}")
        if not isinstance(self.linear_skip, bool):
            raise InputError(f"model.linear_skip={self.linear_skip!r} must be true or false")
        if self.linear_skip and self.kind != "mlp":
            raise InputError(f"model.linear_skip = true is for model.kind='mlp', not {self.kind!r}")
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise InputError(f"hidden={self.hidden!r}: give one or more layer widths ≥ 1")
        if isinstance(self.seeds, bool) or int(self.seeds) != self.seeds or self.seeds < 1:
            raise InputError(f"seeds={self.seeds!r} must be a whole number ≥ 1")
        for name in ("degree", "body_order", "l_max", "pair_degree"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v:
                raise InputError(f"model.{name}={v!r} must be a whole number")
        for name in ("cutoff", "w_l", "r_in"):
            _num(getattr(self, name), f"model.{name}")
        for name in ("epochs", "lbfgs_iterations", "hessian_probes", "validate_every", "patience"):
            v = getattr(self, name)
            if isinstance(v, bool) or int(v) != v or v < 0:
                raise InputError(f"{name}={v!r} must be a whole number ≥ 0")
        _num(self.lr, "lr", strict=True)
        super().__post_init__()  # the basis parameters


@dataclass(frozen=True)
class FitSpec:
    """What to fit: ``training_set`` (a built directory or a training-set spec TOML, or a
    list of them — e.g. defect cells with E, F, V plus perfect cells with force constants),
    the model, the loss (weights per type, group and atom, spatial weights, ridge), the held-out ``validation_fraction`` ∈ [0, 0.9] (per group),
    ``seed``, ``rcond`` (relative singular-value threshold of the effective rank) and
    ``on_rank_deficient`` (``warn``: minimum-norm solution and a warning; ``error``)."""

    training_set: str | tuple
    model: ModelSpec = field(default_factory=ModelSpec)
    loss: LossWeights = field(default_factory=LossWeights)
    validation_fraction: float = 0.1
    seed: int = 0
    rcond: float = 1e-12
    on_rank_deficient: str = "warn"

    def __post_init__(self):
        ts = self.training_set
        if isinstance(ts, list):
            ts = tuple(ts)
            object.__setattr__(self, "training_set", ts)
        items = ts if isinstance(ts, tuple) else (ts,)
        if not items or not all(isinstance(t, str) and t for t in items):
            raise InputError(f"training_set={ts!r} must name a training-set directory or spec .toml, "
                             "or be a list of them (their configurations are concatenated)")
        _num(self.validation_fraction, "validation_fraction", maximum=0.9)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise InputError(f"seed={self.seed!r} must be a whole number")
        _num(self.rcond, "rcond", strict=True, maximum=1.0)
        if self.on_rank_deficient not in ("warn", "error"):
            raise InputError(f"on_rank_deficient={self.on_rank_deficient!r}; choose 'warn' or 'error'")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["model"]["hidden"] = list(d["model"]["hidden"])
        if not d["model"]["terms"]:  # only a composite model has terms; the other specs hash as before
            del d["model"]["terms"]
        else:
            d["model"]["terms"] = [t.to_dict() for t in self.model.terms]
        if not d["model"]["linear_skip"]:  # only set for a network with the skip; other specs hash as before
            del d["model"]["linear_skip"]
        if isinstance(d["training_set"], tuple):
            d["training_set"] = list(d["training_set"])
        return d

    def content_hash(self) -> str:
        """Stable hash (16 hex digits) of what the spec contributes to the fit: the model,
        the loss (with its spatial weights), the split, the seed and the solver settings —
        everything but ``training_set``, which only says where the data are; the data enter
        the fit's identity by their content (:func:`fit_hash`)."""
        d = self.to_dict()
        d.pop("training_set")
        return sha256_json(d)[:16]

    @classmethod
    def from_dict(cls, d: dict) -> "FitSpec":
        d = dict(d)
        check_keys(d, cls, "fit spec")
        if "training_set" not in d:
            raise InputError("fit spec: 'training_set' (directory or spec .toml) is required")
        m = d.get("model", {})
        l_ = d.get("loss", {})
        for name, table, klass in (("model", m, ModelSpec), ("loss", l_, LossWeights)):
            check_keys(table, klass, f"fit spec [{name}]")
        d["model"] = ModelSpec(**m)
        d["loss"] = LossWeights(**l_)
        return cls(**d)

    @classmethod
    def from_toml(cls, path) -> "FitSpec":
        return cls.from_dict(read_toml(path, "fit spec"))


# ---------------------------------------------------------------------------------------
# data checks and split
# ---------------------------------------------------------------------------------------


def _dim(configs: list[Configuration]) -> int:
    dims = {atoms_dim(c.atoms) for c in configs}
    if len(dims) != 1:
        raise InputError(f"training set mixes dimensions {sorted(dims)}; fit 2D and 3D data separately")
    return dims.pop()


def check_data(configs: list[Configuration], loss: LossWeights) -> list[str]:
    """Refuse data the loss cannot use; return warnings for suspicious combinations."""
    if not configs:
        raise InputError("the training set is empty; build it first (`genanalysis trainingset`)")
    notes = []
    groups = sorted({c.group for c in configs})
    bad = sorted(set(loss.groups) - set(groups))
    if bad:
        raise InputError(f"loss.groups names group(s) {', '.join(bad)} that the training set lacks; "
                         f"its groups are {', '.join(groups)}")
    for t in OBSERVATION_TYPES:
        if getattr(loss, t) > 0 and not any(t in c.observed for c in configs):
            raise InputError(
                f"loss weight {t}={getattr(loss, t):g} > 0 but no configuration carries {t} observations "
                f"(the set observes {''.join(sorted({o for c in configs for o in c.observed}, key='EFVH'.index)) or 'nothing'}); "
                f"set {t} = 0 or add {t} to the training set")
        for g in groups:
            if loss.weight(g, t) > 0 and t in loss.groups.get(g, {}) and not any(
                    t in c.observed for c in configs if c.group == g):
                notes.append(f"group {g!r} weights {t} but none of its configurations carries {t}")
    if not any(loss.weight(c.group, t) > 0 for c in configs for t in c.observed):
        raise InputError("every observation of the training set has weight zero; nothing to fit")
    for c in configs:
        if c.atom_weights is not None:
            w = np.asarray(c.atom_weights, float)
            if w.shape != (len(c),) or not np.all(np.isfinite(w)) or np.any(w < 0):
                raise InputError(f"atom_weights of a configuration in group {c.group!r} must be {len(c)} finite "
                                 "values ≥ 0")
    return notes


def split(configs: list[Configuration], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train, validation) indices: within each group a seeded random ``fraction`` is held
    out (rounded; none when the group has a single configuration)."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for g in sorted({c.group for c in configs}):
        idx = np.array([i for i, c in enumerate(configs) if c.group == g])
        k = int(round(fraction * len(idx))) if len(idx) > 1 else 0
        perm = rng.permutation(len(idx))
        val += sorted(idx[perm[:k]].tolist())
        train += sorted(idx[perm[k:]].tolist())
    return sorted(train), sorted(val)


# ---------------------------------------------------------------------------------------
# linear least squares
# ---------------------------------------------------------------------------------------


class _StreamedQR:
    """R factor of [A | y] accumulated block by block (Householder QR of [R; new rows]).

    Rows whose design part is all zero (force-constant rows of atom pairs beyond the
    model's coupling range) are not factorised: such a row [0 | y] adds y² to the last
    diagonal entry's square only, so their Σ y² is kept and folded into the residual
    norm — the same R, z and residual, without their QR work."""

    def __init__(self, p: int):
        self.p = p
        self.R = np.zeros((0, p + 1))
        self.buf: list[np.ndarray] = []
        self.rows = 0
        self.nrows_total = 0
        self.zero_ss = 0.0

    def add(self, A: np.ndarray, y: np.ndarray) -> None:
        if len(y) == 0:
            return
        self.nrows_total += len(y)
        live = np.any(A != 0, axis=1)
        if not live.all():
            self.zero_ss += float(np.sum(np.square(y[~live])))
            A, y = A[live], y[live]
            if len(y) == 0:
                return
        self.buf.append(np.column_stack([A, y]))
        self.rows += len(y)
        if self.rows >= 4 * (self.p + 1):
            self._flush()

    def _flush(self) -> None:
        if self.buf:
            stacked = np.vstack([self.R] + self.buf)
            self.R = np.linalg.qr(stacked, mode="r")
            self.buf, self.rows = [], 0

    def result(self) -> tuple[np.ndarray, np.ndarray, float]:
        self._flush()
        R = np.zeros((self.p + 1, self.p + 1))
        R[: len(self.R)] = self.R[: self.p + 1]
        return R[: self.p, : self.p], R[: self.p, self.p], float(math.hypot(R[self.p, self.p], math.sqrt(self.zero_ss)))


def _check_fit_memory(configs: list[Configuration], loss: LossWeights, dim: int, p: int, model_cls=object) -> None:
    """Refuse a fit whose largest configuration's design and QR cannot fit in memory
    (:func:`genanalysis.memory.fit_bytes`), before any design row is computed; a model
    class with ``design_hessian_chunks`` streams its force-constant rows in pieces of
    :func:`~genanalysis.memory.hessian_chunk_atoms` row atoms."""
    worst, where = (0.0, 0.0), None
    for conf in configs:
        kinds = weighted_kinds(conf, loss)
        r = len(hessian_rows(conf, atom_weights(conf, loss))[0]) if "H" in kinds else 0
        if hasattr(model_cls, "design_hessian_chunks"):  # its rows stream in pieces
            r = min(r, hessian_chunk_atoms(len(conf), p))
        rows = design_rows(len(conf), dim, kinds, r)
        if rows[1] > worst[1]:
            worst, where = rows, (conf, kinds)
    if where is not None:
        conf, kinds = where
        check_memory(f"the fit's design ({worst[1]:,.0f} {kinds} rows of a {len(conf)}-atom configuration × {p:,} "
                     "parameters)", fit_bytes(*worst, p))


@dataclass
class FitResult:
    """A fitted model, the spec, the split and the report (dict, JSON-able)."""

    model: object
    spec: FitSpec | None
    train: list[int]
    validation: list[int]
    report: dict


def _assemble(model, configs: list[Configuration], loss: LossWeights, *, progress=None,
              design_cache: dict | None = None, parts: dict | None = None) -> tuple[_StreamedQR, dict]:
    """The streamed QR of the weighted design of the linear ``model`` on ``configs`` (rows
    of every weighted observation, :func:`~genanalysis.fitting.loss.terms`) and the row
    count per observation type. Refuses a design that does not fit in memory first.

    ``parts``: an optional dict filled with one more streamed QR per (observation type,
    group, atoms per cell) of the same weighted rows (each row computed once): their RᵀR,
    the partial informations, sum to the whole's."""
    dim = model.spec.dim
    p = model.n_params
    _check_fit_memory(configs, loss, dim, p, type(model))
    qr = _StreamedQR(p)
    counts = {t: 0 for t in OBSERVATION_TYPES}
    for ci, conf in enumerate(configs):
        # a direct-force model predicts F and H only: its E and V rows are left out
        kinds = predicted_kinds(model, weighted_kinds(conf, loss))
        if not kinds:
            continue
        blocks = terms(conf, loss, kinds)
        hrows = next((b.selector[0] for b in blocks if b.code == "H"), None)
        # force-constant rows of more atoms than one piece holds stream, uncached
        stream = (hrows is not None and hasattr(model, "design_hessian_chunks")
                  and len(hrows) > hessian_chunk_atoms(len(conf), p))
        dkinds = kinds.replace("H", "") if stream else kinds
        geo = hashlib.sha256(np.ascontiguousarray(conf.atoms.positions).tobytes()
                             + np.ascontiguousarray(np.array(conf.atoms.cell)).tobytes()
                             + np.asarray(conf.atoms.pbc).tobytes()).hexdigest()
        key = (geo, model.kind, model.spec, dkinds, None if hrows is None or stream else tuple(hrows))
        if not dkinds:
            d = {}
        elif design_cache is not None and key in design_cache:
            d = design_cache[key]
        else:
            d = model.design(conf.atoms, dkinds, hessian_rows=None if stream else hrows)
            if design_cache is not None:
                design_cache[key] = d
        for b in blocks:
            pieces = _hessian_pieces(model, conf, b, hessian_chunk_atoms(len(conf), p)) if (
                stream and b.code == "H") else [(b, d)]
            for piece, dp in pieces:
                rows, rhs = piece.sqrt_weight[:, None] * select(piece, dp, conf), piece.sqrt_weight * piece.reference
                qr.add(rows, rhs)
                if parts is not None:
                    parts.setdefault((b.code, conf.group, len(conf)), _StreamedQR(p)).add(rows, rhs)
            counts[b.code] += len(b.reference)
        if progress:
            progress(ci + 1, len(configs))
    return qr, counts


def _hessian_pieces(model, conf: Configuration, term, chunk: int):
    """The force-constant term ``term`` of ``conf`` as (sub-term, design rows) pieces of at
    most ``chunk`` row atoms each (:meth:`design_hessian_chunks`): the same weighted rows
    as the whole term, in the same order, without the whole design block."""
    rows, keep = term.selector
    dim = atoms_dim(conf.atoms)
    ncol = dim * len(conf)
    done = 0  # kept row dofs before the piece
    for a, block in model.design_hessian_chunks(conf.atoms, rows, chunk):
        c = block.shape[0] // 3
        kp = keep[dim * a: dim * (a + c)]
        m = int(kp.sum())
        sl = slice(done * ncol, (done + m) * ncol)
        done += m
        yield Term("H", term.sqrt_weight[sl], term.reference[sl], (rows[a:a + c], kp)), {"H": block}


def fit_linear(configs: list[Configuration], model_spec: ModelSpec, loss: LossWeights, *, rcond: float = 1e-12,
               on_rank_deficient: str = "warn", progress=None, design_cache: dict | None = None,
               partial_information: bool = False) -> tuple[object, dict]:
    """Weighted linear least squares of a :class:`~genanalysis.models.linear.LinearACE` on
    ``configs``; returns (model, solver diagnostics). See the module docstring.

    ``design_cache``: an optional dict that keeps the unweighted design rows between calls
    on the same configurations and model (sweeps over loss weights assemble them once).
    ``partial_information``: also keep the R factor of each (observation type, group, atoms
    per cell) part of the rows as ``model.partial_r_factors_`` ({key: (R, rows)}; the
    Fisher-information analysis of :func:`genanalysis.identifiability.fisher_information`)."""
    dim = _dim(configs)
    # every model linear in its coefficients: the linear ACE (energies), the composite model
    # (a sum of linear terms) and the direct-force model (forces only; its E and V
    # observations are not predicted and left out)
    model = linear_model(model_spec, dim)
    p = model.n_params
    t0 = time.perf_counter()
    parts = {} if partial_information else None
    qr, counts = _assemble(model, configs, loss, progress=progress, design_cache=design_cache, parts=parts)
    R, z, resid = qr.result()
    if parts is not None:
        model.partial_r_factors_ = {key: (part.result()[0], part.nrows_total) for key, part in parts.items()}
    scale = np.linalg.norm(R, axis=0)
    live = scale > 0
    Rs = R[:, live] / scale[live]
    U, s, Vt = np.linalg.svd(Rs, full_matrices=False)  # a dead column leaves Rs p × (p − 1)
    smax = s[0] if len(s) else 0.0
    rank = int(np.sum(s > rcond * smax)) if smax > 0 else 0
    cond = float(smax / s[-1]) if len(s) and s[-1] > 0 else math.inf
    lam = float(loss.ridge)
    zt = U.T @ z
    if lam > 0:
        filt = s / (s**2 + lam)
    else:
        filt = np.where(s > rcond * smax, 1.0 / np.where(s > 0, s, 1.0), 0.0)
    c_live = Vt.T @ (filt * zt)
    coef = np.zeros(p)
    coef[live] = c_live / scale[live]
    undetermined = [model.feature_names[k] for k in np.flatnonzero(~live)]
    deficient = rank < int(live.sum())
    diag = {
        "solver": "streamed Householder QR, unit-norm column scaling, SVD" + (f", ridge λ={lam:g}" if lam > 0 else ""),
        "n_params": p, "n_rows": qr.nrows_total, "rows_per_type": counts,
        "condition_number": cond, "effective_rank": rank, "rcond": rcond,
        "rank_deficient": bool(deficient), "undetermined_features": undetermined,
        "weighted_residual_norm": resid, "assembly_seconds": time.perf_counter() - t0,
    }
    if undetermined or deficient:
        msg = (f"the weighted design matrix ({qr.nrows_total} rows × {p} parameters) has effective rank {rank} "
               f"of {int(live.sum())} live columns (rcond={rcond:g}, condition number {cond:.3g})"
               + (f"; features {', '.join(undetermined[:5])}{'…' if len(undetermined) > 5 else ''} are not "
                  "observed by any weighted observation and are set to 0" if undetermined else "")
               + ("; reduce the model degree, add data or set a ridge" if deficient else "")
               + (" — the minimum-norm solution is returned" if deficient and lam == 0 else ""))
        if deficient and on_rank_deficient == "error":
            raise InputError(msg)
        warnings.warn(msg, RankDeficiencyWarning, stacklevel=2)
    model.coef_ = coef
    # R of the weighted design (RᵀR = AᵀWA, unscaled coefficients; weighted-row units per eV):
    # the Fisher information the identifiability width puts to work (genanalysis.identifiability)
    model.r_factor_ = R
    return model, diag


def finetune_linear(model, configs: list[Configuration], loss: LossWeights, *, ridge: float,
                    rcond: float = 1e-12) -> tuple[object, dict]:
    """The least-change update of a fitted :class:`~genanalysis.models.linear.LinearACE`
    on added ``configs``: θ = argmin L(θ) + λ‖θ − θ₀‖², L the weighted loss of the added
    configurations (:mod:`genanalysis.fitting.loss`, the one definition), θ₀ the pre-trained
    coefficients, λ = ``ridge`` ≥ 0 in the loss's units per coefficient² (on the
    unscaled coefficients: the update is pulled towards θ₀ in every direction alike).
    ``ridge = 0``: the smallest change ‖θ − θ₀‖ that minimises L (singular values below
    ``rcond``·max left out). No added data (or none with a weight): θ = θ₀.

    Returns (a new model, diagnostics: rows per type, ‖θ − θ₀‖, the loss of the added data
    before and after). ``loss.ridge`` (the fit's own ridge on scaled coefficients) is not
    used; ``ridge`` replaces it."""
    from genanalysis.models.linear import LinearACE

    lam = _num(ridge, "ridge")
    _num(rcond, "rcond", strict=True, maximum=1.0)
    if not isinstance(model, LinearACE):
        raise InputError(f"finetune_linear() fine-tunes a linear model (LinearACE), not a {type(model).__name__}")
    theta0 = np.asarray(model.coef_, float)
    out = LinearACE(model.spec, theta0)
    diag = {"solver": "least-change ridge towards the pre-trained coefficients", "ridge": lam, "n_configurations":
            len(configs), "n_rows": 0, "rows_per_type": {t: 0 for t in OBSERVATION_TYPES}, "change_norm": 0.0,
            "added_loss_before": 0.0, "added_loss_after": 0.0}
    if not configs:
        return out, diag
    dim = _dim(configs)
    if dim != model.spec.dim:
        raise InputError(f"the added configurations are {dim}D and the model is {model.spec.dim}D")
    qr, counts = _assemble(out, configs, loss)
    R, z, resid = qr.result()
    diag.update(n_rows=qr.nrows_total, rows_per_type=counts)
    if qr.nrows_total == 0:
        return out, diag
    b = z - R @ theta0  # ‖Aθ − y‖² = ‖Rθ − z‖² + resid²
    U, sv, Vt = np.linalg.svd(R)
    smax = sv[0] if len(sv) else 0.0
    if lam > 0:
        filt = sv / (sv**2 + lam)
    else:
        filt = np.where(sv > rcond * smax, 1.0 / np.where(sv > 0, sv, 1.0), 0.0)
    delta = Vt.T @ (filt * (U.T @ b))
    out.coef_ = theta0 + delta
    diag.update(change_norm=float(np.linalg.norm(delta)), added_loss_before=float(b @ b + resid**2),
                added_loss_after=float(np.sum((R @ delta - b) ** 2) + resid**2))
    return out, diag


# ---------------------------------------------------------------------------------------
# errors and report
# ---------------------------------------------------------------------------------------


#: the model kinds fitted by the linear least squares of :func:`fit_linear`
LINEAR_KINDS = ("ace", "directforce", "composite")


def linear_model(model_spec: ModelSpec, dim: int):
    """The unfitted linear model of ``model_spec`` in dimension ``dim`` (a kind outside
    :data:`LINEAR_KINDS` gets the linear ACE model of its basis)."""
    from genanalysis.models.io import model_class

    if model_spec.kind == "composite":
        from genanalysis.models.composite import CompositeModel

        return CompositeModel.of_terms(model_spec.terms, dim)
    return model_class(model_spec.kind if model_spec.kind in LINEAR_KINDS else "ace")(model_spec.ace_spec(dim))


def predicted_kinds(model, kinds: str) -> str:
    """The observation types of ``kinds`` that ``model`` predicts (a direct-force model: F
    and H only)."""
    return "".join(t for t in kinds if t in getattr(model, "observables", OBSERVATION_TYPES))


def predict(model, conf: Configuration, kinds: str) -> dict:
    """Model observations shaped like the data (E, F, V; H rows of
    :func:`~genanalysis.fitting.loss.hessian_rows`)."""
    ev = model.predict(conf.atoms)
    out = {"E": np.array(ev["energy"]), "F": ev["forces"], "V": ev["virial"]}
    if "H" in kinds:
        rows, _ = hessian_rows(conf, conf.atom_weights)
        out["H"] = model.hessian_rows(conf.atoms, rows)
    return out


def observation_errors(model, configs: list[Configuration]) -> dict:
    """Residuals per observation type and group: lists of model − reference, in the
    report's units: E eV/atom, F eV/Å (components), V eV/atom (components), H eV/Å²
    (entries; a perfect crystal's rows stand for all its rows by translation symmetry). The
    F and H rows of atoms whose own weight is 0 are not observations (the clamped shell of a
    cylinder training cell) and are left out, as the loss leaves them out."""
    res: dict[str, dict[str, list]] = {}
    for conf in configs:
        kinds = predicted_kinds(model, conf.observed)
        if not kinds:
            continue
        pred = predict(model, conf, kinds)
        n, dim = len(conf), atoms_dim(conf.atoms)
        pl = plane(dim)
        observed = observed_atoms(conf)
        g = res.setdefault(conf.group, {t: [] for t in OBSERVATION_TYPES})
        if "E" in kinds:
            g["E"].append(np.array([(pred["E"] - conf.energy) / n]))
        if "F" in kinds:
            g["F"].append((pred["F"] - conf.forces)[observed][:, pl].ravel())
        if "V" in kinds:
            g["V"].append(((pred["V"] - conf.virial)[np.ix_(pl, pl)] / n).ravel())
        if "H" in kinds:
            rows, _ = hessian_rows(conf, conf.atom_weights)
            cols = (3 * np.arange(n)[:, None] + pl[None, :]).reshape(-1)
            ridx = (3 * rows[:, None] + pl[None, :]).reshape(-1)
            ref = conf.hessian.tocsr()[ridx][:, cols].toarray()
            local = (3 * np.arange(len(rows))[:, None] + pl[None, :]).reshape(-1)
            keep = np.repeat(observed[rows], dim)
            g["H"].append((pred["H"][local][:, cols] - ref)[keep].ravel())
    return res


def _stats(chunks: list) -> dict | None:
    if not chunks:
        return None
    x = np.concatenate(chunks)
    return {"rmse": float(np.sqrt(np.mean(x**2))), "mae": float(np.mean(np.abs(x))), "count": int(x.size)}


def fit_report(model, configs: list[Configuration], train: list[int], validation: list[int]) -> dict:
    """RMSE / MAE / count per split, group (and ``all``) and observation type. Units: E
    and V eV/atom, F eV/Å, H eV/Å²."""
    out = {}
    for name, idx in (("train", train), ("validation", validation)):
        res = observation_errors(model, [configs[i] for i in idx])
        table = {}
        for g, per in res.items():
            table[g] = {t: s for t in OBSERVATION_TYPES if (s := _stats(per[t])) is not None}
        allg = {t: s for t in OBSERVATION_TYPES
                if (s := _stats([c for per in res.values() for c in per[t]])) is not None}
        if table:
            table["all"] = allg
        out[name] = table
    out["units"] = {"E": "eV/atom", "F": "eV/Å", "V": "eV/atom", "H": "eV/Å²"}
    return out


# ---------------------------------------------------------------------------------------
# entry points
# ---------------------------------------------------------------------------------------


def fit_mlp(configs, model_spec: ModelSpec, loss: LossWeights, *, seed: int = 0, validation=None, progress=None,
            rcond: float = 1e-12, on_rank_deficient: str = "warn"):
    """Train a :class:`~genanalysis.models.mlp.MLPACE` (Adam, then L-BFGS, early-stopped on
    the ``validation`` configurations) on the loss
    (:func:`genanalysis.fitting.network.train_network`). With ``model_spec.linear_skip``
    the linear model of the same invariants is first fitted to the same configurations
    and loss (:func:`fit_linear`, ``rcond``, ``on_rank_deficient``), and the network
    starts from it; the report's ``solver`` carries that fit's diagnostics as ``linear``."""
    from genanalysis.fitting.network import train_network

    linear, linear_diag = None, None
    if model_spec.linear_skip:
        from dataclasses import replace

        linear, linear_diag = fit_linear(configs, replace(model_spec, kind="ace", linear_skip=False), loss,
                                         rcond=rcond, on_rank_deficient=on_rank_deficient)
    model, diag = train_network(configs, model_spec, loss, seed=seed, dim=_dim(configs), validation=validation,
                                progress=progress, linear=linear)
    if linear_diag is not None:
        diag["linear"] = dict(linear_diag)
    return model, diag


def fit(configs: list[Configuration], spec: FitSpec, progress=None, *, partial_information: bool = False) -> FitResult:
    """Check the data, split, fit the model of ``spec`` and report training and
    validation errors. The report names the fit by ``fit_hash`` (:func:`fit_hash`: the spec's
    ``spec_hash`` and the data's ``training_set_hash``). ``partial_information``: as
    :func:`fit_linear` (linear models only)."""
    notes = check_data(configs, spec.loss)
    for note in notes:
        warnings.warn(note, FitWarning, stacklevel=2)
    if spec.model.kind == "directforce" and not any(
            spec.loss.weight(c.group, t) > 0 and t in c.observed for c in configs for t in "FH"):
        raise InputError("model.kind='directforce' fits forces (F) and force constants (H) only; give F or H a "
                         "positive loss weight and data carrying them")
    train, val = split(configs, spec.validation_fraction, spec.seed)
    tr = [configs[i] for i in train]
    try:
        check_data(tr, spec.loss)
    except InputError as exc:
        raise InputError(f"after holding out validation_fraction={spec.validation_fraction:g} "
                         f"(seed {spec.seed}) for validation: {exc}") from None
    t0 = time.perf_counter()
    if spec.model.kind in LINEAR_KINDS:
        model, diag = fit_linear(tr, spec.model, spec.loss, rcond=spec.rcond,
                                 on_rank_deficient=spec.on_rank_deficient, progress=progress,
                                 partial_information=partial_information)
    else:
        model, diag = fit_mlp(tr, spec.model, spec.loss, seed=spec.seed, validation=[configs[i] for i in val],
                              progress=progress, rcond=spec.rcond, on_rank_deficient=spec.on_rank_deficient)
    fit_seconds = time.perf_counter() - t0
    report = fit_report(model, configs, train, val)
    data_hash = configurations_hash(configs)
    report.update(
        spec_hash=spec.content_hash(), training_set_hash=data_hash, fit_hash=_identity(spec, data_hash),
        model_kind=spec.model.kind, n_params=int(model.n_params),
        n_train=len(train), n_validation=len(val), solver=diag, fit_seconds=fit_seconds, notes=notes,
    )
    missing = [t for t in OBSERVATION_TYPES if t not in predicted_kinds(model, OBSERVATION_TYPES)]
    if missing:
        from genanalysis.models.directforce import NO_ENERGY

        report["not_available"] = {t: NO_ENERGY for t in missing}
    return FitResult(model=model, spec=spec, train=train, validation=val, report=report)


def _identity(spec: FitSpec, data_hash: str) -> str:
    both = {"spec": spec.content_hash(), "training_set": data_hash}
    return sha256_json(both)[:16]


def fit_hash(spec: FitSpec, configs: list[Configuration]) -> str:
    """The fit's identity (16 hex digits): the hash of (``spec.content_hash()``, the
    training set's :func:`~genanalysis.data.configurations_hash`). Equal hashes, equal fits;
    a change of the data, the spatial weights or any other spec value changes it."""
    return _identity(spec, configurations_hash(configs))
