"""tools/import_cycles.py: every import counts (deferred ones and package ``__init__``
included), ``TYPE_CHECKING`` imports do not; the repository's own packages are checked by
tests/test_layering.py."""

from __future__ import annotations

from pathlib import Path


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_checker_finds_function_level_and_package_init_cycles(import_cycles, tmp_path, capsys):
    checker = import_cycles
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "def f():\n    from pkg import b\n",  # deferred import still counts
            "pkg/b.py": "from pkg.a import f\n",
            # results -> drivers (its __init__ runs first) -> fit -> results
            "pkg/results.py": "from pkg.drivers.problem import build\n",
            "pkg/drivers/__init__.py": "from pkg.drivers.fit import estimate\n",
            "pkg/drivers/fit.py": "from pkg.results import Results\n",
            "pkg/drivers/problem.py": "build = 1\n",
            # never run: not an edge
            "pkg/typed.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.c\n",
            "pkg/c.py": "import pkg.typed\n",
        },
    )
    assert checker.main(["pkg", "--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "cycle among 2 modules: pkg.a, pkg.b" in out
    assert "cycle among 3 modules: pkg.drivers, pkg.drivers.fit, pkg.results" in out
    assert "pkg.c" not in out and "2 cycle(s)" in out


def test_checker_accepts_a_layered_package(import_cycles, tmp_path, capsys):
    checker = import_cycles
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.high import g\n",  # re-exports are no cycle
            "pkg/low.py": "x = 1\n",
            "pkg/high.py": "from . import low\nfrom .low import x\ndef g():\n    import pkg.low\n",
        },
    )
    assert checker.main(["pkg", "--root", str(tmp_path)]) == 0
    assert "0 cycle(s)" in capsys.readouterr().out
