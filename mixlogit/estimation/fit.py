"""``estimate``: the classical fit of a model, from starting values to the results object."""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mixlogit.data import ChoiceData
from mixlogit.draws import check_halton_options
from mixlogit.estimation.diagnostics import SeparationWarning, find_separation
from mixlogit.estimation.latent_class import (
    build_latent_class_problem,
    latent_class_of,
    relabel,
)
from mixlogit.estimation.multistart import check_num_starts, random_starts, run_starts
from mixlogit.estimation.nested import NestingSpec, build_nested_problem, nesting_of
from mixlogit.estimation.optimize import (
    LINEAR_DISTRIBUTIONS,
    OPTIMIZERS,
    ConvergenceWarning,
    Maximum,
    Optimiser,
    covariances,
    parameter_scales,
)
from mixlogit.estimation.problem import Problem, require_choice_data
from mixlogit.estimation.quadrature import maximise_quadrature
from mixlogit.estimation.restrictions import Constraint, Restrictions, parse_restrictions
from mixlogit.estimation.simulated import check_simulation_noise, simulated_problem
from mixlogit.estimation.start import (
    mnl_newton,
    needs_mnl_start,
    parameter_units,
    starting_values,
    variable_scales,
)
from mixlogit.likelihood import ParameterLayout, x64
from mixlogit.results import EstimationResults
from mixlogit.spec import ModelSpec, as_model_spec

__all__ = [
    "estimate",
    "estimate_latent_class",
    "estimate_nested",
    "latent_class_starts",
    "pinned_variables",
]

METHODS = ("simulation", "quadrature")


