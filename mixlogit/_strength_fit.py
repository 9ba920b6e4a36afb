"""Maximum-likelihood estimation of a strength distribution from binary choices, written once.

The likelihood is the family's marginal (exact for the Gamma, ``num_points``-node quadrature
for the LogNormal), so the estimate is a plain maximum likelihood estimate; standard errors
come from the inverse Hessian of the negative log-likelihood in the natural parameters.
SciPy's BFGS runs on the unconstrained parameters (``log`` of a positive one), with the
gradient and the Hessian from the backend's automatic differentiation:
:func:`mixlogit.torch.fit_strength_mle` and :func:`mixlogit.jax.fit_strength_mle` differ only
in the :class:`MLEBackend` they pass.
"""

from __future__ import annotations

import contextlib
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np
from scipy import optimize

from mixlogit._frontend import FrontEnd
from mixlogit._strength_models import random_family
from mixlogit.estimation.diagnostics import SeparationWarning, strength_separation
from mixlogit.families import StrengthFamily

__all__ = ["MLEBackend", "StrengthMLE", "fit_strength_mle", "negative_log_likelihood"]


class StrengthMLE(NamedTuple):
    """Result of ``fit_strength_mle`` (natural parameters; float64).

    Attributes:
        family: canonical family name.
        params, std_errors: ``{parameter: value}`` in the family's parameter order.
        covariance: ``(P, P)`` inverse Hessian of the negative log-likelihood, same order.
        log_likelihood: the (weighted) log-likelihood at the estimate.
        converged, num_iterations, message: from the optimiser (``converged`` also when the
            largest gradient entry is below 1e-6; False, with the reason in ``message``, when
            the data separate the choices).
    """

    family: str
    params: dict[str, float]
    std_errors: dict[str, float]
    covariance: np.ndarray
    log_likelihood: float
    converged: bool
    num_iterations: int
    message: str


class MLEBackend(ABC):
    """What :func:`fit_strength_mle` needs from an array library (float64 throughout).

    Attributes:
        front_end: the backend's :class:`~mixlogit._frontend.FrontEnd` (ops and marginals).
    """

    front_end: FrontEnd

    def float64(self) -> contextlib.AbstractContextManager:
        """A context in which the backend computes in float64 (JAX: ``enable_x64``)."""
        return contextlib.nullcontext()

    @abstractmethod
    def asarray(self, values: np.ndarray) -> Any:
        """A float64 array of the backend."""

    @abstractmethod
    def value_and_grad(self, f: Callable) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
        """``x -> (f(x), grad f(x))`` on NumPy vectors."""

    @abstractmethod
    def hessian(self, f: Callable) -> Callable[[np.ndarray], np.ndarray]:
        """``x -> Hessian of f at x`` on NumPy vectors."""


def negative_log_likelihood(
    backend: MLEBackend,
    family: StrengthFamily,
    params: Mapping[str, Any],
    signed_d,
    weights,
    **options,
):
    """``-sum_i w_i log P(y_i | d_i)``; ``signed_d = d`` where ``y = 1`` and ``-d`` where ``y = 0``."""
    log_p = backend.front_end.log_marginal(family, signed_d, params, **options)
    return -backend.front_end.ops.sum(weights * log_p, axis=0)


def _checked_data(d, y, weights) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    return d, y, w


