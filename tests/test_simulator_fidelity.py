"""Fidelity quirks of the sans-IO FTMS server (DESIGN §3-§4): long records, split and cut
notifications, redundant commands, encryption, status after our own Stop. Driven directly,
with no transport, so they hold for every one."""

from __future__ import annotations

from dataclasses import replace

import pytest
from bleak.exc import BleakGATTProtocolError, BleakGATTProtocolErrorCode

from simulators.gatt import (
    CCCD_INDICATE,
    CCCD_NOTIFY,
    DEFAULT_ATT_PAYLOAD,
    FtmsServer,
    Notification,
    split_record,
)
from simulators.model import TreadmillModel
from simulators.profiles import PROFILES, Profile, Quirk, Reports, get_profile
from treadmill import ftms
from treadmill.ftms import MachineFeature, MachineStatusOp, ResultCode, TreadmillData

OK = ResultCode.SUCCESS
FAILED = ResultCode.OPERATION_FAILED
NEW_QUIRKS = {
    Quirk.MORE_DATA_SPLIT: "more-data-split",
    Quirk.TRUNCATE_AT_20: "truncates-at-20",
    Quirk.REDUNDANT_OP_FAILED: "redundant-op-failed",
    Quirk.ENCRYPTED_CONTROL_POINT: "encrypted-control-point",
    Quirk.STATUS_AFTER_CONTROL_STOP: "status-after-control-stop",
}
FULL_FIELDS = {
    "speed_kmh", "avg_speed_kmh", "distance_m", "incline_pct", "ramp_deg",
    "elevation_gain_pos_m", "elevation_gain_neg_m", "pace_inst", "pace_avg",
    "energy_total_kcal", "energy_per_hour_kcal", "energy_per_min_kcal", "heart_rate_bpm",
    "met", "elapsed_s", "remaining_s", "force_n", "power_w",
}  # fmt: skip
# Treadmill Data flag bits of the fields only gym-full sends: average speed, elevation gain,
# instantaneous and average pace, MET, remaining time, force and power.
NEW_FLAGS = sum(1 << bit for bit in (1, 4, 5, 6, 9, 11, 12))


def make_server(profile: str | Profile = "home", *quirks: Quirk) -> FtmsServer:
    """A server with one central connected at t=0, every notification enabled, in control."""
    p = get_profile(profile) if isinstance(profile, str) else profile
    if quirks:
        p = replace(p, quirks=p.quirks | set(quirks))
    server = FtmsServer(p, TreadmillModel(p, now=0.0), serial="SIMTEST")
    server.on_connect(0.0)
    server.set_cccd(ftms.CONTROL_POINT, CCCD_INDICATE)
    for uuid in (ftms.TREADMILL_DATA, ftms.MACHINE_STATUS, ftms.TRAINING_STATUS):
        server.set_cccd(uuid, CCCD_NOTIFY)
    assert result(server.write(ftms.CONTROL_POINT, ftms.encode_request_control(), 0.0)) == OK
    return server


def result(events: list) -> int:
    [answer] = [e for e in events if e.uuid == ftms.CONTROL_POINT]
    response = ftms.decode_control_response(answer.data)
    assert response is not None
    return response.result


def command(server: FtmsServer, data: bytes, t: float) -> int:
    return result(server.write(ftms.CONTROL_POINT, data, t))


def statuses(events: list) -> list[bytes]:
    return [e.data for e in events if e.uuid == ftms.MACHINE_STATUS]


def walking(profile: str | Profile = "gym-full", *quirks: Quirk) -> FtmsServer:
    """Started at t=0, 5 km/h and 5 % incline set at t=10, settled by t=60."""
    server = make_server(profile, *quirks)
    assert command(server, ftms.encode_start_resume(), 0.0) == OK
    assert command(server, ftms.encode_set_target_speed(5.0), 10.0) == OK
    assert command(server, ftms.encode_set_target_inclination(5.0), 10.0) == OK
    server.model.advance_to(60.0)
    return server


def record(server: FtmsServer, t: float) -> list[Notification]:
    events = server.telemetry(t)
    assert all(isinstance(e, Notification) and e.uuid == ftms.TREADMILL_DATA for e in events)
    return events


# ---- the quirks are named flags ------------------------------------------------------------


def test_new_quirks_have_their_names():
    for quirk, name in NEW_QUIRKS.items():
        assert Quirk(name) is quirk


