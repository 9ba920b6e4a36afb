"""`mixdpo train | eval | compare`: config resolution, run directory, metrics, data loaders."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import yaml

from alignment.callbacks import COMPLETE_MARKER
from alignment.cli import DEFAULT_CONFIG, build_data, load_config, main

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).resolve().parents[2]


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


def test_train_eval_compare_run_directory(tmp_path, capsys, write_tiny_run):
    run_dir = tmp_path / "run"
    config = write_tiny_run(
        tmp_path / "run.yaml",
        run_dir,
        training={"save_steps": 1, "strength_family": "gamma"},
        compare={"num_prompts": 3, "max_new_tokens": 4},
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
    assert metrics["eval"]["policy_margin"]["micro"] == pytest.approx(margins["margin"].mean())
    assert metrics["strength"]["strength/shape"] != pytest.approx(2.0, abs=1e-7)

    # `eval` reloads the saved final model: the same held-out margins.
    assert main(["eval", "--config", str(config)]) == 0
    evaluated = json.loads((run_dir / "eval_metrics.json").read_text())
    for measure in ("policy_margin", "reward_margin", "preference_accuracy"):
        assert evaluated[measure]["micro"] == pytest.approx(
            metrics["eval"][measure]["micro"], rel=1e-6
        )
        assert evaluated[measure]["by_column"]["subgroup"]["macro"] == pytest.approx(
            metrics["eval"][measure]["by_column"]["subgroup"]["macro"], rel=1e-6
        )

    # `compare` against the first checkpoint with the semi-synthetic reward judge.
    model_b = run_dir / "checkpoints" / "checkpoint-1"
    assert main(["compare", "--config", str(config), "--set", f"compare.model_b={model_b}"]) == 0
    result = json.loads((run_dir / "compare.json").read_text())
    assert result["n"] == 3 and len(result["responses_a"]) == 3
    assert result["wins"] + result["ties"] + result["losses"] == 3
    assert 0.0 <= result["lc_win_rate"] <= 1.0


# `mixdpo train` in a child process that stops when it is about to load the data (the run
# directory's lock, where there is one, is held by then), says so on stdout and waits for a line
# on stdin: a run caught mid-way, with no timing involved.
_PAUSED_TRAIN = textwrap.dedent(
    """
    import sys
    import alignment.cli as cli

    build_data = cli.build_data

    def paused(config, tokenizer=None):
        print("paused", flush=True)
        sys.stdin.readline()
        return build_data(config, tokenizer)

    cli.build_data = paused
    sys.exit(cli.main(sys.argv[1:]))
    """
)


def test_a_second_train_on_a_run_directory_fails_at_once_naming_the_holder(
    tmp_path, capsys, write_tiny_run
):
    run_dir = tmp_path / "run"
    path = write_tiny_run(
        tmp_path / "run.yaml",
        run_dir,
        data={"max_train_pairs": 8, "max_eval_pairs": 4},
        training={"max_steps": 1, "save_steps": 1, "per_device_train_batch_size": 4},
        eval={"after_train": False},
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    stderr = tmp_path / "first.err"  # a file, not a pipe: the child never blocks on writing it
    with stderr.open("w") as err_file:
        first = subprocess.Popen(
            [sys.executable, "-c", _PAUSED_TRAIN, "train", "--config", str(path)],
            cwd=ROOT, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err_file,
        )  # fmt: skip
    try:
        line = first.stdout.readline()  # "" if the child died first
        assert line == "paused\n", stderr.read_text()[-2000:]
        # The second run stops before it writes anything, naming the directory and the pid.
        assert main(["train", "--config", str(path)]) == 4  # cli.EXIT_LOCKED
        err = capsys.readouterr().err
        assert err.startswith(f"mixdpo: error: run directory {run_dir} is in use by another")
        assert f"(`mixdpo train`, pid {first.pid} on " in err
        assert sorted(p.name for p in run_dir.iterdir()) == [".lock"]
        from alignment._run_lock import RunDirLock, read_holder

        assert read_holder(run_dir)["pid"] == first.pid
        # A killed holder leaves no stale lock: the kernel drops it with the process.
        first.send_signal(signal.SIGKILL)
        assert first.wait() == -signal.SIGKILL
    finally:
        if first.poll() is None:
            first.kill()
        first.communicate()
    assert main(["train", "--config", str(path)]) == 0
    assert (run_dir / "checkpoints" / "checkpoint-1" / COMPLETE_MARKER).exists()
    assert read_holder(run_dir)["pid"] == os.getpid()  # the last holder's record stays
    with RunDirLock(run_dir):  # and the lock was released when the run ended
        pass


@pytest.mark.parametrize("command", ["eval", "compare"])
def test_eval_and_compare_refuse_a_run_directory_in_use(tmp_path, capsys, command):
    """eval and compare read run_dir/final and write beside it: they used to run on a directory
    that a train was writing."""
    from alignment._run_lock import RunDirLock

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    overrides = ["--set", f"run_dir={run_dir}", "--set", "model=tiny"]
    if command == "compare":
        overrides += ["--set", f"compare.model_b={tmp_path / 'other'}"]
    with RunDirLock(run_dir):
        assert main([command, *overrides]) == 4  # cli.EXIT_LOCKED
    err = capsys.readouterr().err
    assert err.startswith(f"mixdpo: error: run directory {run_dir} is in use by another")
    assert sorted(p.name for p in run_dir.iterdir()) == [".lock"]  # nothing written


def test_the_run_directory_lock_is_exclusive_and_released(tmp_path):
    from alignment._run_lock import RunDirLock, RunDirLockedError, read_holder

    with RunDirLock(tmp_path) as held:
        assert held.held and read_holder(tmp_path)["pid"] == os.getpid()
        # flock is per open file: a second open in this process conflicts too.
        with pytest.raises(RunDirLockedError, match=rf"pid {os.getpid()} on ") as refused:
            RunDirLock(tmp_path).acquire()
        assert refused.value.run_dir == tmp_path and refused.value.holder["pid"] == os.getpid()
    assert not held.held
    (tmp_path / ".lock").write_text("")  # a holder that has not written its record yet
    with RunDirLock(tmp_path):
        (tmp_path / ".lock").write_text("")
        with pytest.raises(RunDirLockedError, match="not recorded itself yet"):
            RunDirLock(tmp_path).acquire()
