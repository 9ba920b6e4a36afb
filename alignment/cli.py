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
by default (``resume: auto``); a non-finite loss stops it with exit code 3. It keeps the two
newest complete checkpoints (``training.save_total_limit: 2``; ``null`` keeps all) and, with
``training.eval_strategy`` ``steps``/``epoch``, evaluates on the held-out split during training.

Held-out evaluation (``eval``, and ``train`` after training): per pair the policy margin
``log pi(c) - log pi(r)``, the reference's margin and their difference, the
reference-subtracted margin (the DPO implicit reward margin before its scale; reference:
``eval.reference`` or the model training started from); summarised as the micro average over
pairs and, per subgroup column, the macro average over subgroups, with the preference accuracy
(share of pairs with a reference-subtracted margin > 0). ``compare`` generates through the
tokenizer's chat template when it has one (``compare.chat_template``), from raw prompt strings
otherwise; prompts may be conversations. Progress bars of evaluation and generation show on a
terminal unless ``training.disable_tqdm``.

One command per run directory: ``train``, ``eval`` and ``compare`` each hold an exclusive lock
on ``run_dir/.lock`` (``flock``, released by the kernel when the process exits, even by SIGKILL;
the file records the holder's command, pid, host and start time), and a second command on the
same directory stops at once with exit code 4, naming the directory and the holder.

Resuming with a changed config: each checkpoint holds a copy of the config that wrote it
(``mixdpo-config.yaml``), and a resume compares the new config with it. A resume restores the
checkpoint's optimiser (with its learning rates), scheduler, data position, model and strength,
so it cannot honour a change of learning rates, schedule, warmup, batch size, seed, MixDPO or
strength settings, model or data, nor of ``max_steps``/``num_train_epochs`` where the schedule
depends on the length (all but ``constant`` and ``constant_with_warmup`` with a warmup in steps):
``train`` then refuses (exit code 2), listing each such key with its old and new value. To go
on, put the old values back, train anew (another ``run_dir``, or ``resume: none``), or pass
``--allow-config-change``: the resume then runs as the trainer restores it, with a warning.
Logging, saving, evaluation and reporting keys, the ``eval``/``compare`` sections and paths may
change (a warning lists them). ``config.yaml`` stays the config the run started with; a resume
with changes writes them (old and new values, whether honoured, and the resolved config) to
``resume-<step>.yaml``. A fresh start rewrites ``config.yaml`` and removes ``resume-*.yaml``.

Config keys (defaults in :data:`DEFAULT_CONFIG`): ``run_dir``; ``model`` (``"smollm2"``, a hub id
or path, or ``"tiny"`` for a tiny random Llama with a word tokenizer built from the data, for
tests); ``tiny_model``; ``data`` (``name``: ``default``/``files``/``prism``/
``community_alignment``/``hh_rlhf``, ``path``, ``eval_path`` (``files``), ``survey``, ``kind``,
``split_by``, ``test_fraction``, ``seed``, ``max_train_pairs``, ``max_eval_pairs``, ...);
``training`` (any :class:`MixDPOConfig` field; ``output_dir`` is ``run_dir/checkpoints``);
``resume``; ``eval``; ``compare``. YAML numbers in
exponent form (``1e-6``) are floats; a syntax error, an unknown key, a value of the wrong type
or a section given a scalar stops the command with one ``mixdpo: error:`` line (exit code 2).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from alignment._resume import (
    CHECKPOINT_CONFIG,
    ResumeConfigError,
    ResumeConfigWarning,
    _check_resume,
    _checkpoint_step,
    resume_config_changes,
)
from alignment._run_lock import RunDirLockedError
from alignment.data import DEFAULT_MAX_LENGTH
from alignment.run_config import (
    DEFAULT_CONFIG,
    load_config,
)

__all__ = [
    "CHECKPOINT_CONFIG",
    "DEFAULT_CONFIG",
    "ResumeConfigError",
    "ResumeConfigWarning",
    "RunDirLockedError",
    "build_data",
    "load_config",
    "main",
    "resume_config_changes",
    "run_compare",
    "run_eval",
    "run_train",
]

# Columns of the loaders that are identifiers or numbers, not subgroups.
_NOT_SUBGROUPS = {
    "prompt", "chosen", "rejected", "annotator_id", "conversation_id", "turn", "pair_id",
    "annotator_index", "reward_chosen", "reward_rejected", "reward_gap", "label_probability",
    "true_strength", "topic",
}  # fmt: skip
EXIT_NON_FINITE = 3
EXIT_CONFIG_CHANGED = 2  # a resume refused for a changed config: a config error, as argparse's
EXIT_LOCKED = 4  # another `mixdpo train` holds the run directory


def build_data(config: dict[str, Any], tokenizer: Any = None) -> tuple[Any, Any, dict[str, Any]]:
    """``(train, test, report)`` for ``config["data"]``; report has sizes and dropped counts."""
    from alignment.datasets import hub_datasets

    data = config["data"]
    name = data["name"]
    limit = config["training"].get("max_prompt_length") if data["drop_long_prompts"] else None
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
    elif name == "files":
        if data["drop_long_prompts"]:
            raise ValueError(
                "data.drop_long_prompts is not supported with data.name='files' (the trainer "
                "warns with counts where it cuts prompts); set it to false"
            )
        train, test = _load_files(data)
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
            f"data.name must be 'default', 'files', 'prism', 'community_alignment' or "
            f"'hh_rlhf', got {name!r}"
        )
    if data["max_train_pairs"] is not None:
        train = train.select(range(min(len(train), int(data["max_train_pairs"]))))
    if data["max_eval_pairs"] is not None:
        test = test.select(range(min(len(test), int(data["max_eval_pairs"]))))
    if len(train) == 0:
        raise ValueError(f"data {name!r}: the train split is empty")
    report = {"train_pairs": len(train), "test_pairs": len(test), "dropped": dropped}
    return train, test, report


