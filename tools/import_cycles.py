"""Find import cycles among the modules of a package, from the AST (nothing is imported).

Every ``import`` statement counts, at module level or inside a function or method (a deferred
import hides a cycle from the interpreter, not from the design), except those under
``if TYPE_CHECKING:``, which never run. ``from pkg import name`` is an edge to the submodule
``pkg.name`` when that module exists, otherwise to ``pkg`` (its ``__init__``). Importing
``pkg.sub`` runs ``pkg/__init__.py`` first, so it is also an edge to ``pkg`` (and every
package above it), except from modules inside ``pkg``: for them ``pkg`` is already being
initialised, and a package ``__init__`` that re-exports its submodules is no cycle.

Usage::

    python tools/import_cycles.py mixlogit [alignment analysis ...] [--root DIR]

Prints each cycle (a strongly connected component of the import graph, with one closed path
through it and the line of every import on that path) and exits with status 1 when there is
one, 0 otherwise.
"""

from __future__ import annotations

import argparse
import ast
import itertools
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

__all__ = ["find_cycles", "import_graph", "main"]

# graph: module -> {imported module: first line number of such an import}
Graph = dict[str, dict[str, int]]


def _modules(root: Path, package: str) -> dict[str, Path]:
    base = root / package.replace(".", "/")
    if not (base / "__init__.py").is_file():
        raise SystemExit(f"{package!r} is not a package under {root} (no {base}/__init__.py)")
    found = {}
    for path in sorted(base.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)  # the body only runs under a type checker
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of the dotted ``name`` that is a module of the scanned packages."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def import_graph(modules: dict[str, Path]) -> Graph:
    """Edges ``importer -> imported`` among ``modules`` (``{dotted name: path}``)."""
    graph: Graph = {name: {} for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _import_nodes(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                if node.level:
                    anchor = name.split(".")
                    # a package's own __init__ is its anchor for level 1
                    drop = node.level - 1 if is_package else node.level
                    anchor = anchor[: len(anchor) - drop] if drop else anchor
                    base = ".".join([*anchor, *([node.module] if node.module else [])])
                else:
                    base = node.module or ""
                for alias in node.names:
                    submodule = f"{base}.{alias.name}"
                    targets.append(submodule if submodule in modules else base)
            for target in targets:
                resolved = _resolve(target, modules)
                if resolved is None:
                    continue
                parts = resolved.split(".")
                for end in range(1, len(parts) + 1):
                    imported = ".".join(parts[:end])
                    if imported not in modules or name == imported:
                        continue
                    if end < len(parts) and name.startswith(imported + "."):
                        continue  # a package above the importer: already initialising
                    graph[name].setdefault(imported, node.lineno)
    return graph


def _strongly_connected(graph: Graph) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components in discovery order, members sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(graph[start]))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph[child])))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def _closed_path(graph: Graph, component: list[str]) -> list[str]:
    """A shortest cycle through the first member of ``component`` (breadth first)."""
    members = set(component)
    start = component[0]
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in graph[node]:
                if child not in members:
                    continue
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    return [start, start]


def find_cycles(graph: Graph) -> list[tuple[list[str], list[str]]]:
    """``(members, closed path [a, b, ..., a])`` of each import cycle of ``graph``: the
    members are a strongly connected component (every one reaches every other)."""
    return [
        (component, _closed_path(graph, component))
        for component in _strongly_connected(graph)
        if len(component) > 1
    ]


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("packages", nargs="+", help="top-level packages to scan, e.g. mixlogit")
    parser.add_argument("--root", default=".", help="directory holding the packages")
    args = parser.parse_args(list(argv) if argv is not None else None)
    root = Path(args.root)
    modules: dict[str, Path] = {}
    for package in args.packages:
        modules.update(_modules(root, package))
    graph = import_graph(modules)
    cycles = find_cycles(graph)
    num_edges = sum(len(targets) for targets in graph.values())
    print(f"{len(modules)} modules, {num_edges} internal imports, {len(cycles)} cycle(s)")
    for members, path in cycles:
        print(f"cycle among {len(members)} modules: {', '.join(members)}")
        print("  path: " + " -> ".join(path))
        for importer, imported in itertools.pairwise(path):
            line = graph[importer][imported]
            print(f"    {modules[importer]}:{line} imports {imported}")
    return 1 if cycles else 0


if __name__ == "__main__":
    sys.exit(main())
