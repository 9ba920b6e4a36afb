"""Direct-alignment losses for heterogeneous user types (Shirali et al., arXiv 2502.16320).

Setting: user type ``u`` (population weight ``w_u``) prefers ``y_w`` to ``y_l`` with Bradley-Terry
probability ``sigmoid(D_u)``, ``D_u = r_u(y_w) - r_u(y_l)``. A single policy should follow the
user-weighted average reward ``r_bar = sum_u w_u r_u``; plain DPO instead follows the normalised
Borda count (see :mod:`analysis.borda`). Two remedies live here, both as pure torch functions of
the implicit-reward margin ``h = beta * [(log pi(y_w) - log pi_ref(y_w)) - (log pi(y_l) -
log pi_ref(y_l))]`` and as registered :class:`~alignment.losses.PreferenceLoss` classes:

* **First-order variance-corrected DPO** (``loss_type="variance_corrected_dpo"``). The pooled
  label probability is ``E_u sigmoid(D_u) = sigmoid(D_bar) + sigmoid''(D_bar) V / 2 + O(m_3)``
  with ``V = Var_u(D_u)``; the loss is ``-log(sigmoid(h) + (alpha/2) sigmoid''(h) V)``, so the
  implicit reward ``h`` is fitted to the *average* reward difference rather than to the pooled
  logit. ``V`` comes per pair (oracle, or :func:`estimate_pair_variance` from pairs labelled by the
  same annotator).
* **Agreement-only consistent loss** (``loss_type="agreement_dpo"``) for data where every one of
  ``T`` types labelled each pair: drop pairs on which the types disagree and fit the unanimous
  label with temperature ``1/T``.

Registry entries (in ``alignment.losses``; this module registers them on import):
``"variance_corrected_dpo"`` -> :class:`VarianceCorrectedDPOLoss` (batch column
``reward_variance``, or another one named by ``variance_column``) and ``"agreement_dpo"`` -> :class:`AgreementOnlyDPOLoss` (batch column
``type_labels``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from alignment.losses.base import PairBatch, PreferenceLoss, register_loss
from alignment.losses.dpo import reward_margin
from mixlogit._deprecation import deprecated_keywords

__all__ = [
    "AgreementOnlyDPOLoss",
    "PairVarianceEstimate",
    "VarianceCorrectedDPOLoss",
    "agreement_only_dpo_loss",
    "agreement_only_nll",
    "estimate_pair_variance",
    "unanimous_pairs",
    "variance_corrected_dpo_loss",
    "variance_corrected_log_likelihood",
]


def _check_beta(beta: float) -> float:
    beta = float(beta)
    if not (beta > 0 and math.isfinite(beta)):
        raise ValueError(f"beta must be a positive finite number, got {beta!r}")
    return beta


# --------------------------------------------------------------------------------------------
# First-order variance correction
# --------------------------------------------------------------------------------------------


def variance_corrected_log_likelihood(
    h: torch.Tensor,
    variance: torch.Tensor,
    *,
    alpha: float = 1.0,
    eps: float = 1e-3,
) -> torch.Tensor:
    """``log(sigmoid(h) + (alpha/2) sigmoid''(h) V)``, bounded to a valid log-probability.

    With ``s = sigmoid(h)``, ``sigmoid''(h) = s (1 - s) (1 - 2 s)``, so the corrected probability is
    ``p = s * (1 + c (1 - s)(1 - 2 s))`` with ``c = alpha V / 2``. Because
    ``min_s (1 - s)(1 - 2 s) = -1/8`` (at ``s = 3/4``) and ``1 - p = (1 - s)(1 - c s (1 - 2 s))``
    with ``max_s s (1 - 2 s) = 1/8``, ``p`` is a probability for every ``h`` iff ``c <= 8``, i.e.
    ``alpha V <= 16``. The correction is therefore bounded by clamping ``c`` to ``8 (1 - eps)``,
    which guarantees ``eps * s <= p <= 1 - eps * (1 - s)``: the log stays finite, and the
    gradient in ``h`` stays finite too (the ``log1p`` argument is ``>= eps - 1``). Pairs whose
    ``alpha V`` exceeds ``16 (1 - eps)`` get the largest admissible correction (and no gradient
    through ``V``, which is data). The corrected probabilities of the two orders of a pair add to
    1 (``sigmoid''`` is odd), so this is a proper Bernoulli likelihood.

    Computed as ``logsigmoid(h) + log1p(c * sigmoid(-h) * tanh(-h/2))`` (``1 - 2 s = tanh(-h/2)``),
    which is accurate for large ``|h|``.

    Args:
        h: implicit-reward margins (reward units, i.e. ``beta`` times the log-ratio margin), any
            shape.
        variance: ``V = Var_u(r_u(y_w) - r_u(y_l)) >= 0`` in squared reward units, broadcastable
            to ``h``.
        alpha: scale of the correction (1 = the second-order Taylor term); ``>= 0``.
        eps: floor of the bound described above, in ``(0, 1)``.

    Returns:
        Log-likelihood of the observed order, same shape as ``h``.
    """
    alpha = float(alpha)
    if not (alpha >= 0 and math.isfinite(alpha)):
        raise ValueError(f"alpha must be a finite number >= 0, got {alpha!r}")
    if not 0 < eps < 1:
        raise ValueError(f"eps must lie in (0, 1), got {eps!r}")
    variance = torch.as_tensor(variance, dtype=h.dtype, device=h.device)
    if not torch.isfinite(variance).all() or (variance < 0).any():
        bad = (~torch.isfinite(variance)) | (variance < 0)
        index = tuple(torch.nonzero(bad)[0].tolist())
        raise ValueError(
            f"variance must be finite and >= 0; got {variance[index].item()!r} at index {index}"
        )
    c = (0.5 * alpha * variance).clamp(max=8.0 * (1.0 - eps))
    return F.logsigmoid(h) + torch.log1p(c * torch.sigmoid(-h) * torch.tanh(-0.5 * h))


def variance_corrected_dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    variance: torch.Tensor,
    *,
    beta: float = 0.1,
    alpha: float = 1.0,
    eps: float = 1e-3,
) -> torch.Tensor:
    """Per-pair first-order variance-corrected DPO loss ``-log(sigmoid(h) + (alpha/2)s''(h)V)``.

    Args:
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps: summed
            completion log-probs (nats), each of shape ``(B,)``.
        variance: per-pair variance of the reward difference across user types, shape ``(B,)``,
            in squared implicit-reward units (the units of ``h = beta * margin``).
        beta: DPO's KL coefficient; ``h = beta * margin``.
        alpha, eps: see :func:`variance_corrected_log_likelihood`.

    Returns:
        Loss per pair, shape ``(B,)``. With ``V = 0`` it equals the DPO loss.
    """
    beta = _check_beta(beta)
    margin = reward_margin(
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps
    )
    if variance.shape != margin.shape:
        raise ValueError(
            f"variance must have shape {tuple(margin.shape)}, got {tuple(variance.shape)}"
        )
    return -variance_corrected_log_likelihood(beta * margin, variance, alpha=alpha, eps=eps)


@register_loss("variance_corrected_dpo")
class VarianceCorrectedDPOLoss(PreferenceLoss):
    """First-order variance-corrected DPO (reads the per-pair batch column ``reward_variance``).

    Args:
        beta: KL coefficient (``h = beta * margin``).
        alpha: scale of the correction.
        eps: bound of the correction (see :func:`variance_corrected_log_likelihood`).
        variance_column: the batch column holding ``V`` (``(B,)``, squared units of ``h``);
            e.g. ``"estimated_reward_variance"`` for ``V`` estimated from same-annotator pairs
            (:func:`alignment.datasets.semisynthetic_types.add_estimated_variance`). The trainer reads
            the instance's ``extra_columns``, so the dataset must have this column.
    """

    extra_columns = ("reward_variance",)
    uses_strength = False

    def __init__(
        self,
        beta: float = 0.1,
        alpha: float = 1.0,
        eps: float = 1e-3,
        variance_column: str = "reward_variance",
    ):
        self.beta = _check_beta(beta)
        if not isinstance(variance_column, str) or not variance_column:
            raise ValueError(f"variance_column must be a column name, got {variance_column!r}")
        self.variance_column = variance_column
        self.extra_columns = (variance_column,)
        self.alpha = float(alpha)
        self.eps = float(eps)
        if not (self.alpha >= 0 and math.isfinite(self.alpha)):
            raise ValueError(f"alpha must be a finite number >= 0, got {alpha!r}")
        if not 0 < self.eps < 1:
            raise ValueError(f"eps must lie in (0, 1), got {eps!r}")

    def __call__(self, batch: PairBatch) -> torch.Tensor:
        variance = batch.extras[self.variance_column].to(batch.margin.dtype)
        if variance.shape != batch.margin.shape:
            raise ValueError(
                f"column {self.variance_column!r} must hold one number per pair, shape "
                f"{tuple(batch.margin.shape)}; got {tuple(variance.shape)}"
            )
        h = self.beta * batch.margin
        return -variance_corrected_log_likelihood(h, variance, alpha=self.alpha, eps=self.eps)

    def reward_scale(self, batch: PairBatch) -> float:
        return self.beta


# --------------------------------------------------------------------------------------------
# Agreement-only consistent loss
# --------------------------------------------------------------------------------------------


def unanimous_pairs(type_labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Which pairs every type labelled alike, and which way.

    Args:
        type_labels: ``(B, T)`` labels in ``{0, 1}`` (bool, int or float); entry ``[b, t]`` is 1
            when type ``t`` prefers the *chosen* completion of pair ``b``, 0 when it prefers the
            rejected one. Every type must have labelled every pair.

    Returns:
        ``(kept, sign)``: bool ``(B,)`` mask of unanimous pairs and float ``(B,)`` with ``+1``
        where all types prefer the chosen completion, ``-1`` where all prefer the rejected one
        and ``0`` on disagreement.
    """
    if type_labels.ndim != 2 or type_labels.shape[1] < 1:
        raise ValueError(
            f"type_labels must have shape (B, T) with T >= 1, got {tuple(type_labels.shape)}"
        )
    labels = type_labels.to(torch.float64)
    bad = ~((labels == 0) | (labels == 1))
    if bad.any():
        b, t = torch.nonzero(bad)[0].tolist()
        raise ValueError(
            f"type_labels must be 0 or 1 (every type labels every pair); got "
            f"{type_labels[b, t].item()!r} for pair {b}, type {t}"
        )
    all_chosen = labels.min(dim=1).values == 1
    all_rejected = labels.max(dim=1).values == 0
    sign = all_chosen.to(torch.float64) - all_rejected.to(torch.float64)
    return all_chosen | all_rejected, sign


