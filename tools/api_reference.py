"""Write docs/api.md: every public export of the three packages, from ``__all__`` and docstrings.

For each package and each of its public subpackages (``mixlogit.torch``, ``alignment.datasets``,
...; see :func:`namespaces`) the page lists the names in ``__all__`` in that order, with the kind of object, its call signature and
the first paragraph of its docstring. Names are imported through the package, so lazily
exported names resolve exactly as users see them.

    python tools/api_reference.py           # rewrite docs/api.md
    python tools/api_reference.py --check   # exit 1 (and print a diff) if docs/api.md is stale
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import pkgutil
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ForwardRef

# tools/ is no package: its scripts import their shared helper as a sibling module, also when
# loaded by path (the tests).
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from _generated_file import update_generated

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "docs" / "api.md"
PACKAGES = ("mixlogit", "alignment", "analysis")

__all__ = [
    "PACKAGES",
    "Entry",
    "entries",
    "main",
    "namespaces",
    "render",
    "signature_text",
    "summary",
]

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_MAX_VALUE_CHARS = 100


@dataclass(frozen=True)
class Entry:
    """One public name: where it is exported, what it is, how it is called, what it does."""

    module: str  # the package whose __all__ lists it
    name: str
    kind: str  # "class", "function", "module" or "constant"
    signature: str  # "(x, *, y=1) -> int", "= value" for constants, "" for modules
    summary: str  # first docstring paragraph, "" when the object has no docstring of its own
    defined_in: str  # the module that defines it ("" for constants)


def _own_doc(obj: Any) -> str | None:
    """The object's own docstring: a class without one does not inherit its base's."""
    if inspect.isclass(obj):
        doc = vars(obj).get("__doc__")
    elif inspect.ismodule(obj) or inspect.isroutine(obj) or callable(obj):
        doc = getattr(obj, "__doc__", None)
    else:
        return None
    return inspect.cleandoc(doc) if isinstance(doc, str) and doc.strip() else None


def summary(obj: Any) -> str:
    """First paragraph of the object's own docstring, on one line ("" when there is none)."""
    doc = _own_doc(obj)
    if doc is None:
        return ""
    return " ".join(doc.split("\n\n")[0].split())


def _annotation(annotation: Any) -> str:
    # With `from __future__ import annotations` annotations are the source text (dataclass
    # __init__s wrap it in a ForwardRef).
    if isinstance(annotation, ForwardRef):
        return annotation.__forward_arg__
    return annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)


def _default(value: Any) -> str:
    return _ADDRESS.sub("", repr(value))


