"""Any ASE calculator as a :class:`~genanalysis.potentials.base.Potential`.

Units: Å, eV, eV/Å, eV (virial = −stress·volume), eV/Å² (Hessians). Energies, forces and
stresses come from the calculator.

Force constants (docs/potentials.md, "External calculators"): with ``hessian="auto"``
(default) by automatic differentiation through the calculator's torch modules when it
exposes them as MACE's calculator does (``hessian="autograd"``,
:mod:`genanalysis.potentials.autograd`: a Hessian–vector product costs about one force
call, an assembled Hessian 3n products); otherwise from ``calc.get_hessian(atoms)`` when
the calculator has one (``hessian="calculator"``), in any of the layouts the field uses —
chosen by shape, for n atoms:

* (3n, 3n), scipy sparse or dense (matscipy's calculators, ours);
* (3n, n, 3) dense (MACE: row = force component, columns = atom, direction);
* (n, 3, n, 3) dense;
* a list or tuple of those: a committee (MACE ensembles); its mean is the Hessian and
  its spread (population standard deviation over the members) is reported.

A calculator's Hessian is never trusted blindly: on first use it must pass a conformance
check — the layout's shape, relative asymmetry ‖H − Hᵀ‖_F/‖H‖_F ≤ ``hessian_rtol``, and
agreement of H·v with central differences of the forces along a random direction v,
‖H v − δF‖/‖δF‖ ≤ ``hessian_rtol`` — and on every later use the shape and symmetry
checks. A failing check is one :class:`InputError` line, or, with
``on_check_failure="fd"``, finite differences from then on (said in the report).

Without ``get_hessian`` (or with ``hessian="fd"``) Hessians are central finite
differences of the forces with step ``fd_step`` (Å, default 1e-4: truncation error
O(h²·∂³F) ~1e-8 relative, round-off ~ε_F/h; 6n force calls) and Hessian-vector products
are directional central differences (2 force calls each), unless finite differences are
disabled (``allow_fd=False``). :meth:`ASECalculatorPotential.hessian_report` says which
source was used, how often, and how long it took.
"""

from __future__ import annotations

import importlib
import math
import time
from urllib.parse import parse_qsl

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from ase.calculators.calculator import BaseCalculator, PropertyNotImplementedError

from genanalysis.exceptions import InputError, check_number
from genanalysis.potentials.base import Observation, Potential

__all__ = [
    "ASECalculatorPotential", "calculator_from_python_spec", "potential_from_python_spec",
    "finite_difference_hessian", "force_derivative", "hessian_from_layout", "DEFAULT_FD_STEP", "DEFAULT_HESSIAN_RTOL",
]

#: default central-difference step for force constants, Å
DEFAULT_FD_STEP = 1e-4
#: default relative tolerance of the Hessian conformance check (asymmetry and probe)
DEFAULT_HESSIAN_RTOL = 1e-3
#: Hessian sources an ASECalculatorPotential can be asked for
HESSIAN_SOURCES = ("auto", "calculator", "fd", "autograd")
#: what to do when a calculator's Hessian fails the conformance check
CHECK_FAILURE_ACTIONS = ("error", "fd")


def _check_step(fd_step) -> float:
    step = float(fd_step)
    if not (math.isfinite(step) and 0 < step <= 0.1):
        raise InputError(f"finite-difference step fd_step={fd_step} Å is outside the accepted range (0, 0.1]")
    return step


def force_derivative(forces, work, x0: np.ndarray, direction: np.ndarray, step: float) -> np.ndarray:
    """Central difference ``−(F(x0 + h d) − F(x0 − h d)) / 2h`` (n, 3) of ``forces(work) ->
    (n, 3)`` eV/Å along the displacement field ``direction`` d (n, 3) with step h (Å): the
    Hessian applied to d, eV/Å² · (units of d). The one finite-difference force-constant
    rule: a Hessian column (d a unit vector), a row block of the training set's force
    constants, a Hessian-vector product. Moves ``work`` and puts it back at x0."""
    work.positions = x0 + step * direction
    fp = np.asarray(forces(work), dtype=np.float64)
    work.positions = x0 - step * direction
    fm = np.asarray(forces(work), dtype=np.float64)
    work.positions = x0
    return -(fp - fm) / (2.0 * step)


