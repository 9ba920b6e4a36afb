"""Maximum (simulated) likelihood driver: starting values, optimiser, Hessian, robust errors.

Everything JAX runs inside ``jax.enable_x64(True)``; see :mod:`mixlogit.likelihood`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy import optimize
from tqdm.auto import tqdm

from mixlogit.arrays import ChoiceArrays
from mixlogit.data import ChoiceData
from mixlogit.likelihood import Likelihood, LikelihoodData, make_likelihood_data, x64
from mixlogit.quadrature import quadrature_rule

__all__ = ["Problem", "build_problem", "estimate"]


@dataclass
class Problem:
    """A model, its data arrays, the draws and the jitted likelihood functions."""

    model: Any
    arrays: ChoiceArrays
    likelihood: Likelihood
    data: LikelihoodData
    positions: np.ndarray  # (S, 2) grid position (group, slot) of each situation
    unit: np.ndarray  # (S,) unit of each situation in original order
    cluster: np.ndarray  # (U,) cluster (panel) of each unit, for robust errors
    num_clusters: int
    num_draws: int
    value_and_grad: Any
    loglik: Any
    unit_loglik: Any
    unit_scores: Any = None


def _units(
    model, data: ChoiceData, arrays: ChoiceArrays, panel: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Unit of each situation, unit weights and cluster of each unit."""
    num_s = arrays.X.shape[0]
    mixed = bool(model.random)
    if mixed and panel and data.has_panel:
        unit = arrays.panel
        num_units = arrays.num_panels
        weights = np.zeros(num_units)
        np.maximum.at(weights, unit, arrays.weights)
        low = np.full(num_units, np.inf)
        np.minimum.at(low, unit, arrays.weights)
        varying = np.flatnonzero(low != weights)
        if len(varying):
            raise ValueError(
                f"weights vary within decision makers {data.panel_ids[varying][:5].tolist()}; "
                "a panel mixed logit needs one weight per decision maker"
            )
        return unit, weights, np.arange(num_units), num_units
    unit = np.arange(num_s)
    cluster = arrays.panel if data.has_panel else unit
    num_clusters = arrays.num_panels if data.has_panel else num_s
    return unit, arrays.weights.copy(), cluster, num_clusters


def build_problem(
    model,
    data: ChoiceData,
    *,
    standard: np.ndarray | None = None,
    log_weights: np.ndarray | None = None,
    num_draws: int = 1000,
    draws: str = "halton",
    seed: int | None = 0,
    panel: bool = True,
    chunk_size: int | None = None,
    check_identified: bool = True,
) -> Problem:
    """Arrays, draws (unless ``standard`` nodes are given) and jitted likelihood functions."""
    from mixlogit.models import default_chunk, prepare_draws

    arrays = data.to_arrays(model.variables, check_identified=check_identified)
    unit, unit_weights, cluster, num_clusters = _units(model, data, arrays, panel)
    num_units = len(unit_weights)
    if standard is None:
        standard, log_weights = prepare_draws(model, num_units, num_draws, draws, seed)
    total_draws = standard.shape[1]
    chunk = default_chunk(arrays, total_draws, chunk_size)
    with x64():
        lik_data, positions, gathered = make_likelihood_data(
            arrays, model.layout, unit, unit_weights, standard, log_weights, chunk
        )
        likelihood = Likelihood(model.layout, num_units, gathered)
        loglik = jax.jit(likelihood.loglik)
        unit_loglik = jax.jit(likelihood.unit_loglik)
        if lik_data.blocks is not None:
            # one executable for the optimiser, the Hessian and the scores: the unit scores
            # cost nothing extra in the blocked layout, and each separate jit is a compilation
            fused = jax.jit(likelihood.value_grad_scores)

            def neg_value_and_grad(t, d):
                value, grad, _ = fused(t, d)
                return -value, -grad

            def unit_scores(t, d):
                return fused(t, d)[2]

        else:
            neg_value_and_grad = jax.jit(
                lambda t, d: jax.tree.map(jnp.negative, likelihood.value_and_grad(t, d))
            )
            unit_scores = jax.jit(likelihood.unit_scores)
    return Problem(
        model=model,
        arrays=arrays,
        likelihood=likelihood,
        data=lik_data,
        positions=positions,
        unit=unit,
        cluster=cluster,
        num_clusters=num_clusters,
        num_draws=total_draws,
        value_and_grad=neg_value_and_grad,
        loglik=loglik,
        unit_loglik=unit_loglik,
        unit_scores=unit_scores,
    )


