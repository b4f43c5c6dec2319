"""Rattled cells of the triangular Morse crystal (d = 2) with their reference E, F, V: the
small training sets of the linear-fit, Fisher-information, composite and network tests."""

from __future__ import annotations

import numpy as np

from genanalysis.data import Configuration
from genanalysis.lattice import defect_cell
from genanalysis.potentials import load_potential


def rattled_morse_cells(count: int, seed: int, *, rattle: float, groups=("perfect", "vacancy"),
                        size: int = 3) -> list[Configuration]:
    """``count`` size-M cells cycling through ``groups`` (defects of the triangular lattice),
    each rattled in-plane by a seeded normal of scale ``rattle`` (Å), observed by
    builtin:morse (E eV, F eV/Å, V eV)."""
    pot = load_potential("builtin:morse")
    a = pot.equilibrium_lattice_constant("triangular")
    rng = np.random.default_rng(seed)
    out = []
    for k in range(count):
        group = groups[k % len(groups)]
        at = defect_cell("triangular", a, size, group, "X")
        at.positions[:, :2] += rng.normal(scale=rattle, size=(len(at), 2))
        ev = pot.observe(at)
        out.append(Configuration(at, group=group, energy=ev.energy, forces=ev.forces, virial=ev.virial))
    return out
