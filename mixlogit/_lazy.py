"""Lazy package exports: public names resolved on first access (PEP 562).

Each package ``__init__`` keeps a table ``{public name: "module"}`` (or ``"module:attribute"``
when the attribute is named differently) and asks :func:`lazy_exports` for the module-level
``__getattr__`` and ``__dir__``, so that importing a package stays cheap (no torch, JAX or
transformers until a name that needs them is used)::

    from mixlogit._lazy import lazy_exports

    _LAZY_ATTRS = {"ChoiceData": "mixlogit.data"}
    __getattr__, __dir__ = lazy_exports(
        __name__, _LAZY_ATTRS, submodules=("torch", "jax"),
        deprecated={"OldName": "mixlogit.data:ChoiceData"},
    )
    # Submodules stay out of __all__: a star import would import them (torch is optional).
    __all__ = ["__version__", *sorted(_LAZY_ATTRS)]

Deprecated names stay importable for one release but warn with :class:`DeprecationWarning`
and are left out of ``dir()``. A package that exports several names of each module can write
the table once per module with :func:`names_by_module`.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["lazy_exports", "names_by_module"]


def _split_target(package_name: str, name: str, target: str, table: str) -> tuple[str, str]:
    """``"module"`` -> (module, name); ``"module:attribute"`` -> (module, attribute)."""
    if not isinstance(target, str) or not target:
        raise ValueError(
            f"lazy_exports({package_name!r}): {table}[{name!r}] must be a non-empty "
            f"'module' or 'module:attribute' string, got {target!r}"
        )
    module, sep, attribute = target.partition(":")
    if not module or (sep and not attribute) or ":" in attribute:
        raise ValueError(
            f"lazy_exports({package_name!r}): {table}[{name!r}] = {target!r} is not of the "
            "form 'module' or 'module:attribute'"
        )
    return module, attribute or name


def names_by_module(groups: Mapping[str, Iterable[str]]) -> dict[str, str]:
    """The table ``{public name: "module"}`` of :func:`lazy_exports` from ``{module: names}``
    (each module written once), in the order given.

    Raises:
        ValueError: a name listed under two modules (or twice under one).
    """
    table: dict[str, str] = {}
    for module, names in groups.items():
        for name in names:
            if name in table:
                raise ValueError(f"{name!r} is listed under {table[name]!r} and {module!r}")
            table[name] = module
    return table


def lazy_exports(
    package_name: str,
    table: Mapping[str, str],
    submodules: Iterable[str] = (),
    deprecated: Mapping[str, str] | None = None,
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Module ``__getattr__`` and ``__dir__`` for a package with lazily imported exports.

    Args:
        package_name: the package's ``__name__``, e.g. ``"mixlogit"``.
        table: public name -> ``"module"`` (the attribute has the same name) or
            ``"module:attribute"``; the module is imported on first access of the name.
        submodules: names of subpackages/submodules returned as modules (``mixlogit.torch``).
        deprecated: old public name -> ``"module:attribute"`` of its replacement; accessing the
            old name returns the replacement and emits a :class:`DeprecationWarning` that names
            both. Deprecated names are not listed by ``__dir__``.

    Returns:
        ``(__getattr__, __dir__)``: assign both at module level. ``__getattr__`` raises
        :class:`AttributeError` for names in none of the tables; ``__dir__`` lists the module's
        globals plus the submodules and the table's names, sorted.

    Raises:
        ValueError: a malformed target string, or a name that is both current and deprecated,
        or both a submodule and a table entry.
    """
    exports = {
        name: _split_target(package_name, name, target, "table") for name, target in table.items()
    }
    submodule_names = frozenset(submodules)
    old_names = {
        name: _split_target(package_name, name, target, "deprecated")
        for name, target in (deprecated or {}).items()
    }
    for label, clash in (
        ("both a submodule and a table entry", submodule_names & exports.keys()),
        ("both current and deprecated", (submodule_names | exports.keys()) & old_names.keys()),
    ):
        if clash:
            raise ValueError(f"lazy_exports({package_name!r}): {sorted(clash)} are {label}")

    def _public_path(module: str, attribute: str) -> str:
        # Point users at the package-level name when the replacement is exported there.
        if exports.get(attribute) == (module, attribute):
            return f"{package_name}.{attribute}"
        return f"{module}.{attribute}"

    def __getattr__(name: str) -> Any:
        if name in submodule_names:
            return importlib.import_module(f"{package_name}.{name}")
        if name in exports:
            module, attribute = exports[name]
            return getattr(importlib.import_module(module), attribute)
        if name in old_names:
            module, attribute = old_names[name]
            warnings.warn(
                f"{package_name}.{name} is deprecated and will be removed in the next release; "
                f"use {_public_path(module, attribute)} instead",
                DeprecationWarning,
                stacklevel=2,
            )
            return getattr(importlib.import_module(module), attribute)
        raise AttributeError(f"module {package_name!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        package = sys.modules.get(package_name)
        own = vars(package) if package is not None else {}
        return sorted({*own, *submodule_names, *exports})

    return __getattr__, __dir__
