"""Priors of the Bayesian choice models (weakly informative defaults, all overridable)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from mixlogit.spec import ModelSpec

__all__ = ["BayesPriors"]


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

    def location_scale(self, spec: ModelSpec, which: str) -> tuple[np.ndarray, np.ndarray]:
        """Prior centres and scales of the fixed (``which="fixed"``) or population
        location (``which="random"``) parameters, in specification order."""
        if which == "fixed":
            coefs = [spec.coefficients[i] for i in spec.fixed_index]
        else:
            coefs = list(spec.random_coefficients)
        unknown = set(self.location) | set(self.scale)
        unknown -= set(spec.variables)
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