def mnl_newton(
    arrays: ChoiceArrays, *, max_iterations: int = 50, tol: float = 1e-8
) -> np.ndarray | None:
    """Multinomial-logit estimates ``(K,)`` by Newton's method in NumPy, or None if it fails.

    Used for the starting values of a mixed logit: the MNL log-likelihood is concave with an
    analytic Hessian, so a handful of Newton steps (with step halving) converge on data of
    the size of the mixed logit's in milliseconds, without compiling a second JAX program.
    Returns None when Newton does not converge (separation, unidentified variables), so the
    caller can fall back to the full fit, whose diagnostics explain the problem.
    """
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
        if grad @ step < tol:  # squared Newton decrement: the quadratic model's gain is negligible
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


def _starting_values(model, data: ChoiceData, init, panel: bool, chunk_size, verbose) -> np.ndarray:
    layout = model.layout
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
        mnl_params = mnl_newton(data.to_arrays(model.variables, check_identified=False))
        if mnl_params is None:  # Newton failed (e.g. separation): the full MNL fit warns why
            from mixlogit.models import MultinomialLogit

            mnl_params = (
                MultinomialLogit(model.variables)
                .fit(data, hessian=False, panel=panel, chunk_size=chunk_size, verbose=False)
                .params
            )
        theta[:kf] = mnl_params[:kf]
        for k, mixing in enumerate(model.random.values()):
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


