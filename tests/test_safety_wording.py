"""Safety wording has one source (safety/wording.py): the CLI, the TUI and the README say it."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from safety.wording import ACTIONABLE, CHECKLIST, CONTRAINDICATIONS
from treadmill.cli import SAFETY_CHECKLIST, main
from tui.screens.checklist import CHECKLIST_ITEMS, WARNING

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("safety", "treadmill", "tui")


def _flat(text: str) -> str:
    """Markdown quote markers, list bullets and line breaks do not change the wording."""
    text = re.sub(r"^\s*>\s?", "", text, flags=re.MULTILINE)
    text = re.sub(r"^\s*-\s+", "", text, flags=re.MULTILINE)
    return " ".join(text.split())


def test_the_readme_gives_the_checklist_word_for_word():
    readme = _flat((ROOT / "README.md").read_text())
    for line in (*CHECKLIST, CONTRAINDICATIONS, ACTIONABLE):
        assert _flat(line) in readme, line


def test_the_cli_and_the_tui_show_the_same_checklist():
    for line in (*CHECKLIST, CONTRAINDICATIONS):
        assert _flat(line) in _flat(SAFETY_CHECKLIST), line
    assert CHECKLIST_ITEMS[: len(CHECKLIST)] == CHECKLIST
    assert WARNING == CONTRAINDICATIONS


def test_a_headless_backward_session_prints_the_checklist_first(tmp_path, monkeypatch):
    monkeypatch.setenv("TREADMILL_CONFIG_DIR", str(tmp_path / "config"))
    args = ["session", "taster", "--simulate", "--headless", "--auto-confirm", "--speedup", "max"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(SAFETY_CHECKLIST)


def test_the_last_line_of_defence_is_spelled_in_one_place():
    # "use the console STOP or pull the safety key" is ACTIONABLE everywhere else
    spelled = []
    for package in PRODUCT:
        for path in (ROOT / package).rglob("*.py"):
            if path == ROOT / "safety" / "wording.py":
                continue
            if re.search(r"console\s+STOP", path.read_text()):
                spelled.append(str(path.relative_to(ROOT)))
    assert spelled == []
