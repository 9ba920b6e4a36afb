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
Annotators whose pairs are spread over several batches contribute one term per batch. Without
memory that is a composite likelihood (see :mod:`alignment.sampler`, which keeps an annotator's
pairs together): each piece is scored as if it had its own strength draw. With a
:class:`PanelMemory` (the trainer's default, ``MixDPOConfig.strength_panel_memory``) a piece is
scored *given the annotator's pairs already seen in this pass*, by the chain rule

    log p(y_k | y_1..y_{k-1}) = log E[prod_{i in pieces 1..k} sigmoid(beta delta_i)]
                              - log E[prod_{i in pieces 1..k-1} sigmoid(beta delta_i)],

the earlier pieces' margins taken from the memory (the values of the step that saw them,
detached). Over a pass the terms telescope to the annotator's full panel log-likelihood, so
the strength's gradient summed over the pass is that of the whole panel, whatever the batch
size, and a pair's margin gradient is weighted by the annotator's posterior strength given its
earlier labels. The memory margins are stale by up to a pass (the policy has moved since),
which the telescoping ignores; margins near zero, as at the start of training, carry no
information and change nothing.

With ``level="pair"`` every pair is its own group: pair-level MixDPO whose strength may depend
on rater covariates (:meth:`ConditionalStrength.log_marginal` with the rows' covariates).

At the end of training :func:`refit_panel_strength` refits the strength with the policy fixed:
the same objective at one set of margins, maximised by full-batch L-BFGS-B
(``MixDPOConfig.strength_refit``, :meth:`alignment.MixDPOTrainer.refit_strength`).

The panel rule is validated only down to a strength CV of
:data:`mixlogit._panel.MIN_STRENGTH_CV` (0.01) and refuses narrower distributions. A policy
trained against a homogeneous population drives the learned CV towards zero, so the loss reads
each annotator's CV through the floor :func:`floored_cv_params`: a CV of at least
``2 f`` (``f = TRAINING_CV_FLOOR``) is used as it is, a smaller one as ``f + cv^2 / (4 f)``
(continuous with its first derivative at ``2 f``, and ``f`` at zero). A learned CV at the
floor reads "a common strength, CV 0.01 or less"; the gradient in ``log cv`` only decays below
the floor, so Adam still moves it back up if the data ask.

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

import copy
import math
from typing import NamedTuple

import numpy as np
import torch
from scipy import optimize

from alignment.losses.base import PairBatch, PreferenceLoss, register_loss
from mixlogit._panel import MIN_STRENGTH_CV
from mixlogit.conditional import EncodedCovariates

__all__ = [
    "FEATURES_COLUMN",
    "GROUP_COLUMN",
    "LEVELS_COLUMN",
    "ROW_COLUMN",
    "TRAINING_CV_FLOOR",
    "PanelMemory",
    "PanelMixDPOLoss",
    "StrengthRefit",
    "floored_cv_params",
    "panel_mixdpo_loss",
    "refit_panel_strength",
]

#: Batch column with each pair's annotator index (``0..G-1`` over the training annotators).
GROUP_COLUMN = "strength_group"
#: Batch column with each pair's rater pooled-level indices, ``(B, C)``.
LEVELS_COLUMN = "strength_levels"
#: Batch column with each pair's rater regressors, ``(B, P)``.
FEATURES_COLUMN = "strength_features"
#: Batch column with each pair's dataset row index (long), the key of :class:`PanelMemory`.
ROW_COLUMN = "strength_row"

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


class PanelMemory:
    """The margins of each annotator's pairs already scored in the current pass.

    Keys are annotator ids and dataset rows (:data:`GROUP_COLUMN`, :data:`ROW_COLUMN`). A pass
    ends for an annotator when one of its remembered rows comes again (the sampler yields every
    row once per epoch): its memory is then cleared, so each pass telescopes on its own. State
    lives in the process: with DDP each rank remembers the chunks it saw; after a resume from a
    checkpoint the memory starts empty (the next pieces are scored without their history, as
    without memory).
    """

    def __init__(self) -> None:
        self._margins: dict[int, dict[int, float]] = {}

    def __len__(self) -> int:
        return sum(len(rows) for rows in self._margins.values())

    def clear(self) -> None:
        self._margins.clear()

    def recall(self, annotators: list[int], rows: list[int]) -> tuple[list[float], list[int]]:
        """The remembered margins of the batch's annotators and, for each, its annotator, as
        two lists; ``annotators[i]`` and ``rows[i]`` are the batch's pair ``i``. An annotator
        one of whose batch rows is remembered starts a new pass: its memory is cleared."""
        batch_rows: dict[int, set[int]] = {}
        for annotator, row in zip(annotators, rows, strict=True):
            batch_rows.setdefault(annotator, set()).add(row)
        margins: list[float] = []
        owners: list[int] = []
        for annotator, here in batch_rows.items():
            seen = self._margins.get(annotator)
            if not seen:
                continue
            if here & seen.keys():
                del self._margins[annotator]
                continue
            margins.extend(seen.values())
            owners.extend([annotator] * len(seen))
        return margins, owners

    def store(self, annotators: list[int], rows: list[int], margins: list[float]) -> None:
        """Remember the batch's margins (row ``rows[i]`` of annotator ``annotators[i]``)."""
        for annotator, row, margin in zip(annotators, rows, margins, strict=True):
            self._margins.setdefault(annotator, {})[row] = margin


#: Smallest CV the panel loss lets an annotator's strength have (see the module docstring):
#: just above the panel rule's validated floor, so that float32 round trips stay inside it.
TRAINING_CV_FLOOR = 1.001 * MIN_STRENGTH_CV


def floored_cv_params(family, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The family's natural parameters with the CV raised smoothly to at least
    :data:`TRAINING_CV_FLOOR` ``f``, the mean kept: ``cv`` where ``cv >= 2 f``, else
    ``f + cv^2 / (4 f)``; parameters with every CV at or above ``2 f`` come back unchanged.

    ``params`` maps parameter names to tensors of shape ``(G,)``; a family without spread
    (a point mass) is returned unchanged. Differentiable in ``params``.
    """
    from mixlogit.torch._ops import OPS

    if family.name == "point_mass" or not family.parameters:
        return params
    cv = family.cv(OPS, params)
    if bool((cv >= 2 * TRAINING_CV_FLOOR).all()):
        return params
    mean = family.mean(OPS, params)  # only needed to rebuild the floored parameters
    floored = torch.where(
        cv >= 2 * TRAINING_CV_FLOOR, cv, TRAINING_CV_FLOOR + cv * cv / (4 * TRAINING_CV_FLOOR)
    )
    return family.from_mean_cv(OPS, mean, floored)


def panel_mixdpo_loss(
    margin: torch.Tensor,
    group: torch.Tensor,
    strength,
    *,
    levels: torch.Tensor | None = None,
    features: torch.Tensor | None = None,
    num_nodes: int | None = None,
    memory: PanelMemory | None = None,
    rows: torch.Tensor | None = None,
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
        memory: a :class:`PanelMemory`: score each annotator's pairs given its pairs already
            seen in this pass (module docstring), and remember this batch's margins. Needs
            ``rows``.
        rows: dataset row index of every pair, shape ``(B,)`` (the memory's key).

    Returns:
        ``(B,)``: pair ``i`` of annotator ``g`` carries ``-L_g / n_g``, with ``L_g`` the
        annotator's panel log-likelihood over its ``n_g`` pairs in the batch (with a memory:
        conditional on its remembered pairs); differentiable in the margins and the strength
        parameters.
    """
    from mixlogit.torch.panel import panel_logit_marginal

    if margin.dim() != 1 or group.shape != margin.shape:
        raise ValueError(
            f"margin and group must both have shape (B,), got {tuple(margin.shape)} and "
            f"{tuple(group.shape)}"
        )
    if memory is not None and (rows is None or rows.shape != margin.shape):
        raise ValueError(
            f"a panel memory needs the batch's dataset rows {ROW_COLUMN!r} of shape "
            f"{tuple(margin.shape)}, got {None if rows is None else tuple(rows.shape)}"
        )
    unique, local = torch.unique(group, return_inverse=True)
    num_groups = int(local.max()) + 1
    index = torch.arange(margin.shape[0], device=margin.device)
    # The first pair of each annotator carries its covariates (constant within an annotator).
    first = torch.full((num_groups,), margin.shape[0], device=margin.device, dtype=torch.long)
    first = first.scatter_reduce(0, local, index, reduce="amin")
    params = strength.natural_params(_batch_covariates(strength, levels, features, first))
    params = {k: v.expand(num_groups) if v.dim() == 0 else v for k, v in params.items()}
    params = floored_cv_params(strength.spec.family, params)
    options = {} if num_nodes is None else {"num_nodes": num_nodes}

    def log_marginal(d: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
        family = strength.spec.family
        return panel_logit_marginal(d, where, family, params, num_groups=num_groups, **options)

    if memory is None or rows is None:
        log_likelihood = log_marginal(margin, local)
    else:
        batch_annotators = [int(a) for a in group.tolist()]
        batch_rows = [int(r) for r in rows.tolist()]
        remembered, owners = memory.recall(batch_annotators, batch_rows)
        if remembered:
            # torch.unique numbers the groups in sorted-id order.
            local_of = {int(a): k for k, a in enumerate(unique.tolist())}
            where_past = torch.tensor([local_of[a] for a in owners], device=margin.device)
            past = torch.tensor(remembered, dtype=margin.dtype, device=margin.device)
            joint = log_marginal(torch.cat([margin, past]), torch.cat([local, where_past]))
            log_likelihood = joint - log_marginal(past, where_past)
        else:
            log_likelihood = log_marginal(margin, local)
        memory.store(batch_annotators, batch_rows, margin.detach().tolist())
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
        memory: annotator level only: score each batch's pieces given the annotator's pairs
            already seen in the pass (a :class:`PanelMemory`, kept in ``self.memory``; the
            batch then needs :data:`ROW_COLUMN`). Only batches scored with gradients enabled
            (training) read and update it; evaluation batches are scored without history.
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
        memory: bool = False,
    ) -> None:
        if level not in LEVELS:
            raise ValueError(f"level must be one of {list(LEVELS)}, got {level!r}")
        if memory and level != "annotator":
            raise ValueError(f"memory applies to level='annotator', got level={level!r}")
        if num_train_pairs is not None and not (
            isinstance(num_train_pairs, int) and num_train_pairs > 0
        ):
            raise ValueError(f"num_train_pairs must be a positive integer, got {num_train_pairs!r}")
        self.level = level
        self.num_train_pairs = num_train_pairs
        self.num_nodes = num_nodes
        self.generator = generator
        self.memory = PanelMemory() if memory else None
        columns = (GROUP_COLUMN,) if level == "annotator" else ()
        columns += (ROW_COLUMN,) if memory else ()
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
            memory = self.memory if torch.is_grad_enabled() else None
            if memory is not None and ROW_COLUMN not in batch.extras:
                raise ValueError(f"a panel memory needs the batch column {ROW_COLUMN!r}")
            per_pair = panel_mixdpo_loss(
                batch.margin,
                batch.extras[GROUP_COLUMN],
                strength,
                levels=levels,
                features=features,
                num_nodes=self.num_nodes,
                memory=memory,
                rows=batch.extras.get(ROW_COLUMN) if memory is not None else None,
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
        memory = ", memory=True" if self.memory is not None else ""
        return f"{type(self).__name__}(level={self.level!r}{prior}{memory})"


class StrengthRefit(NamedTuple):
    """Result of :func:`refit_panel_strength`.

    Attributes:
        strength: the fitted copy of the strength (the input is left as it was).
        objective: ``-log-likelihood - log prior`` at the fit (nats, summed over pairs).
        start_objective: the same at the input strength.
        iterations: L-BFGS-B iterations run.
        gradient_norm: max-norm of the projected gradient at the fit (at the start when no
            point better than the start was found).
    """

    strength: torch.nn.Module
    objective: float
    start_objective: float
    iterations: int
    gradient_norm: float


def refit_panel_strength(
    strength,
    margin: torch.Tensor,
    group: torch.Tensor,
    *,
    levels: torch.Tensor | None = None,
    features: torch.Tensor | None = None,
    num_nodes: int | None = None,
    max_iter: int = 200,
    tolerance: float = 1e-7,
) -> StrengthRefit:
    """The strength's MAP given fixed margins: full-panel log-likelihood plus log prior.

    Training moves the strength by small stochastic steps while the policy's margins grow, so
    its final value mixes margins of different scales and the step noise of the last few
    batches. With the policy fixed, the strength's own objective over every pair is cheap and
    smooth: this maximises it with full-batch L-BFGS-B (scipy, box bounds, :func:`_refit_bounds`) in float64, from the given strength,

        sum_g log E_{beta ~ F_g}[prod_{i: annotator(i) = g} sigmoid(beta delta_i)] + log_prior,

    the same objective that a pass of annotator-level training (with the panel memory) adds up
    to, but at one set of margins. Pair-level data: give every pair its own ``group``.

    Args:
        strength: a :class:`mixlogit.torch.conditional.ConditionalStrength`.
        margin: implicit-reward margins ``delta`` (nats) of every pair, shape ``(N,)``.
        group: annotator ids, ``(N,)``.
        levels, features: encoded rater covariates per pair, ``(N, C)`` and ``(N, P)``.
        num_nodes: quadrature nodes of the panel marginal (default: the kernel's).
        max_iter: L-BFGS-B iteration cap.
        tolerance: stop when the gradient's max-norm falls below it.

    Returns:
        A :class:`StrengthRefit`. Raises ``ValueError`` for non-finite margins (naming the
        first bad row) or when the objective is not finite at the start.
    """
    margin = margin.detach()
    bad = torch.nonzero(~torch.isfinite(margin)).flatten()
    if bad.numel():
        row = int(bad[0])
        raise ValueError(
            f"refit_panel_strength: margin row {row} is {float(margin[row])}; "
            f"{bad.numel()} of {margin.numel()} margins are not finite"
        )
    fitted = copy.deepcopy(strength).to(device=margin.device, dtype=torch.float64)
    params = {k: p for k, p in fitted.named_parameters() if p.requires_grad}
    margin = margin.to(torch.float64)
    features = None if features is None else features.to(torch.float64)

    def objective() -> torch.Tensor:
        per_pair = panel_mixdpo_loss(
            margin, group, fitted, levels=levels, features=features, num_nodes=num_nodes
        )
        return per_pair.sum() - fitted.log_prior()

    with torch.no_grad():
        start = float(objective())
    if not math.isfinite(start):
        raise ValueError(f"refit_panel_strength: the objective is {start} at the start")
    if not params:
        return StrengthRefit(fitted, start, start, 0, 0.0)
    sizes = [p.numel() for p in params.values()]
    x0 = torch.cat([p.detach().reshape(-1) for p in params.values()]).cpu().numpy()
    bounds = [b for name, n in zip(params, sizes, strict=True) for b in [_refit_bounds(name)] * n]
    # keep the start inside the bounds (a strength trained far out is refit from the edge)
    x0 = np.clip(x0, [b[0] for b in bounds], [b[1] for b in bounds])

    def value_and_gradient(x: np.ndarray) -> tuple[float, np.ndarray]:
        with torch.no_grad():
            for param, piece in zip(params.values(), torch.as_tensor(x).split(sizes), strict=True):
                param.copy_(piece.reshape(param.shape))
        for param in params.values():
            param.grad = None
        try:
            value = objective()
            value.backward()
        except ValueError:  # a line-search trial outside the family's domain
            return _REFIT_OUTSIDE, np.zeros_like(x)
        if not torch.isfinite(value):
            return _REFIT_OUTSIDE, np.zeros_like(x)
        gradient = torch.cat([p.grad.reshape(-1) for p in params.values()])
        return float(value.detach()), gradient.cpu().numpy()

    result = optimize.minimize(
        value_and_gradient,
        x0,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": max_iter, "gtol": tolerance, "ftol": 1e-15, "maxcor": 20},
    )
    value, gradient = value_and_gradient(result.x)
    if not value <= start:
        # Keep the start: a refit never makes the strength worse than training left it (a
        # start already at the optimum ends here too, up to rounding).
        x0_value, x0_gradient = value_and_gradient(x0)
        if not math.isfinite(x0_value):
            x0_gradient = np.full_like(x0, np.nan)
        fitted = copy.deepcopy(strength).to(device=margin.device, dtype=torch.float64)
        return StrengthRefit(
            fitted, start, start, int(result.nit), float(np.abs(x0_gradient).max(initial=0.0))
        )
    # the projected gradient (zero along a bound the optimum presses against)
    lower = np.array([b[0] for b in bounds])
    upper = np.array([b[1] for b in bounds])
    projected = np.where(
        ((result.x <= lower) & (gradient > 0)) | ((result.x >= upper) & (gradient < 0)),
        0.0,
        gradient,
    )
    return StrengthRefit(
        fitted, value, start, int(result.nit), float(np.abs(projected).max(initial=0.0))
    )


#: Objective value returned for a trial point outside the family's domain (L-BFGS-B then
#: shortens its step).
_REFIT_OUTSIDE = 1e300


def _refit_bounds(name: str) -> tuple[float, float]:
    """Box bounds of one strength parameter in the refit (its unconstrained coordinates).

    They keep every rater's CV at or above 0.01 (population CV >= 0.05, level effects on the
    log CV within ``0.4 * 4``): the panel rule is validated down to that CV, not below (its
    nodes miss a narrower prior). Level offsets ``z`` (standard normal a priori) stay within
    8; a CV at its bound 0.05 reads "0.05 or less"."""
    if name == "log_cv":
        return (math.log(0.05), math.log(20.0))
    if name == "log_tau_cv":
        return (-12.0, math.log(0.4))
    if name == "log_cv_level_z":
        return (-4.0, 4.0)
    if name == "log_mean_level_z":
        return (-8.0, 8.0)
    if name.startswith("log_tau"):
        return (-12.0, 4.0)
    return (-30.0, 30.0)
