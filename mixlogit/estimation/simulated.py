"""Maximum simulated likelihood: quasi-Monte Carlo draws per decision maker, then BFGS."""

from __future__ import annotations

import numpy as np

from mixlogit.data import ChoiceData
from mixlogit.estimation.optimize import Maximum, Optimiser
from mixlogit.estimation.problem import build_problem

__all__ = ["maximise_simulated"]


def maximise_simulated(
    model,
    data: ChoiceData,
    theta0: np.ndarray,
    *,
    num_draws: int,
    draws: str,
    seed: int | None,
    panel: bool,
    chunk_size: int | None,
    optimiser: Optimiser,
) -> Maximum:
    """Maximise the log-likelihood simulated with ``num_draws`` draws of type ``draws`` per
    unit (one draw for a model without random coefficients: the exact likelihood)."""
    problem = build_problem(
        model,
        data,
        num_draws=num_draws,
        draws=draws,
        seed=seed,
        panel=panel,
        chunk_size=chunk_size,
    )
    return optimiser.maximise(problem, theta0)
