"""Calibration of the reference problem: the supercell rates of docs/theory.md (T10)–(T11),
measured.

Before any model is fitted, the toolkit must reproduce the known facts about the
reference defect problem (docs/calibration.md):

* decay of the defect field, ``|Dū(ℓ)| ≲ |ℓ|^{-d}``                         (T10)
* supercell geometry error, ``‖D(ū_N − ū)‖_{ℓ²(Λ_N)} ≲ N^{-d/2}``            (T11)
* supercell energy error, ``|E_f(N) − E_f| ≲ N^{-d}``                       (T11)

The exact ū is replaced by ū_M in a much larger cell M ≫ N. The geometry error compares
*gradients* on the sites of the N-cell, as the theorem does: for every site ℓ of the
N-domain (the N-cell centred on the defect, placed inside the M-cell) and every stencil
neighbour ρ, ``D_ρ ū_N(ℓ)`` (periodic in the N-cell) is compared with ``D_ρ ū_M(ℓ)``
(the same pair in the M-cell). Comparing displacements instead would add the jump of a
truncated ū_N at the domain boundary, which decays only like N^{-(d-1)/2}.

Also reported: the elastic dipole tensor ``P = −Ω σ(ū_N)`` (the virial of the relaxed
cell, eV; docs/theory.md (T10)), whose size sets the leading supercell error (the image
interaction of (T11)).

Units: Å, eV; the geometry error in Å.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree

from genanalysis.defect import DefectResult, solve_defect
from genanalysis.lattice import dimension
from genanalysis.norms import site_gradient_norms, stencil

__all__ = ["CalibrationCase", "calibrate", "geometry_error", "decay_profile"]


def _relative_reference(res: DefectResult) -> np.ndarray:
    ref = res.reference
    return ref.positions - np.array(ref.info["defect_centre"])


_TOL = 1e-8  # fractional tolerance of the domain boundary: [-1/2, 1/2) on both sides


def _wrap_relative(rel: np.ndarray, cell: np.ndarray, dim: int) -> np.ndarray:
    frac = np.linalg.solve(cell[:dim, :dim].T, rel[:, :dim].T).T
    frac -= np.floor(frac + 0.5 + _TOL)
    out = rel.copy()
    out[:, :dim] = frac @ cell[:dim, :dim]
    return out, frac


def _pair_keys(res: DefectResult, r_stencil: float):
    """Stencil pairs of a solved cell: (i, pair vector ρ in the reference, Dū on the pair)."""
    from ase.neighborlist import neighbor_list

    i, j, vec = neighbor_list("ijD", res.reference, r_stencil)
    keep = i != j
    i, j, vec = i[keep], j[keep], vec[keep]
    u = res.displacement
    return i, vec, u[j] - u[i]


def _match_rows(table: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Row index in ``table`` of each row of ``queries`` (-1 where absent); integer rows."""
    dt = np.dtype((np.void, table.dtype.itemsize * table.shape[1]))
    tv = np.ascontiguousarray(table).view(dt).ravel()
    qv = np.ascontiguousarray(queries.astype(table.dtype)).view(dt).ravel()
    order = np.argsort(tv)
    pos = np.searchsorted(tv[order], qv)
    pos = np.minimum(pos, len(tv) - 1)
    found = tv[order][pos] == qv
    return np.where(found, order[pos], -1)


