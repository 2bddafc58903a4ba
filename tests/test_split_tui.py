"""The TUI as two processes (tui/split.py): the controller's process reads the keys and stops the
belt; the screen's process only draws. Real processes in a pty, judged on the simulator's trace.

- SPACE stops the belt even while the screen's process is frozen (SIGSTOP): the key never
  waits for the screen.
- The screen's process killed mid-session: the belt stops at once (its wire closed), and the
  controller's process leaves with the belt stopped and the simulator closed.
- Keys other than SPACE reach the screen (the session starts from Enter, q quits).
- What counts as a space for the key reader, and the relay's copying, as small functions.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from pathlib import Path

import pytest
from test_cli_signals import (
    EXIT_WITHIN_S,
    assert_stop_reached_the_machine,
    trace_lines,
)
from test_stop_path import start_walking, wait_for_stop
from textual import events

from simulators.terminal import Terminal
from tui.ui_process import SCREEN_NICE

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX ptys")


def screen_process(pid: int, timeout: float = 10.0) -> int:
    """The pid of the screen's process: the controller's one child."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.05)
    raise AssertionError("the controller's process has no screen process")


def walking_with_a_screen(tmp_path: Path) -> tuple[Terminal, Path, int]:
    """A session walking in a pty: the terminal, the simulator's trace, the screen's pid."""
    trace = tmp_path / "trace.jsonl"
    term = start_walking(tmp_path, trace)
    try:
        return term, trace, screen_process(term.process.pid)
    except BaseException:
        term.close()
        raise


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs /proc")
def test_space_stops_the_belt_while_the_screen_is_frozen(tmp_path):
    term, trace, screen = walking_with_a_screen(tmp_path)
    try:
        os.kill(screen, signal.SIGSTOP)  # the screen draws nothing, reads nothing
        time.sleep(0.3)
        pressed = time.monotonic()
        term.type(" ")
        stop = wait_for_stop(trace, pressed, 1.0)  # well before the 3 s heartbeat watchdog
        assert stop["mono"] - pressed < 1.0
    finally:
        os.kill(screen, signal.SIGCONT)
        term.close()


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs /proc")
def test_the_screen_process_killed_stops_the_belt_at_once(tmp_path):
    term, trace, screen = walking_with_a_screen(tmp_path)
    try:
        killed = time.monotonic()
        os.kill(screen, signal.SIGKILL)
        stop = wait_for_stop(trace, killed, 2.0)
        assert stop["mono"] - killed < 2.0  # the closed wire, not the 3 s watchdog
        term.process.wait(timeout=EXIT_WITHIN_S)  # and the controller's process leaves
    finally:
        term.close()
    assert_stop_reached_the_machine(trace)
    assert trace_lines(trace)[-1].get("final")


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs /proc")
def test_the_screen_process_leaves_when_the_controller_process_is_killed(tmp_path):
    term, _, screen = walking_with_a_screen(tmp_path)
    try:
        term.process.kill()  # nothing is left to stop the belt; the screen must not linger
        term.process.wait(timeout=EXIT_WITHIN_S)
        deadline = time.monotonic() + EXIT_WITHIN_S
        while Path(f"/proc/{screen}").exists() and time.monotonic() < deadline:
            if Path(f"/proc/{screen}/stat").read_text().split()[2] == "Z":
                break  # ended; only its zombie is left (its parent was killed)
            time.sleep(0.05)
        gone = (not Path(f"/proc/{screen}").exists()
                or Path(f"/proc/{screen}/stat").read_text().split()[2] == "Z")
        assert gone, "the screen's process outlived its controller"
    finally:
        term.close()


def test_every_space_counts_as_a_stop_key():
    from tui.split import is_stop_key

    assert is_stop_key(events.Key("space", " "))
    assert is_stop_key(events.Key("alt+space", " "))
    assert is_stop_key(events.Paste("walk fast"))
    assert not is_stop_key(events.Key("enter", "\r"))
    assert not is_stop_key(events.Key("a", "a"))
    assert not is_stop_key(events.Paste("walk"))


def relay_with_pipes(stops: list[int]):
    from tui.split import TerminalRelay

    keys_in, keys_out = os.pipe()  # the person's terminal -> the relay
    screen_in, screen_out = os.pipe()  # the relay -> the screen's pty (a pipe stands in)
    relay = TerminalRelay(keys_in, sys.stdout.fileno(), screen_out,
                          on_stop=lambda: stops.append(1), on_hangup=lambda: stops.append(-1))
    return relay, keys_out, screen_in


