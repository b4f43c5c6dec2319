"""Built-in analytic reference potentials: ``builtin:W``, ``builtin:morse``, ``builtin:lj``.

Units: Å, eV. Cutoff intervals, measured lattice constants and the effect of the
truncation are in docs/potentials.md (measured by ``python -m
genanalysis.potentials.builtin``).
"""

from __future__ import annotations

from genanalysis.potentials.eam import EAMPotential, PairPotential
from genanalysis.potentials.functions import LennardJones, Morse, SmoothCutoff, ZhouEmbedding, ZhouRadial

__all__ = ["BUILTINS", "tungsten_zhou", "morse", "lennard_jones", "ZHOU_W"]

#: Zhou–Johnson–Wadley parameters for W (Phys. Rev. B 69, 144113 (2004), Table III).
#: Lengths Å, energies eV, densities in the paper's units.
ZHOU_W = dict(
    r_e=2.740840, f_e=3.487340, rho_e=37.234847, rho_s=37.234847,
    alpha=8.900114, beta=4.746728, A=0.882435, B=1.394592, kappa=0.139209, lam=0.278417,
    Fn=(-4.946281, -0.148818, 0.365057, -4.432406),
    F=(-4.96, 0.00, 0.661935, 0.348147),
    eta=0.582714, F_e=-4.961306, mass=183.84,
)

#: smooth cutoff of builtin:W: switched from 1 to 0 on [W_CUTOFF_INNER, W_CUTOFF] Å
W_CUTOFF_INNER = 5.5
W_CUTOFF = 6.0


def tungsten_zhou(r_inner: float = W_CUTOFF_INNER, r_outer: float = W_CUTOFF, skin: float | None = None) -> EAMPotential:
    """Analytic EAM for bcc tungsten: X. W. Zhou, R. A. Johnson, H. N. G. Wadley,
    *Misfit-energy-increasing dislocations in vapor-deposited CoFe/NiFe multilayers*,
    Phys. Rev. B 69, 144113 (2004), with the W parameters of their Table III.

    f(r) = f_e exp(−β(r/r_e−1)) / (1+(r/r_e−λ)^20)
    φ(r) = A exp(−α(r/r_e−1)) / (1+(r/r_e−κ)^20) − B exp(−β(r/r_e−1)) / (1+(r/r_e−λ)^20)
    F(ρ) piecewise (ρ_n = 0.85 ρ_e, ρ_0 = 1.15 ρ_e; F_3 on both sides of ρ_e).

    These functions never vanish; f and φ are multiplied by the C³ switch of
    :class:`SmoothCutoff` on [r_inner, r_outer] Å (default [5.5, 6.0]: the five bcc shells
    up to a√3 = 5.48 Å at a = 3.165 Å are inside r_inner, where f ≲ 1e-6 and |φ| ≲ 1e-6 eV;
    the effect on the lattice constant and the vacancy formation energy is in
    docs/potentials.md). Energies eV, lengths Å, mass 183.84 amu.
    """
    p = ZHOU_W
    cut = SmoothCutoff(r_inner, r_outer)
    f = ZhouRadial(p["r_e"], ((p["f_e"], p["beta"], p["lam"]),), cut)
    phi = ZhouRadial(p["r_e"], ((p["A"], p["alpha"], p["kappa"]), (-p["B"], p["beta"], p["lam"])), cut)
    F = ZhouEmbedding(
        rho_e=p["rho_e"], rho_s=p["rho_s"], rho_n=0.85 * p["rho_e"], rho_0=1.15 * p["rho_e"],
        Fn=p["Fn"], F=p["F"], F_e=p["F_e"], eta=p["eta"],
    )
    return EAMPotential(
        name="builtin:W", element="W", cutoff=r_outer, phi=phi, f=f, F=F, skin=skin, mass=p["mass"],
        meta={"reference": "Zhou, Johnson, Wadley, Phys. Rev. B 69, 144113 (2004)",
              "cutoff_interval": (r_inner, r_outer)},
    )


#: builtin:morse parameters: D (eV), α (1/Å), r₀ (Å), switched to 0 on [2.0, 2.5] Å
MORSE = dict(D=1.0, alpha=4.0, r0=1.0, r_inner=2.0, r_outer=2.5)
#: builtin:lj parameters: ε (eV), σ (Å), switched to 0 on [2.0, 2.5] Å
LJ = dict(epsilon=1.0, sigma=1.0, r_inner=2.0, r_outer=2.5)


def morse(D: float = MORSE["D"], alpha: float = MORSE["alpha"], r0: float = MORSE["r0"],
          r_inner: float = MORSE["r_inner"], r_outer: float = MORSE["r_outer"], element: str = "X",
          skin: float | None = None) -> PairPotential:
    """Morse pair potential φ(r) = D(e^{−2α(r−r₀)} − 2e^{−α(r−r₀)}) · S(r), S the C³ switch
    on [r_inner, r_outer]. Defaults (``builtin:morse``): D = 1 eV, α = 4 Å⁻¹, r₀ = 1 Å,
    switch on [2.0, 2.5] Å (the first three neighbour shells of the triangular lattice,
    at a, √3a, 2a with a ≈ 0.99 Å, lie inside r_inner)."""
    phi = Morse(D, alpha, r0, SmoothCutoff(r_inner, r_outer))
    return PairPotential(name="builtin:morse", phi=phi, cutoff=r_outer, element=element, skin=skin,
                         meta={"D": D, "alpha": alpha, "r0": r0, "cutoff_interval": (r_inner, r_outer)})


def lennard_jones(epsilon: float = LJ["epsilon"], sigma: float = LJ["sigma"], r_inner: float = LJ["r_inner"],
                  r_outer: float = LJ["r_outer"], element: str = "X", skin: float | None = None) -> PairPotential:
    """Lennard-Jones φ(r) = 4ε((σ/r)¹² − (σ/r)⁶) · S(r), S the C³ switch on
    [r_inner, r_outer]. Defaults (``builtin:lj``): ε = 1 eV, σ = 1 Å, switch on [2.0, 2.5] Å."""
    phi = LennardJones(epsilon, sigma, SmoothCutoff(r_inner, r_outer))
    return PairPotential(name="builtin:lj", phi=phi, cutoff=r_outer, element=element, skin=skin,
                         meta={"epsilon": epsilon, "sigma": sigma, "cutoff_interval": (r_inner, r_outer)})


#: name after ``builtin:`` -> factory
BUILTINS = {"W": tungsten_zhou, "morse": morse, "lj": lennard_jones}
