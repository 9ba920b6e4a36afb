"""Choice situations grouped by decision-maker: the data layout of the Bayesian models."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from mixlogit.arrays import ChoiceArrays

__all__ = ["PanelArrays", "choice_arrays_from_data", "panel_arrays"]


class PanelArrays(NamedTuple):
    """Choice situations grouped by decision-maker and padded.

    Attributes:
        X: ``(P, T, J, K)`` float64 variables (T = most situations of one person).
        chosen: ``(P, T)`` int32 chosen slot (0 in padding situations).
        available: ``(P, T, J)`` bool; padding situations have only slot 0 available, so their
            log-probability is exactly 0.
        weights: ``(P, T)`` float64 situation weights, 0 in padding situations.
        situation_index: ``(P, T)`` int64 row of ``ChoiceArrays`` (-1 in padding).
        num_situations: S, number of real situations.
    """

    X: np.ndarray
    chosen: np.ndarray
    available: np.ndarray
    weights: np.ndarray
    situation_index: np.ndarray
    num_situations: int

    @property
    def num_panels(self) -> int:
        return int(self.X.shape[0])

    def take(self, persons: np.ndarray) -> PanelArrays:
        """Sub-array of some decision-makers (host-side batching)."""
        return PanelArrays(
            self.X[persons],
            self.chosen[persons],
            self.available[persons],
            self.weights[persons],
            self.situation_index[persons],
            int((self.situation_index[persons] >= 0).sum()),
        )


def panel_arrays(arrays: ChoiceArrays) -> PanelArrays:
    """Group the situations of :class:`ChoiceArrays` by decision-maker (``arrays.panel``)."""
    X = np.asarray(arrays.X, dtype=np.float64)
    if X.ndim != 3:
        raise ValueError(f"ChoiceArrays.X must have shape (S, J, K), got {X.shape}")
    S, J, _K = X.shape
    chosen = np.asarray(arrays.chosen).astype(np.int64)
    available = np.asarray(arrays.available).astype(bool)
    panel = np.asarray(arrays.panel).astype(np.int64)
    weights = np.asarray(arrays.weights, dtype=np.float64)
    if chosen.shape != (S,) or available.shape != (S, J) or panel.shape != (S,):
        raise ValueError(
            f"inconsistent ChoiceArrays shapes: X {X.shape}, chosen {chosen.shape}, "
            f"available {available.shape}, panel {panel.shape}"
        )
    if weights.shape != (S,):
        raise ValueError(f"ChoiceArrays.weights must have shape ({S},), got {weights.shape}")
    if not np.all(np.isfinite(X)):
        s, j, k = np.argwhere(~np.isfinite(X))[0]
        raise ValueError(
            f"non-finite value in variable {arrays.variable_names[k]!r} (situation {s}, slot {j})"
        )
    bad = np.flatnonzero((chosen < 0) | (chosen >= J))
    if bad.size:
        raise ValueError(f"chosen slot out of range [0, {J}) in situation {bad[0]}")
    bad = np.flatnonzero(~available[np.arange(S), chosen])
    if bad.size:
        raise ValueError(f"chosen alternative unavailable in situation {bad[0]}")
    P = int(arrays.num_panels)
    if panel.min(initial=0) < 0 or panel.max(initial=0) >= P:
        raise ValueError(f"panel index outside [0, {P})")
    counts = np.bincount(panel, minlength=P)
    if np.any(counts == 0):
        raise ValueError(f"decision-maker {int(np.flatnonzero(counts == 0)[0])} has no situation")
    T = int(counts.max())
    order = np.argsort(panel, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slot_in_panel = np.arange(S) - starts[panel[order]]
    idx = np.full((P, T), -1, dtype=np.int64)
    idx[panel[order], slot_in_panel] = order
    real = idx >= 0
    safe = np.where(real, idx, 0)
    Xp = np.where(real[..., None, None], X[safe], 0.0)
    chosen_p = np.where(real, chosen[safe], 0).astype(np.int32)
    avail_p = np.where(real[..., None], available[safe], False)
    avail_p[~real, 0] = True
    weights_p = np.where(real, weights[safe], 0.0)
    return PanelArrays(Xp, chosen_p, avail_p, weights_p, idx, S)


def choice_arrays_from_data(data: Any, variables: Sequence[str]) -> ChoiceArrays:
    """``data`` as :class:`ChoiceArrays` (already arrays, or anything with ``to_arrays``)."""
    if isinstance(data, ChoiceArrays):
        missing = [v for v in variables if v not in data.variable_names]
        if missing:
            raise ValueError(
                f"variables {missing} are not columns of the ChoiceArrays "
                f"(columns: {list(data.variable_names)})"
            )
        cols = [list(data.variable_names).index(v) for v in variables]
        if cols != list(range(len(data.variable_names))):
            data = data._replace(X=np.asarray(data.X)[..., cols], variable_names=tuple(variables))
        return data
    if hasattr(data, "to_arrays"):
        if hasattr(data, "require_choices"):
            data.require_choices("fitting a model")
        return data.to_arrays(list(variables))
    raise TypeError(
        f"data must be a ChoiceData (with to_arrays) or ChoiceArrays, got {type(data).__name__}"
    )
