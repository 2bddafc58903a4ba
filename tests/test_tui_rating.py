"""After a recorded session: the knee-pain and effort modal; on the picker: the plan's
suggestion (a "next" row, or a rest day), only when recording is on.

The store is read and written in thread workers, in real threads, so these Pilot tests run on
the wall clock (`real_time`, as tests/test_tui_history.py does)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from test_tui import make_app as make_app
from test_tui import press, start, to_picker, wait_until, walking_at
from test_tui_history import record
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from treadmill.history.store import HistoryStore
from tui.app import TreadmillApp
from tui.screens.picker import NEXT, ProgramPicker
from tui.screens.rating import RatingScreen, score


def stored() -> list[tuple[int | None, int | None]]:
    with HistoryStore() as store:
        return [(s.pain, s.effort) for s in store.sessions()]


async def programs_listed(app: TreadmillApp) -> ProgramPicker:
    """The picker, mounted with its rows (on the wall clock that can lag the screen push)."""
    picker = await to_picker(app)
    await wait_until(lambda: "walk" in picker.query_one("#programs", DataTable).rows, 10,
                     "the programs")
    return picker


async def walk_and_stop(pilot: Pilot[Any]) -> None:
    """A recorded walk, stopped with SPACE, then Enter back to the programs."""
    app = pilot.app
    assert isinstance(app, TreadmillApp)
    await programs_listed(app)
    session = await start(pilot, "walk")
    await walking_at(app, session, 2.0)
    await press(pilot, "space")
    await wait_until(lambda: session.state.ended, 10, "the end")
    await wait_until(lambda: app.core.last_session_id is not None, 10, "a recorded session")
    await wait_until(lambda: not app.core.session_active, 10, "the recorder to close")
    await press(pilot, "enter")
    await wait_until(lambda: isinstance(app.screen, RatingScreen), 10, "the rating modal")
    assert any(isinstance(s, ProgramPicker) for s in app.screen_stack)


async def rating_saved(app: TreadmillApp) -> None:
    workers = [w for w in app.workers if w.group == "rating"]
    await app.workers.wait_for_complete(workers)


def suggestion(picker: ProgramPicker) -> Static:
    return picker.query_one("#picker-suggestion", Static)


@pytest.mark.real_time
async def test_a_recorded_session_asks_how_it_felt_and_stores_it(make_app):
    app, rec = make_app(record=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await walk_and_stop(pilot)
        modal = app.screen
        await press(pilot, "space")  # SPACE still stops the belt, and types nothing
        assert app.screen is modal and rec.bells >= 1
        await press(pilot, "3", "enter", "5", "enter")
        assert isinstance(app.screen, ProgramPicker)
        await rating_saved(app)
        assert stored() == [(3, 5)]
        assert not rec.said("not saved")


@pytest.mark.real_time
async def test_escape_skips_the_rating(make_app):
    app, _ = make_app(record=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await walk_and_stop(pilot)
        await press(pilot, "3", "escape")
        assert isinstance(app.screen, ProgramPicker)
        await rating_saved(app)
        assert stored() == [(None, None)]


@pytest.mark.real_time
async def test_the_picker_suggests_the_next_session_when_recording(make_app):
    app, rec = make_app(record=True)
    async with app.run_test(size=(120, 40)) as pilot:
        picker = await to_picker(app)
        await wait_until(lambda: suggestion(picker).display, 10, "the suggestion")
        text = str(suggestion(picker).render())
        assert text.startswith("Suggested next: ") and " — " in text
        table = picker.query_one("#programs", DataTable)
        assert NEXT in table.rows and table.get_row(NEXT)[3] == "suggested"
        table.move_cursor(row=table.get_row_index(NEXT))
        await pilot.pause()
        selected = picker.selected()
        assert selected is not None and selected.name == "next"
        assert selected.title in text
        assert not rec.notes


@pytest.mark.real_time
async def test_a_rest_day_is_said_and_no_program_is_added(make_app):
    today = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    with HistoryStore() as store:
        record(store, program="walk", started_at=today, forward_s=300, backward_s=60)
    app, _ = make_app(record=True)
    async with app.run_test(size=(120, 40)):
        picker = await to_picker(app)
        await wait_until(lambda: suggestion(picker).display, 10, "the rest line")
        assert str(suggestion(picker).render()).startswith("Rest today — ")
        assert NEXT not in picker.query_one("#programs", DataTable).rows


@pytest.mark.real_time
async def test_without_recording_there_is_no_suggestion_and_no_rating(make_app):
    app, _ = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        picker = await programs_listed(app)
        await pilot.pause(0.2)
        assert not suggestion(picker).display
        assert NEXT not in picker.query_one("#programs", DataTable).rows
        session = await start(pilot, "walk")
        await walking_at(app, session, 2.0)
        await press(pilot, "space")
        await wait_until(lambda: session.state.ended, 10, "the end")
        await press(pilot, "enter")
        await to_picker(app)
        await pilot.pause(0.2)
        assert isinstance(app.screen, ProgramPicker)
        assert not suggestion(app.screen).display


def test_a_score_is_a_whole_number_up_to_ten_or_nothing():
    assert [score(t) for t in ("", " ", "0", "7", "10", "12")] == [None, None, 0, 7, 10, 10]
