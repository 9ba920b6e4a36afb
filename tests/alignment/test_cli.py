"""`mixdpo train | eval | compare`: config resolution, run directory, metrics, data loaders."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from alignment.callbacks import COMPLETE_MARKER
from alignment.cli import DEFAULT_CONFIG, build_data, load_config, main

FIXTURES = Path(__file__).parent / "fixtures"


def test_config_file_and_overrides(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"model": "tiny", "training": {"max_steps": 7, "beta": 0.2}}))
    config = load_config(
        path,
        [
            "training.max_steps=3",
            "training.learn_strength=false",
            "data.name=prism",
            "eval.by=[age, gender]",
            "data.max_eval_pairs=null",
        ],
    )
    assert config["model"] == "tiny"
    assert config["training"]["max_steps"] == 3
    assert config["training"]["beta"] == 0.2
    assert config["training"]["learn_strength"] is False
    assert config["training"]["logging_steps"] == DEFAULT_CONFIG["training"]["logging_steps"]
    assert config["data"]["name"] == "prism" and config["data"]["split_by"] == "annotator"
    assert config["eval"]["by"] == ["age", "gender"]
    with pytest.warns(DeprecationWarning, match="eval.subgroup_columns is deprecated"):
        renamed = load_config(None, ["eval.subgroup_columns=[age]"])
    assert renamed["eval"]["by"] == ["age"] and "subgroup_columns" not in renamed["eval"]
    with pytest.raises(ValueError, match="unknown config key 'modle'"):
        load_config(None, ["modle=tiny"])
    with pytest.raises(ValueError, match=r"unknown config key data.'nmae'"):
        load_config(None, ["data.nmae=prism"])
    with pytest.raises(ValueError, match="--set expects key=value"):
        load_config(None, ["training.max_steps"])


def test_build_data_for_prism_files():
    config = load_config(
        None,
        [
            "data.name=prism",
            f"data.path={FIXTURES / 'prism_utterances.jsonl'}",
            f"data.survey={FIXTURES / 'prism_survey.jsonl'}",
            "data.split_by=conversation",
            "data.test_fraction=0.5",
        ],
    )
    train, test, report = build_data(config)
    assert report["train_pairs"] + report["test_pairs"] == 7
    assert report["dropped"]["identical"] == 1
    assert not set(train["conversation_id"]) & set(test["conversation_id"])
    with pytest.raises(ValueError, match=r"data\.name must be"):
        build_data(load_config(None, ["data.name=imdb"]))


def test_train_eval_compare_run_directory(tmp_path, capsys):
    run_dir = tmp_path / "run"
    config = tmp_path / "run.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "run_dir": str(run_dir),
                "model": "tiny",
                "data": {"max_train_pairs": 16, "max_eval_pairs": 6},
                "training": {
                    "max_steps": 2,
                    "save_steps": 1,
                    "learning_rate": 0.01,
                    "strength_family": "gamma",
                    "disable_tqdm": True,
                    "dataloader_pin_memory": False,
                },
                "compare": {"num_prompts": 3, "max_new_tokens": 4},
            }
        )
    )
    assert main(["train", "--config", str(config), "--set", "training.beta=0.3"]) == 0
    assert "held-out margins" in capsys.readouterr().out
    resolved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert resolved["training"]["max_steps"] == 2 and resolved["training"]["beta"] == 0.3
    logs = [json.loads(line) for line in (run_dir / "logs.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logs if "loss" in r] == [1, 2]
    for step in (1, 2):
        assert (run_dir / "checkpoints" / f"checkpoint-{step}" / COMPLETE_MARKER).exists()
    assert json.loads((run_dir / "data_report.json").read_text())["train_pairs"] == 16
    metrics = json.loads((run_dir / "metrics.json").read_text())
    margins = pd.read_csv(run_dir / "margins.csv")
    assert len(margins) == 6 and "subgroup" in margins.columns
    assert metrics["eval"]["micro"] == pytest.approx(margins["margin"].mean())
    assert metrics["strength"]["strength/shape"] != pytest.approx(2.0, abs=1e-7)

    # `eval` reloads the saved final model: the same held-out margins.
    assert main(["eval", "--config", str(config)]) == 0
    evaluated = json.loads((run_dir / "eval_metrics.json").read_text())
    assert evaluated["micro"] == pytest.approx(metrics["eval"]["micro"], rel=1e-6)
    assert evaluated["by_column"]["subgroup"]["macro"] == pytest.approx(
        metrics["eval"]["by_column"]["subgroup"]["macro"], rel=1e-6
    )

    # `compare` against the first checkpoint with the semi-synthetic reward judge.
    model_b = run_dir / "checkpoints" / "checkpoint-1"
    assert main(["compare", "--config", str(config), "--set", f"compare.model_b={model_b}"]) == 0
    result = json.loads((run_dir / "compare.json").read_text())
    assert result["n"] == 3 and len(result["responses_a"]) == 3
    assert result["wins"] + result["ties"] + result["losses"] == 3
    assert 0.0 <= result["lc_win_rate"] <= 1.0