def finite_difference_hessian(atoms, forces, fd_step: float = DEFAULT_FD_STEP) -> sp.csr_array:
    """Hessian (eV/Å², (3n × 3n) CSR, atom-major) by central differences of
    ``forces(atoms) -> (n, 3)`` eV/Å with step ``fd_step`` Å, symmetrised (½(H + Hᵀ)).
    Costs 6n force calls and a dense (3n)² work array (meant for cells of up to a few
    thousand atoms); entries that are exactly zero are not stored."""
    step = _check_step(fd_step)
    work = atoms.copy()
    x0 = atoms.positions.copy()
    n3 = 3 * len(atoms)
    cols = np.empty((n3, n3))
    unit = np.zeros(n3)
    for k in range(n3):  # one column per coordinate: inherent to finite differences
        unit[k] = 1.0
        cols[:, k] = force_derivative(forces, work, x0, unit.reshape(-1, 3), step).ravel()
        unit[k] = 0.0
    H = 0.5 * (cols + cols.T)
    return sp.csr_array(H)


def _directional_difference(forces, atoms, v, step: float) -> np.ndarray:
    """−(F(x + h d) − F(x − h d))/(2h) · max|v| with d = v/max|v|: the central-difference
    Hessian-vector product H v (eV/Å² · Å), 2 force calls."""
    v = np.asarray(v, dtype=np.float64).ravel()
    scale = np.abs(v).max()
    if scale == 0:
        return np.zeros(v.size)
    return force_derivative(forces, atoms.copy(), atoms.positions, (v / scale).reshape(-1, 3), step).ravel() * scale


_LAYOUTS = "(3n, 3n) sparse or dense, (3n, n, 3), (n, 3, n, 3), or a list of those (a committee)"


def _one_layout(H, n: int) -> tuple[sp.csr_array, str]:
    n3 = 3 * n
    if sp.issparse(H):
        if H.shape == (n3, n3):
            return sp.csr_array(H, dtype=np.float64), "sparse (3n, 3n)"
        shape = H.shape
    else:
        try:
            arr = np.asarray(H, dtype=np.float64)
        except (TypeError, ValueError, RuntimeError):
            raise InputError(
                f"get_hessian returned {type(H).__name__}, not an array; accepted layouts: {_LAYOUTS}"
            ) from None
        shape = arr.shape
        layouts = {(n3, n3): "dense (3n, 3n)", (n3, n, 3): "dense (3n, n, 3)", (n, 3, n, 3): "dense (n, 3, n, 3)"}
        if shape in layouts:
            return sp.csr_array(arr.reshape(n3, n3)), layouts[shape]
    raise InputError(
        f"get_hessian returned shape {tuple(shape)} for n = {n} atoms; accepted layouts: {_LAYOUTS}"
    )


def hessian_from_layout(H, n: int) -> tuple[sp.csr_array, dict]:
    """The (3n, 3n) atom-major CSR Hessian (eV/Å²) of what a calculator's ``get_hessian``
    returned for ``n`` atoms, and a description: ``layout``, ``committee`` (members, 1 for
    a single Hessian) and, for a committee, ``committee_spread`` (‖σ‖_F/‖H̄‖_F, σ the
    entry-wise population standard deviation over the members) and
    ``committee_spread_max`` (max σ, eV/Å²). Raises InputError for any other shape."""
    if isinstance(H, (list, tuple)):
        if not H:
            raise InputError(f"get_hessian returned an empty committee; accepted layouts: {_LAYOUTS}")
        members = [_one_layout(h, n) for h in H]
        mats = [m for m, _ in members]
        mean = sp.csr_array(sum(mats[1:], mats[0]) / len(mats))
        var = sp.csr_array(mean.shape)
        for m in mats:
            var = var + (m - mean).multiply(m - mean)
        sigma = sp.csr_array(var / len(mats)).sqrt()
        norm = spla.norm(mean)
        info = {
            "layout": f"committee of {len(mats)} × {members[0][1]}", "committee": len(mats),
            "committee_spread": float(spla.norm(sigma) / norm) if norm > 0 else math.inf,
            "committee_spread_max": float(abs(sigma).max()) if sigma.nnz else 0.0,
        }
        return sp.csr_array(mean), info
    mat, layout = _one_layout(H, n)
    return mat, {"layout": layout, "committee": 1}


