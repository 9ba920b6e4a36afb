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
from mixlogit.estimation.restrictions import Restrictions
from mixlogit.estimation.start import newton_mnl, parameter_units
from mixlogit.likelihood import ParameterLayout, x64
from mixlogit.spec import as_model_spec

__all__ = [
    "ConvergenceWarning",
    "Maximum",
    "Optimiser",
    "covariances",
    "hessian_matrix",
    "minimise",
    "parameter_scales",
]

#: ``{optimizer: (scipy method, its options beyond gtol and maxiter)}``.
_SCIPY_METHODS: dict[str, tuple[str, dict[str, Any]]] = {
    "bfgs": ("BFGS", {"c1": 1e-4, "c2": 0.9}),
    "l-bfgs-b": ("L-BFGS-B", {"ftol": 1e-15, "maxcor": 30}),
    "newton": ("trust-exact", {}),
}
#: ``"auto"``: Newton's method with the analytic Hessian (:func:`newton_mnl`) for a model
#: without random coefficients, BFGS otherwise.
OPTIMIZERS = ("auto", *_SCIPY_METHODS)
#: Distributions whose first and second parameters are in the coefficient's units (the
#: others, lognormal and gamma, are logarithms).
LINEAR_DISTRIBUTIONS = ("normal", "triangular", "uniform", "truncnormal")


class ConvergenceWarning(UserWarning):
    """The optimiser stopped before meeting its convergence criteria."""


