"""The identifiability width: what the training data leave undetermined (docs/theory.md
(T18); docs/models.md §9).

A Bayesian linear regression of the linear model's coefficients θ (eV) on the weighted,
noise-free training rows ``A θ = y`` (the design of :func:`genanalysis.fit.fit_linear`)
with a Gaussian prior ``θ ~ N(0, Λ⁻¹)``. With the fit's R factor (``RᵀR = AᵀWA``) and the
prior standard deviations ``D = Λ^{-1/2}``, write ``R D = U diag(s) Vᵀ``; the posterior
covariance of θ is

    Σ_N = D V diag(1 / (1 + s²/σ²)) Vᵀ D            (noise σ > 0, units of the weighted rows)
    Σ_N = D V₀ V₀ᵀ D                                 (σ → 0: exact data)

with V₀ the right singular vectors of the directions the data do not see (s ≤ rcond·s_max).
It is returned as a factor S (``Σ_N = S Sᵀ``, eV). With ``G = ∂f_θ(ū_M)/∂θ`` the force
design at the test domain's reference equilibrium (eV/Å per eV) and H the reference
Hessian at ū_M (eV/Å²), a coefficient perturbation δθ moves the equilibrium by
``δū = H⁻¹ G δθ`` (Å), and the width is the posterior spread of ū^ML in the energy norm:

    s_N² = E‖D δū‖² = tr(G Σ_N Gᵀ H⁻¹ L H⁻¹) = tr(Sᵀ Gᵀ H⁻¹ L H⁻¹ G S)      (Å², (T18))

(L the energy norm's Riesz matrix, :mod:`genanalysis.norms`). It is estimated by
Hutchinson's estimator — ``zᵀ K z`` for Rademacher z ∈ {±1}^k, one preconditioned CG solve
with H per probe (the solver's own preconditioners, :mod:`genanalysis.relaxation`) — with the
standard error of the mean over probes, or computed exactly (``method="dense"``: the
pseudo-inverse of the dense Hessian, translations removed; small cells only). The width has
no floor: it is zero when the data determine every coefficient the test domain's forces
depend on, whatever the model's misfit.

Also propagated, to first order, through the same posterior: the formation energy
``E_f = E(ū_M) − n·e_lattice`` (at fixed geometry: the geometry term is of the order of
the residual force times δū and is left out), and the dipole tensor ``P = V(ū_M) − V_perfect``
(eV; virials of the defect and perfect M-cells): ``δP = ∂_θP δθ + ∂_uV[δū]``, the second
term by central differences of the reference virial along δū. Their spreads are
``sqrt(E|δE_f|²)`` (eV, exact) and ``sqrt(E‖δP‖_F²)`` (eV, over the same probes or exact).

Priors (:func:`prior_precision`): precision ``(deg_k)^{2q} / scale²`` growing with the total
polynomial degree deg_k of feature k (``genanalysis.models.basis``: radial n + 1 plus
``w_l·l`` per factor); ``q = 1`` and ``q = 2`` are the two reported (:data:`PRIORS`). The
constant one-body coefficient has degree 0 and precision 1/scale²; it moves no force.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass

import numpy as np

from genanalysis.exceptions import InputError
from genanalysis.potentials import load_potential

__all__ = ["PRIORS", "Identifiability", "feature_degrees", "prior_precision", "posterior_factor",
           "identifiability_width", "model_designs", "width_for_priors", "experiment_metrics",
           "fisher_information", "information_given_others"]

#: the two reported priors: name -> power q of the degree in the precision (deg^{2q})
PRIORS = {"degree_q1": 1.0, "degree_q2": 2.0}
METHODS = ("hutchinson", "dense")

_FEATURE = re.compile(r"^(?P<order>[234])b n=(?P<n>[0-9,]+)(?: l=(?P<l>[0-9,]+))?$")
_EMBEDDING = re.compile(r"^t\^(?P<m>[0-9]+)$")


def feature_degrees(model) -> np.ndarray:
    """Total polynomial degree of every coefficient of a linear model (0 for the one-body
    constant): per factor of a feature, radial index n + 1 plus ``w_l·l`` (dimensionless);
    a composite model's features by their own term's ``w_l``, an embedding power t^m as m."""
    spec = model.spec
    terms = {t.name: float(t.w_l) for t in getattr(spec, "terms", ())}
    out = [0.0]
    for full in model.feature_names[1:]:
        term, _, name = full.rpartition(":")  # a composite model's "<term>:<feature>"
        w = terms[term] if term else float(getattr(spec, "w_l", 1.0))
        e = _EMBEDDING.match(name)
        if e is not None:  # an embedding power t^m: degree m
            out.append(float(e["m"]))
            continue
        m = _FEATURE.match(name)
        if m is None:
            raise ValueError(f"feature name {name!r} does not state its radial and angular indices")
        ns = [int(v) for v in m["n"].split(",")]
        if m["l"] is None:
            ls = [0] * len(ns)
        else:
            ls = [int(v) for v in m["l"].split(",")]
            ls = ls * len(ns) if len(ls) == 1 else ls  # 3-body: one l shared by both factors
        out.append(float(sum(n + 1 + w * lam for n, lam in zip(ns, ls))))
    return np.array(out)


def prior_precision(model, *, power: float = 1.0, scale: float = 1.0) -> np.ndarray:
    """Diagonal prior precision ``max(deg_k, 1)^{2·power} / scale²`` (1/eV²) of the coefficients.

    ``scale`` (eV, > 0) is the prior standard deviation of a degree-1 coefficient; ``power``
    (≥ 0) how fast the prior narrows with the degree (0: the same prior for every feature).
    """
    if not (math.isfinite(power) and power >= 0):
        raise InputError(f"prior power={power!r} must be a finite number ≥ 0")
    if not (math.isfinite(scale) and scale > 0):
        raise InputError(f"prior scale={scale!r} eV must be a positive finite number")
    deg = np.maximum(feature_degrees(model), 1.0)
    return deg ** (2.0 * power) / scale**2


def posterior_factor(r_factor: np.ndarray, precision: np.ndarray, *, noise: float = 0.0,
                     rcond: float = 1e-10) -> np.ndarray:
    """S (p × k, eV) with ``Σ_N = S Sᵀ`` the posterior covariance of the coefficients (module
    docstring). ``r_factor`` (p × p): the R factor of the weighted design (``RᵀR = AᵀWA``, e.g.
    ``model.r_factor_`` after :func:`genanalysis.fit.fit_linear`); ``precision`` (p,) the
    diagonal prior precision (1/eV²); ``noise`` σ ≥ 0 in the units of the weighted rows
    (0: exact data, directions with s ≤ ``rcond``·s_max count as unseen)."""
    r = np.asarray(r_factor, dtype=np.float64)
    lam = np.asarray(precision, dtype=np.float64)
    if r.ndim != 2 or r.shape[1] != lam.shape[0] or lam.ndim != 1:
        raise InputError(f"r_factor of shape {r.shape} and precision of shape {lam.shape} do not match (p × p, p)")
    if not np.all(np.isfinite(lam) & (lam > 0)):
        raise InputError("prior precision must be positive and finite for every coefficient")
    if not (math.isfinite(noise) and noise >= 0):
        raise InputError(f"noise={noise!r} must be a finite number ≥ 0 (units of the weighted rows)")
    if not 0 < rcond < 1:
        raise InputError(f"rcond={rcond!r} must lie in (0, 1)")
    d = 1.0 / np.sqrt(lam)
    p = lam.shape[0]
    if not np.any(r):
        return np.diag(d)
    _, s, vt = np.linalg.svd(r * d[None, :])
    s = np.concatenate([s, np.zeros(p - len(s))])
    if len(vt) < p:  # fewer rows than columns cannot happen for a square R, kept for safety
        raise AssertionError("the R factor must be p × p")
    if noise > 0:
        keep = 1.0 / np.sqrt(1.0 + (s / noise) ** 2)
        return (d[:, None] * vt.T) * keep[None, :]
    unseen = s <= rcond * s[0]
    return d[:, None] * vt[unseen].T


@dataclass(frozen=True)
class Identifiability:
    """The width and the propagated spreads for one prior (units in the field names' docs).

    ``width`` s_N (Å) and its standard error ``width_stderr`` (Å; 0 for the dense method);
    ``trace`` s_N² (Å²) and ``trace_stderr``; ``unseen`` the number of posterior directions
    (columns of S); ``formation_energy_spread`` (eV, exact); ``dipole_spread`` (eV, Frobenius)
    with ``dipole_spread_stderr``; ``dipole_fixed_geometry_spread`` (eV, exact, the ∂_θP part
    only); ``method``, ``probes``, ``prior``, ``noise``, ``cg_iterations`` (total)."""

    width: float
    width_stderr: float
    trace: float
    trace_stderr: float
    unseen: int
    n_params: int
    formation_energy_spread: float | None
    dipole_spread: float | None
    dipole_spread_stderr: float | None
    dipole_fixed_geometry_spread: float | None
    method: str
    probes: int
    prior: str
    noise: float
    cg_iterations: int

    def as_dict(self) -> dict:
        return asdict(self)


def _hessian_solver(atoms, potential, dim: int, rtol: float, maxiter: int):
    """x ↦ H⁻¹ x for net-force-free fields (n, dim) at ``atoms``, by preconditioned CG."""
    from genanalysis.relaxation import auto_preconditioner, preconditioned_cg

    pot = load_potential(potential)
    op = pot.linearise(atoms)
    n = len(atoms)
    counter = {"cg": 0}

    def hop(v):
        full = np.zeros((n, 3))
        full[:, :dim] = v
        return np.asarray(op @ full.ravel()).reshape(n, 3)[:, :dim]

    precond = auto_preconditioner(atoms, pot, hop, dim)  # the solver's own choice

    def solve(b):
        b = b - b.mean(axis=0)
        if not np.any(b):
            return np.zeros_like(b)
        x, its, flag = preconditioned_cg(hop, b, precond, rtol, maxiter)
        counter["cg"] += its
        if flag != "ok":
            raise FloatingPointError(f"CG on the Hessian at ū_M: {flag} after {its} iterations")
        return x - x.mean(axis=0)

    return solve, counter


def _dense_hessian_pinv(atoms, potential, dim: int) -> np.ndarray:
    pot = load_potential(potential)
    n = len(atoms)
    idx = (3 * np.arange(n)[:, None] + np.arange(dim)[None, :]).reshape(-1)
    h = pot.hessian(atoms).tocsr()[idx][:, idx].toarray()
    h = 0.5 * (h + h.T)
    t = np.kron(np.ones((n, 1)), np.eye(dim)) / math.sqrt(n)  # translations
    proj = np.eye(n * dim) - t @ t.T
    return proj @ np.linalg.pinv(proj @ h @ proj, hermitian=True, rcond=1e-10) @ proj


def identifiability_width(model, r_factor, atoms, potential, *, reference_cell, precision, perfect=None,
                          r_stencil: float | None = None, method: str = "hutchinson", probes: int = 20,
                          seed: int = 0, noise: float = 0.0, rcond: float = 1e-10, rtol: float = 1e-8,
                          maxiter: int = 2000, dipole: bool = True, fd_step: float = 1e-4,
                          prior: str = "custom", designs: tuple | None = None) -> Identifiability:
    """The width s_N and the spreads of E_f and P (module docstring) for one prior.

    ``model``: the fitted linear model (its class gives G; coefficients are not used);
    ``r_factor``: R of its weighted design (``model.r_factor_``); ``atoms``: the test domain
    at the reference equilibrium ū_M; ``potential``: the reference (its Hessian and virial at
    ū_M); ``reference_cell``: the unrelaxed test domain (the norms' stencil); ``precision``
    (p,) the prior precision (1/eV², :func:`prior_precision`); ``perfect``: the perfect
    M-cell for E_f and P (default: built from ``reference_cell.info``; None-able only then);
    ``r_stencil`` (Å, default nearest-neighbour shell); ``method`` ``"hutchinson"`` (``probes``
    Rademacher probes, seeded) or ``"dense"`` (exact, dense pseudo-inverse: small cells);
    ``noise``/``rcond`` as :func:`posterior_factor`; ``rtol``/``maxiter`` of each CG solve;
    ``dipole=False`` skips P; ``fd_step`` (Å) the central-difference step of ∂_uV along δū
    (scaled to the largest displacement of δū); ``designs``: the model class's designs
    (:func:`model_designs`) at ``atoms`` and ``perfect``, computed here when not given (they
    depend on the basis and the geometry only, not on the fit, so several fits, priors and
    noise levels on one test domain can share them).
    """
    from genanalysis.norms import energy_norm, stencil, stencil_radius

    if method not in METHODS:
        raise InputError(f"method={method!r}; choose one of {', '.join(METHODS)}")
    if isinstance(probes, bool) or int(probes) != probes or probes < 2:
        raise InputError(f"probes={probes!r} must be a whole number ≥ 2 (the standard error needs two)")
    if not (math.isfinite(fd_step) and fd_step > 0):
        raise InputError(f"fd_step={fd_step!r} Å must be positive")
    probes = int(probes)
    info = reference_cell.info
    dim = int(info.get("dim", 3))
    if len(atoms) != len(reference_cell):
        raise InputError(f"atoms has {len(atoms)} atoms but reference_cell {len(reference_cell)}; "
                         "they must be the same test domain")
    if r_stencil is None:
        r_stencil = stencil_radius(info["lattice"], float(info["a"]))
    st = stencil(reference_cell, float(r_stencil))
    S = posterior_factor(r_factor, precision, noise=noise, rcond=rcond)
    p, k = S.shape
    if p != model.n_params:
        raise InputError(f"r_factor has {p} columns but the model has {model.n_params} coefficients")
    n = len(atoms)
    if designs is None:
        designs = model_designs(model, atoms, perfect, reference_cell=reference_cell, dipole=dipole)
    design, pdes, perfect = designs
    if dipole and ("V" not in design or "V" not in pdes):
        raise InputError("designs were computed with dipole=False; the dipole spread needs their virial rows")
    G = design["F"][:, :dim, :].reshape(n * dim, p)  # eV/Å per eV
    GS = G @ S  # (n·dim, k): forces of the posterior directions
    g_ef = design["E"] - len(atoms) / len(perfect) * pdes["E"]  # ∂E_f/∂θ, fixed geometry
    ef_spread = float(np.linalg.norm(g_ef @ S))
    dP0 = None
    if dipole:
        dP0 = (design["V"][:dim, :dim, :] - pdes["V"][:dim, :dim, :]).reshape(dim * dim, p) @ S  # (d², k)

    pot = load_potential(potential)

    def dvirial(w):
        """∂_u V[w] (eV per unit of w) by central differences of the reference virial."""
        amp = float(np.abs(w).max())
        if amp == 0.0:
            return np.zeros(dim * dim)
        h = fd_step / amp
        out = []
        for sgn in (1.0, -1.0):
            at = atoms.copy()
            at.positions[:, :dim] += sgn * h * w
            out.append(np.asarray(pot.observe(at).virial)[:dim, :dim].reshape(-1))
        return (out[0] - out[1]) / (2.0 * h)

    cg = 0
    if k == 0:
        return Identifiability(0.0, 0.0, 0.0, 0.0, 0, p, ef_spread, 0.0 if dipole else None, 0.0 if dipole else None,
                               0.0 if dipole else None, method, 0 if method == "dense" else probes, prior,
                               float(noise), 0)
    if method == "dense":
        hp = _dense_hessian_pinv(atoms, potential, dim)
        W = hp @ GS  # (n·dim, k): δū of each posterior direction, Å per unit
        trace = float(sum(energy_norm(W[:, j].reshape(n, dim), st) ** 2 for j in range(k)))
        trace_se = 0.0
        dp = dp_se = None
        if dipole:
            J = dP0 + np.column_stack([dvirial(W[:, j].reshape(n, dim)) for j in range(k)])
            dp, dp_se = float(np.linalg.norm(J)), 0.0
        used = 0
    else:
        solve, counter = _hessian_solver(atoms, potential, dim, rtol, maxiter)
        rng = np.random.default_rng(seed)
        samples, psamples = [], []
        for _ in range(probes):
            z = rng.choice((-1.0, 1.0), size=k)
            w = solve((GS @ z).reshape(n, dim))
            samples.append(energy_norm(w, st) ** 2)
            if dipole:
                psamples.append(float(np.sum((dP0 @ z + dvirial(w)) ** 2)))
        samples = np.array(samples)
        trace, trace_se = float(samples.mean()), float(samples.std(ddof=1) / math.sqrt(probes))
        dp = dp_se = None
        if dipole:
            ps = np.array(psamples)
            m2, se2 = float(ps.mean()), float(ps.std(ddof=1) / math.sqrt(probes))
            dp = math.sqrt(m2)
            dp_se = se2 / (2.0 * dp) if dp > 0 else 0.0
        cg = counter["cg"]
        used = probes
    width = math.sqrt(max(trace, 0.0))
    width_se = trace_se / (2.0 * width) if width > 0 else 0.0
    return Identifiability(width, width_se, trace, trace_se, k, p, ef_spread, dp, dp_se,
                           None if dP0 is None else float(np.linalg.norm(dP0)), method, used, prior,
                           float(noise), int(cg))


def model_designs(model, atoms, perfect=None, *, reference_cell=None, dipole: bool = True) -> tuple:
    """(design at ``atoms``, design at ``perfect``, ``perfect``): the linear model class's
    rows that :func:`identifiability_width` needs — forces (and virials with ``dipole``) at
    the test domain's reference equilibrium, energies (and virials) of the perfect M-cell
    (``perfect``; None: the perfect cell of ``reference_cell``'s lattice, a and n).
    They depend on the basis and the geometry only, not on the coefficients."""
    if perfect is None:
        from genanalysis.lattice import perfect_cell

        info = reference_cell.info
        perfect = perfect_cell(info["lattice"], float(info["a"]), int(info["n"]), atoms.get_chemical_symbols()[0])
    return model.design(atoms, "EFV" if dipole else "EF"), model.design(perfect, "EV" if dipole else "E"), perfect


def width_for_priors(model, r_factor, atoms, potential, *, reference_cell, priors=None, scale: float = 1.0,
                     **kw) -> dict[str, Identifiability]:
    """:func:`identifiability_width` for each named prior of ``priors`` (default :data:`PRIORS`:
    name -> power q of the degree), all with the same prior ``scale`` (eV) and options; the
    model's designs at ū_M are computed once for all of them (``designs=`` to pass them in)."""
    priors = PRIORS if priors is None else priors
    if kw.get("designs") is None:
        kw["designs"] = model_designs(model, atoms, kw.pop("perfect", None), reference_cell=reference_cell,
                                      dipole=kw.get("dipole", True))
    return {name: identifiability_width(model, r_factor, atoms, potential, reference_cell=reference_cell,
                                        precision=prior_precision(model, power=q, scale=scale), prior=name, **kw)
            for name, q in priors.items()}


def experiment_metrics(model, result, reference, *, r_factor=None, priors=None, scale: float = 1.0,
                       **kw) -> dict:
    """Flat metrics of the width for an :class:`~genanalysis.experiment.ExperimentResult`
    ``result`` of ``model`` (a fitted linear model) against ``reference``:
    ``identifiability_width_<prior>`` (Å) with ``…_stderr``, ``identifiability_unseen_<prior>``,
    ``formation_energy_spread_<prior>`` (eV) and ``dipole_spread_<prior>`` (eV) for each
    prior of ``priors`` (default :data:`PRIORS`). ``r_factor`` defaults to the model's own
    ``r_factor_`` (set by :func:`genanalysis.fit.fit_linear`); ``kw`` as
    :func:`identifiability_width`. The stencil is the result's, on the unrelaxed test domain."""
    from genanalysis.lattice import defect_cell

    r = getattr(model, "r_factor_", None) if r_factor is None else r_factor
    if r is None:
        raise InputError("the identifiability width needs the fit's R factor: a linear model fitted in this "
                         "process (model.r_factor_) or r_factor=")
    if result.reference_atoms is None:
        raise InputError("the experiment result holds no reference equilibrium ū_M")
    cell0 = defect_cell(result.lattice, result.a, result.size, result.defect,
                        result.reference_atoms.get_chemical_symbols()[0])
    out = {}
    for name, res in width_for_priors(model, r, result.reference_atoms, reference, reference_cell=cell0,
                                      priors=priors, scale=scale, r_stencil=result.r_stencil, **kw).items():
        out[f"identifiability_width_{name}"] = res.width
        out[f"identifiability_width_stderr_{name}"] = res.width_stderr
        out[f"identifiability_unseen_{name}"] = res.unseen
        out[f"formation_energy_spread_{name}"] = res.formation_energy_spread
        if res.dipole_spread is not None:
            out[f"dipole_spread_{name}"] = res.dipole_spread
            out[f"dipole_spread_stderr_{name}"] = res.dipole_spread_stderr
    return out


def _spectrum(r: np.ndarray, ks) -> dict:
    """Eigenvalues of ``RᵀR`` (descending, from the singular values of R: s², not an
    eigensolve of the squared matrix), trace, condition and the count within 1e-k of the largest."""
    ev = np.linalg.svd(r, compute_uv=False) ** 2 if r.size else np.zeros(0)
    top = float(ev[0]) if len(ev) else 0.0
    return {"eigenvalues": ev.tolist(), "trace": float(np.sum(r * r)),
            "condition": float(top / ev[-1]) if len(ev) and ev[-1] > 0 else None,
            "within": {f"1e-{k}": int(np.sum(ev >= top * 10.0**-k)) if top > 0 else 0 for k in ks}}


def information_given_others(r: np.ndarray, cols) -> tuple[float, float]:
    """(trace, smallest eigenvalue) of the information on the coefficients ``cols`` given
    all others — the Schur complement ``I_gg − I_go I_oo⁺ I_og`` of ``I = RᵀR`` (1/eV²),
    from the QR of R with those columns last: what the data say about them that no other
    coefficient can take up (0: they are redundant or unobserved)."""
    r = np.asarray(r, dtype=np.float64)
    g = np.asarray(cols, dtype=np.int64)
    if len(g) == 0:
        return 0.0, 0.0
    rest = np.setdiff1d(np.arange(r.shape[1]), g)
    tail = np.linalg.qr(r[:, np.concatenate([rest, g])], mode="r")[len(rest):, len(rest):]
    sch = np.linalg.svd(tail, compute_uv=False) ** 2 if tail.size else np.zeros(len(g))
    sch = np.concatenate([sch, np.zeros(len(g) - len(sch))])
    return float(np.sum(tail * tail)), float(sch.min())


def fisher_information(model, *, r_factor=None, partial=None, ks=range(1, 17)) -> dict:
    """The Fisher information ``I = JᵀWJ = RᵀR`` (1/eV²; J the design of the weighted rows,
    coefficients θ in eV, unit noise on the weighted rows) of a linear fit and its parts, as
    JSON-able data (docs/models.md §9).

    ``total``: the eigen-spectrum of I (descending; ``condition`` λ_max/λ_min, None when
    singular; ``within[1e-k]``: how many eigenvalues are ≥ 10⁻ᵏ·λ_max) and that of the
    unit-diagonal information (``scaled``: D⁻¹ I D⁻¹, D² = diag I, zero columns left out).
    ``per_term``: per body order and per total degree (:func:`feature_degrees`) — for a
    composite model per term (its ``information_groups``) — the block
    I_gg (trace, its spectrum) and the information given the other coefficients (the Schur
    complement ``I_gg − I_go I_oo⁺ I_og``, from the QR of R with g's columns last: its trace
    and smallest eigenvalue). ``uninformed_features``: zero columns of J. ``per_type``,
    ``per_group``, ``per_cell_size``: the partial informations ``J_tᵀW_tJ_t`` of those rows
    (trace, share of the total trace, rows, spectrum), which sum to I; ``parts_deviation`` is
    ‖Σ parts − I‖_F/‖I‖_F. ``r_factor`` / ``partial`` default to the model's ``r_factor_`` /
    ``partial_r_factors_`` (:func:`genanalysis.fit.fit_linear` with ``partial_information``)."""
    r = getattr(model, "r_factor_", None) if r_factor is None else r_factor
    if r is None:
        raise InputError("the Fisher information needs the fit's R factor: a linear model fitted in this "
                         "process (model.r_factor_) or r_factor=")
    r = np.asarray(r, dtype=np.float64)
    partial = getattr(model, "partial_r_factors_", None) if partial is None else partial
    names = list(model.feature_names)
    p = len(names)
    if r.shape != (p, p):
        raise InputError(f"r_factor of shape {r.shape} does not match the model's {p} coefficients (p × p)")
    ks = list(ks)
    info = r.T @ r
    col = np.linalg.norm(r, axis=0)
    live = col > 0
    out = {"units": "1/eV^2 (coefficients in eV; unit noise on the weighted rows)", "n_params": p,
           "total": _spectrum(r, ks), "scaled": _spectrum(r[:, live] / col[live], ks),
           "uninformed_features": [names[k] for k in np.flatnonzero(~live)]}
    groups = getattr(model, "information_groups", None)
    if groups is not None:  # a composite model: one block per term
        blocks = [(label, np.isin(np.arange(p), cols)) for label, cols in groups().items()]
    else:
        order = np.array([n.split(" ")[0] for n in names])
        degree = feature_degrees(model)
        blocks = [(f"body order {o}", order == o) for o in dict.fromkeys(order)] + \
            [(f"degree {d:g}", degree == d) for d in sorted(set(degree.tolist()))]
    terms = {}
    for label, key in blocks:
        g = np.flatnonzero(key)
        trace, smallest = information_given_others(r, g)
        terms[label] = dict(_spectrum(r[:, g], ks), n_params=int(len(g)), features=[names[k] for k in g],
                            given_others_trace=trace, given_others_smallest=smallest)
    out["per_term"] = terms
    if partial:
        total = float(np.trace(info))
        summed = np.zeros_like(info)
        for field, pos in (("per_type", 0), ("per_group", 1), ("per_cell_size", 2)):
            acc: dict = {}
            for key, (rp, nrows) in partial.items():
                m, n = acc.get(str(key[pos]), (0.0, 0))
                acc[str(key[pos])] = (m + np.asarray(rp).T @ np.asarray(rp), n + int(nrows))
            out[field] = {}
            for k, (m, n) in acc.items():
                ev = np.clip(np.linalg.eigvalsh(m)[::-1], 0.0, None)
                out[field][k] = {"trace": float(np.trace(m)), "share": float(np.trace(m) / total) if total else 0.0,
                                 "rows": n, "eigenvalues": ev.tolist()}
                if pos == 0:
                    summed += m
        norm = float(np.linalg.norm(info))
        out["parts_deviation"] = float(np.linalg.norm(summed - info) / norm) if norm else 0.0
    return out
