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

import contextlib
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from mixlogit import conditional as _cond
from mixlogit._conditional_classes import ConditionalStrengthMixin
from mixlogit.conditional import EncodedCovariates, StrengthDesign
from mixlogit.torch._ops import OPS
from mixlogit.torch.marginals import logit_marginal

__all__ = ["ConditionalStrength"]


class ConditionalStrength(ConditionalStrengthMixin, nn.Module):
    """A strength whose distribution depends on rater covariates (or on nothing), as an
    ``nn.Module``.

    Arguments, shapes and the shared methods (moments, prior, log values) are those of
    :class:`mixlogit._conditional_classes.ConditionalStrengthMixin`; ``learnable=False``
    stores the values as buffers (saved, never trained). Values are tensors of the default
    dtype on the module's device.
    """

    ops = OPS

    def _store(self, name: str, value: np.ndarray) -> None:
        tensor = torch.as_tensor(value, dtype=torch.get_default_dtype())
        if self.learnable:
            self.register_parameter(name, nn.Parameter(tensor))
        else:
            self.register_buffer(name, tensor)

    def _record_arguments(self, hierarchy: dict[str, Any], options: dict[str, Any]) -> None:
        self._arguments = {
            "family": self.spec.family.name,
            "design": self.spec.design.to_dict(),
            "init": None,
            "mean": float(np.exp(self.spec.init_log_mean)),
            "cv": float(np.exp(self.spec.init_log_cv)) if self.spec.has_cv else None,
            "learnable": self.learnable,
            **hierarchy,
            "options": options,
        }

    def _no_grad(self) -> contextlib.AbstractContextManager:
        return torch.no_grad()

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
        levels = f", levels={list(self.design.level_keys)}" if self.design.levels else ""
        features = (
            f", features={list(self.design.feature_names)}" if self.design.num_features else ""
        )
        return f"family={self.family!r}, {self._moment_text()}{levels}{features}"