class Maximum(NamedTuple):
    """Outcome of :func:`minimise` (of the negative log-likelihood).

    Attributes:
        problem: the :class:`~mixlogit.estimation.problem.Problem` maximised.
        result: scipy's ``OptimizeResult`` (``x``: the estimates).
        loglik: log-likelihood at ``result.x``.
        gradient: gradient of the negative log-likelihood there.
        converged: the largest entry of the gradient scaled by :func:`parameter_scales` meets
            the tolerance (relaxed for large log-likelihoods).
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

    optimizer: str = "auto"
    tolerance: float = 1e-6
    max_iterations: int = 2000
    verbose: bool | int = False
    progress: bool = False
    #: fixed parameters and bounds (:mod:`mixlogit.estimation.restrictions`); None: all free
    restrictions: Restrictions | None = None

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
                restrictions=self.restrictions,
            )


#: Parameter scales inside this range are left at 1 (see :func:`parameter_scales`).
WELL_SCALED = (1e-2, 1e2)


def parameter_scales(problem: Problem) -> np.ndarray:
    """``(P,)`` typical size of each parameter: ``1 / scale`` of its variable
    (:func:`~mixlogit.estimation.start.variable_scales`) for a parameter in the coefficient's
    units (fixed coefficients; means, spreads and Cholesky entries of normal, triangular,
    uniform and truncated-normal coefficients), 1 for a logarithm (lognormal, gamma).

    The optimiser works on ``theta / parameter_scales``, the parameters of the standardised
    variables, so that its gradient tolerance, its first steps and the finite-difference
    steps of the Hessian do not depend on the units of the data: a variable in units
    ``1e-8`` times smaller gets a coefficient ``1e8`` times larger and the same fit.

    A well-scaled problem (every scale within ``WELL_SCALED``, 1e-2 to 1e2) gets ones: there the
    units do not hurt the optimiser, and keeping them keeps the path of a non-concave fit (and
    so which local maximum BFGS reaches from the MNL start) what it was before the rescaling
    existed; e.g. Electricity's six normals reach -3887.349 in their own units and -3888.465
    standardised.
    """
    if problem.scales is not None:
        return _unless_well_scaled(np.asarray(problem.scales, dtype=np.float64))
    spec = as_model_spec(problem.model)
    layout = ParameterLayout.from_spec(spec)
    unit = parameter_units(spec, problem.arrays)  # per variable, fixed first then random
    kf, kr = layout.num_fixed, layout.num_random
    linear = [m.distribution in LINEAR_DISTRIBUTIONS for m in layout.mixing]
    random_unit = [unit[kf + k] if linear[k] else 1.0 for k in range(kr)]
    scales = [*unit[:kf], *random_unit]
    scales += [random_unit[k] for k in layout.independent_index]
    correlated = layout.correlated_index
    rows, _ = np.tril_indices(len(correlated))
    scales += [random_unit[correlated[i]] for i in rows]
    scales += [1.0] * (len(problem.parameter_names) - len(scales))  # e.g. nest scales
    return _unless_well_scaled(np.asarray(scales, dtype=np.float64))


def _unless_well_scaled(scales_array: np.ndarray) -> np.ndarray:
    low, high = WELL_SCALED
    if np.all((scales_array >= low) & (scales_array <= high)):
        return np.ones_like(scales_array)
    return scales_array


def minimise(
    problem: Problem,
    theta0: np.ndarray,
    optimizer: str,
    tolerance: float,
    max_iterations: int,
    verbose,
    bar=None,
    *,
    restrictions: Restrictions | None = None,
):
    """Maximise the log-likelihood of ``problem`` from ``theta0``.

    ``optimizer="auto"`` runs Newton's method with the analytic MNL Hessian
    (:func:`~mixlogit.estimation.start.newton_mnl`) for a model without random coefficients
    (BFGS from ``theta0`` if it fails), BFGS otherwise; ``"bfgs"``, ``"l-bfgs-b"`` and
    ``"newton"`` (trust region, Hessian by differences of the gradient) are scipy's. Every
    method works on the standardised parameters ``theta / parameter_scales(problem)``, so
    ``tolerance`` bounds the largest gradient entry of those.

    With ``restrictions`` only the free parameters move (the fixed ones keep their values from
    ``restrictions``, whatever ``theta0`` holds); bounds need ``"l-bfgs-b"``, which
    ``"auto"`` then chooses.

    Returns:
        :class:`Maximum` (``result.x`` and ``gradient`` full-length).
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}; got {optimizer!r}")
    names = problem.parameter_names
    restrictions = restrictions or Restrictions.none(names)
    if len(restrictions.names) != len(names):
        raise ValueError(
            f"restrictions for {len(restrictions.names)} parameters, the model has {len(names)}"
        )
    if restrictions.has_bounds and optimizer not in ("auto", "l-bfgs-b"):
        raise ValueError(
            f"bounds need optimizer='l-bfgs-b' (or 'auto', which chooses it); got {optimizer!r}"
        )
    free = restrictions.free
    if restrictions.has_constraints and optimizer == "newton":
        raise ValueError("optimizer='newton' does not take constraints; use 'bfgs' or 'auto'")
    theta0 = restrictions.impose(theta0)
    every = int(verbose) if verbose else 0
    history = {"evals": 0, "iterations": 0, "best": np.inf}
    full_unit = parameter_scales(problem)
    unit = full_unit[free]
    # Newton's method with the analytic MNL Hessian: plain MNL only
    spec = as_model_spec(problem.model)
    mnl = not spec.random and spec.wtp_space is None and problem.names is None
    if optimizer == "auto" and mnl and not restrictions.active:
        result = _newton_mnl_result(problem, theta0, unit, tolerance, max_iterations, history)
        if result is not None:
            if bar is not None:
                bar.update(history["iterations"])
            if every:
                print(f"Newton: {history['iterations']} iterations, {result.message}", flush=True)
            return _maximum(problem, result, full_unit, tolerance, history, restrictions)
    if optimizer == "auto":
        method_name = "l-bfgs-b" if restrictions.has_bounds else "bfgs"
    else:
        method_name = optimizer

    def fun(phi):
        theta = restrictions.expand(np.asarray(phi, dtype=np.float64) * unit)
        with x64():
            value, grad = problem.value_and_grad(jnp.asarray(theta), problem.data)
        history["evals"] += 1
        value, grad = float(value), restrictions.project(grad) * unit
        if not np.isfinite(value):
            return np.inf, np.zeros_like(grad)
        history["last_grad"] = grad
        # At the tolerance the objective changes by less than its rounding error, so BFGS's line search
        # can reject a point that meets the gradient tolerance because its value is an ulp
        # higher, then spend dozens of evaluations failing. Accept such a point at once.
        noise = 1e-12 * max(1.0, abs(value))
        if (
            method_name == "bfgs"
            and np.max(np.abs(grad)) <= tolerance
            and value <= history["best"] + noise
        ):
            history["stop_at"] = (theta[free], value)
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

    method, method_options = _SCIPY_METHODS[method_name]
    hess = None
    if method_name == "newton":

        def hess(phi):
            theta = restrictions.expand(np.asarray(phi, dtype=np.float64) * unit)
            block = hessian_matrix(problem, theta, index=free)
            return -block * unit[:, None] * unit[None, :]

    scaled_bounds = None
    if method_name == "l-bfgs-b" and restrictions.has_bounds:
        scaled_bounds = optimize.Bounds(
            restrictions.lower[free] / unit, restrictions.upper[free] / unit
        )
    try:
        result = optimize.minimize(
            fun,
            restrictions.restrict(theta0) / unit,
            jac=True,
            hess=hess,
            method=method,
            bounds=scaled_bounds,
            callback=callback,
            options={"gtol": tolerance, "maxiter": max_iterations, **method_options},
        )
        result.x = restrictions.expand(np.asarray(result.x, dtype=np.float64) * unit)
    except _GradientToleranceReached:  # raised by ``fun`` under BFGS only
        theta, value = history["stop_at"]
        result = optimize.OptimizeResult(
            x=restrictions.expand(theta),
            fun=value,
            nit=history["iterations"] + 1,
            nfev=history["evals"],
            success=True,
            status=0,
            message="Optimization terminated successfully (gradient tolerance reached).",
        )
    if "newton_failed" in history:
        result.message = f"{history['newton_failed']}; BFGS then: {result.message}"
    return _maximum(problem, result, full_unit, tolerance, history, restrictions)


