"""Reading and checking ``mixdpo`` config files: defaults, YAML 1.2 numbers, typed keys.

The CLI (:mod:`alignment.cli`) loads a config with :func:`load_config`: a YAML/JSON file merged
with ``--set key=value`` overrides over :data:`DEFAULT_CONFIG`; every error names the file,
line and column, or the key, its value and the expected type.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import enum
import functools
import json
import os
import re
import types
import typing
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_CONFIG", "load_config"]

DEFAULT_CONFIG: dict[str, Any] = {
    "run_dir": "runs/mixdpo",
    "model": "smollm2",
    "tiny_model": {"hidden_size": 32, "num_layers": 2, "num_heads": 4, "seed": 0},
    "data": {
        "name": "default",
        "kind": "heterogeneous",
        "path": None,
        "eval_path": None,  # data.name: files: the held-out pairs (else test_fraction of path)
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
        # Keep the 2 newest complete checkpoints: a SmolLM2-135M checkpoint is ~1.5 GB (513 MiB
        # weights + 1026 MiB Adam state), and a run saving every 50 steps would otherwise keep
        # them all. `null` keeps every checkpoint.
        "save_total_limit": 2,
        # Sequence limits sized for the CPU models the CLI trains (the tiny model, SmolLM2):
        # TRL's 1024 would hold 8x the activations per pair. The trainer warns with counts
        # when rows are cut or dropped; `eval` uses the same limits.
        "max_length": 128,
        "max_prompt_length": 64,
        # The trainer applies the LM head outside the DDP-wrapped forward (chunked log-probs):
        # DDP's unused-parameter search would mark lm_head ready twice.
        "ddp_find_unused_parameters": False,
    },
    "resume": "auto",
    # eval.reference: the DPO reference of the reference-subtracted margins (a saved model
    # directory); null: the model training started from (`model`).
    "eval": {
        "checkpoint": None,
        "reference": None,
        "by": None,
        "batch_size": 16,
        "after_train": True,
    },
    "compare": {
        "model_a": None,
        "model_b": None,
        "num_prompts": 16,
        "max_new_tokens": 64,
        "judge": "semisynthetic",
        "length_controlled": True,
        "swap_positions": False,
        # null: the tokenizer's chat template when it has one (Instruct models), raw prompt
        # strings otherwise; true/false force it on/off.
        "chat_template": None,
    },
}


# Config keys of the 0.1 release -> their names now (accepted with a DeprecationWarning).
_RENAMED_KEYS = {"eval.subgroup_columns": "eval.by"}


# ----------------------------------------------------------------------------- config
# Declared types of the keys the CLI itself reads (the training section is checked against the
# fields of MixDPOConfig). Only these are checked; other keys keep whatever YAML gave them.
_CLI_TYPES: dict[str, Any] = {
    "run_dir": str,
    "model": str,
    "tiny_model.hidden_size": int,
    "tiny_model.num_layers": int,
    "tiny_model.num_heads": int,
    "tiny_model.seed": int,
    "data.name": str,
    "data.kind": str,
    "data.path": str | None,
    "data.eval_path": str | None,
    "data.survey": str | None,
    "data.data_dir": str | None,
    "data.language": str,
    "data.split_by": str,
    "data.test_fraction": float | None,  # None: HH-RLHF's official test split
    "data.seed": int,
    "data.max_train_pairs": int | None,
    "data.max_eval_pairs": int | None,
    "data.drop_long_prompts": bool,
    "eval.checkpoint": str | None,
    "eval.reference": str | None,
    "eval.by": list[str] | None,
    "eval.batch_size": int,
    "eval.after_train": bool,
    "compare.model_a": str | None,
    "compare.model_b": str | None,
    "compare.num_prompts": int,
    "compare.max_new_tokens": int,
    "compare.judge": str,
    "compare.length_controlled": bool,
    "compare.swap_positions": bool,
    "compare.chat_template": bool | None,
}
_TYPE_NAMES = {
    bool: "true or false",
    int: "an integer",
    float: "a number",
    str: "a string",
    type(None): "null",
    dict: "a mapping",
    list: "a list",
}
_FLOAT_TAG = "tag:yaml.org,2002:float"
# YAML 1.2 floats that YAML 1.1 (PyYAML) reads as strings: an exponent without a dot (``1e-6``)
# or without a sign (``1.0e6``). The 1.1 forms (``1.5``, ``1.0e-6``, ``.inf``) keep their resolver.
_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")


@functools.cache
def _yaml_loader() -> type:
    """``yaml.SafeLoader`` that also reads ``1e-6``-style scalars as floats (YAML 1.2)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    # add_implicit_resolver copies the inherited table first: SafeLoader itself is unchanged.
    Loader.add_implicit_resolver(_FLOAT_TAG, _EXPONENT_FLOAT, list("-+0123456789."))
    return Loader


