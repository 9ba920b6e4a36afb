"""``mixdpo``: train, evaluate and compare MixDPO/DPO runs from a YAML/JSON config.

Usage::

    mixdpo train   --config run.yaml [--set training.max_steps=200 --set data.name=prism ...]
    mixdpo eval    --config run.yaml [--set eval.checkpoint=runs/x/checkpoints/checkpoint-100]
    mixdpo compare --config run.yaml --set compare.model_b=runs/dpo/final

(or ``python -m alignment.cli ...``). A run directory (``run_dir``) holds ``config.yaml`` (the
resolved config), ``logs.jsonl`` (one record per logging step), ``checkpoints/checkpoint-N``
(model, strength, optimiser, scheduler, RNG, data position; ``COMPLETE`` once fully written),
``final/`` (model, tokenizer, strength), ``data_report.json`` (pair counts and dropped rows),
``metrics.json``, ``margins.csv`` (per-pair held-out margins with subgroup columns),
``eval_metrics.json`` and ``compare.json``. ``train`` resumes from the last complete checkpoint
by default (``resume: auto``); a non-finite loss stops it with exit code 3.

Config keys (defaults in :data:`DEFAULT_CONFIG`): ``run_dir``; ``model`` (``"smollm2"``, a hub id
or path, or ``"tiny"`` for a tiny random Llama with a word tokenizer built from the data, for
tests); ``tiny_model``; ``data`` (``name``: ``default``/``prism``/``community_alignment``/
``hh_rlhf``, ``path``, ``survey``, ``kind``, ``split_by``, ``test_fraction``, ``seed``,
``max_train_pairs``, ``max_eval_pairs``, ...); ``training`` (any :class:`MixDPOConfig` field;
``output_dir`` is ``run_dir/checkpoints``); ``resume``; ``eval``; ``compare``.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_CONFIG",
    "build_data",
    "load_config",
    "main",
    "run_compare",
    "run_eval",
    "run_train",
]

DEFAULT_CONFIG: dict[str, Any] = {
    "run_dir": "runs/mixdpo",
    "model": "smollm2",
    "tiny_model": {"hidden_size": 32, "num_layers": 2, "num_heads": 4, "seed": 0},
    "data": {
        "name": "default",
        "kind": "heterogeneous",
        "path": None,
        "survey": None,
        "data_dir": None,
        "language": "en",
        "split_by": "annotator",
        "test_fraction": 0.2,
        "seed": 0,
        "max_train_pairs": None,
        "max_eval_pairs": None,
        "drop_long_prompts": False,
    },
    "training": {
        "report_to": "none",
        "logging_steps": 1,
        "save_strategy": "steps",
        "save_steps": 50,
        "max_steps": 100,
        "per_device_train_batch_size": 8,
        "per_device_eval_batch_size": 8,
        "seed": 0,
        # The trainer applies the LM head outside the DDP-wrapped forward (chunked log-probs):
        # DDP's unused-parameter search would mark lm_head ready twice.
        "ddp_find_unused_parameters": False,
    },
    "resume": "auto",
    "eval": {"checkpoint": None, "by": None, "batch_size": 16, "after_train": True},
    "compare": {
        "model_a": None,
        "model_b": None,
        "num_prompts": 16,
        "max_new_tokens": 64,
        "judge": "semisynthetic",
        "length_controlled": True,
        "swap_positions": False,
    },
}

# Columns of the loaders that are identifiers or numbers, not subgroups.
_NOT_SUBGROUPS = {
    "prompt", "chosen", "rejected", "annotator_id", "conversation_id", "turn", "pair_id",
    "annotator_index", "reward_chosen", "reward_rejected", "reward_gap", "label_probability",
    "true_strength", "topic",
}  # fmt: skip
EXIT_NON_FINITE = 3
# Config keys of the 0.1 release -> their names now (accepted with a DeprecationWarning).
_RENAMED_KEYS = {"eval.subgroup_columns": "eval.by"}


# ----------------------------------------------------------------------------- config
def _merge(base: dict[str, Any], update: dict[str, Any], where: str = "") -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in update.items():
        if f"{where}{key}" in _RENAMED_KEYS:
            new = _RENAMED_KEYS[f"{where}{key}"]
            warnings.warn(
                f"config key {where}{key} is deprecated and will be removed in the next "
                f"release; use {new}",
                DeprecationWarning,
                stacklevel=2,
            )
            key = new.removeprefix(where)
        if isinstance(out.get(key), dict) and isinstance(value, dict) and key != "training":
            out[key] = _merge(out[key], value, f"{where}{key}.")
        elif isinstance(out.get(key), dict) and isinstance(value, dict):
            out[key] = {**out[key], **value}
        elif where == "" and key not in out:
            raise ValueError(f"unknown config key {key!r}; known: {sorted(out)}")
        elif where and key not in out and not where.startswith("training."):
            raise ValueError(f"unknown config key {where}{key!r}; known: {sorted(out)}")
        else:
            out[key] = value
    return out


def _parse_override(text: str) -> dict[str, Any]:
    import yaml

    if "=" not in text:
        raise ValueError(f"--set expects key=value, got {text!r}")
    key, raw = text.split("=", 1)
    value = yaml.safe_load(raw) if raw else None
    nested: dict[str, Any] = {}
    node = nested
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return nested


def load_config(path: str | os.PathLike | None, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Defaults, then the YAML/JSON file at ``path``, then ``key.sub=value`` overrides."""
    import yaml

    config = copy.deepcopy(DEFAULT_CONFIG)
    if path is not None:
        text = Path(path).read_text()
        loaded = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: the config must be a mapping, got {type(loaded).__name__}")
        config = _merge(config, loaded)
    for override in overrides:
        config = _merge(config, _parse_override(override))
    return config


