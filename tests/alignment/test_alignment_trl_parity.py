"""Parity with TRL's DPOTrainer (sigmoid loss) on the same tiny model and batch."""

from __future__ import annotations

import copy

import pytest
import torch

trl = pytest.importorskip("trl")

#: Agreement of float32 quantities that TRL and we reduce in different orders: float32
#: rounding (eps 1.2e-7) accumulated over the tokens and layers, not the last bit. The bounds
#: were 1e-6 absolute until the libraries resolved on 2026-12-02 (TRL 1.16.*, transformers
#: 5.24.*) moved TRL's values by up to 1.4e-5 relative and its gradients by 1.3e-6 (TRL's
#: loss is float32 even for a float64 model, so the gap is float32 rounding on its side; the
#: same tests fail at the previous commit with these libraries).
FLOAT32_RTOL = 5e-5
#: the same for gradient entries (absolute)
FLOAT32_GRAD_ATOL = 5e-6


def _pairs(dataset, n):
    return dataset.select(range(n)).select_columns(["prompt", "chosen", "rejected"])


def _trainers(tmp_path, base, reference, data, tokenizer, trl_options, our_options):
    """``(trl.DPOTrainer, MixDPOTrainer)`` on copies of the same policy and reference.

    ``trl_options`` and ``our_options`` are the keywords of ``trl.DPOConfig`` and
    ``MixDPOConfig`` beyond the output directory (TRL's with bf16 and gradient checkpointing
    off, its defaults on a GPU machine, so that both run the same float32 computation).
    """
    from alignment import MixDPOConfig, MixDPOTrainer

    trl_trainer = trl.DPOTrainer(
        model=copy.deepcopy(base),
        ref_model=copy.deepcopy(reference),
        args=trl.DPOConfig(
            output_dir=str(tmp_path / "trl"),
            bf16=False,
            gradient_checkpointing=False,
            **trl_options,
        ),
        train_dataset=data,
        processing_class=tokenizer,
    )
    ours = MixDPOTrainer(
        copy.deepcopy(base),
        ref_model=copy.deepcopy(reference),
        args=MixDPOConfig(output_dir=str(tmp_path / "ours"), **our_options),
        train_dataset=data,
        processing_class=tokenizer,
    )
    return trl_trainer, ours


@pytest.mark.parametrize("family", ["fixed-mixdpo", "dpo"])
def test_loss_and_gradients_match_trl_dpo(tmp_path, hetero_train, word_tokenizer, family):
    from alignment import tiny_causal_lm

    data = _pairs(hetero_train, 6)
    base = tiny_causal_lm(len(word_tokenizer), seed=3)
    common = dict(report_to="none", per_device_train_batch_size=6, disable_tqdm=True, beta=0.1)

    # A reference that is a *different* model from the policy, so the log-ratios are not zero.
    reference = tiny_causal_lm(len(word_tokenizer), seed=4)
    loss = {"loss_type": "dpo"}
    if family != "dpo":
        loss = {"loss_type": "mixdpo", "strength_family": "fixed"}
    trl_trainer, ours = _trainers(
        tmp_path,
        base,
        reference,
        data,
        word_tokenizer,
        {"max_length": None, **common},
        {**loss, "max_length": None, "max_prompt_length": None, **common},
    )
    trl_rows = [trl_trainer.train_dataset[i] for i in range(len(data))]
    our_rows = [ours.train_dataset[i] for i in range(len(data))]
    for a, b in zip(trl_rows, our_rows, strict=True):
        for key in ("prompt_ids", "chosen_ids", "rejected_ids"):
            assert a[key] == b[key]
    trl_batch = trl_trainer.data_collator(trl_rows)
    our_batch = ours.data_collator(our_rows)
    assert torch.equal(trl_batch["input_ids"], our_batch["input_ids"])
    assert torch.equal(trl_batch["completion_mask"], our_batch["completion_mask"])

    trl_model, our_model = trl_trainer.model, ours.model
    trl_model.train()
    our_model.train()
    trl_loss = trl_trainer.compute_loss(trl_model, trl_batch)
    trl_loss.backward()
    our_loss = ours.compute_loss(our_model, our_batch)
    our_loss.backward()
    # float32 losses summed over tokens in different orders: agreement to float32 rounding
    # (FLOAT32_RTOL), not to the last bit
    assert trl_loss.item() == pytest.approx(our_loss.item(), rel=FLOAT32_RTOL), (
        trl_loss.item(),
        our_loss.item(),
    )
    assert abs(trl_loss.item() - 0.6931) > 1e-3  # a non-trivial loss: the log-ratios differ
    trl_grads = dict(trl_model.named_parameters())
    worst = 0.0
    for name, param in our_model.named_parameters():
        other = trl_grads[name].grad
        assert param.grad is not None and other is not None, name
        worst = max(worst, (param.grad - other).abs().max().item())
    assert worst <= FLOAT32_GRAD_ATOL, worst
    # The metrics use the same implicit rewards as TRL's.
    metrics = ours._metrics["train"]
    trl_metrics = trl_trainer._metrics["train"]
    for key in ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"):
        assert metrics[key][-1] == pytest.approx(
            trl_metrics[key][-1], rel=FLOAT32_RTOL, abs=1e-7
        ), key


