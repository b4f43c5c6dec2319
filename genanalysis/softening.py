"""Softening diagnostics of a model against the reference (docs/softening.md).

A model is *softened* when its potential-energy surface is flatter than the reference's: its
forces, force constants and formation energies come out systematically too small. The
diagnostics measure it by the numbers a softened model gets wrong in the same direction:

* the **force-parity slope**: the least-squares slope through the origin of the model's
  force components against the reference's, ``s = Σ f^ML·f / Σ f·f``, with its standard
  error ``σ/√(Σ f·f)``, σ² = Σ(f^ML − s f)²/(n − 1) (n components, treated as independent,
  so the error is nominal), on cells rattled about a minimum (the perfect lattice, the
  reference's defect equilibrium ū) by Gaussian displacements of standard deviation A (Å,
  per in-plane component) — a profile in A and in the energy above the minimum;
* the **energy ratio** of the rattled cells: the model's mean energy above the unrattled
  cell over the reference's (each potential's own energy of the unrattled cell);
* the **phonon-frequency ratio** of the perfect lattice: ω^ML/ω per mode, modes sorted
  per wave vector of the cell's Bloch symbol (:mod:`genanalysis.bloch`; ω ∝ √λ, λ the
  eigenvalues of Ĉ(k), so the ratio needs no mass), the acoustic modes at k = 0 left out;
  summarised by the least-squares slope of ω^ML against ω, the smallest and largest ratio
  and the number of imaginary model modes;
* the **elastic-constant ratio**: the least-squares slope of the model's Voigt constants
  against the reference's (perfect lattice, clamped ions);
* the **formation-energy ratio** E_f^ML/E_f, each potential at its own equilibrium.

A model against itself gives 1 for every ratio and slope; the uniformly scaled model sV
(surrogate family ``scaled``) gives s for the parity slope, the energy ratio and the
elastic and formation-energy ratios, and √s for the phonon-frequency ratio.

:func:`diagnostics` composes them for ``genanalysis softening``; the generalisation
experiment (:func:`genanalysis.experiment.evaluate`) reports the same metrics from its own
relaxations and perfect-lattice Hessians.

Units: Å, eV, eV/Å, eV/Å²; ratios, slopes and standard errors dimensionless; energies
above the minimum eV/atom.
"""

from __future__ import annotations

import math
import time

import numpy as np

from genanalysis import bloch
from genanalysis.constraints import DEFAULT_FMAX, DEFAULT_MAX_ITER
from genanalysis.exceptions import InputError, NonFiniteError, NumericalFailure, check_number
from genanalysis.lattice import atoms_dim

__all__ = ["DEFAULT_AMPLITUDES", "UNITS", "parity_slope", "rattle", "parity_profile", "phonon_frequency_ratios",
           "ratio_slope", "elastic_constant_ratio", "formation_energy_ratio", "check_amplitudes", "diagnostics"]

#: rattle amplitudes (Å, standard deviation per component) of the parity profile
DEFAULT_AMPLITUDES = (0.01, 0.03, 0.1, 0.3)

#: largest admissible rattle amplitude (Å)
MAX_AMPLITUDE = 1.0

#: units of the metrics (those of a profile row under ``parity_profile.``)
UNITS = {
    "parity_slope_perfect": "1",
    "parity_slope_perfect_stderr": "1",
    "parity_slope_defect": "1",
    "parity_slope_defect_stderr": "1",
    "parity_amplitude": "Å",
    "energy_ratio_perfect": "1",
    "energy_ratio_defect": "1",
    "phonon_frequency_ratio": "1",
    "phonon_frequency_ratio_min": "1",
    "phonon_frequency_ratio_max": "1",
    "phonon_imaginary_modes": "1",
    "elastic_constant_ratio": "1",
    "formation_energy_ratio": "1",
    "parity_profile.amplitude": "Å",
    "parity_profile.slope": "1",
    "parity_profile.stderr": "1",
    "parity_profile.energy_above_minimum_reference": "eV/atom",
    "parity_profile.energy_above_minimum_model": "eV/atom",
    "parity_profile.energy_ratio": "1",
}


