"""The session runner: executes a program through the safety governor against an FTMS client.

All IO of a session lives here, around the pure governor: client events and clock ticks go
in, approved commands go out to the client, and everything that happens comes out as
`SessionEvent`s (for the headless printer, the TUI, tests). Nothing here decides what is
safe: every request goes to the governor, and only its `ApprovedCommand`s reach the client.
Whatever way the session ends (program done, alarm, exception, cancellation, signal), the
last thing it does while the link is up is make sure a Stop was sent, and then it keeps the
clock, the telemetry and the command path running until the governor has seen the belt at
rest (stop until still), the link is gone, or the person insists (a second cancellation).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from safety import (
    AcknowledgeStop,
    Alarm,
    ApprovedCommand,
    CommandAccepted,
    CommandFailed,
    CommandVoided,
    ConfirmTurned,
    EmergencyStop,
    Ended,
    EndReason,
    EndSession,
    Governor,
    LinkLost,
    MachineLimits,
    MachineStatus,
    Notice,
    Orientation,
    OrientationChanged,
    PauseCmd,
    Refused,
    SafetyConfig,
    SetIncline,
    SetSpeed,
    SetTargetIncline,
    SetTargetSpeed,
    Start,
    StopCmd,
    Telemetry,
    Tick,
    TurnAround,
    TurnAroundReady,
)
from safety.wording import ACTIONABLE
from treadmill import session_events as ev
from treadmill.bus import EventBus
from treadmill.client import ApprovalExpired, FtmsClient
from treadmill.errors import NotConnected, TreadmillError
from treadmill.events import LinkLost as ClientLinkLost
from treadmill.events import StatusEvent, TelemetrySample
from treadmill.programs import Program, TurnAroundItem, WalkItem, plan, validate
from treadmill.session_events import SessionEvent

__all__ = ["SessionEvent", "SessionResult", "SessionRunner", "machine_limits"]

log = logging.getLogger(__name__)

TICK_S = 0.1
COUNTDOWN_S = (10.0, 3.0)  # cues this long before every change
STOP_ON_EXIT_TIMEOUT_S = 2.0
# After the end, how long the runner keeps re-sending Stop to a belt that is still moving
# before it gives up and leaves the last alarm standing (the console is the last resort).
STOP_UNTIL_STILL_MAX_S = 30.0
BUS_DRAIN_S = 1.0  # at the end, how long front ends get to catch up (then the bus closes)
START_RETRY_LIMIT = 3  # a start refused because the belt was moving: tries once it stopped
START_CALM_S = 1.0  # after slowing a moving belt: how long a Start must look possible


@dataclass(frozen=True)
class SessionResult:
    reason: EndReason
    message: str
    duration_s: float
    distance_m: int | None
    backward_s: float
    belt_still: bool = True  # False: the belt was not seen at rest when the runner gave up


def machine_limits(client: FtmsClient) -> MachineLimits:
    """The governor's view of the machine, from what it reported when we connected."""
    info = client.info
    if info is None or info.speed_range is None:
        raise TreadmillError(
            "this treadmill does not report its speed range, so it can't be driven safely: "
            "use its console"
        )
    speed = info.speed_range
    incline = info.incline_range
    try:
        return MachineLimits(
            speed_min_kmh=speed.minimum,
            speed_max_kmh=speed.maximum,
            speed_step_kmh=speed.step or 0.1,
            incline_min_pct=incline.minimum if incline else 0.0,
            incline_max_pct=incline.maximum if incline else 0.0,
            incline_step_pct=(incline.step or 0.5) if incline else 0.5,
            incline_supported=info.can_set_incline,
        )
    except ValueError as exc:
        raise TreadmillError(
            f"this treadmill reports ranges that make no sense ({exc}), so it can't be driven "
            "safely: use its console"
        ) from None


Confirmer = Callable[[Orientation], Awaitable[None]]


class SessionDistance:
    """The session's distance from the treadmill's total: many machines count a new workout
    (from 0) after every Stop, and a session stops at each turn-around."""

    def __init__(self) -> None:
        self._before = 0  # metres counted before the machine's counter last went back
        self._last: int | None = None

    def add(self, reported: int | None) -> int | None:
        """The session's distance with this reading (None while the machine reports none)."""
        if reported is None:
            return self.total
        if self._last is not None and reported < self._last:
            self._before += self._last  # the counter restarted
        self._last = reported
        return self._before + reported

    @property
    def total(self) -> int | None:
        return None if self._last is None else self._before + self._last


