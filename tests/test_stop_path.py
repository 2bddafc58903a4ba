"""The stop path of a real TUI process (threaded controller), judged on the simulator's trace.

- SPACE typed into the terminal stops a moving belt: a Stop (08 01) reaches the machine soon
  after the key, and the belt runs down to rest.
- A screen that stops answering ends in a Stop. The terminal stops reading the TUI's output (a
  stalled SSH link, a frozen terminal window); a few resizes make textual repaint the whole
  screen, the pty fills, textual's output queue fills and the app's loop blocks in its next
  write. Nothing else changes: the controller's thread hears no heartbeat for 3 s and stops the
  belt on its own. (SPACE still works then too: the key reader is not the app's loop.)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from test_cli_signals import TERMINAL, TREADMILL, env_for, trace_lines, wait_for_belt

from simulators.terminal import Terminal

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX ptys"),
    pytest.mark.real_time,
]

STOP = "0801"
PROGRAM = """title = "A long walk"
[[steps]]
orientation = "forward"
minutes = 60
speed_kmh = 2.0
"""


def start_walking(tmp_path: Path, trace: Path) -> Terminal:
    program = tmp_path / "long-walk.toml"
    program.write_text(PROGRAM, encoding="utf-8")
    term = Terminal([TREADMILL, "session", str(program), "--simulate",
                     "--sim-notify-hz", "10", "--sim-trace", str(trace)],
                    env_for(tmp_path), **TERMINAL)
    term.wait_for(b"Enter starts")
    time.sleep(0.3)
    term.type("\r")  # the program, preselected; forward only: no checklist
    wait_for_belt(trace, term.process)
    return term


def stops_after(trace: Path, mono: float) -> list[dict]:
    return [line for line in trace_lines(trace)
            if line.get("write") == STOP and line["mono"] >= mono]


def wait_for_stop(trace: Path, mono: float, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := stops_after(trace, mono):
            return found[0]
        time.sleep(0.01)
    raise AssertionError(f"no Stop reached the machine within {timeout:g} s")


def test_space_stops_a_moving_belt(tmp_path):
    trace = tmp_path / "trace.jsonl"
    term = start_walking(tmp_path, trace)
    try:
        pressed = time.monotonic()
        term.type(" ")
        stop = wait_for_stop(trace, pressed, 2.0)
        assert stop["result"] is None or stop["result"].startswith("8008")
        deadline = time.monotonic() + 10
        while trace_lines(trace)[-1].get("belt_kmh", 1) > 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert trace_lines(trace)[-1].get("belt_kmh") == 0.0, "the belt did not run down"
        assert term.process.poll() is None  # the TUI is still there (SPACE doesn't quit)
    finally:
        term.close()


def test_a_screen_that_stops_answering_ends_in_a_stop(tmp_path):
    trace = tmp_path / "trace.jsonl"
    term = start_walking(tmp_path, trace)
    try:
        stalled = time.monotonic()
        term.reading.clear()  # the terminal stops reading our output
        # Full repaints fill the pty and textual's output queue; then the app's loop blocks.
        for i in range(60):
            term.resize(100 + i % 2, 30)
            time.sleep(0.02)
        assert not stops_after(trace, stalled), "stopped before the screen hung"
        # 3 s without a heartbeat, checked four times a second: well within 8 s of the stall.
        stop = wait_for_stop(trace, stalled, 10.0)
        assert stop["mono"] - stalled >= 3.0  # the watchdog's own limit, not something else
        assert term.process.poll() is None  # hung, not crashed: only the controller acted
    finally:
        term.reading.set()
        term.close()
