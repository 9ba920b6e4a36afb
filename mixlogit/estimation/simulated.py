"""Maximum simulated likelihood: quasi-Monte Carlo draws per decision maker, then BFGS; and
the simulation-noise diagnostic (the fit repeated with an independent draw set).

The simulated log-likelihood is a function of the draws. :func:`check_simulation_noise`
re-evaluates it at the estimates with draws independent of the estimation's
(:func:`independent_draws`), re-maximises from the estimates, and reports how far the
log-likelihood and each estimate (in units of its standard error) moved; it warns
(:class:`~mixlogit.estimation.diagnostics.SimulationNoiseWarning`) when that is more than
the standard error or about one log-likelihood unit, i.e. when the draws decide what the
results say.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict, Unpack

import jax
import jax.numpy as jnp
import numpy as np

from mixlogit.data import ChoiceData
from mixlogit.draws import DRAW_TYPES, check_halton_options, standardised_draws
from mixlogit.estimation.diagnostics import SimulationNoiseWarning, simulation_noise_message
from mixlogit.estimation.optimize import Maximum, Optimiser, hessian_matrix
from mixlogit.estimation.problem import Problem, build_problem
from mixlogit.likelihood import ParameterLayout, make_likelihood_data, x64
from mixlogit.spec import as_model_spec

__all__ = [
    "HALTON_SKIP",
    "SimulatedOptions",
    "check_simulation_noise",
    "independent_draws",
    "maximise_simulated",
    "redrawn_problem",
    "simulated_problem",
]

#: leading Halton points the estimation drops (:func:`mixlogit.draws.make_draws`' default)
HALTON_SKIP = 100


class SimulatedOptions(TypedDict):
    """The keyword arguments of :func:`simulated_problem` and :func:`maximise_simulated`, all
    required (see :func:`~mixlogit.estimation.problem.build_problem`)."""

    num_draws: int
    draws: str
    seed: int | None
    panel: bool
    chunk_size: int | None
    check_identified: bool
    halton_options: Mapping[str, Any] | None
    devices: int | Sequence[jax.Device] | None


def simulated_problem(model, data: ChoiceData, **options: Unpack[SimulatedOptions]) -> Problem:
    """The problem of maximum simulated likelihood: ``num_draws`` draws of type ``draws`` per
    unit (one draw for a model without random coefficients: the exact likelihood)."""
    # what a keyword-only signature would refuse (mypy checks typed callers; this, the rest)
    names = SimulatedOptions.__annotations__.keys()
    missing, unknown = sorted(names - options.keys()), sorted(options.keys() - names)
    if missing or unknown:
        raise TypeError(
            f"simulated_problem() takes the keyword arguments {list(names)}: missing {missing}, "
            f"unexpected {unknown}"
        )
    return build_problem(model, data, **options)


def maximise_simulated(
    model,
    data: ChoiceData,
    theta0: np.ndarray,
    *,
    optimiser: Optimiser,
    **options: Unpack[SimulatedOptions],
) -> Maximum:
    """Maximise the log-likelihood simulated with ``num_draws`` draws of type ``draws`` per
    unit (one draw for a model without random coefficients: the exact likelihood)."""
    return optimiser.maximise(simulated_problem(model, data, **options), theta0)


def independent_draws(
    spec,
    num_units: int,
    num_draws: int,
    kind: str,
    seed: int | None,
    halton_options: Mapping[str, Any] | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Standardised draws ``(U, R, Kr)``, log weights ``(R,)`` and their description, sharing
    no point with the estimation's draws of type ``kind``.

    Halton draws (``"halton"``, ``"halton-scrambled"``, ``"halton-shuffled"``) continue the
    sequence after the ``U * R`` points the estimation used (skip ``100 + U * R`` instead of
    100, or the estimation's own ``halton_options`` skip plus ``U * R``, with its primes),
    with ``seed`` for the scrambling or shuffling; the other types are redrawn with
    ``seed``. The caller passes a seed other than the estimation's.
    """
    if kind not in DRAW_TYPES:
        raise ValueError(f"unknown draw type {kind!r}; choose one of {DRAW_TYPES}")
    options = check_halton_options(halton_options, kind, len(spec.random))
    first = options.pop("skip", HALTON_SKIP)
    skip = first + num_units * num_draws if kind.startswith("halton") else None
    # the estimation's own draws, continued past the points it used
    halton = {**options, "skip": skip} if skip is not None else None
    standard, log_weights = standardised_draws(
        spec, num_units, num_draws, kind, seed, halton_options=halton
    )
    description = {"draws": kind, "num_draws": num_draws, "seed": seed, "skip": skip}
    return standard, log_weights, description


def redrawn_problem(problem: Problem, standard: np.ndarray, log_weights: np.ndarray) -> Problem:
    """``problem`` with the draws ``standard (U, R, Kr)`` (log weights ``(R,)``) in place of
    its own, keeping its jitted functions: with as many draws as before the device arrays
    have the same shapes, so nothing is compiled again."""
    layout = ParameterLayout.from_spec(as_model_spec(problem.model))
    chunk = int(problem.data.standard.shape[2])  # (C, U, Rc, Kr): the draws per chunk
    with x64():
        data, _, _ = make_likelihood_data(
            problem.arrays,
            layout,
            problem.unit,
            np.asarray(problem.data.unit_weights),
            standard,
            log_weights,
            chunk,
            covariates=np.asarray(problem.data.covariates),
        )
    return dataclasses.replace(problem, data=data, num_draws=standard.shape[1])


