"""TRL's evaluation hooks on MixDPOTrainer: ``compute_metrics`` with per-pair predictions, and
the ``logits/chosen`` / ``logits/rejected`` metrics, checked against independent computations
on the tiny model (full-vocabulary logits from a plain forward pass)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from alignment import MixDPOConfig, MixDPOTrainer, tiny_causal_lm
from alignment.config import QUIET_RUN
from alignment.data import PreferenceCollator
from alignment.logprobs import completion_logps


def _pairs(dataset, n, seed):
    return dataset.shuffle(seed=seed).select(range(n))


def _batch(trainer, dataset):
    """All rows of a tokenised ``dataset`` as one collated batch (chosen rows first)."""
    collator = PreferenceCollator(pad_token_id=trainer.processing_class.pad_token_id)
    return collator([dataset[i] for i in range(len(dataset))])


def _reference_logit_sums(model, batch):
    """Per sequence: sum over completion tokens ``t`` of the vocabulary-mean logit at
    position ``t - 1``, and the number of those tokens, from the full logits."""
    with torch.no_grad():
        logits = model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        ).logits.double()
    mask = batch["completion_mask"][:, 1:].double()
    return (logits[:, :-1].mean(-1) * mask).sum(1), mask.sum(1)


class _CustomHead(nn.Linear):
    """An LM head that is not a plain ``nn.Linear``: completion_logps takes the full forward."""


@pytest.mark.parametrize("plain_head", [True, False])
def test_completion_logps_logit_sums_match_the_full_logits(word_tokenizer, plain_head):
    model = tiny_causal_lm(len(word_tokenizer), hidden_size=48, seed=5)
    if not plain_head:
        old = model.lm_head
        head = _CustomHead(old.in_features, old.out_features, bias=False)
        head.weight = old.weight
        model.lm_head = head
    texts = ["the cat sat on the mat", "a dog", "one two three four five six seven"]
    encoded = [word_tokenizer(t)["input_ids"] for t in texts]
    width = max(len(e) for e in encoded)
    input_ids = torch.zeros(len(texts), width, dtype=torch.long)
    attention = torch.zeros_like(input_ids)
    completion = torch.zeros_like(input_ids)
    for i, ids in enumerate(encoded):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        attention[i, : len(ids)] = 1
        completion[i, 1 + i : len(ids)] = 1  # prompts of 1, 2, 3 tokens
    completion[1] = 0  # a sequence without completion tokens: sum 0, count 0
    batch = {"input_ids": input_ids, "attention_mask": attention, "completion_mask": completion}
    args = (input_ids, attention, completion)
    plain = completion_logps(model, *args, chunk_rows=3)
    logps, sums, counts = completion_logps(model, *args, chunk_rows=3, return_logit_sums=True)
    expected_sums, expected_counts = _reference_logit_sums(model, batch)
    assert torch.equal(logps, plain)
    assert torch.equal(counts, expected_counts.to(counts.dtype))
    assert counts.tolist()[1] == 0 and sums[1].item() == 0.0
    assert torch.allclose(sums.double(), expected_sums, atol=1e-5, rtol=1e-5)
    assert expected_sums.abs().max() > 1e-3  # a non-trivial value to compare
    assert not sums.requires_grad
    logps.sum().backward()  # the log-probs stay differentiable
    assert model.lm_head.weight.grad is not None


# the pair level, and the annotator level (whose metrics are gathered as sums)
@pytest.mark.parametrize(
    "options", [{"loss_type": "sigmoid"}, {"loss_type": "mixdpo", "strength_level": "annotator"}]
)
def test_logged_logits_metrics_are_token_weighted_means(
    tmp_path, hetero_train, word_tokenizer, options
):
    data = _pairs(hetero_train, 6, seed=31).select_columns(
        ["prompt", "chosen", "rejected", "annotator_id"]
    )
    trainer = MixDPOTrainer(
        tiny_causal_lm(len(word_tokenizer), hidden_size=48, seed=7),
        ref_model=tiny_causal_lm(len(word_tokenizer), hidden_size=48, seed=8),
        args=MixDPOConfig(output_dir=str(tmp_path), **options, **QUIET_RUN),
        train_dataset=data,
        processing_class=word_tokenizer,
    )
    batch = _batch(trainer, trainer.train_dataset)
    for column in trainer._extra_columns:  # the annotator level's batch columns
        batch[column] = torch.tensor(trainer.train_dataset[column])
    lengths = batch["completion_mask"].sum(1)
    assert len(set(lengths.tolist())) > 2  # unequal completions: token, not pair, weighting
    trainer.model.train()
    trainer.compute_loss(trainer.model, batch)
    sums, counts = _reference_logit_sums(trainer.model, batch)
    n = len(data)
    metrics = trainer._metrics["train"]
    expected_chosen = (sums[:n].sum() / counts[:n].sum()).item()
    expected_rejected = (sums[n:].sum() / counts[n:].sum()).item()
    assert metrics["logits/chosen"] == [pytest.approx(expected_chosen, abs=1e-6)]
    assert metrics["logits/rejected"] == [pytest.approx(expected_rejected, abs=1e-6)]
    # the per-pair mean of per-token means differs: the weighting is tested
    per_pair = (sums[:n] / counts[:n]).mean().item()
    assert abs(per_pair - expected_chosen) > 1e-6


def test_compute_metrics_gets_per_pair_predictions(tmp_path, hetero_train, word_tokenizer):
    shuffled = _pairs(hetero_train, 19, seed=47)
    train, held_out = shuffled.select(range(8)), shuffled.select(range(8, 19))
    beta = 0.25
    calls = []

    def compute_metrics(prediction):
        calls.append(prediction)
        rewards = prediction.predictions[:, :2]
        return {"pair_accuracy": float(np.mean(rewards[:, 0] > rewards[:, 1]))}

    trainer = MixDPOTrainer(
        tiny_causal_lm(len(word_tokenizer), hidden_size=48, seed=11),
        ref_model=tiny_causal_lm(len(word_tokenizer), hidden_size=48, seed=12),
        args=MixDPOConfig(
            output_dir=str(tmp_path),
            loss_type="sigmoid",
            beta=beta,
            per_device_eval_batch_size=4,  # 11 pairs: an uneven last batch
            **QUIET_RUN,
        ),
        train_dataset=train,
        eval_dataset=held_out,
        processing_class=word_tokenizer,
        compute_metrics=compute_metrics,
    )
    metrics = trainer.evaluate()
    assert len(calls) == 1
    prediction = calls[0]
    assert prediction.predictions.shape == (11, 6)
    assert prediction.predictions.dtype == np.float32
    assert np.array_equal(prediction.label_ids, np.ones(11, dtype=np.int64))
    assert trainer.prediction_columns[:2] == ("rewards/chosen", "rewards/rejected")

    # independent log-probs of every pair, in dataset order
    batch = _batch(trainer, trainer.eval_dataset)
    with torch.no_grad():
        policy = completion_logps(
            trainer.model, batch["input_ids"], batch["attention_mask"], batch["completion_mask"]
        )
        reference = completion_logps(
            trainer.ref_model,
            batch["input_ids"],
            batch["attention_mask"],
            batch["completion_mask"],
        )
    expected = torch.stack(
        [
            beta * (policy[:11] - reference[:11]),
            beta * (policy[11:] - reference[11:]),
            policy[:11],
            policy[11:],
            reference[:11],
            reference[11:],
        ],
        dim=1,
    ).numpy()
    np.testing.assert_allclose(prediction.predictions, expected, rtol=1e-5, atol=1e-5)
    assert np.abs(expected[:, :2]).max() > 1e-2  # policy and reference differ
    accuracy = float(np.mean(expected[:, 0] > expected[:, 1]))
    assert 0.0 < accuracy < 1.0
    assert metrics["eval_pair_accuracy"] == pytest.approx(accuracy)
    assert "eval_logits/chosen" in metrics and "eval_logits/rejected" in metrics

    # predict returns the same rows
    output = trainer.predict(trainer.eval_dataset)
    np.testing.assert_allclose(output.predictions, prediction.predictions, rtol=1e-6)


def test_compute_metrics_per_batch_with_batch_eval_metrics(tmp_path, hetero_train, word_tokenizer):
    data = _pairs(hetero_train, 10, seed=53)
    sizes = []

    def compute_metrics(prediction, compute_result):
        sizes.append(prediction.predictions.shape)
        return {"rows": float(sum(s[0] for s in sizes))} if compute_result else {}

    trainer = MixDPOTrainer(
        tiny_causal_lm(len(word_tokenizer), seed=13),
        args=MixDPOConfig(
            output_dir=str(tmp_path),
            per_device_eval_batch_size=4,
            batch_eval_metrics=True,
            **QUIET_RUN,
        ),
        train_dataset=data,
        eval_dataset=data,
        processing_class=word_tokenizer,
        compute_metrics=compute_metrics,
    )
    metrics = trainer.evaluate()
    assert [tuple(s) for s in sizes] == [(4, 6), (4, 6), (2, 6)]
    assert metrics["eval_rows"] == 10.0
