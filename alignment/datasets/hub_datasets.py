"""Loaders for PRISM, Community Alignment (English) and Anthropic HH-RLHF in the preference format.

Each loader reads the dataset from the hub by default, or a local file in the same schema
(``.csv``, ``.jsonl``/``.jsonl.gz``, ``.json``, ``.parquet``; JSON lines and CSV are read without
the HF cache, CSV cells as text), turns it into ``prompt``/``chosen``/``rejected`` pairs with
``annotator_id``, ``conversation_id`` and subgroup columns, drops unusable rows with a reported
count, and splits train/test deterministically by annotator or by conversation (a salted
SHA-256 of the key, so the split depends neither on row order nor on the machine). A hub id
with the Hub out of reach fails at once (:class:`~alignment._hub.HubUnreachableError`).

Text format: multi-turn prompts are rendered as ``"Human: ...\\n\\nAssistant: ...\\n\\nHuman:
...\\n\\nAssistant:"`` and completions start with a space, as in HH-RLHF.

Pairing rules:
    * PRISM (``utterances`` + ``survey`` configs): within each ``(conversation_id, turn)`` the
      chosen response against each response not chosen; identical answers that ``if_chosen``
      marks together are one chosen response; earlier turns (user prompt and the chosen
      response) form the history; ``"EMPTY STRING"`` is an empty text; the survey's fields,
      nested ones by dotted path, are joined by ``user_id``; the raters' scores travel along.
    * Community Alignment: within each turn of each conversation, the preferred response against
      each other response; the preferred response continues the conversation; one language
      (``assigned_lang``); literal ``<|end_of_text|>`` tokens are removed.
    * HH-RLHF: the prompt is the transcript the two sides share, up to and including its last
      ``"\\n\\nAssistant:"``; the replies after it must not start a new human turn. The hub's
      official test split is used unless ``test_fraction`` asks for a carved one.

Keywords shared by the loaders: ``test_fraction`` (share of keys in ``test``, in ``[0, 1)``) and
``seed`` (the salt), see :func:`split_by_key`; ``tokenizer`` and ``max_prompt_length`` (drop
pairs whose prompt has more tokens, counted as ``"prompt_too_long"``), see
:func:`clean_preference_rows`.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import math
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from alignment._hub import require_hub

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

# What to pass instead of a hub id (named when the Hub cannot be reached).
_LOCAL_HINTS = {
    PRISM_HUB: "load_prism('utterances.jsonl', 'survey.jsonl') with the two configs' files",
    COMMUNITY_ALIGNMENT_HUB: "load_community_alignment('community_alignment.jsonl')",
    HH_RLHF_HUB: (
        "load_hh_rlhf('harmless-base/test.jsonl.gz') with a file of the anthropics/hh-rlhf "
        "repository, or the shipped pairs load_default_preferences('hh_rlhf_harmless')"
    ),
}

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
#: How PRISM writes an empty prompt or response.
PRISM_EMPTY = "EMPTY STRING"
#: An end-of-text token some Community Alignment responses carry literally.
END_OF_TEXT = "<|end_of_text|>"


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
        if lower.endswith((".jsonl", ".jsonl.gz")):
            # JSON lines are read here: no copy in the HF cache, no builder run per load.
            from datasets import Dataset

            opener = gzip.open if lower.endswith(".gz") else open
            with opener(source, "rt", encoding="utf-8") as handle:
                return Dataset.from_list([json.loads(line) for line in handle if line.strip()])
        if lower.endswith((".csv", ".csv.gz")):
            # Every cell as text, empty cells as "": a response such as "NA" or "null" must stay
            # a string, which pandas' default NA parsing would turn into NaN.
            import pandas as pd
            from datasets import Dataset

            frame = pd.read_csv(source, dtype=str, keep_default_na=False)
            return Dataset.from_pandas(frame, preserve_index=False)
        if lower.endswith((".json", ".json.gz")):
            return load_dataset("json", data_files=source, split="train")
        raise ValueError(f"{source}: expected a .csv, .json, .jsonl or .parquet file")
    require_hub(source, "dataset", _LOCAL_HINTS.get(source, "a local .jsonl or .parquet file"))
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

    def finish_given(
        self, splits: Mapping[str, list[dict[str, Any]]], dropped: Counter[str], *, name: str
    ) -> PreferenceLoad:
        """Like :meth:`finish` for a source with its own ``train``/``test`` split."""
        from datasets import Dataset, DatasetDict

        kept = {}
        for split, rows in splits.items():
            kept[split], more = clean_preference_rows(
                rows, tokenizer=self.tokenizer, max_prompt_length=self.max_prompt_length
            )
            dropped.update(more)
        if not kept["train"]:
            raise ValueError(f"{name}: no usable preference pairs in the train split")
        dropped = Counter({k: v for k, v in dropped.items() if v})
        if dropped:
            logger.warning("%s: dropped %s", name, dict(sorted(dropped.items())))
        columns = list(kept["train"][0])
        dataset = DatasetDict(
            {
                split: Dataset.from_list(rows)
                if rows
                else Dataset.from_dict({c: [] for c in columns})
                for split, rows in kept.items()
            }
        )
        return PreferenceLoad(dataset=dataset, dropped=dict(sorted(dropped.items())))


def _check_split_by(split_by: str) -> str:
    choices = {"annotator": "annotator_id", "conversation": "conversation_id"}
    if split_by not in choices:
        raise ValueError(f"split_by must be 'annotator' or 'conversation', got {split_by!r}")
    return choices[split_by]


# ----------------------------------------------------------------------------- PRISM
def _survey_value(row: Mapping[str, Any], path: str) -> Any:
    """``row["religion"]["simplified"]`` for ``path="religion.simplified"``; a clear error else."""
    value: Any = row
    for depth, part in enumerate(path.split(".")):
        if not isinstance(value, Mapping):
            raise ValueError(
                f"PRISM survey field {path!r}: for user {row.get('user_id')!r} "
                f"{'.'.join(path.split('.')[:depth])!r} is {type(value).__name__} {value!r:.60}, "
                "not an object with sub-fields"
            )
        if part not in value:
            raise ValueError(
                f"PRISM survey field {path!r}: user {row.get('user_id')!r} has no {part!r}; "
                f"there: {sorted(value)}"
            )
        value = value[part]
    return value


def _demographic_paths(demographics: Mapping[str, str] | Sequence[str] | None) -> dict[str, str]:
    """Output column -> survey path (``"religion.simplified"`` becomes ``religion_simplified``)."""
    if demographics is None:
        return dict(zip(PRISM_SUBGROUPS.values(), PRISM_SUBGROUPS, strict=True))
    if isinstance(demographics, Mapping):
        return {str(k): str(v) for k, v in demographics.items()}
    if isinstance(demographics, str):
        raise TypeError("demographics must be a list of survey fields or a mapping, not a str")
    return {path.replace(".", "_"): path for path in demographics}


def _is_empty_text(value: Any) -> bool:
    # PRISM writes empty texts as the literal string "EMPTY STRING".
    return not isinstance(value, str) or not value.strip() or value.strip() == PRISM_EMPTY


def load_prism(
    utterances: str = PRISM_HUB,
    survey: str | None = None,
    *,
    split_by: str = "annotator",
    demographics: Mapping[str, str] | Sequence[str] | None = None,
    prefer_not_to_say: str = "keep",
    test_fraction: float = 0.2,
    seed: int = 0,
    tokenizer: Any = None,
    max_prompt_length: int | None = None,
) -> PreferenceLoad:
    """PRISM pairs with the survey's demographics, conversation type and the raters' scores.

    Args:
        utterances: the hub id (configs ``utterances`` and ``survey`` are read) or a local file of
            the ``utterances`` config (one row per model response: ``conversation_id``,
            ``user_id``, ``turn`` from 0, ``user_prompt``, ``model_response``, ``if_chosen``,
            ``score`` 1-100, ``conversation_type``, ...).
        survey: a local file of the ``survey`` config; default: the hub's when ``utterances`` is
            the hub id.
        split_by: ``"annotator"`` (``user_id``) or ``"conversation"``.
        demographics: the survey fields to carry, as a list of paths (nested fields with dots:
            ``["age", "religion.simplified", "location.birth_country"]``, giving columns
            ``age``, ``religion_simplified``, ...) or a mapping output column -> path. Default:
            ``age``, ``gender``, ``education``, ``employment`` (from ``employment_status``).
        prefer_not_to_say: ``"keep"`` the survey's ``"Prefer not to say"`` as a level, or
            ``"missing"``: map it to ``"unknown"`` like an absent answer.
        test_fraction, seed, tokenizer, max_prompt_length: see the module docstring.

    Pairing: within each ``(conversation_id, turn)`` the chosen response against each response
    not chosen. In later turns the same model answers twice and ``if_chosen`` marks every answer
    whose *text* equals the chosen one, so two identical answers can both be marked: they are
    one chosen response, and the conversation goes on. A turn whose marked answers differ in
    text, or that has none marked, ends its conversation (``"no_single_chosen"``). Pairs with
    an empty response or prompt (PRISM writes ``"EMPTY STRING"``) are dropped
    (``"empty_string"``); an empty chosen reply still continues the history.

    Returns:
        :class:`PreferenceLoad`; columns ``prompt``, ``chosen``, ``rejected``, ``annotator_id``,
        ``conversation_id``, ``turn``, ``conversation_type``, ``score_chosen``,
        ``score_rejected`` (the rater's 1-100 scores, ``None`` where missing) and the
        demographic columns. Users missing from the survey get ``"unknown"`` subgroups
        (``"no_survey"`` counts those pairs).
    """
    key = _check_split_by(split_by)
    if prefer_not_to_say not in ("keep", "missing"):
        raise ValueError(
            f"prefer_not_to_say must be 'keep' or 'missing', got {prefer_not_to_say!r}"
        )
    paths = _demographic_paths(demographics)
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
    _require(
        survey_table,
        ("user_id", *sorted({p.split(".")[0] for p in paths.values()})),
        "PRISM survey",
    )

    def level(value: Any) -> Any:
        if value is None:
            return UNKNOWN
        if prefer_not_to_say == "missing" and str(value).strip().lower() == "prefer not to say":
            return UNKNOWN
        return value

    demographic_rows = {
        row["user_id"]: {out: level(_survey_value(row, path)) for out, path in paths.items()}
        for row in survey_table.to_list()
    }
    has_score = "score" in table.column_names

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
            if len({r["model_response"] for r in chosen}) != 1:
                dropped["no_single_chosen"] += 1
                break  # the conversation's later turns have no defined history
            best = chosen[0]
            user = best["user_id"]
            groups = demographic_rows.get(user)
            others = [r for r in group if r["if_chosen"] is not True]
            if groups is None:
                dropped["no_survey"] += len(others)  # kept, with unknown subgroups
                groups = dict.fromkeys(paths, UNKNOWN)
            prompt = _render(history, best["user_prompt"])
            for other in others:
                texts = (best["user_prompt"], best["model_response"], other["model_response"])
                if any(_is_empty_text(t) for t in texts):
                    dropped["empty_string"] += 1
                    continue
                rows.append(
                    {
                        "prompt": prompt,
                        "chosen": _completion(best["model_response"]),
                        "rejected": _completion(other["model_response"]),
                        "annotator_id": str(user),
                        "conversation_id": str(conversation_id),
                        "turn": turn,
                        "conversation_type": best.get("conversation_type") or UNKNOWN,
                        "score_chosen": best.get("score") if has_score else None,
                        "score_rejected": other.get("score") if has_score else None,
                        **groups,
                    }
                )
            reply = best["model_response"]
            history.append((best["user_prompt"], "" if _is_empty_text(reply) else reply))
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


def _ca_text(value: Any) -> str | None:
    """A Community Alignment text without literal end-of-text tokens; ``None`` when empty."""
    if not isinstance(value, str):
        return None  # None, or NaN from a CSV reader
    text = value.replace(END_OF_TEXT, "").strip()
    return text or None


def _ca_level(value: Any) -> Any:
    """A metadata value, ``"unknown"`` where missing (``None``, an empty cell or NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return UNKNOWN
    if isinstance(value, str) and not value.strip():
        return UNKNOWN
    return value


def load_community_alignment(
    source: str = COMMUNITY_ALIGNMENT_HUB,
    *,
    split: str = "train",
    language: str = "en",
    split_by: str = "annotator",
    test_fraction: float = 0.2,
    seed: int = 0,
    tokenizer: Any = None,
    max_prompt_length: int | None = None,
) -> PreferenceLoad:
    """Community Alignment pairs (one language, English by default) with annotator metadata.

    Schema (one row per conversation, as the hub serves it in CSV): ``conversation_id``,
    ``annotator_id``, ``assigned_lang``, ``annotator_<attribute>`` metadata columns (age,
    gender, education_level, political, ethnicity, country), and for each turn
    ``<t>_turn_prompt``, ``<t>_turn_response_<a..d>`` and ``<t>_turn_preferred_response``
    (``t`` in first..fourth; the preference is ``"response_a"``.. or a letter); other columns
    (``in_balanced_subset``, ``wave``, ...) are ignored.

    Args:
        source: the hub id, or a local ``.csv`` (the hub's files: v1.0 ``full`` or ``filtered``,
            v1.1 ``community_alignment.csv``), ``.jsonl`` or ``.parquet`` file.
        split: the hub split to read: ``"train"`` (v1.1), or v1.0's ``"full"`` / ``"filtered"``.
            The language is taken from ``assigned_lang``; the dataset card says some annotators
            wrote in another language than assigned, which the *filtered* release removes, so
            prefer it for a one-language study.

    Pairs: the preferred response against each other non-empty response of the turn; the
    preferred response continues the conversation. Subgroup columns: each
    ``annotator_<attribute>`` as ``<attribute>``. Rows of other languages are left out
    (``"other_language"``); a turn without a valid preference ends its conversation
    (``"no_preference"``). ``split_by`` is ``"annotator"`` or ``"conversation"``;
    ``test_fraction``, ``seed``, ``tokenizer``, ``max_prompt_length``: see the module docstring.
    """
    key = _check_split_by(split_by)
    options = _SplitOptions(test_fraction, seed, tokenizer, max_prompt_length)
    table = _read_table(source, split=split)
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
        groups = {c.removeprefix("annotator_"): _ca_level(record[c]) for c in meta}
        history: list[tuple[str, str]] = []
        for turn_index, turn in enumerate(TURN_NAMES, start=1):
            prompt_text = _ca_text(record.get(f"{turn}_turn_prompt"))
            if prompt_text is None:
                break  # the conversation ended
            found = {
                letter: _ca_text(record.get(f"{turn}_turn_response_{letter}"))
                for letter in RESPONSE_LETTERS
            }
            responses: dict[str, str] = {k: v for k, v in found.items() if v is not None}
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
def _hh_shared_prompt(chosen: str, rejected: str) -> tuple[str, str | None]:
    """The prompt two HH transcripts share, through its last assistant marker, or a drop reason.

    The cut is the last ``"\\n\\nAssistant:"`` inside the common prefix, not in ``chosen``
    alone: a few real replies contain that marker themselves (4 chosen replies of harmless-base
    test). Transcripts that part before their final reply (a further human turn after the cut)
    are not a comparison of two replies and are dropped (``"prompt_mismatch"``).
    """
    if ASSISTANT not in chosen or ASSISTANT not in rejected:
        return "", "no_assistant_turn"
    shortest = min(len(chosen), len(rejected))
    shared = next((i for i in range(shortest) if chosen[i] != rejected[i]), shortest)
    cut = chosen.rfind(ASSISTANT, 0, shared)
    if cut < 0:
        return "", "prompt_mismatch"
    prompt = chosen[: cut + len(ASSISTANT)]
    human = "\n\n" + HUMAN
    if human in chosen[len(prompt) :] or human in rejected[len(prompt) :]:
        return "", "prompt_mismatch"
    return prompt, None


def _hh_rows(table: Any, subset: str, dropped: Counter[str]) -> list[dict[str, Any]]:
    """The pairs of one HH table (``chosen``/``rejected`` transcripts); drops are counted."""
    _require(table, ("chosen", "rejected"), "HH-RLHF")
    rows: list[dict[str, Any]] = []
    for chosen, rejected in zip(table["chosen"], table["rejected"], strict=True):
        if not isinstance(chosen, str) or not isinstance(rejected, str):
            dropped["non_string"] += 1
            continue
        prompt, reason = _hh_shared_prompt(chosen, rejected)
        if reason:
            dropped[reason] += 1
            continue
        rows.append(
            {
                "prompt": prompt.lstrip("\n"),
                "chosen": chosen[len(prompt) :],
                "rejected": rejected[len(prompt) :],
                "annotator_id": UNKNOWN,
                "conversation_id": hashlib.sha256(prompt.encode()).hexdigest()[:16],
                "subset": subset,
            }
        )
    return rows


def load_hh_rlhf(
    source: str = HH_RLHF_HUB,
    *,
    data_dir: str | None = None,
    test_source: str | None = None,
    test_fraction: float | None = None,
    seed: int = 0,
    tokenizer: Any = None,
    max_prompt_length: int | None = None,
) -> PreferenceLoad:
    """Anthropic HH-RLHF pairs: the prompt is the transcript the two sides share.

    Args:
        source: the hub id (its ``train`` split, all of it or of ``data_dir`` such as
            ``"harmless-base"``) or a local file with ``chosen``/``rejected`` transcripts (e.g.
            ``harmless-base/train.jsonl.gz`` of the anthropics/hh-rlhf repository).
        test_source: a local file for the test split (e.g. ``harmless-base/test.jsonl.gz``).
        test_fraction: ``None`` (default) uses HH's official test split, from the hub (for a hub
            id) or ``test_source``; a local ``source`` alone is then split 80/20. A number instead
            carves that share of conversations out of ``source``'s pairs, ignoring any official
            test split.
        seed, tokenizer, max_prompt_length: see the module docstring.

    Returns:
        :class:`PreferenceLoad`; columns ``prompt``, ``chosen``, ``rejected``,
        ``conversation_id`` (a hash of the prompt; a carved split is by conversation),
        ``annotator_id`` (``"unknown"``: HH has none) and ``subset`` (``data_dir`` or
        ``"all"``). Pairs whose transcripts part before the last reply are dropped
        (``"prompt_mismatch"``), as are transcripts without an assistant turn
        (``"no_assistant_turn"``).

    Raises:
        HubUnreachableError: at once (not after the hub client's retries) when ``source`` is a
            hub id and the Hub cannot be reached; the message names the local alternatives.
    """
    from datasets import load_dataset

    def read(path_or_id: str, split: str) -> Any:
        if os.path.exists(path_or_id):
            return _read_table(path_or_id)
        require_hub(path_or_id, "dataset", _LOCAL_HINTS[HH_RLHF_HUB])
        extra = {"data_dir": data_dir} if data_dir else {}
        return load_dataset(path_or_id, split=split, **extra)

    if test_source is not None and not os.path.exists(test_source):
        raise FileNotFoundError(f"test_source {test_source!r} is not a file")
    is_local = os.path.exists(source)
    official = test_fraction is None and (test_source is not None or not is_local)
    options = _SplitOptions(
        0.2 if test_fraction is None else test_fraction, seed, tokenizer, max_prompt_length
    )
    dropped: Counter[str] = Counter()
    subset = data_dir or "all"
    rows = _hh_rows(read(source, "train"), subset, dropped)
    if not official:
        return options.finish(rows, dropped, split_key="conversation_id", name="HH-RLHF")
    test_rows = _hh_rows(read(test_source or source, "test"), subset, dropped)
    return options.finish_given(
        {"train": rows, "test": test_rows}, dropped, name="HH-RLHF (official test split)"
    )