def test_every_profile_is_listed_with_known_quirks():
    for name, profile in PROFILES.items():
        assert profile.name == name and profile.description
        assert all(isinstance(q, Quirk) for q in profile.quirks)
    assert "gym-full" in PROFILES and "redundant-op-failed" in PROFILES


def test_the_cli_lists_the_new_profiles():
    from click.testing import CliRunner

    from treadmill.cli import main

    out = CliRunner().invoke(main, ["simulators"]).output
    assert "gym-full" in out and "redundant-op-failed" in out


# ---- 1. a full gym console: every field, records longer than 20 bytes -----------------------


def test_gym_full_claims_every_field_it_sends():
    features = make_server("gym-full").features()
    for bit in (
        MachineFeature.AVERAGE_SPEED,
        MachineFeature.TOTAL_DISTANCE,
        MachineFeature.INCLINATION,
        MachineFeature.ELEVATION_GAIN,
        MachineFeature.PACE,
        MachineFeature.EXPENDED_ENERGY,
        MachineFeature.HEART_RATE,
        MachineFeature.METABOLIC_EQUIVALENT,
        MachineFeature.ELAPSED_TIME,
        MachineFeature.REMAINING_TIME,
        MachineFeature.FORCE_ON_BELT_AND_POWER,
    ):
        assert features.has(bit), bit


def test_gym_full_record_has_every_field_and_round_trips():
    server = walking()
    [note] = record(server, 60.0)
    assert len(note.data) == 34 > DEFAULT_ATT_PAYLOAD
    decoded = ftms.decode_treadmill_data(note.data)
    assert not decoded.malformed and not decoded.not_available
    assert set(decoded.values()) == FULL_FIELDS
    assert decoded.flags == 0x1FFE  # every flag bit 1-12, More Data 0
    assert ftms.encode_treadmill_data(decoded) == note.data


def test_gym_full_values_follow_the_model():
    server = walking()
    m = server.model
    [note] = record(server, 60.0)
    d = ftms.decode_treadmill_data(note.data)
    assert d.speed_kmh == 5.0 and d.incline_pct == 5.0
    assert d.elevation_gain_pos_m == pytest.approx(m.elevation_gain_m, abs=0.05)
    assert d.elevation_gain_pos_m > 0 and d.elevation_gain_neg_m == 0
    assert d.avg_speed_kmh == pytest.approx(m.distance_m / m.elapsed_s * 3.6, abs=0.01)
    assert d.elapsed_s + d.remaining_s == 99 * 60
    assert d.met == pytest.approx(m.met, abs=0.05) and d.met > 1
    assert d.power_w > 0 and d.force_n > 0  # uphill
    assert d.pace_inst == 0.1  # 5 km/h = 0.083 km/min, in FTMS's 0.1 km/min
    assert d.heart_rate_bpm > 65


def test_downhill_counts_as_elevation_loss():
    server = make_server("gym-full")
    assert command(server, ftms.encode_start_resume(), 0.0) == OK
    assert command(server, ftms.encode_set_target_inclination(-3.0), 10.0) == OK
    [note] = record(server, 60.0)
    d = ftms.decode_treadmill_data(note.data)
    assert d.elevation_gain_neg_m > 0 and d.power_w < 0


def test_counters_start_from_zero_with_a_new_session():
    server = walking()
    assert command(server, ftms.encode_stop(), 60.0) == OK
    assert command(server, ftms.encode_start_resume(), 80.0) == OK
    d = ftms.decode_treadmill_data(record(server, 80.0)[0].data)
    assert d.elevation_gain_pos_m == d.elevation_gain_neg_m == 0
    assert d.remaining_s == 99 * 60


def test_old_profiles_send_what_they_sent_before():
    # The new Reports fields are off by default: home sends its 18 bytes, gym its 19.
    assert Reports() == Reports(distance=True, incline=True, elapsed_time=True, energy=True)
    for name, length in (("home", 18), ("gym", 19)):
        [note] = record(walking(name), 60.0)
        assert len(note.data) == length
        assert ftms.decode_treadmill_data(note.data).flags & NEW_FLAGS == 0
    home = (MachineFeature.TOTAL_DISTANCE, MachineFeature.INCLINATION,
            MachineFeature.EXPENDED_ENERGY, MachineFeature.ELAPSED_TIME)  # fmt: skip
    assert make_server("home").features().machine == sum(1 << bit for bit in home)


# ---- 2. More Data split ---------------------------------------------------------------------


