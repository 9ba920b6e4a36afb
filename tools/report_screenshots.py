"""Screenshots of an HTML report with headless Chromium, cut into page-sized PNGs.

    python tools/report_screenshots.py reports/demo.html docs/images/demo_report [--width 1280]

Chromium draws the whole report in one tall window (``--height``, default 16000 px, enough for
the demo report); the blank bottom is trimmed and the rest cut into ``part00.png``,
``part01.png``, ... of ``--page`` px each. Needs a ``chromium`` (Debian package) or
``chromium-browser`` on the PATH.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("output", type=Path, help="directory of the PNGs")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=16000)
    parser.add_argument("--page", type=int, default=1400)
    args = parser.parse_args(argv)
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print("no chromium on the PATH (apt-get install chromium)", file=sys.stderr)
        return 2
    if not args.report.is_file():
        print(f"{args.report} does not exist", file=sys.stderr)
        return 2
    args.output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        full = Path(scratch) / "full.png"
        subprocess.run(
            [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--window-size={args.width},{args.height}", f"--screenshot={full}",
             args.report.resolve().as_uri()],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip
        image = Image.open(full)
        grey = np.asarray(image.convert("L"))
        drawn = np.flatnonzero((grey < 250).any(axis=1))
        bottom = min(image.height, int(drawn.max()) + 20) if drawn.size else image.height
        if bottom >= image.height - 20:
            print(f"the report may be longer than --height {args.height}", file=sys.stderr)
        pages = range(0, bottom, args.page)
        for number, top in enumerate(pages):
            part = image.crop((0, top, image.width, min(top + args.page, bottom)))
            part.save(args.output / f"part{number:02d}.png")
    print(f"{len(pages)} pages of {args.width} px in {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
