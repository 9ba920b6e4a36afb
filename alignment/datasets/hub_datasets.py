"""Loaders for PRISM, Community Alignment (English) and Anthropic HH-RLHF in the preference format.

Each loader reads the dataset through :mod:`datasets` (the hub path is the default; local
``.json``/``.jsonl``/``.parquet`` files in the same schema work the same way), turns it into
``prompt``/``chosen``/``rejected`` pairs with ``annotator_id``, ``conversation_id`` and subgroup
columns, drops unusable rows with a reported count, and splits train/test deterministically by
annotator or by conversation (a salted SHA-256 of the key, so the split depends neither on row
order nor on the machine).

Text format: multi-turn prompts are rendered as ``"Human: ...\\n\\nAssistant: ...\\n\\nHuman:
...\\n\\nAssistant:"`` and completions start with a space, as in HH-RLHF.

Pairing rules:
    * PRISM (``utterances`` + ``survey`` configs): within each ``(conversation_id, turn)`` the
      response with ``if_chosen`` against each other response; earlier turns (user prompt and the
      chosen response) form the history; the survey's demographics are joined by ``user_id``.
    * Community Alignment: within each turn of each conversation, the preferred response against
      each other response; the preferred response continues the conversation; English rows only.
    * HH-RLHF: the prompt is the transcript up to and including the last ``"\\n\\nAssistant:"`` of
      ``chosen``; ``rejected`` must share it.

Keywords shared by the loaders: ``test_fraction`` (share of keys in ``test``, in ``[0, 1)``) and
``seed`` (the salt), see :func:`split_by_key`; ``tokenizer`` and ``max_prompt_length`` (drop
pairs whose prompt has more tokens, counted as ``"prompt_too_long"``), see
:func:`clean_preference_rows`.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "COMMUNITY_ALIGNMENT_HUB",
    "HH_RLHF_HUB",
    "PRISM_HUB",
    "PreferenceLoad",
    "clean_preference_rows",
    "load_community_alignment",
    "load_hh_rlhf",
    "load_prism",
    "split_by_key",
]

logger = logging.getLogger(__name__)

PRISM_HUB = "HannahRoseKirk/prism-alignment"
COMMUNITY_ALIGNMENT_HUB = "facebook/community-alignment-dataset"
HH_RLHF_HUB = "Anthropic/hh-rlhf"

HUMAN = "Human:"
ASSISTANT = "\n\nAssistant:"
# PRISM survey column -> subgroup column name in the output.
PRISM_SUBGROUPS = {
    "age": "age",
    "gender": "gender",
    "education": "education",
    "employment_status": "employment",
}
TURN_NAMES = ("first", "second", "third", "fourth")
RESPONSE_LETTERS = ("a", "b", "c", "d")
UNKNOWN = "unknown"


@dataclass
class PreferenceLoad:
    """What a loader produced: the splits and the number of source rows/pairs it dropped.

    Attributes:
        dataset: a ``datasets.DatasetDict`` with ``"train"`` and ``"test"``.
        dropped: reason -> number of pairs (or source groups) left out, e.g. ``{"identical": 2}``.
    """

    dataset: Any
    dropped: dict[str, int] = field(default_factory=dict)

    def __getitem__(self, split: str) -> Any:
        return self.dataset[split]


# ----------------------------------------------------------------------------- reading
def _read_table(source: str, config: str | None = None, split: str = "train") -> Any:
    """A ``datasets.Dataset`` from a local json/jsonl/parquet file or a hub dataset."""
    from datasets import load_dataset

    if os.path.exists(source):
        lower = source.lower()
        if lower.endswith(".parquet"):
            return load_dataset("parquet", data_files=source, split="train")
        if lower.endswith((".json", ".jsonl", ".json.gz", ".jsonl.gz")):
            return load_dataset("json", data_files=source, split="train")
        raise ValueError(f"{source}: expected a .json, .jsonl or .parquet file")
    return (
        load_dataset(source, config, split=split) if config else load_dataset(source, split=split)
    )


def _require(table: Any, columns: Iterable[str], name: str) -> None:
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise ValueError(
            f"{name} is missing column(s) {missing}; it has {sorted(table.column_names)}"
        )


def _render(history: list[tuple[str, str]], prompt: str) -> str:
    turns = [f"{HUMAN} {p}{ASSISTANT} {r}" for p, r in history]
    return "\n\n".join([*turns, f"{HUMAN} {prompt}{ASSISTANT}"])


def _completion(value: Any) -> Any:
    """A response as a completion (leading space); non-strings pass through to be counted."""
    return " " + value if isinstance(value, str) else value


# ----------------------------------------------------------------------------- cleaning
def clean_preference_rows(
    rows: Iterable[Mapping[str, Any]],
    *,
    tokenizer: Any = None,
    max_prompt_length: int | None = None,
    on_bad: str = "drop",
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Keep usable preference rows; count (or raise on) the rest.

    A row is dropped for: a non-string ``prompt``/``chosen``/``rejected`` (``"non_string"``), an
    empty or whitespace completion (``"empty"``), ``chosen == rejected`` (``"identical"``) and,
    with ``tokenizer`` and ``max_prompt_length``, a prompt of more tokens than the limit
    (``"prompt_too_long"``; the trainer would otherwise cut its beginning).

    Args:
        on_bad: ``"drop"`` (return the counts) or ``"raise"`` (``ValueError`` naming the row).

    Returns:
        ``(kept_rows, dropped)`` with ``dropped`` a reason -> count dict (only reasons seen).
    """
    if on_bad not in ("drop", "raise"):
        raise ValueError(f"on_bad must be 'drop' or 'raise', got {on_bad!r}")
    kept: list[dict[str, Any]] = []
    dropped: Counter[str] = Counter()
    for index, row in enumerate(rows):
        missing = [c for c in ("prompt", "chosen", "rejected") if c not in row]
        if missing:
            raise ValueError(f"row {index} is missing column(s) {missing}; it has {sorted(row)}")
        reason = None
        bad = [c for c in ("prompt", "chosen", "rejected") if not isinstance(row[c], str)]
        if bad:
            reason = "non_string"
            detail = f"column {bad[0]!r} is {type(row[bad[0]]).__name__} {row[bad[0]]!r:.60}"
        elif not row["chosen"].strip() or not row["rejected"].strip():
            reason, detail = "empty", "empty completion"
        elif row["chosen"] == row["rejected"]:
            reason, detail = "identical", "chosen and rejected are identical"
        elif tokenizer is not None and max_prompt_length is not None:
            n_tokens = len(tokenizer(text=row["prompt"])["input_ids"])
            if n_tokens > max_prompt_length:
                reason = "prompt_too_long"
                detail = f"prompt has {n_tokens} tokens > max_prompt_length={max_prompt_length}"
        if reason is None:
            kept.append(dict(row))
            continue
        if on_bad == "raise":
            raise ValueError(f"row {index}: {detail}")
        dropped[reason] += 1
    return kept, dict(dropped)


