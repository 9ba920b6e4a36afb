"""DPO (sigmoid) and MixDPO losses.

DPO (Rafailov et al., 2023) scores a pair by ``-log sigmoid(beta * delta)`` with the implicit-reward
margin ``delta = (log pi(y_w) - log pi_ref(y_w)) - (log pi(y_l) - log pi_ref(y_l))`` in nats.
MixDPO (arXiv 2601.06180) replaces the fixed ``beta`` by a distribution and minimises
``-log E_beta[sigmoid(beta * delta)]``; the expectation is the strength object's exact (Gamma),
quadrature or Monte Carlo (LogNormal) marginal from :mod:`mixlogit.torch`, so nothing is
re-derived here. A point-mass strength gives DPO back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from alignment.losses.base import PairBatch, PreferenceLoss, register_loss

__all__ = ["DPOLoss", "MixDPOLoss", "dpo_loss", "mixdpo_loss", "reward_margin"]


def reward_margin(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
) -> torch.Tensor:
    shapes = {
        "policy_chosen_logps": tuple(policy_chosen_logps.shape),
        "policy_rejected_logps": tuple(policy_rejected_logps.shape),
        "ref_chosen_logps": tuple(ref_chosen_logps.shape),
        "ref_rejected_logps": tuple(ref_rejected_logps.shape),
    }
    if len(set(shapes.values())) != 1 or len(shapes["policy_chosen_logps"]) != 1:
        raise ValueError(f"log-prob tensors must all have one shape (B,), got {shapes}")
    return (policy_chosen_logps - ref_chosen_logps) - (policy_rejected_logps - ref_rejected_logps)


def dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float | torch.Tensor = 0.1,
) -> torch.Tensor:
    """Per-pair DPO sigmoid loss ``-log sigmoid(beta * delta)``.

    Args:
        policy_chosen_logps: summed log-probs (nats) of the chosen completions, shape ``(B,)``.
        policy_rejected_logps: same for the rejected completions, shape ``(B,)``.
        ref_chosen_logps: reference-model log-probs of the chosen completions, shape ``(B,)``.
        ref_rejected_logps: reference-model log-probs of the rejected completions, shape ``(B,)``.
        beta: the (positive) preference strength / KL coefficient.

    Returns:
        Loss per pair, shape ``(B,)``; average it for the batch loss.
    """
    if not isinstance(beta, torch.Tensor) and not beta > 0:
        raise ValueError(f"beta must be positive, got {beta!r}")
    delta = reward_margin(
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps
    )
    return -F.logsigmoid(beta * delta)


def mixdpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    strength: torch.nn.Module,
    *,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Per-pair MixDPO loss ``-log E_beta[sigmoid(beta * delta)]``.

    Args:
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps: summed
            completion log-probs (nats), each of shape ``(B,)``.
        strength: a ``mixlogit.torch`` strength module (``GammaStrength``, ``LogNormalStrength``,
            ``FixedStrength``) or anything with ``log_marginal(d, *, noise, generator)``.
        noise: optional standard-normal draws for Monte Carlo marginals (common random numbers).
        generator: optional RNG for Monte Carlo marginals.

    Returns:
        Loss per pair, shape ``(B,)``; differentiable in the log-probs and the strength parameters.
    """
    if not hasattr(strength, "log_marginal"):
        raise TypeError(f"strength must provide log_marginal(d), got {type(strength).__name__}")
    delta = reward_margin(
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps
    )
    return -strength.log_marginal(delta, noise=noise, generator=generator)


@register_loss("dpo")
class DPOLoss(PreferenceLoss):
    """DPO sigmoid loss with a fixed ``beta`` (TRL's ``loss_type="sigmoid"``).

    The trainer logs a point mass at ``beta`` as the strength.
    """

    uses_strength = False

    def __init__(self, beta: float = 0.1):
        if not beta > 0:
            raise ValueError(f"DPO beta must be positive, got {beta!r}")
        self.beta = float(beta)

    def __call__(self, batch: PairBatch) -> torch.Tensor:
        return -F.logsigmoid(self.beta * batch.margin)

    def reward_scale(self, batch: PairBatch) -> float:
        return self.beta


@register_loss("mixdpo")
class MixDPOLoss(PreferenceLoss):
    """MixDPO: ``-log E_beta[sigmoid(beta * delta)]`` under the batch's strength distribution.

    Args:
        generator: optional RNG forwarded to Monte Carlo marginals (LogNormal ``method="mc"``).
    """

    uses_strength = True

    def __init__(self, generator: torch.Generator | None = None):
        self.generator = generator

    def __call__(self, batch: PairBatch) -> torch.Tensor:
        if batch.strength is None:
            raise ValueError("loss_type 'mixdpo' needs a strength module in the batch")
        return -batch.strength.log_marginal(batch.margin, generator=self.generator)
