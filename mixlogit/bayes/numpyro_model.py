"""NumPyro models: hierarchical mixed logit, quadrature-marginalised mixed logit, latent class.

All models take a dict of JAX arrays of one batch of decision-makers (``X (B, T, J, K)``,
``chosen (B, T)``, ``available (B, T, J)``, ``weights (B, T)``) and the full number of
decision-makers ``num_panels``; when ``B < num_panels`` the person-level terms are scaled by
``num_panels / B`` (unbiased subsampled ELBO).

Sites (the names used in the posterior):

* ``beta_fixed (Kf,)``: fixed coefficients.
* ``mu (Kr,)``, ``sigma (Kz,)``, ``log_shape (Kg,)``: population parameters of the random
  coefficients (see :mod:`mixlogit.bayes.spec` for their meaning per distribution).
* ``L_corr (Kc, Kc)``: Cholesky factor of the correlation of the correlated normals.
* ``z (P, Kz)``: standard-normal person draws (non-centred), absent when marginalised.
* ``u_std (P, Kg)``: standardised log-gamma person draws of the gamma coefficients,
  ``u_std = (log u - digamma(k)) / sqrt(trigamma(k))`` with ``u ~ Gamma(k, 1)`` (mean 0,
  variance 1 whatever the shape ``k``: the gamma analogue of non-centring, see
  :class:`StandardisedLogGamma`); the deterministic site ``u (P, Kg)`` records ``u``.
* latent class: ``class_share (C,)``, ``beta_class (C, K)`` with the coefficient named by
  ``order_by`` increasing across classes (identifies the labels).
"""

from __future__ import annotations

from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.scipy.special import digamma, gammaln, logsumexp, ndtr, ndtri, polygamma
from numpyro.distributions import constraints

from mixlogit.bayes._math import person_coefficients, situation_logp
from mixlogit.bayes.spec import BayesPriors, BayesSpec

__all__ = [
    "JAX_NS",
    "StandardisedLogGamma",
    "coefficients_from_params",
    "gamma_from_standardised",
    "hierarchical_model",
    "latent_class_model",
    "loggamma_moments",
    "marginal_person_loglik",
    "mnl_or_conditional_person_loglik",
    "quadrature_model",
    "simulated_model",
]


def _take_along_last(a, idx):
    return jnp.take_along_axis(a, jnp.asarray(idx)[..., None], axis=-1)[..., 0]


JAX_NS = SimpleNamespace(
    exp=jnp.exp,
    log=jnp.log,
    where=jnp.where,
    sqrt=jnp.sqrt,
    clip=lambda x, lo, hi: jnp.clip(x, lo, hi),
    ndtr=ndtr,
    ndtri=ndtri,
    stack=lambda xs, axis: jnp.stack(jnp.broadcast_arrays(*xs), axis),
    log_softmax=lambda x: jax.nn.log_softmax(x, axis=-1),
    take_along_last=_take_along_last,
    inf=jnp.inf,
)