def geometry_error(small: DefectResult, large: DefectResult, *, r_stencil: float | None = None) -> float:
    """‖D(ū_N − ū_M)‖_{ℓ²(Λ_N)} in Å: gradients compared pair by pair on the N-domain."""
    from genanalysis.norms import stencil_radius

    info = small.reference.info
    dim = int(info["dim"])
    if r_stencil is None:
        r_stencil = stencil_radius(info["lattice"], info["a"])
    cell_n = np.array(small.reference.cell)
    rel_n, _ = _wrap_relative(_relative_reference(small), cell_n, dim)
    rel_m = _relative_reference(large)
    # sites of the M-cell that lie in the N-domain (fundamental cell of N centred on the defect)
    frac = np.linalg.solve(cell_n[:dim, :dim].T, rel_m[:, :dim].T).T
    inside = np.all((frac >= -0.5 - _TOL) & (frac < 0.5 - _TOL), axis=1)
    tree = cKDTree(rel_n[:, :dim])
    dist, match = tree.query(rel_m[inside, :dim])
    if np.any(dist > 1e-6):
        raise RuntimeError("geometry_error: the N-cell sites do not match the M-cell sites")
    m_to_n = -np.ones(len(rel_m), int)
    m_to_n[np.flatnonzero(inside)] = match

    i_n, vec_n, du_n = _pair_keys(small, r_stencil)
    i_m, vec_m, du_m = _pair_keys(large, r_stencil)
    sel = m_to_n[i_m] >= 0
    i_m, vec_m, du_m = m_to_n[i_m[sel]], vec_m[sel], du_m[sel]
    # match pairs by (site, rounded pair vector)
    scale = 1e-5
    key_n = np.column_stack([i_n, np.round(vec_n / scale).astype(np.int64)])
    key_m = np.column_stack([i_m, np.round(vec_m / scale).astype(np.int64)])
    idx = _match_rows(key_n, key_m)
    if np.any(idx < 0):
        raise RuntimeError("geometry_error: a stencil pair of the M-cell has no partner in the N-cell")
    diff = du_n[idx, :dim] - du_m[:, :dim]
    return float(np.sqrt(np.sum(diff * diff)))


def decay_profile(res: DefectResult) -> tuple[np.ndarray, np.ndarray]:
    """(|ℓ| in Å, |Dū(ℓ)| in Å) for every site, |ℓ| measured from the defect centre."""
    st = stencil(res.reference)
    g = site_gradient_norms(res.displacement, st)
    r = np.linalg.norm(_wrap_relative(_relative_reference(res), np.array(res.reference.cell),
                                      int(res.reference.info["dim"]))[0], axis=1)
    return r, g


