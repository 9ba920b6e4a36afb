"""Likelihood-ratio test of nested models (issue 16, item 7)."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
from scipy import stats

from mixlogit import MixedLogit, MultinomialLogit, likelihood_ratio_test, simulate_choices

TRUTH = {"x1": 0.8, "price": -1.0, "sd.price": 0.9}


@pytest.fixture(scope="module")
def fits():
    # a random price coefficient (sd 0.9), 80 people x 5 situations, seed 4401 (not tuned on)
    data = simulate_choices(
        MixedLogit(fixed=["x1"], random={"price": "normal"}),
        TRUTH,
        num_people=80,
        situations_per_person=5,
        seed=4401,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mnl = MultinomialLogit(["x1", "price"]).fit(data)
        mxl = MixedLogit(fixed=["x1"], random={"price": "normal"}).fit(data, num_draws=200)
        smaller = MultinomialLogit(["x1"]).fit(data)
    return data, mnl, mxl, smaller


def test_the_statistic_and_p_values(fits):
    _, mnl, mxl, smaller = fits
    test = likelihood_ratio_test(mnl, mxl)
    assert test.statistic == pytest.approx(2 * (mxl.loglik - mnl.loglik), rel=1e-12)
    assert test.df == 1 and test.extra_parameters == ("sd.price",)
    assert test.boundary_parameters == ("sd.price",)
    assert test.p_value == pytest.approx(stats.chi2.sf(test.statistic, 1), rel=1e-12)
    # sd = 0 is the boundary: the 50:50 mixture of chi2(0) and chi2(1) halves the p-value
    assert test.p_value_boundary == pytest.approx(test.p_value / 2, rel=1e-12)
    assert test.p_value < 0.01  # the spread is real here
    # an interior restriction (a coefficient set to 0) has no boundary p-value
    interior = likelihood_ratio_test(smaller, mnl)
    assert interior.extra_parameters == ("price",) and interior.boundary_parameters == ()
    assert np.isnan(interior.p_value_boundary)
    assert interior.p_value == pytest.approx(stats.chi2.sf(interior.statistic, 1), rel=1e-12)
    # two extra parameters, one of them a spread: mixture of chi2(1) and chi2(2)
    both = likelihood_ratio_test(smaller, mxl)
    assert both.df == 2
    expected = 0.5 * stats.chi2.sf(both.statistic, 1) + 0.5 * stats.chi2.sf(both.statistic, 2)
    assert both.p_value_boundary == pytest.approx(expected, rel=1e-12)


def test_pairs_that_cannot_be_compared_are_refused(fits):
    _, mnl, mxl, smaller = fits
    with pytest.raises(ValueError, match=r"not nested: .*\['sd.price'\]"):
        likelihood_ratio_test(mxl, mnl)  # the wrong way round
    with pytest.raises(ValueError, match="nothing to test"):
        likelihood_ratio_test(mnl, mnl)
    # a larger model that stopped short of its maximum, below the smaller one's LL
    stopped = dataclasses.replace(mxl, loglik=mnl.loglik - 5.0)
    with pytest.raises(ValueError, match="fits better"):
        likelihood_ratio_test(mnl, stopped)
    # within the tolerance the statistic is 0, not negative
    tied = dataclasses.replace(mxl, loglik=mnl.loglik - 1e-9)
    assert likelihood_ratio_test(mnl, tied).statistic == 0.0
    other_data = simulate_choices(
        MultinomialLogit(["x1", "price"]), {"x1": 0.8, "price": -1.0}, num_people=30, seed=9
    )
    other = MultinomialLogit(["x1", "price"]).fit(other_data)
    with pytest.raises(ValueError, match="same choices"):
        likelihood_ratio_test(smaller, other)


def test_a_fixed_parameter_is_the_restriction(fits):
    # fix= writes the restricted model without dropping columns: fixing price at 0 is the
    # same test as leaving price out, and fixing sd.price at 0 the same as the MNL
    data, mnl, mxl, smaller = fits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        price_at_zero = MultinomialLogit(["x1", "price"]).fit(data, fix={"price": 0.0})
        no_spread = MixedLogit(fixed=["x1"], random={"price": "normal"}).fit(
            data, num_draws=200, fix={"sd.price": 0.0}
        )
    test = likelihood_ratio_test(price_at_zero, mnl)
    reference = likelihood_ratio_test(smaller, mnl)
    assert test.extra_parameters == ("price",) and test.df == 1
    assert test.statistic == pytest.approx(reference.statistic, abs=1e-7)
    spread = likelihood_ratio_test(no_spread, mxl)
    assert spread.extra_parameters == ("sd.price",) and spread.boundary_parameters == ("sd.price",)
    assert spread.statistic == pytest.approx(likelihood_ratio_test(mnl, mxl).statistic, abs=1e-6)
    with pytest.raises(ValueError, match="not nested"):
        likelihood_ratio_test(mxl, no_spread)