# ----------------------------------------------------------------------------- splitting
def _test_share(key: str, seed: int) -> float:
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_by_key(
    rows: list[dict[str, Any]], key: str, *, test_fraction: float = 0.2, seed: int = 0
) -> Any:
    """A ``DatasetDict`` with ``train``/``test``: every value of ``rows[i][key]`` in one split.

    A key goes to ``test`` when the salted SHA-256 of ``f"{seed}:{value}"`` (as a fraction of
    2**64) is below ``test_fraction``: deterministic, order-free, about ``test_fraction`` of the
    keys.
    """
    from datasets import Dataset, DatasetDict

    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    if not rows:
        raise ValueError("no usable preference pairs to split")
    if key not in rows[0]:
        raise ValueError(f"split key {key!r} is not a column; columns: {sorted(rows[0])}")
    is_test = {v: _test_share(str(v), seed) < test_fraction for v in {r[key] for r in rows}}
    train = [r for r in rows if not is_test[r[key]]]
    test = [r for r in rows if is_test[r[key]]]
    columns = list(rows[0])
    empty = {c: [] for c in columns}
    return DatasetDict(
        train=Dataset.from_list(train) if train else Dataset.from_dict(empty),
        test=Dataset.from_list(test) if test else Dataset.from_dict(empty),
    )


