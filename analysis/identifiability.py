"""Is the spread of preference strengths identified? The profile likelihood of its CV.

MixDPO-style training scores each label with ``P(d) = E_beta[sigmoid(beta d)]``: one strength
draw per pair and label. When every pair's reward gap ``d`` is free (a policy learns it), the
labels depend on the strength distribution only through this monotone link, and each pair's
gap can be moved until ``P(d)`` equals the pair's share of labels, under ANY link: the profile
likelihood of the strength CV is flat, exactly. Two things break the tie:

* panels (``level="annotator"``): the same annotator labels many pairs with one strength, so
  the labels of an annotator are scored jointly, ``E_beta[prod_i sigmoid(beta d_i)]``, and
  annotators who follow the gaps consistently are told apart from those who do not;
* covariates (``by``): subgroups with their own mean strength share each pair's gap, so their
  relative strengths (and, through the link's shape across subgroups, its spread) are fixed.

:func:`profile_cv` maximises the log-likelihood over everything but the CV (the mean strength,
per subgroup with ``by``; with ``gaps="free"`` also one gap per pair) at each CV of a grid and
returns the profile with its range (max - min) and a plain-language reading.

A pair whose labels all agree pushes its free gap to infinity, where its labels' likelihood
factors tend to 1 at every CV and level: such pairs are dropped from free-gap profiles (exactly:
they add 0 to the supremum) and counted in :attr:`CVProfile.num_unanimous_pairs`.

The flat case has a closed form. At pair level with one mean strength, each label of pair ``k``
has probability ``P(d_k)`` or ``1 - P(d_k)``, and for a strength that is positive almost surely
(Gamma, LogNormal) ``P(d) = E[sigmoid(beta d)]`` runs over all of (0, 1) as ``d`` does, at any
CV. So the supremum over the free gaps is the saturated binomial log-likelihood

    sum_k n_k [p_k log p_k + (1 - p_k) log(1 - p_k)],   p_k = the share of pair k's labels
                                                          that favour its given gap,

reached at the gap with ``P(d_k) = p_k``, the same for every CV.
:attr:`CVProfile.saturated_loglik` holds it, and :attr:`CVProfile.saturation_shortfall` the
largest distance of the numerical profile from it: a check of the inner maximisation (the
quadrature of ``P`` is accurate to about 1e-9 relative, so the profile can also sit a few 1e-9
nats *above* it).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from scipy import optimize, stats

from analysis.strength_panels import PanelData, panel_data, panel_log_likelihood
from mixlogit.data import plain_value
from mixlogit.families import StrengthFamily, get_family
from mixlogit.jax._ops import OPS

__all__ = ["CVProfile", "profile_cv"]

Level = Literal["pair", "annotator"]
Gaps = Literal["free", "given"]

#: Half the 95 % quantile of chi-square(1): the drop in profile log-likelihood that bounds an
#: approximate 95 % profile-likelihood interval, and the smallest range read as "identified".
LIKELIHOOD_RATIO_THRESHOLD = 0.5 * float(stats.chi2.ppf(0.95, 1))


@dataclass(frozen=True)
class CVProfile:
    """Profile log-likelihood of the strength CV (see :func:`profile_cv`).

    Attributes:
        table: one row per CV: ``cv``, ``profile_loglik`` (nats, maximised over the rest),
            ``converged`` and ``max_abs_gradient`` of the inner maximisation.
        mean_strengths: the maximising mean strength per subgroup (columns; ``"all"`` without
            ``by``), indexed by CV; with ``gaps="free"`` relative to the first subgroup, whose
            mean is fixed at 1 (free gaps absorb the scale).
        level, gaps, family, by: the model profiled.
        num_labels, num_pairs, num_annotators: data used (free gaps: unanimous pairs excluded).
        num_unanimous_pairs: pairs left out because all their labels agree (free gaps).
        saturated_loglik: the closed-form supremum of the log-likelihood over free gaps
            (nats; see the module docstring) for the pair-level model with one mean strength,
            which its profile equals at every CV; None for other models, where it is not the
            supremum.
    """

    table: pd.DataFrame
    mean_strengths: pd.DataFrame
    level: str
    gaps: str
    family: str
    by: str | None
    num_labels: int
    num_pairs: int | None
    num_annotators: int
    num_unanimous_pairs: int
    saturated_loglik: float | None = None

    @property
    def label(self) -> str:
        """The model in a few words: ``"annotator level, free gaps, by subgroup"``."""
        return f"{self.level} level, {self.gaps} gaps" + (f", by {self.by}" if self.by else "")

    @property
    def range(self) -> float:
        """``max - min`` of the profile log-likelihood over the grid (nats): its curvature."""
        values = self.table["profile_loglik"]
        return float(values.max() - values.min())

    @property
    def saturation_shortfall(self) -> float | None:
        """Largest ``|profile_loglik - saturated_loglik|`` over the grid (nats), or None where
        the model has no closed-form supremum: how far the maximisation is from exact."""
        if self.saturated_loglik is None:
            return None
        return float(np.max(np.abs(self.table["profile_loglik"] - self.saturated_loglik)))

    @property
    def best_cv(self) -> float:
        """The grid CV with the largest profile log-likelihood."""
        return float(self.table["cv"].iloc[int(self.table["profile_loglik"].argmax())])

    def interval(self, threshold: float = LIKELIHOOD_RATIO_THRESHOLD) -> tuple[float, float]:
        """Smallest and largest grid CV whose profile is within ``threshold`` of the maximum
        (an approximate 95 % profile-likelihood interval at the default; the whole grid when
        the profile is flat)."""
        values = self.table["profile_loglik"].to_numpy()
        inside = self.table["cv"].to_numpy()[values >= values.max() - threshold]
        return float(inside.min()), float(inside.max())

    def interpretation(self) -> str:
        """One plain sentence reading the profile's numbers."""
        model = {"pair": "pair-level", "annotator": "annotator-panel"}[self.level]
        if self.by is not None:
            model += f" model with {self.by} mean strengths"
        gaps = "a free reward gap per pair" if self.gaps == "free" else "the given reward gaps"
        cvs = self.table["cv"]
        grid = f"CV {cvs.min():.3g} to {cvs.max():.3g}"
        if self.range < LIKELIHOOD_RATIO_THRESHOLD:
            saturated = (
                ""
                if self.saturation_shortfall is None
                else f" (at every CV it is within {self.saturation_shortfall:.1g} nats of the "
                "closed-form maximum that fits each pair's label share exactly)"
            )
            return (
                f"With {gaps}, the {model} profile log-likelihood varies by only "
                f"{self.range:.3g} nats over {grid}{saturated}: the data cannot tell these "
                "strength spreads apart, so a CV learned this way reflects its starting value, "
                "not the annotators."
            )
        low, high = self.interval()
        if low == high:
            within = f"only CV {low:.3g} of the grid is"
        else:
            within = f"CVs from {low:.3g} to {high:.3g} are"
        if self.best_cv in (cvs.min(), cvs.max()):
            # the maximum may lie beyond the grid: say so instead of naming an interior CV
            side = "below" if self.best_cv == cvs.min() else "above"
            edge = (
                f" (the edge of the grid: the maximum may lie at or {side} it, so widen the "
                "grid to bound it)"
            )
        else:
            edge = ""
        return (
            f"With {gaps}, the {model} profile log-likelihood varies by {self.range:.3g} nats "
            f"over {grid} and peaks at CV {self.best_cv:.3g}{edge}; {within} within the 95 % "
            "likelihood-ratio bound: the data identify the strength spread."
        )


