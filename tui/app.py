"""The textual app: a treadmill controller you can read from a step away, with one big STOP key.

Screens: devices (scan, pair, connect) -> programs -> [safety checklist] -> session, with the
turn-around dialog and alerts as modals on top. The app only shows and forwards: every request
goes to the controller (tui/controller.py) and through the safety governor (DESIGN §2).
Screens never import this module: they read the app through `tui.protocol.TreadmillAppLike`
and post messages up (tui/messages.py); only the entry point (`run_tui`, the CLI) imports it.

The stop path. The controller (client, link, session runner, governor) runs on its own thread
and loop (`ControllerHost`, threaded mode), and SPACE reaches it without passing through this
app's loop: the key reader (`tui.driver.StopKeyDriver`, textual's input thread) calls the
host's thread-safe emergency stop as soon as it has parsed the key, so a render, a layout or a
message backlog here can't delay it. The key then arrives here marked `stop_sent`, and
`on_event`, the first code that sees a key, ahead of every binding, screen and widget, gives
the feedback (bell, notification). A SPACE that did not come through the key reader (another
driver, Pilot tests) is stopped from `on_event` itself, synchronously: the Stop write is
scheduled before the handler returns. The `space` Binding (priority=True) is declared as well,
so the Footer shows it and `run_action("emergency_stop")` works.

If this app hangs or crashes, the belt still stops: it sends the controller a heartbeat every
HEARTBEAT_S, and a controller that hears none for 3 s during a session stops the belt; every
way out of `run_tui` (quit, a signal, an exception) stops the belt and joins the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path
from typing import ClassVar, Literal

from textual import events, work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.driver import Driver

from safety import SafetyConfig
from safety.wording import ACTIONABLE
from treadmill import stop_signals
from treadmill.config import Config, load_config, normalize_address
from treadmill.errors import TreadmillError, describe_bluetooth_error
from treadmill.history.autoexport import AutoExport
from treadmill.history.store import HistoryStore
from treadmill.link import STOP_WAIT_S, TreadmillLink
from treadmill.mqtt.bridge import BridgeState, StatusNews
from treadmill.mqtt.settings import MqttSettings
from treadmill.programs import Program, ProgramError, catalogue, find_program
from tui import heap
from tui.controller import Controller
from tui.driver import stop_sent
from tui.host import CLOSE_TIMEOUT_S, ControllerHost, LoopFactory, Mode
from tui.messages import (
    ConnectTo,
    ControllerGone,
    LinkDown,
    LinkNotice,
    MqttRefused,
    MqttState,
    QuitRequested,
    RecordingTrouble,
    ShowDevices,
    ShowHistory,
    ShowPrograms,
    StartProgram,
    StopDone,
    WatchdogStop,
)
from tui.remote import RemoteCore, RemoteHost
from tui.screens.checklist import ChecklistScreen
from tui.screens.device import DeviceScreen
from tui.screens.history import HistoryScreen
from tui.screens.picker import ProgramPicker
from tui.screens.rating import Rating, RatingScreen
from tui.screens.session import SessionScreen
from tui.targets import SimulatedDevice, SimulatorFactory, Target
from tui.text import one_line
from tui.widgets.top_bar import TopBar

log = logging.getLogger(__name__)

type TuiMode = Literal["process", "threaded", "inline"]  # see run_tui

HEARTBEAT_S = 0.5  # how often the app tells the controller it is alive (wall clock)
GIL_SWITCH_S = 0.0005


def relayed_stop_driver() -> type[Driver] | None:
    """The key reader of a screen whose keys the controller's process read first (and stopped
    on): SPACE arrives marked as sent, for the feedback alone."""
    if os.name != "posix":
        return None
    from tui.driver import RelayedStopDriver

    return RelayedStopDriver


def stop_key_driver() -> type[Driver] | None:
    """The key reader that stops from its own thread (POSIX terminals; elsewhere textual's
    default driver, and SPACE is stopped from `on_event`)."""
    if os.name != "posix":
        return None
    from tui.driver import StopKeyDriver

    return StopKeyDriver


class TreadmillApp(App[None]):
    """Devices, programs, the session; SPACE stops the belt from anywhere."""

    CSS_PATH = "app.tcss"
    TITLE = "Backward treadmill"
    ENABLE_COMMAND_PALETTE = False
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [(0, "-narrow"), (100, "-wide")]
    VERTICAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [(0, "-short"), (32, "-tall")]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "emergency_stop", "STOP", key_display="SPACE", priority=True,
                id="emergency-stop"),
        Binding("question_mark,f1", "checklist", "Safety", key_display="?"),
        Binding("q", "quit", "Quit", priority=True),
        Binding("ctrl+q,ctrl+c", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(
        self,
        *,
        program_name: str | None = None,
        device: str | None = None,
        simulate: bool = False,
        safety: SafetyConfig | None = None,
        simulator: SimulatorFactory | None = None,
        config: Config | None = None,
        config_path: Path | None = None,
        programs: dict[str, Program] | None = None,
        auto_connect: bool = True,
        scan_timeout_s: float | None = None,
        real_time: bool = True,
        controller: Mode = "inline",
        loop_factory: LoopFactory | None = None,
        mqtt: MqttSettings | None = None,
        record: bool = False,
        auto_export: AutoExport | None = None,
        host: RemoteHost | None = None,
        simulator_available: bool = False,
    ) -> None:
        """`controller`: "threaded" gives the controller its own thread and loop (built by
        `loop_factory`; `run_tui` does this), "inline" runs it on this app's loop (tests on
        virtual time). `host`: the controller is in another process (tui/split.py), which
        reads the keys first and builds the simulator (`simulator_available`). `simulator`:
        builds the built-in simulator (the composition root's choice); without one there is no
        simulator to fall back on."""
        if host is not None:
            driver = relayed_stop_driver()
        else:
            driver = stop_key_driver() if controller == "threaded" else None
        super().__init__(driver_class=driver)
        self.config = config if config is not None else load_config(config_path)
        self.config_path = config_path
        self.safety = safety or SafetyConfig()
        self.device_arg = normalize_address(device) if device else None
        # With nothing to connect to, the built-in simulator stands in (and says so).
        self.simulated = (simulator is not None or simulator_available) and (
            simulate or (device is None and self.config.default_device is None))
        self.simulate_requested = simulate
        self.program_name = program_name
        self.auto_connect = auto_connect
        self.scan_timeout_s = scan_timeout_s
        self.real_time = real_time  # False on a simulated clock: no real Bluetooth then
        self.host: ControllerHost | RemoteHost
        self.core: Controller | RemoteCore
        if host is not None:
            host.post = self.post_message
            self.host, self.core = host, host.controller
        else:
            self.core = Controller(safety=self.safety, simulator=simulator,
                                   post=self.post_message, mqtt=mqtt, record=record,
                                   auto_export=auto_export)
            self.host = ControllerHost(self.core, mode=controller, loop_factory=loop_factory)
        self.mqtt_line = ""  # the top bar's MQTT badge ("" without a bridge)
        self._mqtt_news = StatusNews()  # which bridge states are worth a notice
        self._mqtt_troubled = False
        self.checklist_acknowledged = False
        self._asked_rating: int | None = None  # the last session asked how it felt
        self.program_problems: list[str] = []
        self._signals_seen = 0
        self._hung_up = False  # the terminal is gone (SIGHUP)
        self._signal_handlers: list[signal.Signals] = []
        if programs is None:
            found = catalogue()
            programs, self.program_problems = dict(found.programs), list(found.problems)
        self.programs = programs
        if program_name and program_name not in programs:
            # A path to a .toml file (or a name we do not know: the picker says so).
            try:
                program = find_program(program_name)
            except ProgramError as exc:
                self.program_problems.append(str(exc))
            else:
                self.programs = {**programs, program.name: program}
                self.program_name = program.name

    # ---- what the screens read (plain attribute reads of the controller's state) -----------

    @property
    def link(self) -> TreadmillLink | None:
        return self.core.link

    @property
    def sim(self) -> SimulatedDevice | None:
        return self.core.sim

    @property
    def in_session(self) -> bool:
        return any(isinstance(screen, SessionScreen) for screen in self.screen_stack)

    # ---- start-up and shutdown ----------------------------------------------------------------

    async def on_mount(self) -> None:
        self.install_signal_handlers()
        self.host.start()
        self.set_interval(HEARTBEAT_S, self.host.heartbeat)
        if self.simulated:
            try:
                await asyncio.wrap_future(self.host.call(self.core.open_simulator))
            except TreadmillError as exc:
                self.simulated = False
                self.notify(one_line(exc), title="No simulator", severity="error",
                            markup=False, timeout=10)
        self.push_screen(DeviceScreen())
        self.call_after_refresh(heap.settle)  # nothing moves yet: the start-up heap is kept
        for problem in self.program_problems:
            self.notify(one_line(problem), severity="warning", markup=False)
        target = self.initial_target()
        if self.auto_connect and target is not None:
            self.connect_to(target)

    def initial_target(self) -> Target | None:
        if self.simulated:
            return self.sim_target()
        address = self.device_arg or self.config.default_device
        if address is None:
            return None
        paired = self.config.find(address)
        return Target(name=(paired.name if paired and paired.name else address), address=address)

    def sim_target(self) -> Target | None:
        if self.sim is None:
            return None
        return Target(name=self.sim.name, address=self.sim.address, simulated=True)

    async def on_unmount(self) -> None:
        await self.shutdown_treadmill()
        self.remove_signal_handlers()

    def install_signal_handlers(self) -> None:
        """Loop signal handlers (they run as ordinary callbacks on the app's loop, and call the
        same thread-safe stop SPACE does). Without them SIGHUP/SIGTERM/SIGQUIT would kill the
        process with the belt still running."""
        loop = asyncio.get_running_loop()
        self._signal_handlers += stop_signals.add_handlers(loop, self.on_stop_signal)

    def remove_signal_handlers(self) -> None:
        with contextlib.suppress(RuntimeError):
            stop_signals.remove_handlers(asyncio.get_running_loop(), self._signal_handlers)
        self._signal_handlers.clear()

    def on_stop_signal(self, sig: signal.Signals) -> None:
        """First signal: Stop now, then quit once the Stop is written (bounded, like Quit).
        A second one: quit without waiting any longer."""
        self._signals_seen += 1
        log.warning("%s: stopping the belt and quitting", signal.Signals(sig).name)
        if self._signals_seen == 1:
            self.emergency_stop(feedback=False)
            if sig == getattr(signal, "SIGHUP", None):
                self.terminal_gone()
            self.quit_after()
        elif self._hung_up:
            os._exit(128 + int(sig))  # nothing to restore on a terminal that is gone
        else:
            self.exit()

    def terminal_gone(self) -> None:
        """The terminal hung up: from now on textual's writes would fail (EIO), and its output
        thread dies on the first one, after which a full output queue blocks the app for good.
        Point stdin/stdout/stderr at /dev/null so the app can still finish the stop."""
        self._hung_up = True
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            os.close(devnull)

    async def shutdown_treadmill(self) -> None:
        """Leave the belt stopped and the link closed, whatever way the app exits."""
        if not self.host.started:
            return  # never started
        with contextlib.suppress(Exception, asyncio.CancelledError):
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await asyncio.wrap_future(self.host.call(self.core.shutdown))

    # ---- the stop path ----------------------------------------------------------------------

    def stop_from_any_thread(self) -> None:
        """The key reader's way in (textual's input thread): thread-safe, returns at once."""
        self.host.emergency_stop()

    async def on_event(self, event: events.Event) -> None:
        # SPACE is handled here, ahead of every binding, screen and widget; the key reader has
        # usually sent the Stop already, from its own thread.
        if isinstance(event, events.Key) and event.key == "space" and not event.is_forwarded:
            self.emergency_stop(sent=stop_sent(event))
            return
        await super().on_event(event)

    def action_emergency_stop(self) -> None:
        self.emergency_stop()

    def emergency_stop(self, *, feedback: bool = True, sent: bool = False) -> None:
        """Stop the belt now (unless the key reader already did). Inline, synchronous: the
        write is scheduled before this returns; threaded, handed to the controller's loop."""
        if not sent:
            self.host.emergency_stop()
        if not feedback:
            return
        # Everything below is feedback, after the write is on its way.
        self.bell()
        if not self.core.can_stop:
            self.notify("Not connected to a treadmill: the app can't stop the belt. "
                        f"{ACTIONABLE.capitalize()}.",
                        title="STOP", severity="error", timeout=8)
        elif not self.in_session:
            self.notify("Stop sent to the treadmill.", title="STOP", severity="warning")

    def on_link_notice(self, message: LinkNotice) -> None:
        self.notify(message.text, title="Bluetooth", markup=False)

    def on_stop_done(self, message: StopDone) -> None:
        outcome = message.outcome
        if outcome.ok or self.link is None:
            return
        speed = self.link.belt_speed_kmh
        if speed is not None and speed <= 0.05:
            # Refused (typically: no control outside a session) while the belt is still.
            detail = one_line(outcome.detail)
            self.notify(f"The belt is not moving; the treadmill answered: {detail}",
                        title="STOP", severity="information", markup=False)
            return
        self.bell()
        self.notify(f"The treadmill did not accept Stop ({one_line(outcome.detail)}): "
                    f"{ACTIONABLE}.", title="STOP", severity="error",
                    timeout=10, markup=False)

    def on_quit_requested(self, message: QuitRequested) -> None:
        """A signal reached the controller's process, which has sent Stop: leave as after a
        signal here."""
        self._signals_seen += 1
        self.quit_after()

    def on_controller_gone(self, message: ControllerGone) -> None:
        self.exit(message=f"{one_line(message.reason)}: if the belt is moving, {ACTIONABLE}.")

    def on_watchdog_stop(self, message: WatchdogStop) -> None:
        self.bell()
        self.notify(one_line(message.reason), title="STOP", severity="error", timeout=10,
                    markup=False)

    # ---- quitting ---------------------------------------------------------------------------

    async def action_quit(self) -> None:
        self.emergency_stop(feedback=False)
        self.quit_after()

    @work(group="quit", exclusive=True)
    async def quit_after(self) -> None:
        """Wait (briefly) for the Stop to be written and the session to end, then exit."""
        with contextlib.suppress(Exception, asyncio.CancelledError):
            async with asyncio.timeout(STOP_WAIT_S + 0.5):
                await asyncio.wrap_future(self.host.call(self.core.settle, STOP_WAIT_S))
        if self._hung_up:
            # textual's orderly exit restores the terminal, and may block writing to one that
            # is gone: leave the treadmill stopped and the link closed, then go.
            await self.shutdown_treadmill()
            os._exit(128 + int(signal.SIGHUP))
        self.exit()

    # ---- screens ------------------------------------------------------------------------------

    def action_checklist(self) -> None:
        def done(acknowledged: bool | None) -> None:
            if acknowledged:
                self.checklist_acknowledged = True

        if not isinstance(self.screen, ChecklistScreen):
            self.push_screen(ChecklistScreen(required=False), done)

    def show_devices(self) -> None:
        """Back to the device screen (the bottom of the stack)."""
        while len(self.screen_stack) > 2 and not isinstance(self.screen, DeviceScreen):
            self.pop_screen()

    def show_programs(self) -> None:
        leaving_session = self.in_session
        self.show_devices()
        self.push_screen(ProgramPicker())
        if not self.core.session_active:
            self.call_after_refresh(heap.settle)  # between sessions: the one full collection
        if leaving_session:
            self.ask_rating()

    def ask_rating(self) -> None:
        """After a recorded session: knee pain and effort (both optional), into the history."""
        session_id = self.core.last_session_id
        if not self.core.record or session_id is None or session_id == self._asked_rating:
            return
        self._asked_rating = session_id

        def done(rating: Rating | None) -> None:
            if rating is not None and rating != (None, None):
                self.store_rating(session_id, *rating)

        self.push_screen(RatingScreen(), done)

    @work(thread=True, group="rating")
    def store_rating(self, session_id: int, pain: int | None, effort: int | None) -> None:
        try:
            with HistoryStore() as store:
                store.rate(session_id, pain=pain, effort=effort)
        except Exception as exc:  # one line, never a traceback
            log.debug("rating failed", exc_info=True)
            self.call_from_thread(self.notify, f"The rating was not saved: {one_line(exc)}",
                                  title="History", severity="warning", markup=False)

    def on_show_devices(self, message: ShowDevices) -> None:
        self.show_devices()

    def on_show_programs(self, message: ShowPrograms) -> None:
        self.show_programs()

    def on_show_history(self, message: ShowHistory) -> None:
        self.push_screen(HistoryScreen())

    # ---- connecting ---------------------------------------------------------------------------

    def on_connect_to(self, message: ConnectTo) -> None:
        self.connect_to(message.target)

    @work(group="connect", exclusive=True)
    async def connect_to(self, target: Target) -> None:
        link = self.link
        if link is not None and link.address == target.address and link.connected:
            self.show_programs()
            return
        if not target.simulated and not self.real_time:
            self.notify("Real Bluetooth needs real time: run without --speedup.",
                        severity="error")
            return
        self.set_device_status(f"Connecting to {target.name} ({target.address})...")
        try:
            link = await asyncio.wrap_future(self.host.call(self.core.connect, target))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # every failure is one line, never a traceback
            log.debug("connect failed", exc_info=True)
            message = one_line(describe_bluetooth_error(exc, target.address))
            self.set_device_status(f"Not connected: {message}")
            self.notify(message, title="Could not connect", severity="error", markup=False,
                        timeout=10)
            self.show_devices()
            return
        self.set_device_status(f"Connected to {link.name}")
        if isinstance(self.screen, DeviceScreen):
            self.show_programs()

    def set_device_status(self, text: str) -> None:
        for screen in self.screen_stack:
            if isinstance(screen, DeviceScreen):
                screen.set_status(text)

    def on_mqtt_state(self, message: MqttState) -> None:
        status = message.status
        self.mqtt_line = status.badge()
        for screen in self.screen_stack:
            for bar in screen.query(TopBar):
                bar.mqtt = self.mqtt_line
        line = self._mqtt_news(status)  # a new reason, not every retry
        if line is None:
            return
        if status.state is BridgeState.DOWN:
            self._mqtt_troubled = True
            self.notify(line.removeprefix("MQTT: "), title="MQTT", severity="warning",
                        markup=False, timeout=8)
        elif status.state is BridgeState.CONNECTED and self._mqtt_troubled:
            self._mqtt_troubled = False
            self.notify(line, title="MQTT", markup=False)

    def on_recording_trouble(self, message: RecordingTrouble) -> None:
        self.notify(one_line(message.message), title="History",
                    severity="information" if message.severity == "information" else "warning",
                    markup=False, timeout=10)

    def on_mqtt_refused(self, message: MqttRefused) -> None:
        self.notify(f"Refused: {one_line(message.reason)}", title="MQTT", severity="warning",
                    markup=False)

    def on_link_down(self, message: LinkDown) -> None:
        if message.reason == "closed":
            return
        self.bell()
        self.notify("The treadmill dropped the Bluetooth link. If the belt is moving, "
                    f"{ACTIONABLE}.", title="LINK LOST", severity="error",
                    timeout=10)
        self.set_device_status("Link lost: connect again")
        if not self.in_session:
            self.show_devices()

    # ---- sessions -----------------------------------------------------------------------------

    def on_start_program(self, message: StartProgram) -> None:
        self.start_program(message.program)

    def start_program(self, program: Program) -> None:
        """The picker's Enter: checklist first when walking backwards for the first time."""
        link = self.link
        if link is None or not link.connected:
            self.notify("Not connected: choose a treadmill first.", severity="error")
            self.show_devices()
            return

        def go(acknowledged: bool | None = True) -> None:
            if not acknowledged:
                return
            self.checklist_acknowledged = self.checklist_acknowledged or program.backward_s > 0
            self.push_screen(SessionScreen(program, link, self.safety, host=self.host))
            self.call_after_refresh(heap.freeze)  # the session's screen lives till its end

        if program.backward_s > 0 and not self.checklist_acknowledged:
            self.push_screen(ChecklistScreen(required=True), go)
        else:
            go()


