"""NumPyro models of binary choices with a random preference strength, and their guides.

Same names, signatures and site names as :mod:`mixlogit.torch.models`:
``marginal_strength_model`` (exact marginal likelihood), ``latent_strength_model`` (one latent
``beta_i`` per observation) and the guides ``gamma_strength_guide`` /
``lognormal_strength_guide``. Population parameters are ``numpyro.param`` sites
``strength_*``; local variational parameters are ``beta_*``.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

from mixlogit._strength_init import matched_params, mean_and_cv, population_init
from mixlogit.jax.distributions import GammaLogitBernoulli, LogNormalLogitBernoulli

__all__ = [
    "gamma_strength_guide",
    "latent_strength_model",
    "lognormal_strength_guide",
    "marginal_strength_model",
]


def _check(d, y):
    d = jnp.asarray(d)
    if d.ndim != 1:
        raise ValueError(f"d must be a 1-d array of utility differences, got shape {d.shape}")
    if y is not None:
        y = jnp.asarray(y)
        if y.shape != d.shape:
            raise ValueError(f"y has shape {y.shape} but d has shape {d.shape}")
    return d, y


def _population(family, init, dtype):
    out = {}
    for name, value in population_init(family, init).items():
        constraint = constraints.real if name == "loc" else constraints.positive
        out[name] = numpyro.param(
            f"strength_{name}", jnp.asarray(value, dtype=dtype), constraint=constraint
        )
    return out


def _strength_prior(family, params):
    if family == "gamma":
        return dist.Gamma(params["shape"], params["rate"])
    return dist.LogNormal(params["loc"], params["scale"])


def marginal_strength_model(d, y=None, *, family="gamma", init=None, subsample_size=None):
    """``y_i | d_i`` with the strength integrated out exactly."""
    d, y = _check(d, y)
    params = _population(family, init, d.dtype)
    with numpyro.plate("observations", d.shape[0], subsample_size=subsample_size) as idx:
        y_obs = None if y is None else y[idx]
        if family == "gamma":
            likelihood = GammaLogitBernoulli(d[idx], params["shape"], params["rate"])
        else:
            likelihood = LogNormalLogitBernoulli(d[idx], params["loc"], params["scale"])
        return numpyro.sample("y", likelihood, obs=y_obs)


def latent_strength_model(d, y=None, *, family="gamma", init=None, subsample_size=None):
    """One latent strength per observation: ``beta_i ~ p(beta)``, ``y_i ~ Bernoulli(sigmoid(beta_i d_i))``."""
    d, y = _check(d, y)
    params = _population(family, init, d.dtype)
    with numpyro.plate("observations", d.shape[0], subsample_size=subsample_size) as idx:
        beta = numpyro.sample("beta", _strength_prior(family, params))
        y_obs = None if y is None else y[idx]
        return numpyro.sample("y", dist.Bernoulli(logits=beta * d[idx]), obs=y_obs)


def _local_params(d, family, init, guide_family):
    mean, cv = mean_and_cv(family, population_init(family, init))
    out = {}
    for name, value in matched_params(guide_family, mean, cv).items():
        constraint = constraints.real if name == "loc" else constraints.positive
        out[name] = numpyro.param(
            f"beta_{name}", jnp.full(d.shape, value, dtype=d.dtype), constraint=constraint
        )
    return out


def gamma_strength_guide(d, y=None, *, family="gamma", init=None, subsample_size=None):
    """``q(beta_i) = Gamma(beta_shape_i, beta_rate_i)``, started at the population's moments."""
    d, _ = _check(d, y)
    local = _local_params(d, family, init, "gamma")
    with numpyro.plate("observations", d.shape[0], subsample_size=subsample_size) as idx:
        numpyro.sample("beta", dist.Gamma(local["shape"][idx], local["rate"][idx]))


def lognormal_strength_guide(d, y=None, *, family="gamma", init=None, subsample_size=None):
    """``q(beta_i) = LogNormal(beta_loc_i, beta_scale_i)``, started at the population's moments."""
    d, _ = _check(d, y)
    local = _local_params(d, family, init, "lognormal")
    with numpyro.plate("observations", d.shape[0], subsample_size=subsample_size) as idx:
        numpyro.sample("beta", dist.LogNormal(local["loc"][idx], local["scale"][idx]))
