"""BayesianResults.predict and market_shares: the classical contract, checked against the
classical MNL on the same data (seed 8127, fresh) and on scenario data without choices."""

import warnings

import numpy as np
import pytest

from mixlogit import ChoiceData, MultinomialLogit, simulate_choices


@pytest.fixture(scope="module")
def fits():
    model = MultinomialLogit(["x1", "price"])
    data = simulate_choices(model, {"x1": 0.7, "price": -1.2}, num_people=150, seed=8127)
    classical = model.fit(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bayes = model.fit(data, method="nuts", num_warmup=200, num_samples=200, num_chains=1)
    return data, classical, bayes


def test_predict_matches_the_classical_mnl(fits):
    data, classical, bayes = fits
    predicted = bayes.predict(data)
    assert predicted.shape == (data.num_situations, 3)
    assert list(predicted.columns) == list(data.alternatives)
    np.testing.assert_allclose(predicted.sum(axis=1), 1.0, atol=1e-12)
    # the posterior mean of P is within a few posterior SDs of P at the ML estimate
    np.testing.assert_allclose(predicted.to_numpy(), classical.predict().to_numpy(), atol=0.02)


def test_market_shares_and_scenario_data(fits):
    data, classical, bayes = fits
    shares = bayes.market_shares(data, interval=0.9)
    assert list(shares.columns) == ["mean", "sd", "q5%", "q95%"]
    point = classical.market_shares()
    assert np.all((shares["q5%"] <= point) & (point <= shares["q95%"]))
    scenario = ChoiceData(
        data.frame.drop(columns="choice").assign(price=data.frame["price"] * 1.2),
        choice=None,
        alternative="alt",
        situation="situation",
        panel="person",
    )
    dearer = bayes.market_shares(scenario)
    assert dearer["mean"].sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(
        dearer["mean"].to_numpy(), classical.market_shares(scenario).to_numpy(), atol=0.01
    )
