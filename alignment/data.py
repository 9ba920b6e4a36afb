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

import logging
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = [
    "DEFAULT_MAX_LENGTH",
    "PREFERENCE_COLUMNS",
    "PreferenceCollator",
    "distinct_pairs",
    "extract_implicit_prompt",
    "tokenize_preference_dataset",
    "tokenize_preference_example",
    "validate_preference_dataset",
]

PREFERENCE_COLUMNS = ("prompt", "chosen", "rejected")
TOKENIZED_COLUMNS = ("prompt_ids", "chosen_ids", "rejected_ids")
REFERENCE_COLUMNS = ("ref_chosen_logps", "ref_rejected_logps")
#: TRL 1.16's ``DPOConfig.max_length`` (prompt + completion tokens per sequence).
DEFAULT_MAX_LENGTH = 1024
# Per-row truncation flags of tokenize_preference_dataset (removed before it returns).
_FLAG_COLUMNS = ("_prompt_truncated", "_completion_truncated", "_prompt_fills_max_length")

logger = logging.getLogger(__name__)


def _is_conversation(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(m, Mapping) and "role" in m and "content" in m for m in value
    )


def extract_implicit_prompt(example: Mapping[str, Any]) -> dict[str, Any]:
    """Split an implicit-prompt pair (``chosen`` and ``rejected`` only) into
    ``prompt``/``chosen``/``rejected``, by TRL's rule.

    The prompt is the longest common beginning of the two: characters for strings (a space
    just before the first difference goes to the completions, so they start with it), whole
    messages for conversations. Pairs where one side is a prefix of the other leave an empty
    completion, which :func:`validate_preference_dataset` then reports with its row.
    """
    chosen, rejected = example["chosen"], example["rejected"]
    if isinstance(chosen, str) != isinstance(rejected, str):
        raise ValueError(
            "chosen and rejected must both be strings or both be message lists to extract "
            f"an implicit prompt, got {type(chosen).__name__} and {type(rejected).__name__}"
        )
    cut = _common_prefix_length(chosen, rejected)
    if isinstance(chosen, str) and 0 < cut < min(len(chosen), len(rejected)):
        if chosen[cut - 1] == " ":
            cut -= 1
    return {"prompt": chosen[:cut], "chosen": chosen[cut:], "rejected": rejected[cut:]}


