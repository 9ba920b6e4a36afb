"""Diagnostics of a fit's maximum: separation, local maxima, simulation noise.

Separation: data in which the likelihood has no finite maximum.

A variable *separates* the choices when a coefficient direction exists along which every
situation's chosen alternative gains utility over the others (complete separation) or none
loses it while some gain (quasi-separation). The log-likelihood then increases for ever along
that ray: an optimiser stops where the gradient is below its tolerance, at a point with a
large coefficient, a huge standard error and (complete separation) a log-likelihood near 0.
Nothing about that point is an estimate, so the fit must say so.

The checks here are after the fact and cheap (a few log-likelihood evaluations):

* every chosen alternative predicted with probability near 1 (log-likelihood above
  ``-1e-3`` per unit of weight: a geometric-mean probability of the chosen alternative
  above 0.999);
* for each coefficient-scale parameter (fixed coefficients, means of the random ones whose
  mean is in the coefficient's units) that is large for its variable's scale
  (``|theta_k| * scale_k > 1``), doubling it does not lower the log-likelihood by more than
  ``1e-3``: a genuine estimate of that size would lose ``~ (theta_k / se_k)^2 / 2``, which
  is large unless its standard error is many times the coefficient.

Local maxima: a mixed logit's simulated log-likelihood is not concave, so BFGS from one start
can stop at a worse maximum with a small gradient (``converged=True``). With several starts
(``num_starts`` of :meth:`~mixlogit.estimators.MixedLogit.fit`) :func:`local_maxima_message`
says when they stopped at different values (:class:`LocalMaximumWarning`).

Simulation noise: the estimates of maximum simulated likelihood depend on the draws;
:func:`simulation_noise_message` says when a re-estimation with an independent draw set moves
an estimate by more than its standard error or the log-likelihood by more than
:data:`NOISE_LOGLIK_TOLERANCE` (:class:`SimulationNoiseWarning`).

Only NumPy is imported, so the torch-only strength MLE can use :class:`SeparationWarning`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

__all__ = [
    "LocalMaximumWarning",
    "Separation",
    "SeparationWarning",
    "SimulationNoiseWarning",
    "find_separation",
    "local_maxima_message",
    "simulation_noise_message",
    "strength_separation",
]


class SeparationWarning(UserWarning):
    """The data separate the choices: the likelihood has no finite maximum, so the reported
    estimates (and their standard errors) are where the optimiser stopped, not estimates."""


class LocalMaximumWarning(UserWarning):
    """Starts of a multistart fit stopped at different log-likelihoods: the likelihood has
    several local maxima, and a single start (the default) may report a worse one as
    converged. The results keep the best; ``results.starts`` lists every start."""


class SimulationNoiseWarning(UserWarning):
    """Re-estimated with an independent set of draws, an estimate moved by more than its
    standard error or the log-likelihood by more than about 1: the estimates depend on the
    draws, so use more draws before reading them."""


class Separation(NamedTuple):
    """Outcome of :func:`find_separation`.

    Attributes:
        parameters: names of the parameters along which the log-likelihood keeps increasing.
        perfect_fit: every chosen alternative is predicted with probability near 1.
        message: a sentence naming them, for the warning and ``results.message``.
    """

    parameters: tuple[str, ...]
    perfect_fit: bool
    message: str


#: log-likelihood per unit weight above which the fit is "perfect" (mean P(chosen) > 0.999)
PERFECT_FIT_PER_WEIGHT = -1e-3
#: standardised size above which a coefficient is checked by doubling it
LARGE_STANDARDISED = 1.0
#: largest log-likelihood loss from doubling such a coefficient that still counts as flat
FLAT_LOSS = 1e-3


def find_separation(
    loglik: Callable[[np.ndarray], float],
    theta: np.ndarray,
    value: float,
    names: Sequence[str],
    scales: np.ndarray,
    checkable: np.ndarray,
    total_weight: float,
) -> Separation | None:
    """Separation diagnostic at the optimiser's stopping point, or None when there is none.

    Args:
        loglik: ``theta -> log-likelihood`` (float).
        theta: ``(P,)`` the parameters where the optimiser stopped; ``value`` its
            log-likelihood.
        names: ``(P,)`` parameter names.
        scales: ``(P,)`` typical size of each parameter (``1 / scale`` of its variable).
        checkable: ``(P,)`` bool, parameters in the coefficient's units (doubling them moves
            along the coefficient ray).
        total_weight: the sum of the situation weights.
    """
    theta = np.asarray(theta, dtype=np.float64)
    perfect = bool(value > PERFECT_FIT_PER_WEIGHT * max(total_weight, 1e-300))
    flagged = []
    for k in map(int, np.flatnonzero(checkable)):
        if abs(theta[k]) <= LARGE_STANDARDISED * scales[k]:
            continue
        doubled = theta.copy()
        doubled[k] *= 2.0
        new = float(loglik(doubled))
        if np.isfinite(new) and new >= value - FLAT_LOSS:
            flagged.append(names[k])
    if not flagged and not perfect:
        return None
    if flagged:
        what = (
            f"the log-likelihood does not decrease when {_listed(flagged)} "
            f"{'is' if len(flagged) == 1 else 'are'} doubled, so "
            f"{'that variable separates' if len(flagged) == 1 else 'those variables separate'}"
            " the choices (completely or in part) and the maximum lies at infinity"
        )
    else:
        what = "no single coefficient is flat, but the choices are separated by a combination"
    if perfect:
        what += f"; every choice is predicted with probability near 1 (log-likelihood {value:.3g})"
    message = (
        f"separation: {what}. The estimates and standard errors are not meaningful: drop or "
        "merge the separating variable, or add data in which it does not decide the choice"
    )
    return Separation(tuple(flagged), perfect, message)


def strength_separation(signed_d: np.ndarray, weights: np.ndarray) -> str | None:
    """Why a positive-strength fit of binary choices has no finite maximum, or None.

    ``signed_d (N,)`` is ``d`` where ``y = 1`` and ``-d`` where ``y = 0``; with the strength
    ``beta > 0``, ``P(y) = E[sigmoid(beta * signed_d)]``. If no observation (of positive
    weight) has ``signed_d < 0``, a larger strength never lowers any probability, so the
    likelihood increases towards ``beta -> infinity``; if none has ``signed_d > 0``, it
    increases towards ``beta -> 0``.
    """
    used = np.asarray(weights) > 0
    d = np.asarray(signed_d)[used]
    if d.size == 0:
        return None
    if not np.any(d != 0):
        return (
            "d is 0 for every observation: the choices carry no information on the strength, "
            "which is not identified"
        )
    if not np.any(d < 0):
        return (
            "separation: every choice agrees with the sign of d (y = 1 exactly where d > 0, "
            "ties at d = 0 aside), so the likelihood increases without bound as the strength "
            "grows; the estimate and its standard errors are where the optimiser stopped"
        )
    if not np.any(d > 0):
        return (
            "separation: every choice contradicts the sign of d, so the likelihood increases "
            "as the strength falls to 0; the estimate is a boundary point, not a maximum"
        )
    return None


#: starts whose log-likelihoods differ by at most this much reached the same maximum
SAME_MAXIMUM_TOLERANCE = 1e-2
#: a change of the maximised log-likelihood beyond this, with independent draws, is noise
NOISE_LOGLIK_TOLERANCE = 1.0
#: a change of an estimate beyond this many standard errors, with independent draws, is noise
NOISE_SHIFT_TOLERANCE = 1.0


def local_maxima_message(
    logliks: Sequence[float],
    converged: Sequence[bool],
    tolerance: float = SAME_MAXIMUM_TOLERANCE,
) -> str | None:
    """Why the starts of a multistart fit disagree, or None when every converged start
    reached the best log-likelihood within ``tolerance``.

    Args:
        logliks: ``(k,)`` final log-likelihood of each start (start 1, the default start,
            first; non-finite for a start that failed).
        converged: ``(k,)`` whether each start met the optimiser's convergence test.
        tolerance: log-likelihood difference below which two starts reached the same maximum.
    """
    values = np.asarray(logliks, dtype=np.float64)
    converged_array = np.asarray(converged, dtype=bool)
    finite = np.isfinite(values)
    if not np.any(finite):
        return None
    best = float(np.max(values[finite]))
    at_best = finite & (values >= best - tolerance)
    worse = converged_array & finite & ~at_best  # converged elsewhere: another local maximum
    if not np.any(worse):
        return None
    first = int(np.argmax(at_best)) + 1
    default = (
        "the default start (start 1) reached it"
        if at_best[0]
        else f"the default start (start 1) stopped at {values[0]:.4f}"
    )
    others = ", ".join(
        f"{values[i]:.4f} (start {i + 1})" for i in np.flatnonzero(worse)[:8].tolist()
    )
    unconverged = int(np.sum(~converged_array & ~at_best))
    return (
        f"the log-likelihood has several local maxima: {int(at_best.sum())} of {len(values)} "
        f"starts reached the best, {best:.4f} (first by start {first}; within {tolerance:g}); "
        f"{default}. Converged starts stopped lower at {others}"
        + (f"; {unconverged} more did not converge" if unconverged else "")
        + ". The results are those of the best start; results.starts lists every start. "
        "Use more starts if few reached the best"
    )


def simulation_noise_message(
    loglik_change: float,
    shifts: np.ndarray,
    names: Sequence[str],
    loglik_tolerance: float = NOISE_LOGLIK_TOLERANCE,
    shift_tolerance: float = NOISE_SHIFT_TOLERANCE,
) -> str | None:
    """Why the estimates depend on the draws, or None when they do not beyond the tolerances.

    Args:
        loglik_change: maximised log-likelihood with the independent draws minus the fit's.
        shifts: ``(P,)`` change of each estimate in units of its standard error (NaN where the
            standard error is unknown).
        names: ``(P,)`` parameter names.
    """
    shifts = np.asarray(shifts, dtype=np.float64)
    moved = [i for i in range(len(shifts)) if abs(shifts[i]) > shift_tolerance]
    loglik_moved = not abs(loglik_change) <= loglik_tolerance  # NaN counts as moved
    if not moved and not loglik_moved:
        return None
    parts = []
    if loglik_moved:
        parts.append(f"the maximised log-likelihood changed by {loglik_change:+.3f}")
    if moved:
        order = sorted(moved, key=lambda i: -abs(shifts[i]))
        listed = ", ".join(f"{names[i]!r} by {shifts[i]:+.2f} SE" for i in order[:8])
        parts.append(
            f"{len(moved)} estimate(s) moved by more than {shift_tolerance:g} SE: {listed}"
        )
    return (
        "simulation noise: re-estimated with an independent set of draws, "
        + "; ".join(parts)
        + ". The estimates depend on the draws: increase num_draws"
    )


def _listed(names: Sequence[str]) -> str:
    return ", ".join(repr(n) for n in names)
