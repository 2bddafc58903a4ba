"""The textual app: a treadmill controller you can read from a step away, with one big STOP key.

Screens: devices (scan, pair, connect) -> programs -> [safety checklist] -> session, with the
turn-around dialog and alerts as modals on top. The app only shows and forwards: every request
goes to the session runner and through the safety governor (DESIGN §2).

The stop path. SPACE is caught in `on_event`, the first code that sees a key the terminal sent,
before textual looks up bindings or forwards it to a screen or a focused widget; its handler
calls `SessionRunner.emergency_stop()` (or, between sessions, `TreadmillLink.emergency_stop()`)
synchronously, which schedules the Stop write before the handler returns. Nothing on that path
awaits, posts a message or renders. The `space` Binding (priority=True) is declared as well, so
the Footer shows it and `run_action("emergency_stop")` works; the interception in `on_event`
guards against textual dropping even priority bindings for keys a focused Input would consume.
The app's own message queue stays short because high-rate telemetry never becomes a message
(see screens/session.py), and no app-level handler ever awaits IO (that runs in workers).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from bleak.backends.device import BLEDevice
from textual import events, work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.worker import Worker, WorkerCancelled, WorkerFailed

from safety import SafetyConfig
from treadmill.client import FtmsClient
from treadmill.config import Config, load_config, normalize_address
from treadmill.connection import SimulatorOptions, make_simulator
from treadmill.errors import TreadmillError, describe_bluetooth_error
from treadmill.programs import Program, ProgramError, catalogue, find_program
from tui.link import STOP_WAIT_S, StopOutcome, TreadmillLink

if TYPE_CHECKING:
    from simulators import VirtualTreadmill
    from treadmill.session import SessionRunner
    from tui.screens.session import SessionScreen

log = logging.getLogger(__name__)

# The simulator always gets this address, so screens (and their snapshots) look the same on
# every run. 0xF2...: a random static address, never a real device's public one.
SIM_ADDRESS = "F2:5E:55:10:4E:01"
SIM_SCAN_S = 1.0
REAL_SCAN_S = 5.0
# A TUI waiting for keys can't run "as fast as possible" (the clock would race while nothing
# is on screen to see); --speedup max becomes this.
MAX_TUI_SPEEDUP = 20.0
# Every signal that means "go away" (a closed terminal is SIGHUP) stops the belt before the
# app exits, as Quit does (DESIGN §5). SIGINT too: in raw mode Ctrl-C is a key, but `kill -INT`
# still arrives as a signal.
STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGHUP", "SIGTERM", "SIGQUIT", "SIGINT")
    if hasattr(signal, name)
)


def one_line(text: str) -> str:
    return " ".join(str(text).split())


@dataclass(frozen=True)
class Target:
    """A treadmill the person can connect to."""

    name: str
    address: str
    simulated: bool = False
    device: BLEDevice | None = None


class LinkDown(Message):
    """The connected treadmill dropped the link while no session was running."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


