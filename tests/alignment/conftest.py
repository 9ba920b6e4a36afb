"""Shared fixtures for the alignment tests: the embedded data and a tiny offline model."""

from __future__ import annotations

import pytest

from alignment.config import QUIET_RUN


@pytest.fixture(scope="session")
def hetero_train():
    from alignment.datasets.shipped import load_default_preferences

    return load_default_preferences("heterogeneous", "train")


@pytest.fixture(scope="session")
def word_tokenizer(hetero_train):
    from alignment.policy_models import build_word_tokenizer

    texts = [*hetero_train["prompt"], *hetero_train["chosen"], *hetero_train["rejected"]]
    return build_word_tokenizer(texts)


#: Trainer settings shared by the tests that train the tiny model (one place for all of them).
TINY_TRAINING = dict(
    QUIET_RUN,
    per_device_train_batch_size=8,
    per_device_eval_batch_size=8,
    learning_rate=1e-2,
    lr_scheduler_type="constant",
    logging_steps=1,
    seed=0,
)


@pytest.fixture(scope="session")
def tiny_args():
    """``tiny_args(output_dir, **overrides)``: a MixDPOConfig with :data:`TINY_TRAINING`."""
    from alignment import MixDPOConfig

    def make(output_dir, **overrides):
        return MixDPOConfig(output_dir=str(output_dir), **{**TINY_TRAINING, **overrides})

    return make


@pytest.fixture(scope="session")
def tiny_trainer(tiny_args):
    """``tiny_trainer(output_dir, tokenizer, data, **overrides)``: a MixDPOTrainer of a fresh
    tiny Llama (seed 0) on ``data``."""
    from alignment import MixDPOTrainer, tiny_causal_lm

    def make(output_dir, tokenizer, data, **overrides):
        return MixDPOTrainer(
            tiny_causal_lm(len(tokenizer), seed=0),
            args=tiny_args(output_dir, **overrides),
            train_dataset=data,
            processing_class=tokenizer,
        )

    return make


#: The CLI run of the multi-process tests (torchrun, gloo): tiny model, 32 pairs, 4 steps, the
#: Gamma strength (an exact marginal: no draws that differ by rank).
MULTIPROCESS_RUN = {
    "model": "tiny",
    "data": {"max_train_pairs": 32},
    "eval": {"after_train": False},
    "training": {
        "max_steps": 4,
        "save_strategy": "no",
        "learning_rate": 0.01,
        "strength_learning_rate": 0.05,
        "strength_family": "gamma",
        "disable_tqdm": True,
        "dataloader_pin_memory": False,
        "use_cpu": True,
    },
}


@pytest.fixture
def multiprocess_config(tmp_path):
    """``multiprocess_config(**training)``: :data:`MULTIPROCESS_RUN` with these training
    settings, written to ``tmp_path / "run.yaml"`` (its path is returned)."""
    import yaml

    def make(**training):
        config = {**MULTIPROCESS_RUN, "training": {**MULTIPROCESS_RUN["training"], **training}}
        path = tmp_path / "run.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    return make