def parity_slope(model_forces, reference_forces) -> tuple[float | None, float | None]:
    """(slope, standard error) of the least-squares line through the origin of the model's
    force components against the reference's (any equal shapes, eV/Å). None for both when
    the reference forces vanish or a model force is not finite."""
    f = np.asarray(model_forces, float).ravel()
    g = np.asarray(reference_forces, float).ravel()
    if f.shape != g.shape:
        raise ValueError(f"model forces {f.shape} and reference forces {g.shape} differ in shape")
    gg = float(g @ g)
    if not (gg > 0 and np.all(np.isfinite(f))):
        return None, None
    s = float(f @ g) / gg
    r = f - s * g
    dof = max(len(g) - 1, 1)
    return s, math.sqrt(float(r @ r) / dof / gg)


def rattle(atoms, amplitude: float, rng: np.random.Generator):
    """A copy of ``atoms`` with Gaussian displacements of standard deviation ``amplitude``
    (Å) on every in-plane component (all three in 3D), no calculator attached."""
    out = atoms.copy()
    out.calc = None
    dim = atoms_dim(atoms)
    du = np.zeros((len(out), 3))
    du[:, :dim] = amplitude * rng.standard_normal((len(out), dim))
    out.positions = out.positions + du
    return out


def check_amplitudes(amplitudes, where: str = "amplitudes") -> tuple[float, ...]:
    """The rattle amplitudes as a tuple of numbers in (0, MAX_AMPLITUDE] Å (InputError
    naming the value otherwise)."""
    if isinstance(amplitudes, (str, bytes)) or not hasattr(amplitudes, "__iter__"):
        raise InputError(f"{where}={amplitudes!r} must be a list of rattle amplitudes in Å")
    return tuple(check_number(a, f"{where}[{i}]", unit="Å", strict=True, maximum=MAX_AMPLITUDE)
                 for i, a in enumerate(amplitudes))


def parity_profile(model, reference, minima: dict, amplitudes=DEFAULT_AMPLITUDES, *, samples: int = 1,
                   seed: int = 0) -> list[dict]:
    """The force-parity slope of ``model`` against ``reference`` (Potentials) on cells
    rattled about each minimum of ``minima`` (name → Atoms: e.g. the perfect cell, the
    reference's relaxed defect cell), ``samples`` rattles per amplitude (Å).

    One row per (cell, amplitude): ``cell``, ``amplitude`` (Å), ``samples``, ``slope``,
    ``stderr`` (:func:`parity_slope` over the pooled components of the samples),
    ``energy_above_minimum_reference`` and ``_model`` (eV/atom, mean over the samples, each
    potential above its own energy of the unrattled cell) and ``energy_ratio`` (model over
    reference). Rattles are reproducible: sample k of amplitude j of cell i draws from the
    generator seeded with (seed, i, j, k). A model whose forces or energies are not finite
    on a rattle gives None for that row (a result, not an error)."""
    amplitudes = check_amplitudes(amplitudes)
    if isinstance(samples, bool) or int(samples) != samples or samples < 1:
        raise InputError(f"samples={samples!r} must be a whole number ≥ 1")
    rows = []
    for i, (name, atoms) in enumerate(minima.items()):
        dim = atoms_dim(atoms)
        n = len(atoms)
        e0_ref, e0_ml = reference.observe(atoms).energy, model.observe(atoms).energy
        for j, amp in enumerate(amplitudes):
            fm, fr, de_ref, de_ml = [], [], [], []
            for k in range(int(samples)):
                cell = rattle(atoms, amp, np.random.default_rng((seed, i, j, k)))
                ev_r, ev_m = reference.observe(cell), model.observe(cell)
                fr.append(np.asarray(ev_r.forces, float)[:, :dim])
                fm.append(np.asarray(ev_m.forces, float)[:, :dim])
                de_ref.append((ev_r.energy - e0_ref) / n)
                de_ml.append((ev_m.energy - e0_ml) / n)
            with np.errstate(invalid="ignore", over="ignore"):
                slope, err = parity_slope(np.concatenate(fm), np.concatenate(fr))
            er, em = float(np.mean(de_ref)), float(np.mean(de_ml))
            rows.append({"cell": name, "amplitude": float(amp), "samples": int(samples), "slope": slope,
                         "stderr": err, "energy_above_minimum_reference": er,
                         "energy_above_minimum_model": em if math.isfinite(em) else None,
                         "energy_ratio": em / er if er > 0 and math.isfinite(em) else None})
    return rows