def estimate(
    model,
    data: ChoiceData,
    *,
    method: str = "simulation",
    num_draws: int = 1000,
    draws: str = "halton",
    seed: int | None = 0,
    init=None,
    optimizer: str = "auto",
    tolerance: float = 1e-6,
    max_iterations: int = 2000,
    panel: bool = True,
    chunk_size: int | None = None,
    quadrature_tolerance: float = 1e-3,
    num_nodes: int | None = None,
    hessian: bool = True,
    verbose: bool | int = False,
    progress: bool = False,
    num_starts: int = 1,
    start_seed: int | None = 0,
    simulation_noise: bool = False,
    fix: Mapping[str, float] | None = None,
    bounds: Mapping[str, tuple[float | None, float | None]] | None = None,
    constraints: Sequence[Constraint] | None = None,
    halton_options: Mapping[str, Any] | None = None,
    devices: int | Sequence[jax.Device] | None = None,
) -> EstimationResults:
    """Maximum simulated likelihood or converged quadrature of ``model`` on ``data``.

    ``model`` is an estimator (``MixedLogit``, ``MultinomialLogit``) or a
    :class:`~mixlogit.spec.ModelSpec`; the arguments are those of
    :meth:`mixlogit.estimators.MixedLogit.fit`. A model without random coefficients is fitted
    by exact maximum likelihood whatever ``method`` says.

    With ``num_starts > 1`` the optimiser also runs from ``num_starts - 1`` random
    perturbations of the default start (:func:`~mixlogit.estimation.multistart.random_starts`,
    seeded by ``start_seed``) on the same compiled problem and keeps the best;
    ``simulation_noise=True`` then runs
    :func:`~mixlogit.estimation.simulated.check_simulation_noise` on the results.

    ``fix={parameter: value}`` holds parameters at their values and ``bounds={parameter:
    (lower, upper)}`` keeps them inside (:mod:`mixlogit.estimation.restrictions`); a variable
    whose coefficient (or, for a normal, triangular, uniform or truncated-normal coefficient,
    whose mean) is fixed is left out of the identification check, so e.g. every alternative
    can carry a random constant with one mean fixed at 0. ``constraints`` are linear
    equalities between parameters (``["ASC_1 = ASC_3", "time = 2 * cost"]``,
    :func:`~mixlogit.estimation.restrictions.parse_constraint`): each determines one parameter
    from the others, which keeps its implied (delta-method) variance.
    """
    start = time.perf_counter()
    num_starts = check_num_starts(num_starts, start_seed)
    require_choice_data(data)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}; got {optimizer!r}")
    spec = as_model_spec(model)
    num_random = len(spec.random)
    if halton_options and method != "simulation":
        raise ValueError(f"halton_options apply to method='simulation'; got method={method!r}")
    halton_options = check_halton_options(halton_options, draws, num_random) or None
    if devices is not None and (method != "simulation" or not num_random):
        raise ValueError(
            f"devices={devices!r} splits the draws of maximum simulated likelihood between "
            f"devices; got method={method!r} with {num_random} random coefficients (fit these "
            "on one device)"
        )
    if simulation_noise and (method != "simulation" or not num_random):
        raise ValueError(
            "simulation_noise=True needs method='simulation' and random coefficients; got "
            f"method={method!r} with {num_random} random coefficients (nothing is simulated)"
        )
    if method == "quadrature" and num_random > 2:
        raise ValueError(
            f"quadrature supports one or two random coefficients; the model has {num_random}"
            " (use method='simulation')"
        )
    restrictions = parse_restrictions(spec.parameter_names, fix, bounds, constraints)
    pinned = pinned_variables(spec, restrictions)
    if pinned:
        # the pinned columns are normalised, not estimated: check the others alone
        data.to_arrays([v for v in spec.variables if v not in pinned], check_identified=True)
    mnl_params = None
    if needs_mnl_start(spec, init):
        if not pinned:
            mnl_params = mnl_newton(data.to_arrays(spec.variables, check_identified=False))
        if mnl_params is None:  # Newton failed (e.g. separation): the full MNL fit warns why
            mnl_params = estimate(
                ModelSpec.build(spec.variables),
                data,
                hessian=False,
                panel=panel,
                chunk_size=chunk_size,
                fix=pinned or None,
            ).params
    theta0 = restrictions.impose(starting_values(spec, init, mnl_params))
    optimiser = Optimiser(
        optimizer,
        tolerance,
        max_iterations,
        verbose,
        progress,
        restrictions if restrictions.active else None,
    )
    options = dict(
        panel=panel, chunk_size=chunk_size, optimiser=optimiser, check_identified=not pinned
    )
    if method == "quadrature" and num_random:

        def maximise(theta_start: np.ndarray) -> Maximum:
            # each start refines its own rule: the node count it converges at may differ
            return maximise_quadrature(
                model,
                data,
                theta_start,
                nodes=num_nodes,
                quadrature_tolerance=quadrature_tolerance,
                **options,
            )

    else:
        problem = simulated_problem(
            model,
            data,
            num_draws=num_draws if num_random else 1,
            draws=draws,
            seed=seed,
            panel=panel,
            chunk_size=chunk_size,
            check_identified=not pinned,
            halton_options=halton_options,
            devices=devices,
        )

        def maximise(theta_start: np.ndarray) -> Maximum:
            return optimiser.maximise(problem, theta_start)  # compiled once

    records = None
    if num_starts == 1:
        found = maximise(theta0)
    else:
        arrays = data.to_arrays(spec.variables, check_identified=False)
        starts = random_starts(theta0, spec, parameter_units(spec, arrays), num_starts, start_seed)
        found, records = run_starts(maximise, starts, verbose=verbose, stacklevel=4)
    theta = found.result.x
    converged, message = found.converged, str(found.result.message)
    separation = _separation(spec, found, restrictions)
    if separation is not None:
        # the maximum is at infinity: whatever the gradient says, nothing converged
        converged, message = False, f"{separation.message} (optimiser: {message})"
        warnings.warn(separation.message, SeparationWarning, stacklevel=3)
    elif not found.converged:
        warnings.warn(
            f"the optimiser did not converge ({found.result.message}); largest gradient entry "
            f"{np.max(np.abs(restrictions.project(found.gradient))):.3g}. Try more iterations, "
            "optimizer='newton' or "
            "other starting values",
            ConvergenceWarning,
            stacklevel=3,
        )
    held = restrictions.at_bound(theta)
    if held:
        warnings.warn(
            f"parameters {held} ended at a bound: their standard errors (and the Wald tests "
            "and intervals built on them) assume an interior maximum and are not valid there",
            RuntimeWarning,
            stacklevel=3,
        )
    if hessian:
        hess, cov, robust = covariances(found.problem, theta, progress, restrictions)
    else:
        hess = cov = robust = np.full((len(theta), len(theta)), np.nan)
    arrays = found.problem.arrays
    null_ll = float(-np.sum(arrays.weights * np.log(arrays.available.sum(axis=1))))
    results = EstimationResults(
        model=model,
        names=list(spec.parameter_names),
        params=np.asarray(theta, dtype=np.float64),
        cov=cov,
        robust_cov=robust,
        hessian=hess,
        gradient=np.asarray(found.gradient, dtype=np.float64),
        loglik=found.loglik,
        null_loglik=null_ll,
        num_situations=arrays.X.shape[0],
        num_units=found.problem.likelihood.num_units,
        num_draws=found.problem.num_draws if num_random else 0,
        draws=draws if (num_random and method == "simulation") else None,
        seed=seed,
        method=method if num_random else "maximum likelihood",
        panel=panel,
        converged=converged,
        message=message,
        iterations=int(found.result.get("nit", found.history["iterations"])),
        function_evaluations=found.history["evals"],
        time=time.perf_counter() - start,
        quadrature=found.quadrature,
        data=data,
        problem=found.problem,
        starts=records,
        halton_options=halton_options if num_random else None,
        fixed_parameters=restrictions.fixed_parameters() or None,
        bounds=restrictions.bounds() or None,
        constraints=restrictions.constraint_texts() or None,
    )
    if simulation_noise:
        check_simulation_noise(results, optimiser=optimiser, stacklevel=4)
        results.time = time.perf_counter() - start
    return results


