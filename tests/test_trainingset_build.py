"""The training-set builder against the reference: stored observations agree with finite
differences of the reference to ≤ 1e-6 relative, rebuilding does no reference work,
extending evaluates only what is new, failures are reported, bad input is refused first."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from genanalysis.cli import main
from genanalysis.exceptions import InputError
from genanalysis.potentials import load_potential
from genanalysis.trainingset import TrainingSetSpec, build, load_training_set, read_training_set
from genanalysis.trainingset.build import FAILURES_NAME, XYZ_NAME

RTOL = 1e-6


def _spec(**kw) -> TrainingSetSpec:
    base = dict(potential="builtin:W", lattice="bcc", defects=("perfect", "vacancy"), sizes=(2, 3),
                configs_per_size=1, rattle=0.04, strains={"amplitude": 0.01, "count": 1}, seed=3,
                observations={"default": "EFVH"}, fmax=1e-9)
    base.update(kw)
    return TrainingSetSpec(**base)


class Counter:
    """Counts calls of the reference potential's observe/hessian (in-process builds)."""

    def __init__(self, monkeypatch, pot_cls, fail=None):
        self.calls = {"observe": 0, "hessian": 0}
        # the solver's fused energy+forces(+Hessian operator) call is a force evaluation too
        for name, key in (("observe", "observe"), ("energy_forces", "observe"), ("hessian", "hessian")):
            original = getattr(pot_cls, name)  # every Potential has all three

            def wrapped(obj, atoms, *args, _orig=original, _key=key, **kwargs):
                self.calls[_key] += 1
                if fail is not None and fail(atoms):
                    raise FloatingPointError("injected reference failure")
                return _orig(obj, atoms, *args, **kwargs)

            monkeypatch.setattr(pot_cls, name, wrapped)

    @property
    def total(self):
        return sum(self.calls.values())


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("ts_w")
    spec = _spec()
    summary = build(spec, out, workers=1)
    return spec, out, summary, read_training_set(out)


@pytest.fixture(scope="module")
def potential_w():
    return load_potential("builtin:W")


# --------------------------------------------------------------------------- finite differences

def _d(f, h):
    """Fourth-order central difference f'(0) from f(±h), f(±2h)."""
    return (-f(2 * h) + 8 * f(h) - 8 * f(-h) + f(-2 * h)) / (12 * h)


def _energy_along(pot, atoms, v):
    def e(t):
        a = atoms.copy()
        a.positions = atoms.positions + t * v
        return pot.observe(a).energy
    return e


def _strain_energy(pot, atoms, direction):
    def e(t):
        a = atoms.copy()
        F = np.eye(3) + t * direction
        a.set_cell(np.asarray(atoms.cell) @ F.T, scale_atoms=False)
        a.positions = atoms.positions @ F.T
        return pot.observe(a).energy
    return e


def _forces_along(pot, atoms, v):
    def f(t):
        a = atoms.copy()
        a.positions = atoms.positions + t * v
        return np.asarray(pot.observe(a).forces).reshape(-1)
    return f


def test_every_configuration_is_built_with_its_observations(built):
    spec, out, summary, configs = built
    assert len(configs) == spec.n_configurations == summary.n_configurations
    assert summary.failures == []
    for c in configs:
        assert c.observed == "EFVH"
        assert c.group in spec.defects
        assert c.meta["kind"] in ("relaxed", "rattle", "strain")
    sizes = {(c.group, c.meta["size"]) for c in configs}
    assert sizes == {(g, n) for g in spec.defects for n in spec.sizes}
    # the relaxed defect cells are equilibria of the reference
    for c in configs:
        if c.meta["kind"] == "relaxed":
            assert np.abs(c.forces).max() <= 1e-8


def test_forces_are_minus_the_energy_gradient(built, potential_w):
    """F·v = −dE/dt along v (4th-order finite differences), relative error ≤ 1e-6."""
    _, _, _, configs = built
    rng = np.random.default_rng(0)
    checked = 0
    for c in configs:
        f = np.asarray(c.forces)
        if np.linalg.norm(f) < 1e-3:  # equilibria: nothing to compare relative to
            continue
        v = f / np.linalg.norm(f) + 0.3 * rng.normal(size=f.shape) / np.sqrt(f.size)
        fd = -_d(_energy_along(potential_w, c.atoms, v), 1e-3)
        assert abs(fd - np.sum(f * v)) <= RTOL * np.linalg.norm(f) * np.linalg.norm(v)
        checked += 1
    assert checked >= 4


