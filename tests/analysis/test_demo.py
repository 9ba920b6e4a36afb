"""``python -m analysis.demo --quick`` (the smoke mode of ``make demo``) end to end."""

from __future__ import annotations

import html
import json
import re

import numpy as np
import pytest


@pytest.mark.slow
def test_quick_demo_writes_a_report_with_every_section(tmp_path, capsys):
    from alignment import load_default_preferences
    from alignment.evaluation import preference_margins
    from analysis.demo import KINDS, METHODS, PANEL_METHOD, QUICK, demo, load_policy

    output = tmp_path / "demo.html"
    result = demo(
        [
            "--quick",
            "--steps",
            "2",
            "--eval-pairs",
            "24",
            "--output",
            str(output),
            "--run-root",
            str(tmp_path / "runs"),
            # annotator panels: a few steps, short chains (the fits warn; the checks below
            # are of consistency and of the large effects of the shipped panels)
            "--panel-steps",
            "4",
            "--panel-samples",
            "25",
        ]
    )
    printed = capsys.readouterr().out
    assert f"Report: {output}" in printed
    assert re.search(r"Wall time: \d+\.\d s", printed)
    document = output.read_text(encoding="utf-8")
    for heading in (
        '<div class="summary"><h2>Summary</h2>',
        "Policies on held-out pairs",
        "Learned preference strength",
        "Subgroup margins: heterogeneous and homogeneous side by side (shared axes)",
        "Gains over dpo: heterogeneous and homogeneous side by side (shared axes)",
        "Choice model: heterogeneity of tastes",
        "<h2>Reproducibility</h2>",
        "Which subgroups are decisive",
        "Is the strength spread identified?",
        "Annotator panels, homogeneous control",
        "Annotator panels: subgroup strengths from the MixDPO policy",
        "Annotator panels: two-stage estimates against the truth",
    ):
        assert heading in document, heading
    # policies, 4 MixDPO runs with trajectories + densities, margins and gains of both sets,
    # 5 individual + WTP; panels: subgroup forest, annotators, prior vs posterior, CV profile,
    # control forest, policy forest
    assert document.count("data:image/svg+xml;base64,") >= 19
    # the summary box answers for the four contrasts (2 MixDPO families x 2 sets), adjusted
    box = document[document.index('<div class="summary">') : document.index("</dl></div>")]
    assert "Holm-adjusted" in box and "4 contrasts" in box

    # the panel section states the fit's numbers, and they are those of the shipped panels
    panels = result["panels"]
    fit = panels["fit"]
    table = fit.subgroups.set_index("subgroup")
    top = table["mean_strength"].idxmax()
    row = table.loc[top]
    assert (
        f"Most decisive subgroup {top}: mean strength {row['mean_strength']:.3g} "
        f"[{row['mean_strength_low']:.3g}, {row['mean_strength_high']:.3g}]" in document
    )
    # known utilities, 1,440 labels: the true order (means 4.75 / 1.08 / 0.19) is recovered
    # and the decisive subgroup's interval excludes the others' means
    assert list(table["mean_strength"].sort_values(ascending=False).index) == [
        "decisive",
        "moderate",
        "uncertain",
    ]
    assert row["mean_strength_low"] > table.loc["moderate", "mean_strength"]
    # the control has one common strength: no subgroup stands out as much
    control = panels["control_fit"].subgroups["mean_strength"]
    assert control.max() / control.min() < row["mean_strength"] / table["mean_strength"].min()
    summary = panels["summary"]
    assert len(summary) == 6 and set(summary["set"]) == {"heterogeneous", "homogeneous"}
    for line in summary.itertuples():
        printed_row = (
            f"{line.set:<14}{line.subgroup:<12}{line.mean_strength:8.3g}  "
            f"{f'[{line.low:.3g}, {line.high:.3g}]':<18}{line.true_mean:7.3g}"
        )
        assert printed_row in printed, printed_row
    # pair-level CV profile flat, the panel one identified (free gaps)
    pair, annotator = panels["profiles"]
    assert (pair.level, annotator.level) == ("pair", "annotator")
    assert pair.range < 1.92 < annotator.range
    for profile in (pair, annotator):
        assert html.escape(profile.interpretation()) in document  # "pair's" -> "pair&#x27;s"
    # held-out policy gaps: a pair's labels carry one gap, signed by each label's choice
    held_out = panels["held_out"]
    assert len(held_out) == 360 and np.isfinite(held_out["policy_gap"]).all()
    for _, labels in held_out.groupby("pair_id"):
        same = labels["chosen"] == labels["chosen"].iloc[0]
        gap = labels["policy_gap"].iloc[0]
        np.testing.assert_allclose(labels["policy_gap"], np.where(same, gap, -gap))
    learned = panels["learned"]
    assert set(learned["subgroup"]) == {"decisive", "moderate", "uncertain"}
    for kind in ("panel_heterogeneous", "panel_homogeneous"):
        state = tmp_path / "runs" / f"{PANEL_METHOD}-{kind}" / "trainer_state.json"
        assert json.loads(state.read_text())["global_step"] == 4

    # the WTP the report states equals -beta_loc / beta_pf over population draws made here
    population = result["electricity"].population_coefficients(num_draws=20_000, seed=QUICK.seed)
    wtp_loc = np.median(-population["loc"] / population["pf"])
    # (the demo names the variables: ELECTRICITY_LABELS)
    assert f"WTP local supplier (loc) (= -loc/pf): median {wtp_loc:.4g}" in document

    evaluation = result["evaluation"]
    assert len(evaluation) == len(KINDS) * len(METHODS) * 24
    assert set(evaluation["method"]) == set(METHODS)
    # the batched reference margins equal a single-batch evaluation of a fresh initial model
    make_model, tokenizer = load_policy(QUICK)
    test = load_default_preferences("heterogeneous", "test").select(range(24))
    expected = preference_margins(
        make_model(),
        test,
        tokenizer,
        batch_size=24,
        max_length=QUICK.max_length,
        max_prompt_length=QUICK.max_prompt_length,
    )
    rows = evaluation[(evaluation["dataset"] == "heterogeneous") & (evaluation["method"] == "dpo")]
    np.testing.assert_allclose(rows["reference_margin"].to_numpy(), expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(
        rows["gain_over_reference"], rows["margin"] - rows["reference_margin"], atol=1e-12
    )
    for method in METHODS:
        log = tmp_path / "runs" / f"{method}-heterogeneous" / "trainer_state.json"
        assert log.is_file()


def test_demo_rejects_bad_options():
    from analysis.demo import parse_args

    for bad in (["--steps", "0"], ["--panel-steps", "0"], ["--panel-samples", "0"]):
        with pytest.raises(SystemExit):
            parse_args(bad)
    settings = parse_args(["--quick", "--steps", "3"])
    assert settings.model == "tiny" and settings.steps == 3 and settings.panels
    assert not parse_args(["--no-panels"]).panels
    assert parse_args(["--panel-steps", "7", "--panel-samples", "9"]).panel_steps == 7


def test_implicit_reward_gaps_equal_per_label_margins_over_the_reference():
    """Each distinct pair is scored once; the result equals the policy's minus the reference's
    margin computed row by row, in each row's own orientation."""
    import torch

    from alignment import load_default_preferences, tiny_causal_lm
    from alignment.evaluation import preference_margins
    from analysis.demo import QUICK, implicit_reward_gaps, load_policy, panel_labels

    _, tokenizer = load_policy(QUICK)
    labels = panel_labels("panel_heterogeneous", ("test",)).iloc[:30]
    assert labels["pair_id"].nunique() < len(labels)  # pairs with several labels
    policy = tiny_causal_lm(len(tokenizer), seed=11)
    reference = tiny_causal_lm(len(tokenizer), seed=12)
    sizes = {"max_length": QUICK.max_length, "max_prompt_length": QUICK.max_prompt_length}
    with torch.no_grad():
        gaps = implicit_reward_gaps(policy, reference, labels, tokenizer, batch_size=4, **sizes)
    rows = load_default_preferences("panel_heterogeneous", "test").select(range(30))
    expected = preference_margins(policy, rows, tokenizer, batch_size=30, **sizes)
    expected -= preference_margins(reference, rows, tokenizer, batch_size=30, **sizes)
    assert np.abs(expected).min() > 0
    np.testing.assert_allclose(gaps, expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"pair_id .* holds different responses at row 1"):
        broken = labels.copy()
        broken.loc[broken.index[1], "chosen"] = "something else"
        broken.loc[broken.index[1], "pair_id"] = broken["pair_id"].iloc[0]
        implicit_reward_gaps(policy, reference, broken, tokenizer, **sizes)
