"""Value types the governor speaks: machine limits, input events, commands and notices."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum


class Orientation(StrEnum):
    """Which way the person faces. The belt itself always runs the same way."""

    FORWARD = "forward"
    BACKWARD = "backward"

    @property
    def other(self) -> Orientation:
        return Orientation.BACKWARD if self is Orientation.FORWARD else Orientation.FORWARD


class Source(StrEnum):
    """Where a request comes from; the governor decides what each source may do."""

    KEYBOARD = "keyboard"  # the person at the laptop (TUI keys, CLI)
    PROGRAM = "program"  # a guided program's steps
    REMOTE = "remote"  # MQTT / Home Assistant: may only stop or pause (safety/rules/remote.py)


class GovernorState(StrEnum):
    """The governor's session state; the transition table lives in safety/states.py."""

    IDLE = "idle"  # nothing started yet in this session
    STARTING = "starting"  # control requested and/or Start sent, waiting for belt motion
    RUNNING = "running"  # belt moving under our speed control
    PAUSED = "paused"  # Pause sent (or paused at the console); Resume restarts slowly
    STOPPING = "stopping"  # ramping down before sending Stop
    STOPPED = "stopped"  # Stop sent; may start again in the same orientation
    AWAITING_TURN = "awaiting_turn"  # stopped; waiting for dwell + the person's confirmation
    ENDED = "ended"  # terminal: only StopCmd (on EmergencyStop) is ever emitted again


class LinkState(StrEnum):
    OK = "ok"
    STALE = "stale"  # no speed reading for longer than stale_alarm_s while the belt may move
    LOST = "lost"  # the runner reported LinkLost


class StatusKind(StrEnum):
    """Fitness Machine Status (0x2ADA) op codes, as decoded by the FTMS client."""

    RESET = "reset"  # 0x01
    STOPPED_BY_USER = "stopped_by_user"  # 0x02 param 1
    PAUSED_BY_USER = "paused_by_user"  # 0x02 param 2
    SAFETY_KEY = "safety_key"  # 0x03
    STARTED_BY_USER = "started_by_user"  # 0x04
    TARGET_SPEED_CHANGED = "target_speed_changed"  # 0x05, value km/h
    TARGET_INCLINE_CHANGED = "target_incline_changed"  # 0x06, value %
    CONTROL_LOST = "control_lost"  # 0xFF
    UNKNOWN = "unknown"  # anything else seen in the wild


class AlarmKind(StrEnum):
    TELEMETRY_STALE = "telemetry_stale"
    LINK_LOST = "link_lost"
    SAFETY_KEY = "safety_key"
    CONTROL_LOST = "control_lost"
    MACHINE_RESET = "machine_reset"
    STOPPED_AT_CONSOLE = "stopped_at_console"
    PAUSED_AT_CONSOLE = "paused_at_console"
    STARTED_AT_CONSOLE = "started_at_console"
    NOT_OBEYING = "not_obeying"
    HEART_RATE = "heart_rate"
    BOUT_LIMIT = "bout_limit"
    SESSION_LIMIT = "session_limit"
    COMMAND_FAILED = "command_failed"
    START_FAILED = "start_failed"
    INTERNAL_ERROR = "internal_error"


class EndReason(StrEnum):
    COMPLETED = "completed"  # EndSession: the person or the program finished
    USER_STOP = "completed"  # an alias of COMPLETED, for callers that think in stops
    EMERGENCY_STOP = "emergency_stop"
    SAFETY_KEY = "safety_key"
    CONTROL_LOST = "control_lost"
    MACHINE_RESET = "machine_reset"
    STOPPED_AT_CONSOLE = "stopped_at_console"
    STARTED_AT_CONSOLE = "started_at_console"
    LINK_LOST = "link_lost"
    TELEMETRY_LOST = "telemetry_lost"
    NOT_OBEYING = "not_obeying"
    HEART_RATE = "heart_rate"
    SESSION_LIMIT = "session_limit"
    ERROR = "error"  # a command failed, or the governor hit an internal error


def _finite(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True, slots=True)
class MachineLimits:
    """What the treadmill says it can do (FTMS Supported Speed / Inclination Range)."""

    speed_min_kmh: float
    speed_max_kmh: float
    speed_step_kmh: float
    incline_min_pct: float
    incline_max_pct: float
    incline_step_pct: float
    incline_supported: bool = True

    def __post_init__(self) -> None:
        # Refuse nonsense here, before any motion, rather than misbehave mid-session.
        s = (self.speed_min_kmh, self.speed_max_kmh, self.speed_step_kmh)
        if not all(_finite(x) for x in s):
            raise ValueError(f"machine speed range must be finite numbers, got {s}")
        if self.speed_min_kmh < 0 or self.speed_max_kmh < self.speed_min_kmh:
            raise ValueError(
                f"machine speed range {self.speed_min_kmh}..{self.speed_max_kmh} km/h is invalid"
            )
        if self.speed_step_kmh <= 0:
            raise ValueError(f"machine speed increment {self.speed_step_kmh} km/h must be > 0")
        if self.incline_supported:
            i = (self.incline_min_pct, self.incline_max_pct, self.incline_step_pct)
            if not all(_finite(x) for x in i):
                raise ValueError(f"machine incline range must be finite numbers, got {i}")
            if self.incline_max_pct < self.incline_min_pct or self.incline_step_pct <= 0:
                raise ValueError(
                    f"machine incline range {self.incline_min_pct}..{self.incline_max_pct} % "
                    f"step {self.incline_step_pct} is invalid"
                )


