"""The self-adaptive property of MixDPO on the embedded data.

1. With the implicit reward equal to the true reward up to a learned scale (the best a policy
   can do), fitting the MixDPO loss gives a Gamma strength whose coefficient of variation is
   far higher on the heterogeneous set than on the homogeneous control (fast).
2. End to end on a tiny model: the learned CV ends clearly higher on the heterogeneous set, and
   MixDPO's held-out macro margin gain exceeds DPO's there (slow).

The end-to-end run makes a single pass over the 360 training pairs (90 steps of 4 pairs). With
more epochs the tiny model memorises the training pairs, including those whose annotator went
against the reward, so most training margins turn positive, the data look nearly noiseless and
the CV falls on both sets (measured: 200 steps of 32 pairs give CV 0.45 heterogeneous vs 0.47
homogeneous; after 120 such steps 74% of the heterogeneous pairs labelled against the reward
already have a positive margin gain, against 22% after the single pass).
The strength learning rate is 0.1, not the paper's 1e-4 (a deviation: Adam moves each raw
parameter by at most about the learning rate per step, so with 1e-4 the 90 steps change the
raw shape by < 0.01 and the CV stays at its initial 0.71).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alignment.datasets.shipped import load_default_preferences
from alignment.losses import PairBatch, get_loss
from mixlogit.torch import GammaStrength


def _fit_cv_with_oracle_reward(kind: str, steps: int = 80) -> float:
    gaps = np.asarray(load_default_preferences(kind, "train")["reward_gap"], dtype=np.float64)
    # The loss only depends on each pair's gap: group equal gaps and weight them by count.
    values, counts = np.unique(gaps, return_counts=True)
    gap = torch.tensor(values, dtype=torch.float32)
    weight = torch.tensor(counts / counts.sum(), dtype=torch.float32)
    strength = GammaStrength(2.0, 16.7)
    log_scale = torch.zeros((), requires_grad=True)  # the policy's free reward scale
    optimizer = torch.optim.Adam([*strength.parameters(), log_scale], lr=0.15)
    loss_fn, zero = get_loss("mixdpo"), torch.zeros_like(gap)
    for _ in range(steps):
        delta = gap * 10.0 * log_scale.exp()  # mean strength 0.12 x 10 ~ the data's strength
        loss = (loss_fn(PairBatch(delta, zero, zero, zero, strength=strength)) * weight).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return strength.coefficient_of_variation.item()


def test_learned_cv_separates_heterogeneous_from_homogeneous_with_oracle_rewards():
    cv_het = _fit_cv_with_oracle_reward("heterogeneous")
    cv_hom = _fit_cv_with_oracle_reward("homogeneous")
    # Population CV of the data: 1.05 (heterogeneous), 0 (homogeneous); start 0.71.
    assert cv_het > 1.0, cv_het
    assert cv_hom < 0.65, cv_hom
    assert cv_het > 2 * cv_hom


# Measured with these settings over model seeds 0-4 (seed 0 is the one tested), start CV 0.71,
# population CV 1.05 (heterogeneous) vs 0 (homogeneous):
#   learned CV heterogeneous  1.02 0.94 0.96 0.99 1.04
#   learned CV homogeneous    0.74 0.80 0.74 0.81 0.74   (difference 0.14 to 0.31)
#   macro margin gain MixDPO  13.2 12.7  9.2  9.3 11.3   nats, heterogeneous test pairs
#   macro margin gain DPO      7.5  7.1  5.9  9.1  3.5
#   corr(margin gain, true reward gap) 0.48 to 0.85 over all 15 runs
# The margin comparison is scale-dependent: MixDPO's learned mean strength falls to ~0.055
# (DPO's beta is 0.1), which lets its margins grow; the CV is scale-free.
CV_HETEROGENEOUS_MIN = 0.88
CV_GAP_MIN = 0.1


def _train_three_runs(tiny_trainer, tmp_path, word_tokenizer) -> dict:
    from alignment.evaluation import preference_margins
    from analysis.margins import micro_macro_margins

    results = {}
    for kind, loss_type in (
        ("heterogeneous", "mixdpo"),
        ("homogeneous", "mixdpo"),
        ("heterogeneous", "dpo"),
    ):
        train = load_default_preferences(kind, "train")
        test = load_default_preferences(kind, "test")
        trainer = tiny_trainer(
            tmp_path / f"{kind}-{loss_type}",
            word_tokenizer,
            train,
            per_device_train_batch_size=4,
            num_train_epochs=1,  # one pass: no pair is seen twice (see the module docstring)
            strength_learning_rate=0.1,
            logging_steps=1000,
            strength_family="gamma",
            loss_type=loss_type,
        )
        trainer.train()
        assert trainer.state.global_step == len(train) // 4
        gain = preference_margins(trainer.model, test, word_tokenizer) - preference_margins(
            trainer.ref_model, test, word_tokenizer
        )
        # the policy learned the reward, not noise: its margin gain follows the true gap
        assert np.corrcoef(gain, test["reward_gap"])[0, 1] > 0.4, (kind, loss_type)
        results[kind, loss_type] = {
            "cv": trainer.strength.coefficient_of_variation.item()
            if loss_type == "mixdpo"
            else 0.0,
            "macro": micro_macro_margins(gain, test["subgroup"])["macro"],
        }
    return results


@pytest.mark.slow
def test_tiny_model_learns_higher_cv_on_heterogeneous_data(tiny_trainer, tmp_path, word_tokenizer):
    # Tiny matrices: one thread avoids the threading overhead (about 2x faster on 2 cores).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        results = _train_three_runs(tiny_trainer, tmp_path, word_tokenizer)
    finally:
        torch.set_num_threads(threads)
    cv_het = results["heterogeneous", "mixdpo"]["cv"]
    cv_hom = results["homogeneous", "mixdpo"]["cv"]
    assert cv_het > CV_HETEROGENEOUS_MIN, results
    assert cv_het > cv_hom + CV_GAP_MIN, results
    assert results["heterogeneous", "mixdpo"]["macro"] > results["heterogeneous", "dpo"]["macro"], (
        results
    )
