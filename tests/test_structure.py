"""Safety as a property of the structure: nothing reaches the control point but the governor.

These read the product's source (not the tests) and fail if any module other than the FTMS
client writes to a characteristic, if anything but the session runner executes commands, if
anything but the governor's outbox can mint an ApprovedCommand, or if safety/ loses the shape
that lets a newcomer find the file owning each rule (small classes, no import cycles).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from safety import ApprovedCommand, StopCmd

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ["treadmill", "safety", "tui", "simulators"]


def product_modules() -> list[Path]:
    return sorted(p for pkg in PRODUCT for p in (ROOT / pkg).rglob("*.py"))


def uses(name: str) -> dict[str, int]:
    """Product modules that mention `name` as an attribute or a name, with a count."""
    found: dict[str, int] = {}
    for path in product_modules():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        count = sum(
            1
            for node in ast.walk(tree)
            if (isinstance(node, ast.Attribute) and node.attr == name)
            or (isinstance(node, ast.Name) and node.id == name)
        )
        if count:
            found[str(path.relative_to(ROOT))] = count
    return found


def test_only_the_ftms_client_writes_to_the_treadmill():
    assert set(uses("write_gatt_char")) <= {"treadmill/client.py"}


def test_only_the_session_runner_and_the_idle_link_execute_commands():
    # Both execute only what a governor approved: the session runner during a session, the
    # TUI's idle link (a Stop from SPACE between sessions) otherwise.
    # (and the history's store, whose `execute` is sqlite3's: it can't reach a treadmill, as
    # it imports neither the client nor the governor)
    sql = "treadmill/history/store.py"
    assert set(uses("execute")) <= {"treadmill/session.py", "treadmill/link.py", sql}
    tree = ast.parse((ROOT / sql).read_text(encoding="utf-8"))
    imported = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any(m.startswith(("treadmill.client", "safety", "bleak")) for m in imported)


def test_only_the_outbox_holds_the_mint():
    assert set(uses("_MINT")) == {"safety/outbox.py"}


def test_only_the_outbox_builds_approved_commands():
    builders = {
        module
        for module in uses("ApprovedCommand")
        if "ApprovedCommand(" in (ROOT / module).read_text(encoding="utf-8")
    }
    assert builders == {"safety/outbox.py"}


def test_approved_command_is_still_importable_from_its_old_homes():
    import safety
    import safety.governor
    import safety.outbox

    assert safety.ApprovedCommand is safety.outbox.ApprovedCommand
    assert safety.governor.ApprovedCommand is safety.outbox.ApprovedCommand


MAX_CLASS_LINES = 400


def safety_modules() -> list[Path]:
    return sorted((ROOT / "safety").rglob("*.py"))


def test_no_class_in_safety_is_longer_than_400_lines():
    too_long = {}
    for path in safety_modules():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_CLASS_LINES:
                    too_long[f"{path.relative_to(ROOT)}::{node.name}"] = lines
    assert too_long == {}


def safety_imports() -> dict[str, set[str]]:
    """Module -> the safety modules it imports at run time (not under TYPE_CHECKING)."""
    graph: dict[str, set[str]] = {}
    for path in safety_modules():
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        name = ".".join(parts)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        found: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                node.body = []
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")
                if node.level:
                    base = base[: len(base) - node.level + 1]
                    target = ".".join([*base, node.module] if node.module else base)
                else:
                    target = node.module or ""
                if target.startswith("safety"):
                    found.add(target)
                    for alias in node.names:  # "from . import x" may name a module
                        if (ROOT / Path(*f"{target}.{alias.name}".split("."))).with_suffix(
                            ".py"
                        ).exists():
                            found.add(f"{target}.{alias.name}")
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("safety")}
        graph[name] = found - {name}
    return graph


def test_safety_has_no_import_cycles():
    graph = safety_imports()
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        assert module not in path, f"import cycle: {' -> '.join([*path, module])}"
        if module in done:
            return
        for imported in sorted(graph.get(module, ())):
            visit(imported, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


def test_rules_never_import_the_governor_core():
    graph = safety_imports()
    rules = {m: imports for m, imports in graph.items() if m.startswith("safety.rules")}
    assert rules, "no rule modules found"
    assert {m for m, imports in rules.items() if "safety.governor" in imports} == set()


def test_an_approved_command_cannot_be_forged():
    with pytest.raises(PermissionError):
        ApprovedCommand(StopCmd(), 0.0, object())


async def test_the_client_refuses_anything_but_an_approved_command(sim):
    from treadmill.client import FtmsClient

    async with FtmsClient(sim.ble_device, backend=sim.client_backend) as client:
        with pytest.raises(TypeError, match="governor"):
            await client.execute(StopCmd())  # type: ignore[arg-type]
    assert sim.control_log == []
