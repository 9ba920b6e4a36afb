"""alignment: MixDPO and DPO preference training with a learned preference-strength distribution.

Quick start::

    from alignment import MixDPOConfig, MixDPOTrainer, load_default_preferences

    args = MixDPOConfig(output_dir="out", strength_family="gamma", max_steps=100)
    trainer = MixDPOTrainer("smollm2", args=args, train_dataset=load_default_preferences())
    trainer.train()
    print(trainer.strength.constrained_parameters())
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Public name -> module; imported on first use so that `import alignment` stays light.
_LAZY_ATTRS: dict[str, str] = {
    "MixDPOConfig": "alignment.config",
    "STRENGTH_DEFAULTS": "alignment.config",
    "MixDPOTrainer": "alignment.trainer",
    "build_strength": "alignment.trainer",
    "load_strength": "alignment.trainer",
    "save_strength": "alignment.trainer",
    "strength_log_values": "alignment.trainer",
    "PreferenceCollator": "alignment.data",
    "tokenize_preference_dataset": "alignment.data",
    "validate_preference_dataset": "alignment.data",
    "completion_logps": "alignment.logprobs",
    "preference_margins": "alignment.metrics",
    "macro_micro_margins": "alignment.metrics",
    "load_default_preferences": "alignment.semisynthetic",
    "load_ground_truth": "alignment.semisynthetic",
    "make_preference_data": "alignment.semisynthetic",
    # the embedded pairs relabelled by annotator types (arXiv 2502.16320 baselines)
    "make_type_preference_data": "alignment.semisynthetic_types",
    "add_estimated_variance": "alignment.semisynthetic_types",
    "pair_alignment_accuracy": "alignment.semisynthetic_types",
    "AnnotatorType": "alignment.semisynthetic_types",
    "default_model_path": "alignment.models",
    "load_model": "alignment.models",
    "load_tokenizer": "alignment.models",
    "build_word_tokenizer": "alignment.models",
    "tiny_causal_lm": "alignment.models",
    "available_losses": "alignment.losses",
    "get_loss": "alignment.losses",
    "register_loss": "alignment.losses",
    "dpo_loss": "alignment.losses",
    "mixdpo_loss": "alignment.losses",
    "PreferenceLoss": "alignment.losses",
    "PairBatch": "alignment.losses",
    # real preference datasets (hub default, local files for tests)
    "load_prism": "alignment.hub_datasets",
    "load_community_alignment": "alignment.hub_datasets",
    "load_hh_rlhf": "alignment.hub_datasets",
    "PreferenceLoad": "alignment.hub_datasets",
    "clean_preference_rows": "alignment.hub_datasets",
    "split_by_key": "alignment.hub_datasets",
    # evaluation
    "evaluate_margins": "alignment.evaluation",
    "summarize_margins": "alignment.evaluation",
    "RewardJudge": "alignment.evaluation",
    "win_rate": "alignment.evaluation",
    "length_controlled_win_rate": "alignment.evaluation",
    "generate_responses": "alignment.evaluation",
    "compare_models": "alignment.evaluation",
    # fault tolerance
    "NonFiniteLossGuard": "alignment.callbacks",
    "NonFiniteLossError": "alignment.callbacks",
    "CheckpointCompleteMarker": "alignment.callbacks",
    "last_complete_checkpoint": "alignment.callbacks",
    "JsonlLogger": "alignment.callbacks",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY_ATTRS:
        return getattr(importlib.import_module(_LAZY_ATTRS[name]), name)
    raise AttributeError(f"module 'alignment' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY_ATTRS])


__all__ = ["__version__", *sorted(_LAZY_ATTRS)]
