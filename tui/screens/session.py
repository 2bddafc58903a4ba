"""The session: big numbers, which way you face, the step and what comes next, the safety state.

The SessionRunner runs on the controller's loop (tui/controller.py), usually in another process
(tui/split.py) or thread; this screen starts it through the host and awaits the result in a
worker. Its
events come through a `SessionFeed` (tui/feed.py): discrete events (step, cue, turn-around,
alarm, ended, ...) as messages; telemetry as numbers that wait in the feed, drained by one
queued call at a time and folded into the SessionState. Redraws are coalesced with
`loop.call_later` so the display is redrawn at most every REFRESH_S (4 Hz), however fast
telemetry comes. Key requests go to `host.submit`; a refusal comes back as an event and is
shown in the status line. What the screen shows of the runner and governor it reads as plain
attributes (of the real objects, or of their mirrors, tui/views.py). SPACE never comes here:
the key reader and the app stop the belt first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, ProgressBar, Sparkline, Static

from safety import SafetyConfig, StepIncline, StepSpeed
from treadmill import session_events as ev
from treadmill.errors import TreadmillError
from treadmill.programs import Program
from treadmill.session import SessionEvent, SessionResult, SessionRunner
from tui.feed import SessionFeed
from tui.messages import ShowDevices, ShowPrograms
from tui.protocol import TreadmillAppLike
from tui.screens.alert import AlertScreen
from tui.screens.turn_around import TurnAroundScreen
from tui.session_state import (
    CALM_ENDS,
    CONSOLE_ADVICE,
    HISTORY_S,
    NO_LINK_ENDS,
    SafetyView,
    SessionState,
    clock,
    distance_text,
    sentences,
)
from tui.views import RequestAt
from tui.widgets.metric import Metric
from tui.widgets.orientation import OrientationBanner
from tui.widgets.top_bar import TopBar

if TYPE_CHECKING:
    from textual.app import App
    from textual.worker import Worker

    from treadmill.link import TreadmillLink
    from tui.host import ControllerHost
    from tui.remote import RemoteHost

log = logging.getLogger(__name__)

SPEED_KEYS = Binding.Group("speed", compact=True)
INCLINE_KEYS = Binding.Group("incline", compact=True)

REFRESH_S = 0.25  # at most 4 redraws a second: read at a glance, telemetry is 1-4 Hz
CLOCK_S = 0.5  # redraw at least this often (clocks, watchdog age) even without telemetry
STEP_SETTLE_S = 0.15  # the runner's step countdown is stale this long after a new step

PHASE_TEXT = {
    "starting": "STARTING",
    "walking": "",
    "turning": "SLOWING TO A STOP TO TURN AROUND",
    "confirm": "BELT STOPPED: TURN AROUND, THEN ENTER",
}


class SessionProgress(ProgressBar):
    """A ProgressBar without its once-a-second self-update (it exists for the ETA, which we
    don't show). Textual re-composes a screen pushed on top of this one (the turn-around
    dialog) whenever this screen changes, so that tick cost several percent of a core for as
    long as the dialog was open; we set the progress ourselves."""

    def on_mount(self, event: events.Mount) -> None:
        event.prevent_default()
        self.update()


class SessionScreen(Screen[None]):
    CSS_PATH = "session.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "speed(1)", "faster", key_display="↑", group=SPEED_KEYS),
        Binding("down", "speed(-1)", "slower", key_display="↓", group=SPEED_KEYS),
        Binding("left", "incline(-1)", "lower", key_display="←", group=INCLINE_KEYS),
        Binding("right", "incline(1)", "higher", key_display="→", group=INCLINE_KEYS),
        Binding("p", "pause", "pause/resume"),
        Binding("enter", "back", "Back"),
        Binding("escape", "back", "Back", show=False),
    ]

    app: TreadmillAppLike  # type: ignore[assignment]

    class RunnerEvent(Message):
        """A discrete session event (not telemetry), handed to the UI."""

        def __init__(self, event: SessionEvent) -> None:
            super().__init__()
            self.event = event

    class Refresh(Message):
        """Redraw from the state (coalesced: at most one queued)."""

    class Finished(Message):
        def __init__(self, result: SessionResult | None, error: str | None) -> None:
            super().__init__()
            self.result = result
            self.error = error

    def __init__(
        self,
        program: Program,
        link: TreadmillLink | None = None,
        safety: SafetyConfig | None = None,
        *,
        host: ControllerHost | RemoteHost | None = None,
        state: SessionState | None = None,
    ) -> None:
        super().__init__()
        self.program = program
        self.link = link
        self.safety = safety or SafetyConfig()
        self.host = host
        self.live = link is not None and host is not None
        self.state = state or SessionState(
            program,
            device=link.name if link else "",
            simulated=bool(link and link.simulated),
        )
        self.feed = SessionFeed(self._feed_event, self._feed_numbers)
        self._app: App[Any] | None = None  # captured on mount, for the controller's thread
        self.session_worker: Worker[None] | None = None
        self.turn_screen: TurnAroundScreen | None = None
        self._refresh_handle: asyncio.TimerHandle | None = None
        self._clock_handle: asyncio.TimerHandle | None = None
        self._last_refresh = -1e9
        self._step_started_at = -1e9
        self._last_idle_sample: object | None = None
        self._texts: dict[str, str] = {}

    # ---- layout --------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        s = self.state
        yield TopBar(f"{self.program.name}: {self.program.title}", device=s.device,
                     simulated=s.simulated, id="top-bar")
        yield Static("", id="alert-banner", markup=False)
        yield OrientationBanner(s.orientation, id="orientation")
        with Horizontal(id="metrics"):
            yield Metric("ELAPSED", id="m-elapsed")
            yield Metric("LEFT", id="m-left")
            yield Metric("km/h", id="m-speed")
            yield Metric("incl %", id="m-incline")
            yield Metric("m", id="m-distance")
            yield Metric("♥ bpm", id="m-heart")
        with Horizontal(id="step-row"):
            with Vertical(id="step-panel"):
                yield Static("", id="step-line", markup=False)
                yield Static("", id="next-line", markup=False)
            yield Metric("STEP LEFT", id="m-step")  # only on tall screens (see the .tcss)
        yield SessionProgress(total=max(1.0, self.program.duration_s), show_eta=False,
                              id="progress")
        with Vertical(id="spark-box") as spark_box:
            spark_box.border_title = "speed, last 2 minutes"
            yield Sparkline([0.0] * HISTORY_S, id="speed-spark")
        with Vertical(id="bottom"):
            yield Static("", id="cue-line", markup=False)
            yield Static("", id="status-line", markup=False)
            yield Static("", id="safety-line", markup=False)
        yield Footer()

    def on_screen_resume(self) -> None:
        self.render_state()  # back on top after a dialog: catch up on what changed beneath

    @property
    def runner(self) -> SessionRunner | None:
        """The session's runner, once the controller has made it (read-only use here)."""
        return self.feed.runner

    def on_mount(self) -> None:
        self._app = self.app  # type: ignore[assignment]
        self.query_one("#alert-banner").display = False
        self.query_one("#m-heart").display = False
        self.render_state()
        self.call_after_refresh(self.render_state)  # again once styles and sizes are known
        if self.live:
            self._clock_tick()
            self.session_worker = self.run_session()

    def on_resize(self) -> None:
        self.call_after_refresh(self.render_state)  # which metric boxes fit changes

    def on_unmount(self) -> None:
        for handle in (self._refresh_handle, self._clock_handle):
            if handle is not None:
                handle.cancel()
        self.feed.detach()
        if self.link is not None and self.link.on_sample == self.feed.on_idle_sample:
            self.link.on_sample = None

    # ---- the runner ------------------------------------------------------------------------

    @work(group="session", exclusive=True, exit_on_error=False)
    async def run_session(self) -> None:
        host = self.host
        assert host is not None
        result: SessionResult | None = None
        error: str | None = None
        try:
            result = await asyncio.wrap_future(
                host.call(host.controller.run_session, self.program, self.safety, self.feed))
        except asyncio.CancelledError:
            raise
        except TreadmillError as exc:
            error = str(exc)
        except Exception as exc:  # a bug: one line on screen, details in the log
            log.exception("session failed")
            error = f"internal error ({type(exc).__name__}: {exc})"
        self.post_message(self.Finished(result, error))

    def _feed_event(self, event: SessionEvent) -> None:
        """A discrete event, from the controller's loop: a message to this screen."""
        self.post_message(self.RunnerEvent(event))

    def _feed_numbers(self) -> None:
        """Numbers are waiting, from the controller's loop: one call on the app's queue (not
        this screen's: a message handled by a screen under a dialog repaints it)."""
        app = self._app
        if app is not None:
            app.call_later(self._take_numbers)

    def _take_numbers(self) -> None:
        for event in self.feed.take():
            if isinstance(event, ev.TelemetryShown):
                self.state.on_telemetry(event.data, event.t)
        self.request_refresh()  # the safety line shows the ramp, even without telemetry

    def _clock_tick(self) -> None:
        """Redraw every CLOCK_S even without telemetry (clocks, the watchdog's age). On loop
        time, like everything else here, so a simulated clock drives it too."""
        self.request_refresh()
        self._clock_handle = asyncio.get_running_loop().call_later(CLOCK_S, self._clock_tick)

    def request_refresh(self) -> None:
        """Ask for a redraw; many requests within REFRESH_S make one redraw."""
        if self._refresh_handle is not None:
            return
        if self.is_mounted and self.app.screen is not self:
            # Covered by a dialog: any message handled here makes textual repaint this screen
            # and re-compose the dialog on top, so nothing is scheduled; the dialog gets the
            # belt speed directly and this screen catches up when it is back on top.
            turn = self.turn_screen
            if turn is not None and turn.is_mounted:
                turn.speed_kmh = self.state.speed_kmh
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, self._last_refresh + REFRESH_S - loop.time())
        self._refresh_handle = loop.call_later(delay, self._post_refresh)

    def _post_refresh(self) -> None:
        self.post_message(self.Refresh())

    def on_session_screen_refresh(self, message: Refresh) -> None:
        self._refresh_handle = None
        self._last_refresh = asyncio.get_running_loop().time()
        self.update_view()

    def on_session_screen_runner_event(self, message: RunnerEvent) -> None:
        event = message.event
        self.state.apply(event)
        data = event.data
        match event.type:
            case "step":
                self._step_started_at = asyncio.get_running_loop().time()
            case "turn_around":
                self.show_turn(data.get("to", "forward"), ready=False)
            case "confirm_needed":
                self.show_turn(data.get("to", "forward"), ready=True)
                self.app.bell()
            case "confirmed":
                self.close_turn()
            case "alarm":
                self.app.bell()  # the loud kinds also get the banner (session_state.py)
            case "cue" if data.get("countdown_s"):
                self.app.bell()  # a change is coming: look at the screen
            case "link_lost":
                self.app.bell()
            case "ended":
                self.close_turn()
                self.on_ended()
        self.update_view()

    def on_session_screen_finished(self, message: Finished) -> None:
        self.refresh_bindings()
        if message.error is not None:
            self.app.bell()
            self.state.set_status(f"could not run the session: {message.error}", "alarm")
            self.notify(" ".join(message.error.split()), title="Session not started",
                        severity="error", markup=False, timeout=10)
            self.render_state()
            if self.state.ended_reason is None:
                self.action_back(force=True)
            return
        result = message.result
        if result is not None:
            distance = f", {result.distance_m} m" if result.distance_m is not None else ""
            self.state.summary = (f"Session over: {clock(result.duration_s)} in all{distance}, "
                                  f"{clock(result.backward_s)} backward.")
            self.state.ended_message = self.state.ended_message or result.message
        self.update_view()

    def on_ended(self) -> None:
        state = self.state
        self.refresh_bindings()
        reason = state.ended_reason or "error"
        if reason in CALM_ENDS:
            return
        advice = ""
        if reason in NO_LINK_ENDS:
            advice = f"If the belt is still moving: {CONSOLE_ADVICE}."
        elif reason in ("safety_key", "control_lost", "machine_reset", "started_at_console",
                        "not_obeying", "error"):
            advice = f"If the belt keeps moving: {CONSOLE_ADVICE}."

        def done(choice: str | None) -> None:
            if choice == "back":
                self.action_back(force=True)

        self.app.push_screen(AlertScreen(state.end_title, sentences(state.ended_message),
                                         advice=advice), done)

    # ---- the turn-around dialog --------------------------------------------------------------

    def show_turn(self, to: str, *, ready: bool) -> None:
        if self.turn_screen is not None and self.turn_screen.to == to:
            self.turn_screen.ready = ready
            return
        self.close_turn()
        self.turn_screen = TurnAroundScreen(to, on_confirm=self.confirm_turned, ready=ready)
        self.app.push_screen(self.turn_screen)

    def close_turn(self) -> None:
        screen, self.turn_screen = self.turn_screen, None
        if screen is not None and screen in self.app.screen_stack:
            if self.app.screen is screen:
                self.app.pop_screen()
            else:
                screen.remove()

    def confirm_turned(self) -> bool:
        runner = self.runner
        if runner is None or not runner.waiting_for_confirmation or self.host is None:
            return False
        self.host.run_soon(self.host.controller.confirm_turned)
        return True

    # ---- keys ------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        ended = self.state.ended or (self.session_worker is not None
                                     and self.session_worker.is_finished)
        if action == "back":
            return ended
        if action in ("speed", "incline", "pause"):
            return not ended
        return True

    def _started(self) -> bool:
        runner = self.runner
        if runner is None or runner.governor is None or self.host is None:
            self.state.set_status("the session has not started yet", "refused")
            self.render_state()
            return False
        return True

    def submit(self, make: RequestAt) -> None:
        """A key's request; the controller builds it at its own time (it may be in another
        process, so a request class and its arguments, not a closure)."""
        if self._started():
            assert self.host is not None
            self.host.submit(make)  # refusals come back as events, shown in the status line
            self.request_refresh()

    def action_speed(self, steps: int) -> None:
        self.submit(RequestAt(StepSpeed, (steps,)))

    def action_incline(self, steps: int) -> None:
        self.submit(RequestAt(StepIncline, (steps,)))

    def action_pause(self) -> None:
        # Pause or resume is decided by the controller, at the governor's state right then.
        if self._started():
            assert self.host is not None
            self.host.run_soon(self.host.controller.toggle_pause)
            self.request_refresh()

    def action_back(self, force: bool = False) -> None:
        if not force and not (self.state.ended or not self.live or (
                self.session_worker is not None and self.session_worker.is_finished)):
            self.state.set_status("the session is running: SPACE stops it", "info")
            self.render_state()
            return
        link = self.link
        self.post_message(ShowPrograms() if link is not None and link.connected
                          else ShowDevices())

    # ---- drawing ---------------------------------------------------------------------------

    def update_view(self) -> None:
        """Copy the runner's and governor's read-only view into the state, then draw."""
        runner = self.runner
        if runner is not None and runner.governor is not None:
            state = self.state
            state.safety = SafetyView.from_governor(runner.governor)
            if not state.ended:
                state.elapsed_s = self.session_time()
            now = asyncio.get_running_loop().time()
            current = runner.current_step
            if (current is not None and current.index == state.step_index
                    and state.phase == "walking" and now - self._step_started_at > STEP_SETTLE_S):
                state.step_remaining_s = runner.step_remaining_s
        link = self.link
        if link is not None and self.state.ended and link.last_sample is not None:
            # After the session the link's idle pump reads the belt: show it slowing down.
            sample = link.last_sample
            if sample is not self._last_idle_sample:
                self._last_idle_sample = sample
                t = self.session_time() if self.runner is not None else None
                self.state.on_telemetry({
                    "speed_kmh": sample.speed_kmh,
                    "incline_pct": (sample.incline_pct if sample.incline_pct is not None
                                    else self.state.incline_pct),
                    "incline_reported": sample.incline_pct is not None,
                    "distance_m": sample.distance_m,
                    "heart_rate_bpm": sample.heart_rate_bpm,
                }, t)
        self.render_state()

    def render_state(self) -> None:
        """Push the state into the widgets, touching only what changed (an unchanged widget
        is not redrawn, and fixed-height lines never trigger a layout)."""
        s = self.state
        if self.is_mounted and self.app.screen is not self:
            # A dialog covers this screen. Textual re-composes the whole dimmed background for
            # every change beneath a modal (four times the CPU), so only the dialog's own value
            # is updated; this screen is redrawn when it is back on top.
            if self.turn_screen is not None and self.turn_screen.is_mounted:
                self.turn_screen.speed_kmh = s.speed_kmh
            return
        safety = s.safety
        banner = self.query_one(OrientationBanner)
        banner.orientation = s.orientation
        banner.detail = self.phase_text()
        self.query_one("#m-elapsed", Metric).show(clock(s.elapsed_s))
        self.query_one("#m-left", Metric).show(clock(s.remaining_s))
        speed = "-" if s.speed_kmh is None else f"{s.speed_kmh:.1f}"
        self.query_one("#m-speed", Metric).show(
            speed, f"target {safety.target_speed_kmh:.1f}" if self.has_governor() else "")
        incline = "-" if s.incline_pct is None else f"{s.incline_pct:.1f}"
        self.query_one("#m-incline", Metric).show(
            incline, "" if s.incline_reported else "commanded")
        digits, unit = distance_text(s.distance_m)
        distance = self.query_one("#m-distance", Metric)
        distance.border_title = unit
        distance.show(digits)
        heart = self.query_one("#m-heart", Metric)
        heart.display = s.heart_rate_bpm is not None
        if s.heart_rate_bpm is not None:
            heart.show(str(s.heart_rate_bpm))
        in_step = s.phase == "walking" and s.step_index is not None
        self.query_one("#m-step", Metric).show(clock(s.step_remaining_s) if in_step else "-")
        squeezed = self.fit_metrics()
        self.set_text("#step-line", self.step_text())
        self.set_text("#next-line", "   ".join([self.next_text(), *squeezed]).strip())
        progress = self.query_one(ProgressBar)
        if progress.progress != round(s.walked_s):
            progress.update(progress=round(s.walked_s))
        spark = self.query_one(Sparkline)
        history = [0.0] * (HISTORY_S - len(s.history)) + list(s.history)
        if list(spark.data or []) != history:
            spark.data = history
        self.set_text("#safety-line", self.safety_text() if self.has_governor() else "")
        self.set_text("#cue-line", s.cue, layout=True)
        status = self.query_one("#status-line", Static)
        # Not twice: the banner at the top already says how the session ended.
        duplicate = s.ended and s.ended_reason != "completed" and s.status == s.end_text
        self.set_text("#status-line", "" if duplicate else s.status, layout=True)
        status.set_class(s.status_kind == "refused", "-refused")
        status.set_class(s.status_kind == "alarm", "-alarm")
        self.render_alert()
        if self.turn_screen is not None and self.turn_screen.is_mounted:
            self.turn_screen.speed_kmh = s.speed_kmh

    def fit_metrics(self) -> list[str]:
        """On a narrow screen, first drop the padding around the digits, then hide the boxes
        that still do not fit (elapsed first, then distance) and return what they said, for
        the line under the step."""
        width = self.size.width or self.app.size.width
        row = self.query_one("#metrics")
        boxes = [m for m in row.query(Metric).results(Metric)
                 if m.id != "m-heart" or m.display]
        # Decide first, then touch only what changes: flipping `display` forces a layout.
        shown = {m.id for m in boxes}

        def needed(padding: int) -> int:
            return sum(m.needed_width(padding) for m in boxes if m.id in shown)

        tight = needed(2) > width
        if row.has_class("-tight") != tight:
            row.set_class(tight, "-tight")
        squeezed: list[str] = []
        for victim, label in (("m-elapsed", "elapsed"), ("m-distance", "distance")):
            if needed(0 if tight else 2) <= width:
                break
            shown.discard(victim)
            metric = self.query_one(f"#{victim}", Metric)
            unit = f" {metric.border_title}" if victim == "m-distance" else ""
            squeezed.append(f"{label} {metric.value}{unit}")
        for metric in boxes:
            if metric.id in ("m-elapsed", "m-distance") and metric.display != (
                    metric.id in shown):
                metric.display = metric.id in shown
        return squeezed

    def set_text(self, selector: str, text: str, *, layout: bool = False) -> None:
        if self._texts.get(selector) == text:
            return
        self._texts[selector] = text
        self.query_one(selector, Static).update(text, layout=layout)

    def session_time(self) -> float:
        """Seconds since the session started, on the controller's clock (the runner's)."""
        t0 = self.feed.t0
        if t0 is None or self.host is None:
            return 0.0
        return self.host.time() - t0

    def has_governor(self) -> bool:
        return not self.live or (self.runner is not None and self.runner.governor is not None)

    def safety_text(self) -> str:
        s = self.state
        text = s.safety.describe()
        if not s.incline_reported:
            text += "  ·  incline not reported: showing the commanded value"
        return text

    def phase_text(self) -> str:
        s = self.state
        if s.ended:
            return s.end_title
        state = s.safety.state
        if state == "paused":
            return "PAUSED: P resumes"
        if state == "stopping" and s.phase == "walking":
            return "SLOWING TO A STOP"
        text = PHASE_TEXT.get(s.phase, "")
        if s.phase == "confirm" and s.turn_to:
            text = f"BELT STOPPED: TURN TO FACE {s.turn_to.upper()}, THEN ENTER"
        return text

    def step_text(self) -> str:
        s = self.state
        if s.ended and s.summary:
            return s.summary
        if s.step_index is None:
            return "Starting..."
        if s.phase in ("turning", "confirm") and s.turn_to:
            return f"TURNING AROUND to face {s.turn_to.upper()}"
        incline = f" at {s.step_incline_pct:g} %" if s.step_incline_pct else ""
        return (f"STEP {s.step_index}/{s.step_of}: {s.step_orientation.upper()} at "
                f"{s.step_speed_kmh:g} km/h{incline}, {clock(s.step_remaining_s)} left")

    def next_text(self) -> str:
        s = self.state
        if s.ended:
            if self.live and not (self.link is not None and self.link.connected):
                return "Enter: back to devices."
            return "Enter: back to programs."
        if s.phase in ("turning", "confirm"):
            return ""
        return s.next_text

    def render_alert(self) -> None:
        s = self.state
        banner = self.query_one("#alert-banner", Static)
        text = ""
        if s.ended and s.ended_reason != "completed":
            text = s.end_text
        elif s.alarm_kind is not None:
            recovered = s.alarm_kind == "telemetry_stale" and s.safety.link_state == "ok"
            if not recovered:
                text = s.alarm_message
        banner.display = bool(text)
        if text:
            self.set_text("#alert-banner", text, layout=True)


def scripted_state(program: Program, events: Iterable[SessionEvent], *, device: str = "",
                   simulated: bool = False, safety: SafetyView | None = None,
                   elapsed_s: float | None = None,
                   step_remaining_s: float | None = None) -> SessionState:
    """A SessionState built from a scripted list of events (tests and snapshots)."""
    state = SessionState(program, device=device, simulated=simulated)
    for event in events:
        state.apply(event)
    if safety is not None:
        state.safety = safety
    if elapsed_s is not None:
        state.elapsed_s = elapsed_s
    if step_remaining_s is not None:
        state.step_remaining_s = step_remaining_s
    return state