def pinned_variables(spec: ModelSpec, restrictions: Restrictions) -> dict[str, float]:
    """``{variable: value}`` of the variables whose coefficient is fixed by ``restrictions``: a
    fixed coefficient's own parameter, or the mean of a random coefficient whose mean is in
    the coefficient's units (normal, triangular, uniform, truncated normal). These columns
    are normalisations or offsets rather than estimated effects."""
    fixed = restrictions.fixed_parameters()
    random = spec.random
    return {
        name: fixed[name]
        for name in spec.variables
        if name in fixed
        and (name not in random or random[name].distribution in LINEAR_DISTRIBUTIONS)
    }


def _separation(spec: ModelSpec, found: Maximum, restrictions: Restrictions):
    """:func:`~mixlogit.estimation.diagnostics.find_separation` at the optimiser's stopping
    point: the parameters checked by doubling are the free fixed coefficients and the free
    means of the random coefficients whose mean is in the coefficient's units."""
    problem = found.problem
    layout = ParameterLayout.from_spec(spec)
    checkable = np.zeros(layout.num_params, dtype=bool)
    checkable[: layout.num_fixed] = True
    for k, mixing in enumerate(layout.mixing):
        checkable[layout.num_fixed + k] = mixing.distribution in LINEAR_DISTRIBUTIONS
    if spec.wtp_space is not None:
        checkable[:] = False  # a WTP that doubles does not double a coefficient
    checkable &= ~restrictions.fixed_mask
    if restrictions.dependent_mask is not None:
        checkable &= ~restrictions.dependent_mask
    held = set(restrictions.at_bound(found.result.x))
    checkable &= np.array([name not in held for name in spec.parameter_names], dtype=bool)

    def loglik(theta: np.ndarray) -> float:
        # the optimiser's own executable (value and gradient): a separately jitted
        # log-likelihood would cost a compilation, a tenth of a 600-draw Electricity fit
        with x64():
            negative, _ = problem.value_and_grad(jnp.asarray(theta), problem.data)
            return -float(negative)

    return find_separation(
        loglik,
        found.result.x,
        found.loglik,
        spec.parameter_names,
        parameter_scales(problem),
        checkable,
        float(np.sum(problem.arrays.weights)),
    )


