"""Multistart: the optimiser from several starting values, keeping the best maximum.

A mixed logit's simulated log-likelihood is not concave. BFGS from the default start (MNL
estimates for the means, 0.1 for the spreads, :func:`~mixlogit.estimation.start.starting_values`)
can stop at a local maximum with a small gradient, which the convergence test cannot tell
from the global one. Start 1 is the default start; starts 2..k perturb it at random (seeded,
:func:`random_starts`), as logitr's multistart does. The same compiled problem serves every
start (the caller passes one ``maximise`` function), so extra starts cost optimiser
iterations, not compilations.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence

import numpy as np

from mixlogit.estimation.diagnostics import (
    SAME_MAXIMUM_TOLERANCE,
    LocalMaximumWarning,
    local_maxima_message,
)
from mixlogit.estimation.optimize import LINEAR_DISTRIBUTIONS, Maximum
from mixlogit.likelihood import ParameterLayout
from mixlogit.spec import ModelSpec

__all__ = [
    "MEAN_SHIFT",
    "OFF_DIAGONAL",
    "SPREAD_RANGE",
    "check_num_starts",
    "random_starts",
    "run_starts",
    "summarise_starts",
]

#: a mean (or fixed coefficient) moves by ``U(-MEAN_SHIFT, MEAN_SHIFT)`` times its unit (one
#: over the scale of its variable's differences between alternatives, so the move changes
#: utilities by up to about one unit whatever the data's units); a logarithm (lognormal,
#: gamma) by that much on its own scale
MEAN_SHIFT = 1.0
#: a spread (and a Cholesky diagonal entry) is drawn ``U(*SPREAD_RANGE)`` times its unit
SPREAD_RANGE = (0.1, 2.0)
#: a Cholesky off-diagonal entry is drawn ``U(-OFF_DIAGONAL, OFF_DIAGONAL)`` times its row's unit
OFF_DIAGONAL = 0.5


def check_num_starts(num_starts, start_seed) -> int:
    """``num_starts`` as an int >= 1, or ValueError/TypeError naming the bad value."""
    if isinstance(num_starts, bool) or not isinstance(num_starts, (int, np.integer)):
        raise TypeError(f"num_starts must be an integer >= 1, got {num_starts!r}")
    if num_starts < 1:
        raise ValueError(f"num_starts must be >= 1 (1 = the default start only), got {num_starts}")
    if start_seed is not None and (
        isinstance(start_seed, bool) or not isinstance(start_seed, (int, np.integer))
    ):
        raise TypeError(f"start_seed must be an integer or None, got {start_seed!r}")
    return int(num_starts)


def random_starts(
    theta0: np.ndarray,
    spec: ModelSpec,
    units: np.ndarray,
    num_starts: int,
    seed: int | None,
) -> np.ndarray:
    """``(num_starts, P)`` starting vectors: row 0 is ``theta0``, the others perturb it.

    Args:
        theta0: ``(P,)`` the default start.
        spec: the model (which parameter is a mean, a spread, a Cholesky entry, a logarithm).
        units: ``(K,)`` typical size of each variable's coefficient, fixed variables first then
            random (one over :func:`~mixlogit.estimation.start.variable_scales`).
        num_starts: rows.
        seed: of ``numpy.random.default_rng``; the same seed gives the same starts.

    Means and fixed coefficients: ``theta0 + U(-1, 1) * unit`` (:data:`MEAN_SHIFT`); spreads
    of normal, triangular, uniform and truncated-normal coefficients and the Cholesky
    diagonal: ``U(0.1, 2) * unit`` (:data:`SPREAD_RANGE`), positive: the sign of a spread is
    not identified, and with a finite draw set a negative spread only mirrors the draws (a
    different draw set, whose maximum differs by simulation noise), so searching over signs
    would fit the noise, not the data. Cholesky off-diagonal: ``U(-0.5, 0.5) * unit`` of its row; lognormal
    log-location and log-spread and gamma log-shape and log-scale: shifted or drawn on their
    own (logarithmic) scale.
    """
    theta0 = np.asarray(theta0, dtype=np.float64)
    layout = ParameterLayout.from_spec(spec)
    kf, kr = layout.num_fixed, layout.num_random
    units = np.asarray(units, dtype=np.float64)
    linear = [m.distribution in LINEAR_DISTRIBUTIONS for m in layout.mixing]
    rng = np.random.default_rng(seed)
    starts = np.tile(theta0, (num_starts, 1))
    low, high = SPREAD_RANGE
    for row in starts[1:]:
        shift = rng.uniform(-MEAN_SHIFT, MEAN_SHIFT, size=kf + kr)
        row[:kf] += shift[:kf] * units[:kf]
        for k in range(kr):
            row[kf + k] += shift[kf + k] * (units[kf + k] if linear[k] else 1.0)
        position = kf + kr
        for k in layout.independent_index:
            mixing = layout.mixing[k]
            if mixing.distribution == "gamma":  # log scale: shift, as a mean
                row[position] += rng.uniform(-MEAN_SHIFT, MEAN_SHIFT)
            elif linear[k]:
                row[position] = rng.uniform(low, high) * units[kf + k]
            else:  # lognormal: the spread of log beta, unitless
                row[position] = rng.uniform(low, high)
            position += 1
        correlated = layout.correlated_index
        rows, cols = np.tril_indices(len(correlated))
        for i, j in zip(rows, cols, strict=True):
            k = correlated[i]
            unit = units[kf + k] if linear[k] else 1.0
            if i == j:
                row[position] = rng.uniform(low, high) * unit
            else:
                row[position] = rng.uniform(-OFF_DIAGONAL, OFF_DIAGONAL) * unit
            position += 1
    return starts


def run_starts(
    maximise: Callable[[np.ndarray], Maximum],
    starts: np.ndarray,
    *,
    verbose: bool | int = False,
    stacklevel: int = 4,
) -> tuple[Maximum, list[dict]]:
    """Maximise from each row of ``starts``; the best maximum and a record of every start.

    Args:
        maximise: ``theta0 -> Maximum`` (the optimiser on one problem, compiled once).
        starts: ``(k, P)`` starting vectors, the default start first.
        verbose: print one line per start, and the iteration logs of ``maximise``.

    Returns:
        The :class:`~mixlogit.estimation.optimize.Maximum` of largest finite log-likelihood
        (the first start on ties) and, per start, ``{"start": k (1-based), "theta0": list,
        "params": list, "loglik": float, "converged": bool, "iterations": int,
        "evaluations": int, "time": seconds}``.

    Warns:
        LocalMaximumWarning: converged starts stopped at log-likelihoods more than
            :data:`~mixlogit.estimation.diagnostics.SAME_MAXIMUM_TOLERANCE` below the best.
    """
    best: Maximum | None = None
    records: list[dict] = []
    for index, theta0 in enumerate(starts):
        began = time.perf_counter()
        found = maximise(theta0)
        record = {
            "start": index + 1,
            "theta0": [float(v) for v in theta0],
            "params": [float(v) for v in found.result.x],
            "loglik": float(found.loglik),
            "converged": bool(found.converged),
            "iterations": int(found.result.get("nit", found.history["iterations"])),
            "evaluations": int(found.history["evals"]),
            "time": time.perf_counter() - began,
        }
        records.append(record)
        if verbose:
            print(
                f"start {index + 1}/{len(starts)}: loglik {record['loglik']:.6f}, "
                f"converged {record['converged']}, iterations {record['iterations']}, "
                f"{record['time']:.1f} s",
                flush=True,
            )
        # strictly better only: ties keep the earlier start (the default start first)
        if best is None or (np.isfinite(found.loglik) and not found.loglik <= best.loglik):
            best = found
    if best is None:
        raise ValueError("starts has no rows")
    message = local_maxima_message(
        [r["loglik"] for r in records], [r["converged"] for r in records]
    )
    if message is not None:
        warnings.warn(message, LocalMaximumWarning, stacklevel=stacklevel)
    if verbose and len(records) > 1:
        print(summarise_starts(records), flush=True)
    return best, records


def summarise_starts(records: Sequence[dict]) -> str:
    """One line: the best log-likelihood, how many starts reached it, the first to do so."""
    values = np.array([r["loglik"] for r in records], dtype=np.float64)
    finite = np.isfinite(values)
    if not np.any(finite):
        return f"{len(records)} starts: none reached a finite log-likelihood"
    best = float(values[finite].max())
    at_best = finite & (values >= best - SAME_MAXIMUM_TOLERANCE)
    return (
        f"{len(records)} starts: best log-likelihood {best:.4f}, reached by "
        f"{int(at_best.sum())} (first: start {int(np.argmax(at_best)) + 1})"
    )
