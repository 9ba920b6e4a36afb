"""Wall-clock timing shared by the benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping


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


def timings_against_baseline(
    make: Callable[[str], tuple[Callable[[], object], Callable[[], object]]],
    names: Iterable[str],
    repeats: int,
) -> dict[str, dict[str, float]]:
    """Forward and forward+backward times of each case, and their ratios to the first case's.

    Args:
        make: ``name -> (forward, forward_and_backward)``, two calls to time; built one case
            at a time, in the order of ``names``, just before it is timed.
        names: the cases; the first is the baseline (the benchmarks' ``log_sigmoid``).
        repeats: calls per timing (:func:`best_time`).

    Returns:
        ``{name: {"fwd", "fwd_bwd", "ratio_fwd", "ratio_fwd_bwd"}}``: seconds per call and
        the ratios to the baseline's seconds.
    """
    out: dict[str, dict[str, float]] = {}
    base: dict[str, float] = {}
    for name in names:
        forward, backward = make(name)
        times = {"fwd": best_time(forward, repeats), "fwd_bwd": best_time(backward, repeats)}
        base = base or times
        out[name] = {
            **times,
            "ratio_fwd": times["fwd"] / base["fwd"],
            "ratio_fwd_bwd": times["fwd_bwd"] / base["fwd_bwd"],
        }
    return out


def per_element(times: Mapping[str, float], n: int, scale: float, stem: str) -> dict[str, float]:
    """One case of :func:`timings_against_baseline` per element of the input, as a result row
    reads it: ``{stem_fwd, stem_fwd_bwd}`` (seconds per call times ``scale`` over ``n``: 1e9
    for ns, 1e6 for us), then the two ratios to the baseline."""
    return {
        f"{stem}_fwd": scale * times["fwd"] / n,
        f"{stem}_fwd_bwd": scale * times["fwd_bwd"] / n,
        "ratio_fwd": times["ratio_fwd"],
        "ratio_fwd_bwd": times["ratio_fwd_bwd"],
    }
