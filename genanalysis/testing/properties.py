"""Physical properties every interatomic potential should have, checked on any ASE calculator.

Each check takes a potential (an ASE calculator, a :class:`~genanalysis.potentials.Potential`
or a spec string: anything :func:`~genanalysis.potentials.load_potential` accepts) and a
configuration, measures how far the property is from holding, and returns a
:class:`PropertyReport` naming the property, the size of the violation (in the report's
``unit``), the tolerance and whether it holds. Units: Å, eV, eV/Å, eV (virial), eV/Å².

=============================  =====================================================  ===========
property (``name``)            size                                                   unit
=============================  =====================================================  ===========
``forces = -grad E``           max_d |F·d + dE/dt| / max_d |dE/dt| (fourth-order      1
                               differences of E along d = F/|F| and random d;
                               denominator at least 1e-3 eV/Å)
``virial = -dE/dstrain``       max_B |−V:B − dE/dt| / max_B |dE/dt| (E of the cell    1
                               strained by I + tB, random symmetric B;
                               denominator at least 1e-3 eV per atom)
``hessian symmetric``          ‖H − Hᵀ‖_F / ‖H‖_F (the calculator's Hessian, or       1
                               unsymmetrised central differences of the forces)
``acoustic sum rule``          max_a ‖Σ_b H_ab‖_F / max_ab ‖H_ab‖_F                   1
``rotation invariance``        max(|ΔE|/n, max |F(Rx) − R F(x)|) for a random         eV/atom, eV/Å
                               rotation of atoms and cell
``reflection invariance``      the same for a random improper orthogonal map          eV/atom, eV/Å
``translation invariance``     the same for a random rigid shift                      eV/atom, eV/Å
``permutation invariance``     the same for a random relabelling of the atoms         eV/atom, eV/Å
``extensivity``                max(|E(2-cell)/2n − E/n|, max |ΔF|) for the cell       eV/atom, eV/Å
                               doubled along its first periodic direction
``smooth across the cutoff``   force (and energy) jump of a dimer across the cutoff,  eV/Å
                               extrapolated to zero step from steps 1e-3 and 1e-4 Å
=============================  =====================================================  ===========

The sizes of the invariance checks are listed separately for energy and forces in the
report's ``values``. 2D lattices (``atoms.info['dim'] == 2``) are rotated, reflected,
strained and displaced in their plane only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from genanalysis.lattice import atoms_dim

__all__ = [
    "PropertyReport", "PROPERTIES", "check_calculator", "fourth_order_difference", "forces_are_minus_gradient", "virial_is_strain_derivative",
    "hessian_properties", "rotation_invariance", "reflection_invariance", "translation_invariance",
    "permutation_invariance", "extensivity", "smooth_across_cutoff", "as_potential",
]


@dataclass(frozen=True)
class PropertyReport:
    """Outcome of one property check: ``status`` is "ok", "violated" or "skipped" (with the
    reason in ``detail``); ``size`` the measured violation in ``unit``; ``values`` its parts."""

    name: str
    status: str
    size: float
    tolerance: float
    unit: str
    detail: str = ""
    values: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status != "violated"

    def __str__(self) -> str:
        if self.status == "skipped":
            return f"{self.name}: skipped ({self.detail})"
        verdict = "holds" if self.status == "ok" else "VIOLATED"
        return (f"{self.name}: {verdict}, size {self.size:.3g} {self.unit} (tolerance {self.tolerance:g})"
                + (f"; {self.detail}" if self.detail else ""))


def _report(name, size, tolerance, unit, detail="", values=None) -> PropertyReport:
    status = "ok" if size <= tolerance else "violated"  # NaN counts as violated
    return PropertyReport(name, status, float(size), float(tolerance), unit, detail, dict(values or {}))


def _skipped(name, unit, reason) -> PropertyReport:
    return PropertyReport(name, "skipped", math.nan, math.nan, unit, reason)


def as_potential(calc, *, cutoff: float | None = None):
    """A Potential for ``calc``: a Potential as is, a spec through ``load_potential``, an
    ASE calculator wrapped (``cutoff`` Å passed to the wrapper)."""
    from ase.calculators.calculator import BaseCalculator

    from genanalysis.potentials import Potential, load_potential
    from genanalysis.potentials.wrapper import ASECalculatorPotential

    if isinstance(calc, BaseCalculator):
        return ASECalculatorPotential(calc, cutoff=cutoff)
    if isinstance(calc, Potential):
        return calc
    return load_potential(calc)


def _mask(atoms) -> np.ndarray:
    """(n, 3) ones on the components a 2D system may move in."""
    m = np.zeros((len(atoms), 3))
    m[:, :atoms_dim(atoms)] = 1.0
    return m


def fourth_order_difference(f, h: float) -> float:
    """df/dt at 0 from f(±h), f(±2h): error O(h⁴ f⁽⁵⁾)."""
    return (8.0 * (f(h) - f(-h)) - (f(2 * h) - f(-2 * h))) / (12.0 * h)


def forces_are_minus_gradient(calc, atoms, *, directions: int = 3, step: float = 5e-3, rtol: float = 1e-5,
                              floor: float = 1e-3, seed: int = 0) -> PropertyReport:
    """F·d = −dE/dt along d = F/|F| and ``directions`` random unit directions, with
    fourth-order differences of the energy (step ``step`` Å); the error is relative to the
    largest |dE/dt|, or to ``floor`` eV/Å where all are smaller (a perfect lattice)."""
    pot = as_potential(calc)
    name = "forces = -grad E"
    f0 = pot.observe(atoms).forces * _mask(atoms)
    rng = np.random.default_rng(seed)
    dirs = [f0] if np.linalg.norm(f0) > 0 else []
    dirs += [rng.normal(size=f0.shape) * _mask(atoms) for _ in range(directions)]
    work = atoms.copy()
    num, den = [], []
    for d in dirs:
        d = d / np.linalg.norm(d)

        def energy(t, d=d):
            work.positions = atoms.positions + t * d
            return pot.observe(work).energy

        de = fourth_order_difference(energy, step)
        num.append(abs(float(np.sum(f0 * d)) + de))
        den.append(abs(de))
    scale = max(den)
    size = max(num) / max(scale, floor)
    return _report(name, size, rtol, "1", f"largest |dE/dt| {scale:.3g} eV/Å over {len(dirs)} directions",
                   {"absolute": max(num)})


def _strained(atoms, B, t):
    s = atoms.copy()
    s.set_cell(np.asarray(atoms.cell) @ (np.eye(3) + t * B), scale_atoms=True)
    return s


def virial_is_strain_derivative(calc, atoms, *, strains: int = 2, step: float = 1e-3, rtol: float = 1e-5,
                                floor: float = 1e-3, seed: int = 0) -> PropertyReport:
    """−virial : B = dE/dt for the cell and atoms deformed by (I + tB), B random symmetric
    (in-plane in 2D) and B along the virial itself; fourth-order differences, strain step
    ``step``; the error is relative to the largest |dE/dt|, or to ``floor`` eV per atom
    where all are smaller (an unstressed cell)."""
    pot = as_potential(calc)
    name = "virial = -dE/dstrain"
    dim = atoms_dim(atoms)
    if not all(atoms.pbc[:dim]):
        return _skipped(name, "1", "the cell is not periodic")
    V = np.asarray(pot.observe(atoms).virial, float)
    if not np.all(np.isfinite(V[:dim, :dim])):
        return _skipped(name, "1", "the calculator gives no stress")
    rng = np.random.default_rng(seed)
    Bs = []
    for k in range(strains + 1):
        B = np.zeros((3, 3))
        if k == 0:
            B[:dim, :dim] = V[:dim, :dim]
        else:
            R = rng.normal(size=(dim, dim))
            B[:dim, :dim] = 0.5 * (R + R.T)
        if np.linalg.norm(B) > 0:
            Bs.append(B / np.linalg.norm(B))
    num, den = [], []
    for B in Bs:
        de = fourth_order_difference(lambda t, B=B: pot.observe(_strained(atoms, B, t)).energy, step)
        num.append(abs(-float(np.sum(V * B)) - de))
        den.append(abs(de))
    scale = max(den)
    size = max(num) / max(scale, floor * len(atoms))
    return _report(name, size, rtol, "1", f"largest |dE/dt| {scale:.3g} eV over {len(Bs)} strains",
                   {"absolute": max(num)})


def _raw_hessian(pot, atoms, step: float = 1e-4) -> tuple[np.ndarray, str]:
    """The calculator's own Hessian (any accepted layout), else unsymmetrised central
    differences of the forces (step Å): dense (3n, 3n), eV/Å²."""
    from genanalysis.potentials.wrapper import ASECalculatorPotential, force_derivative, hessian_from_layout

    if isinstance(pot, ASECalculatorPotential) and callable(getattr(pot.calc, "get_hessian", None)):
        at = atoms.copy()
        at.calc = pot.calc
        try:
            H, info = hessian_from_layout(pot.calc.get_hessian(at), len(atoms))
            return H.toarray(), f"the calculator's Hessian ({info['layout']})"
        except NotImplementedError:
            pass  # a get_hessian that is not implemented: differences of the forces instead
    if not isinstance(pot, ASECalculatorPotential):
        return pot.hessian(atoms).toarray(), "the potential's Hessian"
    n3 = 3 * len(atoms)
    cols = np.empty((n3, n3))
    work = atoms.copy()
    x0 = atoms.positions.copy()
    unit = np.zeros(n3)
    for k in range(n3):  # one column per coordinate, by the project's one difference rule
        unit[k] = 1.0
        cols[:, k] = force_derivative(lambda at: pot.observe(at).forces, work, x0, unit.reshape(-1, 3),
                                      step).ravel()
        unit[k] = 0.0
    return cols, "central differences of the forces, unsymmetrised"


def hessian_properties(calc, atoms, *, rtol: float = 1e-5) -> list[PropertyReport]:
    """Two reports: the Hessian's relative asymmetry and its acoustic sum rule (a rigid
    translation changes no force: Σ_b H_ab = 0 for every atom a, periodic or not)."""
    pot = as_potential(calc)
    H, source = _raw_hessian(pot, atoms)
    n = len(atoms)
    norm = np.linalg.norm(H)
    asym = np.linalg.norm(H - H.T) / norm if norm > 0 else 0.0
    blocks = H.reshape(n, 3, n, 3)
    sums = np.linalg.norm(blocks.sum(axis=2), axis=(1, 2))
    biggest = np.linalg.norm(blocks, axis=(1, 3)).max()
    acoustic = sums.max() / biggest if biggest > 0 else 0.0
    return [_report("hessian symmetric", asym, rtol, "1", source),
            _report("acoustic sum rule", acoustic, rtol, "1", source,
                    {"largest_row_sum": float(sums.max()), "largest_block": float(biggest)})]


def _compare(name, pot, atoms, moved, forces_map, tol, detail) -> PropertyReport:
    """Energy per atom and forces of ``moved`` against those of ``atoms`` carried over by
    ``forces_map`` ((n, 3) → (n', 3))."""
    e0 = pot.observe(atoms)
    e1 = pot.observe(moved)
    de = abs(e1.energy / len(moved) - e0.energy / len(atoms))
    df = float(np.abs(e1.forces - forces_map(e0.forces)).max())
    return _report(name, max(de, df), tol, "eV/atom, eV/Å", detail, {"energy_per_atom": de, "forces": df})


def _random_rotation(rng, dim: int, proper: bool) -> np.ndarray:
    if dim == 2:
        t = rng.uniform(0, 2 * np.pi)
        R = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
        return R if proper else R @ np.diag([1.0, -1.0, 1.0])
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q if proper else q @ np.diag([1.0, 1.0, -1.0])


def _mapped(atoms, R) -> object:
    out = atoms.copy()
    out.set_cell(np.asarray(atoms.cell) @ R.T, scale_atoms=False)
    out.positions = atoms.positions @ R.T
    return out


def rotation_invariance(calc, atoms, *, tol: float = 1e-8, seed: int = 0) -> PropertyReport:
    """E unchanged and F rotated with the atoms and cell under a random rotation."""
    R = _random_rotation(np.random.default_rng(seed), atoms_dim(atoms), proper=True)
    return _compare("rotation invariance", as_potential(calc), atoms, _mapped(atoms, R), lambda f: f @ R.T, tol,
                    "random rotation of atoms and cell")


def reflection_invariance(calc, atoms, *, tol: float = 1e-8, seed: int = 0) -> PropertyReport:
    """E unchanged and F reflected under a random improper orthogonal map (det −1)."""
    R = _random_rotation(np.random.default_rng(seed), atoms_dim(atoms), proper=False)
    return _compare("reflection invariance", as_potential(calc), atoms, _mapped(atoms, R), lambda f: f @ R.T, tol,
                    "random reflection of atoms and cell")


def translation_invariance(calc, atoms, *, tol: float = 1e-8, seed: int = 0) -> PropertyReport:
    """E and F unchanged under a random rigid shift (up to 1 Å per component)."""
    moved = atoms.copy()
    moved.positions = atoms.positions + np.random.default_rng(seed).uniform(-1, 1, size=3) * _mask(atoms)[0]
    return _compare("translation invariance", as_potential(calc), atoms, moved, lambda f: f, tol,
                    "random rigid shift")


def permutation_invariance(calc, atoms, *, tol: float = 1e-8, seed: int = 0) -> PropertyReport:
    """E unchanged and F relabelled under a random permutation of the atoms."""
    perm = np.random.default_rng(seed).permutation(len(atoms))
    return _compare("permutation invariance", as_potential(calc), atoms, atoms[perm], lambda f: f[perm], tol,
                    "random relabelling of the atoms")


def extensivity(calc, atoms, *, tol: float = 1e-8) -> PropertyReport:
    """The periodic cell doubled along its first periodic direction has twice the energy
    and the same forces on each copy."""
    name = "extensivity"
    pot = as_potential(calc)
    axes = [k for k in range(3) if atoms.pbc[k]]
    if not axes:
        return _skipped(name, "eV/atom, eV/Å", "the cell is not periodic")
    reps = [1, 1, 1]
    reps[axes[0]] = 2
    return _compare(name, pot, atoms, atoms.repeat(reps), lambda f: np.tile(f, (2, 1)), tol,
                    f"cell doubled along axis {axes[0]}")


def smooth_across_cutoff(calc, *, cutoff: float | None = None, symbol: str = "X", window: float = 0.01,
                         tol: float = 1e-6) -> PropertyReport:
    """Energy and forces of a dimer do not jump as its bond crosses the cutoff ``cutoff`` Å
    (default the potential's). The largest jump between neighbouring distances is measured
    on grids of step 1e-3 and 1e-4 Å over ``cutoff ± window``; a smooth function's jump
    falls tenfold with the step, a discontinuity's does not, so the jump extrapolated to
    zero step, (10 J(1e-4) − J(1e-3))/9, is the size of the discontinuity (eV/Å for the
    force; the energy's in ``values``)."""
    from ase import Atoms

    name = "smooth across the cutoff"
    pot = as_potential(calc, cutoff=cutoff)
    rc = float(cutoff if cutoff is not None else getattr(pot, "cutoff", math.inf))
    if not (math.isfinite(rc) and rc > 0):
        return _skipped(name, "eV/Å", "no cutoff known: give the potential's cutoff (Å)")
    box = 4.0 * rc + 10.0

    def dimer(r):
        at = Atoms([symbol, symbol], positions=[[box / 2, box / 2, box / 2], [box / 2 + r, box / 2, box / 2]],
                   cell=[box, box, box], pbc=False)
        ev = pot.observe(at)
        return ev.energy, ev.forces[1, 0]

    jumps = {}
    for h in (1e-3, 1e-4):
        r = rc + np.arange(-round(window / h), round(window / h) + 1) * h
        e, f = np.array([dimer(x) for x in r]).T
        jumps[h] = (np.abs(np.diff(e)).max(), np.abs(np.diff(f)).max())
    je = max(0.0, (10 * jumps[1e-4][0] - jumps[1e-3][0]) / 9)
    jf = max(0.0, (10 * jumps[1e-4][1] - jumps[1e-3][1]) / 9)
    return _report(name, jf, tol, "eV/Å", f"dimer across r_c = {rc:g} Å; energy jump {je:.3g} eV",
                   {"energy_jump": float(je), "force_jump": float(jf), "cutoff": rc})


#: every configuration property, in the order :func:`check_calculator` runs them
PROPERTIES = ("forces", "virial", "hessian", "rotation", "reflection", "translation", "permutation", "extensivity",
              "cutoff")


def check_calculator(calc, atoms, *, properties=PROPERTIES, cutoff: float | None = None, symbol: str | None = None,
                     seed: int = 0) -> list[PropertyReport]:
    """Every property of :data:`PROPERTIES` named in ``properties`` on ``atoms`` (the
    cutoff check on a dimer of ``symbol``, default the first atom's element)."""
    unknown = set(properties) - set(PROPERTIES)
    if unknown:
        from genanalysis.exceptions import InputError

        raise InputError(f"unknown properties {sorted(unknown)}; choose from {', '.join(PROPERTIES)}")
    pot = as_potential(calc, cutoff=cutoff)
    out: list[PropertyReport] = []
    runs = {
        "forces": lambda: [forces_are_minus_gradient(pot, atoms, seed=seed)],
        "virial": lambda: [virial_is_strain_derivative(pot, atoms, seed=seed)],
        "hessian": lambda: hessian_properties(pot, atoms),
        "rotation": lambda: [rotation_invariance(pot, atoms, seed=seed)],
        "reflection": lambda: [reflection_invariance(pot, atoms, seed=seed)],
        "translation": lambda: [translation_invariance(pot, atoms, seed=seed)],
        "permutation": lambda: [permutation_invariance(pot, atoms, seed=seed)],
        "extensivity": lambda: [extensivity(pot, atoms)],
        "cutoff": lambda: [smooth_across_cutoff(pot, cutoff=cutoff, symbol=symbol or atoms.get_chemical_symbols()[0])],
    }
    for p in PROPERTIES:
        if p in properties:
            out.extend(runs[p]())
    return out