# ----------------------------------------------------------------------------- data and models
def build_data(config: dict[str, Any], tokenizer: Any = None) -> tuple[Any, Any, dict[str, Any]]:
    """``(train, test, report)`` for ``config["data"]``; report has sizes and dropped counts."""
    from alignment.datasets import hub_datasets

    data = config["data"]
    name = data["name"]
    limit = config["training"].get("max_prompt_length", 64) if data["drop_long_prompts"] else None
    common = {
        "test_fraction": data["test_fraction"],
        "seed": data["seed"],
        "tokenizer": tokenizer if limit else None,
        "max_prompt_length": limit,
    }
    dropped: dict[str, int] = {}
    if name == "default":
        from datasets import Dataset

        from alignment.datasets.shipped import load_default_preferences

        train = load_default_preferences(data["kind"], "train")
        test = load_default_preferences(data["kind"], "test")
        if common["max_prompt_length"] is not None:
            for split in ("train", "test"):
                rows, counts = hub_datasets.clean_preference_rows(
                    (train if split == "train" else test).to_list(),
                    tokenizer=tokenizer,
                    max_prompt_length=common["max_prompt_length"],
                )
                for reason, count in counts.items():
                    dropped[reason] = dropped.get(reason, 0) + count
                if split == "train":
                    train = Dataset.from_list(rows)
                else:
                    test = Dataset.from_list(rows)
    elif name in ("prism", "community_alignment", "hh_rlhf"):
        if name == "prism":
            load = hub_datasets.load_prism(
                data["path"] or hub_datasets.PRISM_HUB,
                data["survey"],
                split_by=data["split_by"],
                **common,
            )
        elif name == "community_alignment":
            load = hub_datasets.load_community_alignment(
                data["path"] or hub_datasets.COMMUNITY_ALIGNMENT_HUB,
                language=data["language"],
                split_by=data["split_by"],
                **common,
            )
        else:
            load = hub_datasets.load_hh_rlhf(
                data["path"] or hub_datasets.HH_RLHF_HUB, data_dir=data["data_dir"], **common
            )
        train, test, dropped = load.dataset["train"], load.dataset["test"], load.dropped
    else:
        raise ValueError(
            f"data.name must be 'default', 'prism', 'community_alignment' or 'hh_rlhf', "
            f"got {name!r}"
        )
    if data["max_train_pairs"] is not None:
        train = train.select(range(min(len(train), int(data["max_train_pairs"]))))
    if data["max_eval_pairs"] is not None:
        test = test.select(range(min(len(test), int(data["max_eval_pairs"]))))
    if len(train) == 0:
        raise ValueError(f"data {name!r}: the train split is empty")
    report = {"train_pairs": len(train), "test_pairs": len(test), "dropped": dropped}
    return train, test, report


