"""Programs: built-in and the person's own, with length and backward minutes; the highlighted
one's description and steps. Programs that walk backwards uphill need the incline unlock: they
are marked, and refused with the reason unless the safety settings have it unlocked."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from safety import Orientation, envelope_for
from treadmill.history.progression import Plan
from treadmill.history.progression import plan as next_plan
from treadmill.history.store import HistoryStore
from treadmill.programs import Program, ProgramError, TurnAroundItem, plan, validate
from treadmill.session import machine_limits
from tui.messages import ShowDevices, ShowHistory, StartProgram
from tui.protocol import TreadmillAppLike
from tui.text import one_line
from tui.widgets.top_bar import TopBar

LOCK = "LOCKED: incline"
NEXT = "next"  # the suggested program's row


def minutes(seconds: float) -> str:
    value = seconds / 60
    return f"{value:.1f}".rstrip("0").rstrip(".") + " min"


def refusal(program: Program, app: TreadmillAppLike) -> str | None:
    """Why this program can't start here, or None."""
    link = app.link
    try:
        limits = machine_limits(link.client) if link is not None and link.info else None
    except Exception:
        limits = None
    try:
        validate(program, app.safety, limits)
    except ProgramError as exc:
        return str(exc)
    if limits is not None and program.backward_s > 0:
        return envelope_for(limits, app.safety, Orientation.BACKWARD).refusal
    return None