def _load_files(data: dict[str, Any]) -> tuple[Any, Any]:
    """``(train, test)`` of ``data.name: files``: preference rows in TRL's format.

    ``data.path`` holds the training pairs (``.jsonl``, ``.json``, ``.parquet`` or ``.csv``):
    ``prompt``/``chosen``/``rejected`` as strings or as conversations (lists of ``{"role",
    "content"}`` messages), or ``chosen``/``rejected`` alone (implicit prompts, split off by
    TRL's rule). ``data.eval_path`` holds the held-out pairs; without it ``data.test_fraction``
    of the rows (a seeded random split, ``data.seed``) are held out.
    """
    from alignment.data import extract_implicit_prompt, validate_preference_dataset
    from alignment.datasets.hub_datasets import _read_table

    def read(key: str) -> Any:
        path = data[key]
        if not os.path.exists(path):
            raise ValueError(f"data.{key} = {path!r}: no such file")
        table = _read_table(path)
        if "prompt" not in table.column_names and {"chosen", "rejected"} <= set(table.column_names):
            table = table.map(extract_implicit_prompt)
        validate_preference_dataset(table, name=f"data.{key} ({path})")
        return table

    if not data["path"]:
        raise ValueError(
            "data.name='files' needs data.path: a .jsonl/.json/.parquet/.csv file of "
            "prompt/chosen/rejected pairs (strings or lists of messages)"
        )
    train = read("path")
    if data["eval_path"]:
        return train, read("eval_path")
    fraction = data["test_fraction"] or 0.0
    if fraction == 0.0:
        return train, train.select([])
    split = train.train_test_split(test_size=fraction, seed=data["seed"])
    return split["train"], split["test"]


def _is_conversational(dataset: Any) -> bool:
    return len(dataset) > 0 and isinstance(dataset[0]["prompt"], list)


def _eval_by(config: dict[str, Any], dataset: Any) -> list[str]:
    chosen = config["eval"]["by"]
    if chosen is not None:
        return list(chosen)
    return [c for c in dataset.column_names if c not in _NOT_SUBGROUPS]


# The tiny model's chat template (conversational data): "role: content" lines, the stand-in for
# an Instruct model's template in tests.
_TINY_CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} {{ eos_token }} {% endfor %}"
    "{% if add_generation_prompt %}assistant : {% endif %}"
)


def _build_model(
    config: dict[str, Any], texts: Sequence[str], *, conversational: bool = False
) -> tuple[Any, Any]:
    from alignment.policy_models import (
        build_word_tokenizer,
        load_model,
        load_tokenizer,
        tiny_causal_lm,
    )

    if config["model"] == "tiny":
        if conversational:  # the template's words join the vocabulary
            tokenizer = build_word_tokenizer([*texts, "user assistant system :"])
            tokenizer.chat_template = _TINY_CHAT_TEMPLATE
        else:
            tokenizer = build_word_tokenizer(texts)
        return tiny_causal_lm(len(tokenizer), **config["tiny_model"]), tokenizer
    return load_model(config["model"]), load_tokenizer(config["model"])


