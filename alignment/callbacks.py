"""Fault tolerance and run logging for :class:`alignment.MixDPOTrainer` (public Trainer callbacks).

* :class:`NonFiniteLossGuard` stops training at the first NaN/inf training loss, before the
  backward pass and optimiser step can spread it into the weights, at the first non-finite
  gradient (policy or strength) before the optimiser step, and at the first non-finite strength
  value after one, with a message naming the optimiser step; checkpoints already written stay as
  they were.
* :class:`CheckpointCompleteMarker` writes ``COMPLETE`` into each checkpoint after Trainer has
  written all of it (model, strength, optimiser, scheduler, RNG, trainer state) and after
  checking that the weights and strength it holds are finite (a non-finite checkpoint is never
  marked: training stops, naming the last good one); :func:`last_complete_checkpoint` picks the
  newest such checkpoint, so a run killed while writing one resumes from the previous one.
  Attached with :meth:`CheckpointCompleteMarker.attach`, it also takes over
  ``save_total_limit``: older checkpoints are removed only *after* the new one is marked, so a
  kill at any moment leaves a complete checkpoint (Trainer's own rotation runs before any
  callback sees the save).
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
import shutil
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


def _first_non_finite(named: Any, what: str) -> str | None:
    """``"<what> <name>"`` of the first tensor in ``named`` with a NaN/inf entry, else None."""
    for name, tensor in named:
        if tensor is not None and not bool(torch.isfinite(tensor.detach()).all()):
            return f"{what} {name}"
    return None


def _strength_of(trainer: Any) -> Any:
    return getattr(trainer, "strength", None) if trainer is not None else None


class NonFiniteLossGuard(TrainerCallback):
    """Stop at the first non-finite loss, gradient or strength, naming the 1-based optimiser step.

    Use :meth:`attach`: it registers the callback and wraps ``trainer.compute_loss`` so that each
    training micro-batch's loss is checked before ``backward`` (one host sync per micro-batch).
    Before each optimiser step the gradients of the policy and of the strength are checked (a
    NaN strength gradient can come with a finite loss), and after it the strength's values.
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
                guard._fail(f"training loss ({float(loss.detach().float().mean())})")
            return out

        trainer.compute_loss = checked_compute_loss  # instance attribute shadows the method
        trainer.add_callback(guard)
        return guard

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        # MixDPOTrainer records the step's gradient norms when it clips (max_grad_norm > 0):
        # finite norms mean finite gradients, one number each instead of a scan of every
        # parameter; the scan runs only to name the first bad gradient, or without clipping.
        norms = getattr(self.trainer, "step_grad_norms", None)
        if norms is not None:
            self.trainer.step_grad_norms = None
            if all(math.isfinite(float(n)) for n in norms):
                return
        strength = _strength_of(self.trainer)
        grads = [
            (f"strength.{n}", p.grad)
            for n, p in (strength.named_parameters() if strength is not None else [])
        ]
        if model is not None:
            grads += [(n, p.grad) for n, p in model.named_parameters() if p.requires_grad]
        problem = _first_non_finite(grads, "gradient of")
        if problem:
            self._fail(problem)

    def on_optimizer_step(self, args, state, control, **kwargs):
        strength = _strength_of(self.trainer)
        if strength is not None:
            problem = _first_non_finite(strength.named_parameters(), "strength parameter")
            if problem:
                self._fail(problem + " after the optimiser step", before_step=False)

    def _fail(self, what: str, *, before_step: bool = True) -> None:
        state = self.trainer.state
        step = state.global_step + 1
        last = last_complete_checkpoint(self.trainer.args.output_dir)
        raise NonFiniteLossError(
            f"non-finite {what} at step {step} (epoch {state.epoch or 0:.3f}); "
            + (
                "training stopped before the optimiser step. "
                if before_step
                else "training stopped. "
            )
            + (f"Last good checkpoint: {last}" if last else "No checkpoint was written yet.")
        )


