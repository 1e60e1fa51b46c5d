"""No import cycle between the packages of monitor/ and dashboards/ (issue 16).

A node of the graph is a package, i.e. a directory (monitor.ingest, monitor.alerts,
monitor.alerts.channels, dashboards.figures, ...), except in the two top directories: there each
module is a node of its own (monitor.tick, monitor.config, dashboards.app). The top of monitor
holds both the foundation every package imports (config, timeutil, context) and the front ends
that import every package (cli, tick, scheduler); as one node it would be on a cycle with
every package, and a real cycle such as config <-> secrets would be invisible. Every import counts,
at module level or inside a function (a deferred import still ties the two packages together;
it only hides the cycle from the interpreter), except those under `if TYPE_CHECKING:`, which
never run. The graph is built with `ast` alone: nothing is imported, so a broken module still
gets checked and the test costs a fraction of a second.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOP_PACKAGES = ("monitor", "dashboards")


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module (or package)
    where: str  # path:line of the import statement


def module_names(root: Path, tops: tuple[str, ...]) -> dict[str, Path]:
    """Dotted name -> file, for every module and package (its __init__.py) under `tops`."""
    names: dict[str, Path] = {}
    for top in tops:
        for path in sorted((root / top).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            names[".".join(parts)] = path
    return names


def package_of(module: str, names: dict[str, Path]) -> str:
    """A package's own name; a module's containing directory."""
    return module if names[module].name == "__init__.py" else module.rpartition(".")[0]


def node_of(module: str, names: dict[str, Path], tops: tuple[str, ...]) -> str:
    """The module's package, or the module itself when it sits in a top directory."""
    package = package_of(module, names)
    return module if package in tops else package


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth, except in the body of `if TYPE_CHECKING:`."""
    found: list[ast.Import | ast.ImportFrom] = []
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            pending.extend(node.orelse)
            continue
        pending.extend(ast.iter_child_nodes(node))
    return found


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool,
             names: dict[str, Path]) -> list[str]:
    """The modules of ours that one import statement loads (`from a import b` is module
    `a.b` when that exists, else a name in `a`)."""
    if isinstance(node, ast.Import):
        found = [_known_prefix(alias.name, names) for alias in node.names]
        return [target for target in found if target]
    if node.level:  # relative: resolved against the importing module's package
        anchor = module.split(".") if is_package else module.split(".")[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join([*anchor, node.module] if node.module else anchor)
    else:
        base = node.module or ""
    found = []
    for alias in node.names:
        full = f"{base}.{alias.name}"
        target = full if full in names else _known_prefix(base, names)
        if target:
            found.append(target)
    return found


def _known_prefix(dotted: str, names: dict[str, Path]) -> str:
    """The longest prefix of `dotted` that is one of our modules ('' if none: third party)."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in names:
            return candidate
    return ""


def _parse(path: Path) -> ast.AST:
    """ast.parse, again on CPython 3.11's spurious "AST constructor recursion depth mismatch"
    SystemError (a CPython bug with threads, gh-106905), which a thread of another test in the same
    process (an inbox drainer) can trigger; a real syntax error still fails."""
    source = path.read_text(encoding="utf-8")
    for _ in range(4):
        try:
            return ast.parse(source, filename=str(path))
        except SystemError:
            continue
    return ast.parse(source, filename=str(path))


def imports(root: Path, tops: tuple[str, ...] = TOP_PACKAGES) -> tuple[list[Import], dict[str, Path]]:
    names = module_names(root, tops)
    edges: set[Import] = set()
    for module, path in names.items():
        tree = _parse(path)
        for node in _import_nodes(tree):
            for target in _targets(node, module, path.name == "__init__.py", names):
                if target != module:
                    edges.add(Import(module, target, f"{path.relative_to(root).as_posix()}:{node.lineno}"))
    return sorted(edges, key=_order), names


def _order(edge: Import) -> tuple[str, str, str, int]:
    path, _, line = edge.where.rpartition(":")
    return edge.source, edge.target, path, int(line)  # line 9 before line 10


def package_graph(root: Path, tops: tuple[str, ...] = TOP_PACKAGES) -> dict[str, dict[str, Import]]:
    """node (see `node_of`) -> {imported node: the first import that makes the edge}."""
    edges, names = imports(root, tops)
    graph: dict[str, dict[str, Import]] = {node_of(m, names, tops): {} for m in names}
    for edge in edges:
        source, target = node_of(edge.source, names, tops), node_of(edge.target, names, tops)
        if source != target:
            graph[source].setdefault(target, edge)
    return graph


def module_graph(root: Path, tops: tuple[str, ...] = TOP_PACKAGES) -> dict[str, dict[str, Import]]:
    """module -> {imported module: the first import of it}."""
    edges, names = imports(root, tops)
    graph: dict[str, dict[str, Import]] = {m: {} for m in names}
    for edge in edges:
        graph[edge.source].setdefault(edge.target, edge)
    return graph


def cycles(graph: dict[str, dict[str, Import]]) -> list[list[str]]:
    """A shortest cycle through every node that is on one (each cycle once, started at its
    smallest node), so that a tangle of several cycles shows all its nodes."""
    found: set[tuple[str, ...]] = set()
    for component in _components(graph):
        if len(component) < 2:
            continue
        for node in sorted(component):
            cycle = _shortest_cycle(graph, node, component)[:-1]
            first = cycle.index(min(cycle))
            found.add(tuple(cycle[first:] + cycle[:first]))
    return sorted([*cycle, cycle[0]] for cycle in found)