class StopDone(Message):
    """An idle Stop (no session running) was answered, or failed."""

    def __init__(self, outcome: StopOutcome) -> None:
        super().__init__()
        self.outcome = outcome


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
        sim_options: SimulatorOptions | None = None,
        config: Config | None = None,
        config_path: Path | None = None,
        programs: dict[str, Program] | None = None,
        auto_connect: bool = True,
        scan_timeout_s: float | None = None,
        real_time: bool = True,
    ) -> None:
        super().__init__()
        self.config = config if config is not None else load_config(config_path)
        self.config_path = config_path
        self.safety = safety or SafetyConfig()
        self.sim_options = sim_options or SimulatorOptions()
        self.device_arg = normalize_address(device) if device else None
        # With nothing to connect to, the built-in simulator stands in (and says so).
        self.simulated = simulate or (device is None and self.config.default_device is None)
        self.simulate_requested = simulate
        self.program_name = program_name
        self.auto_connect = auto_connect
        self.scan_timeout_s = scan_timeout_s
        self.real_time = real_time  # False on a simulated clock: no real Bluetooth then
        self.sim: VirtualTreadmill | None = None
        self.link: TreadmillLink | None = None
        self.runner: SessionRunner | None = None  # the session running right now, if any
        self.session_screen: SessionScreen | None = None
        self.checklist_acknowledged = False
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

    # ---- start-up and shutdown ----------------------------------------------------------------

    def on_mount(self) -> None:
        from tui.screens.device import DeviceScreen

        self.install_signal_handlers()
        if self.simulated:
            self.sim = make_simulator(self.sim_options, SIM_ADDRESS)
        self.push_screen(DeviceScreen())
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
        """Loop signal handlers (they run as ordinary callbacks on the app's loop, so the stop
        path is the same synchronous one SPACE takes). Without them SIGHUP/SIGTERM/SIGQUIT
        would kill the process with the belt still running."""
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            # Not on Windows' loop, nor off the main thread (tests running the app in one).
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self.on_stop_signal, sig)
                self._signal_handlers.append(sig)

    def remove_signal_handlers(self) -> None:
        with contextlib.suppress(RuntimeError):
            loop = asyncio.get_running_loop()
            for sig in self._signal_handlers:
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.remove_signal_handler(sig)
        self._signal_handlers.clear()

    def on_stop_signal(self, sig: signal.Signals) -> None:
        """First signal: Stop now, then quit once the Stop is written (bounded, like Quit).
        A second one: quit without waiting any longer."""
        self._signals_seen += 1
        log.warning("%s: stopping the belt and quitting", signal.Signals(sig).name)
        if self._signals_seen == 1:
            waits = self.emergency_stop(feedback=False)
            if sig == getattr(signal, "SIGHUP", None):
                self.terminal_gone()
            self.quit_after(waits)
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
        session = self.session_screen
        if session is not None:
            worker = session.session_worker
            if worker is not None and not worker.is_finished:
                self.emergency_stop(feedback=False)
                await wait_for_worker(worker, STOP_WAIT_S + 0.5)
        link, self.link = self.link, None
        if link is not None:
            await link.close()
        if self.sim is not None:
            self.sim.close()

    # ---- the stop path ----------------------------------------------------------------------

    async def on_event(self, event: events.Event) -> None:
        # The fast path: SPACE is handled here, ahead of every binding, screen and widget.
        if isinstance(event, events.Key) and event.key == "space" and not event.is_forwarded:
            self.action_emergency_stop()
            return
        await super().on_event(event)

    def action_emergency_stop(self) -> None:
        self.emergency_stop()

    def emergency_stop(self, *, feedback: bool = True) -> list[Any]:
        """Stop the belt now. Synchronous: the write is scheduled before this returns.
        Returns what to wait for if the caller wants the write finished (Quit does)."""
        waits: list[Any] = []
        runner = self.runner
        sent = False
        if runner is not None and runner.governor is not None:
            runner.emergency_stop()  # the governor approves Stop; its write starts now
            sent = True
        else:
            if self.session_screen is not None:
                self.session_screen.abort_start()  # a session about to start never will
            task = self.link.emergency_stop() if self.link is not None else None
            if task is not None:
                waits.append(task)
                sent = True
        # Everything below is feedback, after the write is on its way.
        if self.session_screen is not None and self.session_screen.session_worker is not None:
            waits.append(self.session_screen.session_worker)
        if feedback:
            self.bell()
            if not sent:
                self.notify("Not connected to a treadmill: the app can't stop the belt. "
                            "Use the console STOP or the safety key.",
                            title="STOP", severity="error", timeout=8)
            elif self.session_screen is None:
                self.notify("Stop sent to the treadmill.", title="STOP", severity="warning")
        return waits

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
        self.notify(f"The treadmill did not accept Stop ({one_line(outcome.detail)}): use the "
                    "console STOP or the safety key.", title="STOP", severity="error",
                    timeout=10, markup=False)

    # ---- quitting ---------------------------------------------------------------------------

    async def action_quit(self) -> None:
        waits = self.emergency_stop(feedback=False)
        self.quit_after(waits)

    @work(group="quit", exclusive=True)
    async def quit_after(self, waits: list[Any]) -> None:
        """Wait (briefly) for the Stop to be written, then exit."""
        pending = [w.wait() if isinstance(w, Worker) else w for w in waits]
        if pending:
            tasks = [asyncio.ensure_future(p) for p in pending]
            done, _ = await asyncio.wait(tasks, timeout=STOP_WAIT_S)
            for task in tasks:
                if task in done:
                    with contextlib.suppress(Exception, asyncio.CancelledError):
                        task.result()
                else:
                    task.cancel()
        if self._hung_up:
            # textual's orderly exit restores the terminal, and may block writing to one that
            # is gone: leave the treadmill stopped and the link closed, then go.
            await self.shutdown_treadmill()
            os._exit(128 + int(signal.SIGHUP))
        self.exit()

    # ---- screens ------------------------------------------------------------------------------

    def action_checklist(self) -> None:
        from tui.screens.checklist import ChecklistScreen

        if not isinstance(self.screen, ChecklistScreen):
            self.push_screen(ChecklistScreen(required=False))

    def show_devices(self) -> None:
        """Back to the device screen (the bottom of the stack)."""
        from tui.screens.device import DeviceScreen

        while len(self.screen_stack) > 2 and not isinstance(self.screen, DeviceScreen):
            self.pop_screen()

    def show_programs(self) -> None:
        from tui.screens.picker import ProgramPicker

        self.show_devices()
        self.push_screen(ProgramPicker())

    # ---- connecting ---------------------------------------------------------------------------

    @work(group="connect", exclusive=True)
    async def connect_to(self, target: Target) -> None:
        from tui.screens.device import DeviceScreen

        if self.link is not None and self.link.address == target.address and self.link.connected:
            self.show_programs()
            return
        await self.disconnect()
        if target.simulated:
            if self.sim is None:
                self.sim = make_simulator(self.sim_options, SIM_ADDRESS)
            client = FtmsClient(self.sim.ble_device, backend=self.sim.client_backend)
        else:
            if not self.real_time:
                self.notify("Real Bluetooth needs real time: run without --speedup.",
                            severity="error")
                return
            client = FtmsClient(target.device or target.address)
        link = TreadmillLink(
            client, safety=self.safety, simulated=target.simulated, label=target.name,
            on_link_lost=lambda reason: self.post_message(LinkDown(reason)),
            on_stop_outcome=lambda outcome: self.post_message(StopDone(outcome)),
        )
        self.set_device_status(f"Connecting to {target.name} ({target.address})...")
        try:
            await link.connect()
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await client.disconnect()
            raise
        except Exception as exc:  # every failure is one line, never a traceback
            log.debug("connect failed", exc_info=True)
            with contextlib.suppress(Exception):
                await client.disconnect()
            message = one_line(describe_bluetooth_error(exc, target.address))
            self.set_device_status(f"Not connected: {message}")
            self.notify(message, title="Could not connect", severity="error", markup=False,
                        timeout=10)
            self.show_devices()
            return
        self.link = link
        self.set_device_status(f"Connected to {link.name}")
        if isinstance(self.screen, DeviceScreen):
            self.show_programs()

    async def disconnect(self) -> None:
        link, self.link = self.link, None
        if link is not None:
            await link.close()

    def set_device_status(self, text: str) -> None:
        from tui.screens.device import DeviceScreen

        for screen in self.screen_stack:
            if isinstance(screen, DeviceScreen):
                screen.set_status(text)

    def on_link_down(self, message: LinkDown) -> None:
        if message.reason == "closed":
            return
        self.bell()
        self.notify("The treadmill dropped the Bluetooth link. If the belt is moving, use the "
                    "console STOP or the safety key.", title="LINK LOST", severity="error",
                    timeout=10)
        self.set_device_status("Link lost: connect again")
        if self.session_screen is None:
            self.show_devices()

    # ---- sessions -----------------------------------------------------------------------------

    def start_program(self, program: Program) -> None:
        """The picker's Enter: checklist first when walking backwards for the first time."""
        from tui.screens.checklist import ChecklistScreen
        from tui.screens.session import SessionScreen

        link = self.link
        if link is None or not link.connected:
            self.notify("Not connected: choose a treadmill first.", severity="error")
            self.show_devices()
            return

        def go(acknowledged: bool | None = True) -> None:
            if not acknowledged:
                return
            self.checklist_acknowledged = self.checklist_acknowledged or program.backward_s > 0
            self.push_screen(SessionScreen(program, link, self.safety))

        if program.backward_s > 0 and not self.checklist_acknowledged:
            self.push_screen(ChecklistScreen(required=True), go)
        else:
            go()