def _newton_mnl_result(problem, theta0, unit, tolerance, max_iterations, history):
    """:func:`newton_mnl` from ``theta0`` as a scipy ``OptimizeResult``, or None (the reason
    kept in ``history["newton_failed"]``) when it fails far from a maximum."""
    found = newton_mnl(
        problem.arrays,
        np.asarray(theta0, dtype=np.float64),
        tolerance=tolerance,
        max_iterations=max_iterations,
        scales=1.0 / unit,
    )
    history["iterations"] += found.iterations
    history["evals"] += found.evaluations
    if not found.success and "maximum number" not in found.message:
        history["newton_failed"] = found.message
        return None
    return optimize.OptimizeResult(
        x=found.x,
        fun=-found.loglik,
        nit=found.iterations,
        nfev=found.evaluations,
        success=found.success,
        status=0 if found.success else 1,
        message=found.message,
    )


def _maximum(problem, result, unit, tolerance, history, restrictions=None) -> Maximum:
    """The :class:`Maximum` at ``result.x``: value and gradient by the JAX likelihood, the
    convergence test on the gradient of the standardised free parameters, projected at a bound
    (a parameter held at its bound by a gradient that points outside has converged)."""
    with x64():
        value, grad = problem.value_and_grad(jnp.asarray(result.x), problem.data)
    grad = np.asarray(grad)
    restrictions = restrictions or Restrictions.none([str(i) for i in range(len(grad))])
    free = restrictions.free
    theta = np.asarray(result.x, dtype=np.float64)[free]
    free_grad = restrictions.project(grad)
    # ``grad`` is of the negative log-likelihood: at the lower bound it may be positive
    at_lower = np.isclose(theta, restrictions.lower[free], rtol=1e-8, atol=1e-12) & (free_grad > 0)
    at_upper = np.isclose(theta, restrictions.upper[free], rtol=1e-8, atol=1e-12) & (free_grad < 0)
    projected = np.where(at_lower | at_upper, 0.0, free_grad * unit[free])
    converged = bool(
        np.max(np.abs(projected), initial=0.0)
        <= max(tolerance, 1e-4) * max(1.0, 1e-3 * abs(float(value)))
    )
    return Maximum(problem, result, float(-value), grad, converged, history)


