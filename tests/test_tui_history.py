"""The History screen: the sessions table, the weekly backward chart, the highlighted session's
speed chart, the empty and broken stores, and one screenshot.

The store is read in thread workers, in real threads. On the virtual-time loop a real thread's
few milliseconds are an eternity of jumped clock (its default executor's shutdown times out at
the end of a test), so the Pilot tests opt out with `real_time`; nothing here walks a session,
so they cost a second each. `settle` waits for the screen's workers themselves, then lets
their messages land.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import pytest
import test_tui_snapshots as snapshots
from test_tui import make_app as make_app
from test_tui import press, to_picker
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from treadmill.config import data_dir
from treadmill.history.model import Sample, SessionSummary, StoredEvent
from treadmill.history.store import FILE_NAME, HistoryStore
from tui.screens.device import DeviceScreen
from tui.screens.history import EMPTY, HistoryScreen, weekly_backward
from tui.screens.picker import ProgramPicker

TODAY = date(2026, 12, 2)  # a Wednesday, in ISO week 49


def record(store: HistoryStore, *, program: str, started_at: str, forward_s: int,
           backward_s: int, simulated: bool = False, end_reason: str = "completed") -> int:
    """A finished session: `forward_s` seconds forward at 2.0 km/h, then backward at 1.5."""
    session = store.begin(program=program, title=program.title(), device="Hall treadmill",
                          simulated=simulated, started_at=started_at)
    samples = [Sample(float(t), 2.0 if t < forward_s else 1.5, 0.0, int(t * 0.5), None,
                      "forward" if t < forward_s else "backward")
               for t in range(0, forward_s + backward_s, 5)]
    store.add_samples(session, samples)
    store.add_events(session, [StoredEvent(0.0, "step", {"index": 1}),
                               StoredEvent(float(forward_s), "turn_around", {"to": "backward"})])
    store.finish(session, ended_at=started_at.replace("T18", "T19"),
                 duration_s=forward_s + backward_s, distance_m=int((forward_s + backward_s) / 2),
                 backward_s=backward_s, longest_backward_bout_s=backward_s, alarms=0,
                 end_reason=end_reason)
    return session


def fill_history() -> list[int]:
    """Three sessions in the test's data folder, oldest first; the newest is simulated."""
    with HistoryStore() as store:
        return [
            record(store, program="taster", started_at="2026-11-20T18:00:00+00:00",
                   forward_s=120, backward_s=60),
            record(store, program="mixed", started_at="2026-11-30T18:00:00+00:00",
                   forward_s=60, backward_s=240, end_reason="emergency_stop"),
            record(store, program="walk", started_at="2026-12-01T18:00:00+00:00",
                   forward_s=300, backward_s=0, simulated=True),
        ]


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time is UTC, so the dates shown (and the screenshot) are the same everywhere."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


async def settle(pilot: Pilot[Any], screen: HistoryScreen,
                 ready: Callable[[], object], what: str) -> None:
    for _ in range(50):
        pending = [w for w in pilot.app.workers if w.node is screen and not w.is_finished]
        if pending:
            # a worker that fails is an answer too (the screen shows its one line), so wait
            # for it without letting its error end the test
            await asyncio.gather(*(w.wait() for w in pending), return_exceptions=True)
        for _ in range(5):
            await pilot.pause(0)
        if ready():
            return
    raise AssertionError(f"the history screen never showed {what}")


async def open_history(pilot: Pilot[Any]) -> HistoryScreen:
    await to_picker(pilot.app)
    await press(pilot, "h")
    screen = pilot.app.screen
    assert isinstance(screen, HistoryScreen)
    await settle(pilot, screen, lambda: screen.loaded, "the sessions")
    return screen


# ---- the screen ---------------------------------------------------------------------------


