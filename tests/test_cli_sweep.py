"""Every command and every option with bad values: one line that says what to do, never an
internal error or a traceback (the sweep the bad-input issue was found with, kept as a test)."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from treadmill.cli import main

BAD_VALUES = ("nan", "inf", "-inf", "-1", "0", "1e300", "1e-300", "", "abc", "\xff", "--")
# What a value must look like, per kind of option, to be worth sending (flags take none).
COMMANDS = sorted(name for name in main.commands)


def _options(command: click.Command) -> list[click.Option]:
    return [p for p in command.params if isinstance(p, click.Option) and not p.is_flag]


def _cases() -> list[tuple[str, list[str]]]:
    cases: list[tuple[str, list[str]]] = []
    for name in COMMANDS:
        command = main.commands[name]
        base = [name]
        if name in ("status", "session", "scan", "pair"):
            base.append("--simulate")
        if name == "session":
            base += ["taster", "--headless", "--auto-confirm"]
        if name in ("pair", "forget"):
            base.insert(1, "F2:00:00:00:00:01")
        for option in _options(command):
            flag = option.opts[0]
            for value in BAD_VALUES:
                cases.append((f"{name} {flag}={value!r}", [*base, flag, value]))
        for arg in ("nan", "\xff", "x" * 300, "../../etc/passwd"):
            if name in ("pair", "forget"):
                cases.append((f"{name} {arg[:10]!r}", [name, arg]))
            if name == "session":
                cases.append((f"session {arg[:10]!r}", ["session", arg, "--headless",
                                                        "--simulate", "--auto-confirm"]))
    return cases


CASES = _cases()


@pytest.mark.parametrize(("label", "args"), CASES, ids=[c[0] for c in CASES])
def test_bad_values_get_one_line_and_no_traceback(label, args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a bad --sim-trace value is a file name: keep it here
    monkeypatch.setenv("TREADMILL_CONFIG_DIR", str(tmp_path))
    monkeypatch.setenv("TREADMILL_DATA_DIR", str(tmp_path / "data"))
    takes_speedup = any("--speedup" in p.opts for p in main.commands[args[0]].params)
    if takes_speedup and "--speedup" not in args and "--simulate" in args:
        args = [*args, "--speedup", "max"]  # a session that is accepted runs in simulated time
    result = CliRunner().invoke(main, args, input="")
    output = result.output
    assert "Traceback" not in output, output
    assert "internal error" not in output, output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{label}: {type(result.exception).__name__}: {result.exception}")
    if result.exit_code not in (0, 130, 141):
        errors = [line for line in output.splitlines() if line.startswith(("error:", "Error:"))]
        assert errors, f"{label}: exit {result.exit_code} without an error line:\n{output}"
