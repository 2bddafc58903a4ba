"""What the FTMS client reports: telemetry samples, machine status events, link loss."""

from __future__ import annotations

from dataclasses import dataclass, field

from safety import StatusKind
from treadmill.ftms import MachineStatus, MachineStatusOp, StopPause, TreadmillData


@dataclass(frozen=True)
class TelemetrySample:
    """One Treadmill Data notification, timestamped with the client's clock (seconds)."""

    t: float
    speed_kmh: float | None
    incline_pct: float | None = None
    distance_m: int | None = None
    elapsed_s: int | None = None
    heart_rate_bpm: int | None = None
    raw: TreadmillData = field(default_factory=TreadmillData, compare=False, repr=False)

    @classmethod
    def from_data(cls, t: float, data: TreadmillData) -> TelemetrySample:
        # Heart rate 0 is "no contact" on real machines (see the Kettler capture), not a value.
        heart_rate = data.heart_rate_bpm if data.heart_rate_bpm else None
        return cls(
            t=t,
            speed_kmh=data.speed_kmh,
            incline_pct=data.incline_pct,
            distance_m=data.distance_m,
            elapsed_s=data.elapsed_s,
            heart_rate_bpm=heart_rate,
            raw=data,
        )


@dataclass(frozen=True)
class StatusEvent:
    """A Fitness Machine Status notification. Unknown op codes arrive as kind UNKNOWN."""

    t: float
    kind: StatusKind
    code: int
    value: float | int | None = None

    @classmethod
    def from_status(cls, t: float, status: MachineStatus) -> StatusEvent:
        return cls(t=t, kind=status_kind(status), code=status.op, value=status.value)


@dataclass(frozen=True)
class LinkLost:
    """The Bluetooth link dropped (or the client was closed while streaming)."""

    t: float
    reason: str = "disconnected"


ClientEvent = TelemetrySample | StatusEvent | LinkLost


def status_kind(status: MachineStatus) -> StatusKind:
    match status.op:
        case MachineStatusOp.RESET:
            return StatusKind.RESET
        case MachineStatusOp.STOPPED_OR_PAUSED_BY_USER:
            if status.value == StopPause.PAUSE:
                return StatusKind.PAUSED_BY_USER
            return StatusKind.STOPPED_BY_USER
        case MachineStatusOp.STOPPED_BY_SAFETY_KEY:
            return StatusKind.SAFETY_KEY
        case MachineStatusOp.STARTED_OR_RESUMED_BY_USER:
            return StatusKind.STARTED_BY_USER
        case MachineStatusOp.TARGET_SPEED_CHANGED:
            return StatusKind.TARGET_SPEED_CHANGED
        case MachineStatusOp.TARGET_INCLINE_CHANGED:
            return StatusKind.TARGET_INCLINE_CHANGED
        case MachineStatusOp.CONTROL_PERMISSION_LOST:
            return StatusKind.CONTROL_LOST
        case _:
            return StatusKind.UNKNOWN
