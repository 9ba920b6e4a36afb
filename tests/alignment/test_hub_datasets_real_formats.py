"""Loaders on fixtures in the real hub schemas (PRISM, Community Alignment CSV, HH splits).

Fixtures (``fixtures/*real_format*``, ``fixtures/community_alignment_{full,filtered}.csv``) follow
the released files' fields and quirks: PRISM's tied later turns (``if_chosen`` marks every answer
equal in text to the chosen one), ``"EMPTY STRING"``, nested survey fields, "Prefer not to say";
Community Alignment's CSV with empty cells, literal ``<|end_of_text|>`` and a response "NA", and
an annotator assigned English who wrote Spanish (only in the full file). Expected values are
counted by hand from the fixtures (see the comments).
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest
from datasets import concatenate_datasets

from alignment.datasets.hub_datasets import (
    END_OF_TEXT,
    load_community_alignment,
    load_hh_rlhf,
    load_prism,
)

FIXTURES = Path(__file__).parent / "fixtures"


def _all(load):
    return concatenate_datasets([load.dataset["train"], load.dataset["test"]]).to_list()


def _prism(**kwargs):
    return load_prism(
        str(FIXTURES / "prism_utterances_real_format.jsonl"),
        str(FIXTURES / "prism_survey_real_format.jsonl"),
        **kwargs,
    )


def test_prism_tied_turn_keeps_its_later_turns_and_empty_strings_are_counted():
    load = _prism()
    rows = _all(load)
    # t1: 3 pairs in turn 0, none in the tied turn 1, 1 in turn 2; t2: 1 + 0 + 1 (two pairs lose
    # an "EMPTY STRING"); t3: an ambiguous first turn (two different texts marked) ends it.
    assert len(rows) == 6
    assert load.dropped == {"empty_string": 2, "no_single_chosen": 1}
    assert Counter((r["conversation_id"], r["turn"]) for r in rows) == {
        ("t1", 0): 3,
        ("t1", 2): 1,
        ("t2", 0): 1,
        ("t2", 2): 1,
    }
    late = next(r for r in rows if (r["conversation_id"], r["turn"]) == ("t1", 2))
    assert late["prompt"] == (
        "Human: Which city should I visit in spring?\n\nAssistant: Kyoto, for the blossoms."
        "\n\nHuman: How many days there?\n\nAssistant: Four days is enough."
        "\n\nHuman: Where should I stay?\n\nAssistant:"
    )
    # the empty chosen reply of t2's turn 1 stays in the history as an empty reply
    after_empty = next(r for r in rows if (r["conversation_id"], r["turn"]) == ("t2", 2))
    assert (
        "Human: Another one?\n\nAssistant: \n\nHuman: Thanks.\n\nAssistant:"
        in after_empty["prompt"]
    )
    assert not any("EMPTY STRING" in r["chosen"] + r["rejected"] + r["prompt"] for r in rows)


def test_prism_scores_travel_with_the_pairs():
    rows = [r for r in _all(_prism()) if (r["conversation_id"], r["turn"]) == ("t1", 0)]
    assert {r["score_chosen"] for r in rows} == {92}
    assert sorted(r["score_rejected"] for r in rows) == [20, 55, 80]


def test_prism_nested_demographics_are_selectable_and_prefer_not_to_say_can_be_missing():
    fields = ["gender", "religion.simplified", "ethnicity.simplified", "location.reside_country"]
    kept = {r["annotator_id"]: r for r in _all(_prism(demographics=fields))}
    assert kept["r1"]["religion_simplified"] == "Christian"
    assert kept["r2"]["location_reside_country"] == "United States"
    assert (kept["r2"]["gender"], kept["r2"]["ethnicity_simplified"]) == ("Prefer not to say",) * 2
    missing = {
        r["annotator_id"]: r for r in _all(_prism(demographics=fields, prefer_not_to_say="missing"))
    }
    assert (missing["r2"]["gender"], missing["r2"]["ethnicity_simplified"]) == (
        "unknown",
        "unknown",
    )
    named = _all(_prism(demographics={"faith": "religion.categorised"}))
    assert {r["faith"] for r in named} == {"Christian", "No Affiliation"}
    assert "age" not in named[0]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (["religion.nope"], r"'religion\.nope': user 'r1' has no 'nope'; there: \['categorised'"),
        (["age.band"], r"'age\.band': for user 'r1' 'age' is str '25-34 years old'"),
        (["income"], r"PRISM survey is missing column\(s\) \['income'\]"),
    ],
)
def test_prism_bad_demographic_fields_are_named(fields, message):
    with pytest.raises(ValueError, match=message):
        _prism(demographics=fields)


def _community(name, **kwargs):
    return load_community_alignment(str(FIXTURES / f"community_alignment_{name}.csv"), **kwargs)


def test_community_alignment_loads_from_csv_full_and_filtered():
    full, filtered = _community("full"), _community("filtered")
    # ca-1: 3 + 1 (+0: its third turn has one response); ca-2: 3; ca-3 (Spanish, assigned en): 1;
    # ca-4: Hindi; ca-5: 1, then a turn without a preference.
    assert len(_all(full)) == 9 and len(_all(filtered)) == 8
    assert full.dropped == filtered.dropped == {"no_preference": 1, "other_language": 1}
    rows = _all(full)
    assert {r["conversation_id"] for r in rows} - {
        r["conversation_id"] for r in _all(filtered)
    } == {"ca-3"}
    texts = [t for r in rows for t in (r["prompt"], r["chosen"], r["rejected"])]
    assert not any(END_OF_TEXT in t for t in texts)
    basil = [r for r in rows if r["conversation_id"] == "ca-1" and r["turn"] == 1]
    assert {r["chosen"] for r in basil} == {" Water it when the soil is dry."}
    assert sorted(r["rejected"] for r in basil) == [
        " Give it sun.",
        " NA",
        " Pray.",
    ]  # "NA" is text
    second = next(r for r in rows if r["conversation_id"] == "ca-1" and r["turn"] == 2)
    assert second["chosen"] == " Grow lights help."
    bike = next(r for r in rows if r["conversation_id"] == "ca-2")
    assert (bike["education_level"], bike["ethnicity"], bike["country"]) == (
        "unknown",
        "unknown",
        "Mexico",
    )
    assert set(rows[0]) >= {"age", "gender", "education_level", "political", "ethnicity", "country"}


def _write_hh(path, rows):
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in rows)
    return str(path)


def test_hh_official_test_split_is_used_when_given(tmp_path):
    source = [json.loads(line) for line in (FIXTURES / "hh_rlhf.jsonl").read_text().splitlines()]
    train = _write_hh(tmp_path / "train.jsonl.gz", source[:3])
    test = _write_hh(tmp_path / "test.jsonl.gz", source[5:])
    official = load_hh_rlhf(train, test_source=test)
    assert len(official["train"]) == 2 and len(official["test"]) == 1  # row 3 parts early
    assert official["test"][0]["chosen"] == " I can't help with breaking into property."
    carved = load_hh_rlhf(train, test_source=test, test_fraction=0.0)
    assert len(carved["train"]) == 2 and len(carved["test"]) == 0  # a number carves, ignores test
    with pytest.raises(FileNotFoundError, match=r"test_source 'nope\.jsonl' is not a file"):
        load_hh_rlhf(train, test_source="nope.jsonl")
