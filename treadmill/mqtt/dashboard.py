"""The dashboard: session events in, the state topic's JSON object out (sans-IO), and its pace.

Keys of `Dashboard.state()` (discovery.py turns each into a Home Assistant entity):

- speed_kmh, incline_pct, distance_m, heart_rate_bpm: the latest telemetry sample (between
  sessions, `idle_sample()`); null when the treadmill does not say.
- elapsed_s: session time of the latest event; remaining_s: the program's walking time left
  (pauses and turn-arounds do not count, as on the session screen).
- facing: "forward", "backward", or "turning" from the start of a turn-around until the person
  confirms it. session_state: "idle" (no session, or its belt not started yet), "running",
  "paused", "turning", "stopping", "ended", from the commands the governor approved.
- program (its title), step ("2/5 backward 2.0 km/h"), last_alarm (one line).
- backward_min: minutes walked backward this session: the time between telemetry samples that
  said backward and faster than 0.05 km/h (a gap over 5 s counts as nothing).
- safety: "<verdict> · <link>". The verdict is "ended: <reason>" once the session has ended,
  "alarm: <kind>" or "refused: <reason>" for 30 s after the latest alarm or refusal, "no alarms"
  otherwise in a session, "idle" between sessions. The link is "link ok", "link stale" (a
  telemetry alarm, until the next reading), "link lost" (the Bluetooth link dropped) or
  "link off" (not connected). It says only what the session's events say: the governor's caps
  and ramps are on the session screen, not here.
- link: "ON" / "OFF", the Bluetooth link to the treadmill.
"""

from __future__ import annotations

import math
from typing import Any, Final

from treadmill.session_events import (
    AlarmRaised,
    CommandSent,
    Confirmed,
    Ended,
    LinkLost,
    OrientationChanged,
    Refused,
    SessionEvent,
    Started,
    StepStarted,
    TelemetryShown,
    TurnAroundBegins,
)

NOTICE_S: Final = 30.0  # how long an alarm or refusal stays in the safety line
SAMPLE_GAP_S: Final = 5.0  # a longer gap between samples is not counted as walking
MOVING_KMH: Final = 0.05
# Home Assistant drops a text sensor state longer than 255 characters.
TEXT_MAX: Final = 255
ORIENTATIONS: Final = ("forward", "backward")


