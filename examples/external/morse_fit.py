"""A small external training tool: fits the three parameters of a Morse pair potential
(well depth ε eV, equilibrium distance r₀ Å, stiffness ρ₀) to the energies and forces of an
extxyz training set, and writes them as JSON. It knows nothing of genanalysis: it reads the
exported set with ASE and writes a file, as any MLIP's own training program does, which is
what ``[fit] kind = "external"`` of a sweep runs (docs/external-models.md §5):

    python examples/external/morse_fit.py TRAIN.xyz OUT.json [--valid VALID.xyz] \
        [--energy-key REF_energy] [--forces-key REF_forces] [--rcut1 2.0] [--rcut2 2.5]

``load(path)`` is the loader a sweep names (``load = "python:morse_fit:load"``): it returns
ASE's Morse calculator with the fitted parameters. The cut-off radii, in units of r₀ as
ASE defines them, are fixed, not fitted.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def _observations(atoms, energy_key, forces_key):
    energy = atoms.info.get(energy_key)
    forces = atoms.arrays.get(forces_key)
    return energy, forces


def _residuals(params, frames, rcut1, rcut2, energy_key, forces_key, w_energy):
    from ase.calculators.morse import MorsePotential

    eps, r0, rho0 = params
    calc = MorsePotential(epsilon=eps, r0=r0, rho0=rho0, rcut1=rcut1, rcut2=rcut2)
    out = []
    for atoms in frames:
        e_ref, f_ref = _observations(atoms, energy_key, forces_key)
        a = atoms.copy()
        a.calc = calc
        if e_ref is not None:
            out.append(np.atleast_1d(w_energy * (a.get_potential_energy() - e_ref) / len(a)))
        if f_ref is not None:
            out.append((a.get_forces() - f_ref).ravel())
    return np.concatenate(out)


def fit(frames, *, rcut1=2.0, rcut2=2.5, energy_key="REF_energy", forces_key="REF_forces", w_energy=1.0,
        start=(1.0, 1.0, 4.0)):
    """Least-squares (ε, r₀, ρ₀) on energies per atom (eV) and force components (eV/Å)."""
    from scipy.optimize import least_squares

    res = least_squares(_residuals, np.asarray(start, float), args=(frames, rcut1, rcut2, energy_key, forces_key,
                                                                    w_energy),
                        bounds=([1e-3, 0.3, 0.5], [100.0, 10.0, 50.0]), xtol=1e-12, ftol=1e-12, gtol=1e-12)
    eps, r0, rho0 = (float(x) for x in res.x)
    rms = float(np.sqrt(np.mean(res.fun**2)))
    return {"epsilon": eps, "r0": r0, "rho0": rho0, "rcut1": rcut1, "rcut2": rcut2, "train_rms": rms,
            "converged": bool(res.success), "message": str(res.message)}


def load(path):
    """ASE's Morse calculator with the parameters fitted into ``path`` (JSON)."""
    from ase.calculators.morse import MorsePotential

    with open(path) as fh:
        p = json.load(fh)
    return MorsePotential(epsilon=p["epsilon"], r0=p["r0"], rho0=p["rho0"], rcut1=p["rcut1"], rcut2=p["rcut2"])


def main(argv=None) -> int:
    from ase.io import read

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("train")
    ap.add_argument("out")
    ap.add_argument("--energy-key", default="REF_energy")
    ap.add_argument("--forces-key", default="REF_forces")
    ap.add_argument("--rcut1", type=float, default=2.0)
    ap.add_argument("--rcut2", type=float, default=2.5)
    ap.add_argument("--energy-weight", type=float, default=1.0)
    args = ap.parse_args(argv)
    frames = read(args.train, index=":", format="extxyz")
    if not frames:
        print(f"{args.train}: no configurations", file=sys.stderr)
        return 1
    p = fit(frames, rcut1=args.rcut1, rcut2=args.rcut2, energy_key=args.energy_key, forces_key=args.forces_key,
            w_energy=args.energy_weight)
    if not p["converged"]:
        print(f"the least-squares fit did not converge: {p['message']}", file=sys.stderr)
        return 1
    with open(args.out, "w") as fh:
        json.dump(p, fh, indent=1)
    print(f"fitted ε = {p['epsilon']:.6g} eV, r₀ = {p['r0']:.6g} Å, ρ₀ = {p['rho0']:.6g}; "
          f"training rms {p['train_rms']:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
