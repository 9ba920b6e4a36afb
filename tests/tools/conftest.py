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


@pytest.fixture(scope="session")
def readme_benchmarks() -> ModuleType:
    return _load("readme_benchmarks")


@pytest.fixture(scope="session")
def api_reference() -> ModuleType:
    return _load("api_reference")


@pytest.fixture(scope="session")
def mypy_baseline() -> ModuleType:
    return _load("mypy_baseline")
