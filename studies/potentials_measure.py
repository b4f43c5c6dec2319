"""Measurements quoted in docs/potentials.md: ``python studies/potentials_measure.py``.

Prints (eV, Å, seconds):

1. equilibrium lattice constants and energies per atom of the built-in potentials;
2. the effect of the smooth cutoff of ``builtin:W`` on the bcc lattice constant and on the
   vacancy formation energy (unrelaxed and relaxed, n = 4 cell), against the same
   functions switched off only at 8.5–9 Å (where they are < 1e-12);
3. builtin:W against the tabulated ``W_zhou.eam.alloy`` (if installed);
4. the speed of our tabulated-EAM force call against matscipy's ``EAM`` calculator on the
   same file (``W_zhou.eam.alloy`` from Debian's lammps-data if installed, otherwise
   builtin:W tabulated onto a 10 001-point setfl file), 2000-atom bcc W cell.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

from genanalysis.lattice import defect_cell, perfect_cell
from genanalysis.potentials import load_potential
from genanalysis.potentials.builtin import lennard_jones, morse, tungsten_zhou

W_ZHOU_FILE = "/usr/share/lammps/potentials/W_zhou.eam.alloy"


def _best_time(fn, repeat: int) -> float:
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def lattice_constants() -> None:
    print("## equilibrium lattice constants (root of the hydrostatic virial)")
    print(f"{'potential':16s} {'lattice':11s} {'a (Å)':>18s} {'E/atom (eV)':>14s}")
    for pot, lattices in [(tungsten_zhou(), ["bcc"]), (morse(), ["triangular", "fcc"]),
                          (lennard_jones(), ["triangular", "fcc"])]:
        for lat in lattices:
            a = pot.equilibrium_lattice_constant(lat)
            at = perfect_cell(lat, a, 1, pot.species[0])
            print(f"{pot.name:16s} {lat:11s} {a:18.12f} {pot.observe(at).energy / len(at):14.9f}")


def w_truncation(relaxed: bool) -> None:
    print("\n## builtin:W: effect of the smooth cutoff (bcc, vacancy in the n = 4 cell)")
    rows = []
    for r_in, r_out in [(8.5, 9.0), (5.5, 6.0), (5.0, 5.5), (4.6, 5.1)]:
        pot = tungsten_zhou(r_in, r_out)
        a = pot.equilibrium_lattice_constant("bcc")
        perf = perfect_cell("bcc", a, 4, "W")
        vac = defect_cell("bcc", a, 4, "vacancy", "W")
        e_at = pot.observe(perf).energy / len(perf)
        ef = pot.observe(vac).energy - len(vac) * e_at
        ef_rel = np.nan
        if relaxed:
            from genanalysis.defect import solve_defect

            ef_rel = solve_defect(pot, "bcc", a, "vacancy", 4, fmax=1e-8).formation_energy
        rows.append((r_in, r_out, a, e_at, ef, ef_rel))
    ref = rows[0]
    print(f"{'switch (Å)':>12s} {'a (Å)':>16s} {'Δa (Å)':>10s} {'E/atom':>13s} {'ΔE/atom':>10s} "
          f"{'E_f unrel':>12s} {'ΔE_f':>10s} {'E_f relaxed':>12s} {'ΔE_f rel':>10s}")
    for r_in, r_out, a, e_at, ef, efr in rows:
        print(f"{r_in:5.1f}–{r_out:<5.1f} {a:16.10f} {a - ref[2]:10.2e} {e_at:13.8f} {e_at - ref[3]:10.2e} "
              f"{ef:12.8f} {ef - ref[4]:10.2e} {efr:12.8f} {efr - ref[5]:10.2e}")


def compare_w_zhou() -> None:
    """builtin:W against the tabulated W_zhou.eam.alloy, function by function."""
    if not os.path.exists(W_ZHOU_FILE):
        print(f"\n## builtin:W vs W_zhou.eam.alloy: skipped ({W_ZHOU_FILE} not installed)")
        return
    tab, w = load_potential(W_ZHOU_FILE), tungsten_zhou()
    print("\n## builtin:W vs W_zhou.eam.alloy")
    r = np.linspace(1.5, 5.5, 4001)
    print(f"max |Δφ| on 1.5–5.5 Å: {np.abs(tab.phi(r)[0] - w.phi(r)[0]).max():.1e} eV; "
          f"max |Δf|: {np.abs(tab.f(r)[0] - w.f(r)[0]).max():.1e}")
    a = w.equilibrium_lattice_constant("bcc")
    at = perfect_cell("bcc", a, 1, "W")
    print(f"E/atom at a = {a:.9f} Å: builtin {w.observe(at).energy / 2:.9f} eV, "
          f"file {tab.observe(at).energy / 2:.9f} eV")
    rho_e = 37.234847
    x = np.array([0.8, 0.85, 0.9, 1.0, 1.1, 1.149, 1.151, 1.2, 1.4, 60 / rho_e])
    d = tab.F(x * rho_e)[0] - w.F(x * rho_e)[0]
    print("ρ/ρ_e:          " + " ".join(f"{v:9.3f}" for v in x))
    print("F_file − F (eV):" + " ".join(f"{v:9.1e}" for v in d))


def speed(n: int, repeat: int) -> None:
    from matscipy.calculators.eam import EAM

    print(f"\n## tabulated EAM force call, bcc W n = {n} ({2 * n**3} atoms), best of {repeat}")
    tmp = None
    path = W_ZHOU_FILE
    if not os.path.exists(path):
        from genanalysis.potentials.eamfile import write_eam_file

        tmp = tempfile.mkdtemp()
        path = os.path.join(tmp, "W.eam.alloy")
        write_eam_file(path, tungsten_zhou(), "eam/alloy", n_r=10001, n_rho=10001, rho_max=400.0,
                       atomic_numbers=[74])
    pot = load_potential(path)
    print(f"file: {os.path.basename(path)} ({pot.meta['n_r']} r points, cutoff {pot.cutoff} Å)")
    atoms = perfect_cell("bcc", 3.1652, n, "W")
    atoms.positions += np.random.default_rng(0).normal(scale=0.01, size=atoms.positions.shape)
    pot.observe(atoms)  # build the neighbour list once; later calls reuse it
    t_ours = _best_time(lambda: pot.observe(atoms), repeat)
    ref = atoms.copy()
    ref.numbers[:] = pot.meta["file_atomic_number"]
    calc = EAM(path)
    t_ms = _best_time(lambda: calc.calculate(ref, ["energy", "forces"], ["positions"]), max(2, repeat // 3))
    pot_fresh = load_potential(path)
    t_nl = _best_time(lambda: pot_fresh._neighbours._build(atoms), repeat)
    op = pot.linearise(atoms)
    v = np.ones(3 * len(atoms))
    t_mv = _best_time(lambda: op @ v, repeat)
    t_lin = _best_time(lambda: pot.linearise(atoms), repeat)
    t_h = _best_time(lambda: pot.hessian(atoms), 1)
    print(f"genanalysis evaluate (E, F, virial, site energies): {t_ours:.4f} s")
    print(f"matscipy EAM calculate (E, F, stress):             {t_ms:.4f} s")
    print(f"ratio matscipy / genanalysis:                      {t_ms / t_ours:.1f}")
    print(f"neighbour-list build (matscipy, cutoff + skin):     {t_nl:.4f} s")
    print(f"linearise() setup: {t_lin:.4f} s; Hessian-vector product: {t_mv:.4f} s; "
          f"sparse Hessian assembly: {t_h:.2f} s")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--no-relax", action="store_true", help="skip the relaxed vacancy formation energies")
    p.add_argument("--size", type=int, default=10, help="bcc cell size n of the speed test (2n³ atoms)")
    p.add_argument("--repeat", type=int, default=7)
    args = p.parse_args(argv)
    lattice_constants()
    w_truncation(relaxed=not args.no_relax)
    compare_w_zhou()
    speed(args.size, args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