def agreement_only_nll(h: torch.Tensor, type_labels: torch.Tensor) -> torch.Tensor:
    """Per-pair agreement-only loss ``1{unanimous} * -log sigmoid(T * sign * h)``.

    Why temperature ``1/T``: with independent Bradley-Terry labels from ``T`` types,
    ``P(all prefer y_w) = prod_t sigmoid(D_t)`` and ``P(all prefer y_l) = prod_t sigmoid(-D_t)``.
    Since ``sigmoid(x) / sigmoid(-x) = exp(x)``,

        P(all prefer y_w | unanimous) = 1 / (1 + prod_t exp(-D_t)) = sigmoid(sum_t D_t)
                                      = sigmoid(T * D_bar),

    exactly, with ``D_bar`` the equal-weight average reward difference. So the unanimous pairs
    follow a Bradley-Terry model in ``T * r_bar``: fitting ``sigmoid(T h)`` makes the implicit
    reward ``h`` consistent for ``r_bar`` (``h = D_bar`` is the population optimum on every pair
    with positive sampling probability; every pair is unanimous with positive probability).
    Disagreeing pairs contribute 0; the batch mean is the population risk
    ``E[1{unanimous} loss]``, whose minimiser is the same. The average is over the ``T`` labelling
    types with equal weight: unequal type weights cannot be recovered from unanimity.

    Args:
        h: implicit-reward margins, shape ``(B,)`` (chosen minus rejected).
        type_labels: ``(B, T)`` per-type labels, see :func:`unanimous_pairs`.

    Returns:
        Loss per pair, shape ``(B,)``; exactly 0 on disagreeing pairs.
    """
    if type_labels.shape[:1] != h.shape or h.ndim != 1:
        raise ValueError(
            f"h must have shape (B,) and type_labels (B, T); got {tuple(h.shape)} and "
            f"{tuple(type_labels.shape)}"
        )
    kept, sign = unanimous_pairs(type_labels)
    num_types = type_labels.shape[1]
    loss = -F.logsigmoid(num_types * sign.to(h.dtype) * h)
    return torch.where(kept, loss, torch.zeros_like(loss))


