"""The three packages are layered: no import cycle inside any of them, and no import upwards.

``mixlogit`` (the core) imports neither ``alignment`` nor ``analysis``; ``alignment`` does not
import ``analysis``. Every import counts, deferred ones included (``tools/import_cycles.py``).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("mixlogit", "alignment", "analysis")
ABOVE = {"mixlogit": ("alignment", "analysis"), "alignment": ("analysis",), "analysis": ()}


def _checker():
    spec = importlib.util.spec_from_file_location("import_cycles", ROOT / "tools/import_cycles.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("import_cycles", module)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("package", PACKAGES)
def test_package_has_no_import_cycle(package):
    checker = _checker()
    cycles = checker.find_cycles(checker.import_graph(checker._modules(ROOT, package)))
    assert [members for members, _ in cycles] == []


@pytest.mark.parametrize("package", PACKAGES)
def test_package_imports_nothing_above_it(package):
    checker = _checker()
    upward = []
    for module, path in checker._modules(ROOT, package).items():
        for node in checker.ast.walk(checker.ast.parse(path.read_text())):
            names = []
            if isinstance(node, checker.ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, checker.ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            upward += [(module, n) for n in names if n.split(".")[0] in ABOVE[package]]
    assert upward == []