def test_virials_are_minus_the_strain_derivative(built, potential_w):
    """virial_ab = −∂E/∂ε_ab (symmetric strain), relative error ≤ 1e-6 of |virial|."""
    _, _, _, configs = built
    checked = 0
    for c in configs:
        V = np.asarray(c.virial)
        if np.linalg.norm(V) < 1e-3:
            continue
        fd = np.zeros((3, 3))
        for a in range(3):
            for b in range(a, 3):
                d = np.zeros((3, 3))
                d[a, b] = d[b, a] = 0.5 if a != b else 1.0
                fd[a, b] = fd[b, a] = -_d(_strain_energy(potential_w, c.atoms, d), 1e-4)
        assert np.linalg.norm(fd - V) <= RTOL * np.linalg.norm(V), c.meta
        checked += 1
    assert checked >= 4


def test_force_constants_are_minus_the_force_gradient(built, potential_w):
    """H v = −dF/dt along random v, relative error ≤ 1e-6 of |H v|: also for the
    perfect-lattice matrices stored as one block row and expanded."""
    _, _, _, configs = built
    rng = np.random.default_rng(1)
    for c in configs:
        v = rng.normal(size=c.atoms.positions.shape)
        hv = c.hessian @ v.reshape(-1)
        fd = -_d(_forces_along(potential_w, c.atoms, v), 1e-3)
        assert np.linalg.norm(fd - hv) <= RTOL * np.linalg.norm(hv), c.meta


def test_force_constants_are_symmetric_and_obey_the_acoustic_sum_rule(built):
    _, _, _, configs = built
    for c in configs:
        H = c.hessian.toarray()
        scale = np.abs(H).max()
        assert np.abs(H - H.T).max() <= 1e-10 * scale
        n = len(c.atoms)
        asr = H.reshape(3 * n, n, 3).sum(axis=1)  # Σ_k Φ(ℓ, k) = 0: rigid translations cost nothing
        assert np.abs(asr).max() <= 1e-10 * scale


def test_perfect_lattice_force_constants_are_stored_as_one_block_row(built):
    _, out, _, configs = built
    index = json.loads(str(np.load(out / "force_constants.npz")["index"]))
    storage = {e["index"]: e["storage"] for e in index["entries"]}
    for i, c in enumerate(configs):
        expect = "row" if (c.group == "perfect" and c.meta["kind"] != "rattle") else "bsr"
        assert storage[i] == expect, (c.group, c.meta["kind"])


def test_rebuild_of_unchanged_spec_does_no_reference_evaluation(built, monkeypatch, potential_w):
    spec, out, first, _ = built
    before = (out / XYZ_NAME).read_bytes()
    count = Counter(monkeypatch, type(potential_w))
    again = build(spec, out, workers=1)
    assert count.total == 0
    assert again.evaluations["reference_calls"] == 0
    assert again.evaluations["relaxations_done"] == 0
    assert again.evaluations["configs_evaluated"] == 0
    assert again.evaluations["configs_cached"] == spec.n_configurations
    assert (out / XYZ_NAME).read_bytes() == before  # the same set, bit for bit


def test_adding_a_size_evaluates_only_the_new_configurations(tmp_path, monkeypatch, potential_w):
    small = _spec(sizes=(2,), a=3.1648, observations="EFV", strains={"amplitude": 0.01, "count": 1})
    first = build(small, tmp_path, workers=1)
    assert first.evaluations["configs_evaluated"] == small.n_configurations
    count = Counter(monkeypatch, type(potential_w))
    bigger = _spec(sizes=(2, 3), a=3.1648, observations="EFV", strains={"amplitude": 0.01, "count": 1})
    second = build(bigger, tmp_path, workers=1)
    ev = second.evaluations
    new = bigger.n_configurations - small.n_configurations
    assert ev["configs_evaluated"] == new
    assert ev["configs_cached"] == small.n_configurations
    assert ev["relaxations_done"] == 1 and ev["relaxations_cached"] == 1
    assert ev["reference_calls"] == new  # one evaluation (E, F, V together) per new configuration
    assert count.calls["observe"] == new + ev["relaxation_force_evaluations"]
    assert count.calls["hessian"] == 0