def agreement_only_dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    type_labels: torch.Tensor,
    *,
    beta: float = 0.1,
) -> torch.Tensor:
    """Per-pair agreement-only DPO loss; see :func:`agreement_only_nll` (``h = beta * margin``).

    Returns:
        Loss per pair, shape ``(B,)``, 0 on pairs where the ``T`` types disagree.
    """
    beta = _check_beta(beta)
    margin = reward_margin(
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps
    )
    return agreement_only_nll(beta * margin, type_labels)


@register_loss("agreement_dpo")
class AgreementOnlyDPOLoss(PreferenceLoss):
    """Agreement-only consistent loss (reads the ``(B, T)`` batch column ``type_labels``).

    The trainer's batch mean is ``kept share x`` the mean over unanimous pairs; the kept share is
    the loss's sample efficiency (see :func:`unanimous_pairs`).
    """

    extra_columns = ("type_labels",)
    uses_strength = False

    def __init__(self, beta: float = 0.1):
        self.beta = _check_beta(beta)

    def __call__(self, batch: PairBatch) -> torch.Tensor:
        return agreement_only_nll(self.beta * batch.margin, batch.extras["type_labels"])

    def reward_scale(self, batch: PairBatch) -> float:
        return self.beta


# --------------------------------------------------------------------------------------------
# Estimating V from pairs labelled by the same annotator
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run small torch problems on one intra-op thread (restored afterwards).

    The estimator's and the tabular fits' tensors are tiny; with several threads on a busy
    machine the thread hand-offs cost 10-25x more than the arithmetic.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@dataclass(frozen=True)
