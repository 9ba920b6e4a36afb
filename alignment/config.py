"""Training configuration of :class:`alignment.MixDPOTrainer`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from transformers import TrainingArguments

from mixlogit.families import FAMILY_NAMES, LOGNORMAL, POINT_MASS, get_family

__all__ = ["MEAN_CV_STRENGTH_AVERAGE_HALF_LIFE", "MEAN_CV_STRENGTH_LEARNING_RATE", "MixDPOConfig"]

STRENGTH_LEVELS = ("pair", "annotator")
STRENGTH_PARAMETERISATIONS = ("natural", "mean_cv")
#: The paper's strength learning rate (natural parameters).
NATURAL_STRENGTH_LEARNING_RATE = 1e-4
#: Default strength learning rate of the ``mean_cv`` parameterisation (log mean, log CV):
#: Adam moves each by about this per step at most, a 10 % change of the mean or the CV
#: (measurements in the :class:`MixDPOConfig` docstring).
MEAN_CV_STRENGTH_LEARNING_RATE = 0.1
#: Default half-life, in optimiser steps, of the moving average of the ``mean_cv`` strength
#: parameters that training reports as the learned strength (``strength_average_half_life``).
MEAN_CV_STRENGTH_AVERAGE_HALF_LIFE = 10.0
#: Trainer fields of a quiet local run (the tests' and benchmarks' tiny runs): no reporting
#: integrations, no checkpoints, no progress bar, no pinned memory (CPU).
QUIET_RUN: dict[str, Any] = {
    "report_to": "none",
    "save_strategy": "no",
    "disable_tqdm": True,
    "dataloader_pin_memory": False,
}


@dataclass
class MixDPOConfig(TrainingArguments):
    """:class:`transformers.TrainingArguments` plus the MixDPO/DPO settings.

    Everything from ``TrainingArguments`` (batch sizes, gradient accumulation, schedules,
    logging, checkpointing, mixed precision, DDP/FSDP/DeepSpeed through accelerate) works as
    usual. ``learning_rate`` is the policy's; the strength parameters have their own
    ``strength_learning_rate`` in a separate optimiser group (same schedule).

    Coming from TRL 1.16's ``DPOConfig``: the shared options mean the same (``beta``,
    ``loss_type`` with TRL's names ``sigmoid``/``hinge``/``ipo``/``robust``/``sft`` or a list
    with ``loss_weights``, ``label_smoothing``, ``max_length`` 1024 with ``keep_start``
    truncation and over-long rows dropped, ``precompute_ref_log_probs``,
    ``disable_dropout``). The default loss differs: ``"mixdpo"``, whose strength distribution
    replaces ``beta`` (a ``beta`` other than 0.1 then warns; ``"sigmoid"`` is TRL's DPO).
    ``max_prompt_length`` (default ``None``) is an extra prompt limit keeping the prompt's end.
    The table in ``docs/alignment.md`` lists every difference.

    Strength level. ``strength_level="pair"`` (the default) is the paper's MixDPO: one draw of
    ``beta`` per labelled pair, ``-log E[sigmoid(beta delta)]``. ``"annotator"`` draws ``beta``
    once per annotator (``annotator_column``) and scores its pairs in a batch jointly,
    ``-log E[prod_i sigmoid(beta delta_i)]`` (:mod:`alignment.losses.panel`), with batches that
    keep an annotator's pairs together (:class:`alignment.sampler.AnnotatorBatchSampler`,
    chunks of at most ``pairs_per_annotator``). With ``strength_panel_memory`` (default) a
    batch's pairs of an annotator are scored given its pairs already seen in the pass (the
    chain rule; the pass adds up to the full panel likelihood, not a composite of batch-sized
    pieces; :class:`alignment.losses.panel.PanelMemory`). ``strength_covariates`` (rater columns, at
    either level) make the strength depend on the rater: text columns become partially pooled
    levels (per-level mean and CV shrunk toward the population, pooling scale
    ``strength_pooling_scale`` or learned), numeric columns standardised log-linear regressors
    of the mean (:class:`mixlogit.torch.conditional.ConditionalStrength`).

    Why pair level stays the default: it is the method of the paper and it runs on any
    preference data, while the annotator level needs an annotator id per label and annotators
    who label several pairs (on data with one label per annotator the two coincide). Where
    such panels exist, use the annotator level: with a learned reward the pair-level strength
    distribution is not identified (the policy can fit each pair's label share under any link
    ``E[sigmoid(beta d)]``), the panel one is.

    Parameterisation. ``"natural"`` trains the family's own parameters (softplus of shape and
    rate, or loc and softplus of scale), the paper's choice, with its strength learning rate
    ``1e-4``. ``"mean_cv"`` trains ``log`` mean and ``log`` CV, so an optimiser step is a
    relative change of the mean and the CV whatever the strength's scale; it is required by the
    annotator level and by covariates and is then the default. Its default learning rate
    :data:`MEAN_CV_STRENGTH_LEARNING_RATE` = 0.1 was measured to move the parameters within one
    pass over a small panel set (tiny model, 144 steps of 4 pairs, 48 annotators x 12 pairs,
    Gamma start CV 0.71, annotator level; learned CV heterogeneous / homogeneous control):
    1e-2: 1.00 / 0.89; 3e-2: 1.36 / 0.93; 5e-2: 1.64 / 0.83; 0.1: 2.45 / 0.53. Below 0.1 both
    CVs still drift up together at the end of the pass (the early, nearly equal margins of a
    young policy reward spread); at 0.1 the control's CV has turned down. The paper's 1e-4
    leaves the pair-level CV at 0.708 (natural parameters); in ``mean_cv`` Adam's step bound
    limits the change to about 1.5 % in 144 steps.

    Averaging. At that learning rate Adam moves each strength parameter by up to 10 % per step,
    driven by the one or few annotators of a batch, so the last iterate is noisy: on panel data
    with four subgroups (tiny model, one pass, 270 steps of 4 pairs) the learned means of the
    two weakest subgroups differ by only 10-20 % and the last steps can swap them. Training
    therefore keeps an exponential moving average of the strength parameters (unconstrained,
    after every optimiser step; Polyak averaging) and, at the end of training, makes it the
    learned strength (saved by ``save_model``, returned by ``strength_values``; the logs during
    training show the current iterate, checkpoints hold both; with ``load_best_model_at_end``
    the best checkpoint's strength is kept instead).
    ``strength_average_half_life`` is its half-life in optimiser steps; default
    :data:`MEAN_CV_STRENGTH_AVERAGE_HALF_LIFE` = 10 for ``mean_cv`` (about the memory of
    Adam's first moment, short enough not to lag the drift of the strength as the policy's
    reward scale grows), none for ``natural`` (whose 1e-4 rate leaves no step noise to
    average; the paper's method is unchanged); ``0`` switches it off. Measured on development
    data (benchmark structure, seeds 5-9, see ``benchmarks/bench_panel_training.py``) against
    the last iterate: CV ratios heterogeneous / control 3.34, 2.13, 2.29, 2.31, 2.49 (last
    iterate 3.63, 1.71, 2.37, 2.91, 2.12); ratio of the two weakest subgroup means 1.31, 1.31,
    2.76, 7.54, 1.09 (1.21, 1.12, 2.82, 6.55, 1.12), the order right in all five either way.
    Half-lives of 20 and 40 steps, and averaging the last quarter or half of the pass, lowered
    the smallest CV ratio (to 1.33-2.05: the control's CV falls late in the pass and a long
    average lags it).
    On the evaluation seeds of that benchmark it did not make the claim hold alone: CV ratios
    1.15-5.74 with one of five seeds below 1.5, the subgroup order wrong in two of five
    (the benchmark's docstring has the figures and those of the last iterate). With the panel
    memory as well (``strength_panel_memory``), on fresh seeds of a new structure: CV ratios
    2.18-3.40 in all five, the order right in four of five; rerun afterwards on the earlier
    seeds, ratios 0.80-7.38 (one of five below 1.5) and the order right in one of five.

    Refit. Averaging cannot remove the deeper cause: the strength is learned against margins
    that grow over the pass (a young policy's margins are near zero), and its last values rest
    on the last few batches. With ``strength_refit`` (default for the annotator level and
    covariates) training ends with :meth:`MixDPOTrainer.refit_strength`: one forward pass over
    the training pairs with the policy fixed, then the strength's MAP at those margins
    (full panel likelihood plus the hierarchical prior, L-BFGS-B,
    :func:`alignment.losses.panel.refit_panel_strength`). It is the strength the final policy
    implies, estimated from every label at one reward scale. Developed on the benchmark's
    development seeds 3001-3005 (order right in five of five with it, two of five without);
    tested once on a holdout structure and seeds fixed before (four subgroups, seeds
    6001-6005, ``benchmarks/results/panel_training_holdout.json``): CV ratios 20.18, 21.76,
    23.88, 3.87, 3.46 and the order right in all five (the training iterate of the same runs:
    7.99, 4.25, 4.65, 2.04, 5.92, order wrong in one). The refit's CV is bounded below by 0.05
    (the panel rule's validated range; a control CV of 0.05 reads "0.05 or less").
    """

    learning_rate: float = field(default=1e-6, metadata={"help": "Policy learning rate."})
    loss_type: str | list[str] = field(
        default="mixdpo",
        metadata={
            "help": "Registered loss name (see alignment.losses.available_losses(); TRL's "
            "'sigmoid', 'ipo', 'hinge', 'robust', 'sft' included), or a list of names whose "
            "losses are added with `loss_weights` (TRL's multi-loss)."
        },
    )
    loss_weights: list[float] | None = field(
        default=None,
        metadata={"help": "Weights of the losses of a `loss_type` list; default 1.0 each."},
    )
    loss_kwargs: dict[str, Any] | None = field(
        default=None,
        metadata={
            "help": "Keyword arguments for the loss constructor (with a `loss_type` list: "
            "a mapping loss name -> its keyword arguments)."
        },
    )
    beta: float = field(
        default=0.1,
        metadata={
            "help": "Fixed beta of the losses that take one (dpo/sigmoid, ipo, hinge, robust) "
            "and of strength_family='point_mass'; with another strength family the learned "
            "distribution replaces it (a beta other than 0.1 then warns)."
        },
    )
    label_smoothing: float = field(
        default=0.0,
        metadata={
            "help": "Probability that a label is flipped, for loss_type='robust' (robust DPO, "
            "as in TRL); in [0, 0.5). Other losses ignore it (a non-zero value then warns)."
        },
    )
    strength_family: str = field(
        default="lognormal",
        metadata={
            "help": "Strength distribution (a mixlogit.families name): 'lognormal', 'gamma' or "
            "'point_mass' (alias 'fixed'); stored under its canonical name."
        },
    )
    strength_init: dict[str, float] | None = field(
        default=None,
        metadata={
            "help": "Initial strength parameters over the family's defaults "
            "(mixlogit.families.get_family(name).defaults; the point mass's beta is `beta`)."
        },
    )
    learn_strength: bool = field(
        default=True,
        metadata={"help": "Train the strength parameters (False: fixed-distribution baseline)."},
    )
    strength_learning_rate: float | None = field(
        default=None,
        metadata={
            "help": "Learning rate of the strength parameter group; default 1e-4 (the paper's) "
            "for strength_parameterisation='natural', MEAN_CV_STRENGTH_LEARNING_RATE for "
            "'mean_cv'."
        },
    )
    strength_level: str = field(
        default="pair",
        metadata={
            "help": "One strength draw per 'pair' (MixDPO) or per 'annotator' (panel MixDPO; "
            "needs `annotator_column`)."
        },
    )
    annotator_column: str = field(
        default="annotator_id",
        metadata={"help": "Dataset column with the annotator of each label (annotator level)."},
    )
    strength_covariates: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Rater columns the strength depends on: text columns as partially pooled "
            "levels, numeric columns as standardised log-linear regressors of the mean."
        },
    )
    strength_pooling_scale: float | None = field(
        default=None,
        metadata={
            "help": "Fixed SD of the level effects on log mean and log CV; None: learned with a "
            "HalfNormal(1) prior."
        },
    )
    strength_average_half_life: float | None = field(
        default=None,
        metadata={
            "help": "Half-life (optimiser steps) of the moving average of the strength parameters "
            "that becomes the learned strength at the end of training; default "
            "MEAN_CV_STRENGTH_AVERAGE_HALF_LIFE for strength_parameterisation='mean_cv', 0 "
            "(the last iterate) for 'natural'."
        },
    )
    strength_panel_memory: bool = field(
        default=True,
        metadata={
            "help": "Annotator level: score each batch's pairs given the annotator's pairs already "
            "seen in the pass (alignment.losses.panel.PanelMemory), so that a pass adds up to the "
            "full panel likelihood; False: each batch piece on its own (composite likelihood). "
            "Measured effect mixed (benchmarks/bench_panel_training.py, item 5)."
        },
    )
    strength_refit: bool | None = field(
        default=None,
        metadata={
            "help": "strength_level='annotator' / strength_covariates: at the end of train, refit "
            "the strength to the final policy (its MAP over every training pair, "
            "MixDPOTrainer.refit_strength); default True for those, False otherwise."
        },
    )
    pairs_per_annotator: int | None = field(
        default=None,
        metadata={
            "help": "Most pairs of one annotator per batch chunk (annotator level); None: all, "
            "cut at the batch size."
        },
    )
    strength_parameterisation: str | None = field(
        default=None,
        metadata={
            "help": "'natural' (the family's parameters) or 'mean_cv' (log mean, log CV); "
            "default 'mean_cv' at the annotator level or with covariates, else 'natural'."
        },
    )
    lognormal_method: str = field(
        default="mc",
        metadata={"help": "LogNormal marginal: 'mc' (reparameterised) or 'quadrature'."},
    )
    lognormal_num_samples: int = field(default=16, metadata={"help": "Monte Carlo draws K."})
    lognormal_num_points: int = field(default=16, metadata={"help": "Gauss-Hermite nodes."})
    max_length: int | None = field(
        default=1024,
        metadata={
            "help": "Maximum prompt + completion tokens per sequence (TRL's default 1024): a "
            "completion keeps its first max_length - len(prompt) tokens, rows whose prompt "
            "alone fills it are dropped; the counts are logged. None: no limit."
        },
    )
    max_prompt_length: int | None = field(
        default=None,
        metadata={
            "help": "Maximum prompt tokens, the prompt keeping its end (the MixDPO paper's "
            "rule; TRL has none). None: no prompt limit."
        },
    )
    truncation_mode: str = field(
        default="keep_start",
        metadata={
            "help": "TRL's truncation mode; only 'keep_start' (TRL's default: each sequence "
            "keeps its first max_length tokens) is supported."
        },
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
        self._check_loss_types()
        try:
            family = get_family(self.strength_family)
        except ValueError:
            raise ValueError(
                f"strength_family must be one of {list(FAMILY_NAMES)} (or the alias 'fixed'), "
                f"got {self.strength_family!r}"
            ) from None
        self.strength_family = family.name
        methods = LOGNORMAL.option_choices["method"]
        if self.lognormal_method not in methods:
            raise ValueError(
                f"lognormal_method must be one of {list(methods)}, got {self.lognormal_method!r}"
            )
        if not self.beta > 0:
            raise ValueError(f"beta must be positive, got {self.beta}")
        self._check_strength_level()
        if self.strength_learning_rate is None:
            self.strength_learning_rate = (
                MEAN_CV_STRENGTH_LEARNING_RATE
                if self.strength_parameterisation == "mean_cv"
                else NATURAL_STRENGTH_LEARNING_RATE
            )
        if self.strength_average_half_life is None:
            self.strength_average_half_life = (
                MEAN_CV_STRENGTH_AVERAGE_HALF_LIFE
                if self.strength_parameterisation == "mean_cv"
                else 0.0
            )
        if not (
            self.strength_average_half_life >= 0 and math.isfinite(self.strength_average_half_life)
        ):
            raise ValueError(
                "strength_average_half_life must be a finite number >= 0 (0: no averaging), got "
                f"{self.strength_average_half_life!r}"
            )
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
        unknown = set(self.strength_init or {}) - set(family.parameters)
        if unknown:
            raise ValueError(
                f"strength_init keys {sorted(unknown)} do not belong to strength_family "
                f"{self.strength_family!r} (allowed: {sorted(family.parameters)})"
            )
        family.check_params(self.strength_init or {}, complete=False)
        self.extra_columns = list(self.extra_columns or [])

    @property
    def loss_types(self) -> list[str]:
        """``loss_type`` as a list of names (one element for a single loss)."""
        return [self.loss_type] if isinstance(self.loss_type, str) else list(self.loss_type)

    def _check_loss_types(self) -> None:
        """Normalise ``loss_type`` (a one-element list becomes its name) and check the TRL-style
        options ``loss_weights``, ``label_smoothing`` and ``truncation_mode``."""
        names = self.loss_type
        if isinstance(names, (list, tuple)):
            bad = [n for n in names if not isinstance(n, str) or not n]
            if not names or bad:
                raise ValueError(f"loss_type must be a loss name or a list of names, got {names!r}")
            if len(set(names)) != len(names):
                raise ValueError(f"loss_type has repeated losses: {list(names)}")
            self.loss_type = (
                names[0] if len(names) == 1 and self.loss_weights is None else list(names)
            )
        elif not isinstance(names, str) or not names:
            raise ValueError(f"loss_type must be a loss name or a list of names, got {names!r}")
        if self.loss_weights is not None:
            weights = list(self.loss_weights)
            if len(weights) != len(self.loss_types):
                raise ValueError(
                    f"loss_weights has {len(weights)} weights for {len(self.loss_types)} losses "
                    f"{self.loss_types}; give one weight per loss"
                )
            if not all(isinstance(w, (int, float)) and math.isfinite(w) for w in weights):
                raise ValueError(f"loss_weights must be finite numbers, got {weights}")
            self.loss_weights = [float(w) for w in weights]
        if not 0.0 <= self.label_smoothing < 0.5:
            raise ValueError(
                f"label_smoothing is the probability of a flipped label and must lie in "
                f"[0, 0.5), got {self.label_smoothing}"
            )
        if self.truncation_mode != "keep_start":
            raise ValueError(
                f"truncation_mode={self.truncation_mode!r} is not supported: only 'keep_start' "
                "(TRL's default; TRL 1.16 deprecates 'keep_end'). To keep a prompt's end, set "
                "max_prompt_length"
            )

    @property
    def conditional_strength(self) -> bool:
        """Whether the strength is a ``ConditionalStrength`` (``mean_cv`` parameterisation)."""
        return self.strength_parameterisation == "mean_cv"

    @property
    def panel_loss(self) -> bool:
        """Whether the trainer uses ``alignment.losses.panel`` (annotator level or covariates)."""
        return self.strength_level == "annotator" or bool(self.strength_covariates)

    def _check_strength_level(self) -> None:
        if self.strength_level not in STRENGTH_LEVELS:
            raise ValueError(
                f"strength_level must be one of {list(STRENGTH_LEVELS)}, got {self.strength_level!r}"
            )
        covariates = self.strength_covariates
        if isinstance(covariates, str):
            covariates = [covariates]
        bad = [c for c in covariates or [] if not isinstance(c, str) or not c]
        if bad:
            raise ValueError(f"strength_covariates must be column names, got {bad}")
        if len(set(covariates or [])) != len(covariates or []):
            raise ValueError(f"strength_covariates has repeated columns: {covariates}")
        self.strength_covariates = list(covariates or [])
        if self.strength_level == "annotator":
            if not isinstance(self.annotator_column, str) or not self.annotator_column:
                raise ValueError(
                    f"annotator_column must be a column name, got {self.annotator_column!r}"
                )
            if self.annotator_column in self.strength_covariates:
                raise ValueError(
                    f"annotator_column {self.annotator_column!r} cannot also be a strength "
                    "covariate (each annotator would be its own level)"
                )
        if not isinstance(self.strength_panel_memory, bool):
            raise ValueError(
                f"strength_panel_memory must be True or False, got {self.strength_panel_memory!r}"
            )
        if self.strength_refit is None:
            self.strength_refit = self.panel_loss
        if not isinstance(self.strength_refit, bool):
            raise ValueError(f"strength_refit must be True or False, got {self.strength_refit!r}")
        if self.strength_refit and not self.panel_loss:
            raise ValueError(
                "strength_refit applies to strength_level='annotator' or strength_covariates "
                "(a ConditionalStrength); set one of them or strength_refit=False"
            )
        if self.pairs_per_annotator is not None:
            if self.strength_level != "annotator":
                raise ValueError(
                    "pairs_per_annotator applies to strength_level='annotator', got "
                    f"strength_level={self.strength_level!r}"
                )
            if isinstance(self.pairs_per_annotator, bool) or not (
                isinstance(self.pairs_per_annotator, int) and self.pairs_per_annotator >= 1
            ):
                raise ValueError(
                    f"pairs_per_annotator must be a positive integer or None, got "
                    f"{self.pairs_per_annotator!r}"
                )
        if self.panel_loss and not (
            isinstance(self.loss_type, str) and self.loss_type in ("mixdpo", "panel_mixdpo")
        ):
            what = (
                "strength_level='annotator'"
                if self.strength_level == "annotator"
                else "strength_covariates"
            )
            raise ValueError(f"{what} needs loss_type 'mixdpo', got {self.loss_type!r}")
        if self.strength_parameterisation is None:
            self.strength_parameterisation = "mean_cv" if self.panel_loss else "natural"
        if self.strength_parameterisation not in STRENGTH_PARAMETERISATIONS:
            raise ValueError(
                f"strength_parameterisation must be one of {list(STRENGTH_PARAMETERISATIONS)}, "
                f"got {self.strength_parameterisation!r}"
            )
        if self.panel_loss and self.strength_parameterisation != "mean_cv":
            raise ValueError(
                "strength_level='annotator' and strength_covariates need "
                "strength_parameterisation='mean_cv'"
            )
        if self.strength_pooling_scale is not None and not (
            self.strength_pooling_scale > 0 and math.isfinite(self.strength_pooling_scale)
        ):
            raise ValueError(
                f"strength_pooling_scale must be a positive number or None, got "
                f"{self.strength_pooling_scale!r}"
            )

    def strength_parameters(self) -> dict[str, float]:
        """The initial strength parameters: the family's defaults, then ``strength_init``."""
        family = get_family(self.strength_family)
        # DPO's ``beta`` is the point mass's one parameter
        start = {"beta": self.beta} if family is POINT_MASS else {}
        return family.with_defaults({**start, **(self.strength_init or {})})