def _yaml_load(text: str) -> Any:
    import yaml

    return yaml.load(text, Loader=_yaml_loader())  # a SafeLoader subclass: no arbitrary objects


def _yaml_problem(error: Exception) -> tuple[str, Any]:
    """``(problem, mark)`` of a PyYAML error (``mark``: 0-based ``line``/``column``, or None)."""
    problem = getattr(error, "problem", None) or str(error)
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    return " ".join(str(problem).split()), mark


def _parse_file(path: str | os.PathLike) -> Any:
    """The YAML/JSON document in ``path``; a syntax error becomes ``file:line:column: ...``."""
    import yaml

    text = Path(path).read_text()
    if str(path).endswith(".json"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"{path}:{error.lineno}:{error.colno}: malformed JSON: {error.msg}"
            ) from None
    try:
        return _yaml_load(text)
    except yaml.YAMLError as error:
        problem, mark = _yaml_problem(error)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        raise ValueError(f"{path}{where}: malformed YAML: {problem}") from None


def _describe(value: Any) -> str:
    for kind in (bool, int, float, str, dict, list):  # bool before int: True is an int
        if isinstance(value, kind):
            return _TYPE_NAMES[kind]
    return "null" if value is None else type(value).__name__


def _allowed_types(hint: Any) -> set[type] | None:
    """Plain types a value of annotation ``hint`` may have; None where it cannot be checked."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        allowed: set[type] = set()
        for arg in typing.get_args(hint):
            more = _allowed_types(arg)
            if more is None:
                return None
            allowed |= more
        return allowed
    if typing.get_origin(hint) is typing.Literal:
        return {type(v) for v in typing.get_args(hint)}
    hint = typing.get_origin(hint) or hint
    if hint is None or hint is type(None):
        return {type(None)}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return {str}  # TrainingArguments' strategies: given by name
    if hint in (bool, int, float, str, dict, list):
        return {hint}
    return None


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """``value`` as the type ``hint`` declares for ``key``, or a ValueError naming both.

    Numbers in strings (``'3e-4'``) become numbers where no string is allowed, integral floats
    (``1e3``) integers where no float is; an int is accepted where a float is declared.
    """
    allowed = _allowed_types(hint)
    if allowed is None or isinstance(value, enum.Enum):
        return value
    if isinstance(value, bool):
        fits = bool in allowed
    elif isinstance(value, int):
        fits = bool(allowed & {int, float})
    else:
        fits = isinstance(value, tuple(allowed))
    if fits:
        return value
    if isinstance(value, tuple) and list in allowed:
        return list(value)
    if isinstance(value, float) and int in allowed and value.is_integer():
        return int(value)
    if isinstance(value, str) and str not in allowed and allowed & {int, float}:
        try:
            number = float(value)
        except ValueError:
            pass
        else:
            if float in allowed:
                return number
            if number.is_integer():
                return int(number)
    names = [_TYPE_NAMES[t] for t in _TYPE_NAMES if t in allowed]
    expected = " or ".join(names) if len(names) < 3 else ", ".join(names[:-1]) + " or " + names[-1]
    raise ValueError(f"{key} = {value!r} ({_describe(value)}): expected {expected}")


#: TrainingArguments fields whose annotation is narrower than what transformers takes:
#: ``fsdp`` is annotated ``str | None`` but transformers asks for ``fsdp=True`` (the string
#: forms are deprecated).
_WIDER_TRAINING_TYPES: dict[str, Any] = {"fsdp": bool | str | None}


@functools.cache
def _training_fields() -> dict[str, Any]:
    """``MixDPOConfig``'s constructor fields -> their resolved type annotations."""
    from alignment.config import MixDPOConfig

    hints = typing.get_type_hints(MixDPOConfig)
    fields = {f.name: hints.get(f.name, Any) for f in dataclasses.fields(MixDPOConfig) if f.init}
    return {**fields, **{k: v for k, v in _WIDER_TRAINING_TYPES.items() if k in fields}}