def shell_envelope(r: np.ndarray, g: np.ndarray, r_max: float, bins: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Largest |Dū| in logarithmic bins of |ℓ| on [r_min, r_max]: the envelope that the
    decay estimate bounds (angular factors make individual sites scatter below it)."""
    r_min = max(np.sort(r[r > 1e-9])[0] * 2.0, 1e-9)
    edges = np.geomspace(r_min, r_max, bins + 1)
    xs, ys = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (r >= lo) & (r < hi)
        if m.any() and g[m].max() > 0:
            xs.append(math.sqrt(lo * hi))
            ys.append(float(g[m].max()))
    return np.array(xs), np.array(ys)


@dataclass
class CalibrationCase:
    """One calibration sweep: defect cells of sizes ``sizes`` against one of size ``reference_size``."""

    potential: str
    lattice: str
    defect: str
    sizes: list
    reference_size: int
    a: float | None = None
    fmax: float = 1e-9
    rows: list = field(default_factory=list)
    decay: tuple | None = None
    reference: dict | None = None

    def run(self, progress=None) -> "CalibrationCase":
        from genanalysis.potentials import load_potential

        pot = load_potential(self.potential)
        big = solve_defect(pot, self.lattice, self.a, self.defect, self.reference_size, fmax=self.fmax)
        if not big.relaxation.converged:
            raise RuntimeError(f"reference cell M={self.reference_size}: {big.relaxation.status}")
        a = float(big.reference.info["a"])
        self.a = a
        d = dimension(self.lattice)
        self.reference = {
            "size": self.reference_size, "n_atoms": len(big.reference),
            "formation_energy": big.formation_energy, **_dipole(big, pot),
        }
        r, g = decay_profile(big)
        half = 0.5 * min(np.linalg.norm(np.array(big.reference.cell)[:d], axis=1))
        self.decay = shell_envelope(r, g, 0.6 * half)
        for n in self.sizes:
            res = solve_defect(pot, self.lattice, a, self.defect, n, fmax=self.fmax)
            row = {
                "size": n, "n_atoms": len(res.reference), "status": res.relaxation.status,
                "formation_energy": res.formation_energy,
                "energy_error": abs(res.formation_energy - big.formation_energy),
                "geometry_error": geometry_error(res, big) if res.relaxation.converged else math.nan,
                "iterations": res.relaxation.iterations, **_dipole(res, pot),
            }
            self.rows.append(row)
            if progress:
                progress(row)
        return self


def _dipole(res: DefectResult, pot) -> dict:
    """Dipole tensor P = −Ω σ(ū_N) = virial of the relaxed cell (eV), and its trace."""
    v = np.asarray(pot.observe(res.atoms).virial, float)
    d = int(res.reference.info["dim"])
    return {"dipole_tensor": v[:d, :d].tolist(), "dipole_trace": float(np.trace(v[:d, :d]))}


def calibrate(potential: str, lattice: str, defect: str, sizes, reference_size: int, *, a=None,
              fmax: float = 1e-9, progress=None) -> CalibrationCase:
    """Run one calibration case (see the module docstring)."""
    return CalibrationCase(potential, lattice, defect, list(sizes), int(reference_size), a, fmax).run(progress)


#: measured quantity -> (row key or "decay", name of the predicted rate in ``theory``)
MEASURED_RATES = {
    "geometry_error": "supercell_geometry",
    "energy_error": "supercell_energy",
    "decay": "decay_point_defect",
}


def rates(case: CalibrationCase, *, min_size: int | None = None) -> list[dict]:
    """Fitted log-log slopes with confidence intervals against the predicted exponents.

    Sizes below ``min_size`` (default: all) are left out of the fits, as pre-asymptotic.
    The verdict follows ``theory.compare.judge``: these rates are upper bounds, so a
    measured slope steeper than predicted is reported as ``faster``, not as agreement.
    """
    from theory.compare import fit_slope, judge
    from theory.rates import predicted

    d = dimension(case.lattice)
    out = []
    for quantity, rate in MEASURED_RATES.items():
        if quantity == "decay":
            x, y = case.decay
            against = "|ℓ| (Å)"
        else:
            rows = [r for r in case.rows if math.isfinite(r[quantity]) and r[quantity] > 0
                    and (min_size is None or r["size"] >= min_size)]
            x = np.array([r["size"] for r in rows], float)
            y = np.array([r[quantity] for r in rows], float)
            against = "N"
        entry = {"quantity": quantity, "against": against, "predicted_rate": rate,
                 "predicted_slope": predicted(rate, d), "n_points": int(len(x))}
        if len(x) >= 2:
            fit = fit_slope(x, y)
            verdict = judge(fit, rate, d)
            entry.update(slope=fit.slope, ci_low=fit.ci_low, ci_high=fit.ci_high, stderr=fit.stderr,
                         range_used=list(fit.x_range_used), verdict=verdict.value, verdict_label=verdict.label,
                         reason=verdict.reason)
        else:
            entry.update(slope=math.nan, verdict="inconclusive", reason="fewer than two points")
        out.append(entry)
    return out


def plot_case(case: CalibrationCase, fits: list[dict], path) -> None:
    """Log-log plot of the three calibration quantities with fitted and predicted slopes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    by = {f["quantity"]: f for f in fits}
    panels = [("geometry_error", "‖D(ū_N − ū_M)‖ (Å)", "cell size N"),
              ("energy_error", "|E_f(N) − E_f(M)| (eV)", "cell size N"),
              ("decay", "max |Dū(ℓ)| in shell (Å)", "|ℓ| (Å)")]
    for ax, (q, ylabel, xlabel) in zip(axes, panels):
        if q == "decay":
            x, y = case.decay
        else:
            rows = [r for r in case.rows if math.isfinite(r[q]) and r[q] > 0]
            x = np.array([r["size"] for r in rows], float)
            y = np.array([r[q] for r in rows], float)
        if len(x) == 0:
            continue
        ax.loglog(x, y, "o", label="measured")
        f = by[q]
        if math.isfinite(f.get("slope", math.nan)):
            lo, hi = f["range_used"]
            xs = np.geomspace(lo, hi, 20)
            sel = (x >= lo) & (x <= hi)
            c = np.exp(np.mean(np.log(y[sel]) - f["slope"] * np.log(x[sel])))
            ax.loglog(xs, c * xs ** f["slope"], "-",
                      label=f"fit {f['slope']:.2f} [{f['ci_low']:.2f}, {f['ci_high']:.2f}]")
            cp = np.exp(np.mean(np.log(y[sel]) - f["predicted_slope"] * np.log(x[sel])))
            ax.loglog(xs, cp * xs ** f["predicted_slope"], "--", label=f"theory {f['predicted_slope']:.2f}")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.xaxis.set_minor_formatter(NullFormatter())
        if q != "decay":
            ax.set_xticks(x)
            ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.legend(fontsize=8)
    fig.suptitle(f"{case.potential}, {case.lattice}, {case.defect}, M = {case.reference_size}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
