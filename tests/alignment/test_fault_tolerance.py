"""SIGKILL mid-training then resume reproduces the loss curve; a NaN loss stops with the step."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from transformers import TrainerCallback

from alignment.callbacks import (
    COMPLETE_MARKER,
    CheckpointCompleteMarker,
    JsonlLogger,
    NonFiniteLossError,
    NonFiniteLossGuard,
    last_complete_checkpoint,
)
from alignment.cli import load_config, run_train

ROOT = Path(__file__).resolve().parents[2]
MAX_STEPS = 6


def _config(run_dir: Path) -> dict:
    return {
        "run_dir": str(run_dir),
        "model": "tiny",
        "data": {"max_train_pairs": 32, "max_eval_pairs": 8},
        "eval": {"after_train": False},
        "training": {
            "max_steps": MAX_STEPS,
            "save_steps": 2,
            "per_device_train_batch_size": 4,
            "learning_rate": 0.01,
            "strength_learning_rate": 0.05,
            # LogNormal Monte Carlo: the loss depends on the torch RNG, so RNG restore matters.
            "strength_family": "lognormal",
            "disable_tqdm": True,
            "dataloader_pin_memory": False,
        },
    }


def _losses(run_dir: Path) -> dict[int, float]:
    records = [json.loads(line) for line in (run_dir / "logs.jsonl").read_text().splitlines()]
    losses = {r["step"]: r["loss"] for r in records if "loss" in r}
    assert len(losses) == len([r for r in records if "loss" in r]), "a step was logged twice"
    return losses


# The killed run: ``alignment.cli train`` with a callback that SIGKILLs its own process inside
# step ``KILL_AFTER + 1``, after that step's optimiser update and before its logging and
# checkpoint (the in-memory state is then ahead of everything on disk). It first writes the
# step to a marker file, so that the parent knows where the kill happened without timing.
KILLED_CHILD = """
import os, signal, sys
from pathlib import Path

from transformers import TrainerCallback

import alignment.trainer
from alignment.cli import main

config, kill_after, marker = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])


class SigkillInStep(TrainerCallback):
    def on_optimizer_step(self, args, state, control, **kwargs):
        if state.global_step == kill_after:  # global_step counts the completed steps
            marker.write_text(str(state.global_step))
            os.kill(os.getpid(), signal.SIGKILL)


train = alignment.trainer.MixDPOTrainer.train


def train_then_die(self, *args, **kwargs):
    self.add_callback(SigkillInStep())
    return train(self, *args, **kwargs)


