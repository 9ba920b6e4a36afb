"""MixDPOTrainer on a tiny offline model: optimiser groups, logging, checkpoints, references."""

from __future__ import annotations

import math
import os

import pytest
import torch
from transformers import TrainerCallback

from alignment import MixDPOConfig, MixDPOTrainer, tiny_causal_lm
from alignment.losses import PairBatch, PreferenceLoss, register_loss
from alignment.trainer import STRENGTH_WEIGHTS_NAME, build_strength, strength_log_values


@pytest.fixture
def make_args(tiny_args):
    """The shared tiny-model settings with this module's strength learning rate."""
    return lambda output_dir, **overrides: tiny_args(
        output_dir, **{"strength_learning_rate": 0.05, **overrides}
    )


@pytest.fixture
def make_trainer(tiny_trainer):
    return lambda output_dir, tokenizer, data, **overrides: tiny_trainer(
        output_dir, tokenizer, data, **{"strength_learning_rate": 0.05, **overrides}
    )


@pytest.fixture(scope="module")
def small_train(hetero_train):
    return hetero_train.select(range(32))


def test_strength_group_logging_and_learned_rewards(
    make_trainer, tmp_path, word_tokenizer, small_train
):
    trainer = make_trainer(
        tmp_path, word_tokenizer, small_train, strength_family="gamma", max_steps=2
    )
    trainer.train()
    evaluation = trainer.evaluate(small_train.select(range(8)))
    assert {"eval_loss", "eval_rewards/margins", "eval_strength/cv"} <= set(evaluation)
    group = trainer.optimizer.param_groups[-1]
    assert group["lr"] == pytest.approx(0.05) and group["weight_decay"] == 0.0
    assert {id(p) for p in group["params"]} == {id(p) for p in trainer.strength.parameters()}
    assert trainer.strength.shape.item() != pytest.approx(2.0, abs=1e-6)  # it was trained
    logged = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logged) == 2
    keys = {
        "loss",
        "strength/mean",
        "strength/variance",
        "strength/cv",
        "strength/shape",
        "strength/rate",
        "rewards/chosen",
        "rewards/rejected",
        "rewards/accuracies",
        "rewards/margins",
    }
    assert keys <= set(logged[-1])
    assert logged[-1]["strength/cv"] == pytest.approx(1 / math.sqrt(logged[-1]["strength/shape"]))
    # Implicit rewards use the current learned mean strength, not a fixed beta.
    batch = trainer._prepare_inputs(
        trainer.data_collator([trainer.train_dataset[i] for i in range(8)])
    )
    trainer.model.eval()
    with torch.no_grad():
        trainer.compute_loss(trainer.model, batch)
        from alignment.logprobs import completion_logps

        policy = completion_logps(
            trainer.model, batch["input_ids"], batch["attention_mask"], batch["completion_mask"]
        )
        ref = completion_logps(
            trainer.ref_model, batch["input_ids"], batch["attention_mask"], batch["completion_mask"]
        )
    chosen_ratio = (policy - ref).chunk(2)[0]
    expected = float(trainer.strength.mean) * chosen_ratio.mean().item()
    assert trainer._metrics["eval"]["rewards/chosen"][-1] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(
    ("family", "names"),
    [
        ("lognormal", {"strength/loc", "strength/scale"}),
        ("fixed", {"strength/beta"}),
    ],
)
def test_frozen_or_fixed_strength_is_not_trained(
    make_trainer, tmp_path, word_tokenizer, small_train, family, names
):
    trainer = make_trainer(
        tmp_path,
        word_tokenizer,
        small_train.select(range(8)),
        strength_family=family,
        learn_strength=False,
        max_steps=1,
    )
    before = {k: float(v) for k, v in trainer.strength.constrained_parameters().items()}
    trainer.train()
    after = {k: float(v) for k, v in trainer.strength.constrained_parameters().items()}
    assert before == after
    assert len(trainer.optimizer.param_groups) == 2  # only the Trainer's decay/no-decay groups
    assert names <= set(trainer.state.log_history[0])


