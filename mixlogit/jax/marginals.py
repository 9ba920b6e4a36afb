"""Preference-strength marginals ``log E_beta[sigmoid(beta * d)]`` in JAX.

Same names and semantics as :mod:`mixlogit.torch.marginals`: arguments broadcast, the result
has the promoted floating dtype (float64 only when ``jax_enable_x64`` is on), and every
function is differentiable (``jax.grad``) and traceable (``jax.jit``, ``jax.vmap``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mixlogit import _kernels
from mixlogit._series import default_num_terms
from mixlogit.jax._ops import OPS, as_arrays, float_bits

__all__ = [
    "gamma_logit_marginal",
    "lognormal_logit_marginal",
    "point_mass_logit_marginal",
]


def gamma_logit_marginal(d, shape, rate, *, num_terms: int | None = None) -> jax.Array:
    """``log E[sigmoid(beta d)]`` for ``beta ~ Gamma(shape, rate)`` (rate = 1 / scale).

    Exact to the working precision for all ``d`` (``d = 0`` and the far negative tail
    included) by a CRVZ-accelerated alternating series with ``num_terms`` terms (default 24
    in float64, 12 in float32); relative error below ``2 / 5.83^num_terms``.

    Args:
        d: utility difference, any shape.
        shape: Gamma shape ``> 0``, broadcastable with ``d``.
        rate: Gamma rate ``> 0`` (mean ``shape / rate``), broadcastable with ``d``.
        num_terms: series length.

    Returns:
        ``log P`` with the broadcast shape, ``<= 0``.
    """
    (d_, shape_, rate_), dtype = as_arrays(d, shape, rate)
    n = num_terms if num_terms is not None else default_num_terms(float_bits(d_.dtype))
    return _kernels.gamma_log_marginal(OPS, d_, shape_, rate_, n).astype(dtype)


def lognormal_logit_marginal(
    d,
    loc,
    scale,
    *,
    method: str = "quadrature",
    num_points: int = 16,
    num_samples: int = 16,
    noise: jax.Array | None = None,
    key: jax.Array | None = None,
) -> jax.Array:
    """``log E[sigmoid(beta d)]`` for ``beta = exp(loc + scale * eps)``, ``eps ~ N(0, 1)``.

    Args:
        d, loc, scale: broadcastable arrays or numbers (``scale >= 0``).
        method: ``"quadrature"`` (Gauss-Hermite, ``num_points`` nodes) or ``"mc"``
            (reparameterised estimator ``log mean_k sigmoid(beta_k d)``).
        num_samples: ``K`` for ``"mc"`` when ``noise`` is not given.
        noise: standard-normal draws of shape ``(K, *batch)`` or ``(K,)``.
        key: ``jax.random`` key used to draw ``noise`` when it is omitted (required then).

    Returns:
        ``log P`` of the broadcast batch shape.
    """
    (d_, loc_, scale_), dtype = as_arrays(d, loc, scale)
    if method == "quadrature":
        return _kernels.lognormal_log_marginal_quadrature(OPS, d_, loc_, scale_, num_points).astype(
            dtype
        )
    if method != "mc":
        raise ValueError(f"method must be 'quadrature' or 'mc', got {method!r}")
    if noise is None:
        if key is None:
            raise ValueError("method='mc' needs either `noise` or a `key` to draw it")
        noise = jax.random.normal(key, (num_samples, *d_.shape), dtype=d_.dtype)
    else:
        noise = jnp.asarray(noise, dtype=d_.dtype)
        if noise.ndim == 1:
            noise = noise.reshape(-1, *([1] * d_.ndim))
    return _kernels.lognormal_log_marginal_mc(OPS, d_, loc_, scale_, noise).astype(dtype)


def point_mass_logit_marginal(d, beta) -> jax.Array:
    """``log sigmoid(beta d)``: the strength fixed at ``beta`` (plain DPO / plain logit)."""
    (d_, beta_), dtype = as_arrays(d, beta)
    return _kernels.point_mass_log_marginal(OPS, d_, beta_).astype(dtype)