def test_split_sends_each_record_as_two_parts_of_at_most_20_bytes():
    whole = ftms.decode_treadmill_data(record(walking(), 60.0)[0].data)
    parts = record(walking("gym-full", Quirk.MORE_DATA_SPLIT), 60.0)
    assert len(parts) == 2
    assert all(len(p.data) <= DEFAULT_ATT_PAYLOAD for p in parts)
    first, last = (ftms.decode_treadmill_data(p.data) for p in parts)
    assert first.flags & 1 and first.speed_kmh is None  # More Data: no instantaneous speed
    assert not last.flags & 1 and last.speed_kmh == 5.0
    assert not first.malformed and not last.malformed
    assert not set(first.values()) & set(last.values())  # each field once
    assert first.values() | last.values() == whole.values()
    assert parts[0].delay < parts[1].delay  # in order, the speed last


def test_split_of_a_short_record_still_makes_two_parts():
    parts = record(walking("home", Quirk.MORE_DATA_SPLIT), 60.0)
    first, last = (ftms.decode_treadmill_data(p.data) for p in parts)
    assert first.flags & 1 and set(first.values()) == {
        "distance_m", "incline_pct", "ramp_deg", "energy_total_kcal", "energy_per_hour_kcal",
        "energy_per_min_kcal", "elapsed_s",
    }  # fmt: skip
    assert last.values() == {"speed_kmh": 5.0}


def test_split_record_keeps_groups_together_and_speed_alone_is_not_split():
    assert split_record(TreadmillData(speed_kmh=3.0)) == [TreadmillData(speed_kmh=3.0)]
    parts = split_record(TreadmillData(speed_kmh=3.0, incline_pct=2.0, ramp_deg=1.1), limit=5)
    assert parts == [TreadmillData(incline_pct=2.0, ramp_deg=1.1), TreadmillData(speed_kmh=3.0)]


def test_a_one_shot_packet_fault_hits_only_the_next_part():
    from simulators.faults import parse_fault

    server = walking("gym-full", Quirk.MORE_DATA_SPLIT)
    server.apply(parse_fault("corrupt-packet@0"), 60.0)
    clean = [p.data for p in record(walking("gym-full", Quirk.MORE_DATA_SPLIT), 60.0)]
    garbled = [p.data for p in record(server, 60.0)]
    assert garbled[0] == bytes(b ^ 0xFF for b in clean[0]) and garbled[1] == clean[1]


# ---- 3. truncation at 20 bytes --------------------------------------------------------------


def test_old_firmware_cuts_every_notification_at_20_bytes():
    whole = record(walking(), 60.0)[0].data
    [cut] = record(walking("gym-full", Quirk.TRUNCATE_AT_20), 60.0)
    assert cut.data == whole[:20]
    decoded = ftms.decode_treadmill_data(cut.data)
    assert decoded.flags == 0x1FFE  # the flags still claim everything
    assert decoded.malformed and decoded.speed_kmh == 5.0 and decoded.incline_pct == 5.0
    assert decoded.heart_rate_bpm is None  # byte 24: lost


def test_truncation_leaves_short_notifications_alone():
    whole = record(walking("home"), 60.0)[0].data
    assert record(walking("home", Quirk.TRUNCATE_AT_20), 60.0)[0].data == whole  # 18 bytes


# ---- 4. redundant commands ------------------------------------------------------------------


def test_redundant_commands_succeed_by_default():
    server = make_server("home")
    assert command(server, ftms.encode_stop(), 1.0) == OK  # already stopped
    assert command(server, ftms.encode_pause(), 1.0) == OK
    assert command(server, ftms.encode_start_resume(), 2.0) == OK
    assert command(server, ftms.encode_start_resume(), 3.0) == OK  # already running


def test_redundant_start_stop_and_pause_fail_with_the_quirk():
    server = make_server("redundant-op-failed")
    assert server.profile.has(Quirk.REDUNDANT_OP_FAILED)
    assert command(server, ftms.encode_stop(), 1.0) == FAILED  # idle, at rest
    assert command(server, ftms.encode_pause(), 1.0) == FAILED  # not running
    assert command(server, ftms.encode_start_resume(), 2.0) == OK
    assert command(server, ftms.encode_start_resume(), 3.0) == FAILED  # already running
    assert server.model.running
    assert command(server, ftms.encode_pause(), 10.0) == OK
    assert command(server, ftms.encode_pause(), 10.5) == FAILED  # already paused
    assert command(server, ftms.encode_stop(), 11.0) == OK  # paused -> stopped is a change
    assert command(server, ftms.encode_stop(), 30.0) == FAILED
    assert command(server, b"\x08\x07", 30.0) == ResultCode.INVALID_PARAMETER  # checked first


