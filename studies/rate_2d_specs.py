"""Write the sweep specs of the training-size rate in the interpolation regime, d = 2
(docs/studies.md §12): studies/rate_2d_{vacancy,interstitial}.toml, the M-convergence
check's studies/rate_2d_{vacancy,interstitial}_mcheck.toml and the interstitial with a
richer model, studies/rate_2d_interstitial_pair96.toml (§12b: the pair radial degree 96,
the one change that brings its training force RMSE below 1e-5 eV/Å).

    python studies/rate_2d_specs.py            # rewrites the files (they are committed)

One spec per test defect, each a zip over (observation set, N, seed): the training set is
the perfect and that defect's N-cells, each relaxed, 30 rattles of 0.005 Å and 4 strains of
±0.5 %, observing E and F; the observation sets add force constants (H) without repeating
any E or F row (``extra`` sets observing only H, on configurations the base set already
holds: the same seeded draws):

* ``EF``: nothing more;
* ``EF+Hlat``: H of the perfect N-cell, relaxed and its 4 strains (one block row each,
  docs/trainingset.md §2);
* ``EFH``: also H of the relaxed defect N-cell.

Rows are normalised per configuration: w_F = 1/N² (a configuration has N² ± 1 atoms and
2N² force components), w_H = 1/N⁴ (its (2N²)² force-constant entries).
"""

from __future__ import annotations

import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
SIZES = (6, 8, 10, 12)
SEEDS = (0, 1, 2, 3, 4)
SETS = ("EF", "EF+Hlat", "EFH")
#: experiment fmax (eV/Å): the vacancy's errors are ~1e-9 Å and need 3e-12 (docs/studies.md
#: §11); the interstitial's models are not in the interpolation regime (errors ≥ 1e-5 Å,
#: residuals ≥ 1e-4 eV/Å), for which 1e-10 is far below the residual
FMAX = {"vacancy": 3e-12, "interstitial": 1e-10}


def extra(obs: str, defect: str) -> str:
    lat = '{ defects = ["perfect"], configs_per_size = 0, strains = { amplitude = 0.005, count = 4 }, observations = "H" }'
    core = (f'{{ defects = ["{defect}"], configs_per_size = 0, strains = {{ amplitude = 0.0, count = 0 }}, '
            'observations = "H" }')
    return {"EF": "[]", "EF+Hlat": f"[{lat}]", "EFH": f"[{lat}, {core}]"}[obs]


_POWERS = {2: ("²", "⁴"), 3: ("³", "⁶")}


def tables(*, potential: str, lattice: str, defect: str, size: int, dim: int, model: str, M: int, atoms: str,
           fmax: float, check_size: int | None = None) -> str:
    """The specs' [trainingset], [fit] and [experiment] tables (the 2D and 3D studies differ
    only in these values): the perfect and ``defect`` N-cells, 30 rattles of 0.005 Å and 4
    strains of ±0.5 %, EF; the linear ``model`` with the first point's per-configuration
    weights w_F = 1/N^d, w_H = 1/N^(2d); the test domain M (``atoms`` the vacancy /
    interstitial counts) relaxed from ū to ``fmax`` eV/Å, with the M-convergence check
    ``check_size`` M′ if given."""
    f, h = _POWERS[dim]
    check = "" if check_size is None else f"\ncheck_size = {check_size}               # M' (cells): the M-convergence check"
    return f'''[trainingset]
potential = "{potential}"
lattice = "{lattice}"
defects = ["perfect", "{defect}"]
{f"size = {size}":<32}# N (zipped)
configs_per_size = 30
rattle = 0.005                  # Å
strains = {{ amplitude = 0.005, count = 4 }}
observations = "EF"

[fit]
model = {{ {model} }}
loss = {{ E = 1.0, F = {1.0 / size**dim!r}, V = 0.0, H = {1.0 / size**(2 * dim)!r} }}   # F = 1/N{f}, H = 1/N{h} (zipped)
validation_fraction = 0.0
rcond = 1e-12

[experiment]
defect = "{defect}"
{f"size = {M}":<32}# M = {M} = 4·N_max ({atoms} atoms)
start = "reference"
fmax = {fmax!r}{check}

'''


