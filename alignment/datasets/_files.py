"""The data sets shipped in ``data_files/``: one writer and one reader for all of them.

A shipped set ``{prefix}_{kind}`` is three files: ``{prefix}_{kind}_{split}.jsonl.gz`` for the
``train`` and ``test`` splits (one JSON object a line, keys sorted) and
``{prefix}_{kind}_ground_truth.json``.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).parent / "data_files"
SPLITS = ("train", "test")


def write_jsonl_gz(path: Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write ``rows`` as gzipped JSON lines with sorted keys; returns ``path``."""
    # mtime=0 keeps the gzip bytes reproducible
    with gzip.GzipFile(path, "wb", mtime=0) as raw:
        for row in rows:
            raw.write((json.dumps(row, sort_keys=True) + "\n").encode())
    return path


def read_jsonl_gz(path: Path) -> list[dict[str, Any]]:
    """The rows of a file written by :func:`write_jsonl_gz` (keys in sorted order)."""
    with gzip.open(path, "rt") as handle:
        return [json.loads(line) for line in handle]


KINDS = ("heterogeneous", "homogeneous")


def write_shipped_sets(
    directory: str | Path, prefix: str, make: Callable[..., Mapping[str, Any]]
) -> list[Path]:
    """Write both kinds of a shipped set; returns the paths written.

    ``make(homogeneous=...)`` returns ``{"train": rows, "test": rows, "ground_truth": dict}``
    (``False`` for ``"heterogeneous"``, ``True`` for ``"homogeneous"``).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in KINDS:
        data = make(homogeneous=kind == "homogeneous")
        for split in SPLITS:
            written.append(
                write_jsonl_gz(directory / f"{prefix}_{kind}_{split}.jsonl.gz", data[split])
            )
        meta = directory / f"{prefix}_{kind}_ground_truth.json"
        meta.write_text(json.dumps(data["ground_truth"], indent=1, sort_keys=True) + "\n")
        written.append(meta)
    return written


def check_kind(kind: str, kinds: Sequence[str]) -> None:
    """Raise ``ValueError`` unless ``kind`` is one of ``kinds``."""
    if kind not in kinds:
        raise ValueError(f"kind must be one of {tuple(kinds)}, got {kind!r}")


def check_split(split: str) -> None:
    """Raise ``ValueError`` unless ``split`` is ``"train"`` or ``"test"``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def read_split(prefix: str, kind: str, split: str) -> list[dict[str, Any]]:
    """The rows of one shipped split (keys in sorted order)."""
    check_split(split)
    return read_jsonl_gz(DATA_DIR / f"{prefix}_{kind}_{split}.jsonl.gz")


def read_ground_truth(prefix: str, kind: str) -> dict[str, Any]:
    """The ground truth of one shipped set."""
    return json.loads((DATA_DIR / f"{prefix}_{kind}_ground_truth.json").read_text())
