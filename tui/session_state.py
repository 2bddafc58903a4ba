"""What the session screen shows, as plain data: no textual, no IO.

The session screen keeps one `SessionState`. Session events update it (`apply`), the governor's
read-only view is copied into it (`SafetyView.from_governor`) when the display refreshes, and
the widgets only ever render it. Because it is plain data, a test can build a mid-session state
from a scripted list of events and freeze it (the snapshot tests do exactly that).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from safety import Orientation
from safety.wording import ACTIONABLE
from treadmill.programs import Program, TurnAroundItem, WalkItem, plan
from treadmill.session import SessionEvent, describe_next

HISTORY_S = 120  # the sparkline shows the last two minutes, one bar per second

# Alarms that get the loud banner (and the bell): the person may have to act at the console.
LOUD_ALARMS = frozenset({
    "telemetry_stale",
    "link_lost",
    "safety_key",
    "control_lost",
    "not_obeying",
    "started_at_console",
    "stopped_at_console",
    "machine_reset",
    "command_failed",
    "internal_error",
})

# How each way a session can end is named on screen.
END_TITLES = {
    "completed": "SESSION COMPLETE",
    "emergency_stop": "EMERGENCY STOP",
    "safety_key": "SAFETY KEY PULLED",
    "control_lost": "CONTROL TAKEN BY ANOTHER APP",
    "machine_reset": "TREADMILL RESET",
    "stopped_at_console": "STOPPED AT THE CONSOLE",
    "started_at_console": "STARTED AT THE CONSOLE",
    "link_lost": "BLUETOOTH LINK LOST",
    "telemetry_lost": "NO DATA FROM THE TREADMILL",
    "not_obeying": "TREADMILL NOT OBEYING",
    "heart_rate": "HEART RATE LIMIT",
    "session_limit": "BACKWARD TIME LIMIT",
    "error": "SESSION ENDED: ERROR",
}

# Ends after which the app may no longer be able to stop the belt: say what to do instead.
CONSOLE_ADVICE = ACTIONABLE  # one source for the wording (safety/wording.py)
NO_LINK_ENDS = frozenset({"link_lost", "telemetry_lost"})
CALM_ENDS = frozenset({"completed", "emergency_stop"})


@dataclass(frozen=True)
class SafetyView:
    """A copy of the governor's read-only properties, taken at one refresh."""

    state: str = "idle"
    orientation: str = "forward"
    target_speed_kmh: float = 0.0
    commanded_speed_kmh: float = 0.0
    measured_speed_kmh: float | None = None
    commanded_incline_pct: float | None = None
    measured_incline_pct: float | None = None
    speed_cap_kmh: float = 0.0
    ramping: bool = False
    hold_reason: str | None = None
    telemetry_age_s: float | None = None
    link_state: str = "ok"
    has_control: bool = False
    ended_reason: str | None = None
    backward_bout_s: float = 0.0
    backward_total_s: float = 0.0

    @classmethod
    def from_governor(cls, governor: Any) -> SafetyView:
        ended = governor.ended_reason
        return cls(
            state=str(governor.state),
            orientation=str(governor.orientation),
            target_speed_kmh=governor.target_speed_kmh,
            commanded_speed_kmh=governor.commanded_speed_kmh,
            measured_speed_kmh=governor.measured_speed_kmh,
            commanded_incline_pct=governor.commanded_incline_pct,
            measured_incline_pct=governor.measured_incline_pct,
            speed_cap_kmh=governor.speed_cap_kmh,
            ramping=governor.ramping,
            hold_reason=governor.hold_reason,
            telemetry_age_s=governor.telemetry_age_s,
            link_state=str(governor.link_state),
            has_control=governor.has_control,
            ended_reason=None if ended is None else str(ended),
            backward_bout_s=governor.backward_bout_s,
            backward_total_s=governor.backward_total_s,
        )

    def describe(self) -> str:
        """The safety line: cap, ramp, watchdog/link, who has control."""
        parts = [self.state.replace("_", " ").upper(), f"cap {self.speed_cap_kmh:.1f} km/h"]
        if self.state in ("ended", "stopped", "idle", "awaiting_turn", "paused"):
            pass
        elif self.state == "stopping":
            parts.append("ramping down")
        elif self.ramping:
            arrow = "up" if self.target_speed_kmh > self.commanded_speed_kmh else "down"
            parts.append(f"ramping {arrow} to {self.target_speed_kmh:.1f}")
        elif self.hold_reason:
            parts.append(f"holding: {self.hold_reason}")
        else:
            parts.append("steady")
        age = self.telemetry_age_s
        match self.link_state:
            case "ok":
                link = "link OK" if age is None or age < 1.0 else f"link OK ({age:.0f} s)"
            case "stale":
                link = f"LINK STALE ({age:.0f} s)" if age is not None else "LINK STALE"
            case _:
                link = "LINK LOST"
        parts.append(link)
        parts.append("app has control" if self.has_control else "console has control")
        return " │ ".join(parts)