def test_parallel_build_matches_in_process_build(tmp_path):
    spec = _spec(sizes=(2,), observations={"perfect": "EFVH", "vacancy": "EF"})
    one = read_training_set(Path(build(spec, tmp_path / "one", workers=1).out_dir))
    two = read_training_set(Path(build(spec, tmp_path / "two", workers=2).out_dir))
    assert len(one) == len(two)
    for a, b in zip(one, two):
        assert a.meta["hash"] == b.meta["hash"]
        # same configurations; values equal up to summation order (the potential's
        # neighbour-list state differs between processes)
        assert a.energy == pytest.approx(b.energy, rel=1e-13)
        assert np.allclose(a.forces, b.forces, rtol=0, atol=1e-12)
        assert (a.hessian is None) == (b.hessian is None)
        if a.hessian is not None:
            assert np.allclose(a.hessian.toarray(), b.hessian.toarray(), rtol=0, atol=1e-10)


def test_failed_reference_evaluation_is_reported_not_dropped(tmp_path, monkeypatch, potential_w):
    spec = _spec(sizes=(2,), a=3.1648, observations="EF")

    def strained(atoms):  # fails on the strained (non-cubic) cells only
        cell = np.asarray(atoms.cell)
        return np.abs(cell - np.diag(np.diag(cell))).max() > 0 or np.ptp(np.diag(cell)) > 0

    with monkeypatch.context() as m:
        Counter(m, type(potential_w), fail=strained)
        summary = build(spec, tmp_path, workers=1)
    failed = [f for f in summary.failures if f["stage"] == "observe"]
    assert len(failed) == len(spec.defects) * len(spec.sizes) * spec.strains.count
    assert all(f["kind"] == "strain" and "injected" in f["error"] for f in failed)
    on_disk = json.loads((tmp_path / FAILURES_NAME).read_text())
    assert [f["hash"] for f in on_disk] == [f["hash"] for f in failed]
    assert summary.n_configurations == spec.n_configurations - len(failed)
    # once the reference works again, exactly the failed configurations are evaluated
    again = build(spec, tmp_path, workers=1)
    assert again.failures == []
    assert again.evaluations["configs_evaluated"] == len(failed)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(observations="EFX"), "unknown observation"),
        (dict(sizes=(0, 2)), "N ≥ 1"),
        (dict(potential="builtin:morse", lattice="triangular", defects=("vacancy",), sizes=(1, 3)), "too small"),
        (dict(configs_per_size=0, strains={"amplitude": 0.0, "count": 0}, include_relaxed=False), "zero configurations"),
        (dict(rattle=-0.01), "rattle"),
        (dict(strains={"amplitude": 0.5, "count": 1}), "strains.amplitude"),
        (dict(lattice="hcp"), "lattice"),
        (dict(defects=("perfect", "divacancy")), "divacancy"),
    ],
)
def test_bad_spec_is_refused_before_any_work(change, message):
    with pytest.raises(InputError, match=message):
        _spec(**change)


def test_potential_lacking_the_element_is_refused_before_any_work(tmp_path, monkeypatch, potential_w):
    count = Counter(monkeypatch, type(potential_w))
    with pytest.raises(InputError, match="Mo"):
        build(_spec(element="Mo"), tmp_path / "x", workers=1)
    assert count.total == 0 and not (tmp_path / "x").exists()


def test_hessian_without_analytic_routine_and_fd_disabled_is_refused(tmp_path, monkeypatch, potential_w):
    monkeypatch.setattr(type(potential_w), "has_analytic_hessian", False, raising=False)
    count = Counter(monkeypatch, type(potential_w))
    with pytest.raises(InputError, match="fd_step"):
        build(_spec(fd_step=0.0), tmp_path / "x", workers=1)
    assert count.total == 0 and not (tmp_path / "x").exists()


