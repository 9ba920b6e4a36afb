"""Covariate-conditioned preference strength, written once against ``ops``.

A conditional strength gives each rater ``i`` its own distribution of ``beta`` from the
family of :mod:`mixlogit.families`, through two linear predictors on the log scale (the
optimiser steps are then relative changes, free of the strength's unit):

    log mean_i = log_mean + sum_c tau_mean[c] * log_mean_level_z[level_c(i)] + x_i . log_mean_coef
    log cv_i   = log_cv   + sum_c tau_cv[c]   * log_cv_level_z[level_c(i)]   + x_i . log_cv_coef

and the family's natural parameters ``family.from_mean_cv(ops, mean_i, cv_i)``.

* **Partially pooled levels** (``levels``: categorical columns such as ``subgroup``): one
  standardised offset ``z ~ Normal(0, 1)`` per level, scaled by the column's ``tau``
  (non-centred hierarchy: the level's log mean is ``Normal(log_mean, tau^2)``). ``tau`` is
  fixed (``tau_mean=0.5``: a ridge penalty ``a^2 / (2 tau^2)`` on each level effect
  ``a = tau z``) or learned (``tau_mean=None``) with a ``HalfNormal(tau_prior_scale)`` prior.
  :func:`log_prior` is the log density of these priors in the coordinates ``(z, tau)``, so
  minimising ``-log-likelihood - log_prior`` is the MAP with partial pooling. With learned
  ``tau`` that MAP is proper: for fixed effects ``a`` the penalty
  ``|a|^2 / (2 tau^2) + tau^2 / (2 s^2)`` is smallest at ``tau^2 = |a| s``, where it equals
  ``|a| / s`` (a group-lasso shrinkage of the column's effects); the centred joint MAP would
  instead collapse to ``tau = 0``.
* **Regression** on numeric columns (standardised with the training means and SDs, stored in
  the :class:`StrengthDesign`) and on fixed-effect categorical columns (one-hot against a
  baseline level, the first in sorted order). The log CV has its own coefficients with
  ``regress_cv=True``. Coefficients are flat unless ``coef_prior_scale`` gives them a
  ``Normal(0, coef_prior_scale)`` prior; the intercepts ``log_mean``, ``log_cv`` are flat
  unless ``population_prior_scale`` centres a ``Normal`` prior on their initial values.

Families without spread (a point mass) have only the mean predictor.

The backends are :class:`mixlogit.torch.conditional.ConditionalStrength` (an ``nn.Module``) and
:class:`mixlogit.jax.conditional.ConditionalStrength` (a pytree); both hold a
:class:`ConditionalSpec` and the parameters named in :func:`parameter_shapes`. Per-row natural
parameters ``(n,)`` feed the pair-level marginal directly and, one row per annotator, the
per-group parameters of the panel marginal (:mod:`mixlogit.torch.panel`).

Pyro / NumPyro: :func:`conditional_strength_sites` registers the same parameters as sites of a
:class:`mixlogit._ppl.PPL` model (sample sites with the hierarchical prior, ``param`` sites for
flat ones), returning the same parameter mapping; feed it to :func:`natural_params`::

    from mixlogit.jax.panel import panel_logit_marginal  # or mixlogit.torch.panel for Pyro

    def model(ppl, d, group, spec, groups):  # groups: EncodedCovariates, one row per group
        params = conditional_strength_sites(ppl, spec, like=d)
        natural = natural_params(ppl.ops, spec, params, groups)
        log_lik = panel_logit_marginal(d, group, spec.family, natural, num_groups=groups.num_rows)
        ppl.factor("panel", log_lik.sum())
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from mixlogit.families import NUMPY_OPS, StrengthFamily, get_family

__all__ = [
    "LEVEL_SEPARATOR",
    "ConditionalSpec",
    "EncodedCovariates",
    "StrengthDesign",
    "conditional_strength_sites",
    "group_covariates",
    "initial_values",
    "level_predictors",
    "log_prior",
    "make_spec",
    "mixture_moments",
    "moments_at",
    "natural_from_predictors",
    "natural_params",
    "parameter_shapes",
    "predictors",
]

Array = Any
#: Separator of a one-hot feature name (``"age_band=30-45"``) and of a level key when several
#: columns are pooled (``"subgroup=decisive"``).
LEVEL_SEPARATOR = "="

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


# ----------------------------------------------------------------------------- data access
def _num_rows(data: Any) -> int | None:
    if hasattr(data, "shape") and hasattr(data, "columns"):  # pandas
        return int(data.shape[0])
    if hasattr(data, "column_names") and hasattr(data, "__len__"):  # datasets.Dataset
        return len(data)
    return None


def _column_names(data: Any) -> list[str]:
    if hasattr(data, "columns"):
        return [str(c) for c in data.columns]
    if hasattr(data, "column_names"):
        return list(data.column_names)
    if isinstance(data, Mapping):
        return [str(c) for c in data]
    raise TypeError(
        "covariates must be a pandas DataFrame, a datasets.Dataset or a mapping "
        f"{{column: values}}, got {type(data).__name__}"
    )


def _column(data: Any, name: str) -> np.ndarray:
    names = _column_names(data)
    if name not in names:
        raise ValueError(f"covariate column {name!r} is missing; the data have {sorted(names)}")
    values = data[name]
    if hasattr(values, "to_numpy"):
        values = values.to_numpy()
    values = np.asarray(list(values) if not isinstance(values, np.ndarray) else values)
    if values.ndim != 1:
        raise ValueError(f"covariate column {name!r} must be one value per row, got {values.shape}")
    return values


def _is_numeric(values: np.ndarray) -> bool:
    if values.dtype.kind in "iuf":
        return True
    if values.dtype.kind == "O":
        return all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values.tolist())
    return False


def _as_levels(name: str, values: np.ndarray) -> list[str]:
    out = []
    for row, value in enumerate(values.tolist()):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            raise ValueError(f"covariate column {name!r} row {row}: missing value {value!r}")
        out.append(str(value))
    return out


def _as_numbers(name: str, values: np.ndarray) -> np.ndarray:
    try:
        numbers_ = values.astype(np.float64)
    except (TypeError, ValueError):
        bad = next((r, v) for r, v in enumerate(values.tolist()) if not isinstance(v, numbers.Real))
        raise ValueError(
            f"numeric covariate column {name!r} row {bad[0]}: expected a number, got {bad[1]!r}"
        ) from None
    if not np.all(np.isfinite(numbers_)):
        row = int(np.flatnonzero(~np.isfinite(numbers_))[0])
        raise ValueError(
            f"numeric covariate column {name!r} row {row}: expected a finite number, "
            f"got {values[row]!r}"
        )
    return numbers_


class EncodedCovariates(NamedTuple):
    """Covariates of ``n`` rows as model inputs.

    Attributes:
        level_index: ``(n, C)`` integer positions into the concatenated levels of the ``C``
            pooled columns (:attr:`StrengthDesign.level_keys`).
        features: ``(n, P)`` float regressors (standardised numeric, then one-hot columns).
    """

    level_index: Array
    features: Array

    @property
    def num_rows(self) -> int:
        return int(self.level_index.shape[0])

    def rows(self, index: Any) -> EncodedCovariates:
        """The rows ``index`` (an integer array or slice) of both fields."""
        return EncodedCovariates(self.level_index[index], self.features[index])


@dataclass(frozen=True)
class StrengthDesign:
    """How rater covariates enter a conditional strength; fitted on the training rows.

    Build it with :meth:`fit` (explicit roles) or :meth:`infer` (roles from the column types),
    then :meth:`encode` any rows (training or new raters) into :class:`EncodedCovariates`.

    Attributes:
        levels: pooled categorical columns (partially pooled level offsets).
        level_values: each pooled column's levels (sorted strings).
        numeric: numeric regressor columns.
        numeric_mean, numeric_sd: their training means and SDs (standardisation).
        categorical: fixed-effect categorical columns (one-hot).
        categorical_values: each one's levels; the first is the baseline (no column).
    """

    levels: tuple[str, ...] = ()
    level_values: tuple[tuple[str, ...], ...] = ()
    numeric: tuple[str, ...] = ()
    numeric_mean: tuple[float, ...] = ()
    numeric_sd: tuple[float, ...] = ()
    categorical: tuple[str, ...] = ()
    categorical_values: tuple[tuple[str, ...], ...] = ()

    def __post_init__(self) -> None:
        columns = [*self.levels, *self.numeric, *self.categorical]
        repeated = sorted({c for c in columns if columns.count(c) > 1})
        if repeated:
            raise ValueError(f"covariate column(s) {repeated} are given more than one role")
        if len(self.level_values) != len(self.levels) or any(
            len(v) == 0 for v in self.level_values
        ):
            raise ValueError("every pooled column needs at least one level")
        if not (len(self.numeric) == len(self.numeric_mean) == len(self.numeric_sd)):
            raise ValueError("numeric, numeric_mean and numeric_sd must have one entry per column")
        if len(self.categorical_values) != len(self.categorical):
            raise ValueError("categorical_values needs one tuple of levels per categorical column")

    # -------------------------------------------------------------------------- building
    @classmethod
    def fit(
        cls,
        data: Any,
        *,
        levels: Sequence[str] = (),
        numeric: Sequence[str] = (),
        categorical: Sequence[str] = (),
    ) -> StrengthDesign:
        """The design of ``data`` (a DataFrame, ``datasets.Dataset`` or ``{column: values}``).

        Raises:
            ValueError: a missing column (named, with the available ones), a missing or
                non-numeric value (column and row), a constant numeric column (its SD is 0).
        """
        levels, numeric, categorical = (
            tuple(_names(arg, role))
            for arg, role in (
                (levels, "levels"),
                (numeric, "numeric"),
                (categorical, "categorical"),
            )
        )
        level_values = tuple(tuple(sorted(set(_as_levels(c, _column(data, c))))) for c in levels)
        means, sds = [], []
        for name in numeric:
            values = _as_numbers(name, _column(data, name))
            sd = float(values.std())
            if not sd > 0:
                raise ValueError(
                    f"numeric covariate column {name!r} is constant ({values[0]!r}); "
                    "it cannot be standardised and carries no information"
                )
            means.append(float(values.mean()))
            sds.append(sd)
        categorical_values = tuple(
            tuple(sorted(set(_as_levels(c, _column(data, c))))) for c in categorical
        )
        return cls(
            levels, level_values, numeric, tuple(means), tuple(sds), categorical, categorical_values
        )

    @classmethod
    def infer(cls, data: Any, covariates: Sequence[str]) -> StrengthDesign:
        """:meth:`fit` with roles from the column types: numbers become standardised numeric
        regressors; strings, booleans and other values become pooled levels."""
        covariates = _names(covariates, "covariates")
        numeric = [c for c in covariates if _is_numeric(_column(data, c))]
        levels = [c for c in covariates if c not in numeric]
        return cls.fit(data, levels=levels, numeric=numeric)

    # -------------------------------------------------------------------------- shapes
    @property
    def columns(self) -> tuple[str, ...]:
        """Every covariate column the design reads."""
        return (*self.levels, *self.numeric, *self.categorical)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Names of the ``P`` regressors: numeric columns, then ``column=level`` one-hots."""
        onehot = tuple(
            f"{c}{LEVEL_SEPARATOR}{v}"
            for c, values in zip(self.categorical, self.categorical_values, strict=True)
            for v in values[1:]
        )
        return (*self.numeric, *onehot)

    @property
    def num_features(self) -> int:
        return len(self.feature_names)

    @property
    def num_levels(self) -> int:
        """``L``: the number of levels of all pooled columns together."""
        return sum(len(v) for v in self.level_values)

    @property
    def level_keys(self) -> tuple[str, ...]:
        """A name per level (``L``): the level itself when one column is pooled, else
        ``column=level``. Used as ``strength/<key>/mean`` in training logs."""
        if len(self.levels) == 1:
            return self.level_values[0]
        return tuple(
            f"{c}{LEVEL_SEPARATOR}{v}"
            for c, values in zip(self.levels, self.level_values, strict=True)
            for v in values
        )

    @property
    def level_column(self) -> np.ndarray:
        """``(L,)`` integers: the pooled column each level belongs to."""
        return np.repeat(np.arange(len(self.levels)), [len(v) for v in self.level_values])

    # -------------------------------------------------------------------------- encoding
    def encode(self, data: Any) -> EncodedCovariates:
        """``data``'s rows as :class:`EncodedCovariates` (NumPy ``int64`` and ``float64``).

        Raises:
            ValueError: a missing column, a missing or non-numeric value, or a level not seen
                when the design was fitted (naming the column, the row and the value).
        """
        n = _num_rows(data)
        if n is None:
            n = len(_column(data, self.columns[0])) if self.columns else 0
        offsets = np.concatenate([[0], np.cumsum([len(v) for v in self.level_values])])
        level_index = np.zeros((n, len(self.levels)), dtype=np.int64)
        for j, (name, values) in enumerate(zip(self.levels, self.level_values, strict=True)):
            level_index[:, j] = offsets[j] + self._positions(data, name, values, n)
        columns = []
        for name, mean, sd in zip(self.numeric, self.numeric_mean, self.numeric_sd, strict=True):
            columns.append((_as_numbers(name, self._checked(data, name, n)) - mean) / sd)
        for name, values in zip(self.categorical, self.categorical_values, strict=True):
            position = self._positions(data, name, values, n)
            columns.extend((position == k).astype(np.float64) for k in range(1, len(values)))
        features = np.stack(columns, axis=1) if columns else np.zeros((n, 0))
        return EncodedCovariates(level_index, features)

    def _checked(self, data: Any, name: str, n: int) -> np.ndarray:
        values = _column(data, name)
        if len(values) != n:
            raise ValueError(f"covariate column {name!r} has {len(values)} rows, expected {n}")
        return values

    def _positions(self, data: Any, name: str, values: tuple[str, ...], n: int) -> np.ndarray:
        lookup = {v: k for k, v in enumerate(values)}
        out = np.empty(n, dtype=np.int64)
        for row, value in enumerate(_as_levels(name, self._checked(data, name, n))):
            if value not in lookup:
                raise ValueError(
                    f"covariate column {name!r} row {row}: level {value!r} was not seen when "
                    f"the strength design was fitted; known levels: {list(values)}"
                )
            out[row] = lookup[value]
        return out

    # -------------------------------------------------------------------------- storage
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record (checkpoints store it beside the strength's state dict)."""
        return {
            "levels": list(self.levels),
            "level_values": [list(v) for v in self.level_values],
            "numeric": list(self.numeric),
            "numeric_mean": list(self.numeric_mean),
            "numeric_sd": list(self.numeric_sd),
            "categorical": list(self.categorical),
            "categorical_values": [list(v) for v in self.categorical_values],
        }

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> StrengthDesign:
        """Inverse of :meth:`to_dict`."""
        return cls(
            tuple(record.get("levels", ())),
            tuple(tuple(v) for v in record.get("level_values", ())),
            tuple(record.get("numeric", ())),
            tuple(float(v) for v in record.get("numeric_mean", ())),
            tuple(float(v) for v in record.get("numeric_sd", ())),
            tuple(record.get("categorical", ())),
            tuple(tuple(v) for v in record.get("categorical_values", ())),
        )


def _names(value: Any, role: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    names = list(value)
    bad = [v for v in names if not isinstance(v, str)]
    if bad:
        raise TypeError(f"{role} must be column names (strings), got {bad}")
    return names


def group_covariates(
    data: Any, group: Sequence[Any], columns: Sequence[str], num_groups: int | None = None
) -> dict[str, list[Any]]:
    """One row of ``columns`` per group: ``{column: values (G,)}`` for groups ``0..G-1``.

    ``group`` holds each row's integer group id (an annotator's index). A covariate is a
    property of the rater, so it must be constant within each group.

    Raises:
        ValueError: a group id outside ``[0, num_groups)``, a group with no rows, or a column
            whose value changes within a group (naming the column, group and both values).
    """
    group = np.asarray(group)
    if group.ndim != 1 or (group.size and group.dtype.kind not in "iu"):
        raise ValueError(f"group must be a 1-d array of integer ids, got dtype {group.dtype}")
    num_groups = int(group.max()) + 1 if num_groups is None else int(num_groups)
    if group.size and (group.min() < 0 or group.max() >= num_groups):
        raise ValueError(
            f"group ids must lie in [0, {num_groups}), got {group.min()}..{group.max()}"
        )
    first = np.full(num_groups, -1, dtype=np.int64)
    ids, first_rows = np.unique(group, return_index=True)  # each group's earliest row
    first[ids] = first_rows
    empty = np.flatnonzero(first < 0)
    if empty.size:
        raise ValueError(f"group(s) {empty[:10].tolist()} have no rows")
    out = {}
    for name in columns:
        values = _column(data, name)
        if len(values) != len(group):
            raise ValueError(
                f"covariate column {name!r} has {len(values)} rows, group has {len(group)}"
            )
        reference = values[first][group]
        differs = np.flatnonzero(reference != values)
        if differs.size:
            row = int(differs[0])
            raise ValueError(
                f"covariate column {name!r} changes within group {int(group[row])}: "
                f"{values[first[group[row]]]!r} and {values[row]!r} (row {row}); a rater "
                "covariate must be constant for each annotator"
            )
        out[name] = values[first].tolist()
    return out


# ----------------------------------------------------------------------------- the spec
@dataclass(frozen=True)
class ConditionalSpec:
    """The static structure of a conditional strength (shared by both backends).

    Build it with :func:`make_spec`; the attributes mirror its arguments.
    """

    family: StrengthFamily
    design: StrengthDesign = field(default_factory=StrengthDesign)
    has_cv: bool = True
    pool_cv: bool = True
    regress_cv: bool = False
    tau_mean: float | None = None
    tau_cv: float | None = None
    tau_prior_scale: float = 1.0
    coef_prior_scale: float | None = None
    population_prior_scale: float | None = None
    init_log_mean: float = 0.0
    init_log_cv: float = 0.0
    init_tau: float = 0.5

    def __hash__(self) -> int:
        # The family holds dicts (unhashable); its name identifies it. JAX hashes the spec
        # as static pytree data.
        fields = [getattr(self, f) for f in self.__dataclass_fields__ if f != "family"]
        return hash((self.family.name, *fields))


def _positive_or_none(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a positive finite number or None, got {value!r}")
    return value


def make_spec(
    family: str | StrengthFamily = "gamma",
    design: StrengthDesign | None = None,
    *,
    init: Mapping[str, float] | None = None,
    mean: float | None = None,
    cv: float | None = None,
    pool_cv: bool = True,
    regress_cv: bool = False,
    tau_mean: float | None = None,
    tau_cv: float | None = None,
    tau_prior_scale: float = 1.0,
    coef_prior_scale: float | None = None,
    population_prior_scale: float | None = None,
    init_tau: float = 0.5,
) -> ConditionalSpec:
    """Check the arguments of a conditional strength and return its :class:`ConditionalSpec`.

    Args:
        family: a strength family (name or object).
        design: the covariate design; ``None``: no covariates (one distribution for everyone,
            parameterised by ``log_mean``, ``log_cv``).
        init: the family's natural parameters at the start (default ``family.defaults``).
        mean, cv: start values of the population mean and CV instead of ``init``.
        pool_cv: pooled columns also shift the log CV (``False``: they shift only the mean).
        regress_cv: the regressors also enter the log CV with their own coefficients.
        tau_mean, tau_cv: fixed pooling scales (SD of level effects on the log scale);
            ``None``: learned, with a ``HalfNormal(tau_prior_scale)`` prior, starting at
            ``init_tau``.
        coef_prior_scale: SD of a ``Normal(0, .)`` prior on regression coefficients (flat if
            ``None``).
        population_prior_scale: SD of a ``Normal`` prior on ``log_mean``/``log_cv`` centred at
            their start values (flat if ``None``).

    Raises:
        ValueError: an unknown family, bad initial values or non-positive scales.
    """
    family = get_family(family)
    design = StrengthDesign() if design is None else design
    if not isinstance(design, StrengthDesign):
        raise TypeError(f"design must be a StrengthDesign, got {type(design).__name__}")
    if init is not None and (mean is not None or cv is not None):
        raise ValueError("give either init (natural parameters) or mean/cv, not both")
    natural = family.with_defaults(init)
    start_mean = float(family.mean(NUMPY_OPS, natural)) if mean is None else float(mean)
    start_cv = float(family.cv(NUMPY_OPS, natural)) if cv is None else float(cv)
    # A family whose default spread is zero (a point mass) has no CV to learn.
    has_cv = float(family.cv(NUMPY_OPS, family.with_defaults())) > 0
    if not (start_mean > 0 and math.isfinite(start_mean)):
        raise ValueError(f"the start mean strength must be positive and finite, got {start_mean!r}")
    if has_cv and not (start_cv > 0 and math.isfinite(start_cv)):
        raise ValueError(f"the start CV must be positive and finite, got {start_cv!r}")
    if not has_cv and cv is not None and cv != 0:
        raise ValueError(f"{family.name} strength has no spread; cv must be 0 or None, got {cv!r}")
    tau_prior_scale = _positive_or_none("tau_prior_scale", tau_prior_scale)
    if tau_prior_scale is None:
        raise ValueError("tau_prior_scale must be a positive number")
    return ConditionalSpec(
        family=family,
        design=design,
        has_cv=has_cv,
        pool_cv=bool(pool_cv) and has_cv,
        regress_cv=bool(regress_cv) and has_cv,
        tau_mean=_positive_or_none("tau_mean", tau_mean),
        tau_cv=_positive_or_none("tau_cv", tau_cv),
        tau_prior_scale=tau_prior_scale,
        coef_prior_scale=_positive_or_none("coef_prior_scale", coef_prior_scale),
        population_prior_scale=_positive_or_none("population_prior_scale", population_prior_scale),
        init_log_mean=math.log(start_mean),
        init_log_cv=math.log(start_cv) if has_cv else 0.0,
        init_tau=float(_positive_or_none("init_tau", init_tau)),
    )


def parameter_shapes(spec: ConditionalSpec) -> dict[str, tuple[int, ...]]:
    """``{name: shape}`` of the parameters of ``spec`` (the same names in every backend)."""
    num_columns, num_levels = len(spec.design.levels), spec.design.num_levels
    num_features = spec.design.num_features
    shapes: dict[str, tuple[int, ...]] = {"log_mean": ()}
    if spec.has_cv:
        shapes["log_cv"] = ()
    if num_features:
        shapes["log_mean_coef"] = (num_features,)
        if spec.regress_cv:
            shapes["log_cv_coef"] = (num_features,)
    if num_columns:
        shapes["log_mean_level_z"] = (num_levels,)
        if spec.tau_mean is None:
            shapes["log_tau_mean"] = (num_columns,)
        if spec.pool_cv:
            shapes["log_cv_level_z"] = (num_levels,)
            if spec.tau_cv is None:
                shapes["log_tau_cv"] = (num_columns,)
    return shapes


def initial_values(spec: ConditionalSpec) -> dict[str, np.ndarray]:
    """Start values (NumPy ``float64``): the start mean/CV, zero offsets and coefficients,
    learned pooling scales at ``init_tau``."""
    start = {
        "log_mean": spec.init_log_mean,
        "log_cv": spec.init_log_cv,
        "log_tau_mean": math.log(spec.init_tau),
        "log_tau_cv": math.log(spec.init_tau),
    }
    return {
        name: np.full(shape, start.get(name, 0.0), dtype=np.float64)
        for name, shape in parameter_shapes(spec).items()
    }


# ----------------------------------------------------------------------------- pure maths
def _tau(ops: Any, spec: ConditionalSpec, params: Mapping[str, Array], which: str) -> Array:
    like = params["log_mean"]
    fixed = spec.tau_mean if which == "mean" else spec.tau_cv
    if fixed is None:
        return ops.exp(params[f"log_tau_{which}"])
    return ops.const(np.full(len(spec.design.levels), fixed), like)


def _level_effects(
    ops: Any, spec: ConditionalSpec, params: Mapping[str, Array]
) -> tuple[Array, Array | None]:
    """``tau * z`` of every level ``(L,)`` for the log mean and the log CV (``None`` if the
    pooled columns do not shift the CV)."""
    column = spec.design.level_column
    mean_effect = _tau(ops, spec, params, "mean")[column] * params["log_mean_level_z"]
    if not spec.pool_cv:
        return mean_effect, None
    return mean_effect, _tau(ops, spec, params, "cv")[column] * params["log_cv_level_z"]


def level_predictors(
    ops: Any, spec: ConditionalSpec, params: Mapping[str, Array]
) -> tuple[Array, Array | None]:
    """``(log mean, log CV)`` of each pooled level, shape ``(L,)``, at the population values of
    the other inputs (other pooled columns at their centre, standardised numerics at their
    training mean, fixed-effect categoricals at their baseline). The log CV is ``None`` for a
    family without spread."""
    if not spec.design.levels:
        raise ValueError("the strength has no pooled levels (design.levels is empty)")
    mean_effect, cv_effect = _level_effects(ops, spec, params)
    log_mean = params["log_mean"] + mean_effect
    if not spec.has_cv:
        return log_mean, None
    log_cv = params["log_cv"] + (mean_effect * 0.0 if cv_effect is None else cv_effect)
    return log_mean, log_cv


def predictors(
    ops: Any,
    spec: ConditionalSpec,
    params: Mapping[str, Array],
    covariates: EncodedCovariates | None = None,
) -> tuple[Array, Array | None]:
    """``(log mean, log CV)`` per row ``(n,)``, or of the population centre (0-dim) when
    ``covariates`` is ``None``. ``covariates`` holds backend arrays (integer ``level_index``
    ``(n, C)``, float ``features`` ``(n, P)``). The log CV is ``None`` without spread."""
    log_mean, log_cv = params["log_mean"], params.get("log_cv")
    if covariates is None:
        return log_mean, log_cv
    level_index, features = covariates
    # (n,) zeros: broadcasts the intercepts to one value per row.
    row_mean = ops.sum(features, -1) * 0.0 + log_mean
    row_cv = None if log_cv is None else row_mean * 0.0 + log_cv
    if spec.design.levels:
        mean_effect, cv_effect = _level_effects(ops, spec, params)
        row_mean = row_mean + ops.sum(mean_effect[level_index], -1)
        if cv_effect is not None:
            row_cv = row_cv + ops.sum(cv_effect[level_index], -1)
    if spec.design.num_features:
        row_mean = row_mean + features @ params["log_mean_coef"]
        if spec.regress_cv:
            row_cv = row_cv + features @ params["log_cv_coef"]
    return row_mean, row_cv


def natural_from_predictors(
    ops: Any, spec: ConditionalSpec, log_mean: Array, log_cv: Array | None
) -> dict[str, Array]:
    """The family's natural parameters at ``(log mean, log CV)``."""
    mean = ops.exp(log_mean)
    cv = mean * 0.0 if log_cv is None else ops.exp(log_cv)
    return spec.family.from_mean_cv(ops, mean, cv)


def natural_params(
    ops: Any,
    spec: ConditionalSpec,
    params: Mapping[str, Array],
    covariates: EncodedCovariates | None = None,
) -> dict[str, Array]:
    """``{natural parameter: (n,)}`` per row of ``covariates`` (0-dim: the population centre);
    one row per annotator gives the per-group parameters of the panel marginal."""
    return natural_from_predictors(ops, spec, *predictors(ops, spec, params, covariates))


def _normal_log_density(ops: Any, x: Array, loc: Any, scale: float) -> Array:
    z = (x - loc) / scale
    return ops.sum(-0.5 * z * z - (_HALF_LOG_2PI + math.log(scale)), 0)


def log_prior(ops: Any, spec: ConditionalSpec, params: Mapping[str, Array]) -> Array:
    """The log prior density (0-dim) of ``params``, normalised, in the coordinates
    ``(z, tau, coefficients, intercepts)``; flat parts contribute 0. ``-log_prior`` is the
    penalty whose sum with the negative log-likelihood is minimised by the MAP."""
    like = params["log_mean"]
    total = like * 0.0
    for name in ("log_mean_level_z", "log_cv_level_z"):
        if name in params:
            total = total + _normal_log_density(ops, params[name], 0.0, 1.0)
    s = spec.tau_prior_scale
    for name in ("log_tau_mean", "log_tau_cv"):
        if name in params:
            tau = ops.exp(params[name])
            # HalfNormal(s): log 2 + log N(tau; 0, s)
            total = total + _normal_log_density(ops, tau, 0.0, s) + tau.shape[0] * math.log(2.0)
    if spec.coef_prior_scale is not None:
        for name in ("log_mean_coef", "log_cv_coef"):
            if name in params:
                total = total + _normal_log_density(ops, params[name], 0.0, spec.coef_prior_scale)
    if spec.population_prior_scale is not None:
        for name, centre in (("log_mean", spec.init_log_mean), ("log_cv", spec.init_log_cv)):
            if name in params:
                z = (params[name] - centre) / spec.population_prior_scale
                total = (
                    total - 0.5 * z * z - (_HALF_LOG_2PI + math.log(spec.population_prior_scale))
                )
    return total


def mixture_moments(
    ops: Any, spec: ConditionalSpec, natural: Mapping[str, Array]
) -> dict[str, Array]:
    """``{"mean", "variance", "cv"}`` of the equal-weight mixture of the rows' distributions
    (``natural`` of shape ``(n,)``): the population of those raters, by the law of total
    variance (within-rater variance plus the variance of the rater means)."""
    mean_i = spec.family.mean(ops, natural)
    second_i = spec.family.variance(ops, natural) + mean_i * mean_i
    n = mean_i.shape[0]
    if n == 0:
        raise ValueError("mixture_moments needs at least one row")
    mean = ops.sum(mean_i, 0) / n
    variance = ops.sum(second_i, 0) / n - mean * mean
    variance = ops.clip(variance, 0.0, ops.finfo_max(variance))
    return {"mean": mean, "variance": variance, "cv": ops.sqrt(variance) / mean}


def moments_at(
    ops: Any, spec: ConditionalSpec, log_mean: Array, log_cv: Array | None
) -> dict[str, Array]:
    """``{"mean", "variance", "cv"}`` of the family at ``(log mean, log CV)`` (any shape)."""
    return spec.family.moments(ops, natural_from_predictors(ops, spec, log_mean, log_cv))


# ----------------------------------------------------------------------------- PPL
def conditional_strength_sites(
    ppl: Any, spec: ConditionalSpec, *, like: Array | None = None, prefix: str = "strength_"
) -> dict[str, Array]:
    """Register the parameters of ``spec`` as sites of a Pyro/NumPyro model.

    Level offsets ``z`` are ``Normal(0, 1)`` sample sites; learned pooling scales are
    ``HalfNormal(tau_prior_scale)`` sample sites named ``<prefix>tau_mean``/``tau_cv`` (their
    logs are returned as ``log_tau_*``); coefficients and intercepts are sample sites with
    their ``Normal`` priors when the spec gives them, ``param`` sites (type-II maximum
    likelihood) when flat. The joint log density of the sample sites equals :func:`log_prior`.

    Args:
        ppl: :data:`mixlogit.torch._ppl.PPL` or :data:`mixlogit.jax._ppl.PPL`.
        spec: the strength structure.
        like: an array whose dtype/device the sites take.
        prefix: site-name prefix.

    Returns:
        ``{name: value}`` with the names of :func:`parameter_shapes`, for :func:`natural_params`.
    """
    start = initial_values(spec)
    out: dict[str, Array] = {}
    shapes = parameter_shapes(spec)
    for name, centre in (("log_mean", spec.init_log_mean), ("log_cv", spec.init_log_cv)):
        if name not in shapes:
            continue
        if spec.population_prior_scale is None:
            out[name] = ppl.param(prefix + name, ppl.asarray(start[name], like=like), ppl.real)
        else:
            loc = ppl.asarray(centre, like=like)
            scale = ppl.asarray(spec.population_prior_scale, like=like)
            out[name] = ppl.sample(prefix + name, ppl.Normal(loc, scale))
    for name in ("log_mean_coef", "log_cv_coef"):
        if name not in shapes:
            continue
        if spec.coef_prior_scale is None:
            out[name] = ppl.param(prefix + name, ppl.asarray(start[name], like=like), ppl.real)
        else:
            zero = ppl.full(shapes[name], 0.0, like=ppl.asarray(0.0, like=like))
            prior = ppl.Normal(zero, spec.coef_prior_scale).to_event(1)
            out[name] = ppl.sample(prefix + name, prior)
    for name in ("log_mean_level_z", "log_cv_level_z"):
        if name in shapes:
            zero = ppl.full(shapes[name], 0.0, like=ppl.asarray(0.0, like=like))
            out[name] = ppl.sample(prefix + name, ppl.Normal(zero, 1.0).to_event(1))
    for name in ("log_tau_mean", "log_tau_cv"):
        if name in shapes:
            scale = ppl.full(shapes[name], spec.tau_prior_scale, like=ppl.asarray(0.0, like=like))
            tau = ppl.sample(prefix + name.removeprefix("log_"), ppl.HalfNormal(scale).to_event(1))
            out[name] = ppl.ops.log(tau)
    return out
