"""Fault tolerance and run logging for :class:`alignment.MixDPOTrainer` (public Trainer callbacks).

* :class:`NonFiniteLossGuard` stops training at the first NaN/inf training loss, before the
  backward pass and optimiser step can spread it into the weights, with a message naming the
  optimiser step; checkpoints already written stay as they were.
* :class:`CheckpointCompleteMarker` writes ``COMPLETE`` into each checkpoint after Trainer has
  written all of it (model, strength, optimiser, scheduler, RNG, trainer state);
  :func:`last_complete_checkpoint` picks the newest such checkpoint, so a run killed while
  writing one resumes from the previous one.
* :class:`JsonlLogger` appends every log record to a JSONL file (flushed at once); on resume it
  first drops records of steps after the checkpoint, so the file holds one loss curve.

Resuming itself is Trainer's ``train(resume_from_checkpoint=...)``: model, optimiser (with the
strength group), scheduler, RNG states and the position in the data order are restored, and
``MixDPOTrainer`` reloads ``strength.pt``.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from typing import Any

import torch
from transformers import TrainerCallback

__all__ = [
    "COMPLETE_MARKER",
    "CheckpointCompleteMarker",
    "JsonlLogger",
    "NonFiniteLossError",
    "NonFiniteLossGuard",
    "last_complete_checkpoint",
]

COMPLETE_MARKER = "COMPLETE"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


class NonFiniteLossError(FloatingPointError):
    """Raised by :class:`NonFiniteLossGuard`; the message names the step and the last checkpoint."""


class NonFiniteLossGuard(TrainerCallback):
    """Stop at the first non-finite training loss, naming the step (1-based optimiser step).

    Use :meth:`attach`: it registers the callback and wraps ``trainer.compute_loss`` so that each
    training micro-batch's loss is checked before ``backward`` (one host sync per micro-batch).
    Evaluation losses are not checked.
    """

    def __init__(self) -> None:
        self.trainer: Any = None

    @classmethod
    def attach(cls, trainer: Any) -> NonFiniteLossGuard:
        guard = cls()
        guard.trainer = trainer
        compute_loss = trainer.compute_loss

        def checked_compute_loss(model, inputs, return_outputs=False, num_items_in_batch=None):
            out = compute_loss(
                model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
            )
            loss = out[0] if isinstance(out, tuple) else out
            if model.training and not bool(torch.isfinite(loss.detach()).all()):
                guard._fail(float(loss.detach().float().mean()))
            return out

        trainer.compute_loss = checked_compute_loss  # instance attribute shadows the method
        trainer.add_callback(guard)
        return guard

    def _fail(self, value: float) -> None:
        state = self.trainer.state
        step = state.global_step + 1
        last = last_complete_checkpoint(self.trainer.args.output_dir)
        raise NonFiniteLossError(
            f"non-finite training loss ({value}) at step {step} (epoch {state.epoch or 0:.3f}); "
            "training stopped before the optimiser step. "
            + (f"Last good checkpoint: {last}" if last else "No checkpoint was written yet.")
        )


class CheckpointCompleteMarker(TrainerCallback):
    """Write ``COMPLETE`` (JSON: step, time) into each checkpoint once Trainer has saved it."""

    def on_save(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        directory = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        if os.path.isdir(directory):
            with open(os.path.join(directory, COMPLETE_MARKER), "w") as handle:
                json.dump({"step": state.global_step, "time": time.time()}, handle)


def last_complete_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The ``checkpoint-N`` under ``output_dir`` with the largest ``N`` that holds ``COMPLETE``."""
    if not os.path.isdir(output_dir):
        return None
    found = []
    for name in os.listdir(output_dir):
        match = _CHECKPOINT.match(name)
        path = os.path.join(output_dir, name)
        if match and os.path.exists(os.path.join(path, COMPLETE_MARKER)):
            found.append((int(match.group(1)), path))
    return max(found)[1] if found else None


class JsonlLogger(TrainerCallback):
    """Append each log record as one JSON line: ``{"step", "epoch", "time", **logs}``."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero or not os.path.exists(self.path):
            return
        # Resumed (or restarted) run: keep only records up to the restored step.
        with open(self.path) as handle:
            records = [json.loads(line) for line in handle if line.strip()]
        kept = [r for r in records if r.get("step", 0) <= state.global_step]
        if len(kept) != len(records):
            with open(self.path, "w") as handle:
                handle.writelines(json.dumps(r) + "\n" for r in kept)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        record = {"step": state.global_step, "epoch": state.epoch, "time": time.time()}
        record.update({k: _jsonable(v) for k, v in logs.items()})
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        with open(self.path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            os.fsync(handle.fileno())


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)