class PairVarianceEstimate:
    """Result of :func:`estimate_pair_variance`.

    Attributes:
        variance: per-pair ``Var_k(theta_k . x_n)`` under the fitted type weights, shape ``(N,)``.
        type_weights: fitted latent-type weights, shape ``(K,)``.
        type_coefficients: fitted per-type reward coefficients ``theta_k``, shape ``(K, D)``.
        mean_reward_difference: per-pair ``sum_k w_k theta_k . x_n``, shape ``(N,)``.
        log_likelihood: marginal log-likelihood of the labels at the fit (without the ridge).
        iterations: EM iterations of the best restart.
        bic: Bayesian information criterion of each candidate number of types (``{K: BIC}``);
            the selected ``K`` is ``len(type_weights)``.
    """

    variance: torch.Tensor
    type_weights: torch.Tensor
    type_coefficients: torch.Tensor
    mean_reward_difference: torch.Tensor
    log_likelihood: float
    iterations: int
    bic: dict[int, float]


def _weighted_logistic_newton(
    x: torch.Tensor, weights: torch.Tensor, theta: torch.Tensor, ridge: float, steps: int
) -> torch.Tensor:
    # maximise sum_n weights_n log sigmoid(theta . x_n) - ridge/2 |theta|^2 (concave) by Newton.
    eye = torch.eye(x.shape[1], dtype=x.dtype)
    for _ in range(steps):
        z = x @ theta
        p = torch.sigmoid(-z)  # d/dz log sigmoid(z) = sigmoid(-z)
        grad = x.T @ (weights * p) - ridge * theta
        curvature = weights * p * (1 - p)
        hess = (x.T * curvature) @ x + ridge * eye
        step = torch.linalg.solve(hess, grad)
        theta = theta + step
        if step.abs().max() < 1e-10:
            break
    return theta