def check_simulation_noise(
    results,
    *,
    seed: int | None = None,
    optimiser: Optimiser | None = None,
    stacklevel: int = 2,
) -> dict[str, Any]:
    """Simulation-noise diagnostic of a maximum simulated likelihood fit.

    Re-evaluates the log-likelihood at ``results.params`` with an independent draw set of the
    same type and size (:func:`independent_draws`), re-maximises it from there, and compares.
    The result is also stored as ``results.simulation_noise``.

    Args:
        results: :class:`~mixlogit.results.EstimationResults` of ``method="simulation"`` with
            random coefficients (its ``problem`` or ``data`` is needed).
        seed: of the independent draws (default ``results.seed + 1``, or 1 without a seed).
        optimiser: how to re-maximise (default BFGS, tolerance 1e-6, as ``fit``).
        stacklevel: of the warning.

    Returns:
        ``{"draws", "num_draws", "seed", "skip"}`` (the independent draw set; ``skip``: Halton
        points dropped, else None), ``"loglik"`` (the fit's), ``"loglik_at_estimates"`` (the
        new draws at the fit's estimates), ``"loglik_reestimated"`` (their maximum),
        ``"loglik_change"`` (re-estimated minus the fit's), ``"params_reestimated"``,
        ``"shift_in_se"`` (``{name: (new - estimate) / SE}``, classical SE),
        ``"max_abs_shift_in_se"``, ``"converged"`` (of the re-estimation) and ``"warning"``
        (the message, or None).

    Warns:
        SimulationNoiseWarning: an estimate moved by more than its standard error
            (:data:`~mixlogit.estimation.diagnostics.NOISE_SHIFT_TOLERANCE`) or the maximised
            log-likelihood by more than
            :data:`~mixlogit.estimation.diagnostics.NOISE_LOGLIK_TOLERANCE`.
    """
    spec = as_model_spec(results.model)
    if not spec.random or results.method != "simulation":
        raise ValueError(
            "the simulation-noise diagnostic needs a maximum simulated likelihood fit with "
            f"random coefficients; these results are method={results.method!r} with "
            f"{len(spec.random)} random coefficients (their likelihood is not simulated)"
        )
    problem = results.problem
    if problem is None:
        if results.data is None:
            raise ValueError(
                "the simulation-noise diagnostic needs the data: results loaded from disk keep "
                "none (EstimationResults.load(path, data=...))"
            )
        problem = build_problem(
            results.model,
            results.data,
            num_draws=results.num_draws,
            draws=results.draws or "halton",
            seed=results.seed,
            panel=results.panel,
            check_identified=False,
            halton_options=results.halton_options,
        )
    if seed is None:
        seed = 1 if results.seed is None else int(results.seed) + 1
    num_units = int(problem.data.unit_weights.shape[0])
    standard, log_w, description = independent_draws(
        spec, num_units, results.num_draws, results.draws or "halton", seed, results.halton_options
    )
    redrawn = redrawn_problem(problem, standard, log_w)
    theta = np.asarray(results.params, dtype=np.float64)
    with x64():
        at_estimates = float(redrawn.loglik(jnp.asarray(theta), redrawn.data))
    restrictions = results.restrictions
    if optimiser is None:
        optimiser = Optimiser(restrictions=restrictions if restrictions.active else None)
    found = optimiser.maximise(redrawn, theta, desc="simulation noise")
    se = np.asarray(results.std_errors, dtype=np.float64)
    free = restrictions.free
    if not np.all(np.isfinite(se[free])):  # fitted with hessian=False: the fit's draws' SEs
        block = hessian_matrix(problem, theta, index=free, basis=restrictions.basis)
        with np.errstate(invalid="ignore"):
            se = np.sqrt(np.diag(restrictions.embed(np.linalg.pinv(-block))))
            se = np.where(restrictions.fixed_mask, np.nan, se)
    new = np.asarray(found.result.x, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        shifts = (new - theta) / se
    names = list(results.names)
    change = float(found.loglik - results.loglik)
    message = simulation_noise_message(change, shifts, names)
    report = {
        **description,
        "loglik": float(results.loglik),
        "loglik_at_estimates": at_estimates,
        "loglik_reestimated": float(found.loglik),
        "loglik_change": change,
        "params_reestimated": dict(zip(names, map(float, new), strict=True)),
        "shift_in_se": dict(zip(names, map(float, shifts), strict=True)),
        "max_abs_shift_in_se": float(np.nanmax(np.abs(shifts), initial=0.0)),
        "converged": bool(found.converged),
        "warning": message,
    }
    results.simulation_noise = report
    if message is not None:
        warnings.warn(message, SimulationNoiseWarning, stacklevel=stacklevel)
    return report
