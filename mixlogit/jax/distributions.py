"""NumPyro distributions of a binary choice whose strength is integrated out exactly.

``numpyro.sample("y", GammaLogitBernoulli(d, shape, rate), obs=y)`` scores the exact
marginal ``E_beta[sigmoid(beta d)]`` (same names and semantics as the Pyro versions;
:func:`MarginalLogitBernoulli` for any family; shared logic in
:class:`mixlogit._strength_models.MarginalLogitBernoulliMixin`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from numpyro.distributions import Distribution, constraints
from numpyro.distributions.util import promote_shapes, validate_sample

from mixlogit._strength_models import MarginalLogitBernoulliMixin
from mixlogit.families import GAMMA, LOGNORMAL, StrengthFamily
from mixlogit.jax._ops import OPS
from mixlogit.jax._ppl import PPL
from mixlogit.jax.marginals import logit_marginal

__all__ = ["GammaLogitBernoulli", "LogNormalLogitBernoulli", "MarginalLogitBernoulli"]


class _MarginalLogitBernoulli(MarginalLogitBernoulliMixin, Distribution):
    """NumPyro plumbing; a subclass per family sets ``strength_family`` (``arg_constraints``
    and the pytree's static fields, the family's options, follow)."""

    support = constraints.boolean
    has_enumerate_support = True
    ops = OPS
    strength_family: StrengthFamily

    def __init_subclass__(cls, **kwargs):
        # Set before NumPyro's own hook registers the class as a pytree from these fields.
        cls.arg_constraints = cls.family_arg_constraints(PPL)
        cls.pytree_aux_fields = tuple(cls.strength_family.options)
        super().__init_subclass__(**kwargs)

    def _setup(self, d, params, options, validate_args):
        family = self.strength_family
        values = [params[p] for p in family.parameters]
        self.d, *promoted = promote_shapes(d, *values)
        for name, value in zip(family.parameters, promoted, strict=True):
            setattr(self, self.attribute(name), value)
        for key, value in self.check_options(family, options).items():
            setattr(self, key, value)
        batch_shape = jax.lax.broadcast_shapes(jnp.shape(d), *(jnp.shape(v) for v in values))
        Distribution.__init__(self, batch_shape=batch_shape, validate_args=validate_args)

    def _log_marginal_of(self, d, params, options):
        return logit_marginal(self.strength_family, d, params, **options)

    @staticmethod
    def _both_signs(d):
        return jnp.stack([d, -d])

    @validate_sample
    def log_prob(self, value):
        return self._log_prob(value)

    def sample(self, key, sample_shape=()):
        shape = tuple(sample_shape) + self.batch_shape
        return jax.random.bernoulli(key, self.probs, shape=shape)

    def enumerate_support(self, expand=True):
        values = jnp.arange(2).reshape((2,) + (1,) * len(self.batch_shape))
        if expand:
            values = jnp.broadcast_to(values, (2, *self.batch_shape))
        return values


class GammaLogitBernoulli(_MarginalLogitBernoulli):
    """Binary choice with ``P(y=1) = E[sigmoid(beta d)]``, ``beta ~ Gamma(shape, rate)`` (exact).

    The shape is stored as ``concentration``; ``num_terms`` is the series length.
    """

    strength_family = GAMMA

    def __init__(self, d, shape, rate, *, num_terms=None, validate_args=None):
        self._setup(d, {"shape": shape, "rate": rate}, {"num_terms": num_terms}, validate_args)


class LogNormalLogitBernoulli(_MarginalLogitBernoulli):
    """Binary choice with ``P(y=1) = E[sigmoid(beta d)]``, ``beta ~ LogNormal(loc, scale)``.

    Gauss-Hermite quadrature with ``num_points`` nodes (deterministic).
    """

    strength_family = LOGNORMAL

    def __init__(self, d, loc, scale, num_points: int = 16, *, validate_args=None):
        self._setup(d, {"loc": loc, "scale": scale}, {"num_points": num_points}, validate_args)


#: ``MarginalLogitBernoulli(family, d, params, *, validate_args=None, **options)``: the
#: distribution for any family (its named class when it has one).
MarginalLogitBernoulli = _MarginalLogitBernoulli.of_family
