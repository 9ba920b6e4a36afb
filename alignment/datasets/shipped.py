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
``hh_rlhf_harmless``     real human pairs: Anthropic HH-RLHF harmless-base test (2,312 rows,
                         MIT; ``data_files/HH_RLHF_README.md``), no annotator ids, split 80/20
                         by conversation; it has no ground truth
=======================  =====================================================================
"""

from __future__ import annotations

import functools
from typing import Any

from alignment.datasets import annotator_panels, semisynthetic
from alignment.datasets._files import (
    DATA_DIR,
    KINDS,
    check_kind,
    check_split,
    read_ground_truth,
    read_split,
)

__all__ = ["PREFERENCE_KINDS", "load_default_preferences", "load_ground_truth"]

_PANEL_PREFIX = "panel_"
#: The real pairs: a byte-for-byte copy of anthropics/hh-rlhf ``harmless-base/test.jsonl.gz``.
HH_RLHF_KIND = "hh_rlhf_harmless"
HH_RLHF_FILE = DATA_DIR / "hh_rlhf_harmless_base_test.jsonl.gz"
#: Share of conversations in the ``test`` split of the shipped HH-RLHF pairs (salt 0).
HH_RLHF_TEST_FRACTION = 0.2
PREFERENCE_KINDS = (*KINDS, *(_PANEL_PREFIX + kind for kind in KINDS), HH_RLHF_KIND)


def load_default_preferences(kind: str = "heterogeneous", split: str = "train") -> Any:
    """A shipped preference dataset as a :class:`datasets.Dataset`.

    Args:
        kind: one of :data:`PREFERENCE_KINDS` (see the module table); the panel kinds are the
            sets :func:`~alignment.datasets.annotator_panels.load_panel_preferences` returns.
        split: ``"train"`` (360 pairs; panels: 180 pairs, 1,080 labels; HH-RLHF: 1,841 pairs)
            or ``"test"`` (120 pairs; panels: 60 pairs, 360 labels; HH-RLHF: 467 pairs).
    """
    check_kind(kind, PREFERENCE_KINDS)
    check_split(split)
    if kind == HH_RLHF_KIND:
        return _shipped_hh_rlhf().dataset[split]
    if kind.startswith(_PANEL_PREFIX):
        return annotator_panels.load_panel_preferences(kind.removeprefix(_PANEL_PREFIX), split)
    from datasets import Dataset

    return Dataset.from_list(read_split(semisynthetic.FILE_PREFIX, kind, split))


@functools.cache
def _shipped_hh_rlhf() -> Any:
    from alignment.datasets.hub_datasets import load_hh_rlhf

    return load_hh_rlhf(str(HH_RLHF_FILE), test_fraction=HH_RLHF_TEST_FRACTION, seed=0)


def load_ground_truth(kind: str = "heterogeneous") -> dict[str, Any]:
    """Ground truth of a shipped dataset: feature weights, subgroup distributions, strengths.

    ``kind`` is one of :data:`PREFERENCE_KINDS`.
    """
    check_kind(kind, PREFERENCE_KINDS)
    if kind == HH_RLHF_KIND:
        raise ValueError(
            f"kind {kind!r} is real human data: it has no ground truth (no known rewards or "
            "strengths); the kinds with ground truth are "
            f"{[k for k in PREFERENCE_KINDS if k != HH_RLHF_KIND]}"
        )
    if kind.startswith(_PANEL_PREFIX):
        return annotator_panels.load_panel_ground_truth(kind.removeprefix(_PANEL_PREFIX))
    return read_ground_truth(semisynthetic.FILE_PREFIX, kind)
