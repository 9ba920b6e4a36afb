"""Elasticities and marginal effects of choice probabilities, with delta-method standard errors.

For a variable ``x`` (a data column), situation ``s``, the alternative ``i`` whose ``x``
changes and the alternative ``j`` whose probability responds:

* marginal effect ``M_sji = dP_sj / dx_si`` (probability per unit of ``x``);
* point elasticity ``E_sji = M_sji x_si / P_sj`` (direct for ``i = j``, cross otherwise);
* aggregate (sample) elasticity ``E_ji = sum_s w_s x_si M_sji / sum_s w_s P_sj``: the
  elasticity of the predicted demand ``sum_s w_s P_sj`` when ``x`` of ``i`` moves by the same
  percentage in every situation (Train 2009, sec. 3.6; Biogeme's probability-weighted
  aggregate); the aggregate marginal effect is ``sum_s w_s M_sji / sum_s w_s``.

A column enters the utility through every variable that reads it: ``"x"`` (generic) and
``"x@<alt>"`` (alternative-specific). With ``changed=None`` the column moves in every
alternative at once (a decision maker's attribute such as income, entered as ``income@<alt>``):
one "all" column instead of one per alternative.

The derivatives are exact (JAX forward mode through the simulated or quadrature probabilities
of :meth:`EstimationResults.predict`, the same draws); the standard errors are the delta method
with the estimates' robust (default) or classical covariance.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from scipy import stats

from mixlogit._intervals import interval_labels
from mixlogit.data import ChoiceData, ChoiceDataError
from mixlogit.likelihood import x64

__all__ = ["Elasticities", "elasticities"]

KINDS = ("elasticity", "marginal_effect")
ALL_ALTERNATIVES = "all"


class Elasticities(NamedTuple):
    """Aggregate and point elasticities (or marginal effects) of one variable.

    Attributes:
        variable: the data column that changes.
        kind: ``"elasticity"`` (unitless) or ``"marginal_effect"`` (probability per unit of
            the variable).
        aggregate: ``(I, J)`` DataFrame; row ``i``: the alternative whose variable changes
            (or ``"all"``), column ``j``: the alternative whose probability responds.
        std_errors: ``(I, J)`` delta-method standard errors of ``aggregate``.
        point: ``(S, I, J)`` per situation (rows in ``situation_ids`` order); NaN where
            ``j`` or ``i`` is unavailable in the situation (undefined there).
        situation_ids: the situations of ``point``.
        covariance: ``"robust"`` or ``"classical"``: which covariance gave the standard errors.
    """

    variable: str
    kind: str
    aggregate: pd.DataFrame
    std_errors: pd.DataFrame
    point: np.ndarray
    situation_ids: np.ndarray
    covariance: str

    def table(self, interval: float = 0.95) -> pd.DataFrame:
        """One row per (changed, responding) pair: estimate, standard error, z, p and the
        Wald interval, with ``direct`` marking ``i = j``."""
        _, upper, lo, hi = interval_labels(interval)
        estimate = self.aggregate.stack()
        se = self.std_errors.stack()
        half = stats.norm.ppf(upper) * se
        with np.errstate(divide="ignore", invalid="ignore"):
            z = estimate / se
        frame = pd.DataFrame(
            {
                "estimate": estimate,
                "std_err": se,
                "z": z,
                "p_value": 2 * stats.norm.sf(np.abs(z)),
                lo: estimate - half,
                hi: estimate + half,
            }
        )
        frame.index.names = ["changed", "responding"]
        frame["direct"] = [a == b for a, b in frame.index]
        return frame


def _reading_columns(names: Sequence[str], variable: str, alternatives: Sequence[Any]):
    """``(J, K)`` 0/1: design column ``k`` reads ``variable`` in alternative ``j``'s row."""
    mask = np.zeros((len(alternatives), len(names)))
    labels = [str(a) for a in alternatives]
    for k, name in enumerate(names):
        if name == variable:
            mask[:, k] = 1.0
        elif "@" in name:
            column, label = name.rsplit("@", 1)
            if column == variable and label in labels:
                mask[labels.index(label), k] = 1.0
    return mask