def loggamma_moments(log_shape: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Mean ``digamma(k)`` and SD ``sqrt(trigamma(k))`` of ``log u``, ``u ~ Gamma(k, 1)``,
    for ``k = exp(log_shape)`` (any shape)."""
    k = jnp.exp(log_shape)
    return digamma(k), jnp.sqrt(polygamma(1, k))


def gamma_from_standardised(log_shape: jax.Array, u_std: jax.Array) -> jax.Array:
    """``u = exp(digamma(k) + sqrt(trigamma(k)) * u_std)``: Gamma(k, 1) draws from the
    standardised log-gamma draws ``u_std (..., Kg)`` (``log_shape`` broadcasts)."""
    m, s = loggamma_moments(log_shape)
    return jnp.exp(m + s * u_std)


class StandardisedLogGamma(dist.Distribution):
    """Law of ``w = (log u - digamma(k)) / sqrt(trigamma(k))`` for ``u ~ Gamma(k, 1)``.

    ``w`` has mean 0 and variance 1 for every shape ``k``; for large ``k`` it tends to a
    standard normal, so ``log|beta| = log mean + log(u / k)`` becomes ``log mean +
    w / sqrt(k)`` approximately: the same non-centred geometry as a lognormal coefficient with
    ``sigma = 1 / sqrt(k)``. Sampling ``u ~ Gamma(k, 1)`` directly instead couples every
    person's draw to ``k`` (a funnel that NUTS mixes badly). Exact density (change of
    variables): ``log s + k v - exp(v) - lgamma(k)`` with ``v = digamma(k) + s w``,
    ``s = sqrt(trigamma(k))``.
    """

    arg_constraints = {"concentration": constraints.positive}
    support = constraints.real

    def __init__(self, concentration, *, validate_args=None):
        self.concentration = jnp.asarray(concentration)
        super().__init__(batch_shape=jnp.shape(concentration), validate_args=validate_args)

    def _moments(self):
        return loggamma_moments(jnp.log(self.concentration))

    def sample(self, key, sample_shape=()):
        shape = tuple(sample_shape) + self.batch_shape
        log_u = jax.random.loggamma(key, self.concentration, shape)
        m, s = self._moments()
        return (log_u - m) / s

    def log_prob(self, value):
        k = self.concentration
        m, s = self._moments()
        v = m + s * value
        return jnp.log(s) + k * v - jnp.exp(v) - gammaln(k)


def _correlate(spec: BayesSpec, z: jax.Array, L_corr: jax.Array | None) -> jax.Array:
    """Apply the Cholesky correlation factor to the correlated columns of ``z (..., Kz)``."""
    if L_corr is None:
        return z
    z = jnp.asarray(z)
    cols = jnp.asarray([spec.z_random_names.index(n) for n in spec.correlated])
    zc = jnp.einsum("ij,...j->...i", L_corr, z[..., cols])
    return z.at[..., cols].set(zc)


def coefficients_from_params(
    spec: BayesSpec, params: dict[str, jax.Array], z: jax.Array, u: jax.Array
) -> jax.Array:
    """Coefficients ``(..., K)`` from global ``params`` and person draws (uncorrelated ``z``)."""
    L = params.get("L_corr")
    zc = _correlate(spec, z, L) if L is not None else z
    return person_coefficients(
        JAX_NS,
        spec,
        params.get("beta_fixed", jnp.zeros(0)),
        params.get("mu", jnp.zeros(0)),
        params.get("sigma", jnp.zeros(0)),
        params.get("log_shape", jnp.zeros(0)),
        zc,
        u,
    )


def _situation_logp_person(batch: dict[str, jax.Array], beta: jax.Array) -> jax.Array:
    """Weighted log-likelihood per person ``(B,)`` given person coefficients ``beta (B, K)``."""
    V = jnp.einsum("btjk,bk->btj", batch["X"], beta)
    lp = situation_logp(JAX_NS, V, batch["chosen"], batch["available"])
    return jnp.sum(batch["weights"] * lp, axis=-1)


def _nodes_person_loglik(batch: dict[str, jax.Array], beta_nodes: jax.Array) -> jax.Array:
    """Log-likelihood ``(B, Q)`` of each person at each node coefficient ``beta_nodes (Q, K)``
    (or per-person nodes ``(B, Q, K)``)."""
    if beta_nodes.ndim == 2:
        V = jnp.einsum("btjk,qk->btqj", batch["X"], beta_nodes)
    else:
        V = jnp.einsum("btjk,bqk->btqj", batch["X"], beta_nodes)
    lp = situation_logp(JAX_NS, V, batch["chosen"][..., None], batch["available"][:, :, None, :])
    return jnp.einsum("bt,btq->bq", batch["weights"], lp)


def _sample_globals(spec: BayesSpec, priors: BayesPriors) -> dict[str, jax.Array]:
    params: dict[str, jax.Array] = {}
    if spec.fixed_index:
        loc, scale = priors.location_scale(spec, "fixed")
        params["beta_fixed"] = numpyro.sample("beta_fixed", dist.Normal(loc, scale).to_event(1))
    if spec.random_index:
        loc, scale = priors.location_scale(spec, "random")
        params["mu"] = numpyro.sample("mu", dist.Normal(loc, scale).to_event(1))
    z_coefs = [c for c in spec.random_coefficients if c.distribution != "gamma"]
    if z_coefs:
        sd_scale = np.asarray(
            [
                priors.log_sd_scale if c.distribution == "lognormal" else priors.sd_scale
                for c in z_coefs
            ]
        )
        params["sigma"] = numpyro.sample("sigma", dist.HalfNormal(sd_scale).to_event(1))
    if spec.gamma_names:
        kg = len(spec.gamma_names)
        params["log_shape"] = numpyro.sample(
            "log_shape",
            dist.Normal(priors.gamma_log_shape_loc, priors.gamma_log_shape_scale)
            .expand([kg])
            .to_event(1),
        )
    if spec.correlated:
        params["L_corr"] = numpyro.sample(
            "L_corr", dist.LKJCholesky(len(spec.correlated), priors.lkj_concentration)
        )
    return params


def hierarchical_model(
    batch: dict[str, jax.Array],
    batch_idx: jax.Array | None = None,
    *,
    num_panels: int,
    spec: BayesSpec,
    priors: BayesPriors,
) -> None:
    """Hierarchical mixed logit with non-centred person draws ``z``/``u_std`` (sampled)."""
    params = _sample_globals(spec, priors)
    B = batch["X"].shape[0]
    kz, kg = len(spec.z_random_names), len(spec.gamma_names)
    with numpyro.plate("person", B), numpyro.handlers.scale(scale=num_panels / B):
        z = (
            numpyro.sample("z", dist.Normal(0.0, 1.0).expand([kz]).to_event(1))
            if kz
            else jnp.zeros((B, 0))
        )
        if kg:
            shape = jnp.exp(params["log_shape"])
            u_std = numpyro.sample("u_std", StandardisedLogGamma(shape).to_event(1))
            u = numpyro.deterministic("u", gamma_from_standardised(params["log_shape"], u_std))
        else:
            u = jnp.zeros((B, 0))
        beta = coefficients_from_params(spec, params, z, u)
        beta = jnp.broadcast_to(beta, (B, len(spec.coefficients)))  # MNL: no person draws
        numpyro.factor("loglik", _situation_logp_person(batch, beta))


def gauss_hermite_nodes(num_nodes: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Tensor Gauss-Hermite rule for a standard normal in ``dim`` dimensions.

    Returns ``(nodes (Q, dim), log_weights (Q,))`` with ``Q = num_nodes**dim`` and weights
    summing to 1.
    """
    x, w = np.polynomial.hermite_e.hermegauss(num_nodes)
    w = w / w.sum()
    grids = np.meshgrid(*([x] * dim), indexing="ij")
    wgrids = np.meshgrid(*([w] * dim), indexing="ij")
    nodes = np.stack([g.ravel() for g in grids], -1)
    weights = np.prod(np.stack([g.ravel() for g in wgrids], -1), -1)
    return nodes, np.log(weights)


