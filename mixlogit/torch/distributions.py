"""Pyro distributions of a binary choice whose strength is integrated out exactly.

``pyro.sample("y", GammaLogitBernoulli(d, shape, rate), obs=y)`` scores
``P(y | d) = E_beta[sigmoid(beta d)]^y (1 - E_beta[sigmoid(beta d)])^(1-y)`` with the exact
marginal, so no latent ``beta`` per observation needs sampling. :func:`MarginalLogitBernoulli`
builds the same for any family; the shared logic is
:class:`mixlogit._strength_models.MarginalLogitBernoulliMixin`.
"""

from __future__ import annotations

import torch
from pyro.distributions import Bernoulli, TorchDistribution, constraints
from torch.distributions.utils import broadcast_all

from mixlogit._strength_models import MarginalLogitBernoulliMixin
from mixlogit.families import GAMMA, LOGNORMAL, StrengthFamily
from mixlogit.torch._ops import OPS
from mixlogit.torch._ppl import PPL
from mixlogit.torch.marginals import logit_marginal

__all__ = ["GammaLogitBernoulli", "LogNormalLogitBernoulli", "MarginalLogitBernoulli"]


class _MarginalLogitBernoulli(MarginalLogitBernoulliMixin, TorchDistribution):
    """Pyro plumbing; a subclass per family sets ``strength_family`` (``arg_constraints`` follow)."""

    support = constraints.boolean
    has_rsample = False
    ops = OPS
    strength_family: StrengthFamily

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.arg_constraints = cls.family_arg_constraints(PPL)

    def _setup(self, d, params, options, validate_args):
        family = self.strength_family
        values = broadcast_all(d, *(params[p] for p in family.parameters))
        self.d = values[0]
        for name, value in zip(family.parameters, values[1:], strict=True):
            setattr(self, self.attribute(name), value)
        for key, value in self.check_options(family, options).items():
            setattr(self, key, value)
        TorchDistribution.__init__(self, self.d.shape, validate_args=validate_args)

    def _log_marginal_of(self, d, params, options):
        return logit_marginal(self.strength_family, d, params, **options)

    @staticmethod
    def _both_signs(d):
        return torch.stack([d, -d])

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(type(self), _instance)
        batch_shape = torch.Size(batch_shape)
        for name in self.arg_constraints:
            setattr(new, name, getattr(self, name).expand(batch_shape))
        for key, value in self.options.items():
            setattr(new, key, value)
        TorchDistribution.__init__(new, batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return self._log_prob(torch.as_tensor(value, dtype=self.d.dtype, device=self.d.device))

    def sample(self, sample_shape=()) -> torch.Tensor:
        with torch.no_grad():
            return Bernoulli(probs=self.probs).sample(sample_shape)


class GammaLogitBernoulli(_MarginalLogitBernoulli):
    """Binary choice with ``P(y=1) = E[sigmoid(beta d)]``, ``beta ~ Gamma(shape, rate)`` (exact).

    Args:
        d: utility difference of the option coded ``y = 1``; batch shape is the broadcast of
            ``d``, ``shape`` and ``rate``.
        shape, rate: Gamma parameters (positive); the shape is stored as ``concentration``.
        num_terms: series length (default: full precision of the dtype).
    """

    strength_family = GAMMA

    def __init__(self, d, shape, rate, validate_args=None, *, num_terms=None):
        self._setup(d, {"shape": shape, "rate": rate}, {"num_terms": num_terms}, validate_args)


class LogNormalLogitBernoulli(_MarginalLogitBernoulli):
    """Binary choice with ``P(y=1) = E[sigmoid(beta d)]``, ``beta ~ LogNormal(loc, scale)``.

    The expectation is Gauss-Hermite quadrature with ``num_points`` nodes (deterministic, so
    ``log_prob`` is a smooth objective for NUTS and SVI).
    """

    strength_family = LOGNORMAL

    def __init__(self, d, loc, scale, num_points: int = 16, validate_args=None):
        self._setup(d, {"loc": loc, "scale": scale}, {"num_points": num_points}, validate_args)


#: ``MarginalLogitBernoulli(family, d, params, *, validate_args=None, **options)``: the
#: distribution for any family (its named class when it has one).
MarginalLogitBernoulli = _MarginalLogitBernoulli.of_family
