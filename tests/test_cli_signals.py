"""Signals and a closed terminal stop the belt before the process exits: real `treadmill`
processes on the simulator, judged on the simulator's own trace (what the machine received).

Each test runs a headless session or the TUI at `--speedup 5`, waits until the simulated belt
moves, then sends a signal (or closes the terminal) and checks that the process exits within a
few seconds and that the last control-point write the machine got was Stop (0x08 0x01), answered.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simulators.terminal import Terminal

TREADMILL = str(Path(sys.executable).with_name("treadmill"))
# the terminal window the process runs in: closing it hangs the process up
TERMINAL = {"cols": 100, "rows": 30, "controlling": True}
EXIT_WITHIN_S = 8.0  # generous: two shared cores, other test runs alongside

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and ptys")


def env_for(tmp_path: Path) -> dict[str, str]:
    return os.environ | {"TREADMILL_CONFIG_DIR": str(tmp_path / "config"),
                         "TERM": "xterm-256color", "COLUMNS": "100", "LINES": "30"}


def trace_lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    lines = []
    for text in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):  # a line being written right now
            lines.append(json.loads(text))
    return lines


def wait_for_belt(trace: Path, process: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(line.get("belt_kmh", 0) > 0.8 for line in trace_lines(trace)):
            return
        assert process.poll() is None, "the process ended before the belt moved"
        time.sleep(0.05)
    raise AssertionError("the simulated belt never moved")


def assert_stop_reached_the_machine(trace: Path) -> None:
    lines = trace_lines(trace)
    writes = [line for line in lines if "write" in line]
    assert writes, "no control-point write at all"
    assert writes[-1]["write"] == "0801", f"last write was {writes[-1]}, not Stop"
    assert writes[-1]["result"] is not None, "Stop was never answered"
    assert writes[-1]["result"].startswith("8008"), writes[-1]
    final = [line for line in lines if line.get("final")]
    assert final, "the simulator was not closed properly"
    # The motor was told to stop; the belt runs down from wherever it was (never faster).
    peak = max(line["belt_kmh"] for line in lines if "belt_kmh" in line)
    assert final[-1]["running"] is False
    assert final[-1]["belt_kmh"] <= peak + 0.05, "the belt was not coming to rest"


def headless(tmp_path: Path, trace: Path, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [TREADMILL, "session", "taster", "--simulate", "--headless", "--json", "--auto-confirm",
         "--speedup", "5", "--sim-trace", str(trace)],
        env=env_for(tmp_path), **popen)


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM, signal.SIGQUIT, signal.SIGINT],
                         ids=lambda s: s.name)
def test_a_signal_stops_a_headless_session_first(tmp_path, sig):
    trace = tmp_path / "trace.jsonl"
    process = headless(tmp_path, trace, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    try:
        wait_for_belt(trace, process)
        process.send_signal(sig)
        out, err = process.communicate(timeout=EXIT_WITHIN_S)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 128 + sig
    assert f"({sig.name})" in err.decode() and "Traceback" not in err.decode()
    events = [json.loads(line) for line in out.decode().splitlines()]
    assert any(e["type"] == "command" and e["op"] == "stop" for e in events)
    assert_stop_reached_the_machine(trace)


def start_tui_session(tmp_path: Path, trace: Path) -> Terminal:
    term = Terminal([TREADMILL, "session", "taster", "--simulate", "--speedup", "5",
                     "--sim-trace", str(trace)], env_for(tmp_path), **TERMINAL)
    term.wait_for(b"Enter starts")
    time.sleep(0.3)
    term.type("\r")  # taster, preselected in the picker
    term.wait_for(b"Before walking backwards")  # the checklist before a first backward session
    time.sleep(0.3)
    term.type("\r")
    wait_for_belt(trace, term.process)
    return term


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM, signal.SIGQUIT],
                         ids=lambda s: s.name)
def test_a_signal_stops_the_tui_session_first(tmp_path, sig):
    trace = tmp_path / "trace.jsonl"
    term = start_tui_session(tmp_path, trace)
    try:
        term.process.send_signal(sig)
        term.process.wait(timeout=EXIT_WITHIN_S)
    finally:
        term.close()
    assert_stop_reached_the_machine(trace)


def test_closing_the_terminal_stops_the_tui_session_first(tmp_path):
    trace = tmp_path / "trace.jsonl"
    term = start_tui_session(tmp_path, trace)
    try:
        term.hang_up()
        term.process.wait(timeout=EXIT_WITHIN_S)
    finally:
        term.close()
    assert_stop_reached_the_machine(trace)


def test_closing_the_terminal_stops_a_headless_session_first(tmp_path):
    trace = tmp_path / "trace.jsonl"
    term = Terminal([TREADMILL, "session", "taster", "--simulate", "--headless",
                     "--auto-confirm", "--speedup", "5", "--sim-trace", str(trace)],
                    env_for(tmp_path), **TERMINAL)
    try:
        wait_for_belt(trace, term.process)
        term.hang_up()
        term.process.wait(timeout=EXIT_WITHIN_S)
    finally:
        term.close()
    assert_stop_reached_the_machine(trace)
