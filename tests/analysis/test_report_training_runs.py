"""``analysis.report(run_dirs=...)`` on the run directory a real ``mixdpo train`` writes."""

from __future__ import annotations

import json

import pytest

import analysis
from alignment.cli import main
from analysis.converters import read_training_log, subgroup_strengths


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, write_tiny_run):
    """Two steps of MixDPO on the tiny model, logging every step (so the last step also carries
    the Trainer's end-of-training summary, stamped a moment later)."""
    root = tmp_path_factory.mktemp("mixdpo")
    directory = root / "run"
    config = write_tiny_run(
        root / "run.yaml",
        directory,
        training={"logging_steps": 1, "strength_family": "gamma"},
    )
    assert main(["train", "--config", str(config)]) == 0
    return directory


def test_log_of_a_cli_run_reads_one_row_per_step(run_dir):
    records = [json.loads(line) for line in (run_dir / "logs.jsonl").read_text().splitlines()]
    last = [r for r in records if r["step"] == 2]
    assert len(last) == 2 and last[0]["time"] != last[1]["time"]  # the case that used to fail
    log = read_training_log(run_dir)
    assert log["step"].tolist() == [1, 2]
    assert log["time"].iloc[-1] == last[0]["time"]  # the first record's stamp is kept
    assert log["train_runtime"].iloc[-1] == last[1]["train_runtime"]  # the summary merged in


def test_report_of_a_cli_run_states_its_learned_strength(run_dir, tmp_path):
    path = analysis.report(tmp_path / "report.html", run_dirs=[run_dir])
    text = path.read_text()
    final = [json.loads(line) for line in (run_dir / "logs.jsonl").read_text().splitlines()][-1]
    assert f"mean {final['strength/mean']:.4g}" in text
    assert f"CV {final['strength/cv']:.3g} at step 2" in text


def test_records_of_one_step_that_disagree_on_a_value_still_raise():
    records = [
        {"step": 1, "time": 1.0, "strength/mean": 0.1, "strength/variance": 0.01, "loss": 0.7},
        {"step": 1, "time": 2.0, "strength/mean": 0.1, "strength/variance": 0.01, "loss": 0.6},
    ]
    with pytest.raises(ValueError, match=r"step 1 is logged more than once .*'loss'"):
        read_training_log(records)


@pytest.fixture(scope="module")
def annotator_run_dir(tmp_path_factory, write_tiny_run):
    """Two steps of annotator-level MixDPO with the subgroup as a strength covariate, on the
    shipped annotator panels, ending with the strength refit (the default)."""
    root = tmp_path_factory.mktemp("annotator")
    directory = root / "run"
    config = write_tiny_run(
        root / "run.yaml",
        directory,
        data={"kind": "panel_heterogeneous", "max_train_pairs": 32},
        training={
            "logging_steps": 1,
            "strength_family": "gamma",
            "strength_level": "annotator",
            "strength_covariates": ["subgroup"],
        },
    )
    assert main(["train", "--config", str(config)]) == 0
    return directory


def test_report_of_an_annotator_level_cli_run_ranks_its_subgroups(annotator_run_dir, tmp_path):
    final = [
        json.loads(line) for line in (annotator_run_dir / "logs.jsonl").read_text().splitlines()
    ][-1]
    levels = {"decisive", "moderate", "uncertain"}
    means = {level: final[f"strength_refit/{level}/mean"] for level in levels}
    table = subgroup_strengths(annotator_run_dir)
    assert set(table["level"]) == levels and set(table["source"]) == {"refit"}
    assert table["mean"].tolist() == sorted(means.values(), reverse=True)
    top = max(means, key=means.__getitem__)
    bottom = min(means, key=means.__getitem__)
    text = analysis.report(tmp_path / "report.html", run_dirs=[annotator_run_dir]).read_text()
    assert f"Most decisive: <b>{top}</b> (mean {means[top]:.4g}" in text
    assert f"least: <b>{bottom}</b> (mean {means[bottom]:.4g}" in text
    assert "end-of-training refit" in text


def test_subgroup_strengths_read_the_iterate_without_a_refit_and_nothing_at_pair_level(run_dir):
    records = [
        {
            "step": 1,
            "strength/mean": 0.1,
            "strength/variance": 0.01,
            "strength/shape": 1.0,
            "strength/rate": 10.0,
            "strength/a/mean": 0.3,
            "strength/a/cv": 0.5,
            "strength/b/mean": 0.7,
            "strength/b/cv": 0.2,
        },
    ]
    table = subgroup_strengths(records)
    assert table["level"].tolist() == ["b", "a"]
    assert table["source"].tolist() == ["training", "training"]
    assert table["cv"].tolist() == [0.2, 0.5]
    assert subgroup_strengths(run_dir).empty  # a pair-level run has no levels
