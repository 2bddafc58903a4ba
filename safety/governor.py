"""The safety governor: the only road from requests to treadmill commands (sans-IO)."""

from __future__ import annotations

import math
from dataclasses import InitVar, dataclass
from enum import StrEnum
from typing import Final

from .config import UNLOCKED_BACKWARD_INCLINE_PCT, SafetyConfig
from .limits import EPS, Envelope, envelope_for, snap_down
from .states import SETPOINT_STATES, StartPhase, Trigger, next_state
from .types import (
    SETPOINT_COMMANDS,
    AcknowledgeStop,
    Alarm,
    AlarmKind,
    Command,
    CommandAccepted,
    CommandFailed,
    CommandVoided,
    ConfirmTurned,
    EmergencyStop,
    Ended,
    EndReason,
    EndSession,
    GovernorState,
    LinkLost,
    LinkState,
    MachineLimits,
    MachineStatus,
    Notice,
    Orientation,
    OrientationChanged,
    Pause,
    PauseCmd,
    Refused,
    Request,
    RequestControl,
    Resume,
    SetIncline,
    SetSpeed,
    SetTargetIncline,
    SetTargetSpeed,
    Start,
    StartResume,
    StatusKind,
    StepIncline,
    StepSpeed,
    StopBelt,
    StopCmd,
    Telemetry,
    Tick,
    TurnAround,
    TurnAroundReady,
)

S = GovernorState

# The capability that mints ApprovedCommand. Only this module holds it; see ApprovedCommand.
_MINT: Final = object()

ZERO_KMH: Final = 0.05  # a reading at or below this is "belt at 0"
MOTION_KMH: Final = 0.1  # a reading at or above this after StartResume is "belt moving"
# "Rising when not asked": this far above the lowest reading of an over-bound episode. A belt
# still reporting its old speed while paused stays flat and never trips it.
RISE_KMH: Final = 0.2
STOP_SETTLE_S: Final = 3.0  # at the stop-from speed: send Stop once confirmed, or after this
STOP_ALLOWANCE_S: Final = 3.0  # time we allow the machine to stop from the stop-from speed
# Stop until still: after a stop decision Stop is re-sent until the belt has been seen at rest
# this long (the same dwell a turn-around needs), the link is gone, or the person takes over.
STILL_S: Final = 3.0
STOP_RETRY_FIRST_S: Final = 0.25  # a refused Stop: first retry, doubling up to the max
STOP_RETRY_MAX_S: Final = 2.0
STOP_RESEND_AFTER_ACCEPT_S: Final = 3.0  # accepted, but the belt still moves: send it again
# An answer the runner never reported (it always does: the client times out at 5 s) must not
# block the link for ever.
IN_FLIGHT_GIVE_UP_S: Final = 12.0
UNKNOWN_BELT_WAIT_S: Final = 2.0  # at a start: wait this long for a first reading, then probe
SILENCE_S: Final = 1.0  # no reading this long (1-4 Hz is normal) after a slow Stop: silent
SLOW_ANSWER_S: Final = 1.0  # slowing down and an answer takes longer: Stop instead of ramping
RESUME_AFTER_PAUSE_S: Final = 5.0  # a belt still reporting speed this long after Pause: stale
INCLINE_S_PER_PCT: Final = 2.0  # incline never reported: assume a slow motor (0.5 % per s)
INCLINE_SETTLE_TIMEOUT_S: Final = 30.0
MAX_INCLINE_KEY_STEP_PCT: Final = 1.0
STOP_NOT_CONFIRMED_S: Final = 10.0  # belt still reads motion this long after an accepted Stop

_ACTIONABLE: Final = "use the console STOP or pull the safety key"


@dataclass(frozen=True, slots=True)
class ApprovedCommand:
    """A command the governor approved at time t. The FTMS client sends nothing else.

    Construction needs the governor's private capability, so a program step, a key handler
    or an MQTT callback cannot forge one (dataclasses.replace() cannot either: the capability
    is an InitVar and is not kept). Python cannot stop deliberate sabotage; this stops
    accidents, which is what the structural guarantee is for.
    """

    command: Command
    t: float
    mint: InitVar[object] = None

    def __post_init__(self, mint: object) -> None:
        if mint is not _MINT:
            raise PermissionError("commands to the treadmill must come from the safety governor")
        if not isinstance(self.command, Command):
            raise TypeError(f"not a treadmill command: {self.command!r}")


Output = ApprovedCommand | Notice


class _BeltCmd(StrEnum):
    """What we last told the belt to do (not what it does)."""

    NONE = "none"  # nothing yet this session
    RUN = "run"
    STOP = "stop"
    PAUSE = "pause"


_StartPhase = StartPhase


class _Intent(StrEnum):
    """Why we are stopping; decides the state once Stop has been sent."""

    STOP = "stop"
    TURN = "turn"
    BOUT = "bout"
    END = "end"


_REQUEST_TRIGGERS: Final[dict[type[Request], Trigger]] = {
    Start: Trigger.START,
    Resume: Trigger.RESUME,
    Pause: Trigger.PAUSE,
    StopBelt: Trigger.STOP_BELT,
    TurnAround: Trigger.TURN_AROUND,
    ConfirmTurned: Trigger.CONFIRM_TURNED,
    EndSession: Trigger.END_SESSION,
}

_STATE_PHRASES: Final[dict[GovernorState, str]] = {
    S.IDLE: "nothing has started yet",
    S.STARTING: "the belt is starting",
    S.RUNNING: "the belt is running",
    S.PAUSED: "the belt is paused",
    S.STOPPING: "the belt is slowing down to stop",
    S.STOPPED: "the belt is stopped",
    S.AWAITING_TURN: "waiting for you to turn around",
    S.ENDED: "the session has ended",
}


def _number(x: object) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        return None
    return float(x)