@pytest.mark.real_time
async def test_history_lists_sessions_and_the_chart_follows_the_cursor(make_app, utc):
    ids = fill_history()
    app, rec = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_history(pilot)
        table = screen.query_one("#sessions", DataTable)
        rows = [table.get_row_at(i) for i in range(table.row_count)]
        assert rows == [
            ["2026-12-01 18:00", "walk", "5.0", "0.0", "150 m", "completed", "sim"],
            ["2026-11-30 18:00", "mixed", "5.0", "4.0", "150 m", "emergency stop", ""],
            ["2026-11-20 18:00", "taster", "3.0", "1.0", "90 m", "completed", ""],
        ]
        # newest first: the simulated walk is highlighted, all forward
        await settle(pilot, screen, lambda: screen.trace is not None, "a speed chart")
        assert screen.trace is not None and screen.trace.session_id == ids[2]
        assert [s.orientation for s in screen.trace.segments] == ["forward"]

        await press(pilot, "down")
        await settle(pilot, screen, lambda: screen.trace and screen.trace.session_id == ids[1],
                     "the second session's speeds")
        forward, backward = screen.trace.segments
        assert (forward.orientation, backward.orientation) == ("forward", "backward")
        assert set(forward.kmh) == {2.0} and set(backward.kmh) == {1.5}
        assert backward.minutes[0] == 1.0 and backward.minutes[-1] == pytest.approx(4.917)

        # space still stops the belt here (the app takes it first), and nothing else happens
        await press(pilot, "space")
        assert isinstance(app.screen, HistoryScreen) and rec.bells == 1

        await press(pilot, "escape")
        assert isinstance(app.screen, ProgramPicker)
        assert not rec.said("History")


@pytest.mark.real_time
async def test_an_empty_history_says_so(make_app):
    app, rec = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_history(pilot)
        status = screen.query_one("#history-status", Static)
        assert str(status.render()) == EMPTY and status.display
        assert not screen.query_one("#sessions").display
        assert rec.notes == []
        await press(pilot, "escape")
        assert isinstance(app.screen, ProgramPicker)


@pytest.mark.real_time
async def test_a_broken_history_file_is_one_line_not_a_traceback(make_app):
    (data_dir() / FILE_NAME).write_bytes(b"this is not a database, it only sits where one was")
    app, rec = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_history(pilot)
        severity, note = rec.notes[-1]
        assert severity == "error" and "not a history database" in note
        assert "\n" not in note and "Traceback" not in note
        assert "Can't read the history" in str(
            screen.query_one("#history-status", Static).render())


def test_the_weekly_chart_counts_real_backward_minutes_per_iso_week(utc):
    def session(started_at: str, backward_s: float, simulated: bool = False) -> SessionSummary:
        return SessionSummary(1, "p", "P", "d", simulated, started_at, backward_s=backward_s)

    weeks = weekly_backward([
        session("2026-12-01T08:00:00+00:00", 120),  # this week (W49)
        session("2026-11-30T08:00:00+00:00", 60),  # Monday of W49
        session("2026-11-29T23:00:00+00:00", 300),  # Sunday: W48
        session("2026-11-28T08:00:00+00:00", 600, simulated=True),  # the simulator: not counted
        session("2026-08-01T08:00:00+00:00", 900),  # long before the chart starts
        session("not a date", 60),
    ], TODAY)
    assert [w.label for w in weeks] == ["W42", "W43", "W44", "W45", "W46", "W47", "W48", "W49"]
    assert [w.backward_min for w in weeks] == [0, 0, 0, 0, 0, 0, 5.0, 3.0]


# ---- the screenshot -------------------------------------------------------------------------


def test_history_screen_snapshot(snap_compare, tmp_path, utc):
    ids = fill_history()
    app = snapshots.make_app(tmp_path, auto_connect=False)

    async def run_before(pilot: Pilot[Any]) -> None:
        await snapshots.until(lambda: isinstance(app.screen, DeviceScreen)
                              and not app.screen.scanning)
        screen = HistoryScreen(today=TODAY)  # the weekly chart ends at a fixed week
        await app.push_screen(screen)
        await snapshots.until(lambda: screen.trace is not None)
        table = screen.query_one("#sessions", DataTable)
        table.move_cursor(row=table.get_row_index(str(ids[1])))  # the one that walked backward
        await snapshots.until(lambda: screen.trace is not None
                              and screen.trace.session_id == ids[1])
        await pilot.pause()

    assert snap_compare(app, terminal_size=(100, 30), run_before=run_before)
