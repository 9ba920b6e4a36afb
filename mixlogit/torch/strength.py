"""Preference-strength distributions as ``torch.nn.Module`` objects.

Each module holds unconstrained parameters (``raw_*``, mapped to positive values by softplus)
so it can be trained with any optimiser, saved in a ``state_dict`` and logged through
:meth:`Strength.constrained_parameters`. With ``learnable=False`` the values are buffers:
saved and moved with the module but never trained (MixDPO's fixed-distribution baseline).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from torch import nn

from mixlogit import _kernels
from mixlogit._series import default_num_terms
from mixlogit.torch._ops import OPS, as_tensors, float_bits
from mixlogit.torch.marginals import (
    gamma_logit_marginal,
    lognormal_logit_marginal,
    point_mass_logit_marginal,
)

__all__ = ["FixedStrength", "GammaStrength", "LogNormalStrength", "Strength", "inverse_softplus"]


def inverse_softplus(x: float) -> float:
    """``y`` with ``softplus(y) = x`` for ``x > 0``, stable for large and small ``x``."""
    if not x > 0 or not math.isfinite(x):
        raise ValueError(f"expected a positive finite value, got {x!r}")
    return x + math.log(-math.expm1(-x))


def _check_positive(name: str, value: float) -> float:
    value = float(value)
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return value


class Strength(nn.Module, ABC):
    """A distribution of the preference strength ``beta > 0`` with exact logit marginals."""

    family: str = ""

    def _register(self, name: str, value: float, learnable: bool) -> None:
        tensor = torch.tensor(value, dtype=torch.get_default_dtype())
        if learnable:
            self.register_parameter(name, nn.Parameter(tensor))
        else:
            self.register_buffer(name, tensor)

    @abstractmethod
    def log_marginal(
        self,
        d: torch.Tensor,
        *,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """``log E[sigmoid(beta d)]`` elementwise; same shape as ``d``."""

    def forward(self, d: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.log_marginal(d, **kwargs)

    @property
    @abstractmethod
    def mean(self) -> torch.Tensor:
        """``E[beta]`` (0-dim tensor, differentiable)."""

    @property
    @abstractmethod
    def variance(self) -> torch.Tensor:
        """``Var[beta]`` (0-dim tensor, differentiable)."""

    @property
    def coefficient_of_variation(self) -> torch.Tensor:
        """``sd / mean``: heterogeneity free of the reward scale."""
        return self.variance.sqrt() / self.mean

    @abstractmethod
    def constrained_parameters(self) -> dict[str, torch.Tensor]:
        """The distribution's natural (positive) parameters by name."""

    @abstractmethod
    def distribution(self) -> torch.distributions.Distribution:
        """The strength as a ``torch.distributions`` object (point mass: ``Delta``-like)."""

    def sample(
        self, sample_shape: tuple[int, ...] | torch.Size = (), generator=None
    ) -> torch.Tensor:
        """Reparameterised draws of ``beta`` with shape ``sample_shape``."""
        if generator is not None:
            raise NotImplementedError(
                f"{type(self).__name__}.sample draws from the global torch RNG; "
                "seed it with torch.manual_seed instead of passing a generator"
            )
        return self.distribution().rsample(torch.Size(sample_shape))

    @abstractmethod
    def conditional_moments(
        self, d: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and variance of ``beta`` given choice ``y`` (1 or 0) at margin ``d``."""

    def extra_repr(self) -> str:
        params = ", ".join(f"{k}={v.item():.6g}" for k, v in self.constrained_parameters().items())
        return f"{params}, mean={self.mean.item():.6g}, variance={self.variance.item():.6g}"


def _signed(d: torch.Tensor, y) -> torch.Tensor:
    y = torch.as_tensor(y, device=d.device)
    return torch.where(y.bool() if y.dtype == torch.bool else y > 0.5, d, -d)


class GammaStrength(Strength):
    """``beta ~ Gamma(shape, rate)``; the logit marginal is exact (alternating-series form).

    MixDPO's initialisation is ``shape=2.0, rate=16.7`` (mean 0.12, DPO's beta scale).
    """

    family = "gamma"

    def __init__(
        self,
        shape: float = 2.0,
        rate: float = 16.7,
        *,
        learnable: bool = True,
        num_terms: int | None = None,
    ) -> None:
        super().__init__()
        self._register("raw_shape", inverse_softplus(_check_positive("shape", shape)), learnable)
        self._register("raw_rate", inverse_softplus(_check_positive("rate", rate)), learnable)
        self.num_terms = num_terms

    @property
    def shape(self) -> torch.Tensor:
        return nn.functional.softplus(self.raw_shape)

    @property
    def rate(self) -> torch.Tensor:
        return nn.functional.softplus(self.raw_rate)

    def log_marginal(self, d, *, noise=None, generator=None):
        return gamma_logit_marginal(d, self.shape, self.rate, num_terms=self.num_terms)

    @property
    def mean(self):
        return self.shape / self.rate

    @property
    def variance(self):
        return self.shape / self.rate**2

    @property
    def coefficient_of_variation(self):
        return self.shape.rsqrt()

    def constrained_parameters(self):
        return {"shape": self.shape, "rate": self.rate}

    def distribution(self):
        return torch.distributions.Gamma(self.shape, self.rate)

    def conditional_moments(self, d, y):
        (signed, shape, rate), dtype = as_tensors(
            _signed(torch.as_tensor(d), y), self.shape, self.rate
        )
        n = self.num_terms or default_num_terms(float_bits(signed.dtype))
        mean, var = _kernels.gamma_conditional_moments(OPS, signed, shape, rate, n)
        return mean.to(dtype), var.to(dtype)


class LogNormalStrength(Strength):
    """``beta = exp(loc + scale * eps)``, ``eps ~ N(0, 1)``.

    ``method="mc"`` is MixDPO's reparameterised estimator with ``num_samples`` draws per
    element; ``method="quadrature"`` is deterministic Gauss-Hermite with ``num_points`` nodes.
    MixDPO's initialisation is ``loc=-2.3, scale=0.6`` (mean 0.12).
    """

    family = "lognormal"

    def __init__(
        self,
        loc: float = -2.3,
        scale: float = 0.6,
        *,
        learnable: bool = True,
        method: str = "mc",
        num_samples: int = 16,
        num_points: int = 16,
    ) -> None:
        super().__init__()
        if method not in ("mc", "quadrature"):
            raise ValueError(f"method must be 'mc' or 'quadrature', got {method!r}")
        if not math.isfinite(float(loc)):
            raise ValueError(f"loc must be finite, got {loc!r}")
        self._register("loc", float(loc), learnable)
        self._register("raw_scale", inverse_softplus(_check_positive("scale", scale)), learnable)
        self.method = method
        self.num_samples = num_samples
        self.num_points = num_points

    @property
    def scale(self) -> torch.Tensor:
        return nn.functional.softplus(self.raw_scale)

    def log_marginal(self, d, *, noise=None, generator=None):
        return lognormal_logit_marginal(
            d,
            self.loc,
            self.scale,
            method=self.method if noise is None else "mc",
            num_points=self.num_points,
            num_samples=self.num_samples,
            noise=noise,
            generator=generator,
        )

    @property
    def mean(self):
        return torch.exp(self.loc + 0.5 * self.scale**2)

    @property
    def variance(self):
        s2 = self.scale**2
        return torch.expm1(s2) * torch.exp(2.0 * self.loc + s2)

    @property
    def coefficient_of_variation(self):
        return torch.expm1(self.scale**2).sqrt()

    def constrained_parameters(self):
        return {"loc": self.loc, "scale": self.scale}

    def distribution(self):
        return torch.distributions.LogNormal(self.loc, self.scale)

    def conditional_moments(self, d, y):
        (signed, loc, scale), dtype = as_tensors(
            _signed(torch.as_tensor(d), y), self.loc, self.scale
        )
        mean, var = _kernels.lognormal_conditional_moments(OPS, signed, loc, scale, self.num_points)
        return mean.to(dtype), var.to(dtype)


class FixedStrength(Strength):
    """A point mass at ``beta``: plain DPO (``beta = 0.1``) or a plain logit (``beta = 1``)."""

    family = "fixed"

    def __init__(self, beta: float = 0.1) -> None:
        super().__init__()
        self.register_buffer(
            "beta", torch.tensor(_check_positive("beta", beta), dtype=torch.get_default_dtype())
        )

    def log_marginal(self, d, *, noise=None, generator=None):
        return point_mass_logit_marginal(d, self.beta)

    @property
    def mean(self):
        return self.beta

    @property
    def variance(self):
        return torch.zeros_like(self.beta)

    def constrained_parameters(self):
        return {"beta": self.beta}

    def distribution(self):
        import pyro.distributions as pdist  # the point mass lives in Pyro, not torch

        return pdist.Delta(self.beta)

    def sample(self, sample_shape=(), generator=None):
        return self.beta.expand(torch.Size(sample_shape)).clone()

    def conditional_moments(self, d, y):
        d = torch.as_tensor(d)
        return self.beta.expand(d.shape).to(d.dtype), torch.zeros_like(d)
