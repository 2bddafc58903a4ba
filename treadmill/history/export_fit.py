"""The FIT export: a FIT activity file built with fit_tool (BSD-3; never Garmin's FIT SDK).

Messages, in file order: file_id (type activity, manufacturer "development" 255, product 0,
a serial derived from the treadmill's name), device_info, a workout with one workout_step per
program step, a timer-start event, one record per sample with each lap after its last record,
a timer stop_all event, one session and one activity.

Forward and backward laps: FIT has no "walking backwards", so the file carries the program it
followed. Each lap's `wkt_step_index` (fit_tool: `workout_step_index`) points, 0-based, at the
workout_step message for its program step, whose `wkt_step_name` (fit_tool:
`workout_step_name`) reads "Backward 2.0 km/h" or "Forward 4.0 km/h", with the step's
duration (time), custom speed target and cue (`notes`). These are standard profile fields, so
any reader that understands workouts can put the step name next to the lap; a developer field
would be just as clean to write but is more often dropped by readers. With no step events
there is one lap without `wkt_step_index` and no workout.

Units as fit_tool takes them: timestamps in ms since the UNIX epoch (FIT stores whole seconds,
so a sub-second sample time loses its fraction), durations in s, distances in m, speeds in m/s.
`local_timestamp` is raw FIT seconds in this computer's time zone (FIT's "local_date_time").
"""

from __future__ import annotations

import zlib
from datetime import datetime, timedelta

from fit_tool import FitFileBuilder
from fit_tool.data_message import DataMessage
from fit_tool.profile.messages.activity_message import ActivityMessage
from fit_tool.profile.messages.device_info_message import DeviceInfoMessage
from fit_tool.profile.messages.event_message import EventMessage
from fit_tool.profile.messages.file_id_message import FileIdMessage
from fit_tool.profile.messages.lap_message import LapMessage
from fit_tool.profile.messages.record_message import RecordMessage
from fit_tool.profile.messages.session_message import SessionMessage
from fit_tool.profile.messages.workout_message import WorkoutMessage
from fit_tool.profile.messages.workout_step_message import WorkoutStepMessage
from fit_tool.profile.profile_type import (
    Activity,
    Event,
    EventType,
    FileType,
    Intensity,
    LapTrigger,
    Manufacturer,
    SessionTrigger,
    Sport,
    SubSport,
    WorkoutStepDuration,
    WorkoutStepTarget,
)

from treadmill.history.export_csv import require_samples, started_at
from treadmill.history.export_tcx import Lap, is_running, laps, session_end, total_distance
from treadmill.history.model import Recording, Sample

# Seconds between the UNIX epoch and FIT's (1989-12-31T00:00:00Z).
FIT_EPOCH_S = 631065600
PRODUCT = 0  # a development manufacturer has no product list; 0 claims nothing
# One local message number per kind, so the builder defines each kind once instead of again
# every time the kinds alternate. Records with and without a heart rate differ in fields, so
# they get one number each.
_LOCAL = {
    "file_id": 0, "device_info": 1, "workout": 2, "workout_step": 3, "event": 4, "record": 5,
    "record_hr": 6, "lap": 7, "session": 8, "activity": 9,
}  # fmt: skip


def _ms(start: datetime, t: float) -> int:
    return round((start + timedelta(seconds=t)).timestamp() * 1000)


def _serial(device: str) -> int:
    """A stable 32-bit serial for the treadmill, so one machine's files group together."""
    return zlib.crc32(device.encode("utf-8")) or 1  # 0 means "invalid" to some readers


def _step_name(lap: Lap) -> str:
    speed = float(lap.step.data.get("speed_kmh", 0.0)) if lap.step else 0.0
    return f"{lap.orientation.capitalize()} {speed:.1f} km/h"


def _workout(recording: Recording, all_laps: list[Lap], sport: Sport) -> list[DataMessage]:
    stepped = [lap for lap in all_laps if lap.step is not None]
    if not stepped:
        return []
    workout = WorkoutMessage(local_id=_LOCAL["workout"])
    workout.workout_name = recording.summary.title
    workout.sport = sport
    workout.sub_sport = SubSport.TREADMILL
    workout.num_valid_steps = len(stepped)
    out: list[DataMessage] = [workout]
    for position, lap in enumerate(stepped):
        assert lap.step is not None
        data = lap.step.data
        step = WorkoutStepMessage(local_id=_LOCAL["workout_step"])
        step.message_index = position
        step.workout_step_name = _step_name(lap)
        # The type fields first: fit_tool picks the value's sub-field (and its scale) from them.
        step.duration_type = WorkoutStepDuration.TIME
        step.duration_time = float(data.get("duration_s", lap.duration_s))
        step.target_type = WorkoutStepTarget.SPEED
        step.target_value = 0  # 0: a custom range follows, not a speed zone
        speed_ms = float(data.get("speed_kmh", 0.0)) / 3.6
        step.custom_target_speed_low = speed_ms
        step.custom_target_speed_high = speed_ms
        step.intensity = Intensity.ACTIVE
        if data.get("cue"):
            step.notes = str(data["cue"])
        out.append(step)
    return out


