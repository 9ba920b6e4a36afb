"""BayesianResults.wtp reports only moments that exist (issue item: a normal cost coefficient
gives a ratio without a finite mean; before, its population "mean" was a noisy number).

The results are built from hand-made posterior samples, without running a sampler: ``wtp``
reads only the population sites (``beta_fixed``, ``mu``, ``sigma``, ``log_shape``) and, at the
individual level, ``beta_person``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from mixlogit.bayes.results import BayesDiagnosticWarning, BayesianResults
from mixlogit.results import WTPMomentWarning
from mixlogit.spec import ModelSpec

CHAINS, DRAWS, PEOPLE = 2, 20, 6
SUMMARY = ["posterior_mean", "posterior_sd", "q3%", "median", "q97%"]


def _results(spec, samples, beta_person=None):
    return BayesianResults(
        kind="hierarchical", spec=spec, _samples=samples, beta_person=beta_person, person_ids=None
    )


def _site(rng, loc, scale, size=1):
    return rng.normal(loc, scale, (CHAINS, DRAWS, size))


def _normal_cost(distribution, seed):
    """``x`` fixed near 0.5, ``price`` with location -1 (sign -1 for truncnormal) and SD 0.3."""
    rng = np.random.default_rng(seed)
    value = f"-{distribution}" if distribution == "truncnormal" else distribution
    spec = ModelSpec.build(fixed=["x"], random={"price": value})
    location = 1.0 if distribution == "truncnormal" else -1.0
    samples = {
        "beta_fixed": _site(rng, 0.5, 0.05),
        "mu": _site(rng, location, 0.05),
        "sigma": np.abs(_site(rng, 0.3, 0.02)),
    }
    return spec, samples


@pytest.mark.parametrize("distribution", ["normal", "truncnormal"])
def test_population_wtp_with_a_normal_cost_warns_and_has_nan_mean_rows(distribution):
    # before: a "mean" row from ratio.mean() per posterior draw, no WTPMomentWarning
    spec, samples = _normal_cost(distribution, seed=23)
    res = _results(spec, samples)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BayesDiagnosticWarning)  # cost draws near 0
        with pytest.warns(WTPMomentWarning) as caught:
            table = res.wtp("x", "price", level="population", num_draws=256, seed=4)
    message = str(caught[0].message)
    assert f"{distribution} (its density is positive at 0)" in message
    assert "'x'" in message and "'price'" in message
    assert f"in {CHAINS * DRAWS} of {CHAINS * DRAWS} posterior draws (100.0%)" in message
    mean = table[table.statistic == "mean"]
    median = table[table.statistic == "median"]
    assert len(mean) == 1 and mean[SUMMARY].isna().all(axis=None)
    # the median exists and is kept: the posterior of the per-draw median of -x / price
    draws = res.population_draws(256, 4)
    per_draw = np.median(-draws[..., 0] / draws[..., 1], axis=1)
    assert median["posterior_mean"].item() == pytest.approx(per_draw.mean(), rel=1e-12)
    assert median[SUMMARY].notna().all(axis=None)


def test_population_wtp_with_a_lognormal_cost_is_silent_and_matches_the_closed_form():
    rng = np.random.default_rng(31)
    spec = ModelSpec.build(fixed=["x"], random={"price": "-lognormal"})
    samples = {
        "beta_fixed": _site(rng, 0.8, 0.05),
        "mu": _site(rng, 0.2, 0.05),
        "sigma": np.abs(_site(rng, 0.4, 0.03)),
    }
    res = _results(spec, samples)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = res.wtp("x", "price", level="population", num_draws=1024, seed=2)
    mean = table[table.statistic == "mean"]
    assert mean[SUMMARY].notna().all(axis=None)
    # -x / price = x exp(-m - s z): mean x exp(-m + s^2 / 2) in each posterior draw
    x, m, s = (samples[k][..., 0] for k in ("beta_fixed", "mu", "sigma"))
    exact = (x * np.exp(-m + s**2 / 2)).mean()
    assert mean["posterior_mean"].item() == pytest.approx(exact, rel=5e-3)


def _gamma_cost(log_shape, seed):
    rng = np.random.default_rng(seed)
    spec = ModelSpec.build(fixed=["x"], random={"price": "-gamma"})
    samples = {
        "beta_fixed": _site(rng, 0.6, 0.05),
        "mu": _site(rng, 0.1, 0.05),  # log mean of |price|
        "log_shape": np.asarray(log_shape, float).reshape(CHAINS, DRAWS, 1),
    }
    return spec, samples


def test_gamma_cost_with_shape_at_most_one_in_some_draws_gives_the_share():
    shape = np.full(CHAINS * DRAWS, 3.0)
    shape[[2, 9, 17, 30]] = [0.7, 0.95, 1.0, 0.5]  # 4 of 40 draws: no finite mean
    spec, samples = _gamma_cost(np.log(shape), seed=41)
    res = _results(spec, samples)
    with pytest.warns(WTPMomentWarning) as caught:
        table = res.wtp("x", "price", level="population", num_draws=256)
    message = str(caught[0].message)
    assert "in 4 of 40 posterior draws (10.0%)" in message
    assert "gamma with shape 0.7 <= 1 (the first such draw)" in message
    assert table.loc[table.statistic == "mean", SUMMARY].isna().all(axis=None)
    assert table.loc[table.statistic == "median", SUMMARY].notna().all(axis=None)


def test_gamma_cost_with_shape_above_one_has_a_finite_population_mean():
    spec, samples = _gamma_cost(np.full(CHAINS * DRAWS, np.log(3.0)), seed=43)
    res = _results(spec, samples)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = res.wtp("x", "price", level="population", num_draws=2048, seed=5)
    # |price| = exp(mu) u / k with u ~ Gamma(k, 1): E[-x / price] = x k / (exp(mu) (k - 1))
    x, mu = samples["beta_fixed"][..., 0], samples["mu"][..., 0]
    exact = (x * 3.0 / (np.exp(mu) * 2.0)).mean()
    mean = table.loc[table.statistic == "mean", "posterior_mean"].item()
    assert mean == pytest.approx(exact, rel=0.03)


def test_individual_wtp_follows_the_same_rule():
    spec, samples = _normal_cost("normal", seed=47)
    rng = np.random.default_rng(47)
    beta = np.stack(
        [
            rng.normal(0.5, 0.1, (CHAINS, DRAWS, PEOPLE)),
            rng.normal(-1.0, 0.1, (CHAINS, DRAWS, PEOPLE)),
        ],
        axis=-1,
    )
    res = _results(spec, samples, beta_person=beta)
    with pytest.warns(WTPMomentWarning, match=r"no finite mean or SD in a person's posterior"):
        table = res.wtp("x", "price")
    assert table[["mean", "sd"]].isna().all(axis=None)
    ratio = (-beta[..., 0] / beta[..., 1]).reshape(-1, PEOPLE)
    np.testing.assert_allclose(table["median"], np.median(ratio, axis=0), rtol=1e-12)
    # a gamma cost of shape 1.5: a person's ratio has a mean but no variance
    spec, samples = _gamma_cost(np.full(CHAINS * DRAWS, np.log(1.5)), seed=53)
    beta[..., 1] = -np.abs(beta[..., 1])
    res = _results(spec, samples, beta_person=beta)
    with pytest.warns(WTPMomentWarning, match=r"shape 1\.5 <= 2.*no finite SD.*'sd' columns"):
        table = res.wtp("x", "price")
    assert table["sd"].isna().all() and table["mean"].notna().all()
    np.testing.assert_allclose(table["mean"], ratio.mean(0), rtol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # ... and the population mean exists
        population = res.wtp("x", "price", level="population", num_draws=64)
    assert population[SUMMARY].notna().all(axis=None)


def test_uniform_cost_that_reaches_zero_in_some_draws():
    rng = np.random.default_rng(59)
    spec = ModelSpec.build(fixed=["x"], random={"price": "uniform"})
    half_width = np.full((CHAINS, DRAWS, 1), 0.5)
    half_width[0, :3] = 1.2  # on [-2.2, 0.2]: contains 0 in 3 of 40 draws
    samples = {
        "beta_fixed": _site(rng, 0.5, 0.05),
        "mu": np.full((CHAINS, DRAWS, 1), -1.0),
        "sigma": half_width,
    }
    res = _results(spec, samples)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BayesDiagnosticWarning)
        with pytest.warns(WTPMomentWarning, match=r"3 of 40 .*uniform on \[-2\.2, 0\.2\]"):
            table = res.wtp("x", "price", level="population", num_draws=128)
    assert table.loc[table.statistic == "mean", SUMMARY].isna().all(axis=None)
    samples["sigma"] = np.full((CHAINS, DRAWS, 1), 0.5)  # on [-1.5, -0.5] everywhere
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = _results(spec, samples).wtp("x", "price", level="population", num_draws=128)
    assert table[SUMMARY].notna().all(axis=None)


def test_fixed_cost_with_a_normal_attribute_is_silent():
    rng = np.random.default_rng(61)
    spec = ModelSpec.build(fixed=["price"], random={"x": "normal"})
    samples = {
        "beta_fixed": _site(rng, -1.0, 0.05),
        "mu": _site(rng, 0.5, 0.05),
        "sigma": np.abs(_site(rng, 0.3, 0.02)),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = _results(spec, samples).wtp("x", "price", level="population", num_draws=128)
    assert table[SUMMARY].notna().all(axis=None)
