"""Mixing distributions of random coefficients (JAX, differentiable in their parameters).

Each random coefficient has two parameters ``(a, b)`` and a standardised draw ``e`` computed
once from the uniform draw ``u`` (so the inverse-CDF work is not redone at every iteration):

==============  ===========================  =================================================
distribution    standardised draw ``e``      coefficient ``beta`` (before ``sign``)
==============  ===========================  =================================================
normal          ``Phi^-1(u)``                ``a + b e``                (mean, sd)
lognormal       ``Phi^-1(u)``                ``exp(a + b e)``           (mean, sd of log)
triangular      ``t(u)`` in [-1, 1]          ``a + b e``                (centre, half-width)
uniform         ``2u - 1``                   ``a + b e``                (centre, half-width)
truncnormal     ``u``                        ``a + |b| Phi^-1(Phi(-a/|b|) + u Phi(a/|b|))``,
                                             a normal(a, b) truncated to (0, inf)
gamma           ``u``                        ``exp(b) G^-1(u; exp(a))`` (log shape, log scale)
==============  ===========================  =================================================

The coefficient is ``sign * beta`` with ``sign`` in {+1, -1}: lognormal, truncnormal and gamma
are positive before the sign, so ``sign=-1`` gives a strictly negative price coefficient.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.scipy.special import gammainc, gammaln, ndtr, ndtri

__all__ = [
    "DISTRIBUTIONS",
    "POSITIVE_DISTRIBUTIONS",
    "coefficient_from_standard",
    "gamma_inverse_cdf",
    "parameter_names",
    "standardise_uniform",
]

DISTRIBUTIONS = ("normal", "lognormal", "triangular", "uniform", "truncnormal", "gamma")
POSITIVE_DISTRIBUTIONS = ("lognormal", "truncnormal", "gamma")
#: distributions whose standardised draw is a standard normal (Gauss-Hermite nodes apply)
NORMAL_BASED = ("normal", "lognormal")


def parameter_names(name: str, distribution: str) -> tuple[str, str]:
    """Names of the two parameters of a random coefficient, e.g. ``("pf", "sd.pf")``."""
    if distribution == "gamma":
        return f"ln_shape.{name}", f"ln_scale.{name}"
    if distribution in ("triangular", "uniform"):
        return name, f"spread.{name}"
    return name, f"sd.{name}"


def standardise_uniform(u: np.ndarray, distribution: str) -> np.ndarray:
    """Standardised draw ``e`` of the table above from uniforms ``u`` in (0, 1) (numpy)."""
    from scipy.special import ndtri as np_ndtri

    if distribution in NORMAL_BASED:
        return np_ndtri(u)
    if distribution == "triangular":
        return np.where(u < 0.5, np.sqrt(2.0 * u) - 1.0, 1.0 - np.sqrt(2.0 * (1.0 - u)))
    if distribution == "uniform":
        return 2.0 * u - 1.0
    if distribution in ("truncnormal", "gamma"):
        return np.asarray(u, dtype=np.float64)
    raise ValueError(f"unknown mixing distribution {distribution!r}; choose one of {DISTRIBUTIONS}")


def _gamma_inverse_cdf_newton(u: jax.Array, shape: jax.Array) -> jax.Array:
    # Newton iterations on t = log x for P(shape, x) = u (regularised lower gamma).
    z = ndtri(u)
    c = 1.0 / (9.0 * shape)
    wilson_hilferty = shape * jnp.maximum(1.0 - c + z * jnp.sqrt(c), 1e-3) ** 3
    small = jnp.exp((jnp.log(u) + gammaln(shape + 1.0)) / shape)
    x0 = jnp.where((shape < 1.0) | (wilson_hilferty < 1e-2 * shape), small, wilson_hilferty)
    t0 = jnp.log(jnp.maximum(x0, 1e-300))

    def newton(_, t):
        x = jnp.exp(t)
        residual = gammainc(shape, x) - u
        # dP/dt = x * density(x) = exp(shape * t - x - lgamma(shape))
        slope = jnp.exp(shape * t - x - gammaln(shape))
        step = jnp.clip(residual / jnp.maximum(slope, 1e-300), -2.0, 2.0)
        return t - step

    return jnp.exp(lax.fori_loop(0, 60, newton, t0))


@jax.custom_jvp
def gamma_inverse_cdf(u: jax.Array, shape: jax.Array) -> jax.Array:
    """Quantile ``x`` with ``P(shape, x) = u`` of the unit-scale gamma; differentiable in shape.

    The derivative in ``shape`` uses the implicit function theorem:
    ``dx/dshape = -(dP/dshape) / density(x)``.
    """
    return _gamma_inverse_cdf_newton(u, shape)


@gamma_inverse_cdf.defjvp
def _gamma_inverse_cdf_jvp(primals, tangents):
    u, shape = primals
    du, dshape = tangents
    x = _gamma_inverse_cdf_newton(u, shape)
    density = jnp.exp((shape - 1.0) * jnp.log(x) - x - gammaln(shape))
    dp_dshape = lax.igamma_grad_a(shape * jnp.ones_like(x), x)
    dx = (du - dp_dshape * dshape) / density
    return x, dx


def coefficient_from_standard(
    distribution: str, a: jax.Array, b: jax.Array, e: jax.Array, sign: int = 1
) -> jax.Array:
    """Coefficient values ``sign * beta(a, b, e)`` (see the module table); broadcasts."""
    if distribution in ("normal", "triangular", "uniform"):
        beta = a + b * e
    elif distribution == "lognormal":
        beta = jnp.exp(a + b * e)
    elif distribution == "truncnormal":
        scale = jnp.abs(b)
        lower = -a / scale
        # z = Phi^-1(Phi(lower) + u (1 - Phi(lower))), written through the upper tail so that
        # it stays accurate when the truncation point is far in the right tail.
        upper_tail = (1.0 - e) * ndtr(-lower)
        z = -ndtri(jnp.clip(upper_tail, 1e-300, 1.0))
        beta = jnp.maximum(a + scale * z, 0.0)
    elif distribution == "gamma":
        beta = jnp.exp(b) * gamma_inverse_cdf(e, jnp.exp(a) * jnp.ones_like(e))
    else:
        raise ValueError(
            f"unknown mixing distribution {distribution!r}; choose one of {DISTRIBUTIONS}"
        )
    return beta if sign == 1 else -beta
