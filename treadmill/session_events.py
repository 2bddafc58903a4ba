"""What a session tells its front ends: one frozen dataclass per kind of event.

Every event has `t` (seconds since the session started) and `as_dict()`, the JSON object the
headless `--json` mode prints (`{"t": ..., "type": KIND, ...fields}`), so the wire format is
the dataclass itself. Front ends match on the classes, never on strings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """Something that happened in a session, at session time `t`."""

    t: float
    type: ClassVar[str] = "event"
    # Fields left out of as_dict() when None (they are optional on the wire).
    optional: ClassVar[frozenset[str]] = frozenset()

    @property
    def data(self) -> dict[str, Any]:
        """The event's own fields (everything but `t`)."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name != "t" and not (f.name in self.optional and getattr(self, f.name) is None)
        }

    def as_dict(self) -> dict[str, Any]:
        """The JSON object for `--json`; non-finite numbers become null (JSON has no NaN)."""
        return {"t": round(self.t, 2), "type": self.type, **_finite(self.data)}


def _finite(data: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in data.items()
    }


@dataclass(frozen=True, slots=True)
class Started(SessionEvent):
    type: ClassVar[str] = "started"
    program: str
    title: str
    device: str
    minutes: float


@dataclass(frozen=True, slots=True)
class StepStarted(SessionEvent):
    type: ClassVar[str] = "step"
    index: int
    of: int
    orientation: str
    speed_kmh: float
    incline_pct: float
    duration_s: float
    cue: str


@dataclass(frozen=True, slots=True)
class CommandSent(SessionEvent):
    """A command the governor approved, on its way to the treadmill."""

    type: ClassVar[str] = "command"
    op: str
    value: float | None


@dataclass(frozen=True, slots=True)
class CommandFailed(SessionEvent):
    type: ClassVar[str] = "command_failed"
    op: str
    error: str


@dataclass(frozen=True, slots=True)
class Refused(SessionEvent):
    type: ClassVar[str] = "refused"
    reason: str


@dataclass(frozen=True, slots=True)
class AlarmRaised(SessionEvent):
    type: ClassVar[str] = "alarm"
    kind: str
    message: str


@dataclass(frozen=True, slots=True)
class TurnAroundBegins(SessionEvent):
    type: ClassVar[str] = "turn_around"
    to: str
    text: str


@dataclass(frozen=True, slots=True)
class TurnAroundReady(SessionEvent):
    type: ClassVar[str] = "turn_around_ready"
    to: str


@dataclass(frozen=True, slots=True)
class ConfirmNeeded(SessionEvent):
    type: ClassVar[str] = "confirm_needed"
    to: str
    text: str


@dataclass(frozen=True, slots=True)
class Confirmed(SessionEvent):
    type: ClassVar[str] = "confirmed"
    orientation: str


@dataclass(frozen=True, slots=True)
class OrientationChanged(SessionEvent):
    type: ClassVar[str] = "orientation"
    orientation: str


@dataclass(frozen=True, slots=True)
class Cue(SessionEvent):
    type: ClassVar[str] = "cue"
    optional: ClassVar[frozenset[str]] = frozenset({"countdown_s"})
    text: str
    countdown_s: float | None = None


@dataclass(frozen=True, slots=True)
class TelemetryShown(SessionEvent):
    """One telemetry sample, as the person should see it (coalesced for slow front ends)."""

    type: ClassVar[str] = "telemetry"
    speed_kmh: float | None
    incline_pct: float | None
    incline_reported: bool
    distance_m: int | None
    heart_rate_bpm: int | None
    orientation: str


@dataclass(frozen=True, slots=True)
class StatusReported(SessionEvent):
    """A Fitness Machine Status notification from the treadmill."""

    type: ClassVar[str] = "status"
    kind: str
    code: int
    value: float | int | None


@dataclass(frozen=True, slots=True)
class LinkLost(SessionEvent):
    type: ClassVar[str] = "link_lost"
    reason: str


@dataclass(frozen=True, slots=True)
class Ended(SessionEvent):
    type: ClassVar[str] = "ended"
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class NoticeShown(SessionEvent):
    type: ClassVar[str] = "notice"
    text: str


EVENT_TYPES: dict[str, type[SessionEvent]] = {
    cls.type: cls
    for cls in (
        Started, StepStarted, CommandSent, CommandFailed, Refused, AlarmRaised,
        TurnAroundBegins, TurnAroundReady, ConfirmNeeded, Confirmed, OrientationChanged, Cue,
        TelemetryShown, StatusReported, LinkLost, Ended, NoticeShown,
    )
}  # fmt: skip


def event_from_dict(t: float, type_: str, data: dict[str, Any]) -> SessionEvent:
    """Rebuild an event from its JSON form (`--json` lines, tests, snapshots)."""
    return EVENT_TYPES[type_](t, **data)
