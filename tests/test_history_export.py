"""The exports (CSV, TCX, FIT) read back with independent parsers: csv, xml.etree, fitdecode."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import fitdecode
import pytest

from treadmill.history.export import FORMATS, default_filename, export
from treadmill.history.export_csv import HEADER, to_csv
from treadmill.history.export_fit import to_fit
from treadmill.history.export_tcx import AX_NS, TCX_NS, to_tcx
from treadmill.history.model import Recording, Sample, SessionSummary, StoredEvent

NS = {"t": TCX_NS, "x": AX_NS}
START = "2026-12-01T18:30:00+00:00"
# (orientation, speed km/h, seconds): forward, backward, forward, as a program runs them.
PLAN = (("forward", 3.6, 20), ("backward", 1.8, 20), ("forward", 3.6, 20))


def make_recording(speed_factor: float = 1.0, plan=PLAN) -> Recording:
    """Samples at 1 Hz, distance growing with speed, heart rate unknown at first and now and
    then; a "step" event at the start of each step."""
    samples, events = [], []
    t, distance = 0, 0.0
    for number, (orientation, speed, seconds) in enumerate(plan, start=1):
        speed *= speed_factor
        events.append(StoredEvent(float(t), "step", {
            "index": number, "of": len(plan), "orientation": orientation, "speed_kmh": speed,
            "incline_pct": 0.0, "duration_s": float(seconds), "cue": f"Step {number}",
        }))
        if number == 2:
            events.append(StoredEvent(float(t) + 0.5, "alarm", {"kind": "x", "message": "y"}))
        for _ in range(seconds):
            hr = None if t < 5 or t % 7 == 0 else 90 + t // 3
            samples.append(Sample(float(t), speed, 0.0, round(distance), hr, orientation))
            distance += speed / 3.6
            t += 1
    samples.append(Sample(float(t), plan[-1][1] * speed_factor, 0.0, round(distance), 120,
                          plan[-1][0]))
    summary = SessionSummary(
        id=7, program="taster", title="Five-minute taster", device="Sim T1", simulated=True,
        started_at=START, ended_at="2026-12-01T18:31:00+00:00", duration_s=float(t),
        distance_m=round(distance),
    )
    return Recording(summary, tuple(samples), tuple(events))


def empty_recording() -> Recording:
    summary = SessionSummary(id=8, program="taster", title="T", device="Sim", simulated=True,
                             started_at=START)
    return Recording(summary, (), ())


def expected_laps(recording: Recording) -> list[tuple[float, float]]:
    """(seconds, metres) per step, from the samples at the step boundaries."""
    by_t = {s.t: s.distance_m for s in recording.samples}
    return [(end - start, by_t[end] - by_t[start]) for start, end, _ in recording.steps()]


# CSV


def test_csv_has_a_header_and_one_row_per_sample():
    recording = make_recording()
    rows = list(csv.DictReader(io.StringIO(to_csv(recording))))
    assert tuple(rows[0]) == HEADER
    assert len(rows) == len(recording.samples)
    first, later = rows[0], rows[25]
    assert first["time_s"] == "0" and first["timestamp"] == "2026-12-01T18:30:00.000Z"
    assert first["heart_rate_bpm"] == ""  # unknown stays empty, never 0
    assert later["orientation"] == "backward" and later["speed_kmh"] == "1.8"
    assert later["timestamp"] == "2026-12-01T18:30:25.000Z"
    assert int(rows[-1]["distance_m"]) == recording.samples[-1].distance_m


# TCX


def test_tcx_has_one_lap_per_step_matching_the_samples():
    recording = make_recording()
    root = ET.fromstring(to_tcx(recording))
    activity = root.find("t:Activities/t:Activity", NS)
    assert activity is not None and activity.get("Sport") == "Other"
    assert activity.findtext("t:Id", namespaces=NS) == "2026-12-01T18:30:00.000Z"
    laps = activity.findall("t:Lap", NS)
    assert len(laps) == 3
    for lap, (seconds, metres) in zip(laps, expected_laps(recording), strict=True):
        assert float(lap.findtext("t:TotalTimeSeconds", namespaces=NS)) == pytest.approx(seconds)
        assert float(lap.findtext("t:DistanceMeters", namespaces=NS)) == pytest.approx(metres)
        assert lap.findtext("t:Intensity", namespaces=NS) == "Active"
        assert lap.findtext("t:TriggerMethod", namespaces=NS) == "Manual"
        assert lap.findtext("t:Calories", namespaces=NS) == "0"
    assert [lap.get("StartTime") for lap in laps] == [
        "2026-12-01T18:30:00.000Z", "2026-12-01T18:30:20.000Z", "2026-12-01T18:30:40.000Z"]
    assert "backward" in laps[1].findtext("t:Notes", namespaces=NS)
    assert "forward" in laps[0].findtext("t:Notes", namespaces=NS)
    points = root.findall(".//t:Trackpoint", NS)
    assert len(points) == len(recording.samples)
    with_hr = [p for p in points if p.find("t:HeartRateBpm/t:Value", NS) is not None]
    assert 0 < len(with_hr) < len(points)
    assert float(points[25].findtext("t:Extensions/x:TPX/x:Speed", namespaces=NS)) == (
        pytest.approx(0.5))


def test_tcx_sport_is_running_above_six_and_a_half_kmh():
    fast = ET.fromstring(to_tcx(make_recording(speed_factor=3.0)))
    assert fast.find("t:Activities/t:Activity", NS).get("Sport") == "Running"


def test_tcx_without_step_events_has_one_lap_for_everything():
    recording = make_recording()
    recording = Recording(recording.summary, recording.samples,
                          tuple(e for e in recording.events if e.type != "step"))
    root = ET.fromstring(to_tcx(recording))
    laps = root.findall(".//t:Lap", NS)
    assert len(laps) == 1
    assert float(laps[0].findtext("t:DistanceMeters", namespaces=NS)) == (
        recording.samples[-1].distance_m)
    assert len(root.findall(".//t:Trackpoint", NS)) == len(recording.samples)


# FIT


def read_fit(data: bytes) -> dict[str, list[fitdecode.FitDataMessage]]:
    found: dict[str, list[fitdecode.FitDataMessage]] = {}
    with fitdecode.FitReader(io.BytesIO(data), check_crc=fitdecode.CrcCheck.RAISE) as reader:
        for frame in reader:
            if isinstance(frame, fitdecode.FitDataMessage):
                found.setdefault(frame.name, []).append(frame)
    return found


def test_fit_decodes_with_a_record_per_sample_and_a_lap_per_step():
    recording = make_recording()
    fit = read_fit(to_fit(recording))
    file_id = fit["file_id"][0]
    assert file_id.get_value("type") == "activity"
    assert file_id.get_value("manufacturer") == "development"
    assert len(fit["device_info"]) == 1
    assert len(fit["record"]) == len(recording.samples)
    start = datetime(2026, 12, 1, 18, 30, tzinfo=UTC)
    assert fit["record"][0].get_value("timestamp") == start
    assert fit["record"][-1].get_value("timestamp") == start + timedelta(seconds=60)
    assert fit["record"][25].get_value("enhanced_speed") == pytest.approx(0.5)
    assert fit["record"][-1].get_value("distance") == pytest.approx(
        recording.samples[-1].distance_m)
    assert not fit["record"][0].has_field("heart_rate")  # unknown: left out
    assert fit["record"][-1].get_value("heart_rate") == 120
    timer = [(e.get_value("event"), e.get_value("event_type")) for e in fit["event"]]
    assert timer == [("timer", "start"), ("timer", "stop_all")]

    laps = fit["lap"]
    assert len(laps) == len(recording.steps())
    for lap, (seconds, metres) in zip(laps, expected_laps(recording), strict=True):
        assert lap.get_value("total_elapsed_time") == pytest.approx(seconds)
        assert lap.get_value("total_timer_time") == pytest.approx(seconds)
        assert lap.get_value("total_distance") == pytest.approx(metres)
    assert laps[1].get_value("start_time") == start + timedelta(seconds=20)

    session = fit["session"][0]
    assert session.get_value("sport") == "walking"
    assert session.get_value("sub_sport") == "treadmill"
    assert session.get_value("num_laps") == 3
    assert session.get_value("total_distance") == pytest.approx(
        recording.samples[-1].distance_m, abs=0.01)
    assert session.get_value("total_timer_time") == pytest.approx(
        recording.summary.duration_s, abs=0.001)
    assert session.get_value("start_time") == start
    activity = fit["activity"][0]
    assert activity.get_value("num_sessions") == 1
    assert activity.get_value("total_timer_time") == pytest.approx(60.0)
    assert activity.has_field("local_timestamp")


def test_fit_passes_fit_tools_own_activity_checks():
    from fit_tool import FitFile, validate_fit_file

    report = validate_fit_file(FitFile.from_bytes(to_fit(make_recording())).records)
    assert report.findings == []


def test_an_interrupted_session_with_a_late_first_step_keeps_every_sample_and_metre():
    # Died mid-session (no duration stored); the first step began 2 s in (belt start-up).
    whole = make_recording()
    summary = SessionSummary(**{**whole.summary.__dict__, "duration_s": 0.0, "ended_at": None,
                                "end_reason": "interrupted"})
    events = tuple(StoredEvent(e.t + 2 if e.t == 0 else e.t, e.type, e.data)
                   for e in whole.events)
    recording = Recording(summary, whole.samples, events)
    fit = read_fit(to_fit(recording))
    assert len(fit["record"]) == len(recording.samples)
    assert sum(lap.get_value("total_distance") for lap in fit["lap"]) == pytest.approx(
        recording.samples[-1].distance_m)
    assert fit["session"][0].get_value("total_timer_time") == pytest.approx(60.0)
    root = ET.fromstring(to_tcx(recording))
    assert len(root.findall(".//t:Trackpoint", NS)) == len(recording.samples)
    assert sum(float(e.text) for e in root.findall("t:Activities/t:Activity/t:Lap/"
                                                   "t:DistanceMeters", NS)) == pytest.approx(
        recording.samples[-1].distance_m)


def test_fit_laps_say_which_were_backward():
    fit = read_fit(to_fit(make_recording()))
    steps = {s.get_value("message_index"): s for s in fit["workout_step"]}
    names = [steps[lap.get_value("wkt_step_index")].get_value("wkt_step_name")
             for lap in fit["lap"]]
    assert names == ["Forward 3.6 km/h", "Backward 1.8 km/h", "Forward 3.6 km/h"]
    assert fit["workout"][0].get_value("num_valid_steps") == 3
    assert steps[1].get_value("duration_time") == pytest.approx(20)
    assert steps[1].get_value("custom_target_speed_low") == pytest.approx(0.5)


def test_fit_sport_is_running_above_six_and_a_half_kmh():
    fit = read_fit(to_fit(make_recording(speed_factor=3.0)))
    assert fit["session"][0].get_value("sport") == "running"
    assert {lap.get_value("sport") for lap in fit["lap"]} == {"running"}


# The dispatcher


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_gives_bytes_for_every_format(fmt):
    data = export(make_recording(), fmt)
    assert isinstance(data, bytes) and data


@pytest.mark.parametrize("convert", [to_csv, to_tcx, to_fit, *(
    (lambda r, f=fmt: export(r, f)) for fmt in FORMATS)])
def test_a_recording_without_samples_is_refused_in_one_line(convert):
    # FIT requires at least one record in an activity file, and sites reject empty TCX too.
    with pytest.raises(ValueError, match=r"^session 8 has no samples to export$"):
        convert(empty_recording())


def test_export_refuses_an_unknown_format():
    with pytest.raises(ValueError, match="unknown export format 'gpx'"):
        export(make_recording(), "gpx")


def test_default_filename_names_the_start_and_the_program():
    summary = make_recording().summary
    assert default_filename(summary, "fit") == "2026-12-01-1830-taster.fit"
    odd = SessionSummary(id=1, program="My Walk/2", title="", device="", simulated=False,
                         started_at="2026-01-02T03:04:05Z")
    assert default_filename(odd, "csv") == "2026-01-02-0304-my-walk-2.csv"