class Dashboard:
    """Session events in, the dashboard's state JSON out (sans-IO)."""

    def __init__(self, device_name: str) -> None:
        self.device_name = device_name
        self._link = False
        self._link_note = "off"  # ok, stale, lost, off
        self._in_session = False
        self._closed = False  # session_closed() until the next Started
        # telemetry
        self._speed: float | None = None
        self._incline: float | None = None
        self._distance: int | None = None
        self._heart: int | None = None
        self._orientation: str | None = None
        self._turning = False
        # time
        self._clock: float | None = None  # session time of the latest event
        self._total_s: float | None = None
        self._done_before_s = 0.0  # walking time of the steps before this one
        self._step_s = 0.0
        self._in_step_s = 0.0
        self._in_step = False
        self._backward_s: float | None = None
        self._last_sample: tuple[float, str | None, float | None] | None = None
        # words
        self._session_state = "idle"
        self._program: str | None = None
        self._step: str | None = None
        self._ended: str | None = None
        self._notice: str | None = None
        self._notice_t = 0.0
        self._last_alarm: str | None = None

    # ---- inputs -------------------------------------------------------------------------

    def apply(self, event: SessionEvent) -> bool:
        """A session event; True when state() changed. After session_closed() only a new
        Started counts: a late event of the closed session must not bring it back."""
        before = self.state()
        if isinstance(event, Started):
            self._start(event)
        elif not self._closed:
            self._advance(event.t)
            self._apply(event)
        return self.state() != before

    def idle_sample(self, speed_kmh: float | None, incline_pct: float | None) -> bool:
        """The belt between sessions (the idle link's readings); ignored during a session,
        whose own telemetry is the truth."""
        if self._in_session:
            return False
        before = self.state()
        self._speed = _number(speed_kmh, 2)
        self._incline = _number(incline_pct, 1)
        return self.state() != before

    def set_link(self, connected: bool) -> bool:
        before = self.state()
        self._link = bool(connected)
        if connected:
            self._link_note = "ok"
        elif self._link_note != "lost":
            self._link_note = "off"
        return self.state() != before

    def session_closed(self) -> bool:
        """Back to idle. The last session's totals (distance, elapsed, backward minutes), the
        last alarm and the last readings stay; what only a session has (program, step, time
        left, heart rate) goes."""
        before = self.state()
        self._in_session = False
        self._closed = True
        self._session_state = "idle"
        self._program = None
        self._step = None
        self._total_s = None
        self._in_step = False
        self._heart = None
        self._turning = False
        self._ended = None
        self._notice = None
        self._last_sample = None
        return self.state() != before

    # ---- output -------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """The state topic's JSON object: every key always present, null for unknown."""
        return {
            "speed_kmh": _number(self._speed, 2),
            "incline_pct": _number(self._incline, 1),
            "distance_m": self._distance,
            "elapsed_s": _whole(self._clock),
            "remaining_s": _whole(self._remaining_s()),
            "heart_rate_bpm": self._heart,
            "facing": "turning" if self._turning else self._orientation,
            "session_state": self._session_state,
            "program": self._program,
            "step": self._step,
            "safety": self._safety_line(),
            "last_alarm": self._last_alarm,
            "backward_min": None if self._backward_s is None else round(self._backward_s / 60, 1),
            "link": "ON" if self._link else "OFF",
        }

    # ---- the events ---------------------------------------------------------------------

    def _start(self, event: Started) -> None:
        self._closed = False
        self._in_session = True
        # A session starts only on a connected treadmill.
        self._link = True
        self._link_note = "ok"
        self._clock = _number(event.t, 3) or 0.0
        minutes = _number(event.minutes, 3)
        self._total_s = None if minutes is None or minutes < 0 else minutes * 60.0
        self._done_before_s = 0.0
        self._step_s = 0.0
        self._in_step_s = 0.0
        self._in_step = False
        self._backward_s = 0.0
        self._last_sample = None
        self._distance = None
        self._heart = None
        self._turning = False
        self._session_state = "idle"  # until the belt is started
        self._program = one_line(event.title or event.program) or None
        self._step = None
        self._ended = None
        self._notice = None
        self._last_alarm = None

    def _advance(self, t: float) -> None:
        if self._ended is not None:
            return  # the clock stops at the end: late Stop re-sends are not walking time
        now = _number(t, 3)
        if now is None:
            return
        # The runner counts a step's time from the belt's start, and not while paused.
        walking = self._in_step and self._session_state in ("running", "stopping")
        if walking and self._clock is not None and now > self._clock:
            self._in_step_s += now - self._clock
        if self._clock is None or now > self._clock:
            self._clock = now
        if self._notice is not None and now - self._notice_t > NOTICE_S:
            self._notice = None

    def _apply(self, event: SessionEvent) -> None:
        match event:
            case TelemetryShown():
                self._telemetry(event)
            case StepStarted():
                if self._in_step:
                    self._done_before_s += self._step_s  # the runner moved on: it is done
                self._in_step = True
                self._step_s = max(0.0, _number(event.duration_s, 3) or 0.0)
                self._in_step_s = 0.0
                self._step = one_line(step_text(event))
            case TurnAroundBegins():
                if self._ended is None:
                    self._turning = True
                    self._session_state = "turning"
            case Confirmed(orientation=orientation) | OrientationChanged(orientation=orientation):
                # Facing the new way; the state stays "turning" until the belt starts again.
                self._turning = False
                if orientation in ORIENTATIONS:
                    self._orientation = orientation
            case CommandSent(op=op):
                self._command(op)
            case Ended(reason=reason):
                self._session_state = "ended"
                self._ended = one_line(reason.replace("_", " ")) or "ended"
                self._turning = False
                if reason == "link_lost":
                    self._lost_link()
            case AlarmRaised(kind=kind, message=message):
                self._last_alarm = one_line(message) or one_line(kind) or None
                self._note(f"alarm: {kind.replace('_', ' ')}", event.t)
                if kind == "telemetry_stale" and self._link_note == "ok":
                    self._link_note = "stale"
                elif kind == "link_lost":
                    self._lost_link()
            case Refused(reason=reason):
                self._note(f"refused: {reason}", event.t)
            case LinkLost():
                self._lost_link()
            case _:
                pass  # cues, notices, status reports: nothing the dashboard shows

    def _telemetry(self, event: TelemetryShown) -> None:
        speed = _number(event.speed_kmh, 2)
        self._speed = speed
        self._incline = _number(event.incline_pct, 1)
        distance = _count(event.distance_m)
        if distance is not None:
            self._distance = distance  # a frame without distance does not reset it
        self._heart = _count(event.heart_rate_bpm)
        orientation = event.orientation if event.orientation in ORIENTATIONS else None
        if orientation is not None:
            self._orientation = orientation
        if self._link_note == "stale":
            self._link_note = "ok"  # a reading again
        t = _number(event.t, 3)
        if t is None:
            return
        last = self._last_sample
        if last is not None and self._backward_s is not None:
            t0, facing0, speed0 = last
            # The interval since the last sample was walked the way that sample said.
            gap = t - t0
            moving = speed0 is not None and speed0 > MOVING_KMH
            if 0 < gap <= SAMPLE_GAP_S and facing0 == "backward" and moving:
                self._backward_s += gap
        self._last_sample = (t, orientation, speed)

    def _command(self, op: str) -> None:
        if self._ended is not None:
            return  # Stop re-sends after the end do not reopen the session
        match op:
            case "pause":
                self._session_state = "paused"
            case "start_resume":
                self._session_state = "running"
                self._turning = False
            case "stop":
                # A turn-around stops the belt on the way: it is still a turn.
                if self._session_state != "turning":
                    self._session_state = "stopping"
            case _:
                pass  # set points and Request Control do not change the state

    def _note(self, text: str, t: float) -> None:
        self._notice = one_line(text)
        self._notice_t = _number(t, 3) or (self._clock or 0.0)

    def _lost_link(self) -> None:
        self._link = False
        self._link_note = "lost"

    # ---- derived ------------------------------------------------------------------------

    def _remaining_s(self) -> float | None:
        if self._total_s is None:
            return None
        walked = self._done_before_s
        if self._in_step:
            walked += min(self._step_s, self._in_step_s)
        return max(0.0, self._total_s - walked)

    def _safety_line(self) -> str:
        if self._ended is not None:
            verdict = f"ended: {self._ended}"
        elif self._notice is not None:
            verdict = self._notice
        elif self._in_session:
            verdict = "no alarms"
        else:
            verdict = "idle"
        return one_line(f"{verdict} · link {self._link_note}")


