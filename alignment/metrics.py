"""Averages of per-pair preference margins over subgroups (NumPy only, no torch).

The micro average weights every pair alike; the macro average weights every subgroup alike, so a
small subgroup counts as much as a large one (the subgroup-fairness view of alignment).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["micro_macro_margins"]


def micro_macro_margins(
    margins: Sequence[float] | np.ndarray,
    groups: Sequence[Any] | np.ndarray,
    *,
    levels: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """Micro (over pairs) and macro (over subgroups) averages of per-pair margins.

    The one definition: the point estimates of :func:`summarize_margins` and of
    :func:`analysis.subgroup_margins` (which adds cluster-bootstrap intervals).

    Args:
        margins: ``(N,)`` per-pair values (nats).
        groups: ``(N,)`` subgroup label of each pair.
        levels: subgroups in the order of ``by_group`` and ``counts`` (default: the labels
            present, sorted as strings); every level needs a pair and every label a level.

    Returns:
        ``{"micro": float, "macro": float, "by_group": {group: mean}, "counts": {group: n}}``.
    """
    values = np.asarray(margins, dtype=np.float64)
    labels = np.asarray(list(groups), dtype=object)
    if values.shape != labels.shape or values.ndim != 1:
        raise ValueError(f"margins {values.shape} and groups {labels.shape} must both be (N,)")
    if values.size == 0:
        raise ValueError("no margins to average")
    if levels is None:
        levels = sorted(set(labels.tolist()), key=str)
    codes = pd.Categorical(labels, categories=list(levels)).codes.astype(np.int64)
    if (codes < 0).any():
        raise ValueError(f"group {labels[np.argmax(codes < 0)]!r} is not one of {list(levels)}")
    counts = np.bincount(codes, minlength=len(levels))
    if not counts.all():
        raise ValueError(
            f"subgroup(s) {[levels[i] for i in np.flatnonzero(counts == 0)]} have no pair"
        )
    means = np.bincount(codes, weights=values, minlength=len(levels)) / counts
    return {
        "micro": float(values.mean()),
        "macro": float(means.mean()),
        "by_group": {level: float(m) for level, m in zip(levels, means, strict=True)},
        "counts": {level: int(n) for level, n in zip(levels, counts, strict=True)},
    }
