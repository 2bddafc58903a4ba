"""The History screen: every recorded session in a table, backward minutes per week, and the
highlighted session's speed over time, forward and backward in their own colours.

The store is read in thread workers (a sqlite3 connection belongs to the thread that opened
it, so each worker opens and closes its own `HistoryStore`); the UI's loop only draws what
they return. A store failure is one notification line. SPACE never comes here: the app stops
the belt before any screen sees the key.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import ClassVar, Final

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static
from textual.worker import Worker, WorkerState
from textual_plotext import PlotextPlot

from treadmill.history.model import Recording, SessionSummary
from treadmill.history.store import HistoryStore
from tui.protocol import TreadmillAppLike
from tui.text import one_line
from tui.widgets.top_bar import TopBar

log = logging.getLogger(__name__)

EMPTY: Final = "No sessions yet: every session you walk is kept here."
LOADING: Final = "Reading the history..."
WEEKS: Final = 8
MAX_POINTS: Final = 600  # per chart: more than a terminal has columns, and cheap to draw
CACHED_RECORDINGS: Final = 16
FORWARD_COLOUR: Final = "cyan"
BACKWARD_COLOUR: Final = "orange"


# ---- what the charts show (pure functions: the workers call them, the tests can too) --------


@dataclass(frozen=True)
class Segment:
    """A stretch of one session walked facing one way: minutes since the start, km/h."""

    orientation: str
    minutes: tuple[float, ...]
    kmh: tuple[float, ...]


@dataclass(frozen=True)
class SpeedTrace:
    """One session's speed over time, split where the person turned around."""

    session_id: int
    segments: tuple[Segment, ...]


@dataclass(frozen=True)
class Week:
    label: str  # "W48"
    monday: date
    backward_min: float


@dataclass(frozen=True)
class Overview:
    """What the sessions worker hands the screen."""

    sessions: tuple[SessionSummary, ...]
    weeks: tuple[Week, ...]


def local_start(summary: SessionSummary) -> datetime | None:
    """When the session started, in the local time zone (None: an unreadable timestamp)."""
    try:
        moment = datetime.fromisoformat(summary.started_at)
    except ValueError:
        return None
    return moment.astimezone()


def weekly_backward(
    sessions: Sequence[SessionSummary], today: date, weeks: int = WEEKS
) -> tuple[Week, ...]:
    """Backward minutes per ISO week on a real treadmill (the simulator's don't count), for
    the `weeks` weeks up to and including today's, oldest first."""
    this_monday = today - timedelta(days=today.weekday())
    mondays = [this_monday - timedelta(weeks=back) for back in range(weeks - 1, -1, -1)]
    totals = dict.fromkeys(mondays, 0.0)
    for summary in sessions:
        start = local_start(summary)
        if summary.simulated or start is None:
            continue
        monday = start.date() - timedelta(days=start.weekday())
        if monday in totals:
            totals[monday] += summary.backward_s / 60
    return tuple(
        Week(f"W{monday.isocalendar().week:02d}", monday, round(minutes, 1))
        for monday, minutes in totals.items()
    )