async def wait_for_worker(worker: Worker[Any], timeout: float) -> None:
    with contextlib.suppress(WorkerCancelled, WorkerFailed, TimeoutError, asyncio.CancelledError):
        async with asyncio.timeout(timeout):
            await worker.wait()


def run_tui(
    *,
    program_name: str | None = None,
    device: str | None = None,
    simulate: bool = False,
    safety: SafetyConfig | None = None,
    sim_options: SimulatorOptions | None = None,
    speedup: float | None = 1.0,
) -> None:
    """Open the TUI (blocking until the person quits).

    speedup: the simulated clock's rate (the CLI allows it only with --simulate). The app then
    runs on `VirtualTimeLoop(speedup)`: loop time runs that many times faster, key input and
    drawing still work in real time. None ("max") becomes MAX_TUI_SPEEDUP.
    """
    config = load_config()
    if device and simulate:
        raise TreadmillError("--device and --simulate can't be used together: pick one")
    factor = MAX_TUI_SPEEDUP if speedup is None else speedup
    app = TreadmillApp(program_name=program_name, device=device, simulate=simulate,
                       safety=safety, sim_options=sim_options, config=config,
                       real_time=factor == 1.0)
    if app.simulated:
        # A bad profile or fault name: one line, before the TUI takes the terminal.
        make_simulator(app.sim_options, SIM_ADDRESS).close()
    if factor == 1.0:
        app.run()
        return
    from simulators.virtual_time import VirtualTimeLoop

    with asyncio.Runner(loop_factory=lambda: VirtualTimeLoop(factor)) as runner:
        runner.run(app.run_async())
