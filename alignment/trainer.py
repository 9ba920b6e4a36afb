"""MixDPOTrainer: DPO and MixDPO training on any Hugging Face causal LM.

Built on :class:`transformers.Trainer`, so accelerate, DDP/FSDP/DeepSpeed, callbacks, logging and
checkpoints come from the ecosystem; nothing depends on TRL. Overridden public methods:
``compute_loss``, ``prediction_step``, ``training_step``, ``evaluate``, ``create_optimizer``,
``get_train_dataloader`` (annotator level only: batches that keep an annotator's pairs
together), ``create_scheduler``, ``log`` and ``save_model``. Five private ``Trainer`` methods
are overridden as well, because ``Trainer`` offers no public hook for what they do (tested
against transformers 4.46 and later; a rename upstream would break them):

* ``_set_signature_columns_if_needed``: keep the token, reference and extra columns when
  ``remove_unused_columns`` drops the dataset columns the model's ``forward`` does not take;
* ``_load_from_checkpoint``: reload ``strength.pt`` when resuming from a checkpoint;
* ``_load_best_model``: reload the best checkpoint's ``strength.pt`` with
  ``load_best_model_at_end``;
* ``_save_optimizer_and_scheduler`` / ``_load_optimizer_and_scheduler``: under FSDP the
  optimiser state is saved and loaded through the model's parameter names, which the
  strength's parameters (outside the model) do not have; their group is set aside for that and
  saved beside it (:data:`STRENGTH_OPTIMIZER_NAME`).
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import json
import logging
import os
import warnings
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn
from transformers import EvalPrediction, PreTrainedModel, Trainer, TrainerCallback, set_seed

from alignment.config import MixDPOConfig
from alignment.data import (
    REFERENCE_COLUMNS,
    TOKENIZED_COLUMNS,
    PreferenceCollator,
    _column_tensor,
    distinct_pairs,
    tokenize_preference_dataset,
)
from alignment.logprobs import completion_logps, find_causal_lm
from alignment.losses import PairBatch, PreferenceLoss, WeightedLoss, get_loss, get_loss_class
from alignment.policy_models import load_model, load_tokenizer
from mixlogit.conditional import StrengthDesign
from mixlogit.families import LOG_PREFIX, LOGNORMAL, NUMPY_OPS, REFIT_LOG_PREFIX, get_family

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
#: The running strength average of a checkpoint (``strength_average_half_life``).
STRENGTH_AVERAGE_NAME = "strength_average.pt"
#: The strength group's optimiser state in a checkpoint of an FSDP run (the model's optimiser
#: state is FSDP's own files there).
STRENGTH_OPTIMIZER_NAME = "strength_optimizer.pt"


def build_strength(args: MixDPOConfig, design: StrengthDesign | None = None) -> nn.Module:
    """The ``mixlogit.torch`` strength module described by ``args``.

    With ``strength_parameterisation="mean_cv"`` it is a
    :class:`mixlogit.torch.conditional.ConditionalStrength` on ``design`` (the rater
    covariates; ``None``: none), else the family's module in its natural parameters.
    """
    family = get_family(args.strength_family)
    options: dict[str, Any] = {}
    if family is LOGNORMAL:  # the config's lognormal_* fields
        options.update(
            method=args.lognormal_method,
            num_samples=args.lognormal_num_samples,
            num_points=args.lognormal_num_points,
        )
    if args.conditional_strength:
        from mixlogit.torch.conditional import ConditionalStrength

        return ConditionalStrength(
            family,
            design,
            init=args.strength_parameters(),
            learnable=args.learn_strength and family.learnable,
            tau_mean=args.strength_pooling_scale,
            tau_cv=args.strength_pooling_scale,
            **options,
        )
    if design is not None and design.columns:
        raise ValueError("strength covariates need strength_parameterisation='mean_cv'")
    from mixlogit.torch import make_strength

    return make_strength(
        family, args.strength_parameters(), learnable=args.learn_strength, **options
    )


def strength_log_values(strength: nn.Module, covariates: Any = None) -> dict[str, float]:
    """The training-log values of a strength module, keyed by its family's ``log_keys()``:
    ``strength/mean``, ``strength/variance``, ``strength/cv`` and one ``strength/<param>`` per
    parameter (floats). A conditional strength adds ``strength/<level>/mean`` and
    ``strength/<level>/cv`` per pooled level; its population moments are those of the mixture
    over the ``covariates`` rows (the training annotators) when given."""
    if hasattr(strength, "log_values"):
        return strength.log_values(covariates)
    family = get_family(strength.family)
    with torch.no_grad():
        params = {k: float(v) for k, v in strength.constrained_parameters().items()}
    values = {**family.moments(NUMPY_OPS, params), **params}
    return {LOG_PREFIX + k: float(v) for k, v in values.items()}


def save_strength(
    strength: nn.Module,
    directory: str | os.PathLike,
    *,
    covariates: Any = None,
    annotators: list[str] | None = None,
) -> None:
    """Write ``strength.pt`` (state dict) and ``strength_config.json`` (readable values; for a
    conditional strength also its constructor record with the covariate design and level
    mapping, and the training ``annotators`` in index order)."""
    os.makedirs(directory, exist_ok=True)
    torch.save(strength.state_dict(), os.path.join(directory, STRENGTH_WEIGHTS_NAME))
    values = strength_log_values(strength, covariates)
    info = {
        "class": type(strength).__name__,
        "family": getattr(strength, "family", ""),
        "learnable": any(True for _ in strength.parameters()),
        **{k.removeprefix(LOG_PREFIX): v for k, v in values.items()},
    }
    if hasattr(strength, "config"):
        info["conditional"] = strength.config()
    if annotators is not None:
        info["annotators"] = list(annotators)
    with open(os.path.join(directory, STRENGTH_CONFIG_NAME), "w") as handle:
        json.dump(info, handle, indent=1, sort_keys=True)


def load_strength(strength: nn.Module, directory: str | os.PathLike) -> nn.Module:
    """Load ``strength.pt`` from ``directory`` into ``strength`` (in place) and return it.

    Raises:
        FileNotFoundError: no ``strength.pt``.
        ValueError: the checkpoint's conditional strength has another covariate design (levels,
            regressors, standardisation) than ``strength``.
    """
    path = os.path.join(directory, STRENGTH_WEIGHTS_NAME)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no {STRENGTH_WEIGHTS_NAME} in {directory}")
    info_path = os.path.join(directory, STRENGTH_CONFIG_NAME)
    if hasattr(strength, "config") and os.path.exists(info_path):
        with open(info_path) as handle:
            saved = json.load(handle).get("conditional")
        if saved is not None and saved.get("design") != strength.config()["design"]:
            raise ValueError(
                f"the strength in {directory} was trained with covariate design "
                f"{saved.get('design')}, not {strength.config()['design']}"
            )
    state = torch.load(path, map_location="cpu", weights_only=True)
    strength.load_state_dict(state)
    return strength


class _StrengthInputs:
    """Annotator indices and rater covariates for the panel / conditional strength loss.

    Built from the training set: annotators are numbered in sorted order of their ids, the
    covariate design is fitted on one row per annotator (annotator level) or on the labels
    (pair level). :meth:`add_columns` writes the loss's batch columns into any dataset.
    """

    def __init__(self, args: MixDPOConfig, train_dataset: Any, design: StrengthDesign | None):
        from mixlogit.conditional import group_covariates

        self.annotator_column = (
            args.annotator_column if args.strength_level == "annotator" else None
        )
        self.covariates = list(args.strength_covariates)
        self._check_columns(train_dataset, "train_dataset")
        self.annotators: list[str] | None = None
        table: Any = None
        if self.annotator_column is not None:
            ids = [str(v) for v in train_dataset[self.annotator_column]]
            self.annotators = sorted(set(ids))
            lookup = {a: k for k, a in enumerate(self.annotators)}
            if self.covariates:
                table = group_covariates(
                    train_dataset, [lookup[a] for a in ids], self.covariates, len(self.annotators)
                )
        elif self.covariates:
            table = {c: list(train_dataset[c]) for c in self.covariates}
        if design is None:
            design = (
                StrengthDesign.infer(table, self.covariates)
                if self.covariates
                else StrengthDesign()
            )
        missing = sorted(set(design.columns) - set(self.covariates))
        if missing:
            raise ValueError(
                f"the strength's design reads column(s) {missing} that are not in "
                f"strength_covariates {self.covariates}"
            )
        self.design = design
        # The raters whose mixture is logged as the population strength.
        self.population = None if table is None else design.encode(table)

    def _check_columns(self, dataset: Any, name: str) -> None:
        needed = [c for c in [self.annotator_column, *self.covariates] if c is not None]
        missing = [c for c in needed if c not in dataset.column_names]
        if missing:
            what = "annotator_column / strength_covariates"
            raise ValueError(
                f"{name} lacks column(s) {missing} ({what}); it has {sorted(dataset.column_names)}"
            )

    def add_columns(self, dataset: Any, name: str) -> Any:
        """``dataset`` with the batch columns of :mod:`alignment.losses.panel` (replaced if
        present): annotator index (unknown annotators numbered after the training ones),
        pooled-level indices and regressors."""
        from alignment.losses.panel import (
            FEATURES_COLUMN,
            GROUP_COLUMN,
            LEVELS_COLUMN,
            ROW_COLUMN,
        )

        self._check_columns(dataset, name)
        columns: dict[str, list] = {}
        if self.annotator_column is not None:
            lookup = {a: k for k, a in enumerate(self.annotators)}
            group = []
            for value in dataset[self.annotator_column]:
                group.append(lookup.setdefault(str(value), len(lookup)))
            columns[GROUP_COLUMN] = group
            columns[ROW_COLUMN] = list(range(len(dataset)))
        if self.design.columns:
            try:
                encoded = self.design.encode(dataset.select_columns(list(self.design.columns)))
            except ValueError as error:
                raise ValueError(f"{name}: {error}") from None
            if self.design.levels:
                columns[LEVELS_COLUMN] = encoded.level_index.tolist()
            if self.design.num_features:
                columns[FEATURES_COLUMN] = encoded.features.tolist()
        for column, values in columns.items():
            if column in dataset.column_names:
                dataset = dataset.remove_columns(column)
            dataset = dataset.add_column(column, values)
        return dataset


def _disable_dropout(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0


def _is_iterable(dataset: Any) -> bool:
    from datasets import IterableDataset

    return isinstance(dataset, IterableDataset)


def _is_peft_model(model: nn.Module) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "disable_adapter")


#: Name of the frozen copy of a pretrained PEFT adapter that serves as the reference.
REFERENCE_ADAPTER = "ref"


def _add_reference_adapter(model: nn.Module) -> None:
    """Add a frozen copy of ``model``'s active adapter under :data:`REFERENCE_ADAPTER`.

    A PEFT model passed in already trained would otherwise get the *base* model as its
    reference; TRL copies the adapter instead, and so does this.
    """
    if REFERENCE_ADAPTER in model.peft_config:
        return
    active = model.active_adapter
    model.add_adapter(REFERENCE_ADAPTER, copy.deepcopy(model.peft_config[active]))
    marker, target = f".{active}.", f".{REFERENCE_ADAPTER}."
    with torch.no_grad():
        for name, param in model.named_parameters():
            if marker in name:
                model.get_parameter(name.replace(marker, target)).copy_(param)
    for name, param in model.named_parameters():
        if target in name:
            param.requires_grad_(False)


@contextlib.contextmanager
def _reference_adapter(model: nn.Module):
    """Run ``model`` as the reference: its :data:`REFERENCE_ADAPTER` when it has one, else
    the base model (adapters disabled)."""
    if REFERENCE_ADAPTER not in model.peft_config:
        with model.disable_adapter():
            yield
        return
    previous = model.active_adapter
    trainable = {n: p.requires_grad for n, p in model.named_parameters()}
    model.set_adapter(REFERENCE_ADAPTER)
    try:
        yield
    finally:
        model.set_adapter(previous)
        # set_adapter changes requires_grad; restore the training setup exactly.
        for name, param in model.named_parameters():
            param.requires_grad_(trainable[name])


def _warn_unsharded(trainer: Trainer) -> None:
    """Warn when ``fsdp`` or ``deepspeed`` is set but accelerate enabled neither: it turns them
    on only for multi-process runs on GPUs or other accelerators and otherwise trains as DDP
    (or one process) without a word, so the model would not be sharded."""
    args = trainer.args
    for name, asked, enabled in (
        ("fsdp", args.fsdp, trainer.is_fsdp_enabled),
        ("deepspeed", args.deepspeed, trainer.is_deepspeed_enabled),
    ):
        if asked and not enabled:
            warnings.warn(
                f"training.{name} is set but accelerate did not enable it (it does only for "
                "multi-process runs on GPUs or other accelerators; this run has "
                f"{trainer.accelerator.num_processes} process(es) on "
                f"{trainer.args.device.type}): the model is not sharded",
                RuntimeWarning,
                stacklevel=3,
            )


class _ZeroStrengthGradients(TrainerCallback):
    """Trainer zeroes only the model's gradients; the strength's must be cleared as well."""

    def __init__(self, strength: nn.Module):
        self.strength = strength

    def on_optimizer_step(self, args, state, control, **kwargs):
        for param in self.strength.parameters():
            param.grad = None


class _StrengthReplicaCheck(TrainerCallback):
    """After every optimiser step of a multi-process run, the largest difference of any
    strength parameter between a rank and rank 0 (``spread``, logged as
    ``strength/rank_spread``).

    The strength lives outside the DDP/FSDP/DeepSpeed-wrapped model, replicated on every rank:
    the same all-reduced gradients and the same optimiser state must give bitwise the same
    values everywhere. A rank that drifts (a gradient missed by the all-reduce, a rank-local
    update) would train each rank's policy against another strength and save rank 0's alone;
    a non-zero spread is warned about at once.
    """

    def __init__(self, strength: nn.Module):
        self.strength = strength
        self.spread: float | None = None

    def on_step_end(self, args, state, control, **kwargs):
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return
        world = torch.distributed.get_world_size()
        params = [p.detach().reshape(-1) for p in self.strength.parameters()]
        if world < 2 or not params:
            return
        flat = torch.cat(params)
        gathered = [torch.empty_like(flat) for _ in range(world)]
        torch.distributed.all_gather(gathered, flat)
        self.spread = max(float((g - gathered[0]).abs().max()) for g in gathered)
        if self.spread > 0:
            warnings.warn(
                f"strength parameters differ between ranks by up to {self.spread:.3g} after "
                f"optimiser step {state.global_step}: the replicas no longer train one strength",
                RuntimeWarning,
                stacklevel=2,
            )


class _StrengthAverage(TrainerCallback):
    """Exponential moving average of the strength parameters over the optimiser steps.

    Adam at the ``mean_cv`` learning rate moves each strength parameter by up to about
    ``strength_learning_rate`` (a 10 % change of a mean or a CV) per step, driven by the few
    annotators of one batch, so the final iterate carries that step noise. The average
    ``a <- d a + (1 - d) theta`` (``d = 2 ** (-1 / half_life)``, updated after every optimiser
    step, in the unconstrained parameters) is copied into the strength when training ends: the
    learned values (saved, returned by ``strength_values``) are the averaged ones. Checkpoints
    store it (:data:`STRENGTH_AVERAGE_NAME`) so that a resumed run continues the same average.
    """

    def __init__(self, strength: nn.Module, half_life: float):
        self.strength = strength
        self.decay = 0.5 ** (1.0 / half_life)
        self.average: dict[str, torch.Tensor] | None = None

    def _params(self) -> dict[str, torch.Tensor]:
        return {k: p for k, p in self.strength.named_parameters() if p.requires_grad}

    def on_train_begin(self, args, state, control, **kwargs):
        if self.average is None:  # not restored from a checkpoint
            self.average = {k: p.detach().clone() for k, p in self._params().items()}

    def on_step_end(self, args, state, control, **kwargs):
        if self.average is None:
            return
        with torch.no_grad():
            for key, param in self._params().items():
                self.average[key].mul_(self.decay).add_(param.detach(), alpha=1.0 - self.decay)

    def on_train_end(self, args, state, control, **kwargs):
        # With load_best_model_at_end the strength is the best checkpoint's: keep it.
        if self.average is None or args.load_best_model_at_end:
            return
        with torch.no_grad():
            for key, param in self._params().items():
                param.copy_(self.average[key])
        self.average = None

    def save(self, directory: str | os.PathLike) -> None:
        if self.average is not None:
            torch.save(self.average, os.path.join(directory, STRENGTH_AVERAGE_NAME))

    def load(self, directory: str | os.PathLike) -> None:
        path = os.path.join(directory, STRENGTH_AVERAGE_NAME)
        if os.path.exists(path):
            self.average = torch.load(path, map_location="cpu", weights_only=True)
            device = next(iter(self._params().values())).device
            self.average = {k: v.to(device) for k, v in self.average.items()}


class MixDPOTrainer(Trainer):
    """Trainer for DPO and MixDPO (and any loss registered in :mod:`alignment.losses`).

    Args:
        model: a ``PreTrainedModel`` (or PEFT model), a hub id or local path, or ``None`` /
            ``"smollm2"`` for the embedded default SmolLM2-135M-Instruct.
        ref_model: the frozen reference; default a copy of ``model`` (or, with
            ``peft_config``, the model with its adapter disabled; with a PEFT model passed in,
            its ``"ref"`` adapter copy; or none at all with ``precompute_ref_log_probs``).
        args: a :class:`MixDPOConfig`.
        train_dataset, eval_dataset: preference datasets (``prompt``/``chosen``/``rejected``
            plus optional columns; ``chosen``/``rejected`` alone for an implicit prompt), or
            already tokenised ones (``prompt_ids`` etc.); ``datasets.Dataset`` or a streaming
            ``datasets.IterableDataset`` (then set ``max_steps``).
        processing_class: the tokenizer; default the one of ``model`` (a string) or of the
            checkpoint a model object was loaded from (``model.config._name_or_path``).
        data_collator: default :class:`alignment.data.PreferenceCollator`.
        peft_config: a ``peft`` config; the model is wrapped with ``get_peft_model`` after
            ``set_seed(args.seed)`` (so the seed fixes the adapter's initialisation). A model
            that is already a PEFT model (a trained adapter) without ``peft_config`` gets a
            frozen copy of its adapter, named ``"ref"``, as the reference (as in TRL).
        strength: a ready ``mixlogit.torch`` strength module overriding ``args.strength_*``.
        loss: a ready :class:`PreferenceLoss` overriding ``args.loss_type``/``loss_kwargs``.
        compute_metrics: called at evaluation with an ``EvalPrediction`` of per-pair values
            (below); returns a dict of metrics.

    Annotator level / rater covariates (``MixDPOConfig.strength_level="annotator"``,
    ``strength_covariates``): the annotators of the training set are numbered in sorted order
    of their ids; the covariate design (pooled levels, standardised regressors) is fitted on one
    row per training annotator (per label at the pair level) and every covariate must be
    constant within an annotator; the strength is a ``ConditionalStrength`` on that design and
    the loss is ``alignment.losses.panel``'s, fed per pair with the annotator index and the
    encoded covariates (batch columns ``strength_group``, ``strength_levels``,
    ``strength_features``). Evaluation sets may hold new annotators (numbered after the
    training ones) but no covariate level unseen in training. Logs add the population
    mixture's ``strength/mean``/``strength/cv`` over the training annotators and
    ``strength/<level>/mean``, ``strength/<level>/cv`` per level; checkpoints store the state
    dict plus, in ``strength_config.json``, the design (level mapping, standardisation) and the
    annotator ids in index order, and resuming checks the design is the same.

    ``compute_metrics`` (as in TRL and ``transformers.Trainer``: a callable taking an
    ``EvalPrediction`` and returning a dict of metrics, logged and returned by ``evaluate``
    with the ``eval_`` prefix) receives per-pair values, not logits:
    ``EvalPrediction.predictions`` is a float32 array of shape ``(N, 6)``, one row per
    evaluation pair in dataset order, with the columns of :attr:`prediction_columns`:
    ``rewards/chosen``, ``rewards/rejected`` (the loss's reward scale, ``beta`` or the
    strength mean, times the policy-minus-reference log-ratio; the per-pair values of the logged
    ``rewards/*``), ``logps/chosen``, ``logps/rejected`` (the policy's summed completion
    log-probabilities, nats) and ``ref_logps/chosen``, ``ref_logps/rejected`` (the reference's,
    nats); ``EvalPrediction.label_ids`` is an int64 array of shape ``(N,)``, all 1 (the chosen
    completion is the preferred one). TRL 1.16 instead passes the policy's full logits,
    ``(2N, L, vocab)`` from a second forward pass, with the ``input_ids`` as labels (deprecated
    there); the per-pair values cost nothing and stay small. ``batch_eval_metrics`` works as in
    ``Trainer`` (one batch's rows per call).

    Attributes:
        strength: the strength module (trained in its own optimiser group, saved as
            ``strength.pt`` in every checkpoint).
        loss_fn: the loss object.
        prediction_columns: the column names of ``EvalPrediction.predictions`` (and of
            ``predict``'s predictions), in order.
    """

    prediction_columns: tuple[str, ...] = (
        "rewards/chosen",
        "rewards/rejected",
        "logps/chosen",
        "logps/rejected",
        "ref_logps/chosen",
        "ref_logps/rejected",
    )

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
        compute_metrics: Callable[[EvalPrediction], dict] | None = None,
    ):
        if args is None:
            args = MixDPOConfig(output_dir="mixdpo-output")
        if not isinstance(args, MixDPOConfig):
            raise TypeError(f"args must be a MixDPOConfig, got {type(args).__name__}")
        if train_dataset is None:
            raise ValueError("train_dataset is required")
        # PEFT initialises adapter weights at random: seed before the model is built or
        # wrapped, so that args.seed fixes the LoRA initialisation (as TRL does).
        set_seed(args.seed)
        if _is_iterable(train_dataset):
            if args.panel_loss:
                raise ValueError(
                    "strength_level='annotator' and strength_covariates need the whole training "
                    "set (annotator numbering, covariate design): pass a datasets.Dataset, not "
                    "an IterableDataset"
                )
            if args.precompute_ref_log_probs:
                raise ValueError(
                    "precompute_ref_log_probs=True needs a datasets.Dataset, not an IterableDataset"
                )
            # Accelerate's batch dispatch concatenates batches across processes, which fails
            # on a stream (TRL forces it off as well).
            args.accelerator_config.dispatch_batches = False
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
            # As TRL: the tokenizer of the checkpoint the model was loaded from.
            source = getattr(getattr(find_causal_lm(model), "config", None), "_name_or_path", "")
            if not source:
                raise ValueError(
                    "processing_class (the tokenizer) is required for a model object that was "
                    "not loaded from a checkpoint (its config has no _name_or_path)"
                )
            processing_class = load_tokenizer(source)
        if ref_model is not None and ref_model is model:
            raise ValueError("model and ref_model must be different objects")
        if processing_class.pad_token is None:
            processing_class.pad_token = processing_class.eos_token
        if peft_config is not None:
            from peft import get_peft_model

            if _is_peft_model(model):
                raise ValueError(
                    "model is already a PEFT model and peft_config was given as well: merge and "
                    "unload its adapter first, or pass the PEFT model without peft_config"
                )
            model = get_peft_model(model, peft_config)
        elif _is_peft_model(model) and ref_model is None:
            # An already-trained adapter: the reference is a frozen copy of it (adapter "ref"),
            # as TRL does, not the base model with adapters disabled.
            _add_reference_adapter(model)
        if args.disable_dropout:
            _disable_dropout(model)
            if ref_model is not None:
                _disable_dropout(ref_model)

        # Loss and strength.
        self._strength_inputs: _StrengthInputs | None = None
        if args.panel_loss:
            design = getattr(strength, "design", None) if strength is not None else None
            if strength is not None and design is None:
                raise TypeError(
                    "strength_level='annotator' / strength_covariates need a ConditionalStrength "
                    f"(mixlogit.torch.conditional), got {type(strength).__name__}"
                )
            self._strength_inputs = _StrengthInputs(args, train_dataset, design)
            if strength is None:
                strength = build_strength(args, self._strength_inputs.design)
        beta_users: list[str] | None = None  # the losses that read args.beta (None: unknown)
        smoothing_users: list[str] | None = None
        if loss is None:
            loss, beta_users, smoothing_users = self._build_loss(args, train_dataset)
        self.loss_fn = loss
        if strength is None:
            if loss.uses_strength:
                strength = build_strength(args)
            else:
                from mixlogit.torch import make_strength

                strength = make_strength("point_mass", {"beta": getattr(loss, "beta", args.beta)})
        self.strength = strength
        self._warn_unused_options(args, beta_users, smoothing_users)
        self._extra_columns = tuple(dict.fromkeys([*loss.extra_columns, *args.extra_columns]))
        self._eval_batches = 0  # evaluation batches seen since evaluate() began (their seeds)

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
            compute_metrics=compute_metrics,
        )
        # The loss is a mean over pairs, not a token-count-normalised LM loss: let Trainer
        # divide it by the gradient-accumulation steps.
        self.model_accepts_loss_kwargs = False
        self.strength.to(self.args.device)
        _warn_unsharded(self)
        self.add_callback(_ZeroStrengthGradients(self.strength))
        self._replica_check = _StrengthReplicaCheck(self.strength)
        self.add_callback(self._replica_check)
        self._strength_average: _StrengthAverage | None = None
        self.step_grad_norms: list[Any] | None = None  # set by _clip_grad_norm each step
        half_life = args.strength_average_half_life
        if half_life and any(p.requires_grad for p in self.strength.parameters()):
            self._strength_average = _StrengthAverage(self.strength, half_life)
            self.add_callback(self._strength_average)
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

    # ----------------------------------------------------------------------------- loss setup
    def _build_loss(
        self, args: MixDPOConfig, train_dataset: Any
    ) -> tuple[PreferenceLoss, list[str], list[str]]:
        """The loss of ``args.loss_type`` (a :class:`WeightedLoss` for a list), and the names
        of its losses that take ``args.beta`` and ``args.label_smoothing``."""
        names = args.loss_types
        if len(names) > 1 or args.loss_weights is not None:
            per_loss = dict(args.loss_kwargs or {})
            unknown = sorted(set(per_loss) - set(names))
            if unknown:
                raise ValueError(
                    f"with a loss_type list, loss_kwargs maps loss names to their keyword "
                    f"arguments; {unknown} are not among loss_type {names}"
                )
            kwargs_of = {n: dict(per_loss.get(n) or {}) for n in names}
        else:
            kwargs_of = {names[0]: dict(args.loss_kwargs or {})}
        losses, beta_users, smoothing_users = [], [], []
        for name in names:
            loss_kwargs = kwargs_of[name]
            loss_type = name
            if args.panel_loss:
                import alignment.losses.panel  # noqa: F401  (registers "panel_mixdpo")

                design = self._strength_inputs.design
                loss_type = "panel_mixdpo"
                loss_kwargs = {
                    "level": args.strength_level,
                    "memory": args.strength_level == "annotator" and args.strength_panel_memory,
                    "num_train_pairs": len(train_dataset),
                    "uses_levels": bool(design.levels),
                    "uses_features": bool(design.num_features),
                    **loss_kwargs,
                }
            params = inspect.signature(get_loss_class(loss_type)).parameters
            if "beta" in params and "beta" not in loss_kwargs:
                loss_kwargs["beta"] = args.beta
                beta_users.append(name)
            if "label_smoothing" in params and "label_smoothing" not in loss_kwargs:
                loss_kwargs["label_smoothing"] = args.label_smoothing
                smoothing_users.append(name)
            losses.append(get_loss(loss_type, **loss_kwargs))
        if len(losses) == 1 and args.loss_weights is None:
            return losses[0], beta_users, smoothing_users
        return WeightedLoss(losses, args.loss_weights), beta_users, smoothing_users

    def _warn_unused_options(
        self,
        args: MixDPOConfig,
        beta_users: list[str] | None,
        smoothing_users: list[str] | None,
    ) -> None:
        """Warn when ``beta`` or ``label_smoothing`` is set to a non-default value that the
        configured loss and strength never read (they would otherwise be ignored silently)."""
        default_beta = type(args).__dataclass_fields__["beta"].default
        if beta_users is not None and args.beta != default_beta and not beta_users:
            # A point-mass strength built from the config holds beta itself.
            point_mass = (
                self.loss_fn.uses_strength
                and getattr(self.strength, "family", None) == "point_mass"
                and "beta" not in (args.strength_init or {})
                and args.strength_family == "point_mass"
            )
            if not point_mass:
                why = (
                    f"with strength_family={args.strength_family!r} the strength distribution "
                    "replaces the fixed beta (set its start with strength_init)"
                    if self.loss_fn.uses_strength
                    else "the loss does not read beta (it only scales the logged rewards)"
                )
                warnings.warn(
                    f"beta={args.beta} has no effect on loss_type={args.loss_type!r}: {why}. "
                    "For DPO with a fixed beta use loss_type='sigmoid' (or 'dpo'), or "
                    "strength_family='point_mass'",
                    UserWarning,
                    stacklevel=3,
                )
        if smoothing_users is not None and args.label_smoothing and not smoothing_users:
            warnings.warn(
                f"label_smoothing={args.label_smoothing} has no effect on loss_type="
                f"{args.loss_type!r}: only loss_type='robust' (robust DPO) reads it, as in "
                "TRL 1.16 (whose 'sigmoid' ignores it too)",
                UserWarning,
                stacklevel=3,
            )

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
        if self._strength_inputs is not None:
            dataset = self._strength_inputs.add_columns(dataset, name)
        missing = [c for c in self._extra_columns if c not in (dataset.column_names or [])]
        if missing:
            raise ValueError(
                f"{name} lacks column(s) {missing} needed by loss {self.loss_fn.name!r} / "
                f"extra_columns; it has {sorted(dataset.column_names)}"
            )
        return dataset

    def _set_signature_columns_if_needed(self) -> None:
        if self._signature_columns is None:
            self._signature_columns = [*TOKENIZED_COLUMNS, *REFERENCE_COLUMNS, *self._extra_columns]

    def get_train_dataloader(self) -> torch.utils.data.DataLoader:
        """``Trainer``'s loader, except at the annotator level: batches from
        :class:`alignment.sampler.AnnotatorBatchSampler` (an annotator's pairs together),
        dealt to the accelerate ranks by the sampler itself (whole chunks per rank)."""
        if self.args.strength_level != "annotator":
            return super().get_train_dataloader()
        from alignment.losses.panel import GROUP_COLUMN
        from alignment.sampler import AnnotatorBatchSampler

        self._set_signature_columns_if_needed()
        dataset = self.train_dataset
        dataset = dataset.select_columns(
            [c for c in self._signature_columns if c in dataset.column_names]
        )
        sampler = AnnotatorBatchSampler(
            dataset[GROUP_COLUMN],
            self.args.per_device_train_batch_size,
            pairs_per_annotator=self.args.pairs_per_annotator,
            seed=self.args.data_seed if self.args.data_seed is not None else self.args.seed,
            num_replicas=self.accelerator.num_processes,
            rank=self.accelerator.process_index,
            drop_last=self.args.dataloader_drop_last,
        )
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_sampler=sampler,
            collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers,
            pin_memory=self.args.dataloader_pin_memory,
            persistent_workers=self.args.dataloader_persistent_workers,
        )
        loader = self.accelerator.prepare(loader)
        # The sampler is rank-aware: make accelerate's batch sharding a passthrough (as
        # Trainer does for its own rank-aware BatchRebalanceSampler).
        shard = getattr(loader, "batch_sampler", None)
        if shard is not None and getattr(shard, "batch_sampler", None) is sampler:
            shard.num_processes = 1
            shard.process_index = 0
        return loader

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
            # PEFT: the frozen copy "ref" of a pretrained adapter, or else the base model with
            # the adapter switched off; full fine-tuning with precomputed log-probs: the model
            # itself, before training starts.
            peft_model = find_causal_lm_peft(self.model)
            context = (
                _reference_adapter(peft_model)
                if _is_peft_model(peft_model)
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
        """Mean per-pair loss of one concatenated chosen+rejected forward pass.

        With ``return_outputs`` also a dict of per-pair tensors (shape ``(B,)``, detached):
        ``per_pair_loss``, ``margin`` and ``predictions``, shape ``(B, 6)``, the columns of
        :attr:`prediction_columns` (what ``compute_metrics`` receives).
        """
        mode = "train" if self.model.training else "eval"
        logit_stats: dict[str, torch.Tensor] = {}
        batch = self._pair_batch(model, inputs, logit_stats)
        if mode == "eval":
            # Monte Carlo marginals (LogNormal "mc") draw fresh noise at every call: in
            # evaluation use draws fixed by args.seed and the batch's position, so the same
            # model gets the same eval loss, and leave the training RNG stream untouched.
            device = batch.chosen_logps.device
            accelerated = device.type != "cpu"
            with torch.random.fork_rng(
                devices=[device] if accelerated else [],
                device_type=device.type if accelerated else "cuda",
            ):
                torch.manual_seed(self.args.seed + 7919 * self._eval_batches)
                self._eval_batches += 1
                per_pair = self.loss_fn(batch)
        else:
            per_pair = self.loss_fn(batch)
        loss = per_pair.mean()
        chosen_rewards, rejected_rewards = self._record_metrics(mode, batch, logit_stats)
        if return_outputs:
            columns = [
                chosen_rewards,
                rejected_rewards,
                batch.chosen_logps,
                batch.rejected_logps,
                batch.ref_chosen_logps,
                batch.ref_rejected_logps,
            ]
            predictions = torch.stack([c.detach().float() for c in columns], dim=1)
            return loss, {
                "per_pair_loss": per_pair.detach(),
                "margin": batch.margin.detach(),
                "predictions": predictions,
            }
        return loss

    def _pair_batch(
        self,
        model: nn.Module,
        inputs: dict[str, torch.Tensor],
        logit_stats: dict[str, torch.Tensor] | None = None,
    ) -> PairBatch:
        """Policy and reference log-probs of one concatenated chosen+rejected forward pass.

        ``logit_stats``, when given, receives the policy's ``logit_sums`` and ``num_tokens``
        per sequence (shape ``(2B,)``, chosen rows first; :func:`completion_logps` with
        ``return_logit_sums``), from the same forward pass.
        """
        ids, mask, completion = (
            inputs["input_ids"],
            inputs["attention_mask"],
            inputs["completion_mask"],
        )
        if logit_stats is None:
            logps = completion_logps(model, ids, mask, completion)
        else:
            logps, logit_stats["logit_sums"], logit_stats["num_tokens"] = completion_logps(
                model, ids, mask, completion, return_logit_sums=True
            )
        chosen_logps, rejected_logps = logps.chunk(2)
        lengths = inputs["completion_mask"].sum(1).to(chosen_logps.dtype)
        chosen_lengths, rejected_lengths = lengths.chunk(2)
        if "ref_chosen_logps" in inputs and "ref_rejected_logps" in inputs:
            ref_chosen, ref_rejected = inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
        else:
            ref_chosen, ref_rejected = self._reference_logps(inputs)
        return PairBatch(
            chosen_logps=chosen_logps,
            rejected_logps=rejected_logps,
            ref_chosen_logps=ref_chosen.to(chosen_logps.dtype),
            ref_rejected_logps=ref_rejected.to(chosen_logps.dtype),
            strength=self.strength if self.loss_fn.uses_strength else None,
            extras={k: inputs[k] for k in self._extra_columns},
            chosen_lengths=chosen_lengths,
            rejected_lengths=rejected_lengths,
        )

    @torch.no_grad()
    def _record_metrics(
        self, mode: str, batch: PairBatch, logit_stats: Mapping[str, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Append the batch's logged metrics (gathered over ranks) to ``self._metrics[mode]``
        and return the per-pair rewards ``(chosen, rejected)``, shape ``(B,)``.

        ``logits/chosen`` and ``logits/rejected`` (from ``logit_stats``, see
        :meth:`_pair_batch`) are token-weighted as in TRL 1.16: the sum over every chosen
        (rejected) completion token of the batch, on all ranks, of the policy's logits averaged
        over the vocabulary, divided by the number of those tokens (0 when there are none).
        """
        scale_batch = PairBatch(**{**batch.__dict__, "strength": self.strength})
        scale = self.loss_fn.reward_scale(scale_batch)
        scale = float(scale) if not isinstance(scale, float) else scale
        chosen = scale * batch.chosen_logratios.detach()
        rejected = scale * batch.rejected_logratios.detach()
        values = {
            "rewards/chosen": chosen,
            "rewards/rejected": rejected,
            "rewards/accuracies": (chosen > rejected).float(),
            "rewards/margins": chosen - rejected,
            "logps/chosen": batch.chosen_logps.detach(),
            "logps/rejected": batch.rejected_logps.detach(),
        }
        # token totals per pair (summed, not averaged, over pairs): (logit sum, token count)
        totals: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        if logit_stats is not None:
            logit_sums = logit_stats["logit_sums"].float().chunk(2)
            num_tokens = logit_stats["num_tokens"].float().chunk(2)
            totals["logits/chosen"] = (logit_sums[0], num_tokens[0])
            totals["logits/rejected"] = (logit_sums[1], num_tokens[1])
        metrics = self._metrics[mode]
        if mode == "train" and self.args.strength_level == "annotator":
            # Annotator batches differ in size across ranks, and all_gather needs equal
            # shapes: gather each rank's sums and pair count instead.
            count = torch.tensor(float(len(chosen)), device=chosen.device)
            sums = torch.stack(
                [
                    *(v.float().sum() for v in values.values()),
                    *(t.sum() for pair in totals.values() for t in pair),
                    count,
                ]
            )
            sums = self.accelerator.gather(sums[None]).sum(0)
            for k, key in enumerate(values):
                metrics[key].append((sums[k] / sums[-1]).item())
            for j, key in enumerate(totals):
                total, tokens = sums[len(values) + 2 * j], sums[len(values) + 2 * j + 1]
                metrics[key].append((total / tokens).item() if tokens > 0 else 0.0)
            return chosen, rejected
        for key, value in values.items():
            metrics[key].append(self.accelerator.gather_for_metrics(value).float().mean().item())
        for key, (total, tokens) in totals.items():
            # per pair through gather_for_metrics, so that the padding pairs of an uneven last
            # evaluation batch are dropped before the token totals are formed
            total = self.accelerator.gather_for_metrics(total).sum()
            tokens = self.accelerator.gather_for_metrics(tokens).sum()
            metrics[key].append((total / tokens).item() if tokens > 0 else 0.0)
        return chosen, rejected

    def prediction_step(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        prediction_loss_only: bool,
        ignore_keys: list[str] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """The batch's loss; unless ``prediction_loss_only``, also ``(predictions, labels)``.

        ``predictions`` has shape ``(B, 6)`` (float32), one row per pair, the columns of
        :attr:`prediction_columns`; ``labels`` has shape ``(B,)`` (int64), all 1 (the chosen
        completion is the preferred one). ``evaluate`` asks for them only when the trainer
        has a ``compute_metrics``; ``predict`` always (``args.prediction_loss_only``). They
        come from the loss's own forward pass: no second pass, no logits kept.
        """
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            if prediction_loss_only:
                loss = self.compute_loss(model, inputs)
                return loss.detach(), None, None
            loss, outputs = self.compute_loss(model, inputs, return_outputs=True)
        predictions = outputs["predictions"]
        labels = torch.ones(predictions.shape[0], dtype=torch.long, device=predictions.device)
        return loss.detach(), predictions, labels

    def train(
        self, resume_from_checkpoint: str | bool | None = None, *args: Any, **kwargs: Any
    ) -> Any:
        """``Trainer.train``; resuming a run that already reached ``max_steps`` trains nothing.

        Trainer checks ``max_steps`` only after a step, so resuming from the checkpoint of
        the last step used to train one step past the end (and log it). Such a resume loads
        the checkpoint (policy and strength) and returns its state with
        ``metrics["train_steps_run"] == 0``.
        """
        from transformers.trainer_utils import TrainOutput, get_last_checkpoint

        checkpoint = resume_from_checkpoint
        if checkpoint is True:
            checkpoint = get_last_checkpoint(self.args.output_dir)
        state_file = os.path.join(str(checkpoint), "trainer_state.json") if checkpoint else ""
        if (
            self.args.max_steps > 0
            and state_file
            and os.path.exists(state_file)
            and not (self.is_deepspeed_enabled or self.is_fsdp_enabled)
        ):
            from transformers import TrainerState

            state = TrainerState.load_from_json(state_file)
            if state.global_step >= self.args.max_steps:
                logging.getLogger(__name__).warning(
                    "%s is at step %d and max_steps is %d: nothing to train",
                    checkpoint,
                    state.global_step,
                    self.args.max_steps,
                )
                self._load_from_checkpoint(str(checkpoint))
                self.state = state
                losses = [r["train_loss"] for r in state.log_history if "train_loss" in r]
                if self.args.strength_refit:
                    self.refit_strength()
                return TrainOutput(
                    state.global_step,
                    losses[-1] if losses else float("nan"),
                    {"train_steps_run": 0, "train_runtime": 0.0, "epoch": state.epoch},
                )
        output = super().train(checkpoint, *args, **kwargs)
        if self.args.strength_refit:
            self.refit_strength()
        return output

    def _refit_margins(self, dataset: Any, columns: list[str]) -> dict[str, torch.Tensor]:
        """The policy's margins on every row of ``dataset`` (no gradients), with ``columns``,
        gathered over the ranks in dataset order, on the host."""
        loader = self.get_eval_dataloader(dataset)
        model = self.model_wrapped
        was_training = model.training
        model.eval()
        gathered: dict[str, list[torch.Tensor]] = {"margin": [], **{c: [] for c in columns}}
        try:
            with torch.no_grad():
                for inputs in loader:
                    inputs = self._prepare_inputs(inputs)
                    batch = self._pair_batch(model, inputs)
                    values = {"margin": batch.margin.float(), **{c: inputs[c] for c in columns}}
                    for key, value in self.accelerator.gather_for_metrics(values).items():
                        gathered[key].append(value.cpu())
        finally:
            model.train(was_training)
        return {k: torch.cat(v) for k, v in gathered.items()}

    def refit_strength(self, dataset: Any = None) -> dict[str, float]:
        """Refit the strength to the current policy: its MAP over every pair of ``dataset``.

        The margins of every pair are computed once with the policy fixed (one forward pass of
        policy and reference, no gradients), and the strength is set to the maximiser of its
        full objective at those margins, ``log-likelihood + log prior``
        (:func:`alignment.losses.panel.refit_panel_strength`: the full panel likelihood at
        the annotator level, partial pooling over covariate levels), starting from the
        strength training left. ``MixDPOConfig.strength_refit`` runs it at the end of
        ``train``; the model written by ``save_model`` afterwards holds the refit strength
        (checkpoints saved during training hold the training iterate). Deterministic: DDP
        ranks gather all margins and fit the same strength.

        Args:
            dataset: the pairs to fit on (default: the training set), raw or tokenised, with
                the annotator and covariate columns of training.

        Returns:
            The refit record, also logged (``strength_refit/...``: the strength's log values,
            ``objective_gain`` in nats, ``iterations``); the strength's new log values are
            :meth:`strength_values`.
        """
        from alignment.losses.panel import (
            FEATURES_COLUMN,
            GROUP_COLUMN,
            LEVELS_COLUMN,
            refit_panel_strength,
        )

        if not self.args.panel_loss or not hasattr(self.strength, "natural_params"):
            raise ValueError(
                "refit_strength needs strength_level='annotator' or strength_covariates (a "
                f"ConditionalStrength), got strength_level={self.args.strength_level!r} and "
                f"{type(self.strength).__name__}"
            )
        if dataset is None:
            dataset = self.train_dataset
        else:
            dataset = self._prepare_eval(dataset, "refit_strength dataset")
        columns = [
            c for c in (GROUP_COLUMN, LEVELS_COLUMN, FEATURES_COLUMN) if c in self._extra_columns
        ]
        if hasattr(dataset, "select"):
            # Score each distinct pair once (a panel repeats it per annotator, either way
            # round) and broadcast: the margin depends on the token ids only.
            rows, inverse, sign = distinct_pairs(dataset)
            scored = self._refit_margins(dataset.select(rows), [])["margin"]
            data = {"margin": sign * scored[inverse]}
            data.update({c: _column_tensor(c, dataset[c]) for c in columns})
        else:  # an IterableDataset cannot be indexed: score it as it streams
            data = self._refit_margins(dataset, columns)
        margin = data["margin"]
        if self.args.strength_level == "annotator":
            group = data[GROUP_COLUMN]
        else:  # pair level: every pair is its own group
            group = torch.arange(margin.shape[0])
        result = refit_panel_strength(
            self.strength,
            margin,
            group,
            levels=data.get(LEVELS_COLUMN),
            features=data.get(FEATURES_COLUMN),
            num_nodes=getattr(self.loss_fn, "num_nodes", None),
        )
        with torch.no_grad():
            fitted = dict(result.strength.named_parameters())
            for name, param in self.strength.named_parameters():
                param.copy_(fitted[name].to(param.dtype))
        self.strength.to(self.args.device)
        record = {
            REFIT_LOG_PREFIX + k.removeprefix(LOG_PREFIX): v
            for k, v in self.strength_values().items()
        }
        record[REFIT_LOG_PREFIX + "objective_gain"] = result.start_objective - result.objective
        record[REFIT_LOG_PREFIX + "iterations"] = float(result.iterations)
        record[REFIT_LOG_PREFIX + "gradient_norm"] = result.gradient_norm
        if result.gradient_norm > 1e-3:
            warnings.warn(
                "refit_strength: the refit stopped with gradient max-norm "
                f"{result.gradient_norm:.3g} after {result.iterations} L-BFGS-B iterations "
                f"(objective {result.objective:.6g}, from {result.start_objective:.6g}): the "
                "strength may not be at its optimum",
                RuntimeWarning,
                stacklevel=2,
            )
        # Trainer.log, not self.log: these keys must not overwrite the step's strength/ values.
        Trainer.log(self, dict(record))
        return record

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
        """``Trainer.evaluate`` that also accepts raw (untokenised) preference datasets.

        The loss is deterministic: Monte Carlo strength marginals use draws fixed by
        ``args.seed`` and the batch's position in the evaluation set (taken from a forked RNG,
        not from the training stream), so one model gives one eval loss.
        """
        self._eval_batches = 0
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
    def _clip_grad_norm(self, model: nn.Module) -> Any:
        """Trainer's clipping of the policy's gradients, then the strength's to the same
        ``max_grad_norm``.

        The strength lives outside the model, so Trainer never clips it. It is clipped by its
        own norm rather than jointly: a few scalars whose gradient scale differs from the
        policy's by orders of magnitude would otherwise either shrink every policy update
        (a large strength gradient) or be shrunk to nothing by a large policy gradient. The
        returned norm is the policy's, as Trainer logs it; the strength's pre-clip norm is
        logged as ``strength/grad_norm``.
        """
        norm = super()._clip_grad_norm(model)
        norms = [norm]
        params = [p for p in self.strength.parameters() if p.grad is not None]
        if params:
            strength_norm = torch.nn.utils.clip_grad_norm_(params, self.args.max_grad_norm)
            self._metrics["train"]["strength/grad_norm"].append(float(strength_norm))
            norms.append(strength_norm)
        # the pre-clip norms of this step: NonFiniteLossGuard checks them instead of every
        # gradient (a norm is finite exactly when all its gradients are)
        self.step_grad_norms = norms
        return norm

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
        # Under FSDP2 accelerate then swaps each optimiser parameter for its sharded DTensor,
        # found among the model's parameters, and fails on the strength's (they are not in
        # the model): their group joins after that swap, in create_scheduler.
        if not self._is_fsdp2():
            self._add_strength_group(self.optimizer)
        return optimizer

    def create_scheduler(
        self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None
    ) -> Any:
        """Trainer's scheduler, built once the strength group is in the optimiser (so that it
        follows the same warm-up and decay)."""
        self._add_strength_group(self.optimizer if optimizer is None else optimizer)
        return super().create_scheduler(num_training_steps, optimizer)

    @contextlib.contextmanager
    def _strength_group_set_aside(self):
        """The optimiser without the strength's group and state inside the block (FSDP's
        optimiser state dict maps every parameter to a name in the model), then with them again;
        yields ``(group, state)`` or ``None`` when the optimiser has no such group."""
        optimizer = getattr(self.optimizer, "optimizer", self.optimizer)  # accelerate's wrapper
        strength = {id(p) for p in self.strength.parameters()}
        index = next(
            (
                i
                for i, group in enumerate(optimizer.param_groups)
                if any(id(p) in strength for p in group["params"])
            ),
            None,
        )
        if index is None:
            yield None
            return
        group = optimizer.param_groups.pop(index)
        state = {p: optimizer.state.pop(p) for p in group["params"] if p in optimizer.state}
        try:
            yield group, state
        finally:
            # load_state_dict replaces param_groups and state: restore into the current ones
            optimizer.param_groups.insert(index, group)
            optimizer.state.update(state)

    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        if not self.is_fsdp_enabled:
            return super()._save_optimizer_and_scheduler(output_dir)
        with self._strength_group_set_aside() as aside:
            super()._save_optimizer_and_scheduler(output_dir)
        if aside is not None and self.args.should_save:
            group, state = aside
            torch.save(
                {
                    "group": {k: v for k, v in group.items() if k != "params"},
                    "state": [state.get(p) for p in group["params"]],
                },
                os.path.join(output_dir, STRENGTH_OPTIMIZER_NAME),
            )

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        if checkpoint is None or not self.is_fsdp_enabled:
            return super()._load_optimizer_and_scheduler(checkpoint)
        with self._strength_group_set_aside() as aside:
            super()._load_optimizer_and_scheduler(checkpoint)
        path = os.path.join(checkpoint, STRENGTH_OPTIMIZER_NAME)
        if aside is None:
            return
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"{path} is missing: the checkpoint holds the FSDP optimiser state without the "
                "strength group's, so the strength optimiser cannot resume where it stopped"
            )
        saved = torch.load(path, map_location="cpu", weights_only=True)
        group, _ = aside
        optimizer = getattr(self.optimizer, "optimizer", self.optimizer)
        group.update(saved["group"])
        for param, state in zip(group["params"], saved["state"], strict=True):
            if state is not None:
                optimizer.state[param] = {
                    k: v.to(param.device) if torch.is_tensor(v) else v for k, v in state.items()
                }

    def _is_fsdp2(self) -> bool:
        plugin = getattr(self.accelerator.state, "fsdp_plugin", None)
        return bool(self.is_fsdp_enabled) and getattr(plugin, "fsdp_version", 1) == 2

    # ----------------------------------------------------------------------------- logging
    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        mode = "train" if self.model.training else "eval"
        averaged = {k: sum(v) / len(v) for k, v in self._metrics[mode].items() if v}
        averaged.update(self.strength_values())
        if mode == "train" and self._replica_check.spread is not None:
            averaged["strength/rank_spread"] = self._replica_check.spread
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
            inputs = self._strength_inputs
            save_strength(
                self.strength,
                output_dir or self.args.output_dir,
                covariates=self._population_covariates,
                annotators=None if inputs is None else inputs.annotators,
            )
            if _internal_call and self._strength_average is not None:
                self._strength_average.save(output_dir or self.args.output_dir)

    @property
    def _population_covariates(self) -> Any:
        """The training raters' encoded covariates (population logs), or ``None``."""
        inputs = self._strength_inputs
        return None if inputs is None else inputs.population

    def strength_values(self) -> dict[str, float]:
        """The strength's current log values (:func:`strength_log_values`; with covariates the
        population is the mixture over the training annotators)."""
        return strength_log_values(self.strength, self._population_covariates)

    def _load_from_checkpoint(
        self, resume_from_checkpoint: str, model: nn.Module | None = None
    ) -> None:
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        if os.path.exists(os.path.join(resume_from_checkpoint, STRENGTH_WEIGHTS_NAME)):
            load_strength(self.strength, resume_from_checkpoint)
        if self._strength_average is not None:
            self._strength_average.load(resume_from_checkpoint)

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
