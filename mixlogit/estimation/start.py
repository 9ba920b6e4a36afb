"""Starting values of the classical estimators: an MNL fit by Newton's method in NumPy."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from mixlogit._deprecation import renamed_keywords
from mixlogit.arrays import ChoiceArrays
from mixlogit.likelihood import ParameterLayout
from mixlogit.spec import ModelSpec

__all__ = ["mnl_newton", "needs_mnl_start", "starting_values"]


def mnl_newton(
    arrays: ChoiceArrays, *, max_iterations: int = 50, tolerance: float = 1e-8, **renamed
) -> np.ndarray | None:
    """Multinomial-logit estimates ``(K,)`` by Newton's method in NumPy, or None if it fails.

    Used for the starting values of a mixed logit: the MNL log-likelihood is concave with an
    analytic Hessian, so a handful of Newton steps (with step halving) converge on data of
    the size of the mixed logit's in milliseconds, without compiling a second JAX program.
    Returns None when Newton does not converge (separation, unidentified variables), so the
    caller can fall back to the full fit, whose diagnostics explain the problem.

    ``tolerance`` bounds the squared Newton decrement (old name ``tol``, deprecated).
    """
    if renamed:
        tolerance = renamed_keywords("mnl_newton", renamed, {"tol": "tolerance"}).pop(
            "tolerance", tolerance
        )
        if renamed:
            raise TypeError(f"mnl_newton: unexpected keyword arguments {sorted(renamed)}")
    X = arrays.X  # (S, J, K)
    available = arrays.available
    weights = arrays.weights
    rows = np.arange(X.shape[0])
    x_chosen = X[rows, arrays.chosen]  # (S, K)

    def loglik_parts(beta):
        utility = np.where(available, X @ beta, -np.inf)
        peak = utility.max(axis=1, keepdims=True)
        expo = np.exp(utility - peak)
        total = expo.sum(axis=1, keepdims=True)
        prob = expo / total
        ll = np.sum(weights * (utility[rows, arrays.chosen] - peak[:, 0] - np.log(total[:, 0])))
        return ll, prob

    beta = np.zeros(X.shape[2])
    ll, prob = loglik_parts(beta)
    for _ in range(max_iterations):
        mean_x = np.einsum("sj,sjk->sk", prob, X)
        grad = weights @ (x_chosen - mean_x)
        centred = X - mean_x[:, None, :]
        weighted = centred * (weights[:, None] * prob)[..., None]
        hessian = -weighted.reshape(-1, X.shape[2]).T @ centred.reshape(-1, X.shape[2])
        try:
            step = np.linalg.solve(hessian, -grad)
        except np.linalg.LinAlgError:
            return None
        if not np.all(np.isfinite(step)):
            return None
        if (
            grad @ step < tolerance
        ):  # squared Newton decrement: the quadratic model's gain is negligible
            # a near-perfect fit means separation: the "optimum" is a point on a ray to infinity
            return beta if ll < -1e-6 * np.sum(weights) else None
        scale = 1.0
        while scale > 1e-6:
            candidate = beta + scale * step
            ll_new, prob_new = loglik_parts(candidate)
            if np.isfinite(ll_new) and ll_new >= ll:
                break
            scale *= 0.5
        else:
            return None
        beta, ll, prob = candidate, ll_new, prob_new
    return None


def needs_mnl_start(spec: ModelSpec, init) -> bool:
    """Whether :func:`starting_values` needs MNL estimates (random coefficients and no full
    ``init`` vector)."""
    return bool(spec.random) and (init is None or isinstance(init, Mapping))


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
        theta[position:] = np.where(rows == cols, 0.1, 0.0)
    if isinstance(init, Mapping):
        unknown = sorted(set(init) - set(layout.names))
        if unknown:
            raise ValueError(f"init names {unknown} are not parameters {list(layout.names)}")
        for name, value in init.items():
            theta[layout.names.index(name)] = float(value)
    return theta
