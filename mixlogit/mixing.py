"""Mixing distributions of random coefficients, written once for NumPy, JAX and PyTorch.

Each random coefficient has two parameters ``(a, b)`` and a *standardised draw* ``e``
computed once from a uniform ``u`` (so the inverse-CDF work is not redone at every
evaluation of the likelihood):

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

The coefficient is ``sign * beta``. The classical likelihood draws ``u`` by quasi-Monte Carlo
(:mod:`mixlogit.draws`) or takes quadrature nodes. The Bayesian model has a standard-normal
person draw ``z`` and uses ``u = Phi(z)`` (:func:`standardise_normal`) with its own gamma
parameterisation: :func:`hierarchical_coefficients` and :func:`hierarchical_moments`.

Every function takes an ``ops`` object from :func:`mixlogit._choice_ops.choice_ops` first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.stats import norm

from mixlogit._choice_ops import choice_ops
from mixlogit.families import GAMMA, LOGNORMAL, NUMPY_OPS
from mixlogit.spec import DISTRIBUTIONS, NORMAL_BASED, POSITIVE_DISTRIBUTIONS, ModelSpec

__all__ = [
    "coefficient_from_standard",
    "gamma_inverse_cdf",
    "hierarchical_coefficients",
    "hierarchical_moments",
    "reciprocal_moments_exist",
    "standardise_normal",
    "standardise_uniform",
]

Array = Any


def _unknown(distribution: str) -> ValueError:
    return ValueError(
        f"unknown mixing distribution {distribution!r}; choose one of {DISTRIBUTIONS}"
    )


def standardise_uniform(ops: Any, u: Array, distribution: str) -> Array:
    """Standardised draw ``e`` of the table above from uniforms ``u`` in (0, 1)."""
    if distribution in NORMAL_BASED:
        return ops.ndtri(u)
    if distribution == "triangular":
        # inverse CDF of the symmetric triangular law on [-1, 1]; the clips keep the branch
        # that ``where`` discards finite
        return ops.where(
            u < 0.5,
            ops.sqrt(2.0 * ops.clip(u, 0.0, 1.0)) - 1.0,
            1.0 - ops.sqrt(2.0 * ops.clip(1.0 - u, 0.0, 1.0)),
        )
    if distribution == "uniform":
        return 2.0 * u - 1.0
    if distribution in ("truncnormal", "gamma"):
        return u
    raise _unknown(distribution)


def standardise_normal(ops: Any, z: Array, distribution: str) -> Array:
    """Standardised draw ``e`` from a standard-normal draw ``z`` (``u = Phi(z)``)."""
    if distribution in NORMAL_BASED:
        return z
    return standardise_uniform(ops, ops.ndtr(z), distribution)


def coefficient_from_standard(
    ops: Any, distribution: str, a: Array, b: Array, e: Array, sign: int = 1
) -> Array:
    """Coefficient values ``sign * beta(a, b, e)`` (see the module table); broadcasts."""
    if distribution in ("normal", "triangular", "uniform"):
        beta = a + b * e
    elif distribution == "lognormal":
        beta = ops.exp(a + b * e)
    elif distribution == "truncnormal":
        scale = ops.abs(b)
        # z = Phi^-1(Phi(-a/s) + u (1 - Phi(-a/s))), written through the upper tail so that
        # it stays accurate when the truncation point is far in the right tail.
        upper_tail = (1.0 - e) * ops.ndtr(a / scale)
        z = -ops.ndtri(ops.clip(upper_tail, 1e-300, 1.0))
        beta = ops.clip(a + scale * z, 0.0, None)
    elif distribution == "gamma":
        beta = ops.exp(b) * ops.gamma_inverse_cdf(e, ops.exp(a) + 0.0 * e)
    else:
        raise _unknown(distribution)
    return beta if sign == 1 else -beta


def reciprocal_moments_exist(
    distribution: str | None, first: float, spread: float
) -> tuple[bool, bool, str]:
    """Whether ``1 / beta`` has a finite mean and a finite variance when the coefficient
    ``beta`` follows ``distribution`` with parameters ``(first, spread)``, and why not.

    The rule behind every willingness-to-pay ratio ``-beta_attr / beta_cost`` over a
    population: ``E|1/X|`` is infinite when the density of ``X`` is positive at 0, and
    ``E[X^-2]`` is infinite when it is positive or vanishes only linearly there. So a normal,
    a truncated normal (its density at the truncation point 0 is positive) and a uniform or
    triangular whose support contains 0 give neither moment (a triangular with an endpoint at
    exactly 0 gives the mean only); a gamma of shape ``k`` has ``E[X^-1]`` finite iff ``k > 1``
    and ``E[X^-2]`` iff ``k > 2`` (whatever its scale); a lognormal has every moment (``1/X``
    is lognormal too). The sign of the coefficient does not matter.

    Args:
        distribution: one of :data:`~mixlogit.spec.DISTRIBUTIONS`, or None for a fixed
            coefficient (the constant ``first``).
        first: the first parameter of the module table (location, centre; for a gamma the
            log shape, in the classical and in the hierarchical parameterisation alike).
        spread: the second one (SD, half-width); a spread of 0 makes the coefficient the
            constant ``first`` (``max(first, 0)`` for a truncated normal). Unused for a
            gamma, whose scale does not change the answer.

    Returns:
        ``(has_mean, has_variance, reason)``: ``reason`` says why a moment is missing (for a
        message: "normal (its density is positive at 0)"), ``""`` when both exist.
    """
    first, spread = float(first), float(spread)
    if distribution == "gamma":
        shape = float(np.exp(first))
        reason = f"gamma with shape {shape:.4g}"
        if shape > 2.0:
            return True, True, ""
        return shape > 1.0, False, reason + (" <= 1" if shape <= 1.0 else " <= 2")
    if distribution is not None and distribution not in DISTRIBUTIONS:
        raise _unknown(distribution)
    if distribution == "lognormal":
        return True, True, ""
    if distribution is None or spread == 0.0:
        constant = max(first, 0.0) if distribution == "truncnormal" else first
        if constant != 0.0:
            return True, True, ""
        return False, False, "the constant 0"
    if distribution in ("normal", "truncnormal"):
        return False, False, f"{distribution} (its density is positive at 0)"
    # triangular / uniform on [first - |spread|, first + |spread|]
    lower, upper = first - abs(spread), first + abs(spread)
    if lower > 0.0 or upper < 0.0:
        return True, True, ""
    support = f"{distribution} on [{lower:.4g}, {upper:.4g}]"
    if distribution == "triangular" and (lower == 0.0 or upper == 0.0):
        # the triangular density falls linearly to 0 at its endpoints: E|1/X| is finite
        return True, False, support + ", which ends at 0"
    return False, False, support + ", which contains 0"


def gamma_inverse_cdf(u: Array, shape: Array) -> Array:
    """Quantile ``x`` with ``P(shape, x) = u`` of the unit-scale gamma (JAX), differentiable
    in ``shape``."""
    return choice_ops("jax").gamma_inverse_cdf(u, shape)


# --------------------------------------------------------------------------------------------
# The hierarchical (Bayesian) parameterisation
# --------------------------------------------------------------------------------------------
def hierarchical_coefficients(
    ops: Any, spec: ModelSpec, params: Mapping[str, Array], z: Array, u: Array
) -> Array:
    """Coefficients ``(..., K)`` (column order) from population parameters and person draws.

    The parameterisation of :mod:`mixlogit.bayes.model`: random coefficient ``r`` with location
    ``mu_r`` and scale ``sigma_r`` is ``coefficient_from_standard(mu_r, sigma_r, e)`` with
    ``e = standardise_normal(z)`` (the sign applies to the positive distributions only); a
    gamma coefficient is ``sign * exp(mu_r) * u / k``, ``u ~ Gamma(k, 1)``, ``k = exp(log_shape)``
    (so ``mu_r`` is its log mean).

    Args:
        params: ``beta_fixed (..., Kf)``, ``mu (..., Kr)``, ``sigma (..., Kz)``,
            ``log_shape (..., Kg)`` and, with correlated coefficients, ``L_corr (..., Kc, Kc)``
            (lower Cholesky factor of their correlation); absent entries are not needed.
        z: ``(..., Kz)`` independent standard-normal person draws (correlated here through
            ``L_corr``).
        u: ``(..., Kg)`` Gamma(k, 1) person draws.
    The leading ``...`` of every argument must broadcast together.
    """
    columns: list[Any] = [None] * len(spec.coefficients)
    for pos, i in enumerate(spec.fixed_index):
        columns[i] = params["beta_fixed"][..., pos]
    z_random, gamma_random = spec.z_random, spec.gamma_random
    z_columns = [z[..., q] for q in range(len(z_random))]
    if spec.correlated:
        L = params["L_corr"]
        index = [z_random.index(n) for n in spec.correlated]
        independent = [z_columns[q] for q in index]
        for row, q in enumerate(index):
            z_columns[q] = sum(L[..., row, col] * independent[col] for col in range(row + 1))
    for r, i in enumerate(spec.random_index):
        c = spec.coefficients[i]
        location = params["mu"][..., r]
        if c.distribution == "gamma":
            g = gamma_random.index(c.name)
            value = c.sign * ops.exp(location - params["log_shape"][..., g]) * u[..., g]
        else:
            q = z_random.index(c.name)
            sign = c.sign if c.distribution in POSITIVE_DISTRIBUTIONS else 1
            value = coefficient_from_standard(
                ops,
                c.distribution,
                location,
                params["sigma"][..., q],
                standardise_normal(ops, z_columns[q], c.distribution),
                sign,
            )
        columns[i] = value
    return ops.stack(columns, -1)


def hierarchical_moments(
    spec: ModelSpec, params: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Mean and SD of each random coefficient's population distribution (natural scale, NumPy).

    ``params`` as for :func:`hierarchical_coefficients` with any leading sample dims ``...``;
    returns ``{"mean": (..., Kr), "sd": (..., Kr)}``. Lognormal and gamma moments come from the
    strength families (:mod:`mixlogit.families`).
    """
    ops = NUMPY_OPS
    means, sds = [], []
    for r, c in enumerate(spec.random_coefficients):
        m = np.asarray(params["mu"])[..., r]
        if c.distribution == "gamma":
            shape = np.exp(np.asarray(params["log_shape"])[..., spec.gamma_random.index(c.name)])
            family, natural = GAMMA, {"shape": shape, "rate": shape / np.exp(m)}
        else:
            s = np.asarray(params["sigma"])[..., spec.z_random.index(c.name)]
            if c.distribution == "lognormal":
                family, natural = LOGNORMAL, {"loc": m, "scale": s}
            elif c.distribution == "normal":
                means.append(m)
                sds.append(s)
                continue
            elif c.distribution in ("uniform", "triangular"):
                # variance of the standardised law on [-1, 1]: 1/3 (uniform), 1/6 (triangular)
                means.append(m)
                sds.append(s / np.sqrt(3.0 if c.distribution == "uniform" else 6.0))
                continue
            else:  # truncnormal: N(m, s^2) truncated below at 0, lam = phi(m/s) / Phi(m/s)
                a = m / s
                lam = np.exp(norm.logpdf(a) - norm.logcdf(a))
                means.append(c.sign * (m + s * lam))
                sds.append(s * np.sqrt(np.maximum(1.0 - a * lam - lam**2, 0.0)))
                continue
        means.append(c.sign * family.mean(ops, natural))
        sds.append(np.sqrt(family.variance(ops, natural)))
    return {"mean": np.stack(means, -1), "sd": np.stack(sds, -1)}
