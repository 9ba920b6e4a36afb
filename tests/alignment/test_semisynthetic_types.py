"""Semi-synthetic LLM data relabelled by annotator types: ground truth, linkage, label law,
and the heterogeneous losses trained by name in MixDPOTrainer on it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from alignment.datasets.semisynthetic import (
    FEATURE_NAMES,
    response_features,
)
from alignment.datasets.semisynthetic_types import (
    DEFAULT_TYPES,
    AnnotatorType,
    add_estimated_variance,
    make_type_preference_data,
    pair_alignment_accuracy,
)
from alignment.datasets.shipped import load_default_preferences


@pytest.fixture(scope="module")
def typed():
    return make_type_preference_data(seed=0)


def _reward(text: str, coefficients: dict[str, float]) -> float:
    # independent of the module: features from the text, coefficients by name
    features = response_features(text)
    return sum(coefficients.get(name, 0.0) * features[name] for name in FEATURE_NAMES)


def test_columns_match_the_types_rewards_recomputed_from_the_text(typed):
    truth = typed["ground_truth"]
    types = truth["types"]
    shares = np.array([t["share"] for t in types])
    assert np.allclose(shares, 1 / 3)
    for split in ("train", "test"):
        data = typed[split]
        assert len(data) == {"train": 360, "test": 120}[split]
        for row in data:
            gaps = np.array(
                [
                    _reward(row["chosen"], t["coefficients"])
                    - _reward(row["rejected"], t["coefficients"])
                    for t in types
                ]
            )
            assert np.allclose(row["type_reward_gaps"], gaps)
            assert math.isclose(row["average_reward_gap"], float(shares @ gaps), abs_tol=1e-12)
            # population variance over equally common types
            assert math.isclose(row["reward_variance"], float(np.var(gaps)), abs_tol=1e-9)
            assert row["type_labels"][row["type_id"]] == 1  # the record is the own type's label
            assert types[row["type_id"]]["name"] == row["type_name"]
            assert truth["annotator_types"][row["annotator_id"]] == row["type_name"]
            assert row["chosen_features"] == [
                response_features(row["chosen"])[f] for f in FEATURE_NAMES
            ]
    average = truth["average_coefficients"]
    assert average["tips"] == pytest.approx((4.0 - 1.5 - 1.5) / 3)


def test_same_pairs_as_the_embedded_data_and_annotator_linkage(typed):
    base = load_default_preferences("heterogeneous", "train")
    data = typed["train"]
    assert data["pair_id"] == base["pair_id"]
    for new, old in zip(data, base, strict=True):
        assert {new["chosen"], new["rejected"]} == {old["chosen"], old["rejected"]}
    annotators = np.array(data["annotator_index"])
    counts = np.bincount(annotators)
    assert counts.max() == 6 and (counts == 6).sum() == len(counts)  # 360 = 60 x 6
    for annotator in range(len(counts)):
        assert (
            len({t for a, t in zip(annotators, data["type_id"], strict=True) if a == annotator})
            == 1
        )
    # types by quota: 20 annotators of each type
    per_type = np.bincount(
        [data["type_id"][int(np.flatnonzero(annotators == a)[0])] for a in range(60)]
    )
    assert per_type.tolist() == [20, 20, 20]
    assert not set(data["annotator_id"]) & set(typed["test"]["annotator_id"])


def test_labels_follow_each_types_bradley_terry_law():
    # Pool 10 seeds: the annotator's own label picks the embedded "first" response with
    # probability sigmoid(gap_own), the other types' labels favour the listed chosen with
    # probability sigmoid(gap_t); both sums must match their expectations within 4 SE.
    base = load_default_preferences("heterogeneous", "train")
    first = base["chosen"]
    coefficients = [dict(t.coefficients) for t in DEFAULT_TYPES]
    first_gaps = np.array(
        [
            [_reward(a, c) - _reward(b, c) for c in coefficients]
            for a, b in zip(first, base["rejected"], strict=True)
        ]
    )
    own_residual, own_var, other_residual, other_var = 0.0, 0.0, 0.0, 0.0
    for seed in range(10):
        data = make_type_preference_data(seed=seed)["train"]
        for row, text, gaps in zip(data, first, first_gaps, strict=True):
            p_first = 1 / (1 + math.exp(-gaps[row["type_id"]]))
            own_residual += float(row["chosen"] == text) - p_first
            own_var += p_first * (1 - p_first)
            for t, (label, gap) in enumerate(
                zip(row["type_labels"], row["type_reward_gaps"], strict=True)
            ):
                if t != row["type_id"]:
                    p = 1 / (1 + math.exp(-gap))
                    other_residual += label - p
                    other_var += p * (1 - p)
    assert abs(own_residual) < 4 * math.sqrt(own_var)
    assert abs(other_residual) < 4 * math.sqrt(other_var)


def test_pooled_majority_disagrees_with_the_average_reward(typed):
    gaps = np.array(typed["train"]["type_reward_gaps"])
    pooled = (1 / (1 + np.exp(-gaps))).mean(axis=1)
    average = gaps.mean(axis=1)
    decided = np.abs(average) > 1e-12
    disagree = np.mean(np.sign(pooled[decided] - 0.5) != np.sign(average[decided]))
    assert 0.15 < disagree < 0.4
    # on those pairs the intense type outvotes: the pooled labels miss r_bar (DPO's target)
    majority_accuracy = pair_alignment_accuracy(pooled[decided] - 0.5, average[decided])
    assert majority_accuracy == pytest.approx(1 - disagree)


def test_seed_changes_labels_not_pairs(typed):
    again = make_type_preference_data(seed=0)["train"]
    assert again["chosen"] == typed["train"]["chosen"]
    assert again["type_labels"] == typed["train"]["type_labels"]
    other = make_type_preference_data(seed=1)["train"]
    assert other["annotator_id"] != typed["train"]["annotator_id"]
    assert other["pair_id"] == typed["train"]["pair_id"]


def test_validation_errors():
    with pytest.raises(ValueError, match="unknown feature"):
        make_type_preference_data(types=(AnnotatorType("x", {"length": 1.0}),))
    with pytest.raises(ValueError, match="distinct"):
        make_type_preference_data(types=(AnnotatorType("x", {}), AnnotatorType("x", {})))
    with pytest.raises(ValueError, match="pairs_per_annotator"):
        make_type_preference_data(pairs_per_annotator=0)
    with pytest.raises(ValueError, match="shares"):
        make_type_preference_data(types=(AnnotatorType("x", {}, share=0.0),))
    with pytest.raises(ValueError, match="shape"):
        pair_alignment_accuracy([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="tied"):
        pair_alignment_accuracy([1.0], [0.0])


def test_pair_alignment_accuracy_hand_values():
    # ties in the target are dropped, a zero margin counts as wrong
    assert pair_alignment_accuracy([1.0, -2.0, 0.0, 5.0], [0.5, 1.0, 2.0, 0.0]) == pytest.approx(
        1 / 3
    )


def test_estimated_variance_tracks_the_true_variance(typed):
    train, estimate = add_estimated_variance(typed["train"])
    true_v = np.array(train["reward_variance"])
    est_v = np.array(train["estimated_reward_variance"])
    assert est_v.shape == true_v.shape and (est_v >= 0).all()
    assert np.corrcoef(true_v, est_v)[0, 1] > 0.9
    assert len(estimate.type_weights) >= 2  # heterogeneity is detected
    with pytest.raises(ValueError, match="annotator_index"):
        add_estimated_variance(typed["train"].remove_columns("annotator_index"))


# --------------------------------------------------------------------------------------------
# Training by loss name on this data
# --------------------------------------------------------------------------------------------


@pytest.fixture
def make_trainer(tiny_trainer):
    """The tiny trainer at ``beta = 1`` (V is in reward units), 3 steps."""
    return lambda output_dir, tokenizer, data, **overrides: tiny_trainer(
        output_dir, tokenizer, data, **{"beta": 1.0, "max_steps": 3, **overrides}
    )


@pytest.fixture(scope="module")
def typed_small(typed):
    train, _ = add_estimated_variance(typed["train"])
    return train.select(range(8))


@pytest.mark.parametrize(
    ("loss_kwargs", "column"),
    [({}, "reward_variance"), ({"variance_column": "estimated_reward_variance"}, None)],
)
def test_variance_corrected_trains_by_name_and_reads_its_column(
    make_trainer, tmp_path, word_tokenizer, typed_small, loss_kwargs, column
):
    from alignment.evaluation import preference_margins
    from alignment.losses.heterogeneous import variance_corrected_log_likelihood

    column = column or loss_kwargs["variance_column"]
    trainer = make_trainer(
        tmp_path,
        word_tokenizer,
        typed_small,
        loss_type="variance_corrected_dpo",
        loss_kwargs=loss_kwargs,
    )
    assert trainer.loss_fn.extra_columns == (column,)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses)
    # at the start the policy is the reference: h = 0 and sigmoid''(0) = 0, so the loss is log 2
    assert losses[0] == pytest.approx(math.log(2), abs=1e-5)
    assert any(
        not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters(), strict=True)
    )
    # the evaluation loss equals the formula applied to independently computed margins and V
    h = preference_margins(trainer.model, typed_small, word_tokenizer) - preference_margins(
        trainer.ref_model, typed_small, word_tokenizer
    )
    variance = torch.tensor(typed_small[column], dtype=torch.float64)
    expected = -variance_corrected_log_likelihood(torch.tensor(h), variance).mean()
    assert trainer.evaluate(typed_small)["eval_loss"] == pytest.approx(float(expected), rel=1e-4)
    # V matters: with V = 0 the value differs (the margins are no longer 0)
    plain = -variance_corrected_log_likelihood(torch.tensor(h), torch.zeros_like(variance)).mean()
    assert abs(float(plain) - float(expected)) > 1e-4


def test_agreement_only_trains_by_name_on_type_labels(
    make_trainer, tmp_path, word_tokenizer, typed_small
):
    trainer = make_trainer(tmp_path, word_tokenizer, typed_small, loss_type="agreement_dpo")
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    # step 1 sees all 8 pairs at h = 0: each unanimous pair costs log 2, the others 0
    unanimous = np.mean([len(set(labels)) == 1 for labels in typed_small["type_labels"]])
    assert 0 < unanimous < 1  # the first 8 pairs have both kinds
    assert losses[0] == pytest.approx(unanimous * math.log(2), abs=1e-5)
    assert all(math.isfinite(v) for v in losses)
