"""What a recorded session is made of, as plain frozen records (the store reads and writes
them; the exports only read them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SessionSummary:
    """One session as the history lists it. Times: `started_at` / `ended_at` are wall-clock
    ISO 8601 in UTC ("2026-12-01T18:30:00+00:00"); durations are session seconds."""

    id: int
    program: str  # the program's name ("taster")
    title: str  # its title ("Five-minute taster")
    device: str  # the treadmill's name
    simulated: bool
    started_at: str
    ended_at: str | None = None  # None: still running, or interrupted (see end_reason)
    duration_s: float = 0.0
    distance_m: int | None = None
    backward_s: float = 0.0
    longest_backward_bout_s: float = 0.0
    alarms: int = 0
    end_reason: str | None = None  # an EndReason value, or "interrupted" (the process died)
    pain: int | None = None  # 0-10, rated after the session (None: skipped)
    effort: int | None = None


@dataclass(frozen=True)
class Sample:
    """One telemetry sample at session time `t` (seconds since the session started)."""

    t: float
    speed_kmh: float | None
    incline_pct: float | None
    distance_m: int | None  # the session's distance (it adds up across the machine's restarts)
    heart_rate_bpm: int | None
    orientation: str  # "forward" / "backward"


@dataclass(frozen=True)
class StoredEvent:
    """A session event other than telemetry, as `SessionEvent.as_dict()` gave it: `type` is
    the event's kind ("step", "turn_around", "alarm", "refused", "ended", ...) and `data` its
    fields."""

    t: float
    type: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Recording:
    """A whole session: what exports are made from."""

    summary: SessionSummary
    samples: tuple[Sample, ...]
    events: tuple[StoredEvent, ...]

    def steps(self) -> list[tuple[float, float, StoredEvent]]:
        """Each program step as (start t, end t, its "step" event); the last ends with the
        session."""
        starts = [e for e in self.events if e.type == "step"]
        end_t = self.summary.duration_s
        if self.samples:
            end_t = max(end_t, self.samples[-1].t)
        out = []
        for i, event in enumerate(starts):
            stop = starts[i + 1].t if i + 1 < len(starts) else end_t
            out.append((event.t, stop, event))
        return out