def test_finite_difference_force_constants_match_analytic(tmp_path, monkeypatch, potential_w):
    """Without an analytic Hessian the builder uses central differences (one displaced atom
    for the perfect lattice, all atoms otherwise); they agree with the analytic matrix."""
    spec = _spec(sizes=(2,), a=3.1648, configs_per_size=1, strains={"amplitude": 0.01, "count": 1},
                 observations="H", fd_step=1e-4)
    exact = read_training_set(Path(build(spec, tmp_path / "exact", workers=1).out_dir))
    monkeypatch.setattr(type(potential_w), "has_analytic_hessian", False, raising=False)
    fd = read_training_set(Path(build(spec, tmp_path / "fd", workers=1).out_dir))
    for a, b in zip(exact, fd):
        scale = np.abs(a.hessian.toarray()).max()
        assert np.abs(a.hessian.toarray() - b.hessian.toarray()).max() <= 1e-5 * scale
        assert b.meta["hessian_method"] in ("fd", "fd-row")
        assert (b.meta["hessian_method"] == "fd-row") == (a.group == "perfect" and a.meta["kind"] != "rattle")


def test_two_dimensional_set_keeps_atoms_in_the_plane(tmp_path):
    spec = TrainingSetSpec(potential="builtin:morse", lattice="triangular", defects=("perfect", "vacancy"),
                           sizes=(4,), configs_per_size=2, rattle=0.05, strains={"amplitude": 0.02, "count": 2},
                           observations={"perfect": "EFVH", "vacancy": "EFV"})
    summary = build(spec, tmp_path, workers=1)
    assert summary.failures == []
    pot = load_potential("builtin:morse")
    for c in read_training_set(tmp_path):
        assert np.all(c.atoms.positions[:, 2] == 0.0)
        assert np.asarray(c.atoms.cell)[2].tolist() == [0.0, 0.0, 20.0]
        if c.hessian is not None:
            v = np.random.default_rng(2).normal(size=c.atoms.positions.shape)
            v[:, 2] = 0.0
            hv = c.hessian @ v.reshape(-1)
            fd = -_d(_forces_along(pot, c.atoms, v), 1e-3)
            assert np.linalg.norm(fd - hv) <= RTOL * np.linalg.norm(hv)


