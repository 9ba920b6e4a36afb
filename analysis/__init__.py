"""analysis: study learned preference heterogeneity with ArviZ and seaborn (pandas in and out).

* Converters: :func:`read_training_log`, :func:`training_runs_to_inference_data`,
  :func:`choice_fit_to_inference_data`.
* Subgroup margins: :func:`subgroup_margins` (micro/macro with bootstrap intervals),
  :func:`subgroup_gains` (one method over another).
* Subgroup posteriors: :func:`fit_subgroup_strengths` (hierarchical NumPyro model with the exact
  strength marginal of :mod:`mixlogit` as likelihood).
* Heterogeneous-preference theory (arXiv 2502.16320): :func:`normalized_borda_count`,
  :func:`average_reward`, :func:`alignment_accuracy`, :func:`nbc_flip_distance`.
* Plots (each returns a matplotlib Figure) and :func:`report` (self-contained HTML).

Modules that import JAX (the subgroup posterior) load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY_ATTRS: dict[str, str] = {
    # converters
    "find_training_log": "analysis.converters",
    "read_training_log": "analysis.converters",
    "strength_family": "analysis.converters",
    "strength_distribution": "analysis.converters",
    "TrainingRun": "analysis.converters",
    "training_runs_to_inference_data": "analysis.converters",
    "choice_fit_to_inference_data": "analysis.converters",
    # margins
    "SubgroupMargins": "analysis.margins",
    "SubgroupGains": "analysis.margins",
    "subgroup_margins": "analysis.margins",
    "subgroup_gains": "analysis.margins",
    "bootstrap_group_means": "analysis.margins",
    "cluster_bootstrap_group_means": "analysis.margins",
    # subgroup posterior (JAX)
    "SubgroupPosterior": "analysis.subgroup_posterior",
    "SubgroupStrengthPrior": "analysis.subgroup_posterior",
    "fit_subgroup_strengths": "analysis.subgroup_posterior",
    "subgroup_strength_model": "analysis.subgroup_posterior",
    # Borda-count theory of heterogeneous preferences
    "preference_matrix": "analysis.borda",
    "average_reward": "analysis.borda",
    "reward_difference_variance": "analysis.borda",
    "normalized_borda_count": "analysis.borda",
    "alignment_accuracy": "analysis.borda",
    "NBCFlip": "analysis.borda",
    "nbc_flip_distance": "analysis.borda",
    "nbc_ranking_sensitivity": "analysis.borda",
    # plots and report
    "plot_subgroup_margins": "analysis.plots",
    "plot_subgroup_gains": "analysis.plots",
    "plot_strength_trajectories": "analysis.plots",
    "plot_strength_densities": "analysis.plots",
    "plot_subgroup_forest": "analysis.plots",
    "plot_individual_coefficients": "analysis.plots",
    "plot_willingness_to_pay": "analysis.plots",
    "report": "analysis.reporting",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY_ATTRS:
        return getattr(importlib.import_module(_LAZY_ATTRS[name]), name)
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY_ATTRS])


__all__ = ["__version__", *sorted(_LAZY_ATTRS)]
