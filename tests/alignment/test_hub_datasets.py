"""Hub dataset loaders on small local files in each dataset's schema (hand-counted values)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from datasets import concatenate_datasets

from alignment.datasets.hub_datasets import (
    clean_preference_rows,
    load_community_alignment,
    load_hh_rlhf,
    load_prism,
    split_by_key,
)
from alignment.policy_models import build_word_tokenizer

FIXTURES = Path(__file__).parent / "fixtures"


def _all(load):
    return concatenate_datasets([load.dataset["train"], load.dataset["test"]])


def _prism(**kwargs):
    return load_prism(
        str(FIXTURES / "prism_utterances.jsonl"), str(FIXTURES / "prism_survey.jsonl"), **kwargs
    )


def test_prism_pairs_subgroups_and_drops():
    load = _prism()
    rows = _all(load)
    # c1: 3 + 1 pairs; c2 turn 0: 2 others, one identical to the chosen; turn 1: nothing chosen;
    # c3: 1; c4 (user4, not in the survey): 1.
    assert len(rows) == 7
    assert load.dropped == {
        "identical": 1,
        "no_single_chosen": 1,
        "no_survey (kept, subgroups unknown)": 1,
    }
    assert Counter(rows["conversation_type"]) == {
        "unguided": 5,
        "values guided": 1,
        "controversy guided": 1,
    }
    assert Counter(rows["gender"]) == {"Female": 4, "Male": 2, "unknown": 1}
    assert Counter(rows["age"]) == {"18-24 years old": 5, "25-34 years old": 1, "unknown": 1}
    assert Counter(rows["employment"]) == {"Working full-time": 5, "Student": 1, "unknown": 1}
    assert Counter(rows["annotator_id"]) == {"user1": 4, "user2": 1, "user3": 1, "user4": 1}
    second = [r for r in rows if r["turn"] == 1]
    assert len(second) == 1
    # The history is the first turn with its chosen response.
    assert second[0]["prompt"] == (
        "Human: What should I cook tonight?\n\nAssistant: Try a vegetable curry."
        "\n\nHuman: Make it spicy.\n\nAssistant:"
    )
    assert (second[0]["chosen"], second[0]["rejected"]) == (" Add two chillies.", " Add pepper.")


def test_community_alignment_english_pairs():
    load = load_community_alignment(str(FIXTURES / "community_alignment.jsonl"))
    rows = _all(load)
    # ca1: 3 + 1; ca2 is French; ca3: 2 (response d is empty), turn 2 has no preference; ca4: 1.
    assert len(rows) == 7
    assert load.dropped == {"other_language": 1, "no_preference": 1}
    assert Counter(rows["annotator_id"]) == {"a1": 5, "a3": 2}
    assert Counter(rows["gender"]) == {"female": 5, "male": 2}
    assert Counter(rows["education_level"]) == {"bachelor": 5, "high school": 2}
    assert Counter(rows["turn"]) == {1: 6, 2: 1}
    ca4 = [r for r in rows if r["conversation_id"] == "ca4"]
    assert (ca4[0]["chosen"], ca4[0]["rejected"]) == (" Seven.", " Nine.")


def test_hh_rlhf_prompt_split():
    load = load_hh_rlhf(str(FIXTURES / "hh_rlhf.jsonl"))
    rows = _all(load)
    assert len(rows) == 3
    assert load.dropped == {"identical": 1, "no_assistant_turn": 1, "prompt_mismatch": 1}
    book = next(r for r in rows if "book" in r["prompt"])
    assert book["prompt"] == (
        "Human: Hi there.\n\nAssistant: Hello! How can I help?\n\nHuman: Recommend a book."
        "\n\nAssistant:"
    )
    assert (book["chosen"], book["rejected"]) == (" Try Middlemarch.", " No.")
    assert set(rows["subset"]) == {"all"}


@pytest.mark.parametrize("split_by", ["annotator", "conversation"])
def test_splits_are_disjoint_and_deterministic(split_by):
    column = {"annotator": "annotator_id", "conversation": "conversation_id"}[split_by]
    first = _prism(split_by=split_by, test_fraction=0.5, seed=3).dataset
    again = _prism(split_by=split_by, test_fraction=0.5, seed=3).dataset
    assert first["train"].to_list() == again["train"].to_list()
    assert not set(first["train"][column]) & set(first["test"][column])
    assert len(first["train"]) + len(first["test"]) == 7
    # Order-free: reversing the rows gives the same assignment.
    rows = concatenate_datasets([first["train"], first["test"]]).to_list()
    reversed_split = split_by_key(rows[::-1], column, test_fraction=0.5, seed=3)
    assert sorted(reversed_split["test"][column]) == sorted(first["test"][column])
    assert len(_prism(split_by=split_by, test_fraction=0.0).dataset["test"]) == 0


def test_prism_missing_column_names_it(tmp_path):
    bad = tmp_path / "utterances.jsonl"
    bad.write_text('{"conversation_id": "c", "user_id": "u", "turn": 0, "user_prompt": "x"}\n')
    with pytest.raises(ValueError, match=r"missing column\(s\) \['model_response', 'if_chosen'\]"):
        load_prism(str(bad), str(FIXTURES / "prism_survey.jsonl"))


def test_bad_rows_counted_or_raised():
    rows = [
        {"prompt": "a b", "chosen": " c", "rejected": " d"},
        {"prompt": "a b", "chosen": " ", "rejected": " d"},  # empty
        {"prompt": "a b", "chosen": " c", "rejected": " c"},  # identical
        {"prompt": "a b", "chosen": 3, "rejected": " d"},  # non-string
        {"prompt": "a b a b a b", "chosen": " c", "rejected": " d"},  # 6 tokens > 4
    ]
    tokenizer = build_word_tokenizer(["a b c d"])
    kept, dropped = clean_preference_rows(rows, tokenizer=tokenizer, max_prompt_length=4)
    assert kept == rows[:1]
    assert dropped == {"empty": 1, "identical": 1, "non_string": 1, "prompt_too_long": 1}
    with pytest.raises(ValueError, match="row 1: column 'chosen' is int 3"):
        clean_preference_rows(rows[:1] + rows[3:4], on_bad="raise")
    with pytest.raises(ValueError, match="row 1: prompt has 6 tokens > max_prompt_length=4"):
        clean_preference_rows(
            [rows[0], rows[4]], tokenizer=tokenizer, max_prompt_length=4, on_bad="raise"
        )
    with pytest.raises(ValueError, match=r"row 0 is missing column\(s\) \['rejected'\]"):
        clean_preference_rows([{"prompt": "a", "chosen": "b"}])
