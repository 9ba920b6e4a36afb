"""The Bayesian choice models of :mod:`mixlogit.bayes.model` bound to NumPyro (JAX).

:data:`BACKEND` extends :data:`mixlogit.jax._ppl.PPL` with what the choice models need
(:class:`~mixlogit.bayes._backend.ChoiceBackend`); the model functions below are those of
:mod:`mixlogit.bayes.model` with it bound, signature ``(batch, batch_idx=None, *, num_panels,
spec, priors, ...)``. Run them inside ``jax.enable_x64(True)`` for float64.
"""

from __future__ import annotations

from contextlib import contextmanager

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints, transforms

from mixlogit._choice_ops import choice_ops
from mixlogit._strength_models import bind
from mixlogit.bayes import model
from mixlogit.bayes._backend import ChoiceBackend
from mixlogit.jax._ppl import NumPyroPPL

__all__ = ["BACKEND", "StandardisedLogGamma", *model.MODEL_NAMES]

OPS = choice_ops("jax")


class StandardisedLogGamma(dist.Distribution):
    """Law of ``w = (log u - digamma(k)) / sqrt(trigamma(k))`` for ``u ~ Gamma(k, 1)``
    (density :func:`mixlogit.bayes.model.standardised_log_gamma_log_prob`)."""

    arg_constraints = {"concentration": constraints.positive}
    support = constraints.real

    def __init__(self, concentration, *, validate_args=None):
        self.concentration = jnp.asarray(concentration)
        super().__init__(batch_shape=jnp.shape(concentration), validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        shape = tuple(sample_shape) + self.batch_shape
        log_u = jax.random.loggamma(key, self.concentration, shape)
        mean, sd = model.log_gamma_moments(OPS, jnp.log(self.concentration))
        return (log_u - mean) / sd

    def log_prob(self, value):
        return model.standardised_log_gamma_log_prob(OPS, self.concentration, value)


class NumPyroChoiceBackend(NumPyroPPL, ChoiceBackend):
    ops = OPS

    def array(self, value):
        return jnp.asarray(value, dtype=jnp.float64)

    def batch(self, panel):
        return {
            "X": jnp.asarray(panel.X),
            "chosen": jnp.asarray(panel.chosen),
            "available": jnp.asarray(panel.available),
            "weights": jnp.asarray(panel.weights),
        }

    @contextmanager
    def person_plate(self, batch, batch_idx, num_panels):
        size = batch["X"].shape[0]
        with numpyro.plate("person", size), numpyro.handlers.scale(scale=num_panels / size):
            yield jnp.arange(size) if batch_idx is None else batch_idx

    def broadcast_to(self, x, shape):
        return jnp.broadcast_to(x, shape)

    def gamma_draws(self, concentration, num):
        return jax.random.gamma(numpyro.prng_key(), concentration, (num, *concentration.shape))

    def Dirichlet(self, concentration):
        return dist.Dirichlet(concentration)

    def LKJCholesky(self, dimension, concentration):
        return dist.LKJCholesky(dimension, concentration)

    def OrderedVector(self, size):
        return dist.ImproperUniform(constraints.ordered_vector, (), event_shape=(size,))

    def StandardisedLogGamma(self, concentration):
        return StandardisedLogGamma(concentration)

    def LogAffineGamma(self, concentration, rate, loc, scale):
        return dist.TransformedDistribution(
            dist.Gamma(concentration, rate),
            [transforms.ExpTransform().inv, transforms.AffineTransform(loc, scale)],
        )


#: The NumPyro :class:`~mixlogit.bayes._backend.ChoiceBackend`.
BACKEND = NumPyroChoiceBackend()

hierarchical_model = bind(BACKEND, model.hierarchical_model)
quadrature_model = bind(BACKEND, model.quadrature_model)
simulated_model = bind(BACKEND, model.simulated_model)
latent_class_model = bind(BACKEND, model.latent_class_model)
