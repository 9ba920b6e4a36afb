"""The synthetic user-type environment of Shirali et al. (arXiv 2502.16320), with exact optima.

``n`` responses sit on a line (positions in ``[0, 1]``); ``T`` user types have Bradley-Terry
rewards that peak at different places; type ``u`` makes up a share ``w_u`` of annotators. The
alternatives of a comparison are drawn independently from a sampling distribution ``mu`` (pairs
with the same response twice are redrawn: they carry no information). A tabular softmax policy
``pi = softmax(theta)`` with a uniform reference has implicit reward margin
``log pi(y)/pi_ref(y) - log pi(y')/pi_ref(y') = theta_y - theta_y'``, so every direct loss is a
function of the vector ``theta`` and its population risk can be minimised to machine precision.

What it shows (``benchmarks/bench_heterogeneous.py``): DPO's population optimum ranks responses
by the normalised Borda count and peaks at a mediocre middle response; the first-order
variance-corrected loss moves the policy towards the average-reward optimum; the agreement-only
loss recovers the average-reward ordering from unanimous pairs alone.

Methods (``METHODS``): ``"dpo"``, ``"corrected"`` (first-order variance correction with the
true ``V``), ``"corrected_estimated"`` (``V`` from :func:`~alignment.losses.heterogeneous.
estimate_pair_variance` on pairs labelled by the same annotator), ``"agreement"``
(agreement-only loss on per-type labels), ``"mixdpo_gamma"`` and ``"mixdpo_lognormal"``
(MixDPO with a learned strength distribution from :mod:`mixlogit.torch`).

The LLM counterpart (the embedded advice pairs relabelled by annotator types with known rewards
over measurable response features, as a ``datasets.Dataset`` for :class:`alignment.MixDPOTrainer`)
is :mod:`alignment.datasets.semisynthetic_types`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy.special import expit

from alignment.losses.heterogeneous import (
    estimate_pair_variance,
    single_thread,
    unanimous_pairs,
    variance_corrected_log_likelihood,
)
from analysis import borda
from mixlogit.families import NUMPY_OPS, get_family

__all__ = [
    "METHODS",
    "PreferenceSample",
    "SyntheticTypesEnv",
    "TabularFit",
    "default_environment",
    "fit_population",
    "fit_sample",
    "sample_preferences",
]

METHODS = (
    "dpo",
    "corrected",
    "corrected_estimated",
    "agreement",
    "mixdpo_gamma",
    "mixdpo_lognormal",
)


@dataclass(frozen=True)
class SyntheticTypesEnv:
    """Responses on a line, user types with peaked rewards, and a sampling distribution.

    Attributes:
        positions: ``(n,)`` positions of the responses in ``[0, 1]``.
        type_rewards: ``(T, n)`` Bradley-Terry reward of each response for each type (nats).
        type_weights: ``(T,)`` population shares of the types (sum to 1).
        sampling: ``(n,)`` distribution each alternative of a comparison is drawn from.
        type_names: names of the types (for DataFrames).
    """

    positions: np.ndarray
    type_rewards: np.ndarray
    type_weights: np.ndarray
    sampling: np.ndarray
    type_names: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        R = np.asarray(self.type_rewards, dtype=np.float64)
        if R.ndim != 2 or R.shape[1] < 2:
            raise ValueError(f"type_rewards must have shape (T, n) with n >= 2, got {R.shape}")
        n_types, n = R.shape
        if np.asarray(self.positions).shape != (n,):
            raise ValueError(f"positions must have shape ({n},), got {np.shape(self.positions)}")
        for name, arr, size in (
            ("type_weights", self.type_weights, n_types),
            ("sampling", self.sampling, n),
        ):
            a = np.asarray(arr, dtype=np.float64)
            if a.shape != (size,):
                raise ValueError(f"{name} must have shape ({size},), got {a.shape}")
            if not np.isfinite(a).all() or (a < 0).any() or abs(a.sum() - 1) > 1e-9:
                raise ValueError(f"{name} must be a probability vector, got {a}")
        if not np.isfinite(R).all():
            raise ValueError("type_rewards must be finite")
        if self.type_names and len(self.type_names) != n_types:
            raise ValueError(f"type_names needs {n_types} names, got {len(self.type_names)}")

    @property
    def num_responses(self) -> int:
        return self.type_rewards.shape[1]

    @property
    def num_types(self) -> int:
        return self.type_rewards.shape[0]

    @property
    def names(self) -> tuple[str, ...]:
        return self.type_names or tuple(f"type{t}" for t in range(self.num_types))

    def rewards_frame(self) -> pd.DataFrame:
        """``(n, T)`` rewards (index = response ids 0..n-1), the layout of :mod:`analysis.borda`."""
        return pd.DataFrame(self.type_rewards.T, columns=list(self.names))

    def weights_series(self) -> pd.Series:
        return pd.Series(self.type_weights, index=list(self.names))

    def sampling_series(self) -> pd.Series:
        return pd.Series(self.sampling)

    # The Borda algebra is :mod:`analysis.borda`'s; these give its results as arrays.
    def average_reward(self) -> np.ndarray:
        """``(n,)`` user-weighted average reward ``r_bar``."""
        return borda.average_reward(self.rewards_frame(), self.weights_series()).to_numpy()

    def reward_differences(self) -> np.ndarray:
        """``(T, n, n)`` reward differences ``r_u(y) - r_u(y')``."""
        R = self.type_rewards
        return R[:, :, None] - R[:, None, :]

    def pooled_preferences(self) -> np.ndarray:
        """``(n, n)`` probability that a random annotator prefers ``y`` to ``y'``."""
        return borda.preference_matrix(self.rewards_frame(), self.weights_series()).to_numpy()

    def difference_variance(self) -> np.ndarray:
        """``(n, n)`` across-type variance of the reward difference (weighted by type shares)."""
        frame = borda.reward_difference_variance(self.rewards_frame(), self.weights_series())
        return frame.to_numpy()

    def unanimity_probabilities(self) -> np.ndarray:
        """``(n, n)``: probability that one label from every type says ``y`` beats ``y'``."""
        return np.exp(np.log(expit(self.reward_differences())).sum(axis=0))

    def normalized_borda_count(self) -> np.ndarray:
        """``(n,)`` NBC of each response under ``sampling``."""
        preferences = borda.preference_matrix(self.rewards_frame(), self.weights_series())
        return borda.normalized_borda_count(preferences, self.sampling_series()).to_numpy()

    def pair_weights(self) -> np.ndarray:
        """``(n, n)`` probability of the ordered pair ``(y, y')``, ``y != y'``."""
        Q = np.outer(self.sampling, self.sampling)
        np.fill_diagonal(Q, 0.0)
        return Q / Q.sum()


def default_environment(num_responses: int = 40) -> SyntheticTypesEnv:
    """The benchmark's environment: 40 responses on ``[0, 1]``, three equally common types.

    Rewards are Gaussian bumps ``A exp(-(x - c)^2 / (2 s^2))``:

    * ``left``: ``A = 8, c = 0, s = 0.35`` (a strong preference for the left end);
    * ``right``: ``A = 2, c = 1, s = 0.6`` (a mild preference for the right end);
    * ``centre_right``: ``A = 4, c = 0.8, s = 0.5``.

    Sampling is uniform. The average reward peaks near the left end (response 4, ``x = 0.10``);
    the pooled labels' normalised Borda count -- and so DPO -- peaks at response 22
    (``x = 0.56``), which is no type's favourite (they peak at responses 0, 39 and 31) and whose
    average reward is below the midpoint of the range: the ``left`` type's intensity is
    invisible to pooled labels beyond ``sigmoid``'s saturation, so a middle response that no
    type hates wins most comparisons. Equal type weights make the agreement-only loss's
    equal-weight target coincide with ``r_bar``.
    """
    if num_responses < 3:
        raise ValueError(f"num_responses must be >= 3, got {num_responses}")
    x = np.linspace(0.0, 1.0, num_responses)
    rewards = np.stack(
        [
            8.0 * np.exp(-(x**2) / (2 * 0.35**2)),
            2.0 * np.exp(-((x - 1.0) ** 2) / (2 * 0.6**2)),
            4.0 * np.exp(-((x - 0.8) ** 2) / (2 * 0.5**2)),
        ]
    )
    return SyntheticTypesEnv(
        positions=x,
        type_rewards=rewards,
        type_weights=np.full(3, 1.0 / 3.0),
        sampling=np.full(num_responses, 1.0 / num_responses),
        type_names=("left", "right", "centre_right"),
    )


# --------------------------------------------------------------------------------------------
# Sampled preference data
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PreferenceSample:
    """Comparisons drawn from a :class:`SyntheticTypesEnv`; arrays of length ``N`` unless noted.

    Attributes:
        env: the environment.
        first, second: response ids of the two alternatives (never equal).
        first_wins: the pooled label: the pair's annotator preferred ``first``.
        annotator_ids: annotator of the pooled label; each annotator labels
            ``pairs_per_annotator`` consecutive pairs and has one type.
        annotator_types: the (hidden) type of that annotator.
        type_labels: ``(N, T)`` an independent label from every type (1 = prefers ``first``): the
            "full feedback" data of the agreement-only loss.
        true_variance: ``Var_u(r_u(first) - r_u(second))`` (the oracle ``V``).
    """

    env: SyntheticTypesEnv
    first: np.ndarray
    second: np.ndarray
    first_wins: np.ndarray
    annotator_ids: np.ndarray
    annotator_types: np.ndarray
    type_labels: np.ndarray
    true_variance: np.ndarray

    @property
    def num_pairs(self) -> int:
        return len(self.first)

    @property
    def chosen(self) -> np.ndarray:
        return np.where(self.first_wins, self.first, self.second)

    @property
    def rejected(self) -> np.ndarray:
        return np.where(self.first_wins, self.second, self.first)


def sample_preferences(
    env: SyntheticTypesEnv,
    num_pairs: int,
    *,
    pairs_per_annotator: int = 4,
    seed: int = 0,
) -> PreferenceSample:
    """Draw ``num_pairs`` comparisons: alternatives iid from ``env.sampling`` (redrawn if equal),
    annotators of a random type (shares ``env.type_weights``) labelling ``pairs_per_annotator``
    pairs each with Bradley-Terry noise, plus one independent label per type for every pair."""
    if num_pairs < 1 or pairs_per_annotator < 1:
        raise ValueError(
            "num_pairs and pairs_per_annotator must be >= 1, got "
            f"{num_pairs}, {pairs_per_annotator}"
        )
    if np.count_nonzero(env.sampling) < 2:
        raise ValueError("the sampling distribution must put mass on at least 2 responses")
    rng = np.random.default_rng(seed)
    n = env.num_responses
    first = rng.choice(n, size=num_pairs, p=env.sampling)
    second = rng.choice(n, size=num_pairs, p=env.sampling)
    same = first == second
    while same.any():
        second[same] = rng.choice(n, size=int(same.sum()), p=env.sampling)
        same = first == second
    annotator_ids = np.arange(num_pairs) // pairs_per_annotator
    num_annotators = int(annotator_ids[-1]) + 1
    types_of_annotators = rng.choice(env.num_types, size=num_annotators, p=env.type_weights)
    annotator_types = types_of_annotators[annotator_ids]
    diffs = env.type_rewards[:, first] - env.type_rewards[:, second]  # (T, N)
    probs = expit(diffs)
    first_wins = rng.random(num_pairs) < probs[annotator_types, np.arange(num_pairs)]
    type_labels = (rng.random((num_pairs, env.num_types)) < probs.T).astype(np.int64)
    mean = env.type_weights @ diffs
    true_variance = env.type_weights @ (diffs - mean) ** 2
    return PreferenceSample(
        env, first, second, first_wins, annotator_ids, annotator_types, type_labels, true_variance
    )


# --------------------------------------------------------------------------------------------
# Fitting a tabular policy
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TabularFit:
    """A fitted tabular policy.

    Attributes:
        method: one of :data:`METHODS`.
        implicit_reward: ``(n,)`` log-ratio ``log pi(y) / pi_ref(y)`` centred to mean 0 (times
            the fixed ``beta = 1``; for MixDPO the scale is absorbed in the strength).
        loss: final objective value (mean loss per pair).
        seconds: wall time of the fit.
        kept_share: for ``"agreement"``, the share of pairs kept (unanimous); else 1.
        strength: for MixDPO, the fitted strength parameters (name -> float).
    """

    method: str
    implicit_reward: np.ndarray
    loss: float
    seconds: float
    kept_share: float = 1.0
    strength: dict[str, float] = field(default_factory=dict)

    @property
    def policy(self) -> np.ndarray:
        """``(n,)`` the policy's probabilities (uniform reference, ``beta = 1``)."""
        z = self.implicit_reward - self.implicit_reward.max()
        p = np.exp(z)
        return p / p.sum()

    @property
    def peak(self) -> int:
        """The response the policy puts most mass on."""
        return int(np.argmax(self.implicit_reward))


#: The strength family of each MixDPO method.
MIXDPO_FAMILIES = {"mixdpo_gamma": "gamma", "mixdpo_lognormal": "lognormal"}


def unit_mean_strength(family: str) -> dict[str, float]:
    """Parameters of ``family`` with mean 1 and the CV of MixDPO's defaults (rewards here are in
    natural units, ``beta = 1``): Gamma ``shape = rate = 2``, LogNormal ``loc = -0.18, scale =
    0.6``."""
    spec = get_family(family)
    cv = spec.cv(NUMPY_OPS, spec.defaults)
    return {k: float(v) for k, v in spec.from_mean_cv(NUMPY_OPS, 1.0, cv).items()}


def _make_strength(method: str) -> torch.nn.Module | None:
    if method not in MIXDPO_FAMILIES:
        return None
    from mixlogit.torch import make_strength

    family = get_family(MIXDPO_FAMILIES[method])
    # the deterministic quadrature marginal where a family offers Monte Carlo (LogNormal)
    options = {"method": "quadrature"} if "method" in family.options else {}
    return make_strength(family, unit_mean_strength(family.name), **options)


def _strength_values(strength: torch.nn.Module | None) -> dict[str, float]:
    if strength is None:
        return {}
    values = {k: float(v.detach()) for k, v in strength.constrained_parameters().items()}
    values["mean"] = float(strength.mean.detach())
    return values


def _minimise(
    objective, params: list[torch.Tensor], rounds: int = 20, max_iterations: int = 200
) -> float:
    optimiser = torch.optim.LBFGS(
        params,
        lr=1.0,
        max_iter=max_iterations,
        tolerance_grad=1e-11,
        tolerance_change=1e-14,
        history_size=50,
        line_search_fn="strong_wolfe",
    )

    def closure():
        optimiser.zero_grad()
        value = objective()
        value.backward()
        return value

    previous = math.inf
    for _ in range(rounds):
        snapshot = [p.detach().clone() for p in params]
        value = optimiser.step(closure).detach().item()
        finite = math.isfinite(value) and all(bool(torch.isfinite(p).all()) for p in params)
        if not finite:
            # a line search stepped into overflow (e.g. a strength scale -> 0): keep the last
            # finite iterate rather than return NaN
            with torch.no_grad():
                for p, saved in zip(params, snapshot, strict=True):
                    p.copy_(saved)
            break
        if abs(previous - value) <= 1e-12 * max(1.0, abs(value)):
            break
        previous = value
    final = float(objective().detach())
    if not math.isfinite(final):
        raise FloatingPointError("the fit diverged to a non-finite objective")
    return final


def _newton(
    objective, theta: torch.Tensor, max_iterations: int = 100, gtol: float = 1e-13
) -> float:
    """Damped Newton on a shift-invariant risk of ``theta`` (the gauge is pinned by adding
    ``(sum theta)^2 / 2``, which leaves the differences, and so the optimum, unchanged)."""

    def pinned(t: torch.Tensor) -> torch.Tensor:
        return objective(t) + 0.5 * t.sum() ** 2

    t = theta.detach().clone()
    value = pinned(t)
    for _ in range(max_iterations):
        grad = torch.autograd.functional.jacobian(pinned, t)
        if grad.abs().max() < gtol:
            break
        hess = torch.autograd.functional.hessian(pinned, t)
        try:
            step = -torch.linalg.solve(hess, grad)
        except torch.linalg.LinAlgError:
            step = -grad
        if not float(step @ grad) < 0:  # not a descent direction (non-convex region)
            step = -grad
        size = 1.0
        while size > 1e-12:
            candidate = t + size * step
            new_value = pinned(candidate)
            if new_value <= value:
                break
            size *= 0.5
        if size <= 1e-12:
            break
        t, value = candidate, new_value
    with torch.no_grad():
        theta.copy_(t)
    return float(objective(t))


def _start(
    method: str, num_responses: int, dpo_fit, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.nn.Module | None, list[torch.Tensor]]:
    """``(theta, strength, parameters to optimise)`` at the start of a fit: ``theta = 0``, or
    for MixDPO the DPO fit ``dpo_fit()`` of the same data (see ``_MIXDPO_BUDGET``)."""
    strength = _make_strength(method)
    if strength is None:
        theta = torch.zeros(num_responses, dtype=dtype, requires_grad=True)
        return theta, None, [theta]
    theta = torch.as_tensor(dpo_fit().implicit_reward, dtype=dtype).clone().requires_grad_(True)
    strength = strength.to(dtype)
    return theta, strength, [theta, *strength.parameters()]


def _result(method, theta, loss, start, kept_share, strength) -> TabularFit:
    h = theta.detach().numpy().copy()
    return TabularFit(
        method,
        h - h.mean(),
        loss,
        time.perf_counter() - start,
        kept_share=kept_share,
        strength=_strength_values(strength),
    )


# MixDPO's strength and the scale of theta trade off along a flat valley (and the strength
# drifts towards a point mass here), so its fits get a fixed L-BFGS budget instead of a
# convergence test that would never trigger. They start from the DPO fit of the same data (the
# MixDPO risk at a point-mass strength of mean 1), which makes the budget go a long way.
_MIXDPO_BUDGET = {"rounds": 2, "max_iterations": 60}


def fit_population(
    env: SyntheticTypesEnv,
    method: str,
    *,
    alpha: float = 1.0,
    eps: float = 1e-3,
) -> TabularFit:
    """Minimise the *population* risk of ``method`` over a tabular policy (exact optimum).

    The risk is the expectation over ordered pairs ``(y, y')`` drawn from ``mu x mu`` (``y != y'``)
    and over labels: ``sum Q[y, y'] P[y, y'] loss(h_y - h_y')`` with the pooled preference ``P``
    (DPO, corrected with the true ``V[y, y']``, MixDPO), or with the unanimity probability
    ``prod_u sigmoid(D_u)`` for the agreement-only loss. ``"corrected_estimated"`` has no
    population version (use ``"corrected"``). Solved in float64 by damped Newton from
    ``theta = 0`` to a gradient of 1e-13. DPO's and the agreement loss's risks are convex, so
    their optima are unique up to the constant shift of ``h``; the corrected risk is not convex
    (in the default environment, starting from ``r_bar`` ends at stationary points with a higher
    risk than the one reached from 0 or from DPO's optimum, which coincide). MixDPO's joint risk
    in ``theta`` and the strength parameters is minimised by L-BFGS with a fixed budget (the
    strength drifts towards a point mass along a flat valley).
    """
    if method == "corrected_estimated":
        raise ValueError("'corrected_estimated' has no population version; use 'corrected'")
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    start = time.perf_counter()
    dtype = torch.float64
    Q = torch.tensor(env.pair_weights(), dtype=dtype)
    P = torch.tensor(env.pooled_preferences(), dtype=dtype)
    V = torch.tensor(env.difference_variance(), dtype=dtype)
    A = torch.tensor(env.unanimity_probabilities(), dtype=dtype)
    num_types = env.num_types
    theta, strength, params = _start(
        method, env.num_responses, lambda: fit_population(env, "dpo"), dtype
    )

    def objective() -> torch.Tensor:
        return objective_of(theta)

    def objective_of(theta: torch.Tensor) -> torch.Tensor:
        D = theta[:, None] - theta[None, :]
        if method == "dpo":
            return -(Q * P * F.logsigmoid(D)).sum()
        if method == "corrected":
            return -(Q * P * variance_corrected_log_likelihood(D, V, alpha=alpha, eps=eps)).sum()
        if method == "agreement":
            return -(Q * A * F.logsigmoid(num_types * D)).sum()
        off = Q > 0
        return -(Q[off] * P[off] * strength.log_marginal(D[off])).sum()

    with single_thread():
        if strength is None:  # exact: Newton on the 40 free parameters
            loss = _newton(lambda t: objective_of(t), theta)
        else:
            loss = _minimise(objective, params, **_MIXDPO_BUDGET)
    # expected share of sampled pairs that are unanimous (either way)
    kept = float((Q * (A + A.T)).sum()) if method == "agreement" else 1.0
    return _result(method, theta, loss, start, kept, strength)


def fit_sample(
    sample: PreferenceSample,
    method: str,
    *,
    alpha: float = 1.0,
    eps: float = 1e-3,
    ridge: float = 1e-6,
    estimator_types: int | None = None,
) -> TabularFit:
    """Fit a tabular policy to sampled comparisons with ``method`` (empirical risk, L-BFGS).

    The policy is ``softmax(theta)`` with a uniform reference and ``beta = 1``; its log-probs go
    through the package's loss functions (:func:`alignment.losses.dpo_loss`,
    :func:`~alignment.losses.heterogeneous.variance_corrected_dpo_loss`, ...). A tiny ridge
    ``ridge/2 |theta - mean(theta)|^2`` keeps the optimum finite if some response never loses.

    ``"corrected_estimated"`` first estimates ``V`` per pair with
    :func:`~alignment.losses.heterogeneous.estimate_pair_variance` (one-hot features, the
    annotator ids, ``estimator_types`` latent types, default the true number of types); its
    wall time is included.
    """
    from alignment.losses import dpo_loss, mixdpo_loss
    from alignment.losses.heterogeneous import (
        agreement_only_dpo_loss,
        variance_corrected_dpo_loss,
    )

    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    start = time.perf_counter()
    dtype = torch.float64
    env = sample.env
    n = env.num_responses
    chosen = torch.as_tensor(sample.chosen)
    rejected = torch.as_tensor(sample.rejected)
    first = torch.as_tensor(sample.first)
    second = torch.as_tensor(sample.second)
    ref = torch.full((sample.num_pairs,), -math.log(n), dtype=dtype)
    kept_share = 1.0
    variance = None
    type_labels = None
    if method == "corrected":
        variance = torch.as_tensor(sample.true_variance, dtype=dtype)
    elif method == "corrected_estimated":
        eye = torch.eye(n, dtype=dtype)
        estimate = estimate_pair_variance(
            eye[chosen],
            eye[rejected],
            torch.as_tensor(sample.annotator_ids),
            num_types=estimator_types or env.num_types,
        )
        variance = estimate.variance
    elif method == "agreement":
        type_labels = torch.as_tensor(sample.type_labels)
        kept, _ = unanimous_pairs(type_labels)
        kept_share = float(kept.to(dtype).mean())
        if kept_share == 0:
            raise ValueError("no pair is unanimous; the agreement-only loss has no data")
    theta, strength, params = _start(
        method, n, lambda: fit_sample(sample, "dpo", ridge=ridge), dtype
    )

    def objective() -> torch.Tensor:
        logp = torch.log_softmax(theta, dim=0)
        penalty = 0.5 * ridge * ((theta - theta.mean()) ** 2).sum()
        if method == "agreement":
            losses = agreement_only_dpo_loss(
                logp[first], logp[second], ref, ref, type_labels, beta=1.0
            )
            return losses.mean() + penalty
        pc, pr = logp[chosen], logp[rejected]
        if method == "dpo":
            losses = dpo_loss(pc, pr, ref, ref, beta=1.0)
        elif method in ("corrected", "corrected_estimated"):
            losses = variance_corrected_dpo_loss(
                pc, pr, ref, ref, variance, beta=1.0, alpha=alpha, eps=eps
            )
        else:
            losses = mixdpo_loss(pc, pr, ref, ref, strength)
        return losses.mean() + penalty

    with single_thread():
        loss = _minimise(objective, params, **(_MIXDPO_BUDGET if strength is not None else {}))
    return _result(method, theta, loss, start, kept_share, strength)
