"""MixDPOTrainer / MixDPOConfig as a drop-in for TRL 1.16 users: defaults, over-long rows,
ignored options, the reference of a pretrained adapter, seeding, deterministic evaluation,
TRL's loss options and implicit-prompt data."""

from __future__ import annotations

import copy
import logging
import math
import warnings

import pytest
import torch

from alignment import MixDPOConfig, MixDPOTrainer, tiny_causal_lm

trl = pytest.importorskip("trl")


def _pairs(dataset, n, seed=21):
    return (
        dataset.shuffle(seed=seed).select(range(n)).select_columns(["prompt", "chosen", "rejected"])
    )


def _trl_and_ours(tmp_path, data, tokenizer, **options):
    """``(trl.DPOTrainer, MixDPOTrainer)`` on ``data`` with the same options (e.g.
    ``max_length``): each gets its own tiny policy (seed 0) and reference (seed 1)."""
    vocab = len(tokenizer)
    theirs = trl.DPOTrainer(
        model=tiny_causal_lm(vocab, seed=0),
        ref_model=tiny_causal_lm(vocab, seed=1),
        args=trl.DPOConfig(
            output_dir=str(tmp_path / "trl"),
            report_to="none",
            bf16=False,
            gradient_checkpointing=False,
            disable_tqdm=True,
            **options,
        ),
        train_dataset=data,
        processing_class=tokenizer,
    )
    ours = MixDPOTrainer(
        tiny_causal_lm(vocab, seed=0),
        ref_model=tiny_causal_lm(vocab, seed=1),
        args=MixDPOConfig(output_dir=str(tmp_path / "ours"), report_to="none", **options),
        train_dataset=data,
        processing_class=tokenizer,
    )
    return theirs, ours


# ----------------------------------------------------------------------------- silent differences
def test_length_defaults_are_trls(tmp_path):
    ours = MixDPOConfig(output_dir=str(tmp_path))
    theirs = trl.DPOConfig(output_dir=str(tmp_path), bf16=False)
    assert ours.max_length == theirs.max_length == 1024
    assert ours.max_prompt_length is None  # TRL has no prompt limit
    assert ours.truncation_mode == theirs.truncation_mode == "keep_start"
    with pytest.raises(ValueError, match="truncation_mode='keep_end' is not supported"):
        MixDPOConfig(output_dir=str(tmp_path), truncation_mode="keep_end")


def test_over_long_rows_are_dropped_and_truncated_as_trl_does_and_counted(
    tmp_path, hetero_train, word_tokenizer, caplog
):
    data = _pairs(hetero_train, 12)
    prompt_lengths = sorted(len(word_tokenizer(p)["input_ids"]) for p in data["prompt"])
    max_length = prompt_lengths[4] + 1  # some prompts fill it, most completions are cut
    caplog.set_level(logging.WARNING, logger="alignment.data")
    theirs, ours = _trl_and_ours(tmp_path, data, word_tokenizer, max_length=max_length)
    kept = len(theirs.train_dataset)
    assert 0 < kept < len(data)
    assert len(ours.train_dataset) == kept
    ours_batch = ours.data_collator([ours.train_dataset[i] for i in range(kept)])
    trl_batch = theirs.data_collator([theirs.train_dataset[i] for i in range(kept)])
    for key in ("input_ids", "attention_mask", "completion_mask"):
        assert torch.equal(ours_batch[key], trl_batch[key]), key
    cut = sum(
        1
        for row in theirs.train_dataset
        if len(row["prompt_ids"]) + max(len(row["chosen_ids"]), len(row["rejected_ids"]))
        > max_length
    )
    assert cut > 0
    message = " ".join(r.getMessage() for r in caplog.records if r.name == "alignment.data")
    assert f"of {len(data)} rows, 0 had the prompt cut" in message
    assert f"{cut} had a completion cut to fit max_length={max_length}" in message
    assert f"and {len(data) - kept} were dropped" in message


def _warnings_of(make):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make()
    return [str(w.message) for w in caught if "has no effect" in str(w.message)]


def test_beta_and_label_smoothing_ignored_by_the_loss_warn(
    tmp_path, hetero_train, word_tokenizer, tiny_args
):
    data = _pairs(hetero_train, 8)

    def make(**overrides):
        return lambda: MixDPOTrainer(
            tiny_causal_lm(len(word_tokenizer), seed=0),
            args=tiny_args(tmp_path, **overrides),
            train_dataset=data,
            processing_class=word_tokenizer,
        )

    (message,) = _warnings_of(make(beta=5.0))  # the default loss, mixdpo with a LogNormal
    assert "beta=5.0 has no effect on loss_type='mixdpo'" in message
    assert "strength_init" in message
    assert _warnings_of(make(beta=5.0, loss_type="sigmoid")) == []
    assert _warnings_of(make(beta=5.0, strength_family="point_mass")) == []
    assert _warnings_of(make(beta=5.0, loss_type=["sigmoid", "sft"])) == []
    (message,) = _warnings_of(make(label_smoothing=0.1, loss_type="sigmoid"))
    assert "label_smoothing=0.1 has no effect on loss_type='sigmoid'" in message
    assert _warnings_of(make(label_smoothing=0.1, loss_type="robust")) == []