def _asymmetry(H: sp.csr_array) -> float:
    norm = spla.norm(H)
    return float(spla.norm(H - H.T) / norm) if norm > 0 else 0.0


def python_callable(spec: str, where: str):
    """The callable ``CALLABLE`` of ``MODULE`` named by ``python:MODULE:CALLABLE[?OPTIONS]``
    (imported, not called); InputError beginning with ``where`` if the spec has another
    form, the module cannot be imported or has no such callable."""
    rest = spec.partition(":")[2].partition("?")[0]
    module, _, attr = rest.partition(":")
    if not module or not attr:
        raise InputError(f"{where} must have the form python:MODULE:CALLABLE")
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise InputError(f"{where}: cannot import module {module!r} ({exc})") from None
    factory = getattr(mod, attr, None)
    if factory is None or not callable(factory):
        raise InputError(f"{where}: module {module!r} has no callable {attr!r}")
    return factory


def calculator_from_python_spec(spec: str, *args):
    """Call ``CALLABLE`` of ``MODULE`` for ``python:MODULE:CALLABLE[?OPTIONS]`` with
    ``args`` (none for a potential; the model file's path for the loader of an external
    fit); it must return an ASE calculator (options: :func:`potential_from_python_spec`)."""
    factory = python_callable(spec, f"potential spec {spec!r}")
    calc = factory(*args)
    if not isinstance(calc, BaseCalculator):
        attr = spec.partition("?")[0].rpartition(":")[2]
        raise InputError(
            f"potential spec {spec!r}: {attr}({', '.join(map(repr, args))}) returned {type(calc).__name__}, not an ASE calculator"
        )
    return calc


#: options of a python: spec and their parsers
_SPEC_OPTIONS = {
    "hessian": str, "on_check_failure": str, "hessian_rtol": float, "fd_step": float, "cutoff": float,
    "allow_fd": lambda s: {"true": True, "1": True, "false": False, "0": False}[s.lower()],
}


def potential_from_python_spec(spec: str, *args) -> "ASECalculatorPotential":
    """``python:MODULE:CALLABLE[?key=value&...]`` as an :class:`ASECalculatorPotential`
    named by the spec. Keys: ``hessian`` (auto, calculator, fd), ``on_check_failure``
    (error, fd), ``hessian_rtol``, ``fd_step`` (Å), ``cutoff`` (Å), ``allow_fd``
    (true/false) — the constructor's keywords."""
    query = spec.partition("?")[2]
    kwargs = {}
    for key, value in parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)) if query else ():
        if key not in _SPEC_OPTIONS:
            raise InputError(f"potential spec {spec!r}: unknown option {key!r}; accepted: {', '.join(_SPEC_OPTIONS)}")
        try:
            kwargs[key] = _SPEC_OPTIONS[key](value)
        except (ValueError, KeyError):
            raise InputError(f"potential spec {spec!r}: option {key}={value!r} is not understood") from None
    return ASECalculatorPotential(calculator_from_python_spec(spec, *args), name=spec, **kwargs)


