"""Pyro models of binary choices with a random preference strength, and their guides.

* :func:`marginal_strength_model`: ``y_i ~ GammaLogitBernoulli / LogNormalLogitBernoulli``,
  the strength integrated out exactly.
* :func:`latent_strength_model`: the un-marginalised model, one latent ``beta_i`` per
  observation, ``y_i ~ Bernoulli(logits=beta_i d_i)``.
* :func:`gamma_strength_guide`, :func:`lognormal_strength_guide`: mean-field variational
  families for the latent ``beta_i`` (positive, so Gamma or LogNormal).

The population parameters are ``pyro.param`` sites (``strength_shape``/``strength_rate`` or
``strength_loc``/``strength_scale``), so SVI on the latent model with either guide, or on the
marginal model with an empty guide, estimates them by (type-II) maximum likelihood. All
functions share the signature ``(d, y=None, *, family, init, subsample_size)`` so any model
pairs with any guide; ``subsample_size`` subsamples the observation plate.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import constraints

from mixlogit._strength_init import matched_params, mean_and_cv, population_init
from mixlogit.torch.distributions import GammaLogitBernoulli, LogNormalLogitBernoulli

__all__ = [
    "gamma_strength_guide",
    "latent_strength_model",
    "lognormal_strength_guide",
    "marginal_strength_model",
]


def _population(family: str, init, like: torch.Tensor) -> dict[str, torch.Tensor]:
    values = population_init(family, init)
    out = {}
    for name, value in values.items():
        constraint = constraints.real if name == "loc" else constraints.positive
        out[name] = pyro.param(
            f"strength_{name}",
            lambda v=value: torch.tensor(v, dtype=like.dtype, device=like.device),
            constraint=constraint,
        )
    return out


def _strength_prior(family: str, params: dict[str, torch.Tensor]):
    if family == "gamma":
        return dist.Gamma(params["shape"], params["rate"])
    return dist.LogNormal(params["loc"], params["scale"])


def _check(d, y):
    d = torch.as_tensor(d)
    if d.dim() != 1:
        raise ValueError(
            f"d must be a 1-d tensor of utility differences, got shape {tuple(d.shape)}"
        )
    if y is not None:
        y = torch.as_tensor(y, dtype=d.dtype, device=d.device)
        if y.shape != d.shape:
            raise ValueError(f"y has shape {tuple(y.shape)} but d has shape {tuple(d.shape)}")
    return d, y


def marginal_strength_model(d, y=None, *, family="gamma", init=None, subsample_size=None):
    """``y_i | d_i`` with the strength integrated out exactly (Gamma series / LogNormal GH)."""
    d, y = _check(d, y)
    params = _population(family, init, d)
    with pyro.plate("observations", d.shape[0], subsample_size=subsample_size) as idx:
        y_obs = None if y is None else y[idx]
        if family == "gamma":
            likelihood = GammaLogitBernoulli(d[idx], params["shape"], params["rate"])
        else:
            likelihood = LogNormalLogitBernoulli(d[idx], params["loc"], params["scale"])
        return pyro.sample("y", likelihood, obs=y_obs)


def latent_strength_model(d, y=None, *, family="gamma", init=None, subsample_size=None):
    """One latent strength per observation: ``beta_i ~ p(beta)``, ``y_i ~ Bernoulli(sigmoid(beta_i d_i))``."""
    d, y = _check(d, y)
    params = _population(family, init, d)
    with pyro.plate("observations", d.shape[0], subsample_size=subsample_size) as idx:
        beta = pyro.sample("beta", _strength_prior(family, params))
        y_obs = None if y is None else y[idx]
        return pyro.sample("y", dist.Bernoulli(logits=beta * d[idx]), obs=y_obs)


def _local_init(family: str, init, guide_family: str) -> dict[str, float]:
    mean, cv = mean_and_cv(family, population_init(family, init))
    return matched_params(guide_family, mean, cv)


def _local_params(d, family, init, guide_family):
    n = d.shape[0]
    start = _local_init(family, init, guide_family)
    out = {}
    for name, value in start.items():
        constraint = constraints.real if name == "loc" else constraints.positive
        out[name] = pyro.param(
            f"beta_{name}",
            lambda v=value: torch.full((n,), v, dtype=d.dtype, device=d.device),
            constraint=constraint,
        )
    return out


def gamma_strength_guide(d, y=None, *, family="gamma", init=None, subsample_size=None):
    """``q(beta_i) = Gamma(beta_shape_i, beta_rate_i)``, started at the population's moments."""
    d, _ = _check(d, y)
    local = _local_params(d, family, init, "gamma")
    with pyro.plate("observations", d.shape[0], subsample_size=subsample_size) as idx:
        pyro.sample("beta", dist.Gamma(local["shape"][idx], local["rate"][idx]))


def lognormal_strength_guide(d, y=None, *, family="gamma", init=None, subsample_size=None):
    """``q(beta_i) = LogNormal(beta_loc_i, beta_scale_i)``, started at the population's moments."""
    d, _ = _check(d, y)
    local = _local_params(d, family, init, "lognormal")
    with pyro.plate("observations", d.shape[0], subsample_size=subsample_size) as idx:
        pyro.sample("beta", dist.LogNormal(local["loc"][idx], local["scale"][idx]))