# ---------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class Event:
    """Anything handed to Governor.handle(); t is monotonic seconds."""

    t: float


@dataclass(frozen=True, slots=True)
class Tick(Event):
    """Time passes. The runner must send these at >= 4 Hz (10 Hz recommended)."""


@dataclass(frozen=True, slots=True)
class Telemetry(Event):
    """One Treadmill Data (0x2ACD) frame; None = field absent in this frame."""

    speed_kmh: float | None
    incline_pct: float | None = None
    heart_rate_bpm: int | None = None


@dataclass(frozen=True, slots=True)
class MachineStatus(Event):
    kind: StatusKind
    value: float | None = None


@dataclass(frozen=True, slots=True)
class LinkLost(Event):
    """The BLE link dropped. The runner must discard any queued commands."""


@dataclass(frozen=True, slots=True)
class CommandAccepted(Event):
    """The control point answered success (0x80, op, 0x01) for this command."""

    command: Command


@dataclass(frozen=True, slots=True)
class CommandFailed(Event):
    """The control point answered a non-success result, or the write timed out."""

    command: Command
    reason: str


@dataclass(frozen=True, slots=True)
class CommandVoided(Event):
    """An approved command was never written (voided by a Stop, or expired in a queue)."""

    command: Command


@dataclass(frozen=True, slots=True)
class Request(Event):
    """Something a person, a program or a remote asks for. The governor may refuse."""

    # Keyword-only, so that subclasses keep their positional fields: Start(t, orientation).
    source: Source = field(default=Source.KEYBOARD, kw_only=True)


@dataclass(frozen=True, slots=True)
class Start(Request):
    orientation: Orientation


@dataclass(frozen=True, slots=True)
class SetSpeed(Request):
    kmh: float


@dataclass(frozen=True, slots=True)
class StepSpeed(Request):
    steps: int


@dataclass(frozen=True, slots=True)
class SetIncline(Request):
    pct: float


@dataclass(frozen=True, slots=True)
class StepIncline(Request):
    steps: int


@dataclass(frozen=True, slots=True)
class Pause(Request):
    pass


@dataclass(frozen=True, slots=True)
class Resume(Request):
    pass


@dataclass(frozen=True, slots=True)
class StopBelt(Request):
    """Normal end of walking: ramp down, then Stop."""


@dataclass(frozen=True, slots=True)
class EmergencyStop(Request):
    """Stop now, bypassing every ramp; ends the session. Always answered with StopCmd."""


@dataclass(frozen=True, slots=True)
class TurnAround(Request):
    pass


@dataclass(frozen=True, slots=True)
class ConfirmTurned(Request):
    pass


@dataclass(frozen=True, slots=True)
class AcknowledgeStop(Request):
    """The person has seen the stop alarm and takes over: Stop is no longer re-sent."""


@dataclass(frozen=True, slots=True)
class EndSession(Request):
    reason: str = ""


# ---------------------------------------------------------------- outputs


@dataclass(frozen=True, slots=True)
class Command:
    """A Fitness Machine Control Point procedure. Only sent wrapped in ApprovedCommand."""


@dataclass(frozen=True, slots=True)
class RequestControl(Command):
    pass  # op 0x00


@dataclass(frozen=True, slots=True)
class StartResume(Command):
    pass  # op 0x07


@dataclass(frozen=True, slots=True)
class SetTargetSpeed(Command):
    kmh: float  # op 0x02, uint16 in 0.01 km/h


@dataclass(frozen=True, slots=True)
class SetTargetIncline(Command):
    pct: float  # op 0x03, sint16 in 0.1 %


@dataclass(frozen=True, slots=True)
class StopCmd(Command):
    pass  # op 0x08 param 0x01


@dataclass(frozen=True, slots=True)
class PauseCmd(Command):
    pass  # op 0x08 param 0x02


SETPOINT_COMMANDS: tuple[type[Command], ...] = (SetTargetSpeed, SetTargetIncline)


@dataclass(frozen=True, slots=True)
class Notice:
    """Something to tell the person; never sent to the treadmill."""


@dataclass(frozen=True, slots=True)
class Refused(Notice):
    request: Request
    reason: str


@dataclass(frozen=True, slots=True)
class Alarm(Notice):
    kind: AlarmKind
    message: str


@dataclass(frozen=True, slots=True)
class TurnAroundReady(Notice):
    to: Orientation


@dataclass(frozen=True, slots=True)
class OrientationChanged(Notice):
    orientation: Orientation


@dataclass(frozen=True, slots=True)
class Ended(Notice):
    reason: EndReason
    message: str