def _components(graph: dict[str, dict[str, Import]]) -> list[set[str]]:
    """Strongly connected components (Tarjan, iterative: no recursion limit to meet)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[set[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, {})))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                result.append(component)
    return result


def _shortest_cycle(graph: dict[str, dict[str, Import]], start: str, within: set[str]) -> list[str]:
    """Breadth first from `start` back to itself, inside its component."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node]):
                if child not in within:
                    continue
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"{start} is in a component but on no cycle")


def describe(graph: dict[str, dict[str, Import]], cycle: list[str]) -> str:
    """`a -> b (a/x.py:3 imports a.b.y) -> a (...)`: the path and the import behind each step."""
    steps = [cycle[0]]
    for source, target in zip(cycle, cycle[1:]):
        edge = graph[source][target]
        steps.append(f"-> {target} ({edge.where} imports {edge.target})")
    return " ".join(steps)


def report(graph: dict[str, dict[str, Import]]) -> list[str]:
    return [describe(graph, cycle) for cycle in cycles(graph)]


def test_no_import_cycle_between_packages() -> None:
    graph = package_graph(ROOT)
    found = report(graph)
    assert not found, "import cycles between packages:\n  " + "\n  ".join(found)


# The modules of these packages form chains: ingest (readers -> validate -> pipeline -> ledger),
# api (`__init__` -> health/routes -> engines) and simulate (generate -> scenario -> world).
@pytest.mark.parametrize("package", ["monitor.ingest", "monitor.api", "monitor.simulate"])
def test_no_import_cycle_between_the_modules_of_a_package(package: str) -> None:
    graph = module_graph(ROOT)
    inside = {m: {t: e for t, e in targets.items() if _within(t, package)}
              for m, targets in graph.items() if _within(m, package)}
    assert len(inside) > 2, f"{package} has no modules: renamed?"
    found = report(inside)
    assert not found, f"import cycles between {package} modules:\n  " + "\n  ".join(found)


def _within(module: str, package: str) -> bool:
    """The package itself (its __init__, which may import its modules) or one of its modules."""
    return module == package or module.startswith(package + ".")


# --- the check itself can fail: a synthetic tree with known cycles -----------------------------

def _tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_a_cycle_through_a_function_level_import_is_found(tmp_path: Path) -> None:
    _tree(tmp_path, {
        "monitor/__init__.py": "",
        "monitor/tick.py": "from monitor.alerts.engine import evaluate\n",
        "monitor/alerts/__init__.py": "",
        "monitor/alerts/engine.py": "def evaluate():\n    pass\n",
        "monitor/alerts/backtest.py": "def run():\n    from monitor.tick import run_tick\n",
    })
    graph = package_graph(tmp_path, ("monitor",))
    found = report(graph)
    assert found == ["monitor.alerts -> monitor.tick (monitor/alerts/backtest.py:2 imports monitor.tick) "
                     "-> monitor.alerts (monitor/tick.py:1 imports monitor.alerts.engine)"]
    with pytest.raises(AssertionError, match="monitor.alerts"):
        assert not found, "\n".join(found)


def test_type_checking_imports_and_relative_imports(tmp_path: Path) -> None:
    _tree(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a/__init__.py": "",
        "pkg/a/one.py": ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                         "    from pkg.b.two import Two\nelse:\n    import json\n"),
        "pkg/b/__init__.py": "from . import two\n",
        "pkg/b/two.py": "from ..a import one\nimport pkg.a.one as again\n",
    })
    graph = package_graph(tmp_path, ("pkg",))
    assert set(graph["pkg.b"]) == {"pkg.a"}  # the annotation-only import makes no edge back
    assert report(graph) == []
    modules = module_graph(tmp_path, ("pkg",))
    assert set(modules["pkg.b"]) == {"pkg.b.two"}
    assert modules["pkg.b.two"]["pkg.a.one"].where == "pkg/b/two.py:1"


def test_a_module_cycle_inside_a_package_is_found(tmp_path: Path) -> None:
    _tree(tmp_path, {
        "monitor/__init__.py": "",
        "monitor/ingest/__init__.py": "",
        "monitor/ingest/ledger.py": "from monitor.ingest.pipeline import load\n",
        "monitor/ingest/pipeline.py": "def store():\n    from monitor.ingest import ledger\n",
    })
    graph = module_graph(tmp_path, ("monitor",))
    assert report(graph) == ["monitor.ingest.ledger -> monitor.ingest.pipeline (monitor/ingest/ledger.py:1 "
                             "imports monitor.ingest.pipeline) -> monitor.ingest.ledger "
                             "(monitor/ingest/pipeline.py:2 imports monitor.ingest.ledger)"]


def test_top_modules_are_nodes_and_every_cycle_of_a_tangle_is_listed(tmp_path: Path) -> None:
    _tree(tmp_path, {
        "monitor/__init__.py": "",
        "monitor/config.py": "",
        "monitor/cli.py": "import monitor.alerts.engine\nimport monitor.store.db\n",
        "monitor/alerts/__init__.py": "",
        "monitor/alerts/engine.py": "from monitor import config\nfrom monitor.store import db\n",
        "monitor/store/__init__.py": "",
        "monitor/store/db.py": "from monitor.config import X\nfrom monitor.alerts import engine\n",
        "monitor/drift/__init__.py": "",
        "monitor/drift/service.py": "from monitor.store.db import Y\n",
        "monitor/store/all.py": "import monitor.drift.service\n",
    })
    graph = package_graph(tmp_path, ("monitor",))
    # the foundation (config) and the front end (cli) are separate nodes: no cycle through them
    assert set(graph["monitor.config"]) == set() and set(graph["monitor.cli"]) == {"monitor.alerts", "monitor.store"}
    assert [line.split(" (")[0] for line in report(graph)] == [
        "monitor.alerts -> monitor.store", "monitor.drift -> monitor.store"]
