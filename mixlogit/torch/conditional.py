"""Covariate-conditioned (and mean/CV-parameterised) preference strength as an ``nn.Module``.

The maths lives in :mod:`mixlogit.conditional`; this module registers its parameters
(``log_mean``, ``log_cv``, level offsets, pooling scales, coefficients: see
:func:`mixlogit.conditional.parameter_shapes`) and converts covariates to tensors.

With no design, ``ConditionalStrength(family)`` is the single-family strength parameterised by
``log_mean`` and ``log_cv`` (``parameterisation="mean_cv"``): an optimiser step changes the mean
and the CV by a relative amount, whatever the strength's unit, where the natural
parameterisation's steps (``raw_shape``, ``raw_rate``) do not.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from mixlogit import conditional as _cond
from mixlogit.conditional import EncodedCovariates, StrengthDesign
from mixlogit.families import LOG_PREFIX, StrengthFamily
from mixlogit.torch._ops import OPS
from mixlogit.torch.marginals import logit_marginal

__all__ = ["ConditionalStrength"]


class ConditionalStrength(nn.Module):
    """A strength whose distribution depends on rater covariates (or on nothing).

    Args:
        family: strength family name or object (``"gamma"``, ``"lognormal"``, ``"point_mass"``).
        design: a :class:`mixlogit.conditional.StrengthDesign` fitted on the training raters;
            ``None``: one distribution for all raters.
        init, mean, cv: start values, natural parameters or mean and CV (default: the family's
            MixDPO defaults; gamma mean 0.12, CV 0.71).
        learnable: ``False`` stores the values as buffers (saved, never trained).
        pool_cv, regress_cv, tau_mean, tau_cv, tau_prior_scale, coef_prior_scale,
        population_prior_scale, init_tau: the hierarchy, see
            :func:`mixlogit.conditional.make_spec`.
        options: the family's marginal options (``num_terms``; ``method``, ``num_points``,
            ``num_samples``).

    Shapes: ``natural_params(covariates)`` and ``group_params(covariates)`` return
    ``{parameter: (n,)}`` for ``n`` covariate rows (one per annotator for the panel marginal);
    without covariates, 0-dim tensors of the population centre.
    """

    def __init__(
        self,
        family: str | StrengthFamily = "gamma",
        design: StrengthDesign | None = None,
        *,
        init: Mapping[str, float] | None = None,
        mean: float | None = None,
        cv: float | None = None,
        learnable: bool = True,
        pool_cv: bool = True,
        regress_cv: bool = False,
        tau_mean: float | None = None,
        tau_cv: float | None = None,
        tau_prior_scale: float = 1.0,
        coef_prior_scale: float | None = None,
        population_prior_scale: float | None = None,
        init_tau: float = 0.5,
        **options: Any,
    ) -> None:
        super().__init__()
        self.spec = _cond.make_spec(
            family,
            design,
            init=init,
            mean=mean,
            cv=cv,
            pool_cv=pool_cv,
            regress_cv=regress_cv,
            tau_mean=tau_mean,
            tau_cv=tau_cv,
            tau_prior_scale=tau_prior_scale,
            coef_prior_scale=coef_prior_scale,
            population_prior_scale=population_prior_scale,
            init_tau=init_tau,
        )
        self.options = self.spec.family.check_options(options)
        self.learnable = bool(learnable)
        self._arguments = {
            "family": self.spec.family.name,
            "design": self.spec.design.to_dict(),
            "init": None,
            "mean": float(np.exp(self.spec.init_log_mean)),
            "cv": float(np.exp(self.spec.init_log_cv)) if self.spec.has_cv else None,
            "learnable": self.learnable,
            "pool_cv": pool_cv,
            "regress_cv": regress_cv,
            "tau_mean": tau_mean,
            "tau_cv": tau_cv,
            "tau_prior_scale": tau_prior_scale,
            "coef_prior_scale": coef_prior_scale,
            "population_prior_scale": population_prior_scale,
            "init_tau": init_tau,
            "options": dict(options),
        }
        dtype = torch.get_default_dtype()
        for name, value in _cond.initial_values(self.spec).items():
            tensor = torch.as_tensor(value, dtype=dtype)
            if self.learnable:
                self.register_parameter(name, nn.Parameter(tensor))
            else:
                self.register_buffer(name, tensor)

    # ------------------------------------------------------------------------- construction
    def config(self) -> dict[str, Any]:
        """The constructor arguments as a JSON-ready record (design included), so that
        :meth:`from_config` rebuilds the module into which a saved ``state_dict`` loads."""
        return json.loads(json.dumps(self._arguments))

    @classmethod
    def from_config(cls, record: Mapping[str, Any]) -> ConditionalStrength:
        """Inverse of :meth:`config`."""
        record = dict(record)
        design = StrengthDesign.from_dict(record.pop("design", {}))
        options = record.pop("options", {}) or {}
        return cls(record.pop("family"), design, **record, **options)

    @property
    def family(self) -> str:
        """The canonical family name."""
        return self.spec.family.name

    @property
    def design(self) -> StrengthDesign:
        return self.spec.design

    def params(self) -> dict[str, torch.Tensor]:
        """``{name: tensor}`` of the parameters (or buffers when not learnable)."""
        return {name: getattr(self, name) for name in _cond.parameter_shapes(self.spec)}

    # ------------------------------------------------------------------------- covariates
    def encode(self, covariates: Any) -> EncodedCovariates:
        """Covariate rows as tensors on this module's device: raw rows (DataFrame, dataset,
        ``{column: values}``) are encoded with the design; an :class:`EncodedCovariates` of
        NumPy arrays or tensors is converted."""
        if not isinstance(covariates, EncodedCovariates):
            covariates = self.design.encode(covariates)
        like = self.log_mean
        level_index = torch.as_tensor(covariates.level_index, device=like.device).long()
        features = torch.as_tensor(covariates.features, device=like.device, dtype=like.dtype)
        return EncodedCovariates(level_index, features)

    def natural_params(self, covariates: Any = None) -> dict[str, torch.Tensor]:
        """The family's parameters per covariate row ``(n,)``; the population centre (0-dim)
        when ``covariates`` is ``None``."""
        encoded = None if covariates is None else self.encode(covariates)
        return _cond.natural_params(OPS, self.spec, self.params(), encoded)

    def group_params(self, covariates: Any) -> dict[str, torch.Tensor]:
        """Per-group parameters ``{name: (G,)}`` from one covariate row per group (annotator),
        ready for the panel marginal (``mixlogit.torch.panel``)."""
        if covariates is None:
            raise ValueError("group_params needs one covariate row per group")
        return self.natural_params(covariates)

    # ------------------------------------------------------------------------- priors
    def log_prior(self) -> torch.Tensor:
        """Log prior density (0-dim) of the hierarchy; add ``-log_prior()`` (scaled like the
        loss) to the negative log-likelihood for the partially pooled MAP."""
        return _cond.log_prior(OPS, self.spec, self.params())

    # ------------------------------------------------------------------------- moments
    def level_moments(self) -> dict[str, dict[str, torch.Tensor]]:
        """``{level key: {"mean", "variance", "cv"}}`` (0-dim tensors) of each pooled level at
        the population values of the other covariates; empty without pooled levels."""
        if not self.design.levels:
            return {}
        moments = _cond.moments_at(
            OPS, self.spec, *_cond.level_predictors(OPS, self.spec, self.params())
        )
        return {
            key: {name: value[k] for name, value in moments.items()}
            for k, key in enumerate(self.design.level_keys)
        }

    def population_moments(self, covariates: Any = None) -> dict[str, torch.Tensor]:
        """``{"mean", "variance", "cv"}``: of the mixture over the given raters' distributions
        (one row per rater), or of the population centre when ``covariates`` is ``None``."""
        if covariates is None:
            return _cond.moments_at(
                OPS, self.spec, *_cond.predictors(OPS, self.spec, self.params())
            )
        return _cond.mixture_moments(OPS, self.spec, self.natural_params(covariates))

    @property
    def mean(self) -> torch.Tensor:
        """``E[beta]`` of the population centre (0-dim)."""
        return self.population_moments()["mean"]

    @property
    def variance(self) -> torch.Tensor:
        return self.population_moments()["variance"]

    @property
    def coefficient_of_variation(self) -> torch.Tensor:
        return self.population_moments()["cv"]

    def constrained_parameters(self) -> dict[str, torch.Tensor]:
        """The family's natural parameters at the population centre."""
        return self.natural_params()

    def log_values(self, covariates: Any = None) -> dict[str, float]:
        """Training-log values: ``strength/mean``, ``/variance``, ``/cv`` of the population
        (mixture over ``covariates`` rows when given), ``strength/<param>`` of the centre, and
        ``strength/<level>/mean``, ``strength/<level>/cv`` per pooled level."""
        with torch.no_grad():
            values = {
                LOG_PREFIX + k: float(v) for k, v in self.population_moments(covariates).items()
            }
            values.update(
                {LOG_PREFIX + k: float(v) for k, v in self.constrained_parameters().items()}
            )
            for key, moments in self.level_moments().items():
                values[f"{LOG_PREFIX}{key}/mean"] = float(moments["mean"])
                values[f"{LOG_PREFIX}{key}/cv"] = float(moments["cv"])
        return values

    # ------------------------------------------------------------------------- marginals
    def log_marginal(
        self,
        d: torch.Tensor,
        *,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        covariates: Any = None,
    ) -> torch.Tensor:
        """``log E[sigmoid(beta_i d_i)]`` elementwise, one draw of ``beta`` per element, from
        the population centre or from the rows' own distributions (``covariates`` with one
        row per element of ``d``)."""
        params = self.natural_params(covariates)
        return logit_marginal(
            self.spec.family, d, params, noise=noise, generator=generator, **self.options
        )

    def forward(self, d: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return self.log_marginal(d, **kwargs)

    def extra_repr(self) -> str:
        with torch.no_grad():
            moments = {k: float(v) for k, v in self.population_moments().items()}
        levels = f", levels={list(self.design.level_keys)}" if self.design.levels else ""
        features = (
            f", features={list(self.design.feature_names)}" if self.design.num_features else ""
        )
        return (
            f"family={self.family!r}, mean={moments['mean']:.6g}, cv={moments['cv']:.6g}"
            f"{levels}{features}"
        )
