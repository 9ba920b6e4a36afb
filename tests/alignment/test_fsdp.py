"""FSDP2 with 2 CPU processes (gloo): the loss and strength trajectory of 1 process, the
strength identical on both ranks after every step, and a resume from an FSDP checkpoint that
continues the uninterrupted run.

accelerate turns FSDP on only for multi-process GPU/accelerator runs; on CPU it trains DDP
instead (the trainer warns, see ``test_fsdp_that_accelerate_ignores_is_warned_about``). The
slow test runs the real CLI under torchrun with one change, in a driver script: accelerate's
state is switched from multi-CPU to FSDP, with the plugin transformers built from
``training.fsdp_config``, so that the model goes through accelerate's FSDP2 preparation
(``fully_shard`` of each decoder layer and of the root), optimiser, checkpoint and resume paths
exactly as on GPUs. DeepSpeed is not run: accelerate enables it only off CPU
(``ACCELERATE_USE_DEEPSPEED`` is ignored with ``use_cpu``), and it is not installed here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

DRIVER = """
import sys
from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin
from alignment import cli
from alignment.trainer import MixDPOTrainer

original = MixDPOTrainer.create_accelerator_and_postprocess


def on_cpu_too(self):
    original(self)
    state = self.accelerator.state
    if self.args.fsdp and state.distributed_type == DistributedType.MULTI_CPU:
        state.distributed_type = DistributedType.FSDP
        state.fsdp_plugin = FullyShardedDataParallelPlugin(**self.args.fsdp_plugin_args)
        self.is_fsdp_enabled = True


MixDPOTrainer.create_accelerator_and_postprocess = on_cpu_too
sys.exit(cli.main(sys.argv[1:]))
"""

FSDP = [
    "--set", "training.fsdp=true",
    "--set", "training.fsdp_config={transformer_layer_cls_to_wrap: [LlamaDecoderLayer], "
    "state_dict_type: SHARDED_STATE_DICT}",
]  # fmt: skip


def _records(run_dir: Path) -> dict[int, dict]:
    lines = (run_dir / "logs.jsonl").read_text().splitlines()
    return {r["step"]: r for r in map(json.loads, lines) if "loss" in r}


@pytest.mark.slow
@pytest.mark.skipif(
    not (Path(sys.executable).parent / "torchrun").exists(), reason="torchrun is not installed"
)
def test_fsdp2_two_processes_match_one_and_resume(tmp_path, multiprocess_config):
    config = multiprocess_config(save_strategy="steps", save_steps=2)
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    torchrun = str(Path(sys.executable).parent / "torchrun")

    def two(run_dir: Path, *extra: str) -> None:
        done = subprocess.run(
            [torchrun, "--nproc_per_node", "2", "--master_port", "29547", str(driver), "train",
             "--config", str(config), "--set", f"run_dir={run_dir}",
             "--set", "training.per_device_train_batch_size=4", *FSDP, *extra],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-4000:]

    two(tmp_path / "fsdp")
    one = subprocess.run(
        [sys.executable, "-m", "alignment.cli", "train", "--config", str(config),
         "--set", f"run_dir={tmp_path / 'one'}", "--set", "training.per_device_train_batch_size=8"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert one.returncode == 0, one.stderr[-3000:]

    distributed = json.loads((tmp_path / "fsdp" / "metrics.json").read_text())["distributed"]
    assert distributed["fsdp"] and distributed["processes"] == 2
    assert distributed["wrapped_model"].startswith("FSDP")  # fully_shard's class
    single, sharded = _records(tmp_path / "one"), _records(tmp_path / "fsdp")
    assert sorted(single) == sorted(sharded) == [1, 2, 3, 4]
    # Tolerance: float32 gradients reduced in another order (two half batches, reduce-scatter).
    for step, record in single.items():
        for key in ("loss", "strength/shape", "strength/rate"):
            assert sharded[step][key] == pytest.approx(record[key], rel=1e-5, abs=1e-5), (step, key)
        assert sharded[step]["strength/rank_spread"] == 0.0, step  # bitwise equal replicas
    assert single[2]["loss"] != pytest.approx(single[1]["loss"], abs=1e-3)  # the curve moves

    checkpoint = tmp_path / "fsdp" / "checkpoints" / "checkpoint-2"
    assert (checkpoint / "strength_optimizer.pt").is_file()
    assert (checkpoint / "COMPLETE").is_file()
    # Resume from step 2 in a copy of the run: steps 3 and 4 as in the uninterrupted run.
    resumed = tmp_path / "resumed"
    shutil.copytree(tmp_path / "fsdp", resumed)
    shutil.rmtree(resumed / "checkpoints" / "checkpoint-4")
    two(resumed, "--set", "resume=auto")
    again = _records(resumed)
    assert sorted(again) == [1, 2, 3, 4]
    for step in (3, 4):
        for key in ("loss", "strength/shape", "strength/rate"):
            assert again[step][key] == pytest.approx(sharded[step][key], rel=1e-6), (step, key)


@pytest.mark.skipif(
    not (Path(sys.executable).parent / "torchrun").exists(), reason="torchrun is not installed"
)
def test_fsdp_that_accelerate_ignores_is_warned_about_and_resumes(tmp_path, multiprocess_config):
    """Plain CLI, 2 CPU processes, ``training.fsdp`` set: accelerate trains DDP, which the
    trainer warns about and ``metrics.json`` records; the run then resumes from its checkpoint
    (TrainingArguments fills ``fsdp_config`` in place, and the config each checkpoint keeps
    must still be the run's own, or the resume check refuses every FSDP run)."""
    config = multiprocess_config(save_strategy="steps", save_steps=2)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    torchrun = str(Path(sys.executable).parent / "torchrun")

    def two(*extra: str) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [torchrun, "--nproc_per_node", "2", "--master_port", "29548", "-m", "alignment.cli",
             "train", "--config", str(config), "--set", f"run_dir={tmp_path / 'run'}",
             "--set", "training.per_device_train_batch_size=4", *FSDP, *extra],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-4000:]
        return done

    first = two()
    assert "training.fsdp is set but accelerate did not enable it" in first.stderr
    assert "the model is not sharded" in first.stderr
    distributed = json.loads((tmp_path / "run" / "metrics.json").read_text())["distributed"]
    assert distributed == {
        "processes": 2, "fsdp": False, "deepspeed": False,
        "wrapped_model": "DistributedDataParallel",
    }  # fmt: skip
    uninterrupted = _records(tmp_path / "run")
    shutil.rmtree(tmp_path / "run" / "checkpoints" / "checkpoint-4")
    two("--set", "resume=auto")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["resumed_from"].endswith("checkpoint-2")
    resumed = _records(tmp_path / "run")
    assert sorted(resumed) == [1, 2, 3, 4]
    assert resumed[4]["loss"] == pytest.approx(uninterrupted[4]["loss"], rel=1e-6)
