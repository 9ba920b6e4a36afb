"""Wall-clock timing shared by the benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_time(function: Callable[[], object], repeats: int, *, warm_up: bool = True) -> float:
    """Fastest of ``repeats`` calls of ``function`` (seconds), after one untimed call.

    The minimum is the run least disturbed by other load; the untimed call absorbs JIT
    compilation and first-call caches (``warm_up=False`` skips it where a call is expensive).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if warm_up:
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)