def test_pretrained_peft_adapter_is_its_own_reference(
    tmp_path, hetero_train, word_tokenizer, tiny_args
):
    peft = pytest.importorskip("peft")
    torch.manual_seed(7)
    model = peft.get_peft_model(
        tiny_causal_lm(len(word_tokenizer), seed=0),
        peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
    )
    with torch.no_grad():  # a trained adapter: lora_B is no longer zero
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.5)
    trainer = MixDPOTrainer(
        model,
        args=tiny_args(tmp_path, max_steps=2, loss_type="dpo"),
        train_dataset=_pairs(hetero_train, 16),
        processing_class=word_tokenizer,
    )
    assert trainer.ref_model is None
    reference = {n: p.detach().clone() for n, p in model.named_parameters() if ".ref." in n}
    assert reference and not any(
        p.requires_grad for n, p in model.named_parameters() if ".ref." in n
    )
    trainer.train()
    # The policy starts equal to its reference, as in TRL (the base model gave 0.6999 here).
    assert trainer.state.log_history[0]["loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert trainer.state.log_history[1]["loss"] != pytest.approx(math.log(2), abs=1e-6)
    for name, param in model.named_parameters():
        if ".ref." in name:
            assert torch.equal(param, reference[name]), name  # the reference stayed frozen
        if ".default." in name and "lora_A" in name:
            assert param.requires_grad, name


def test_lora_initialisation_follows_args_seed(tmp_path, hetero_train, word_tokenizer, tiny_args):
    peft = pytest.importorskip("peft")
    data = _pairs(hetero_train, 8)

    def lora_a(seed, global_state):
        torch.manual_seed(global_state)  # whatever ran before the trainer
        trainer = MixDPOTrainer(
            tiny_causal_lm(len(word_tokenizer), seed=0),
            args=tiny_args(tmp_path, seed=seed),
            train_dataset=data,
            processing_class=word_tokenizer,
            peft_config=peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
        )
        return torch.cat(
            [p.flatten() for n, p in trainer.model.named_parameters() if "lora_A" in n]
        )

    assert torch.equal(lora_a(3, 100), lora_a(3, 200))
    assert not torch.equal(lora_a(3, 100), lora_a(4, 100))


def test_evaluation_with_monte_carlo_strength_is_deterministic(
    tmp_path, hetero_train, word_tokenizer, tiny_args
):
    data = _pairs(hetero_train, 16, seed=5)
    trainer = MixDPOTrainer(
        tiny_causal_lm(len(word_tokenizer), seed=0),
        ref_model=tiny_causal_lm(len(word_tokenizer), seed=1),  # non-zero margins
        args=tiny_args(tmp_path, strength_init={"scale": 1.0}),
        train_dataset=data,
        eval_dataset=data,
        processing_class=word_tokenizer,
    )
    assert trainer.args.strength_family == "lognormal" and trainer.args.lognormal_method == "mc"
    first = trainer.evaluate()["eval_loss"]
    second = trainer.evaluate()["eval_loss"]  # the global RNG has moved on in between
    assert first == second
    # ... and it is still a Monte Carlo estimate: another seed gives other draws.
    trainer.args.seed = 1
    assert trainer.evaluate()["eval_loss"] != first


# ----------------------------------------------------------------------------- TRL's loss options
def test_trl_loss_options_are_checked(tmp_path):
    with pytest.raises(ValueError, match="loss_weights has 1 weights for 2 losses"):
        MixDPOConfig(output_dir=str(tmp_path), loss_type=["sigmoid", "sft"], loss_weights=[1.0])
    with pytest.raises(ValueError, match=r"label_smoothing .* \[0, 0.5\), got 0.5"):
        MixDPOConfig(output_dir=str(tmp_path), loss_type="robust", label_smoothing=0.5)
    with pytest.raises(ValueError, match="repeated losses"):
        MixDPOConfig(output_dir=str(tmp_path), loss_type=["sigmoid", "sigmoid"])
    assert MixDPOConfig(output_dir=str(tmp_path), loss_type=["ipo"]).loss_type == "ipo"


def test_mixdpo_with_an_sft_term(tmp_path, hetero_train, word_tokenizer, tiny_args):
    """MixDPO plus TRL's NLL term: the weighted sum of the two losses on the same batch."""
    data = _pairs(hetero_train, 8)
    reference = tiny_causal_lm(len(word_tokenizer), seed=1)

    def loss(**overrides):
        trainer = MixDPOTrainer(
            tiny_causal_lm(len(word_tokenizer), seed=0),
            ref_model=copy.deepcopy(reference),
            args=tiny_args(tmp_path, strength_family="gamma", **overrides),
            train_dataset=data,
            processing_class=word_tokenizer,
        )
        batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(data))])
        return trainer.compute_loss(trainer.model, batch).item()

    mixed = loss(loss_type=["mixdpo", "sft"], loss_weights=[1.0, 0.25])
    assert mixed == pytest.approx(loss() + 0.25 * loss(loss_type="sft"), abs=1e-6)


