"""Bootstrap standard errors: the fit repeated on decision makers drawn with replacement.

The classical and robust standard errors rest on the asymptotic normality of the estimates; the
(cluster) bootstrap estimates their sampling distribution directly: draw the ``N`` decision
makers (situations without a panel) with replacement, refit from the original estimates, and
read the SD and percentiles of each parameter over the replications. A person drawn twice
enters twice, as two people. A replication whose fit fails or does not converge is left out
and counted.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from mixlogit._intervals import interval_labels

__all__ = ["Bootstrap", "bootstrap", "resample_units"]


class Bootstrap(NamedTuple):
    """Outcome of :func:`bootstrap`.

    Attributes:
        draws: ``(B, P)`` estimates of the converged replications.
        table: per parameter: ``estimate`` (the original), ``bootstrap_std_err``, the
            percentile interval, ``bootstrap_mean`` and ``robust_std_err`` beside it.
        cov: ``(P, P)`` covariance of the replications.
        num_failed: replications left out (error or no convergence).
        seed: of the resampling.
    """

    draws: np.ndarray
    table: pd.DataFrame
    cov: np.ndarray
    num_failed: int
    seed: int | None


def resample_units(data, rng: np.random.Generator):
    """``data`` with its decision makers (situations without a panel) drawn with replacement;
    each copy gets its own panel and situation ids (``"<copy>:<id>"``), so a person drawn twice
    is two people."""
    frame = data.frame
    unit_column = data.panel_column if data.has_panel else data.situation_column
    ids = data.panel_ids if data.has_panel else data.situation_ids
    chosen = rng.integers(0, len(ids), len(ids))
    groups = frame.groupby(unit_column, sort=False).indices
    pieces = []
    for copy, index in enumerate(chosen):
        piece = frame.iloc[groups[ids[index]]].copy()
        piece[data.situation_column] = [f"{copy}:{s}" for s in piece[data.situation_column]]
        if data.has_panel:
            piece[data.panel_column] = f"{copy}"
        pieces.append(piece)
    return data.with_frame(pd.concat(pieces, ignore_index=True))


def bootstrap(
    results,
    num_replications: int = 200,
    *,
    seed: int | None = 0,
    interval: float = 0.95,
    progress: bool = False,
    **fit_options: Any,
) -> Bootstrap:
    """Cluster bootstrap of ``results`` (an :class:`~mixlogit.results.EstimationResults` with
    its data): ``num_replications`` refits of ``results.model`` on resampled decision makers,
    each started at the original estimates, with the original fixed parameters, bounds, draws
    (type, number, seed, Halton options) and no Hessian; ``fit_options`` go to ``fit`` too.

    Returns:
        :class:`Bootstrap`.

    Warns:
        RuntimeWarning: when replications fail or do not converge (how many).
    """
    if results.data is None:
        raise ValueError("the bootstrap needs the data: results loaded from disk keep none")
    if not isinstance(num_replications, int) or num_replications < 2:
        raise ValueError(f"num_replications must be an integer >= 2, got {num_replications!r}")
    options: dict[str, Any] = {"init": np.asarray(results.params), "hessian": False}
    if results.fixed_parameters:
        options["fix"] = results.fixed_parameters
    if results.constraints:
        options["constraints"] = results.constraints
    if results.bounds:
        options["bounds"] = results.bounds
    if results.draws:
        options.update(num_draws=results.num_draws, draws=results.draws, seed=results.seed)
        if results.halton_options:
            options["halton_options"] = results.halton_options
    if hasattr(results.model, "latent"):
        options.update(method="ml", num_starts=1)
    options.update(fit_options)
    rng = np.random.default_rng(seed)
    draws, failed = [], 0
    for _ in tqdm(range(num_replications), desc="bootstrap", disable=not progress):
        sample = resample_units(results.data, rng)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                refit = results.model.fit(sample, **options)
        except (ValueError, FloatingPointError, np.linalg.LinAlgError):
            failed += 1
            continue
        if not refit.converged:
            failed += 1
            continue
        draws.append(refit.params)
    if failed:
        warnings.warn(
            f"{failed} of {num_replications} bootstrap replications failed or did not converge "
            "and are left out",
            RuntimeWarning,
            stacklevel=2,
        )
    sample_draws = np.asarray(draws)
    if len(sample_draws) < 2:
        raise ValueError(f"only {len(sample_draws)} bootstrap replications converged")
    lower, upper, lower_label, upper_label = interval_labels(interval)
    spread = sample_draws.std(axis=0, ddof=1)
    fixed = results.restrictions.fixed_mask
    table = pd.DataFrame(
        {
            "estimate": results.params,
            "bootstrap_std_err": np.where(fixed, np.nan, spread),
            lower_label: np.quantile(sample_draws, lower, axis=0),
            upper_label: np.quantile(sample_draws, upper, axis=0),
            "bootstrap_mean": sample_draws.mean(axis=0),
            "robust_std_err": results.robust_std_errors,
        },
        index=pd.Index(results.names, name="parameter"),
    )
    cov = np.cov(sample_draws, rowvar=False)
    return Bootstrap(sample_draws, table, np.atleast_2d(cov), failed, seed)
