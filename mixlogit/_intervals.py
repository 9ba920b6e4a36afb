"""Central-interval probabilities and their column labels, one convention for every table."""

from __future__ import annotations

__all__ = ["interval_labels"]


def interval_labels(interval: float) -> tuple[float, float, str, str]:
    """Lower and upper probabilities of a central ``interval`` and their column labels,
    e.g. ``0.94 -> (0.03, 0.97, "q3%", "q97%")`` (shared by both results classes)."""
    if not 0.0 < interval < 1.0:
        raise ValueError(f"interval must be in (0, 1), got {interval!r}")
    lower, upper = (1.0 - interval) / 2.0, (1.0 + interval) / 2.0
    return lower, upper, f"q{round(100 * lower, 6):g}%", f"q{round(100 * upper, 6):g}%"