def quadrature_person_loglik(
    spec: BayesSpec,
    params: dict[str, jax.Array],
    batch: dict[str, jax.Array],
    nodes: jax.Array,
    log_weights: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """Per-person marginal log-likelihood ``(B,)`` by quadrature over ``z``, and the
    per-node log-likelihood ``(B, Q)`` (for the conditional distribution of each person)."""
    beta_nodes = coefficients_from_params(spec, params, nodes, jnp.zeros((nodes.shape[0], 0)))
    ll_nodes = _nodes_person_loglik(batch, beta_nodes)
    return logsumexp(ll_nodes + log_weights, axis=-1), ll_nodes


def quadrature_model(
    batch: dict[str, jax.Array],
    batch_idx: jax.Array | None = None,
    *,
    num_panels: int,
    spec: BayesSpec,
    priors: BayesPriors,
    nodes: jax.Array,
    log_weights: jax.Array,
) -> None:
    """Mixed logit with each person's z-driven random coefficients integrated by
    Gauss-Hermite quadrature (no person-level latent variables)."""
    params = _sample_globals(spec, priors)
    B = batch["X"].shape[0]
    ll, _ = quadrature_person_loglik(spec, params, batch, nodes, log_weights)
    with numpyro.plate("person", B), numpyro.handlers.scale(scale=num_panels / B):
        numpyro.factor("loglik", ll)


def latent_class_person_loglik(
    params: dict[str, jax.Array], batch: dict[str, jax.Array]
) -> tuple[jax.Array, jax.Array]:
    """Latent class: per-person log-likelihood ``(B,)`` (class indicator summed out exactly)
    and the joint ``log pi_c + log L_nc`` ``(B, C)``."""
    ll_class = _nodes_person_loglik(batch, params["beta_class"])
    joint = ll_class + jnp.log(params["class_share"])
    return logsumexp(joint, axis=-1), joint


def sample_latent_class_globals(
    spec: BayesSpec, priors: BayesPriors, num_classes: int, order_by: int
) -> dict[str, jax.Array]:
    share = numpyro.sample(
        "class_share", dist.Dirichlet(jnp.full(num_classes, priors.class_share_concentration))
    )
    K = len(spec.coefficients)
    loc = np.asarray([priors.location.get(n, 0.0) for n in spec.names])
    scale = np.asarray([priors.scale.get(n, priors.fixed_scale) for n in spec.names])
    others = [k for k in range(K) if k != order_by]
    # The ordered coefficient gets the Normal prior of each class value (density of the order
    # statistics up to the constant C!), which identifies the class labels.
    ordered = numpyro.sample(
        "beta_ordered",
        dist.ImproperUniform(constraints.ordered_vector, (), event_shape=(num_classes,)),
    )
    numpyro.factor(
        "beta_ordered_prior", dist.Normal(loc[order_by], scale[order_by]).log_prob(ordered).sum()
    )
    columns = [None] * K
    columns[order_by] = ordered
    if others:
        rest = numpyro.sample(
            "beta_rest",
            dist.Normal(loc[others], scale[others]).expand([num_classes, len(others)]).to_event(2),
        )
        for j, k in enumerate(others):
            columns[k] = rest[:, j]
    beta_class = numpyro.deterministic("beta_class", jnp.stack(columns, -1))
    return {"class_share": share, "beta_class": beta_class}


def latent_class_model(
    batch: dict[str, jax.Array],
    batch_idx: jax.Array | None = None,
    *,
    num_panels: int,
    spec: BayesSpec,
    priors: BayesPriors,
    num_classes: int,
    order_by: int,
) -> None:
    """Latent-class logit: C classes of fixed coefficients, class indicator enumerated."""
    params = sample_latent_class_globals(spec, priors, num_classes, order_by)
    B = batch["X"].shape[0]
    ll, _ = latent_class_person_loglik(params, batch)
    with numpyro.plate("person", B), numpyro.handlers.scale(scale=num_panels / B):
        numpyro.factor("loglik", ll)


def sample_gamma_draws(
    spec: BayesSpec, params: dict[str, jax.Array], key: jax.Array, num: int
) -> jax.Array:
    """``(num, Kg)`` draws ``u ~ Gamma(k, 1)`` of the gamma coefficients (empty if none)."""
    if not spec.gamma_names:
        return jnp.zeros((num, 0))
    shape = jnp.exp(params["log_shape"])
    return jax.random.gamma(key, shape, (num, shape.shape[-1]))


def mnl_or_conditional_person_loglik(
    spec: BayesSpec,
    params: dict[str, jax.Array],
    batch: dict[str, jax.Array],
    z: jax.Array,
    u: jax.Array,
) -> jax.Array:
    """Per-person log-likelihood ``(B,)`` given the person draws (conditional likelihood)."""
    beta = coefficients_from_params(spec, params, z, u)
    return _situation_logp_person(batch, beta)


def marginal_person_loglik(
    spec: BayesSpec,
    params: dict[str, jax.Array],
    batch: dict[str, jax.Array],
    z_draws: jax.Array,
    gamma_key: jax.Array,
) -> jax.Array:
    """Per-person log-likelihood ``(B,)`` with the random coefficients integrated out by
    simulation: ``R`` common quasi-random normal draws ``z_draws (R, Kz)`` and, for gamma
    coefficients, ``R`` Gamma(k, 1) draws generated from ``gamma_key``."""
    R = z_draws.shape[0]
    u = sample_gamma_draws(spec, params, gamma_key, R)
    beta_nodes = coefficients_from_params(spec, params, z_draws, u)
    ll_nodes = _nodes_person_loglik(batch, beta_nodes)
    return logsumexp(ll_nodes, axis=-1) - jnp.log(R)


def simulated_model(
    batch: dict[str, jax.Array],
    batch_idx: jax.Array | None = None,
    *,
    num_panels: int,
    spec: BayesSpec,
    priors: BayesPriors,
    z_draws: jax.Array,
) -> None:
    """Mixed logit with every person's random coefficients integrated out by simulation (the
    integrand of simulated maximum likelihood): the population sites only, for SVI.

    ``z_draws (R, Kz)`` are common quasi-random standard normals; gamma coefficients use ``R``
    fresh Gamma(k, 1) draws per evaluation (reparameterised, so the ELBO gradient reaches
    ``k``). The log of a simulated average is biased downwards by about ``Var / (2 R)``, as in
    simulated maximum likelihood; ``R`` of a few hundred makes it negligible next to the
    posterior SDs.
    """
    params = _sample_globals(spec, priors)
    B = batch["X"].shape[0]
    gamma_key = numpyro.prng_key() if spec.gamma_names else None
    ll = marginal_person_loglik(spec, params, batch, z_draws, gamma_key)
    with numpyro.plate("person", B), numpyro.handlers.scale(scale=num_panels / B):
        numpyro.factor("loglik", ll)


def conditional_person_draws(
    spec: BayesSpec,
    params: dict[str, jax.Array],
    batch: dict[str, jax.Array],
    key: jax.Array,
    num_candidates: int,
) -> tuple[jax.Array, jax.Array]:
    """One draw per person of ``(z (P, Kz), u (P, Kg))`` from its conditional posterior given
    the population ``params`` (one posterior draw), by sampling-importance-resampling over
    ``num_candidates`` draws from the population distribution (weights = each person's
    likelihood at the candidate)."""
    k_z, k_u, k_pick = jax.random.split(key, 3)
    kz = len(spec.z_random_names)
    z_cand = jax.random.normal(k_z, (num_candidates, kz))
    u_cand = sample_gamma_draws(spec, params, k_u, num_candidates)
    beta_nodes = coefficients_from_params(spec, params, z_cand, u_cand)
    ll_nodes = _nodes_person_loglik(batch, beta_nodes)
    pick = jax.random.categorical(k_pick, ll_nodes, axis=-1)
    return z_cand[pick], u_cand[pick]