def ratio_slope(model_values, reference_values) -> float | None:
    """Least-squares slope through the origin of ``model_values`` against
    ``reference_values`` (the summary of a ratio over many quantities; None if the
    reference values vanish or a model value is not finite)."""
    return parity_slope(model_values, reference_values)[0]


def phonon_frequency_ratios(c_model: np.ndarray, c_reference: np.ndarray, *, rtol: float = 1e-8) -> dict:
    """Model against reference phonon frequencies of the perfect lattice from the block rows
    C(R) (grid..., m, m), eV/Å², of the two Hessians (:func:`genanalysis.bloch.hessian_block_row`).

    Per wave vector k the eigenvalues λ of each symbol Ĉ(k) are sorted and paired; ω = √λ
    (the mass cancels in a ratio); modes whose reference λ ≤ ``rtol``·max λ (the acoustic
    modes at k = 0) are left out. Returns ``phonon_frequency_ratio`` (least-squares slope of
    ω^ML against ω, a model mode with λ < 0 counted as −√|λ|), ``phonon_frequency_ratio_min``
    and ``_max`` (over the modes the model has real), ``phonon_imaginary_modes`` (model
    modes with λ < 0 among those compared) and ``phonon_modes`` (modes compared)."""
    lam_m = np.linalg.eigvalsh(bloch.symbol(c_model)).ravel()
    lam_r = np.linalg.eigvalsh(bloch.symbol(c_reference)).ravel()
    keep = lam_r > rtol * float(np.abs(lam_r).max())
    w_r = np.sqrt(lam_r[keep])
    lm = lam_m[keep]
    w_m = np.sign(lm) * np.sqrt(np.abs(lm))
    real = lm > 0
    ratio = w_m[real] / w_r[real]
    return {"phonon_frequency_ratio": ratio_slope(w_m, w_r),
            "phonon_frequency_ratio_min": float(ratio.min()) if ratio.size else None,
            "phonon_frequency_ratio_max": float(ratio.max()) if ratio.size else None,
            "phonon_imaginary_modes": int(np.sum(~real)), "phonon_modes": int(keep.sum())}


def elastic_constant_ratio(c_model, c_reference, *, rtol: float = 1e-8) -> float | None:
    """Least-squares slope of the model's Voigt elastic constants against the reference's
    over the entries with |C_ab| > ``rtol``·max |C| of the reference (None if none)."""
    cm, cr = np.asarray(c_model, float).ravel(), np.asarray(c_reference, float).ravel()
    keep = np.abs(cr) > rtol * float(np.abs(cr).max()) if cr.size else np.zeros(0, bool)
    return ratio_slope(cm[keep], cr[keep]) if keep.any() else None


def formation_energy_ratio(model_value: float | None, reference_value: float | None) -> float | None:
    """E_f^ML / E_f (None if either is missing or the reference's is 0)."""
    if model_value is None or reference_value is None or reference_value == 0 or not math.isfinite(model_value):
        return None
    return float(model_value) / float(reference_value)


def headline(profile: list[dict], cell: str) -> dict:
    """The slope, its standard error and the energy ratio at the largest amplitude of
    ``cell`` in a :func:`parity_profile` (the summary metrics ``parity_slope_<cell>``...)."""
    rows = [r for r in profile if r["cell"] == cell]
    if not rows:
        return {}
    top = max(rows, key=lambda r: r["amplitude"])
    return {f"parity_slope_{cell}": top["slope"], f"parity_slope_{cell}_stderr": top["stderr"],
            f"energy_ratio_{cell}": top["energy_ratio"], "parity_amplitude": top["amplitude"]}


