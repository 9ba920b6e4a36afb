"""Preference losses for direct alignment, selectable by name.

Every loss maps the per-pair log-probabilities of a policy and a reference model (and, when it
needs them, the preference-strength object and extra per-pair columns of the batch) to one loss
value per pair. :class:`alignment.MixDPOTrainer` picks a loss with ``MixDPOConfig(loss_type=name)``
and forwards ``MixDPOConfig.loss_kwargs`` to its constructor; any training loop can do the same
with :func:`get_loss`.

Adding a loss::

    from alignment.losses import PairBatch, PreferenceLoss, register_loss

    @register_loss("my_loss")
    class MyLoss(PreferenceLoss):
        extra_columns = ("V",)  # per-pair batch columns the loss reads: (B,) or (B, k)

        def __init__(self, alpha: float = 1.0):
            self.alpha = alpha

        def __call__(self, batch: PairBatch):
            V = batch.extras["V"]
            return -torch.nn.functional.logsigmoid(batch.margin) + self.alpha * V

The collator passes every column named in ``extra_columns`` (and in
``MixDPOConfig.extra_columns``) through as a tensor, so the loss finds it in ``batch.extras``.

TRL 1.16's names are registered as well (:mod:`alignment.losses.baselines`): ``sigmoid`` (DPO),
``hinge``, ``ipo``, ``robust`` (with ``label_smoothing``) and ``sft`` (the chosen NLL term); a
list of names with weights is a :class:`WeightedLoss`.
"""

from __future__ import annotations

from alignment.losses.base import (
    PairBatch,
    PreferenceLoss,
    available_losses,
    get_loss,
    get_loss_class,
    register_loss,
)
from alignment.losses.baselines import (
    HingeLoss,
    IPOLoss,
    RobustDPOLoss,
    SFTLoss,
    SigmoidLoss,
    WeightedLoss,
)
from alignment.losses.dpo import DPOLoss, MixDPOLoss, dpo_loss, mixdpo_loss

__all__ = [
    "DPOLoss",
    "HingeLoss",
    "IPOLoss",
    "MixDPOLoss",
    "PairBatch",
    "PreferenceLoss",
    "RobustDPOLoss",
    "SFTLoss",
    "SigmoidLoss",
    "WeightedLoss",
    "available_losses",
    "dpo_loss",
    "get_loss",
    "get_loss_class",
    "mixdpo_loss",
    "register_loss",
]
