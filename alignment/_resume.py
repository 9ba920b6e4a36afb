"""Resume checks of ``mixdpo train``: compare a resumed run's config with its checkpoint's.

See :mod:`alignment.cli` (module docstring) for the rules; :func:`resume_config_changes` lists
the changed keys and whether a resume can honour each.
"""

from __future__ import annotations

import dataclasses
import enum
import warnings
from pathlib import Path
from typing import Any

from alignment.run_config import (
    DEFAULT_CONFIG,
    _check_config,
    _merge,
    _parse_file,
)


# ----------------------------------------------------------------------------- resume checks
class ResumeConfigError(ValueError):
    """A resume would change settings that restoring a checkpoint cannot honour."""


class ResumeConfigWarning(UserWarning):
    """A resume with changed settings: honoured ones, or ones allowed by ``--allow-config-change``."""


# A copy of the resolved config in every checkpoint, written before its COMPLETE marker: the
# config of the run that wrote that checkpoint, which a resume is checked against.
CHECKPOINT_CONFIG = "mixdpo-config.yaml"
# Keys whose change a resume honours: they do not touch the optimiser, the scheduler, the data
# order, the model or the strength (logging, saving, evaluation, reporting, paths, workers).
_RESUME_HONOURED_SECTIONS = ("eval.", "compare.")
_RESUME_HONOURED = {
    "run_dir",
    "resume",
    "data.max_eval_pairs",
    *(
        f"training.{key}"
        for key in (
            "output_dir", "logging_steps", "logging_strategy", "logging_first_step",
            "logging_nan_inf_filter", "log_level", "log_level_replica", "log_on_each_node",
            "save_steps", "save_strategy", "save_total_limit", "save_on_each_node",
            "eval_steps", "eval_strategy", "eval_delay", "eval_on_start", "eval_accumulation_steps",
            "eval_do_concat_batches", "per_device_eval_batch_size", "batch_eval_metrics",
            "prediction_loss_only", "include_for_metrics", "report_to", "run_name", "project",
            "trackio_space_id", "trackio_bucket_id", "trackio_static_space_id", "disable_tqdm",
            "dataloader_pin_memory", "dataloader_num_workers", "dataloader_persistent_workers",
            "dataloader_prefetch_factor", "dataloader_multiprocessing_context",
            "skip_memory_metrics", "include_num_input_tokens_seen", "torch_empty_cache_steps",
            "push_to_hub", "hub_model_id", "hub_strategy", "hub_token", "hub_private_repo",
            "hub_always_push", "hub_revision", "ddp_timeout", "ddp_find_unused_parameters",
        )
    ),
}  # fmt: skip
_NOT_SET = "(not set)"


def _training_defaults() -> dict[str, Any]:
    """``MixDPOConfig``'s field defaults: a key left out of one config compares as its default."""
    from alignment.config import MixDPOConfig

    defaults: dict[str, Any] = {}
    for field in dataclasses.fields(MixDPOConfig):
        if field.default is not dataclasses.MISSING:
            value = field.default
        elif field.default_factory is not dataclasses.MISSING:
            value = field.default_factory()
        else:
            continue
        defaults[field.name] = value.value if isinstance(value, enum.Enum) else value
    return defaults


def _flat(config: dict[str, Any]) -> dict[str, Any]:
    """``section.key -> value`` (one level: a key's mapping value, e.g. ``lr_scheduler_kwargs``,
    compares whole), with the CLI's and ``MixDPOConfig``'s defaults for keys left out."""
    flat: dict[str, Any] = {}
    training = {**_training_defaults(), **DEFAULT_CONFIG["training"]}
    for source in (DEFAULT_CONFIG, {"training": training}, config):
        for key, value in source.items():
            if isinstance(value, dict) and key in DEFAULT_CONFIG:
                flat.update({f"{key}.{sub}": v for sub, v in value.items()})
            else:
                flat[key] = value
    return flat


def _schedule_ignores_length(flat: dict[str, Any]) -> bool:
    """Whether the learning-rate schedule is the same for any ``max_steps``/epoch count."""
    kind = flat.get("training.lr_scheduler_type", "linear")
    kind = getattr(kind, "value", kind)
    warmup = flat.get("training.warmup_steps") or 0
    # `constant` ignores warmup; a warmup below 1 is a fraction of the total steps.
    return kind == "constant" or (kind == "constant_with_warmup" and (warmup == 0 or warmup >= 1))


def resume_config_changes(
    recorded: dict[str, Any], config: dict[str, Any]
) -> tuple[dict[str, tuple[Any, Any]], dict[str, tuple[Any, Any]]]:
    """``(not_honoured, honoured)``: ``key -> (old, new)`` for every key of ``config`` that
    differs from ``recorded`` (the config of the run that wrote the checkpoint to resume).

    Honoured: logging, saving, evaluation and reporting keys, the ``eval``/``compare`` sections,
    paths; ``max_steps``/``num_train_epochs`` when the learning-rate schedule does not depend on
    the length (``constant``, or ``constant_with_warmup`` with a warmup in steps), and
    ``num_train_epochs`` while ``max_steps`` is set. Everything else is not honoured: the
    resume restores the checkpoint's optimiser (its learning rates), scheduler, data order and
    position, model and strength, so a new learning rate, schedule, warmup, batch size,
    strength setting, model or data would apply in part or not at all.
    """
    old, new = _flat(recorded), _flat(config)
    not_honoured: dict[str, tuple[Any, Any]] = {}
    honoured: dict[str, tuple[Any, Any]] = {}
    for key in dict.fromkeys([*new, *old]):
        before, after = old.get(key, _NOT_SET), new.get(key, _NOT_SET)
        if before == after:
            continue
        if key in ("training.max_steps", "training.num_train_epochs"):
            steps_set = (
                old.get("training.max_steps", -1) > 0 and new.get("training.max_steps", -1) > 0
            )
            fine = _schedule_ignores_length(old) and _schedule_ignores_length(new)
            fine = fine or (key == "training.num_train_epochs" and steps_set)
        else:
            fine = key in _RESUME_HONOURED or key.startswith(_RESUME_HONOURED_SECTIONS)
        (honoured if fine else not_honoured)[key] = (before, after)
    return not_honoured, honoured


