"""Annotator-panel preference data with known truth: persistent annotators, rater covariates.

With one strength draw per *pair* and a learned reward the strength distribution is not
identified: the policy can fit any pair's label share under any monotone link
``P(d) = E[sigmoid(beta d)]``. Two things identify it, and this generator provides both:

* **panels**: an annotator ``a`` keeps one strength ``beta_a`` over all the pairs it labels, so
  its likelihood is ``E_beta[prod_i sigmoid(beta d_i)]`` and the spread of ``beta`` shows up as
  agreement *between* an annotator's labels;
* **rater covariates**: every pair is labelled by annotators of every subgroup, who share the
  pair's reward gap, so the subgroups' relative strengths (and the covariate effects) are
  identified whatever the reward.

Prompts and responses are those of :mod:`alignment.datasets.semisynthetic` (advice prompts,
responses whose features are measurable in the text, ground-truth reward
``r = weights . features``); pairs whose two responses have the same reward are redrawn because
they carry no information about strength. Each row is one (pair, annotator) label with
Bradley-Terry probability ``sigmoid(beta_a (r_chosen - r_rejected))``.

Strength model (the truth a covariate regression should recover)::

    log beta_a = log b_a + experience_log_effect * (experience_a - experience_reference)
                 + age_band_log_effect[age_band_a],        b_a ~ subgroup family(params)

so given its covariates an annotator's strength is its subgroup's distribution scaled by
``exp(effect)``; ``b_a`` is the strength at the reference covariates. Covariates are drawn
independently of the subgroup and of each other. Defaults (:data:`DEFAULT_PANEL_SUBGROUPS`,
:data:`DEFAULT_RATER_COVARIATES`):

=============  =========  ==================  ====================  =====
subgroup       family     params              mean (reference)      CV
=============  =========  ==================  ====================  =====
``decisive``   gamma      shape 9, rate 1.8   5.0                   0.33
``moderate``   lognormal  loc 0, scale 0.5    1.13                  0.53
``uncertain``  gamma      shape 4, rate 20    0.2                   0.5
=============  =========  ==================  ====================  =====

``experience``: integer years, uniform on 0..20, ``+0.06`` log-strength per year around 10
years. ``age_band``: ``"18-34"``, ``"35-54"``, ``"55+"`` with equal shares and log effects
``0, 0, -0.4`` (one real contrast, one null contrast).

Design (defaults): 240 pairs, 72 annotators (24 per subgroup), 20 pairs per annotator, so each
pair gets 6 labels, 2 from every subgroup. Pairs are split first (25 % test = 60 pairs); every
annotator labels 15 train and 5 test pairs, so each annotator's posterior can be estimated on
pairs it has not been trained on: 1,080 train and 360 test labels. In general an annotator gets
``round(pairs_per_annotator * test_pairs / pairs)`` test pairs (at least one of each split), and
within a split the labels are spread so that every pair gets the floor or ceiling of the mean
number of labels, in total and from each subgroup (a subgroup with fewer labels than the split
has pairs cannot reach every pair; a design that would leave a pair unlabelled is refused).
Who labels with whom is then randomised by swaps that keep all these counts.

The *homogeneous control* has the same pairs, annotators and covariates, but every annotator has
one common strength ``beta0`` fitted so that ``sigmoid(beta0 * gap)`` matches the heterogeneous
set's expected per-pair label share ``mean_a sigmoid(beta_a * gap)`` in least squares over all
pairs; ``share_match`` in the ground truth records how close (RMS and maximum absolute
difference). Its labels are redrawn from an independent stream.

The files shipped in ``alignment/datasets/data_files/panel_*`` were written by
:func:`write_panel_preferences` with the defaults; :func:`load_panel_preferences` and
:func:`load_panel_ground_truth` read them, as do
:func:`~alignment.datasets.shipped.load_default_preferences` and
:func:`~alignment.datasets.shipped.load_ground_truth` with kind ``"panel_heterogeneous"`` or
``"panel_homogeneous"``.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import optimize, special

from alignment.datasets import _files
from alignment.datasets.semisynthetic import (
    FEATURE_WEIGHTS,
    SubgroupSpec,
    draw_response_pair,
    largest_remainder_counts,
)
from mixlogit.families import NUMPY_OPS, get_family

__all__ = [
    "DEFAULT_PANEL_SUBGROUPS",
    "DEFAULT_RATER_COVARIATES",
    "PANEL_COLUMNS",
    "PANEL_KINDS",
    "RaterCovariates",
    "load_panel_ground_truth",
    "load_panel_preferences",
    "make_panel_preference_data",
    "write_panel_preferences",
]

#: Columns of every panel dataset, in order (see :func:`make_panel_preference_data`).
PANEL_COLUMNS = (
    "prompt",
    "chosen",
    "rejected",
    "pair_id",
    "topic",
    "annotator_id",
    "annotator_index",
    "subgroup",
    "age_band",
    "experience",
    "true_strength",
    "reward_chosen",
    "reward_rejected",
    "reward_gap",
    "label_probability",
)
PANEL_KINDS = _files.KINDS

DEFAULT_PANEL_SUBGROUPS: tuple[SubgroupSpec, ...] = (
    SubgroupSpec("decisive", "gamma", {"shape": 9.0, "rate": 1.8}),  # mean 5, CV 1/3
    SubgroupSpec("moderate", "lognormal", {"loc": 0.0, "scale": 0.5}),  # mean 1.13, CV 0.53
    SubgroupSpec("uncertain", "gamma", {"shape": 4.0, "rate": 20.0}),  # mean 0.2, CV 0.5
)


@dataclass(frozen=True)
class RaterCovariates:
    """Observed rater covariates and their (log-linear) effects on the preference strength.

    Attributes:
        experience_years: inclusive range ``(low, high)`` of the integer ``experience`` column
            (years), drawn uniformly.
        experience_reference: experience (years) at which the effect is zero.
        experience_log_effect: change of ``log beta`` per year of experience.
        age_bands: levels of the categorical ``age_band`` column.
        age_band_shares: probability of each level (normalised).
        age_band_log_effects: additive effect of each level on ``log beta``.
    """

    experience_years: tuple[int, int] = (0, 20)
    experience_reference: float = 10.0
    experience_log_effect: float = 0.06
    age_bands: tuple[str, ...] = ("18-34", "35-54", "55+")
    age_band_shares: tuple[float, ...] = (1.0, 1.0, 1.0)
    age_band_log_effects: tuple[float, ...] = (0.0, 0.0, -0.4)

    def check(self) -> None:
        """Raise ``ValueError`` naming the first inconsistent field."""
        low, high = self.experience_years
        if int(low) != low or int(high) != high or not 0 <= low <= high:
            raise ValueError(
                f"experience_years must be integers 0 <= low <= high, got {self.experience_years}"
            )
        for name in ("experience_reference", "experience_log_effect"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be finite, got {getattr(self, name)!r}")
        n = len(self.age_bands)
        if n == 0 or len(set(self.age_bands)) != n:
            raise ValueError(f"age_bands must be non-empty and distinct, got {self.age_bands}")
        for name in ("age_band_shares", "age_band_log_effects"):
            if len(getattr(self, name)) != n:
                raise ValueError(
                    f"{name} needs one value per age band ({n}), got {getattr(self, name)}"
                )
        if not all(math.isfinite(s) and s > 0 for s in self.age_band_shares):
            raise ValueError(f"age_band_shares must be positive, got {self.age_band_shares}")
        if not all(math.isfinite(e) for e in self.age_band_log_effects):
            raise ValueError(
                f"age_band_log_effects must be finite, got {self.age_band_log_effects}"
            )

    def log_effect(self, experience: float, age_band: str) -> float:
        """``log beta - log b`` of an annotator with these covariates."""
        band = self.age_bands.index(age_band)
        return (
            self.experience_log_effect * (experience - self.experience_reference)
            + self.age_band_log_effects[band]
        )

    def mean_exp_effect(self, power: float) -> float:
        """``E[exp(power * effect)]`` over the covariate distribution (exact, both discrete)."""
        low, high = self.experience_years
        years = np.arange(low, high + 1, dtype=float)
        experience = np.mean(
            np.exp(power * self.experience_log_effect * (years - self.experience_reference))
        )
        shares = np.asarray(self.age_band_shares, dtype=float)
        band = np.sum(shares * np.exp(power * np.asarray(self.age_band_log_effects))) / shares.sum()
        return float(experience * band)

    def without_effects(self) -> RaterCovariates:
        """The same covariate distribution with all effects zero (the homogeneous control)."""
        return RaterCovariates(
            experience_years=self.experience_years,
            experience_reference=self.experience_reference,
            experience_log_effect=0.0,
            age_bands=self.age_bands,
            age_band_shares=self.age_band_shares,
            age_band_log_effects=(0.0,) * len(self.age_bands),
        )

    def to_dict(self) -> dict[str, Any]:
        """The ground-truth record: covariate distributions and effects."""
        shares = np.asarray(self.age_band_shares, dtype=float)
        return {
            "experience": {
                "distribution": "uniform integer years",
                "years": list(map(int, self.experience_years)),
                "reference": float(self.experience_reference),
                "log_effect_per_year": float(self.experience_log_effect),
            },
            "age_band": {
                "levels": list(self.age_bands),
                "shares": [float(s) for s in shares / shares.sum()],
                "log_effects": dict(
                    zip(self.age_bands, map(float, self.age_band_log_effects), strict=True)
                ),
            },
        }


DEFAULT_RATER_COVARIATES = RaterCovariates()

_STREAM_PAIRS, _STREAM_ANNOTATORS, _STREAM_DESIGN = 0, 1, 2
_STREAM_LABELS = {"heterogeneous": 3, "homogeneous": 4}
# Degree-preserving swaps per label when mixing the panel design (see _deal).
_SWAPS_PER_LABEL = 20


def _stable(x: float) -> float:
    # 12 significant digits, so that last-bit differences between libm / SIMD builds in the
    # strength draws cannot change the shipped bytes.
    return float(f"{x:.12g}")


def _count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _deal(
    groups: Sequence[Sequence[int]], pairs: np.ndarray, per_annotator: int, rng: np.random.Generator
) -> list[list[int]]:
    """``[annotator, pair]`` labels of one split: every annotator labels ``per_annotator``
    distinct ``pairs``; every pair gets the floor or ceiling of the mean number of labels, in
    total and from each group of annotators."""
    order = rng.permutation(pairs)
    # Consecutive slots on a cycle over the pairs: an annotator's slots are distinct pairs and
    # every stretch of slots (one group's, or all of them) covers the pairs evenly.
    labels: list[list[int]] = []
    blocks = []
    for members in groups:
        start = len(labels)
        labels += [[a, -1] for a in members for _ in range(per_annotator)]
        blocks.append((start, len(labels)))
    for slot, label in enumerate(labels):
        label[1] = int(order[slot % len(order)])
    held: dict[int, set[int]] = {}
    for a, p in labels:
        held.setdefault(a, set()).add(p)
    # The cycle gives annotators fixed blocks of pairs; random swaps of the pairs of two labels
    # of the same group (keeping every annotator's and every pair's counts) mix who labels with
    # whom.
    for start, stop in blocks:
        picks = rng.integers(start, stop, size=(_SWAPS_PER_LABEL * (stop - start), 2))
        for i, j in picks.tolist():
            (a, p), (b, q) = labels[i], labels[j]
            if a == b or p == q or q in held[a] or p in held[b]:
                continue
            held[a].remove(p)
            held[a].add(q)
            held[b].remove(q)
            held[b].add(p)
            labels[i][1], labels[j][1] = q, p
    return labels


def _draw_baseline(spec: SubgroupSpec, size: int, rng: np.random.Generator) -> np.ndarray:
    family = get_family(spec.family)
    params = family.check_params(spec.params)
    dist = family.scipy(params)
    if dist is None:  # a point mass has no scipy distribution
        return np.full(size, float(family.mean(NUMPY_OPS, params)))
    return np.asarray(dist.rvs(size=size, random_state=rng), dtype=float).reshape(size)


def _subgroup_truth(
    spec: SubgroupSpec, share: float, count: int, covariates: RaterCovariates
) -> dict[str, Any]:
    family = get_family(spec.family)
    params = family.check_params(spec.params)
    moments = {k: float(v) for k, v in family.moments(NUMPY_OPS, params).items()}
    # Marginal over the covariates: beta = b * exp(effect), b independent of the covariates.
    mean = moments["mean"] * covariates.mean_exp_effect(1.0)
    second = (moments["variance"] + moments["mean"] ** 2) * covariates.mean_exp_effect(2.0)
    return {
        "name": spec.name,
        "family": family.name,
        "params": params,
        "share": float(share),
        "num_annotators": int(count),
        "reference_mean": moments["mean"],
        "reference_cv": moments["cv"],
        "mean": mean,
        "second_moment": second,
        "cv": math.sqrt(max(second - mean**2, 0.0)) / mean,
    }


def _common_strength(gaps: np.ndarray, shares: np.ndarray, strengths: np.ndarray) -> float:
    """Least-squares ``beta0``: ``sigmoid(beta0 * gap)`` against the per-pair ``shares``."""

    def loss(log_beta: float) -> float:
        return float(np.sum((special.expit(math.exp(log_beta) * gaps) - shares) ** 2))

    # the best common strength lies between the smallest and largest annotator strengths
    low, high = math.log(strengths.min()), math.log(strengths.max())
    if high - low < 1e-12:
        return float(strengths.min())
    fit = optimize.minimize_scalar(
        loss, bounds=(low, high), method="bounded", options={"xatol": 1e-10}
    )
    return _stable(math.exp(fit.x))


def make_panel_preference_data(
    *,
    num_pairs: int = 240,
    num_annotators: int = 72,
    pairs_per_annotator: int = 20,
    subgroups: Sequence[SubgroupSpec] = DEFAULT_PANEL_SUBGROUPS,
    covariates: RaterCovariates = DEFAULT_RATER_COVARIATES,
    homogeneous: bool = False,
    test_fraction: float = 0.25,
    seed: int = 0,
) -> dict[str, Any]:
    """Generate annotator-panel preference data with known strengths (see the module docstring).

    Args:
        num_pairs: distinct response pairs (>= 2).
        num_annotators: persistent annotators, assigned to subgroups by ``share``
            (largest-remainder quota, then shuffled); every subgroup needs at least one.
        pairs_per_annotator: distinct pairs each annotator labels (>= 2: at least one train and
            one test pair).
        subgroups: the annotator subgroups; ``family`` is any :func:`mixlogit.families.get_family`
            name and ``params`` its parameters (the strength at the reference covariates).
        covariates: the rater covariate distribution and effects (:class:`RaterCovariates`).
        homogeneous: the control set: same pairs, annotators and covariates, one common strength
            matched to the heterogeneous label shares, labels redrawn.
        test_fraction: share of pairs in the ``"test"`` split (pairs are split, not labels).
        seed: seed of the whole generation.

    Returns:
        ``{"train": Dataset, "test": Dataset, "ground_truth": dict}``. One row per
        (pair, annotator) label, ordered by pair then annotator, with the columns of
        :data:`PANEL_COLUMNS`: ``prompt``, ``chosen``, ``rejected`` (strings), ``pair_id``,
        ``topic``, ``annotator_id`` (``"annotator-007"``), ``annotator_index`` (int),
        ``subgroup``, ``age_band``, ``experience`` (int years), ``true_strength`` (the
        annotator's beta), ``reward_chosen``, ``reward_rejected``, ``reward_gap`` (chosen minus
        rejected, negative when the annotator went against the reward), ``label_probability``
        (``sigmoid(true_strength * reward_gap)``). The ground truth holds the feature weights,
        the design sizes, the subgroups (family, params, moments at the reference covariates
        and marginal over them), the covariate effects, every annotator's strength and
        covariates, the population mean and CV, the control's ``common_strength`` and
        ``share_match``, and the seed.

    Raises:
        ValueError: sizes that cannot be met (naming the argument and the limit), a share that
            is not positive, a subgroup with no annotators, an unknown family or bad parameters
            (naming the subgroup), or inconsistent covariates.
    """
    from datasets import Dataset

    num_pairs = _count("num_pairs", num_pairs, 2)
    num_annotators = _count("num_annotators", num_annotators, 1)
    pairs_per_annotator = _count("pairs_per_annotator", pairs_per_annotator, 2)
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if not isinstance(covariates, RaterCovariates):
        raise ValueError(f"covariates must be a RaterCovariates, got {type(covariates).__name__}")
    covariates.check()
    subgroups = tuple(subgroups)
    if not subgroups:
        raise ValueError("subgroups must not be empty")
    names = [g.name for g in subgroups]
    if len(set(names)) != len(names):
        raise ValueError(f"subgroup names must be distinct, got {names}")
    for g in subgroups:
        try:
            get_family(g.family).check_params(g.params)
        except ValueError as err:
            raise ValueError(f"subgroup {g.name!r}: {err}") from err
    shares = np.array([g.share for g in subgroups], dtype=float)
    bad = [n for n, s in zip(names, shares, strict=True) if not (math.isfinite(s) and s > 0)]
    if bad:
        raise ValueError(f"subgroup shares must be positive and finite; bad for {bad}: {shares}")
    shares = shares / shares.sum()
    counts = largest_remainder_counts(shares, num_annotators)
    empty = [n for n, c in zip(names, counts, strict=True) if c == 0]
    if empty:
        raise ValueError(
            f"num_annotators={num_annotators} leaves subgroup(s) {empty} without annotators"
        )
    num_test = round(test_fraction * num_pairs)
    if not 1 <= num_test <= num_pairs - 1:
        raise ValueError(
            f"test_fraction={test_fraction} of num_pairs={num_pairs} gives {num_test} test pairs; "
            "both splits need at least one pair"
        )
    num_train = num_pairs - num_test
    test_per_annotator = min(
        max(round(pairs_per_annotator * num_test / num_pairs), 1), pairs_per_annotator - 1
    )
    train_per_annotator = pairs_per_annotator - test_per_annotator
    if train_per_annotator > num_train or test_per_annotator > num_test:
        raise ValueError(
            f"pairs_per_annotator={pairs_per_annotator} needs {train_per_annotator} distinct "
            f"train and {test_per_annotator} test pairs per annotator, but there are "
            f"{num_train} train and {num_test} test pairs; raise num_pairs"
        )
    for split, per_annotator, split_pairs in (
        ("train", train_per_annotator, num_train),
        ("test", test_per_annotator, num_test),
    ):
        if num_annotators * per_annotator < split_pairs:
            raise ValueError(
                f"num_annotators={num_annotators} x {per_annotator} {split} pairs each leaves "
                f"some of the {split_pairs} {split} pairs unlabelled; raise num_annotators or "
                "pairs_per_annotator"
            )

    # Pairs, annotators, design: streams shared by both kinds.
    rng = np.random.default_rng([seed, _STREAM_PAIRS])
    pairs = [draw_response_pair(rng, distinct="reward") for _ in range(num_pairs)]
    rng = np.random.default_rng([seed, _STREAM_ANNOTATORS])
    group_of = np.repeat(np.arange(len(subgroups)), counts)[rng.permutation(num_annotators)]
    baseline = np.empty(num_annotators)
    for gi, g in enumerate(subgroups):
        baseline[group_of == gi] = _draw_baseline(g, int(counts[gi]), rng)
    band_p = np.asarray(covariates.age_band_shares, dtype=float)
    band_of = rng.choice(len(covariates.age_bands), size=num_annotators, p=band_p / band_p.sum())
    low, high = covariates.experience_years
    experience = rng.integers(low, high + 1, size=num_annotators)
    age_band = [covariates.age_bands[int(b)] for b in band_of]
    strength = np.array(
        [
            _stable(
                baseline[a] * math.exp(covariates.log_effect(float(experience[a]), age_band[a]))
            )
            for a in range(num_annotators)
        ]
    )

    rng = np.random.default_rng([seed, _STREAM_DESIGN])
    is_test = np.zeros(num_pairs, dtype=bool)
    is_test[rng.permutation(num_pairs)[:num_test]] = True
    members = [np.flatnonzero(group_of == gi).tolist() for gi in range(len(subgroups))]
    labels: list[list[int]] = []
    for in_test, per_annotator in ((False, train_per_annotator), (True, test_per_annotator)):
        labels += _deal(members, np.flatnonzero(is_test == in_test), per_annotator, rng)
    labels.sort(key=lambda label: (label[1], label[0]))
    label_pair = np.array([p for _, p in labels])
    label_annotator = np.array([a for a, _ in labels])

    # Homogeneous control: one strength matching the per-pair expected shares of A.
    gap_ab = np.array([p["reward_a"] - p["reward_b"] for p in pairs])
    share_a = special.expit(strength[label_annotator] * gap_ab[label_pair])
    labels_per_pair = np.bincount(label_pair, minlength=num_pairs)
    pair_share = np.bincount(label_pair, weights=share_a, minlength=num_pairs) / labels_per_pair
    common = _common_strength(gap_ab, pair_share, strength)
    share_diff = special.expit(common * gap_ab) - pair_share
    agreement_het = float(
        np.mean(special.expit(strength[label_annotator] * np.abs(gap_ab[label_pair])))
    )
    agreement_hom = float(np.mean(special.expit(common * np.abs(gap_ab[label_pair]))))

    kind = "homogeneous" if homogeneous else "heterogeneous"
    beta = np.full(num_annotators, common) if homogeneous else strength
    u = np.random.default_rng([seed, _STREAM_LABELS[kind]]).random(len(labels))
    rows: dict[str, list[dict[str, Any]]] = {"train": [], "test": []}
    for (a, p), draw in zip(labels, u, strict=True):
        pair = pairs[p]
        p_a = float(special.expit(beta[a] * (pair["reward_a"] - pair["reward_b"])))
        a_wins = bool(draw < p_a)
        first, second = ("a", "b") if a_wins else ("b", "a")
        rows["test" if is_test[p] else "train"].append(
            {
                "prompt": pair["prompt"],
                "chosen": pair["text_" + first],
                "rejected": pair["text_" + second],
                "pair_id": p,
                "topic": pair["topic"],
                "annotator_id": f"annotator-{a:03d}",
                "annotator_index": a,
                "subgroup": subgroups[group_of[a]].name,
                "age_band": age_band[a],
                "experience": int(experience[a]),
                "true_strength": float(beta[a]),
                "reward_chosen": pair["reward_" + first],
                "reward_rejected": pair["reward_" + second],
                "reward_gap": pair["reward_" + first] - pair["reward_" + second],
                "label_probability": p_a if a_wins else 1.0 - p_a,
            }
        )

    truth_covariates = covariates.without_effects() if homogeneous else covariates
    if homogeneous:
        point_mass = SubgroupSpec("", "point_mass", {"beta": common})
        group_truth = [
            {**_subgroup_truth(point_mass, w, c, truth_covariates), "name": g.name}
            for g, w, c in zip(subgroups, shares, counts, strict=True)
        ]
        point_mass_moments = get_family("point_mass").moments(NUMPY_OPS, {"beta": common})
        population_mean, population_cv = (float(point_mass_moments[k]) for k in ("mean", "cv"))
    else:
        group_truth = [
            _subgroup_truth(g, w, c, covariates)
            for g, w, c in zip(subgroups, shares, counts, strict=True)
        ]
        # the mixture over subgroups
        population_mean = float(
            sum(w * g["mean"] for w, g in zip(shares, group_truth, strict=True))
        )
        second = float(
            sum(w * g["second_moment"] for w, g in zip(shares, group_truth, strict=True))
        )
        population_cv = math.sqrt(max(second - population_mean**2, 0.0)) / population_mean
    ids = [f"annotator-{a:03d}" for a in range(num_annotators)]
    ground_truth = {
        "kind": kind,
        "homogeneous": homogeneous,
        "seed": seed,
        "design": {
            "num_pairs": num_pairs,
            "num_train_pairs": num_train,
            "num_test_pairs": num_test,
            "num_annotators": num_annotators,
            "pairs_per_annotator": pairs_per_annotator,
            "train_pairs_per_annotator": train_per_annotator,
            "test_pairs_per_annotator": test_per_annotator,
            "num_train_labels": len(rows["train"]),
            "num_test_labels": len(rows["test"]),
            "labels_per_pair": {
                "min": int(labels_per_pair.min()),
                "max": int(labels_per_pair.max()),
            },
            "test_fraction": float(test_fraction),
        },
        "feature_weights": dict(FEATURE_WEIGHTS),
        "strength_model": (
            "log beta = log b + experience_log_effect * (experience - experience_reference) "
            "+ age_band_log_effect[age_band], b ~ subgroup family(params)"
        ),
        "subgroups": group_truth,
        "covariates": truth_covariates.to_dict(),
        "population_mean_strength": population_mean,
        "population_cv": population_cv,
        "annotator_mean_strength": float(np.mean(beta)),
        "annotator_cv": float(np.std(beta) / np.mean(beta)),
        "common_strength": common,
        "share_match": {
            "rms": float(np.sqrt(np.mean(share_diff**2))),
            "max_abs": float(np.max(np.abs(share_diff))),
        },
        "expected_agreement": {"heterogeneous": agreement_het, "homogeneous": agreement_hom},
        "annotator_strength": dict(zip(ids, map(float, beta), strict=True)),
        "annotators": {
            ids[a]: {
                "index": a,
                "subgroup": subgroups[group_of[a]].name,
                "age_band": age_band[a],
                "experience": int(experience[a]),
                "strength": float(beta[a]),
            }
            for a in range(num_annotators)
        },
    }
    return {
        "train": Dataset.from_list(rows["train"]),
        "test": Dataset.from_list(rows["test"]),
        "ground_truth": ground_truth,
    }


_PREFIX = "panel"


def write_panel_preferences(directory: str | Path = _files.DATA_DIR) -> list[Path]:
    """Write the shipped default panel datasets (both kinds, both splits) and their ground truth.

    Files: ``panel_{kind}_{split}.jsonl.gz`` (gzip with ``mtime=0``, so the bytes are
    reproducible) and ``panel_{kind}_ground_truth.json``. Returns the paths written.
    """
    return _files.write_shipped_sets(directory, _PREFIX, make_panel_preference_data)


def load_panel_preferences(kind: str = "heterogeneous", split: str = "train") -> Any:
    """A shipped panel dataset as a :class:`datasets.Dataset` (columns :data:`PANEL_COLUMNS`).

    Also served by :func:`~alignment.datasets.shipped.load_default_preferences` as kinds
    ``"panel_heterogeneous"`` and ``"panel_homogeneous"``.

    Args:
        kind: ``"heterogeneous"`` (three subgroups, covariate effects) or ``"homogeneous"``
            (same pairs, annotators and covariates, one common strength).
        split: ``"train"`` (180 pairs, 1,080 labels) or ``"test"`` (60 pairs, 360 labels);
            all 72 annotators appear in both.
    """
    from datasets import Dataset

    _files.check_kind(kind, PANEL_KINDS)
    rows = _files.read_split(_PREFIX, kind, split)
    # the files store keys sorted; restore the column order
    return Dataset.from_list([{c: row[c] for c in PANEL_COLUMNS} for row in rows])


def load_panel_ground_truth(kind: str = "heterogeneous") -> dict[str, Any]:
    """Ground truth of a shipped panel dataset (see :func:`make_panel_preference_data`)."""
    _files.check_kind(kind, PANEL_KINDS)
    return _files.read_ground_truth(_PREFIX, kind)
