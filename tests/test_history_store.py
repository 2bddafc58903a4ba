"""The history store (SQLite) and the recorder that fills it from a session's events."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from treadmill.history.model import Sample, StoredEvent
from treadmill.history.recorder import BackwardTally, Recorder
from treadmill.history.store import SCHEMA_VERSION, HistoryError, HistoryStore, history_error
from treadmill.session_events import (
    AlarmRaised,
    CommandSent,
    Ended,
    OrientationChanged,
    Started,
    StepStarted,
    TelemetryShown,
)

START = "2026-12-01T18:30:00+00:00"


def begin(store: HistoryStore, started_at: str = START, program: str = "taster") -> int:
    return store.begin(program=program, title="Five-minute taster", device="Sim",
                       simulated=True, started_at=started_at)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def one_line(exc: pytest.ExceptionInfo[HistoryError]) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


# ---- the store -----------------------------------------------------------------------------


def test_round_trip_of_a_session(tmp_path):
    samples = [Sample(0.5, 3.0, 1.0, 10, 95, "forward"), Sample(1.5, 2.0, None, 12, None,
                                                                 "backward")]
    events = [StoredEvent(0.0, "step", {"index": 0, "cue": "walk"}),
              StoredEvent(1.0, "alarm", {"kind": "heart_rate", "message": "slow down"})]
    with HistoryStore(tmp_path / "h.sqlite3") as store:
        sid = begin(store)
        store.add_samples(sid, samples)
        store.add_events(sid, events)
        store.finish(sid, ended_at="2026-12-01T18:35:00+00:00", duration_s=300.0,
                     distance_m=12, backward_s=1.0, longest_backward_bout_s=1.0, alarms=1,
                     end_reason="completed")
        store.rate(sid, pain=2, effort=7)
    with HistoryStore(tmp_path / "h.sqlite3") as store:
        recording = store.recording(sid)
        assert recording is not None
        assert recording.samples == tuple(samples)
        assert recording.events == tuple(events)
        summary = recording.summary
        assert summary == store.session(sid)
        assert (summary.program, summary.simulated, summary.started_at) == ("taster", True, START)
        assert (summary.duration_s, summary.distance_m, summary.alarms) == (300.0, 12, 1)
        assert (summary.end_reason, summary.pain, summary.effort) == ("completed", 2, 7)
        assert store.session(sid + 1) is None
        assert store.recording(sid + 1) is None


def test_wal_mode(tmp_path):
    HistoryStore(tmp_path / "h.sqlite3").close()
    db = sqlite3.connect(tmp_path / "h.sqlite3")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_the_default_file_is_in_the_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TREADMILL_DATA_DIR", str(tmp_path / "data"))
    with HistoryStore() as store:
        begin(store)
    assert (tmp_path / "data" / "history.sqlite3").exists()


def test_sessions_newest_first_and_delete(tmp_path):
    with HistoryStore(tmp_path / "h.sqlite3") as store:
        old = begin(store, "2026-11-30T08:00:00+00:00")
        new = begin(store, "2026-12-01T08:00:00+00:00")
        store.add_samples(old, [Sample(1.0, 3.0, 0.0, 1, None, "forward")])
        store.add_events(old, [StoredEvent(0.0, "step", {})])
        assert [s.id for s in store.sessions()] == [new, old]
        assert store.delete(old) is True
        assert store.delete(old) is False
        assert [s.id for s in store.sessions()] == [new]
        assert store.recording(old) is None
        left = store._db.execute("SELECT count(*) FROM samples").fetchone()[0]
        assert left == 0


def test_rate_takes_0_to_10_or_none(tmp_path):
    with HistoryStore(tmp_path / "h.sqlite3") as store:
        sid = begin(store)
        store.rate(sid, pain=None, effort=10)
        store.rate(sid, pain=0, effort=None)
        for bad in (-1, 11, 2.5, True, "3"):
            with pytest.raises(ValueError):
                store.rate(sid, pain=bad, effort=None)  # type: ignore[arg-type]
        summary = store.session(sid)
        assert summary is not None
        assert (summary.pain, summary.effort) == (0, None)
        with pytest.raises(HistoryError):
            store.rate(sid + 1, pain=1, effort=1)


def test_an_open_session_of_a_dead_process_becomes_interrupted(tmp_path):
    path = tmp_path / "h.sqlite3"
    with HistoryStore(path) as store:
        gone, live = begin(store), begin(store)
        store._db.execute("UPDATE sessions SET pid = ? WHERE id = ?", (dead_pid(), gone))
    with HistoryStore(path) as store:
        assert store.session(gone).end_reason == "interrupted"  # type: ignore[union-attr]
        assert store.session(gone).ended_at is None  # type: ignore[union-attr]
        # os.getpid() is alive: the row may still be being recorded, so it is left alone.
        assert store.session(live).end_reason is None  # type: ignore[union-attr]


def test_a_finished_session_is_never_marked_interrupted(tmp_path):
    path = tmp_path / "h.sqlite3"
    with HistoryStore(path) as store:
        sid = begin(store)
        store.finish(sid, ended_at=START, duration_s=1.0, distance_m=None, backward_s=0.0,
                     longest_backward_bout_s=0.0, alarms=0, end_reason="emergency_stop")
        store._db.execute("UPDATE sessions SET pid = ?", (dead_pid(),))
    with HistoryStore(path) as store:
        assert store.session(sid).end_reason == "emergency_stop"  # type: ignore[union-attr]


V1_SCHEMA = """
CREATE TABLE sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, program TEXT NOT NULL, title TEXT NOT NULL,
    device TEXT NOT NULL, simulated INTEGER NOT NULL, started_at TEXT NOT NULL, ended_at TEXT,
    duration_s REAL NOT NULL DEFAULT 0, distance_m INTEGER, backward_s REAL NOT NULL DEFAULT 0,
    longest_backward_bout_s REAL NOT NULL DEFAULT 0, alarms INTEGER NOT NULL DEFAULT 0,
    end_reason TEXT, pain INTEGER, effort INTEGER);