def run_tui(
    *,
    program_name: str | None = None,
    device: str | None = None,
    simulate: bool = False,
    safety: SafetyConfig | None = None,
    simulator: SimulatorFactory | None = None,
    loop_factory: LoopFactory | None = None,
    controller: TuiMode = "threaded",
    mqtt: MqttSettings | None = None,
    record: bool = True,
    suggested: Program | None = None,
    auto_export: AutoExport | None = None,
) -> None:
    """Open the TUI (blocking until the person quits). The composition root (the CLI) passes
    what it chose: `simulator` builds the built-in simulator, `loop_factory` the event loops
    (None: the wall clock; a simulated clock under --speedup, and then no real Bluetooth).
    Whatever way this returns or raises, the belt is left stopped and the controller's thread
    joined (bounded)."""
    config = load_config()
    if device and simulate:
        raise TreadmillError("--device and --simulate can't be used together: pick one")
    if controller in ("threaded", "process"):
        # The key reader and the controller each take the GIL on the way to a Stop; a thread
        # waiting for it waits up to the switch interval (5 ms by default) while the screen's
        # thread is busy rendering. A tenth of that keeps both hand-overs short.
        sys.setswitchinterval(GIL_SWITCH_S)
    programs = None
    if suggested is not None:  # `session next`: the plan's session, preselected
        found = catalogue()
        programs = {**found.programs, suggested.name: suggested}
        program_name = suggested.name
    if controller == "process":
        from tui.split import AppSettings, run_split

        core = Controller(safety=safety or SafetyConfig(), simulator=simulator, mqtt=mqtt,
                          record=record, auto_export=auto_export)
        run_split(core, AppSettings(program_name=program_name, device=device,
                                    simulate=simulate, safety=core.safety, config=config,
                                    programs=programs, real_time=loop_factory is None,
                                    simulator_available=simulator is not None,
                                    log_level=logging.getLogger().level),
                  loop_factory=loop_factory)
        return
    app = TreadmillApp(program_name=program_name, device=device, simulate=simulate,
                       safety=safety, simulator=simulator, config=config, programs=programs,
                       real_time=loop_factory is None, controller=controller,
                       loop_factory=loop_factory, mqtt=mqtt, record=record,
                       auto_export=auto_export)
    try:
        if loop_factory is None or controller == "threaded":
            # Threaded, the app's loop paces nothing but the screen: human (wall-clock) time,
            # four redraws a second at most; the controller's loop has the simulated clock.
            app.run()
        else:
            with asyncio.Runner(loop_factory=loop_factory) as runner:
                runner.run(app.run_async())
    finally:
        app.host.close()


__all__ = ["TreadmillApp", "run_tui"]

