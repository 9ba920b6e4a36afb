"""Annotator-level MixDPO: one strength draw per annotator, not per pair.

Pair-level MixDPO (arXiv 2601.06180) scores every label by ``-log E_beta[sigmoid(beta delta)]``
with its own draw of ``beta``. With a learned reward that leaves the strength distribution
unidentified: the likelihood depends on it only through the link ``E[sigmoid(beta d)]``, and
the policy can move each pair's margin to fit its label share under any monotone link. When
the same annotator labels several pairs (a panel), one draw per annotator (Revelt and Train)
identifies it: the spread of ``beta`` shows as agreement *between* an annotator's labels. The
annotator-level loss of a batch is

    -(1 / B) sum_g log E_{beta ~ F_g}[ prod_{i in batch, annotator(i) = g} sigmoid(beta delta_i) ]

over the ``B`` pairs of the batch, ``F_g`` the annotator's strength distribution from a
:class:`mixlogit.torch.conditional.ConditionalStrength` (its covariates' parameters, or the
population's). The expectation is the exact panel marginal of :mod:`mixlogit.torch.panel`.
Annotators whose pairs are spread over several batches contribute one term per batch: a
composite likelihood (see :mod:`alignment.sampler`, which keeps an annotator's pairs together).

With ``level="pair"`` every pair is its own group: pair-level MixDPO whose strength may depend
on rater covariates (:meth:`ConditionalStrength.log_marginal` with the rows' covariates).

The hierarchical prior of the strength enters as ``-log_prior / num_train_pairs`` per pair.
A batch's loss is then ``-sum_g L_g / B - log_prior / N`` (``N`` training pairs), and over an
epoch of ``N / B`` full batches the losses add up to ``(-log-likelihood - log prior) / B``
(the log-likelihood being the composite one of the pieces): its minimiser is the partially
pooled MAP.

Batch columns (added by :class:`alignment.MixDPOTrainer`, numeric so that the collator passes
them through): :data:`GROUP_COLUMN` (annotator index, long), :data:`LEVELS_COLUMN` (``(B, C)``
pooled-level indices) and :data:`FEATURES_COLUMN` (``(B, P)`` regressors), the latter two only
when the strength has them.
"""

from __future__ import annotations

import torch

from alignment.losses.base import PairBatch, PreferenceLoss, register_loss
from mixlogit.conditional import EncodedCovariates

__all__ = [
    "FEATURES_COLUMN",
    "GROUP_COLUMN",
    "LEVELS_COLUMN",
    "PanelMixDPOLoss",
    "panel_mixdpo_loss",
]

#: Batch column with each pair's annotator index (``0..G-1`` over the training annotators).
GROUP_COLUMN = "strength_group"
#: Batch column with each pair's rater pooled-level indices, ``(B, C)``.
LEVELS_COLUMN = "strength_levels"
#: Batch column with each pair's rater regressors, ``(B, P)``.
FEATURES_COLUMN = "strength_features"

LEVELS = ("annotator", "pair")


def _batch_covariates(
    strength, levels: torch.Tensor | None, features: torch.Tensor | None, rows: torch.Tensor
) -> EncodedCovariates | None:
    """The covariates of ``rows`` as the strength expects them (``None`` without covariates)."""
    design = strength.design
    if not design.levels and not design.num_features:
        return None
    n = rows.shape[0]
    device = rows.device
    if design.levels:
        if levels is None:
            raise ValueError(
                f"the strength pools {list(design.levels)} but the batch has no {LEVELS_COLUMN!r}"
            )
        level_index = levels.reshape(levels.shape[0], -1)[rows]
    else:
        level_index = torch.zeros((n, 0), dtype=torch.long, device=device)
    if design.num_features:
        if features is None:
            raise ValueError(
                f"the strength regresses on {list(design.feature_names)} but the batch has no "
                f"{FEATURES_COLUMN!r}"
            )
        feature_rows = features.reshape(features.shape[0], -1)[rows]
    else:
        feature_rows = torch.zeros((n, 0), device=device)
    return EncodedCovariates(level_index, feature_rows)


