"""Starting values of the classical estimators, and the MNL fit by Newton's method in NumPy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from mixlogit._deprecation import renamed_keywords
from mixlogit.arrays import ChoiceArrays
from mixlogit.likelihood import ParameterLayout
from mixlogit.spec import ModelSpec

__all__ = [
    "NewtonResult",
    "mnl_newton",
    "needs_mnl_start",
    "newton_mnl",
    "parameter_units",
    "starting_values",
    "variable_scales",
    "wtp_space_start",
]


def variable_scales(arrays: ChoiceArrays) -> np.ndarray:
    """``(K,)`` typical size of each variable's differences between alternatives.

    The weighted root-mean-square deviation of ``X[s, :, k]`` from its mean over the available
    alternatives of situation ``s``: what a logit coefficient multiplies (a shift common to
    all alternatives cancels), so ``coefficient * scale`` is the coefficient of the
    standardised variable and does not change when the variable's units do. A variable that
    never differs between alternatives (unidentified) gets 1.
    """
    X = arrays.X  # (S, J, K)
    available = arrays.available[..., None]
    count = np.maximum(arrays.available.sum(axis=1), 1)[:, None]  # (S, 1)
    mean = np.where(available, X, 0.0).sum(axis=1) / count  # (S, K)
    squares = np.where(available, (X - mean[:, None, :]) ** 2, 0.0).sum(axis=1) / count
    weights = arrays.weights / max(float(np.sum(arrays.weights)), 1e-300)
    scale = np.sqrt(weights @ squares)
    return np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)


def parameter_units(spec: ModelSpec, arrays: ChoiceArrays) -> np.ndarray:
    """``(K,)`` typical size of each variable's parameter, fixed first then random:
    ``1 / variable_scales`` (a coefficient); in WTP space a WTP is a ratio of coefficients,
    ``scale_cost / scale_k`` (the cost variable keeps ``1 / scale_cost``)."""
    units = 1.0 / variable_scales(arrays)
    if spec.wtp_space is None:
        return units
    order = list(spec.fixed) + list(spec.random)
    cost = order.index(str(spec.wtp_space))
    return np.where(np.arange(len(units)) == cost, units, units / units[cost])


def wtp_space_start(spec: ModelSpec, mnl_params: np.ndarray) -> np.ndarray:
    """MNL coefficients (fixed first then random) as WTP-space parameters: ``-beta_k / beta_p``
    for every variable but the cost, whose coefficient stays (a cost coefficient that is not
    negative is taken as -0.01 of its variable's units, to give WTPs a finite start)."""
    order = list(spec.fixed) + list(spec.random)
    cost = order.index(str(spec.wtp_space))
    params = np.asarray(mnl_params, dtype=np.float64).copy()
    price = params[cost] if params[cost] < 0 else -1e-2
    params[np.arange(len(params)) != cost] /= -price
    params[cost] = price
    return params


def _mnl_loglik(arrays: ChoiceArrays, beta: np.ndarray) -> tuple[float, np.ndarray]:
    """MNL log-likelihood (weighted) and the choice probabilities ``(S, J)`` at ``beta``."""
    rows = np.arange(arrays.X.shape[0])
    utility = np.where(arrays.available, arrays.X @ beta, -np.inf)
    peak = utility.max(axis=1, keepdims=True)
    expo = np.exp(utility - peak)
    total = expo.sum(axis=1, keepdims=True)
    log_chosen = utility[rows, arrays.chosen] - peak[:, 0] - np.log(total[:, 0])
    return float(np.sum(arrays.weights * log_chosen)), expo / total


class NewtonResult(NamedTuple):
    """Outcome of :func:`newton_mnl`.

    Attributes:
        x: ``(K,)`` estimates; loglik, gradient ``(K,)``, hessian ``(K, K)`` there.
        iterations, evaluations: Newton steps and log-likelihood evaluations.
        success: the scaled gradient met the tolerance (or the step stopped improving the
            log-likelihood beyond rounding while the Newton decrement was negligible).
        message: why it stopped.
    """

    x: np.ndarray
    loglik: float
    gradient: np.ndarray
    hessian: np.ndarray
    iterations: int
    evaluations: int
    success: bool
    message: str


def newton_mnl(
    arrays: ChoiceArrays,
    beta0: np.ndarray | None = None,
    *,
    tolerance: float = 1e-6,
    max_iterations: int = 100,
    scales: np.ndarray | None = None,
) -> NewtonResult:
    """Maximise the MNL log-likelihood by Newton's method with the analytic Hessian.

    The MNL log-likelihood is concave, so Newton steps with step halving converge from any
    start (quadratically near the optimum) unless the maximum is not attained (separation).
    The linear system is solved for the coefficients of the standardised variables (each
    coefficient times ``scales``, default :func:`variable_scales`), which keeps it well
    conditioned when variables are in very different units; the stopping rule is the same:
    the largest entry of ``scales``-scaled gradient at most ``tolerance``.

    Args:
        arrays: the data (``X (S, J, K)`` etc.).
        beta0: ``(K,)`` start (default zeros).
        tolerance: on ``max_k |gradient_k / scales_k|`` (the gradient of the coefficients of
            the standardised variables).
        max_iterations: Newton steps at most.
    """
    X = arrays.X  # (S, J, K)
    K = X.shape[2]
    weights = arrays.weights
    rows = np.arange(X.shape[0])
    x_chosen = X[rows, arrays.chosen]  # (S, K)
    scales = variable_scales(arrays) if scales is None else np.asarray(scales, dtype=np.float64)
    unit = 1.0 / scales  # typical size of each coefficient

    def derivatives(prob):
        mean_x = np.einsum("sj,sjk->sk", prob, X)
        grad = weights @ (x_chosen - mean_x)
        centred = X - mean_x[:, None, :]
        weighted = centred * (weights[:, None] * prob)[..., None]
        hessian = -weighted.reshape(-1, K).T @ centred.reshape(-1, K)
        return grad, hessian

    beta = np.zeros(K) if beta0 is None else np.array(beta0, dtype=np.float64)
    ll, prob = _mnl_loglik(arrays, beta)
    evaluations = 1
    grad, hessian = derivatives(prob)
    message = f"maximum number of Newton iterations ({max_iterations}) reached"
    success = False
    iterations = 0
    for iterations in range(max_iterations + 1):
        scaled_grad = grad * unit
        if np.max(np.abs(scaled_grad), initial=0.0) <= tolerance:
            success, message = True, "Newton's method: gradient tolerance reached"
            break
        if iterations == max_iterations:
            break
        scaled_hessian = hessian * unit[:, None] * unit[None, :]
        try:
            scaled_step = np.linalg.solve(-scaled_hessian, scaled_grad)
        except np.linalg.LinAlgError:
            message = "Newton's method: singular Hessian (a coefficient is not identified)"
            break
        if not np.all(np.isfinite(scaled_step)):
            message = "Newton's method: singular Hessian (a coefficient is not identified)"
            break
        decrement = float(scaled_grad @ scaled_step)  # 2 x the quadratic model's gain
        step = scaled_step * unit
        # at the optimum the gain is below the rounding error of the log-likelihood: accept a
        # step that loses no more than that, and stop when even that cannot be had
        noise = 1e-13 * max(1.0, abs(ll))
        scale = 1.0
        while scale > 1e-10:
            candidate = beta + scale * step
            ll_new, prob_new = _mnl_loglik(arrays, candidate)
            evaluations += 1
            if np.isfinite(ll_new) and ll_new >= ll - noise:
                break
            scale *= 0.5
        else:
            success = decrement <= 1e3 * noise
            message = (
                "Newton's method: no further improvement beyond rounding error"
                if success
                else "Newton's method: the line search failed"
            )
            break
        beta, ll, prob = candidate, ll_new, prob_new
        grad, hessian = derivatives(prob)
    return NewtonResult(beta, ll, grad, hessian, iterations, evaluations, success, message)


def mnl_newton(
    arrays: ChoiceArrays, *, max_iterations: int = 50, tolerance: float = 1e-8, **renamed
) -> np.ndarray | None:
    """Multinomial-logit estimates ``(K,)`` by Newton's method in NumPy, or None if it fails.

    Used for the starting values of a mixed logit: the MNL log-likelihood is concave with an
    analytic Hessian, so a handful of Newton steps (with step halving) converge on data of
    the size of the mixed logit's in milliseconds, without compiling a second JAX program.
    Returns None when Newton does not converge (separation, unidentified variables), so the
    caller can fall back to the full fit, whose diagnostics explain the problem.

    ``tolerance`` bounds the largest gradient entry of the standardised variables'
    coefficients (see :func:`newton_mnl`; old name ``tol``, deprecated).
    """
    if renamed:
        tolerance = renamed_keywords("mnl_newton", renamed, {"tol": "tolerance"}).pop(
            "tolerance", tolerance
        )
        if renamed:
            raise TypeError(f"mnl_newton: unexpected keyword arguments {sorted(renamed)}")
    found = newton_mnl(arrays, tolerance=tolerance, max_iterations=max_iterations)
    if not found.success:
        return None
    # a near-perfect fit means separation: the "optimum" is a point on a ray to infinity
    return found.x if found.loglik < -1e-6 * np.sum(arrays.weights) else None


def needs_mnl_start(spec: ModelSpec, init) -> bool:
    """Whether :func:`starting_values` needs MNL estimates (random coefficients and no full
    ``init`` vector)."""
    return bool(spec.random or spec.wtp_space) and (init is None or isinstance(init, Mapping))


def starting_values(spec: ModelSpec, init, mnl_params: np.ndarray | None) -> np.ndarray:
    """Starting parameter vector: ``init`` when it is a full vector; otherwise MNL estimates
    ``mnl_params`` (one per variable) for the fixed coefficients and the location of each
    random one (moment-matched to its distribution), 0.1 for the spreads and the Cholesky
    diagonal, then the entries of an ``init`` mapping by parameter name."""
    layout = ParameterLayout.from_spec(spec)
    if init is not None and not isinstance(init, Mapping):
        theta = np.asarray(init, dtype=np.float64)
        if theta.shape != (layout.num_params,):
            raise ValueError(
                f"init has shape {theta.shape}; expected ({layout.num_params},) for parameters "
                f"{list(layout.names)}"
            )
        return theta
    theta = np.zeros(layout.num_params)
    kf, kr = layout.num_fixed, layout.num_random
    if spec.wtp_space is not None:
        if mnl_params is None:
            raise ValueError("a WTP-space start needs the MNL estimates (mnl_params)")
        mnl_params = wtp_space_start(spec, mnl_params)
        theta[:kf] = mnl_params[:kf]
    if kr:
        theta[:kf] = mnl_params[:kf]
        for k, mixing in enumerate(spec.random.values()):
            mean = mnl_params[kf + k]
            if mixing.distribution == "lognormal":
                theta[kf + k] = np.log(max(mixing.sign * mean, 1e-2))
            elif mixing.distribution == "gamma":
                theta[kf + k] = 0.0  # shape 1, scale matched below
            elif mixing.distribution == "truncnormal":
                theta[kf + k] = max(mixing.sign * mean, 1e-2)
            else:
                theta[kf + k] = mean
        position = kf + kr
        for k in layout.independent_index:
            mixing = layout.mixing[k]
            if mixing.distribution == "gamma":
                mean = mnl_params[kf + k]
                theta[position] = np.log(max(mixing.sign * mean, 1e-2))
            else:
                theta[position] = 0.1
            position += 1
        m = len(layout.correlated)
        rows, cols = np.tril_indices(m)
        # the covariate shifts after the Cholesky factor start at 0 (no heterogeneity)
        theta[position : position + len(rows)] = np.where(rows == cols, 0.1, 0.0)
    if isinstance(init, Mapping):
        unknown = sorted(set(init) - set(layout.names))
        if unknown:
            raise ValueError(f"init names {unknown} are not parameters {list(layout.names)}")
        for name, value in init.items():
            theta[layout.names.index(name)] = float(value)
    return theta
