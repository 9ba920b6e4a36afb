"""alignment: MixDPO and DPO preference training with a learned preference-strength distribution.

Quick start::

    from alignment import MixDPOConfig, MixDPOTrainer, load_default_preferences

    args = MixDPOConfig(output_dir="out", strength_family="gamma", max_steps=100)
    trainer = MixDPOTrainer("smollm2", args=args, train_dataset=load_default_preferences())
    trainer.train()
    print(trainer.strength.constrained_parameters())

Everything else lives in the sub-modules: :mod:`alignment.datasets` (loaders and generators),
:mod:`alignment.losses` (the loss registry, heterogeneous-preference baselines),
:mod:`alignment.callbacks` (fault tolerance, JSONL logging), :mod:`alignment.trainer`
(strength save/load), :mod:`alignment.data` (tokenisation and collation),
:mod:`alignment.policy_models` (LLM loading), :mod:`alignment.evaluation`, :mod:`alignment.cli`
(the ``mixdpo`` command). Names are imported on first use, so ``import alignment`` stays light.
"""

from __future__ import annotations

from mixlogit._lazy import lazy_exports, names_by_module
from mixlogit._version import __version__

# Public name -> module.
_LAZY_ATTRS: dict[str, str] = {
    # training
    "MixDPOConfig": "alignment.config",
    "MixDPOTrainer": "alignment.trainer",
    # losses
    "PairBatch": "alignment.losses",
    "PreferenceLoss": "alignment.losses",
    "dpo_loss": "alignment.losses",
    "get_loss": "alignment.losses",
    "mixdpo_loss": "alignment.losses",
    "register_loss": "alignment.losses",
    # data
    "load_community_alignment": "alignment.datasets.hub_datasets",
    "load_default_preferences": "alignment.datasets.shipped",
    "load_hh_rlhf": "alignment.datasets.hub_datasets",
    "load_prism": "alignment.datasets.hub_datasets",
    "make_preference_data": "alignment.datasets.semisynthetic",
    "make_type_preference_data": "alignment.datasets.semisynthetic_types",
    # models
    "build_word_tokenizer": "alignment.policy_models",
    "load_model": "alignment.policy_models",
    "load_tokenizer": "alignment.policy_models",
    "tiny_causal_lm": "alignment.policy_models",
    # evaluation
    "RewardJudge": "alignment.evaluation",
    "compare_models": "alignment.evaluation",
    "evaluate_margins": "alignment.evaluation",
    "preference_margins": "alignment.evaluation",
    "summarize_margins": "alignment.evaluation",
    "win_rate": "alignment.evaluation",
}

# Exported by the 0.1 release; importable from here (with a DeprecationWarning) for one more.
# (STRENGTH_DEFAULTS is gone: the defaults are mixlogit.families.get_family(name).defaults.)
_DEPRECATED: dict[str, str] = {
    **names_by_module(
        {
            "alignment.trainer": (
                "build_strength",
                "load_strength",
                "save_strength",
                "strength_log_values",
            ),
            "alignment.data": (
                "PreferenceCollator",
                "tokenize_preference_dataset",
                "validate_preference_dataset",
            ),
            "alignment.logprobs": ("completion_logps",),
            "alignment.losses": ("available_losses",),
            "alignment.datasets.shipped": ("load_ground_truth",),
            "alignment.datasets.semisynthetic_types": (
                "add_estimated_variance",
                "pair_alignment_accuracy",
                "AnnotatorType",
            ),
            "alignment.policy_models": ("default_model_path",),
            "alignment.datasets.hub_datasets": (
                "PreferenceLoad",
                "clean_preference_rows",
                "split_by_key",
            ),
            "alignment.evaluation": (
                "length_controlled_win_rate",
                "generate_responses",
            ),
            "alignment.callbacks": (
                "NonFiniteLossGuard",
                "NonFiniteLossError",
                "CheckpointCompleteMarker",
                "last_complete_checkpoint",
                "JsonlLogger",
            ),
        }
    ),
    "macro_micro_margins": "alignment.metrics:micro_macro_margins",  # renamed
}

__getattr__, __dir__ = lazy_exports(__name__, _LAZY_ATTRS, deprecated=_DEPRECATED)

__all__ = ["__version__", *sorted(_LAZY_ATTRS)]
