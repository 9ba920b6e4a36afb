"""Training configuration of :class:`alignment.MixDPOTrainer`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from transformers import TrainingArguments

__all__ = ["STRENGTH_DEFAULTS", "MixDPOConfig"]

# The MixDPO paper's initialisations: both have mean ~0.12, DPO's usual beta scale.
STRENGTH_DEFAULTS: dict[str, dict[str, float]] = {
    "gamma": {"shape": 2.0, "rate": 16.7},
    "lognormal": {"loc": -2.3, "scale": 0.6},
    "fixed": {},  # a point mass at ``beta``
}


@dataclass
class MixDPOConfig(TrainingArguments):
    """:class:`transformers.TrainingArguments` plus the MixDPO/DPO settings.

    Everything from ``TrainingArguments`` (batch sizes, gradient accumulation, schedules,
    logging, checkpointing, mixed precision, DDP/FSDP/DeepSpeed through accelerate) works as
    usual. ``learning_rate`` is the policy's; the strength parameters have their own
    ``strength_learning_rate`` in a separate optimiser group (same schedule).
    """

    learning_rate: float = field(default=1e-6, metadata={"help": "Policy learning rate."})
    loss_type: str = field(
        default="mixdpo",
        metadata={"help": "Registered loss name (see alignment.losses.available_losses())."},
    )
    loss_kwargs: dict[str, Any] | None = field(
        default=None, metadata={"help": "Keyword arguments for the loss constructor."}
    )
    beta: float = field(
        default=0.1,
        metadata={"help": "DPO's fixed beta (loss_type='dpo', strength_family='fixed')."},
    )
    strength_family: str = field(
        default="lognormal",
        metadata={"help": "Strength distribution: 'lognormal', 'gamma' or 'fixed' (point mass)."},
    )
    strength_init: dict[str, float] | None = field(
        default=None,
        metadata={
            "help": "Initial strength parameters; defaults: gamma shape=2.0 rate=16.7, "
            "lognormal loc=-2.3 scale=0.6, fixed beta=`beta`."
        },
    )
    learn_strength: bool = field(
        default=True,
        metadata={"help": "Train the strength parameters (False: fixed-distribution baseline)."},
    )
    strength_learning_rate: float = field(
        default=1e-4, metadata={"help": "Learning rate of the strength parameter group."}
    )
    lognormal_method: str = field(
        default="mc",
        metadata={"help": "LogNormal marginal: 'mc' (reparameterised) or 'quadrature'."},
    )
    lognormal_num_samples: int = field(default=16, metadata={"help": "Monte Carlo draws K."})
    lognormal_num_points: int = field(default=16, metadata={"help": "Gauss-Hermite nodes."})
    max_length: int | None = field(
        default=128, metadata={"help": "Maximum prompt + completion tokens per sequence."}
    )
    max_prompt_length: int | None = field(
        default=64, metadata={"help": "Maximum prompt tokens (the prompt keeps its end)."}
    )
    precompute_ref_log_probs: bool = field(
        default=False,
        metadata={"help": "Compute reference log-probs once before training (no ref forward)."},
    )
    extra_columns: list[str] = field(
        default_factory=list,
        metadata={"help": "Numeric dataset columns passed to the loss as per-pair tensors."},
    )
    model_init_kwargs: dict[str, Any] | None = field(
        default=None, metadata={"help": "from_pretrained kwargs when `model` is a string."}
    )
    disable_dropout: bool = field(
        default=True, metadata={"help": "Set dropout to 0 in the policy and the reference."}
    )
    dataset_num_proc: int | None = field(
        default=None, metadata={"help": "Processes for dataset tokenisation."}
    )
    logging_steps: float = field(default=10, metadata={"help": "Log every this many steps."})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.strength_family not in STRENGTH_DEFAULTS:
            raise ValueError(
                f"strength_family must be one of {sorted(STRENGTH_DEFAULTS)}, "
                f"got {self.strength_family!r}"
            )
        if self.lognormal_method not in ("mc", "quadrature"):
            raise ValueError(
                f"lognormal_method must be 'mc' or 'quadrature', got {self.lognormal_method!r}"
            )
        if not self.beta > 0:
            raise ValueError(f"beta must be positive, got {self.beta}")
        if not self.strength_learning_rate >= 0:
            raise ValueError(
                f"strength_learning_rate must be >= 0, got {self.strength_learning_rate}"
            )
        if (
            self.max_length is not None
            and self.max_prompt_length is not None
            and self.max_prompt_length >= self.max_length
        ):
            raise ValueError(
                f"max_prompt_length ({self.max_prompt_length}) must be smaller than "
                f"max_length ({self.max_length})"
            )
        allowed = set(STRENGTH_DEFAULTS[self.strength_family]) | (
            {"beta"} if self.strength_family == "fixed" else set()
        )
        unknown = set(self.strength_init or {}) - allowed
        if unknown:
            raise ValueError(
                f"strength_init keys {sorted(unknown)} do not belong to strength_family "
                f"{self.strength_family!r} (allowed: {sorted(allowed)})"
            )
        self.extra_columns = list(self.extra_columns or [])

    def strength_parameters(self) -> dict[str, float]:
        """The initial strength parameters after applying ``strength_init`` to the defaults."""
        params = dict(STRENGTH_DEFAULTS[self.strength_family])
        if self.strength_family == "fixed":
            params["beta"] = self.beta
        params.update(self.strength_init or {})
        return params