def _with_prompt(dataset: Any, name: str, num_proc: int | None = None) -> Any:
    """``dataset`` with a ``prompt`` column extracted from ``chosen``/``rejected`` when it has
    none (and no token ids); unchanged otherwise."""
    columns = getattr(dataset, "column_names", None) or []
    if (
        "prompt" in columns
        or "chosen" not in columns
        or "rejected" not in columns
        or all(c in columns for c in TOKENIZED_COLUMNS)
    ):
        return dataset
    return dataset.map(
        extract_implicit_prompt, num_proc=num_proc, desc=f"Extracting the prompt of {name}"
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
        _check_pair(name, row, prompt, chosen, rejected)


def _check_pair(name: str, row: int, prompt: Any, chosen: Any, rejected: Any) -> None:
    """The row checks of :func:`validate_preference_dataset` for one pair."""
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


def _common_prefix_length(a: Sequence[Any], b: Sequence[Any]) -> int:
    """Length of the common beginning of two sequences (token ids, strings, message lists)."""
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


def _tokenize_pair(
    example: Mapping[str, Any],
    tokenizer: Any,
    max_length: int | None,
    max_prompt_length: int | None,
) -> dict[str, Any]:
    """Token ids of one pair plus the truncation flags of :data:`_FLAG_COLUMNS`."""
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
    prompt_cut = False
    if max_prompt_length is not None and len(prompt_ids) > max_prompt_length:
        prompt_cut = True
        prompt_ids = prompt_ids[len(prompt_ids) - max_prompt_length :]
    completion_cut = fills = False
    if max_length is not None:
        room = max_length - len(prompt_ids)
        fills = room < 1
        completion_cut = max(len(chosen_ids), len(rejected_ids)) > room
        chosen_ids = chosen_ids[: max(room, 0)]
        rejected_ids = rejected_ids[: max(room, 0)]
    return {
        "prompt_ids": prompt_ids,
        "chosen_ids": chosen_ids,
        "rejected_ids": rejected_ids,
        "_prompt_truncated": prompt_cut,
        "_completion_truncated": completion_cut and not fills,
        "_prompt_fills_max_length": fills,
    }


def tokenize_preference_example(
    example: Mapping[str, Any],
    tokenizer: Any,
    *,
    max_length: int | None = DEFAULT_MAX_LENGTH,
    max_prompt_length: int | None = None,
) -> dict[str, list[int]]:
    """Token ids of one pair: ``prompt_ids``, ``chosen_ids``, ``rejected_ids``.

    Plain-text completions get the tokenizer's EOS appended (as in TRL). Truncation: with
    ``max_prompt_length`` the prompt keeps its last ``max_prompt_length`` tokens (the MixDPO
    paper's rule; TRL has no prompt limit), then each completion keeps its first
    ``max_length - len(prompt_ids)`` tokens (TRL's ``truncation_mode="keep_start"``). Defaults
    are TRL 1.16's (``max_length=1024``, no prompt limit).

    Raises:
        ValueError: the prompt alone fills ``max_length`` (no completion token would be left;
            :func:`tokenize_preference_dataset` drops such rows instead, as TRL does).
    """
    out = _tokenize_pair(example, tokenizer, max_length, max_prompt_length)
    if out["_prompt_fills_max_length"]:
        raise ValueError(
            f"max_length={max_length} leaves no room for a completion after a prompt of "
            f"{len(out['prompt_ids'])} tokens; set max_prompt_length < max_length"
        )
    return {k: out[k] for k in TOKENIZED_COLUMNS}


def tokenize_preference_dataset(
    dataset: Any,
    tokenizer: Any,
    *,
    max_length: int | None = DEFAULT_MAX_LENGTH,
    max_prompt_length: int | None = None,
    num_proc: int | None = None,
    name: str = "train_dataset",
) -> Any:
    """Validate ``dataset`` and add ``prompt_ids``/``chosen_ids``/``rejected_ids`` columns.

    Other columns (annotator ids, subgroups, per-pair numbers) are kept. A dataset that already
    has the three id columns is returned unchanged; one with ``chosen``/``rejected`` but no
    ``prompt`` gets its prompt from :func:`extract_implicit_prompt` first. Truncation as in
    :func:`tokenize_preference_example`; rows whose prompt alone fills ``max_length`` are
    dropped (TRL's rule). A warning on the ``alignment.data`` logger gives the number of rows
    whose prompt was shortened (``max_prompt_length``), whose completion was cut, and that
    were dropped, out of the total. A ``datasets.IterableDataset`` is processed lazily by the
    same rules (rows checked as they stream; no counts).
    """
    from datasets import IterableDataset

    if isinstance(dataset, IterableDataset):
        return _tokenize_iterable(dataset, tokenizer, max_length, max_prompt_length, name)
    dataset = _with_prompt(dataset, name, num_proc)
    validate_preference_dataset(dataset, name=name)
    if all(c in dataset.column_names for c in TOKENIZED_COLUMNS):
        return dataset
    if max_length is not None and max_prompt_length is not None and max_prompt_length >= max_length:
        raise ValueError(
            f"max_prompt_length ({max_prompt_length}) must be smaller than "
            f"max_length ({max_length})"
        )
    dataset = dataset.map(
        _tokenize_pair,
        fn_kwargs={
            "tokenizer": tokenizer,
            "max_length": max_length,
            "max_prompt_length": max_prompt_length,
        },
        num_proc=num_proc,
        desc=f"Tokenizing {name}",
    )
    counts = {c: int(sum(dataset[c])) for c in _FLAG_COLUMNS}
    total = len(dataset)
    dropped = counts["_prompt_fills_max_length"]
    if dropped:
        dataset = dataset.filter(
            lambda fills: not fills, input_columns="_prompt_fills_max_length", num_proc=num_proc
        )
    dataset = dataset.remove_columns(list(_FLAG_COLUMNS))
    if any(counts.values()):
        logger.warning(
            "%s: of %d rows, %d had the prompt cut to its last max_prompt_length=%s tokens, "
            "%d had a completion cut to fit max_length=%s, and %d were dropped because the "
            "prompt alone fills max_length",
            name,
            total,
            counts["_prompt_truncated"],
            max_prompt_length,
            counts["_completion_truncated"],
            max_length,
            dropped,
        )
    if len(dataset) == 0:
        raise ValueError(
            f"{name}: all {total} rows were dropped: every prompt fills max_length={max_length}"
        )
    return dataset


def _checked_pair(
    example: Mapping[str, Any],
    row: int,
    tokenizer: Any,
    max_length: int | None,
    max_prompt_length: int | None,
    name: str,
) -> dict[str, Any]:
    missing = [c for c in PREFERENCE_COLUMNS if c not in example]
    if missing:
        raise ValueError(f"{name} row {row} lacks preference column(s) {missing}")
    _check_pair(name, row, example["prompt"], example["chosen"], example["rejected"])
    return _tokenize_pair(example, tokenizer, max_length, max_prompt_length)


def _tokenize_iterable(
    dataset: Any,
    tokenizer: Any,
    max_length: int | None,
    max_prompt_length: int | None,
    name: str,
) -> Any:
    """:func:`tokenize_preference_dataset` for a streaming ``datasets.IterableDataset``.

    Everything runs lazily as rows stream: the implicit prompt, the row checks (errors name
    the row's position in the stream), tokenisation and TRL's drop of rows whose prompt fills
    ``max_length``; the truncation counts are not known in advance, so none are logged.
    """
    if max_length is not None and max_prompt_length is not None and max_prompt_length >= max_length:
        raise ValueError(
            f"max_prompt_length ({max_prompt_length}) must be smaller than "
            f"max_length ({max_length})"
        )
    try:
        first = next(iter(dataset))
    except StopIteration:
        raise ValueError(f"{name} has no rows") from None
    if all(c in first for c in TOKENIZED_COLUMNS):
        return dataset
    if "prompt" not in first and "chosen" in first and "rejected" in first:
        dataset = dataset.map(extract_implicit_prompt)
    dataset = dataset.map(
        _checked_pair,
        with_indices=True,
        fn_kwargs={
            "tokenizer": tokenizer,
            "max_length": max_length,
            "max_prompt_length": max_prompt_length,
            "name": name,
        },
    )
    dataset = dataset.filter(lambda fills: not fills, input_columns="_prompt_fills_max_length")
    dataset = dataset.remove_columns(list(_FLAG_COLUMNS))
    # A mapped IterableDataset forgets its column names, which Trainer needs to drop unused
    # columns: resolve them from the first row (private datasets API, hence the fallback).
    resolve = getattr(dataset, "_resolve_features", None)
    return resolve() if callable(resolve) else dataset


def distinct_pairs(dataset: Any) -> tuple[list[int], torch.Tensor, torch.Tensor]:
    """The distinct pairs of a tokenised dataset, whichever way round each row has them.

    Panel data repeat a pair once per annotator who labelled it, half of them with chosen and
    rejected swapped; a pair's implicit-reward margin is a function of its token ids alone and
    changes sign with the orientation, so it needs computing once per distinct
    ``{prompt, {chosen, rejected}}``.

    Args:
        dataset: rows with ``prompt_ids``, ``chosen_ids`` and ``rejected_ids`` (``N`` rows).

    Returns:
        ``(rows, inverse, sign)``: ``rows`` the index of each distinct pair's first row (``U``
        indices, ascending); ``inverse`` ``(N,)`` long, row ``i``'s position in ``rows``;
        ``sign`` ``(N,)`` float32, +1 where row ``i`` has the orientation of ``rows[inverse[i]]``
        and -1 where it is swapped. A margin ``m`` computed on ``rows`` gives every row's as
        ``sign * m[inverse]``.
    """
    prompts, chosen, rejected = (dataset[c] for c in TOKENIZED_COLUMNS)
    first: dict[tuple[tuple[int, ...], ...], int] = {}
    rows: list[int] = []
    inverse, sign = [], []
    for i, (p, c, r) in enumerate(zip(prompts, chosen, rejected, strict=True)):
        key = (tuple(p), tuple(c), tuple(r))
        swapped = (key[0], key[2], key[1])
        if key in first:
            inverse.append(first[key])
            sign.append(1.0)
        elif swapped in first:
            inverse.append(first[swapped])
            sign.append(-1.0)
        else:
            first[key] = len(rows)
            rows.append(i)
            inverse.append(first[key])
            sign.append(1.0)
    return rows, torch.tensor(inverse, dtype=torch.long), torch.tensor(sign)


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
