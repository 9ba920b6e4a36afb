"""``python -m analysis.demo --quick`` (the smoke mode of ``make demo``) end to end."""

from __future__ import annotations

import re

import numpy as np
import pytest


@pytest.mark.slow
def test_quick_demo_writes_a_report_with_every_section(tmp_path, capsys):
    from alignment import load_default_preferences
    from alignment.evaluation import preference_margins
    from analysis.demo import KINDS, METHODS, QUICK, demo, load_policy

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
        ]
    )
    printed = capsys.readouterr().out
    assert f"Report: {output}" in printed
    assert re.search(r"Wall time: \d+\.\d s", printed)
    document = output.read_text(encoding="utf-8")
    for heading in (
        "Learned preference strength",
        "Subgroup margins",
        "Gains over dpo",
        "Choice model: heterogeneity of tastes",
        "Homogeneous control set",
    ):
        assert heading in document, heading
    # 4 MixDPO runs with trajectories + densities, margins, gains, 5 individual + WTP, control
    assert document.count("data:image/png;base64,") >= 11

    # the WTP the report states equals -beta_loc / beta_pf over population draws made here
    population = result["electricity"].population_coefficients(num_draws=20_000, seed=QUICK.seed)
    wtp_loc = np.median(-population["loc"] / population["pf"])
    assert f"WTP loc (= -loc/pf): median {wtp_loc:.4g}" in document

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

    with pytest.raises(SystemExit):
        parse_args(["--steps", "0"])
    settings = parse_args(["--quick", "--steps", "3"])
    assert settings.model == "tiny" and settings.steps == 3
