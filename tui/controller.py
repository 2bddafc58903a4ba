"""The TUI's controller core: the simulator, the link, the session runner and the stop path,
all on one event loop that no screen shares in the threaded mode (tui/host.py).

Everything here runs on the controller's loop; the app reaches it only through the
`ControllerHost` (thread-safe calls) and reads its state as plain attributes. What the
controller has to say on its own (a dropped link, an idle Stop's answer, a watchdog stop) is
posted to the app as a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from textual.message import Message

from safety import Pause, Resume, SafetyConfig, Source
from treadmill import session_events as ev
from treadmill.client import FtmsClient
from treadmill.errors import TreadmillError
from treadmill.events import TelemetrySample
from treadmill.history.autoexport import AutoExport
from treadmill.history.recorder import Recorder
from treadmill.link import STOP_WAIT_S, TreadmillLink
from treadmill.mqtt.attach import RemoteTarget, attach, detach, identity, start_bridge
from treadmill.mqtt.bridge import BridgeStatus, MqttBridge
from treadmill.mqtt.commands import RemoteCommand
from treadmill.mqtt.settings import MqttSettings
from treadmill.programs import Program
from treadmill.scan import FoundTreadmill, scan
from treadmill.session import SessionEvent, SessionResult, SessionRunner
from tui.feed import SessionFeed
from tui.messages import (
    LinkDown,
    LinkNotice,
    MqttRefused,
    MqttState,
    RecordingTrouble,
    StopDone,
    WatchdogStop,
)
from tui.targets import SimulatedDevice, SimulatorFactory, Target

log = logging.getLogger(__name__)

HEARTBEAT_TIMEOUT_S = 3.0  # no heartbeat from the screen this long (wall clock) during a session
HEARTBEAT_CHECK_S = 0.25  # how often the controller looks (wall-clock seconds)


class Controller:
    """The one controller core the TUI attaches to (DESIGN §2)."""

    def __init__(
        self,
        *,
        safety: SafetyConfig,
        simulator: SimulatorFactory | None = None,
        post: Callable[[Message], object] = lambda message: None,
        mqtt: MqttSettings | None = None,
        record: bool = False,
        auto_export: AutoExport | None = None,
    ) -> None:
        self.safety = safety
        self.record = record  # keep every session in the history (treadmill/history/)
        self.auto_export = auto_export  # [export] auto: files for every finished session
        self.mqtt = mqtt
        self.bridge: MqttBridge | None = None  # one per connected treadmill, when configured
        self._remote = RemoteTarget(idle=self._remote_between_sessions)
        self._make_simulator = simulator
        self.post = post
        self.sim: SimulatedDevice | None = None
        self.link: TreadmillLink | None = None
        self.runner: SessionRunner | None = None  # the session running right now, if any
        self.starting = False  # a session was asked for and its runner is not there yet
        self._abort_start = False
        self._session_task: asyncio.Task[Any] | None = None
        self.last_heartbeat = time.monotonic()
        self.watchdog_reason: str | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._last_recorder: Recorder | None = None  # the last recorded session's recorder

    # ---- plain reads for the app ----------------------------------------------------------

    @property
    def session_active(self) -> bool:
        return self.starting or self.runner is not None

    @property
    def last_session_id(self) -> int | None:
        """The history id of the last session recorded (None: none, or not begun)."""
        recorder = self._last_recorder
        return recorder.session_id if recorder is not None else None

    @property
    def can_stop(self) -> bool:
        """Whether a Stop can reach the treadmill right now."""
        runner = self.runner
        if runner is not None and runner.governor is not None:
            return True
        return self.link is not None and self.link.can_stop

    # ---- the stop path --------------------------------------------------------------------

    def emergency_stop(self) -> None:
        """Stop now (controller loop). Synchronous: the write is scheduled before this returns,
        ahead of anything queued; nothing on this path awaits, posts or renders."""
        runner = self.runner
        if runner is not None and runner.governor is not None:
            runner.emergency_stop()  # the governor approves Stop; its write starts now
            return
        if self.starting:
            self._abort_start = True  # a session about to start never will
        if self.link is not None:
            self.link.emergency_stop()

    def submit(self, make_request: Callable[[float], Any]) -> None:
        """A key's request, built for the current time, to the governor (refusals come back as
        session events)."""
        runner = self.runner
        if runner is not None and runner.governor is not None:
            runner.submit(make_request)

    def toggle_pause(self) -> None:
        """Pause, or resume a pause: decided here, at the governor's state right now."""
        runner = self.runner
        if runner is not None and runner.governor is not None:
            paused = str(runner.governor.state) == "paused"
            runner.submit(Resume if paused else Pause)

    def confirm_turned(self) -> None:
        runner = self.runner
        if runner is not None and runner.waiting_for_confirmation:
            runner.confirm_turned()

    # ---- the screen's heartbeat -------------------------------------------------------------

    def heartbeat(self) -> None:
        self.last_heartbeat = time.monotonic()  # a plain write: safe from any thread

    def start_watchdog(self, timeout_s: float = HEARTBEAT_TIMEOUT_S) -> None:
        if self._watchdog is None:
            self.last_heartbeat = time.monotonic()
            self._watchdog = asyncio.get_running_loop().create_task(
                self._watch_heartbeat(timeout_s), name="heartbeat-watchdog")

    async def _watch_heartbeat(self, timeout_s: float) -> None:
        """A screen that stops answering (a crash, a hang, a terminal that stopped reading) must
        not leave a belt running under a controller nobody watches: Stop, and say why."""
        loop = asyncio.get_running_loop()
        # Heartbeats are wall-clock; a simulated clock (--speedup) runs faster, so look as often
        # in wall-clock terms.
        check = HEARTBEAT_CHECK_S * (getattr(loop, "speedup", None) or 1.0)
        fired_for: object = None
        while True:
            await asyncio.sleep(check)
            silent = time.monotonic() - self.last_heartbeat
            session = self.runner or (self._session_task if self.starting else None)
            if session is None or silent <= timeout_s or fired_for is session:
                continue
            fired_for = session
            reason = (f"the screen stopped responding for {silent:.1f} s during a session: "
                      "the belt was stopped")
            self.watchdog_reason = reason
            log.warning("%s", reason)
            self.emergency_stop()
            self.post(WatchdogStop(reason))

    # ---- the treadmill ----------------------------------------------------------------------

    async def open_simulator(self) -> SimulatedDevice | None:
        """Power the built-in simulator on (on this loop: its clock is this loop's)."""
        if self.sim is None and self._make_simulator is not None:
            self.sim = self._make_simulator()
        return self.sim

    async def scan(self, timeout: float, simulated: bool) -> list[FoundTreadmill]:
        backend = None
        if simulated:
            sim = await self.open_simulator()
            backend = sim.scanner_backend if sim is not None else None
        return await scan(timeout, backend=backend)

    async def connect(self, target: Target) -> TreadmillLink:
        """Connect (dropping any other link first); raises on failure, with the client closed."""
        await self.disconnect()
        if target.simulated:
            sim = await self.open_simulator()
            if sim is None:
                raise TreadmillError("the simulator is not available")
            client = sim.client()
        else:
            client = FtmsClient(target.device or target.address)
        client.on_notice = lambda text: self.post(LinkNotice(text))  # "pairing now", ...
        link = TreadmillLink(
            client, safety=self.safety, simulated=target.simulated, label=target.name,
            on_link_lost=lambda reason: self._link_lost(reason),
            on_stop_outcome=lambda outcome: self.post(StopDone(outcome)),
        )
        try:
            await link.connect()
        except BaseException:
            with contextlib.suppress(Exception):
                await client.disconnect()
            raise
        self.link = link
        if self.mqtt is not None:
            self._start_bridge(link, self.mqtt)
        return link

    async def disconnect(self) -> None:
        link, self.link = self.link, None
        bridge, self.bridge = self.bridge, None
        if bridge is not None:
            bridge.set_link(False)
            await bridge.aclose()  # bounded: "offline" goes out, briefly
        if link is not None:
            await link.close()

    def _recorder(self, program: Program, link: TreadmillLink, runner: SessionRunner) -> Recorder:
        recorder = Recorder(
            program=program.name, title=program.title, device=link.name,
            simulated=link.simulated,
            on_warning=lambda message: self.post(RecordingTrouble(message)),
            auto_export=self.auto_export,
            on_exported=lambda paths: self.post(RecordingTrouble(
                "Exported " + ", ".join(str(p) for p in paths), severity="information")))
        recorder.attach(runner.bus)
        return recorder

    # ---- MQTT (its own thread: nothing here waits for the broker) ---------------------------

    def _start_bridge(self, link: TreadmillLink, settings: MqttSettings) -> None:
        bridge = start_bridge(settings, identity(link.info, link.address), self._remote,
                              asyncio.get_running_loop(),
                              on_status=lambda status: self.post(MqttState(status)),
                              on_refused=lambda reason: self.post(MqttRefused(reason)))

        def on_sample(sample: TelemetrySample) -> None:
            bridge.idle_sample(sample.speed_kmh, sample.incline_pct)

        link.sample_listeners.append(on_sample)
        bridge.set_link(True)
        self.bridge = bridge

    def _link_lost(self, reason: str) -> None:
        if self.bridge is not None:
            self.bridge.set_link(False)
        self.post(LinkDown(reason))

    def _remote_between_sessions(self, command: RemoteCommand, age_s: float) -> None:
        if command.kind != "stop":
            self.post(MqttRefused(f"{command.kind}: no session is running"))
            return
        if self.starting:
            self._abort_start = True  # a session about to start never will
        if self.link is not None:
            loop = asyncio.get_running_loop()
            self.link.emergency_stop(Source.REMOTE, loop.time() - age_s)

    @property
    def mqtt_status(self) -> BridgeStatus | None:
        return self.bridge.status if self.bridge is not None else None

    # ---- sessions -----------------------------------------------------------------------------

    async def run_session(self, program: Program, safety: SafetyConfig,
                          feed: SessionFeed) -> SessionResult:
        """Run one program on the connected treadmill; the feed carries its events to a screen.
        A previous session still stopping its belt is waited for: one runner at a time."""
        link = self.link
        if link is None or not link.connected:
            raise TreadmillError("not connected to a treadmill")
        self.starting = True
        self._abort_start = False
        previous, self._session_task = self._session_task, asyncio.current_task()
        try:
            if previous is not None and not previous.done():
                await asyncio.wait({previous})  # bounded by the runner's own stop-until-still
            await link.stop_pump()  # from now on the runner reads the client's events
            if self._abort_start:
                raise TreadmillError("stopped before the session started")
            runner = SessionRunner(link.client, program, config=safety,
                                   on_event=self._forward(feed, link))
            feed.runner = runner
            self.runner = runner
            if self.bridge is not None:
                attach(self.bridge, runner, self._remote)
            recorder = self._recorder(program, link, runner) if self.record else None
            self._last_recorder = recorder
        finally:
            self.starting = False
        try:
            return await runner.run()
        finally:
            if recorder is not None:
                await recorder.aclose()  # bounded; its own thread writes
            if self.runner is runner:
                self.runner = None
            if self.bridge is not None and self._remote.runner is runner:
                detach(self.bridge, self._remote)
            if link.connected:
                link.on_sample = feed.on_idle_sample
                link.start_pump()

    def _forward(self, feed: SessionFeed, link: TreadmillLink) -> Callable[[SessionEvent], None]:
        """The runner's bus handler: what the controller itself does with an event, then the
        feed to the screen."""
        loop = asyncio.get_running_loop()

        def on_event(event: SessionEvent) -> None:
            if isinstance(event, ev.Started) and feed.runner is not None:
                # Here (on the runner's loop) session time is exact: remember its origin for
                # the screen's clocks, and line the simulator's trace up with it.
                feed.t0 = loop.time() - feed.runner.session_time()
                if link.simulated and self.sim is not None:
                    self.sim.set_trace_origin(feed.t0)
            elif isinstance(event, ev.LinkLost):
                link.link_lost_during_session()
            feed.on_event(event)

        return on_event

    async def settle(self, timeout: float = STOP_WAIT_S) -> None:
        """Wait (bounded) until the Stops already sent are written and the session is over."""
        waits: set[asyncio.Future[Any]] = set()
        if self.link is not None:
            waits |= self.link.pending_stops()
        task = self._session_task
        if task is not None and not task.done():
            waits.add(task)
        if waits:
            await asyncio.wait(waits, timeout=timeout)

    async def shutdown(self) -> None:
        """Leave the belt stopped and the link closed, whatever way the app exits."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        task = self._session_task
        if task is not None and not task.done():
            self.emergency_stop()
            await asyncio.wait({task}, timeout=STOP_WAIT_S + 0.5)
            if not task.done():
                task.cancel()  # a second cancellation: the runner stops waiting for the belt
                await asyncio.wait({task}, timeout=STOP_WAIT_S)
        elif self.link is not None and self.link.can_stop and (self.link.belt_speed_kmh or 0) > 0:
            self.link.emergency_stop()  # a belt still running between sessions
        await self.disconnect()  # waits (bounded) for the idle Stops to be written
        if self.sim is not None:
            self.sim.close()