def _reference_model(config: dict[str, Any], tokenizer: Any) -> Any:
    """The DPO reference of the run: ``eval.reference`` (a saved model directory) or else the
    model training started from (``model``: the hub id or path, or the tiny model rebuilt from
    its seed, which is how the trainer's reference was made)."""
    if config["eval"]["reference"]:
        return _load_saved(config["eval"]["reference"])[0]
    if config["model"] == "tiny":
        from alignment.policy_models import tiny_causal_lm

        return tiny_causal_lm(len(tokenizer), **config["tiny_model"])
    from alignment.policy_models import load_model

    return load_model(config["model"])


def _stderr_is_tty() -> bool:
    return sys.stderr.isatty()


def _progress(config: dict[str, Any], label: str) -> str | None:
    """``label`` for a progress bar of evaluation or generation, or None for no bar: bars are
    off with ``training.disable_tqdm: true`` and when stderr is not a terminal (a log file
    would fill with carriage-return redraws)."""
    if config["training"].get("disable_tqdm") or not _stderr_is_tty():
        return None
    return label


def _load_saved(path: str | os.PathLike) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not os.path.isdir(path):
        raise FileNotFoundError(f"no saved model at {path}")
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return AutoModelForCausalLM.from_pretrained(path), tokenizer


def _texts(*datasets: Any) -> list[str]:
    """Every text of the pairs (message contents and roles of conversations)."""
    out: list[str] = []
    for dataset in datasets:
        for column in ("prompt", "chosen", "rejected"):
            for value in dataset[column]:
                if isinstance(value, str):
                    out.append(value)
                else:
                    out.extend(f"{m['role']} {m['content']}" for m in value)
    return out


def _held_out_metrics(
    config: dict[str, Any],
    model: Any,
    reference: Any,
    test: Any,
    tokenizer: Any,
    *,
    max_length: int | None,
    max_prompt_length: int | None,
    output_path: Path,
) -> dict[str, Any]:
    """Held-out margins of ``model`` against ``reference``, written to ``output_path``.

    Returns ``{"n_pairs", "reward_margin", "preference_accuracy", "policy_margin"}``, each of
    the last three as :func:`~alignment.evaluation.summarize_margins` gives it (micro over
    pairs; per subgroup column micro and macro): ``reward_margin`` is the reference-subtracted
    margin (DPO implicit reward margin before its scale, nats), ``preference_accuracy`` the
    share of pairs whose reward margin is > 0 (TRL's ``rewards/accuracies``; ties count as
    wrong), ``policy_margin`` the raw ``log pi(chosen) - log pi(rejected)`` (no reference).
    """
    from alignment.evaluation import evaluate_margins, summarize_margins

    columns = _eval_by(config, test)
    frame = evaluate_margins(
        model,
        test,
        tokenizer,
        by=columns,
        batch_size=config["eval"]["batch_size"],
        max_length=max_length,
        max_prompt_length=max_prompt_length,
        progress=_progress(config, "eval margins"),
        reference_model=reference,
    )
    frame.insert(4, "correct", (frame["reward_margin"] > 0).astype(float))
    from alignment.evaluation import _save_frame

    _save_frame(frame, output_path)
    return {
        "n_pairs": len(frame),
        "reward_margin": summarize_margins(frame, columns, value="reward_margin"),
        "preference_accuracy": summarize_margins(frame, columns, value="correct"),
        "policy_margin": summarize_margins(frame, columns, value="margin"),
    }


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=1, sort_keys=True, default=str) + "\n")


def _check_launch(world_size: int, environ: Any) -> None:
    """Refuse a multi-process launch that the trainer would run as independent processes.

    On a machine without GPUs, ``torchrun --nproc_per_node N`` (or ``accelerate launch
    --multi_gpu``) sets ``WORLD_SIZE=N``, but Trainer forms the process group only with
    ``use_cpu``; without it each process trains alone on the full data and all write the same
    run directory.
    """
    launched = int(environ.get("WORLD_SIZE", "1") or 1)
    if launched > 1 and world_size == 1:
        raise ValueError(
            f"launched as {launched} processes (WORLD_SIZE={launched}), but the trainer "
            "sees one: each would train alone and write the same run directory. Without GPUs "
            "set training.use_cpu=true (DDP over gloo); with GPUs check that torch sees them"
        )


