"""Borda-count diagnostics against examples worked by hand (exact fractions) and an LP reference."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linprog

from analysis.borda import (
    alignment_accuracy,
    average_reward,
    nbc_flip_distance,
    nbc_ranking_sensitivity,
    normalized_borda_count,
    preference_matrix,
    reward_difference_variance,
)

LN3 = math.log(3.0)


def _sig3(k: int) -> Fraction:
    """sigmoid(k ln 3) = 3^k / (1 + 3^k), exactly."""
    return Fraction(3**k, 1 + 3**k) if k >= 0 else 1 - _sig3(-k)


# Three candidates, two equally weighted types, rewards in units of ln 3:
#   type "x": a = 4, b = 1, c = 0      type "z": a = 0, b = 2, c = 2
# Average reward a = 2 > b = 1.5 > c = 1, and a beats b head to head (P = 149/280 > 1/2), yet under
# uniform sampling the mediocre b has the highest Borda count: it is dragged up by how often c is
# sampled. Sampling a and b more often (or c less) hands the Borda win back to a.
REWARD_UNITS = {"x": {"a": 4, "b": 1, "c": 0}, "z": {"a": 0, "b": 2, "c": 2}}


def _three_candidate_rewards() -> pd.DataFrame:
    return pd.DataFrame(REWARD_UNITS) * LN3


def _hand_preferences() -> dict[tuple[str, str], Fraction]:
    names = "abc"
    P = {}
    for y in names:
        for y2 in names:
            P[y, y2] = sum(
                Fraction(1, 2) * _sig3(REWARD_UNITS[t][y] - REWARD_UNITS[t][y2]) for t in "xz"
            )
    return P


def test_three_candidate_preferences_by_hand():
    P = preference_matrix(_three_candidate_rewards())
    hand = _hand_preferences()
    assert hand["a", "b"] == Fraction(149, 280)
    assert hand["a", "c"] == Fraction(223, 410)
    assert hand["b", "c"] == Fraction(5, 8)
    for (y, y2), value in hand.items():
        assert P.loc[y, y2] == pytest.approx(float(value), abs=1e-15)


def test_three_candidate_borda_picks_mediocre_response():
    rewards = _three_candidate_rewards()
    P = preference_matrix(rewards)
    hand = _hand_preferences()
    nbc = normalized_borda_count(P)
    hand_nbc = {y: sum(hand[y, y2] for y2 in "abc") / 3 for y in "abc"}
    assert hand_nbc["b"] == Fraction(223, 420)
    for y in "abc":
        assert nbc[y] == pytest.approx(float(hand_nbc[y]), abs=1e-15)
    assert nbc.idxmax() == "b"
    avg = average_reward(rewards)
    np.testing.assert_allclose(avg.to_numpy(), np.array([2.0, 1.5, 1.0]) * LN3, rtol=1e-15)
    assert avg.idxmax() == "a"
    # A sampling distribution that rarely shows c gives a the Borda win.
    mu = pd.Series({"a": 0.4, "b": 0.4, "c": 0.2})
    nbc_mu = normalized_borda_count(P, mu)
    hand_mu = {
        y: sum(
            Fraction(w) * hand[y, y2] for y2, w in zip("abc", ("2/5", "2/5", "1/5"), strict=True)
        )
        for y in "abc"
    }
    for y in "abc":
        assert nbc_mu[y] == pytest.approx(float(hand_mu[y]), abs=1e-15)
    assert nbc_mu.idxmax() == "a"


def test_three_candidate_flip_distance_by_hand():
    P = preference_matrix(_three_candidate_rewards())
    hand = _hand_preferences()
    # d(y') = P(a > y') - P(b > y'); NBC(a) - NBC(b) = mean_y' d(y').
    d = {y2: hand["a", y2] - hand["b", y2] for y2 in "abc"}
    assert d["a"] == d["b"] == Fraction(9, 280)
    assert d["c"] == Fraction(-133, 1640)
    deficit = -(d["a"] + d["b"] + d["c"]) / 3
    tv = deficit / (d["a"] - d["c"])  # move mass from c to a, gaining d(a) - d(c) per unit
    flip = nbc_flip_distance(P, "a", "b")
    assert flip.nbc_gap == pytest.approx(float(deficit), abs=1e-15)
    assert flip.tv_distance == pytest.approx(float(tv), rel=1e-12)
    new_nbc = normalized_borda_count(P, flip.flipped_sampling)
    assert new_nbc["a"] == pytest.approx(new_nbc["b"], abs=1e-13)
    moved = flip.flipped_sampling - pd.Series(1 / 3, index=list("abc"))
    assert 0.5 * moved.abs().sum() == pytest.approx(float(tv), rel=1e-12)
    # Already ahead: no move needed.
    assert nbc_flip_distance(P, "b", "a").tv_distance == 0.0


def test_flip_impossible_when_dominated():
    # a beats b against every alternative, so no sampling distribution puts b ahead.
    P = pd.DataFrame(
        [[0.5, 0.9, 0.8], [0.1, 0.5, 0.6], [0.2, 0.4, 0.5]], index=list("abc"), columns=list("abc")
    )
    flip = nbc_flip_distance(P, "b", "a")
    assert math.isinf(flip.tv_distance) and flip.flipped_sampling is None


def _lp_flip_distance(P: np.ndarray, mu: np.ndarray, i: int, j: int) -> float:
    n = len(mu)
    # variables: mu' (n), t (n) with t >= mu' - mu; minimise sum t = TV(mu, mu').
    c = np.concatenate([np.zeros(n), np.ones(n)])
    A_ub = np.zeros((n + 1, 2 * n))
    b_ub = np.zeros(n + 1)
    A_ub[:n, :n] = np.eye(n)
    A_ub[:n, n:] = -np.eye(n)
    b_ub[:n] = mu
    A_ub[n, :n] = P[j] - P[i]  # NBC(j) - NBC(i) <= 0
    A_eq = np.concatenate([np.ones(n), np.zeros(n)])[None]
    res = linprog(c, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=[1.0], bounds=(0, None))
    return res.fun if res.status == 0 else math.inf


def test_ranking_sensitivity_matches_linear_programme():
    rng = np.random.default_rng(3)
    names = [f"y{k}" for k in range(6)]
    rewards = pd.DataFrame(rng.normal(0, 2, size=(6, 3)), index=names, columns=["u", "v", "w"])
    weights = pd.Series({"u": 0.5, "v": 0.3, "w": 0.2})
    P = preference_matrix(rewards, weights)
    mu = pd.Series(rng.dirichlet(np.ones(6)), index=names)
    table = nbc_ranking_sensitivity(P, mu)
    assert len(table) == 15
    Pn = P.to_numpy()
    for row in table.itertuples():
        i, j = names.index(row.lower), names.index(row.higher)
        assert row.tv_distance == pytest.approx(
            _lp_flip_distance(Pn, mu.to_numpy(), i, j), abs=1e-8
        )
    assert table.tv_distance.is_monotonic_increasing


def test_reward_difference_variance_by_hand():
    rewards = pd.DataFrame({"u": [0.0, 1.0], "v": [0.0, 3.0]}, index=["p", "q"])
    V = reward_difference_variance(rewards, {"u": 0.25, "v": 0.75})
    # differences q - p: 1 (w 1/4), 3 (w 3/4); mean 2.5; variance 1/4*2.25 + 3/4*0.25 = 0.75
    assert V.loc["q", "p"] == pytest.approx(0.75, abs=1e-15)
    assert V.loc["p", "q"] == pytest.approx(0.75, abs=1e-15)
    assert V.loc["p", "p"] == 0.0


def test_alignment_accuracy_by_hand():
    target = pd.Series({"a": 2.0, "b": 1.5, "c": 1.0})
    assert alignment_accuracy(pd.Series({"a": 0.0, "b": 1.0, "c": -1.0}), target) == pytest.approx(
        2 / 3
    )
    # implicit tie on (a, b) scores 1/2
    tie = pd.Series({"c": -1.0, "a": 0.0, "b": 0.0})
    assert alignment_accuracy(tie, target) == pytest.approx(5 / 6)
    # sampling-weighted: pair weights mu(y) mu(y2) = ab 1/8, ac 1/8, bc 1/16
    mu = pd.Series({"a": 0.5, "b": 0.25, "c": 0.25})
    policy = pd.Series({"a": 0.0, "b": 1.0, "c": -1.0})
    assert alignment_accuracy(policy, target, mu) == pytest.approx((1 / 8 + 1 / 16) / (5 / 16))
    # target ties are skipped
    flat = pd.Series({"a": 1.0, "b": 1.0, "c": 0.0})
    assert alignment_accuracy(policy, flat) == pytest.approx(1.0)
    assert alignment_accuracy(pd.Series({"a": -2.0, "b": 1.0, "c": -1.0}), flat) == 0.5


def test_clear_errors():
    rewards = _three_candidate_rewards()
    bad = rewards.copy()
    bad.loc["b", "z"] = np.nan
    with pytest.raises(ValueError, match=r"column 'z'.*response 'b'"):
        preference_matrix(bad)
    with pytest.raises(ValueError, match="sum to 1"):
        average_reward(rewards, {"x": 0.5, "z": 0.6})
    with pytest.raises(ValueError, match=r"missing \['z'\]"):
        average_reward(rewards, {"x": 1.0})
    P = preference_matrix(rewards)
    with pytest.raises(ValueError, match=r"missing \['c'\]"):
        normalized_borda_count(P, pd.Series({"a": 0.5, "b": 0.5}))
    with pytest.raises(ValueError, match=r"sampling\['a'\]"):
        normalized_borda_count(P, pd.Series({"a": -0.5, "b": 1.0, "c": 0.5}))
    asym = P.copy()
    asym.loc["a", "b"] = 0.9
    with pytest.raises(ValueError, match=r"\('a', 'b'\)"):
        normalized_borda_count(asym)
    with pytest.raises(ValueError, match="same responses"):
        alignment_accuracy(pd.Series({"a": 1.0}), pd.Series({"a": 1.0, "b": 0.0}))
    with pytest.raises(ValueError, match="undefined"):
        alignment_accuracy(pd.Series({"a": 1.0, "b": 0.0}), pd.Series({"a": 1.0, "b": 1.0}))
    with pytest.raises(KeyError, match="'d'"):
        nbc_flip_distance(P, "d", "a")