class ProgramPicker(Screen[None]):
    CSS_PATH = "picker.tcss"
    AUTO_FOCUS = "#programs"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "start", "Start", priority=True),
        Binding("d", "devices", "Devices"),
        Binding("h", "history", "History"),
        Binding("escape", "devices", "Devices", show=False),
    ]

    app: TreadmillAppLike  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.suggestion: Program | None = None  # the plan's next session, in the list as "next"
        # True once the list is complete: the suggestion is in it, or none will come.
        self.settled = False
        self._mount_row = 0  # where the cursor was put on mount, to see whether the person moved it

    def compose(self) -> ComposeResult:
        app = self.app
        link = app.link
        device = f"{link.name} ({link.address})" if link is not None else "not connected"
        yield TopBar("Programs", device=device, simulated=bool(link and link.simulated),
                     id="top-bar")
        with Horizontal(id="picker-body"):
            yield DataTable(id="programs", cursor_type="row", zebra_stripes=True)
            with Vertical(id="program-details"):
                yield Static("", id="program-title", markup=False)
                yield Static("", id="program-description", markup=False)
                yield Static("", id="program-steps", markup=False)
        suggestion = Static("", id="picker-suggestion", markup=False)
        suggestion.display = False
        yield suggestion
        yield Static("", id="picker-belt", markup=False)
        yield Static("", id="picker-status", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        app = self.app
        table = self.query_one("#programs", DataTable)
        table.add_column("Program", key="name")
        table.add_column("Length", key="length")
        table.add_column("Backward", key="backward")
        table.add_column("Notes", key="lock")
        unlocked = app.safety.backward_incline_unlocked
        for name, program in app.programs.items():
            lock = ""
            if program.unlock_backward_incline:
                lock = "incline unlocked" if unlocked else LOCK
            table.add_row(name, minutes(program.duration_s), minutes(program.backward_s), lock,
                          key=name)
        if app.program_name and app.program_name in app.programs:
            table.move_cursor(row=table.get_row_index(app.program_name))
        elif app.program_name:
            self.set_status(f"no program called '{app.program_name}'", error=True)
        self._mount_row = table.cursor_row
        self.show_details()
        self.update_belt()
        self.set_interval(1.0, self.update_belt)
        if app.core.record:
            self.suggest()
        else:
            self.settled = True

    @work(thread=True, exclusive=True, group="suggest")
    def suggest(self) -> None:
        """The progression plan over the recorded sessions (a thread: the store is a file)."""
        app = self.app
        try:
            with HistoryStore() as store:
                sessions = store.sessions()
            suggested = next_plan(sessions, now=datetime.now(UTC), safety=app.safety,
                                  programs=app.programs)
        except Exception as exc:  # one line, never a traceback
            self.app.call_from_thread(self.no_suggestion, one_line(exc))
            return
        self.app.call_from_thread(self.show_suggestion, suggested)

    def no_suggestion(self, reason: str) -> None:
        self.settled = True
        self.notify(f"No suggestion: {reason}", title="History", severity="warning",
                    markup=False)

    def show_suggestion(self, suggested: Plan) -> None:
        self.settled = True
        if not self.is_mounted:
            return  # the picker was left while the plan was being made
        line = self.query_one("#picker-suggestion", Static)
        reason = suggested.reasons[0] if suggested.reasons else ""
        program = suggested.next_program
        if suggested.rest_today:
            text = "Rest today" + (f" — {reason}" if reason else "")
        else:
            text = f"Suggested next: {program.title}" + (f" — {reason}" if reason else "")
            table = self.query_one("#programs", DataTable)
            if NEXT not in self.app.programs and NEXT not in table.rows:
                self.suggestion = program
                table.add_row(NEXT, minutes(program.duration_s), minutes(program.backward_s),
                              "suggested", key=NEXT)
                # Onto the suggestion only if the person hasn't already chosen a row: a
                # cursor that jumps just as Enter is pressed would start another program.
                if not self.app.program_name and table.cursor_row == self._mount_row:
                    table.move_cursor(row=table.get_row_index(NEXT))
        line.update(one_line(text))
        line.display = True

    def selected(self) -> Program | None:
        table = self.query_one("#programs", DataTable)
        if table.row_count == 0:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        name = str(row_key.value)
        if name == NEXT and self.suggestion is not None and NEXT not in self.app.programs:
            return self.suggestion
        return self.app.programs.get(name)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_details()

    def show_details(self) -> None:
        program = self.selected()
        if program is None:
            return
        self.query_one("#program-title", Static).update(program.title)
        text = " ".join(program.description.split())
        if program.unlock_backward_incline and not self.app.safety.backward_incline_unlocked:
            text += ("\n\nWalks backwards uphill: locked. Start the app with "
                     "--unlock-backward-incline if your physiotherapist agrees.")
        self.query_one("#program-description", Static).update(text)
        lines = []
        for item in plan(program):
            if isinstance(item, TurnAroundItem):
                lines.append(f"    ↻ stop, turn to face {item.to}")
                continue
            s = item.step
            incline = f" at {s.incline_pct:g} %" if s.incline_pct else ""
            lines.append(f"{item.index:>2}. {s.orientation.upper():<8} {minutes(s.duration_s):>7}"
                         f"  {s.speed_kmh:g} km/h{incline}")
        self.query_one("#program-steps", Static).update("\n".join(lines))

    def update_belt(self) -> None:
        link = self.app.link
        if link is None or not link.connected:
            text = "Not connected: D for devices."
        else:
            speed = link.belt_speed_kmh
            belt = "belt speed unknown" if speed is None else f"belt {speed:.1f} km/h"
            text = f"Connected, {belt}. Enter starts the highlighted program."
            if link.simulated and not self.app.simulate_requested:
                text = (f"SIMULATOR (no treadmill paired; D to pair one), {belt}. "
                        "Enter starts the highlighted program.")
        self.query_one("#picker-belt", Static).update(text)

    def set_status(self, text: str, *, error: bool = False) -> None:
        status = self.query_one("#picker-status", Static)
        status.update(text)
        status.set_class(error, "-error")

    def action_start(self) -> None:
        program = self.selected()
        if program is None:
            return
        why = refusal(program, self.app)
        if why is not None:
            self.app.bell()
            self.set_status(f"refused: {why}", error=True)
            self.notify(one_line(why), title="Can't start this program", severity="error",
                        markup=False)
            return
        self.set_status("")
        self.post_message(StartProgram(program))

    def action_devices(self) -> None:
        self.post_message(ShowDevices())

    def action_history(self) -> None:
        self.post_message(ShowHistory())
