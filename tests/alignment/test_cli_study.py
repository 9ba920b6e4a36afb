"""`mixdpo` covering a study: evaluation during training, reference-subtracted held-out margins
(micro and macro) with preference accuracy, generation through the chat template on
conversational data, progress bars, and bounded checkpoints. Tiny model, shipped data."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from alignment import cli
from alignment.callbacks import COMPLETE_MARKER
from alignment.cli import DEFAULT_CONFIG, main


def _logs(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "logs.jsonl").read_text().splitlines()]


def test_train_evaluates_during_training_on_the_held_out_split(tmp_path, write_tiny_run):
    run_dir = tmp_path / "run"
    path = write_tiny_run(
        tmp_path / "run.yaml",
        run_dir,
        training={"eval_strategy": "steps", "eval_steps": 1},
        eval={"after_train": False},
    )
    assert main(["train", "--config", str(path)]) == 0
    evaluated = [r for r in _logs(run_dir) if "eval_loss" in r]
    assert [r["step"] for r in evaluated] == [1, 2]
    assert all(r["eval_loss"] > 0 for r in evaluated)
    assert "eval_rewards/margins" in evaluated[0]

    # No held-out pairs: one error naming the setting, before any model is built.
    empty = write_tiny_run(
        tmp_path / "empty.yaml",
        tmp_path / "empty",
        data={"max_eval_pairs": 0},
        training={"eval_strategy": "steps", "eval_steps": 1},
    )
    with pytest.raises(ValueError, match=r"training.eval_strategy='steps' evaluates during"):
        main(["train", "--config", str(empty)])
    assert not (tmp_path / "empty" / "checkpoints").exists()


def _summary_from_table(table: pd.DataFrame, value: str) -> tuple[float, float]:
    """(micro, macro over `subgroup`) of one column, computed here from margins.csv."""
    return table[value].mean(), table.groupby("subgroup")[value].mean().mean()


def test_eval_reports_reference_subtracted_margins_micro_and_macro(
    tmp_path, capsys, write_tiny_run
):
    # learning_rate 0: the policy stays the reference, so every reward margin is 0 (and no
    # pair counts as correct) while the raw policy margins are not 0.
    frozen = tmp_path / "frozen"
    path = write_tiny_run(
        tmp_path / "frozen.yaml", frozen, training={"learning_rate": 0.0, "save_steps": 2}
    )
    assert main(["train", "--config", str(path)]) == 0
    capsys.readouterr()
    assert main(["eval", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    summary = json.loads((frozen / "eval_metrics.json").read_text())
    assert summary["reward_margin"]["micro"] == pytest.approx(0.0, abs=1e-6)
    assert summary["preference_accuracy"]["micro"] == 0.0
    assert abs(summary["policy_margin"]["micro"]) > 1e-3
    for label in ("reference-subtracted margin", "preference accuracy", "raw policy margin"):
        assert label in out
    assert "macro[subgroup]" in out

    # Trained: the summary is the micro and macro averages of the per-pair table.
    trained = tmp_path / "trained"
    path = write_tiny_run(tmp_path / "trained.yaml", trained, training={"save_steps": 2})
    assert main(["train", "--config", str(path)]) == 0
    after_train = json.loads((trained / "metrics.json").read_text())["eval"]
    assert main(["eval", "--config", str(path)]) == 0
    summary = json.loads((trained / "eval_metrics.json").read_text())
    table = pd.read_csv(trained / "margins.csv")
    assert table["reward_margin"].to_numpy() == pytest.approx(
        (table["margin"] - table["reference_margin"]).to_numpy(), abs=1e-12
    )
    assert table["correct"].tolist() == (table["reward_margin"] > 0).astype(float).tolist()
    assert table["subgroup"].nunique() > 1
    for key, column in (
        ("reward_margin", "reward_margin"),
        ("preference_accuracy", "correct"),
        ("policy_margin", "margin"),
    ):
        micro, macro = _summary_from_table(table, column)
        assert summary[key]["micro"] == pytest.approx(micro, rel=1e-9, abs=1e-12)
        assert summary[key]["by_column"]["subgroup"]["macro"] == pytest.approx(
            macro, rel=1e-9, abs=1e-12
        )
        # `train`'s evaluation (the trainer's own reference) gives the same numbers.
        assert after_train[key]["micro"] == pytest.approx(summary[key]["micro"], rel=1e-5)
    assert abs(summary["reward_margin"]["micro"]) > 1e-4  # training moved the policy


def _conversational_files(tmp_path: Path) -> tuple[Path, Path]:
    """The shipped default pairs as TRL conversational rows, train and held-out files."""
    from alignment.datasets.shipped import load_default_preferences

    paths = []
    for split, size in (("train", 16), ("test", 6)):
        rows = load_default_preferences("heterogeneous", split).select(range(size)).to_list()
        path = tmp_path / f"{split}.jsonl"
        with path.open("w") as handle:
            for row in rows:
                conversation = {
                    "prompt": [{"role": "user", "content": row["prompt"].strip()}],
                    "chosen": [{"role": "assistant", "content": row["chosen"].strip()}],
                    "rejected": [{"role": "assistant", "content": row["rejected"].strip()}],
                    "subgroup": row["subgroup"],
                }
                handle.write(json.dumps(conversation) + "\n")
        paths.append(path)
    return paths[0], paths[1]


def test_conversational_files_train_eval_and_compare_through_the_chat_template(
    tmp_path, write_tiny_run
):
    train_file, test_file = _conversational_files(tmp_path)
    run_dir = tmp_path / "run"
    path = write_tiny_run(
        tmp_path / "run.yaml",
        run_dir,
        data={"name": "files", "path": str(train_file), "eval_path": str(test_file)},
        training={"save_steps": 1},
        compare={"num_prompts": 3, "max_new_tokens": 4},
    )
    assert main(["train", "--config", str(path)]) == 0
    assert json.loads((run_dir / "data_report.json").read_text())["test_pairs"] == 6
    assert main(["eval", "--config", str(path)]) == 0
    assert json.loads((run_dir / "eval_metrics.json").read_text())["n_pairs"] == 6
    model_b = run_dir / "checkpoints" / "checkpoint-1"
    assert main(["compare", "--config", str(path), "--set", f"compare.model_b={model_b}"]) == 0
    result = json.loads((run_dir / "compare.json").read_text())
    assert result["chat_template"] is True and result["n"] == 3
    assert result["prompts"][0][0]["role"] == "user"
    # Forcing raw strings on conversations is an error naming the prompt.
    with pytest.raises(ValueError, match="prompt 0 is a conversation"):
        main(
            ["compare", "--config", str(path), "--set", f"compare.model_b={model_b}",
             "--set", "compare.chat_template=false"]
        )  # fmt: skip


def test_generation_prompts_use_the_chat_template_when_the_tokenizer_has_one():
    from alignment.evaluation import render_generation_prompts
    from alignment.policy_models import build_word_tokenizer

    tokenizer = build_word_tokenizer(["hello there user assistant :"])
    conversation = [{"role": "user", "content": "hello there"}]
    # No template (a base model): raw strings; a conversation cannot be rendered.
    assert render_generation_prompts(tokenizer, ["hello there"]) == (["hello there"], False)
    with pytest.raises(ValueError, match=r"prompt 1 is a conversation.*no chat template"):
        render_generation_prompts(tokenizer, ["hello", conversation])
    with pytest.raises(ValueError, match="chat_template=True, but the tokenizer has no"):
        render_generation_prompts(tokenizer, ["hello"], chat_template=True)
    # A template (an Instruct model): strings become one user message, the generation prompt
    # is appended; chat_template=False keeps raw strings.
    tokenizer.chat_template = cli._TINY_CHAT_TEMPLATE
    texts, templated = render_generation_prompts(tokenizer, ["hello there", conversation])
    assert templated and texts[0] == texts[1] == "user : hello there <eos> assistant : "
    assert render_generation_prompts(tokenizer, ["hi"], chat_template=False) == (["hi"], False)


def test_progress_bars_for_eval_and_generation_follow_disable_tqdm_and_the_terminal(
    tmp_path, capsys, monkeypatch, write_tiny_run
):
    run_dir = tmp_path / "run"
    path = write_tiny_run(
        tmp_path / "run.yaml",
        run_dir,
        training={"save_steps": 1},
        eval={"after_train": False},
        compare={"num_prompts": 2, "max_new_tokens": 2},
    )
    assert main(["train", "--config", str(path)]) == 0
    compare = ["--set", f"compare.model_b={run_dir / 'checkpoints' / 'checkpoint-1'}"]
    bars = ["--set", "training.disable_tqdm=false"]
    capsys.readouterr()

    monkeypatch.setattr(cli, "_stderr_is_tty", lambda: True)
    assert main(["eval", "--config", str(path), *bars]) == 0
    err = capsys.readouterr().err
    assert "eval margins" in err and "eval margins (reference)" in err
    assert main(["compare", "--config", str(path), *bars, *compare]) == 0
    err = capsys.readouterr().err
    assert "generate a" in err and "generate b" in err
    # disable_tqdm (the tests' setting) turns them off, and so does a stderr that is no terminal.
    assert main(["eval", "--config", str(path)]) == 0
    assert "eval margins" not in capsys.readouterr().err
    monkeypatch.setattr(cli, "_stderr_is_tty", lambda: False)
    assert main(["compare", "--config", str(path), *bars, *compare]) == 0
    assert "generate a" not in capsys.readouterr().err


def test_the_default_config_keeps_the_two_newest_checkpoints(tmp_path, write_tiny_run):
    assert DEFAULT_CONFIG["training"]["save_total_limit"] == 2
    run_dir = tmp_path / "run"
    path = write_tiny_run(
        tmp_path / "run.yaml",
        run_dir,
        data={"max_train_pairs": 12},
        training={"max_steps": 3, "save_steps": 1, "per_device_train_batch_size": 4},
        eval={"after_train": False},
    )
    assert main(["train", "--config", str(path)]) == 0
    kept = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert kept == ["checkpoint-2", "checkpoint-3"]
    assert all((run_dir / "checkpoints" / k / COMPLETE_MARKER).exists() for k in kept)
    # null keeps every checkpoint.
    every = tmp_path / "every"
    overrides = ["--set", f"run_dir={every}", "--set", "training.save_total_limit=null"]
    assert main(["train", "--config", str(path), *overrides]) == 0
    assert len(list((every / "checkpoints").iterdir())) == 3


def test_a_multi_process_launch_the_trainer_runs_as_one_process_is_refused():
    with pytest.raises(ValueError, match=r"WORLD_SIZE=2.*set training.use_cpu=true"):
        cli._check_launch(1, {"WORLD_SIZE": "2"})
    cli._check_launch(2, {"WORLD_SIZE": "2"})  # DDP formed: fine
    cli._check_launch(1, {})  # a plain run


@pytest.mark.slow
def test_torchrun_on_cpu_without_use_cpu_stops_before_writing(tmp_path, write_tiny_run):
    """Measured: without training.use_cpu, both torchrun processes trained alone (epoch 0.25
    per step at 4 pairs per device, two records per step in logs.jsonl)."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    path = write_tiny_run(tmp_path / "run.yaml", tmp_path / "run", eval={"after_train": False})
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    torchrun = str(Path(sys.executable).parent / "torchrun")
    done = subprocess.run(
        [torchrun, "--nproc_per_node", "2", "--master_port", "29541",
         "-m", "alignment.cli", "train", "--config", str(path)],
        cwd=root, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode != 0
    assert "set training.use_cpu=true" in done.stderr
    assert not (tmp_path / "run" / "logs.jsonl").exists()


def test_files_data_split_implicit_prompts_and_bad_rows(tmp_path):
    from alignment.cli import build_data, load_config

    train_file, _ = _conversational_files(tmp_path)
    config = load_config(
        None, ["data.name=files", f"data.path={train_file}", "data.test_fraction=0.25"]
    )
    train, test, report = build_data(config)
    assert (report["train_pairs"], report["test_pairs"]) == (12, 4)
    kept, held = ({json.dumps(r, sort_keys=True) for r in part} for part in (train, test))
    assert len(kept | held) == 16 and not kept & held
    # Implicit prompts (chosen/rejected only, strings): the shared beginning is the prompt.
    implicit = tmp_path / "implicit.jsonl"
    implicit.write_text(
        json.dumps({"chosen": "Say hi. Hello there", "rejected": "Say hi. Go away"}) + "\n"
    )
    only, _, _ = build_data(
        load_config(None, ["data.name=files", f"data.path={implicit}", "data.test_fraction=0"])
    )
    assert only[0]["prompt"] == "Say hi." and only[0]["chosen"] == " Hello there"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"})
        + "\n"
        + json.dumps({"prompt": "q", "chosen": "same", "rejected": "same"})
        + "\n"
    )
    with pytest.raises(ValueError, match=r"data.path \(.*bad.jsonl\) row 1: chosen and rejected"):
        build_data(load_config(None, ["data.name=files", f"data.path={bad}"]))
    with pytest.raises(ValueError, match=r"data.name='files' needs data.path"):
        build_data(load_config(None, ["data.name=files"]))