def _eval_by(config: dict[str, Any], dataset: Any) -> list[str]:
    chosen = config["eval"]["by"]
    if chosen is not None:
        return list(chosen)
    return [c for c in dataset.column_names if c not in _NOT_SUBGROUPS]


def _build_model(config: dict[str, Any], texts: Sequence[str]) -> tuple[Any, Any]:
    from alignment.policy_models import (
        build_word_tokenizer,
        load_model,
        load_tokenizer,
        tiny_causal_lm,
    )

    if config["model"] == "tiny":
        tokenizer = build_word_tokenizer(texts)
        return tiny_causal_lm(len(tokenizer), **config["tiny_model"]), tokenizer
    return load_model(config["model"]), load_tokenizer(config["model"])


def _load_saved(path: str | os.PathLike) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not os.path.isdir(path):
        raise FileNotFoundError(f"no saved model at {path}")
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return AutoModelForCausalLM.from_pretrained(path), tokenizer


def _texts(*datasets: Any) -> list[str]:
    return [t for d in datasets for c in ("prompt", "chosen", "rejected") for t in d[c]]


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=1, sort_keys=True, default=str) + "\n")


# ----------------------------------------------------------------------------- commands
def run_train(config: dict[str, Any]) -> dict[str, Any]:
    """Train (resuming when a complete checkpoint exists); return the metrics written."""
    import yaml

    from alignment.callbacks import (
        CheckpointCompleteMarker,
        JsonlLogger,
        NonFiniteLossGuard,
        last_complete_checkpoint,
    )
    from alignment.config import MixDPOConfig
    from alignment.evaluation import evaluate_margins, summarize_margins
    from alignment.trainer import MixDPOTrainer

    run_dir = Path(config["run_dir"])
    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoints = run_dir / "checkpoints"
    train, test, report = build_data(config)
    model, tokenizer = _build_model(config, _texts(train, test))
    if config["data"]["drop_long_prompts"]:  # needs the tokenizer: reload with it
        train, test, report = build_data(config, tokenizer)
    training = {**config["training"], "output_dir": str(checkpoints)}
    try:
        args = MixDPOConfig(**training)
    except TypeError as error:
        raise ValueError(f"training: {error}") from error
    is_main = args.process_index == 0
    if is_main:
        (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        _write_json(run_dir / "data_report.json", report)
    trainer = MixDPOTrainer(
        model,
        args=args,
        train_dataset=train,
        processing_class=tokenizer,
        callbacks=[JsonlLogger(run_dir / "logs.jsonl")],
    )
    NonFiniteLossGuard.attach(trainer)
    CheckpointCompleteMarker.attach(trainer)  # also owns save_total_limit (rotation after marking)
    resume = config["resume"]
    if resume == "auto":
        resume = last_complete_checkpoint(checkpoints)
    elif resume in (None, "none", False):
        resume = None
    result = trainer.train(resume_from_checkpoint=resume)
    metrics: dict[str, Any] = {"train": result.metrics, "resumed_from": resume}
    trainer.save_model(str(run_dir / "final"))
    if is_main and config["eval"]["after_train"] and len(test):
        frame = evaluate_margins(
            trainer.model,
            test,
            tokenizer,
            by=_eval_by(config, test),
            batch_size=config["eval"]["batch_size"],
            max_length=args.max_length,
            max_prompt_length=args.max_prompt_length,
            output_path=run_dir / "margins.csv",
        )
        metrics["eval"] = summarize_margins(frame, _eval_by(config, test))
    from alignment.trainer import strength_log_values

    metrics["strength"] = strength_log_values(trainer.strength)
    if is_main:
        _write_json(run_dir / "metrics.json", metrics)
    return metrics


def run_eval(config: dict[str, Any]) -> dict[str, Any]:
    """Held-out margins of a saved model (``eval.checkpoint`` or ``run_dir/final``)."""
    from alignment.evaluation import evaluate_margins, summarize_margins

    run_dir = Path(config["run_dir"])
    model, tokenizer = _load_saved(config["eval"]["checkpoint"] or run_dir / "final")
    _, test, _ = build_data(config)
    if len(test) == 0:
        raise ValueError("the test split is empty; raise data.test_fraction")
    columns = _eval_by(config, test)
    frame = evaluate_margins(
        model,
        test,
        tokenizer,
        by=columns,
        batch_size=config["eval"]["batch_size"],
        max_length=config["training"].get("max_length", 128),
        max_prompt_length=config["training"].get("max_prompt_length", 64),
        output_path=run_dir / "margins.csv",
    )
    summary = summarize_margins(frame, columns)
    _write_json(run_dir / "eval_metrics.json", summary)
    return summary


def _judge(spec: str) -> Any:
    from alignment.evaluation import RewardJudge

    if spec == "semisynthetic":
        from alignment.datasets.semisynthetic import response_reward

        return RewardJudge(lambda prompt, response: response_reward(response))
    if spec == "length":
        return RewardJudge(lambda prompt, response: float(len(response)))
    if ":" in spec:
        module, attr = spec.split(":", 1)
        return getattr(importlib.import_module(module), attr)
    raise ValueError(
        f"compare.judge must be 'semisynthetic', 'length' or 'module:callable', got {spec!r}"
    )


def run_compare(config: dict[str, Any]) -> dict[str, Any]:
    """Win rate of ``compare.model_a`` (default ``run_dir/final``) over ``compare.model_b``."""
    from alignment.evaluation import compare_models

    run_dir = Path(config["run_dir"])
    options = config["compare"]
    if not options["model_b"]:
        raise ValueError("compare.model_b is required (a saved model directory)")
    model_a, tokenizer = _load_saved(options["model_a"] or run_dir / "final")
    model_b, _ = _load_saved(options["model_b"])
    _, test, _ = build_data(config)
    prompts = list(dict.fromkeys(test["prompt"]))[: options["num_prompts"]]
    result = compare_models(
        model_a,
        model_b,
        tokenizer,
        prompts,
        _judge(options["judge"]),
        length_controlled=options["length_controlled"],
        swap_positions=options["swap_positions"],
        max_new_tokens=options["max_new_tokens"],
    )
    result["prompts"] = prompts
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_json(run_dir / "compare.json", result)
    return result


def _print_summary(title: str, values: dict[str, Any]) -> None:
    print(f"== {title}")
    for key, value in values.items():
        if isinstance(value, (int, float, str)):
            print(f"  {key:<24} {value}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mixdpo`` console script."""
    parser = argparse.ArgumentParser(prog="mixdpo", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["train", "eval", "compare"])
    parser.add_argument("--config", "-c", help="YAML or JSON config file")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config value (dotted key, YAML value), e.g. training.max_steps=10",
    )  # fmt: skip
    options = parser.parse_args(argv)
    try:
        config = load_config(options.config, options.overrides)
    except (OSError, ValueError) as error:
        parser.error(str(error))
    from alignment.callbacks import NonFiniteLossError

    try:
        if options.command == "train":
            metrics = run_train(config)
            _print_summary("train", metrics["train"])
            _print_summary("strength", metrics["strength"])
            if "eval" in metrics:
                _print_summary("held-out margins", metrics["eval"])
        elif options.command == "eval":
            _print_summary("held-out margins", run_eval(config))
        else:
            result = run_compare(config)
            _print_summary("compare", {k: v for k, v in result.items() if not isinstance(v, list)})
    except NonFiniteLossError as error:
        print(f"mixdpo: {error}", file=sys.stderr)
        return EXIT_NON_FINITE
    return 0


if __name__ == "__main__":
    sys.exit(main())
