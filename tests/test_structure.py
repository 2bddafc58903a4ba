"""Safety as a property of the structure: nothing reaches the control point but the governor.

These read the product's source (not the tests) and fail if any module other than the FTMS
client writes to a characteristic, if anything but the session runner executes commands, or
if anything but the governor can mint an ApprovedCommand.
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
    assert set(uses("execute")) <= {"treadmill/session.py", "tui/link.py"}


def test_only_the_governor_holds_the_mint():
    assert set(uses("_MINT")) == {"safety/governor.py"}


def test_only_the_governor_builds_approved_commands():
    builders = {
        module
        for module in uses("ApprovedCommand")
        if "ApprovedCommand(" in (ROOT / module).read_text(encoding="utf-8")
    }
    assert builders == {"safety/governor.py"}


def test_an_approved_command_cannot_be_forged():
    with pytest.raises(PermissionError):
        ApprovedCommand(StopCmd(), 0.0, object())


async def test_the_client_refuses_anything_but_an_approved_command(sim):
    from treadmill.client import FtmsClient

    async with FtmsClient(sim.ble_device, backend=sim.client_backend) as client:
        with pytest.raises(TypeError, match="governor"):
            await client.execute(StopCmd())  # type: ignore[arg-type]
    assert sim.control_log == []
