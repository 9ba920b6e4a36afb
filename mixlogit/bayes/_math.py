"""Backend-neutral utility algebra (written once, run by JAX or torch through ``xp``).

``xp`` is a tiny namespace object giving ``exp, log, where, einsum, ndtr, ndtri, sqrt, sum,
stack, logsumexp, log_softmax, take_along_last, clip``; see ``JAX_NS`` and ``TORCH_NS`` in the
backends.
"""

from __future__ import annotations

from typing import Any

from mixlogit.bayes.spec import BayesSpec

__all__ = ["person_coefficients", "situation_logp"]


def person_coefficients(
    xp: Any,
    spec: BayesSpec,
    beta_fixed: Any,
    mu: Any,
    sigma: Any,
    log_shape: Any,
    z: Any,
    u: Any,
) -> Any:
    """Coefficients ``(..., K)`` (columns in specification order) from population parameters.

    Args:
        beta_fixed: ``(..., Kf)`` fixed coefficients (ignored when Kf = 0).
        mu: ``(..., Kr)`` population locations of the random coefficients.
        sigma: ``(..., Kz)`` population scales of the z-driven random coefficients.
        log_shape: ``(..., Kg)`` log shape of the gamma coefficients.
        z: ``(..., Kz)`` standard-normal person draws (already correlated if requested).
        u: ``(..., Kg)`` Gamma(k, 1) person draws.
    The leading ``...`` of every argument must broadcast together.
    """
    columns: list[Any] = [None] * len(spec.coefficients)
    for pos, i in enumerate(spec.fixed_index):
        columns[i] = beta_fixed[..., pos]
    z_names = spec.z_random_names
    g_names = spec.gamma_names
    for r, i in enumerate(spec.random_index):
        c = spec.coefficients[i]
        m = mu[..., r]
        if c.distribution == "gamma":
            g = g_names.index(c.name)
            # mean * u / k: u ~ Gamma(k, 1) so beta ~ Gamma(k, rate=k/mean).
            value = c.sign * xp.exp(m - log_shape[..., g]) * u[..., g]
        else:
            q = z_names.index(c.name)
            s = sigma[..., q]
            zq = z[..., q]
            if c.distribution == "normal":
                value = m + s * zq
            elif c.distribution == "lognormal":
                value = c.sign * xp.exp(m + s * zq)
            elif c.distribution == "uniform":
                value = m + s * (2.0 * xp.ndtr(zq) - 1.0)
            elif c.distribution == "triangular":
                p = xp.ndtr(zq)
                # inverse CDF of the symmetric triangular law on [-1, 1]
                t = xp.where(
                    p < 0.5,
                    xp.sqrt(2.0 * xp.clip(p, 0.0, 1.0)) - 1.0,
                    1.0 - xp.sqrt(2.0 * xp.clip(1.0 - p, 0.0, 1.0)),
                )
                value = m + s * t
            elif c.distribution == "truncnormal":
                # truncated to (0, inf): Phi^{-1}(Phi(-m/s) + p (1 - Phi(-m/s))), computed in
                # the upper tail for accuracy when m/s is large.
                p = xp.ndtr(zq)
                upper = xp.ndtr(m / s)  # P(X > 0)
                value = c.sign * (m + s * xp.ndtri(xp.clip(1.0 - upper * (1.0 - p), 1e-300, 1.0)))
                value = c.sign * xp.clip(c.sign * value, 0.0, None)
            else:  # pragma: no cover - validated in BayesSpec
                raise ValueError(c.distribution)
        columns[i] = value
    return xp.stack(columns, -1)


def situation_logp(xp: Any, utility: Any, chosen: Any, available: Any) -> Any:
    """Log-probability of the chosen slot.

    Args:
        utility: ``(..., J)`` systematic utilities.
        chosen: integer index broadcastable to ``utility.shape[:-1]``.
        available: bool mask broadcastable to ``utility.shape``.
    """
    masked = xp.where(available, utility, -xp.inf)
    logp = xp.log_softmax(masked)
    return xp.take_along_last(logp, chosen)
