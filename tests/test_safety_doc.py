"""docs/SAFETY.md stays true: every hazard row names a test, and every test it names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "SAFETY.md"


def defined_tests() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "tests").glob("test_*.py"):
        names |= set(re.findall(r"^(?:async )?def (test_\w+)", path.read_text(), re.M))
    return names


def table_rows() -> list[str]:
    rows = [line for line in DOC.read_text().splitlines() if line.startswith("| ")]
    return [r for r in rows if not r.startswith(("| #", "| Fault", "| Hazard"))]


def test_every_hazard_row_names_a_test():
    rows = table_rows()
    assert len(rows) >= 30
    for row in rows:
        assert re.search(r"test_\w+|tests/test_\w+\.py", row), row


def test_every_test_named_in_the_hazard_log_exists():
    named = set(re.findall(r"\b(test_\w+)\b", DOC.read_text()))
    missing = sorted(name for name in named if name not in defined_tests()
                     and not (ROOT / "tests" / f"{name}.py").exists())
    assert missing == []
