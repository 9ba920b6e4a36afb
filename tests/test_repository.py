"""Repository-wide contracts: one version, typed packages, entry points that resolve."""

from __future__ import annotations

import importlib
import importlib.metadata
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11; pyproject is only read here

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("mixlogit", "alignment", "analysis")
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_version_is_declared_once_and_read_dynamically():
    project = PYPROJECT["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "mixlogit._version.__version__"
    }


@pytest.mark.parametrize("package", PACKAGES)
def test_every_package_reports_the_distribution_version(package):
    from mixlogit._version import __version__

    assert importlib.import_module(package).__version__ == __version__
    # The installed metadata comes from the same attribute (stale after a bump until the
    # package is reinstalled: `pip install -e .`).
    assert importlib.metadata.version("hetpref") == __version__


@pytest.mark.parametrize("package", PACKAGES)
def test_packages_are_marked_typed(package):
    assert (ROOT / package / "py.typed").is_file()


def test_py_typed_ships_as_package_data():
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["*"]


def test_type_checker_covers_the_three_packages():
    assert set(PACKAGES) <= set(PYPROJECT["tool"]["mypy"]["files"])
    dev = PYPROJECT["project"]["optional-dependencies"]["dev"]
    assert any(req.replace(" ", "").startswith("mypy>=") for req in dev), dev


@pytest.mark.parametrize("name", sorted(PYPROJECT["project"]["scripts"]))
def test_console_scripts_resolve_to_callables(name):
    module_name, _, attribute = PYPROJECT["project"]["scripts"][name].partition(":")
    target = getattr(importlib.import_module(module_name), attribute)
    assert callable(target), (name, target)


#: Packages whose top level is one screen of names (at most this many) and keeps the names of
#: the first release as deprecated aliases (``_DEPRECATED``: ``{name: "module:attribute"}``).
SCREENS = {"alignment": 25, "analysis": 30}


@pytest.mark.parametrize("package", SCREENS)
def test_public_names_fit_on_a_screen_and_resolve(package):
    module = importlib.import_module(package)
    assert len(module.__all__) <= SCREENS[package]
    for name in module.__all__:
        assert getattr(module, name) is not None, name
    assert set(module.__all__) <= set(dir(module))


@pytest.mark.parametrize(
    ("package", "name"),
    [(p, n) for p in SCREENS for n in sorted(importlib.import_module(p)._DEPRECATED)],
)
def test_names_of_the_first_release_warn_and_resolve(package, name):
    module = importlib.import_module(package)
    target, _, attribute = module._DEPRECATED[name].partition(":")
    attribute = attribute or name  # "module" alone: the attribute keeps the name
    with pytest.warns(DeprecationWarning, match=f"{package}.{name} is deprecated"):
        value = getattr(module, name)
    assert value is getattr(importlib.import_module(target), attribute)
    assert name not in module.__all__
