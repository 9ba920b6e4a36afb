"""mixlogit._lazy.lazy_exports on a throwaway package written to tmp_path."""

from __future__ import annotations

import importlib
import sys
import textwrap
import warnings

import pytest

from mixlogit._lazy import lazy_exports

PACKAGE = "lazy_probe_pkg"

INIT = """
from mixlogit._lazy import lazy_exports

CONSTANT = 3
_TABLE = {"Thing": "lazy_probe_pkg.heavy", "alias_of_make": "lazy_probe_pkg.heavy:make"}
__getattr__, __dir__ = lazy_exports(
    __name__, _TABLE, submodules=("sub",),
    deprecated={"OldThing": "lazy_probe_pkg.heavy:Thing", "old_helper": "lazy_probe_pkg.heavy:helper"},
)
"""

HEAVY = """
class Thing:
    pass

def make():
    return Thing()

def helper():
    return 42
"""


@pytest.fixture
def probe(tmp_path, monkeypatch):
    root = tmp_path / PACKAGE
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text(textwrap.dedent(INIT))
    (root / "heavy.py").write_text(textwrap.dedent(HEAVY))
    (root / "sub" / "__init__.py").write_text("VALUE = 'sub'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield importlib.import_module(PACKAGE)
    for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
        del sys.modules[name]


def test_names_import_on_first_access(probe):
    assert f"{PACKAGE}.heavy" not in sys.modules
    thing = probe.Thing
    assert f"{PACKAGE}.heavy" in sys.modules
    assert thing is sys.modules[f"{PACKAGE}.heavy"].Thing
    from lazy_probe_pkg import Thing

    assert Thing is thing


def test_module_colon_attribute_renames(probe):
    assert probe.alias_of_make is sys.modules[f"{PACKAGE}.heavy"].make
    assert isinstance(probe.alias_of_make(), probe.Thing)


def test_submodules_are_modules(probe):
    assert f"{PACKAGE}.sub" not in sys.modules
    assert probe.sub.VALUE == "sub"
    assert probe.sub is sys.modules[f"{PACKAGE}.sub"]


def test_unknown_name_raises_attribute_error_naming_it(probe):
    with pytest.raises(AttributeError, match=r"module 'lazy_probe_pkg' has no attribute 'Nope'"):
        probe.Nope
    assert not hasattr(probe, "Nope")


def test_deprecated_name_warns_and_returns_the_replacement(probe):
    with pytest.warns(DeprecationWarning) as record:
        old = probe.OldThing
    assert old is probe.Thing
    message = str(record[0].message)
    # The replacement is exported at package level, so the message points there.
    assert "lazy_probe_pkg.OldThing is deprecated" in message
    assert "use lazy_probe_pkg.Thing instead" in message
    # The warning is attributed to the caller (this file), not to mixlogit/_lazy.py.
    assert record[0].filename == __file__


def test_deprecated_name_without_package_export_points_at_module(probe):
    with pytest.warns(DeprecationWarning, match=r"use lazy_probe_pkg\.heavy\.helper instead"):
        assert probe.old_helper() == 42


def test_current_names_do_not_warn(probe):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        probe.Thing
        probe.sub


def test_dir_lists_globals_submodules_and_exports_but_not_deprecated(probe):
    listing = dir(probe)
    assert listing == sorted(listing)
    assert {"CONSTANT", "Thing", "alias_of_make", "sub", "__name__"} <= set(listing)
    assert "OldThing" not in listing
    assert "old_helper" not in listing


@pytest.mark.parametrize("target", ["", ":name", "module:", "a:b:c"])
def test_malformed_target_is_rejected(target):
    with pytest.raises(ValueError, match=r"table\['X'\]"):
        lazy_exports("pkg", {"X": target})


def test_non_string_target_is_rejected():
    with pytest.raises(ValueError, match=r"deprecated\['X'\] must be a non-empty"):
        lazy_exports("pkg", {}, deprecated={"X": None})  # type: ignore[dict-item]


def test_name_both_current_and_deprecated_is_rejected():
    with pytest.raises(ValueError, match=r"\['X'\] are both current and deprecated"):
        lazy_exports("pkg", {"X": "pkg.mod"}, deprecated={"X": "pkg.mod:Y"})


def test_name_both_submodule_and_export_is_rejected():
    with pytest.raises(ValueError, match=r"\['sub'\] are both a submodule and a table entry"):
        lazy_exports("pkg", {"sub": "pkg.mod"}, submodules=["sub"])


def test_names_by_module_writes_each_module_once_and_rejects_a_name_listed_twice():
    from mixlogit._lazy import names_by_module

    table = names_by_module({"pkg.a": ("x", "y"), "pkg.b": ("z",)})
    assert table == {"x": "pkg.a", "y": "pkg.a", "z": "pkg.b"}
    assert list(table) == ["x", "y", "z"]
    with pytest.raises(ValueError, match=r"'x' is listed under 'pkg.a' and 'pkg.b'"):
        names_by_module({"pkg.a": ("x",), "pkg.b": ("x",)})
