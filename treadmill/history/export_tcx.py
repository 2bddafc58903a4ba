"""The TCX export (Garmin Training Center XML v2), and the laps that TCX and FIT share.

One `Lap` per program step (`Recording.steps()`), or one lap for everything when the recording
has no step events. A lap runs from its step's start to the next step's start, so a turn-around
between two steps belongs to the step before it, and the laps' distances add up to the
session's. Each sample belongs to exactly one lap: the last one that started at or before it.

TCX has no notion of walking backwards, so each lap's `Notes` says which step it was and its
orientation ("Step 2 of 3: backward, 2.0 km/h, incline 0 %"). Speeds go in the ActivityExtension
v2 `TPX/Speed` (m/s). Calories are 0: the treadmill does not measure them, and a
forward-walking formula would be wrong for backward walking, so we do not invent a number.
A heart rate of 0 (no strap) is treated as unknown, since TCX only allows 1-255 bpm.
"""

from __future__ import annotations

import bisect
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime, timedelta

from treadmill.history.export_csv import iso_utc, require_samples, started_at
from treadmill.history.model import Recording, Sample, StoredEvent

TCX_NS = "http://www.garmin.com/xmlschemas/TrainingCenterDatabase/v2"
AX_NS = "http://www.garmin.com/xmlschemas/ActivityExtension/v2"
AX_PREFIX = "ns3"  # the prefix Garmin Connect's own TCX files use for it
# Above this average speed the session counts as a run (brisk walking tops out around here).
RUNNING_ABOVE_KMH = 6.5


@dataclass(frozen=True)
class Lap:
    """One program step as a lap: session-time bounds, distance and its own samples."""

    start_t: float
    end_t: float
    distance_m: float
    samples: tuple[Sample, ...]
    step: StoredEvent | None  # its "step" event; None when the recording had none

    @property
    def duration_s(self) -> float:
        return max(0.0, self.end_t - self.start_t)

    @property
    def orientation(self) -> str:
        if self.step is not None:
            return str(self.step.data.get("orientation", "forward"))
        return self.samples[0].orientation if self.samples else "forward"

    def heart_rates(self) -> list[int]:
        return [hr for s in self.samples if (hr := s.heart_rate_bpm)]

    def describe(self) -> str:
        """What the lap was, for people ("Step 2 of 3: backward, 2.0 km/h, incline 0 %")."""
        if self.step is None:
            return "Whole session"
        d = self.step.data
        return (
            f"Step {d.get('index', '?')} of {d.get('of', '?')}: {self.orientation}, "
            f"{_num(d.get('speed_kmh', 0.0))} km/h, incline {_num(d.get('incline_pct', 0.0))} %"
        )


def session_end(recording: Recording) -> float:
    """The session's last second: its recorded duration, or its last sample if that is later."""
    end = recording.summary.duration_s
    if recording.samples:
        end = max(end, recording.samples[-1].t)
    return end


def distance_at(samples: tuple[Sample, ...], t: float) -> float:
    """The latest known distance at or before session time `t` (0 before the first one)."""
    known = 0.0
    for s in samples:
        if s.t > t:
            break
        if s.distance_m is not None:
            known = float(s.distance_m)
    return known


def total_distance(recording: Recording) -> float:
    if not recording.samples:
        return float(recording.summary.distance_m or 0)
    return distance_at(recording.samples, session_end(recording))


def laps(recording: Recording) -> list[Lap]:
    """The recording's laps, in order (at least one)."""
    samples = recording.samples
    steps = recording.steps()
    if steps:
        bounds = [(start, end, event) for start, end, event in steps]
    else:
        bounds = [(0.0, session_end(recording), None)]
    # Whatever came before the first step (the belt starting up) belongs to the first lap.
    first = min([0.0, bounds[0][0], *([samples[0].t] if samples else [])])
    bounds[0] = (first, bounds[0][1], bounds[0][2])
    starts = [b[0] for b in bounds]
    owned: list[list[Sample]] = [[] for _ in bounds]
    for s in samples:
        owned[max(0, bisect.bisect_right(starts, s.t) - 1)].append(s)
    return [
        Lap(
            start_t=start,
            end_t=end,
            distance_m=max(0.0, distance_at(samples, end) - distance_at(samples, start)),
            samples=tuple(mine),
            step=event,
        )
        for (start, end, event), mine in zip(bounds, owned, strict=True)
    ]