def test_cli_json_summary_and_load_from_toml(tmp_path, capsys):
    toml = tmp_path / "set.toml"
    toml.write_text(_spec(sizes=(2,), a=3.1648, observations={"perfect": "EV", "vacancy": "EF"}).to_toml())
    out = tmp_path / "out"
    assert main(["trainingset", str(toml), "--out", str(out), "--json", "--workers", "1", "--db"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["counts"]["perfect"]["2"] == {"configurations": 3, "E": 3, "F": 0, "V": 3, "H": 0}
    assert summary["counts"]["vacancy"]["2"] == {"configurations": 3, "E": 3, "F": 3, "V": 0, "H": 0}
    assert all(Path(f).exists() for f in summary["files"])
    assert summary["evaluations"]["configs_evaluated"] == 6
    # the TOML path: built (here: found complete in the cache) and returned as configurations
    configs = load_training_set(toml, out_dir=out, workers=1)
    assert [c.observed for c in configs] == ["EV"] * 3 + ["EF"] * 3
    assert main(["trainingset", str(toml), "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["evaluations"]["configs_evaluated"] == 0


def test_cli_bad_input_exits_2(tmp_path, capsys):
    toml = tmp_path / "bad.toml"
    toml.write_text('potential = "builtin:W"\nlattice = "bcc"\nrattle = -1.0\n')
    assert main(["trainingset", str(toml), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "rattle" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_ase_calculator_without_hessian(tmp_path):
    """An ASE calculator (EMT) as reference: H by finite differences (one displaced atom on the
    perfect lattice), refused before any work when finite differences are disabled."""
    from genanalysis.observe import force_constants

    base = dict(potential="python:ase.calculators.emt:EMT", element="Cu", lattice="fcc", a=3.61,
                defects=("perfect",), sizes=(2,), configs_per_size=1, rattle=0.03,
                strains={"amplitude": 0.01, "count": 1}, observations="EFVH")
    with pytest.raises(InputError, match="no analytic Hessian"):
        build(TrainingSetSpec(**base, fd_step=0.0), tmp_path / "no", workers=1)
    assert not (tmp_path / "no").exists()
    summary = build(TrainingSetSpec(**base), tmp_path / "fd", workers=1)
    assert summary.failures == []
    pot = load_potential(base["potential"])
    for c in read_training_set(tmp_path / "fd"):
        full = force_constants(c.atoms, pot, fd_step=1e-4).toarray()
        assert np.abs(c.hessian.toarray() - full).max() <= 1e-6 * np.abs(full).max()
        expect = "fd-row" if c.meta["kind"] != "rattle" else "fd"
        assert c.meta["hessian_method"] == expect


def test_adding_an_observation_type_evaluates_only_that_type(tmp_path, monkeypatch, potential_w):
    ef = _spec(sizes=(2,), a=3.1648, observations="EF")
    build(ef, tmp_path, workers=1)
    count = Counter(monkeypatch, type(potential_w))
    efh = _spec(sizes=(2,), a=3.1648, observations="EFH")
    summary = build(efh, tmp_path, workers=1)
    assert count.calls["observe"] == 0  # E and F come from the cache
    assert count.calls["hessian"] == efh.n_configurations
    assert summary.evaluations["observations_cached"] == 2 * efh.n_configurations
    assert summary.evaluations["observations_evaluated"] == efh.n_configurations
    frames = (tmp_path / XYZ_NAME).read_text().splitlines()
    assert all(f"spec_hash={summary.spec_hash}" in line for line in frames if "Lattice=" in line)


def test_unconverged_relaxation_is_reported_and_its_cell_skipped(tmp_path, capsys):
    spec = _spec(sizes=(3,), a=3.1648, observations="EF", fmax=1e-12, max_iter=1)
    toml = tmp_path / "s.toml"
    toml.write_text(spec.to_toml())
    assert main(["trainingset", str(toml), "--out", str(tmp_path / "o"), "--json", "--workers", "1"]) == 1
    summary = json.loads(capsys.readouterr().out)
    (fail,) = summary["failures"]
    assert fail["stage"] == "relax" and fail["group"] == "vacancy" and fail["size"] == 3
    assert fail["configurations_skipped"] == spec.configs_per_group and fail["max_force"] > 1e-12
    assert list(summary["counts"]) == ["perfect"]
    assert json.loads((tmp_path / "o" / FAILURES_NAME).read_text()) == summary["failures"]


def test_changing_the_potential_file_invalidates_the_cache(tmp_path, monkeypatch):
    """The cache key holds the SHA-256 of an EAM file's content: the same path with other
    content is another reference and is evaluated again."""
    from genanalysis.potentials.eamfile import write_eam_file

    path = tmp_path / "W.eam.alloy"
    write_eam_file(str(path), load_potential("builtin:W"), "eam/alloy", n_r=2001, n_rho=2001, rho_max=120.0,
                   atomic_numbers=[74])
    spec = _spec(potential=str(path), element="W", defects=("perfect",), sizes=(2,), a=3.1648, observations="EF")
    assert build(spec, tmp_path / "o", workers=1).evaluations["configs_evaluated"] == spec.n_configurations
    assert build(spec, tmp_path / "o", workers=1).evaluations["configs_evaluated"] == 0
    lines = path.read_text().splitlines()
    lines[1] = "a different comment line"
    path.write_text("\n".join(lines) + "\n")
    assert build(spec, tmp_path / "o", workers=1).evaluations["configs_evaluated"] == spec.n_configurations


def test_energy_differences_equal_the_work_of_the_forces(built, potential_w):
    """E(rattled) − E(relaxed) = −∫ F · dx along the straight path (8-point Gauss–Legendre
    on fresh reference forces), relative error ≤ 1e-6: the stored energies are consistent
    with the forces of an independent recomputation, not only with each other."""
    _, _, _, configs = built
    t, w = np.polynomial.legendre.leggauss(8)
    t, w = 0.5 * (t + 1.0), 0.5 * w
    relaxed = {(c.group, c.meta["size"]): c for c in configs if c.meta["kind"] == "relaxed"}
    checked = 0
    for c in configs:
        if c.meta["kind"] != "rattle":
            continue
        r = relaxed[(c.group, c.meta["size"])]
        d = c.atoms.positions - r.atoms.positions
        work = 0.0
        for ti, wi in zip(t, w):
            a = r.atoms.copy()
            a.positions = r.atoms.positions + ti * d
            work += wi * np.sum(np.asarray(potential_w.observe(a).forces) * d)
        de = c.energy - r.energy
        assert abs(de + work) <= RTOL * abs(de)
        checked += 1
    assert checked == 4
