"""The Fisher information of a linear fit (genanalysis.identifiability.fisher_information):
the streamed QR's RᵀR against the normal matrix JᵀWJ assembled directly, the partial
informations per observation type summing to the whole, a coefficient with no information
(the constant one-body term under a forces-only loss) leaving the fit unchanged, and the
information linear in a weight. Units: 1/eV² (coefficients in eV)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genanalysis.exceptions import InputError
from genanalysis.fit import LossWeights, ModelSpec, fit_linear
from genanalysis.fitting.loss import select, terms, weighted_kinds
from genanalysis.identifiability import fisher_information
from genanalysis.models.linear import LinearACE
from morsecells import rattled_morse_cells

SPEC = ModelSpec(cutoff=2.5, degree=4, body_order=3, l_max=2)
CACHE: dict = {}


@pytest.fixture(scope="module")
def configs():
    return rattled_morse_cells(4, 0, rattle=0.03, groups=("vacancy", "perfect"))


def _fit(configs, loss):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the forces-only fit leaves the constant undetermined on purpose
        model, _ = fit_linear(configs, SPEC, loss, partial_information=True, design_cache=CACHE)
    return model


def _direct(configs, loss):
    """The weighted design J (rows √w·∂obs/∂θ) stacked explicitly, per observation type."""
    model = LinearACE(SPEC.ace_spec(2))
    rows, rhs = {}, {}
    for conf in configs:
        kinds = weighted_kinds(conf, loss)
        d = model.design(conf.atoms, kinds)
        for b in terms(conf, loss, kinds):
            rows.setdefault(b.code, []).append(b.sqrt_weight[:, None] * select(b, d, conf))
            rhs.setdefault(b.code, []).append(b.sqrt_weight * b.reference)
    return {t: np.vstack(v) for t, v in rows.items()}, {t: np.concatenate(v) for t, v in rhs.items()}


def test_fisher_information_is_the_normal_matrix_and_the_types_sum_to_it(configs):
    loss = LossWeights(E=1.0, F=2.0, V=0.5)
    model = _fit(configs, loss)
    J, _ = _direct(configs, loss)
    normal = sum(j.T @ j for j in J.values())
    info = model.r_factor_.T @ model.r_factor_
    assert np.linalg.norm(info - normal) <= 1e-10 * np.linalg.norm(normal)
    f = fisher_information(model)
    assert f["total"]["trace"] == pytest.approx(np.trace(normal), rel=1e-10)
    ev = np.sort(np.linalg.eigvalsh(normal))[::-1]
    assert np.allclose(f["total"]["eigenvalues"], ev, rtol=1e-6, atol=1e-10 * ev[0])
    assert f["parts_deviation"] <= 1e-12
    assert set(f["per_type"]) == set(J) == {"E", "F", "V"}
    for t, j in J.items():
        assert f["per_type"][t]["trace"] == pytest.approx(np.trace(j.T @ j), rel=1e-10)
        assert f["per_type"][t]["rows"] == len(j)
    for field in ("per_type", "per_group", "per_cell_size"):
        assert sum(v["trace"] for v in f[field].values()) == pytest.approx(f["total"]["trace"], rel=1e-12)
    assert set(f["per_group"]) == {"vacancy", "perfect"} and set(f["per_cell_size"]) == {"8", "9"}
    within = f["total"]["within"]
    assert all(within[f"1e-{k}"] <= within[f"1e-{k + 1}"] for k in range(1, 16)) and within["1e-16"] <= 14
    blocks = [v for k, v in f["per_term"].items() if k.startswith("body order")]
    assert sum(v["trace"] for v in blocks) == pytest.approx(f["total"]["trace"], rel=1e-12)
    for v in f["per_term"].values():  # the information given the others never exceeds the block's own
        assert v["given_others_trace"] <= v["trace"] * (1 + 1e-12)


def test_a_coefficient_without_information_leaves_the_fit_unchanged(configs):
    loss = LossWeights(E=0.0, F=1.0)  # forces do not see the constant one-body coefficient
    model = _fit(configs, loss)
    f = fisher_information(model)
    assert f["uninformed_features"] == ["1b"]
    J, y = _direct(configs, loss)
    assert not np.any(J["F"][:, 0])
    reduced, *_ = np.linalg.lstsq(J["F"][:, 1:], y["F"], rcond=None)  # the fit without that column
    assert model.coef_[0] == 0.0
    assert np.allclose(model.coef_[1:], reduced, rtol=1e-7, atol=1e-9 * np.abs(reduced).max())


@settings(max_examples=5, deadline=None)
@given(st.floats(0.1, 10.0))
def test_information_is_linear_in_a_weight(configs, c):
    base = fisher_information(_fit(configs, LossWeights(E=1.0, F=1.0)))
    scaled = fisher_information(_fit(configs, LossWeights(E=1.0, F=c)))
    assert scaled["per_type"]["F"]["trace"] == pytest.approx(c * base["per_type"]["F"]["trace"], rel=1e-10)
    assert scaled["per_type"]["E"]["trace"] == pytest.approx(base["per_type"]["E"]["trace"], rel=1e-10)
    assert np.allclose(scaled["per_type"]["F"]["eigenvalues"], c * np.array(base["per_type"]["F"]["eigenvalues"]),
                       rtol=1e-8, atol=1e-10 * c * base["per_type"]["F"]["eigenvalues"][0])


def test_without_an_r_factor_the_fisher_information_is_an_input_error():
    with pytest.raises(InputError, match="R factor"):
        fisher_information(LinearACE(SPEC.ace_spec(2)))


def test_fit_command_writes_fisher_json(tmp_path):
    import json

    from clirun import genanalysis, morse_training_set

    def run(*args):
        return genanalysis(tmp_path, *args)

    morse_training_set(tmp_path, '[observations]\nperfect = "EFV"\nvacancy = "EF"\n')
    (tmp_path / "fit.toml").write_text('training_set = "ts"\nvalidation_fraction = 0.0\n[model]\ncutoff = 2.5\n'
                                       'degree = 4\nbody_order = 3\nl_max = 2\n[loss]\nE = 1.0\nF = 1.0\nV = 0.1\n')
    p = run("fit", "fit.toml", "--out", "model", "--fisher")
    assert p.returncode == 0, p.stderr
    f = json.loads((tmp_path / "model" / "fisher.json").read_text())
    assert set(f["per_type"]) == {"E", "F", "V"} and set(f["per_group"]) == {"perfect", "vacancy"}
    assert f["parts_deviation"] <= 1e-12 and f["fit_hash"] == json.loads((tmp_path / "model" / "report.json")
                                                                         .read_text())["fit_hash"]
