"""Fault injection scripts: what goes wrong, when (seconds after the first connection), how long."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from treadmill.ftms import ResultCode


class FaultKind(StrEnum):
    """Fault kinds, by the name the CLI and `parse_fault` use."""

    DISCONNECT = "disconnect"  # link drops; with a duration the device is also off the air
    DROP_NOTIFICATIONS = "drop-notifications"  # no Treadmill Data
    DELAY_NOTIFICATIONS = "delay-notifications"  # Treadmill Data `value` s late
    DELAY_INDICATION = "delay-indication"  # control point answered `value` s late
    NO_INDICATION = "no-indication"  # control point never answered
    RESULT_UNSUPPORTED = "result-unsupported"  # control writes answered 0x02, not executed
    RESULT_INVALID = "result-invalid"  # ... 0x03
    RESULT_FAILED = "result-failed"  # ... 0x04
    RESULT_NOT_PERMITTED = "result-not-permitted"  # ... 0x05
    CONTROL_LOST = "control-lost"  # status 0xFF, later writes 0x05 until control is requested
    SAFETY_KEY = "safety-key"  # status 0x03, emergency stop; key back in after the duration
    STOP_AT_CONSOLE = "stop-at-console"  # status 0x02 param 1
    PAUSE_AT_CONSOLE = "pause-at-console"  # status 0x02 param 2
    OVERSHOOT = "overshoot"  # the belt runs to target + `value` km/h
    IGNORE_SETPOINTS = "ignore-setpoints"  # speed/incline targets answered success, ignored
    CORRUPT_PACKET = "corrupt-packet"  # Treadmill Data bytes inverted
    SHORT_PACKET = "short-packet"  # Treadmill Data truncated to half
    LONG_PACKET = "long-packet"  # Treadmill Data with 3 extra trailing bytes
    UNKNOWN_STATUS = "unknown-status"  # Machine Status with op code `value` (0x42) + 2 bytes
    SPEED_UP_BY_ITSELF = "speed-up-by-itself"  # target rises by `value` km/h, no command
    # A person at the console, no control needed; at 0 (the first connection) the machine is
    # already started or tilted when the client arrives.
    CONSOLE_START = "console-start"  # START, then speed `value` km/h: status 0x04, 0x05
    CONSOLE_INCLINE = "console-incline"  # deck to `value` %: status 0x06


DEFAULT_VALUES: dict[FaultKind, float] = {
    FaultKind.DELAY_NOTIFICATIONS: 2.0,
    FaultKind.DELAY_INDICATION: 5.0,
    FaultKind.OVERSHOOT: 1.0,
    FaultKind.SPEED_UP_BY_ITSELF: 1.0,
    FaultKind.UNKNOWN_STATUS: 0x42,
    FaultKind.CONSOLE_START: 6.0,
    FaultKind.CONSOLE_INCLINE: 5.0,
}

FORCED_RESULTS: dict[FaultKind, ResultCode] = {
    FaultKind.RESULT_UNSUPPORTED: ResultCode.OP_CODE_NOT_SUPPORTED,
    FaultKind.RESULT_INVALID: ResultCode.INVALID_PARAMETER,
    FaultKind.RESULT_FAILED: ResultCode.OPERATION_FAILED,
    FaultKind.RESULT_NOT_PERMITTED: ResultCode.CONTROL_NOT_PERMITTED,
}

# Without a duration these garble just the next Treadmill Data packet; with one, every packet
# in the window (a lone bad packet is the common real case).
PACKET_FAULTS = frozenset({FaultKind.CORRUPT_PACKET, FaultKind.SHORT_PACKET, FaultKind.LONG_PACKET})


@dataclass(frozen=True)
class Fault:
    """One scripted fault: `kind` at `at` s after the first connection, for `duration` s
    (None: forever, or once for packet faults), with an optional `value` (see FaultKind)."""

    kind: FaultKind
    at: float
    duration: float | None = None
    value: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", FaultKind(self.kind))
        if self.at < 0:
            raise ValueError(f"fault time must not be negative: {self.at}")
        if self.duration is not None and self.duration <= 0:
            raise ValueError(f"fault duration must be positive: {self.duration}")

    @property
    def amount(self) -> float:
        """`value`, or the kind's default (0 when it has none)."""
        return self.value if self.value is not None else DEFAULT_VALUES.get(self.kind, 0.0)

    @property
    def end(self) -> float | None:
        return None if self.duration is None else self.at + self.duration

    def in_window(self, elapsed: float) -> bool:
        """Is this fault in force `elapsed` s after the first connection (as a window)?"""
        if self.duration is None and self.kind in PACKET_FAULTS:
            return False  # one-shot: handled as an event, not a window
        return self.at <= elapsed and (self.duration is None or elapsed < self.at + self.duration)

    def __str__(self) -> str:
        text = f"{self.kind}@{self.at:g}"
        if self.duration is not None:
            text += f"+{self.duration:g}"
        if self.value is not None:
            text += f"={self.value:g}"
        return text


_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_FAULT_RE = re.compile(
    rf"(?P<kind>[a-z-]+)@(?P<at>{_NUMBER})(?:\+(?P<duration>{_NUMBER}))?"
    rf"(?:=(?P<value>-?{_NUMBER}|0x[0-9a-fA-F]+))?"
)


def parse_fault(text: str) -> Fault:
    """Parse "KIND@SECONDS", "KIND@SECONDS+DURATION" or "KIND@SECONDS=VALUE" (or both)."""
    match = _FAULT_RE.fullmatch(text.strip())
    kinds = ", ".join(k.value for k in FaultKind)
    if match is None:
        raise ValueError(
            f"bad fault {text!r}: expected KIND@SECONDS[+DURATION][=VALUE]; valid kinds: {kinds}"
        )
    try:
        kind = FaultKind(match["kind"])
    except ValueError:
        raise ValueError(f"unknown fault kind {match['kind']!r}; valid kinds: {kinds}") from None
    value = match["value"]
    return Fault(
        kind=kind,
        at=float(match["at"]),
        duration=float(match["duration"]) if match["duration"] else None,
        value=None if value is None else float(int(value, 16) if "x" in value else value),
    )