def _check_config(config: dict[str, Any]) -> None:
    """Check (and coerce in place) the types of known keys and the range of ``test_fraction``.

    Runs on the resolved config, so that a bad value is reported before any data is loaded or
    model built, as one error that names the key.
    """
    for dotted, hint in _CLI_TYPES.items():
        section, _, key = dotted.rpartition(".")
        node = config[section] if section else config
        node[key] = _coerce(dotted, node[key], hint)
    fields = _training_fields()
    training = config["training"]
    for key, value in training.items():
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise ValueError(
                f"unknown config key training.{key!r}; {hint}training takes the fields of "
                "alignment.config.MixDPOConfig (TrainingArguments and the MixDPO settings)"
            )
        training[key] = _coerce(f"training.{key}", value, fields[key])
    fraction = config["data"]["test_fraction"]
    # The loaders' range: 0 keeps every pair in train (no held-out margins), 1 would leave none.
    if fraction is not None and not 0.0 <= fraction < 1.0:
        raise ValueError(f"data.test_fraction must be in [0, 1), got {fraction}")


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
        if isinstance(out.get(key), dict) and value is None:
            continue  # an empty section (`training:` with its lines commented out): defaults
        if isinstance(out.get(key), dict) and not isinstance(value, dict):
            example = "max_steps" if "max_steps" in out[key] else next(iter(out[key]), "key")
            raise ValueError(
                f"config key {where}{key} must be a mapping of its keys (e.g. "
                f"{where}{key}.{example}=... or, in a file, an indented block under "
                f"'{key}:'), got {value!r} ({_describe(value)})"
            )
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
    try:
        value = _yaml_load(raw) if raw else None
    except yaml.YAMLError as error:
        problem, mark = _yaml_problem(error)
        where = f" (column {mark.column + 1} of the value)" if mark is not None else ""
        raise ValueError(f"--set {text!r}: malformed YAML value{where}: {problem}") from None
    nested: dict[str, Any] = {}
    node = nested
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return nested


def load_config(path: str | os.PathLike | None, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Defaults, then the YAML/JSON file at ``path``, then ``key.sub=value`` overrides.

    YAML is read as by ``yaml.safe_load`` except that ``1e-6``-style numbers (an exponent, no
    dot) are floats, as in YAML 1.2. Values of known keys (the CLI's and ``MixDPOConfig``'s
    fields) are checked against their declared types: a number given as a string is converted,
    anything else raises. Raises ValueError, naming the file, line and column for a syntax
    error and the key for an unknown key, a wrongly typed value, a section given a scalar or
    ``data.test_fraction`` outside ``[0, 1)``.
    """
    config = copy.deepcopy(DEFAULT_CONFIG)
    if path is not None:
        loaded = _parse_file(path)
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: the config must be a mapping, got {type(loaded).__name__}")
        config = _merge(config, loaded)
    for override in overrides:
        config = _merge(config, _parse_override(override))
    _check_config(config)
    return config


# ----------------------------------------------------------------------------- data and models
