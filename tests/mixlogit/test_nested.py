"""Nested and cross-nested logit: the kernel against independent formulas, the fits against
Biogeme's published Swissmetro examples (b09nested, b11cnl) and the MNL limit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp

from mixlogit import CrossNestedLogit, EstimationResults, MultinomialLogit, NestedLogit
from mixlogit.datasets import swissmetro_choice_data
from mixlogit.estimation.nested import nested_log_probabilities
from mixlogit.likelihood import x64

VARIABLES = ["ASC_1", "ASC_3", "time", "cost"]


@pytest.fixture(scope="module")
def swissmetro():
    return swissmetro_choice_data(panel=True)


@pytest.fixture(scope="module")
def b09(swissmetro):
    return NestedLogit(VARIABLES, nests={"existing": [1, 3]}).fit(swissmetro)


def _log_g(utility, available, alpha, scale):
    """numpy log G of the cross-nested generating function, one situation."""
    total = []
    for m in range(alpha.shape[1]):
        inside = available & (alpha[:, m] > 0)
        if inside.any():
            s = logsumexp((np.log(alpha[inside, m]) + utility[inside]) / scale[m])
            total.append(scale[m] * s)
    return logsumexp(total)


def test_kernel_matches_two_level_formula_and_generating_function():
    rng = np.random.default_rng(6021)  # a design of its own: 5 alternatives, 3 nests
    num_s, num_j = 40, 5
    utility = rng.normal(0, 1.5, (num_s, num_j))
    available = rng.random((num_s, num_j)) < 0.8
    available[:, 0] = True
    # nested logit: nests {0, 1}, {2, 3, 4} with scales 0.4 and 0.7
    member = np.zeros((num_j, 2), dtype=bool)
    member[[0, 1], 0] = member[[2, 3, 4], 1] = True
    scale = np.array([0.4, 0.7])
    with x64():
        log_p = np.asarray(
            nested_log_probabilities(
                jnp.asarray(utility),
                jnp.asarray(available),
                jnp.asarray(member),
                jnp.zeros((num_j, 2)),
                jnp.asarray(scale),
            )
        )
    for s in range(num_s):
        # P(j) = P(j | nest) P(nest), the textbook form (Train 2009, ch. 4)
        iv = np.array(
            [
                logsumexp(utility[s, member[:, m] & available[s]] / scale[m])
                if (member[:, m] & available[s]).any()
                else -np.inf
                for m in range(2)
            ]
        )
        log_nest = scale * iv - logsumexp(scale * iv)
        for j in range(num_j):
            if not available[s, j]:
                assert log_p[s, j] == -np.inf
                continue
            m = int(np.flatnonzero(member[j])[0])
            expected = utility[s, j] / scale[m] - iv[m] + log_nest[m]
            assert log_p[s, j] == pytest.approx(expected, abs=1e-12)
    # cross-nested: P_j = d log G / d V_j, by central differences of a numpy log G
    member = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 1], [0, 0, 1], [1, 0, 1]], dtype=bool)
    alpha = member * rng.uniform(0.2, 1.0, member.shape)
    alpha /= alpha.sum(axis=1, keepdims=True)
    scale = np.array([0.3, 0.6, 0.9])
    with x64():
        log_p = np.asarray(
            nested_log_probabilities(
                jnp.asarray(utility),
                jnp.asarray(available),
                jnp.asarray(member),
                jnp.asarray(np.log(np.where(member, alpha, 1.0))),
                jnp.asarray(scale),
            )
        )
    step = 1e-6
    for s in range(0, num_s, 3):
        for j in np.flatnonzero(available[s]):
            up, down = utility[s].copy(), utility[s].copy()
            up[j] += step
            down[j] -= step
            derivative = (
                _log_g(up, available[s], alpha, scale) - _log_g(down, available[s], alpha, scale)
            ) / (2 * step)
            # central differences: O(h^2) truncation, ~1e-10 rounding (eps |log G| / h)
            assert np.exp(log_p[s, j]) == pytest.approx(derivative, rel=1e-7, abs=1e-9)
        assert np.exp(log_p[s, available[s]]).sum() == pytest.approx(1.0, abs=1e-12)


def test_kernel_gradient_is_finite_with_empty_nests_and_unavailable_alternatives():
    utility = jnp.array([[0.3, -0.2, 0.5]])
    available = jnp.array([[True, False, True]])  # nest 1 = {alternative 1} is empty here
    member = jnp.array([[True, False], [False, True], [True, False]])

    def chosen(scale):
        return nested_log_probabilities(utility, available, member, jnp.zeros((3, 2)), scale)[0, 0]

    with x64():
        grad = jax.grad(chosen)(jnp.array([0.5, 0.8]))
    assert np.all(np.isfinite(np.asarray(grad))) and float(grad[1]) == 0.0


def test_b09nested_matches_biogeme(b09):
    # Biogeme's example b09nested (Swissmetro, nest "existing" = train and car, MU = 1/lambda):
    # final log likelihood -5236.900; ASC_CAR -0.167, ASC_TRAIN -0.512, B_TIME -0.899,
    # B_COST -0.857, MU 2.05
    assert b09.loglik == pytest.approx(-5236.900, abs=5e-4)
    expected = {"ASC_1": -0.512, "ASC_3": -0.167, "time": -0.899, "cost": -0.857}
    for name, value in expected.items():
        assert b09[name] == pytest.approx(value, abs=6e-4)
    assert 1.0 / b09["lambda.existing"] == pytest.approx(2.05, abs=6e-3)
    assert b09.converged and b09.names[-1] == "lambda.existing"


def test_b11cnl_matches_biogeme(swissmetro):
    # Biogeme's example b11cnl: train in both nests ("existing" with car, "future" with
    # Swissmetro); final log likelihood -5214.049
    model = CrossNestedLogit(VARIABLES, nests={"existing": [1, 3], "future": [1, 2]})
    results = model.fit(swissmetro)
    assert results.names[-3:] == ["lambda.existing", "lambda.future", "alpha.1.existing"]
    assert results.loglik == pytest.approx(-5214.049, abs=5e-4)
    assert 0.0 < results["alpha.1.existing"] < 1.0


def test_unit_scales_are_the_mnl(swissmetro):
    mnl = MultinomialLogit(VARIABLES).fit(swissmetro)
    nested = NestedLogit(VARIABLES, nests={"existing": [1, 3]}).fit(
        swissmetro, fix={"lambda.existing": 1.0}
    )
    assert nested.loglik == pytest.approx(mnl.loglik, abs=1e-8)
    np.testing.assert_allclose(nested.params[:4], mnl.params, atol=1e-6)
    np.testing.assert_allclose(nested.robust_std_errors[:4], mnl.robust_std_errors, rtol=1e-5)


def test_prediction_elasticities_and_persistence(b09, swissmetro, tmp_path):
    probabilities = b09.predict()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-12)
    # the aggregate elasticity of train demand to train time, against finite differences of
    # predict on data with the column moved by +-0.1 %
    elasticity = b09.elasticities("time", changed=[1]).aggregate.loc[1, 1]
    frame = swissmetro.frame
    shares = []
    for factor in (1.001, 0.999):
        moved = frame.copy()
        at_train = moved[swissmetro.alternative_column] == 1
        moved.loc[at_train, "time"] *= factor
        predicted = b09.predict(swissmetro.with_frame(moved))
        shares.append(np.average(predicted[1], weights=swissmetro.weights))
    finite = (np.log(shares[0]) - np.log(shares[1])) / (np.log(1.001) - np.log(0.999))
    assert elasticity == pytest.approx(finite, rel=1e-6)
    path = tmp_path / "b09.json"
    b09.save(path)
    loaded = EstimationResults.load(path, data=swissmetro)
    assert loaded.model.nests == b09.model.nesting.nests
    np.testing.assert_allclose(loaded.predict(swissmetro).to_numpy(), probabilities.to_numpy())


def test_bad_nests_are_named(swissmetro):
    with pytest.raises(ValueError, match=r"alternatives \['1'\] are in several nests"):
        NestedLogit(VARIABLES, nests={"a": [1, 3], "b": [1, 2]})
    with pytest.raises(ValueError, match="nest 'a' has no alternatives"):
        NestedLogit(VARIABLES, nests={"a": []})
    with pytest.raises(ValueError, match=r"nest alternatives \[7\] are not alternatives"):
        NestedLogit(VARIABLES, nests={"a": [1, 7]}).fit(swissmetro)
    with pytest.raises(ValueError, match="nests is empty"):
        NestedLogit(VARIABLES)