def estimate_nested(
    model,
    data: ChoiceData,
    *,
    init: Mapping[str, float] | Sequence[float] | np.ndarray | None = None,
    optimizer: str = "auto",
    tolerance: float = 1e-6,
    max_iterations: int = 2000,
    hessian: bool = True,
    verbose: bool | int = False,
    progress: bool = False,
    fix: Mapping[str, float] | None = None,
    bounds: Mapping[str, tuple[float | None, float | None]] | None = None,
    constraints: Sequence[Constraint] | None = None,
):
    """Maximum likelihood of a (cross-)nested logit (:mod:`mixlogit.estimation.nested`).

    The start is the MNL (coefficients by Newton's method, ``lambda = 1``, equal allocations)
    unless ``init`` (a mapping by parameter name, or a full vector) says otherwise. Every
    ``lambda`` is bounded below by
    :data:`~mixlogit.estimation.nested.LAMBDA_LOWER_BOUND` and every allocation to [0, 1]
    unless ``bounds`` names it, so the optimiser is L-BFGS-B.

    Returns:
        :class:`~mixlogit.results.EstimationResults` (``method="maximum likelihood"``).
    """
    start_time = time.perf_counter()
    require_choice_data(data)
    nesting = nesting_of(model)
    names = nesting.parameter_names
    box = {**nesting.default_bounds(), **(bounds or {})}
    restrictions = parse_restrictions(
        names, fix, {n: b for n, b in box.items() if n not in (fix or {})}, constraints
    )
    problem = build_nested_problem(model, data)
    theta0 = _nested_start(nesting, problem, init)
    optimiser = Optimiser(optimizer, tolerance, max_iterations, verbose, progress, restrictions)
    found = optimiser.maximise(problem, theta0, desc="nested logit")
    return _exact_results(
        model, data, problem, found, found.result.x, restrictions, hessian, progress, start_time
    )


def _nested_start(nesting: NestingSpec, problem: Problem, init) -> np.ndarray:
    names = nesting.parameter_names
    if init is not None and not isinstance(init, Mapping):
        theta = np.asarray(init, dtype=np.float64)
        if theta.shape != (len(names),):
            raise ValueError(
                f"init has shape {theta.shape}; expected ({len(names)},) for {list(names)}"
            )
        return theta
    coefficients = mnl_newton(problem.arrays)
    if coefficients is None:
        coefficients = np.zeros(len(nesting.variables))
    start = dict(zip(nesting.variables, coefficients, strict=True)) | nesting.start()
    if init is not None:
        unknown = sorted(set(init) - set(names))
        if unknown:
            raise ValueError(f"init names {unknown} are not parameters {list(names)}")
        start.update({str(k): float(v) for k, v in init.items()})
    return np.array([start[n] for n in names], dtype=np.float64)


def estimate_latent_class(
    model,
    data: ChoiceData,
    *,
    init: Mapping[str, float] | Sequence[float] | np.ndarray | None = None,
    optimizer: str = "auto",
    tolerance: float = 1e-6,
    max_iterations: int = 2000,
    hessian: bool = True,
    verbose: bool | int = False,
    progress: bool = False,
    num_starts: int = 5,
    start_seed: int | None = 0,
    fix: Mapping[str, float] | None = None,
    bounds: Mapping[str, tuple[float | None, float | None]] | None = None,
    constraints: Sequence[Constraint] | None = None,
):
    """Maximum likelihood of a latent-class logit (:mod:`mixlogit.estimation.latent_class`).

    The likelihood has a maximum per labelling of the classes and often local maxima too, so
    the optimiser runs from ``num_starts`` starts (default 5; :func:`latent_class_starts`) on
    one compiled problem and keeps the best (a ``LocalMaximumWarning`` when converged starts
    disagree); the classes are then numbered by increasing ``order_by`` coefficient.

    Returns:
        :class:`~mixlogit.results.EstimationResults` with ``class_membership()``.
    """
    start_time = time.perf_counter()
    num_starts = check_num_starts(num_starts, start_seed)
    require_choice_data(data)
    latent = latent_class_of(model)
    names = latent.parameter_names
    restrictions = parse_restrictions(names, fix, bounds, constraints)
    problem = build_latent_class_problem(model, data)
    starts = latent_class_starts(latent, problem, init, num_starts, start_seed)
    starts = np.array([restrictions.impose(s) for s in starts])
    optimiser = Optimiser(
        optimizer,
        tolerance,
        max_iterations,
        verbose,
        progress,
        restrictions if restrictions.active else None,
    )

    def maximise(theta_start: np.ndarray) -> Maximum:
        return optimiser.maximise(problem, theta_start, desc="latent class")

    records = None
    if len(starts) == 1:
        found = maximise(starts[0])
    else:
        found, records = run_starts(maximise, starts, verbose=verbose, stacklevel=4)
    theta = found.result.x
    if not restrictions.active:
        # number the classes by order_by (restrictions name classes: then keep the labels)
        theta = relabel(latent, theta)
    return _exact_results(
        model, data, problem, found, theta, restrictions, hessian, progress, start_time, records
    )


