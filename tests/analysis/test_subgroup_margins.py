"""Subgroup margins: hand-computed micro/macro, bootstrap coverage, gains, flags, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.margins import (
    bootstrap_group_means,
    micro_macro_margins,
    subgroup_gains,
    subgroup_margins,
)


def _toy() -> pd.DataFrame:
    # method a: young [1, 2, 3], old [10]; one pair without age. method b: young [0, 2], old [4, 6]
    return pd.DataFrame(
        {
            "method": ["a", "a", "a", "a", "a", "b", "b", "b", "b"],
            "age": ["young", "young", "young", "old", None, "young", "young", "old", "old"],
            "gender": ["f", "m", "f", "m", "f", "f", "m", "m", "f"],
            "margin": [1.0, 2.0, 3.0, 10.0, 100.0, 0.0, 2.0, 4.0, 6.0],
        }
    )


def test_micro_macro_match_hand_computed_values():
    result = subgroup_margins(_toy(), ["age", "gender"], num_boot=200, min_count=2)
    sub = result.subgroups.set_index(["method", "attribute", "subgroup"])
    assert sub.loc[("a", "age", "young"), "mean"] == pytest.approx(2.0, abs=1e-15)
    assert sub.loc[("a", "age", "young"), "std"] == pytest.approx(1.0, abs=1e-15)
    assert sub.loc[("a", "age", "old"), "n"] == 1
    assert bool(sub.loc[("a", "age", "old"), "small"])
    assert not bool(sub.loc[("a", "age", "young"), "small"])
    # gender of method a: f [1, 3, 100], m [2, 10]
    assert sub.loc[("a", "gender", "f"), "mean"] == pytest.approx(104 / 3, abs=1e-12)
    overall = result.overall.set_index(["method", "attribute", "kind"])
    # age of method a: the pair without age is left out; micro = 16 / 4, macro = (2 + 10) / 2
    assert overall.loc[("a", "age", "micro"), "mean"] == pytest.approx(4.0, abs=1e-15)
    assert overall.loc[("a", "age", "macro"), "mean"] == pytest.approx(6.0, abs=1e-15)
    assert overall.loc[("a", "age", "micro"), "n_missing"] == 1
    assert overall.loc[("a", "gender", "micro"), "mean"] == pytest.approx(116 / 5, abs=1e-12)
    assert overall.loc[("a", "gender", "macro"), "mean"] == pytest.approx((104 / 3 + 6) / 2)
    assert overall.loc[("b", "age", "micro"), "mean"] == pytest.approx(3.0, abs=1e-15)
    assert overall.loc[("b", "age", "macro"), "mean"] == pytest.approx(3.0, abs=1e-15)
    # a subgroup of one pair has a degenerate interval at its value
    assert sub.loc[("a", "age", "old"), ["ci_low", "ci_high"]].tolist() == [10.0, 10.0]
    for table in (result.subgroups, result.overall):
        assert (table["ci_low"] <= table["mean"]).all() and (
            table["mean"] <= table["ci_high"]
        ).all()
        assert np.isfinite(table.select_dtypes("number").to_numpy(float)).all()


def test_micro_macro_core_by_hand():
    # young [1, 2, 3], old [10]: micro 16 / 4, macro (2 + 10) / 2
    result = micro_macro_margins([1.0, 10.0, 2.0, 3.0], ["young", "old", "young", "young"])
    assert result == {
        "micro": 4.0,
        "macro": 6.0,
        "by_group": {"old": 10.0, "young": 2.0},
        "counts": {"old": 1, "young": 3},
    }
    ordered = micro_macro_margins([1.0, 10.0], ["a", "b"], levels=["b", "a"])
    assert list(ordered["by_group"]) == ["b", "a"]
    with pytest.raises(ValueError, match=r"subgroup\(s\) \['c'\] have no pair"):
        micro_macro_margins([1.0, 10.0], ["a", "b"], levels=["a", "b", "c"])
    with pytest.raises(ValueError, match="must both be"):
        micro_macro_margins([1.0, 2.0], ["a"])


def test_categorical_order_is_kept_and_seed_reproducible():
    frame = _toy().dropna()
    frame["age"] = pd.Categorical(frame["age"], categories=["young", "old"], ordered=True)
    first = subgroup_margins(frame, "age", num_boot=300, seed=3)
    second = subgroup_margins(frame, "age", num_boot=300, seed=3)
    assert first.subgroups["subgroup"].tolist()[:2] == ["young", "old"]
    pd.testing.assert_frame_equal(first.subgroups, second.subgroups)


def test_bootstrap_group_means_standard_error_matches_formula():
    rng = np.random.default_rng(0)
    values = rng.normal(size=400)
    groups = np.repeat([0, 1], [100, 300])
    reps = bootstrap_group_means(values, np.ones(400), groups, 2, 20_000, rng)
    # bootstrap variance of a mean is the plug-in variance / n
    for g, n in ((0, 100), (1, 300)):
        plug_in_se = values[groups == g].std(ddof=0) / np.sqrt(n)
        assert reps[:, g].std() == pytest.approx(plug_in_se, rel=0.03)
        assert reps[:, g].mean() == pytest.approx(
            values[groups == g].mean(), abs=0.05 * plug_in_se * 3
        )


def test_bootstrap_intervals_cover_truth_at_nominal_rate():
    """Over 500 simulated data sets, 90 % intervals cover subgroup, micro and macro truths."""
    rng = np.random.default_rng(2024)
    probabilities = np.array([0.2, 0.3, 0.5])
    means = np.array([-1.0, 0.5, 2.0])
    sds = np.array([1.0, 2.0, 3.0])
    truth = {"g0": -1.0, "g1": 0.5, "g2": 2.0}
    truth["micro"] = float(probabilities @ means)
    truth["macro"] = float(means.mean())
    num_datasets, size, interval = 500, 240, 0.9
    covered = {key: 0 for key in truth}
    for _ in range(num_datasets):
        labels = rng.choice(3, size=size, p=probabilities)
        margin = rng.normal(means[labels], sds[labels])
        frame = pd.DataFrame({"margin": margin, "group": [f"g{i}" for i in labels]})
        result = subgroup_margins(frame, "group", num_boot=400, interval=interval, seed=rng)
        rows = [
            *result.subgroups.set_index("subgroup")[["ci_low", "ci_high"]].iterrows(),
            *result.overall.set_index("kind")[["ci_low", "ci_high"]].iterrows(),
        ]
        for key, (low, high) in rows:
            covered[key] += bool(low <= truth[key] <= high)
    rates = {key: count / num_datasets for key, count in covered.items()}
    # binomial s.e. of one rate is 0.0134 (band: 3.5 s.e.); percentile intervals run ~1 point
    # narrow for the smallest subgroup (n ~ 48). A wrong scale of the bootstrap spread by 1.4x
    # would give 0.76 or 0.98.
    for key, rate in rates.items():
        assert 0.853 <= rate <= 0.947, (key, rates)
    pooled = sum(covered.values()) / (num_datasets * len(covered))
    assert 0.87 <= pooled <= 0.93, rates


def test_cluster_bootstrap_widens_intervals_by_the_design_effect():
    rng = np.random.default_rng(5)
    annotators = np.repeat(np.arange(40), 10)
    group = np.where(annotators < 20, "a", "b")
    annotator_effect = rng.normal(scale=2.0, size=40)[annotators]
    frame = pd.DataFrame(
        {
            "margin": annotator_effect + rng.normal(size=400),
            "group": group,
            "annotator_id": annotators,
            "pair": np.arange(400),
            "context": rng.choice(["x", "y"], size=400),  # varies within an annotator
        }
    )
    width = lambda r: (r.subgroups["ci_high"] - r.subgroups["ci_low"]).to_numpy()  # noqa: E731
    by_pair = subgroup_margins(frame, ["group", "context"], num_boot=2000, seed=1)
    singleton = subgroup_margins(frame, ["group", "context"], num_boot=2000, seed=1, cluster="pair")
    # clusters of one pair: same intervals up to Monte Carlo error (~5 % of the width)
    np.testing.assert_allclose(width(singleton), width(by_pair), rtol=0.12)
    clustered = subgroup_margins(
        frame, ["group", "context"], num_boot=2000, seed=1, cluster="annotator_id"
    )
    # design effect 1 + (m - 1) icc with m = 10 pairs per annotator and icc = 4 / 5: the
    # intervals of 'group' widen by ~sqrt(8.2) = 2.9; 'context' (m ~ 5 per cell) by ~2.2
    ratio = width(clustered) / width(by_pair)
    assert np.all((ratio[:2] > 2.2) & (ratio[:2] < 3.6)), ratio
    assert np.all((ratio[2:] > 1.6) & (ratio[2:] < 3.0)), ratio
    assert np.isfinite(clustered.subgroups[["ci_low", "ci_high"]].to_numpy()).all()
    missing = frame.assign(annotator_id=frame["annotator_id"].astype(float))
    missing.loc[7, "annotator_id"] = np.nan
    with pytest.raises(ValueError, match="cluster column 'annotator_id' is missing at row 7"):
        subgroup_margins(missing, "group", num_boot=200, cluster="annotator_id")


def test_cluster_bootstrap_covers_truth_when_pairs_are_correlated():
    """Pair resampling under-covers with correlated annotators; cluster resampling does not."""
    rng = np.random.default_rng(9)
    num_datasets, covered_pairs, covered_clusters = 200, 0, 0
    annotators = np.repeat(np.arange(30), 8)
    for _ in range(num_datasets):
        margin = rng.normal(scale=1.0, size=30)[annotators] + rng.normal(size=240)
        frame = pd.DataFrame({"margin": margin, "g": "all", "annotator_id": annotators})
        pairs = subgroup_margins(frame, "g", num_boot=400, interval=0.9, seed=rng)
        clusters = subgroup_margins(
            frame, "g", num_boot=400, interval=0.9, seed=rng, cluster="annotator_id"
        )
        covered_pairs += bool(pairs.subgroups.ci_low[0] <= 0 <= pairs.subgroups.ci_high[0])
        covered_clusters += bool(clusters.subgroups.ci_low[0] <= 0 <= clusters.subgroups.ci_high[0])
    # design effect 1 + 7 * 0.5 = 4.5: pair intervals are ~2.1x too narrow (coverage ~ 0.45)
    assert covered_pairs / num_datasets < 0.6
    assert 0.83 <= covered_clusters / num_datasets <= 0.95


def test_paired_and_unpaired_gains_match_hand_computed_values():
    pairs = pd.DataFrame(
        {
            "pair": [0, 1, 2, 3] * 2,
            "method": ["dpo"] * 4 + ["mixdpo"] * 4,
            "edu": ["hs", "hs", "uni", "uni"] * 2,
            "margin": [1.0, 2.0, 3.0, 5.0, 2.0, 4.0, 3.5, 5.5],
        }
    )
    paired = subgroup_gains(pairs, "edu", baseline="dpo", pair_id="pair", num_boot=500)
    sub = paired.subgroups.set_index("subgroup")
    assert sub.loc["hs", "gain"] == pytest.approx(1.5, abs=1e-15)  # (1 + 2) / 2
    assert sub.loc["uni", "gain"] == pytest.approx(0.5, abs=1e-15)
    # the per-pair differences of uni are both 0.5: a degenerate interval, significant
    assert sub.loc["uni", ["ci_low", "ci_high"]].tolist() == [0.5, 0.5]
    assert bool(sub.loc["uni", "significant"]) and bool(sub.loc["hs", "small"])
    overall = paired.overall.set_index("kind")
    assert overall.loc["micro", "gain"] == pytest.approx(1.0, abs=1e-15)
    assert overall.loc["macro", "gain"] == pytest.approx(1.0, abs=1e-15)
    unpaired = subgroup_gains(pairs, "edu", baseline="dpo", num_boot=500)
    assert unpaired.subgroups.set_index("subgroup")["gain"].to_dict() == pytest.approx(
        {"hs": 1.5, "uni": 0.5}, abs=1e-15
    )
    assert not unpaired.paired and paired.paired
    # the paired interval of hs (differences 1, 2) is narrower than the unpaired one
    width = lambda r: r.subgroups.set_index("subgroup").eval("ci_high - ci_low")  # noqa: E731
    assert width(paired)["hs"] < width(unpaired)["hs"]


def test_gain_intervals_cover_truth():
    rng = np.random.default_rng(11)
    covered, num_datasets = 0, 200
    for _ in range(num_datasets):
        n = 120
        base = rng.normal(size=n)
        frame = pd.DataFrame(
            {
                "pair": np.tile(np.arange(n), 2),
                "method": ["dpo"] * n + ["mix"] * n,
                "group": np.tile(np.where(np.arange(n) < 60, "x", "y"), 2),
                "margin": np.concatenate([base, base + 0.3 + rng.normal(scale=0.5, size=n)]),
            }
        )
        gains = subgroup_gains(
            frame, "group", baseline="dpo", pair_id="pair", num_boot=400, interval=0.9, seed=rng
        )
        covered += int(((gains.subgroups.ci_low <= 0.3) & (0.3 <= gains.subgroups.ci_high)).sum())
    rate = covered / (2 * num_datasets)
    assert 0.86 <= rate <= 0.94, rate


def test_bad_input_names_the_problem():
    frame = _toy()
    with pytest.raises(ValueError, match="'income'"):
        subgroup_margins(frame, "income")
    broken = frame.copy()
    broken.loc[3, "margin"] = np.nan
    with pytest.raises(ValueError, match=r"'margin'.*nan at row 3"):
        subgroup_margins(broken, "age")
    with pytest.raises(ValueError, match="baseline 'sft'"):
        subgroup_gains(frame, "age", baseline="sft")
    unmatched = pd.DataFrame(
        {"pair": [0, 1, 0], "method": ["a", "a", "b"], "g": ["x"] * 3, "margin": [1.0, 2.0, 3.0]}
    )
    with pytest.raises(ValueError, match="only one of"):
        subgroup_gains(unmatched, "g", baseline="a", pair_id="pair")
    with pytest.raises(ValueError, match=r"interval must be in \(0, 1\), got 95"):
        subgroup_margins(frame, "age", interval=95)
    with pytest.warns(DeprecationWarning, match="confidence= is deprecated"):
        renamed = subgroup_margins(frame, "age", confidence=0.8, num_boot=100)
    assert renamed.interval == 0.8
    with pytest.warns(DeprecationWarning, match="SubgroupMargins.confidence is deprecated"):
        assert renamed.confidence == 0.8