def _minimise(
    problem: Problem, theta0: np.ndarray, optimizer: str, gtol, maxiter, verbose, bar=None
):
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
        # At gtol the objective changes by less than its rounding error, so BFGS's line search
        # can reject a point that meets the gradient tolerance because its value is an ulp
        # higher, then spend dozens of evaluations failing. Accept such a point at once.
        noise = 1e-12 * max(1.0, abs(value))
        if (
            optimizer == "bfgs"
            and np.max(np.abs(grad)) <= gtol
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

    if optimizer == "bfgs":
        try:
            result = optimize.minimize(
                fun,
                theta0,
                jac=True,
                method="BFGS",
                callback=callback,
                options={"gtol": gtol, "maxiter": maxiter, "c1": 1e-4, "c2": 0.9},
            )
        except _GradientToleranceReached:
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
    elif optimizer == "l-bfgs-b":
        result = optimize.minimize(
            fun,
            theta0,
            jac=True,
            method="L-BFGS-B",
            callback=callback,
            options={"gtol": gtol, "maxiter": maxiter, "ftol": 1e-15, "maxcor": 30},
        )
    elif optimizer == "newton":

        def hessp(theta):
            return -_hessian(problem, np.asarray(theta, dtype=np.float64))

        result = optimize.minimize(
            fun,
            theta0,
            jac=True,
            hess=hessp,
            method="trust-exact",
            callback=callback,
            options={"gtol": gtol, "maxiter": maxiter},
        )
    else:
        raise ValueError(f"optimizer must be 'bfgs', 'l-bfgs-b' or 'newton'; got {optimizer!r}")
    grad = history.get("last_grad")
    with x64():
        value, grad = problem.value_and_grad(jnp.asarray(result.x), problem.data)
    grad = np.asarray(grad)
    converged = bool(np.max(np.abs(grad)) <= max(gtol, 1e-4) * max(1.0, 1e-3 * abs(float(value))))
    return result, float(-value), grad, converged, history


class _GradientToleranceReached(Exception):
    """Raised inside the objective to stop BFGS at a point that meets the gradient tolerance."""


def _hessian(problem: Problem, theta: np.ndarray, progress: bool = False) -> np.ndarray:
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


def _covariances(
    problem: Problem, theta: np.ndarray, progress: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hessian of the log-likelihood, classical and cluster-robust covariance matrices."""
    hessian = _hessian(problem, theta, progress)
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


def estimate(
    model,
    data: ChoiceData,
    *,
    method: str,
    num_draws: int,
    draws: str,
    seed: int | None,
    init,
    optimizer: str,
    gtol: float,
    maxiter: int,
    panel: bool,
    chunk_size: int | None,
    quadrature_tol: float,
    quadrature_nodes: int | None,
    hessian: bool,
    verbose,
    progress: bool = False,
):
    from mixlogit.results import EstimationResults

    start = time.perf_counter()
    if not isinstance(data, ChoiceData):
        raise TypeError(f"data must be a ChoiceData, got {type(data).__name__}")
    num_random = len(model.random)
    if method == "quadrature" and num_random > 2:
        raise ValueError(
            f"quadrature supports one or two random coefficients; the model has {num_random}"
            " (use method='simulation')"
        )
    theta0 = _starting_values(model, data, init, panel, chunk_size, verbose)
    if num_random == 0:
        num_draws = 1
    quadrature_info = None
    if method == "quadrature" and num_random:
        nodes = quadrature_nodes or (16 if num_random == 1 else 10)
        max_nodes = 1024 if num_random == 1 else 160
        theta = theta0
        rounds = []
        while True:
            standard, log_w = quadrature_rule(model, nodes)
            problem = build_problem(
                model,
                data,
                standard=standard,
                log_weights=log_w,
                panel=panel,
                chunk_size=chunk_size,
            )
            with tqdm(desc=f"quadrature {nodes}/dim", unit="it", disable=not progress) as bar:
                result, ll, grad, converged, history = _minimise(
                    problem, theta, optimizer, gtol, maxiter, verbose, bar
                )
            theta = result.x
            fine_standard, fine_log_w = quadrature_rule(model, 2 * nodes)
            fine = build_problem(
                model,
                data,
                standard=fine_standard,
                log_weights=fine_log_w,
                panel=panel,
                chunk_size=chunk_size,
                check_identified=False,
            )
            with x64():
                ll_fine = float(fine.loglik(jnp.asarray(theta), fine.data))  # jitted
            error = abs(ll_fine - ll)
            rounds.append({"nodes": nodes, "loglik": ll, "loglik_refined": ll_fine, "error": error})
            if verbose:
                print(f"quadrature {nodes} nodes/dim: loglik {ll:.6f}, error estimate {error:.2e}")
            if error <= quadrature_tol or 2 * nodes > max_nodes:
                break
            nodes *= 2
        if error > quadrature_tol:
            warnings.warn(
                f"quadrature did not reach the log-likelihood tolerance {quadrature_tol:g}: "
                f"error estimate {error:.3g} with {nodes} nodes per dimension",
                RuntimeWarning,
                stacklevel=3,
            )
        quadrature_info = {
            "nodes_per_dim": nodes,
            "error": error,
            "tolerance": quadrature_tol,
            "rounds": rounds,
        }
    else:
        if method == "quadrature":
            method = "maximum likelihood"
        problem = build_problem(
            model,
            data,
            num_draws=num_draws,
            draws=draws,
            seed=seed,
            panel=panel,
            chunk_size=chunk_size,
        )
        with tqdm(desc="optimiser", unit="it", disable=not progress) as bar:
            result, ll, grad, converged, history = _minimise(
                problem, theta0, optimizer, gtol, maxiter, verbose, bar
            )
        theta = result.x
    if not converged:
        warnings.warn(
            f"the optimiser did not converge ({result.message}); largest gradient entry "
            f"{np.max(np.abs(grad)):.3g}. Try more iterations, optimizer='newton' or other "
            "starting values",
            _convergence_warning(),
            stacklevel=3,
        )
    if hessian:
        hess, cov, robust = _covariances(problem, theta, progress)
    else:
        hess = cov = robust = np.full((len(theta), len(theta)), np.nan)
    elapsed = time.perf_counter() - start
    arrays = problem.arrays
    null_ll = float(-np.sum(arrays.weights * np.log(arrays.available.sum(axis=1))))
    return EstimationResults(
        model=model,
        names=list(model.layout.names),
        params=np.asarray(theta, dtype=np.float64),
        cov=cov,
        robust_cov=robust,
        hessian=hess,
        gradient=np.asarray(grad, dtype=np.float64),
        loglik=ll,
        null_loglik=null_ll,
        num_situations=arrays.X.shape[0],
        num_units=problem.likelihood.num_units,
        num_draws=problem.num_draws if num_random else 0,
        draws=draws if (num_random and method == "simulation") else None,
        seed=seed,
        method=method if num_random else "maximum likelihood",
        panel=panel,
        converged=converged,
        message=str(result.message),
        iterations=int(result.get("nit", history["iterations"])),
        function_evaluations=history["evals"],
        time=elapsed,
        quadrature=quadrature_info,
        data=data,
        problem=problem,
    )


def _convergence_warning() -> type[Warning]:
    from mixlogit.models import ConvergenceWarning

    return ConvergenceWarning
