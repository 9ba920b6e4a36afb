"""tools/api_reference.py: docs/api.md lists the packages' public exports and is up to date."""

from __future__ import annotations

import dataclasses
import sys
import textwrap

import pytest


def test_api_page_is_up_to_date(api_reference, capsys):
    status = api_reference.main(["--check"])
    assert status == 0, capsys.readouterr().out


def test_public_exports_have_docstrings(api_reference):
    undocumented = [
        f"{e.module}.{e.name}"
        for package in api_reference.PACKAGES
        for e in api_reference.entries(package)
        if e.kind != "constant" and not e.summary
    ]
    assert not undocumented, f"public names without a docstring: {undocumented}"


def _every_kind(a, /, b: int = 2, *args, c: str = "x", **kw) -> int:
    return 0


def _keyword_only(a, *, b=1):
    return a


class _Base:
    """Base docstring."""


class _Child(_Base):
    pass


class _Documented:
    """First line
    continues here.

    Second paragraph, not shown.
    """

    def __init__(self, x: float, *, y: tuple[int, ...] = ()) -> None:
        pass


def test_signature_text_keeps_every_parameter_kind(api_reference):
    assert api_reference.signature_text(_every_kind) == (
        "(a, /, b: int = 2, *args, c: str = 'x', **kw) -> int"
    )
    assert api_reference.signature_text(_keyword_only) == "(a, *, b=1)"
    # Classes show their constructor, without the "-> None".
    assert api_reference.signature_text(_Documented) == "(x: float, *, y: tuple[int, ...] = ())"


def test_dataclass_fields_of_foreign_bases_are_summarised(api_reference):
    import transformers

    @dataclasses.dataclass
    class Config(transformers.TrainingArguments):
        """A config."""

        beta: float = 0.1

    assert api_reference.signature_text(Config) == "(beta: float = 0.1, **TrainingArguments fields)"


def test_summary_is_the_first_paragraph_of_the_own_docstring(api_reference):
    assert api_reference.summary(_Documented) == "First line continues here."
    assert api_reference.summary(_Child) == ""  # not the base class's docstring


@pytest.fixture
def probe_package(tmp_path, monkeypatch):
    root = tmp_path / "api_probe_pkg"
    root.mkdir()
    (root / "impl.py").write_text(
        textwrap.dedent(
            '''
            LIMIT = 3

            def scale(x: float, factor: float = 2.0) -> float:
                """Multiply ``x`` by ``factor``.

                More detail.
                """
                return x * factor
            '''
        )
    )
    (root / "__init__.py").write_text(
        textwrap.dedent(
            '''
            """Probe package for the API reference."""
            from mixlogit._lazy import lazy_exports

            _TABLE = {"scale": "api_probe_pkg.impl", "LIMIT": "api_probe_pkg.impl"}
            __getattr__, __dir__ = lazy_exports(__name__, _TABLE)
            __all__ = ["LIMIT", "scale"]
            '''
        )
    )
    for sub, doc in (("public_sub", "Public subpackage."), ("_private_sub", "Internal.")):
        (root / sub).mkdir()
        (root / sub / "__init__.py").write_text(
            f'"""{doc}"""\n\ndef helper():\n    """Help."""\n\n__all__ = ["helper"]\n'
        )
    (root / "no_all_sub").mkdir()
    (root / "no_all_sub" / "__init__.py").write_text("x = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield root
    for name in [m for m in sys.modules if m.split(".")[0] == "api_probe_pkg"]:
        del sys.modules[name]


def test_lazy_exports_are_imported_and_rendered(api_reference, probe_package):
    page = api_reference.render(["api_probe_pkg"])
    assert "## `api_probe_pkg`\n\nProbe package for the API reference." in page
    assert "- **`LIMIT`**` = 3`" in page
    assert (
        "- **`scale`**`(x: float, factor: float = 2.0) -> float` (function, "
        "`api_probe_pkg.impl`): Multiply ``x`` by ``factor``." in page
    )


def test_names_listed_but_missing_are_reported(api_reference, probe_package):
    init = probe_package / "__init__.py"
    init.write_text(init.read_text().replace('"scale"]', '"scale", "gone"]'))
    with pytest.raises(AttributeError, match=r"api_probe_pkg.__all__ lists 'gone'"):
        list(api_reference.entries("api_probe_pkg"))


def test_package_without_all_is_refused(api_reference, tmp_path, monkeypatch):
    (tmp_path / "api_probe_bare.py").write_text("x = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match="api_probe_bare defines no __all__"):
        list(api_reference.entries("api_probe_bare"))
    del sys.modules["api_probe_bare"]


def test_public_subpackages_with_all_get_their_own_section(api_reference, probe_package):
    assert list(api_reference.namespaces("api_probe_pkg")) == [
        "api_probe_pkg",
        "api_probe_pkg.public_sub",
    ]
    page = api_reference.render(["api_probe_pkg"])
    assert "## `api_probe_pkg.public_sub`\n\nPublic subpackage.\n\n- **`helper`**`()`" in page
    assert "_private_sub" not in page and "no_all_sub" not in page