class SessionRunner:
    """Runs one program on one connected client. Keys and remote requests go through
    `submit()`; `emergency_stop()` is the fast path and never waits for anything."""

    def __init__(
        self,
        client: FtmsClient,
        program: Program,
        *,
        config: SafetyConfig | None = None,
        confirm: Confirmer | None = None,
        on_event: Callable[[SessionEvent], None] | None = None,
        tick_s: float = TICK_S,
    ) -> None:
        self.client = client
        self.program = program
        self.config = config or SafetyConfig()
        self._confirm = confirm
        # Front ends subscribe here; each gets its own queue, none can slow the runner.
        self.bus = EventBus()
        if on_event is not None:
            self.bus.subscribe("on_event", on_event)
        self._tick_s = tick_s
        self.governor: Governor | None = None
        self._t0 = 0.0
        self._queue: asyncio.Queue[ApprovedCommand] = asyncio.Queue()
        self._ended: asyncio.Future[Ended] | None = None
        self._turn_ready: asyncio.Event = asyncio.Event()
        self._turned: asyncio.Event = asyncio.Event()
        self._confirm_requested = asyncio.Event()
        self._stop_tasks: set[asyncio.Task[None]] = set()
        self.last_sample: TelemetrySample | None = None
        self.current_step: WalkItem | None = None
        self.step_remaining_s = 0.0
        self._finished = False
        self._distance = SessionDistance()

    # ---- what the UI calls -----------------------------------------------------------------

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def session_time(self) -> float:
        return self.now() - self._t0

    def submit(self, make_request: Callable[[float], Any]) -> None:
        """Hand a request (built for the current time) to the governor, e.g.
        `runner.submit(lambda t: StepSpeed(t, +1))`."""
        self._handle(make_request(self.now()))

    def emergency_stop(self) -> None:
        """Stop the belt now: the governor approves Stop at once and it is written straight
        away, ahead of anything queued."""
        self._handle(EmergencyStop(self.now()))

    def confirm_turned(self) -> None:
        """The person says they now face the other way."""
        self._turned.set()

    def acknowledge_stop(self) -> None:
        """The person has seen that the belt would not stop and takes over at the console."""
        if self.governor is not None:
            self._handle(AcknowledgeStop(self.now()))

    @property
    def waiting_for_confirmation(self) -> bool:
        return self._confirm_requested.is_set() and not self._turned.is_set()

    # ---- the governor's in and out -----------------------------------------------------------

    def _publish(self, event: SessionEvent) -> None:
        if self._finished and isinstance(event, ev.TelemetryShown | ev.StatusReported):
            return  # "ended" is the last word; commands after it (a late Stop) still show
        self.bus.publish(event)

    def _handle(self, event: Any) -> None:
        if self.governor is None:
            raise TreadmillError("the session has not started")
        for output in self.governor.handle(event):
            self._dispatch(output)

    def _dispatch(self, output: ApprovedCommand | Notice) -> None:
        if isinstance(output, ApprovedCommand):
            if isinstance(output.command, StopCmd):
                # The fast path: scheduled before anything else runs (even the event callback),
                # written at once. Whatever waited in the queue is void: it was approved for a
                # situation the Stop has just ended.
                loop = asyncio.get_running_loop()
                task = loop.create_task(self._execute(output))
                self._stop_tasks.add(task)
                task.add_done_callback(self._stop_tasks.discard)
                while not self._queue.empty():
                    voided = self._queue.get_nowait()
                    loop.call_soon(self._handle, CommandVoided(self.now(), voided.command))
            else:
                self._queue.put_nowait(output)
            self._publish(ev.CommandSent(self.session_time(), **describe_command(output)))
            return
        match output:
            case Refused(reason=reason):
                self._publish(ev.Refused(self.session_time(), reason))
            case Alarm(kind=kind, message=message):
                self._publish(ev.AlarmRaised(self.session_time(), str(kind), message))
            case TurnAroundReady(to=to):
                self._turn_ready.set()
                self._publish(ev.TurnAroundReady(self.session_time(), str(to)))
            case OrientationChanged(orientation=orientation):
                self._publish(ev.OrientationChanged(self.session_time(), str(orientation)))
            case Ended(reason=reason, message=message):
                self._publish(ev.Ended(self.session_time(), str(reason), message))
                self._finished = True
                if self._ended is not None and not self._ended.done():
                    self._ended.set_result(output)
            case _:
                self._publish(ev.NoticeShown(self.session_time(), str(output)))

    async def _execute(self, approved: ApprovedCommand) -> None:
        try:
            await self.client.execute(approved)
        except ApprovalExpired:
            if self.governor is not None:
                self._handle(CommandVoided(self.now(), approved.command))
            return
        except (TreadmillError, OSError) as exc:
            if self.governor is None:
                return
            self._publish(ev.CommandFailed(self.session_time(), describe_command(approved)["op"],
                                           str(exc)))
            if isinstance(exc, NotConnected):
                return  # the link-lost event ends the session
            self._handle(CommandFailed(self.now(), approved.command, str(exc)))
            return
        except Exception as exc:  # a bleak/backend error we did not foresee
            log.exception("command failed")
            self._handle(CommandFailed(self.now(), approved.command, repr(exc)))
            return
        if self.governor is not None:
            self._handle(CommandAccepted(self.now(), approved.command))

    async def _command_worker(self) -> None:
        while True:
            approved = await self._queue.get()
            await self._execute(approved)

    async def _pump_client_events(self) -> None:
        async for event in self.client.events():
            match event:
                case TelemetrySample():
                    self.last_sample = event
                    distance = self._distance.add(event.distance_m)
                    self._handle(Telemetry(event.t, event.speed_kmh, event.incline_pct,
                                           event.heart_rate_bpm))
                    assert self.governor is not None
                    self._publish(ev.TelemetryShown(
                        self.session_time(),
                        speed_kmh=event.speed_kmh,
                        incline_pct=event.incline_pct
                        if event.incline_pct is not None
                        else self.governor.commanded_incline_pct,
                        incline_reported=event.incline_pct is not None,
                        distance_m=distance,
                        heart_rate_bpm=event.heart_rate_bpm,
                        orientation=str(self.governor.orientation),
                    ))
                case StatusEvent():
                    self._publish(ev.StatusReported(self.session_time(), str(event.kind),
                                                    event.code, event.value))
                    self._handle(MachineStatus(event.t, event.kind, event.value))
                case ClientLinkLost():
                    self._publish(ev.LinkLost(self.session_time(), event.reason))
                    self._handle(LinkLost(event.t))

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self._tick_s)
            self._handle(Tick(self.now()))

    # ---- the program ----------------------------------------------------------------------

    async def _wait_running_time(self, seconds: float, countdown_to: str | None) -> None:
        """Let `seconds` of walking pass (paused time does not count), with countdown cues."""
        remaining = seconds
        cues = [c for c in COUNTDOWN_S if c < seconds]
        last = self.now()
        while remaining > 1e-9:
            await asyncio.sleep(min(self._tick_s, remaining))
            now = self.now()
            assert self.governor is not None
            if str(self.governor.state) != "paused":
                remaining -= now - last
            last = now
            self.step_remaining_s = max(0.0, remaining)
            while cues and remaining <= cues[0] and countdown_to:
                self._publish(ev.Cue(self.session_time(), f"{countdown_to} in {cues[0]:g} s",
                                     countdown_s=cues[0]))
                cues.pop(0)

    async def _turn_around(self, to: Orientation) -> None:
        self._turn_ready.clear()
        self._turned.clear()
        self._publish(ev.TurnAroundBegins(self.session_time(), str(to),
                                          f"Slowing to a stop: you will turn to face {to}"))
        self._handle(TurnAround(self.now()))
        governor = self.governor
        assert governor is not None
        while str(governor.state) == "stopped" and governor.orientation is not to:
            # Slowed a belt found moving and stopped for the turn on the way: ask again.
            await asyncio.sleep(self._tick_s)
            self._handle(TurnAround(self.now()))
        await self._turn_ready.wait()
        self._confirm_requested.set()
        self._publish(ev.ConfirmNeeded(
            self.session_time(), str(to),
            f"Belt stopped. Hold the rails, turn to face {to}, then confirm."))
        if self._confirm is not None:
            confirm_task = asyncio.ensure_future(self._confirm(to))
            turned_task = asyncio.ensure_future(self._turned.wait())
            both = {confirm_task, turned_task}
            try:
                done, _ = await asyncio.wait(both, return_when=asyncio.FIRST_COMPLETED)
            finally:
                # Also when the session ends mid-confirmation: nothing may outlive it.
                for task in both:
                    task.cancel()
                await asyncio.gather(*both, return_exceptions=True)
            for task in done:
                if not task.cancelled():
                    task.result()
        else:
            await self._turned.wait()
        self._confirm_requested.clear()
        self._publish(ev.Confirmed(self.session_time(), str(to)))
        self._handle(ConfirmTurned(self.now()))

    async def _run_program(self) -> None:
        assert self.governor is not None
        # Rest is seen, not assumed: give the treadmill a moment to say what its belt does, so
        # a belt already running (started at the console) is slowed before anything else.
        for _ in range(int(2.0 / self._tick_s)):
            if self.last_sample is not None:
                break
            await asyncio.sleep(self._tick_s)
        items = plan(self.program, start=self.governor.orientation)
        for position, item in enumerate(items):
            if isinstance(item, TurnAroundItem):
                await self._turn_around(item.to)
                continue
            step = item.step
            self.current_step = item
            self.step_remaining_s = step.duration_s
            upcoming = items[position + 1] if position + 1 < len(items) else None
            self._publish(ev.StepStarted(
                self.session_time(),
                index=item.index,
                of=len(self.program.steps),
                orientation=str(step.orientation),
                speed_kmh=step.speed_kmh,
                incline_pct=step.incline_pct,
                duration_s=step.duration_s,
                cue=step.cue,
            ))
            if str(self.governor.state) in ("idle", "stopped"):
                await self._start_walking(step.orientation)
            self._handle(SetSpeed(self.now(), step.speed_kmh))
            self._handle(SetIncline(self.now(), step.incline_pct))
            await self._wait_running_time(step.duration_s, describe_next(upcoming))
        self.current_step = None
        self._publish(ev.Cue(self.session_time(), "Program complete: slowing to a stop"))
        self._handle(EndSession(self.now(), "program complete"))

    async def _start_walking(self, orientation: Orientation) -> None:
        """Start; a belt found moving (started at the console) is slowed to a stop by the
        governor first, and the start is asked for again once it has stopped."""
        governor = self.governor
        assert governor is not None
        for _ in range(START_RETRY_LIMIT):
            self._handle(Start(self.now(), orientation))
            # Until control is granted the governor can't yet tell a moving belt from a still
            # one (a moving one is then slowed down first: "stopping").
            while str(governor.state) == "starting" and not governor.has_control:
                await asyncio.sleep(self._tick_s)
            if str(governor.state) != "stopping":
                return
            while str(governor.state) == "stopping":
                await asyncio.sleep(self._tick_s)
            if str(governor.state) not in ("idle", "stopped"):
                return
            # Stopped: the next Start needs it seen at rest, which takes a few readings.
            # Possible for a whole second in a row: one stray 0 km/h frame from a belt that
            # still slows down (some machines send them) must not start it.
            calm = 0.0
            for _ in range(int(8.0 / self._tick_s)):
                possible = governor.check_start_possible(orientation) is None
                calm = calm + self._tick_s if possible else 0.0
                if calm >= START_CALM_S - 1e-9:
                    break
                await asyncio.sleep(self._tick_s)

    # ---- the whole session ------------------------------------------------------------------

    async def run(self) -> SessionResult:
        """Run the program to its end (or the first reason to stop). Always leaves the belt
        stopped, or says that the link is gone and the console must be used."""
        limits = machine_limits(self.client)
        validate(self.program, self.config, limits)
        self.governor = Governor(limits, self.config, t0=self.now())
        if self.program.backward_s > 0:
            reason = self.governor.check_backward_possible()
            if reason:
                raise TreadmillError(reason)
        loop = asyncio.get_running_loop()
        self._t0 = loop.time()
        self._ended = loop.create_future()
        self.bus.start()
        self._publish(ev.Started(
            self.session_time(), program=self.program.name, title=self.program.title,
            device=self.client.info.name if self.client.info else self.client.address,
            minutes=round(self.program.duration_s / 60, 2)))
        tasks = [
            loop.create_task(self._pump_client_events(), name="client-events"),
            loop.create_task(self._ticker(), name="ticker"),
            loop.create_task(self._command_worker(), name="commands"),
        ]
        program_task = loop.create_task(self._run_program(), name="program")
        try:
            await asyncio.wait({self._ended, program_task, *tasks},
                               return_when=asyncio.FIRST_COMPLETED)
            if program_task.done() and not program_task.cancelled():
                program_task.result()  # surface an exception in the program itself
                ended = await self._ended
            elif self._ended.done():
                ended = self._ended.result()
            else:
                for task in tasks:
                    if task.done() and not task.cancelled() and task.exception():
                        raise task.exception()  # type: ignore[misc]
                self._handle(EndSession(self.now(), "the client event stream ended"))
                ended = await self._ended
            program_task.cancel()
            await asyncio.gather(program_task, return_exceptions=True)
            # Stop until still: the clock, telemetry and commands keep running after "ended"
            # until the governor has seen the belt at rest (or gives up with the alarm).
            still = await self._until_still(tasks)
        except BaseException as exc:
            # Exceptions, Ctrl-C, SIGTERM (delivered as cancellation): stop the belt first,
            # and see it through; a second cancellation (the person insists) ends at once.
            await self._stop_on_exit(
                "interrupted" if isinstance(exc, asyncio.CancelledError)
                else f"{type(exc).__name__}: {exc}",
                tasks,
            )
            await self.bus.close()  # no subscriber task outlives the session, this way either
            raise
        finally:
            program_task.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(program_task, *tasks, return_exceptions=True)
        await self._drain_stops()
        await self.bus.drain(BUS_DRAIN_S)  # front ends see "ended" before run() returns
        # Then the subscribers' tasks end: left waiting, each would outlive its session (and
        # be destroyed pending when the runner is collected).
        await self.bus.close()
        final = self.governor.ended_reason or ended.reason
        return SessionResult(
            reason=final,
            message=ended.message,
            duration_s=self.session_time(),
            distance_m=self._distance.total,
            backward_s=self.governor.backward_total_s,
            belt_still=still,
        )

    async def _until_still(self, tasks: list[asyncio.Task[None]],
                           limit_s: float = STOP_UNTIL_STILL_MAX_S) -> bool:
        """Wait while the governor carries a stop decision through; False if it gave up."""
        governor = self.governor
        assert governor is not None
        deadline = self.now() + limit_s
        while governor.stopping_until_still:
            if self.now() >= deadline or all(task.done() for task in tasks[:1]):
                break  # the client's event stream ended: the link is gone
            await asyncio.sleep(self._tick_s)
        if not governor.stopping_until_still:
            return True
        if self.client.is_connected:
            self._finished = False  # this alarm is news, even after "ended"
            message = ("the belt was not seen to stop after "
                       f"{limit_s:g} s of sending Stop: {ACTIONABLE} now")
            self._publish(ev.AlarmRaised(self.session_time(), "command_failed", message))
            self._finished = True
        return False

    async def _drain_stops(self) -> None:
        if self._stop_tasks:
            await asyncio.wait(set(self._stop_tasks), timeout=STOP_ON_EXIT_TIMEOUT_S)

    async def _stop_on_exit(self, why: str, tasks: list[asyncio.Task[None]]) -> None:
        """Make sure a Stop is written before the process goes away, and keep at it while the
        belt moves; a further cancellation (the person insists) cuts this short."""
        if self.governor is None:
            return
        log.warning("session aborted (%s): stopping the belt", why)
        with contextlib.suppress(Exception):
            self._handle(EmergencyStop(self.now()))
        try:
            await self._drain_stops()
            if any(not task.done() for task in tasks):
                await self._until_still(tasks)
        except asyncio.CancelledError:
            log.warning("stopping cut short: the belt may still be moving")
        except Exception:
            log.exception("while stopping the belt")


def describe_command(approved: ApprovedCommand) -> dict[str, Any]:
    command = approved.command
    match command:
        case SetTargetSpeed(kmh=kmh):
            return {"op": "set_target_speed", "value": kmh}
        case SetTargetIncline(pct=pct):
            return {"op": "set_target_incline", "value": pct}
        case StopCmd():
            return {"op": "stop", "value": None}
        case PauseCmd():
            return {"op": "pause", "value": None}
    name = type(command).__name__
    snake = "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
    return {"op": snake, "value": None}


def describe_next(item: TurnAroundItem | WalkItem | None) -> str | None:
    match item:
        case None:
            return "Slowing to a stop"
        case TurnAroundItem(to=to):
            return f"Turning around to face {to}"
        case WalkItem(step=step):
            return f"Next: {step.orientation} at {step.speed_kmh:g} km/h"
    return None

