"""Training-set files: write → read is exact (extxyz, force-constant npz, ase.db), the
block-sparse and phonopy layouts agree, and translation-invariant storage expands exactly."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from ase.io import read as ase_read
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genanalysis.data import Configuration
from genanalysis.exceptions import InputError
from genanalysis.lattice import perfect_cell
from genanalysis.trainingset import fc as fcmod
from genanalysis.trainingset import io as tio
from ase import Atoms

finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6, width=64)
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _random_hessian(rng, n, density=0.5):
    """A random symmetric block-sparse (3n × 3n) matrix with some structurally empty blocks."""
    mask = rng.random((n, n)) < density
    mask = mask | mask.T
    np.fill_diagonal(mask, True)
    dense = rng.normal(size=(3 * n, 3 * n)) * np.kron(mask, np.ones((3, 3)))
    dense = dense + dense.T
    return sp.csr_array(dense)


@st.composite
def configurations(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    count = draw(st.integers(1, 3))
    out = []
    for _ in range(count):
        n = draw(st.integers(1, 6))
        cell = np.diag(rng.uniform(3, 9, 3)) + rng.normal(scale=0.3, size=(3, 3))
        pbc = draw(st.sampled_from([(True, True, True), (True, True, False)]))
        symbols = draw(st.lists(st.sampled_from(["W", "Mo", "X", "Fe"]), min_size=n, max_size=n))
        atoms = Atoms(symbols=symbols, positions=rng.normal(scale=3.0, size=(n, 3)) * draw(finite.filter(lambda x: abs(x) < 1e3)),
                      cell=cell, pbc=pbc)
        atoms.arrays["site_index"] = rng.integers(-1, 50, n)
        atoms.info.update(lattice=draw(st.sampled_from(["bcc", "fcc", "triangular"])), a=float(rng.uniform(2, 5)),
                          n=int(rng.integers(1, 9)), dim=int(rng.integers(2, 4)),
                          defect=draw(st.sampled_from(["perfect", "vacancy", "interstitial:dumbbell110"])),
                          defect_centre=rng.normal(size=3).tolist(), vacant_sites=[int(i) for i in rng.integers(0, 9, rng.integers(0, 3))],
                          note=draw(st.sampled_from(["a b", "1.5", "T", "plain", "quo\"te", "json:x"])))
        have = draw(st.sets(st.sampled_from("EFVHW")))
        c = Configuration(
            atoms=atoms, group=draw(st.sampled_from(["perfect", "vacancy", "interstitial:dumbbell110"])),
            energy=draw(finite) if "E" in have else None,
            forces=rng.normal(size=(n, 3)) * 10.0 ** rng.integers(-12, 3) if "F" in have else None,
            virial=rng.normal(size=(3, 3)) if "V" in have else None,
            hessian=_random_hessian(rng, n) if "H" in have else None,
            atom_weights=rng.random(n) if "W" in have else None,
            meta={"size": int(rng.integers(1, 9)), "kind": "rattle", "index": int(rng.integers(0, 5)),
                  "hash": "ab" * 8, "strain": rng.normal(size=(3, 3)).tolist(), "flag": bool(rng.integers(0, 2))},
        )
        out.append(c)
    return out


def _same_config(a: Configuration, b: Configuration, *, hessian=True):
    assert a.group == b.group
    assert a.atoms.get_chemical_symbols() == b.atoms.get_chemical_symbols()
    assert np.array_equal(a.atoms.positions, b.atoms.positions)
    assert np.array_equal(np.asarray(a.atoms.cell), np.asarray(b.atoms.cell))
    assert np.array_equal(a.atoms.pbc, b.atoms.pbc)
    assert np.array_equal(a.atoms.arrays["site_index"], b.atoms.arrays["site_index"])
    assert a.atoms.info == b.atoms.info
    assert a.observed.replace("H", "") == b.observed.replace("H", "")
    assert a.energy == b.energy
    for name in ("forces", "virial", "atom_weights"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None)
        if x is not None:
            assert np.array_equal(np.asarray(x), np.asarray(y))
    if hessian:
        assert (a.hessian is None) == (b.hessian is None)
        if a.hessian is not None:
            assert np.array_equal(a.hessian.toarray(), b.hessian.toarray())


@SETTINGS
@given(configs=configurations(), preset=st.sampled_from(sorted(tio.KEY_PRESETS)))
def test_extxyz_round_trip_is_exact(tmp_path, configs, preset):
    path = tio.write_extxyz(tmp_path / f"set_{preset}.xyz", configs, keys=preset, spec_hash="f" * 64)
    back = tio.read_extxyz(path, keys=preset)
    assert len(back) == len(configs)
    for a, b in zip(configs, back):
        _same_config(a, b, hessian=False)
        assert b.meta.pop("spec_hash") == "f" * 64
        assert b.meta == a.meta


@SETTINGS
@given(configs=configurations())
def test_force_constants_round_trip_is_exact(tmp_path, configs):
    path = tio.write_force_constants(tmp_path / "fc.npz", configs)
    back = tio.read_force_constants(path)
    assert sorted(back) == [i for i, c in enumerate(configs) if c.hessian is not None]
    for i, h in back.items():
        assert np.array_equal(h.toarray(), configs[i].hessian.toarray())
    dense = tio.read_force_constants(path, layout="phonopy")
    for i, fc in dense.items():
        n = len(configs[i].atoms)
        assert fc.shape == (n, n, 3, 3)
        # phonopy's convention: fc[i, j, a, b] = ∂²E/∂u_{i,a}∂u_{j,b}
        H = configs[i].hessian.toarray()
        ii, jj, aa, bb = (rng_idx % m for rng_idx, m in zip((1, 2, 0, 2), (n, n, 3, 3)))
        assert fc[ii, jj, aa, bb] == H[3 * ii + aa, 3 * jj + bb]
        assert np.array_equal(fcmod.from_phonopy(fc).toarray(), H)


@SETTINGS
@given(configs=configurations())
def test_phonopy_layout_file_round_trip(tmp_path, configs):
    path = tio.write_force_constants(tmp_path / "fc_ph.npz", configs, layout="phonopy")
    back = tio.read_force_constants(path)
    for i, h in back.items():
        assert np.array_equal(h.toarray(), configs[i].hessian.toarray())


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(configs=configurations())
def test_ase_db_round_trip_is_exact(tmp_path, configs):
    path = tio.write_db(tmp_path / "set.db", configs, spec_hash="e" * 64)
    back = tio.read_db(path)
    assert len(back) == len(configs)
    for a, b in zip(configs, back):
        _same_config(a, b)
        assert b.meta == a.meta


def test_extxyz_is_readable_by_ase_with_mace_keys(tmp_path):
    """The file is standard extxyz: ASE parses positions, cell, pbc, the per-atom forces and
    config_type exactly as written."""
    rng = np.random.default_rng(0)
    atoms = perfect_cell("bcc", 3.1, 2, "W")
    atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape)
    c = Configuration(atoms=atoms, group="perfect", energy=-12.5, forces=rng.normal(size=(len(atoms), 3)),
                      virial=rng.normal(size=(3, 3)))
    path = tio.write_extxyz(tmp_path / "m.xyz", [c], keys="mace")
    a = ase_read(path, index=0, format="extxyz")
    assert np.array_equal(a.positions, atoms.positions)
    assert np.array_equal(np.asarray(a.cell), np.asarray(atoms.cell))
    assert a.info["config_type"] == "perfect"
    assert a.info["REF_energy"] == -12.5
    assert np.array_equal(a.arrays["REF_forces"], c.forces)
    vol = atoms.get_volume()
    assert np.allclose(np.asarray(a.info["REF_stress"]).reshape(3, 3), -c.virial / vol, rtol=0, atol=1e-15)


@pytest.mark.parametrize("name", ["lattice", "properties", "PBC"])
def test_info_keys_that_readers_confuse_with_the_header_are_escaped(tmp_path, name):
    """Some extxyz readers match ``Lattice``, ``Properties`` and ``pbc`` without regard to
    case, so ``lattice=bcc`` (every built cell carries ``info['lattice']``) read as a
    malformed cell there. Such keys are written as ``info_<name>`` and read back exactly."""
    atoms = perfect_cell("bcc", 3.1, 2, "W")
    atoms.info[name] = "bcc"
    c = Configuration(atoms=atoms, group="perfect", energy=-1.0)
    path = tio.write_extxyz(tmp_path / "m.xyz", [c], keys="mace")
    header = path.read_text().splitlines()[1]
    keys = [tok.split("=")[0] for tok in header.split() if "=" in tok]
    clash = [k for k in keys if k.lower() in ("lattice", "properties", "pbc")]
    assert sorted(clash) == ["Lattice", "Properties", "pbc"] and f"info_{name}" in keys
    assert tio.read_extxyz(path, keys="mace")[0].atoms.info[name] == "bcc"
    c.atoms.info = {f"info_{name}": 1}  # the escaped name itself is refused, so reading is unambiguous
    with pytest.raises(InputError, match=f"info_{name}"):
        tio.write_extxyz(tmp_path / "n.xyz", [c])


def test_virial_is_recovered_from_stress_when_no_virial_key(tmp_path):
    c = Configuration(atoms=perfect_cell("fcc", 3.6, 1, "X"), group="perfect", virial=np.arange(9.0).reshape(3, 3))
    path = tio.write_extxyz(tmp_path / "s.xyz", [c], keys="mace")
    text = path.read_text().replace("REF_virials=", "OTHER=")
    path.write_text(text)
    (b,) = tio.read_extxyz(path, keys="mace")
    assert np.allclose(b.virial, c.virial, rtol=1e-14, atol=1e-12)


def test_unknown_key_preset_and_layout_are_refused(tmp_path):
    with pytest.raises(InputError, match="preset"):
        tio.write_extxyz(tmp_path / "x.xyz", [], keys="gap")
    with pytest.raises(InputError, match="layout"):
        tio.write_force_constants(tmp_path / "x.npz", [], layout="dense")