def test_the_relay_stops_on_a_space_and_passes_every_byte_on():
    stops: list[int] = []
    relay, keys, screen = relay_with_pipes(stops)
    for chunk in (b"\x1b[A", b"ab", b" ", b"\r"):
        os.write(keys, chunk)
        relay._on_input()  # what the loop calls when the terminal is readable
    assert stops == [1]  # one space, one Stop
    assert os.read(screen, 100) == b"\x1b[Aab \r"


def test_a_space_inside_a_mouse_report_is_not_a_stop():
    stops: list[int] = []
    relay, keys, screen = relay_with_pipes(stops)
    os.write(keys, b"\x1b[<0;10;5M")  # an SGR mouse click
    relay._on_input()
    assert stops == []
    assert os.read(screen, 100) == b"\x1b[<0;10;5M"


def test_the_terminal_closing_is_a_hang_up():
    stops: list[int] = []
    relay, keys, _ = relay_with_pipes(stops)
    os.close(keys)  # EOF
    relay._on_input()
    assert stops == [-1]
    assert relay.terminal_gone


@pytest.mark.skipif(not Path("/proc/self/autogroup").exists(), reason="no autogroups here")
def test_the_screen_process_yields_to_the_controller_in_its_autogroup_too(tmp_path):
    # Nice alone counts only within an autogroup, and the screen leads a session (so a group)
    # of its own: without the group's nice, its redraws competed with a Stop as equals.
    term, _trace, screen = walking_with_a_screen(tmp_path)
    try:
        ours = os.getpriority(os.PRIO_PROCESS, 0)
        assert Path(f"/proc/{screen}/autogroup").read_text().split()[-1] == str(SCREEN_NICE)
        assert os.getpriority(os.PRIO_PROCESS, screen) == min(19, ours + SCREEN_NICE)
        assert os.getpriority(os.PRIO_PROCESS, term.process.pid) == ours
        # and the controller's data waking it never preempts the controller
        assert os.sched_getscheduler(screen) == os.SCHED_BATCH
        assert os.sched_getscheduler(term.process.pid) == os.SCHED_OTHER
    finally:
        term.close(quit_key="q")


def test_a_space_reaches_the_screen_only_after_the_stop_had_its_turn():
    # Writing to the screen's pty wakes a kernel worker that takes the CPU at once: the Stop
    # (a task the runner creates, so it runs on the loop's next turn) must be written first.
    loop = asyncio.new_event_loop()
    screen_had: list[bytes] = []
    keys_in, keys_out = os.pipe()
    screen_in, screen_out = os.pipe()
    os.set_blocking(screen_in, False)

    def readable() -> bytes:
        try:
            return os.read(screen_in, 100)
        except BlockingIOError:
            return b""

    def on_stop() -> None:
        loop.call_soon(lambda: screen_had.append(readable()))  # the Stop's write, one turn on

    from tui.split import TerminalRelay

    relay = TerminalRelay(keys_in, sys.stdout.fileno(), screen_out, on_stop=on_stop,
                          on_hangup=lambda: None)
    relay._loop = loop  # what start() sets; without its reader and output thread
    try:
        os.write(keys_out, b"a b")
        relay._on_input()
        assert readable() == b""
        loop.run_until_complete(asyncio.sleep(0))
        assert screen_had == [b""]  # when the Stop was written, the screen had nothing yet
        assert readable() == b"a b"  # then every byte, in order
        os.write(keys_out, b"c")  # no space: passed on at once
        relay._on_input()
        assert readable() == b"c"
    finally:
        loop.close()
        for fd in (keys_in, keys_out, screen_in, screen_out):
            os.close(fd)


def drawn_area(output: bytes) -> tuple[int, int]:
    """The bottom row and right column the screen moved its cursor to."""
    places = [(int(row), int(col)) for row, col in re.findall(rb"\x1b\[(\d+);(\d+)H", output)]
    return max((row for row, _ in places), default=0), max((col for _, col in places), default=0)


def test_a_resize_of_the_terminal_reaches_the_screen(tmp_path):
    # The tests' terminals export COLUMNS and LINES, as some shells do: the screen's process
    # must go by its pseudo-terminal's size all the same.
    term, _trace, _screen = walking_with_a_screen(tmp_path)  # 100 x 30
    try:
        time.sleep(1.0)
        rows, cols = drawn_area(term.take())
        assert rows > 18 or cols > 70  # what the walking screen updates, at 100 x 30
        term.resize(70, 18)
        time.sleep(0.5)
        term.take()  # the repaint; then the updates: all inside the new size
        time.sleep(1.5)
        rows, cols = drawn_area(term.take())
        assert 0 < rows <= 18 and 0 < cols <= 70
    finally:
        term.close(quit_key="q")