class _GradientToleranceReached(Exception):
    """Raised inside the objective to stop BFGS at a point that meets the gradient tolerance."""


def hessian_matrix(
    problem: Problem,
    theta: np.ndarray,
    progress: bool = False,
    *,
    index: np.ndarray | None = None,
    basis: np.ndarray | None = None,
) -> np.ndarray:
    """Hessian of the log-likelihood by central differences of the exact gradient; with
    ``index`` the ``(F, F)`` block of those parameters only (the free ones of a restricted fit);
    with ``basis`` ``(P, F)`` as well, the Hessian in ``phi`` of ``theta = offset + basis @
    phi`` (column ``j`` steps along ``basis[:, j]``, sized by parameter ``index[j]``).
    """
    theta = np.asarray(theta, dtype=np.float64)
    index = np.arange(len(theta)) if index is None else np.asarray(index)
    hessian = np.zeros((len(index), len(index)))
    columns = tqdm(range(len(index)), desc="Hessian", unit="param", disable=not progress)
    unit = parameter_scales(problem)
    with x64():
        for col in columns:
            i = index[col]
            # O(h^2) truncation error, ~1e-10 relative for h = 1e-5 scaled to the parameter
            # (or to its typical size, :func:`parameter_scales`, when it is near 0)
            step = 1e-5 * max(unit[i], abs(theta[i]))
            if basis is None:
                up, down = theta.copy(), theta.copy()
                up[i] += step
                down[i] -= step
            else:
                up, down = theta + step * basis[:, col], theta - step * basis[:, col]
            difference = np.asarray(
                problem.value_and_grad(jnp.asarray(down), problem.data)[1]
            ) - np.asarray(problem.value_and_grad(jnp.asarray(up), problem.data)[1])
            # the gradient in phi: the free entries, or basis.T @ g under constraints
            projected = difference[index] if basis is None else basis.T @ difference
            hessian[:, col] = projected / (2.0 * step)
    return 0.5 * (hessian + hessian.T)


def covariances(
    problem: Problem,
    theta: np.ndarray,
    progress: bool = False,
    restrictions: Restrictions | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hessian of the log-likelihood, classical and cluster-robust covariance matrices.

    With ``restrictions`` the Hessian and scores are those of the free parameters ``phi``; the
    covariances are ``basis @ cov(phi) @ basis.T`` (zero rows and columns for the fixed ones,
    a constant has no variance, so delta-method quantities come out right; a parameter a
    constraint determines gets its implied variance) and the Hessian a ``(P, P)`` matrix
    ``H`` with ``basis.T @ H @ basis`` the Hessian of ``phi``
    (:meth:`~mixlogit.estimation.restrictions.Restrictions.free_hessian`).
    """
    size = len(theta)
    restrictions = restrictions or Restrictions.none([str(i) for i in range(size)])
    free = restrictions.free
    block = hessian_matrix(problem, theta, progress, index=free, basis=restrictions.basis)
    with x64():
        unit_scores = restrictions.project(
            np.asarray(problem.unit_scores(jnp.asarray(theta), problem.data))
        )
    unit_scores = unit_scores * np.asarray(problem.data.unit_weights)[:, None]
    clusters_of_units = problem.cluster  # (U,) cluster (panel) of each unit code
    cluster_scores = np.zeros((problem.num_clusters, len(free)))
    np.add.at(cluster_scores, clusters_of_units, unit_scores)
    try:
        cov = np.linalg.inv(-block)
    except np.linalg.LinAlgError:
        cov = np.full_like(block, np.nan)
    eigenvalues = np.linalg.eigvalsh(-block)
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
    return (
        restrictions.embed_hessian(block),
        restrictions.embed(cov),
        restrictions.embed(robust),
    )
