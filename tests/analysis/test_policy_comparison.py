"""analysis.policy_comparison: numbers against closed forms, the answer against the tables.

The evaluation tables here are drawn with seeds and a structure (two sets, 30 annotators of
5 to 11 pairs, a shift on one set only) that were not used while writing the module.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from analysis.policy_comparison import compare_policies, holm_adjust


def test_holm_adjust_by_hand():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> running max 0.06
    np.testing.assert_allclose(holm_adjust([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm_adjust([0.5, 0.6]), [1.0, 1.0])
    assert holm_adjust([]).size == 0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm_adjust([0.1, 1.5])


def _evaluation(seed, shift):
    """Two sets; per pair a reference margin, a baseline ``dpo`` and ``mix`` that adds
    ``shift[set]`` nats; annotators of 5 to 11 pairs share an offset."""
    rng = np.random.default_rng(seed)
    rows = []
    pair = 1000
    for dataset, annotator in itertools.product(("hetero", "control"), range(30)):
        offset = rng.normal(0.0, 0.5)
        for _ in range(rng.integers(5, 12)):
            reference = rng.normal(0.0, 1.0)
            dpo = reference + 2.0 + offset + rng.normal(0.0, 1.0)
            mix = dpo + shift[dataset] + rng.normal(0.0, 0.3)
            for method, margin in (("dpo", dpo), ("mix", mix)):
                rows.append(
                    {
                        "dataset": dataset,
                        "pair_id": pair,
                        "annotator_id": f"{dataset}-{annotator}",
                        "method": method,
                        "margin": margin,
                        "reference_margin": reference,
                    }
                )
            pair += 1
    return pd.DataFrame(rows)


def test_tables_match_direct_computation():
    frame = _evaluation(seed=90210, shift={"hetero": 0.0, "control": 0.0})
    result = compare_policies(frame, baseline="dpo", cluster="annotator_id", num_boot=1000, seed=3)
    policies = result.policies.set_index(["dataset", "method"])
    for (dataset, method), rows in frame.groupby(["dataset", "method"]):
        row = policies.loc[(dataset, method)]
        assert row["n"] == len(rows)
        assert row["margin"] == pytest.approx(rows["margin"].mean(), rel=1e-12)
        assert row["accuracy"] == pytest.approx((rows["margin"] > 0).mean(), rel=1e-12)
        gain = rows["margin"] - rows["reference_margin"]
        assert row["gain_over_reference"] == pytest.approx(gain.mean(), rel=1e-12)
        for key in ("margin", "accuracy", "gain_over_reference"):
            assert row[f"{key}_low"] < row[key] < row[f"{key}_high"]
        reference = policies.loc[(dataset, "reference")]
        assert reference["margin"] == pytest.approx(rows["reference_margin"].mean(), rel=1e-12)
        assert np.isnan(reference["gain_over_reference"])
    contrasts = result.contrasts.set_index("dataset")
    for dataset, rows in frame.groupby("dataset"):
        wide = rows.pivot(index="pair_id", columns="method", values="margin")
        assert contrasts.loc[dataset, "gain"] == pytest.approx(
            (wide["mix"] - wide["dpo"]).mean(), rel=1e-12
        )


def test_bootstrap_interval_matches_the_normal_theory_width():
    """Pair resampling of i.i.d. differences: the 95 % interval's width is close to
    2 * 1.96 * sd / sqrt(n) (within 10 %, far more than the bootstrap's own error at B=4000)."""
    frame = _evaluation(seed=7741, shift={"hetero": 0.4, "control": 0.0})
    result = compare_policies(frame, baseline="dpo", num_boot=4000, seed=5)
    for row in result.contrasts.itertuples():
        part = frame[frame["dataset"] == row.dataset]
        wide = part.pivot(index="pair_id", columns="method", values="margin")
        diff = wide["mix"] - wide["dpo"]
        width = 2 * 1.959964 * diff.std(ddof=0) / np.sqrt(len(diff))
        assert row.gain_high - row.gain_low == pytest.approx(width, rel=0.1)


def test_detects_the_shift_only_where_it_is_and_says_so():
    frame = _evaluation(seed=55501, shift={"hetero": 0.25, "control": 0.0})
    result = compare_policies(frame, baseline="dpo", cluster="annotator_id", num_boot=2000)
    contrasts = result.contrasts.set_index("dataset")
    assert bool(contrasts.loc["hetero", "detected"]) and not contrasts.loc["control", "detected"]
    # two comparisons: the smaller p-value is doubled
    smaller = contrasts["p_value"].min()
    assert contrasts.loc["hetero", "p_holm"] == pytest.approx(min(1.0, 2 * smaller))
    answer = " ".join(result.answer())
    gain = contrasts.loc["hetero"]
    assert f"mix is above dpo on hetero: {gain['gain']:+.3f} nats" in answer
    assert (
        "one of 2 comparisons" in answer and "The other comparison detects no difference." in answer
    )
    # every policy's gain over the reference excludes 0 (the baseline adds 2 nats)
    assert "On hetero, every policy gains" in answer


def test_no_difference_is_reported_as_such():
    frame = _evaluation(seed=31337, shift={"hetero": 0.0, "control": 0.0})
    result = compare_policies(frame, baseline="dpo", cluster="annotator_id", num_boot=2000)
    assert not result.contrasts["detected"].any()
    answer = result.answer()
    assert answer[0].startswith("No difference from dpo detected: none of the 2 comparisons")
    largest = result.contrasts.loc[result.contrasts["gain"].abs().idxmax()]
    assert f"{largest['gain']:+.3f} nats [{largest['gain_low']:+.3f}" in answer[0]


def test_bad_tables_are_named():
    frame = _evaluation(seed=4, shift={"hetero": 0.0, "control": 0.0})
    with pytest.raises(ValueError, match="lacks column"):
        compare_policies(frame.drop(columns="pair_id"))
    broken = frame.copy()
    broken.loc[17, "margin"] = np.nan
    with pytest.raises(ValueError, match="'margin' has a non-finite value nan at row 17"):
        compare_policies(broken)
    with pytest.raises(ValueError, match="scored different pairs"):
        compare_policies(frame.drop(index=[1]))
    with pytest.raises(ValueError, match="twice"):
        compare_policies(pd.concat([frame, frame.iloc[[0]]]))
    with pytest.raises(ValueError, match="baseline 'ipo'"):
        compare_policies(frame, baseline="ipo")


def _seeded_evaluation(seed):
    """One set, 24 annotators of 4 to 9 pairs; ``dpo`` trained with 2 seeds and ``mix`` with 3,
    each seed shifting all of its margins, and each seed with its own reference model."""
    rng = np.random.default_rng(seed)
    pairs = [
        (f"a{annotator}", pair)
        for annotator in range(24)
        for pair in range(annotator * 100, annotator * 100 + int(rng.integers(4, 10)))
    ]
    rows = []
    for method, seeds, lift in (("dpo", (11, 12), 1.0), ("mix", (11, 12, 13), 1.4)):
        for run_seed in seeds:
            shift = rng.normal(0.0, 0.3)
            for annotator, pair in pairs:
                reference = rng.normal(0.0, 1.0) + 0.01 * run_seed
                rows.append(
                    {
                        "pair_id": pair,
                        "annotator_id": annotator,
                        "method": method,
                        "seed": run_seed,
                        "margin": reference + lift + shift + rng.normal(0.0, 1.0),
                        "reference_margin": reference,
                    }
                )
    return pd.DataFrame(rows)


def test_seed_replicates_are_averaged_and_their_spread_reported():
    """Fresh seed and structure (one set, unequal seed counts, per-seed references): each
    number is the seed-averaged per-pair quantity, and the spread is that of the seed means."""
    frame = _seeded_evaluation(seed=424242)
    result = compare_policies(frame, baseline="dpo", cluster="annotator_id", num_boot=500, seed=1)
    assert result.replicate == "seed"
    policies = result.policies.set_index("method")
    for method, rows in frame.groupby("method"):
        per_pair = rows.groupby("pair_id")
        row = policies.loc[method]
        assert row["seeds"] == rows["seed"].nunique()
        assert row["margin"] == pytest.approx(per_pair["margin"].mean().mean(), rel=1e-12)
        accuracy = (rows["margin"] > 0).groupby(rows["pair_id"]).mean().mean()
        assert row["accuracy"] == pytest.approx(accuracy, rel=1e-12)
        gain = (rows["margin"] - rows["reference_margin"]).groupby(rows["pair_id"]).mean()
        assert row["gain_over_reference"] == pytest.approx(gain.mean(), rel=1e-12)
        seed_means = rows.groupby("seed")["margin"].mean()
        assert row["margin_seed_sd"] == pytest.approx(seed_means.std(ddof=1), rel=1e-12)
        assert row["margin_low"] < row["margin"] < row["margin_high"]
        table = result.per_seed[result.per_seed["method"] == method].set_index("seed")
        np.testing.assert_allclose(table["margin"], seed_means[table.index], rtol=1e-12)
    wide = frame.groupby(["pair_id", "method"])["margin"].mean().unstack()
    contrast = result.contrasts.iloc[0]
    assert contrast["gain"] == pytest.approx((wide["mix"] - wide["dpo"]).mean(), rel=1e-12)
    mix_seeds = frame[frame["method"] == "mix"].groupby("seed")["margin"].mean()
    above = int((mix_seeds > wide["dpo"].mean()).sum())
    assert contrast["seeds"] == 3 and contrast["seeds_above"] == above
    assert result.answer()[0].startswith("Each policy's numbers are averaged over its 2/3")

    # a single seed value is no replication; no seed column neither: one run per method
    single = frame[frame["seed"] == 11]
    assert compare_policies(single, baseline="dpo", num_boot=200).replicate is None
    plain = compare_policies(single.drop(columns="seed"), baseline="dpo", num_boot=200)
    assert not [c for c in plain.policies if "seed" in c]
    assert not [c for c in plain.contrasts if "seed" in c]
    assert plain.per_seed.empty

    # a seed that missed a pair, and a pair scored twice by one seed, are named
    with pytest.raises(ValueError, match="scored different pairs"):
        compare_policies(frame.drop(index=frame.index[-1]), baseline="dpo", num_boot=200)
    twice = pd.concat([frame, frame.iloc[[0]]], ignore_index=True)
    with pytest.raises(ValueError, match="'dpo' seed 11 on 'all' scores pair 0 twice"):
        compare_policies(twice, baseline="dpo", num_boot=200)
    missing = frame.astype({"seed": float})
    missing.loc[5, "seed"] = np.nan
    with pytest.raises(ValueError, match="seed column 'seed' is missing at row 5"):
        compare_policies(missing, baseline="dpo", num_boot=200)