# TRL 1.16 loss configurations and the same losses here (names, lists with weights, smoothing).
_TRL_LOSSES = {
    "sigmoid": ({"loss_type": ["sigmoid"]}, {"loss_type": "sigmoid"}),
    "hinge": ({"loss_type": ["hinge"]}, {"loss_type": "hinge"}),
    "ipo": ({"loss_type": ["ipo"]}, {"loss_type": "ipo"}),
    "robust": (
        {"loss_type": ["robust"], "label_smoothing": 0.2},
        {"loss_type": "robust", "label_smoothing": 0.2},
    ),
    "sft": ({"loss_type": ["sft"]}, {"loss_type": "sft"}),
    "sigmoid+sft": (
        {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, 0.3]},
        {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, 0.3]},
    ),
}


@pytest.mark.parametrize("name", sorted(_TRL_LOSSES))
def test_trl_loss_names_match_trl(tmp_path, hetero_train, word_tokenizer, name):
    """TRL's loss names (and a weighted list) give TRL's loss and gradients on the same batch."""
    from alignment import tiny_causal_lm

    trl_options, our_options = _TRL_LOSSES[name]
    data = _pairs(hetero_train.shuffle(seed=11), 6)  # a fresh draw of rows, not the first six
    base = tiny_causal_lm(len(word_tokenizer), seed=5)
    reference = tiny_causal_lm(len(word_tokenizer), seed=6)
    common = dict(report_to="none", per_device_train_batch_size=6, disable_tqdm=True, beta=0.3)
    trl_trainer, ours = _trainers(
        tmp_path,
        base,
        reference,
        data,
        word_tokenizer,
        {**trl_options, **common},
        {**our_options, **common},
    )
    rows = [ours.train_dataset[i] for i in range(len(data))]
    batch = ours.data_collator(rows)
    trl_batch = trl_trainer.data_collator([trl_trainer.train_dataset[i] for i in range(len(data))])
    assert torch.equal(trl_batch["input_ids"], batch["input_ids"])
    losses, grads = [], []
    for trainer, inputs in ((trl_trainer, trl_batch), (ours, batch)):
        trainer.model.train()
        loss = trainer.compute_loss(trainer.model, inputs)
        loss.backward()
        losses.append(loss.item())
        grads.append({n: p.grad for n, p in trainer.model.named_parameters()})
    assert losses[1] == pytest.approx(losses[0], rel=FLOAT32_RTOL), losses
    worst = max((grads[1][n] - grads[0][n]).abs().max().item() for n in grads[0])
    assert worst <= FLOAT32_GRAD_ATOL, worst
    if name != "sft":  # TRL logs beta * log-ratio as the rewards for every loss
        for key in ("rewards/chosen", "rewards/margins"):
            ours_value = ours._metrics["train"][key][-1]
            theirs = trl_trainer._metrics["train"][key][-1]
            assert ours_value == pytest.approx(theirs, rel=FLOAT32_RTOL, abs=1e-7)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_logits_metrics_match_trl(tmp_path, hetero_train, word_tokenizer, mode):
    """``logits/chosen``, ``logits/rejected`` (and ``logps/*``) equal TRL's on the same batch,
    in training and in evaluation (MixDPO loss: the metrics do not depend on the loss)."""
    from alignment import tiny_causal_lm

    data = _pairs(hetero_train.shuffle(seed=29), 7)
    base = tiny_causal_lm(len(word_tokenizer), hidden_size=48, seed=9)
    with torch.no_grad():  # vocabulary-mean logits of order 1, not the init's ~1e-3
        base.lm_head.weight.add_(0.05)
    reference = tiny_causal_lm(len(word_tokenizer), hidden_size=48, seed=10)
    common = dict(report_to="none", per_device_train_batch_size=7, disable_tqdm=True)
    trl_trainer, ours = _trainers(
        tmp_path, base, reference, data, word_tokenizer, common, {"loss_type": "mixdpo", **common}
    )
    batch = ours.data_collator([ours.train_dataset[i] for i in range(len(data))])
    trl_batch = trl_trainer.data_collator([trl_trainer.train_dataset[i] for i in range(len(data))])
    assert torch.equal(trl_batch["input_ids"], batch["input_ids"])
    assert torch.equal(trl_batch["completion_mask"], batch["completion_mask"])
    for trainer, inputs in ((trl_trainer, trl_batch), (ours, batch)):
        trainer.model.train(mode == "train")
        with torch.no_grad():
            trainer.compute_loss(trainer.model, inputs)
    theirs, metrics = trl_trainer._metrics[mode], ours._metrics[mode]
    for key in ("logits/chosen", "logits/rejected", "logps/chosen", "logps/rejected"):
        assert len(metrics[key]) == 1, key
        assert metrics[key][0] == pytest.approx(theirs[key][-1], rel=1e-5, abs=1e-8), key
    assert metrics["logits/chosen"][0] != pytest.approx(metrics["logits/rejected"][0], abs=1e-6)