class Governor:
    """Takes events, returns the commands that may be sent and what to tell the person.

    handle() is the single entry point. It never raises and never blocks; time only arrives
    in events. At most one ApprovedCommand comes out of one handle() call, and a StopCmd is
    always alone and first.
    """

    def __init__(
        self, limits: MachineLimits, config: SafetyConfig | None = None, *, t0: float = 0.0
    ) -> None:
        if not isinstance(limits, MachineLimits):
            raise TypeError("limits must be a MachineLimits")
        config = SafetyConfig() if config is None else config
        if not isinstance(config, SafetyConfig):
            raise TypeError("config must be a SafetyConfig")
        t0f = _number(t0)
        if t0f is None:
            raise ValueError("t0 must be a finite number of seconds")
        self._limits = limits
        self._config = config
        self._t0 = t0f
        self._now = t0f
        self._state = S.IDLE
        self._orientation = Orientation.FORWARD
        self._env = envelope_for(limits, config, self._orientation)
        # Until the belt first gets StartResume, Start may still choose the orientation.
        self._fresh = True
        self._ended_reason: EndReason | None = None
        self._internal_errors = 0
        # control
        self._has_control = False
        self._control_lost = False
        self._link_lost = False
        self._start_phase: _StartPhase | None = None
        self._start_request: Request | None = None
        # what the belt was told
        self._belt_cmd = _BeltCmd.NONE
        self._belt_cmd_before_start = _BeltCmd.NONE
        self._run_cmd_t: float | None = None
        self._rest_cmd_t: float | None = None
        self._rest_cmd_accepted_t: float | None = None
        # speed
        self._target = 0.0
        self._commanded = 0.0
        self._last_speed_cmd_t = -math.inf
        self._last_down_t = -math.inf  # the last decrease's answer (its approval until then)
        self._last_down_emit_t = -math.inf
        self._speed_confirmed = False
        self._unanswered: list[Command] = []
        self._hold_reason: str | None = None
        # incline
        self._target_incline: float | None = None
        self._commanded_incline: float | None = None
        self._incline_from: float | None = None
        self._last_incline_cmd_t = -math.inf
        self._measured_incline: float | None = None
        self._measured_incline_t = -math.inf
        self._incline_reported = False
        self._machine_target_speed: float | None = None
        self._machine_target_incline: float | None = None
        # telemetry
        self._measured: float | None = None
        self._last_speed_t: float | None = None
        self._pending_zero = False
        self._zero_since: float | None = None  # first 0 reading of the current run of zeros
        self._link_state = LinkState.OK
        self._stale_alarmed = False
        # not obeying
        self._over_cap_since: float | None = None
        self._excess_since: float | None = None
        self._excess_low = 0.0
        self._lag_since: float | None = None
        self._ended_rise_alarmed = False
        self._stop_unconfirmed_alarmed = False
        # heart rate
        self._hr: int | None = None
        self._hr_since: float | None = None
        # stopping / turning
        self._intent: _Intent | None = None
        self._end_reason_pending = EndReason.COMPLETED
        self._end_message_pending = ""
        self._turn_to: Orientation | None = None
        self._turn_ready = False
        # backward time
        self._bout_s = 0.0
        self._total_s = 0.0
        self._last_backward_motion_t = -math.inf
        self._bout_limit_hit = False
        # one command in flight: the next non-Stop command waits for the last one's answer
        self._in_flight: Command | None = None
        self._in_flight_t = -math.inf
        self._in_flight_undo: tuple[float, float | None] | None = None
        self._deferred: Command | None = None
        self._stops_in_flight = 0
        # stop until still (rule: a stop decision holds until the belt is seen at rest)
        self._stop_wanted = False
        self._stop_once = False  # control lost or reset: one attempt, never a retry loop
        self._stop_accepted = False  # a Stop was accepted since the decision
        self._next_stop_t = math.inf
        self._stop_backoff = STOP_RETRY_FIRST_S
        self._stop_refused_alarmed = False
        self._seen_zero = False  # reports 0 km/h when still: its silence is never rest
        self._start_requested_t = -math.inf
        # per-call output
        self._cmds: list[ApprovedCommand] = []
        self._notices: list[Notice] = []

    # ------------------------------------------------------------ read-only view for the UI

    @property
    def state(self) -> GovernorState:
        return self._state

    @property
    def orientation(self) -> Orientation:
        return self._orientation

    @property
    def limits(self) -> MachineLimits:
        return self._limits

    @property
    def config(self) -> SafetyConfig:
        return self._config

    @property
    def envelope(self) -> Envelope:
        """Caps, start speed and ramp rates for the current orientation."""
        return self._env

    @property
    def now(self) -> float:
        return self._now

    @property
    def target_speed_kmh(self) -> float:
        return self._target

    @property
    def commanded_speed_kmh(self) -> float:
        """The last SetTargetSpeed approved; 0.0 once Stop or Pause has been sent."""
        return self._commanded

    @property
    def measured_speed_kmh(self) -> float | None:
        return self._measured

    @property
    def target_incline_pct(self) -> float | None:
        return self._target_incline

    @property
    def commanded_incline_pct(self) -> float | None:
        return self._commanded_incline

    @property
    def measured_incline_pct(self) -> float | None:
        """None if the machine never reported incline: show the commanded value and say so."""
        return self._measured_incline

    @property
    def machine_target_speed_kmh(self) -> float | None:
        """The last target the machine announced (Machine Status 0x05)."""
        return self._machine_target_speed

    @property
    def heart_rate_bpm(self) -> int | None:
        return self._hr

    @property
    def speed_cap_kmh(self) -> float:
        return self._env.speed_cap_kmh

    @property
    def incline_cap_pct(self) -> float | None:
        return self._env.incline_cap_pct

    @property
    def start_speed_kmh(self) -> float:
        return self._env.start_speed_kmh

    @property
    def ramping(self) -> bool:
        if self._state is S.STOPPING:
            return True
        return self._state is S.RUNNING and abs(self._target - self._commanded) > EPS

    @property
    def hold_reason(self) -> str | None:
        """Why a speed increase is waiting, if it is (for the UI)."""
        return self._hold_reason if self._state is S.RUNNING else None

    @property
    def telemetry_age_s(self) -> float | None:
        """Seconds since the last speed reading; None if none arrived yet."""
        return None if self._last_speed_t is None else self._now - self._last_speed_t

    @property
    def link_state(self) -> LinkState:
        return self._link_state

    @property
    def has_control(self) -> bool:
        return self._has_control

    @property
    def ended_reason(self) -> EndReason | None:
        return self._ended_reason

    @property
    def backward_bout_s(self) -> float:
        return self._bout_s

    @property
    def backward_total_s(self) -> float:
        return self._total_s

    @property
    def turn_to(self) -> Orientation | None:
        return self._turn_to if self._state is S.AWAITING_TURN else None

    @property
    def turn_ready(self) -> bool:
        return self._state is S.AWAITING_TURN and self._turn_ready

    @property
    def internal_errors(self) -> int:
        """How often handle() fell back to its fail-safe (tests assert this stays 0)."""
        return self._internal_errors

    def check_start_possible(self, orientation: Orientation) -> str | None:
        """Why a Start in this orientation would be refused right now, or None."""
        try:
            return self._start_refusal(Orientation(orientation), resuming=False)
        except Exception:  # a query must never raise either
            return "not possible now"

    def check_backward_possible(self) -> str | None:
        """The reason backward mode is refused on this machine and config, or None."""
        return envelope_for(self._limits, self._config, Orientation.BACKWARD).refusal

    # ------------------------------------------------------------ the entry point

    def handle(self, event: object) -> list[Output]:
        self._cmds = []
        self._notices = []
        try:
            self._handle(event)
        except Exception as exc:  # the governor must never raise: fail safe instead
            return self._fail_safe(exc)
        return [*self._cmds, *self._notices]

    def _fail_safe(self, exc: Exception) -> list[Output]:
        self._internal_errors += 1
        was_ended = self._state is S.ENDED
        self._state = S.ENDED
        self._belt_cmd = _BeltCmd.STOP
        self._commanded = 0.0
        self._stop_wanted = True
        self._stops_in_flight += 1
        self._next_stop_t = math.inf
        message = f"internal error in the safety governor ({type(exc).__name__}): {_ACTIONABLE}"
        out: list[Output] = [
            ApprovedCommand(StopCmd(), self._now, _MINT),
            Alarm(AlarmKind.INTERNAL_ERROR, message),
        ]
        if not was_ended:
            self._ended_reason = EndReason.ERROR
            out.append(Ended(EndReason.ERROR, message))
        return out

    def _handle(self, event: object) -> None:
        self._advance(getattr(event, "t", None))
        if isinstance(event, EmergencyStop):
            # Before anything else, so StopCmd is the first output.
            self._on_emergency_stop()
            return
        if isinstance(event, AcknowledgeStop):
            self._on_acknowledge_stop(event)
            return
        if self._state is S.ENDED:
            self._handle_ended(event)
            self._after_event(event)
            return
        # The fatal time-based checks first: a gap that began before this event is still a
        # gap (only they run here, so what comes out of them is a lone StopCmd and the end).
        # Not when this event says control is gone: then no command may go out at all.
        if not _loses_control(event):
            self._check_fatal_conditions()
        if self._state is not S.ENDED:
            self._dispatch(event)
        if self._state is not S.ENDED:
            self._check_conditions()
        # Setpoints (ramp steps, incline changes, the Stop at the end of a ramp) are decided
        # on Tick and Telemetry only: a request changes targets, the clock moves the belt.
        if self._state is S.STARTING and not self._cmds:
            self._advance_start()
        if (
            isinstance(event, Tick | Telemetry)
            and self._state in (S.RUNNING, S.STOPPING, S.AWAITING_TURN)
            and not self._cmds
        ):
            self._drive()
        self._after_event(event)

    def _after_event(self, event: object) -> None:
        """What any event may unblock: a deferred command, a due Stop re-send."""
        if self._cmds:
            return
        if self._in_flight is not None and self._now - self._in_flight_t > IN_FLIGHT_GIVE_UP_S:
            self._in_flight = None
        if isinstance(event, Tick):
            self._keep_stopping()  # Stop re-sends come on the clock, paced by back-off
        if not self._cmds and self._deferred is not None and self._link_free():
            command, self._deferred = self._deferred, None
            self._emit(command)

    def _dispatch(self, event: object) -> None:
        match event:
            case Tick():
                pass  # time was advanced above; the checks below use it
            case Telemetry():
                self._on_telemetry(event)
            case MachineStatus():
                self._on_status(event)
            case LinkLost():
                self._on_link_lost()
            case CommandAccepted():
                self._on_accepted(event.command)
            case CommandFailed():
                self._on_failed(event.command, str(event.reason))
            case CommandVoided():
                self._on_voided(event.command)
            case Request():
                self._on_request(event)
            case _:
                pass  # not ours: ignore rather than raise

    def _handle_ended(self, event: object) -> None:
        # After the end only StopCmd may go out: retries of a failed Stop, and EmergencyStop.
        match event:
            case Tick():
                self._check_stop_confirmed()
            case Telemetry():
                self._on_telemetry(event)
                self._check_stop_confirmed()
            case MachineStatus(kind=StatusKind.CONTROL_LOST | StatusKind.RESET):
                self._has_control = False
                self._control_lost = True
                self._stop_once = True
            case LinkLost():
                self._on_link_lost()
            case CommandAccepted():
                self._on_accepted(event.command)
            case CommandFailed():
                self._on_failed(event.command, str(event.reason))
            case CommandVoided():
                self._on_voided(event.command)
            case Request():
                reason = self._ended_reason.value if self._ended_reason else "ended"
                self._refuse(
                    event, f"the session has ended ({reason}): start a new session to walk again"
                )
            case _:
                pass

    # ------------------------------------------------------------ time

    def _advance(self, t: object) -> None:
        tf = _number(t)
        # Time never runs backwards here: a late or garbled timestamp means "now".
        if tf is not None and tf > self._now:
            dt = tf - self._now
            if self._orientation is Orientation.BACKWARD and self._rest_since() is None:
                self._bout_s += dt
                self._total_s += dt
                self._last_backward_motion_t = tf
            self._now = tf
        if self._now - self._last_backward_motion_t >= self._config.bout_rest_s:
            # Rested (or walked forward) long enough: a new bout may start.
            self._bout_s = 0.0
            self._bout_limit_hit = False

    # ------------------------------------------------------------ belt at rest?

    def _rest_since(self) -> float | None:
        """Since when the belt is known to be at rest; None if it is or may be moving.

        Rest is seen, never assumed: only readings taken after the last Stop/Pause count
        (_zero_since is cleared when one is sent), and before any reading the belt is unknown.
        """
        if self._belt_cmd is _BeltCmd.RUN:
            return None
        m = self._measured
        if m is not None and m <= ZERO_KMH and self._zero_since is not None:
            return self._zero_since
        accepted = self._rest_cmd_accepted_t
        if self._belt_cmd is _BeltCmd.NONE or accepted is None:
            return None
        if m is None or self._last_speed_t is None:
            return accepted  # never reported any speed: a silent machine
        if self._seen_zero:
            return None  # it reports 0 when still: silence here is a drop-out, not rest
        silent = self._now - self._last_speed_t >= SILENCE_S - EPS
        if silent and m <= self._env.start_speed_kmh + self._env.speed_tolerance_kmh:
            # Stop/Pause accepted at a slow speed, then silence: the "silent when stopped"
            # quirk. Any later frame moves _last_speed_t, so a stray frame resets the dwell.
            return max(self._last_speed_t, accepted)
        return None

    def _belt_unknown(self) -> bool:
        """Nothing commanded and nothing read yet: the belt may be still or moving."""
        return self._belt_cmd is _BeltCmd.NONE and self._last_speed_t is None

    def _belt_moving_now(self) -> bool:
        """A fresh reading shows motion (not a lone stray value)."""
        m = self._measured
        return m is not None and m > ZERO_KMH and self._telemetry_fresh()

    def _link_free(self) -> bool:
        """One command in flight: nothing else until the last one was answered."""
        return self._in_flight is None and self._stops_in_flight == 0

    def _moving_ref_t(self) -> float:
        times = [
            x for x in (self._last_speed_t, self._run_cmd_t, self._rest_cmd_t) if x is not None
        ]
        return max(times) if times else self._t0

    def _telemetry_fresh(self) -> bool:
        return (
            self._last_speed_t is not None
            and self._now - self._last_speed_t <= self._config.stale_alarm_s
        )

    # ------------------------------------------------------------ output helpers

    def _emit(self, command: Command) -> None:
        if isinstance(command, RequestControl) and self._control_lost:
            raise RuntimeError("RequestControl after control was lost")
        if self._cmds and not isinstance(command, StopCmd):
            raise RuntimeError(f"second command in one call: {command!r} after {self._cmds!r}")
        if not isinstance(command, StopCmd) and not self._link_free():
            if _is_setpoint(command):
                raise RuntimeError(f"setpoint while a command is in flight: {command!r}")
            # One command in flight: a start step or a pause goes once the link is free.
            self._deferred = command
            return
        approved = ApprovedCommand(command, self._now, _MINT)
        now = self._now
        if isinstance(command, StopCmd):
            # A Stop is alone and first: drop anything else approved in this call, and
            # anything still waiting to go (the runner voids its queue too).
            self._cmds = [approved]
            self._deferred = None
            self._unanswered = [c for c in self._unanswered if not _is_setpoint(c)]
            self._stops_in_flight += 1
            if not self._stop_wanted:
                self._stop_wanted = True
                self._stop_accepted = False
                self._stop_backoff = STOP_RETRY_FIRST_S
                self._stop_refused_alarmed = False
            self._next_stop_t = math.inf  # set again by its answer
        else:
            self._cmds.append(approved)
            self._in_flight = command
            self._in_flight_t = now
            self._in_flight_undo = None
        match command:
            case StopCmd() | PauseCmd():
                already_resting = self._belt_cmd in (_BeltCmd.STOP, _BeltCmd.PAUSE)
                self._belt_cmd = _BeltCmd.STOP if isinstance(command, StopCmd) else _BeltCmd.PAUSE
                self._commanded = 0.0
                if self._start_phase is not _StartPhase.CONFIRM_REST:
                    self._start_phase = None
                self._lag_since = None
                if not already_resting:
                    # Rest must be seen after this command: older zeros (a start countdown,
                    # readings before a drop-out) prove nothing about the belt from now on.
                    self._rest_cmd_t = now
                    self._rest_cmd_accepted_t = None
                    self._zero_since = None
                    # What we expect drops to 0 now: a new run of "above what we asked"
                    # starts. A Stop after a Pause expects the same 0, and restarting the run
                    # there would forget its lowest reading and let a runaway climb further.
                    self._excess_since = None
                self._stop_unconfirmed_alarmed = False
            case StartResume():
                self._belt_cmd = _BeltCmd.RUN
                self._run_cmd_t = now
                self._fresh = False
                self._excess_since = None
                self._speed_confirmed = False
                # A deliberate start ends the previous stop decision (it was seen through).
                self._stop_wanted = False
            case SetTargetSpeed(kmh=kmh):
                self._in_flight_undo = (self._commanded, None)
                if kmh < self._commanded - EPS:
                    self._last_down_t = now
                    self._last_down_emit_t = now
                self._commanded = kmh
                self._last_speed_cmd_t = now
                self._speed_confirmed = False
                self._unanswered.append(command)
            case SetTargetIncline(pct=pct):
                self._in_flight_undo = (math.nan, self._commanded_incline)
                self._incline_from = (
                    self._commanded_incline
                    if self._commanded_incline is not None
                    else self._measured_incline
                )
                self._commanded_incline = pct
                self._last_incline_cmd_t = now
                self._unanswered.append(command)
            case _:
                pass

    def _notice(self, notice: Notice) -> None:
        self._notices.append(notice)

    def _alarm(self, kind: AlarmKind, message: str) -> None:
        self._notices.append(Alarm(kind, message))

    def _refuse(self, request: object, reason: str) -> None:
        if isinstance(request, Request):
            self._notices.append(Refused(request, reason))

    def _goto(self, trigger: Trigger) -> None:
        nxt = next_state(self._state, trigger)
        if nxt is None:
            raise RuntimeError(f"no transition from {self._state} on {trigger}")
        self._state = nxt

    def _end(self, reason: EndReason, message: str, trigger: Trigger) -> None:
        self._goto(trigger)
        self._ended_reason = reason
        self._start_phase = None
        self._intent = None
        self._turn_ready = False
        self._notice(Ended(reason, message))

    def _fatal(
        self, reason: EndReason, message: str, *, stop: bool, alarm: AlarmKind | None = None
    ) -> None:
        """End the session now. stop: also send StopCmd (bypassing every ramp)."""
        if self._state is S.ENDED:
            return
        if stop:
            self._emit(StopCmd())
        if alarm is not None:
            self._alarm(alarm, message)
        self._end(reason, message, Trigger.FATAL)

    # ------------------------------------------------------------ emergency stop

    def _on_emergency_stop(self) -> None:
        # From any state, including ENDED: the big key always works.
        self._emit(StopCmd())
        if self._state is not S.ENDED:
            self._end(
                EndReason.EMERGENCY_STOP,
                f"emergency stop: Stop sent. If the belt keeps moving, {_ACTIONABLE}",
                Trigger.FATAL,
            )

    # ------------------------------------------------------------ telemetry

    def _on_telemetry(self, ev: Telemetry) -> None:
        speed = _number(ev.speed_kmh)
        if speed is not None and speed < 0:
            speed = None  # garbage: does not count as a reading
        incline = _number(ev.incline_pct)
        if incline is not None:
            self._measured_incline = incline
            self._measured_incline_t = self._now
            self._incline_reported = True
        if speed is not None:
            self._last_speed_t = self._now
            if self._link_state is LinkState.STALE:
                self._link_state = LinkState.OK
            self._stale_alarmed = False
            accepted = self._filter_stray_zero(speed)
            if accepted is not None:
                self._apply_speed(accepted)
        hr = _number(ev.heart_rate_bpm)
        if hr is not None and 0 < hr < 255:  # 0 = no skin contact: ignore
            self._on_heart_rate(int(hr))

    def _filter_stray_zero(self, speed: float) -> float | None:
        """Hold back a lone 0 km/h frame while the belt should be moving."""
        if speed > ZERO_KMH:
            self._pending_zero = False
            return speed
        lone = (
            self._belt_cmd is _BeltCmd.RUN
            and self._measured is not None
            and self._measured > ZERO_KMH
            and not self._pending_zero
        )
        if lone:
            self._pending_zero = True  # a second zero in a row confirms it
            return None
        self._pending_zero = False
        return speed

    def _expected_speed(self) -> float:
        if self._belt_cmd is not _BeltCmd.RUN:
            return 0.0
        if self._state is S.STARTING:
            return self._env.start_speed_kmh
        return self._commanded

    def _under_speed_control(self) -> bool:
        return self._belt_cmd is _BeltCmd.RUN and self._state in (S.RUNNING, S.STOPPING)

    def _apply_speed(self, v: float) -> None:
        now = self._now
        self._measured = v
        if v <= ZERO_KMH:
            self._seen_zero = True
            if self._zero_since is None:
                self._zero_since = now
        else:
            self._zero_since = None
        env = self._env
        margin = self._config.disobey_margin_kmh
        if (
            self._belt_cmd is _BeltCmd.RUN
            and self._last_speed_cmd_t < now
            and self._commanded > 0
            and abs(v - self._commanded) <= env.speed_tolerance_kmh
        ):
            self._speed_confirmed = True
        # Above the cap (+ margin) for disobey_window_s: checked in _check_disobey_windows.
        if v > env.speed_cap_kmh + margin:
            if self._over_cap_since is None:
                self._over_cap_since = now
        else:
            self._over_cap_since = None
        # Rising above what we asked for (+ margin).
        if v > self._expected_speed() + margin:
            if self._excess_since is None:
                self._excess_since = now
                self._excess_low = v
            else:
                self._excess_low = min(self._excess_low, v)
            if v >= self._excess_low + RISE_KMH - EPS:
                self._on_unasked_rise(v)
                return
        else:
            self._excess_since = None
        # Not slowing down when asked: checked in _check_disobey_windows.
        if self._under_speed_control() and v > self._commanded + margin:
            if self._lag_since is None:
                self._lag_since = now
        else:
            self._lag_since = None
        if (
            self._state is S.STARTING
            and self._start_phase is _StartPhase.AWAIT_MOTION
            and v >= MOTION_KMH
        ):
            self._on_belt_moving()

    def _on_unasked_rise(self, v: float) -> None:
        if self._state is S.ENDED:
            if not self._ended_rise_alarmed:
                self._ended_rise_alarmed = True
                self._alarm(
                    AlarmKind.NOT_OBEYING,
                    f"the belt is speeding up ({v:.1f} km/h) after the session ended: "
                    + _ACTIONABLE,
                )
            return
        self._fatal(
            EndReason.NOT_OBEYING,
            f"the belt sped up to {v:.1f} km/h without being asked: Stop sent. "
            f"If it keeps moving, {_ACTIONABLE}",
            stop=True,
            alarm=AlarmKind.NOT_OBEYING,
        )

    def _on_belt_moving(self) -> None:
        if self._cmds or not self._link_free():
            return  # one command per call, one in flight; the next frame will do it
        # Only now may a speed be set: a speed sent to a stopped belt is ignored, or makes
        # some machines disconnect.
        self._emit(SetTargetSpeed(self._env.start_speed_kmh))
        self._start_phase = None
        self._goto(Trigger.BELT_MOVING)

    def _on_heart_rate(self, hr: int) -> None:
        self._hr = hr
        cap = self._config.heart_rate_cap_bpm
        if cap is None:
            return
        if hr <= cap:
            self._hr_since = None
            return
        moving = self._state in (S.RUNNING, S.STARTING)
        if hr > cap + self._config.heart_rate_hard_margin_bpm and moving:
            self._hr_since = self._hr_since if self._hr_since is not None else self._now
            self._stop_for_heart_rate(f"heart rate {hr} bpm is far above your limit of {cap} bpm")
            return
        if self._hr_since is None:
            self._hr_since = self._now
            if moving:
                env = self._env
                base = min(self._target, self._commanded) if self._commanded > 0 else self._target
                lowered = snap_down(
                    base - self._config.max_step_per_request_kmh,
                    env.speed_min_kmh,
                    env.speed_step_kmh,
                )
                self._target = min(self._target, max(env.start_speed_kmh, lowered))
                self._alarm(
                    AlarmKind.HEART_RATE,
                    f"heart rate {hr} bpm is above your limit of {cap} bpm: slowing to "
                    f"{self._target:.1f} km/h. If it stays high for "
                    f"{self._config.heart_rate_grace_s:g} s the belt will stop",
                )

    def _stop_for_heart_rate(self, why: str) -> None:
        message = f"{why}: slowing down to stop; the session ends. Rest and breathe"
        if self._state is S.RUNNING or self._state is S.STOPPING:
            if self._intent is _Intent.END:
                return
            self._alarm(AlarmKind.HEART_RATE, message)
            self._begin_ramp_stop(Trigger.LIMIT, _Intent.END, EndReason.HEART_RATE, message)
        elif self._state is S.STARTING:
            # Barely moving yet: stop at once.
            self._fatal(
                EndReason.HEART_RATE,
                message,
                stop=self._start_phase is _StartPhase.AWAIT_MOTION,
                alarm=AlarmKind.HEART_RATE,
            )

    # ------------------------------------------------------------ machine status

    def _on_status(self, ev: MachineStatus) -> None:
        try:
            kind = StatusKind(ev.kind)
        except ValueError:
            kind = StatusKind.UNKNOWN
        value = _number(ev.value)
        belt = self._belt_cmd
        match kind:
            case StatusKind.SAFETY_KEY:
                # StopCmd too (harmless, and makes sure) whenever we hold control; without
                # control it could only fail and add a confusing second alarm.
                self._fatal(
                    EndReason.SAFETY_KEY,
                    "safety key pulled: the belt is stopping and the session has ended. "
                    "Step off carefully; clip the key back on before a new session",
                    stop=self._has_control,
                    alarm=AlarmKind.SAFETY_KEY,
                )
            case StatusKind.CONTROL_LOST | StatusKind.RESET:
                # Never re-request control: the belt must never restart by itself. One Stop
                # anyway, never retried: if control really moved the treadmill refuses it and
                # nothing is lost; if the byte was garbage, the belt stops.
                self._has_control = False
                self._control_lost = True
                self._stop_once = True
                lost = kind is StatusKind.CONTROL_LOST
                self._fatal(
                    EndReason.CONTROL_LOST if lost else EndReason.MACHINE_RESET,
                    (
                        "the treadmill took control back from the app"
                        if lost
                        else "the treadmill reset itself"
                    )
                    + f": the app may no longer be able to stop the belt. {_ACTIONABLE}",
                    stop=True,
                    alarm=AlarmKind.CONTROL_LOST if lost else AlarmKind.MACHINE_RESET,
                )
            case StatusKind.STOPPED_BY_USER:
                # FTMS servers echo 0x02 after our own Stop: only a stop we did not ask for
                # is "stopped at the console". Even with nothing running it ends the session:
                # it may be the person cancelling a start we are still asking control for.
                if belt is _BeltCmd.STOP:
                    return
                self._fatal(
                    EndReason.STOPPED_AT_CONSOLE,
                    "the belt was stopped at the console: the session has ended. "
                    "Start a new session from the app to walk again",
                    stop=self._has_control,
                    alarm=AlarmKind.STOPPED_AT_CONSOLE,
                )
            case StatusKind.PAUSED_BY_USER:
                if belt is not _BeltCmd.RUN and self._state is not S.STARTING:
                    return  # our own Pause/Stop echoed, or nothing running or starting
                if self._state is S.STOPPING:
                    self._finish_stop()  # it was stopping anyway; make it a real Stop
                    return
                # Paused at the console (also: a start we were still asking control for is
                # cancelled): follow it, never resume by ourselves.
                self._belt_cmd = _BeltCmd.PAUSE
                self._rest_cmd_t = self._now
                self._rest_cmd_accepted_t = self._now
                self._commanded = 0.0
                self._start_phase = None
                self._lag_since = None
                self._excess_since = None
                self._goto(Trigger.CONSOLE_PAUSE)
                self._alarm(
                    AlarmKind.PAUSED_AT_CONSOLE,
                    "paused at the console: press Resume to start again slowly, or Stop",
                )
            case StatusKind.STARTED_BY_USER:
                if belt is _BeltCmd.RUN:
                    return  # the echo of our own StartResume
                self._fatal(
                    EndReason.STARTED_AT_CONSOLE,
                    "the belt was started at the console, outside the app's control: "
                    f"the session has ended. {_ACTIONABLE}",
                    stop=self._has_control,
                    alarm=AlarmKind.STARTED_AT_CONSOLE,
                )
            case StatusKind.TARGET_SPEED_CHANGED:
                self._machine_target_speed = value
                cap = self._env.speed_cap_kmh + self._config.disobey_margin_kmh
                if value is not None and value > cap and belt is _BeltCmd.RUN:
                    self._fatal(
                        EndReason.NOT_OBEYING,
                        f"the treadmill set its target to {value:.1f} km/h, above the "
                        f"{self._env.speed_cap_kmh:.1f} km/h cap: Stop sent",
                        stop=True,
                        alarm=AlarmKind.NOT_OBEYING,
                    )
            case StatusKind.TARGET_INCLINE_CHANGED:
                self._machine_target_incline = value
                icap = self._env.incline_cap_pct
                if (
                    value is not None
                    and icap is not None
                    and value > icap + self._env.incline_tolerance_pct
                    and belt is _BeltCmd.RUN
                ):
                    self._fatal(
                        EndReason.NOT_OBEYING,
                        f"the treadmill set its incline to {value:.1f} %, above the "
                        f"{icap:.1f} % cap: Stop sent",
                        stop=True,
                        alarm=AlarmKind.NOT_OBEYING,
                    )
            case _:
                pass  # unknown codes exist in the wild: never raise

    def _on_link_lost(self) -> None:
        self._link_state = LinkState.LOST
        self._link_lost = True
        self._has_control = False
        self._unanswered.clear()
        self._in_flight = None
        self._deferred = None
        self._stops_in_flight = 0
        self._stop_wanted = False  # nothing can reach the belt any more: the alarm says so
        message = (
            f"Bluetooth link lost: the app can no longer stop the belt. {_ACTIONABLE}. "
            "The session has ended; nothing will restart by itself"
        )
        if self._state is not S.ENDED:
            self._fatal(EndReason.LINK_LOST, message, stop=False, alarm=AlarmKind.LINK_LOST)
        elif self._rest_since() is None:
            self._alarm(AlarmKind.LINK_LOST, message)

    # ------------------------------------------------------------ command answers

    def _answered(self, command: Command | None) -> None:
        """The link is free again once the command in flight has its answer."""
        if isinstance(command, StopCmd):
            self._stops_in_flight = max(0, self._stops_in_flight - 1)
        elif command is not None and command == self._in_flight:
            self._in_flight = None

    def _on_voided(self, command: object) -> None:
        command = _unwrap(command)
        self._forget_unanswered(command)
        if isinstance(command, StopCmd):
            self._stops_in_flight = max(0, self._stops_in_flight - 1)
            return
        if command is None or command != self._in_flight:
            return
        self._in_flight = None
        # It never reached the belt: what we believe we told it goes back to what it was.
        undo = self._in_flight_undo
        if undo is not None and self._belt_cmd is _BeltCmd.RUN:
            speed, incline = undo
            if isinstance(command, SetTargetSpeed):
                self._commanded = speed
            elif isinstance(command, SetTargetIncline):
                self._commanded_incline = incline
        if isinstance(command, RequestControl | StartResume | PauseCmd) and (
            self._state in (S.STARTING, S.PAUSED)
        ):
            self._deferred = command  # still wanted: it goes once the link is free

    def _on_acknowledge_stop(self, req: AcknowledgeStop) -> None:
        # The person has seen that the belt would not stop and takes over at the console.
        if self._stop_wanted:
            self._stop_wanted = False
            self._alarm(
                AlarmKind.COMMAND_FAILED,
                f"Stop is no longer re-sent: {_ACTIONABLE} if the belt still moves",
            )

    def _on_accepted(self, command: object) -> None:
        command = _unwrap(command)
        self._forget_unanswered(command)
        self._answered(command)
        match command:
            case RequestControl():
                if self._control_lost or self._link_lost:
                    return
                self._has_control = True
                if self._state is S.STARTING and self._start_phase is _StartPhase.AWAIT_CONTROL:
                    resuming = isinstance(self._start_request, Resume)
                    why = self._start_refusal(self._orientation, resuming=resuming)
                    if why is not None:
                        if self._start_request is not None:
                            self._refuse(self._start_request, why)
                        self._start_phase = None
                        self._goto(Trigger.START_FAILED)
                        return
                    self._advance_start()
            case StopCmd():
                self._stop_accepted = True
                self._stop_backoff = STOP_RETRY_FIRST_S
                self._next_stop_t = self._now + STOP_RESEND_AFTER_ACCEPT_S
                if self._belt_cmd is _BeltCmd.STOP and self._rest_cmd_accepted_t is None:
                    self._rest_cmd_accepted_t = self._now
            case PauseCmd():
                if self._belt_cmd is _BeltCmd.PAUSE and self._rest_cmd_accepted_t is None:
                    self._rest_cmd_accepted_t = self._now
            case SetTargetSpeed():
                # Pacing counts from the answer, not the approval: a treadmill that answers
                # late must not get the next step sooner than one that answers at once.
                if self._last_down_t == self._last_speed_cmd_t:
                    self._last_down_t = self._now
                self._last_speed_cmd_t = self._now
            case SetTargetIncline():
                self._last_incline_cmd_t = self._now
            case _:
                pass

    def _on_failed(self, command: object, reason: str) -> None:
        command = _unwrap(command)
        self._forget_unanswered(command)
        self._answered(command)
        if isinstance(command, StopCmd):
            self._on_stop_failed(reason)
            return
        if self._state is S.ENDED:
            return
        match command:
            case RequestControl():
                if self._state is S.STOPPING and not self._has_control:
                    # A belt started at the console that we meant to slow down.
                    self._belt_cmd = _BeltCmd.NONE
                    self._fatal(
                        EndReason.ERROR,
                        f"the treadmill refused remote control ({reason}), so the app can't "
                        f"slow the moving belt: {_ACTIONABLE}",
                        stop=False,
                        alarm=AlarmKind.START_FAILED,
                    )
                    return
                if self._state is S.STARTING and self._start_phase is _StartPhase.AWAIT_CONTROL:
                    self._start_phase = None
                    self._alarm(
                        AlarmKind.START_FAILED,
                        f"the treadmill refused remote control ({reason}): the belt was not "
                        "started. Finish any workout on the console, then press Start again",
                    )
                    self._goto(Trigger.START_FAILED)
            case StartResume():
                if self._state is S.STARTING and self._start_phase is _StartPhase.AWAIT_MOTION:
                    # It did not start; if it starts later anyway, "rising when not asked"
                    # stops it.
                    self._belt_cmd = self._belt_cmd_before_start
                    self._start_phase = None
                    self._alarm(
                        AlarmKind.START_FAILED,
                        f"the treadmill refused to start ({reason}). Press Start to try again",
                    )
                    self._goto(Trigger.START_FAILED)
            case PauseCmd():
                if self._belt_cmd is _BeltCmd.PAUSE:
                    self._fatal(
                        EndReason.ERROR,
                        f"the treadmill did not accept Pause ({reason}): Stop sent. "
                        f"If the belt keeps moving, {_ACTIONABLE}",
                        stop=True,
                        alarm=AlarmKind.COMMAND_FAILED,
                    )
            case SetTargetSpeed() | SetTargetIncline():
                what = "speed" if isinstance(command, SetTargetSpeed) else "incline"
                if self._state is S.RUNNING:
                    # It refuses our settings: stop gently while it still takes decreases.
                    message = (
                        f"the treadmill refused a {what} change ({reason}): slowing down to "
                        "stop; the session ends"
                    )
                    self._alarm(AlarmKind.COMMAND_FAILED, message)
                    self._begin_ramp_stop(Trigger.LIMIT, _Intent.END, EndReason.ERROR, message)
                elif self._state is S.STOPPING:
                    # Refusing while we slow down: stop now.
                    self._fatal(
                        EndReason.ERROR,
                        f"the treadmill refused a {what} change while slowing down ({reason}): "
                        f"Stop sent. If the belt keeps moving, {_ACTIONABLE}",
                        stop=True,
                        alarm=AlarmKind.COMMAND_FAILED,
                    )
            case _:
                pass

    def _on_stop_failed(self, reason: str) -> None:
        if self._stops_in_flight > 0:
            return  # another Stop is on its way: its answer decides
        retry = self._stop_wanted and not self._link_lost and not self._stop_once
        if retry:
            self._next_stop_t = self._now + self._stop_backoff
            self._stop_backoff = min(self._stop_backoff * 2, STOP_RETRY_MAX_S)
        if self._stop_accepted and self._rest_since() is not None:
            return  # an extra Stop refused by a belt that is already stopping or still
        if self._start_phase is _StartPhase.CONFIRM_REST and self._state is S.STARTING:
            self._start_phase = None
            self._stop_wanted = False
            self._alarm(
                AlarmKind.START_FAILED,
                f"the treadmill did not accept Stop ({reason}), so the app can't be sure the "
                "belt is still: it was not started. Press Start to try again",
            )
            self._goto(Trigger.START_FAILED)
            return
        message = f"the treadmill did not accept Stop ({reason}): {_ACTIONABLE}"
        message += "; Stop is sent again until the belt is still" if retry else " now"
        if not self._stop_refused_alarmed:
            self._stop_refused_alarmed = True
            self._alarm(AlarmKind.COMMAND_FAILED, message)
        if self._state is not S.ENDED:
            self._end(EndReason.ERROR, message, Trigger.FATAL)
        elif self._ended_reason is EndReason.COMPLETED:
            # "Completed" must not stand while the last Stop was refused.
            self._ended_reason = EndReason.ERROR

    def _keep_stopping(self) -> None:
        """Stop until still: re-send Stop (with back-off) until the belt is seen at rest."""
        if not self._stop_wanted or self._cmds:
            return
        if self._link_lost:
            self._stop_wanted = False
            return
        since = self._rest_since()
        if since is not None and self._now - since >= STILL_S - EPS:
            self._stop_wanted = False  # seen through: the belt is still
            return
        if self._stops_in_flight or self._stop_once or self._now < self._next_stop_t - EPS:
            return
        if self._stop_accepted and since is not None:
            return  # accepted and at rest: only the dwell is left to see through
        self._emit(StopCmd())

    @property
    def stopping_until_still(self) -> bool:
        """A stop decision is still being carried out (Stop re-sent until the belt is still)."""
        return self._stop_wanted or self._stops_in_flight > 0

    def _forget_unanswered(self, command: Command | None) -> None:
        if command is not None and command in self._unanswered:
            self._unanswered.remove(command)

    # ------------------------------------------------------------ requests

    def _on_request(self, req: Request) -> None:
        match req:
            case SetSpeed():
                self._on_set_speed(req, _number(req.kmh))
            case StepSpeed():
                self._on_step_speed(req)
            case SetIncline():
                self._on_set_incline(req, _number(req.pct))
            case StepIncline():
                self._on_step_incline(req)
            case _:
                trigger = _REQUEST_TRIGGERS.get(type(req))
                if trigger is None:
                    self._refuse(req, "unknown request")
                    return
                if next_state(self._state, trigger) is None:
                    self._refuse(req, self._why_not(trigger))
                    return
                handler = {
                    Trigger.START: self._on_start,
                    Trigger.RESUME: self._on_resume,
                    Trigger.PAUSE: self._on_pause,
                    Trigger.STOP_BELT: self._on_stop_belt,
                    Trigger.TURN_AROUND: self._on_turn_around,
                    Trigger.CONFIRM_TURNED: self._on_confirm_turned,
                    Trigger.END_SESSION: self._on_end_session,
                }[trigger]
                handler(req)

    def _why_not(self, trigger: Trigger) -> str:
        phrase = _STATE_PHRASES[self._state]
        match trigger:
            case Trigger.START:
                return f"cannot start: {phrase}"
            case Trigger.RESUME:
                return f"nothing to resume: {phrase}"
            case Trigger.PAUSE:
                return f"cannot pause: {phrase}"
            case Trigger.STOP_BELT:
                return f"nothing to stop: {phrase}"
            case Trigger.TURN_AROUND:
                return f"cannot turn around now: {phrase}"
            case Trigger.CONFIRM_TURNED:
                return f"no turn around is in progress: {phrase}"
            case _:
                return f"not possible now: {phrase}"

    def _start_refusal(self, orientation: Orientation, *, resuming: bool) -> str | None:
        if self._link_lost:
            return "the Bluetooth link is lost"
        env = envelope_for(self._limits, self._config, orientation)
        if env.refusal is not None:
            return env.refusal
        cfg = self._config
        if orientation is Orientation.BACKWARD:
            if self._total_s >= cfg.max_backward_session_s - EPS:
                return (
                    f"you have walked backward for {cfg.max_backward_session_s / 60:g} min in "
                    "this session, the limit: end the session"
                )
            if self._bout_limit_hit:
                left = cfg.bout_rest_s - (self._now - self._last_backward_motion_t)
                return (
                    f"you have walked backward for {cfg.max_backward_bout_s / 60:g} min: "
                    f"rest for {max(left, 0):.0f} s more, or turn around and walk forward"
                )
        cap = cfg.heart_rate_cap_bpm
        hr = self._hr
        if cap is not None and self._hr_since is not None and hr is not None and hr > cap:
            return f"heart rate {hr} bpm is above your limit of {cap} bpm: rest until it drops"
        # A start from standstill needs the belt at rest. Moving (a fresh reading) is
        # refused here; unknown (no reading yet, or silence) is settled by the start phases.
        if not resuming and self._rest_since() is None and self._belt_moving_now():
            return "the belt is still moving: wait until it has stopped"
        # Starting the belt is a speed change: not within the gap after an incline change.
        wait = self._last_incline_cmd_t + cfg.speed_incline_gap_s - self._now
        if wait > EPS:
            return f"the incline is still changing: start again in {math.ceil(wait)} s"
        return None

    def _on_start(self, req: Start) -> None:
        try:
            orientation = Orientation(req.orientation)
        except ValueError:
            self._refuse(req, f"unknown orientation {req.orientation!r}")
            return
        if orientation is not self._orientation and not self._fresh:
            self._refuse(
                req,
                f"you are facing {self._orientation}: use Turn around before walking {orientation}",
            )
            return
        if self._belt_cmd is _BeltCmd.NONE and self._belt_moving_now():
            self._slow_moving_belt(req)
            return
        why = self._start_refusal(orientation, resuming=False)
        if why is not None:
            self._refuse(req, why)
            return
        if orientation is not self._orientation:
            # Fresh session: the person chooses the direction with the first Start.
            self._orientation = orientation
            self._env = envelope_for(self._limits, self._config, orientation)
        self._target = self._env.start_speed_kmh
        self._target_incline = self._initial_incline_target()
        self._start_request = req
        self._start_requested_t = self._now
        self._goto(Trigger.START)
        self._start_phase = None
        self._advance_start()

    def _measured_moving(self) -> bool:
        m = self._measured
        return m is not None and m > ZERO_KMH

    def _slow_moving_belt(self, req: Request, intent: _Intent = _Intent.STOP) -> None:
        """Start (or a turn) asked for on a belt that is already running (started at the
        console): never Start it; take control and ramp it down to a stop first."""
        m = self._measured or 0.0
        self._refuse(
            req,
            f"the belt is already moving ({m:.1f} km/h): slowing it to a stop first; "
            "the walk starts once it has stopped",
        )
        env = self._env
        self._belt_cmd = _BeltCmd.RUN
        self._run_cmd_t = self._now
        self._commanded = min(
            max(snap_down(m, env.speed_min_kmh, env.speed_step_kmh), env.speed_min_kmh),
            self._limits.speed_max_kmh,
        )
        self._target = 0.0
        self._last_down_t = self._last_down_emit_t = self._now
        self._speed_confirmed = False
        self._intent = intent
        self._goto(Trigger.SLOW_MOVING_BELT)
        if not self._has_control:
            self._emit(RequestControl())

    def _deck_refusal(self, env: Envelope) -> str | None:
        """Why the deck is not yet within the incline limit for walking this way, or None."""
        if env.orientation is not Orientation.BACKWARD:
            return None
        limit = env.incline_cap_pct if env.incline_cap_pct is not None else 0.0
        tol = env.incline_tolerance_pct
        if self._incline_reported and self._measured_incline is not None:
            if self._measured_incline > limit + tol:
                return f"the deck is at {self._measured_incline:.1f} %"
            if self._commanded_incline is not None and not self._incline_settled():
                return "the deck is still moving"
            return None
        if self._commanded_incline is not None:
            if self._commanded_incline > limit + tol:
                return f"the deck was set to {self._commanded_incline:.1f} %"
            if not self._incline_settled():
                return "the deck is still moving"
            return None
        if self._limits.incline_supported and env.incline_cap_pct is not None:
            return "the deck's incline is not known"
        return None

    def _advance_start(self) -> None:
        """Move a start (or resume) along, one answer or reading at a time: control, rest
        seen, deck level for walking backward, then StartResume."""
        if self._state is not S.STARTING or self._cmds or not self._link_free():
            return
        phase = self._start_phase
        if phase is _StartPhase.AWAIT_MOTION or self._deferred is not None:
            return
        if not self._has_control:
            if phase is not _StartPhase.AWAIT_CONTROL:
                self._start_phase = _StartPhase.AWAIT_CONTROL
                self._emit(RequestControl())
            return
        resuming = isinstance(self._start_request, Resume)
        if self._rest_since() is None and not self._resume_may_go(resuming):
            if self._belt_moving_now() and phase is not _StartPhase.CONFIRM_REST:
                if self._belt_cmd is _BeltCmd.NONE and self._start_request is not None:
                    self._start_phase = None
                    self._slow_moving_belt(self._start_request)  # started at the console
                    return
                self._abort_start("the belt is moving: it was not started. Press Start again "
                                  "once it has stopped")
                return
            if phase is not _StartPhase.CONFIRM_REST:
                if self._belt_unknown() and (
                    self._now - self._start_requested_t < UNKNOWN_BELT_WAIT_S - EPS
                ):
                    return  # a first reading usually comes within a second
                # Unknown (or silent): a Stop makes rest visible (silence after an accepted
                # Stop, or fresh zeros); it never moves a still belt.
                self._start_phase = _StartPhase.CONFIRM_REST
                self._emit(StopCmd())
            return
        deck = self._deck_refusal(self._env)
        if deck is not None:
            cap = self._env.incline_cap_pct
            if cap is None:
                self._abort_start(f"{deck}: lower it to 0 % at the console before walking "
                                  "backward")
                return
            if phase is not _StartPhase.LEVEL_DECK:
                self._start_phase = _StartPhase.LEVEL_DECK
                self._target_incline = self._env.clamp_incline(0.0)
                if self._target_incline is not None:
                    unknown = self._incline_basis() is None
                    self._emit(SetTargetIncline(self._target_incline))
                    if unknown and not self._incline_reported:
                        # Never reported: assume the worst (the top of the range) and give
                        # the motor the time it would need from there.
                        self._incline_from = self._limits.incline_max_pct
            return
        wait = self._last_incline_cmd_t + self._config.speed_incline_gap_s - self._now
        if wait > EPS:
            return  # starting the belt is a speed change: not within the gap after the deck
        self._belt_cmd_before_start = self._belt_cmd
        self._start_phase = _StartPhase.AWAIT_MOTION
        self._emit(StartResume())

    def _resume_may_go(self, resuming: bool) -> bool:
        """Resume on a machine that keeps reporting its last speed while paused: once the
        pause has long been accepted and the readings are not changing, they are stale."""
        accepted = self._rest_cmd_accepted_t
        return (
            resuming
            and self._belt_cmd is _BeltCmd.PAUSE
            and accepted is not None
            and self._now - accepted >= RESUME_AFTER_PAUSE_S - EPS
            and not self._excess_since
        )

    def _abort_start(self, why: str) -> None:
        self._start_phase = None
        self._alarm(AlarmKind.START_FAILED, why)
        self._goto(Trigger.START_FAILED)

    def _initial_incline_target(self) -> float | None:
        env = self._env
        if env.incline_cap_pct is None or env.incline_min_pct is None:
            return None
        known = (
            self._commanded_incline
            if self._commanded_incline is not None
            else self._measured_incline
        )
        if known is None:
            # Unknown incline: backwards we make sure it is level (or at the floor); forwards
            # we leave the machine alone.
            return env.clamp_incline(0.0) if env.orientation is Orientation.BACKWARD else None
        clamped = env.clamp_incline(known)
        if clamped is not None and abs(clamped - known) <= EPS:
            return known
        return clamped

    def _on_resume(self, req: Resume) -> None:
        why = self._start_refusal(self._orientation, resuming=True)
        if why is not None:
            self._refuse(req, why)
            return
        # Keep the target: we ramp back up to it from the start speed, never jump.
        self._target = max(self._env.clamp_speed(self._target), self._env.start_speed_kmh)
        if self._target_incline is None:
            self._target_incline = self._initial_incline_target()
        self._start_request = req
        self._start_requested_t = self._now
        self._goto(Trigger.RESUME)
        self._start_phase = None
        self._advance_start()

    def _on_pause(self, req: Pause) -> None:
        if self._state is S.STARTING and self._start_phase is not _StartPhase.AWAIT_MOTION:
            self._refuse(req, "the belt has not started yet: press Stop to cancel the start")
            return
        self._emit(PauseCmd())
        self._goto(Trigger.PAUSE)

    def _on_stop_belt(self, req: StopBelt) -> None:
        match self._state:
            case S.RUNNING | S.STOPPING:
                if self._intent is _Intent.END:
                    return  # already stopping to end the session
                self._begin_ramp_stop(Trigger.STOP_BELT, _Intent.STOP)
            case S.STARTING | S.PAUSED:
                if self._belt_cmd is not _BeltCmd.STOP and (
                    self._state is S.PAUSED or self._start_phase is _StartPhase.AWAIT_MOTION
                ):
                    self._emit(StopCmd())
                self._start_phase = None
                self._goto(Trigger.STOP_BELT)
            case _:
                self._turn_ready = False
                self._turn_to = None
                self._goto(Trigger.STOP_BELT)

    def _on_turn_around(self, req: TurnAround) -> None:
        match self._state:
            case S.RUNNING | S.STOPPING:
                if self._intent is _Intent.END:
                    self._refuse(req, "the session is ending")
                    return
                self._begin_ramp_stop(Trigger.TURN_AROUND, _Intent.TURN)
            case S.STARTING | S.PAUSED:
                if self._state is S.PAUSED or self._start_phase is _StartPhase.AWAIT_MOTION:
                    self._emit(StopCmd())
                self._start_phase = None
                self._goto(Trigger.TURN_AROUND)
                self._enter_turn()
            case S.IDLE if self._belt_cmd is _BeltCmd.NONE and self._belt_moving_now():
                self._slow_moving_belt(req, _Intent.TURN)
            case _:
                self._goto(Trigger.TURN_AROUND)
                self._enter_turn()

    def _enter_turn(self) -> None:
        self._turn_to = self._orientation.other
        self._turn_ready = False

    def _on_confirm_turned(self, req: ConfirmTurned) -> None:
        # The dwell was re-checked at this event's time before we got here.
        if not self._turn_ready or self._turn_to is None:
            self._refuse(
                req,
                f"wait until the belt has been still for {self._config.turnaround_dwell_s:g} s",
            )
            return
        new = self._turn_to
        self._orientation = new
        self._env = envelope_for(self._limits, self._config, new)
        self._turn_to = None
        self._turn_ready = False
        self._target = 0.0
        self._over_cap_since = None
        self._goto(Trigger.CONFIRM_TURNED)
        self._notice(OrientationChanged(new))

    def _on_end_session(self, req: EndSession) -> None:
        message = str(req.reason) if req.reason else "session ended"
        match self._state:
            case S.RUNNING | S.STOPPING:
                if self._intent is _Intent.END:
                    return
                self._begin_ramp_stop(
                    Trigger.END_SESSION, _Intent.END, EndReason.COMPLETED, message
                )
            case S.STARTING | S.PAUSED:
                if self._state is S.PAUSED or self._start_phase is _StartPhase.AWAIT_MOTION:
                    self._emit(StopCmd())
                self._end(EndReason.COMPLETED, message, Trigger.END_SESSION)
            case _:
                self._end(EndReason.COMPLETED, message, Trigger.END_SESSION)

    # speed and incline targets ------------------------------------------------

    def _increase_blocker(self) -> str | None:
        """Why no target may go up right now (hard blocks only, not ramp pacing)."""
        if self._link_state is LinkState.STALE:
            return "telemetry is stale: no increases until speed readings are back"
        cap = self._config.heart_rate_cap_bpm
        if cap is not None and self._hr_since is not None:
            return f"heart rate is above your limit of {cap} bpm: no increases"
        return None

    def _setpoint_state_refusal(self) -> str | None:
        if self._state in SETPOINT_STATES:
            return None
        if self._state is S.STOPPING:
            return "the belt is slowing down to stop"
        return "start the belt first"

    def _on_set_speed(self, req: Request, kmh: float | None) -> None:
        why = self._setpoint_state_refusal()
        if why is not None:
            self._refuse(req, why)
            return
        if kmh is None:
            self._refuse(req, "not a valid speed")
            return
        self._set_target_speed(req, kmh)

    def _on_step_speed(self, req: StepSpeed) -> None:
        why = self._setpoint_state_refusal()
        if why is not None:
            self._refuse(req, why)
            return
        steps = req.steps
        if isinstance(steps, bool) or not isinstance(steps, int):
            self._refuse(req, "steps must be a whole number")
            return
        if steps == 0:
            return
        env = self._env
        max_step = self._config.max_step_per_request_kmh
        if env.speed_step_kmh > max_step + EPS:
            # Even one machine increment is more than a key press may change.
            self._refuse(
                req,
                f"this treadmill's speed step {env.speed_step_kmh:g} km/h is more than "
                f"{max_step:g} km/h: set a speed instead",
            )
            return
        delta = steps * env.speed_step_kmh
        if abs(delta) > max_step + EPS:
            delta = math.copysign(snap_down(max_step, 0.0, env.speed_step_kmh), delta)
            self._refuse(req, f"one key press changes the speed by at most {max_step:g} km/h")
        if delta < 0 and self._state is S.RUNNING:
            # "Slower" means slower than now, even in the middle of a ramp up.
            base = min(self._target, self._commanded)
        else:
            base = self._target
        self._set_target_speed(req, base + delta)

    def _set_target_speed(self, req: Request, kmh: float) -> None:
        env = self._env
        notes: list[str] = []
        if kmh > env.speed_cap_kmh + EPS:
            notes.append(f"{self._orientation} speed is capped at {env.speed_cap_kmh:.1f} km/h")
        elif kmh < env.speed_min_kmh - EPS:
            notes.append(
                f"the lowest speed is {env.speed_min_kmh:.1f} km/h: use Stop to stop the belt"
            )
        value = env.clamp_speed(kmh)
        if value > self._target + EPS:
            blocked = self._increase_blocker()
            if blocked is not None:
                self._refuse(req, blocked)
                return
        self._target = value
        for note in notes:
            self._refuse(req, f"{note}; target set to {value:.1f} km/h")

    def _incline_refusal(self) -> str | None:
        if not self._limits.incline_supported:
            return "this treadmill has no incline control"
        if self._env.incline_cap_pct is None:
            return f"no incline changes are possible walking {self._orientation} on this treadmill"
        return self._setpoint_state_refusal()

    def _on_set_incline(self, req: SetIncline, pct: float | None) -> None:
        why = self._incline_refusal()
        if why is not None:
            self._refuse(req, why)
            return
        if pct is None:
            self._refuse(req, "not a valid incline")
            return
        self._set_target_incline(req, pct)

    def _on_step_incline(self, req: StepIncline) -> None:
        why = self._incline_refusal()
        if why is not None:
            self._refuse(req, why)
            return
        steps = req.steps
        if isinstance(steps, bool) or not isinstance(steps, int):
            self._refuse(req, "steps must be a whole number")
            return
        if steps == 0:
            return
        env = self._env
        delta = steps * env.incline_step_pct
        limit = max(MAX_INCLINE_KEY_STEP_PCT, env.incline_step_pct)
        if abs(delta) > limit + EPS:
            delta = math.copysign(limit, delta)
        base = self._target_incline
        if base is None:
            base = self._incline_basis()
        self._set_target_incline(req, (base if base is not None else 0.0) + delta)

    def _set_target_incline(self, req: Request, pct: float) -> None:
        env = self._env
        cap, low = env.incline_cap_pct, env.incline_min_pct
        assert cap is not None and low is not None  # checked by _incline_refusal
        note: str | None = None
        if pct > cap + EPS:
            note = f"{self._orientation} incline is capped at {cap:.1f} %"
            if (
                self._orientation is Orientation.BACKWARD
                and not self._config.backward_incline_unlocked
            ):
                note += (
                    f" (up to {UNLOCKED_BACKWARD_INCLINE_PCT:g} % can be unlocked in the settings)"
                )
        elif pct < low - EPS:
            note = f"the lowest incline here is {low:.1f} %"
        value = env.clamp_incline(pct)
        current = (
            self._target_incline if self._target_incline is not None else self._incline_basis()
        )
        if value is not None and (current is None or value > current + EPS):
            blocked = self._increase_blocker()
            if blocked is not None:
                self._refuse(req, blocked)
                return
        self._target_incline = value
        if note is not None and value is not None:
            self._refuse(req, f"{note}; target set to {value:.1f} %")

    def _incline_basis(self) -> float | None:
        if self._commanded_incline is not None:
            return self._commanded_incline
        return self._measured_incline

    # ------------------------------------------------------------ stopping

    def _begin_ramp_stop(
        self,
        trigger: Trigger,
        intent: _Intent,
        reason: EndReason = EndReason.COMPLETED,
        message: str = "",
    ) -> None:
        """From RUNNING or STOPPING: ramp down (in _drive), then Stop."""
        if self._intent is not _Intent.END:  # an end, once decided, is never downgraded
            self._intent = intent
            if intent is _Intent.END:
                self._end_reason_pending = reason
                self._end_message_pending = message or "session ended"
        self._goto(trigger)

    def _finish_stop(self) -> None:
        intent = self._intent or _Intent.STOP
        self._emit(StopCmd())
        self._intent = None
        match intent:
            case _Intent.END:
                self._end(
                    self._end_reason_pending, self._end_message_pending, Trigger.STOPPED_FOR_END
                )
            case _Intent.TURN:
                self._goto(Trigger.STOPPED_FOR_TURN)
                self._enter_turn()
            case _:
                self._goto(Trigger.STOPPED)

    # ------------------------------------------------------------ conditions over time

    def _check_fatal_conditions(self) -> None:
        for check in (self._check_watchdog, self._check_disobey_windows):
            if self._state is S.ENDED:
                return
            check()

    def _check_conditions(self) -> None:
        for check in (
            self._check_watchdog,
            self._check_disobey_windows,
            self._check_start_timeout,
            self._check_heart_rate_grace,
            self._check_backward_limits,
            self._check_turn_dwell,
            self._check_stop_confirmed,
        ):
            if self._state is S.ENDED:
                return
            check()

    def _check_watchdog(self) -> None:
        if self._belt_unknown():
            return  # nothing commanded, nothing read: not yet acting on a belt we can't see
        if self._rest_since() is not None:
            # At rest (or stopped and silent): silence is normal here.
            if self._link_state is LinkState.STALE:
                self._link_state = LinkState.OK
            return
        age = self._now - self._moving_ref_t()
        cfg = self._config
        if age > cfg.stale_stop_s:
            self._fatal(
                EndReason.TELEMETRY_LOST,
                f"no speed reading for {cfg.stale_stop_s:g} s: Stop sent and the session "
                f"ended. If the belt is still moving, {_ACTIONABLE}",
                stop=True,
                alarm=AlarmKind.TELEMETRY_STALE,
            )
        elif age > cfg.stale_alarm_s:
            self._link_state = LinkState.STALE
            if not self._stale_alarmed:
                self._stale_alarmed = True
                self._alarm(
                    AlarmKind.TELEMETRY_STALE,
                    f"telemetry stale: no speed reading for {cfg.stale_alarm_s:g} s; no speed "
                    f"increases, and Stop at {cfg.stale_stop_s:g} s. If in doubt, {_ACTIONABLE}",
                )

    def _check_disobey_windows(self) -> None:
        now, cfg = self._now, self._config
        since = self._over_cap_since
        if since is not None and now - since >= cfg.disobey_window_s - EPS:
            self._fatal(
                EndReason.NOT_OBEYING,
                f"the belt ran above the {self._env.speed_cap_kmh:.1f} km/h cap for "
                f"{cfg.disobey_window_s:g} s: Stop sent. If it keeps moving, {_ACTIONABLE}",
                stop=True,
                alarm=AlarmKind.NOT_OBEYING,
            )
            return
        lag = self._lag_since
        if lag is not None and not self._under_speed_control():
            self._lag_since = lag = None
        if lag is not None and now - lag >= cfg.not_slowing_window_s - EPS:
            self._fatal(
                EndReason.NOT_OBEYING,
                f"the belt did not slow down to {self._commanded:.1f} km/h within "
                f"{cfg.not_slowing_window_s:g} s: Stop sent. If it keeps moving, {_ACTIONABLE}",
                stop=True,
                alarm=AlarmKind.NOT_OBEYING,
            )

    def _check_start_timeout(self) -> None:
        if self._state is not S.STARTING:
            return
        phase = self._start_phase
        if phase in (_StartPhase.CONFIRM_REST, _StartPhase.LEVEL_DECK) and not self._cmds:
            allowed = self._config.start_timeout_s
            if phase is _StartPhase.LEVEL_DECK:
                allowed += INCLINE_SETTLE_TIMEOUT_S
            if self._now - self._start_requested_t >= allowed:
                why = (
                    "the belt did not come to rest"
                    if phase is _StartPhase.CONFIRM_REST
                    else "the deck did not come down"
                )
                self._abort_start(f"{why}: it was not started. Press Start to try again")
            return
        if phase is not _StartPhase.AWAIT_MOTION:
            return
        run_t = self._run_cmd_t if self._run_cmd_t is not None else self._now
        if self._now - run_t < self._config.start_timeout_s or self._cmds:
            return
        # A belt that starts much later, by surprise, is worse than no start at all.
        self._emit(StopCmd())
        self._alarm(
            AlarmKind.START_FAILED,
            f"the belt did not start within {self._config.start_timeout_s:g} s: Stop sent. "
            "Press Start to try again",
        )
        self._goto(Trigger.START_FAILED)

    def _check_heart_rate_grace(self) -> None:
        cap, since = self._config.heart_rate_cap_bpm, self._hr_since
        if cap is None or since is None or self._hr is None or self._hr <= cap:
            return
        if self._state is not S.RUNNING:
            return
        if self._now - since >= self._config.heart_rate_grace_s:
            self._stop_for_heart_rate(
                f"heart rate still above your limit of {cap} bpm after "
                f"{self._config.heart_rate_grace_s:g} s"
            )

    def _ramp_down_estimate_s(self) -> float:
        env = self._env
        drop = max(self._commanded - env.start_speed_kmh, 0.0)
        return drop / env.ramp_down_kmh_per_s + env.down_interval_s + STOP_ALLOWANCE_S

    def _check_backward_limits(self) -> None:
        if self._orientation is not Orientation.BACKWARD:
            return
        cfg = self._config
        # Start the ramp early enough that the belt is stopped by the limit, not after it.
        est = self._ramp_down_estimate_s()
        live = self._state is S.RUNNING or (
            self._state is S.STOPPING and self._intent is not _Intent.END
        )
        if live and self._total_s + est >= cfg.max_backward_session_s:
            message = (
                f"{cfg.max_backward_session_s / 60:g} min of backward walking in this "
                "session: slowing down to stop; the session ends"
            )
            self._alarm(AlarmKind.SESSION_LIMIT, message)
            self._begin_ramp_stop(Trigger.LIMIT, _Intent.END, EndReason.SESSION_LIMIT, message)
            return
        if self._state is S.RUNNING and self._bout_s + est >= cfg.max_backward_bout_s:
            self._bout_limit_hit = True
            self._alarm(
                AlarmKind.BOUT_LIMIT,
                f"{cfg.max_backward_bout_s / 60:g} min of continuous backward walking: slowing "
                f"down to stop. Turn around or rest for {cfg.bout_rest_s:g} s",
            )
            self._begin_ramp_stop(Trigger.LIMIT, _Intent.BOUT)

    def _check_turn_dwell(self) -> None:
        if self._state is not S.AWAITING_TURN or self._turn_to is None:
            return
        since = self._rest_since()
        ready = since is not None and self._now - since >= self._config.turnaround_dwell_s - EPS
        # Walking backward needs a level deck: the turn waits for it to come down.
        to_env = envelope_for(self._limits, self._config, self._turn_to)
        ready = ready and self._deck_refusal(to_env) is None
        if ready and not self._turn_ready:
            self._turn_ready = True
            self._notice(TurnAroundReady(self._turn_to))
        elif not ready:
            self._turn_ready = False

    def _check_stop_confirmed(self) -> None:
        # Informative only: a Stop accepted but the belt still reads motion ("Stop from the
        # app ignored on some models"). Not a stop trigger: some machines keep reporting the
        # last speed while stopped.
        accepted = self._rest_cmd_accepted_t
        if (
            self._belt_cmd is not _BeltCmd.STOP
            or accepted is None
            or self._stop_unconfirmed_alarmed
            or self._measured is None
            or self._measured < MOTION_KMH
            or not self._telemetry_fresh()
            or self._now - accepted < STOP_NOT_CONFIRMED_S
        ):
            return
        self._stop_unconfirmed_alarmed = True
        self._alarm(
            AlarmKind.NOT_OBEYING,
            f"the belt still reports {self._measured:.1f} km/h {STOP_NOT_CONFIRMED_S:g} s after "
            f"Stop: if it is moving, {_ACTIONABLE}",
        )

    # ------------------------------------------------------------ setpoints

    def _drive(self) -> None:
        if not self._has_control:
            return
        if not self._link_free():
            if self._state is S.RUNNING:
                self._hold_reason = "waiting for the treadmill to accept the last command"
            elif (
                self._state is S.STOPPING
                and self._stops_in_flight == 0
                and self._now - self._in_flight_t >= SLOW_ANSWER_S - EPS
            ):
                # A treadmill this slow to answer would take minutes to ramp down: Stop now
                # (it goes as soon as the machine can take it) rather than keep the belt going.
                self._finish_stop()
            return
        if self._state is S.RUNNING:
            self._drive_running()
        elif self._state is S.STOPPING:
            self._drive_stopping()
        elif self._state is S.AWAITING_TURN:
            self._drive_turn()

    def _drive_turn(self) -> None:
        """Stopped for a turn: a deck above the next orientation's limit comes down first."""
        to = self._turn_to
        if to is None or self._rest_since() is None:
            return  # one axis at a time: the deck moves once the belt is still
        if self._now - self._last_speed_cmd_t < self._config.speed_incline_gap_s - EPS:
            return
        env = envelope_for(self._limits, self._config, to)
        if self._deck_refusal(env) is None or env.incline_cap_pct is None:
            return
        level = env.clamp_incline(0.0)
        if level is None or self._commanded_incline == level:
            return
        unknown = self._incline_basis() is None
        self._emit(SetTargetIncline(level))
        if unknown and not self._incline_reported:
            self._incline_from = self._limits.incline_max_pct

    def _may_step_down(self) -> bool:
        now, env = self._now, self._env
        return (
            now - self._last_down_t >= env.down_interval_s - EPS
            and now - self._last_incline_cmd_t >= self._config.speed_incline_gap_s - EPS
        )

    def _step_down_value(self, floor: float) -> float:
        env = self._env
        # The ramp runs on time, not on answers: a treadmill that answers late gets fewer,
        # larger decreases (at most one key press's worth), so it still slows at the ramp
        # rate instead of at the pace of its answers.
        since = self._now - self._last_down_emit_t
        continuing = self._now - self._last_down_t <= env.down_interval_s + 0.25
        behind = env.ramp_down_kmh_per_s * since if continuing and math.isfinite(since) else 0
        step = env.speed_step_kmh
        most = max(step, self._config.max_step_per_request_kmh)
        drop = min(max(step, round(behind / step) * step), most)  # whole increments only
        return max(
            floor,
            snap_down(self._commanded - drop + EPS, env.speed_min_kmh, env.speed_step_kmh),
        )

    def _drive_stopping(self) -> None:
        floor = min(self._commanded, self._env.start_speed_kmh)
        if self._commanded > floor + EPS:
            if self._may_step_down():
                self._emit(SetTargetSpeed(self._step_down_value(floor)))
            return
        if self._speed_confirmed or self._now - self._last_speed_cmd_t >= STOP_SETTLE_S:
            self._finish_stop()

    def _incline_direction(self) -> int:
        ti = self._target_incline
        if ti is None or self._env.incline_cap_pct is None:
            return 0
        basis = self._incline_basis()
        if basis is None or ti < basis - EPS:
            return -1  # unknown counts as "down": make it known before speeding up
        return 1 if ti > basis + EPS else 0

    def _incline_settled(self) -> bool:
        commanded = self._commanded_incline
        if commanded is None:
            return True
        since = self._now - self._last_incline_cmd_t
        if since >= INCLINE_SETTLE_TIMEOUT_S:
            return True
        if self._incline_reported and self._measured_incline is not None:
            return (
                self._measured_incline_t > self._last_incline_cmd_t
                and abs(self._measured_incline - commanded) <= self._env.incline_tolerance_pct
            )
        start = self._incline_from if self._incline_from is not None else 0.0
        return since >= abs(commanded - start) * INCLINE_S_PER_PCT

    def _incline_above_cap(self) -> bool:
        cap = self._env.incline_cap_pct
        if cap is None:
            return False
        m = self._measured_incline if self._incline_reported else self._commanded_incline
        return m is not None and m > cap + self._env.incline_tolerance_pct

    def _up_blocker(self) -> str | None:
        """Why the next one-step speed increase must wait; None: it may go now."""
        now, env, cfg = self._now, self._env, self._config
        hard = self._increase_blocker()
        if hard is not None:
            return hard
        if (
            self._over_cap_since is not None
            or self._excess_since is not None
            or self._lag_since is not None
        ):
            return "the belt is faster than commanded"
        if not self._telemetry_fresh():
            return "waiting for a fresh speed reading"
        if self._unanswered:
            return "waiting for the treadmill to accept the last command"
        if not self._speed_confirmed:
            return f"waiting for the belt to reach {self._commanded:.1f} km/h"
        if now - self._last_speed_cmd_t < env.up_interval_s - EPS:
            return "ramping up"
        if now - self._last_incline_cmd_t < cfg.speed_incline_gap_s - EPS:
            return "waiting after the incline change"
        if not self._incline_settled():
            return "waiting for the incline to settle"
        if self._incline_above_cap():
            return "the incline is above the cap"
        return None

    def _may_change_incline(self, *, up: bool) -> bool:
        # One axis at a time (rule 4): never in the same call as a speed command (we only
        # get here when nothing was emitted), and only speed_incline_gap_s after the last
        # speed command. Increases also need the belt confirmed at its commanded speed.
        if self._unanswered:
            return False
        if self._now - self._last_speed_cmd_t < self._config.speed_incline_gap_s - EPS:
            return False
        if not up:
            return True
        if self._increase_blocker() is not None or not self._telemetry_fresh():
            return False
        if not self._speed_confirmed:
            return False
        return self._excess_since is None and self._lag_since is None

    def _drive_running(self) -> None:
        # Priority: speed down, incline down, speed up, incline up. Decreases first, so
        # the two are never raised together; one command per call.
        self._hold_reason = None
        tgt, cmd = self._target, self._commanded
        if tgt < cmd - EPS:
            if self._may_step_down():
                self._emit(SetTargetSpeed(self._step_down_value(tgt)))
            return
        direction = self._incline_direction()
        if direction < 0:
            if self._may_change_incline(up=False) and self._target_incline is not None:
                self._emit(SetTargetIncline(self._target_incline))
            else:
                self._hold_reason = "changing the incline first"
            return
        if tgt > cmd + EPS:
            self._hold_reason = self._up_blocker()
            if self._hold_reason is None:
                step = self._env.speed_step_kmh
                self._emit(SetTargetSpeed(min(tgt, round(cmd + step, 2))))
            return
        if direction > 0:
            if self._may_change_incline(up=True) and self._target_incline is not None:
                self._emit(SetTargetIncline(self._target_incline))
            else:
                self._hold_reason = "waiting to change the incline"


def _loses_control(event: object) -> bool:
    if isinstance(event, LinkLost):
        return True
    return isinstance(event, MachineStatus) and event.kind in (
        StatusKind.CONTROL_LOST,
        StatusKind.RESET,
    )


def _unwrap(command: object) -> Command | None:
    if isinstance(command, ApprovedCommand):
        return command.command
    return command if isinstance(command, Command) else None


def _is_setpoint(command: Command) -> bool:
    return isinstance(command, SETPOINT_COMMANDS)