def signature_text(obj: Any) -> str:
    """``(a: int, /, b=2, *args, c: str = 'x', **kw) -> T``, annotations as written."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):  # builtins (e.g. exception classes) have none to show
        return ""
    foreign = _foreign_fields(obj)
    if foreign:
        sig = sig.replace(parameters=[p for p in sig.parameters.values() if p.name not in foreign])
    parts: list[str] = []
    seen_keyword_only = False
    kinds = inspect.Parameter
    params = list(sig.parameters.values())
    for i, p in enumerate(params):
        if p.kind is kinds.KEYWORD_ONLY and not seen_keyword_only:
            parts.append("*")
        if p.kind in (kinds.KEYWORD_ONLY, kinds.VAR_POSITIONAL):
            seen_keyword_only = True
        prefix = (
            "*" if p.kind is kinds.VAR_POSITIONAL else "**" if p.kind is kinds.VAR_KEYWORD else ""
        )
        text = prefix + p.name
        if p.annotation is not p.empty:
            text += f": {_annotation(p.annotation)}"
        if p.default is not p.empty:
            text += (" = " if p.annotation is not p.empty else "=") + _default(p.default)
        parts.append(text)
        last_positional_only = p.kind is kinds.POSITIONAL_ONLY and (
            i + 1 == len(params) or params[i + 1].kind is not kinds.POSITIONAL_ONLY
        )
        if last_positional_only:
            parts.append("/")
    if foreign:
        bases = sorted({owner for owner in foreign.values()})
        parts.append(f"**{'/'.join(bases)} fields")
    text = f"({', '.join(parts)})"
    if sig.return_annotation is not sig.empty and not inspect.isclass(obj):
        text += f" -> {_annotation(sig.return_annotation)}"
    return text


def _foreign_fields(obj: Any) -> dict[str, str]:
    """Dataclass fields inherited from another distribution's class: ``{field: class name}``.

    ``MixDPOConfig`` inherits some hundred fields of ``transformers.TrainingArguments``; listing
    them would tie this page to the installed transformers version.
    """
    if not (inspect.isclass(obj) and dataclasses.is_dataclass(obj)):
        return {}
    owners: dict[str, str] = {}
    for field in dataclasses.fields(obj):
        owner = next(c for c in obj.__mro__ if field.name in vars(c).get("__annotations__", {}))
        if owner.__module__.split(".")[0] != obj.__module__.split(".")[0]:
            owners[field.name] = owner.__name__
    return owners


def _kind(obj: Any) -> str:
    if inspect.ismodule(obj):
        return "module"
    if inspect.isclass(obj):
        return "class"
    if callable(obj):
        return "function"
    return "constant"


def _constant_text(value: Any) -> str:
    text = _default(value)
    # Objects without a literal repr show their type.
    if len(text) > _MAX_VALUE_CHARS or "\n" in text or text.startswith("<"):
        return f": {type(value).__name__}"
    return f" = {text}"


def entries(package_name: str) -> Iterator[Entry]:
    """The entries of ``package_name.__all__``, in that order."""
    package = importlib.import_module(package_name)
    names = getattr(package, "__all__", None)
    if names is None:
        raise ValueError(f"{package_name} defines no __all__: its public API is undeclared")
    for name in names:
        try:
            obj = getattr(package, name)
        except AttributeError:
            raise AttributeError(
                f"{package_name}.__all__ lists {name!r}, which the package does not provide"
            ) from None
        kind = _kind(obj)
        if kind == "module":
            yield Entry(package_name, name, kind, "", summary(obj), obj.__name__)
        elif kind == "constant":
            yield Entry(package_name, name, kind, _constant_text(obj), "", "")
        else:
            defined_in = getattr(obj, "__module__", "") or ""
            yield Entry(package_name, name, kind, signature_text(obj), summary(obj), defined_in)


def namespaces(package_name: str) -> Iterator[str]:
    """``package_name``, then its public subpackages that declare ``__all__`` (depth first).

    A subpackage is public when no component of its dotted name starts with ``_``; plain
    modules are documented only through the names their package re-exports, or when the
    package lists the module itself in ``__all__``.
    """
    yield package_name
    package = importlib.import_module(package_name)
    exported = [
        obj.__name__
        for name in getattr(package, "__all__", ())
        if inspect.ismodule(obj := getattr(package, name))
        and obj.__name__.startswith(f"{package_name}.")
    ]
    found = [
        f"{package_name}.{info.name}"
        for info in pkgutil.iter_modules(getattr(package, "__path__", []))
        if info.ispkg and not info.name.startswith("_")
    ]
    for child in dict.fromkeys([*exported, *sorted(found)]):
        if hasattr(importlib.import_module(child), "__all__"):
            yield from namespaces(child)


def render(packages: Sequence[str] = PACKAGES) -> str:
    """The whole of docs/api.md."""
    lines = [
        "# API reference",
        "",
        "Generated from each package's `__all__` and docstrings by `python tools/api_reference.py`",
        "(`make docs`); do not edit by hand: `make test` fails when this page is stale. Names not",
        "listed here are internal, or deprecated aliases kept for one release (see",
        "[naming.md](naming.md)).",
    ]
    sections: dict[str, list[Entry]] = {}
    for package in packages:
        for namespace in namespaces(package):
            if namespace not in sections:
                sections[namespace] = list(entries(namespace))
    for module, items in sections.items():
        lines += ["", f"## `{module}`", ""]
        doc = summary(importlib.import_module(module))
        if doc:
            lines += [doc, ""]
        for e in items:
            if e.kind == "module":
                head = f"- **`{e.name}`** (module `{e.defined_in}`)"
            elif e.kind == "constant":
                head = f"- **`{e.name}`**`{e.signature}`"
            else:
                where = f", `{e.defined_in}`" if e.defined_in else ""
                head = f"- **`{e.name}`**`{e.signature}` ({e.kind}{where})"
            lines.append(head + (f": {e.summary}" if e.summary else ""))
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/api.md is stale")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    wanted = render()
    current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
    hint = f"{args.output} is stale: run python tools/api_reference.py"
    return update_generated(args.output, current, wanted, args.check, "the packages", hint)


if __name__ == "__main__":
    sys.exit(main())
