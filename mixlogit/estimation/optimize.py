"""The optimiser of the classical estimators, the Hessian and the robust covariance."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np
from scipy import optimize
from tqdm.auto import tqdm

from mixlogit.estimation.problem import Problem
from mixlogit.likelihood import x64

__all__ = [
    "ConvergenceWarning",
    "Maximum",
    "Optimiser",
    "covariances",
    "hessian_matrix",
    "minimise",
]

#: ``{optimizer: (scipy method, its options beyond gtol and maxiter)}``.
_SCIPY_METHODS: dict[str, tuple[str, dict[str, Any]]] = {
    "bfgs": ("BFGS", {"c1": 1e-4, "c2": 0.9}),
    "l-bfgs-b": ("L-BFGS-B", {"ftol": 1e-15, "maxcor": 30}),
    "newton": ("trust-exact", {}),
}
OPTIMIZERS = tuple(_SCIPY_METHODS)


class ConvergenceWarning(UserWarning):
    """The optimiser stopped before meeting its convergence criteria."""


class Maximum(NamedTuple):
    """Outcome of :func:`minimise` (of the negative log-likelihood).

    Attributes:
        problem: the :class:`~mixlogit.estimation.problem.Problem` maximised.
        result: scipy's ``OptimizeResult`` (``x``: the estimates).
        loglik: log-likelihood at ``result.x``.
        gradient: gradient of the negative log-likelihood there.
        converged: the largest gradient entry meets the tolerance (scaled by the value).
        history: ``{"evals", "iterations", ...}`` counters.
        quadrature: rule and error estimate of a converged quadrature fit, else None.
    """

    problem: Problem
    result: Any
    loglik: float
    gradient: np.ndarray
    converged: bool
    history: dict
    quadrature: dict | None = None


@dataclass(frozen=True)
class Optimiser:
    """How the classical fits run :func:`minimise`: the scipy method and its stopping rule,
    the iteration log, the progress bar (arguments of :meth:`mixlogit.estimators.MixedLogit.fit`).
    """

    optimizer: str = "bfgs"
    tolerance: float = 1e-6
    max_iterations: int = 2000
    verbose: bool | int = False
    progress: bool = False

    def maximise(self, problem: Problem, theta0: np.ndarray, desc: str = "optimiser") -> Maximum:
        """:func:`minimise` of ``problem`` from ``theta0``, with a progress bar named ``desc``."""
        with tqdm(desc=desc, unit="it", disable=not self.progress) as bar:
            return minimise(
                problem,
                theta0,
                self.optimizer,
                self.tolerance,
                self.max_iterations,
                self.verbose,
                bar,
            )


def minimise(
    problem: Problem,
    theta0: np.ndarray,
    optimizer: str,
    tolerance: float,
    max_iterations: int,
    verbose,
    bar=None,
):
    """Maximise the log-likelihood of ``problem`` from ``theta0`` with scipy.

    Returns:
        :class:`Maximum`.
    """
    every = int(verbose) if verbose else 0
    history = {"evals": 0, "iterations": 0, "best": np.inf}

    def fun(theta):
        with x64():
            value, grad = problem.value_and_grad(jnp.asarray(theta), problem.data)
        history["evals"] += 1
        value, grad = float(value), np.asarray(grad, dtype=np.float64)
        if not np.isfinite(value):
            return np.inf, np.zeros_like(grad)
        history["last_grad"] = grad
        # At the tolerance the objective changes by less than its rounding error, so BFGS's line search
        # can reject a point that meets the gradient tolerance because its value is an ulp
        # higher, then spend dozens of evaluations failing. Accept such a point at once.
        noise = 1e-12 * max(1.0, abs(value))
        if (
            optimizer == "bfgs"
            and np.max(np.abs(grad)) <= tolerance
            and value <= history["best"] + noise
        ):
            history["stop_at"] = (np.array(theta, dtype=np.float64), value)
            raise _GradientToleranceReached
        history["best"] = min(history["best"], value)
        return value, grad

    def callback(intermediate_result):
        history["iterations"] += 1
        if bar is not None:
            grad = history.get("last_grad", np.zeros(1))
            bar.update(1)
            bar.set_postfix(
                loglik=f"{-intermediate_result.fun:.4f}",
                max_grad=f"{np.max(np.abs(grad)):.1e}",
                refresh=False,
            )
        if every and history["iterations"] % every == 0:
            grad = history.get("last_grad", np.zeros(1))
            print(
                f"iter {history['iterations']:4d}  loglik {-intermediate_result.fun:.6f}  "
                f"max|grad| {np.max(np.abs(grad)):.2e}",
                flush=True,
            )

    if optimizer not in _SCIPY_METHODS:
        raise ValueError(f"optimizer must be 'bfgs', 'l-bfgs-b' or 'newton'; got {optimizer!r}")
    method, method_options = _SCIPY_METHODS[optimizer]
    hess = None
    if optimizer == "newton":

        def hess(theta):
            return -hessian_matrix(problem, np.asarray(theta, dtype=np.float64))

    try:
        result = optimize.minimize(
            fun,
            theta0,
            jac=True,
            hess=hess,
            method=method,
            callback=callback,
            options={"gtol": tolerance, "maxiter": max_iterations, **method_options},
        )
    except _GradientToleranceReached:  # raised by ``fun`` under BFGS only
        theta, value = history["stop_at"]
        result = optimize.OptimizeResult(
            x=theta,
            fun=value,
            nit=history["iterations"] + 1,
            nfev=history["evals"],
            success=True,
            status=0,
            message="Optimization terminated successfully (gradient tolerance reached).",
        )
    with x64():
        value, grad = problem.value_and_grad(jnp.asarray(result.x), problem.data)
    grad = np.asarray(grad)
    converged = bool(
        np.max(np.abs(grad)) <= max(tolerance, 1e-4) * max(1.0, 1e-3 * abs(float(value)))
    )
    return Maximum(problem, result, float(-value), grad, converged, history)


class _GradientToleranceReached(Exception):
    """Raised inside the objective to stop BFGS at a point that meets the gradient tolerance."""


def hessian_matrix(problem: Problem, theta: np.ndarray, progress: bool = False) -> np.ndarray:
    """Hessian of the log-likelihood by central differences of the exact gradient."""
    hessian = np.zeros((len(theta), len(theta)))
    columns = tqdm(range(len(theta)), desc="Hessian", unit="param", disable=not progress)
    with x64():
        for i in columns:
            # O(h^2) truncation error, ~1e-10 relative for h = 1e-5 scaled to the parameter
            step = 1e-5 * max(1.0, abs(theta[i]))
            up, down = theta.copy(), theta.copy()
            up[i] += step
            down[i] -= step
            hessian[:, i] = (
                np.asarray(problem.value_and_grad(jnp.asarray(down), problem.data)[1])
                - np.asarray(problem.value_and_grad(jnp.asarray(up), problem.data)[1])
            ) / (2.0 * step)
    return 0.5 * (hessian + hessian.T)


def covariances(
    problem: Problem, theta: np.ndarray, progress: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hessian of the log-likelihood, classical and cluster-robust covariance matrices."""
    hessian = hessian_matrix(problem, theta, progress)
    with x64():
        unit_scores = np.asarray(problem.unit_scores(jnp.asarray(theta), problem.data))
    unit_scores = unit_scores * np.asarray(problem.data.unit_weights)[:, None]
    clusters_of_units = problem.cluster  # (U,) cluster (panel) of each unit code
    cluster_scores = np.zeros((problem.num_clusters, len(theta)))
    np.add.at(cluster_scores, clusters_of_units, unit_scores)
    hessian = 0.5 * (hessian + hessian.T)
    try:
        cov = np.linalg.inv(-hessian)
    except np.linalg.LinAlgError:
        cov = np.full_like(hessian, np.nan)
    eigenvalues = np.linalg.eigvalsh(-hessian)
    if not np.all(eigenvalues > 0):
        warnings.warn(
            "the Hessian of the log-likelihood is not negative definite at the estimates "
            f"(smallest eigenvalue of -H {eigenvalues.min():.3g}); standard errors are unreliable "
            "(a parameter may be unidentified or the optimiser has not converged)",
            RuntimeWarning,
            stacklevel=3,
        )
    meat = cluster_scores.T @ cluster_scores
    robust = cov @ meat @ cov
    return hessian, cov, robust
