"""The Bayesian choice models of :mod:`mixlogit.bayes.model` bound to Pyro (PyTorch, float64).

Same sites, priors and parameterisation as the NumPyro shell
(:mod:`mixlogit.bayes.numpyro_model`), so posteriors from the two backends are directly
comparable. :data:`BACKEND` extends :data:`mixlogit.torch._ppl.PPL`.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import constraints

from mixlogit._choice_ops import choice_ops
from mixlogit._strength_models import bind
from mixlogit.bayes import model
from mixlogit.bayes._backend import ChoiceBackend
from mixlogit.torch._ppl import PyroPPL

__all__ = ["BACKEND", "StandardisedLogGamma", *model.MODEL_NAMES]

DTYPE = torch.float64
OPS = choice_ops("torch")


class StandardisedLogGamma(dist.TorchDistribution):
    """Law of ``w = (log u - digamma(k)) / sqrt(trigamma(k))`` for ``u ~ Gamma(k, 1)``
    (density :func:`mixlogit.bayes.model.standardised_log_gamma_log_prob`)."""

    arg_constraints = {"concentration": constraints.positive}
    support = constraints.real
    has_rsample = False

    def __init__(self, concentration: torch.Tensor, validate_args=None):
        self.concentration = torch.as_tensor(concentration, dtype=DTYPE)
        super().__init__(self.concentration.shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        return StandardisedLogGamma(self.concentration.expand(batch_shape))

    def sample(self, sample_shape=()):
        shape = self._extended_shape(torch.Size(sample_shape))
        with torch.no_grad():
            u = torch.distributions.Gamma(self.concentration.expand(shape), 1.0).sample()
            mean, sd = model.log_gamma_moments(OPS, torch.log(self.concentration))
            # Gamma draws of tiny shapes underflow to 0: keep the log finite
            return (torch.log(u.clamp_min(torch.finfo(DTYPE).tiny)) - mean) / sd

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return model.standardised_log_gamma_log_prob(OPS, self.concentration, value)


class _OrderedVector(dist.ImproperUniform):
    """Pyro's improper flat law on increasing vectors, with a ``sample`` for the initialisation
    strategies (which only need a point of the support: NumPyro's find one themselves)."""

    def __init__(self, size: int):
        super().__init__(constraints.ordered_vector, (), event_shape=(size,))

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(_OrderedVector, _instance)
        return super().expand(batch_shape, _instance=new)

    def sample(self, sample_shape=()):
        size = self.event_shape[0]
        point = torch.linspace(-1.0, 1.0, size, dtype=DTYPE) if size > 1 else torch.zeros(1)
        return point.to(DTYPE).expand(self._extended_shape(torch.Size(sample_shape)))


class PyroChoiceBackend(PyroPPL, ChoiceBackend):
    ops = OPS

    def array(self, value):
        return torch.as_tensor(np.asarray(value), dtype=DTYPE)

    def batch(self, panel):
        return {
            "X": self.array(panel.X),
            "chosen": torch.as_tensor(panel.chosen, dtype=torch.long),
            "available": torch.as_tensor(panel.available),
            "weights": self.array(panel.weights),
        }

    @contextmanager
    def person_plate(self, batch, batch_idx, num_panels):
        size = batch["X"].shape[0]
        idx = torch.arange(size) if batch_idx is None else torch.as_tensor(batch_idx)
        # Pyro scales the person-level terms by num_panels / B when B < num_panels.
        with pyro.plate("person", num_panels, subsample=idx) as index:
            yield index

    def broadcast_to(self, x, shape):
        return x.expand(shape)

    def gamma_draws(self, concentration, num):
        return torch.distributions.Gamma(concentration, torch.ones_like(concentration)).rsample(
            (num,)
        )

    def Dirichlet(self, concentration):
        return dist.Dirichlet(concentration)

    def LKJCholesky(self, dimension, concentration):
        return dist.LKJCholesky(dimension, self.array(concentration))

    def OrderedVector(self, size):
        return _OrderedVector(size)

    def StandardisedLogGamma(self, concentration):
        return StandardisedLogGamma(concentration)

    def LogAffineGamma(self, concentration, rate, loc, scale):
        transforms = torch.distributions.transforms
        return dist.TransformedDistribution(
            dist.Gamma(concentration, rate),
            [transforms.ExpTransform().inv, transforms.AffineTransform(loc, scale)],
        )

    def to_numpy(self, value):
        return value.detach().cpu().numpy()


#: The Pyro :class:`~mixlogit.bayes._backend.ChoiceBackend`.
BACKEND = PyroChoiceBackend()

hierarchical_model = bind(BACKEND, model.hierarchical_model)
quadrature_model = bind(BACKEND, model.quadrature_model)
simulated_model = bind(BACKEND, model.simulated_model)
latent_class_model = bind(BACKEND, model.latent_class_model)