def average_speed_kmh(recording: Recording) -> float:
    """Distance over time when the distance is known, else the mean of the reported speeds."""
    elapsed = session_end(recording) - min([0.0, *(s.t for s in recording.samples[:1])])
    distance = total_distance(recording)
    if distance > 0 and elapsed > 0:
        return distance / elapsed * 3.6
    speeds = [s.speed_kmh for s in recording.samples if s.speed_kmh is not None]
    return sum(speeds) / len(speeds) if speeds else 0.0


def is_running(recording: Recording) -> bool:
    return average_speed_kmh(recording) > RUNNING_ABOVE_KMH


def _num(value: float) -> str:
    """A number without float noise or a pointless ".0" ("2.5", "300", "0")."""
    return f"{float(value):.3f}".rstrip("0").rstrip(".")


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrib: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrib)
    if text is not None:
        element.text = text
    return element


def _trackpoint(track: ET.Element, start: datetime, s: Sample) -> None:
    point = _sub(track, "Trackpoint")
    _sub(point, "Time", iso_utc(start + timedelta(seconds=s.t)))
    # The schema fixes the order: Time, (Position, Altitude), Distance, HeartRate, Extensions.
    if s.distance_m is not None:
        _sub(point, "DistanceMeters", _num(s.distance_m))
    if s.heart_rate_bpm:
        _sub(_sub(point, "HeartRateBpm"), "Value", str(int(s.heart_rate_bpm)))
    if s.speed_kmh is not None:
        tpx = _sub(_sub(point, "Extensions"), f"{AX_PREFIX}:TPX")
        _sub(tpx, f"{AX_PREFIX}:Speed", _num(s.speed_kmh / 3.6))


def _lap(activity: ET.Element, start: datetime, lap: Lap) -> None:
    element = _sub(activity, "Lap", StartTime=iso_utc(start + timedelta(seconds=lap.start_t)))
    _sub(element, "TotalTimeSeconds", _num(lap.duration_s))
    _sub(element, "DistanceMeters", _num(lap.distance_m))
    speeds = [s.speed_kmh for s in lap.samples if s.speed_kmh is not None]
    if speeds:
        _sub(element, "MaximumSpeed", _num(max(speeds) / 3.6))
    _sub(element, "Calories", "0")
    rates = lap.heart_rates()
    if rates:
        _sub(_sub(element, "AverageHeartRateBpm"), "Value", str(round(sum(rates) / len(rates))))
        _sub(_sub(element, "MaximumHeartRateBpm"), "Value", str(max(rates)))
    _sub(element, "Intensity", "Active")
    _sub(element, "TriggerMethod", "Manual")
    if lap.samples:  # a Track must hold at least one Trackpoint (a step may have none)
        track = _sub(element, "Track")
        for s in lap.samples:
            _trackpoint(track, start, s)
    _sub(element, "Notes", lap.describe())


def to_tcx(recording: Recording) -> bytes:
    """The recording as a TCX document (UTF-8 bytes with an XML declaration); ValueError if it
    has no samples."""
    require_samples(recording)
    start = started_at(recording.summary)
    # The namespaces are declared by hand, as Garmin's own files do: ElementTree's
    # default_namespace refuses unqualified attributes such as Sport and StartTime.
    root = ET.Element(
        "TrainingCenterDatabase", {"xmlns": TCX_NS, f"xmlns:{AX_PREFIX}": AX_NS}
    )
    activity = _sub(
        _sub(root, "Activities"), "Activity", Sport="Running" if is_running(recording) else "Other"
    )
    _sub(activity, "Id", iso_utc(start))
    for lap in laps(recording):
        _lap(activity, start, lap)
    summary = recording.summary
    _sub(activity, "Notes", f"{summary.title} ({summary.program}) on {summary.device}")
    ET.indent(root)
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True)
