"""The one rule of the generated files (docs/api.md, the README's benchmark table).

A generator renders the text a file should hold; :func:`update_generated` writes it, or with
``check`` prints the unified diff against the file and a hint to regenerate, exiting 1 when
the file is stale. Imported by the scripts next to it (``tools/`` is not a package).
"""

from __future__ import annotations

import difflib
import sys
from pathlib import Path

__all__ = ["update_generated"]


def update_generated(
    path: Path, current: str, wanted: str, check: bool, source: str, hint: str
) -> int:
    """Bring ``path`` (holding ``current``) to ``wanted``; the exit status of the generator.

    Args:
        path: the generated file.
        current: its text now (``""`` when it does not exist).
        wanted: the text rendered from ``source``.
        check: do not write; print the diff (``path`` -> ``source``) and ``hint`` instead.
        source: what ``wanted`` is rendered from; the diff's second label is
            ``"rendered from <source>"``.
        hint: the line printed after the diff, naming the command that regenerates the file.

    Returns:
        0 when the file is (now) up to date, 1 when ``check`` found it stale.
    """
    if wanted == current:
        return 0
    if check:
        diff = difflib.unified_diff(
            current.splitlines(keepends=True),
            wanted.splitlines(keepends=True),
            str(path),
            f"rendered from {source}",
        )
        sys.stdout.writelines(diff)
        print(f"\n{hint}")
        return 1
    path.write_text(wanted, encoding="utf-8")
    return 0