class CheckpointCompleteMarker(TrainerCallback):
    """Write ``COMPLETE`` (JSON: step, time) into each checkpoint once Trainer has saved it.

    Before marking, the model's weights and the strength's values are checked; a non-finite
    checkpoint is left unmarked and :class:`NonFiniteLossError` stops training, naming the last
    complete checkpoint (checked on every process, so that all stop together; only the main
    process writes). The marker is written atomically (a temporary file renamed).

    With :meth:`attach`, ``save_total_limit`` moves here: the trainer's ``args.save_total_limit``
    is set to ``None`` (Trainer would otherwise delete older checkpoints before this callback
    runs) and, after marking, the oldest complete checkpoints beyond the limit are removed, as
    are unmarked ones older than the newest complete one (left by a killed write); the best
    model's checkpoint is kept, as Trainer keeps it.

    Args:
        save_total_limit: the number of complete checkpoints to keep (``None``: all).
    """

    def __init__(self, save_total_limit: int | None = None) -> None:
        self.save_total_limit = save_total_limit
        self.trainer: Any = None

    @classmethod
    def attach(cls, trainer: Any) -> CheckpointCompleteMarker:
        marker = cls(trainer.args.save_total_limit)
        trainer.args.save_total_limit = None  # rotation happens here, after the marker
        marker.trainer = trainer
        trainer.add_callback(marker)
        return marker

    def on_save(self, args, state, control, model=None, **kwargs):
        directory = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        named = list(model.named_parameters()) if model is not None else []
        strength = _strength_of(self.trainer)
        if strength is not None:
            named += [(f"strength.{n}", p) for n, p in strength.named_parameters()]
        problem = _first_non_finite(named, "value of")
        if problem:
            last = last_complete_checkpoint(args.output_dir)
            raise NonFiniteLossError(
                f"checkpoint {directory} holds a non-finite {problem}; it is not marked "
                f"{COMPLETE_MARKER} and training stopped. "
                + (f"Last good checkpoint: {last}" if last else "No complete checkpoint exists.")
            )
        if not state.is_world_process_zero or not os.path.isdir(directory):
            return
        marker = os.path.join(directory, COMPLETE_MARKER)
        with open(marker + ".tmp", "w") as handle:
            json.dump({"step": state.global_step, "time": time.time()}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(marker + ".tmp", marker)
        if self.save_total_limit is not None:
            _rotate(args.output_dir, self.save_total_limit, state.best_model_checkpoint)


def _checkpoints(output_dir: str | os.PathLike) -> list[tuple[int, str, bool]]:
    """``(step, path, complete)`` of every ``checkpoint-N`` under ``output_dir``, by step."""
    if not os.path.isdir(output_dir):
        return []
    found = []
    for name in os.listdir(output_dir):
        match = _CHECKPOINT.match(name)
        path = os.path.join(output_dir, name)
        if match and os.path.isdir(path):
            complete = os.path.exists(os.path.join(path, COMPLETE_MARKER))
            found.append((int(match.group(1)), path, complete))
    return sorted(found)


def _rotate(output_dir: str, limit: int, best: str | None) -> None:
    """Remove complete checkpoints beyond the newest ``limit`` (keeping ``best``) and unmarked
    ones older than the newest complete one."""
    found = _checkpoints(output_dir)
    complete = [path for _, path, done in found if done]
    if not complete:
        return
    keep = set(complete[-max(limit, 1) :])
    if best:
        keep.add(os.path.join(output_dir, os.path.basename(best)))
    newest = max(step for step, _, done in found if done)
    for step, path, done in found:
        if path in keep or (not done and step > newest):
            continue
        shutil.rmtree(path, ignore_errors=True)


def last_complete_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The ``checkpoint-N`` under ``output_dir`` with the largest ``N`` that holds ``COMPLETE``."""
    complete = [path for _, path, done in _checkpoints(output_dir) if done]
    return complete[-1] if complete else None


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