def _exact_results(
    model,
    data: ChoiceData,
    problem: Problem,
    found: Maximum,
    theta: np.ndarray,
    restrictions: Restrictions,
    hessian: bool,
    progress: bool,
    start_time: float,
    records: list | None = None,
) -> EstimationResults:
    """The results of a fit without draws (nested logit, latent class) at ``theta`` (the
    optimiser's point, or a relabelling of it): the warnings on convergence and bounds, the
    covariances, the statistics."""
    if not found.converged:
        warnings.warn(
            f"the optimiser did not converge ({found.result.message}); largest gradient entry "
            f"{np.max(np.abs(restrictions.project(found.gradient))):.3g}",
            ConvergenceWarning,
            stacklevel=4,
        )
    held = restrictions.at_bound(theta)
    if held:
        warnings.warn(
            f"parameters {held} ended at a bound: their standard errors assume an interior "
            "maximum and are not valid there",
            RuntimeWarning,
            stacklevel=4,
        )
    with x64():
        gradient = np.asarray(problem.value_and_grad(jnp.asarray(theta), problem.data)[1])
    if hessian:
        hess, cov, robust = covariances(problem, theta, progress, restrictions)
    else:
        hess = cov = robust = np.full((len(theta), len(theta)), np.nan)
    arrays = problem.arrays
    null_ll = float(-np.sum(arrays.weights * np.log(arrays.available.sum(axis=1))))
    return EstimationResults(
        model=model,
        names=list(problem.parameter_names),
        params=np.asarray(theta, dtype=np.float64),
        cov=cov,
        robust_cov=robust,
        hessian=hess,
        gradient=gradient,
        loglik=found.loglik,
        null_loglik=null_ll,
        num_situations=arrays.X.shape[0],
        num_units=problem.likelihood.num_units,
        num_draws=0,
        draws=None,
        seed=None,
        method="maximum likelihood",
        panel=data.has_panel,
        converged=found.converged,
        message=str(found.result.message),
        iterations=int(found.result.get("nit", found.history["iterations"])),
        function_evaluations=found.history["evals"],
        time=time.perf_counter() - start_time,
        data=data,
        problem=problem,
        starts=records,
        fixed_parameters=restrictions.fixed_parameters() or None,
        bounds=restrictions.bounds() or None,
        constraints=restrictions.constraint_texts() or None,
    )


def latent_class_starts(
    latent, problem: Problem, init, num_starts: int, seed: int | None
) -> np.ndarray:
    """``(num_starts, P)`` starts of a latent-class fit: ``init`` (a full vector, or a mapping
    over the default) first; the default spreads the MNL coefficients over the classes
    (class ``c`` at ``b + t_c (|b| + 0.5 / scale)``, ``t_c`` evenly from -1/2 to 1/2) with
    equal shares; the others add normal perturbations of that size, seeded by ``seed``."""
    names = latent.parameter_names
    num_c, num_k = latent.num_classes, len(latent.variables)
    if init is not None and not isinstance(init, Mapping):
        theta0 = np.asarray(init, dtype=np.float64)
        if theta0.shape != (len(names),):
            raise ValueError(
                f"init has shape {theta0.shape}; expected ({len(names)},) for {list(names)}"
            )
    else:
        mnl = mnl_newton(problem.arrays)
        b = np.zeros(num_k) if mnl is None else np.asarray(mnl)
        size = np.abs(b) + 0.5 / variable_scales(problem.arrays)
        offsets = np.linspace(-0.5, 0.5, num_c)
        theta0 = np.zeros(len(names))
        theta0[: num_c * num_k] = (b[None] + offsets[:, None] * size[None]).ravel()
        if isinstance(init, Mapping):
            unknown = sorted(set(init) - set(names))
            if unknown:
                raise ValueError(f"init names {unknown} are not parameters {list(names)}")
            for name, value in init.items():
                theta0[names.index(name)] = float(value)
    rng = np.random.default_rng(seed)
    starts = [theta0]
    size = np.abs(theta0[: num_c * num_k]) + np.tile(0.5 / variable_scales(problem.arrays), num_c)
    for _ in range(num_starts - 1):
        start = theta0.copy()
        start[: num_c * num_k] += rng.normal(0.0, 1.0, num_c * num_k) * size
        starts.append(start)
    return np.array(starts)
