"""Preference data format, tokenisation and the batch collator.

Format: a :class:`datasets.Dataset` with string columns ``prompt``, ``chosen`` and ``rejected``
(or conversational lists of ``{"role", "content"}`` messages), plus any optional columns
(``annotator_id``, subgroup columns, per-pair numbers). Tokenisation follows TRL's DPO
convention, so that token ids match TRL's exactly: the prompt and ``prompt + completion`` are
tokenised separately and the completion starts where the two token sequences diverge; an EOS
token is appended to plain-text completions.

The collator concatenates chosen and rejected sequences into one batch of ``2B`` rows (rows
``0..B-1`` chosen, ``B..2B-1`` rejected) for a single forward pass, and passes numeric extra
columns through as tensors so that losses can read per-pair values (see
:mod:`alignment.losses`).
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = [
    "PREFERENCE_COLUMNS",
    "PreferenceCollator",
    "tokenize_preference_dataset",
    "tokenize_preference_example",
    "validate_preference_dataset",
]

PREFERENCE_COLUMNS = ("prompt", "chosen", "rejected")
TOKENIZED_COLUMNS = ("prompt_ids", "chosen_ids", "rejected_ids")
REFERENCE_COLUMNS = ("ref_chosen_logps", "ref_rejected_logps")


def _is_conversation(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(m, Mapping) and "role" in m and "content" in m for m in value
    )


def validate_preference_dataset(dataset: Any, *, name: str = "train_dataset") -> None:
    """Check that ``dataset`` has usable ``prompt``/``chosen``/``rejected`` columns.

    Raises:
        ValueError: a column is missing, a value is not a string or conversation, a completion is
            empty, or chosen equals rejected; the message names the column and row.
    """
    columns = getattr(dataset, "column_names", None)
    if columns is None:
        raise TypeError(f"{name} must be a datasets.Dataset, got {type(dataset).__name__}")
    if all(c in columns for c in TOKENIZED_COLUMNS):
        return  # already tokenised
    missing = [c for c in PREFERENCE_COLUMNS if c not in columns]
    if missing:
        raise ValueError(
            f"{name} is missing preference column(s) {missing}; it has {sorted(columns)}"
        )
    if len(dataset) == 0:
        raise ValueError(f"{name} has no rows")
    prompts, chosens, rejecteds = (dataset[c] for c in PREFERENCE_COLUMNS)
    for row, (prompt, chosen, rejected) in enumerate(zip(prompts, chosens, rejecteds, strict=True)):
        for column, value in (("prompt", prompt), ("chosen", chosen), ("rejected", rejected)):
            if not (isinstance(value, str) or _is_conversation(value)):
                raise ValueError(
                    f"{name} column {column!r} row {row}: expected a string or a list of "
                    f"{{'role', 'content'}} messages, got {type(value).__name__} {value!r:.80}"
                )
        for column, value in (("chosen", chosen), ("rejected", rejected)):
            if (isinstance(value, str) and not value.strip()) or (
                isinstance(value, list) and not value
            ):
                raise ValueError(f"{name} column {column!r} row {row}: empty completion")
        if chosen == rejected:
            raise ValueError(
                f"{name} row {row}: chosen and rejected are identical ({chosen!r:.80}); "
                "such a pair carries no preference"
            )


def _common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _tokenize_text(tokenizer: Any, text: Any, **chat_kwargs: Any) -> list[int]:
    if isinstance(text, list):
        out = tokenizer.apply_chat_template(text, tokenize=True, return_dict=True, **chat_kwargs)
        return list(out["input_ids"])
    return list(tokenizer(text=text)["input_ids"])


def tokenize_preference_example(
    example: Mapping[str, Any],
    tokenizer: Any,
    *,
    max_length: int | None = 128,
    max_prompt_length: int | None = 64,
) -> dict[str, list[int]]:
    """Token ids of one pair: ``prompt_ids``, ``chosen_ids``, ``rejected_ids``.

    Plain-text completions get the tokenizer's EOS appended (as in TRL). Truncation (as in the
    MixDPO paper): the prompt keeps its last ``max_prompt_length`` tokens, then each completion
    keeps its first ``max_length - len(prompt_ids)`` tokens.
    """
    prompt, chosen, rejected = example["prompt"], example["chosen"], example["rejected"]
    if isinstance(prompt, list):
        prompt_ids = _tokenize_text(tokenizer, prompt, add_generation_prompt=True)
        full_chosen = _tokenize_text(tokenizer, prompt + chosen)
        full_rejected = _tokenize_text(tokenizer, prompt + rejected)
    else:
        eos = tokenizer.eos_token
        if eos is None:
            raise ValueError("the tokenizer has no eos_token; set tokenizer.eos_token")
        chosen = chosen if chosen.endswith(eos) else chosen + eos
        rejected = rejected if rejected.endswith(eos) else rejected + eos
        prompt_ids = _tokenize_text(tokenizer, prompt)
        full_chosen = _tokenize_text(tokenizer, prompt + chosen)
        full_rejected = _tokenize_text(tokenizer, prompt + rejected)
    # The completion starts where prompt and prompt+completion tokenisations diverge (BPE merges
    # across the boundary can change the last prompt token).
    prompt_len = min(
        _common_prefix_length(prompt_ids, full_chosen),
        _common_prefix_length(prompt_ids, full_rejected),
    )
    prompt_ids = prompt_ids[:prompt_len]
    chosen_ids = full_chosen[prompt_len:]
    rejected_ids = full_rejected[prompt_len:]
    if max_prompt_length is not None and len(prompt_ids) > max_prompt_length:
        prompt_ids = prompt_ids[len(prompt_ids) - max_prompt_length :]
    if max_length is not None:
        room = max_length - len(prompt_ids)
        if room < 1:
            raise ValueError(
                f"max_length={max_length} leaves no room for a completion after a prompt of "
                f"{len(prompt_ids)} tokens; set max_prompt_length < max_length"
            )
        chosen_ids = chosen_ids[:room]
        rejected_ids = rejected_ids[:room]
    return {"prompt_ids": prompt_ids, "chosen_ids": chosen_ids, "rejected_ids": rejected_ids}


def tokenize_preference_dataset(
    dataset: Any,
    tokenizer: Any,
    *,
    max_length: int | None = 128,
    max_prompt_length: int | None = 64,
    num_proc: int | None = None,
    name: str = "train_dataset",
) -> Any:
    """Validate ``dataset`` and add ``prompt_ids``/``chosen_ids``/``rejected_ids`` columns.

    Other columns (annotator ids, subgroups, per-pair numbers) are kept. A dataset that already
    has the three id columns is returned unchanged.
    """
    validate_preference_dataset(dataset, name=name)
    if all(c in dataset.column_names for c in TOKENIZED_COLUMNS):
        return dataset
    if max_length is not None and max_prompt_length is not None and max_prompt_length >= max_length:
        raise ValueError(
            f"max_prompt_length ({max_prompt_length}) must be smaller than "
            f"max_length ({max_length})"
        )
    return dataset.map(
        tokenize_preference_example,
        fn_kwargs={
            "tokenizer": tokenizer,
            "max_length": max_length,
            "max_prompt_length": max_prompt_length,
        },
        num_proc=num_proc,
        desc=f"Tokenizing {name}",
    )


def _pad(rows: list[list[int]], value: int, length: int) -> torch.Tensor:
    out = torch.full((len(rows), length), value, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.as_tensor(row, dtype=torch.long)
    return out


def _is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral)  # bool is Integral: labels as True/False work


def _column_tensor(name: str, values: list[Any]) -> torch.Tensor:
    """Stack one extra column of a batch: ``(B,)`` numbers or ``(B, k)`` equal-length lists.

    The dtype is decided from *all* values of the batch (long only if every value is an integer),
    so a float column whose first row happens to hold an integer is not truncated.
    """
    first = values[0]
    if isinstance(first, numbers.Real):
        flat = values
    elif isinstance(first, (list, tuple)):
        flat = [v for row in values if isinstance(row, (list, tuple)) for v in row]
    else:
        raise ValueError(
            f"extra column {name!r} must hold numbers or equal-length lists of numbers, "
            f"got {type(first).__name__} {first!r:.60} in row 0 of the batch"
        )
    bad = next((v for v in flat if not isinstance(v, numbers.Real)), None)
    if bad is not None:
        raise ValueError(
            f"extra column {name!r} must hold numbers or equal-length lists of numbers, "
            f"got {type(bad).__name__} {bad!r:.60} in the batch"
        )
    dtype = torch.long if all(_is_integer(v) for v in flat) else torch.float32
    try:
        return torch.tensor(values, dtype=dtype)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"extra column {name!r} cannot be stacked into a tensor ({error}); "
            "rows must be numbers or equal-length lists of numbers"
        ) from error


@dataclass
class PreferenceCollator:
    """Pads tokenised pairs into one concatenated chosen+rejected batch.

    Input rows need ``prompt_ids``, ``chosen_ids``, ``rejected_ids`` and optionally
    ``ref_chosen_logps``/``ref_rejected_logps`` and the ``extra_columns``.

    Output (``B`` pairs, ``L`` the longest prompt+completion, right padding):
        ``input_ids`` ``(2B, L)`` long, chosen rows first; ``attention_mask`` ``(2B, L)``;
        ``completion_mask`` ``(2B, L)`` (1 on completion tokens); ``ref_chosen_logps`` and
        ``ref_rejected_logps`` ``(B,)`` when present; each extra column as a ``(B,)`` or
        ``(B, k)`` tensor (long for integers, float32 otherwise).
    """

    pad_token_id: int
    extra_columns: tuple[str, ...] = field(default_factory=tuple)
    pad_to_multiple_of: int | None = None

    def __call__(self, examples: list[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        if not examples:
            raise ValueError("PreferenceCollator got an empty list of examples")
        sequences, completion_masks = [], []
        for key in ("chosen_ids", "rejected_ids"):
            for example in examples:
                prompt, completion = list(example["prompt_ids"]), list(example[key])
                sequences.append(prompt + completion)
                completion_masks.append([0] * len(prompt) + [1] * len(completion))
        length = max(len(s) for s in sequences)
        if self.pad_to_multiple_of:
            length = -(-length // self.pad_to_multiple_of) * self.pad_to_multiple_of
        batch = {
            "input_ids": _pad(sequences, self.pad_token_id, length),
            "attention_mask": _pad([[1] * len(s) for s in sequences], 0, length),
            "completion_mask": _pad(completion_masks, 0, length),
        }
        for key in REFERENCE_COLUMNS:
            if key in examples[0]:
                batch[key] = torch.tensor([float(e[key]) for e in examples], dtype=torch.float32)
        for key in self.extra_columns:
            if key not in examples[0]:
                raise KeyError(
                    f"extra column {key!r} is not in the batch rows; "
                    f"they have {sorted(examples[0])}"
                )
            batch[key] = _column_tensor(key, [e[key] for e in examples])
        return batch