def fit_strength_mle(
    backend: MLEBackend,
    d,
    y,
    family: str | StrengthFamily = "gamma",
    *,
    init: Mapping[str, float] | None = None,
    weights=None,
    num_points: int = 16,
    tol: float = 1e-10,
) -> StrengthMLE:
    """Fit a random strength family to choices ``y`` at margins ``d`` by maximum likelihood.

    (The first argument, an :class:`MLEBackend`, is bound by the public
    :func:`mixlogit.torch.fit_strength_mle` and :func:`mixlogit.jax.fit_strength_mle`.)

    Args:
        d: (N,) utility differences of the option coded ``y = 1``.
        y: (N,) observed choices in {0, 1}.
        family: ``"gamma"`` or ``"lognormal"`` (any family with parameters to estimate).
        init: starting values (defaults: the family's, MixDPO's initialisation).
        weights: optional (N,) non-negative observation weights.
        num_points: quadrature nodes of a family that takes them (the LogNormal).
        tol: BFGS gradient tolerance on the mean negative log-likelihood.

    Returns:
        :class:`StrengthMLE`; covariance in the family's parameter order.

    Raises:
        ValueError: an unknown or fixed family, non-finite ``d``, ``y`` outside {0, 1}, bad
            weights or starting values (naming the rows or the parameter).

    Warns:
        SeparationWarning: (:class:`mixlogit.estimation.diagnostics.SeparationWarning`)
            every choice agrees with the sign of ``d`` (or every one contradicts it), so the
            likelihood has no finite maximum; ``converged`` is then False and ``message``
            says why.
    """
    d, y, w = _checked_data(d, y, weights)
    with backend.float64():
        found = _fit(backend, random_family(family), d, y, w, init, num_points, tol)
    reason = strength_separation(np.where(y > 0.5, d, -d), w)
    if reason is None:
        return found
    warnings.warn(reason, SeparationWarning, stacklevel=3)
    return found._replace(converged=False, message=f"{reason} (optimiser: {found.message})")


def _newton_polish(backend, nll, estimate: np.ndarray, positive: np.ndarray, steps: int = 3):
    """Newton steps on the exact Hessian from the BFGS point, each kept only if it lowers the
    negative log-likelihood and keeps positive parameters positive. BFGS may stop on precision
    loss with a gradient near 1e-6, a relative parameter error near 1e-7; from there Newton
    converges quadratically to the rounding floor, so the torch and JAX fits agree to ~1e-12."""
    value_and_grad, hessian = backend.value_and_grad(nll), backend.hessian(nll)
    value, gradient = value_and_grad(estimate)
    for _ in range(steps):
        try:
            candidate = estimate - np.linalg.solve(np.asarray(hessian(estimate)), gradient)
        except np.linalg.LinAlgError:  # flat likelihood (separation): keep the BFGS point
            break
        if not np.all(np.isfinite(candidate)) or np.any(candidate[positive] <= 0):
            break
        new_value, new_gradient = value_and_grad(candidate)
        if not new_value <= value:
            break
        estimate, value, gradient = candidate, new_value, new_gradient
    return estimate


def _fit(backend, family, d, y, w, init, num_points, tol) -> StrengthMLE:
    start = family.with_defaults(init)
    names = family.parameters
    positive = np.array([family.constraints[p] == "positive" for p in names])
    options = {k: v for k, v in {"num_points": num_points}.items() if k in family.options}
    signed = backend.asarray(np.where(y > 0.5, d, -d))
    wb = backend.asarray(w)
    total = float(np.sum(w))

    def natural(theta):
        ops = backend.front_end.ops
        return {p: ops.exp(theta[i]) if positive[i] else theta[i] for i, p in enumerate(names)}

    def mean_nll(theta):
        return (
            negative_log_likelihood(backend, family, natural(theta), signed, wb, **options) / total
        )

    def nll_natural(x):
        params = {p: x[i] for i, p in enumerate(names)}
        return negative_log_likelihood(backend, family, params, signed, wb, **options)

    fun = backend.value_and_grad(mean_nll)
    theta0 = np.array([start[p] for p in names])
    theta0[positive] = np.log(theta0[positive])
    result = optimize.minimize(
        fun, theta0, jac=True, method="BFGS", options={"gtol": tol, "maxiter": 1000}
    )
    estimate = result.x.copy()
    estimate[positive] = np.exp(estimate[positive])
    estimate = _newton_polish(backend, nll_natural, estimate, positive)
    theta = estimate.copy()
    theta[positive] = np.log(theta[positive])
    value, grad = fun(theta)
    try:
        covariance = np.linalg.inv(backend.hessian(nll_natural)(estimate))
    except np.linalg.LinAlgError:  # flat likelihood (separation): no standard errors
        covariance = np.full((len(names), len(names)), np.nan)
    return StrengthMLE(
        family=family.name,
        params={p: float(v) for p, v in zip(names, estimate, strict=True)},
        std_errors={p: float(np.sqrt(covariance[i, i])) for i, p in enumerate(names)},
        covariance=covariance,
        log_likelihood=-value * total,
        converged=bool(result.success) or float(np.max(np.abs(grad))) < 1e-6,
        num_iterations=int(result.nit),
        message=str(result.message),
    )
