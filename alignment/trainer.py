"""MixDPOTrainer: DPO and MixDPO training on any Hugging Face causal LM.

Built on the public hooks of :class:`transformers.Trainer` (``compute_loss``, ``create_optimizer``,
``prediction_step``, ``log``, ``save_model``, ``_load_from_checkpoint``), so accelerate,
DDP/FSDP/DeepSpeed, callbacks, logging and checkpoints come from the ecosystem; nothing depends
on TRL.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import json
import os
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel, Trainer, TrainerCallback

from alignment.config import MixDPOConfig
from alignment.data import (
    REFERENCE_COLUMNS,
    TOKENIZED_COLUMNS,
    PreferenceCollator,
    tokenize_preference_dataset,
)
from alignment.logprobs import completion_logps, find_causal_lm
from alignment.losses import PairBatch, PreferenceLoss, get_loss, get_loss_class
from alignment.models import load_model, load_tokenizer

__all__ = [
    "STRENGTH_CONFIG_NAME",
    "STRENGTH_WEIGHTS_NAME",
    "MixDPOTrainer",
    "build_strength",
    "load_strength",
    "save_strength",
    "strength_log_values",
]

STRENGTH_WEIGHTS_NAME = "strength.pt"
STRENGTH_CONFIG_NAME = "strength_config.json"


def build_strength(args: MixDPOConfig) -> nn.Module:
    """The ``mixlogit.torch`` strength module described by ``args``."""
    from mixlogit.torch import FixedStrength, GammaStrength, LogNormalStrength

    params = args.strength_parameters()
    if args.strength_family == "gamma":
        return GammaStrength(params["shape"], params["rate"], learnable=args.learn_strength)
    if args.strength_family == "lognormal":
        return LogNormalStrength(
            params["loc"],
            params["scale"],
            learnable=args.learn_strength,
            method=args.lognormal_method,
            num_samples=args.lognormal_num_samples,
            num_points=args.lognormal_num_points,
        )
    return FixedStrength(params["beta"])


def strength_log_values(strength: nn.Module) -> dict[str, float]:
    """``strength/mean``, ``strength/variance``, ``strength/cv`` and ``strength/<param>``."""
    with torch.no_grad():
        mean = float(strength.mean)
        variance = float(strength.variance)
        values = {
            "strength/mean": mean,
            "strength/variance": variance,
            "strength/cv": (variance**0.5) / mean if mean > 0 else float("nan"),
        }
        for name, value in strength.constrained_parameters().items():
            values[f"strength/{name}"] = float(value)
    return values


def save_strength(strength: nn.Module, directory: str | os.PathLike) -> None:
    """Write ``strength.pt`` (state dict) and ``strength_config.json`` (readable values)."""
    os.makedirs(directory, exist_ok=True)
    torch.save(strength.state_dict(), os.path.join(directory, STRENGTH_WEIGHTS_NAME))
    info = {
        "class": type(strength).__name__,
        "family": getattr(strength, "family", ""),
        "learnable": any(True for _ in strength.parameters()),
        **{k.removeprefix("strength/"): v for k, v in strength_log_values(strength).items()},
    }
    with open(os.path.join(directory, STRENGTH_CONFIG_NAME), "w") as handle:
        json.dump(info, handle, indent=1, sort_keys=True)


def load_strength(strength: nn.Module, directory: str | os.PathLike) -> nn.Module:
    """Load ``strength.pt`` from ``directory`` into ``strength`` (in place) and return it."""
    path = os.path.join(directory, STRENGTH_WEIGHTS_NAME)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no {STRENGTH_WEIGHTS_NAME} in {directory}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    strength.load_state_dict(state)
    return strength


def _disable_dropout(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0


def _is_peft_model(model: nn.Module) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "disable_adapter")


class _ZeroStrengthGradients(TrainerCallback):
    """Trainer zeroes only the model's gradients; the strength's must be cleared as well."""

    def __init__(self, strength: nn.Module):
        self.strength = strength

    def on_optimizer_step(self, args, state, control, **kwargs):
        for param in self.strength.parameters():
            param.grad = None


class MixDPOTrainer(Trainer):
    """Trainer for DPO and MixDPO (and any loss registered in :mod:`alignment.losses`).

    Args:
        model: a ``PreTrainedModel`` (or PEFT model), a hub id or local path, or ``None`` /
            ``"smollm2"`` for the embedded default SmolLM2-135M-Instruct.
        ref_model: the frozen reference; default a copy of ``model`` (or, with PEFT, the model
            with its adapter disabled; or none at all with ``precompute_ref_log_probs``).
        args: a :class:`MixDPOConfig`.
        train_dataset, eval_dataset: preference datasets (``prompt``/``chosen``/``rejected``
            plus optional columns), or already tokenised ones (``prompt_ids`` etc.).
        processing_class: the tokenizer (loaded from ``model`` when it is a string).
        data_collator: default :class:`alignment.data.PreferenceCollator`.
        peft_config: a ``peft`` config; the model is wrapped with ``get_peft_model``.
        strength: a ready ``mixlogit.torch`` strength module overriding ``args.strength_*``.
        loss: a ready :class:`PreferenceLoss` overriding ``args.loss_type``/``loss_kwargs``.

    Attributes:
        strength: the strength module (trained in its own optimiser group, saved as
            ``strength.pt`` in every checkpoint).
        loss_fn: the loss object.
    """

    def __init__(
        self,
        model: str | PreTrainedModel | nn.Module | None = None,
        ref_model: PreTrainedModel | nn.Module | None = None,
        args: MixDPOConfig | None = None,
        train_dataset: Any = None,
        eval_dataset: Any = None,
        processing_class: Any = None,
        data_collator: Callable | None = None,
        callbacks: list[TrainerCallback] | None = None,
        optimizers: tuple[Any, Any] = (None, None),
        peft_config: Any = None,
        strength: nn.Module | None = None,
        loss: PreferenceLoss | None = None,
    ):
        if args is None:
            args = MixDPOConfig(output_dir="mixdpo-output")
        if not isinstance(args, MixDPOConfig):
            raise TypeError(f"args must be a MixDPOConfig, got {type(args).__name__}")
        if train_dataset is None:
            raise ValueError("train_dataset is required")
        if args.ddp_find_unused_parameters is None:
            # completion_logps applies the LM head outside the DDP-wrapped forward; with
            # unused-parameter detection DDP would mark lm_head ready twice.
            args.ddp_find_unused_parameters = False
        if model is None or isinstance(model, str):
            name = model
            model = load_model(name, **(args.model_init_kwargs or {}))
            if processing_class is None:
                processing_class = load_tokenizer(name)
        if processing_class is None:
            raise ValueError("processing_class (the tokenizer) is required when model is an object")
        if ref_model is not None and ref_model is model:
            raise ValueError("model and ref_model must be different objects")
        if processing_class.pad_token is None:
            processing_class.pad_token = processing_class.eos_token
        if peft_config is not None:
            from peft import get_peft_model

            model = get_peft_model(model, peft_config)
        if args.disable_dropout:
            _disable_dropout(model)
            if ref_model is not None:
                _disable_dropout(ref_model)

        # Loss and strength.
        if loss is None:
            loss_kwargs = dict(args.loss_kwargs or {})
            loss_cls_params = inspect.signature(get_loss_class(args.loss_type)).parameters
            if "beta" in loss_cls_params and "beta" not in loss_kwargs:
                loss_kwargs["beta"] = args.beta
            loss = get_loss(args.loss_type, **loss_kwargs)
        self.loss_fn = loss
        if strength is None:
            if loss.uses_strength:
                strength = build_strength(args)
            else:
                from mixlogit.torch import FixedStrength

                strength = FixedStrength(getattr(loss, "beta", args.beta))
        self.strength = strength
        self._extra_columns = tuple(dict.fromkeys([*loss.extra_columns, *args.extra_columns]))

        # Data.
        train_dataset = self._prepare_dataset(
            train_dataset, processing_class, args, "train_dataset"
        )
        if isinstance(eval_dataset, Mapping):
            eval_dataset = {
                key: self._prepare_dataset(ds, processing_class, args, f"eval_dataset[{key!r}]")
                for key, ds in eval_dataset.items()
            }
        elif eval_dataset is not None:
            eval_dataset = self._prepare_dataset(
                eval_dataset, processing_class, args, "eval_dataset"
            )
        if data_collator is None:
            data_collator = PreferenceCollator(
                pad_token_id=processing_class.pad_token_id, extra_columns=self._extra_columns
            )

        super().__init__(
            model=model,
            args=args,
            data_collator=data_collator,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            callbacks=callbacks,
            optimizers=optimizers,
        )
        # The loss is a mean over pairs, not a token-count-normalised LM loss: let Trainer
        # divide it by the gradient-accumulation steps.
        self.model_accepts_loss_kwargs = False
        self.strength.to(self.args.device)
        self.add_callback(_ZeroStrengthGradients(self.strength))
        if self.optimizer is not None:
            self._add_strength_group(self.optimizer)

        self._metrics: dict[str, dict[str, list[float]]] = {
            "train": defaultdict(list),
            "eval": defaultdict(list),
        }
        # Reference model.
        self.precompute_ref_logps = args.precompute_ref_log_probs
        if ref_model is None and not _is_peft_model(self.model) and not self.precompute_ref_logps:
            ref_model = copy.deepcopy(find_causal_lm(self.model))
        if ref_model is not None:
            ref_model.eval()
            ref_model.requires_grad_(False)
            if self.is_deepspeed_enabled or self.is_fsdp_enabled:
                ref_model = self.accelerator.prepare_model(ref_model, evaluation_mode=True)
            else:
                ref_model = ref_model.to(self.args.device)
        self.ref_model = ref_model
        if self.precompute_ref_logps:
            self.train_dataset = self._precompute_ref_logps(self.train_dataset, "train")
            if isinstance(self.eval_dataset, Mapping):
                self.eval_dataset = {
                    k: self._precompute_ref_logps(v, f"eval {k}")
                    for k, v in self.eval_dataset.items()
                }
            elif self.eval_dataset is not None:
                self.eval_dataset = self._precompute_ref_logps(self.eval_dataset, "eval")

    # ----------------------------------------------------------------------------- data
    def _prepare_dataset(self, dataset: Any, tokenizer: Any, args: MixDPOConfig, name: str) -> Any:
        dataset = tokenize_preference_dataset(
            dataset,
            tokenizer,
            max_length=args.max_length,
            max_prompt_length=args.max_prompt_length,
            num_proc=args.dataset_num_proc,
            name=name,
        )
        missing = [c for c in self._extra_columns if c not in dataset.column_names]
        if missing:
            raise ValueError(
                f"{name} lacks column(s) {missing} needed by loss {self.loss_fn.name!r} / "
                f"extra_columns; it has {sorted(dataset.column_names)}"
            )
        return dataset

    def _set_signature_columns_if_needed(self) -> None:
        if self._signature_columns is None:
            self._signature_columns = [*TOKENIZED_COLUMNS, *REFERENCE_COLUMNS, *self._extra_columns]

    @torch.no_grad()
    def _precompute_ref_logps(self, dataset: Any, name: str) -> Any:
        if all(c in dataset.column_names for c in REFERENCE_COLUMNS):
            return dataset
        columns = [*TOKENIZED_COLUMNS]
        collator = PreferenceCollator(pad_token_id=self.processing_class.pad_token_id)
        batch_size = self.args.per_device_eval_batch_size
        chosen, rejected = [], []
        view = dataset.select_columns(columns)
        for start in range(0, len(view), batch_size):
            rows = view[start : start + batch_size]
            examples = [
                dict(zip(columns, values, strict=True))
                for values in zip(*rows.values(), strict=True)
            ]
            batch = {k: v.to(self.args.device) for k, v in collator(examples).items()}
            ref_c, ref_r = self._reference_logps(batch)
            chosen.extend(ref_c.float().cpu().tolist())
            rejected.extend(ref_r.float().cpu().tolist())
        dataset = dataset.add_column("ref_chosen_logps", chosen)
        return dataset.add_column("ref_rejected_logps", rejected)

    # ----------------------------------------------------------------------------- loss
    @torch.no_grad()
    def _reference_logps(
        self, inputs: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        args = (inputs["input_ids"], inputs["attention_mask"], inputs["completion_mask"])
        if self.ref_model is not None:
            logps = completion_logps(self.ref_model, *args)
        else:
            # PEFT: the base model with the adapter switched off; full fine-tuning with
            # precomputed log-probs: the model itself, before training starts.
            context = (
                find_causal_lm_peft(self.model).disable_adapter()
                if _is_peft_model(find_causal_lm_peft(self.model))
                else contextlib.nullcontext()
            )
            with context:
                logps = completion_logps(self.model, *args)
        return logps.chunk(2)

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, torch.Tensor],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Mean per-pair loss of one concatenated chosen+rejected forward pass."""
        mode = "train" if self.model.training else "eval"
        logps = completion_logps(
            model, inputs["input_ids"], inputs["attention_mask"], inputs["completion_mask"]
        )
        chosen_logps, rejected_logps = logps.chunk(2)
        if "ref_chosen_logps" in inputs and "ref_rejected_logps" in inputs:
            ref_chosen, ref_rejected = inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
        else:
            ref_chosen, ref_rejected = self._reference_logps(inputs)
        batch = PairBatch(
            chosen_logps=chosen_logps,
            rejected_logps=rejected_logps,
            ref_chosen_logps=ref_chosen.to(chosen_logps.dtype),
            ref_rejected_logps=ref_rejected.to(chosen_logps.dtype),
            strength=self.strength if self.loss_fn.uses_strength else None,
            extras={k: inputs[k] for k in self._extra_columns},
        )
        per_pair = self.loss_fn(batch)
        loss = per_pair.mean()
        self._record_metrics(mode, batch)
        if return_outputs:
            return loss, {"per_pair_loss": per_pair.detach(), "margin": batch.margin.detach()}
        return loss

    @torch.no_grad()
    def _record_metrics(self, mode: str, batch: PairBatch) -> None:
        scale_batch = PairBatch(**{**batch.__dict__, "strength": self.strength})
        scale = self.loss_fn.reward_scale(scale_batch)
        scale = float(scale) if not isinstance(scale, float) else scale
        chosen = scale * batch.chosen_logratios.detach()
        rejected = scale * batch.rejected_logratios.detach()
        gather = self.accelerator.gather_for_metrics
        chosen, rejected = gather(chosen), gather(rejected)
        metrics = self._metrics[mode]
        metrics["rewards/chosen"].append(chosen.mean().item())
        metrics["rewards/rejected"].append(rejected.mean().item())
        metrics["rewards/accuracies"].append((chosen > rejected).float().mean().item())
        metrics["rewards/margins"].append((chosen - rejected).mean().item())
        metrics["logps/chosen"].append(gather(batch.chosen_logps.detach()).mean().item())
        metrics["logps/rejected"].append(gather(batch.rejected_logps.detach()).mean().item())

    def prediction_step(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        prediction_loss_only: bool,
        ignore_keys: list[str] | None = None,
    ) -> tuple[torch.Tensor, None, None]:
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None

    def training_step(
        self, model: nn.Module, inputs: dict[str, Any], num_items_in_batch: Any = None
    ):
        loss = super().training_step(model, inputs, num_items_in_batch)
        # The strength lives outside the DDP-wrapped model: average its gradients by hand.
        if self.accelerator.num_processes > 1 and torch.distributed.is_initialized():
            world = torch.distributed.get_world_size()
            for param in self.strength.parameters():
                if param.grad is None:
                    param.grad = torch.zeros_like(param)
                torch.distributed.all_reduce(param.grad)
                param.grad.div_(world)
        return loss

    def evaluate(
        self,
        eval_dataset: Any = None,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "eval",
    ) -> dict[str, float]:
        """``Trainer.evaluate`` that also accepts raw (untokenised) preference datasets."""
        if eval_dataset is not None and not isinstance(eval_dataset, str):
            if isinstance(eval_dataset, Mapping):
                eval_dataset = {k: self._prepare_eval(v, k) for k, v in eval_dataset.items()}
            else:
                eval_dataset = self._prepare_eval(eval_dataset, metric_key_prefix)
        return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)

    def _prepare_eval(self, dataset: Any, name: str) -> Any:
        dataset = self._prepare_dataset(dataset, self.processing_class, self.args, name)
        if self.precompute_ref_logps and not all(
            c in dataset.column_names for c in REFERENCE_COLUMNS
        ):
            if self.ref_model is None and not _is_peft_model(find_causal_lm_peft(self.model)):
                if self.state.global_step > 0:
                    raise ValueError(
                        "cannot compute reference log-probs for a new evaluation dataset after "
                        "training started: with precompute_ref_log_probs=True and full fine-tuning "
                        "no reference model is kept; pass it as eval_dataset at construction or "
                        "give a ref_model"
                    )
            dataset = self._precompute_ref_logps(dataset, name)
        return dataset

    # ----------------------------------------------------------------------------- optimiser
    def _add_strength_group(self, optimizer: torch.optim.Optimizer) -> None:
        params = [p for p in self.strength.parameters() if p.requires_grad]
        if not params:
            return
        present = {id(p) for group in optimizer.param_groups for p in group["params"]}
        if any(id(p) in present for p in params):
            return
        optimizer.add_param_group(
            {"params": params, "lr": self.args.strength_learning_rate, "weight_decay": 0.0}
        )

    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        """The Trainer's optimiser plus one group for the strength parameters (own LR, no decay)."""
        optimizer = (
            super().create_optimizer(model) if model is not None else super().create_optimizer()
        )
        self._add_strength_group(self.optimizer)
        return optimizer

    # ----------------------------------------------------------------------------- logging
    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        mode = "train" if self.model.training else "eval"
        averaged = {k: sum(v) / len(v) for k, v in self._metrics[mode].items() if v}
        averaged.update(strength_log_values(self.strength))
        if mode == "eval":
            averaged = {f"eval_{k}": v for k, v in averaged.items()}
        logs.update(averaged)  # in place: `evaluate` returns this same dict
        self._metrics[mode].clear()
        super().log(logs, start_time)

    # ----------------------------------------------------------------------------- checkpoints
    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Save the model (as Trainer does) and the strength (``strength.pt`` + JSON)."""
        super().save_model(output_dir, _internal_call)
        if self.args.should_save:
            save_strength(self.strength, output_dir or self.args.output_dir)

    def _load_from_checkpoint(
        self, resume_from_checkpoint: str, model: nn.Module | None = None
    ) -> None:
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        if os.path.exists(os.path.join(resume_from_checkpoint, STRENGTH_WEIGHTS_NAME)):
            load_strength(self.strength, resume_from_checkpoint)

    def _load_best_model(self) -> None:
        super()._load_best_model()
        best = self.state.best_model_checkpoint
        if best and os.path.exists(os.path.join(best, STRENGTH_WEIGHTS_NAME)):
            load_strength(self.strength, best)


def find_causal_lm_peft(model: nn.Module) -> nn.Module:
    """The PEFT model under DDP/accelerate wrappers (or the model itself)."""
    while not _is_peft_model(model) and isinstance(getattr(model, "module", None), nn.Module):
        model = model.module
    return model
