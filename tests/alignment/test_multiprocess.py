"""torchrun with 2 CPU processes (gloo) gives the 1-process loss curve at the same global batch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _losses(run_dir: Path) -> dict[int, tuple[float, float]]:
    records = [json.loads(line) for line in (run_dir / "logs.jsonl").read_text().splitlines()]
    return {r["step"]: (r["loss"], r["strength/shape"]) for r in records if "loss" in r}


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists(),
    reason="torchrun is not installed",
)
def test_two_processes_match_one(tmp_path, multiprocess_config):
    config = multiprocess_config()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    torchrun = str(Path(sys.executable).parent / "torchrun")
    cli = ["-m", "alignment.cli", "train", "--config", str(config)]
    two = subprocess.run(
        [torchrun, "--nproc_per_node", "2", "--master_port", "29533", *cli,
         "--set", f"run_dir={tmp_path / 'two'}",
         "--set", "training.per_device_train_batch_size=4"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert two.returncode == 0, two.stderr[-3000:]
    one = subprocess.run(
        [sys.executable, *cli, "--set", f"run_dir={tmp_path / 'one'}",
         "--set", "training.per_device_train_batch_size=8"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert one.returncode == 0, one.stderr[-3000:]
    single, double = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert sorted(single) == sorted(double) == [1, 2, 3, 4]
    # Tolerance: float32 gradients summed in another order (all-reduce of two half batches).
    for step, (loss, shape) in single.items():
        assert double[step][0] == pytest.approx(loss, rel=1e-5, abs=1e-5), step
        assert double[step][1] == pytest.approx(shape, rel=1e-5), step
    assert single[2][0] != pytest.approx(single[1][0], abs=1e-3)  # the curve actually moves