def test_a_stop_while_the_belt_still_coasts_is_not_redundant():
    server = make_server("redundant-op-failed")
    assert command(server, ftms.encode_start_resume(), 0.0) == OK
    assert command(server, ftms.encode_stop(), 10.0) == OK
    assert server.model.moving
    assert command(server, ftms.encode_stop(), 10.1) == OK  # still stopping
    server.model.advance_to(20.0)
    assert command(server, ftms.encode_stop(), 20.0) == FAILED


# ---- 5. write response and indication order ------------------------------------------------


def test_the_default_order_is_the_specs_and_the_capture_order_is_a_profile():
    # The spec order (write response, then indication) is indicate_before_write_returns=False;
    # the transport applies the flag, the server hands the answer back with the write.
    assert Profile.indicate_before_write_returns is False
    early = [name for name, p in PROFILES.items() if p.indicate_before_write_returns]
    assert early == ["answers-early"]


def test_the_answer_comes_before_the_status_it_causes():
    server = make_server("home")
    assert command(server, ftms.encode_start_resume(), 0.0) == OK
    events = server.write(ftms.CONTROL_POINT, ftms.encode_set_target_speed(3.0), 10.0)
    assert [e.uuid for e in events] == [ftms.CONTROL_POINT, ftms.MACHINE_STATUS]


# ---- 6. encrypted control point -------------------------------------------------------------


def test_encrypted_control_point_refuses_an_unencrypted_link():
    server = make_server("home", Quirk.ENCRYPTED_CONTROL_POINT)  # set up as encrypted
    with pytest.raises(BleakGATTProtocolError) as error:
        server.write(ftms.CONTROL_POINT, ftms.encode_start_resume(), 1.0, encrypted=False)
    assert error.value.code == BleakGATTProtocolErrorCode.INSUFFICIENT_ENCRYPTION == 0x0F
    assert [data for _, data in server.control_log] == [b"\x00"]  # never reached the console
    assert not server.model.running
    with pytest.raises(BleakGATTProtocolError) as error:
        server.set_cccd(ftms.CONTROL_POINT, CCCD_INDICATE, encrypted=False)
    assert error.value.code == 0x0F
    server.set_cccd(ftms.TREADMILL_DATA, CCCD_NOTIFY, encrypted=False)  # only the control point
    events = server.write(ftms.CONTROL_POINT, ftms.encode_start_resume(), 2.0, encrypted=True)
    assert result(events) == OK


def test_without_the_quirk_any_link_may_write():
    server = make_server("home")
    server.set_cccd(ftms.CONTROL_POINT, CCCD_INDICATE, encrypted=False)
    events = server.write(ftms.CONTROL_POINT, ftms.encode_start_resume(), 1.0, encrypted=False)
    assert result(events) == OK


def test_other_att_errors_keep_their_precedence():
    server = make_server("home", Quirk.ENCRYPTED_CONTROL_POINT)
    with pytest.raises(BleakGATTProtocolError) as error:
        server.write(ftms.TREADMILL_DATA, b"\x00", 1.0, encrypted=False)
    assert error.value.code == BleakGATTProtocolErrorCode.WRITE_NOT_PERMITTED


# ---- 7. Machine Status 0x02 after a control-point Stop or Pause -----------------------------


def test_no_status_after_our_own_stop_by_default():
    server = make_server("home")
    assert command(server, ftms.encode_start_resume(), 0.0) == OK
    events = server.write(ftms.CONTROL_POINT, ftms.encode_stop(), 10.0)
    assert statuses(events) == []


def test_status_after_control_stop_and_pause():
    server = make_server("home", Quirk.STATUS_AFTER_CONTROL_STOP)
    assert command(server, ftms.encode_start_resume(), 0.0) == OK
    events = server.write(ftms.CONTROL_POINT, ftms.encode_pause(), 10.0)
    assert [e.uuid for e in events] == [
        ftms.CONTROL_POINT,  # the answer first
        ftms.MACHINE_STATUS,
        ftms.TRAINING_STATUS,
    ]
    assert statuses(events) == [bytes([MachineStatusOp.STOPPED_OR_PAUSED_BY_USER, 0x02])]
    events = server.write(ftms.CONTROL_POINT, ftms.encode_stop(), 20.0)
    assert statuses(events) == [bytes([0x02, 0x01])]
    # A Stop that changes nothing is not echoed.
    assert statuses(server.write(ftms.CONTROL_POINT, ftms.encode_stop(), 30.0)) == []
