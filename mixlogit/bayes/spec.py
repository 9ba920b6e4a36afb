"""Model description and data layout shared by the NumPyro and Pyro backends.

The Bayesian backends do not depend on the classical model classes: they work on a
:class:`BayesSpec` (which coefficient is fixed, which is random and how) and on a
:class:`PanelArrays` (choice situations grouped by decision-maker). ``spec_from_model`` reads
the specification of a ``mixlogit.models.MixedLogit`` / ``MultinomialLogit`` (the attributes
documented in :mod:`mixlogit.arrays`) so that the same model object can be fitted by maximum
likelihood or by Bayes.

Parameterisation of a random coefficient ``beta_n`` of decision-maker ``n`` (population
location ``mu`` and scale ``sigma``, person draw ``z_n ~ N(0, 1)`` or ``u_n ~ Gamma(k, 1)``;
``sign`` is +1 or -1):

============== ======================================================= ======================
distribution   beta_n                                                  population parameters
============== ======================================================= ======================
normal         ``mu + sigma * z_n`` (``z`` correlated through ``L``)   mean, SD
lognormal      ``sign * exp(mu + sigma * z_n)``                        mean/SD of log|beta|
gamma          ``sign * mean * u_n / k``, ``u_n ~ Gamma(k, 1)``        log mean, log shape
uniform        ``mu + sigma * (2 Phi(z_n) - 1)``                       centre, half-width
triangular     ``mu + sigma * T(Phi(z_n))``, T symmetric on [-1, 1]    centre, half-width
truncnormal    ``sign * TN(mu, sigma; > 0)`` by inverse CDF of Phi(z)  location, scale
============== ======================================================= ======================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from mixlogit.arrays import ChoiceArrays

__all__ = [
    "DISTRIBUTIONS",
    "BayesPriors",
    "BayesSpec",
    "CoefficientSpec",
    "PanelArrays",
    "choice_arrays_from_data",
    "panel_arrays",
    "spec_from_model",
]

DISTRIBUTIONS = ("normal", "lognormal", "gamma", "uniform", "triangular", "truncnormal")
# Distributions whose person draw is a standard normal z_n (all but gamma); these can be
# integrated by Gauss-Hermite quadrature and can be correlated (normal only).
Z_DISTRIBUTIONS = ("normal", "lognormal", "uniform", "triangular", "truncnormal")


class CoefficientSpec(NamedTuple):
    """One coefficient of the utility.

    Attributes:
        name: variable name (column of ``ChoiceArrays.X``).
        distribution: ``None`` for a fixed coefficient, else one of :data:`DISTRIBUTIONS`.
        sign: +1 or -1 (used by lognormal, gamma and truncnormal).
    """

    name: str
    distribution: str | None = None
    sign: int = 1


@dataclass(frozen=True)
class BayesSpec:
    """Which coefficients are fixed/random, in the column order of ``X``.

    Attributes:
        coefficients: one :class:`CoefficientSpec` per column of ``X``.
        correlated: names of random normal / lognormal coefficients whose underlying normals
            share a full covariance (LKJ prior on the Cholesky factor of their correlation,
            scales ``sigma``); empty for independent coefficients.
    """

    coefficients: tuple[CoefficientSpec, ...]
    correlated: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        names = [c.name for c in self.coefficients]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate coefficient names in specification: {names}")
        for c in self.coefficients:
            if c.distribution is not None and c.distribution not in DISTRIBUTIONS:
                raise ValueError(
                    f"coefficient {c.name!r}: unknown mixing distribution {c.distribution!r}; "
                    f"expected one of {DISTRIBUTIONS}"
                )
            if c.sign not in (1, -1):
                raise ValueError(f"coefficient {c.name!r}: sign must be +1 or -1, got {c.sign!r}")
        for name in self.correlated:
            if name not in names:
                raise ValueError(f"correlated coefficient {name!r} is not in the specification")
            dist = self.coefficients[names.index(name)].distribution
            if dist not in ("normal", "lognormal"):
                raise ValueError(
                    f"correlated coefficient {name!r} has distribution {dist!r}; only random "
                    "normal and lognormal coefficients can be correlated (through their "
                    "underlying normals)"
                )
        if len(self.correlated) == 1:
            raise ValueError("correlated needs at least two coefficients")

    @classmethod
    def build(
        cls,
        fixed: Sequence[str] = (),
        random: Mapping[str, str | tuple[str, int]] | None = None,
        correlated: Sequence[str] | bool = (),
    ) -> BayesSpec:
        """Specification from names: ``random={"price": ("lognormal", -1), "cl": "normal"}``.

        ``correlated=True`` correlates every random normal and lognormal coefficient.
        """
        coefs = [CoefficientSpec(str(n)) for n in fixed]
        for name, value in (random or {}).items():
            dist, sign = (value, 1) if isinstance(value, str) else (value[0], int(value[1]))
            coefs.append(CoefficientSpec(str(name), dist, sign))
        if correlated is True:
            correlated = [c.name for c in coefs if c.distribution in ("normal", "lognormal")]
        elif correlated is False:
            correlated = ()
        return cls(tuple(coefs), tuple(correlated))

    # Derived index sets -------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.coefficients)

    @property
    def fixed_index(self) -> tuple[int, ...]:
        return tuple(i for i, c in enumerate(self.coefficients) if c.distribution is None)

    @property
    def random_index(self) -> tuple[int, ...]:
        return tuple(i for i, c in enumerate(self.coefficients) if c.distribution is not None)

    @property
    def fixed_names(self) -> tuple[str, ...]:
        return tuple(self.coefficients[i].name for i in self.fixed_index)

    @property
    def random_names(self) -> tuple[str, ...]:
        return tuple(self.coefficients[i].name for i in self.random_index)

    @property
    def random_coefficients(self) -> tuple[CoefficientSpec, ...]:
        return tuple(self.coefficients[i] for i in self.random_index)

    @property
    def z_random_names(self) -> tuple[str, ...]:
        """Random coefficients driven by a standard normal person draw (all but gamma)."""
        return tuple(c.name for c in self.random_coefficients if c.distribution in Z_DISTRIBUTIONS)

    @property
    def gamma_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.random_coefficients if c.distribution == "gamma")

    @property
    def has_random(self) -> bool:
        return bool(self.random_index)


@dataclass(frozen=True)
class BayesPriors:
    """Weakly informative default priors (all overridable).

    Defaults assume utilities of order one per unit change of a variable; rescale variables
    (or widen the priors) when coefficients of order 10 or more are expected.

    Attributes:
        fixed_scale: fixed coefficients and latent-class coefficients ``~ Normal(0, 10)``.
        mean_scale: population mean/centre of normal, uniform, triangular and truncated
            normal coefficients ``~ Normal(0, 10)``.
        sd_scale: their population SD/half-width ``~ HalfNormal(5)``.
        log_location_scale: lognormal ``mu`` (mean of log|beta|) and gamma log mean
            ``~ Normal(0, 3)``.
        log_sd_scale: lognormal ``sigma`` (SD of log|beta|) ``~ HalfNormal(1.5)``.
        gamma_log_shape_loc, gamma_log_shape_scale: gamma shape ``k``:
            ``log k ~ Normal(0.5, 1.5)``.
        lkj_concentration: LKJ prior on the correlation Cholesky factor (2: mild shrinkage
            towards independence).
        class_share_concentration: symmetric Dirichlet on latent-class shares.
        location: per-coefficient override of the prior *centre* of the fixed coefficient or
            population mean/log-location, e.g. ``{"price": -1.0}``.
        scale: per-coefficient override of the prior *scale* of that parameter.
    """

    fixed_scale: float = 10.0
    mean_scale: float = 10.0
    sd_scale: float = 5.0
    log_location_scale: float = 3.0
    log_sd_scale: float = 1.5
    gamma_log_shape_loc: float = 0.5
    gamma_log_shape_scale: float = 1.5
    lkj_concentration: float = 2.0
    class_share_concentration: float = 2.0
    location: Mapping[str, float] = field(default_factory=dict)
    scale: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in (
            "fixed_scale",
            "mean_scale",
            "sd_scale",
            "log_location_scale",
            "log_sd_scale",
            "gamma_log_shape_scale",
            "lkj_concentration",
            "class_share_concentration",
        ):
            value = getattr(self, key)
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"prior {key} must be a positive finite number, got {value!r}")

    def location_scale(self, spec: BayesSpec, which: str) -> tuple[np.ndarray, np.ndarray]:
        """Prior centres and scales of the fixed (``which="fixed"``) or population
        location (``which="random"``) parameters, in specification order."""
        if which == "fixed":
            coefs = [spec.coefficients[i] for i in spec.fixed_index]
        else:
            coefs = list(spec.random_coefficients)
        unknown = set(self.location) | set(self.scale)
        unknown -= set(spec.names)
        if unknown:
            raise ValueError(f"prior overrides for unknown coefficients: {sorted(unknown)}")
        locs, scales = [], []
        for c in coefs:
            if c.distribution is None:
                default = self.fixed_scale
            elif c.distribution in ("lognormal", "gamma"):
                default = self.log_location_scale
            else:
                default = self.mean_scale
            locs.append(float(self.location.get(c.name, 0.0)))
            scales.append(float(self.scale.get(c.name, default)))
        return np.asarray(locs, dtype=np.float64), np.asarray(scales, dtype=np.float64)


class PanelArrays(NamedTuple):
    """Choice situations grouped by decision-maker and padded.

    Attributes:
        X: ``(P, T, J, K)`` float64 variables (T = most situations of one person).
        chosen: ``(P, T)`` int32 chosen slot (0 in padding situations).
        available: ``(P, T, J)`` bool; padding situations have only slot 0 available, so their
            log-probability is exactly 0.
        weights: ``(P, T)`` float64 situation weights, 0 in padding situations.
        situation_index: ``(P, T)`` int64 row of ``ChoiceArrays`` (-1 in padding).
        num_situations: S, number of real situations.
    """

    X: np.ndarray
    chosen: np.ndarray
    available: np.ndarray
    weights: np.ndarray
    situation_index: np.ndarray
    num_situations: int

    @property
    def num_panels(self) -> int:
        return int(self.X.shape[0])

    def take(self, persons: np.ndarray) -> PanelArrays:
        """Sub-array of some decision-makers (host-side batching)."""
        return PanelArrays(
            self.X[persons],
            self.chosen[persons],
            self.available[persons],
            self.weights[persons],
            self.situation_index[persons],
            int((self.situation_index[persons] >= 0).sum()),
        )


def panel_arrays(arrays: ChoiceArrays) -> PanelArrays:
    """Group the situations of :class:`ChoiceArrays` by decision-maker (``arrays.panel``)."""
    X = np.asarray(arrays.X, dtype=np.float64)
    if X.ndim != 3:
        raise ValueError(f"ChoiceArrays.X must have shape (S, J, K), got {X.shape}")
    S, J, _K = X.shape
    chosen = np.asarray(arrays.chosen).astype(np.int64)
    available = np.asarray(arrays.available).astype(bool)
    panel = np.asarray(arrays.panel).astype(np.int64)
    weights = np.asarray(arrays.weights, dtype=np.float64)
    if chosen.shape != (S,) or available.shape != (S, J) or panel.shape != (S,):
        raise ValueError(
            f"inconsistent ChoiceArrays shapes: X {X.shape}, chosen {chosen.shape}, "
            f"available {available.shape}, panel {panel.shape}"
        )
    if weights.shape != (S,):
        raise ValueError(f"ChoiceArrays.weights must have shape ({S},), got {weights.shape}")
    if not np.all(np.isfinite(X)):
        s, j, k = np.argwhere(~np.isfinite(X))[0]
        raise ValueError(
            f"non-finite value in variable {arrays.variable_names[k]!r} (situation {s}, slot {j})"
        )
    bad = np.flatnonzero((chosen < 0) | (chosen >= J))
    if bad.size:
        raise ValueError(f"chosen slot out of range [0, {J}) in situation {bad[0]}")
    bad = np.flatnonzero(~available[np.arange(S), chosen])
    if bad.size:
        raise ValueError(f"chosen alternative unavailable in situation {bad[0]}")
    P = int(arrays.num_panels)
    if panel.min(initial=0) < 0 or panel.max(initial=0) >= P:
        raise ValueError(f"panel index outside [0, {P})")
    counts = np.bincount(panel, minlength=P)
    if np.any(counts == 0):
        raise ValueError(f"decision-maker {int(np.flatnonzero(counts == 0)[0])} has no situation")
    T = int(counts.max())
    order = np.argsort(panel, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slot_in_panel = np.arange(S) - starts[panel[order]]
    idx = np.full((P, T), -1, dtype=np.int64)
    idx[panel[order], slot_in_panel] = order
    real = idx >= 0
    safe = np.where(real, idx, 0)
    Xp = np.where(real[..., None, None], X[safe], 0.0)
    chosen_p = np.where(real, chosen[safe], 0).astype(np.int32)
    avail_p = np.where(real[..., None], available[safe], False)
    avail_p[~real, 0] = True
    weights_p = np.where(real, weights[safe], 0.0)
    return PanelArrays(Xp, chosen_p, avail_p, weights_p, idx, S)


def choice_arrays_from_data(data: Any, variables: Sequence[str]) -> ChoiceArrays:
    """``data`` as :class:`ChoiceArrays` (already arrays, or anything with ``to_arrays``)."""
    if isinstance(data, ChoiceArrays):
        missing = [v for v in variables if v not in data.variable_names]
        if missing:
            raise ValueError(
                f"variables {missing} are not columns of the ChoiceArrays "
                f"(columns: {list(data.variable_names)})"
            )
        cols = [list(data.variable_names).index(v) for v in variables]
        if cols != list(range(len(data.variable_names))):
            data = data._replace(X=np.asarray(data.X)[..., cols], variable_names=tuple(variables))
        return data
    if hasattr(data, "to_arrays"):
        return data.to_arrays(list(variables))
    raise TypeError(
        f"data must be a ChoiceData (with to_arrays) or ChoiceArrays, got {type(data).__name__}"
    )


def spec_from_model(model: Any) -> BayesSpec:
    """:class:`BayesSpec` of a ``BayesSpec`` or of a classical model specification.

    Reads ``model.variables``, ``model.coefficients`` (``None`` or an object with
    ``distribution`` and ``sign``) and ``model.correlated`` as documented in
    :mod:`mixlogit.arrays`.
    """
    if isinstance(model, BayesSpec):
        return model
    try:
        variables = tuple(model.variables)
    except AttributeError as err:
        raise TypeError(
            f"cannot read a model specification from {type(model).__name__}: it has no "
            "'variables' attribute (expected MixedLogit, MultinomialLogit or BayesSpec)"
        ) from err
    coefficients = tuple(getattr(model, "coefficients", (None,) * len(variables)))
    if len(coefficients) != len(variables):
        raise ValueError("model.coefficients is not aligned with model.variables")
    coefs = []
    for name, rc in zip(variables, coefficients, strict=True):
        if rc is None:
            coefs.append(CoefficientSpec(str(name)))
        else:
            coefs.append(CoefficientSpec(str(name), str(rc.distribution), int(rc.sign)))
    correlated = getattr(model, "correlated", ()) or ()
    if correlated is True:
        correlated = [c.name for c in coefs if c.distribution in ("normal", "lognormal")]
    return BayesSpec(tuple(coefs), tuple(str(c) for c in correlated))