CREATE TABLE samples (session_id INTEGER NOT NULL, t REAL NOT NULL, speed_kmh REAL,
    incline_pct REAL, distance_m INTEGER, heart_rate_bpm INTEGER, orientation TEXT NOT NULL);
CREATE TABLE events (session_id INTEGER NOT NULL, t REAL NOT NULL, type TEXT NOT NULL,
    data TEXT NOT NULL);
INSERT INTO sessions (program, title, device, simulated, started_at, ended_at, duration_s,
    end_reason) VALUES ('taster', 'Taster', 'Old', 0, '2026-01-01T10:00:00+00:00',
    '2026-01-01T10:05:00+00:00', 300, 'completed');
INSERT INTO sessions (program, title, device, simulated, started_at)
    VALUES ('taster', 'Taster', 'Old', 0, '2026-01-02T10:00:00+00:00');
INSERT INTO samples VALUES (1, 1.0, 3.0, 0.0, 5, NULL, 'forward');
INSERT INTO events VALUES (1, 0.0, 'step', '{"index": 0}');
PRAGMA user_version = 1;
"""


def test_a_v1_database_is_migrated_and_keeps_its_sessions(tmp_path):
    path = tmp_path / "h.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(V1_SCHEMA)
    db.close()
    with HistoryStore(path) as store:
        done, unfinished = sorted(store.sessions(), key=lambda s: s.id)
        assert (done.end_reason, done.duration_s) == ("completed", 300.0)
        # No process of an older version can be told alive: its open row was interrupted.
        assert unfinished.end_reason == "interrupted"
        recording = store.recording(done.id)
        assert recording is not None
        assert recording.samples == (Sample(1.0, 3.0, 0.0, 5, None, "forward"),)
        assert recording.events == (StoredEvent(0.0, "step", {"index": 0}),)
        begin(store)
        assert len(store.sessions()) == 3
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()


def test_a_database_of_a_newer_version_is_refused(tmp_path):
    path = tmp_path / "h.sqlite3"
    HistoryStore(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(HistoryError) as exc:
        HistoryStore(path)
    assert "upgrade" in one_line(exc)


def test_a_corrupt_file_is_one_line(tmp_path):
    path = tmp_path / "h.sqlite3"
    path.write_bytes(b"this is no database \x00\xff" * 200)
    with pytest.raises(HistoryError) as exc:
        HistoryStore(path)
    text = one_line(exc)
    assert "is not a history database" in text
    assert "move it away" in text
    assert path.read_bytes().startswith(b"this is no database")  # never overwritten


def test_someone_elses_sqlite_file_is_not_written_into(tmp_path):
    path = tmp_path / "h.sqlite3"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE photos (name TEXT)")
    db.commit()
    db.close()
    with pytest.raises(HistoryError) as exc:
        HistoryStore(path)
    assert "is not a history database" in one_line(exc)


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0,
                    reason="root (or Windows) ignores the folder's mode")
def test_a_read_only_folder_is_one_line(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(HistoryError) as exc:
            HistoryStore(folder / "history.sqlite3")
        text = one_line(exc)
        assert "writable" in text
        assert "TREADMILL_DATA_DIR" in text
    finally:
        folder.chmod(0o755)


def test_disk_full_and_locked_say_what_to_do():
    path = Path("/data/history.sqlite3")
    full = str(history_error(sqlite3.OperationalError("database or disk is full"), path))
    assert "full" in full
    assert "free some space" in full
    locked = str(history_error(sqlite3.OperationalError("database is locked"), path))
    assert "locked" in locked
    assert "5 s" in locked


def test_two_stores_share_the_file(tmp_path):
    path = tmp_path / "h.sqlite3"
    with HistoryStore(path) as writer, HistoryStore(path) as reader:
        sid = begin(writer)
        writer.add_samples(sid, [Sample(1.0, 3.0, 0.0, 1, None, "forward")])
        recording = reader.recording(sid)
        assert recording is not None
        assert len(recording.samples) == 1


# ---- the recorder --------------------------------------------------------------------------


def telemetry(t: float, speed: float, distance: int, orientation: str) -> TelemetryShown:
    return TelemetryShown(t, speed_kmh=speed, incline_pct=0.0, incline_reported=True,
                          distance_m=distance, heart_rate_bpm=100, orientation=orientation)


def session_events() -> list:
    """Forward 0-10 s, a turn, backward 12-20 s, still for 2 s (same bout), backward 22-26 s,
    still for 5 s (the bout ends), backward 31-34 s; an alarm; the end at 35 s."""
    out: list = [Started(0.0, program="taster", title="Taster", device="Sim", minutes=1.0),
                 StepStarted(0.0, index=0, of=2, orientation="forward", speed_kmh=3.0,
                             incline_pct=0.0, duration_s=10.0, cue="walk")]
    distance = 0
    for t in range(36):
        if t < 10:
            speed, orientation = 3.0, "forward"
        elif t < 12:
            speed, orientation = 0.0, "forward" if t < 11 else "backward"
        elif t < 20 or 22 <= t < 26 or 31 <= t < 34:
            speed, orientation = 2.0, "backward"
        else:
            speed, orientation = 0.0, "backward"
        if t == 11:
            out.append(OrientationChanged(11.0, "backward"))
            out.append(StepStarted(11.0, index=1, of=2, orientation="backward", speed_kmh=2.0,
                                   incline_pct=0.0, duration_s=20.0, cue="walk backward"))
        if t == 24:
            out.append(AlarmRaised(24.0, kind="heart_rate", message="heart rate high"))
        distance += round(speed)
        out.append(telemetry(float(t), speed, distance, orientation))
    out.append(CommandSent(34.5, op="stop", value=None))
    out.append(Ended(35.0, reason="completed", message="done"))
    return out


def test_backward_tally():
    tally = BackwardTally()
    for event in session_events():
        if isinstance(event, TelemetryShown):
            tally.add(Sample(event.t, event.speed_kmh, 0.0, 0, None, event.orientation))
    assert tally.backward_s == pytest.approx(8 + 4 + 3)
    assert tally.longest_bout_s == pytest.approx(12)


def test_the_recorder_records_a_session(tmp_path):
    path = tmp_path / "h.sqlite3"
    warnings: list[str] = []
    recorder = Recorder(path=path, program="taster", title="Taster", device="Sim",
                        simulated=True, on_warning=warnings.append)
    events = session_events()
    for event in events:
        recorder.on_event(event)
    recorder.close()
    assert warnings == []
    assert not recorder.running
    assert recorder.session_id is not None
    with HistoryStore(path) as store:
        recording = store.recording(recorder.session_id)
    assert recording is not None
    summary = recording.summary
    assert (summary.program, summary.title, summary.device, summary.simulated) == (
        "taster", "Taster", "Sim", True)
    assert summary.duration_s == 35.0
    assert summary.distance_m == events[-3].distance_m == 2 * (8 + 4 + 3) + 3 * 10
    assert summary.backward_s == pytest.approx(15.0)
    assert summary.longest_backward_bout_s == pytest.approx(12.0)
    assert summary.alarms == 1
    assert summary.end_reason == "completed"
    assert summary.ended_at is not None
    assert summary.ended_at > summary.started_at
    assert len(recording.samples) == 36
    assert [e.type for e in recording.events] == [
        "step", "orientation", "step", "alarm", "command", "ended"]
    assert recording.events[3].data == {"kind": "heart_rate", "message": "heart rate high"}
    assert [start for start, _, _ in recording.steps()] == [0.0, 11.0]


def test_a_recorder_closed_before_the_end_marks_the_session_interrupted(tmp_path):
    path = tmp_path / "h.sqlite3"
    recorder = Recorder(path=path, program="p", title="P", device="Sim", simulated=True)
    for event in session_events()[:20]:
        recorder.on_event(event)
    recorder.close()
    with HistoryStore(path) as store:
        summary = store.session(recorder.session_id)  # type: ignore[arg-type]
    assert summary is not None
    assert summary.end_reason == "interrupted"
    assert summary.duration_s > 0


def test_the_recorder_flushes_while_the_session_runs(tmp_path):
    path = tmp_path / "h.sqlite3"
    recorder = Recorder(path=path, program="p", title="P", device="Sim", simulated=True)
    try:
        for event in session_events()[:10]:
            recorder.on_event(event)
        deadline = time.monotonic() + 3.0
        samples = 0
        while time.monotonic() < deadline and samples < 8:
            time.sleep(0.05)
            if recorder.session_id is not None:
                with HistoryStore(path) as store:
                    recording = store.recording(recorder.session_id)
                    samples = len(recording.samples) if recording else 0
        assert samples == 8  # on disk without an Ended or a close()
    finally:
        recorder.close()


def test_the_recorder_handler_never_blocks(tmp_path):
    recorder = Recorder(path=tmp_path / "h.sqlite3", program="p", title="P", device="Sim",
                        simulated=True)
    recorder.on_event(Started(0.0, program="p", title="P", device="Sim", minutes=1.0))
    events = [telemetry(i / 10, 2.0, i, "backward") for i in range(10_000)]
    began = time.perf_counter()
    for event in events:
        recorder.on_event(event)
    assert time.perf_counter() - began < 0.5
    recorder.close(timeout=5.0)


def test_a_recorder_that_cannot_open_the_database_warns_once(tmp_path):
    path = tmp_path / "h.sqlite3"
    path.write_bytes(b"garbage" * 100)
    warnings: list[str] = []
    recorder = Recorder(path=path, program="p", title="P", device="Sim", simulated=True,
                        on_warning=warnings.append)
    for event in session_events():
        assert recorder.on_event(event) is None
    began = time.monotonic()
    recorder.close()
    assert time.monotonic() - began < 2.5
    for event in session_events():
        assert recorder.on_event(event) is None
    assert len(warnings) == 1
    assert warnings[0].startswith("recording stopped: ")
    assert warnings[0].endswith("; the session goes on")
    assert "\n" not in warnings[0]
    assert recorder.session_id is None


@pytest.mark.real_time
async def test_aclose_waits_for_the_writer(tmp_path):
    path = tmp_path / "h.sqlite3"
    recorder = Recorder(path=path, program="p", title="P", device="Sim", simulated=True)
    for event in session_events():
        recorder.on_event(event)
    await recorder.aclose()
    assert not recorder.running
    with HistoryStore(path) as store:
        summary = store.session(recorder.session_id)  # type: ignore[arg-type]
    assert summary is not None
    assert summary.end_reason == "completed"


def test_a_write_error_mid_session_warns_once_and_the_session_goes_on(tmp_path, monkeypatch):
    def full(self, session_id, events):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(HistoryStore, "add_events", full)
    warnings: list[str] = []
    recorder = Recorder(path=tmp_path / "h.sqlite3", program="p", title="P", device="Sim",
                        simulated=True, on_warning=warnings.append)
    for event in session_events():
        assert recorder.on_event(event) is None
    recorder.close()
    for event in session_events():
        assert recorder.on_event(event) is None
    assert len(warnings) == 1
    assert "full" in warnings[0]
    assert warnings[0].endswith("; the session goes on")
    assert recorder.session_id is not None


@pytest.mark.real_time
async def test_the_recorder_on_the_event_bus(tmp_path):
    from treadmill.bus import EventBus

    path = tmp_path / "h.sqlite3"
    bus = EventBus()
    recorder = Recorder(path=path, program="p", title="P", device="Sim", simulated=True)
    recorder.attach(bus)
    bus.start()
    for event in session_events():
        bus.publish(event)
    await bus.drain(1.0)
    await bus.close()
    await recorder.aclose()
    with HistoryStore(path) as store:
        summary = store.session(recorder.session_id)  # type: ignore[arg-type]
    assert summary is not None
    assert (summary.end_reason, summary.alarms) == ("completed", 1)
