"""Sampling intervals of a random WTP (Krinsky-Robb over the estimates) against the delta
method, which is exact to first order for a normal attribute over a fixed cost.

Data: seed 20261203, 400 people x 6 situations, 3 alternatives, a random normal ``comfort``,
a fixed ``noise`` and a fixed ``price`` (a structure not used while writing the method).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

from mixlogit import MixedLogit, simulate_choices


@pytest.fixture(scope="module")
def fit():
    model = MixedLogit(random={"comfort": "normal"}, fixed=["noise", "price"])
    data = simulate_choices(
        model,
        {"comfort": 0.9, "sd.comfort": 0.7, "noise": 0.3, "price": -1.4},
        num_people=400,
        situations_per_person=6,
        seed=20261203,
    )
    return model.fit(data, num_draws=200)


def _delta_interval(fit, quantile: float, interval: float = 0.95) -> tuple[float, float, float]:
    """The population ``quantile`` of WTP = -(mu + sd z) / price at the estimates and its Wald
    interval (robust covariance), with the gradient in (mu, sd, price)."""
    names = list(fit.names)
    i, j, k = names.index("comfort"), names.index("sd.comfort"), names.index("price")
    mu, sd, price = fit.params[[i, j, k]]
    z = stats.norm.ppf(quantile)
    value = -(mu + abs(sd) * z) / price
    gradient = np.zeros(len(names))
    gradient[i] = -1.0 / price
    gradient[j] = -np.sign(sd) * z / price
    gradient[k] = (mu + abs(sd) * z) / price**2
    half = stats.norm.ppf(0.5 + interval / 2) * np.sqrt(gradient @ fit.robust_cov @ gradient)
    return value, value - half, value + half


def test_krinsky_robb_intervals_of_random_wtp_statistics_match_the_delta_method(fit):
    wtp = fit.wtp("comfort", "price", num_draws=20_000, parameter_draws=2000, seed=7)
    for statistic, quantile in (("median", 0.5), ("q05", 0.05), ("q95", 0.95)):
        exact, low, high = _delta_interval(fit, quantile)
        width = high - low
        # the 20,000 common population draws put every replicate's sample quantile off the
        # exact one by the same amount: compare the intervals after removing that offset
        offset = wtp[statistic] - exact
        assert abs(offset) < 0.1 * width, statistic
        kr_low = wtp[f"kr_{statistic}_q2.5%"] - offset
        kr_high = wtp[f"kr_{statistic}_q97.5%"] - offset
        assert kr_low == pytest.approx(low, abs=0.05 * width), statistic
        assert kr_high == pytest.approx(high, abs=0.05 * width), statistic
        # the interval is around the point statistic, and far narrower than the population
        # spread it sits in (what estimation adds, not what people differ by)
        assert wtp[f"kr_{statistic}_q2.5%"] < wtp[statistic] < wtp[f"kr_{statistic}_q97.5%"]
    assert wtp["kr_median_q97.5%"] - wtp["kr_median_q2.5%"] < 0.5 * (wtp["q95"] - wtp["q05"])
    # a normal attribute over a fixed cost: mean = median, and their intervals agree
    assert wtp["kr_mean_q2.5%"] == pytest.approx(wtp["kr_median_q2.5%"], rel=0.02)
    # without parameter_draws: the population statistics alone, the same numbers
    plain = fit.wtp("comfort", "price", num_draws=20_000, seed=7)
    assert not any(key.startswith("kr_") for key in plain.index)
    np.testing.assert_allclose(plain.to_numpy(), wtp[plain.index].to_numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match="parameter_draws must be >= 0"):
        fit.wtp("comfort", "price", parameter_draws=-1)


def test_moments_that_do_not_exist_get_no_interval():
    model = MixedLogit(random={"comfort": "normal", "price": "normal"}, fixed=["noise"])
    data = simulate_choices(
        model,
        {"comfort": 0.9, "sd.comfort": 0.5, "price": -1.4, "sd.price": 0.3, "noise": 0.3},
        num_people=150,
        seed=20261204,
    )
    fit = model.fit(data, num_draws=50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the WTPMomentWarning of a normal cost
        wtp = fit.wtp("comfort", "price", num_draws=5_000, parameter_draws=100)
    assert np.isnan(wtp["mean"]) and np.isnan(wtp["kr_mean_q2.5%"])
    assert np.isfinite(wtp["kr_median_q2.5%"]) and np.isfinite(wtp["kr_q95_q97.5%"])
