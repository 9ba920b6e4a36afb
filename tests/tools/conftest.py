"""The scripts under tools/ are not a package: load them by path."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

TOOLS = Path(__file__).resolve().parents[2] / "tools"


def _load(name: str) -> ModuleType:
    module_name = f"_hetpref_tools_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, TOOLS / f"{name}.py")
    assert spec is not None and spec.loader is not None, name
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and typing look the module up by name
    spec.loader.exec_module(module)
    return module


def _tool_fixture(name: str):
    """A session fixture, named after the script, that returns ``tools/<name>.py`` loaded."""

    @pytest.fixture(scope="session", name=name)
    def tool() -> ModuleType:
        return _load(name)

    return tool


readme_benchmarks = _tool_fixture("readme_benchmarks")
api_reference = _tool_fixture("api_reference")
mypy_baseline = _tool_fixture("mypy_baseline")
import_cycles = _tool_fixture("import_cycles")
