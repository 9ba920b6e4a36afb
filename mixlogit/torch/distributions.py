"""Pyro distributions of a binary choice whose strength is integrated out exactly.

``pyro.sample("y", GammaLogitBernoulli(d, shape, rate), obs=y)`` scores
``P(y | d) = E_beta[sigmoid(beta d)]^y (1 - E_beta[sigmoid(beta d)])^(1-y)`` with the exact
marginal, so no latent ``beta`` per observation needs sampling.
"""

from __future__ import annotations

import torch
from pyro.distributions import Bernoulli, TorchDistribution, constraints
from torch.distributions.utils import broadcast_all

from mixlogit.torch.marginals import gamma_logit_marginal, lognormal_logit_marginal

__all__ = ["GammaLogitBernoulli", "LogNormalLogitBernoulli"]


class _MarginalLogitBernoulli(TorchDistribution):
    support = constraints.boolean
    has_rsample = False

    def _log_marginal(self, d: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def probs(self) -> torch.Tensor:
        """``P(y = 1) = E[sigmoid(beta d)]``."""
        return self._log_marginal(self.d).exp()

    @property
    def mean(self) -> torch.Tensor:
        return self.probs

    @property
    def variance(self) -> torch.Tensor:
        p = self.probs
        return p * (1 - p)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        value = torch.as_tensor(value, dtype=self.d.dtype, device=self.d.device)
        # y = 0 is the choice with margin -d: one kernel call on both signs.
        both = self._log_marginal(torch.stack(torch.broadcast_tensors(self.d, -self.d)))
        return torch.where(value > 0.5, both[0], both[1])

    def sample(self, sample_shape=()) -> torch.Tensor:
        with torch.no_grad():
            return Bernoulli(probs=self.probs).sample(sample_shape)


class GammaLogitBernoulli(_MarginalLogitBernoulli):
    """Binary choice with ``P(y=1) = E[sigmoid(beta d)]``, ``beta ~ Gamma(shape, rate)`` (exact).

    Args:
        d: utility difference of the option coded ``y = 1``; batch shape is the broadcast of
            ``d``, ``shape`` and ``rate``.
        shape, rate: Gamma parameters (positive).
    """

    arg_constraints = {
        "d": constraints.real,
        "concentration": constraints.positive,
        "rate": constraints.positive,
    }

    def __init__(self, d, shape, rate, validate_args=None):
        # `shape` is a method of Distribution, so the Gamma shape is stored as `concentration`.
        self.d, self.concentration, self.rate = broadcast_all(d, shape, rate)
        super().__init__(self.d.shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(GammaLogitBernoulli, _instance)
        batch_shape = torch.Size(batch_shape)
        new.d = self.d.expand(batch_shape)
        new.concentration = self.concentration.expand(batch_shape)
        new.rate = self.rate.expand(batch_shape)
        super(GammaLogitBernoulli, new).__init__(batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def _log_marginal(self, d):
        return gamma_logit_marginal(d, self.concentration, self.rate)


class LogNormalLogitBernoulli(_MarginalLogitBernoulli):
    """Binary choice with ``P(y=1) = E[sigmoid(beta d)]``, ``beta ~ LogNormal(loc, scale)``.

    The expectation is Gauss-Hermite quadrature with ``num_points`` nodes (deterministic, so
    ``log_prob`` is a smooth objective for NUTS and SVI).
    """

    arg_constraints = {
        "d": constraints.real,
        "loc": constraints.real,
        "scale": constraints.positive,
    }

    def __init__(self, d, loc, scale, num_points: int = 16, validate_args=None):
        self.d, self.loc, self.scale = broadcast_all(d, loc, scale)
        self.num_points = num_points
        super().__init__(self.d.shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(LogNormalLogitBernoulli, _instance)
        batch_shape = torch.Size(batch_shape)
        new.d = self.d.expand(batch_shape)
        new.loc = self.loc.expand(batch_shape)
        new.scale = self.scale.expand(batch_shape)
        new.num_points = self.num_points
        super(LogNormalLogitBernoulli, new).__init__(batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def _log_marginal(self, d):
        return lognormal_logit_marginal(
            d, self.loc, self.scale, method="quadrature", num_points=self.num_points
        )
