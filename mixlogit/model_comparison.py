"""Likelihood-ratio test of two nested models fitted to the same choices.

``LR = 2 (LL_unrestricted - LL_restricted)`` is asymptotically chi-squared with as many degrees
of freedom as the unrestricted model has extra parameters, when the restriction is interior.
A mixed logit against the MNL without its spread tests ``sd = 0``, a point on the boundary of
the parameter space: there the null distribution is the 50:50 mixture of chi-squared with
``df - 1`` and ``df`` degrees of freedom for one spread (Self and Liang 1987), and the plain
chi-squared p-value is conservative (twice too large at ``df = 1``). Both are reported; with
several spreads at the boundary the mixture weights depend on the information matrix and only
the conservative p-value is given.

With simulated likelihoods both models should use the same draws (the same ``seed``, draw type
and number), so that simulation noise does not enter the difference.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from scipy import stats

__all__ = ["LikelihoodRatioTest", "likelihood_ratio_test"]

#: Prefixes of parameters that are spreads of random coefficients (0 is their boundary).
SPREAD_PREFIXES = ("sd.", "chol.")


class LikelihoodRatioTest(NamedTuple):
    """Result of :func:`likelihood_ratio_test`.

    Attributes:
        statistic: ``2 (LL_unrestricted - LL_restricted)`` (nats x 2, at least 0).
        df: extra parameters of the unrestricted model.
        p_value: chi-squared(``df``) tail probability (conservative at a boundary).
        extra_parameters: the unrestricted model's parameters the restricted one lacks.
        boundary_parameters: those among them that are spreads (tested at their boundary 0).
        p_value_boundary: with exactly one spread among the extra parameters, the tail of the
            50:50 mixture of chi-squared(``df - 1``) and chi-squared(``df``); NaN otherwise.
    """

    statistic: float
    df: int
    p_value: float
    extra_parameters: tuple[str, ...]
    boundary_parameters: tuple[str, ...]
    p_value_boundary: float


def likelihood_ratio_test(restricted, unrestricted, *, tolerance: float = 1e-6):
    """Test a restricted model against an unrestricted one that nests it.

    Args:
        restricted, unrestricted: :class:`~mixlogit.results.EstimationResults` fitted to the
            same choice situations; every parameter of ``restricted`` is a parameter of
            ``unrestricted``.
        tolerance: how far (relative to ``|LL|``) the restricted log-likelihood may exceed the
            unrestricted one before the pair is refused (rounding or optimiser tolerance);
            within it the statistic is 0.

    Returns:
        :class:`LikelihoodRatioTest`.

    Raises:
        ValueError: naming the problem when the models were not fitted to the same situations,
            are not nested by their parameter names, have no extra parameter, or the restricted
            model fits better than the unrestricted one by more than ``tolerance`` (the larger
            model stopped short of its maximum, or the models are not nested).
    """
    if restricted.num_situations != unrestricted.num_situations or not math.isclose(
        restricted.null_loglik, unrestricted.null_loglik, rel_tol=1e-9, abs_tol=1e-9
    ):
        raise ValueError(
            "the models were not fitted to the same choices: "
            f"{restricted.num_situations} situations (null LL {restricted.null_loglik:.6f}) vs "
            f"{unrestricted.num_situations} (null LL {unrestricted.null_loglik:.6f})"
        )
    # a parameter held by ``fit(fix=...)`` is not estimated: fixing one is a restriction
    restricted_free = _estimated(restricted)
    unrestricted_free = _estimated(unrestricted)
    missing = [n for n in restricted_free if n not in unrestricted_free]
    if missing:
        raise ValueError(
            f"the models are not nested: the restricted model's estimated parameters {missing} "
            f"are not estimated in the unrestricted model ({list(unrestricted_free)})"
        )
    extra = tuple(n for n in unrestricted_free if n not in restricted_free)
    if not extra:
        raise ValueError(
            "the unrestricted model estimates no parameter the restricted one lacks: nothing "
            "to test"
        )
    difference = unrestricted.loglik - restricted.loglik
    if difference < -tolerance * max(1.0, abs(unrestricted.loglik)):
        raise ValueError(
            f"the restricted model fits better (LL {restricted.loglik:.6f}) than the "
            f"unrestricted one (LL {unrestricted.loglik:.6f}): the larger model stopped short of "
            "its maximum (try num_starts > 1) or the models are not nested"
        )
    statistic = max(0.0, 2.0 * difference)
    df = len(extra)
    held = restricted.fixed_parameters or {}
    # a spread absent from the restricted model or fixed at 0 there: the null is on the boundary
    boundary = tuple(n for n in extra if n.startswith(SPREAD_PREFIXES) and held.get(n, 0.0) == 0.0)
    p_value = float(stats.chi2.sf(statistic, df))
    if len(boundary) == 1:
        lower = float(stats.chi2.sf(statistic, df - 1)) if df > 1 else float(statistic <= 0.0)
        p_boundary = 0.5 * lower + 0.5 * p_value
    else:
        p_boundary = math.nan
    return LikelihoodRatioTest(statistic, df, p_value, extra, boundary, p_boundary)


def _estimated(results) -> tuple[str, ...]:
    """Names of the parameters ``results`` estimated (neither held by ``fit(fix=...)`` nor
    determined by one of its ``constraints``)."""
    restrictions = getattr(results, "restrictions", None)
    if restrictions is None:
        return tuple(results.names)
    return tuple(results.names[i] for i in restrictions.free)