def _recorded_config(checkpoint: str) -> tuple[dict[str, Any] | None, Path | None]:
    """The config that the run which wrote ``checkpoint`` recorded, and the file it came from.

    The checkpoint's own copy (:data:`CHECKPOINT_CONFIG`); for checkpoints written before
    that copy existed, the ``config.yaml`` of the run directory above ``checkpoints/``.
    """
    for path in (
        Path(checkpoint) / CHECKPOINT_CONFIG,
        Path(checkpoint).parent.parent / "config.yaml",
    ):
        if path.is_file():
            loaded = _parse_file(path)
            if isinstance(loaded, dict):
                return _normalised(loaded), path
    return None, None


def _normalised(recorded: dict[str, Any]) -> dict[str, Any]:
    """``recorded`` resolved and type-checked as :func:`load_config` does a new config, so that
    a file written by an older release (``'1e-6'`` as a string, a renamed key) compares equal;
    unchanged where it no longer loads (a key since removed)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            merged = _merge(DEFAULT_CONFIG, recorded)
        _check_config(merged)
    except ValueError:
        return recorded
    return merged


def _checkpoint_step(checkpoint: str) -> str:
    name = Path(checkpoint).name
    return name.removeprefix("checkpoint-") if name.startswith("checkpoint-") else name


def _change_lines(changes: dict[str, tuple[Any, Any]], flat: dict[str, Any] | None = None) -> str:
    """One ``  key: old -> new`` line per change; with the recorded ``flat`` config, a length
    key (not honoured) also names the schedule that depends on it."""
    lines = []
    for key, (old, new) in changes.items():
        line = f"  {key}: {old!r} -> {new!r}"
        if flat is not None and key in ("training.max_steps", "training.num_train_epochs"):
            kind = flat.get("training.lr_scheduler_type", "linear")
            line += f" (the {getattr(kind, 'value', kind)} learning-rate schedule depends on it)"
        lines.append(line)
    return "\n".join(lines)


def _check_resume(
    config: dict[str, Any], checkpoint: str, allow_config_change: bool
) -> dict[str, Any] | None:
    """Compare ``config`` with the one recorded for ``checkpoint``; raise, warn, or pass.

    Returns the record of the changes for ``resume-<step>.yaml`` (None: nothing changed).
    """
    recorded, source = _recorded_config(checkpoint)
    if recorded is None:
        warnings.warn(
            f"resuming from {checkpoint}: it has no recorded config ({CHECKPOINT_CONFIG}, or "
            "config.yaml in its run directory), so changed settings cannot be detected",
            ResumeConfigWarning,
            stacklevel=3,
        )
        return None
    not_honoured, honoured = resume_config_changes(recorded, config)
    run_dir = Path(config["run_dir"])
    record_path = run_dir / f"resume-{_checkpoint_step(checkpoint)}.yaml"
    flat = _flat(recorded)
    if not_honoured and not allow_config_change:
        raise ResumeConfigError(
            f"cannot resume {run_dir} from {checkpoint}: the config differs from the one that "
            f"wrote the checkpoint ({source}) in settings a resume cannot honour (the "
            "checkpoint's optimiser with its learning rates, scheduler, data position, model "
            "and strength are restored, so the new values would apply in part or not at all):\n"
            f"{_change_lines(not_honoured, flat)}\n"
            "To go on: put these values back to resume the run as it was; or train anew, in "
            "another directory (--set run_dir=...) or in this one (--set resume=none); or pass "
            "--allow-config-change (run_train(..., allow_config_change=True)) to resume anyway, "
            f"the changes then recorded in {record_path}."
        )
    if not_honoured:
        warnings.warn(
            f"resuming {run_dir} from {checkpoint} with --allow-config-change; settings the "
            f"resume cannot honour (they apply in part or not at all):\n"
            f"{_change_lines(not_honoured, flat)}\n"
            f"config.yaml keeps the values the run started with; the changes go to {record_path}",
            ResumeConfigWarning,
            stacklevel=3,
        )
    if honoured:
        warnings.warn(
            f"resuming {run_dir} from {checkpoint} with changed settings that a resume honours:\n"
            f"{_change_lines(honoured)}\n(recorded in {record_path})",
            ResumeConfigWarning,
            stacklevel=3,
        )
    if not (not_honoured or honoured):
        return None
    return {
        "resumed_from": str(checkpoint),
        "compared_with": str(source),
        "allow_config_change": bool(allow_config_change),
        "honoured": {k: {"old": old, "new": new} for k, (old, new) in honoured.items()},
        # In effect: the checkpoint's optimiser state (learning rates), the restored scheduler
        # continued under the new length/schedule arguments, the saved data position.
        "not_honoured": {k: {"old": old, "new": new} for k, (old, new) in not_honoured.items()},
        "note": (
            "not_honoured: passed to the trainer but in effect only in part or not at all; the "
            "checkpoint's optimiser (learning rates), scheduler state, data position, model and "
            "strength were restored. config: the resolved config of this resume."
        ),
        "config": config,
    }