def _record(start: datetime, s: Sample) -> RecordMessage:
    has_hr = bool(s.heart_rate_bpm)  # 0 means no strap, not a heart that stopped
    record = RecordMessage(local_id=_LOCAL["record_hr" if has_hr else "record"])
    record.timestamp = _ms(start, s.t)
    if s.distance_m is not None:
        record.distance = float(s.distance_m)
    if s.speed_kmh is not None:
        record.enhanced_speed = s.speed_kmh / 3.6
    if has_hr:
        record.heart_rate = s.heart_rate_bpm
    return record


def _lap(start: datetime, lap: Lap, index: int, last: bool, sport: Sport) -> LapMessage:
    message = LapMessage(local_id=_LOCAL["lap"])
    message.message_index = index
    message.timestamp = _ms(start, lap.end_t)
    message.start_time = _ms(start, lap.start_t)
    message.event = Event.LAP
    message.event_type = EventType.STOP
    message.lap_trigger = LapTrigger.SESSION_END if last else LapTrigger.MANUAL
    message.total_elapsed_time = lap.duration_s
    message.total_timer_time = lap.duration_s  # the timer never pauses during a session
    message.total_distance = lap.distance_m
    message.sport = sport
    message.sub_sport = SubSport.TREADMILL
    message.intensity = Intensity.ACTIVE
    if lap.step is not None:
        message.workout_step_index = index
    if lap.duration_s > 0:
        message.enhanced_avg_speed = lap.distance_m / lap.duration_s
    speeds = [s.speed_kmh for s in lap.samples if s.speed_kmh is not None]
    if speeds:
        message.enhanced_max_speed = max(speeds) / 3.6
    rates = lap.heart_rates()
    if rates:
        message.avg_heart_rate = round(sum(rates) / len(rates))
        message.max_heart_rate = max(rates)
    return message


def _event(timestamp_ms: int, event_type: EventType) -> EventMessage:
    event = EventMessage(local_id=_LOCAL["event"])
    event.timestamp = timestamp_ms
    event.event = Event.TIMER
    event.event_type = event_type
    return event


def to_fit(recording: Recording) -> bytes:
    """The recording as a FIT activity file (bytes, CRC included); ValueError if it has no
    samples (FIT requires at least one record in an activity file)."""
    require_samples(recording)
    summary = recording.summary
    start = started_at(recording.summary)
    sport = Sport.RUNNING if is_running(recording) else Sport.WALKING
    all_laps = laps(recording)
    begin_t = all_laps[0].start_t
    end_t = max(session_end(recording), all_laps[-1].end_t)
    elapsed = max(0.0, end_t - begin_t)
    distance = total_distance(recording)
    serial = _serial(summary.device)

    builder = FitFileBuilder(auto_define=True, min_string_size=32)
    file_id = FileIdMessage(local_id=_LOCAL["file_id"])
    file_id.type = FileType.ACTIVITY
    file_id.manufacturer = Manufacturer.DEVELOPMENT.value
    file_id.product = PRODUCT
    file_id.serial_number = serial
    file_id.time_created = _ms(start, 0.0)
    builder.add(file_id)

    device = DeviceInfoMessage(local_id=_LOCAL["device_info"])
    device.timestamp = _ms(start, 0.0)
    device.device_index = 0  # the creator: the device that recorded the file
    device.manufacturer = Manufacturer.DEVELOPMENT.value
    device.product = PRODUCT
    device.serial_number = serial
    device.product_name = summary.device[:31]
    builder.add(device)

    builder.add_all(_workout(recording, all_laps, sport))
    builder.add(_event(_ms(start, begin_t), EventType.START))
    for index, lap in enumerate(all_laps):
        for s in lap.samples:
            builder.add(_record(start, s))
        builder.add(_lap(start, lap, index, index == len(all_laps) - 1, sport))
    end_ms = _ms(start, end_t)
    builder.add(_event(end_ms, EventType.STOP_ALL))

    session = SessionMessage(local_id=_LOCAL["session"])
    session.message_index = 0
    session.timestamp = end_ms
    session.start_time = _ms(start, begin_t)
    session.event = Event.SESSION
    session.event_type = EventType.STOP
    session.trigger = SessionTrigger.ACTIVITY_END
    session.sport = sport
    session.sub_sport = SubSport.TREADMILL
    session.total_elapsed_time = elapsed
    session.total_timer_time = elapsed
    session.total_distance = distance
    session.first_lap_index = 0
    session.num_laps = len(all_laps)
    if elapsed > 0:
        session.enhanced_avg_speed = distance / elapsed
    rates = [hr for lap in all_laps for hr in lap.heart_rates()]
    if rates:
        session.avg_heart_rate = round(sum(rates) / len(rates))
        session.max_heart_rate = max(rates)
    builder.add(session)

    activity = ActivityMessage(local_id=_LOCAL["activity"])
    activity.timestamp = end_ms
    activity.num_sessions = 1
    activity.total_timer_time = elapsed
    activity.type = Activity.MANUAL
    activity.event = Event.ACTIVITY
    activity.event_type = EventType.STOP
    offset = (start + timedelta(seconds=end_t)).astimezone().utcoffset() or timedelta(0)
    activity.local_timestamp = end_ms // 1000 - FIT_EPOCH_S + int(offset.total_seconds())
    builder.add(activity)
    return builder.build_bytes()
