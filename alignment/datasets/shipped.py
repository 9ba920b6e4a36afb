"""The preference sets shipped with the package, by kind: one loader for all of them.

=======================  =====================================================================
kind                     what it is
=======================  =====================================================================
``heterogeneous``        semi-synthetic pairs, one label each, three annotator subgroups with
                         different strength distributions (:mod:`.semisynthetic`)
``homogeneous``          the same prompts and pairs, one strength for every annotator
``panel_heterogeneous``  annotator panels: persistent annotators with rater covariates, several
                         labels per pair (:mod:`.annotator_panels`)
``panel_homogeneous``    the same panels, one common strength
=======================  =====================================================================
"""

from __future__ import annotations

from typing import Any

from alignment.datasets import annotator_panels, semisynthetic
from alignment.datasets._files import KINDS, check_kind, read_ground_truth, read_split

__all__ = ["PREFERENCE_KINDS", "load_default_preferences", "load_ground_truth"]

_PANEL_PREFIX = "panel_"
PREFERENCE_KINDS = (*KINDS, *(_PANEL_PREFIX + kind for kind in KINDS))


def load_default_preferences(kind: str = "heterogeneous", split: str = "train") -> Any:
    """A shipped preference dataset as a :class:`datasets.Dataset`.

    Args:
        kind: one of :data:`PREFERENCE_KINDS` (see the module table); the panel kinds are the
            sets :func:`~alignment.datasets.annotator_panels.load_panel_preferences` returns.
        split: ``"train"`` (360 pairs; panels: 180 pairs, 1,080 labels) or ``"test"`` (120
            pairs; panels: 60 pairs, 360 labels).
    """
    check_kind(kind, PREFERENCE_KINDS)
    if kind.startswith(_PANEL_PREFIX):
        return annotator_panels.load_panel_preferences(kind.removeprefix(_PANEL_PREFIX), split)
    from datasets import Dataset

    return Dataset.from_list(read_split(semisynthetic.FILE_PREFIX, kind, split))


def load_ground_truth(kind: str = "heterogeneous") -> dict[str, Any]:
    """Ground truth of a shipped dataset: feature weights, subgroup distributions, strengths.

    ``kind`` is one of :data:`PREFERENCE_KINDS`.
    """
    check_kind(kind, PREFERENCE_KINDS)
    if kind.startswith(_PANEL_PREFIX):
        return annotator_panels.load_panel_ground_truth(kind.removeprefix(_PANEL_PREFIX))
    return read_ground_truth(semisynthetic.FILE_PREFIX, kind)