def speed_trace(recording: Recording, max_points: int = MAX_POINTS) -> SpeedTrace:
    """The samples with a speed, thinned to about `max_points`, cut into one segment per
    stretch facing one way."""
    samples = [s for s in recording.samples if s.speed_kmh is not None]
    stride = max(1, -(-len(samples) // max_points))
    kept = samples[::stride]
    if samples and kept[-1] is not samples[-1]:
        kept.append(samples[-1])  # the chart ends where the session did
    segments: list[Segment] = []
    run: list[tuple[float, float]] = []
    facing = ""
    for sample in kept:
        if sample.orientation != facing and run:
            segments.append(_segment(facing, run))
            run = []
        facing = sample.orientation
        assert sample.speed_kmh is not None
        run.append((round(sample.t / 60, 3), sample.speed_kmh))
    if run:
        segments.append(_segment(facing, run))
    return SpeedTrace(recording.summary.id, tuple(segments))


def _segment(orientation: str, run: list[tuple[float, float]]) -> Segment:
    return Segment(orientation, tuple(t for t, _ in run), tuple(v for _, v in run))


# ---- the table's cells ------------------------------------------------------------------------


def when(summary: SessionSummary) -> str:
    start = local_start(summary)
    return summary.started_at if start is None else start.strftime("%Y-%m-%d %H:%M")


def minutes_text(seconds: float) -> str:
    return f"{seconds / 60:.1f}"


def distance_cell(metres: int | None) -> str:
    if metres is None:
        return "-"
    return f"{metres / 1000:.2f} km" if metres >= 1000 else f"{metres} m"


def end_text(summary: SessionSummary) -> str:
    if summary.end_reason is None:
        # An open row the store did not mark interrupted: a live process is recording it.
        return "recording" if summary.ended_at is None else "-"
    return summary.end_reason.replace("_", " ")


# ---- the screen ---------------------------------------------------------------------------------


class HistoryScreen(Screen[None]):
    """The sessions, newest first; the charts follow the table's cursor."""

    CSS_PATH = "history.tcss"
    AUTO_FOCUS = "#sessions"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
    ]

    app: TreadmillAppLike  # type: ignore[assignment]

    def __init__(self, *, path: Path | None = None, today: date | None = None) -> None:
        """`path`: the history file (None: the store's default, in the data folder).
        `today`: the last week the weekly chart shows (None: the real today)."""
        super().__init__()
        self.path = path
        self.today = today
        self.sessions: tuple[SessionSummary, ...] = ()
        self.weeks: tuple[Week, ...] = ()
        self.trace: SpeedTrace | None = None  # what the speed chart shows now
        self.loaded = False  # the sessions worker has answered (or failed)
        self._traces: dict[int, SpeedTrace] = {}

    def compose(self) -> ComposeResult:
        link = self.app.link
        device = f"{link.name} ({link.address})" if link is not None else "not connected"
        yield TopBar("History", device=device, simulated=bool(link and link.simulated),
                     id="top-bar")
        yield Static(LOADING, id="history-status", markup=False)
        yield DataTable(id="sessions", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="history-charts"):
            yield PlotextPlot(id="weekly-chart")
            yield PlotextPlot(id="speed-chart")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#sessions", DataTable)
        table.add_column("Date", key="date")
        table.add_column("Program", key="program")
        table.add_column("Min", key="minutes")
        table.add_column("Backward", key="backward")
        table.add_column("Distance", key="distance")
        table.add_column("End", key="end")
        table.add_column("", key="sim")
        self.set_shown(False)
        self.load_sessions(self.today or date.today())

    def set_shown(self, shown: bool) -> None:
        """The table and charts, or only the status line (loading, empty, failed)."""
        self.query_one("#sessions").display = shown
        self.query_one("#history-charts").display = shown
        self.query_one("#history-status").display = not shown

    # ---- the workers (run in threads; they return plain data) ------------------------------

    @work(thread=True, exclusive=True, group="history-sessions", exit_on_error=False)
    def load_sessions(self, today: date) -> Overview:
        with HistoryStore(self.path) as store:
            sessions = tuple(store.sessions())
        return Overview(sessions, weekly_backward(sessions, today))

    @work(thread=True, exclusive=True, group="history-recording", exit_on_error=False)
    def load_trace(self, session_id: int) -> SpeedTrace | None:
        with HistoryStore(self.path) as store:
            recording = store.recording(session_id)
        return None if recording is None else speed_trace(recording)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if event.state is WorkerState.ERROR:
            log.debug("reading the history failed", exc_info=worker.error)
            text = one_line(worker.error)
            if worker.group == "history-sessions":
                self.loaded = True
                self.query_one("#history-status", Static).update(f"Can't read the history: {text}")
            self.notify(text, title="History", severity="error", markup=False, timeout=10)
        elif event.state is WorkerState.SUCCESS:
            result = worker.result
            if isinstance(result, Overview):
                self.show_overview(result)
            elif isinstance(result, SpeedTrace):
                self.remember(result)
                if result.session_id == self.highlighted():
                    self.show_trace(result)

    # ---- drawing -----------------------------------------------------------------------------

    def show_overview(self, overview: Overview) -> None:
        self.loaded = True
        self.sessions, self.weeks = overview.sessions, overview.weeks
        if not self.sessions:
            self.query_one("#history-status", Static).update(EMPTY)
            return
        table = self.query_one("#sessions", DataTable)
        table.clear()
        for s in self.sessions:
            table.add_row(when(s), s.program, minutes_text(s.duration_s),
                          minutes_text(s.backward_s), distance_cell(s.distance_m), end_text(s),
                          "sim" if s.simulated else "", key=str(s.id))
        self.set_shown(True)
        self.draw_weeks()
        self.follow_cursor()

    def draw_weeks(self) -> None:
        chart = self.query_one("#weekly-chart", PlotextPlot)
        plt = chart.plt
        plt.clear_figure()
        # Short enough for half an 80-column terminal (plotext drops a title that won't fit).
        plt.title("Backward min per week (not sim)")
        labels = [week.label for week in self.weeks]
        values = [week.backward_min for week in self.weeks]
        plt.bar(labels, values, color=BACKWARD_COLOUR)
        if not any(values):
            plt.ylim(0, 1)  # an empty week range still gets an axis that starts at zero
        chart.refresh()

    def highlighted(self) -> int | None:
        table = self.query_one("#sessions", DataTable)
        if table.row_count == 0:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return None if row_key.value is None else int(row_key.value)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.follow_cursor()

    def follow_cursor(self) -> None:
        session_id = self.highlighted()
        if session_id is None or (self.trace is not None and self.trace.session_id == session_id):
            return
        cached = self._traces.get(session_id)
        if cached is not None:
            self.show_trace(cached)
        else:
            self.load_trace(session_id)

    def remember(self, trace: SpeedTrace) -> None:
        self._traces[trace.session_id] = trace
        while len(self._traces) > CACHED_RECORDINGS:
            self._traces.pop(next(iter(self._traces)))  # the oldest one read

    def show_trace(self, trace: SpeedTrace) -> None:
        self.trace = trace
        chart = self.query_one("#speed-chart", PlotextPlot)
        plt = chart.plt
        plt.clear_figure()
        summary = next((s for s in self.sessions if s.id == trace.session_id), None)
        plt.title(f"Speed, km/h: {when(summary) if summary else trace.session_id}")
        plt.xlabel("minutes")
        labelled: set[str] = set()
        for segment in trace.segments:
            backward = segment.orientation == "backward"
            # One legend entry per way of facing, however often the person turned.
            label = None if segment.orientation in labelled else segment.orientation
            labelled.add(segment.orientation)
            plt.plot(list(segment.minutes), list(segment.kmh), label=label,
                     color=BACKWARD_COLOUR if backward else FORWARD_COLOUR)
        if trace.segments:
            # From zero, with headroom: a steady walk is a flat line, not noise, and the top
            # speed stays below the legend (two rows at the top left).
            top = max(max(segment.kmh) for segment in trace.segments)
            plt.ylim(0, max(1.0, top * 1.6))
        else:
            plt.title("No speed was recorded in this session")
        chart.refresh()

    def action_back(self) -> None:
        self.dismiss()