def panel_mixdpo_loss(
    margin: torch.Tensor,
    group: torch.Tensor,
    strength,
    *,
    levels: torch.Tensor | None = None,
    features: torch.Tensor | None = None,
    num_nodes: int | None = None,
) -> torch.Tensor:
    """Per-pair annotator-level MixDPO loss; its mean over the batch is the batch loss.

    Args:
        margin: implicit-reward margins ``delta`` (nats), shape ``(B,)``.
        group: annotator ids (any integers), shape ``(B,)``; the pairs of one annotator share
            one strength draw.
        strength: a :class:`mixlogit.torch.conditional.ConditionalStrength`.
        levels, features: the raters' encoded covariates per pair, ``(B, C)`` and ``(B, P)``
            (constant within an annotator); needed when the strength has such inputs.
        num_nodes: quadrature nodes of the panel marginal (default: the kernel's).

    Returns:
        ``(B,)``: pair ``i`` of annotator ``g`` carries ``-L_g / n_g``, with ``L_g`` the
        annotator's panel log-likelihood over its ``n_g`` pairs in the batch; differentiable in
        the margins and the strength parameters.
    """
    from mixlogit.torch.panel import panel_logit_marginal

    if margin.dim() != 1 or group.shape != margin.shape:
        raise ValueError(
            f"margin and group must both have shape (B,), got {tuple(margin.shape)} and "
            f"{tuple(group.shape)}"
        )
    _, local = torch.unique(group, return_inverse=True)
    num_groups = int(local.max()) + 1
    rows = torch.arange(margin.shape[0], device=margin.device)
    # The first pair of each annotator carries its covariates (constant within an annotator).
    first = torch.full((num_groups,), margin.shape[0], device=margin.device, dtype=torch.long)
    first = first.scatter_reduce(0, local, rows, reduce="amin")
    params = strength.natural_params(_batch_covariates(strength, levels, features, first))
    params = {k: v.expand(num_groups) if v.dim() == 0 else v for k, v in params.items()}
    options = {} if num_nodes is None else {"num_nodes": num_nodes}
    log_likelihood = panel_logit_marginal(
        margin, local, strength.spec.family, params, num_groups=num_groups, **options
    )
    counts = torch.bincount(local, minlength=num_groups).to(margin.dtype)
    return -(log_likelihood / counts)[local]


@register_loss("panel_mixdpo")
class PanelMixDPOLoss(PreferenceLoss):
    """MixDPO with the strength drawn once per annotator (``level="annotator"``) or per pair
    with rater covariates (``level="pair"``); see the module docstring.

    Args:
        level: ``"annotator"`` or ``"pair"``.
        num_train_pairs: pairs in the training set; scales the strength's log prior
            (``None``: no prior term, maximum likelihood).
        uses_levels, uses_features: whether the batch carries :data:`LEVELS_COLUMN` /
            :data:`FEATURES_COLUMN` (the trainer sets them from the strength's design).
        num_nodes: quadrature nodes of the panel marginal.
        generator: RNG for Monte Carlo pair marginals (LogNormal ``method="mc"``).
    """

    uses_strength = True

    def __init__(
        self,
        level: str = "annotator",
        *,
        num_train_pairs: int | None = None,
        uses_levels: bool = False,
        uses_features: bool = False,
        num_nodes: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        if level not in LEVELS:
            raise ValueError(f"level must be one of {list(LEVELS)}, got {level!r}")
        if num_train_pairs is not None and not (
            isinstance(num_train_pairs, int) and num_train_pairs > 0
        ):
            raise ValueError(f"num_train_pairs must be a positive integer, got {num_train_pairs!r}")
        self.level = level
        self.num_train_pairs = num_train_pairs
        self.num_nodes = num_nodes
        self.generator = generator
        columns = (GROUP_COLUMN,) if level == "annotator" else ()
        columns += (LEVELS_COLUMN,) if uses_levels else ()
        columns += (FEATURES_COLUMN,) if uses_features else ()
        self.extra_columns = columns

    def __call__(self, batch: PairBatch) -> torch.Tensor:
        strength = batch.strength
        if strength is None or not hasattr(strength, "natural_params"):
            raise ValueError(
                "loss_type 'panel_mixdpo' needs a ConditionalStrength in the batch, got "
                f"{type(strength).__name__}"
            )
        levels = batch.extras.get(LEVELS_COLUMN)
        features = batch.extras.get(FEATURES_COLUMN)
        if self.level == "annotator":
            if GROUP_COLUMN not in batch.extras:
                raise ValueError(f"annotator-level MixDPO needs the batch column {GROUP_COLUMN!r}")
            per_pair = panel_mixdpo_loss(
                batch.margin,
                batch.extras[GROUP_COLUMN],
                strength,
                levels=levels,
                features=features,
                num_nodes=self.num_nodes,
            )
        else:
            rows = torch.arange(batch.margin.shape[0], device=batch.margin.device)
            covariates = _batch_covariates(strength, levels, features, rows)
            per_pair = -strength.log_marginal(
                batch.margin, covariates=covariates, generator=self.generator
            )
        if self.num_train_pairs is not None:
            per_pair = per_pair - strength.log_prior() / self.num_train_pairs
        return per_pair

    def __repr__(self) -> str:
        prior = "" if self.num_train_pairs is None else f", num_train_pairs={self.num_train_pairs}"
        return f"{type(self).__name__}(level={self.level!r}{prior})"
