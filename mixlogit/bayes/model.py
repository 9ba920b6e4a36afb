"""The Bayesian choice models, written once for NumPyro and Pyro.

Every function takes a :class:`~mixlogit.bayes._backend.ChoiceBackend` ``b`` first (the
shells :mod:`mixlogit.bayes.numpyro_model` and :mod:`mixlogit.bayes.pyro_model` bind it) and
a batch of decision-makers: a dict of backend arrays ``X (B, T, J, K)``, ``chosen (B, T)``,
``available (B, T, J)``, ``weights (B, T)``; ``num_panels`` is the number of decision-makers
in the data. When ``B < num_panels`` the person-level terms are scaled by ``num_panels / B``
(unbiased subsampled ELBO).

Models:

* :func:`hierarchical_model`: person coefficients are latent (non-centred draws); an MNL when
  the specification has no random coefficient.
* :func:`quadrature_model`: each person's normal-driven coefficients integrated by a
  Gauss-Hermite rule.
* :func:`simulated_model`: each person's coefficients integrated by simulation (the integrand
  of simulated maximum likelihood), population sites only (SVI's ``local_guide="marginal"``).
* :func:`latent_class_model`: ``C`` classes of fixed coefficients, class indicator summed out.

Sites (the names used in the posterior):

* ``beta_fixed (Kf,)``: fixed coefficients.
* ``mu (Kr,)``, ``sigma (Kz,)``, ``log_shape (Kg,)``: population parameters of the random
  coefficients (:func:`mixlogit.mixing.hierarchical_coefficients` gives their meaning).
* ``L_corr (Kc, Kc)``: Cholesky factor of the correlation of the correlated normals.
* ``z (P, Kz)``: standard-normal person draws (non-centred), absent when integrated out.
* ``u_std (P, Kg)``: standardised log-gamma person draws of the gamma coefficients,
  ``u_std = (log u - digamma(k)) / sqrt(trigamma(k))`` with ``u ~ Gamma(k, 1)`` (mean 0,
  variance 1 whatever the shape ``k``: the gamma analogue of non-centring; sampling ``u``
  directly couples every person's draw to ``k``, a funnel that NUTS mixes badly); the
  deterministic site ``u (P, Kg)`` records ``u``.
* latent class: ``class_share (C,)``, ``beta_class (C, K)`` (deterministic) from
  ``beta_ordered (C,)``, the coefficient named by ``order_by``, increasing across classes
  (identifies the labels), and ``beta_rest (C, K - 1)``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from mixlogit.bayes.priors import BayesPriors
from mixlogit.mixing import hierarchical_coefficients
from mixlogit.spec import ModelSpec

__all__ = [
    "GLOBAL_SITES",
    "MODEL_NAMES",
    "gamma_from_standardised",
    "hierarchical_model",
    "latent_class_coefficients",
    "latent_class_model",
    "latent_class_person_loglik",
    "log_gamma_moments",
    "model_function",
    "nodes_person_loglik",
    "person_loglik",
    "quadrature_model",
    "quadrature_person_loglik",
    "sample_globals",
    "simulated_model",
    "situation_logp",
    "standardised_log_gamma_log_prob",
]

Array = Any
Batch = dict[str, Array]

#: The models that each PPL shell (``numpyro_model``, ``pyro_model``) binds to its backend
#: and exports under the same names.
MODEL_NAMES = ("hierarchical_model", "latent_class_model", "quadrature_model", "simulated_model")

#: Population-level sample sites (everything but the person draws).
GLOBAL_SITES = (
    "beta_fixed",
    "mu",
    "sigma",
    "log_shape",
    "L_corr",
    "class_share",
    "beta_ordered",
    "beta_rest",
)


# --------------------------------------------------------------------------------------------
# Log-likelihoods
# --------------------------------------------------------------------------------------------
def situation_logp(ops: Any, utility: Array, chosen: Array, available: Array) -> Array:
    """Log-probability of the chosen slot.

    Args:
        utility: ``(..., J)`` systematic utilities.
        chosen: integer index broadcastable to ``utility.shape[:-1]``.
        available: bool mask broadcastable to ``utility.shape``.
    """
    return ops.take_along_last(ops.log_softmax(ops.where(available, utility, -np.inf)), chosen)


def person_loglik(ops: Any, batch: Batch, beta: Array) -> Array:
    """Weighted log-likelihood per person ``(B,)`` at person coefficients ``beta (B, K)``."""
    utility = ops.einsum("btjk,bk->btj", batch["X"], beta)
    logp = situation_logp(ops, utility, batch["chosen"], batch["available"])
    return ops.sum(batch["weights"] * logp, -1)


def nodes_person_loglik(ops: Any, batch: Batch, beta_nodes: Array) -> Array:
    """Log-likelihood ``(B, Q)`` of each person at each node coefficient ``beta_nodes (Q, K)``
    (or per-person nodes ``(B, Q, K)``)."""
    equation = "btjk,qk->btqj" if beta_nodes.ndim == 2 else "btjk,bqk->btqj"
    utility = ops.einsum(equation, batch["X"], beta_nodes)
    logp = situation_logp(
        ops, utility, batch["chosen"][..., None], batch["available"][:, :, None, :]
    )
    return ops.einsum("bt,btq->bq", batch["weights"], logp)


def quadrature_person_loglik(
    ops: Any,
    spec: ModelSpec,
    params: dict[str, Array],
    batch: Batch,
    nodes: Array,
    log_weights: Array,
) -> tuple[Array, Array]:
    """Per-person marginal log-likelihood ``(B,)`` by quadrature over ``z`` (nodes ``(Q, Kz)``,
    log-weights ``(Q,)``), and the per-node log-likelihood ``(B, Q)``."""
    no_gamma = ops.zeros((nodes.shape[0], 0), nodes)
    ll_nodes = nodes_person_loglik(
        ops, batch, hierarchical_coefficients(ops, spec, params, nodes, no_gamma)
    )
    return ops.logsumexp(ll_nodes + log_weights, -1), ll_nodes


def latent_class_person_loglik(
    ops: Any, params: dict[str, Array], batch: Batch
) -> tuple[Array, Array]:
    """Per-person log-likelihood ``(B,)`` with the class indicator summed out exactly, and the
    joint ``log pi_c + log L_nc`` ``(B, C)``."""
    joint = nodes_person_loglik(ops, batch, params["beta_class"]) + ops.log(params["class_share"])
    return ops.logsumexp(joint, -1), joint


# --------------------------------------------------------------------------------------------
# Standardised log-gamma person draws
# --------------------------------------------------------------------------------------------
def log_gamma_moments(ops: Any, log_shape: Array) -> tuple[Array, Array]:
    """Mean ``digamma(k)`` and SD ``sqrt(trigamma(k))`` of ``log u``, ``u ~ Gamma(k, 1)``,
    ``k = exp(log_shape)``."""
    k = ops.exp(log_shape)
    return ops.digamma(k), ops.sqrt(ops.trigamma(k))


def gamma_from_standardised(ops: Any, log_shape: Array, u_std: Array) -> Array:
    """``u = exp(digamma(k) + sqrt(trigamma(k)) * u_std)``: Gamma(k, 1) draws from
    standardised log-gamma draws ``u_std (..., Kg)`` (``log_shape`` broadcasts)."""
    mean, sd = log_gamma_moments(ops, log_shape)
    return ops.exp(mean + sd * u_std)


def standardised_log_gamma_log_prob(ops: Any, concentration: Array, value: Array) -> Array:
    """Log density of ``w = (log u - digamma(k)) / sqrt(trigamma(k))``, ``u ~ Gamma(k, 1)``:
    ``log s + k v - exp(v) - lgamma(k)`` with ``v = digamma(k) + s w``, ``s = sqrt(trigamma(k))``
    (change of variables). For large ``k``, ``w`` tends to a standard normal."""
    k = concentration
    mean, sd = ops.digamma(k), ops.sqrt(ops.trigamma(k))
    v = mean + sd * value
    return ops.log(sd) + k * v - ops.exp(v) - ops.lgamma(k)


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------
def sample_globals(b: Any, spec: ModelSpec, priors: BayesPriors) -> dict[str, Array]:
    """Population sites ``beta_fixed``, ``mu``, ``sigma``, ``log_shape``, ``L_corr`` (those the
    specification has) under the priors of :class:`~mixlogit.bayes.priors.BayesPriors`."""
    params: dict[str, Array] = {}
    if spec.fixed_index:
        loc, scale = priors.location_scale(spec, "fixed")
        params["beta_fixed"] = b.sample(
            "beta_fixed", b.Normal(b.array(loc), b.array(scale)).to_event(1)
        )
    if spec.random_index:
        loc, scale = priors.location_scale(spec, "random")
        params["mu"] = b.sample("mu", b.Normal(b.array(loc), b.array(scale)).to_event(1))
    if spec.z_random:
        sd_scale = [
            priors.log_sd_scale if c.distribution == "lognormal" else priors.sd_scale
            for c in spec.random_coefficients
            if c.distribution != "gamma"
        ]
        params["sigma"] = b.sample("sigma", b.HalfNormal(b.array(sd_scale)).to_event(1))
    if spec.gamma_random:
        prior = b.Normal(b.array(priors.gamma_log_shape_loc), b.array(priors.gamma_log_shape_scale))
        params["log_shape"] = b.sample(
            "log_shape", prior.expand([len(spec.gamma_random)]).to_event(1)
        )
    if spec.correlated:
        params["L_corr"] = b.sample(
            "L_corr", b.LKJCholesky(len(spec.correlated), priors.lkj_concentration)
        )
    return params


def hierarchical_model(
    b: Any,
    batch: Batch,
    batch_idx: Array | None = None,
    *,
    num_panels: int,
    spec: ModelSpec,
    priors: BayesPriors,
) -> None:
    """Hierarchical mixed logit with non-centred person draws ``z`` / ``u_std`` (sampled)."""
    params = sample_globals(b, spec, priors)
    size = batch["X"].shape[0]
    kz, kg = len(spec.z_random), len(spec.gamma_random)
    with b.person_plate(batch, batch_idx, num_panels):
        if kz:
            standard_normal = b.Normal(b.array(0.0), b.array(1.0)).expand([kz]).to_event(1)
            z = b.sample("z", standard_normal).reshape(size, kz)
        else:
            z = b.zeros((size, 0))
        if kg:
            shape = b.ops.exp(params["log_shape"])
            u_std = b.sample("u_std", b.StandardisedLogGamma(shape).to_event(1)).reshape(size, kg)
            u = b.deterministic("u", gamma_from_standardised(b.ops, params["log_shape"], u_std))
        else:
            u = b.zeros((size, 0))
        beta = hierarchical_coefficients(b.ops, spec, params, z, u)
        beta = b.broadcast_to(beta, (size, len(spec.coefficients)))  # MNL: no person draws
        b.factor("loglik", person_loglik(b.ops, batch, beta))


def _integrated_model(person_loglik: Callable) -> Callable:
    """The model of the persons' log-likelihoods that ``person_loglik`` returns with their
    coefficients integrated out (no person-level latent sites).

    ``person_loglik(b, batch, spec, priors, **extra)`` samples the population sites and
    returns the batch's log-likelihoods ``(B,)``; the model enters them as one factor in the
    person plate. It is called like :func:`hierarchical_model`, with ``extra`` as further
    keywords, and its signature says so.
    """

    def model(b, batch, batch_idx=None, *, num_panels, spec, priors, **extra) -> None:
        ll = person_loglik(b, batch, spec, priors, **extra)
        with b.person_plate(batch, batch_idx, num_panels):
            b.factor("loglik", ll)

    functools.update_wrapper(model, person_loglik)
    del model.__wrapped__  # type: ignore[attr-defined]
    common = inspect.signature(hierarchical_model).parameters.values()
    extras = [
        p for p in inspect.signature(person_loglik).parameters.values() if p.kind == p.KEYWORD_ONLY
    ]
    model.__signature__ = inspect.Signature([*common, *extras], return_annotation="None")  # type: ignore[attr-defined]
    return model


@_integrated_model
def quadrature_model(b, batch, spec, priors, *, nodes: Array, log_weights: Array):
    """Mixed logit with each person's normal-driven coefficients integrated by quadrature
    (nodes ``(Q, Kz)``, log-weights ``(Q,)``; no person-level latent variables)."""
    params = sample_globals(b, spec, priors)
    ll, _ = quadrature_person_loglik(
        b.ops, spec, params, batch, b.array(nodes), b.array(log_weights)
    )
    return ll


@_integrated_model
def simulated_model(b, batch, spec, priors, *, z_draws: Array):
    """Mixed logit with every person's random coefficients integrated out by simulation: the
    population sites only, for SVI.

    ``z_draws (R, Kz)`` are common quasi-random standard normals; gamma coefficients use ``R``
    fresh Gamma(k, 1) draws per evaluation (reparameterised, so the ELBO gradient reaches
    ``k``). The log of a simulated average is biased downwards by about ``Var / (2 R)``, as in
    simulated maximum likelihood; ``R`` of a few hundred makes it negligible next to the
    posterior SDs.
    """
    params = sample_globals(b, spec, priors)
    z_draws = b.array(z_draws)
    num_draws = z_draws.shape[0]
    if spec.gamma_random:
        u = b.gamma_draws(b.ops.exp(params["log_shape"]), num_draws)
    else:
        u = b.zeros((num_draws, 0))
    ll_nodes = nodes_person_loglik(
        b.ops, batch, hierarchical_coefficients(b.ops, spec, params, z_draws, u)
    )
    return b.ops.logsumexp(ll_nodes, -1) - np.log(num_draws)


def latent_class_coefficients(ops: Any, ordered: Array, rest: Array | None, order_by: int) -> Array:
    """Class coefficients ``(..., C, K)``: column ``order_by`` is ``ordered (..., C)``, the
    others the columns of ``rest (..., C, K - 1)`` in order."""
    num_rest = 0 if rest is None else rest.shape[-1]
    columns = [rest[..., j] for j in range(num_rest)]
    columns.insert(order_by, ordered)
    return ops.stack(columns, -1)


@_integrated_model
def latent_class_model(b, batch, spec, priors, *, num_classes: int, order_by: int):
    """Latent-class logit: ``C`` classes of fixed coefficients, class indicator enumerated.

    Priors: ``class_share ~ Dirichlet(class_share_concentration)``; every class coefficient
    ``~ Normal(location, scale)`` (``fixed_scale`` by default). The ordered coefficient gets
    that prior for each class value (the density of the order statistics up to ``C!``), which
    identifies the class labels.
    """
    share = b.sample(
        "class_share", b.Dirichlet(b.filled((num_classes,), priors.class_share_concentration))
    )
    names = spec.variables
    loc = np.asarray([priors.location.get(n, 0.0) for n in names], dtype=np.float64)
    scale = np.asarray([priors.scale.get(n, priors.fixed_scale) for n in names], dtype=np.float64)
    others = [k for k in range(len(names)) if k != order_by]
    ordered = b.sample("beta_ordered", b.OrderedVector(num_classes))
    prior = b.Normal(b.array(loc[order_by]), b.array(scale[order_by]))
    b.factor("beta_ordered_prior", b.ops.sum(prior.log_prob(ordered), -1))
    rest = None
    if others:
        rest = b.sample(
            "beta_rest",
            b.Normal(b.array(loc[others]), b.array(scale[others]))
            .expand([num_classes, len(others)])
            .to_event(2),
        )
    beta_class = b.deterministic(
        "beta_class", latent_class_coefficients(b.ops, ordered, rest, order_by)
    )
    ll, _ = latent_class_person_loglik(
        b.ops, {"beta_class": beta_class, "class_share": share}, batch
    )
    return ll


def model_function(
    b: Any, kind: str, spec: ModelSpec, priors: BayesPriors, num_panels: int, extra: dict
):
    """The model of ``kind`` (``"hierarchical"``, ``"mnl"``, ``"quadrature"``,
    ``"latent_class"``) as a function ``(batch, batch_idx=None)`` of backend ``b``.

    ``extra`` holds ``z_draws`` (a hierarchical model integrated by simulation), ``nodes`` and
    ``log_weights`` (quadrature), ``num_classes`` and ``order_by`` (latent class).
    """
    common = dict(num_panels=num_panels, spec=spec, priors=priors)
    if kind == "hierarchical" and "z_draws" in extra:
        return partial(simulated_model, b, z_draws=extra["z_draws"], **common)
    if kind in ("hierarchical", "mnl"):
        return partial(hierarchical_model, b, **common)
    if kind == "quadrature":
        return partial(
            quadrature_model, b, nodes=extra["nodes"], log_weights=extra["log_weights"], **common
        )
    if kind == "latent_class":
        return partial(
            latent_class_model,
            b,
            num_classes=extra["num_classes"],
            order_by=extra["order_by"],
            **common,
        )
    raise ValueError(f"unknown model kind {kind!r}")
