"""Preference data sets in the trainer's format (``prompt``/``chosen``/``rejected`` + columns).

* Hub loaders (:mod:`.hub_datasets`): :func:`load_prism`, :func:`load_community_alignment`,
  :func:`load_hh_rlhf` (each returns a :class:`PreferenceLoad`), with the shared
  :func:`clean_preference_rows` and :func:`split_by_key`.
* Semi-synthetic sets with known ground truth, shipped in ``data_files/``
  (:mod:`.semisynthetic`): :func:`load_default_preferences`, :func:`load_ground_truth`,
  :func:`make_preference_data` (annotator subgroups that differ in strength distribution).
* Annotator panels with rater covariates and known truth (:mod:`.annotator_panels`):
  :func:`make_panel_preference_data`, :class:`RaterCovariates`, and the shipped sets through
  :func:`load_panel_preferences` / :func:`load_panel_ground_truth`, or through
  :func:`load_default_preferences` / :func:`load_ground_truth` with kind ``"panel_heterogeneous"``
  or ``"panel_homogeneous"``.
* The same pairs relabelled by annotator types with known rewards (:mod:`.semisynthetic_types`):
  :func:`make_type_preference_data`, :func:`add_estimated_variance`,
  :func:`pair_alignment_accuracy`, :class:`AnnotatorType`.

The HF ``datasets`` library is imported only when a loader runs.
"""

from __future__ import annotations

from mixlogit._lazy import lazy_exports

_LAZY_ATTRS: dict[str, str] = {
    "PreferenceLoad": "alignment.datasets.hub_datasets",
    "clean_preference_rows": "alignment.datasets.hub_datasets",
    "load_community_alignment": "alignment.datasets.hub_datasets",
    "load_hh_rlhf": "alignment.datasets.hub_datasets",
    "load_prism": "alignment.datasets.hub_datasets",
    "split_by_key": "alignment.datasets.hub_datasets",
    "SubgroupSpec": "alignment.datasets.semisynthetic",
    "load_default_preferences": "alignment.datasets.shipped",
    "load_ground_truth": "alignment.datasets.shipped",
    "make_preference_data": "alignment.datasets.semisynthetic",
    "response_reward": "alignment.datasets.semisynthetic",
    "RaterCovariates": "alignment.datasets.annotator_panels",
    "load_panel_ground_truth": "alignment.datasets.annotator_panels",
    "load_panel_preferences": "alignment.datasets.annotator_panels",
    "make_panel_preference_data": "alignment.datasets.annotator_panels",
    "AnnotatorType": "alignment.datasets.semisynthetic_types",
    "add_estimated_variance": "alignment.datasets.semisynthetic_types",
    "make_type_preference_data": "alignment.datasets.semisynthetic_types",
    "pair_alignment_accuracy": "alignment.datasets.semisynthetic_types",
}

__getattr__, __dir__ = lazy_exports(__name__, _LAZY_ATTRS)

__all__ = sorted(_LAZY_ATTRS)
