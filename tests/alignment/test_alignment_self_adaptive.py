"""The self-adaptive property of MixDPO on the embedded data.

1. With the implicit reward equal to the true reward up to a learned scale (the best a policy
   can do), fitting the MixDPO loss gives a Gamma strength whose coefficient of variation is
   far higher on the heterogeneous set than on the homogeneous control (fast).
2. End to end on a tiny model: the learned CV ends higher on the heterogeneous set, and
   MixDPO's held-out macro margin gain is at least DPO's there (slow).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alignment.losses import PairBatch, get_loss
from alignment.semisynthetic import load_default_preferences
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


@pytest.mark.slow
def test_tiny_model_learns_higher_cv_on_heterogeneous_data(tmp_path, word_tokenizer):
    from alignment import MixDPOConfig, MixDPOTrainer, tiny_causal_lm
    from alignment.metrics import macro_micro_margins, preference_margins

    results = {}
    for kind in ("heterogeneous", "homogeneous"):
        for loss_type in ("mixdpo", "dpo"):
            if kind == "homogeneous" and loss_type == "dpo":
                continue
            train = load_default_preferences(kind, "train")
            test = load_default_preferences(kind, "test")
            args = MixDPOConfig(
                output_dir=str(tmp_path / f"{kind}-{loss_type}"),
                report_to="none",
                per_device_train_batch_size=32,
                learning_rate=1e-2,
                strength_learning_rate=0.05,
                lr_scheduler_type="constant",
                max_steps=40,
                logging_steps=40,
                disable_tqdm=True,
                save_strategy="no",
                seed=0,
                dataloader_pin_memory=False,
                strength_family="gamma",
                loss_type=loss_type,
            )
            trainer = MixDPOTrainer(
                tiny_causal_lm(len(word_tokenizer), seed=0),
                args=args,
                train_dataset=train,
                processing_class=word_tokenizer,
            )
            trainer.train()
            gain = preference_margins(trainer.model, test, word_tokenizer) - preference_margins(
                trainer.ref_model, test, word_tokenizer
            )
            results[kind, loss_type] = {
                "cv": trainer.strength.coefficient_of_variation.item()
                if loss_type == "mixdpo"
                else 0.0,
                "macro": macro_micro_margins(gain, test["subgroup"])["macro"],
            }
    assert results["heterogeneous", "mixdpo"]["cv"] > results["homogeneous", "mixdpo"]["cv"], (
        results
    )
    assert (
        results["heterogeneous", "mixdpo"]["macro"] >= results["heterogeneous", "dpo"]["macro"]
    ), results
