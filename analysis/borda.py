"""Borda-count diagnostics for direct alignment under heterogeneous preferences.

Shirali et al. (arXiv 2502.16320) model annotators as user types ``u`` with weights ``w_u`` and
Bradley-Terry rewards ``r_u``: type ``u`` prefers ``y`` to ``y'`` with probability
``sigmoid(r_u(y) - r_u(y'))``. Pooling the labels gives the population preference matrix
``P[y, y'] = sum_u w_u sigmoid(r_u(y) - r_u(y'))``. When the two alternatives of a pair are drawn
independently from a sampling distribution ``mu``, the population DPO optimum (tabular policy)
satisfies, for every response ``y``,

    sum_y' mu(y') sigmoid(h(y) - h(y')) = NBC(y),  NBC(y) = sum_y' mu(y') P[y, y'],

where ``h`` is the implicit reward. The left side is one strictly increasing function of ``h(y)``,
so DPO ranks responses by the normalised Borda count ``NBC`` -- which depends on ``mu`` -- and not
by the user-weighted average reward ``r_bar = sum_u w_u r_u`` that the paper shows is the right
target for a single policy.

Data layout (all pandas, labels are kept and checked):

* ``rewards``: DataFrame, one row per response (index = response ids), one column per user type,
  values = Bradley-Terry rewards (nats).
* ``type_weights``: Series (or mapping) indexed by the type names of ``rewards.columns``, summing
  to 1; ``None`` means equal weights.
* ``preferences``: square DataFrame ``P`` with the same response ids on both axes,
  ``P.loc[y, y2]`` = probability that ``y`` is preferred to ``y2``; ``P + P.T = 1``.
* ``sampling``: Series indexed by response ids, the distribution ``mu`` each alternative of a pair
  is drawn from (independently); ``None`` means uniform.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import expit

__all__ = [
    "NBCFlip",
    "alignment_accuracy",
    "average_reward",
    "nbc_flip_distance",
    "nbc_ranking_sensitivity",
    "normalized_borda_count",
    "preference_matrix",
    "reward_difference_variance",
]

_PROBABILITY_TOL = 1e-9


def _check_rewards(rewards: pd.DataFrame) -> np.ndarray:
    if not isinstance(rewards, pd.DataFrame):
        raise TypeError(f"rewards must be a pandas DataFrame, got {type(rewards).__name__}")
    if rewards.shape[0] < 2 or rewards.shape[1] < 1:
        raise ValueError(
            f"rewards needs at least 2 responses (rows) and 1 user type (column), "
            f"got shape {rewards.shape}"
        )
    if not rewards.index.is_unique:
        dup = rewards.index[rewards.index.duplicated()].tolist()
        raise ValueError(f"rewards has duplicated response ids in its index: {dup[:5]}")
    if not rewards.columns.is_unique:
        dup = rewards.columns[rewards.columns.duplicated()].tolist()
        raise ValueError(f"rewards has duplicated user-type columns: {dup[:5]}")
    values = np.empty(rewards.shape, dtype=np.float64)
    for j, column in enumerate(rewards.columns):
        try:
            col = pd.to_numeric(rewards[column], errors="raise").to_numpy(dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise ValueError(f"rewards column {column!r} is not numeric: {error}") from None
        bad = ~np.isfinite(col)
        if bad.any():
            row = rewards.index[int(np.argmax(bad))]
            raise ValueError(
                f"rewards column {column!r} has a non-finite value {col[bad][0]!r} at "
                f"response {row!r}"
            )
        values[:, j] = col
    return values


def _check_distribution(
    weights: pd.Series | None, keys: pd.Index, name: str, keys_name: str, shown: int | None
) -> np.ndarray:
    """``(len(keys),)`` weights in the order of ``keys``: finite, >= 0, summing to 1.

    ``None`` is the uniform distribution. An error about the index lists ``shown`` keys at most
    (all for ``None``).
    """
    if weights is None:
        return np.full(len(keys), 1.0 / len(keys))
    missing = [k for k in keys if k not in weights.index]
    extra = [k for k in weights.index if k not in keys]
    if missing or extra:
        raise ValueError(
            f"{name} must be indexed by {keys_name}; missing {missing[:shown]}, "
            f"unexpected {extra[:shown]}"
        )
    w = weights.reindex(keys).to_numpy(dtype=np.float64)
    bad = ~np.isfinite(w) | (w < 0)
    if bad.any():
        k = keys[int(np.argmax(bad))]
        raise ValueError(f"{name}[{k!r}] = {weights[k]!r} is not a finite weight >= 0")
    if abs(w.sum() - 1.0) > 1e-8:
        raise ValueError(f"{name} must sum to 1, it sums to {w.sum()!r}")
    return w


def _check_type_weights(
    type_weights: pd.Series | Mapping[Hashable, float] | None, types: pd.Index
) -> np.ndarray:
    weights = None if type_weights is None else pd.Series(type_weights, dtype=np.float64)
    return _check_distribution(
        weights, types, "type_weights", f"the reward columns {list(types)}", None
    )


def _check_preferences(preferences: pd.DataFrame) -> np.ndarray:
    if not isinstance(preferences, pd.DataFrame):
        raise TypeError(f"preferences must be a pandas DataFrame, got {type(preferences).__name__}")
    n = preferences.shape[0]
    if preferences.shape != (n, n) or n < 2:
        raise ValueError(f"preferences must be square with >= 2 responses, got {preferences.shape}")
    if not preferences.index.is_unique:
        raise ValueError("preferences has duplicated response ids in its index")
    if not preferences.index.equals(preferences.columns):
        raise ValueError(
            "preferences must have the same response ids, in the same order, on index and "
            f"columns; index {list(preferences.index)[:5]}..., "
            f"columns {list(preferences.columns)[:5]}..."
        )
    P = preferences.to_numpy(dtype=np.float64)
    bad = ~np.isfinite(P) | (P < -_PROBABILITY_TOL) | (P > 1 + _PROBABILITY_TOL)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValueError(
            f"preferences[{preferences.index[i]!r}, {preferences.columns[j]!r}] = {P[i, j]!r} "
            "is not a probability"
        )
    asym = np.abs(P + P.T - 1.0)
    if asym.max() > 1e-8:
        i, j = np.unravel_index(int(np.argmax(asym)), asym.shape)
        raise ValueError(
            "preferences must satisfy P[y, y2] + P[y2, y] = 1; at "
            f"({preferences.index[i]!r}, {preferences.columns[j]!r}) the sum is "
            f"{P[i, j] + P[j, i]!r}"
        )
    return P


def _check_sampling(sampling: pd.Series | None, responses: pd.Index) -> np.ndarray:
    if sampling is not None:
        if not isinstance(sampling, pd.Series):
            raise TypeError(f"sampling must be a pandas Series, got {type(sampling).__name__}")
        if not sampling.index.is_unique:
            raise ValueError("sampling has duplicated response ids in its index")
    return _check_distribution(sampling, responses, "sampling", "the response ids", 5)


def preference_matrix(
    rewards: pd.DataFrame, type_weights: pd.Series | Mapping[Hashable, float] | None = None
) -> pd.DataFrame:
    """Population preference matrix ``P[y, y2] = sum_u w_u sigmoid(r_u(y) - r_u(y2))``.

    Args:
        rewards: ``(n_responses, n_types)`` Bradley-Terry rewards, index = response ids.
        type_weights: weights of the types (columns of ``rewards``), summing to 1; default equal.

    Returns:
        ``(n_responses, n_responses)`` DataFrame with the response ids on both axes; the diagonal
        is exactly 0.5.
    """
    R = _check_rewards(rewards)
    w = _check_type_weights(type_weights, rewards.columns)
    diff = R[:, None, :] - R[None, :, :]  # (n, n, types)
    P = expit(diff) @ w
    np.fill_diagonal(P, 0.5)
    return pd.DataFrame(P, index=rewards.index.copy(), columns=rewards.index.copy())


def average_reward(
    rewards: pd.DataFrame, type_weights: pd.Series | Mapping[Hashable, float] | None = None
) -> pd.Series:
    """User-weighted average reward ``r_bar(y) = sum_u w_u r_u(y)``, a Series over responses."""
    R = _check_rewards(rewards)
    w = _check_type_weights(type_weights, rewards.columns)
    return pd.Series(R @ w, index=rewards.index.copy(), name="average_reward")


def reward_difference_variance(
    rewards: pd.DataFrame, type_weights: pd.Series | Mapping[Hashable, float] | None = None
) -> pd.DataFrame:
    """Across-type variance ``V[y, y2] = Var_u(r_u(y) - r_u(y2))`` under the type weights.

    This is the ``V`` of the first-order variance-corrected DPO loss
    (``E_u sigmoid(D_u) ~ sigmoid(E D) + sigmoid''(E D) V / 2``), in squared reward units.
    """
    R = _check_rewards(rewards)
    w = _check_type_weights(type_weights, rewards.columns)
    diff = R[:, None, :] - R[None, :, :]
    mean = diff @ w
    V = (diff - mean[..., None]) ** 2 @ w
    return pd.DataFrame(V, index=rewards.index.copy(), columns=rewards.index.copy())


def normalized_borda_count(
    preferences: pd.DataFrame, sampling: pd.Series | None = None
) -> pd.Series:
    """Normalised Borda count ``NBC(y) = sum_y2 mu(y2) P[y, y2]`` (the y2 = y term is 1/2).

    ``NBC(y)`` is the probability that ``y`` wins a comparison against an alternative drawn from
    ``mu``. The population DPO optimum of a tabular policy ranks responses exactly by it.

    Args:
        preferences: square preference-probability DataFrame (see module docstring).
        sampling: distribution of the compared alternative over the response ids; default uniform.

    Returns:
        Series over the response ids, named ``"nbc"``.
    """
    P = _check_preferences(preferences)
    mu = _check_sampling(sampling, preferences.index)
    return pd.Series(P @ mu, index=preferences.index.copy(), name="nbc")


def _pair_weights(pair_weights: pd.DataFrame | pd.Series | None, responses: pd.Index) -> np.ndarray:
    n = len(responses)
    if pair_weights is None:
        return np.ones((n, n))
    if isinstance(pair_weights, pd.Series):
        mu = _check_sampling(pair_weights, responses)
        return np.outer(mu, mu)
    if not isinstance(pair_weights, pd.DataFrame):
        raise TypeError(
            "pair_weights must be None, a Series (sampling distribution) or a DataFrame, "
            f"got {type(pair_weights).__name__}"
        )
    missing = [y for y in responses if y not in pair_weights.index or y not in pair_weights.columns]
    if missing:
        raise ValueError(f"pair_weights lacks rows/columns for responses {missing[:5]}")
    Q = pair_weights.reindex(index=responses, columns=responses).to_numpy(dtype=np.float64)
    bad = ~np.isfinite(Q) | (Q < 0)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValueError(
            f"pair_weights[{responses[i]!r}, {responses[j]!r}] = {Q[i, j]!r} is not a weight >= 0"
        )
    return Q


def alignment_accuracy(
    implicit_reward: pd.Series,
    target_reward: pd.Series,
    pair_weights: pd.DataFrame | pd.Series | None = None,
) -> float:
    """Share of response pairs that the policy orders like the target (average) reward.

    Over unordered pairs ``{y, y2}`` whose target rewards differ, the pair scores 1 when
    ``implicit_reward`` orders it the same way, 0 when the opposite way and 1/2 on an implicit tie;
    the score is averaged with weights ``pair_weights`` (symmetrised: ``Q[y, y2] + Q[y2, y]``).
    This is the population accuracy of a tabular policy over *all* response pairs; for a policy
    scored on observed (held-out) pairs, where a zero margin counts as wrong, see
    :func:`alignment.datasets.semisynthetic_types.pair_alignment_accuracy`.

    Args:
        implicit_reward: a policy's implicit reward per response, e.g. ``beta * log(pi / pi_ref)``
            (any strictly increasing transform gives the same accuracy).
        target_reward: the reward to agree with, usually :func:`average_reward`.
        pair_weights: ``None`` (every pair counts once), a sampling distribution Series ``mu``
            (pair weight ``mu(y) mu(y2)``), or a DataFrame of pair weights.

    Returns:
        Accuracy in ``[0, 1]``.

    Raises:
        ValueError: on mismatched indices, non-finite values, or when no pair with distinct target
            rewards has positive weight.
    """
    for name, series in (("implicit_reward", implicit_reward), ("target_reward", target_reward)):
        if not isinstance(series, pd.Series):
            raise TypeError(f"{name} must be a pandas Series, got {type(series).__name__}")
        if not series.index.is_unique:
            raise ValueError(f"{name} has duplicated response ids in its index")
        values = series.to_numpy(dtype=np.float64)
        if not np.isfinite(values).all():
            y = series.index[int(np.argmax(~np.isfinite(values)))]
            raise ValueError(f"{name}[{y!r}] = {series[y]!r} is not finite")
    if set(implicit_reward.index) != set(target_reward.index):
        only_i = [y for y in implicit_reward.index if y not in target_reward.index]
        only_t = [y for y in target_reward.index if y not in implicit_reward.index]
        raise ValueError(
            "implicit_reward and target_reward must cover the same responses; only in "
            f"implicit_reward: {only_i[:5]}, only in target_reward: {only_t[:5]}"
        )
    responses = target_reward.index
    h = implicit_reward.reindex(responses).to_numpy(dtype=np.float64)
    r = target_reward.to_numpy(dtype=np.float64)
    Q = _pair_weights(pair_weights, responses)
    Q = Q + Q.T
    sign_target = np.sign(r[:, None] - r[None, :])
    sign_policy = np.sign(h[:, None] - h[None, :])
    score = np.where(sign_policy == 0, 0.5, (sign_policy == sign_target).astype(np.float64))
    upper = np.triu(np.ones_like(Q, dtype=bool), k=1) & (sign_target != 0)
    total = Q[upper].sum()
    if not total > 0:
        raise ValueError(
            "no pair of responses with distinct target rewards has positive weight; "
            "alignment accuracy is undefined"
        )
    return float((Q[upper] * score[upper]).sum() / total)


@dataclass(frozen=True)
class NBCFlip:
    """The smallest change of the sampling distribution that ties two Borda counts.

    Attributes:
        first, second: the two responses; ``NBC(first) >= NBC(second)`` under ``flipped_sampling``.
        nbc_gap: ``NBC(second) - NBC(first)`` under the original sampling (> 0 when a flip is
            needed; <= 0 means ``first`` is already ahead and ``tv_distance`` is 0).
        tv_distance: the total-variation distance ``(1/2) ||mu' - mu||_1`` of the smallest move
            (``inf`` when no sampling distribution puts ``first`` ahead).
        flipped_sampling: that distribution ``mu'`` (``None`` when impossible).
    """

    first: Hashable
    second: Hashable
    nbc_gap: float
    tv_distance: float
    flipped_sampling: pd.Series | None


def _flip(P: np.ndarray, mu: np.ndarray, i: int, j: int) -> tuple[float, float, np.ndarray | None]:
    # NBC(i) - NBC(j) = sum_k mu_k d_k is linear in mu; moving mass t from k to the response with
    # the largest d raises it by t (d_max - d_k), so the cheapest move in total variation takes mass
    # from the responses with the smallest d first (a fractional knapsack, solved greedily).
    d = P[i] - P[j]
    deficit = -float(mu @ d)  # = NBC(j) - NBC(i)
    if deficit <= 0:
        return deficit, 0.0, mu.copy()
    target = int(np.argmax(d))
    gain = d[target] - d  # gain per unit of mass moved from k to target
    order = np.argsort(d, kind="stable")
    new_mu = mu.copy()
    remaining = deficit
    moved = 0.0
    for k in order:
        if gain[k] <= 0 or remaining <= 0:
            break
        take = min(mu[k], remaining / gain[k])
        new_mu[k] -= take
        new_mu[target] += take
        moved += take
        remaining -= take * gain[k]
    if remaining > 1e-12 * max(1.0, deficit):
        return deficit, float("inf"), None
    return deficit, moved, new_mu


def nbc_flip_distance(
    preferences: pd.DataFrame,
    first: Hashable,
    second: Hashable,
    sampling: pd.Series | None = None,
) -> NBCFlip:
    """How far (total variation) ``sampling`` must move for ``first`` to catch up with ``second``.

    Solves ``min_mu' TV(mu, mu')`` subject to ``NBC_mu'(first) >= NBC_mu'(second)`` exactly (the
    problem is a linear programme with a greedy optimum: move mass from the alternatives against
    which ``first`` does worst relative to ``second`` onto the one against which it does best).

    Args:
        preferences: square preference-probability DataFrame.
        first: the response that should end up (weakly) ahead.
        second: the response it has to catch.
        sampling: the current sampling distribution; default uniform.
    """
    P = _check_preferences(preferences)
    mu = _check_sampling(sampling, preferences.index)
    for name, y in (("first", first), ("second", second)):
        if y not in preferences.index:
            raise KeyError(f"{name}={y!r} is not a response id of preferences")
    if first == second:
        raise ValueError("first and second must be different responses")
    i = preferences.index.get_loc(first)
    j = preferences.index.get_loc(second)
    gap, tv, new_mu = _flip(P, mu, i, j)
    flipped = None if new_mu is None else pd.Series(new_mu, index=preferences.index.copy())
    return NBCFlip(first, second, gap, tv, flipped)


def nbc_ranking_sensitivity(
    preferences: pd.DataFrame, sampling: pd.Series | None = None
) -> pd.DataFrame:
    """TV distance needed to swap each pair of responses in the NBC ranking.

    For every pair with ``NBC(higher) > NBC(lower)``, the smallest total-variation move of the
    sampling distribution after which ``lower`` ties or beats ``higher``. The minimum of the
    ``tv_distance`` column is how far the sampling distribution must move to change the NBC (and
    so the DPO) ranking at all; rows with ``higher`` = the NBC winner say how far it is to
    dethrone it.

    Returns:
        DataFrame with columns ``higher``, ``lower``, ``nbc_higher``, ``nbc_lower``,
        ``tv_distance``, sorted by ``tv_distance`` (ties in NBC are skipped: they need no move).
    """
    P = _check_preferences(preferences)
    mu = _check_sampling(sampling, preferences.index)
    nbc = P @ mu
    rows = []
    n = len(nbc)
    for a in range(n):
        for b in range(n):
            if nbc[a] > nbc[b]:
                _, tv, _ = _flip(P, mu, b, a)
                rows.append((preferences.index[a], preferences.index[b], nbc[a], nbc[b], tv))
    table = pd.DataFrame(
        rows, columns=["higher", "lower", "nbc_higher", "nbc_lower", "tv_distance"]
    )
    return table.sort_values(["tv_distance", "nbc_higher"], ascending=[True, False]).reset_index(
        drop=True
    )
