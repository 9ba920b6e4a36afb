"""Wall-clock timing shared by the benchmarks."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

#: the repository root, where workers run (``python -m benchmarks...``)
ROOT = Path(__file__).resolve().parents[1]


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
        the ratios to the baseline's seconds. The baseline is timed first and again last, and
        its faster time of the two is used: a cheap, memory-bound baseline varies several-fold
        with the machine's load, and one slow timing would flatter every ratio.
    """
    names = list(names)
    times: dict[str, dict[str, float]] = {}

    def timed(name: str) -> dict[str, float]:
        forward, backward = make(name)
        return {"fwd": best_time(forward, repeats), "fwd_bwd": best_time(backward, repeats)}

    for name in names:
        times[name] = timed(name)
    again = timed(names[0])
    base = {key: min(times[names[0]][key], again[key]) for key in again}
    times[names[0]] = base
    return {
        name: {
            **t,
            "ratio_fwd": t["fwd"] / base["fwd"],
            "ratio_fwd_bwd": t["fwd_bwd"] / base["fwd_bwd"],
        }
        for name, t in times.items()
    }


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


def run_measured(command: list[str], env: dict | None = None, cwd: Path = ROOT) -> dict:
    """Run a worker process; return the JSON object of its last output line plus its wall
    time, CPU time (user + system, from ``os.wait4``) and peak resident memory (MiB).

    Output goes to temporary files, so a worker that writes much to stderr cannot fill a pipe
    and stall.

    Raises:
        RuntimeError: the worker failed (with the end of its stderr).
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, cwd=cwd, env=env, text=True)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if process.returncode != 0:
        raise RuntimeError(f"worker {command} failed:\n{stderr[-3000:]}")
    record = json.loads(stdout.strip().splitlines()[-1])
    record.update(
        process_wall_time=wall,
        cpu_time=usage.ru_utime + usage.ru_stime,
        peak_rss_mib=usage.ru_maxrss / 1024.0,
    )
    return record
