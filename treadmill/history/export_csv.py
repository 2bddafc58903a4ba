"""The CSV export: one row per telemetry sample, for spreadsheets and quick plots.

Columns: time_s (session seconds), timestamp (wall clock, ISO 8601 UTC), speed_kmh,
incline_pct, distance_m, heart_rate_bpm, orientation. A value the treadmill did not report is
an empty cell, never 0, so a missing heart rate cannot pass for a real reading.

Also the helpers every export needs: the start time, the timestamp format, and the refusal of
a recording without samples (every format raises the same one-line ValueError for it).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from treadmill.history.model import Recording, SessionSummary

HEADER = (
    "time_s", "timestamp", "speed_kmh", "incline_pct", "distance_m", "heart_rate_bpm",
    "orientation",
)  # fmt: skip


def started_at(summary: SessionSummary) -> datetime:
    """The session's start as an aware UTC datetime (a naive stored time is taken as UTC)."""
    start = datetime.fromisoformat(summary.started_at)
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    return start.astimezone(UTC)


def iso_utc(moment: datetime) -> str:
    """`moment` as "YYYY-MM-DDTHH:MM:SS.sssZ" (what TCX readers and most tools expect)."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def require_samples(recording: Recording) -> None:
    """Refuse a recording without samples: an activity file with no data points is rejected
    by FIT's own rules (and by Strava, Garmin Connect and co.), so no format makes one."""
    if not recording.samples:
        raise ValueError(f"session {recording.summary.id} has no samples to export")


def _cell(value: float | int | None) -> str:
    return "" if value is None else str(value)


def to_csv(recording: Recording) -> str:
    """The recording's samples as CSV text with a header row ("\\r\\n" line ends, as csv does).

    Raises ValueError if it has no samples."""
    require_samples(recording)
    start = started_at(recording.summary)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADER)
    for s in recording.samples:
        writer.writerow((
            f"{s.t:.3f}".rstrip("0").rstrip("."),
            iso_utc(start + timedelta(seconds=s.t)),
            _cell(s.speed_kmh),
            _cell(s.incline_pct),
            _cell(s.distance_m),
            _cell(s.heart_rate_bpm),
            s.orientation,
        ))
    return out.getvalue()
