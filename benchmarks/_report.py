"""The benchmarks' reports: Markdown tables of ``results/*.md`` and the saving of both files."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def git_output(*args: str) -> str | None:
    """``git <args>`` in the project (stripped stdout), or None outside a checkout."""
    try:
        return subprocess.run(
            ["git", *args], capture_output=True, text=True, check=True, cwd=Path(__file__).parent
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def torch_run_provenance(module: str, argv: Sequence[str] | None) -> dict[str, Any]:
    """What a torch benchmark's saved result records about its run: ``machine`` (CPUs, torch
    threads, platform, versions, load average at the start), ``commit``, ``uncommitted_files``
    (the run measures the working tree: the files that differ from the commit) and
    ``command`` (``python -m <module> <argv>``; ``argv`` None: this process's arguments)."""
    import torch

    return {
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "load_avg_start": os.getloadavg(),
        },
        "commit": git_output("rev-parse", "HEAD"),
        "uncommitted_files": (git_output("status", "--porcelain") or "").splitlines(),
        "command": f"python -m {module} " + " ".join(argv if argv is not None else sys.argv[1:]),
    }


def save_report(stem: str, results: Mapping[str, Any], markdown: str) -> None:
    """Write ``results/<stem>.json`` (indented by 2) and ``results/<stem>.md``; say where."""
    RESULTS.mkdir(exist_ok=True)
    paths = RESULTS / f"{stem}.json", RESULTS / f"{stem}.md"
    paths[0].write_text(json.dumps(results, indent=2))
    paths[1].write_text(markdown)
    print(f"saved {paths[0]} and {paths[1]}")


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """The lines of a Markdown table: ``header``, its rule, then one line per row.

    Cells are written as given (``str``), so a row formats its own numbers.
    """
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def timing_markdown(
    rows: Iterable[Mapping[str, Any]],
    labels: Sequence[str],
    time: str,
    unit: str,
    *,
    time_format: str,
    ratio_format: str,
) -> list[str]:
    """A Markdown table of timing rows: the ``labels`` columns, then the time and its ratio to
    the baseline (:func:`benchmarks._timing.timings_against_baseline`), forward and
    forward+backward.

    Args:
        rows: ``{label: value, f"{time}_fwd", f"{time}_fwd_bwd", "ratio_fwd", "ratio_fwd_bwd"}``.
        labels: the keys that name a row's case (``backend``, ``marginal``, ...).
        time: the stem of the time keys (``ns_per_element``); ``unit`` its header (``ns/el``).
        time_format, ratio_format: format specs of the times and of the ratios (``.1f``).
    """
    passes = ("fwd", "fwd_bwd")
    header = (*labels, f"fwd {unit}", "fwd ratio", f"fwd+bwd {unit}", "fwd+bwd ratio")
    cells = (
        (
            *(r[label] for label in labels),
            *(
                cell
                for p in passes
                for cell in (
                    f"{r[f'{time}_{p}']:{time_format}}",
                    f"{r[f'ratio_{p}']:{ratio_format}}",
                )
            ),
        )
        for r in rows
    )
    return markdown_table(header, cells)
