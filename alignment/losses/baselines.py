"""TRL's DPO-family losses under TRL's names, and sums of losses with weights.

The names and formulas are those of TRL 1.16's ``DPOTrainer`` (``DPOConfig.loss_type``), so that
a TRL configuration runs unchanged; each is checked against TRL's own loss on identical
log-probabilities in ``tests/alignment/test_trl_compat.py``. ``delta`` is the implicit-reward
margin of :attr:`PairBatch.margin` (nats), ``beta`` the fixed KL coefficient.

* ``sigmoid``: DPO, ``-log sigmoid(beta delta)`` (same as ``dpo``).
* ``hinge``: ``relu(1 - beta delta)`` (SLiC).
* ``ipo``: ``(delta_bar - 1 / (2 beta))**2`` with the log-ratios averaged over each completion's
  tokens (``delta_bar``), as TRL does (its IPO is length-normalised; ``beta`` is IPO's tau).
* ``robust``: robust DPO for labels flipped with probability ``label_smoothing`` (eps),
  ``(-(1 - eps) log sigmoid(beta delta) + eps log sigmoid(-beta delta)) / (1 - 2 eps)``.
* ``sft``: the NLL of the chosen completions, ``-sum_i log pi(y_w,i) / sum_i |y_w,i|`` (mean
  per token over the batch, the same value for every pair), TRL's ``"sft"`` term
  (``loss_type=["sigmoid", "sft"]``, formerly ``rpo_alpha``).

:class:`WeightedLoss` adds losses with weights (TRL's ``loss_type`` list with ``loss_weights``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from alignment.losses.base import PairBatch, PreferenceLoss, register_loss
from alignment.losses.dpo import DPOLoss

__all__ = ["HingeLoss", "IPOLoss", "RobustDPOLoss", "SFTLoss", "SigmoidLoss", "WeightedLoss"]


def _check_beta(name: str, beta: float) -> float:
    if not beta > 0:
        raise ValueError(f"{name} beta must be positive, got {beta!r}")
    return float(beta)


def _lengths(batch: PairBatch, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    if batch.chosen_lengths is None or batch.rejected_lengths is None:
        raise ValueError(
            f"loss {name!r} needs the completion token counts: set PairBatch.chosen_lengths and "
            "rejected_lengths (MixDPOTrainer does)"
        )
    return batch.chosen_lengths.clamp(min=1.0), batch.rejected_lengths.clamp(min=1.0)


@register_loss("sigmoid")
class SigmoidLoss(DPOLoss):
    """TRL's name for the DPO loss ``-log sigmoid(beta delta)`` (identical to ``dpo``)."""


class _FixedBetaLoss(PreferenceLoss):
    uses_strength = False

    def __init__(self, beta: float = 0.1):
        self.beta = _check_beta(type(self).__name__, beta)

    def reward_scale(self, batch: PairBatch) -> float:
        return self.beta


@register_loss("hinge")
class HingeLoss(_FixedBetaLoss):
    """Hinge loss ``relu(1 - beta delta)`` per pair (SLiC; TRL's ``"hinge"``)."""

    def __call__(self, batch: PairBatch) -> torch.Tensor:
        return torch.relu(1.0 - self.beta * batch.margin)


@register_loss("ipo")
class IPOLoss(_FixedBetaLoss):
    """IPO ``(delta_bar - 1/(2 beta))**2`` per pair (TRL's ``"ipo"``; ``beta`` is IPO's tau).

    ``delta_bar`` divides each completion's log-ratio by its number of tokens before taking
    the chosen-minus-rejected difference, as TRL does; the batch must carry
    ``chosen_lengths``/``rejected_lengths``.
    """

    def __call__(self, batch: PairBatch) -> torch.Tensor:
        chosen_n, rejected_n = _lengths(batch, "ipo")
        delta = batch.chosen_logratios / chosen_n - batch.rejected_logratios / rejected_n
        return (delta - 1.0 / (2.0 * self.beta)) ** 2


@register_loss("robust")
class RobustDPOLoss(_FixedBetaLoss):
    """Robust DPO for labels flipped with probability ``label_smoothing`` (TRL's ``"robust"``).

    ``(-(1 - eps) log sigmoid(beta delta) + eps log sigmoid(-beta delta)) / (1 - 2 eps)``, an
    unbiased estimate of the clean-label DPO loss; ``eps = 0`` is DPO.
    """

    def __init__(self, beta: float = 0.1, label_smoothing: float = 0.0):
        super().__init__(beta)
        if not 0.0 <= label_smoothing < 0.5:
            raise ValueError(f"label_smoothing must lie in [0, 0.5), got {label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)

    def __call__(self, batch: PairBatch) -> torch.Tensor:
        eps = self.label_smoothing
        h = self.beta * batch.margin
        return (-(1.0 - eps) * F.logsigmoid(h) + eps * F.logsigmoid(-h)) / (1.0 - 2.0 * eps)


@register_loss("sft")
class SFTLoss(PreferenceLoss):
    """NLL of the chosen completions per token, over the batch (TRL's ``"sft"``).

    Returns the batch value ``-sum_i chosen_logps_i / sum_i chosen_lengths_i`` for every pair,
    shape ``(B,)``, so that the trainer's mean over pairs is that value. Logged rewards use
    the trainer's strength (a point mass at ``beta``).
    """

    uses_strength = False

    def __call__(self, batch: PairBatch) -> torch.Tensor:
        if batch.chosen_lengths is None:
            raise ValueError(
                "loss 'sft' needs PairBatch.chosen_lengths, the completion token counts "
                "(MixDPOTrainer sets them)"
            )
        nll = -batch.chosen_logps.sum() / batch.chosen_lengths.sum().clamp(min=1.0)
        return nll.expand(batch.chosen_logps.shape[0])


class WeightedLoss(PreferenceLoss):
    """``sum_k weight_k * loss_k`` per pair: TRL's ``loss_type`` list with ``loss_weights``.

    Args:
        losses: the component losses.
        weights: one weight per loss; default 1.0 each.

    It reads the strength when any component does, needs every component's extra columns,
    and logs rewards with the first component that is not ``sft``.
    """

    def __init__(self, losses: Sequence[PreferenceLoss], weights: Sequence[float] | None = None):
        self.losses = list(losses)
        if not self.losses:
            raise ValueError("WeightedLoss needs at least one loss")
        self.weights = [1.0] * len(self.losses) if weights is None else [float(w) for w in weights]
        if len(self.weights) != len(self.losses):
            raise ValueError(
                f"{len(self.weights)} weights for {len(self.losses)} losses; give one per loss"
            )
        self.name = "+".join(loss.name for loss in self.losses)  # type: ignore[misc]
        self.uses_strength = any(loss.uses_strength for loss in self.losses)  # type: ignore[misc]
        self.extra_columns = tuple(  # type: ignore[misc]
            dict.fromkeys(c for loss in self.losses for c in loss.extra_columns)
        )

    def __call__(self, batch: PairBatch) -> torch.Tensor:
        total = None
        for loss, weight in zip(self.losses, self.weights, strict=True):
            term = weight * loss(batch)
            total = term if total is None else total + term
        assert total is not None
        return total

    def reward_scale(self, batch: PairBatch) -> torch.Tensor | float:
        preference = [loss for loss in self.losses if not isinstance(loss, SFTLoss)]
        return (preference or self.losses)[0].reward_scale(batch)