def _run_callback(config: dict[str, Any]) -> Any:
    """A Trainer callback for the run directory's records of a resume.

    * ``on_train_begin``: Trainer restores ``logging_steps``, ``eval_steps`` and ``save_steps``
      from the checkpoint's ``trainer_state.json`` (it only logs that they differ); they are set
      again from the new arguments here, so that a change of them is honoured as
      :func:`resume_config_changes` says.
    * ``on_save``: a copy of ``config`` in each checkpoint (:data:`CHECKPOINT_CONFIG`; main
      process). Registered before :class:`~alignment.callbacks.CheckpointCompleteMarker`, so a
      checkpoint marked ``COMPLETE`` already holds it.
    """
    import yaml
    from transformers import TrainerCallback

    text = yaml.safe_dump(config, sort_keys=False)

    class RunDirCallback(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            state.compute_steps(args, state.max_steps)

        def on_save(self, args, state, control, **kwargs):
            directory = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if state.is_world_process_zero and directory.is_dir():
                (directory / CHECKPOINT_CONFIG).write_text(text)

    return RunDirCallback()


# ----------------------------------------------------------------------------- commands
def run_train(config: dict[str, Any], *, allow_config_change: bool = False) -> dict[str, Any]:
    """Train (resuming when a complete checkpoint exists); return the metrics written.

    Holds ``run_dir/.lock`` throughout (the main process of a multi-process launch, ``RANK``
    0): a second ``run_train`` on the same directory raises
    :class:`~alignment._run_lock.RunDirLockedError` at once. A resume is checked against the
    config recorded for its checkpoint (:func:`resume_config_changes`): a change it cannot
    honour raises :class:`ResumeConfigError` before any data is loaded, unless
    ``allow_config_change``, which warns and records the changes in ``resume-<step>.yaml``
    (``config.yaml`` is written only by a run that starts afresh, or where it is missing).
    """
    run_dir = Path(config["run_dir"])
    with _run_dir_lock(run_dir):
        return _train_locked(config, run_dir, allow_config_change)


@contextlib.contextmanager
def _run_dir_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir/.lock`` (created with the directory) for one command.

    ``train`` writes checkpoints and ``final``; ``eval`` and ``compare`` read ``final`` and
    write their results beside it, so each command takes the lock and none runs on a
    directory another is using. Only the main process (``RANK`` 0) locks: the other ranks
    of the same launch share its directory.
    """
    from alignment._run_lock import RunDirLock

    run_dir.mkdir(parents=True, exist_ok=True)
    lock = RunDirLock(run_dir) if int(os.environ.get("RANK", "0")) == 0 else None
    if lock is not None:
        lock.acquire()
    try:
        yield
    finally:
        if lock is not None:
            lock.release()


def _train_locked(
    config: dict[str, Any], run_dir: Path, allow_config_change: bool
) -> dict[str, Any]:
    import yaml

    from alignment.callbacks import (
        CheckpointCompleteMarker,
        JsonlLogger,
        NonFiniteLossGuard,
        last_complete_checkpoint,
    )
    from alignment.config import MixDPOConfig
    from alignment.trainer import MixDPOTrainer

    checkpoints = run_dir / "checkpoints"
    resume = config["resume"]
    if resume is True or resume == "auto":
        resume = last_complete_checkpoint(checkpoints)
    elif resume in (None, "none", False):
        resume = None
    # Checked before the data and the model are built: a refusal costs nothing.
    changes = _check_resume(config, resume, allow_config_change) if resume else None
    train, test, report = build_data(config)
    strategy = config["training"].get("eval_strategy", "no")
    evaluating = str(getattr(strategy, "value", strategy)) != "no"
    if evaluating and len(test) == 0:
        raise ValueError(
            f"training.eval_strategy={getattr(strategy, 'value', strategy)!r} evaluates during "
            f"training, but data {config['data']['name']!r} gives no held-out pairs "
            f"(data.test_fraction={config['data']['test_fraction']}, "
            f"data.max_eval_pairs={config['data']['max_eval_pairs']}"
            + (", data.eval_path=None" if config["data"]["name"] == "files" else "")
            + "); give held-out data or set training.eval_strategy=no"
        )
    model, tokenizer = _build_model(
        config, _texts(train, test), conversational=_is_conversational(train)
    )
    if config["data"]["drop_long_prompts"]:  # needs the tokenizer: reload with it
        train, test, report = build_data(config, tokenizer)
    # A copy: TrainingArguments fills nested settings in place (fsdp_config gains its
    # defaults), which would make the config saved in each checkpoint differ from the run's
    # own and refuse every resume of an FSDP run.
    training = {**copy.deepcopy(config["training"]), "output_dir": str(checkpoints)}
    try:
        args = MixDPOConfig(**training)
    except TypeError as error:
        raise ValueError(f"training: {error}") from error
    _check_launch(args.world_size, os.environ)
    is_main = args.process_index == 0
    if is_main:
        # config.yaml: the config the run started with. A resume leaves it alone and records
        # what it changed beside it; a fresh start replaces it and drops the old records.
        if resume is None or not (run_dir / "config.yaml").exists():
            (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        if resume is None:
            for stale in run_dir.glob("resume-*.yaml"):
                stale.unlink()
        if changes is not None:
            name = f"resume-{_checkpoint_step(resume)}.yaml"
            (run_dir / name).write_text(yaml.safe_dump(changes, sort_keys=False))
        _write_json(run_dir / "data_report.json", report)
    trainer = MixDPOTrainer(
        model,
        args=args,
        train_dataset=train,
        # The held-out split, for evaluation during training (`training.eval_strategy`).
        eval_dataset=test if evaluating else None,
        processing_class=tokenizer,
        # Before the marker (attached below): a checkpoint holds its config before COMPLETE.
        callbacks=[JsonlLogger(run_dir / "logs.jsonl"), _run_callback(config)],
    )
    NonFiniteLossGuard.attach(trainer)
    CheckpointCompleteMarker.attach(trainer)  # also owns save_total_limit (rotation after marking)
    result = trainer.train(resume_from_checkpoint=resume)
    metrics: dict[str, Any] = {
        "train": result.metrics,
        "resumed_from": resume,
        "distributed": {
            "processes": trainer.accelerator.num_processes,
            "fsdp": bool(trainer.is_fsdp_enabled),
            "deepspeed": bool(trainer.is_deepspeed_enabled),
            "wrapped_model": type(trainer.model_wrapped).__name__,
        },
    }
    trainer.save_model(str(run_dir / "final"))
    if is_main and config["eval"]["after_train"] and len(test):
        # The trainer's own reference where it holds one (full fine-tuning), else rebuilt.
        reference = trainer.ref_model
        if reference is not None and not config["eval"]["reference"]:
            reference = trainer.accelerator.unwrap_model(reference)
        else:
            reference = _reference_model(config, tokenizer).to(args.device)
        metrics["eval"] = _held_out_metrics(
            config,
            trainer.model,
            reference,
            test,
            tokenizer,
            max_length=args.max_length,
            max_prompt_length=args.max_prompt_length,
            output_path=run_dir / "margins.csv",
        )
    from alignment.trainer import strength_log_values

    metrics["strength"] = strength_log_values(trainer.strength)
    if is_main:
        _write_json(run_dir / "metrics.json", metrics)
    return metrics


def run_eval(config: dict[str, Any]) -> dict[str, Any]:
    """Held-out margins of a saved model (``eval.checkpoint`` or ``run_dir/final``); holds
    ``run_dir/.lock`` (a ``train`` in progress there refuses it)."""
    run_dir = Path(config["run_dir"])
    with _run_dir_lock(run_dir):
        return _eval_locked(config, run_dir)


def _eval_locked(config: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    model, tokenizer = _load_saved(config["eval"]["checkpoint"] or run_dir / "final")
    _, test, _ = build_data(config)
    if len(test) == 0:
        raise ValueError("the test split is empty; raise data.test_fraction")
    summary = _held_out_metrics(
        config,
        model,
        _reference_model(config, tokenizer),
        test,
        tokenizer,
        max_length=config["training"].get("max_length", DEFAULT_MAX_LENGTH),
        max_prompt_length=config["training"].get("max_prompt_length"),
        output_path=run_dir / "margins.csv",
    )
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
    """Win rate of ``compare.model_a`` (default ``run_dir/final``) over ``compare.model_b``;
    holds ``run_dir/.lock`` as :func:`run_eval` does."""
    run_dir = Path(config["run_dir"])
    if not config["compare"]["model_b"]:
        raise ValueError("compare.model_b is required (a saved model directory)")
    with _run_dir_lock(run_dir):
        return _compare_locked(config, run_dir)


def _compare_locked(config: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    from alignment.evaluation import compare_models

    options = config["compare"]
    model_a, tokenizer = _load_saved(options["model_a"] or run_dir / "final")
    model_b, _ = _load_saved(options["model_b"])
    _, test, _ = build_data(config)
    # Distinct prompts in data order (conversations compare by their JSON text).
    distinct = {json.dumps(p, sort_keys=True): p for p in test["prompt"]}
    prompts = list(distinct.values())[: options["num_prompts"]]
    if not prompts:
        raise ValueError("the test split is empty: no prompts to compare on")
    result = compare_models(
        model_a,
        model_b,
        tokenizer,
        prompts,
        _judge(options["judge"]),
        length_controlled=options["length_controlled"],
        swap_positions=options["swap_positions"],
        max_new_tokens=options["max_new_tokens"],
        chat_template=options["chat_template"],
        progress=_progress(config, "generate"),
    )
    result["prompts"] = prompts
    _write_json(run_dir / "compare.json", result)
    return result


def _print_summary(title: str, values: dict[str, Any]) -> None:
    print(f"== {title}")
    for key, value in values.items():
        if isinstance(value, (int, float, str)):
            print(f"  {key:<24} {value}")


_HELD_OUT_ROWS = (
    ("reward_margin", "reference-subtracted margin"),
    ("preference_accuracy", "preference accuracy"),
    ("policy_margin", "raw policy margin (no ref)"),
)


def _print_held_out(summary: dict[str, Any]) -> None:
    """A table of :func:`_held_out_metrics`: one row per measure, the micro average (over
    pairs) and, per subgroup column, the macro average (mean of the subgroup means)."""
    columns = list(summary["reward_margin"]["by_column"])
    heads = ["micro", *(f"macro[{c}]" for c in columns)]
    width = max(12, *(len(h) + 2 for h in heads))
    print(f"== held-out margins ({summary['n_pairs']} pairs; margins in nats)")
    print(f"  {'':<30}" + "".join(f"{h:>{width}}" for h in heads))
    for key, label in _HELD_OUT_ROWS:
        part = summary[key]
        values = [part["micro"], *(part["by_column"][c]["macro"] for c in columns)]
        print(f"  {label:<30}" + "".join(f"{v:>{width}.4f}" for v in values))


def _close_process_group() -> None:
    """Destroy the process group of a multi-process run that ended well, on every rank.

    A process that exits with its group alive leaves Gloo's worker threads holding work while
    the interpreter finalises, which aborts it now and then ("terminate called without an
    active exception", SIGABRT) after all its output is written. Only the success path calls
    this: every rank gets here, so the barrier cannot wait on a rank that failed."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mixdpo`` console script."""
    parser = argparse.ArgumentParser(prog="mixdpo", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["train", "eval", "compare"])
    parser.add_argument("--config", "-c", help="YAML or JSON config file")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config value (dotted key, YAML value), e.g. training.max_steps=10",
    )  # fmt: skip
    parser.add_argument(
        "--allow-config-change", action="store_true",
        help="train: resume even though settings a resume cannot honour changed (warns, and "
        "records the changes in run_dir/resume-<step>.yaml)",
    )  # fmt: skip
    options = parser.parse_args(argv)
    try:
        config = load_config(options.config, options.overrides)
    except (OSError, ValueError) as error:
        parser.error(str(error))
    from alignment.callbacks import NonFiniteLossError

    # One summary per launch: the other ranks of a multi-process run print nothing.
    quiet = int(os.environ.get("RANK", "0") or 0) != 0
    try:
        if options.command == "train":
            metrics = run_train(config, allow_config_change=options.allow_config_change)
            if not quiet:
                _print_summary("train", metrics["train"])
                _print_summary("strength", metrics["strength"])
                if "eval" in metrics:
                    _print_held_out(metrics["eval"])
        elif options.command == "eval":
            _print_held_out(run_eval(config))
        else:
            result = run_compare(config)
            _print_summary("compare", {k: v for k, v in result.items() if not isinstance(v, list)})
        _close_process_group()
    except NonFiniteLossError as error:
        print(f"mixdpo: {error}", file=sys.stderr)
        return EXIT_NON_FINITE
    except ResumeConfigError as error:
        print(f"mixdpo: error: {error}", file=sys.stderr)
        return EXIT_CONFIG_CHANGED
    except RunDirLockedError as error:
        print(f"mixdpo: error: {error}", file=sys.stderr)
        return EXIT_LOCKED
    return 0


if __name__ == "__main__":
    sys.exit(main())
