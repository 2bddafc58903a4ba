"""The FTMS codec on hand-made byte vectors: every Treadmill Data flag, n/a markers, short and
long packets, ranges, control point, machine and training status, advertisement data."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from treadmill import ftms
from treadmill.ftms import (
    AdvertisedMachine,
    ControlOp,
    ControlRequest,
    ControlResponse,
    Features,
    MachineFeature,
    MachineStatus,
    MachineStatusOp,
    MalformedPacket,
    Range,
    ResultCode,
    TargetFeature,
    TrainingStatus,
    TrainingStatusCode,
    TreadmillData,
)

MORE_DATA = 0x0001  # bit 0 set: no instantaneous speed in this packet


def le16(flags: int) -> bytes:
    return flags.to_bytes(2, "little")


# ---- UUIDs -----------------------------------------------------------------------------------


def test_uuid16_expands_to_the_bluetooth_base_uuid():
    assert ftms.uuid16(0x1826) == "00001826-0000-1000-8000-00805f9b34fb"
    assert ftms.TREADMILL_DATA == "00002acd-0000-1000-8000-00805f9b34fb"
    assert ftms.CONTROL_POINT == "00002ad9-0000-1000-8000-00805f9b34fb"
    assert ftms.MACHINE_STATUS == "00002ada-0000-1000-8000-00805f9b34fb"


# ---- Treadmill Data: one flag at a time --------------------------------------------------------

# flag bit -> (field bytes, expected values). Little-endian; scaled exactly as DESIGN §3.
FLAG_VECTORS: dict[int, tuple[bytes, dict[str, float | int]]] = {
    1: (b"\x2c\x01", {"avg_speed_kmh": 3.0}),
    2: (b"\x40\xe2\x01", {"distance_m": 123456}),
    3: (b"\x9c\xff\xe7\xff", {"incline_pct": -10.0, "ramp_deg": -2.5}),
    4: (b"\x39\x30\x0a\x00", {"elevation_gain_pos_m": 1234.5, "elevation_gain_neg_m": 1.0}),
    5: (b"\x55", {"pace_inst": 8.5}),
    6: (b"\x64", {"pace_avg": 10.0}),
    7: (
        b"\x2c\x01\x58\x02\x0a",
        {"energy_total_kcal": 300, "energy_per_hour_kcal": 600, "energy_per_min_kcal": 10},
    ),
    8: (b"\x8c", {"heart_rate_bpm": 140}),
    9: (b"\x2d", {"met": 4.5}),
    10: (b"\x10\x0e", {"elapsed_s": 3600}),
    11: (b"\x58\x02", {"remaining_s": 600}),
    12: (b"\x38\xff\x2c\x01", {"force_n": -200, "power_w": 300}),
}


def test_bit_0_clear_means_instantaneous_speed_only():
    data = ftms.decode_treadmill_data(b"\x00\x00\xe8\x03")
    assert data.values() == {"speed_kmh": 10.0}
    assert data.flags == 0 and not data.malformed and data.trailing == b""


def test_bit_0_set_means_no_speed():
    data = ftms.decode_treadmill_data(b"\x01\x00")
    assert data.values() == {}
    assert data.speed_kmh is None and not data.malformed


@pytest.mark.parametrize("bit", sorted(FLAG_VECTORS))
def test_each_flag_alone(bit):
    body, expected = FLAG_VECTORS[bit]
    data = ftms.decode_treadmill_data(le16(1 << bit | MORE_DATA) + body)
    assert data.values() == expected
    assert not data.malformed and data.not_available == frozenset()


@pytest.mark.parametrize("bit", sorted(FLAG_VECTORS))
def test_each_flag_after_instantaneous_speed(bit):
    body, expected = FLAG_VECTORS[bit]
    data = ftms.decode_treadmill_data(le16(1 << bit) + b"\x0a\x00" + body)
    assert data.values() == {"speed_kmh": 0.1, **expected}
    assert not data.malformed


@pytest.mark.parametrize("bit", sorted(FLAG_VECTORS))
def test_each_flag_alone_encodes_to_the_same_bytes(bit):
    body, expected = FLAG_VECTORS[bit]
    assert ftms.encode_treadmill_data(TreadmillData(**expected)) == le16(1 << bit | 1) + body


def test_every_flag_together_in_wire_order():
    flags = sum(1 << bit for bit in FLAG_VECTORS)  # 0x1ffe: speed present too
    packet = le16(flags) + b"\xd2\x04" + b"".join(body for body, _ in FLAG_VECTORS.values())
    data = ftms.decode_treadmill_data(packet)
    expected = {"speed_kmh": 12.34}
    for _, values in FLAG_VECTORS.values():
        expected |= values
    assert data.values() == expected
    assert data.flags == 0x1FFE and not data.malformed
    assert ftms.encode_treadmill_data(data) == packet


def test_some_combinations():
    # speed, distance, incline/ramp, elapsed time: a typical home treadmill.
    packet = bytes.fromhex("0c04 2c01 e80300 3200 1d00 7800")
    data = ftms.decode_treadmill_data(packet)
    assert data.values() == {
        "speed_kmh": 3.0,
        "distance_m": 1000,
        "incline_pct": 5.0,
        "ramp_deg": 2.9,
        "elapsed_s": 120,
    }
    # average speed and heart rate, no instantaneous speed
    data = ftms.decode_treadmill_data(bytes.fromhex("0301 f401 5a"))
    assert data.values() == {"avg_speed_kmh": 5.0, "heart_rate_bpm": 90}


def test_extreme_raw_values_no_treadmill_can_produce_are_left_out_as_malformed():
    data = ftms.decode_treadmill_data(bytes.fromhex("0400 ffff ffffff"))
    assert data.speed_kmh is None and data.distance_m == 0xFFFFFF  # 655.35 km/h is garbage
    assert data.implausible == {"speed_kmh"} and data.malformed
    data = ftms.decode_treadmill_data(bytes.fromhex("0900 0080 0080"))
    assert data.incline_pct is None and data.ramp_deg is None  # -3276.8 % and degrees
    assert data.implausible == {"incline_pct", "ramp_deg"} and data.malformed


@pytest.mark.parametrize(
    ("packet", "field", "value"),
    [
        ("0000 8813", "speed_kmh", 50.0),  # the ceiling itself is still a (fast) speed
        ("0000 8913", "speed_kmh", None),  # 50.01 km/h
        ("0000 60ea", "speed_kmh", None),  # 600 km/h
        ("0300 8913", "avg_speed_kmh", None),
        ("0900 e803 0000", "incline_pct", 100.0),
        ("0900 e903 0000", "incline_pct", None),  # 100.1 %
        ("0900 17fc 0000", "incline_pct", None),  # -100.1 %
        ("0900 0000 c201", "ramp_deg", 45.0),
        ("0900 0000 c301", "ramp_deg", None),  # 45.1 degrees
        ("0101 fa", "heart_rate_bpm", 250),
        ("0101 fb", "heart_rate_bpm", None),
    ],
)
def test_plausibility_bounds(packet, field, value):
    data = ftms.decode_treadmill_data(bytes.fromhex(packet))
    assert getattr(data, field) == value
    assert data.malformed is (value is None)
    assert data.implausible == (frozenset() if value is not None else {field})


def test_plausibility_against_the_machines_own_ranges():
    """Beyond what the machine reported, by more than max(2 km/h, 10 %), is not a reading."""
    speed, incline = Range(0.8, 16.0, 0.1), Range(-3.0, 15.0, 0.5)
    sample = TreadmillData(speed_kmh=18.0, distance_m=12, incline_pct=-5.0, elapsed_s=3)
    assert ftms.check_plausible(sample, speed, incline) is sample  # 16 + 2, -3 - 2: still in
    fast = ftms.check_plausible(replace(sample, speed_kmh=18.1, incline_pct=17.1), speed, incline)
    assert fast.speed_kmh is None and fast.incline_pct is None and fast.malformed
    assert fast.values() == {"distance_m": 12, "elapsed_s": 3}  # the plausible rest stays
    wide = Range(1.0, 40.0, 0.1)  # 10 % of 40 km/h is 4 km/h
    assert ftms.check_plausible(TreadmillData(speed_kmh=44.0), wide).speed_kmh == 44.0
    assert ftms.check_plausible(TreadmillData(speed_kmh=44.1), wide).speed_kmh is None
    # No range (or a malformed one): only the absolute bounds apply.
    assert ftms.check_plausible(TreadmillData(speed_kmh=30.0)).speed_kmh == 30.0
    bogus = Range(5.0, 1.0, 0.1, malformed=True)
    assert ftms.check_plausible(TreadmillData(speed_kmh=30.0), bogus).speed_kmh == 30.0


# ---- "not available" markers -------------------------------------------------------------------

NOT_AVAILABLE = [
    (3, "ff7f 0a00", {"ramp_deg": 1.0}, {"incline_pct"}),
    (3, "0a00 ff7f", {"incline_pct": 1.0}, {"ramp_deg"}),
    (4, "ffff ff7f", {}, {"elevation_gain_pos_m", "elevation_gain_neg_m"}),
    (5, "ff", {}, {"pace_inst"}),
    (6, "ff", {}, {"pace_avg"}),
    (7, "ffff ffff ff", {}, {"energy_total_kcal", "energy_per_hour_kcal", "energy_per_min_kcal"}),
    (9, "ff", {}, {"met"}),
    (12, "ff7f ff7f", {}, {"force_n", "power_w"}),
]


@pytest.mark.parametrize(("bit", "body", "values", "missing"), NOT_AVAILABLE)
def test_not_available_markers_are_none_and_listed(bit, body, values, missing):
    data = ftms.decode_treadmill_data(le16(1 << bit | MORE_DATA) + bytes.fromhex(body))
    assert data.values() == values
    assert data.not_available == frozenset(missing)
    assert all(getattr(data, name) is None for name in missing)
    assert not data.malformed


def test_fields_without_a_marker_keep_their_max_value_if_plausible():
    # Speed, distance, heart rate, elapsed and remaining time have no n/a marker; an all-ones
    # speed or heart rate is no reading (implausible), the times are.
    data = ftms.decode_treadmill_data(bytes.fromhex("000d ffff ff ffff ffff"))
    assert data.values() == {"elapsed_s": 65535, "remaining_s": 65535}
    assert data.not_available == frozenset()
    assert data.implausible == {"speed_kmh", "heart_rate_bpm"} and data.malformed


def test_encoder_writes_the_marker_for_a_missing_half_of_a_group():
    assert ftms.encode_treadmill_data(TreadmillData(incline_pct=5.0)) == bytes.fromhex(
        "0900 3200 ff7f"
    )
    assert ftms.encode_treadmill_data(TreadmillData(energy_total_kcal=7)) == bytes.fromhex(
        "8100 0700 ffff ff"
    )
    decoded = ftms.decode_treadmill_data(ftms.encode_treadmill_data(TreadmillData(power_w=-5)))
    assert decoded.values() == {"power_w": -5} and decoded.not_available == {"force_n"}


# ---- short and long packets --------------------------------------------------------------------


@pytest.mark.parametrize("packet", [b"", b"\x00", b"\xff"])
def test_no_room_for_flags(packet):
    data = ftms.decode_treadmill_data(packet)
    assert data.malformed and data.values() == {} and data.trailing == packet


def test_flags_promise_speed_but_packet_ends():
    data = ftms.decode_treadmill_data(b"\x00\x00")
    assert data.malformed and data.values() == {} and data.trailing == b""


def test_short_packet_keeps_the_fields_that_fit():
    # speed fits; distance needs 3 bytes, only 2 are there.
    data = ftms.decode_treadmill_data(bytes.fromhex("0400 e803 0102"))
    assert data.values() == {"speed_kmh": 10.0}
    assert data.malformed and data.trailing == b"\x01\x02"


def test_a_short_packet_keeps_every_complete_field():
    # speed, distance, incline+ramp (cut after the incline), elapsed time: the incline is
    # whole, so it is kept; the ramp angle and elapsed time were cut off (firmware that cuts
    # at 20 bytes does this).
    data = ftms.decode_treadmill_data(bytes.fromhex("0c04 2c01 0a0000 3200"))
    assert data.values() == {"speed_kmh": 3.0, "distance_m": 10, "incline_pct": 5.0}
    assert data.malformed and data.missing == {"ramp_deg", "elapsed_s"}


def test_trailing_bytes_are_kept_and_mark_the_packet_malformed():
    data = ftms.decode_treadmill_data(bytes.fromhex("0000 2c01 630000"))
    assert data.values() == {"speed_kmh": 3.0}
    assert data.malformed and data.trailing == b"\x63\x00\x00"


def test_reserved_flag_bits_mark_the_packet_malformed():
    """Bits 13-15 are reserved: a packet that sets them is not one we understand.

    Corrupted packets (e.g. every byte inverted, the simulator's corrupt-packet fault) set them
    and can otherwise decode "cleanly" into garbage (here a 255 bpm heart rate, no speed)."""
    good = ftms.encode_treadmill_data(
        TreadmillData(
            speed_kmh=3.0,
            distance_m=10,
            incline_pct=0.0,
            ramp_deg=0.0,
            energy_total_kcal=1,
            energy_per_hour_kcal=100,
            energy_per_min_kcal=2,
            elapsed_s=10,
        )
    )
    inverted = bytes(b ^ 0xFF for b in good)
    assert ftms.decode_treadmill_data(inverted).malformed
    assert ftms.decode_treadmill_data(bytes.fromhex("0120")).malformed  # bit 13, no data


# ---- round trips ---------------------------------------------------------------------------------


def on_grid(lo: int, hi: int, scale: float, exclude: tuple[int, ...] = ()) -> st.SearchStrategy:
    raws = st.integers(lo, hi).filter(lambda raw: raw not in exclude)
    if scale == 1:
        return st.none() | raws
    return st.none() | raws.map(lambda raw: round(raw * scale, 2))


# Every value a treadmill can produce (see test_plausibility_bounds for the others).
samples = st.builds(
    TreadmillData,
    speed_kmh=on_grid(0, 5000, 0.01),
    avg_speed_kmh=on_grid(0, 5000, 0.01),
    distance_m=on_grid(0, 0xFFFFFF, 1),
    incline_pct=on_grid(-1000, 1000, 0.1),
    ramp_deg=on_grid(-450, 450, 0.1),
    elevation_gain_pos_m=on_grid(0, 0xFFFE, 0.1, (0x7FFF,)),
    elevation_gain_neg_m=on_grid(0, 0xFFFE, 0.1, (0x7FFF,)),
    pace_inst=on_grid(0, 0xFE, 0.1),
    pace_avg=on_grid(0, 0xFE, 0.1),
    energy_total_kcal=on_grid(0, 0xFFFE, 1),
    energy_per_hour_kcal=on_grid(0, 0xFFFE, 1),
    energy_per_min_kcal=on_grid(0, 0xFE, 1),
    heart_rate_bpm=on_grid(0, 250, 1),
    met=on_grid(0, 0xFE, 0.1),
    elapsed_s=on_grid(0, 0xFFFF, 1),
    remaining_s=on_grid(0, 0xFFFF, 1),
    force_n=on_grid(-0x8000, 0x7FFE, 1),
    power_w=on_grid(-0x8000, 0x7FFE, 1),
)


@given(samples)
def test_encode_then_decode_round_trips(sample):
    data = ftms.decode_treadmill_data(ftms.encode_treadmill_data(sample))
    assert data == sample
    assert data.values() == sample.values()
    assert not data.malformed and data.trailing == b""


@given(samples)
def test_encoded_length_follows_from_the_flags(sample):
    packet = ftms.encode_treadmill_data(sample)
    flags = int.from_bytes(packet[:2], "little")
    sizes = {0: 2, 1: 2, 2: 3, 3: 4, 4: 4, 5: 1, 6: 1, 7: 5, 8: 1, 9: 1, 10: 2, 11: 2, 12: 4}
    present = flags ^ 1
    assert flags < 1 << 13
    assert len(packet) == 2 + sum(size for bit, size in sizes.items() if present & 1 << bit)


# ---- decoders never raise -----------------------------------------------------------------------


@given(st.binary(max_size=64))
def test_treadmill_data_decoder_never_raises(packet):
    data = ftms.decode_treadmill_data(packet)
    assert isinstance(data, TreadmillData)
    if not data.malformed:
        assert data.trailing == b""


@given(st.binary(max_size=16))
def test_other_decoders_never_raise(packet):
    assert isinstance(ftms.decode_features(packet), Features)
    assert isinstance(ftms.decode_control_request(packet), ControlRequest)
    assert isinstance(ftms.decode_control_response(packet), ControlResponse | None)
    assert isinstance(ftms.decode_machine_status(packet), MachineStatus)
    assert isinstance(ftms.decode_training_status(packet), TrainingStatus)
    assert isinstance(ftms.decode_ftms_service_data(packet), AdvertisedMachine | None)


@given(st.binary(max_size=16))
def test_range_decoders_only_raise_malformed_packet_when_short(packet):
    for decode in (ftms.decode_speed_range, ftms.decode_inclination_range):
        if len(packet) < 6:
            with pytest.raises(MalformedPacket):
                decode(packet)
        else:
            assert isinstance(decode(packet), Range)


# ---- features ------------------------------------------------------------------------------------


def test_features():
    features = ftms.decode_features(bytes.fromhex("0c160000 03000000"))
    assert features == Features(0x160C, 0x03) and not features.malformed
    assert [f for f in MachineFeature if features.has(f)] == [
        MachineFeature.TOTAL_DISTANCE,
        MachineFeature.INCLINATION,
        MachineFeature.EXPENDED_ENERGY,
        MachineFeature.HEART_RATE,
        MachineFeature.ELAPSED_TIME,
    ]
    assert features.can_target(TargetFeature.SPEED) and features.can_target(
        TargetFeature.INCLINATION
    )
    assert ftms.encode_features(features) == bytes.fromhex("0c16000003000000")


@pytest.mark.parametrize(
    ("packet", "machine", "target"),
    [
        ("", 0, 0),
        ("0c16", 0x160C, 0),
        ("0c160000030000", 0x160C, 3),
        ("0c1600000300000099", 0x160C, 3),
    ],
)
def test_features_of_the_wrong_length_are_malformed(packet, machine, target):
    features = ftms.decode_features(bytes.fromhex(packet))
    assert (features.machine, features.target, features.malformed) == (machine, target, True)


# ---- ranges --------------------------------------------------------------------------------------


def test_speed_range_is_uint16_in_hundredths():
    speed = ftms.decode_speed_range(bytes.fromhex("3200d0070a00"))
    assert speed == Range(0.5, 20.0, 0.1) and not speed.malformed
    assert ftms.decode_speed_range(bytes.fromhex("ffffffff0100")) == Range(655.35, 655.35, 0.01)
    assert ftms.encode_speed_range(Range(0.8, 16.0, 0.1)) == bytes.fromhex("500040060a00")


def test_inclination_range_is_sint16_in_tenths():
    assert ftms.decode_inclination_range(bytes.fromhex("000096000a00")) == Range(0.0, 15.0, 1.0)
    assert ftms.decode_inclination_range(bytes.fromhex("e2ff96000500")) == Range(-3.0, 15.0, 0.5)
    assert ftms.decode_inclination_range(bytes.fromhex("9cffceff0100")) == Range(-10.0, -5.0, 0.1)
    assert ftms.encode_inclination_range(Range(-3.0, 15.0, 0.5)) == bytes.fromhex("e2ff96000500")


@pytest.mark.parametrize(
    ("packet", "problem"),
    [
        ("d0073200 0a00", "is above maximum"),  # min 20 > max 0.5
        ("32000000 0a00", "is above maximum"),  # min 0.5 > max 0
        ("3200d007 0000", "not positive"),  # step 0
        ("00000000 0000", "not positive"),  # an all-zero read
        ("00000000 0100", "maximum 0 km/h"),
        ("3200ffff 0a00", "beyond what any treadmill"),  # 655.35 km/h
        ("32008913 0a00", "beyond what any treadmill"),  # 50.01 km/h
        ("3200d007 d007", "larger than the whole range"),  # 20 km/h steps on 0.5-20
    ],
)
def test_implausible_speed_range_is_malformed(packet, problem):
    speed = ftms.decode_speed_range(bytes.fromhex(packet))
    assert speed.malformed and problem in speed.problem


def test_plausible_speed_ranges_are_not_malformed():
    for packet in ("32008813 0a00", "0000d007 0a00", "c201c201 0a00"):  # to 50, from 0, 4.5 only
        assert not ftms.decode_speed_range(bytes.fromhex(packet)).malformed


@pytest.mark.parametrize(
    ("packet", "problem"),
    [
        ("9600e2ff 0500", "is above maximum"),  # 15 % .. -3 %
        ("e2ff9600 0000", "not positive"),
        ("0000e903 0500", "beyond what any treadmill"),  # 100.1 %
        ("0080ff7f 0100", "beyond what any treadmill"),  # -3276.8 .. 3276.7 %
        ("0000ff7f 0500", "beyond what any treadmill"),  # 0x7FFF as a maximum
    ],
)
def test_implausible_inclination_range_is_malformed(packet, problem):
    incline = ftms.decode_inclination_range(bytes.fromhex(packet))
    assert incline.malformed and problem in incline.problem


def test_plausible_inclination_ranges_are_not_malformed():
    for packet in ("000096000a00", "e2ff96000500", "9cffceff0100", "18fce8030100", "000000000500"):
        assert not ftms.decode_inclination_range(bytes.fromhex(packet)).malformed


def test_range_with_extra_bytes_decodes_the_first_six():
    assert ftms.decode_speed_range(bytes.fromhex("3200d0070a00ff")) == Range(0.5, 20.0, 0.1)


@pytest.mark.parametrize("packet", ["", "32", "3200d0070a"])
def test_short_range_raises_malformed_packet(packet):
    with pytest.raises(MalformedPacket, match="6 bytes"):
        ftms.decode_speed_range(bytes.fromhex(packet))
    with pytest.raises(MalformedPacket, match="6 bytes"):
        ftms.decode_inclination_range(bytes.fromhex(packet))


# ---- control point -------------------------------------------------------------------------------


def test_control_request_encoders():
    assert ftms.encode_request_control() == b"\x00"
    assert ftms.encode_reset() == b"\x01"
    assert ftms.encode_set_target_speed(5.5) == b"\x02\x26\x02"
    assert ftms.encode_set_target_speed(0.8) == b"\x02\x50\x00"
    assert ftms.encode_set_target_inclination(-2.5) == b"\x03\xe7\xff"
    assert ftms.encode_set_target_inclination(12.0) == b"\x03\x78\x00"
    assert ftms.encode_start_resume() == b"\x07"
    assert ftms.encode_stop() == b"\x08\x01"
    assert ftms.encode_pause() == b"\x08\x02"


@pytest.mark.parametrize(
    ("packet", "expected"),
    [
        ("00", ControlRequest(ControlOp.REQUEST_CONTROL)),
        ("01", ControlRequest(ControlOp.RESET)),
        ("022602", ControlRequest(ControlOp.SET_TARGET_SPEED, 5.5)),
        ("03e7ff", ControlRequest(ControlOp.SET_TARGET_INCLINATION, -2.5)),
        ("07", ControlRequest(ControlOp.START_RESUME)),
        ("0801", ControlRequest(ControlOp.STOP_PAUSE, 1)),
        ("0802", ControlRequest(ControlOp.STOP_PAUSE, 2)),
        ("", ControlRequest(-1, malformed=True)),
        ("0226", ControlRequest(ControlOp.SET_TARGET_SPEED, malformed=True)),
        ("02260200", ControlRequest(ControlOp.SET_TARGET_SPEED, malformed=True)),
        ("08", ControlRequest(ControlOp.STOP_PAUSE, malformed=True)),
        ("0001", ControlRequest(ControlOp.REQUEST_CONTROL, malformed=True)),
        ("05", ControlRequest(0x05)),
    ],
)
def test_decode_control_request(packet, expected):
    assert ftms.decode_control_request(bytes.fromhex(packet)) == expected


def test_control_responses():
    assert ftms.decode_control_response(bytes.fromhex("800001")) == ControlResponse(0x00, 0x01)
    assert ftms.decode_control_response(bytes.fromhex("800001")).ok
    failed = ftms.decode_control_response(bytes.fromhex("800804"))
    assert failed == ControlResponse(0x08, ResultCode.OPERATION_FAILED) and not failed.ok
    unknown = ftms.decode_control_response(bytes.fromhex("800209"))
    assert unknown.result == 0x09 and not unknown.ok
    long = ftms.decode_control_response(bytes.fromhex("80020100"))
    assert long == ControlResponse(0x02, 0x01, malformed=True) and long.ok
    assert ftms.encode_control_response(0x02, 0x03) == b"\x80\x02\x03"
    assert ftms.encode_control_response(0x102, 0x105) == b"\x80\x02\x05"


@pytest.mark.parametrize("packet", ["", "80", "8000", "810001", "000001"])
def test_not_a_control_response(packet):
    assert ftms.decode_control_response(bytes.fromhex(packet)) is None


# ---- machine status ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("packet", "op", "value"),
    [
        ("01", MachineStatusOp.RESET, None),
        ("0201", MachineStatusOp.STOPPED_OR_PAUSED_BY_USER, 1),
        ("0202", MachineStatusOp.STOPPED_OR_PAUSED_BY_USER, 2),
        ("03", MachineStatusOp.STOPPED_BY_SAFETY_KEY, None),
        ("04", MachineStatusOp.STARTED_OR_RESUMED_BY_USER, None),
        ("052c01", MachineStatusOp.TARGET_SPEED_CHANGED, 3.0),
        ("06e7ff", MachineStatusOp.TARGET_INCLINE_CHANGED, -2.5),
        ("ff", MachineStatusOp.CONTROL_PERMISSION_LOST, None),
    ],
)
def test_known_machine_status(packet, op, value):
    raw = bytes.fromhex(packet)
    status = ftms.decode_machine_status(raw)
    assert status == MachineStatus(op, value, malformed=False, raw=raw)
    assert ftms.encode_machine_status(op, value) == raw


@pytest.mark.parametrize("packet", ["42", "420102", "0e", "1405", "00", "fe"])
def test_unknown_machine_status_is_kept_and_malformed(packet):
    """Reserved op codes are kept (the client reports them as UNKNOWN), never taken as a
    known status, and counted as malformed."""
    raw = bytes.fromhex(packet)
    status = ftms.decode_machine_status(raw)
    assert status == MachineStatus(raw[0], None, malformed=True, raw=raw)


@pytest.mark.parametrize(
    ("packet", "op", "value"),
    [
        ("", -1, None),
        ("040000", 4, None),  # CS-WP8: two stray zeros behind "started by user"
        ("020100", 2, 1),  # CS-WP8: one stray zero behind "stopped by user"
        ("ff00", 0xFF, None),
        ("02", 2, None),  # parameter missing
        ("052c", 5, None),  # half a parameter
        ("052c0100", 5, 3.0),
        ("030000", 3, None),  # trailing garbage: still the safety key
        ("ff0102", 0xFF, None),  # ... still control lost
        ("0207", 2, 7),  # reserved control info: kept, it still says "stopped"
        ("0560ea", 5, None),  # a 600 km/h target is no target
        ("0617fc", 6, None),  # -100.1 %
        ("0560ea00", 5, None),
    ],
)
def test_malformed_machine_status(packet, op, value):
    status = ftms.decode_machine_status(bytes.fromhex(packet))
    assert (status.op, status.value, status.malformed) == (op, value, True)
    assert status.raw == bytes.fromhex(packet)


# ---- training status -----------------------------------------------------------------------------


def test_training_status_without_text():
    assert ftms.decode_training_status(b"\x00\x01") == TrainingStatus(TrainingStatusCode.IDLE)
    assert ftms.encode_training_status(TrainingStatusCode.MANUAL_MODE) == b"\x00\x0d"


def test_training_status_with_text():
    packet = b"\x01\x01paused"
    assert ftms.decode_training_status(packet) == TrainingStatus(TrainingStatusCode.IDLE, "paused")
    assert ftms.encode_training_status(TrainingStatusCode.IDLE, "paused") == packet


def test_training_status_oddities_do_not_raise():
    assert ftms.decode_training_status(b"").malformed
    assert ftms.decode_training_status(b"\x01").malformed
    assert ftms.decode_training_status(b"\x00\x63").status == 0x63  # unknown code kept
    assert ftms.decode_training_status(b"\x01\x0d\xff\xfe").text == "\ufffd\ufffd"


# ---- advertisement -------------------------------------------------------------------------------


def test_advertised_treadmill():
    machine = ftms.decode_ftms_service_data(b"\x01\x01\x00")
    assert machine == AdvertisedMachine(available=True, machine_types=1)
    assert machine.is_treadmill and machine.type_names == ["treadmill"]
    assert ftms.encode_ftms_service_data() == b"\x01\x01\x00"


def test_advertised_other_machines():
    bike = ftms.decode_ftms_service_data(b"\x00\x20\x00")
    assert not bike.available and not bike.is_treadmill and bike.type_names == ["indoor bike"]
    both = ftms.decode_ftms_service_data(b"\x01\x03\x00\xaa")  # extra byte ignored
    assert both.is_treadmill and both.type_names == ["treadmill", "cross trainer"]
    assert ftms.decode_ftms_service_data(ftms.encode_ftms_service_data(0x0022)).type_names == [
        "cross trainer",
        "indoor bike",
    ]


@pytest.mark.parametrize("packet", [b"", b"\x01", b"\x01\x01"])
def test_short_service_data_is_not_a_machine(packet):
    assert ftms.decode_ftms_service_data(packet) is None