@deprecated_keywords(max_iter="max_iterations", tol="tolerance")
def estimate_pair_variance(
    chosen_features: torch.Tensor,
    rejected_features: torch.Tensor,
    annotator_ids: torch.Tensor,
    *,
    num_types: int = 3,
    select_num_types: bool = True,
    ridge: float = 1.0,
    num_restarts: int = 3,
    max_iterations: int = 200,
    tolerance: float = 1e-6,
    seed: int = 0,
) -> PairVarianceEstimate:
    """Estimate ``V`` per pair with a latent-type Bradley-Terry mixture fitted by joint likelihood.

    Model: annotator ``a`` has a latent type ``k ~ Categorical(w)``; given it, each pair ``n`` that
    ``a`` labelled was ordered chosen-over-rejected with probability ``sigmoid(theta_k . x_n)``,
    ``x_n = phi(chosen_n) - phi(rejected_n)``. Labels of one annotator share the type, so the
    likelihood of annotator ``a`` is ``sum_k w_k prod_{n in a} sigmoid(theta_k . x_n)``: the
    linkage of pairs labelled by the same annotator is what identifies the spread of the types
    (with one pair per annotator the mixture is not identified). Fitted by EM (weighted ridge
    logistic regressions by warm-started Newton steps in the M-step) from ``num_restarts`` random
    starts; the best penalised likelihood wins (one intra-op thread: the problem is small). The
    per-pair variance is

        V_n = sum_k w_k (theta_k . x_n - sum_j w_j theta_j . x_n)^2,

    in Bradley-Terry reward units (those of DPO's implicit reward ``h``). For tabular responses
    pass one-hot features; for LLM data, fixed embeddings of the completions.

    Args:
        chosen_features: ``(N, D)`` features of the chosen completions.
        rejected_features: ``(N, D)`` features of the rejected completions.
        annotator_ids: ``(N,)`` integer annotator id of each pair.
        num_types: number ``K`` of latent types (the largest tried when ``select_num_types``).
        select_num_types: fit ``1..num_types`` types and keep the fit with the smallest BIC
            (``-2 loglik + (K D + K - 1) log N``). Without it, a mixture fitted to homogeneous
            annotators splits the noise and reports spurious variance.
        ridge: L2 penalty ``ridge/2 |theta_k|^2`` on each type's coefficients (needed when
            features are collinear, e.g. one-hot rewards are defined up to a constant).
        num_restarts: EM restarts from random responsibilities.
        max_iterations: EM iterations per restart (formerly ``max_iter``).
        tolerance: stop when the penalised log-likelihood improves by less than ``tolerance``
            (relative; formerly ``tol``).
        seed: seed of the restarts.

    Returns:
        A :class:`PairVarianceEstimate`; ``variance`` has shape ``(N,)`` and dtype float64.
    """
    if chosen_features.ndim != 2 or chosen_features.shape != rejected_features.shape:
        raise ValueError(
            "chosen_features and rejected_features must both have shape (N, D); got "
            f"{tuple(chosen_features.shape)} and {tuple(rejected_features.shape)}"
        )
    n_pairs = chosen_features.shape[0]
    if annotator_ids.shape != (n_pairs,):
        raise ValueError(
            f"annotator_ids must have shape ({n_pairs},), got {tuple(annotator_ids.shape)}"
        )
    if num_types < 1:
        raise ValueError(f"num_types must be >= 1, got {num_types}")
    x = (chosen_features - rejected_features).to(torch.float64)
    if not torch.isfinite(x).all():
        row = int(torch.nonzero(~torch.isfinite(x))[0, 0])
        raise ValueError(f"features of pair {row} are not finite")
    _, annotator = torch.unique(annotator_ids, return_inverse=True)
    n_annotators = int(annotator.max()) + 1
    counts = torch.bincount(annotator, minlength=n_annotators)
    if num_types > 1 and int(counts.max()) < 2:
        raise ValueError(
            "every annotator labelled a single pair; the type mixture (and V) is only identified "
            "from annotators who labelled at least 2 pairs"
        )
    generator = torch.Generator().manual_seed(seed)
    candidates = range(1, num_types + 1) if select_num_types else (num_types,)
    fits = {}
    bic = {}
    with single_thread():
        for k in candidates:
            fits[k] = _fit_type_mixture(
                x,
                annotator,
                n_annotators,
                k,
                ridge,
                num_restarts,
                max_iterations,
                tolerance,
                generator,
            )
            num_parameters = k * x.shape[1] + (k - 1)
            bic[k] = -2.0 * fits[k][2] + num_parameters * math.log(n_pairs)
        chosen = min(bic, key=bic.get)
        theta, weights, log_likelihood, iterations = fits[chosen]
        diffs = x @ theta.T  # (N, K)
        mean = diffs @ weights
        variance = ((diffs - mean[:, None]) ** 2) @ weights
    return PairVarianceEstimate(variance, weights, theta, mean, log_likelihood, iterations, bic)