def sweep_block(pts, defect: str, dim: int) -> str:
    """The specs' ``[sweep]`` table: a zip over (observation set, N, seed) points, rows
    normalised per configuration (w_F = 1/N^d, w_H = 1/N^(2d))."""
    col = lambda vals: "[\n    " + ",\n    ".join(vals) + ",\n]"  # noqa: E731
    return f'''[sweep]
mode = "zip"
"trainingset.extra" = {col([extra(o, defect) for o, _, _ in pts])}
"trainingset.size" = {col([str(n) for _, n, _ in pts])}
"fit.loss.F" = {col([repr(1.0 / n**dim) for _, n, _ in pts])}
"fit.loss.H" = {col([repr(1.0 / n**(2 * dim)) for _, n, _ in pts])}
seed = {col([str(s) for _, _, s in pts])}
'''


#: the M-convergence check (issue 12 item 4): EF, seed 0, the same models also at M′ = 64
CHECK = dict(size=64, seeds=(0,), sets=("EF",))
#: the study's model (§11, §12b): 293 coefficients, the pair terms of 2·degree = 24 radial functions
MODEL = 'kind = "ace", cutoff = 2.5, degree = 12, body_order = 4, l_max = 2'
#: the richer variants, name suffix → (defect, model): the interstitial's training force RMSE
#: is 5–8e-5 eV/Å with MODEL, limited by the pair terms' radial resolution (the reference's
#: switch on [2.0, 2.5] Å has a jump in its fourth derivative at 2.0 Å, which the interstitial's
#: cells sample and the perfect and vacancy cells hardly do); 96 pair radial functions
#: (365 coefficients) bring it to 3–4e-6 at N = 6–12 (docs/studies.md §12b, the pilot
#: docs/data/rate_2d/rate_2d_interstitial_pair_pilot.json)
VARIANTS = {"pair96": ("interstitial", MODEL + ", pair_degree = 96")}


def spec(defect: str, check: bool = False, variant: str | None = None) -> str:
    seeds, sets = (CHECK["seeds"], CHECK["sets"]) if check else (SEEDS, SETS)
    pts = [(obs, n, s) for s in seeds for obs in sets for n in SIZES]  # seeds outermost: a partial run has whole seeds
    model = MODEL
    name = f"rate_2d_{defect}" + ("_mcheck" if check else "")
    if variant is not None:
        if variant not in VARIANTS or VARIANTS[variant][0] != defect or check:
            raise ValueError(f"variant={variant!r} with defect={defect!r}, check={check}: the variants are "
                             f"{ {k: v[0] for k, v in VARIANTS.items()} } (no M-convergence check)")
        model, name = VARIANTS[variant][1], f"{name}_{variant}"
    return f'''# The training-size rate in the interpolation regime, d = 2 (triangular lattice, builtin:morse),
# test defect: {defect}{"" if variant is None else f", the richer model ({variant})"}; docs/studies.md §12 (issue 12, {"items 3, 4: the M-convergence check" if check else "item 3"}). Written by studies/rate_2d_specs.py.
#   genanalysis run studies/{name}.toml --out results/{name}   # slow: see docs/studies.md §12
#   python studies/rate_2d.py --study --results results/{name}                 # the section's tables
# Observation sets {" / ".join(sets)} as in studies/rate_2d_specs.py; N = {", ".join(map(str, SIZES))}; seeds
# {", ".join(map(str, seeds))}; the model relaxed from ū on M = 48 = 4·N_max{f" and again on M' = {CHECK['size']}" if check else ""}; fmax = {FMAX[defect]:g} eV/Å.
seed = 0

[study]
name = "{name}"
task = "generalisation"
description = "d=2 triangular Morse {defect}: error and its decomposition against N in the interpolation regime, M = 48{"" if variant is None else f" ({variant})"}"

{tables(potential="builtin:morse", lattice="triangular", defect=defect, size=SIZES[0], dim=2,
         model=model, M=48, atoms="2303 / 2305",
         fmax=FMAX[defect], check_size=CHECK["size"] if check else None)}{sweep_block(pts, defect, dim=2)}'''


def main() -> None:
    for defect in FMAX:
        (ROOT / "studies" / f"rate_2d_{defect}.toml").write_text(spec(defect))
        (ROOT / "studies" / f"rate_2d_{defect}_mcheck.toml").write_text(spec(defect, check=True))
    for variant, (defect, _) in VARIANTS.items():
        (ROOT / "studies" / f"rate_2d_{defect}_{variant}.toml").write_text(spec(defect, variant=variant))


if __name__ == "__main__":
    main()
