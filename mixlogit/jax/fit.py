"""Maximum-likelihood estimation of a strength distribution from binary choices.

The likelihood is the exact marginal (Gamma) or 64-node Gauss-Hermite (LogNormal), so the
estimate is a plain maximum likelihood estimate; standard errors come from the inverse
Hessian of the negative log-likelihood in the natural parameters.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy import optimize

from mixlogit._strength_init import check_family, population_init
from mixlogit.jax.marginals import gamma_logit_marginal, lognormal_logit_marginal

__all__ = ["StrengthMLE", "fit_strength_mle"]


class StrengthMLE(NamedTuple):
    """Result of :func:`fit_strength_mle` (natural parameters; float64)."""

    family: str
    params: dict[str, float]
    std_errors: dict[str, float]
    covariance: np.ndarray
    log_likelihood: float
    converged: bool
    num_iterations: int
    message: str


def _natural(family: str, theta):
    if family == "gamma":
        return jnp.exp(theta)
    return jnp.stack([theta[0], jnp.exp(theta[1])])


def _log_likelihood(family: str, params, d, y, w, num_points: int):
    signed = jnp.where(y > 0.5, d, -d)
    if family == "gamma":
        ll = gamma_logit_marginal(signed, params[0], params[1])
    else:
        ll = lognormal_logit_marginal(
            signed, params[0], params[1], method="quadrature", num_points=num_points
        )
    return jnp.sum(w * ll)


def fit_strength_mle(
    d,
    y,
    family: str = "gamma",
    *,
    init: dict[str, float] | None = None,
    weights=None,
    num_points: int = 16,
    tol: float = 1e-10,
) -> StrengthMLE:
    """Fit ``beta ~ Gamma(shape, rate)`` or ``LogNormal(loc, scale)`` to choices ``y`` at margins ``d``.

    Args:
        d: (N,) utility differences of the option coded ``y = 1``.
        y: (N,) observed choices in {0, 1}.
        family: ``"gamma"`` or ``"lognormal"``.
        init: starting values (defaults: MixDPO's initialisation).
        weights: optional (N,) non-negative observation weights.
        num_points: quadrature nodes for the LogNormal likelihood (see lognormal_logit_marginal).

    Returns:
        :class:`StrengthMLE` with estimates, standard errors and the covariance matrix
        (order: ``shape, rate`` or ``loc, scale``).
    """
    check_family(family)
    d = np.asarray(d, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if d.ndim != 1 or y.shape != d.shape:
        raise ValueError(f"d and y must be 1-d of equal length, got {d.shape} and {y.shape}")
    bad = np.flatnonzero(~np.isfinite(d))
    if bad.size:
        raise ValueError(f"d has non-finite values at rows {bad[:10].tolist()}")
    bad = np.flatnonzero((y != 0) & (y != 1))
    if bad.size:
        raise ValueError(f"y must be 0 or 1; rows {bad[:10].tolist()} have {y[bad[:10]].tolist()}")
    w = np.ones_like(d) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != d.shape or np.any(w < 0) or not np.all(np.isfinite(w)):
        raise ValueError("weights must be finite, non-negative and of the same length as d")
    start = population_init(family, init)
    names = list(start)
    with jax.enable_x64(True):
        dj, yj, wj = jnp.asarray(d), jnp.asarray(y), jnp.asarray(w)
        scale = float(np.sum(w))

        def objective(theta):
            return -_log_likelihood(family, _natural(family, theta), dj, yj, wj, num_points) / scale

        value_and_grad = jax.jit(jax.value_and_grad(objective))
        if family == "gamma":
            theta0 = np.log([start["shape"], start["rate"]])
        else:
            theta0 = np.array([start["loc"], np.log(start["scale"])])

        def fun(theta):
            v, g = value_and_grad(jnp.asarray(theta))
            return float(v), np.asarray(g, dtype=np.float64)

        result = optimize.minimize(
            fun, theta0, jac=True, method="BFGS", options={"gtol": tol, "maxiter": 1000}
        )
        natural = _natural(family, jnp.asarray(result.x))
        hessian = jax.jit(
            jax.hessian(lambda p: -_log_likelihood(family, p, dj, yj, wj, num_points))
        )(natural)
        covariance = np.linalg.inv(np.asarray(hessian))
        log_lik = -float(objective(jnp.asarray(result.x))) * scale
        grad_norm = float(np.max(np.abs(fun(result.x)[1])))
    natural = np.asarray(natural)
    converged = bool(result.success) or grad_norm < 1e-6
    return StrengthMLE(
        family=family,
        params={n: float(v) for n, v in zip(names, natural, strict=True)},
        std_errors={n: float(np.sqrt(covariance[i, i])) for i, n in enumerate(names)},
        covariance=covariance,
        log_likelihood=log_lik,
        converged=converged,
        num_iterations=int(result.nit),
        message=str(result.message),
    )
