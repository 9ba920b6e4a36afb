"""The synthetic user-type environment: exact optima against closed forms and the NBC theorem."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from analysis.borda import alignment_accuracy
from benchmarks.synthetic_types import (
    SyntheticTypesEnv,
    default_environment,
    fit_population,
    fit_sample,
    sample_preferences,
    unit_mean_strength,
)


@pytest.fixture(scope="module")
def env() -> SyntheticTypesEnv:
    return default_environment()


@pytest.fixture(scope="module")
def dpo_optimum(env):
    return fit_population(env, "dpo")


def test_unanimity_probability_is_the_product_over_types(env):
    d = env.type_rewards[:, 3] - env.type_rewards[:, 30]
    assert env.unanimity_probabilities()[3, 30] == pytest.approx(np.prod(expit(d)), rel=1e-13)


def test_dpo_optimum_is_monotone_in_nbc_and_peaks_in_the_middle(env, dpo_optimum):
    h, mu = dpo_optimum.implicit_reward, env.sampling
    nbc = env.normalized_borda_count()
    # stationarity of the population DPO risk: sum_j mu_j sigmoid(h_i - h_j) = NBC_i
    np.testing.assert_allclose(expit(h[:, None] - h[None, :]) @ mu, nbc, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(np.argsort(h), np.argsort(nbc))
    assert dpo_optimum.peak == int(np.argmax(nbc)) == 22
    r_bar = env.average_reward()
    assert int(np.argmax(r_bar)) == 4
    # the DPO peak is mediocre: no type's favourite, average reward below the middle of its range
    assert all(abs(int(np.argmax(r)) - 22) > 5 for r in env.type_rewards)
    assert r_bar[22] < 0.5 * (r_bar.max() + r_bar.min())


def test_agreement_optimum_is_the_average_reward(env):
    fit = fit_population(env, "agreement")
    r_bar = env.average_reward()
    np.testing.assert_allclose(fit.implicit_reward, r_bar - r_bar.mean(), rtol=0, atol=1e-7)
    # expected share of unanimous pairs, by direct summation over pairs
    Q = env.pair_weights()
    D = env.reward_differences()
    share = (Q * (np.prod(expit(D), axis=0) + np.prod(expit(-D), axis=0))).sum()
    assert fit.kept_share == pytest.approx(share, rel=1e-12)


def test_corrected_optimum_moves_towards_average_reward(env, dpo_optimum):
    target = pd.Series(env.average_reward())
    corrected = fit_population(env, "corrected")
    acc_dpo = alignment_accuracy(pd.Series(dpo_optimum.implicit_reward), target)
    acc_corrected = alignment_accuracy(pd.Series(corrected.implicit_reward), target)
    assert acc_corrected > acc_dpo + 0.3
    # towards response 4, the average-reward optimum
    assert abs(corrected.peak - 4) < abs(dpo_optimum.peak - 4)


def test_mixdpo_population_optimum_keeps_dpo_ranking():
    # a scale mixture of one logit cannot express types that disagree in direction: the fitted
    # strength concentrates and the ranking is DPO's (20 responses keep the test fast)
    small = default_environment(20)
    fit = fit_population(small, "mixdpo_gamma")
    assert set(fit.strength) == {"shape", "rate", "mean"}
    assert fit.strength["shape"] > 5  # coefficient of variation below 0.45 (started at 0.71)
    dpo = fit_population(small, "dpo")
    np.testing.assert_array_equal(np.argsort(fit.implicit_reward), np.argsort(dpo.implicit_reward))


def test_sample_preferences_statistics(env):
    sample = sample_preferences(env, 30000, pairs_per_annotator=5, seed=1)
    assert (sample.first != sample.second).all()
    assert (sample.annotator_ids == np.arange(30000) // 5).all()
    assert (np.diff(sample.annotator_types.reshape(-1, 5), axis=1) == 0).all()
    P = env.pooled_preferences()[sample.first, sample.second]
    # pooled labels follow P: standardised mean residual
    z = (sample.first_wins - P).sum() / np.sqrt((P * (1 - P)).sum())
    assert abs(z) < 4
    D = env.type_rewards[:, sample.first] - env.type_rewards[:, sample.second]
    pt = expit(D.T)
    zt = (sample.type_labels - pt).sum(axis=0) / np.sqrt((pt * (1 - pt)).sum(axis=0))
    assert np.abs(zt).max() < 4
    np.testing.assert_allclose(
        sample.true_variance, env.difference_variance()[sample.first, sample.second], atol=1e-12
    )
    assert np.bincount(sample.annotator_types).min() > 0.25 * 6000


def test_sample_fit_approaches_population_optimum(env, dpo_optimum):
    # DPO's implicit rewards span only 0.24 nats here (the types disagree), so it takes many
    # pairs before sampling noise is small against them
    sample = sample_preferences(env, 200_000, seed=2)
    fit = fit_sample(sample, "dpo")
    assert np.corrcoef(fit.implicit_reward, dpo_optimum.implicit_reward)[0, 1] > 0.95
    agreement = fit_sample(sample, "agreement")
    assert agreement.kept_share == pytest.approx(
        fit_population(env, "agreement").kept_share, abs=0.01
    )


def test_unit_mean_strength_keeps_the_mixdpo_default_cv():
    gamma, lognormal = unit_mean_strength("gamma"), unit_mean_strength("lognormal")
    # MixDPO's defaults: Gamma(2, 16.7) has CV 1/sqrt(2); LogNormal(-2.3, 0.6) has scale 0.6
    assert gamma["shape"] == pytest.approx(2.0, rel=1e-12)
    assert gamma["shape"] / gamma["rate"] == pytest.approx(1.0, rel=1e-12)
    assert lognormal["scale"] == pytest.approx(0.6, rel=1e-12)
    assert np.exp(lognormal["loc"] + lognormal["scale"] ** 2 / 2) == pytest.approx(1.0, rel=1e-12)


def test_environment_validation():
    x = np.linspace(0, 1, 4)
    R = np.stack([x, -x])
    with pytest.raises(ValueError, match="type_weights must be a probability vector"):
        SyntheticTypesEnv(x, R, np.array([0.5, 0.6]), np.full(4, 0.25))
    with pytest.raises(ValueError, match=r"sampling must have shape \(4,\)"):
        SyntheticTypesEnv(x, R, np.array([0.5, 0.5]), np.full(3, 1 / 3))
    env = SyntheticTypesEnv(x, R, np.array([0.5, 0.5]), np.full(4, 0.25))
    with pytest.raises(ValueError, match="no population version"):
        fit_population(env, "corrected_estimated")