class ASECalculatorPotential(Potential):
    """An ASE calculator wrapped as a Potential.

    ``cutoff`` (Å; default the calculator's ``cutoff`` attribute if it has one, else
    ``inf``) and ``species`` (default: any) are informational. ``hessian``: ``"auto"``
    (the calculator's ``get_hessian`` when it has one, else finite differences),
    ``"calculator"`` (its ``get_hessian``, required) or ``"fd"`` (central differences of
    the forces with step ``fd_step`` Å). ``allow_fd=False`` refuses finite differences.
    ``hessian_rtol`` is the tolerance of the conformance check (module docstring) and
    ``on_check_failure`` what a failed check does: ``"error"`` (InputError) or ``"fd"``
    (finite differences from then on).

    Site energies come from ``get_potential_energies`` when implemented (and of length n),
    otherwise every atom gets the equal share E/n (flagged by ``site_energies_exact =
    False``). The virial is ``−stress·volume`` when the calculator implements stress,
    otherwise NaN. A committee calculator that stores its members' forces and energies
    (``forces_comm``, ``energy_comm`` in its results) has their spread reported too.
    """

    def __init__(self, calc, *, name: str | None = None, cutoff: float | None = None,
                 species: tuple[str, ...] = (), fd_step: float = DEFAULT_FD_STEP, allow_fd: bool = True,
                 hessian: str = "auto", hessian_rtol: float = DEFAULT_HESSIAN_RTOL,
                 on_check_failure: str = "error"):
        if not isinstance(calc, BaseCalculator):
            raise InputError(f"{calc!r} is not an ASE calculator")
        if hessian not in HESSIAN_SOURCES:
            raise InputError(f"hessian={hessian!r}; choose one of {', '.join(HESSIAN_SOURCES)}")
        if on_check_failure not in CHECK_FAILURE_ACTIONS:
            raise InputError(f"on_check_failure={on_check_failure!r}; choose one of {', '.join(CHECK_FAILURE_ACTIONS)}")
        has_own = callable(getattr(calc, "get_hessian", None))
        if hessian == "calculator" and not has_own:
            raise InputError(f"hessian='calculator', but {type(calc).__name__} has no get_hessian")
        if hessian == "fd" and not allow_fd:
            raise InputError("hessian='fd' contradicts allow_fd=False")
        from genanalysis.potentials.autograd import supports_autograd

        if hessian == "autograd":
            if not supports_autograd(calc):
                raise InputError(f"hessian='autograd', but {type(calc).__name__} does not expose its torch modules "
                                 "(models, _atoms_to_batch, _clone_batch)")
        self.calc = calc
        self.name = name or f"ase:{type(calc).__name__}"
        self.cutoff = float(cutoff if cutoff is not None else getattr(calc, "cutoff", math.inf) or math.inf)
        self.species = tuple(species)
        self.fd_step = _check_step(fd_step)
        self.allow_fd = bool(allow_fd)
        self.hessian_rtol = check_number(hessian_rtol, "hessian_rtol", minimum=0.0, maximum=1.0, strict=True)
        self.on_check_failure = on_check_failure
        self.site_energies_exact = True
        # auto: products by autograd where the calculator exposes its torch modules (about one
        # force call each, exact), else its own get_hessian, else finite differences
        self._autograd = hessian == "autograd" or (hessian == "auto" and supports_autograd(calc))
        self._use_calculator = has_own and hessian not in ("fd", "autograd")
        self._refused = ""
        self._report = {
            "requested": hessian,
            "source": "autograd" if self._autograd else "calculator" if self._use_calculator else "finite differences",
            "fd_step": self.fd_step, "hessians": 0, "hessian_time": 0.0, "hvps": 0, "hvp_time": 0.0,
        }

    def __repr__(self) -> str:
        return f"ASECalculatorPotential({self.name!r})"

    def check_species(self, atoms) -> None:
        if self.species:
            super().check_species(atoms)

    def _atoms(self, atoms):
        at = atoms.copy()
        at.calc = self.calc
        return at

    def forces(self, atoms) -> np.ndarray:
        """Forces (n, 3) eV/Å from the calculator."""
        return np.array(self._atoms(atoms).get_forces(), dtype=np.float64)

    def observe(self, atoms) -> Observation:
        self.check_species(atoms)
        at = self._atoms(atoms)
        energy = float(at.get_potential_energy())
        forces = np.array(at.get_forces(), dtype=np.float64)
        try:
            virial = -np.asarray(at.get_stress(voigt=False), dtype=np.float64) * at.get_volume()
            virial = 0.5 * (virial + virial.T)
        except (PropertyNotImplementedError, NotImplementedError, ValueError):
            virial = np.full((3, 3), np.nan)
        try:
            site = np.array(at.get_potential_energies(), dtype=np.float64)
        except (PropertyNotImplementedError, NotImplementedError, AttributeError):
            site = None
        if site is None or site.shape != (len(at),):
            site = np.full(len(at), energy / max(len(at), 1))
            self.site_energies_exact = False
        self._committee_spread(getattr(self.calc, "results", {}))
        return Observation(energy=energy, forces=forces, virial=virial, site_energies=site)

    def _committee_spread(self, results) -> None:
        """Record the largest committee spread (population standard deviation over the
        members) of energy (eV) and forces (eV/Å) seen so far."""
        for key, out in (("energy_comm", "committee_energy_std_max"), ("forces_comm", "committee_forces_std_max")):
            comm = results.get(key)
            if comm is None or np.ndim(comm) < 1 or len(comm) < 2:
                continue
            std = float(np.max(np.std(np.asarray(comm, dtype=np.float64), axis=0)))
            self._report[out] = max(self._report.get(out, 0.0), std)

    @property
    def has_analytic_hessian(self) -> bool:
        """Whether Hessians come from the calculator or autograd (not finite differences)."""
        return self._use_calculator or self._autograd

    def hessian_report(self) -> dict:
        """Which Hessian source was used and what it cost: ``source`` ("calculator" or
        "finite differences"), ``layout``, ``committee`` and its spread, the conformance
        ``check`` (asymmetry, probe error, tolerance), ``fallback_reason`` if the check
        failed and finite differences took over, and counts and wall times (s) of Hessian
        assemblies (``hessians``, ``hessian_time``) and finite-difference products
        (``hvps``, ``hvp_time``)."""
        return dict(self._report)

    def _fail(self, message: str) -> None:
        if self.on_check_failure == "fd" and self.allow_fd:
            self._use_calculator = False
            self._report["source"] = "finite differences"
            self._report["fallback_reason"] = message
            return
        self._refused = message  # refused for good: no later call may slip past the probe
        raise InputError(message)

    def _calculator_hessian(self, atoms) -> sp.csr_array | None:
        """The calculator's Hessian, checked; None if the check failed and finite
        differences take over."""
        if self._refused:
            raise InputError(self._refused)
        t0 = time.perf_counter()
        try:
            raw = self.calc.get_hessian(self._atoms(atoms))
        except (NotImplementedError, PropertyNotImplementedError) as exc:
            message = f"{self.name}: get_hessian is not implemented for this calculator ({exc})"
            if self._report["requested"] == "auto" and self.allow_fd:  # auto: the calculator's if it has one
                self._use_calculator = False
                self._report.update(source="finite differences", fallback_reason=message)
                return None
            raise InputError(message) from None
        H, info = hessian_from_layout(raw, len(atoms))
        self._report["hessians"] += 1
        self._report["hessian_time"] += time.perf_counter() - t0
        self._report.update(info)
        if info["committee"] > 1:
            self._report["committee_spread_max_seen"] = max(self._report.get("committee_spread_max_seen", 0.0),
                                                            info["committee_spread"])
        what = f"the Hessian of {self.name} (layout {info['layout']})"
        asym = _asymmetry(H)
        if not asym <= self.hessian_rtol:
            self._fail(f"{what} is not symmetric: ‖H − Hᵀ‖/‖H‖ = {asym:.3g} > hessian_rtol = {self.hessian_rtol:g}")
            return None
        if "check" not in self._report:
            v = np.random.default_rng(0).normal(size=H.shape[0])
            fd = _directional_difference(self.forces, atoms, v, self.fd_step)
            err = float(np.linalg.norm(H @ v - fd) / max(np.linalg.norm(fd), 1e-300))
            self._report["check"] = {"asymmetry": asym, "probe_error": err, "tolerance": self.hessian_rtol,
                                     "probe_step": self.fd_step, "passed": bool(err <= self.hessian_rtol)}
            if not err <= self.hessian_rtol:
                self._fail(f"{what} disagrees with central differences of its forces along a random direction: "
                           f"‖Hv − δF‖/‖δF‖ = {err:.3g} > hessian_rtol = {self.hessian_rtol:g}")
                return None
        return sp.csr_array(0.5 * (H + H.T))

    def _autograd_products(self, atoms):
        """H·V by autograd at ``atoms`` (:mod:`genanalysis.potentials.autograd`), checked on
        first use against central differences of the forces along a random direction."""
        from genanalysis.potentials.autograd import torch_products

        if self._refused:
            raise InputError(self._refused)
        t0 = time.perf_counter()
        product = torch_products(self.calc, self._atoms(atoms))
        self._report["hvp_time"] += time.perf_counter() - t0  # the forward pass with its graph
        if "check" not in self._report:
            v = np.random.default_rng(0).normal(size=3 * len(atoms))
            fd = _directional_difference(self.forces, atoms, v, self.fd_step)
            err = float(np.linalg.norm(product(v) - fd) / max(np.linalg.norm(fd), 1e-300))
            self._report["check"] = {"probe_error": err, "tolerance": self.hessian_rtol, "probe_step": self.fd_step,
                                     "passed": bool(err <= self.hessian_rtol)}
            if not err <= self.hessian_rtol:
                self._refused = (f"the autograd Hessian products of {self.name} disagree with central differences "
                                 f"of its forces along a random direction: ‖Hv − δF‖/‖δF‖ = {err:.3g} > "
                                 f"hessian_rtol = {self.hessian_rtol:g}")
                raise InputError(self._refused)
        return product

    def hessian(self, atoms, fd_step: float | None = None) -> sp.csr_array:
        """The (3n, 3n) Hessian (eV/Å², CSR, atom-major): the calculator's, checked (module
        docstring), unless finite differences are chosen or forced by ``fd_step`` (Å)."""
        self.check_species(atoms)
        if self._autograd and fd_step is None:
            from genanalysis.memory import check_memory

            t0 = time.perf_counter()
            n3 = 3 * len(atoms)
            check_memory(f"the autograd Hessian of {len(atoms):,} atoms (dense (3n)² products)", 2 * 8.0 * n3 * n3)
            H = self._autograd_products(atoms)(np.eye(n3))
            self._report["hessians"] += 1
            self._report["hessian_time"] += time.perf_counter() - t0
            return sp.csr_array(0.5 * (H + H.T))
        if self._use_calculator and fd_step is None:
            H = self._calculator_hessian(atoms)
            if H is not None:
                return H
        if not self.allow_fd and fd_step is None:
            raise InputError(
                f"potential {self.name} has no analytic Hessian (get_hessian) and finite differences "
                "are disabled (allow_fd=False)"
            )
        t0 = time.perf_counter()
        H = finite_difference_hessian(atoms, self.forces, self.fd_step if fd_step is None else fd_step)
        if fd_step is None:
            self._report["hessians"] += 1
            self._report["hessian_time"] += time.perf_counter() - t0
        return H

    def linearise(self, atoms) -> spla.LinearOperator:
        """Hessian-vector products: by autograd (one backward pass each, after one forward
        pass at ``atoms``) if it is used; the calculator's Hessian, assembled once, if that
        is used; else central differences of the forces along v (2 force calls per product,
        step ``fd_step`` along v/max|v|)."""
        self.check_species(atoms)
        if self._autograd:
            product = self._autograd_products(atoms)
            n3 = 3 * len(atoms)

            def apply(V):
                t0 = time.perf_counter()
                out = product(np.asarray(V, dtype=np.float64))
                self._report["hvps"] += 1 if np.ndim(V) == 1 else np.shape(V)[1]
                self._report["hvp_time"] += time.perf_counter() - t0
                return out

            return spla.LinearOperator((n3, n3), matvec=lambda v: apply(np.ravel(v)), rmatvec=lambda v: apply(np.ravel(v)),
                                       matmat=apply, dtype=np.float64)
        if self._use_calculator:
            H = self._calculator_hessian(atoms)
            if H is not None:
                return spla.LinearOperator(H.shape, matvec=lambda v: H @ np.ravel(v),
                                           rmatvec=lambda v: H @ np.ravel(v), matmat=lambda V: H @ V,
                                           dtype=np.float64)
        if not self.allow_fd:
            raise InputError(
                f"potential {self.name} has no analytic Hessian and finite differences are disabled (allow_fd=False)"
            )
        x0 = atoms.copy()
        n3 = 3 * len(atoms)

        def matvec(v):
            t0 = time.perf_counter()
            out = _directional_difference(self.forces, x0, v, self.fd_step)
            self._report["hvps"] += 1
            self._report["hvp_time"] += time.perf_counter() - t0
            return out

        return spla.LinearOperator((n3, n3), matvec=matvec, rmatvec=matvec, dtype=np.float64)

    def equilibrium_lattice_constant(self, lattice: str) -> float:
        if not math.isfinite(self.cutoff):
            raise InputError(
                f"potential {self.name}: give its cutoff (Å) to search for the {lattice} lattice constant"
            )
        return super().equilibrium_lattice_constant(lattice)
