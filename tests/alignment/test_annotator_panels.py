"""Annotator-panel data: design invariants, reproducible shipped files, and the recorded truth."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

from alignment.datasets import annotator_panels as panels
from alignment.datasets.semisynthetic import SubgroupSpec, response_reward
from mixlogit.families import get_family

DATA_DIR = Path(panels.__file__).parent / "data_files"

# Designs other than the shipped one: uneven shares, sizes that do not divide, other families.
OTHER_DESIGNS = {
    "two_groups_uneven": dict(
        num_pairs=50,
        num_annotators=7,
        pairs_per_annotator=9,
        subgroups=(
            SubgroupSpec("sharp", "lognormal", {"loc": 1.0, "scale": 0.3}, share=2.0),
            SubgroupSpec("vague", "gamma", {"shape": 3.0, "rate": 10.0}, share=1.0),
        ),
        test_fraction=0.3,
        seed=11,
    ),
    "four_groups_point_mass": dict(
        num_pairs=31,
        num_annotators=10,
        pairs_per_annotator=4,
        subgroups=(
            SubgroupSpec("a", "gamma", {"shape": 20.0, "rate": 2.0}),
            SubgroupSpec("b", "fixed", {"beta": 2.0}),
            SubgroupSpec("c", "lognormal", {"loc": -1.0, "scale": 0.4}),
            SubgroupSpec("d", "gamma", {"shape": 5.0, "rate": 50.0}),
        ),
        covariates=panels.RaterCovariates(
            experience_years=(1, 4),
            experience_reference=2.0,
            experience_log_effect=-0.2,
            age_bands=("young", "old"),
            age_band_shares=(3.0, 1.0),
            age_band_log_effects=(0.1, 0.0),
        ),
        test_fraction=0.2,
        seed=5,
    ),
}


def _frames(data):
    return data["train"].to_pandas(), data["test"].to_pandas()


@pytest.fixture(scope="module")
def shipped():
    out = {}
    for kind in panels.PANEL_KINDS:
        out[kind] = {
            "train": panels.load_panel_preferences(kind, "train"),
            "test": panels.load_panel_preferences(kind, "test"),
            "ground_truth": panels.load_panel_ground_truth(kind),
        }
    return out


@pytest.fixture(scope="module")
def designs(shipped):
    out = {"shipped": shipped["heterogeneous"]}
    for name, kwargs in OTHER_DESIGNS.items():
        out[name] = panels.make_panel_preference_data(**kwargs)
    return out


def test_columns_and_sizes(shipped):
    for kind, data in shipped.items():
        design = data["ground_truth"]["design"]
        assert data["ground_truth"]["kind"] == kind
        for split in ("train", "test"):
            assert tuple(data[split].column_names) == panels.PANEL_COLUMNS
            per_annotator = design[f"{split}_pairs_per_annotator"]
            assert len(data[split]) == design["num_annotators"] * per_annotator
            assert len(data[split]) == design[f"num_{split}_labels"]
        assert design["num_test_pairs"] == round(design["test_fraction"] * design["num_pairs"])
        assert design["num_train_labels"] <= 2000


@pytest.mark.parametrize("name", ["shipped", *OTHER_DESIGNS])
def test_each_annotator_labels_its_pairs_in_both_splits(designs, name):
    data = designs[name]
    design = data["ground_truth"]["design"]
    train, test = _frames(data)
    assert set(train.pair_id).isdisjoint(test.pair_id)  # split by pair
    assert len(set(train.pair_id)) == design["num_train_pairs"]
    assert len(set(test.pair_id)) == design["num_test_pairs"]
    rows = pd.concat([train, test])
    assert not rows.duplicated(["pair_id", "annotator_index"]).any()
    everyone = set(range(design["num_annotators"]))
    for split, frame in (("train", train), ("test", test)):
        counts = frame.groupby("annotator_index").pair_id.nunique()
        assert set(counts.index) == everyone  # every annotator in both splits
        assert (counts == design[f"{split}_pairs_per_annotator"]).all()
    assert (
        design["train_pairs_per_annotator"] + design["test_pairs_per_annotator"]
        == (design["pairs_per_annotator"])
    )
    assert (
        rows.groupby("annotator_index").pair_id.nunique() == design["pairs_per_annotator"]
    ).all()


@pytest.mark.parametrize("name", ["shipped", *OTHER_DESIGNS])
def test_subgroups_spread_evenly_over_pairs(designs, name):
    data = designs[name]
    truth = data["ground_truth"]
    design = truth["design"]
    for split, frame in zip(("train", "test"), _frames(data), strict=True):
        num_pairs = design[f"num_{split}_pairs"]
        per_pair = frame.groupby(["pair_id", "subgroup"]).size().unstack(fill_value=0)
        assert len(per_pair) == num_pairs  # no pair of the split is left unlabelled
        total = per_pair.sum(axis=1)
        assert total.max() - total.min() <= 1
        assert total.min() == len(frame) // num_pairs
        for group in truth["subgroups"]:
            slots = group["num_annotators"] * design[f"{split}_pairs_per_annotator"]
            counts = per_pair.get(group["name"], pd.Series(0, index=per_pair.index))
            assert counts.sum() == slots
            assert counts.min() == slots // num_pairs
            assert counts.max() == -(-slots // num_pairs)


def test_shipped_pairs_are_labelled_by_every_subgroup(shipped):
    train, test = _frames(shipped["heterogeneous"])
    names = {g["name"] for g in shipped["heterogeneous"]["ground_truth"]["subgroups"]}
    for frame in (train, test):
        assert (frame.groupby("pair_id").subgroup.agg(set) == names).all()


def test_panel_design_is_mixed(shipped):
    # Annotators of a subgroup should not all label identical blocks of pairs.
    train, _ = _frames(shipped["heterogeneous"])
    pair_sets = train.groupby("annotator_index").pair_id.agg(frozenset)
    assert pair_sets.nunique() > 0.9 * len(pair_sets)


def test_regenerating_reproduces_shipped_files(tmp_path):
    written = panels.write_panel_preferences(tmp_path)
    assert len(written) == 6
    for path in written:
        assert path.read_bytes() == (DATA_DIR / path.name).read_bytes(), path.name


@pytest.mark.parametrize("name", ["shipped", "two_groups_uneven"])
def test_agreement_with_reward_sign_is_ordered_by_subgroup_strength(designs, name):
    data = designs[name]
    rows = pd.concat(_frames(data))
    agreement = (rows.reward_gap > 0).groupby(rows.subgroup).mean()
    by_strength = sorted(data["ground_truth"]["subgroups"], key=lambda g: g["mean"])
    ordered = [agreement[g["name"]] for g in by_strength]
    assert ordered == sorted(ordered)
    assert ordered[0] > 0.5  # the weakest subgroup still follows the reward on average


def _higher_reward_share(frame: pd.DataFrame) -> pd.Series:
    """Per pair: mean probability that an annotator picks the higher-reward response."""
    q = special.expit(frame.true_strength * frame.reward_gap.abs())
    return q.groupby(frame.pair_id).mean()


def test_control_matches_heterogeneous_shares_within_recorded_tolerance(shipped):
    het = pd.concat(_frames(shipped["heterogeneous"]))
    hom = pd.concat(_frames(shipped["homogeneous"]))
    truth = shipped["homogeneous"]["ground_truth"]
    common = truth["common_strength"]
    assert shipped["heterogeneous"]["ground_truth"]["common_strength"] == common
    assert np.all(hom.true_strength == common)
    diff = _higher_reward_share(hom) - _higher_reward_share(het)
    assert np.sqrt(np.mean(diff**2)) == pytest.approx(truth["share_match"]["rms"], abs=1e-12)
    assert np.max(np.abs(diff)) <= truth["share_match"]["max_abs"] + 1e-12

    # common_strength minimises the squared share difference: compare with a fine grid.
    gaps = het.groupby("pair_id").reward_gap.first().abs()
    target = _higher_reward_share(het)

    def loss(beta):
        return float(np.sum((special.expit(beta * gaps) - target) ** 2))

    grid = np.exp(np.linspace(math.log(0.05), math.log(20.0), 4001))
    best = grid[np.argmin([loss(b) for b in grid])]
    assert common == pytest.approx(best, rel=3e-3)
    assert loss(common) <= min(loss(common * 0.999), loss(common * 1.001))
    # much better than giving everyone the population mean strength
    population_mean = shipped["heterogeneous"]["ground_truth"]["population_mean_strength"]
    assert loss(common) < 0.5 * loss(population_mean)


def test_control_keeps_pairs_annotators_and_covariates(shipped):
    het, hom = shipped["heterogeneous"], shipped["homogeneous"]
    fixed = ["pair_id", "annotator_index", "annotator_id", "prompt", "topic", "subgroup"]
    fixed += ["age_band", "experience"]
    flips = 0
    for split in ("train", "test"):
        a, b = het[split].to_pandas(), hom[split].to_pandas()
        pd.testing.assert_frame_equal(a[fixed], b[fixed])
        assert (
            a[["chosen", "rejected"]].apply(frozenset, axis=1)
            == b[["chosen", "rejected"]].apply(frozenset, axis=1)
        ).all()
        flips += int((a.chosen != b.chosen).sum())
    assert flips > 0  # labels redrawn
    for key in ("annotators", "design", "feature_weights", "seed"):
        if key == "annotators":
            strip = {k: {**v, "strength": None} for k, v in het["ground_truth"][key].items()}
            assert strip == {
                k: {**v, "strength": None} for k, v in hom["ground_truth"][key].items()
            }
        else:
            assert het["ground_truth"][key] == hom["ground_truth"][key]
    assert hom["ground_truth"]["population_cv"] == 0.0
    assert all(g["family"] == "point_mass" for g in hom["ground_truth"]["subgroups"])


@pytest.mark.parametrize("name", ["shipped", *OTHER_DESIGNS])
def test_ground_truth_consistent_with_rows(designs, name):
    data = designs[name]
    truth = data["ground_truth"]
    rows = pd.concat(_frames(data))
    per_annotator = rows.groupby("annotator_id")
    assert (per_annotator.true_strength.nunique() == 1).all()
    for column in ("subgroup", "age_band", "experience", "annotator_index"):
        assert (per_annotator[column].nunique() == 1).all()
    for annotator_id, first in per_annotator.first().iterrows():
        record = truth["annotators"][annotator_id]
        assert first.true_strength == record["strength"]
        assert first.true_strength == truth["annotator_strength"][annotator_id]
        assert annotator_id == f"annotator-{record['index']:03d}"
        assert (first.subgroup, first.age_band, first.experience) == (
            record["subgroup"],
            record["age_band"],
            record["experience"],
        )
    assert [g["num_annotators"] for g in truth["subgroups"]] == [
        rows[rows.subgroup == g["name"]].annotator_id.nunique() for g in truth["subgroups"]
    ]
    assert np.allclose(rows.reward_chosen, [response_reward(t) for t in rows.chosen])
    assert np.allclose(rows.reward_rejected, [response_reward(t) for t in rows.rejected])
    assert np.allclose(rows.reward_gap, rows.reward_chosen - rows.reward_rejected)
    assert (rows.reward_gap != 0).all()
    p = 1.0 / (1.0 + np.exp(-rows.true_strength * rows.reward_gap))
    assert np.allclose(rows.label_probability, p, rtol=1e-12, atol=0)


def test_shipped_strengths_follow_the_covariate_model(shipped):
    truth = shipped["heterogeneous"]["ground_truth"]
    covariates = truth["covariates"]
    slope = covariates["experience"]["log_effect_per_year"]
    reference = covariates["experience"]["reference"]
    bands = covariates["age_band"]["log_effects"]
    # beta / exp(effect) is the draw at the reference covariates; it must stay in the support
    # and be plausible under its subgroup's family (a loose KS check on 24 draws).
    for group in truth["subgroups"]:
        members = [a for a in truth["annotators"].values() if a["subgroup"] == group["name"]]
        baseline = [
            a["strength"] / math.exp(slope * (a["experience"] - reference) + bands[a["age_band"]])
            for a in members
        ]
        dist = get_family(group["family"]).scipy(group["params"])
        assert stats.kstest(baseline, dist.cdf).pvalue > 1e-3


def test_subgroup_and_population_moments_against_scipy(shipped):
    truth = shipped["heterogeneous"]["ground_truth"]
    cov = truth["covariates"]
    years = np.arange(cov["experience"]["years"][0], cov["experience"]["years"][1] + 1)
    levels = cov["age_band"]["levels"]
    # enumerate the covariate grid: effect and probability of every (years, band) cell
    effect = np.array(
        [
            cov["experience"]["log_effect_per_year"] * (y - cov["experience"]["reference"])
            + cov["age_band"]["log_effects"][b]
            for y in years
            for b in levels
        ]
    )
    prob = np.array([share / len(years) for _ in years for share in cov["age_band"]["shares"]])
    assert prob.sum() == pytest.approx(1.0)
    population_first = population_second = 0.0
    for group in truth["subgroups"]:
        dist = get_family(group["family"]).scipy(group["params"])
        assert group["reference_mean"] == pytest.approx(dist.mean(), rel=1e-12)
        assert group["reference_cv"] == pytest.approx(dist.std() / dist.mean(), rel=1e-12)
        first = float(np.sum(prob * dist.mean() * np.exp(effect)))
        second = float(np.sum(prob * dist.moment(2) * np.exp(2 * effect)))
        assert group["mean"] == pytest.approx(first, rel=1e-12)
        assert group["cv"] == pytest.approx(math.sqrt(second - first**2) / first, rel=1e-10)
        population_first += group["share"] * first
        population_second += group["share"] * second
    assert truth["population_mean_strength"] == pytest.approx(population_first, rel=1e-12)
    cv = math.sqrt(population_second - population_first**2) / population_first
    assert truth["population_cv"] == pytest.approx(cv, rel=1e-10)
    means = [g["reference_mean"] for g in truth["subgroups"]]
    assert max(means) / min(means) >= 20  # clearly different subgroups


def test_covariate_effects_recovered_from_many_annotators():
    covariates = panels.DEFAULT_RATER_COVARIATES
    data = panels.make_panel_preference_data(
        num_pairs=8, num_annotators=3000, pairs_per_annotator=2, test_fraction=0.5, seed=3
    )
    annotators = pd.DataFrame(data["ground_truth"]["annotators"].values())
    # OLS of log beta on experience, age band and subgroup dummies
    design = pd.get_dummies(annotators[["age_band", "subgroup"]], drop_first=True, dtype=float)
    design.insert(0, "experience", annotators.experience.astype(float))
    design.insert(0, "const", 1.0)
    x, y = design.to_numpy(), np.log(annotators.strength.to_numpy())
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    resid = y - x @ coef
    se = np.sqrt(np.diag(np.linalg.inv(x.T @ x)) * resid.var(ddof=x.shape[1]))
    estimates = dict(zip(design.columns, zip(coef, se, strict=True), strict=True))
    truth = {"experience": covariates.experience_log_effect}
    reference_band = covariates.age_bands[0]
    for band, effect in zip(covariates.age_bands, covariates.age_band_log_effects, strict=True):
        if band != reference_band:
            truth[f"age_band_{band}"] = effect - covariates.age_band_log_effects[0]
    for name, value in truth.items():
        estimate, error = estimates[name]
        assert abs(estimate - value) < 4 * error, (name, estimate, value, error)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_pairs": 1}, "num_pairs must be >= 2"),
        ({"num_pairs": 2.5}, "num_pairs must be an integer"),
        ({"pairs_per_annotator": 1}, "pairs_per_annotator must be >= 2"),
        ({"num_pairs": 20, "pairs_per_annotator": 21}, "raise num_pairs"),
        ({"num_pairs": 40, "num_annotators": 3, "pairs_per_annotator": 4}, "unlabelled"),
        ({"test_fraction": 1.0}, "test_fraction must be in"),
        ({"num_pairs": 3, "test_fraction": 0.01}, "both splits need at least one pair"),
        ({"num_annotators": 2}, "without annotators"),
        ({"subgroups": ()}, "subgroups must not be empty"),
        (
            {"subgroups": (SubgroupSpec("x", "weibull", {"k": 1.0}),)},
            "subgroup 'x': .*'weibull'",
        ),
        (
            {"subgroups": (SubgroupSpec("x", "gamma", {"shape": -1.0, "rate": 1.0}),)},
            "subgroup 'x': gamma parameter shape must be .*positive",
        ),
        (
            {"subgroups": (SubgroupSpec("x", "gamma", {"shape": 1.0}),)},
            r"subgroup 'x': gamma strength needs parameter\(s\) \['rate'\]",
        ),
        (
            {"subgroups": (SubgroupSpec("x", "gamma", {"shape": 1.0, "rate": 1.0}, share=0.0),)},
            "shares must be positive",
        ),
        (
            {"subgroups": (panels.DEFAULT_PANEL_SUBGROUPS[0],) * 2},
            "subgroup names must be distinct",
        ),
        ({"covariates": {"experience_log_effect": 0.1}}, "covariates must be a RaterCovariates"),
        (
            {"covariates": panels.RaterCovariates(age_band_shares=(1.0, 1.0))},
            "age_band_shares needs one value per age band",
        ),
        (
            {"covariates": panels.RaterCovariates(experience_years=(5, 2))},
            "experience_years must be integers",
        ),
        (
            {"covariates": panels.RaterCovariates(age_band_shares=(1.0, 0.0, 1.0))},
            "age_band_shares must be positive",
        ),
    ],
)
def test_bad_input_raises_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        panels.make_panel_preference_data(**kwargs)


def test_loaders_reject_unknown_kind_and_split():
    with pytest.raises(ValueError, match="kind must be one of"):
        panels.load_panel_preferences("mixed")
    with pytest.raises(ValueError, match="split must be one of"):
        panels.load_panel_preferences("heterogeneous", "validation")
    with pytest.raises(ValueError, match="kind must be one of"):
        panels.load_panel_ground_truth("mixed")
