"""The layers, read from the source with `ast` (imports inside functions and TYPE_CHECKING
blocks count): only the composition root picks a simulated treadmill, the module graph has no
cycles, the governor depends on nothing of ours but itself, and the codec only on the
standard library (DESIGN §2)."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("treadmill", "safety", "tui", "simulators")
# The composition root: the only product modules that may choose the simulator.
COMPOSITION_ROOT = {"treadmill.cli", "treadmill.wiring"}
# The screen's process of the split TUI (tui/split.py) is an entry point too: it builds the app,
# but chooses nothing (no simulator, no treadmill: those stay in the controller's process).
SCREEN_ENTRY = {"tui.ui_process"}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the module imported, resolved as far as it is one of ours
    line: int
    type_checking: bool  # only inside `if TYPE_CHECKING:`


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(node: ast.AST, guarded: bool = False) -> Iterator[tuple[ast.AST, bool]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.body:
                yield stmt, True
                yield from _walk(stmt, True)
            for stmt in child.orelse:
                yield stmt, guarded
                yield from _walk(stmt, guarded)
            continue
        yield child, guarded
        yield from _walk(child, guarded)


def imports_of(name: str, path: Path, known: set[str]) -> list[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[Import] = []
    for node, guarded in _walk(tree):
        if isinstance(node, ast.Import):
            found += [Import(name, alias.name, node.lineno, guarded) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package upwards
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base == "__future__":
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                # `from pkg import module` imports the module; `from pkg import name` the package.
                found.append(Import(name, sub if sub in known else base, node.lineno, guarded))
    return found


def all_imports() -> list[Import]:
    found = modules()
    known = set(found)
    return [imp for name, path in found.items() for imp in imports_of(name, path, known)]


def top(target: str) -> str:
    return target.split(".")[0]


def where(imp: Import) -> str:
    return f"{imp.module} (line {imp.line}) imports {imp.target}"


def test_only_the_composition_root_imports_the_simulators():
    wrong = [where(imp) for imp in all_imports()
             if top(imp.target) == "simulators" and top(imp.module) != "simulators"
             and imp.module not in COMPOSITION_ROOT]
    assert wrong == []


def test_the_tui_never_imports_its_app_module():
    # Only the entry point (the CLI, tests, benchmarks) does: screens post messages up and
    # type `self.app` against tui.protocol.
    wrong = [where(imp) for imp in all_imports()
             if imp.target == "tui.app" and imp.module not in COMPOSITION_ROOT | SCREEN_ENTRY]
    assert wrong == []


def test_the_governor_depends_on_nothing_but_itself():
    wrong = [where(imp) for imp in all_imports()
             if top(imp.module) == "safety" and top(imp.target) in ("treadmill", "tui",
                                                                    "simulators")]
    assert wrong == []


def test_the_codec_needs_only_the_standard_library():
    wrong = [where(imp) for imp in all_imports() if imp.module == "treadmill.ftms"
             and top(imp.target) not in sys.stdlib_module_names]
    assert wrong == []


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle in `graph` (as a path that returns to its start), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def module_graph(*, with_type_checking: bool) -> dict[str, set[str]]:
    known = set(modules())
    graph: dict[str, set[str]] = {name: set() for name in known}
    for imp in all_imports():
        if imp.target in known and imp.target != imp.module and (
                with_type_checking or not imp.type_checking):
            graph[imp.module].add(imp.target)
    return graph


def test_the_module_graph_has_no_cycles():
    """Imports that run: at import time or inside a function. (`if TYPE_CHECKING:` imports
    never run; they are checked for the TUI below, where a cycle would mean a screen that
    knows the app.)"""
    assert find_cycle(module_graph(with_type_checking=False)) is None


def test_the_tui_has_no_cycles_even_for_the_type_checker():
    graph = module_graph(with_type_checking=True)
    tui = {name: {t for t in targets if top(t) == "tui"}
           for name, targets in graph.items() if top(name) == "tui"}
    assert find_cycle(tui) is None


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
