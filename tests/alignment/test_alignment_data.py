"""Preference data: validation, tokenisation/truncation, the collator, the embedded datasets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset

from alignment.data import (
    PreferenceCollator,
    tokenize_preference_dataset,
    tokenize_preference_example,
    validate_preference_dataset,
)
from alignment.datasets import semisynthetic
from alignment.datasets.annotator_panels import load_panel_ground_truth, load_panel_preferences
from alignment.datasets.semisynthetic import (
    draw_response_pair,
    largest_remainder_counts,
    make_preference_data,
    response_features,
    response_reward,
    write_default_preferences,
)
from alignment.datasets.shipped import (
    PREFERENCE_KINDS,
    load_default_preferences,
    load_ground_truth,
)


def test_collator_concatenates_pads_and_passes_extras():
    examples = [
        {
            "prompt_ids": [5, 6, 7],
            "chosen_ids": [8, 9],
            "rejected_ids": [10],
            "V": 0.5,
            "types": [1, 0],
        },
        {
            "prompt_ids": [11],
            "chosen_ids": [12],
            "rejected_ids": [13, 14, 15],
            "V": 2.0,
            "types": [0, 1],
        },
    ]
    batch = PreferenceCollator(pad_token_id=0, extra_columns=("V", "types"))(examples)
    assert batch["input_ids"].tolist() == [
        [5, 6, 7, 8, 9],
        [11, 12, 0, 0, 0],
        [5, 6, 7, 10, 0],
        [11, 13, 14, 15, 0],
    ]
    assert batch["attention_mask"].tolist() == [
        [1, 1, 1, 1, 1],
        [1, 1, 0, 0, 0],
        [1, 1, 1, 1, 0],
        [1, 1, 1, 1, 0],
    ]
    assert batch["completion_mask"].tolist() == [
        [0, 0, 0, 1, 1],
        [0, 1, 0, 0, 0],
        [0, 0, 0, 1, 0],
        [0, 1, 1, 1, 0],
    ]
    assert batch["V"].dtype == torch.float32 and batch["V"].tolist() == [0.5, 2.0]
    assert batch["types"].dtype == torch.long and batch["types"].tolist() == [[1, 0], [0, 1]]
    padded = PreferenceCollator(pad_token_id=0, pad_to_multiple_of=4)(examples)
    assert padded["input_ids"].shape == (4, 8)


def test_collator_rejects_missing_or_non_numeric_extra_columns():
    examples = [{"prompt_ids": [1], "chosen_ids": [2], "rejected_ids": [3], "who": "a"}]
    with pytest.raises(KeyError, match="extra column 'V'"):
        PreferenceCollator(0, extra_columns=("V",))(examples)
    with pytest.raises(ValueError, match="extra column 'who' must hold numbers"):
        PreferenceCollator(0, extra_columns=("who",))(examples)


def test_validation_names_column_and_row():
    good = {"prompt": ["p1", "p2"], "chosen": ["a", "b"], "rejected": ["c", "d"]}
    validate_preference_dataset(Dataset.from_dict(good))
    with pytest.raises(ValueError, match=r"missing preference column\(s\) \['rejected'\]"):
        validate_preference_dataset(Dataset.from_dict({"prompt": ["p"], "chosen": ["a"]}))
    with pytest.raises(ValueError, match="column 'chosen' row 1: empty completion"):
        validate_preference_dataset(Dataset.from_dict({**good, "chosen": ["a", "  "]}))
    with pytest.raises(ValueError, match="row 0: chosen and rejected are identical"):
        validate_preference_dataset(Dataset.from_dict({**good, "rejected": ["a", "d"]}))
    with pytest.raises(ValueError, match="column 'prompt' row 1: expected a string"):
        validate_preference_dataset(Dataset.from_dict({**good, "prompt": ["p", None]}))


def test_tokenisation_appends_eos_and_truncates_like_the_paper(word_tokenizer):
    example = {
        "prompt": "How can I cook rice ?\n",
        "chosen": "Rinse the rice",
        "rejected": "Keep it",
    }
    ids = tokenize_preference_example(
        example, word_tokenizer, max_length=None, max_prompt_length=None
    )
    eos = word_tokenizer.eos_token_id
    assert ids["prompt_ids"] == word_tokenizer("How can I cook rice ?")["input_ids"]
    assert ids["chosen_ids"] == [*word_tokenizer("Rinse the rice")["input_ids"], eos]
    assert ids["rejected_ids"][-1] == eos
    short = tokenize_preference_example(example, word_tokenizer, max_length=5, max_prompt_length=2)
    assert short["prompt_ids"] == ids["prompt_ids"][-2:]  # the prompt keeps its end
    assert short["chosen_ids"] == ids["chosen_ids"][:3]  # the completion keeps its start
    with pytest.raises(ValueError, match="max_prompt_length"):
        tokenize_preference_dataset(
            Dataset.from_list([example]), word_tokenizer, max_length=4, max_prompt_length=4
        )


def _approx_json(value):
    """``value`` with every float as ``pytest.approx(rel=1e-12)``: summary statistics of the
    ground truth (e.g. a population CV) may differ in the last bit between NumPy builds,
    whose reductions change order; the data themselves must be identical."""
    if isinstance(value, dict):
        return {k: _approx_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_approx_json(v) for v in value]
    if isinstance(value, float):
        return pytest.approx(value, rel=1e-12, abs=1e-300)
    return value


def test_shipped_data_is_what_the_generator_makes():
    for kind in ("heterogeneous", "homogeneous"):
        made = make_preference_data(homogeneous=kind == "homogeneous")
        for split in ("train", "test"):
            shipped = load_default_preferences(kind, split)
            assert shipped.to_list() == made[split].to_list(), (kind, split)
        made_truth = json.loads(json.dumps(made["ground_truth"]))
        assert load_ground_truth(kind) == _approx_json(made_truth)


def test_regenerating_reproduces_shipped_files(tmp_path):
    written = write_default_preferences(tmp_path)
    assert len(written) == 6
    shipped = Path(semisynthetic.__file__).parent / "data_files"
    for path in written:
        if path.suffix == ".json":  # the ground truth: its statistics to the last bit or so
            theirs = json.loads((shipped / path.name).read_text())
            assert json.loads(path.read_text()) == _approx_json(theirs), path.name
        else:
            assert path.read_bytes() == (shipped / path.name).read_bytes(), path.name


def test_default_loaders_serve_the_panel_sets():
    assert PREFERENCE_KINDS == (
        "heterogeneous",
        "homogeneous",
        "panel_heterogeneous",
        "panel_homogeneous",
        "hh_rlhf_harmless",  # real pairs: tests/alignment/test_shipped_hh_rlhf.py
    )
    for kind in ("heterogeneous", "homogeneous"):
        served = load_default_preferences(f"panel_{kind}", "test")
        assert served.column_names == load_panel_preferences(kind, "test").column_names
        assert served.to_list() == load_panel_preferences(kind, "test").to_list()
        assert load_ground_truth(f"panel_{kind}") == load_panel_ground_truth(kind)
    assert len(load_default_preferences("panel_heterogeneous", "train")) == 1080
    with pytest.raises(ValueError, match=r"kind must be one of .*'panel_homogeneous'.*'mixed'"):
        load_default_preferences("mixed")
    with pytest.raises(ValueError, match=r"kind must be one of .*'panel'"):
        load_ground_truth("panel")
    for kind in ("homogeneous", "panel_homogeneous"):
        with pytest.raises(ValueError, match=r"split must be one of .*'validation'"):
            load_default_preferences(kind, "validation")


@pytest.mark.parametrize(
    ("shares", "total", "expected"),
    [
        # floors 3, 2, 1; remainders .5, .1, .4: the one left goes to the first
        ((0.5, 0.3, 0.2), 7, (4, 2, 1)),
        # equal remainders go to the lower indices
        ((0.25, 0.25, 0.25, 0.25), 6, (2, 2, 1, 1)),
        ((2 / 3, 1 / 3), 7, (5, 2)),
        ((0.1, 0.9), 0, (0, 0)),
    ],
)
def test_largest_remainder_counts_by_hand(shares, total, expected):
    counts = largest_remainder_counts(np.array(shares), total)
    assert tuple(counts.tolist()) == expected


def test_response_pairs_differ_as_asked():
    rng = np.random.default_rng(3)
    for _ in range(200):
        pair = draw_response_pair(rng, distinct="reward")
        assert pair["reward_a"] != pair["reward_b"]
        assert pair["prompt"].endswith("\n") and pair["topic"] in pair["prompt"]
        assert response_reward(pair["text_a"]) == pair["reward_a"]
        pair = draw_response_pair(rng, distinct="features")
        assert response_features(pair["text_a"]) != response_features(pair["text_b"])
    with pytest.raises(ValueError, match="distinct must be 'features' or 'reward', got 'text'"):
        draw_response_pair(rng, distinct="text")


def test_ground_truth_is_measurable_and_consistent():
    het = load_default_preferences("heterogeneous", "train")
    hom = load_default_preferences("homogeneous", "train")
    assert len(het) == 360 and len(load_default_preferences("heterogeneous", "test")) == 120
    # Same prompts and the same response pairs (possibly in swapped order) in the control.
    assert het["prompt"] == hom["prompt"] and het["annotator_id"] == hom["annotator_id"]
    for a, b in zip(het.select(range(50)), hom.select(range(50)), strict=True):
        assert {a["chosen"], a["rejected"]} == {b["chosen"], b["rejected"]}
    for row in het.select(range(60)):
        assert response_reward(row["chosen"]) == row["reward_chosen"]
        assert response_reward(row["rejected"]) == row["reward_rejected"]
        assert 1 <= response_features(row["chosen"])["tips"] <= 3
    # Strength heterogeneity: one strength in the control, subgroup means as specified.
    truth = load_ground_truth("heterogeneous")
    assert len(set(hom["true_strength"])) == 1
    assert hom["true_strength"][0] == pytest.approx(truth["population_mean_strength"])
    assert truth["population_cv"] > 0.9 and load_ground_truth("homogeneous")["population_cv"] == 0
    strengths = np.array(list(truth["annotator_strength"].values()))
    assert strengths.min() < 0.5 and strengths.max() > 3.0
    # Labels follow the Bradley-Terry model: agreement with the reward is highest for the
    # consistent subgroup and near chance for the noisy one.
    gap, groups = np.array(het["reward_gap"]), np.array(het["subgroup"])
    agreement = {g: np.mean(gap[(groups == g) & (gap != 0)] > 0) for g in set(groups)}
    assert agreement["consistent"] > 0.85
    assert agreement["consistent"] > agreement["polarised"] > agreement["noisy"] > 0.55
    assert agreement["noisy"] < 0.7


def test_conversational_pairs_use_the_chat_template(word_tokenizer):
    tokenizer = word_tokenizer
    template = (
        "{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} ; {% endfor %}"
        "{% if add_generation_prompt %}assistant : {% endif %}"
    )
    example = {
        "prompt": [{"role": "user", "content": "How can I cook rice ?"}],
        "chosen": [{"role": "assistant", "content": "Rinse the rice ."}],
        "rejected": [{"role": "assistant", "content": "Keep it"}],
    }
    previous = tokenizer.chat_template
    tokenizer.chat_template = template
    try:
        ids = tokenize_preference_example(
            example, tokenizer, max_length=None, max_prompt_length=None
        )
    finally:
        tokenizer.chat_template = previous
    expected_prompt = tokenizer("user : How can I cook rice ? ; assistant :")["input_ids"]
    assert ids["prompt_ids"] == expected_prompt
    assert ids["chosen_ids"] == tokenizer("Rinse the rice . ;")["input_ids"]
    assert ids["rejected_ids"] == tokenizer("Keep it ;")["input_ids"]


def test_collator_dtype_comes_from_every_row_and_ragged_rows_fail():
    rows = [
        {"prompt_ids": [1], "chosen_ids": [2], "rejected_ids": [3], "V": 2, "gaps": [1, 0]},
        {"prompt_ids": [1], "chosen_ids": [2], "rejected_ids": [3], "V": 0.25, "gaps": [0.5, 1]},
    ]
    batch = PreferenceCollator(0, extra_columns=("V", "gaps"))(rows)
    # an integer in the first row must not truncate the later floats
    assert batch["V"].dtype == torch.float32 and batch["V"].tolist() == [2.0, 0.25]
    assert batch["gaps"].dtype == torch.float32 and batch["gaps"].tolist() == [[1, 0], [0.5, 1]]
    flags = [{**rows[0], "flag": True}, {**rows[1], "flag": False}]
    assert PreferenceCollator(0, extra_columns=("flag",))(flags)["flag"].tolist() == [1, 0]
    ragged = [{**rows[0], "labels": [1, 0, 1]}, {**rows[1], "labels": [1, 0]}]
    with pytest.raises(ValueError, match="extra column 'labels' cannot be stacked"):
        PreferenceCollator(0, extra_columns=("labels",))(ragged)
    mixed = [{**rows[0], "who": 3}, {**rows[1], "who": "annotator-7"}]
    with pytest.raises(ValueError, match=r"extra column 'who' must hold numbers.*annotator-7"):
        PreferenceCollator(0, extra_columns=("who",))(mixed)


def test_type_columns_survive_tokenisation_and_collation(word_tokenizer):
    from alignment.datasets.semisynthetic_types import make_type_preference_data

    data = make_type_preference_data(seed=3)["train"].select(range(5))
    tokenized = tokenize_preference_dataset(data, word_tokenizer)
    for column in data.column_names:  # nothing is dropped or altered by tokenisation
        assert tokenized[column] == data[column]
    columns = ("annotator_index", "type_id", "type_labels", "type_reward_gaps", "reward_variance")
    batch = PreferenceCollator(word_tokenizer.pad_token_id, extra_columns=columns)(list(tokenized))
    assert batch["input_ids"].shape[0] == 10
    assert batch["annotator_index"].dtype == torch.long
    assert batch["annotator_index"].tolist() == data["annotator_index"]
    assert batch["type_id"].dtype == torch.long and batch["type_id"].tolist() == data["type_id"]
    assert batch["type_labels"].dtype == torch.long and batch["type_labels"].shape == (5, 3)
    assert batch["type_labels"].tolist() == data["type_labels"]
    assert batch["type_reward_gaps"].dtype == torch.float32
    assert np.allclose(batch["type_reward_gaps"].numpy(), data["type_reward_gaps"], atol=1e-6)
    assert np.allclose(batch["reward_variance"].numpy(), data["reward_variance"], rtol=1e-6)


def test_distinct_pairs_finds_each_pair_once_in_either_orientation():
    from alignment.data import distinct_pairs

    rows = {
        "prompt_ids": [[1], [1], [2], [1], [2], [1]],
        "chosen_ids": [[5], [6], [5], [5], [5], [5, 6]],
        "rejected_ids": [[6], [5], [6], [6], [6], [6]],
    }
    first, inverse, sign = distinct_pairs(rows)
    # (1: 5 vs 6) three times, once swapped; (2: 5 vs 6) twice; a longer completion is new
    assert first == [0, 2, 5]
    assert inverse.tolist() == [0, 0, 1, 0, 1, 2]
    assert sign.tolist() == [1, -1, 1, 1, 1, 1]
    margin = torch.tensor([0.5, -2.0, 3.0])
    assert (sign * margin[inverse]).tolist() == [0.5, -0.5, -2.0, 0.5, -2.0, 3.0]