alignment.trainer.MixDPOTrainer.train = train_then_die
sys.exit(main(["train", "--config", config]))
"""
KILL_AFTER = 5  # killed in step 6 of 6; the last complete checkpoint is checkpoint-4


def _launch(config_path: Path, kill_after: int | None = None, marker: Path | None = None):
    """``alignment.cli train`` in a subprocess; with ``kill_after``, the self-killing run."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    if kill_after is None:
        command = ["-m", "alignment.cli", "train", "--config", str(config_path)]
    else:
        command = ["-c", KILLED_CHILD, str(config_path), str(kill_after), str(marker)]
    return subprocess.Popen(
        [sys.executable, *command],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    """Exit status and stderr (read while waiting: a full pipe would block the child)."""
    _, stderr = process.communicate(timeout=timeout)
    return process.returncode, stderr[-2000:]


@pytest.mark.slow
def test_sigkill_and_resume_reproduce_the_loss_curve(tmp_path):
    torch.set_num_threads(1)  # same threading as the subprocesses
    reference_dir = tmp_path / "reference"
    reference_config = tmp_path / "reference.yaml"
    reference_config.write_text(yaml.safe_dump(_config(reference_dir)))
    run_train(load_config(reference_config))
    reference = _losses(reference_dir)
    assert sorted(reference) == list(range(1, MAX_STEPS + 1))

    run_dir = tmp_path / "killed"
    config_path = tmp_path / "run.yaml"
    config_path.write_text(yaml.safe_dump(_config(run_dir)))
    marker = tmp_path / "killed-after-step"
    status, stderr = _finish(_launch(config_path, kill_after=KILL_AFTER, marker=marker))
    assert status == -signal.SIGKILL, stderr
    assert marker.read_text() == str(KILL_AFTER)
    # steps 1-5 were logged before the kill, step 6's update ran but was neither logged nor
    # saved
    assert sorted(_losses(run_dir)) == list(range(1, KILL_AFTER + 1))
    assert not (run_dir / "final").exists()
    checkpoint = last_complete_checkpoint(run_dir / "checkpoints")
    assert checkpoint is not None and checkpoint.endswith("checkpoint-4")

    status, stderr = _finish(_launch(config_path))
    assert status == 0, stderr
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["resumed_from"].endswith("checkpoint-4")
    losses = _losses(run_dir)
    assert sorted(losses) == sorted(reference)
    worst = max(abs(losses[s] - reference[s]) for s in reference)
    print(f"largest |resumed - uninterrupted| loss difference over {MAX_STEPS} steps: {worst:.3g}")
    for step in reference:  # float tolerance: the same computation in another process
        assert losses[step] == pytest.approx(reference[step], rel=1e-6, abs=1e-7), step
    final_strength = torch.load(run_dir / "final" / "strength.pt", weights_only=True)
    reference_strength = torch.load(reference_dir / "final" / "strength.pt", weights_only=True)
    for name, value in reference_strength.items():
        torch.testing.assert_close(final_strength[name], value, rtol=1e-6, atol=1e-7)


class _PoisonStrengthAt(TrainerCallback):
    """Simulates divergence: the strength parameters become NaN at the end of a step."""

    def __init__(self, trainer, step):
        self.trainer, self.step = trainer, step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            with torch.no_grad():
                for param in self.trainer.strength.parameters():
                    param.fill_(math.nan)


def test_non_finite_loss_stops_with_step_and_keeps_checkpoint(
    tmp_path, word_tokenizer, hetero_train
):
    trainer, _ = _guarded_trainer(tmp_path, word_tokenizer, hetero_train)
    trainer.add_callback(JsonlLogger(tmp_path / "logs.jsonl"))
    trainer.add_callback(_PoisonStrengthAt(trainer, 3))
    message = _stopped(trainer, r"non-finite training loss \(nan\) at step 4")
    assert "checkpoint-2" in message
    assert trainer.state.global_step == 3
    checkpoints = sorted(os.listdir(tmp_path / "checkpoints"))
    assert checkpoints == ["checkpoint-2"]
    assert (tmp_path / "checkpoints" / "checkpoint-2" / COMPLETE_MARKER).exists()
    saved = torch.load(tmp_path / "checkpoints" / "checkpoint-2" / "strength.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in saved.values())


def _stopped(trainer, match: str) -> str:
    """Train until the guard stops the run with a :class:`NonFiniteLossError` matching
    ``match``; its message."""
    with pytest.raises(NonFiniteLossError, match=match) as info:
        trainer.train()
    return str(info.value)


def _guarded_trainer(tmp_path, word_tokenizer, hetero_train, **overrides):
    from alignment import MixDPOConfig, MixDPOTrainer, tiny_causal_lm

    settings = dict(
        output_dir=str(tmp_path / "checkpoints"),
        report_to="none",
        max_steps=6,
        save_steps=2,
        logging_steps=1,
        per_device_train_batch_size=4,
        strength_family="gamma",
        disable_tqdm=True,
        dataloader_pin_memory=False,
    )
    trainer = MixDPOTrainer(
        tiny_causal_lm(len(word_tokenizer)),
        args=MixDPOConfig(**{**settings, **overrides}),
        train_dataset=hetero_train.select(range(32)),
        processing_class=word_tokenizer,
    )
    NonFiniteLossGuard.attach(trainer)
    marker = CheckpointCompleteMarker.attach(trainer)
    return trainer, marker


def test_a_checkpoint_with_a_non_finite_strength_is_never_marked_complete(
    tmp_path, word_tokenizer, hetero_train
):
    """The strength turns NaN at a save step: the loss of that step was finite, so only the
    check at the save can catch it (this checkpoint used to be marked COMPLETE)."""
    trainer, _ = _guarded_trainer(tmp_path, word_tokenizer, hetero_train)
    trainer.add_callback(_PoisonStrengthAt(trainer, 4))  # after step 4's update, before its save
    message = _stopped(trainer, r"checkpoint-4 holds a non-finite value of strength\.")
    assert "it is not marked COMPLETE" in message and message.endswith("checkpoint-2")
    assert last_complete_checkpoint(tmp_path / "checkpoints").endswith("checkpoint-2")
    assert not (tmp_path / "checkpoints" / "checkpoint-4" / COMPLETE_MARKER).exists()


def test_a_non_finite_strength_gradient_with_a_finite_loss_stops_before_the_step(
    tmp_path, word_tokenizer, hetero_train
):
    trainer, _ = _guarded_trainer(tmp_path, word_tokenizer, hetero_train)

    class PoisonGradientAt(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == 2:  # during step 3
                for param in trainer.strength.parameters():
                    param.register_hook(lambda grad: grad * math.nan)

    trainer.add_callback(PoisonGradientAt())
    message = _stopped(trainer, r"non-finite gradient of strength\.\S+ at step 3")
    assert "before the optimiser step" in message
    assert trainer.state.global_step == 2
    assert all(bool(torch.isfinite(p).all()) for p in trainer.strength.parameters())


@pytest.mark.parametrize("max_grad_norm", [1.0, 0.0])
def test_the_gradient_check_reads_the_clipping_norms_and_scans_only_without_them(
    tmp_path, word_tokenizer, hetero_train, monkeypatch, max_grad_norm
):
    """With clipping (Trainer's default max_grad_norm=1) the guard checks the step's two
    gradient norms, not every parameter; without it, it scans the gradients."""
    import alignment.callbacks as callbacks

    scanned: list[str] = []
    scan = callbacks._first_non_finite

    def recording(values, what):
        scanned.append(what)
        return scan(values, what)

    monkeypatch.setattr(callbacks, "_first_non_finite", recording)
    trainer, _ = _guarded_trainer(
        tmp_path, word_tokenizer, hetero_train, max_steps=3, max_grad_norm=max_grad_norm
    )
    trainer.train()
    gradient_scans = scanned.count("gradient of")
    assert gradient_scans == (0 if max_grad_norm else 3)
    assert scanned.count("strength parameter") == 3  # the values after each step


def test_rotation_removes_old_checkpoints_only_after_the_new_one_is_complete(
    tmp_path, word_tokenizer, hetero_train, monkeypatch
):
    """save_total_limit=1: Trainer's own rotation deletes the previous (complete) checkpoint
    before any callback can mark the new one, so a kill in between leaves none complete."""
    import alignment.callbacks as callbacks

    trainer, marker = _guarded_trainer(
        tmp_path, word_tokenizer, hetero_train, max_steps=4, save_steps=1, save_total_limit=1
    )
    assert (marker.save_total_limit, trainer.args.save_total_limit) == (1, None)
    removed = []
    remove = callbacks.shutil.rmtree

    def recording_rmtree(path, *args, **kwargs):
        complete = [p for _, p, done in callbacks._checkpoints(tmp_path / "checkpoints") if done]
        removed.append((os.path.basename(path), [os.path.basename(p) for p in complete]))
        remove(path, *args, **kwargs)

    monkeypatch.setattr(callbacks.shutil, "rmtree", recording_rmtree)
    trainer.train()
    assert [name for name, _ in removed] == ["checkpoint-1", "checkpoint-2", "checkpoint-3"]
    for name, complete in removed:  # at every removal a newer complete checkpoint exists
        step = int(name.split("-")[1])
        assert any(int(c.split("-")[1]) > step for c in complete), (name, complete)
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["checkpoint-4"]
    assert last_complete_checkpoint(tmp_path / "checkpoints").endswith("checkpoint-4")


def test_strength_gradients_are_clipped_to_max_grad_norm(tmp_path, word_tokenizer, hetero_train):
    """The strength lives outside the model, so Trainer's clipping never reached it: a
    strength gradient scaled by 1e6 went into the optimiser step as it was."""
    trainer, _ = _guarded_trainer(tmp_path, word_tokenizer, hetero_train, max_steps=3)
    trainer.args.max_grad_norm = 0.5
    for param in trainer.strength.parameters():
        param.register_hook(lambda grad: grad * 1e9)
    seen: list[float] = []

    class RecordGradientNorm(TrainerCallback):
        def on_pre_optimizer_step(self, args, state, control, **kwargs):
            grads = [p.grad for p in trainer.strength.parameters() if p.grad is not None]
            seen.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))

    trainer.add_callback(RecordGradientNorm())
    trainer.train()
    assert len(seen) == 3 and max(seen) <= 0.5 * (1 + 1e-5)
    # Step 1 starts at the reference (all margins 0), where the strength gradient is 0.
    logged = [
        r["strength/grad_norm"] for r in trainer.state.log_history if "strength/grad_norm" in r
    ]
    assert len(logged) == 3 and min(logged[1:]) > 1e3  # the pre-clip norm is logged
