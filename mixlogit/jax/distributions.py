"""NumPyro distributions of a binary choice whose strength is integrated out exactly.

``numpyro.sample("y", GammaLogitBernoulli(d, shape, rate), obs=y)`` scores the exact
marginal ``E_beta[sigmoid(beta d)]`` (same names and semantics as the Pyro versions).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from numpyro.distributions import Distribution, constraints
from numpyro.distributions.util import promote_shapes, validate_sample

from mixlogit.jax.marginals import gamma_logit_marginal, lognormal_logit_marginal

__all__ = ["GammaLogitBernoulli", "LogNormalLogitBernoulli"]


class _MarginalLogitBernoulli(Distribution):
    support = constraints.boolean
    has_enumerate_support = True

    def _log_marginal(self, d):  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def probs(self):
        """``P(y = 1) = E[sigmoid(beta d)]``."""
        return jnp.exp(self._log_marginal(self.d))

    @property
    def mean(self):
        return self.probs

    @property
    def variance(self):
        p = self.probs
        return p * (1 - p)

    @validate_sample
    def log_prob(self, value):
        both = self._log_marginal(jnp.stack(jnp.broadcast_arrays(self.d, -self.d)))
        return jnp.where(value > 0.5, both[0], both[1])

    def sample(self, key, sample_shape=()):
        shape = tuple(sample_shape) + self.batch_shape
        return jax.random.bernoulli(key, self.probs, shape=shape)

    def enumerate_support(self, expand=True):
        values = jnp.arange(2).reshape((2,) + (1,) * len(self.batch_shape))
        if expand:
            values = jnp.broadcast_to(values, (2, *self.batch_shape))
        return values


class GammaLogitBernoulli(_MarginalLogitBernoulli):
    """Binary choice with ``P(y=1) = E[sigmoid(beta d)]``, ``beta ~ Gamma(shape, rate)`` (exact)."""

    arg_constraints = {
        "d": constraints.real,
        "concentration": constraints.positive,
        "rate": constraints.positive,
    }

    def __init__(self, d, shape, rate, *, validate_args=None):
        # `shape` is a method of Distribution, so the Gamma shape is stored as `concentration`.
        self.d, self.concentration, self.rate = promote_shapes(d, shape, rate)
        batch_shape = jax.lax.broadcast_shapes(jnp.shape(d), jnp.shape(shape), jnp.shape(rate))
        super().__init__(batch_shape=batch_shape, validate_args=validate_args)

    def _log_marginal(self, d):
        return gamma_logit_marginal(d, self.concentration, self.rate)


class LogNormalLogitBernoulli(_MarginalLogitBernoulli):
    """Binary choice with ``P(y=1) = E[sigmoid(beta d)]``, ``beta ~ LogNormal(loc, scale)``.

    Gauss-Hermite quadrature with ``num_points`` nodes (deterministic).
    """

    arg_constraints = {
        "d": constraints.real,
        "loc": constraints.real,
        "scale": constraints.positive,
    }
    pytree_aux_fields = ("num_points",)

    def __init__(self, d, loc, scale, num_points: int = 16, *, validate_args=None):
        self.d, self.loc, self.scale = promote_shapes(d, loc, scale)
        self.num_points = num_points
        batch_shape = jax.lax.broadcast_shapes(jnp.shape(d), jnp.shape(loc), jnp.shape(scale))
        super().__init__(batch_shape=batch_shape, validate_args=validate_args)

    def _log_marginal(self, d):
        return lognormal_logit_marginal(
            d, self.loc, self.scale, method="quadrature", num_points=self.num_points
        )