def _free_gap_design(data: PanelData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Orientation of each label (+1: it chose the response its given gap favours), whether
    its pair is mixed (labels disagree), and the share of +1 labels of each pair."""
    orientation = np.sign(data.signed_gap)
    if (orientation == 0).any():
        row = int(np.flatnonzero(orientation == 0)[0])
        raise ValueError(
            f"gap is 0 at label {row}: free gaps are oriented by the sign of the given gap"
        )
    num_pairs = len(data.pairs)
    labels = np.bincount(data.pair, minlength=num_pairs)
    positive = np.bincount(data.pair, weights=orientation > 0, minlength=num_pairs)
    mixed = (positive > 0) & (positive < labels)
    return orientation, mixed, positive / labels


def _check_pair_gaps(data: PanelData) -> None:
    """A pair's labels must carry one gap (up to its sign): else pair ids and gaps disagree."""
    size = np.abs(data.signed_gap)
    order = np.argsort(data.pair, kind="stable")
    starts = np.r_[0, np.flatnonzero(np.diff(data.pair[order])) + 1]
    high = np.maximum.reduceat(size[order], starts)
    low = np.minimum.reduceat(size[order], starts)
    bad = high - low > 1e-6 * np.maximum(high, 1.0)
    if bad.any():
        j = int(data.pair[order][starts[np.flatnonzero(bad)[0]]])
        raise ValueError(
            f"pair {plain_value(data.pairs[j])!r} has labels with different |gap| "
            f"({low[bad][0]:.6g} and {high[bad][0]:.6g}): the gap must be a property of the pair"
        )


def profile_cv(
    frame: pd.DataFrame,
    cvs: Sequence[float],
    *,
    level: Level = "pair",
    gaps: Gaps = "free",
    family: str | StrengthFamily = "gamma",
    by: str | None = None,
    gap: str = "reward_gap",
    pair: str = "pair_id",
    annotator: str = "annotator_id",
    outcome: str | None = None,
    max_iterations: int = 5000,
) -> CVProfile:
    """Profile log-likelihood of the strength CV, maximised over the other parameters.

    Args:
        frame: one row per label (see :func:`analysis.strength_panels.panel_data`).
        cvs: the CVs to profile (positive).
        level: ``"pair"`` (one strength draw per label, MixDPO's likelihood) or
            ``"annotator"`` (one strength per annotator: the panel likelihood).
        gaps: ``"free"`` (one free reward gap per pair, as a policy learning its rewards has;
            needs ``pair``) or ``"given"`` (the ``gap`` column as data).
        family: ``"gamma"`` or ``"lognormal"``.
        by: subgroup column whose subgroups get their own mean strength (a covariate model);
            None for one mean.
        gap, pair, annotator, outcome: columns (see ``panel_data``).
        max_iterations: L-BFGS iterations per CV.

    Returns:
        :class:`CVProfile`.

    Raises:
        ValueError: bad columns or values, a CV that is not positive, an unknown ``level`` or
            ``gaps``, a family without a CV, or (free gaps) a zero gap or a pair whose labels
            carry different gap sizes.
    """
    family = get_family(family)
    if not family.learnable:
        raise ValueError(f"family {family.name!r} has no CV to profile: use 'gamma' or 'lognormal'")
    if level not in ("pair", "annotator"):
        raise ValueError(f"level must be 'pair' or 'annotator', got {level!r}")
    if gaps not in ("free", "given"):
        raise ValueError(f"gaps must be 'free' or 'given', got {gaps!r}")
    cvs = np.asarray(cvs, dtype=np.float64).ravel()
    if cvs.size == 0 or not np.all(np.isfinite(cvs) & (cvs > 0)):
        raise ValueError(f"cvs must be positive and finite, got {cvs.tolist()!r}")
    data = panel_data(
        frame,
        gap=gap,
        annotator=annotator,
        by=by,
        pair=pair if gaps == "free" else None,
        outcome=outcome,
    )
    num_subgroups, num_annotators = data.num_subgroups, data.num_annotators
    num_labels = data.signed_gap.size
    if gaps == "free":
        _check_pair_gaps(data)
        orientation, mixed, share = _free_gap_design(data)
        keep = mixed[data.pair]
        saturated = (
            _saturated_loglik(share[mixed], np.bincount(data.pair, minlength=mixed.size)[mixed])
            if level == "pair" and by is None
            else None
        )
        # start at the gap that fits the pair's share under a logit link (the clip only
        # touches unanimous pairs, whose gaps do not enter the objective)
        share = np.clip(share, 1e-3, 1.0 - 1e-3)
        theta = np.r_[np.arcsinh(np.log(share / (1.0 - share))), np.zeros(num_subgroups - 1)]
        values, pair_code = orientation, data.pair
    else:
        keep = np.ones(num_labels, dtype=bool)
        saturated = None
        theta = np.full(num_subgroups, -np.log(np.std(data.signed_gap)))
        values, pair_code = data.signed_gap, np.zeros(num_labels, dtype=np.int32)
    # labels of unanimous pairs go to one extra group whose likelihood is left out: same array
    # shapes for data sets of one design, so the compiled objective is reused
    if level == "pair":
        group = np.where(keep, np.arange(num_labels), num_labels)
        group_subgroup = np.r_[data.annotator_subgroup[data.annotator], 0]
    else:
        group = np.where(keep, data.annotator, num_annotators)
        group_subgroup = np.r_[data.annotator_subgroup, 0]
    arrays = (values, pair_code, group, group_subgroup)
    free_gaps = len(data.pairs) if gaps == "free" else 0
    static = {"family": family.name, "free": gaps == "free", "num_pairs": free_gaps}
    rows, means = [], []
    with jax.enable_x64(True):
        arrays = tuple(jnp.asarray(a) for a in arrays)
        for cv in cvs:
            theta, value, converged, gradient = _maximise(
                lambda t, c=cv: tuple(
                    np.asarray(v, np.float64)
                    for v in _negative_loglik_and_grad(jnp.asarray(t), c, *arrays, **static)
                ),
                theta,  # warm start from the previous CV
                max_iterations,
            )
            rows.append(
                {
                    "cv": float(cv),
                    "profile_loglik": -value,
                    "converged": converged,
                    "max_abs_gradient": gradient,
                }
            )
            log_mean = theta[free_gaps:]
            means.append(np.exp(np.r_[0.0, log_mean] if gaps == "free" else log_mean))
    num_pairs = None if gaps == "given" else int(mixed.sum())
    return CVProfile(
        table=pd.DataFrame(rows),
        mean_strengths=pd.DataFrame(means, index=pd.Index(cvs, name="cv"), columns=data.subgroups),
        level=level,
        gaps=gaps,
        family=family.name,
        by=by,
        num_labels=int(keep.sum()),
        num_pairs=num_pairs,
        num_annotators=int(np.unique(data.annotator[keep]).size),
        num_unanimous_pairs=0 if gaps == "given" else int((~mixed).sum()),
        saturated_loglik=saturated,
    )


def _saturated_loglik(share: np.ndarray, count: np.ndarray) -> float:
    """``sum_k n_k [p_k log p_k + (1 - p_k) log(1 - p_k)]`` over mixed pairs (``0 < p_k < 1``):
    the binomial log-likelihood with every pair's labels fitted at their own share."""
    return float(np.sum(count * (share * np.log(share) + (1.0 - share) * np.log1p(-share))))


def _maximise(objective, theta, max_iterations: int, restarts: int = 3):
    """L-BFGS-B on ``objective -> (value, gradient)``; ``(theta, value, converged, max |grad|)``.

    Far out along a free gap the likelihood is nearly flat and the line search can stop at the
    limit of float64 before the gradient test passes; a stop is accepted as converged when a
    fresh restart from it (new curvature memory) changes the value by at most 1e-10 of it.
    """
    options = {"maxiter": max_iterations, "ftol": 1e-15, "gtol": 1e-9, "maxcor": 30}
    result = optimize.minimize(objective, theta, jac=True, method="L-BFGS-B", options=options)
    converged = bool(result.success)
    for _ in range(restarts if not converged else 0):
        again = optimize.minimize(objective, result.x, jac=True, method="L-BFGS-B", options=options)
        stalled = abs(result.fun - again.fun) <= 1e-10 * max(1.0, abs(result.fun))
        result = again if again.fun <= result.fun else result
        converged = bool(again.success) or stalled
        if converged:
            break
    return result.x, float(result.fun), converged, float(np.max(np.abs(result.jac)))


@functools.partial(jax.jit, static_argnames=("family", "free", "num_pairs"))
def _negative_loglik_and_grad(
    theta, cv, values, pair, group, group_subgroup, *, family, free, num_pairs
):
    """Value and gradient of minus the log-likelihood at a fixed CV. ``theta``: asinh of the
    free gaps (``num_pairs``) then log mean strengths (the first subgroup's is fixed at 0 with free gaps);
    ``values``: label orientations (free gaps) or signed gaps; the last group is left out."""
    strength_family = get_family(family)

    def negative_loglik(theta):
        if free:
            # gap = sinh(theta): at large gaps the likelihood changes like log|gap| (the
            # strength density near 0 decays slowly), so steps in asinh(gap) are well scaled
            d = values * jnp.sinh(theta[:num_pairs])[pair]
            log_mean = jnp.r_[0.0, theta[num_pairs:]]
        else:
            d, log_mean = values, theta
        params = strength_family.from_mean_cv(OPS, jnp.exp(log_mean)[group_subgroup], cv)
        num_groups = group_subgroup.shape[0]
        loglik = panel_log_likelihood(strength_family, d, group, params, num_groups)
        return -jnp.sum(loglik[:-1])

    return jax.value_and_grad(negative_loglik)(theta)