@dataclass(frozen=True)
class _SplitOptions:
    """The keywords all loaders share: the prompt-length filter and the train/test split."""

    test_fraction: float
    seed: int
    tokenizer: Any
    max_prompt_length: int | None

    def finish(
        self, rows: list[dict[str, Any]], dropped: Counter[str], *, split_key: str, name: str
    ) -> PreferenceLoad:
        """Clean ``rows`` (adding to ``dropped``), log what was dropped, split by ``split_key``."""
        kept, more = clean_preference_rows(
            rows, tokenizer=self.tokenizer, max_prompt_length=self.max_prompt_length
        )
        dropped.update(more)
        dropped = Counter({k: v for k, v in dropped.items() if v})
        if dropped:
            logger.warning("%s: dropped %s", name, dict(sorted(dropped.items())))
        dataset = split_by_key(kept, split_key, test_fraction=self.test_fraction, seed=self.seed)
        return PreferenceLoad(dataset=dataset, dropped=dict(sorted(dropped.items())))


def _check_split_by(split_by: str) -> str:
    choices = {"annotator": "annotator_id", "conversation": "conversation_id"}
    if split_by not in choices:
        raise ValueError(f"split_by must be 'annotator' or 'conversation', got {split_by!r}")
    return choices[split_by]


# ----------------------------------------------------------------------------- PRISM
def load_prism(
    utterances: str = PRISM_HUB,
    survey: str | None = None,
    *,
    split_by: str = "annotator",
    test_fraction: float = 0.2,
    seed: int = 0,
    tokenizer: Any = None,
    max_prompt_length: int | None = None,
) -> PreferenceLoad:
    """PRISM pairs with demographics (age, gender, education, employment) and conversation type.

    Args:
        utterances: the hub id (configs ``utterances`` and ``survey`` are read) or a local file of
            the ``utterances`` config (columns ``conversation_id``, ``user_id``, ``turn``,
            ``user_prompt``, ``model_response``, ``if_chosen``, ``conversation_type``).
        survey: a local file of the ``survey`` config (``user_id``, ``age``, ``gender``,
            ``education``, ``employment_status``); default: the hub's when ``utterances`` is the
            hub id.
        split_by: ``"annotator"`` (``user_id``) or ``"conversation"``.
        test_fraction, seed, tokenizer, max_prompt_length: see the module docstring.

    Returns:
        :class:`PreferenceLoad`; columns ``prompt``, ``chosen``, ``rejected``, ``annotator_id``,
        ``conversation_id``, ``turn``, ``conversation_type``, ``age``, ``gender``,
        ``education``, ``employment``. Groups without exactly one chosen response are dropped
        (``"no_single_chosen"``); users missing from the survey get ``"unknown"`` subgroups
        (``"no_survey"`` counts those pairs).
    """
    key = _check_split_by(split_by)
    options = _SplitOptions(test_fraction, seed, tokenizer, max_prompt_length)
    table = _read_table(utterances, "utterances")
    _require(
        table,
        ("conversation_id", "user_id", "turn", "user_prompt", "model_response", "if_chosen"),
        "PRISM utterances",
    )
    if survey is None:
        if os.path.exists(utterances):
            raise ValueError("a local PRISM utterances file needs a local survey file")
        survey = utterances
    survey_table = _read_table(survey, "survey")
    _require(survey_table, ("user_id", *PRISM_SUBGROUPS), "PRISM survey")
    demographics = {
        row["user_id"]: {out: row[col] for col, out in PRISM_SUBGROUPS.items()}
        for row in survey_table.select_columns(["user_id", *PRISM_SUBGROUPS]).to_list()
    }

    turns: dict[Any, dict[int, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for row in table.to_list():
        turns[row["conversation_id"]][int(row["turn"])].append(row)
    rows: list[dict[str, Any]] = []
    dropped: Counter[str] = Counter()
    for conversation_id in sorted(turns, key=str):
        history: list[tuple[str, str]] = []
        for turn in sorted(turns[conversation_id]):
            group = turns[conversation_id][turn]
            chosen = [r for r in group if r["if_chosen"] is True]
            if len(chosen) != 1:
                dropped["no_single_chosen"] += 1
                break  # the conversation's later turns have no defined history
            best = chosen[0]
            user = best["user_id"]
            groups = demographics.get(user)
            others = [r for r in group if r is not best]
            if groups is None:
                dropped["no_survey"] += len(others)  # kept, with unknown subgroups
                groups = dict.fromkeys(PRISM_SUBGROUPS.values(), UNKNOWN)
            prompt = _render(history, best["user_prompt"])
            for other in others:
                rows.append(
                    {
                        "prompt": prompt,
                        "chosen": _completion(best["model_response"]),
                        "rejected": _completion(other["model_response"]),
                        "annotator_id": str(user),
                        "conversation_id": str(conversation_id),
                        "turn": turn,
                        "conversation_type": best.get("conversation_type") or UNKNOWN,
                        **{k: (v if v is not None else UNKNOWN) for k, v in groups.items()},
                    }
                )
            history.append((best["user_prompt"], best["model_response"]))
    no_survey = dropped.pop("no_survey", 0)
    load = options.finish(rows, dropped, split_key=key, name="PRISM")
    if no_survey:
        load.dropped["no_survey (kept, subgroups unknown)"] = no_survey
    return load


# ----------------------------------------------------------------------------- Community Alignment
def _letter(value: Any) -> str | None:
    """``"A"``, ``"a"``, ``"response_a"`` or ``"first_turn_response_a"`` -> ``"a"``."""
    if not isinstance(value, str) or not value.strip():
        return None
    letter = value.strip().lower()[-1]
    return letter if letter in RESPONSE_LETTERS else None


def load_community_alignment(
    source: str = COMMUNITY_ALIGNMENT_HUB,
    *,
    language: str = "en",
    split_by: str = "annotator",
    test_fraction: float = 0.2,
    seed: int = 0,
    tokenizer: Any = None,
    max_prompt_length: int | None = None,
) -> PreferenceLoad:
    """Community Alignment pairs (one language, English by default) with annotator metadata.

    Schema (one row per conversation): ``conversation_id``, ``annotator_id``,
    ``assigned_lang``, ``annotator_<attribute>`` metadata columns, and for each turn
    ``<t>_turn_prompt``, ``<t>_turn_response_<a..d>`` and ``<t>_turn_preferred_response``
    (``t`` in first..fourth; the preference is a letter, ``"A"`` or ``"response_a"``).

    Pairs: the preferred response against each other non-empty response of the turn; the
    preferred response continues the conversation. Subgroup columns: each
    ``annotator_<attribute>`` as ``<attribute>``. Rows of other languages are left out
    (``"other_language"``); a turn without a valid preference ends its conversation
    (``"no_preference"``). ``split_by`` is ``"annotator"`` or ``"conversation"``;
    ``test_fraction``, ``seed``, ``tokenizer``, ``max_prompt_length``: see the module docstring.
    """
    key = _check_split_by(split_by)
    options = _SplitOptions(test_fraction, seed, tokenizer, max_prompt_length)
    table = _read_table(source)
    _require(
        table,
        ("conversation_id", "annotator_id", "assigned_lang", "first_turn_prompt"),
        "Community Alignment",
    )
    meta = [c for c in table.column_names if c.startswith("annotator_") and c != "annotator_id"]
    rows: list[dict[str, Any]] = []
    dropped: Counter[str] = Counter()
    for record in table.to_list():
        lang = record["assigned_lang"]
        if not (isinstance(lang, str) and lang.lower().split("_")[0].split("-")[0] == language):
            dropped["other_language"] += 1
            continue
        groups = {
            c.removeprefix("annotator_"): record[c] if record[c] is not None else UNKNOWN
            for c in meta
        }
        history: list[tuple[str, str]] = []
        for turn_index, turn in enumerate(TURN_NAMES, start=1):
            prompt_text = record.get(f"{turn}_turn_prompt")
            if not isinstance(prompt_text, str) or not prompt_text.strip():
                break  # the conversation ended
            responses = {
                letter: record.get(f"{turn}_turn_response_{letter}") for letter in RESPONSE_LETTERS
            }
            responses = {k: v for k, v in responses.items() if v is not None and v != ""}
            best = _letter(record.get(f"{turn}_turn_preferred_response"))
            if best is None or best not in responses:
                dropped["no_preference"] += 1
                break
            prompt = _render(history, prompt_text)
            for letter, response in responses.items():
                if letter == best:
                    continue
                rows.append(
                    {
                        "prompt": prompt,
                        "chosen": _completion(responses[best]),
                        "rejected": _completion(response),
                        "annotator_id": str(record["annotator_id"]),
                        "conversation_id": str(record["conversation_id"]),
                        "turn": turn_index,
                        **groups,
                    }
                )
            history.append((prompt_text, responses[best]))
    return options.finish(rows, dropped, split_key=key, name="Community Alignment")


# ----------------------------------------------------------------------------- HH-RLHF
def load_hh_rlhf(
    source: str = HH_RLHF_HUB,
    *,
    data_dir: str | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    tokenizer: Any = None,
    max_prompt_length: int | None = None,
) -> PreferenceLoad:
    """Anthropic HH-RLHF pairs: the prompt is the transcript through the last assistant marker.

    Args:
        source: the hub id (all of its ``train`` split, or of ``data_dir`` such as
            ``"harmless-base"``) or a local file with ``chosen``/``rejected`` transcripts.
        test_fraction, seed, tokenizer, max_prompt_length: see the module docstring.

    Returns:
        :class:`PreferenceLoad`; columns ``prompt``, ``chosen``, ``rejected``,
        ``conversation_id`` (a hash of the prompt; the split is by conversation),
        ``annotator_id`` (``"unknown"``: HH has none) and ``subset`` (``data_dir`` or
        ``"all"``). Pairs whose ``rejected`` does not share the prompt are dropped
        (``"prompt_mismatch"``), as are transcripts without an assistant turn
        (``"no_assistant_turn"``).
    """
    from datasets import load_dataset

    options = _SplitOptions(test_fraction, seed, tokenizer, max_prompt_length)
    if os.path.exists(source):
        table = _read_table(source)
    elif data_dir:
        table = load_dataset(source, data_dir=data_dir, split="train")
    else:
        table = load_dataset(source, split="train")
    _require(table, ("chosen", "rejected"), "HH-RLHF")
    rows: list[dict[str, Any]] = []
    dropped: Counter[str] = Counter()
    for chosen, rejected in zip(table["chosen"], table["rejected"], strict=True):
        if not isinstance(chosen, str) or not isinstance(rejected, str):
            dropped["non_string"] += 1
            continue
        cut = chosen.rfind(ASSISTANT)
        if cut < 0:
            dropped["no_assistant_turn"] += 1
            continue
        prompt = chosen[: cut + len(ASSISTANT)]
        if not rejected.startswith(prompt):
            dropped["prompt_mismatch"] += 1
            continue
        rows.append(
            {
                "prompt": prompt.lstrip("\n"),
                "chosen": chosen[len(prompt) :],
                "rejected": rejected[len(prompt) :],
                "annotator_id": UNKNOWN,
                "conversation_id": hashlib.sha256(prompt.encode()).hexdigest()[:16],
                "subset": data_dir or "all",
            }
        )
    return options.finish(rows, dropped, split_key="conversation_id", name="HH-RLHF")