def sentences(text: str) -> str:
    """Capital letters where sentences start (governor messages join clauses with '. ')."""
    text = text.strip()
    parts = text.split(". ")
    return ". ".join(p[:1].upper() + p[1:] for p in parts)


def clock(seconds: float) -> str:
    """m:ss (or h:mm:ss) for the big digits; never negative."""
    total = max(0, int(seconds + 0.5))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def distance_text(metres: int | None) -> tuple[str, str]:
    """The distance digits and their unit."""
    if metres is None:
        return "-", "m"
    if metres >= 10_000:
        return f"{metres / 1000:.1f}", "km"
    return str(metres), "m"


@dataclass
class SessionState:
    """Everything the session screen renders."""

    program: Program
    device: str = ""
    simulated: bool = False
    # time
    elapsed_s: float = 0.0
    step_index: int | None = None
    step_of: int = 0
    step_orientation: str = "forward"
    step_speed_kmh: float = 0.0
    step_incline_pct: float = 0.0
    step_duration_s: float = 0.0
    step_remaining_s: float = 0.0
    done_before_step_s: float = 0.0
    phase: str = "starting"  # starting, walking, turning, confirm, ended
    turn_to: str | None = None
    # telemetry
    speed_kmh: float | None = None
    incline_pct: float | None = None
    incline_reported: bool = True
    distance_m: int | None = None
    heart_rate_bpm: int | None = None
    orientation: str = "forward"
    history: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY_S))
    history_second: int | None = None  # the session second the last bar belongs to
    samples: int = 0
    # words
    cue: str = ""
    next_text: str = ""
    status: str = ""
    status_kind: str = "info"  # info, refused, alarm
    alarm_kind: str | None = None
    alarm_message: str = ""
    ended_reason: str | None = None
    ended_message: str = ""
    summary: str = ""  # filled in when the runner returns
    safety: SafetyView = field(default_factory=SafetyView)

    # ---- derived ------------------------------------------------------------------------

    @property
    def total_s(self) -> float:
        return self.program.duration_s

    @property
    def walked_s(self) -> float:
        """Walking time done (turn-arounds and pauses do not count)."""
        if self.step_index is None:
            return 0.0
        in_step = max(0.0, self.step_duration_s - self.step_remaining_s)
        return min(self.total_s, self.done_before_step_s + in_step)

    @property
    def remaining_s(self) -> float:
        return max(0.0, self.total_s - self.walked_s)

    @property
    def ended(self) -> bool:
        return self.ended_reason is not None

    @property
    def end_title(self) -> str:
        return END_TITLES.get(self.ended_reason or "", "SESSION ENDED")

    @property
    def end_text(self) -> str:
        """The title and the governor's message, without saying the same thing twice."""
        message = sentences(self.ended_message)
        if not message:
            return self.end_title
        if message.lower().startswith(self.end_title.lower()):
            message = message[len(self.end_title):].lstrip(" :.-")
            message = message[:1].upper() + message[1:]
        return f"{self.end_title}: {message}" if message else self.end_title

    # ---- updates ------------------------------------------------------------------------

    def on_telemetry(self, data: dict[str, Any], t: float | None = None) -> None:
        """A telemetry event at session time t (called for every sample: keep it cheap)."""
        speed = data.get("speed_kmh")
        self.speed_kmh = speed
        self.incline_pct = data.get("incline_pct")
        self.incline_reported = bool(data.get("incline_reported", True))
        if data.get("distance_m") is not None:
            self.distance_m = data["distance_m"]
        self.heart_rate_bpm = data.get("heart_rate_bpm")
        if data.get("orientation"):
            self.orientation = data["orientation"]
        # One bar per second (the latest reading in it), so the chart changes at most once a
        # second however fast telemetry comes.
        second = int(t) if t is not None else self.samples
        value = speed if speed is not None else 0.0
        if second == self.history_second and self.history:
            self.history[-1] = value
        else:
            self.history.append(value)
            self.history_second = second
        self.samples += 1

    def apply(self, event: SessionEvent) -> None:
        """Any session event (telemetry included)."""
        d = event.data
        match event.type:
            case "telemetry":
                self.on_telemetry(d, event.t)
            case "started":
                self.device = d.get("device", self.device)
            case "step":
                self._on_step(d)
            case "cue":
                self.cue = d.get("text", "")
            case "turn_around":
                self.phase = "turning"
                self.turn_to = d.get("to")
                self.cue = d.get("text", "")
            case "turn_around_ready" | "confirm_needed":
                self.phase = "confirm"
                self.turn_to = d.get("to", self.turn_to)
                if event.type == "confirm_needed":
                    self.cue = d.get("text", "")
            case "confirmed" | "orientation":
                self.orientation = d.get("orientation", self.orientation)
            case "refused":
                self.set_status(f"refused: {d.get('reason', '')}", "refused")
            case "alarm":
                kind = d.get("kind", "")
                message = d.get("message", "")
                self.set_status(f"ALARM: {sentences(message)}", "alarm")
                if kind in LOUD_ALARMS:
                    self.alarm_kind = kind
                    self.alarm_message = sentences(message)
            case "link_lost":
                self.alarm_kind = "link_lost"
                self.alarm_message = (f"Bluetooth link lost: the app can no longer stop the belt. "
                                      f"{CONSOLE_ADVICE.capitalize()}.")
            case "command_failed":
                self.set_status(f"command failed: {d.get('op')}: {d.get('error')}", "alarm")
            case "notice":
                self.set_status(d.get("text", ""), "info")
            case "ended":
                self.phase = "ended"
                self.ended_reason = d.get("reason", "error")
                self.ended_message = d.get("message", "")
                self.cue = ""
                kind = "info" if self.ended_reason in CALM_ENDS else "alarm"
                self.set_status(self.end_text, kind)

    def set_status(self, text: str, kind: str = "info") -> None:
        self.status = text
        self.status_kind = kind

    def _on_step(self, d: dict[str, Any]) -> None:
        index = int(d.get("index", 1))
        self.step_index = index
        self.step_of = int(d.get("of", len(self.program.steps)))
        self.step_orientation = d.get("orientation", "forward")
        self.step_speed_kmh = float(d.get("speed_kmh", 0.0))
        self.step_incline_pct = float(d.get("incline_pct", 0.0))
        self.step_duration_s = float(d.get("duration_s", 0.0))
        self.step_remaining_s = self.step_duration_s
        self.done_before_step_s = sum(s.duration_s for s in self.program.steps[: index - 1])
        self.phase = "walking"
        self.turn_to = None
        if d.get("cue"):
            self.cue = d["cue"]
        self.next_text = self.describe_after(index)

    def describe_after(self, index: int) -> str:
        """What comes after step `index` (1-based), in the runner's own words."""
        items = plan(self.program, start=Orientation.FORWARD)
        for position, item in enumerate(items):
            if isinstance(item, WalkItem) and item.index == index:
                upcoming: TurnAroundItem | WalkItem | None = (
                    items[position + 1] if position + 1 < len(items) else None
                )
                return describe_next(upcoming) or ""
        return ""
