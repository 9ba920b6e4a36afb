"""`mixdpo` config errors: one ``mixdpo: error:`` line (exit status 2) naming the key, before any
data is loaded or a model built; YAML floats in exponent form without a dot are numbers."""

from __future__ import annotations

import json

import pytest

from alignment.cli import load_config, main

# Arguments that keep a run tiny and offline should a check fail to fire and training start.
_TINY = ["--set", "model=tiny", "--set", "training.max_steps=1", "--set", "eval.after_train=false"]


def _cli_error(capsys, argv: list[str]) -> str:
    """Run ``mixdpo`` expecting a usage error; return its ``mixdpo: error:`` line."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines[-1].startswith("mixdpo: error: "), err
    return lines[-1].removeprefix("mixdpo: error: ")


def test_malformed_yaml_and_json_name_the_file_line_and_column(tmp_path, capsys):
    # Line 4 is indented deeper than its siblings: the scanner stops at its ':' (column 9).
    path = tmp_path / "run.yaml"
    path.write_text("model: tiny\ntraining:\n  max_steps: 1\n    beta: 0.2\n")
    message = _cli_error(capsys, ["train", "--config", str(path), "--set", f"run_dir={tmp_path}"])
    assert message.startswith(f"{path}:4:9: malformed YAML: mapping values are not allowed")

    # A trailing comma on line 2: JSON expects a key where the '}' is, column 30.
    path = tmp_path / "run.json"
    path.write_text('{"model": "tiny",\n "training": {"max_steps": 1,}}\n')
    message = _cli_error(capsys, ["train", "--config", str(path), "--set", f"run_dir={tmp_path}"])
    assert message.startswith(f"{path}:2:30: malformed JSON: Expecting property name")

    # An override's value is YAML too: an unclosed flow sequence.
    message = _cli_error(capsys, ["eval", "--set", "eval.by=[age, gender", *_TINY])
    assert message.startswith("--set 'eval.by=[age, gender': malformed YAML value")


def test_exponent_floats_without_a_dot_are_numbers(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(
        "training:\n"
        "  learning_rate: 1e-6\n"  # YAML 1.1 (PyYAML's default): the string '1e-6'
        "  strength_learning_rate: 5E-3\n"
        "  beta: -2.5e+1\n"
        "  max_steps: 1e3\n"  # an integer field: 1000
        "  warmup_steps: 12\n"
        "  weight_decay: '3e-2'\n"  # quoted: a string, converted for a float field
        "  run_name: 1e-6x\n"  # not a number: stays a string
    )
    training = load_config(path, ["training.strength_learning_rate=2e-4"])["training"]
    assert training["learning_rate"] == 1e-6 and isinstance(training["learning_rate"], float)
    assert training["strength_learning_rate"] == 2e-4
    assert training["beta"] == -25.0
    assert training["max_steps"] == 1000 and isinstance(training["max_steps"], int)
    assert training["warmup_steps"] == 12 and isinstance(training["warmup_steps"], int)
    assert training["weight_decay"] == 0.03
    assert training["run_name"] == "1e-6x"


def test_a_wrongly_typed_value_names_the_key_the_value_and_the_type(tmp_path, capsys):
    argv = ["train", "--set", f"run_dir={tmp_path}", *_TINY]
    message = _cli_error(capsys, [*argv, "--set", "training.max_steps=abc"])
    assert message == "training.max_steps = 'abc' (a string): expected an integer"
    message = _cli_error(capsys, [*argv, "--set", "training.max_steps=2.5"])
    assert message == "training.max_steps = 2.5 (a number): expected an integer"
    message = _cli_error(capsys, [*argv, "--set", "training.learning_rate=fast"])
    assert message == "training.learning_rate = 'fast' (a string): expected a number"
    message = _cli_error(capsys, [*argv, "--set", "data.max_train_pairs=[8]"])
    assert message == "data.max_train_pairs = [8] (a list): expected an integer or null"
    # A misspelt TrainingArguments field: reported before the data and the model are built.
    message = _cli_error(capsys, [*argv, "--set", "training.max_stpes=3"])
    assert message.startswith("unknown config key training.'max_stpes'; did you mean max_steps?")


def test_a_section_given_a_scalar_names_the_key(tmp_path, capsys):
    argv = ["train", "--set", f"run_dir={tmp_path}", *_TINY]
    message = _cli_error(capsys, [*argv, "--set", "training=5"])
    assert message.startswith(
        "config key training must be a mapping of its keys (e.g. training.max_steps=..."
    )
    assert "got 5 (an integer)" in message
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"data": "prism"}))
    message = _cli_error(capsys, ["train", "--config", str(path), *argv[1:]])
    assert message.startswith("config key data must be a mapping of its keys (e.g. data.name=")
    assert "got 'prism' (a string)" in message
    # An empty section (`training:` with every line commented out) keeps the defaults.
    path = tmp_path / "run.yaml"
    path.write_text("training:\n  # max_steps: 3\n")
    assert load_config(path)["training"] == load_config(None)["training"]


def test_test_fraction_outside_the_unit_interval_is_rejected(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"data\.test_fraction must be in \[0, 1\), got 1\.5"):
        load_config(None, ["data.test_fraction=1.5"])
    with pytest.raises(ValueError, match=r"data\.test_fraction must be in \[0, 1\), got -0\.1"):
        load_config(None, ["data.test_fraction=-0.1"])
    # The default data has fixed splits and ignored test_fraction: now rejected before training.
    argv = ["train", "--set", f"run_dir={tmp_path}", *_TINY, "--set", "data.max_train_pairs=8"]
    message = _cli_error(capsys, [*argv, "--set", "data.test_fraction=1.5"])
    assert message == "data.test_fraction must be in [0, 1), got 1.5"
    assert not (tmp_path / "config.yaml").exists()
    # 0 (everything in train) and null (HH-RLHF's official test split) stay valid.
    assert load_config(None, ["data.test_fraction=0"])["data"]["test_fraction"] == 0
    assert load_config(None, ["data.test_fraction=null"])["data"]["test_fraction"] is None
