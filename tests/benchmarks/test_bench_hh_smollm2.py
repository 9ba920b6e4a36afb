"""The HH-RLHF benchmark's summaries: intervals, paired gains and the strength trajectory."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks.bench_hh_smollm2 import markdown, strength_trajectory, summarise


def _frame(method: str, reward: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "method": method,
            "pair_id": np.arange(reward.size),
            "split": "held-out",
            "margin": reward + 1.0,
            "reference_margin": 1.0,
            "reward_margin": reward,
            "correct": (reward > 0).astype(float),
        }
    )


def test_summary_intervals_and_paired_gains():
    rng = np.random.default_rng(20261202)
    base = rng.normal(0.2, 1.0, size=300)
    shift = 0.5 + rng.normal(0.0, 0.05, size=300)  # a per-pair gain of about 0.5
    frames = pd.concat([_frame("dpo", base), _frame("mixdpo", base + shift)], ignore_index=True)
    summary = summarise(frames)
    dpo = summary["reward_margin"]["dpo"]
    assert dpo["mean"] == pytest.approx(base.mean())
    assert dpo["ci_low"] < dpo["mean"] < dpo["ci_high"]
    assert summary["correct"]["mixdpo"]["mean"] == pytest.approx(np.mean(base + shift > 0))
    gain = summary["gain_over_dpo"]["reward_margin"]["mixdpo"]
    assert gain["gain"] == pytest.approx(shift.mean())
    # paired: the interval is set by the spread of the differences (0.05), not of the margins
    assert gain["ci_high"] - gain["ci_low"] < 0.05
    assert "dpo" not in summary["gain_over_dpo"]["reward_margin"]


def test_summary_without_the_baseline_has_no_gains():
    frames = _frame("mixdpo", np.linspace(-1, 2, 50))
    assert "gain_over_dpo" not in summarise(frames)


def test_strength_trajectory_keeps_training_logs_only():
    history = [
        {
            "step": 8,
            "loss": 0.69,
            "strength/mean": 0.12,
            "strength/cv": 0.7,
            "strength/variance": 0.007,
        },
        {"step": 8, "eval_loss": 0.7},
        {
            "step": 16,
            "loss": 0.66,
            "strength/mean": 0.11,
            "strength/cv": 0.6,
            "strength/variance": 0.004,
        },
        {"step": 16, "loss": 0.65},  # DPO: no strength
    ]
    rows = strength_trajectory(history)
    assert [r["step"] for r in rows] == [8, 16]
    assert rows[1] == {"step": 16, "loss": 0.66, "mean": 0.11, "cv": 0.6, "variance": 0.004}


def test_markdown_names_every_run():
    rng = np.random.default_rng(7)
    frames = pd.concat(
        [_frame(m, rng.normal(size=40)) for m in ("dpo", "mixdpo-gamma")], ignore_index=True
    )
    start = {"mean": 0.12, "cv": 0.707, "variance": 0.0072}
    report = {
        "command": "python -m benchmarks.bench_hh_smollm2",
        "data": {"train_pairs": 8, "eval_pairs": 40, "reference_accuracy": 0.5},
        "settings": {"max_length": 256},
        "runs": {
            "dpo": {"steps": 2, "seconds": 3.0},
            "mixdpo-gamma": {
                "steps": 2,
                "seconds": 3.0,
                "strength_start": start,
                "strength_learned": {**start, "cv": 0.5},
            },
        },
        "summary": summarise(frames),
    }
    text = markdown(report)
    assert "| dpo |" in text and "| mixdpo-gamma |" in text
    assert "CV 0.707 -> 0.5" in text