def _fit_type_mixture(
    x: torch.Tensor,
    annotator: torch.Tensor,
    n_annotators: int,
    num_types: int,
    ridge: float,
    num_restarts: int,
    max_iterations: int,
    tolerance: float,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, float, int]:
    """EM for the latent-type Bradley-Terry mixture; returns (theta, weights, loglik, iters)."""
    dim = x.shape[1]

    def log_lik_terms(theta: torch.Tensor, log_w: torch.Tensor) -> torch.Tensor:
        per_pair = F.logsigmoid(x @ theta.T)  # (N, K)
        per_annotator = torch.zeros(n_annotators, num_types, dtype=torch.float64)
        per_annotator.index_add_(0, annotator, per_pair)
        return per_annotator + log_w  # (A, K)

    best = None
    for _ in range(max(1, num_restarts) if num_types > 1 else 1):
        # random responsibilities ~ Dirichlet(1, ..., 1) (normalised exponentials)
        resp = -torch.log(
            torch.rand(n_annotators, num_types, generator=generator, dtype=torch.float64)
        )
        resp = resp / resp.sum(dim=1, keepdim=True)
        theta = torch.zeros(num_types, dim, dtype=torch.float64)
        previous = -math.inf
        iterations = 0
        for _ in range(max_iterations):
            iterations += 1
            # M-step: type shares, then one weighted ridge-logistic regression per type
            log_w = torch.log(resp.mean(dim=0).clamp_min(1e-300))
            pair_resp = resp[annotator]  # (N, K)
            theta = torch.stack(
                [
                    _weighted_logistic_newton(x, pair_resp[:, k], theta[k], ridge, steps=3)
                    for k in range(num_types)
                ]
            )
            # E-step
            joint = log_lik_terms(theta, log_w)
            total = torch.logsumexp(joint, dim=1)
            resp = torch.exp(joint - total[:, None])
            objective = float(total.sum()) - 0.5 * ridge * float((theta**2).sum())
            converged = objective - previous < tolerance * max(1.0, abs(objective))
            previous = objective
            if converged:
                break
        if best is None or previous > best[0]:
            best = (previous, theta, torch.exp(log_w), float(total.sum()), iterations)
    return best[1], best[2], best[3], best[4]
