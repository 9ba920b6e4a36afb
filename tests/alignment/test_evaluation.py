"""Held-out margins by subgroup, win rates with a local judge, length control."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.optimize import minimize

from alignment.datasets.semisynthetic import response_reward
from alignment.evaluation import (
    RewardJudge,
    compare_models,
    evaluate_margins,
    length_controlled_win_rate,
    summarize_margins,
    win_rate,
)
from alignment.policy_models import tiny_causal_lm


@pytest.fixture(scope="module")
def held_out(hetero_train):
    return hetero_train.select(range(12))


def _reference_margin(model, tokenizer, row):
    """Full-logits log-softmax, independent of alignment.logprobs."""
    eos = tokenizer.eos_token
    prompt_ids = tokenizer(text=row["prompt"])["input_ids"]
    out = []
    for completion in (row["chosen"], row["rejected"]):
        ids = tokenizer(text=row["prompt"] + completion + eos)["input_ids"]
        with torch.no_grad():
            logp = model(torch.tensor([ids])).logits[0].double().log_softmax(-1)
        out.append(sum(logp[t - 1, ids[t]].item() for t in range(len(prompt_ids), len(ids))))
    return out[0] - out[1]


def test_margins_table_and_summary(tmp_path, word_tokenizer, held_out):
    model = tiny_causal_lm(len(word_tokenizer), seed=1)
    path = tmp_path / "margins.csv"
    frame = evaluate_margins(
        model,
        held_out,
        word_tokenizer,
        by=["subgroup", "annotator_id"],
        batch_size=5,
        max_length=None,
        max_prompt_length=None,
        output_path=path,
    )
    assert list(frame.columns) == ["pair_index", "margin", "subgroup", "annotator_id"]
    assert frame["subgroup"].tolist() == held_out["subgroup"]
    for i in (0, 7):
        assert frame["margin"][i] == pytest.approx(
            _reference_margin(model, word_tokenizer, held_out[i]), abs=1e-4
        )
    saved = pd.read_csv(path)
    np.testing.assert_allclose(saved["margin"], frame["margin"], rtol=1e-12)

    summary = summarize_margins(frame, ["subgroup"])
    means = frame.groupby("subgroup")["margin"].mean()
    assert summary["n_pairs"] == 12
    assert summary["micro"] == pytest.approx(frame["margin"].mean())
    assert summary["by_column"]["subgroup"]["macro"] == pytest.approx(means.mean())
    assert summary["by_column"]["subgroup"]["counts"] == frame["subgroup"].value_counts().to_dict()
    with pytest.raises(ValueError, match=r"subgroup column\(s\) \['age'\]"):
        evaluate_margins(model, held_out, word_tokenizer, by=["age"])
    with pytest.warns(DeprecationWarning, match="subgroup_columns= is deprecated"):
        assert summarize_margins(frame, subgroup_columns=["subgroup"]) == summary


def test_reference_subtracted_margins_and_their_summary(word_tokenizer, held_out):
    """reward_margin = [log pi(c) - log ref(c)] - [log pi(r) - log ref(r)], checked against the
    full-logits margins of both models; summarize_margins averages it micro and macro."""
    policy = tiny_causal_lm(len(word_tokenizer), seed=2)
    reference = tiny_causal_lm(len(word_tokenizer), seed=3)
    options = dict(by=["subgroup"], batch_size=5, max_length=None, max_prompt_length=None)
    frame = evaluate_margins(policy, held_out, word_tokenizer, reference_model=reference, **options)
    assert list(frame.columns) == [
        "pair_index", "margin", "reference_margin", "reward_margin", "subgroup",
    ]  # fmt: skip
    for i in (1, 9):
        expected = _reference_margin(policy, word_tokenizer, held_out[i]) - _reference_margin(
            reference, word_tokenizer, held_out[i]
        )
        assert frame["reward_margin"][i] == pytest.approx(expected, abs=1e-4)
    summary = summarize_margins(frame, ["subgroup"], value="reward_margin")
    assert summary["micro"] == pytest.approx(frame["reward_margin"].mean())
    macro = frame.groupby("subgroup")["reward_margin"].mean().mean()
    assert summary["by_column"]["subgroup"]["macro"] == pytest.approx(macro)
    assert summary["micro"] != pytest.approx(summarize_margins(frame, ["subgroup"])["micro"])
    # The policy as its own reference: every reward margin is 0, whatever its raw margin.
    itself = evaluate_margins(policy, held_out, word_tokenizer, reference_model=policy, **options)
    assert np.abs(itself["reward_margin"]).max() == 0.0
    assert np.abs(itself["margin"]).min() > 0.0
    with pytest.raises(ValueError, match="column 'reward' is not in the table"):
        summarize_margins(frame, ["subgroup"], value="reward")


def test_reward_judge_win_rate_matches_reward_gaps(hetero_train):
    rows = hetero_train.select(range(60))
    judge = RewardJudge(lambda prompt, response: response_reward(response))
    result = win_rate(rows["prompt"], rows["chosen"], rows["rejected"], judge)
    gaps = np.asarray(rows["reward_gap"])
    expected = ((gaps > 0).sum() + 0.5 * (gaps == 0).sum()) / gaps.size
    assert result["win_rate"] == pytest.approx(expected)
    assert (result["wins"], result["ties"], result["losses"]) == (
        int((gaps > 0).sum()),
        int((gaps == 0).sum()),
        int((gaps < 0).sum()),
    )
    soft = win_rate(
        rows["prompt"],
        rows["chosen"],
        rows["rejected"],
        RewardJudge(lambda p, r: response_reward(r), temperature=2.0),
    )
    assert soft["win_rate"] == pytest.approx(np.mean(1 / (1 + np.exp(-gaps / 2.0))))
    with pytest.raises(ValueError, match=r"judge returned 2\.0 for comparison 0"):
        win_rate(["p"], ["a"], ["b"], lambda p, a, b: 2.0)


def test_length_controlled_fit_matches_scipy():
    rng = np.random.default_rng(0)
    dlen = rng.normal(40.0, 40.0, size=400)
    # A judge that favours length: P(a wins) = sigmoid(0.3 + 1.5 * tanh(dlen / sd)).
    x = np.tanh(dlen / dlen.std())
    y = (rng.random(400) < 1 / (1 + np.exp(-(0.3 + 1.5 * x)))).astype(float)
    fit = length_controlled_win_rate(y, dlen, l2=1e-3)

    def objective(c):
        z = c[0] + c[1] * x
        return -np.mean(y * z - np.logaddexp(0, z)) + 0.5e-3 * (c @ c)

    reference = minimize(objective, np.zeros(2), method="BFGS", options={"gtol": 1e-10}).x
    assert fit["theta"] == pytest.approx(reference[0], abs=1e-6)
    assert fit["phi"] == pytest.approx(reference[1], abs=1e-6)
    assert fit["lc_win_rate"] == pytest.approx(1 / (1 + np.exp(-reference[0])), abs=1e-7)
    # The raw win rate is inflated by a's longer answers; the LC one is not.
    assert y.mean() > fit["lc_win_rate"] + 0.1
    assert abs(fit["lc_win_rate"] - 1 / (1 + np.exp(-0.3))) < 0.08


def test_compare_models_generations(word_tokenizer, hetero_train):
    prompts = hetero_train["prompt"][:4]
    model = tiny_causal_lm(len(word_tokenizer), seed=2)
    other = tiny_causal_lm(len(word_tokenizer), seed=3)
    judge = RewardJudge(lambda p, r: float(len(r)))
    same = compare_models(model, model, word_tokenizer, prompts, judge, max_new_tokens=5)
    assert same["win_rate"] == 0.5 and same["ties"] == 4
    assert same["responses_a"] == same["responses_b"]
    result = compare_models(
        model, other, word_tokenizer, prompts, judge, max_new_tokens=5, length_controlled=True
    )
    lengths = [
        len(a) - len(b) for a, b in zip(result["responses_a"], result["responses_b"], strict=True)
    ]
    expected = np.mean([1.0 if d > 0 else 0.5 if d == 0 else 0.0 for d in lengths])
    assert result["win_rate"] == pytest.approx(expected)
    assert "lc_win_rate" in result
