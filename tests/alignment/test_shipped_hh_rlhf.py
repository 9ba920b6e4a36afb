"""The shipped real pairs (Anthropic HH-RLHF harmless-base test) and the HH transcript split.

The checks are against the source file itself, read here with the standard library: every kept
pair must rebuild both original transcripts exactly, and the copy must be the one its
provenance note names (SHA-256).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re

import pytest

from alignment.datasets import load_default_preferences, load_ground_truth
from alignment.datasets.hub_datasets import ASSISTANT, load_hh_rlhf
from alignment.datasets.shipped import HH_RLHF_FILE, HH_RLHF_KIND

PROVENANCE = HH_RLHF_FILE.parent / "HH_RLHF_README.md"
LICENCE = HH_RLHF_FILE.parent / "HH_RLHF_LICENSE"


def _source_rows():
    with gzip.open(HH_RLHF_FILE, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def test_the_copy_is_the_file_its_provenance_names_with_its_licence():
    digest = hashlib.sha256(HH_RLHF_FILE.read_bytes()).hexdigest()
    stated = re.search(r"SHA-256 ([0-9a-f]{64})", PROVENANCE.read_text()).group(1)
    assert digest == stated
    licence = LICENCE.read_text()
    assert licence.startswith("MIT License") and "Anthropic" in licence
    assert len(_source_rows()) == 2312


def test_every_kept_pair_rebuilds_both_source_transcripts():
    source = _source_rows()
    originals = {(r["chosen"], r["rejected"]) for r in source}
    train = load_default_preferences(HH_RLHF_KIND, "train")
    test = load_default_preferences(HH_RLHF_KIND, "test")
    rows = [*train.to_list(), *test.to_list()]
    # only the empty replies are dropped (counted by hand in the source: 4 empty chosen replies)
    empty = sum(
        not r["chosen"][r["chosen"].rfind(ASSISTANT) + len(ASSISTANT) :].strip() for r in source
    )
    assert empty == 4
    assert len(rows) == len(source) - empty
    for row in rows:
        assert row["prompt"].startswith("Human:") and row["prompt"].endswith(ASSISTANT)
        rebuilt = ("\n\n" + row["prompt"] + row["chosen"], "\n\n" + row["prompt"] + row["rejected"])
        assert rebuilt in originals
    # the replies that contain an assistant marker of their own are kept whole
    inner = [r for r in rows if ASSISTANT in r["chosen"] or ASSISTANT in r["rejected"]]
    assert len(inner) == 5
    # the split is by conversation, deterministic, about a fifth in test
    assert not set(train["conversation_id"]) & set(test["conversation_id"])
    assert (len(train), len(test)) == (1841, 467)
    assert set(train["annotator_id"]) == {"unknown"}


def test_real_data_has_no_ground_truth_and_says_so():
    with pytest.raises(ValueError, match="real human data: it has no ground truth"):
        load_ground_truth(HH_RLHF_KIND)
    with pytest.raises(ValueError, match="split must be one of"):
        load_default_preferences(HH_RLHF_KIND, "validation")


def test_a_reply_with_its_own_assistant_marker_is_cut_at_the_shared_prompt(tmp_path):
    prompt = "\n\nHuman: Name a colour.\n\nAssistant:"
    rows = [
        {"chosen": prompt + " Blue.\n\nAssistant: Or green.", "rejected": prompt + " No."},
        # parting before the last reply is not a comparison of two replies
        {
            "chosen": "\n\nHuman: Hi.\n\nAssistant: Hello.\n\nHuman: Bye.\n\nAssistant: Bye!",
            "rejected": "\n\nHuman: Hi.\n\nAssistant: What?\n\nHuman: Bye.\n\nAssistant: Bye!",
        },
    ]
    path = tmp_path / "hh.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in rows)
    load = load_hh_rlhf(str(path), test_fraction=0.0)
    (row,) = load.dataset["train"].to_list()
    assert row["prompt"] == prompt.lstrip("\n")
    assert (row["chosen"], row["rejected"]) == (" Blue.\n\nAssistant: Or green.", " No.")
    assert load.dropped == {"prompt_mismatch": 1}
