"""Semi-synthetic LLM preference data relabelled by annotator *types* with known rewards.

The embedded pairs of :mod:`alignment.datasets.semisynthetic` (advice prompts, responses whose features
``tips``, ``greeting``, ``hedge`` and ``filler`` are measurable in the text, see
:func:`~alignment.datasets.semisynthetic.response_features`) are relabelled by ``T`` user types with
different linear rewards ``r_u(y) = theta_u . phi(y)`` (Bradley-Terry units, nats). This is the
LLM counterpart of :mod:`benchmarks.synthetic_types` (Shirali et al., arXiv 2502.16320): a single
policy should follow the user-weighted average reward ``r_bar = sum_u w_u r_u``, while pooled
labels (and so DPO) follow the majority.

Default types (:data:`DEFAULT_TYPES`, equal shares; coefficients on tips / greeting / hedge /
filler):

==================  =====  ========  =====  ======
type                tips   greeting  hedge  filler
==================  =====  ========  =====  ======
``detail_seeker``   +4.0   0         0      -0.5
``brevity``         -1.5   -0.5      0      -1.5
``warmth``          -1.5   +1.5      +0.5   0
==================  =====  ========  =====  ======

One intense type wants many tips, two mild types want fewer; the average reward still rewards
tips (``+1/3`` per tip), but two of three annotators prefer the shorter answer. On the embedded
pairs the pooled majority disagrees with the sign of the average-reward difference on about a
quarter of the pairs.

Labelling: pairs are shuffled and dealt to annotators in blocks of ``pairs_per_annotator``
(the same-annotator linkage that identifies ``V``, see
:func:`~alignment.losses.heterogeneous.estimate_pair_variance`); each annotator has one type
(drawn by largest-remainder quota of the shares, then shuffled) and orders each of its pairs with
probability ``sigmoid(r_u(a) - r_u(b))``. For the agreement-only loss every pair also gets one
label from every type (``type_labels``): the annotator's own type contributes the recorded label,
the other types independent Bradley-Terry draws.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import expit

from alignment.datasets.semisynthetic import (
    FEATURE_NAMES,
    largest_remainder_counts,
    response_features,
)
from alignment.datasets.shipped import load_default_preferences

__all__ = [
    "DEFAULT_TYPES",
    "TYPE_COLUMNS",
    "AnnotatorType",
    "add_estimated_variance",
    "make_type_preference_data",
    "pair_alignment_accuracy",
]

# Columns added to the base pairs (documented in make_type_preference_data).
TYPE_COLUMNS = (
    "annotator_id",
    "annotator_index",
    "type_id",
    "type_name",
    "type_labels",
    "type_reward_gaps",
    "average_reward_gap",
    "reward_variance",
    "label_probability",
    "chosen_features",
    "rejected_features",
)


@dataclass(frozen=True)
class AnnotatorType:
    """A user type: a linear reward over the measurable response features and a population share.

    Attributes:
        name: type label (the ``type_name`` column).
        coefficients: reward per unit of each feature in :data:`FEATURE_NAMES` (missing = 0),
            in Bradley-Terry units (nats of log-odds).
        share: population share of annotators (normalised over types).
    """

    name: str
    coefficients: Mapping[str, float]
    share: float = 1.0

    def vector(self) -> np.ndarray:
        """``(F,)`` coefficients in the order of :data:`FEATURE_NAMES`."""
        unknown = set(self.coefficients) - set(FEATURE_NAMES)
        if unknown:
            raise ValueError(
                f"type {self.name!r} has coefficients for unknown feature(s) {sorted(unknown)}; "
                f"features are {list(FEATURE_NAMES)}"
            )
        return np.array([float(self.coefficients.get(f, 0.0)) for f in FEATURE_NAMES])


DEFAULT_TYPES: tuple[AnnotatorType, ...] = (
    AnnotatorType("detail_seeker", {"tips": 4.0, "filler": -0.5}),
    AnnotatorType("brevity", {"tips": -1.5, "greeting": -0.5, "filler": -1.5}),
    AnnotatorType("warmth", {"tips": -1.5, "greeting": 1.5, "hedge": 0.5}),
)


def _features(texts: Sequence[str]) -> np.ndarray:
    return np.array(
        [[response_features(t)[f] for f in FEATURE_NAMES] for t in texts], dtype=np.float64
    )


def _relabel(
    base: Any,
    types: Sequence[AnnotatorType],
    shares: np.ndarray,
    coefficients: np.ndarray,
    pairs_per_annotator: int,
    rng: np.random.Generator,
    annotator_prefix: str,
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    num_pairs = len(base)
    num_types = len(types)
    order = rng.permutation(num_pairs)
    num_annotators = -(-num_pairs // pairs_per_annotator)
    annotator_type = np.repeat(
        np.arange(num_types), largest_remainder_counts(shares, num_annotators)
    )
    annotator_type = annotator_type[rng.permutation(num_annotators)]
    first_text, second_text = base["chosen"], base["rejected"]
    prompts, pair_ids, topics = base["prompt"], base["pair_id"], base["topic"]
    x = _features(first_text) - _features(second_text)  # (N, F): first minus second
    gaps = x @ coefficients.T  # (N, T)
    probs = expit(gaps)
    own = rng.random(num_pairs)
    others = rng.random((num_pairs, num_types))
    rows = []
    for position, pair in enumerate(order.tolist()):
        annotator = position // pairs_per_annotator
        type_id = int(annotator_type[annotator])
        # every type's label for "first beats second"; the annotator's own type is the record
        first_wins_by_type = others[pair] < probs[pair]
        first_wins_by_type[type_id] = own[pair] < probs[pair, type_id]
        first_wins = bool(first_wins_by_type[type_id])
        sign = 1.0 if first_wins else -1.0
        chosen, rejected = (
            (first_text[pair], second_text[pair])
            if first_wins
            else (second_text[pair], first_text[pair])
        )
        type_gaps = sign * gaps[pair]  # chosen minus rejected, per type
        average_gap = float(shares @ type_gaps)
        type_labels = first_wins_by_type if first_wins else ~first_wins_by_type
        p_first = float(probs[pair, type_id])
        rows.append(
            {
                "prompt": prompts[pair],
                "chosen": chosen,
                "rejected": rejected,
                "pair_id": int(pair_ids[pair]),
                "topic": topics[pair],
                "annotator_id": f"{annotator_prefix}-{annotator:03d}",
                "annotator_index": annotator,
                "type_id": type_id,
                "type_name": types[type_id].name,
                "type_labels": [int(v) for v in type_labels],
                "type_reward_gaps": [float(v) for v in type_gaps],
                "average_reward_gap": average_gap,
                "reward_variance": float(shares @ (type_gaps - average_gap) ** 2),
                "label_probability": p_first if first_wins else 1.0 - p_first,
                "chosen_features": [int(v) for v in _features([chosen])[0]],
                "rejected_features": [int(v) for v in _features([rejected])[0]],
            }
        )
    rows.sort(key=lambda row: row["pair_id"])
    annotators = {
        f"{annotator_prefix}-{a:03d}": types[int(t)].name for a, t in enumerate(annotator_type)
    }
    return rows, annotators


def make_type_preference_data(
    *,
    types: Sequence[AnnotatorType] = DEFAULT_TYPES,
    pairs_per_annotator: int = 6,
    seed: int = 0,
) -> dict[str, Any]:
    """Relabel the embedded pairs (360 train, 120 test) by annotators of the given types.

    Args:
        types: the user types (rewards over the response features, shares).
        pairs_per_annotator: pairs labelled by each annotator (its last block may be shorter).
        seed: seed of the annotator assignment and the labels (the pairs are fixed).

    Returns:
        ``{"train": Dataset, "test": Dataset, "ground_truth": dict}``. Columns (one row per
        pair, ordered by ``pair_id``): ``prompt``, ``chosen``, ``rejected`` (strings, chosen =
        the annotator's pick), ``pair_id``, ``topic``, ``annotator_id`` (string; train and test
        annotators differ), ``annotator_index`` (int, the same within a split),
        ``type_id`` (int) and ``type_name`` of the annotator, ``type_labels`` (``T`` ints: 1 if
        type ``t`` prefers the listed chosen; entry ``type_id`` is always 1),
        ``type_reward_gaps`` (``T`` floats ``r_t(chosen) - r_t(rejected)``),
        ``average_reward_gap`` (``sum_t w_t`` of those), ``reward_variance``
        (``sum_t w_t (gap_t - average)^2``, squared reward units), ``label_probability``
        (of the recorded label under the annotator's type), ``chosen_features`` and
        ``rejected_features`` (``F`` ints in the order of :data:`FEATURE_NAMES`).
        ``ground_truth`` has the feature names, each type's coefficients and share, the
        average-reward coefficients and each annotator's type.
    """
    from datasets import Dataset

    if len(types) < 1:
        raise ValueError("need at least one annotator type")
    if len({t.name for t in types}) != len(types):
        raise ValueError(f"type names must be distinct, got {[t.name for t in types]}")
    if pairs_per_annotator < 1:
        raise ValueError(f"pairs_per_annotator must be >= 1, got {pairs_per_annotator}")
    shares = np.array([t.share for t in types], dtype=np.float64)
    if not (np.isfinite(shares).all() and (shares > 0).all()):
        raise ValueError(f"type shares must be positive and finite, got {shares.tolist()}")
    shares = shares / shares.sum()
    coefficients = np.stack([t.vector() for t in types])  # (T, F)
    if not np.isfinite(coefficients).all():
        raise ValueError("type coefficients must be finite")

    out: dict[str, Any] = {}
    annotators: dict[str, str] = {}
    for stream, split in enumerate(("train", "test")):
        base = load_default_preferences("heterogeneous", split)
        rng = np.random.default_rng([seed, stream])
        rows, split_annotators = _relabel(
            base, types, shares, coefficients, pairs_per_annotator, rng, f"{split}-annotator"
        )
        out[split] = Dataset.from_list(rows)
        annotators.update(split_annotators)
    out["ground_truth"] = {
        "feature_names": list(FEATURE_NAMES),
        "types": [
            {
                "name": t.name,
                "coefficients": dict(zip(FEATURE_NAMES, c.tolist(), strict=True)),
                "share": float(w),
            }
            for t, c, w in zip(types, coefficients, shares, strict=True)
        ],
        "average_coefficients": dict(
            zip(FEATURE_NAMES, (shares @ coefficients).tolist(), strict=True)
        ),
        "pairs_per_annotator": pairs_per_annotator,
        "annotator_types": annotators,
        "seed": seed,
    }
    return out


def add_estimated_variance(
    dataset: Any,
    *,
    num_types: int = 3,
    column: str = "estimated_reward_variance",
    seed: int = 0,
    **estimator_options: Any,
) -> tuple[Any, Any]:
    """Add a per-pair ``V`` estimated from same-annotator pairs (no type labels, no rewards used).

    Fits :func:`~alignment.losses.heterogeneous.estimate_pair_variance` (latent-type
    Bradley-Terry mixture on the feature differences, annotators linked by
    ``annotator_index``, BIC choice of ``1..num_types`` types) to ``dataset`` and stores its
    ``variance`` in ``column`` (squared reward units, like ``reward_variance``).

    Returns:
        ``(dataset with the new column, the PairVarianceEstimate)``.
    """
    import torch

    from alignment.losses.heterogeneous import estimate_pair_variance

    missing = [
        c
        for c in ("chosen_features", "rejected_features", "annotator_index")
        if c not in dataset.column_names
    ]
    if missing:
        raise ValueError(f"dataset lacks column(s) {missing} needed to estimate V")
    estimate = estimate_pair_variance(
        torch.tensor(dataset["chosen_features"], dtype=torch.float64),
        torch.tensor(dataset["rejected_features"], dtype=torch.float64),
        torch.tensor(dataset["annotator_index"]),
        num_types=num_types,
        seed=seed,
        **estimator_options,
    )
    if column in dataset.column_names:
        dataset = dataset.remove_columns(column)
    return dataset.add_column(column, estimate.variance.tolist()), estimate


def pair_alignment_accuracy(
    implicit_margins: Sequence[float] | np.ndarray, average_reward_gaps: Sequence[float]
) -> float:
    """Share of pairs whose implicit-reward margin has the sign of the average-reward gap.

    Pairs on which the average reward is tied (``|gap| < 1e-12``) are left out; a margin of
    exactly 0 counts as wrong (half credit would reward a policy that never moved). This scores
    a policy on *observed* pairs; :func:`analysis.alignment_accuracy` is the population accuracy
    of a tabular policy over all response pairs (an implicit-reward tie scores 1/2 there).

    Args:
        implicit_margins: ``(N,)`` policy minus reference log-ratio margins (chosen - rejected).
        average_reward_gaps: ``(N,)`` ``r_bar(chosen) - r_bar(rejected)``.
    """
    margins = np.asarray(implicit_margins, dtype=np.float64)
    gaps = np.asarray(average_reward_gaps, dtype=np.float64)
    if margins.shape != gaps.shape or margins.ndim != 1:
        raise ValueError(
            f"implicit_margins and average_reward_gaps must both have shape (N,), got "
            f"{margins.shape} and {gaps.shape}"
        )
    decided = np.abs(gaps) >= 1e-12
    if not decided.any():
        raise ValueError("every pair is tied under the average reward")
    if not np.isfinite(margins[decided]).all():
        raise ValueError("implicit_margins must be finite")
    return float(np.mean(np.sign(margins[decided]) == np.sign(gaps[decided])))
