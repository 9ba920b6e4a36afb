"""analysis: study learned preference heterogeneity with ArviZ and seaborn (pandas in and out).

* Training logs: :func:`read_training_log`, :class:`TrainingRun`,
  :func:`training_runs_to_inference_data`; choice models: :func:`choice_fit_to_inference_data`.
* Subgroup margins: :func:`subgroup_margins` (micro/macro with bootstrap intervals,
  :class:`SubgroupMargins`), :func:`subgroup_gains` (one method over another,
  :class:`SubgroupGains`).
* Subgroup posteriors: :func:`fit_subgroup_strengths` (hierarchical NumPyro model with the exact
  strength marginal of :mod:`mixlogit` as likelihood; :class:`SubgroupPosterior`,
  :class:`SubgroupStrengthPrior`).
* Annotator panels: :func:`fit_panel_strengths` (two-stage estimate of subgroup and annotator
  strengths, the panel marginal of :mod:`mixlogit` as likelihood) and :func:`profile_cv` (is the
  strength spread identified? the profile likelihood of its CV); plots
  :func:`plot_panel_subgroup_forest`, :func:`plot_profile_cv` and, in :mod:`analysis.panel_plots`,
  the annotator caterpillar ``plot_annotator_strengths``.
* Heterogeneous-preference theory (arXiv 2502.16320): :func:`preference_matrix`,
  :func:`average_reward`, :func:`normalized_borda_count`, :func:`alignment_accuracy`,
  :func:`nbc_flip_distance`.
* Plots (each returns a matplotlib Figure) and :func:`report` (self-contained HTML).
* The end-to-end demo: ``python -m analysis.demo`` (:mod:`analysis.demo`).

Other helpers stay in their modules (:mod:`analysis.converters`, :mod:`analysis.margins`,
:mod:`analysis.borda`, :mod:`analysis.subgroup_posterior`, :mod:`analysis.strength_panels`,
:mod:`analysis.identifiability`). Modules load on first use (the posteriors and panels import
JAX).
"""

from __future__ import annotations

from mixlogit._lazy import lazy_exports, names_by_module
from mixlogit._version import __version__

_LAZY_ATTRS: dict[str, str] = {
    # training logs and choice fits as InferenceData
    "TrainingRun": "analysis.converters",
    "choice_fit_to_inference_data": "analysis.converters",
    "read_training_log": "analysis.converters",
    "training_runs_to_inference_data": "analysis.converters",
    # subgroup margins
    "SubgroupGains": "analysis.margins",
    "SubgroupMargins": "analysis.margins",
    "subgroup_gains": "analysis.margins",
    "subgroup_margins": "analysis.margins",
    # policies compared on the same pairs (accuracy, gain over reference, Holm contrasts)
    "compare_policies": "analysis.policy_comparison",
    # subgroup posterior (JAX)
    "SubgroupPosterior": "analysis.subgroup_posterior",
    "SubgroupStrengthPrior": "analysis.subgroup_posterior",
    "fit_subgroup_strengths": "analysis.subgroup_posterior",
    # annotator panels (JAX)
    "fit_panel_strengths": "analysis.strength_panels",
    "profile_cv": "analysis.identifiability",
    # Borda-count theory of heterogeneous preferences
    "alignment_accuracy": "analysis.borda",
    "average_reward": "analysis.borda",
    "nbc_flip_distance": "analysis.borda",
    "normalized_borda_count": "analysis.borda",
    "preference_matrix": "analysis.borda",
    # plots and report
    "plot_individual_coefficients": "analysis.plots",
    "plot_panel_subgroup_forest": "analysis.panel_plots",
    "plot_profile_cv": "analysis.panel_plots",
    "plot_strength_densities": "analysis.plots",
    "plot_strength_trajectories": "analysis.plots",
    "plot_subgroup_forest": "analysis.plots",
    "plot_subgroup_gains": "analysis.plots",
    "plot_subgroup_margins": "analysis.plots",
    "plot_willingness_to_pay": "analysis.plots",
    "report": "analysis.reporting",
}

# Exported by the 0.1 release; importable from here (with a DeprecationWarning) for one more.
_DEPRECATED: dict[str, str] = {
    **names_by_module(
        {
            "analysis.converters": (
                "find_training_log",
                "strength_family",
                "strength_distribution",
            ),
            "analysis.margins": (
                "bootstrap_group_means",
                "cluster_bootstrap_group_means",
            ),
            "analysis.subgroup_posterior": ("subgroup_strength_model",),
            "analysis.borda": (
                "reward_difference_variance",
                "NBCFlip",
                "nbc_ranking_sensitivity",
            ),
        }
    ),
}

__getattr__, __dir__ = lazy_exports(__name__, _LAZY_ATTRS, deprecated=_DEPRECATED)

__all__ = ["__version__", *sorted(_LAZY_ATTRS)]
