"""Write the sweep specs of the training-size rate in the interpolation regime, d = 3
(docs/studies.md §12d): studies/rate_3d_{vacancy,interstitial}.toml.

    python studies/rate_3d_specs.py            # rewrites the six files (they are committed)

Per test defect three specs: ``rate_3d_{defect}`` (seeds 0, 1), ``rate_3d_{defect}_more``
(seeds 2, 3, 4; the same points otherwise) and ``rate_3d_{defect}_mcheck`` (the
M-convergence check: EF, seed 0, also at M′ = 32).

The 2D study's design (studies/rate_2d_specs.py) on bcc W (``builtin:W``): one spec per test
defect, a zip over (observation set, N, seed); the training set is the perfect and that
defect's N-cells, each relaxed, 30 rattles of 0.005 Å and 4 strains of ±0.5 %, observing E
and F; ``EF+Hlat`` adds H of the perfect N-cell (relaxed and its 4 strains), ``EFH`` also H
of the relaxed defect N-cell (the same ``extra`` sets as in 2D). The model is the 3D width's
(studies/identifiability_width.py: cutoff 4.6 Å, r_in 2.0 Å, degree 12, body order 4,
l_max 2, 300 coefficients). Rows are normalised per configuration: w_F = 1/N³ (a
configuration has 2N³ ± 1 atoms), w_H = 1/N⁶. Test domain M = 24 = 4·N_max (27 647 / 27 649
atoms), the model relaxed from ū.
"""

from __future__ import annotations

import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
_spec2 = importlib.util.spec_from_file_location("rate_2d_specs", ROOT / "studies" / "rate_2d_specs.py")
rate_2d_specs = importlib.util.module_from_spec(_spec2)
_spec2.loader.exec_module(rate_2d_specs)

SIZES = (3, 4, 5, 6)
#: the seeds and sets run: sized by the measured cost of one task (docs/studies.md §12d)
SEEDS = (0, 1)
#: the further seeds, a spec of their own (``rate_3d_{defect}_more``) so that the first
#: two seeds' results directories stay valid: together the five seeds issue 12 asks for
MORE_SEEDS = (2, 3, 4)
SETS = ("EF", "EF+Hlat", "EFH")
M = 24
FMAX = {"vacancy": 1e-10, "interstitial": 1e-10}
#: the M-convergence check (issue 12 item 4): EF, seed 0, the same models also at M′ = 32
#: (65 535 / 65 537 atoms)
CHECK = dict(size=32, seeds=(0,), sets=("EF",))
VARIANTS = {"": (SEEDS, SETS, None), "_more": (MORE_SEEDS, SETS, None),
            "_mcheck": (CHECK["seeds"], CHECK["sets"], CHECK["size"])}


def spec(defect: str, variant: str = "") -> str:
    seeds, sets, check_size = VARIANTS[variant]
    pts = [(obs, n, s) for s in seeds for obs in sets for n in SIZES]  # seeds outermost: a partial run has whole seeds
    name = f"rate_3d_{defect}{variant}"
    return f'''# The training-size rate in the interpolation regime, d = 3 (bcc W, builtin:W), test defect:
# {defect}; docs/studies.md §12d (issue 12, item 3). Written by studies/rate_3d_specs.py.
#   genanalysis run studies/{name}.toml --out results/{name}   # slow: see docs/studies.md §12d
#   python studies/rate_2d.py --study --dim 3 --results results/{name} # the section's tables
# Observation sets {" / ".join(sets)} as in studies/rate_3d_specs.py; N = {", ".join(map(str, SIZES))}; seeds
# {", ".join(map(str, seeds))}; the model relaxed from ū on M = {M} = 4·N_max{f" and again on M' = {check_size}" if check_size else ""}; fmax = {FMAX[defect]:g} eV/Å.
seed = 0

[study]
name = "{name}"
task = "generalisation"
description = "d=3 bcc W {defect}: error and its decomposition against N in the interpolation regime, M = {M}"

{rate_2d_specs.tables(potential="builtin:W", lattice="bcc", defect=defect, size=SIZES[0], dim=3,
                      model='kind = "ace", cutoff = 4.6, degree = 12, body_order = 4, l_max = 2, r_in = 2.0', M=M,
                      atoms="27647 / 27649", fmax=FMAX[defect], check_size=check_size)}{rate_2d_specs.sweep_block(pts, defect, dim=3)}'''


def main() -> None:
    for defect in FMAX:
        for variant in VARIANTS:
            (ROOT / "studies" / f"rate_3d_{defect}{variant}.toml").write_text(spec(defect, variant))


if __name__ == "__main__":
    main()