class _SnapshotStrengthAtTrainBegin(TrainerCallback):
    """Copies the strength and its optimiser state right after Trainer loaded the checkpoint."""

    def __init__(self):
        self.trainer = None
        self.values: dict[str, torch.Tensor] = {}
        self.optimizer_state: list[dict[str, torch.Tensor]] = []

    def on_train_begin(self, args, state, control, **kwargs):
        strength = self.trainer.strength
        self.values = {k: v.detach().clone() for k, v in strength.state_dict().items()}
        group = self.trainer.optimizer.param_groups[-1]
        # the last group must be the strength's parameters, in the module's order
        assert [id(p) for p in group["params"]] == [id(p) for p in strength.parameters()]
        self.optimizer_state = [
            {k: v.detach().clone() for k, v in self.trainer.optimizer.state[p].items()}
            for p in group["params"]
        ]


def test_checkpoint_resume_restores_strength_and_its_optimiser_state(
    make_trainer, tmp_path, word_tokenizer, small_train
):
    common = dict(strength_family="gamma", max_steps=4, save_strategy="steps", save_steps=2)
    full = make_trainer(tmp_path / "full", word_tokenizer, small_train, **common)
    full.train()
    checkpoint = tmp_path / "full" / "checkpoint-2"
    assert (checkpoint / STRENGTH_WEIGHTS_NAME).exists()
    assert (checkpoint / "strength_config.json").exists()
    saved_strength = torch.load(checkpoint / STRENGTH_WEIGHTS_NAME, weights_only=True)
    saved_optimizer = torch.load(checkpoint / "optimizer.pt", weights_only=True)
    strength_group = saved_optimizer["param_groups"][-1]
    assert strength_group["lr"] == pytest.approx(0.05)
    assert strength_group["weight_decay"] == 0.0
    strength_state = [saved_optimizer["state"][i] for i in strength_group["params"]]
    assert len(strength_state) == 2  # raw shape and raw rate
    assert all(s["exp_avg"].abs().sum() > 0 for s in strength_state)
    assert all(float(s["step"]) == 2 for s in strength_state)
    # the checkpoint holds the strength after 2 steps, not its initial value
    assert float(torch.nn.functional.softplus(saved_strength["raw_shape"])) != pytest.approx(2.0)

    snapshot = _SnapshotStrengthAtTrainBegin()
    resumed = make_trainer(tmp_path / "resumed", word_tokenizer, small_train, **common)
    resumed.add_callback(snapshot)
    snapshot.trainer = resumed
    resumed.train(resume_from_checkpoint=str(checkpoint))
    # Right after loading: the values equal those saved, parameter and optimiser state alike.
    assert snapshot.values.keys() == saved_strength.keys()
    for name, value in saved_strength.items():
        torch.testing.assert_close(snapshot.values[name], value, rtol=0, atol=0, msg=name)
    for loaded, saved in zip(snapshot.optimizer_state, strength_state, strict=True):
        assert loaded.keys() == saved.keys()
        for key in ("step", "exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(loaded[key], saved[key], rtol=0, atol=0, msg=key)
    # After the remaining steps: the same trajectory as the uninterrupted run.
    for name in ("shape", "rate"):
        assert float(getattr(resumed.strength, name)) == pytest.approx(
            float(getattr(full.strength, name)), rel=1e-6
        ), name
    state_full = full.optimizer.state_dict()
    state_resumed = resumed.optimizer.state_dict()
    for index in state_full["param_groups"][-1]["params"]:
        for key in ("step", "exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(
                state_resumed["state"][index][key], state_full["state"][index][key], msg=key
            )
    for (name, p_full), p_resumed in zip(
        full.model.named_parameters(), resumed.model.parameters(), strict=True
    ):
        torch.testing.assert_close(p_resumed, p_full, msg=name)
    # save_model writes the strength beside the weights
    resumed.save_model(str(tmp_path / "final"))
    assert os.path.exists(tmp_path / "final" / STRENGTH_WEIGHTS_NAME)


def test_precomputed_reference_gives_the_same_loss(
    make_args, tmp_path, word_tokenizer, small_train
):
    data = small_train.select(range(8))
    reference = tiny_causal_lm(len(word_tokenizer), seed=7)
    losses = []
    for precompute in (False, True):
        trainer = MixDPOTrainer(
            tiny_causal_lm(len(word_tokenizer), seed=0),
            ref_model=reference,
            args=make_args(
                tmp_path / str(precompute),
                precompute_ref_log_probs=precompute,
                strength_family="gamma",
            ),
            train_dataset=data,
            processing_class=word_tokenizer,
        )
        if precompute:
            assert "ref_chosen_logps" in trainer.train_dataset.column_names
        rows = [trainer.train_dataset[i] for i in range(8)]
        batch = trainer._prepare_inputs(trainer.data_collator(rows))
        losses.append(trainer.compute_loss(trainer.model, batch).item())
    assert losses[0] == pytest.approx(losses[1], abs=1e-6)
    assert abs(losses[0] - math.log(2)) > 1e-3


def test_peft_adapter_disabled_is_the_reference(make_args, tmp_path, word_tokenizer, small_train):
    peft = pytest.importorskip("peft")
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    trainer = MixDPOTrainer(
        tiny_causal_lm(len(word_tokenizer), seed=0),
        args=make_args(tmp_path, max_steps=2),
        train_dataset=small_train.select(range(16)),
        processing_class=word_tokenizer,
        peft_config=config,
    )
    assert trainer.ref_model is None
    trainer.train()
    first = trainer.state.log_history[0]
    assert first["loss"] == pytest.approx(math.log(2), abs=1e-6)  # LoRA starts as the identity
    assert trainer.state.log_history[1]["loss"] != pytest.approx(math.log(2), abs=1e-6)


def test_extra_columns_reach_a_registered_loss(make_trainer, tmp_path, word_tokenizer, small_train):
    seen = []

    @register_loss("test_records_gap", overwrite=True)
    class RecordsGap(PreferenceLoss):
        extra_columns = ("reward_gap",)
        uses_strength = False

        def __call__(self, batch: PairBatch) -> torch.Tensor:
            seen.append(batch.extras["reward_gap"].clone())
            return -torch.nn.functional.logsigmoid(batch.margin)

        def reward_scale(self, batch):
            return 1.0

    data = small_train.select(range(8))
    trainer = make_trainer(
        tmp_path, word_tokenizer, data, loss_type="test_records_gap", max_steps=1
    )
    assert "reward_gap" in trainer.train_dataset.column_names
    trainer.train()
    assert sorted(seen[0].tolist()) == sorted(float(g) for g in data["reward_gap"])
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['reward_gap'\]"):
        make_trainer(
            tmp_path,
            word_tokenizer,
            data.remove_columns("reward_gap"),
            loss_type="test_records_gap",
        )


def test_config_strength_family_defaults_and_point_mass_alias(tmp_path):
    from mixlogit.families import get_family

    gamma = MixDPOConfig(output_dir=str(tmp_path), strength_family="gamma")
    assert gamma.strength_parameters() == dict(get_family("gamma").defaults)
    moved = MixDPOConfig(
        output_dir=str(tmp_path), strength_family="lognormal", strength_init={"scale": 0.2}
    )
    assert moved.strength_parameters() == {"loc": -2.3, "scale": 0.2}
    # "fixed" is the point mass's old name: stored canonically, its beta is DPO's beta
    fixed = MixDPOConfig(output_dir=str(tmp_path), strength_family="fixed", beta=0.3)
    assert fixed.strength_family == "point_mass"
    assert fixed.strength_parameters() == {"beta": 0.3}
    assert build_strength(fixed).family == "point_mass"
    with pytest.raises(ValueError, match="strength_family must be one of"):
        MixDPOConfig(output_dir=str(tmp_path), strength_family="weibull")
    with pytest.raises(ValueError, match=r"strength_init keys \['loc'\] do not belong"):
        MixDPOConfig(output_dir=str(tmp_path), strength_family="gamma", strength_init={"loc": 0})
    with pytest.raises(ValueError, match="rate must be a positive"):
        MixDPOConfig(output_dir=str(tmp_path), strength_family="gamma", strength_init={"rate": -1})


def test_strength_log_values_are_the_family_moments():
    from mixlogit.torch import make_strength

    values = strength_log_values(make_strength("gamma", {"shape": 4.0, "rate": 8.0}))
    assert list(values) == [
        "strength/mean",
        "strength/variance",
        "strength/cv",
        "strength/shape",
        "strength/rate",
    ]
    # Gamma(4, 8): mean 4/8, variance 4/64, CV 1/sqrt(4)
    assert values["strength/mean"] == pytest.approx(0.5, rel=1e-6)
    assert values["strength/variance"] == pytest.approx(1 / 16, rel=1e-6)
    assert values["strength/cv"] == pytest.approx(0.5, rel=1e-6)
    point = strength_log_values(make_strength("point_mass", {"beta": 0.1}))
    assert point == pytest.approx(
        {"strength/mean": 0.1, "strength/variance": 0.0, "strength/cv": 0.0, "strength/beta": 0.1}
    )
