"""`mixdpo train` resuming with a changed config: refused where a resume cannot honour the change
(each key listed with its old and new value), allowed with ``--allow-config-change`` and recorded
in ``resume-<step>.yaml`` while ``config.yaml`` keeps the values the run started with."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from alignment import cli
from alignment.callbacks import COMPLETE_MARKER
from alignment.cli import DEFAULT_CONFIG, load_config, main

# Read through the module inside the tests, so that each fails on its assertion, not at import.
_RECORD = "mixdpo-config.yaml"  # cli.CHECKPOINT_CONFIG


@pytest.fixture
def write_config(tmp_path, write_tiny_run):
    """``write_config(run_dir, **training)``: a 2-step tiny run (the sizes of
    test_fault_tolerance), checkpoints at steps 1 and 2, its config in ``<run_dir name>.yaml``."""

    def write(run_dir: Path, **training) -> Path:
        return write_tiny_run(
            tmp_path / f"{run_dir.name}.yaml",
            run_dir,
            data={"max_eval_pairs": 4},
            training={
                "save_steps": 1,
                "per_device_train_batch_size": 4,
                "strength_learning_rate": 0.05,
                **training,
            },
            eval={"after_train": False},
        )

    return write


def _logs(run_dir: Path) -> dict[int, dict]:
    records = [json.loads(line) for line in (run_dir / "logs.jsonl").read_text().splitlines()]
    return {r["step"]: r for r in records if "loss" in r}


def test_a_resume_that_cannot_honour_the_new_config_is_refused_then_allowed_and_recorded(
    tmp_path, capsys, write_config
):
    run_dir = tmp_path / "run"
    path = write_config(run_dir)
    assert main(["train", "--config", str(path)]) == 0
    capsys.readouterr()
    started_with = (run_dir / "config.yaml").read_text()
    checkpoint = run_dir / "checkpoints" / "checkpoint-2"

    # New learning rates and a longer linear schedule: today's trainer restores the optimiser
    # and scheduler, so these would apply in part (lr 0 and then a fraction of the old one).
    changed = [
        "--set", "training.learning_rate=0.02",
        "--set", "training.strength_learning_rate=0.1",
        "--set", "training.max_steps=4",
        "--set", "training.logging_steps=2",  # honoured: not the reason for the refusal
    ]  # fmt: skip
    assert main(["train", "--config", str(path), *changed]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mixdpo: error: cannot resume {run_dir} from {checkpoint}")
    assert "training.learning_rate: 0.01 -> 0.02" in err
    assert "training.strength_learning_rate: 0.05 -> 0.1" in err
    assert "training.max_steps: 2 -> 4 (the linear learning-rate schedule depends on it)" in err
    assert "logging_steps" not in err
    assert "--set run_dir=" in err and "--set resume=none" in err
    assert "--allow-config-change" in err and str(run_dir / "resume-2.yaml") in err
    # Nothing was trained or rewritten.
    assert sorted(_logs(run_dir)) == [1, 2]
    assert not (run_dir / "checkpoints" / "checkpoint-3").exists()
    assert (run_dir / "config.yaml").read_text() == started_with
    assert not list(run_dir.glob("resume-*.yaml"))
    assert cli.CHECKPOINT_CONFIG == _RECORD
    recorded = yaml.safe_load((checkpoint / _RECORD).read_text())
    assert recorded["training"]["learning_rate"] == 0.01 and (checkpoint / COMPLETE_MARKER).exists()

    # Allowed: it trains on, warns, and records what changed; config.yaml keeps the old values.
    with pytest.warns(cli.ResumeConfigWarning) as caught:
        assert main(["train", "--config", str(path), *changed, "--allow-config-change"]) == 0
    allowed, honoured = (str(w.message) for w in caught if w.category is cli.ResumeConfigWarning)
    assert "with --allow-config-change" in allowed and "cannot honour" in allowed
    assert "training.learning_rate: 0.01 -> 0.02" in allowed
    assert "logging_steps" not in allowed
    assert "that a resume honours:\n  training.logging_steps: 1 -> 2\n" in honoured
    assert (run_dir / "config.yaml").read_text() == started_with
    record = yaml.safe_load((run_dir / "resume-2.yaml").read_text())
    assert record["allow_config_change"] is True
    assert record["compared_with"] == str(checkpoint / _RECORD)
    assert record["not_honoured"] == {
        "training.learning_rate": {"old": 0.01, "new": 0.02},
        "training.strength_learning_rate": {"old": 0.05, "new": 0.1},
        "training.max_steps": {"old": 2, "new": 4},
    }
    assert record["honoured"] == {"training.logging_steps": {"old": 1, "new": 2}}
    assert record["config"]["training"]["learning_rate"] == 0.02
    assert sorted(_logs(run_dir)) == [1, 2, 4]  # logging_steps=2 from step 3 on
    assert (run_dir / "checkpoints" / "checkpoint-4" / COMPLETE_MARKER).exists()

    # The next resume is checked against checkpoint-4's writer (the allowed config), not
    # against config.yaml: now the values the run started with are the change.
    assert main(["train", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"({run_dir / 'checkpoints' / 'checkpoint-4' / _RECORD})" in err
    assert "training.learning_rate: 0.02 -> 0.01" in err
    assert "training.max_steps: 4 -> 2" in err

    # A fresh start in the directory replaces config.yaml and drops the resume records.
    assert main(["train", "--config", str(path), "--set", "resume=none"]) == 0
    assert not list(run_dir.glob("resume-*.yaml"))
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["resume"] == "none"


def test_extending_max_steps_under_a_constant_schedule_resumes_as_one_longer_run(
    tmp_path, write_config
):
    reference_dir = tmp_path / "reference"
    reference = write_config(reference_dir, lr_scheduler_type="constant", max_steps=4)
    assert main(["train", "--config", str(reference)]) == 0

    run_dir = tmp_path / "extended"
    path = write_config(run_dir, lr_scheduler_type="constant")
    assert main(["train", "--config", str(path)]) == 0
    # Honoured changes: the resume goes on with a note and a record of them.
    longer = ["--set", "training.max_steps=4", "--set", "eval.batch_size=4"]
    with pytest.warns(cli.ResumeConfigWarning, match="settings that a resume honours") as caught:
        assert main(["train", "--config", str(path), *longer]) == 0
    (note,) = (str(w.message) for w in caught if w.category is cli.ResumeConfigWarning)
    assert "\n  training.max_steps: 2 -> 4\n  eval.batch_size: 16 -> 4\n" in note
    record = yaml.safe_load((run_dir / "resume-2.yaml").read_text())
    assert record["honoured"] == {
        "training.max_steps": {"old": 2, "new": 4},
        "eval.batch_size": {"old": 16, "new": 4},
    }
    assert record["not_honoured"] == {} and record["allow_config_change"] is False
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["training"]["max_steps"] == 2
    expected, resumed = _logs(reference_dir), _logs(run_dir)
    assert sorted(resumed) == sorted(expected) == [1, 2, 3, 4]
    for step, entry in expected.items():
        assert resumed[step]["loss"] == pytest.approx(entry["loss"], rel=1e-6, abs=1e-7), step
        assert resumed[step]["learning_rate"] == pytest.approx(entry["learning_rate"])


def _resolved(*overrides: str) -> dict:
    return load_config(None, ["model=tiny", *overrides])


def test_which_changes_a_resume_honours():
    old = _resolved("training.max_steps=10")
    not_honoured, honoured = cli.resume_config_changes(
        old,
        _resolved(
            "training.max_steps=20",  # the default linear schedule depends on it
            "training.num_train_epochs=5",  # ignored while max_steps is set
            "training.warmup_steps=3",
            "training.per_device_train_batch_size=4",
            "training.beta=0.5",
            "training.seed=1",
            "data.test_fraction=0.3",
            "data.max_eval_pairs=10",
            "tiny_model.hidden_size=64",
            "eval.by=[age]",
            "training.save_steps=5",
            "run_dir=elsewhere",
        ),
    )
    assert set(not_honoured) == {
        "training.max_steps",
        "training.warmup_steps",
        "training.per_device_train_batch_size",
        "training.beta",
        "training.seed",
        "data.test_fraction",
        "tiny_model.hidden_size",
    }
    assert not_honoured["training.per_device_train_batch_size"] == (8, 4)
    assert set(honoured) == {
        "training.num_train_epochs",
        "data.max_eval_pairs",
        "eval.by",
        "training.save_steps",
        "run_dir",
    }
    # A key given in only one config compares with its default (MixDPOConfig's or the CLI's).
    assert cli.resume_config_changes(
        old, _resolved("training.max_steps=10", "training.beta=0.1")
    ) == (
        {},
        {},
    )
    # The length under schedules that do not depend on it; a warmup fraction does.
    constant = _resolved("training.lr_scheduler_type=constant", "training.max_steps=10")
    longer = _resolved("training.lr_scheduler_type=constant", "training.max_steps=30")
    assert cli.resume_config_changes(constant, longer) == ({}, {"training.max_steps": (10, 30)})
    fraction = ["training.lr_scheduler_type=constant_with_warmup", "training.warmup_steps=0.1"]
    assert set(
        cli.resume_config_changes(
            _resolved(*fraction, "training.max_steps=10"),
            _resolved(*fraction, "training.max_steps=30"),
        )[0]
    ) == {"training.max_steps"}
    steps = ["training.lr_scheduler_type=constant_with_warmup", "training.warmup_steps=2"]
    assert cli.resume_config_changes(
        _resolved(*steps, "training.max_steps=10"), _resolved(*steps, "training.max_steps=30")
    ) == ({}, {"training.max_steps": (10, 30)})
    assert "training.lr_scheduler_type" in cli.resume_config_changes(constant, old)[0]


def test_a_checkpoint_without_its_own_record_is_checked_against_the_run_config(tmp_path, capsys):
    # A run directory written before checkpoints held their config: config.yaml is the record,
    # in the form an older release wrote it ('1e-6' as a string, a renamed key), and compares
    # equal to today's reading of the same values. The refusal comes before any data or model.
    run_dir = tmp_path / "old"
    checkpoint = run_dir / "checkpoints" / "checkpoint-3"
    checkpoint.mkdir(parents=True)
    (checkpoint / COMPLETE_MARKER).write_text("{}")
    old = {
        **DEFAULT_CONFIG,
        "run_dir": str(run_dir),
        "model": "tiny",
        "training": {**DEFAULT_CONFIG["training"], "learning_rate": "1e-6", "max_steps": 3},
        "eval": {**DEFAULT_CONFIG["eval"], "subgroup_columns": None},
    }
    del old["eval"]["by"]
    (run_dir / "config.yaml").write_text(yaml.safe_dump(old))
    argv = ["train", "--set", f"run_dir={run_dir}", "--set", "model=tiny"]
    assert main([*argv, "--set", "training.max_steps=3", "--set", "training.beta=0.3"]) == 2
    err = capsys.readouterr().err
    assert f"wrote the checkpoint ({run_dir / 'config.yaml'})" in err
    assert "training.beta: 0.1 -> 0.3" in err
    assert "learning_rate" not in err and "max_steps" not in err and "eval" not in err
    assert not (run_dir / "logs.jsonl").exists()


def test_resuming_a_finished_run_trains_nothing(tmp_path, write_config):
    """Trainer checks max_steps only after a step: resuming from the last step's checkpoint
    used to train (and log) a step 3 of a 2-step run."""
    import torch

    run_dir = tmp_path / "run"
    path = write_config(run_dir)
    assert main(["train", "--config", str(path)]) == 0
    assert main(["train", "--config", str(path)]) == 0
    assert sorted(_logs(run_dir)) == [1, 2]
    assert not (run_dir / "checkpoints" / "checkpoint-3").exists()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["train"]["train_steps_run"] == 0
    assert metrics["resumed_from"].endswith("checkpoint-2")
    saved = torch.load(run_dir / "checkpoints" / "checkpoint-2" / "strength.pt", weights_only=True)
    final = torch.load(run_dir / "final" / "strength.pt", weights_only=True)
    assert saved.keys() == final.keys() and all(torch.equal(saved[k], final[k]) for k in saved)