# ----------------------------------------------------------------------------- missing inputs
_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} ; {% endfor %}"
    "{% if add_generation_prompt %}assistant : {% endif %}"
)


@pytest.mark.parametrize("kind", ["text", "messages"])
def test_implicit_prompt_datasets_tokenise_as_trl(tmp_path, hetero_train, word_tokenizer, kind):
    from datasets import Dataset

    rows = _pairs(hetero_train, 6, seed=9).to_list()
    if kind == "text":
        implicit = [
            {
                "chosen": r["prompt"] + " " + r["chosen"],
                "rejected": r["prompt"] + " " + r["rejected"],
            }
            for r in rows
        ]
    else:
        implicit = [
            {
                side: [
                    {"role": "user", "content": r["prompt"].strip()},
                    {"role": "assistant", "content": r[side]},
                ]
                for side in ("chosen", "rejected")
            }
            for r in rows
        ]
    data = Dataset.from_list(implicit)
    tokenizer = copy.deepcopy(word_tokenizer)
    tokenizer.chat_template = _TEMPLATE
    theirs, ours = _trl_and_ours(tmp_path, data, tokenizer)
    assert len(ours.train_dataset) == len(theirs.train_dataset) == len(rows)
    for i in range(len(rows)):
        for key in ("prompt_ids", "chosen_ids", "rejected_ids"):
            assert ours.train_dataset[i][key] == theirs.train_dataset[i][key], (i, key)
    assert ours.train_dataset[0]["prompt"] == theirs.train_dataset[0]["prompt"]


def test_iterable_dataset_trains_and_matches_the_map_style_tokens(
    tmp_path, hetero_train, word_tokenizer, tiny_args
):
    data = _pairs(hetero_train, 12, seed=13)
    prompt_lengths = sorted(len(word_tokenizer(p)["input_ids"]) for p in data["prompt"])
    options = dict(max_steps=2, max_length=prompt_lengths[2] + 1)  # drops a few rows

    def trainer(train):
        return MixDPOTrainer(
            tiny_causal_lm(len(word_tokenizer), seed=0),
            args=tiny_args(tmp_path, per_device_train_batch_size=4, **options),
            train_dataset=train,
            processing_class=word_tokenizer,
        )

    streamed = trainer(data.to_iterable_dataset())
    mapped = trainer(data)
    columns = ["prompt_ids", "chosen_ids", "rejected_ids"]
    assert [{c: r[c] for c in columns} for r in streamed.train_dataset] == [
        {c: r[c] for c in columns} for r in mapped.train_dataset
    ]
    assert 0 < len(mapped.train_dataset) < len(data)
    streamed.train()
    assert streamed.state.global_step == 2
    bad = data.to_list()
    bad[3]["rejected"] = bad[3]["chosen"]
    from datasets import Dataset

    with pytest.raises(ValueError, match="train_dataset row 3: chosen and rejected are identical"):
        trainer(Dataset.from_list(bad).to_iterable_dataset())


def test_model_object_without_processing_class_loads_its_tokenizer(
    tmp_path, hetero_train, word_tokenizer, tiny_args
):
    from transformers import AutoModelForCausalLM

    tiny_causal_lm(len(word_tokenizer), seed=0).save_pretrained(tmp_path / "model")
    word_tokenizer.save_pretrained(tmp_path / "model")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    trainer = MixDPOTrainer(model, args=tiny_args(tmp_path), train_dataset=_pairs(hetero_train, 4))
    assert trainer.processing_class.get_vocab() == word_tokenizer.get_vocab()
    with pytest.raises(ValueError, match="not loaded from a checkpoint"):
        MixDPOTrainer(
            tiny_causal_lm(len(word_tokenizer), seed=0),
            args=tiny_args(tmp_path),
            train_dataset=_pairs(hetero_train, 4),
        )