def diagnostics(model, reference, *, lattice: str, defect: str, size: int, a: float | None = None,
                amplitudes=DEFAULT_AMPLITUDES, samples: int = 1, seed: int = 0, fmax: float = DEFAULT_FMAX,
                max_iter: int = DEFAULT_MAX_ITER) -> dict:
    """Every softening diagnostic of ``model`` against ``reference`` (specs or Potentials,
    resolved by :func:`~genanalysis.potentials.load_potential`; a surrogate takes the
    lattice and ``a``) on the perfect and the ``defect`` ``size``-cell of ``lattice`` at
    ``a`` (Å; default the reference's equilibrium value).

    The reference's defect equilibrium ū is the minimum the defect cell is rattled about;
    the model's formation energy is at its own equilibrium, relaxed from ū. Returns a
    JSON-ready dict: the spec, ``parity_profile`` (:func:`parity_profile`), its summary at
    the largest amplitude, the phonon, elastic and formation-energy ratios, the two
    formation energies (eV), ``status`` (``converged``, or why a part could not be
    computed: a numerical failure of the model is a result) and ``units``."""
    from genanalysis.defect import formation_energy, perfect_energy_per_atom, relax
    from genanalysis.lattice import check_cell, defect_cell, parse_defect, perfect_cell
    from genanalysis.observe import elastic_constants
    from genanalysis.potentials import load_potential, neighbour_radius

    t0 = time.perf_counter()
    amplitudes = check_amplitudes(amplitudes)
    ref = load_potential(reference)
    d = parse_defect(lattice, defect)
    a = float(ref.equilibrium_lattice_constant(lattice) if a is None else a)
    pot = load_potential(model, lattice=lattice, a=a)
    symbol = ref.species[0] if getattr(ref, "species", None) else "X"
    check_cell(lattice, size, f"size={size}", a=a, radius=max(neighbour_radius(ref), neighbour_radius(pot)))
    perfect = perfect_cell(lattice, a, size, symbol)
    dim = atoms_dim(perfect)
    out = {"model": model if isinstance(model, str) else pot.name,
           "reference": reference if isinstance(reference, str) else ref.name,
           "lattice": lattice, "a": a, "defect": str(d), "size": int(size), "n_atoms_perfect": len(perfect),
           "amplitudes": list(amplitudes), "samples": int(samples), "seed": int(seed), "notes": []}
    failures = []
    rel_ref = relax(defect_cell(lattice, a, size, d, symbol), ref, fmax=fmax, max_iter=max_iter)
    rel_ref.check("reference relaxation")  # the reference failing leaves nothing to compare
    minima = {"perfect": perfect, "defect": rel_ref.atoms}
    profile = parity_profile(pot, ref, minima, amplitudes, samples=samples, seed=seed)
    out["parity_profile"] = profile
    for cell in minima:
        out.update(headline(profile, cell))
    try:
        out.update(phonon_frequency_ratios(bloch.hessian_block_row(pot, perfect, lattice, size, dim),
                                           bloch.hessian_block_row(ref, perfect, lattice, size, dim)))
    except NonFiniteError as exc:
        failures.append(f"phonons: {exc}")
    cr, cm = elastic_constants(ref, perfect), elastic_constants(pot, perfect)
    out["elastic_constants_reference"], out["elastic_constants_model"] = cr.tolist(), cm.tolist()
    out["elastic_constant_ratio"] = elastic_constant_ratio(cm, cr) if np.all(np.isfinite(cm)) else None
    n_def = len(rel_ref.atoms)
    e_ref = formation_energy(rel_ref.energy, n_def, perfect_energy_per_atom(ref, lattice, a, size, symbol))
    out["formation_energy_reference"] = e_ref
    try:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            rel = relax(rel_ref.atoms, pot, fmax=fmax, max_iter=max_iter)
        rel.check("model relaxation")
        e_ml = formation_energy(rel.energy, n_def, perfect_energy_per_atom(pot, lattice, a, size, symbol))
        out["formation_energy_model"] = e_ml
        out["formation_energy_ratio"] = formation_energy_ratio(e_ml, e_ref)
    except NumericalFailure as exc:
        failures.append(f"model relaxation: {exc}")
    out["status"] = "converged" if not failures else "model failure"
    out["reason"] = "; ".join(failures)
    out["wall_time"] = time.perf_counter() - t0
    units = dict(UNITS, a="Å", formation_energy_reference="eV", formation_energy_model="eV", wall_time="s",
                 amplitudes="Å", elastic_constants_reference="eV/Å³" if dim == 3 else "eV/Å²")
    units["elastic_constants_model"] = units["elastic_constants_reference"]
    out["units"] = units
    from genanalysis.jsonutil import json_ready

    return json_ready(out, nonfinite_as_none=True)
