"""Multinomial logit against published figures and an independent numpy/scipy implementation."""

import numpy as np
import pytest
from scipy import optimize
from scipy.special import logsumexp

from mixlogit import MultinomialLogit
from mixlogit.data import ChoiceData
from mixlogit.datasets import load_electricity, swissmetro_choice_data

ELECTRICITY_VARIABLES = ["pf", "cl", "loc", "wk", "tod", "seas"]


@pytest.fixture(scope="module")
def electricity():
    return ChoiceData(
        load_electricity(), choice="choice", alternative="alt", situation="chid", panel="id"
    )


@pytest.fixture(scope="module")
def electricity_mnl(electricity):
    return MultinomialLogit(ELECTRICITY_VARIABLES).fit(electricity)


def numpy_mnl(arrays):
    """Independent MNL: scipy BFGS on a numpy log-likelihood, numeric Hessian."""
    X, chosen, available = arrays.X, arrays.chosen, arrays.available

    def negll(beta):
        v = np.where(available, X @ beta, -np.inf)
        return -np.sum(v[np.arange(len(chosen)), chosen] - logsumexp(v, axis=1))

    result = optimize.minimize(negll, np.zeros(X.shape[2]), method="BFGS", options={"gtol": 1e-8})
    return result.x, -result.fun


def test_electricity_mnl_matches_published_loglik_and_numpy(electricity, electricity_mnl):
    # published: mlogit / xlogit documentation, LL -4958.649
    assert electricity_mnl.loglik == pytest.approx(-4958.649, abs=0.01)
    beta, ll = numpy_mnl(electricity.to_arrays(ELECTRICITY_VARIABLES))
    np.testing.assert_allclose(electricity_mnl.params, beta, rtol=1e-4, atol=1e-5)
    assert electricity_mnl.loglik == pytest.approx(ll, abs=1e-6)
    assert electricity_mnl.converged
    assert electricity_mnl.params.dtype == np.float64


def test_mnl_standard_errors_match_numeric_hessian_and_sandwich(electricity, electricity_mnl):
    arrays = electricity.to_arrays(ELECTRICITY_VARIABLES)
    X, chosen, available = arrays.X, arrays.chosen, arrays.available
    beta = electricity_mnl.params
    v = np.where(available, X @ beta, -np.inf)
    prob = np.exp(v - logsumexp(v, axis=1, keepdims=True))
    xbar = np.einsum("sj,sjk->sk", prob, X)
    dev = X - xbar[:, None, :]
    hessian = -np.einsum("sj,sjk,sjl->kl", prob, dev, dev)  # analytic MNL Hessian
    cov = np.linalg.inv(-hessian)
    np.testing.assert_allclose(electricity_mnl.cov, cov, rtol=1e-5)
    # cluster-robust by person: sum each person's scores
    scores = X[np.arange(len(chosen)), chosen] - xbar
    clustered = np.zeros((arrays.num_panels, len(beta)))
    np.add.at(clustered, arrays.panel, scores)
    robust = cov @ (clustered.T @ clustered) @ cov
    np.testing.assert_allclose(electricity_mnl.robust_cov, robust, rtol=1e-5)


def test_swissmetro_mnl_matches_biogeme_b01logit():
    data = swissmetro_choice_data(panel=True)
    results = MultinomialLogit(["ASC_1", "ASC_3", "time", "cost"]).fit(data)
    # Biogeme 3 example b01logit: final log likelihood -5331.252, estimates below
    assert results.loglik == pytest.approx(-5331.252, abs=1e-3)
    expected = {"ASC_1": -0.701, "ASC_3": -0.155, "time": -1.28, "cost": -1.08}
    for name, value in expected.items():
        assert results[name] == pytest.approx(value, abs=0.006)
    text = str(results)
    assert "Log-likelihood: -5331.25" in text and "ASC_1" in text
    # summary() is the parameter table with the 95% Wald interval (the Bayesian contract),
    # built on the robust SE that the table leads with
    table = results.summary()
    se = table.loc["ASC_1", "robust_std_err"]
    assert table.loc["ASC_1", "q2.5%"] == pytest.approx(results["ASC_1"] - 1.959963984540054 * se)
    assert table.loc["ASC_1", "q97.5%"] == pytest.approx(results["ASC_1"] + 1.959963984540054 * se)


def test_old_optimiser_keywords_warn_and_mean_the_same(electricity, electricity_mnl):
    with pytest.warns(DeprecationWarning) as caught:
        old = MultinomialLogit(ELECTRICITY_VARIABLES).fit(
            electricity, gtol=1e-6, maxiter=2000, hessian=False
        )
    assert {str(w.message) for w in caught} == {
        "MultinomialLogit.fit: gtol= is deprecated, use tolerance=1e-06",
        "MultinomialLogit.fit: maxiter= is deprecated, use max_iterations=2000",
    }
    np.testing.assert_array_equal(old.params, electricity_mnl.params)
    with pytest.raises(TypeError, match="unexpected keyword arguments"):
        MultinomialLogit(ELECTRICITY_VARIABLES).fit(electricity, g_tol=1e-6)
