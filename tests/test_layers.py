"""The package's layers point one way, pinned by reading every import (ast).

* ``runtime`` (the services) never reaches ``web`` (a front end);
* ``streaming`` never reaches ``matching``: the session manager sees channels
  through ``streaming.source.ChannelSource``;
* ``outputs`` never loads the provider client (``xtream.client``, aiohttp);
* ``web.ui`` is imported only inside ``web`` — the command line, the demo,
  the runtime and the server reach settings and catalogue updates through
  the runtime instead;
* no cycle between the packages (and top-level modules) of ``streamforge``.

Imports anywhere in a module count (also those inside functions): a lazy
import is still a dependency.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path

import streamforge

ROOT = Path(streamforge.__file__).resolve().parent
Graph = Mapping[str, frozenset[str]]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, package_modules: frozenset[str]) -> frozenset[str]:
    """The ``streamforge`` modules ``path`` imports (``from a import b`` counts ``a.b``
    when that is a module, else ``a``)."""
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = module_name(path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.split(".")
                if path.name != "__init__.py":
                    anchor = anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in package_modules else base)
    return frozenset(name for name in found if name.split(".")[0] == "streamforge")


@cache
def module_graph() -> Graph:
    """Every module of the package → the package modules it imports."""
    paths = sorted(ROOT.rglob("*.py"))
    modules = frozenset(module_name(p) for p in paths)
    return {module_name(p): imports_of(p, modules) for p in paths}


def reachable(graph: Graph, start: str) -> set[str]:
    """Every module ``start`` loads, directly or through others (``start`` included)."""
    seen = {start}
    todo = [start]
    while todo:
        for target in graph.get(todo.pop(), frozenset()):
            # Importing a.b.c also runs a/__init__ and a/b/__init__.
            parts = target.split(".")
            for cut in range(1, len(parts) + 1):
                name = ".".join(parts[:cut])
                if name not in seen:
                    seen.add(name)
                    todo.append(name)
    return seen


def unit(module: str) -> str:
    """The layer unit of a module: its subpackage of ``streamforge``, or itself."""
    parts = module.split(".")
    return ".".join(parts[:2])


def unit_graph(graph: Graph) -> dict[str, set[str]]:
    units: dict[str, set[str]] = {}
    for source, targets in graph.items():
        edges = units.setdefault(unit(source), set())
        edges.update(unit(t) for t in targets if unit(t) != unit(source))
    for edges in list(units.values()):
        edges.discard("streamforge")  # the root package holds only __version__
    return units


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def forbidden_edges(graph: Graph) -> list[str]:
    """Every broken layer rule, as ``importer -> imported`` (empty when all hold)."""
    broken: list[str] = []

    def within(module: str, prefix: str) -> bool:
        return module == prefix or module.startswith(prefix + ".")

    runtime_loads = reachable(graph, "streamforge.runtime")
    broken += [
        f"streamforge.runtime -> {m}" for m in sorted(runtime_loads) if within(m, "streamforge.web")
    ]
    for source, targets in graph.items():
        for target in sorted(targets):
            if within(source, "streamforge.streaming") and within(target, "streamforge.matching"):
                broken.append(f"{source} -> {target}")
            if within(target, "streamforge.web.ui") and not within(source, "streamforge.web"):
                broken.append(f"{source} -> {target}")
        if within(source, "streamforge.outputs"):
            loads = reachable(graph, source)
            if "streamforge.xtream.client" in loads:
                broken.append(f"{source} -> ... -> streamforge.xtream.client")
    return broken


# -- the rules hold ------------------------------------------------------------------------
def test_no_forbidden_import_edges() -> None:
    assert forbidden_edges(module_graph()) == []


def test_no_cycle_between_packages() -> None:
    assert cycles(unit_graph(module_graph())) == []


def test_outputs_never_load_the_provider_client() -> None:
    """The same rule at run time: importing every outputs module in a fresh interpreter."""
    modules = sorted(m for m in module_graph() if m.startswith("streamforge.outputs"))
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "provider = ('aiohttp', 'streamforge.xtream.client', 'streamforge.xtream.http')\n"
        "loaded = [m for m in sys.modules if m.startswith(provider)]\n"
        "print(sorted(loaded))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT.parent)},
    )
    assert done.stdout.strip() == "[]"


def test_the_import_graph_is_read() -> None:
    """The checks see real edges (an empty graph would pass every rule)."""
    graph = module_graph()
    assert "streamforge.streaming.source" in graph["streamforge.streaming.manager"]
    assert "streamforge.web.ui" in graph["streamforge.web.app"]
    assert "streamforge.catalog_updates" in graph["streamforge.runtime"]


# -- the checks catch what they should ---------------------------------------------------
def test_a_reintroduced_edge_is_caught() -> None:
    graph = dict(module_graph())
    graph["streamforge.runtime"] = graph["streamforge.runtime"] | {"streamforge.web.auth"}
    graph["streamforge.streaming.manager"] = graph["streamforge.streaming.manager"] | {
        "streamforge.matching.channels"
    }
    graph["streamforge.demo"] = graph["streamforge.demo"] | {"streamforge.web.ui.settings"}
    graph["streamforge.outputs.m3u"] = graph["streamforge.outputs.m3u"] | {
        "streamforge.xtream.accounts"
    }
    broken = forbidden_edges(graph)
    assert "streamforge.runtime -> streamforge.web.auth" in broken
    assert "streamforge.streaming.manager -> streamforge.matching.channels" in broken
    assert "streamforge.demo -> streamforge.web.ui.settings" in broken
    assert "streamforge.outputs.m3u -> ... -> streamforge.xtream.client" in broken
    assert cycles(unit_graph(graph)) == [
        ["streamforge.matching", "streamforge.streaming"],
        ["streamforge.runtime", "streamforge.web"],
    ]
