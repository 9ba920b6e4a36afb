"""Semi-synthetic heterogeneous preference data with known ground truth.

Each prompt asks for advice on one of a fixed set of topics. Each response is assembled from
parts whose presence is *measurable in the text*:

=============  ============================================  ======
feature        text                                          weight
=============  ============================================  ======
``tips``       number of concrete tips (1 to 3)              +1.0
``greeting``   a friendly opener ("Happy to help!")          +0.5
``hedge``      a hedge ("I am not an expert, but")           -0.5
``filler``     number of empty filler sentences (0 to 2)     -0.75
=============  ============================================  ======

The ground-truth reward of a response is ``r = weights . features``. Every pair is labelled by
one annotator ``a`` with Bradley-Terry probability ``sigmoid(beta_a * (r_A - r_B))``; the
annotator's preference strength ``beta_a`` is drawn once from the distribution of their subgroup.
The default subgroups differ in strength distribution (a consistent, a noisy and a polarised
group), so the population of strengths is heterogeneous (coefficient of variation about 1).

The *homogeneous control* has the same prompts, response pairs and annotator ids, but every
annotator has the same strength (the population mean), so the strength distribution is a point
mass; only the labels are redrawn.

The datasets shipped in ``alignment/datasets/data_files`` were produced by
:func:`make_preference_data` with the default arguments; :func:`alignment.datasets.shipped.load_default_preferences` reads
them (and :func:`make_preference_data` regenerates them bit for bit).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from alignment.datasets._files import (
    DATA_DIR,
    write_shipped_sets,
)
from mixlogit.families import NUMPY_OPS, StrengthFamily, get_family

__all__ = [
    "DEFAULT_SUBGROUPS",
    "FEATURE_NAMES",
    "FEATURE_WEIGHTS",
    "SubgroupSpec",
    "draw_features",
    "draw_response_pair",
    "largest_remainder_counts",
    "make_preference_data",
    "render_response",
    "response_features",
    "response_reward",
    "write_default_preferences",
]

FEATURE_NAMES = ("tips", "greeting", "hedge", "filler")
FEATURE_WEIGHTS = {"tips": 1.0, "greeting": 0.5, "hedge": -0.5, "filler": -0.75}
GREETING = "Happy to help!"
HEDGE = "I am not an expert, but"
FILLERS = ("This is a common question.", "Many people ask about this.")

TOPICS: dict[str, tuple[str, ...]] = {
    "sleep better": (
        "go to bed at the same time every night",
        "keep screens out of the bedroom",
        "avoid coffee after noon",
        "keep the room cool and dark",
        "get some sunlight in the morning",
    ),
    "learn a new language": (
        "practise for ten minutes every day",
        "talk with native speakers",
        "watch shows with subtitles",
        "learn the most common words first",
        "read short stories aloud",
    ),
    "save money": (
        "track every expense for a month",
        "set up an automatic transfer to savings",
        "cook at home more often",
        "cancel subscriptions you do not use",
        "wait a day before buying something big",
    ),
    "stay focused at work": (
        "turn off notifications",
        "work in short blocks with breaks",
        "write a plan for the day",
        "keep your desk clear",
        "do the hardest task first",
    ),
    "start running": (
        "begin with short easy runs",
        "buy shoes that fit well",
        "alternate running and walking",
        "rest between running days",
        "run with a friend",
    ),
    "eat more healthily": (
        "add a vegetable to every meal",
        "drink water instead of soda",
        "plan your meals for the week",
        "keep fruit within reach",
        "eat slowly and stop when full",
    ),
    "make new friends": (
        "join a club that shares your hobby",
        "say yes to invitations",
        "ask people questions about themselves",
        "volunteer in your community",
        "follow up after you meet someone",
    ),
    "reduce stress": (
        "take a short walk outside",
        "breathe slowly for a minute",
        "write down what worries you",
        "limit the news you read",
        "talk to someone you trust",
    ),
    "keep plants alive": (
        "check the soil before watering",
        "put them near a bright window",
        "use pots with drainage holes",
        "remove dead leaves",
        "feed them in spring",
    ),
    "write better emails": (
        "put the main point first",
        "use a clear subject line",
        "keep paragraphs short",
        "read it once before sending",
        "end with a clear request",
    ),
    "cook rice": (
        "rinse the rice first",
        "use the right amount of water",
        "let it rest after cooking",
        "keep the lid on",
        "add a pinch of salt",
    ),
    "study for exams": (
        "test yourself instead of rereading",
        "spread study over several days",
        "sleep well before the exam",
        "explain topics to a friend",
        "practise with old exam papers",
    ),
}

PROMPT_TEMPLATES = (
    "How can I {topic}?",
    "What is a good way to {topic}?",
    "Any advice on how to {topic}?",
    "I want to {topic}. Where should I start?",
)


def response_features(text: str) -> dict[str, int]:
    """The measurable features of a response produced by this module (see the module table)."""
    body = text.strip()
    tips = sum(1 for line in body.splitlines() if line.lstrip().startswith("- "))
    return {
        "tips": tips,
        "greeting": int(body.startswith(GREETING)),
        "hedge": int(HEDGE in body),
        "filler": sum(body.count(f) for f in FILLERS),
    }


def response_reward(text: str) -> float:
    """Ground-truth reward ``weights . features`` of a response."""
    features = response_features(text)
    return float(sum(FEATURE_WEIGHTS[name] * features[name] for name in FEATURE_NAMES))


def render_response(features: dict[str, int], tips: Sequence[str]) -> str:
    """The response text with these ``features`` (see the module table), taking ``tips`` in order."""
    head = []
    if features["greeting"]:
        head.append(GREETING)
    head.extend(FILLERS[: features["filler"]])
    intro = "Here are some ideas:" if features["tips"] > 1 else "Here is one idea:"
    if features["hedge"]:
        intro = f"{HEDGE} {intro[0].lower()}{intro[1:]}"
    head.append(intro)
    lines = [" ".join(head)]
    lines.extend(f"- {tip[0].upper()}{tip[1:]}." for tip in tips[: features["tips"]])
    return "\n".join(lines)


def draw_features(rng: np.random.Generator) -> dict[str, int]:
    """Features of one response, each uniform on its range (see the module table)."""
    return {
        "tips": int(rng.integers(1, 4)),
        "greeting": int(rng.integers(0, 2)),
        "hedge": int(rng.integers(0, 2)),
        "filler": int(rng.integers(0, 3)),
    }


def draw_response_pair(rng: np.random.Generator, *, distinct: str = "features") -> dict[str, Any]:
    """One advice prompt and two responses ``A`` and ``B`` to it, drawn with ``rng``.

    Args:
        rng: the generator (draws topic, template, order of tips, then features of A and B).
        distinct: ``B`` is redrawn until it differs from ``A`` in its ``"features"`` or in its
            ``"reward"`` (a pair of equal rewards carries no information about strength).

    Returns:
        ``{"prompt", "topic", "text_a", "text_b", "reward_a", "reward_b"}``; B lists the tips in
        the reverse order of A.
    """
    if distinct not in ("features", "reward"):
        raise ValueError(f"distinct must be 'features' or 'reward', got {distinct!r}")
    topics = sorted(TOPICS)
    topic = topics[int(rng.integers(len(topics)))]
    template = PROMPT_TEMPLATES[int(rng.integers(len(PROMPT_TEMPLATES)))]
    tips = [TOPICS[topic][i] for i in rng.permutation(len(TOPICS[topic]))]
    features_a = draw_features(rng)
    text_a = render_response(features_a, tips)
    reward_a = response_reward(text_a)
    while True:
        features_b = draw_features(rng)
        text_b = render_response(features_b, tips[::-1])
        reward_b = response_reward(text_b)
        if (features_b != features_a) if distinct == "features" else (reward_b != reward_a):
            break
    return {
        "prompt": template.format(topic=topic) + "\n",
        "topic": topic,
        "text_a": text_a,
        "text_b": text_b,
        "reward_a": reward_a,
        "reward_b": reward_b,
    }


def largest_remainder_counts(shares: np.ndarray, total: int) -> np.ndarray:
    """``(G,)`` integer counts summing to ``total`` in proportion to ``shares`` (sum 1).

    Largest-remainder (Hamilton) rounding: the floors of ``shares * total``, then one more for
    the largest remainders, ties to the lower index.
    """
    counts = np.floor(shares * total).astype(int)
    for i in np.argsort(-(shares * total - counts), kind="stable")[: total - counts.sum()]:
        counts[i] += 1
    return counts


@dataclass(frozen=True)
class SubgroupSpec:
    """An annotator subgroup and the distribution of its members' preference strengths.

    Attributes:
        name: subgroup label (the ``subgroup`` column).
        family: a :mod:`mixlogit.families` name, e.g. ``"gamma"`` (``params = {"shape",
            "rate"}``) or ``"lognormal"`` (``params = {"loc", "scale"}``).
        params: distribution parameters.
        share: share of annotators in the subgroup (normalised over subgroups).
    """

    name: str
    family: str
    params: dict[str, float]
    share: float = 1.0

    def _family(self) -> StrengthFamily:
        try:
            family = get_family(self.family)
        except ValueError as error:
            raise ValueError(f"subgroup {self.name!r}: {error}") from None
        family.check_params(self.params)
        return family

    def mean(self) -> float:
        """E[beta]."""
        return float(self._family().mean(NUMPY_OPS, self.params))

    def second_moment(self) -> float:
        """E[beta^2]."""
        family = self._family()
        return float(family.variance(NUMPY_OPS, self.params) + self.mean() ** 2)

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """``(size,)`` strengths drawn with ``rng``."""
        distribution = self._family().scipy(self.params)
        if distribution is None:  # a point mass
            return np.full(size, self.mean())
        return distribution.rvs(size=size, random_state=rng)


DEFAULT_SUBGROUPS: tuple[SubgroupSpec, ...] = (
    SubgroupSpec("consistent", "gamma", {"shape": 16.0, "rate": 4.0}),  # mean 4, CV 0.25
    SubgroupSpec("noisy", "gamma", {"shape": 4.0, "rate": 16.0}),  # mean 0.25, CV 0.5
    SubgroupSpec("polarised", "lognormal", {"loc": 0.0, "scale": 1.0}),  # mean 1.65, CV 1.31
)


def _population_cv(subgroups: Sequence[SubgroupSpec], shares: np.ndarray) -> float:
    mean = float(sum(w * g.mean() for w, g in zip(shares, subgroups, strict=True)))
    second = float(sum(w * g.second_moment() for w, g in zip(shares, subgroups, strict=True)))
    return math.sqrt(max(second - mean**2, 0.0)) / mean


def make_preference_data(
    *,
    num_prompts: int = 480,
    num_annotators: int = 48,
    subgroups: Sequence[SubgroupSpec] = DEFAULT_SUBGROUPS,
    homogeneous: bool = False,
    test_fraction: float = 0.25,
    seed: int = 0,
) -> dict[str, Any]:
    """Generate the semi-synthetic preference data (one pair per prompt).

    Args:
        num_prompts: number of prompts (= pairs).
        num_annotators: annotators, assigned to subgroups by ``share`` (round-robin by quota).
        subgroups: the annotator subgroups and their strength distributions.
        homogeneous: give every annotator the population mean strength (the control set);
            prompts, responses, annotators and splits are the same as for the heterogeneous set.
        test_fraction: share of pairs put in the ``"test"`` split (by prompt).
        seed: seed of the whole generation.

    Returns:
        ``{"train": Dataset, "test": Dataset, "ground_truth": dict}``. Columns: ``prompt``,
        ``chosen``, ``rejected`` (strings), ``pair_id``, ``topic``, ``annotator_id``,
        ``annotator_index`` (the same as an integer, for losses that need it as a tensor),
        ``subgroup``, ``true_strength`` (the labelling annotator's beta), ``reward_chosen``,
        ``reward_rejected``, ``reward_gap`` (chosen - rejected, may be negative when the
        annotator went against the reward), ``label_probability`` (probability of this label).
    """
    from datasets import Dataset

    if num_prompts < 2 or num_annotators < len(subgroups):
        raise ValueError(
            f"need num_prompts >= 2 and num_annotators >= number of subgroups ({len(subgroups)}), "
            f"got num_prompts={num_prompts}, num_annotators={num_annotators}"
        )
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    shares = np.array([g.share for g in subgroups], dtype=float)
    if np.any(shares <= 0):
        raise ValueError(f"subgroup shares must be positive, got {shares.tolist()}")
    shares = shares / shares.sum()

    rng = np.random.default_rng(seed)
    # Annotators: subgroup by largest-remainder quota, strengths from the subgroup distribution.
    counts = largest_remainder_counts(shares, num_annotators)
    annotator_group = np.repeat(np.arange(len(subgroups)), counts)
    annotator_strength = np.empty(num_annotators)
    for gi, group in enumerate(subgroups):
        members = annotator_group == gi
        annotator_strength[members] = group.draw(rng, int(members.sum()))
    population_mean = float(sum(w * g.mean() for w, g in zip(shares, subgroups, strict=True)))

    rows: list[dict[str, Any]] = []
    for pair_id in range(num_prompts):
        pair = draw_response_pair(rng, distinct="features")
        text_a, text_b = pair["text_a"], pair["text_b"]
        reward_a, reward_b = pair["reward_a"], pair["reward_b"]
        annotator = int(rng.integers(num_annotators))
        beta = population_mean if homogeneous else float(annotator_strength[annotator])
        p_a = 1.0 / (1.0 + math.exp(-beta * (reward_a - reward_b)))
        # One label stream per pair and kind, so the control redraws labels independently.
        u = np.random.default_rng([seed, 2 if homogeneous else 1, pair_id]).random()
        a_wins = bool(u < p_a)
        chosen, rejected = (text_a, text_b) if a_wins else (text_b, text_a)
        r_chosen, r_rejected = (reward_a, reward_b) if a_wins else (reward_b, reward_a)
        rows.append(
            {
                "prompt": pair["prompt"],
                "chosen": chosen,
                "rejected": rejected,
                "pair_id": pair_id,
                "topic": pair["topic"],
                "annotator_id": f"annotator-{annotator:03d}",
                "annotator_index": annotator,
                "subgroup": subgroups[int(annotator_group[annotator])].name,
                "true_strength": beta,
                "reward_chosen": r_chosen,
                "reward_rejected": r_rejected,
                "reward_gap": r_chosen - r_rejected,
                "label_probability": p_a if a_wins else 1.0 - p_a,
            }
        )
    split_rng = np.random.default_rng([seed, 3])
    is_test = np.zeros(num_prompts, dtype=bool)
    is_test[split_rng.permutation(num_prompts)[: max(1, round(test_fraction * num_prompts))]] = True
    train = [r for r, t in zip(rows, is_test, strict=True) if not t]
    test = [r for r, t in zip(rows, is_test, strict=True) if t]
    ground_truth = {
        "feature_weights": dict(FEATURE_WEIGHTS),
        "subgroups": [
            {"name": g.name, "family": g.family, "params": dict(g.params), "share": float(w)}
            for g, w in zip(subgroups, shares, strict=True)
        ],
        "homogeneous": homogeneous,
        "population_mean_strength": population_mean,
        "population_cv": 0.0 if homogeneous else _population_cv(subgroups, shares),
        "annotator_strength": {
            f"annotator-{i:03d}": (population_mean if homogeneous else float(s))
            for i, s in enumerate(annotator_strength)
        },
        "seed": seed,
    }
    return {
        "train": Dataset.from_list(train),
        "test": Dataset.from_list(test),
        "ground_truth": ground_truth,
    }


FILE_PREFIX = "semisynthetic"  # the shipped files are semisynthetic_<kind>_<split>.jsonl.gz


def write_default_preferences(directory: str | Path = DATA_DIR) -> list[Path]:
    """Write the shipped sets ``semisynthetic_*`` (both kinds, both splits); the paths written.

    Made by :func:`make_preference_data` with the defaults; the bytes are reproducible.
    """
    return write_shipped_sets(directory, FILE_PREFIX, make_preference_data)