def elasticities(
    results,
    variable: str,
    *,
    data: ChoiceData | None = None,
    kind: str = "elasticity",
    changed: Sequence[Any] | str | None = "each",
    covariance: str = "robust",
    num_draws: int | None = None,
) -> Elasticities:
    """Elasticities or marginal effects of the choice probabilities with respect to ``variable``.

    Args:
        results: :class:`~mixlogit.results.EstimationResults` of an MNL or mixed logit.
        variable: a numeric data column that enters the utility (as ``variable`` or
            ``variable@<alt>``).
        data: situations to evaluate (default: the estimation data; scenario data need no
            observed choices beyond a valid choice column).
        kind: ``"elasticity"`` or ``"marginal_effect"``.
        changed: ``"each"`` (default): one row per alternative whose ``variable`` changes;
            a list of alternatives: those rows only; ``None``: the column changes in every
            alternative at once (one row, ``"all"``).
        covariance: ``"robust"`` (sandwich, the default, as in the summary) or
            ``"classical"``.
        num_draws: simulation draws (default: as in estimation).

    Returns:
        :class:`Elasticities`.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)}, got {kind!r}")
    if covariance not in ("robust", "classical"):
        raise ValueError(f"covariance must be 'robust' or 'classical', got {covariance!r}")
    source = data if data is not None else results.data
    if source is None:
        raise ValueError("pass the ChoiceData (results loaded from disk keep no data)")
    alternatives = list(source.alternatives)
    layout = results.layout
    # the columns of the likelihood's Xf and Xr (in WTP space every variable is drawn)
    mask_fixed = _reading_columns(layout.direct_variables, variable, alternatives)
    mask_random = _reading_columns(layout.drawn_variables, variable, alternatives)
    if not (mask_fixed.any() or mask_random.any()):
        raise ValueError(
            f"variable {variable!r} does not enter the utility: the model's variables are "
            f"{list(layout.fixed) + list(layout.random)} (a column enters as {variable!r} or "
            f"'{variable}@<alternative>')"
        )
    if variable not in source.frame.columns:
        raise ChoiceDataError(f"variable {variable!r} is not a column of the data")
    if isinstance(changed, str):
        if changed != "each":
            raise ValueError(
                f"changed must be 'each', a list of alternatives or None, got {changed!r}"
            )
        rows = alternatives
    elif changed is None:
        rows = [ALL_ALTERNATIVES]
    else:
        rows = list(changed)
        unknown = [a for a in rows if a not in alternatives]
        if unknown:
            raise ValueError(f"changed alternatives {unknown} are not in the data: {alternatives}")
    # one perturbation per row: which alternatives' values of the column it moves
    moves = np.array(
        [
            np.ones(len(alternatives))
            if row == ALL_ALTERNATIVES
            else (np.arange(len(alternatives)) == alternatives.index(row)).astype(float)
            for row in rows
        ]
    )  # (I, J)
    arrays = source.to_arrays([variable], check_identified=False)
    values, available = arrays.X[..., 0], arrays.available  # (S, J) each
    problem = results._problem_for(data, num_draws=num_draws)
    weights = np.asarray(source.weights, dtype=np.float64)
    cov = results.robust_cov if covariance == "robust" else results.cov
    where = problem.positions  # situation s sits at grid cell where[s] = (g, t)
    likelihood, lik_data = problem.likelihood, problem.data
    # the change of the column per unit of eps_i: 1 (marginal effect) or x (log change)
    scale = np.ones_like(values) if kind == "marginal_effect" else values

    with x64():
        mf, mr = jnp.asarray(mask_fixed), jnp.asarray(mask_random)
        move, per_unit, w = jnp.asarray(moves), jnp.asarray(scale), jnp.asarray(weights)

        def probabilities(theta, eps):
            """``(S, J)`` probabilities with the column of situation s, alternative j moved
            by ``per_unit[s, j] * sum_i moves[i, j] eps_i``."""
            shift = per_unit * (move.T @ eps)[None, :]  # (S, J)
            grid_shift = jnp.zeros(lik_data.available.shape, dtype=theta.dtype)
            grid_shift = grid_shift.at[where[:, 0], where[:, 1]].set(shift)  # (G, T, J)
            shifted = lik_data._replace(
                Xf=lik_data.Xf + grid_shift[..., None] * mf[None, None],
                Xr=lik_data.Xr + grid_shift[..., None] * mr[None, None],
            )
            grid = likelihood.grid_probabilities(theta, shifted, False)
            return grid[where[:, 0], where[:, 1]]

        def aggregate(theta):
            """The aggregate ``(I, J)``, with the probabilities ``(S, J)`` and their
            derivatives in each eps_i ``(S, I, J)`` as auxiliary outputs: one forward pass
            (forward mode in eps), differentiated once more in theta (reverse mode)."""
            eps = jnp.zeros(len(rows), dtype=theta.dtype)
            derivative, prob = jax.jacfwd(lambda e: (probabilities(theta, e),) * 2, has_aux=True)(
                eps
            )  # (S, J, I), (S, J)
            derivative = jnp.moveaxis(derivative, 2, 1)
            total = jnp.einsum("s,sij->ij", w, derivative)
            value = total / jnp.sum(w) if kind == "marginal_effect" else total / (w @ prob)[None]
            return value, (value, prob, derivative)

        theta = jnp.asarray(results.params)
        jacobian, outputs = jax.jit(jax.jacrev(aggregate, has_aux=True))(theta)  # (I, J, P)
        value, prob, derivative = (np.asarray(a) for a in outputs)
        jacobian = np.asarray(jacobian)
    variance = np.einsum("ijp,pq,ijq->ij", jacobian, cov, jacobian)
    if kind == "elasticity":
        with np.errstate(divide="ignore", invalid="ignore"):
            point = derivative / prob[:, None, :]
    else:
        point = derivative
    # undefined where the responding alternative, or every moved alternative, is unavailable
    moved_available: np.ndarray = np.any(
        available[:, None, :] & (moves[None] > 0), axis=2
    )  # (S, I)
    point = np.where(available[:, None, :] & moved_available[..., None], point, np.nan)
    index = pd.Index(rows, name="changed")
    columns = pd.Index(alternatives, name="responding")
    return Elasticities(
        variable=variable,
        kind=kind,
        aggregate=pd.DataFrame(value, index=index, columns=columns),
        std_errors=pd.DataFrame(np.sqrt(np.maximum(variance, 0.0)), index=index, columns=columns),
        point=point,
        situation_ids=np.asarray(source.situation_ids),
        covariance=covariance,
    )