class Coalescer:
    """At most one publish per interval (2 Hz default); the latest state wins, none is lost.

    The IO side asks `offer(now)` on every change; when it says no, it publishes the state as
    it is then at `due()`. Either way it calls `sent(now)` after publishing."""

    def __init__(self, interval_s: float = 0.5) -> None:
        if not isinstance(interval_s, int | float) or not math.isfinite(interval_s) or (
            interval_s < 0
        ):
            raise ValueError(f"interval_s must be a number of seconds >= 0, got {interval_s!r}")
        self.interval_s = float(interval_s)
        self._last_sent: float | None = None
        self._held = False

    def offer(self, now: float) -> bool:
        """A change at `now`: True if it may go out now, else it is held until due()."""
        if self._last_sent is None or now - self._last_sent >= self.interval_s:
            return True
        self._held = True
        return False

    def due(self) -> float | None:
        """When a held-back change may go (None: nothing held)."""
        if not self._held or self._last_sent is None:
            return None
        return self._last_sent + self.interval_s

    def sent(self, now: float) -> None:
        """A publish happened at `now` (it carried every change until then)."""
        self._last_sent = now
        self._held = False


# ---- helpers ------------------------------------------------------------------------------


def step_text(event: StepStarted) -> str:
    """The step line, "2/5 backward 2.0 km/h", with the incline when there is one."""
    speed = _number(event.speed_kmh, 1)
    text = f"{event.index}/{event.of} {event.orientation}"
    if speed is not None:
        text += f" {speed:.1f} km/h"
    incline = _number(event.incline_pct, 1)
    if incline:
        text += f" {incline:g} %"
    return text


def one_line(text: object) -> str:
    """Whitespace (newlines too) folded to single spaces, at most TEXT_MAX characters."""
    folded = " ".join(str(text).split())
    return folded if len(folded) <= TEXT_MAX else folded[: TEXT_MAX - 1] + "…"


def _number(value: object, digits: int) -> float | None:
    """A finite number rounded, or None (JSON has no NaN, and HA must show unknown)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value):
        return None
    return round(float(value), digits)


def _count(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _whole(value: float | None) -> int | None:
    return None if value is None else int(value + 0.5)
