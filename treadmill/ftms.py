"""FTMS byte formats: UUIDs, op codes, and tolerant encoders/decoders for every treadmill value.

Decoders never raise on bytes from the air: real treadmills send short packets, extra bytes
behind reserved flags and "not available" markers (see ../shared/DESIGN.md §4, §7). A decoded
value carries `malformed` and the raw leftovers instead, so the client can count and log them.
Encoders produce exactly what the spec describes; the simulator uses them to speak real bytes.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field, fields, replace
from enum import IntEnum


def uuid16(short: int) -> str:
    """The full 128-bit UUID string bleak uses for a 16-bit Bluetooth SIG UUID."""
    return f"0000{short:04x}-0000-1000-8000-00805f9b34fb"


FTMS_SERVICE = uuid16(0x1826)
DEVICE_INFORMATION_SERVICE = uuid16(0x180A)

FITNESS_MACHINE_FEATURE = uuid16(0x2ACC)
TREADMILL_DATA = uuid16(0x2ACD)
TRAINING_STATUS = uuid16(0x2AD3)
SUPPORTED_SPEED_RANGE = uuid16(0x2AD4)
SUPPORTED_INCLINATION_RANGE = uuid16(0x2AD5)
CONTROL_POINT = uuid16(0x2AD9)
MACHINE_STATUS = uuid16(0x2ADA)

MANUFACTURER_NAME = uuid16(0x2A29)
MODEL_NUMBER = uuid16(0x2A24)
SERIAL_NUMBER = uuid16(0x2A25)
HARDWARE_REVISION = uuid16(0x2A27)
FIRMWARE_REVISION = uuid16(0x2A26)
SOFTWARE_REVISION = uuid16(0x2A28)

DEVICE_INFORMATION_FIELDS = {
    "manufacturer": MANUFACTURER_NAME,
    "model": MODEL_NUMBER,
    "serial": SERIAL_NUMBER,
    "hardware": HARDWARE_REVISION,
    "firmware": FIRMWARE_REVISION,
    "software": SOFTWARE_REVISION,
}

CLIENT_CHARACTERISTIC_CONFIGURATION = uuid16(0x2902)


class ControlOp(IntEnum):
    REQUEST_CONTROL = 0x00
    RESET = 0x01
    SET_TARGET_SPEED = 0x02
    SET_TARGET_INCLINATION = 0x03
    START_RESUME = 0x07
    STOP_PAUSE = 0x08
    RESPONSE = 0x80


class StopPause(IntEnum):
    STOP = 0x01
    PAUSE = 0x02


class ResultCode(IntEnum):
    SUCCESS = 0x01
    OP_CODE_NOT_SUPPORTED = 0x02
    INVALID_PARAMETER = 0x03
    OPERATION_FAILED = 0x04
    CONTROL_NOT_PERMITTED = 0x05


class MachineStatusOp(IntEnum):
    RESET = 0x01
    STOPPED_OR_PAUSED_BY_USER = 0x02
    STOPPED_BY_SAFETY_KEY = 0x03
    STARTED_OR_RESUMED_BY_USER = 0x04
    TARGET_SPEED_CHANGED = 0x05
    TARGET_INCLINE_CHANGED = 0x06
    CONTROL_PERMISSION_LOST = 0xFF


class TrainingStatusCode(IntEnum):
    OTHER = 0x00
    IDLE = 0x01
    WARMING_UP = 0x02
    LOW_INTENSITY_INTERVAL = 0x03
    HIGH_INTENSITY_INTERVAL = 0x04
    RECOVERY_INTERVAL = 0x05
    ISOMETRIC = 0x06
    HEART_RATE_CONTROL = 0x07
    FITNESS_TEST = 0x08
    SPEED_OUTSIDE_CONTROL_REGION_LOW = 0x09
    SPEED_OUTSIDE_CONTROL_REGION_HIGH = 0x0A
    COOL_DOWN = 0x0B
    WATT_CONTROL = 0x0C
    MANUAL_MODE = 0x0D
    PRE_WORKOUT = 0x0E
    POST_WORKOUT = 0x0F


# Fitness Machine Feature bits (first uint32) and target setting bits (second uint32).
class MachineFeature(IntEnum):
    AVERAGE_SPEED = 0
    CADENCE = 1
    TOTAL_DISTANCE = 2
    INCLINATION = 3
    ELEVATION_GAIN = 4
    PACE = 5
    STEP_COUNT = 6
    RESISTANCE_LEVEL = 7
    STRIDE_COUNT = 8
    EXPENDED_ENERGY = 9
    HEART_RATE = 10
    METABOLIC_EQUIVALENT = 11
    ELAPSED_TIME = 12
    REMAINING_TIME = 13
    POWER = 14
    FORCE_ON_BELT_AND_POWER = 15
    USER_DATA_RETENTION = 16


class TargetFeature(IntEnum):
    SPEED = 0
    INCLINATION = 1


# Machine type bits in the FTMS advertisement's service data.
MACHINE_TYPE_TREADMILL = 1 << 0
MACHINE_TYPE_NAMES = {
    0: "treadmill",
    1: "cross trainer",
    2: "step climber",
    3: "stair climber",
    4: "rower",
    5: "indoor bike",
}


@dataclass(frozen=True)
class _Field:
    """One Treadmill Data value: its attribute, wire format, scale and "not available" raws."""

    name: str
    fmt: str  # struct code, or "u24"
    scale: float
    not_available: tuple[int, ...] = ()


# Flag bit -> the fields it adds, in wire order. Bit 0 is inverted ("more data"): instantaneous
# speed is present when it is 0. 0x7FFF in elevation gain is how some machines say "n/a"
# (an unsigned field, so the spec's 0xFFFF marker is not what they send).
_GROUPS: tuple[tuple[int, tuple[_Field, ...]], ...] = (
    (0, (_Field("speed_kmh", "H", 0.01),)),
    (1, (_Field("avg_speed_kmh", "H", 0.01),)),
    (2, (_Field("distance_m", "u24", 1),)),
    (3, (_Field("incline_pct", "h", 0.1, (0x7FFF,)), _Field("ramp_deg", "h", 0.1, (0x7FFF,)))),
    (
        4,
        (
            _Field("elevation_gain_pos_m", "H", 0.1, (0x7FFF, 0xFFFF)),
            _Field("elevation_gain_neg_m", "H", 0.1, (0x7FFF, 0xFFFF)),
        ),
    ),
    (5, (_Field("pace_inst", "B", 0.1, (0xFF,)),)),
    (6, (_Field("pace_avg", "B", 0.1, (0xFF,)),)),
    (
        7,
        (
            _Field("energy_total_kcal", "H", 1, (0xFFFF,)),
            _Field("energy_per_hour_kcal", "H", 1, (0xFFFF,)),
            _Field("energy_per_min_kcal", "B", 1, (0xFF,)),
        ),
    ),
    (8, (_Field("heart_rate_bpm", "B", 1),)),
    (9, (_Field("met", "B", 0.1, (0xFF,)),)),
    (10, (_Field("elapsed_s", "H", 1),)),
    (11, (_Field("remaining_s", "H", 1),)),
    (12, (_Field("force_n", "h", 1, (0x7FFF,)), _Field("power_w", "h", 1, (0x7FFF,)))),
)
_KNOWN_FLAGS = (1 << 13) - 1
_SIZES = {"H": 2, "h": 2, "B": 1, "b": 1, "u24": 3}


def _unpack(fmt: str, data: bytes, pos: int) -> int:
    if fmt == "u24":
        return int.from_bytes(data[pos : pos + 3], "little")
    return struct.unpack_from("<" + fmt, data, pos)[0]


def _pack(fmt: str, raw: int) -> bytes:
    if fmt == "u24":
        return raw.to_bytes(3, "little")
    return struct.pack("<" + fmt, raw)


def _is_integer_scale(scale: float) -> bool:
    return scale == 1


# ---- plausibility ----------------------------------------------------------------------------
#
# FTMS can encode values no treadmill can produce (uint16 speed goes to 655.35 km/h, sint16
# incline to +-3276.7 %). Such a value is a firmware bug or garbage, never a fact (DESIGN §4):
# the decoders flag it malformed and leave the field out, so nothing downstream acts on it.

# The fastest treadmills made are sprint/research machines at ~40-45 km/h; consumer and gym
# FTMS treadmills top out at 20-30 km/h. Anything above 50 km/h is not a belt speed.
SPEED_CEILING_KMH = 50.0
# +-100 % is a 45-degree slope; real decks go from about -6 % to +40 % (incline trainers).
INCLINE_LIMIT_PCT = 100.0
RAMP_LIMIT_DEG = 45.0  # the same slope as an angle
# No person has a heart rate above 250 bpm; the governor acts on heart rate, so it is checked.
HEART_RATE_CEILING_BPM = 250
# A reading beyond what the machine itself reported it can do, by more than this, is not a
# reading. The margin is wide (a belt overshooting its own maximum, a console in mph, a coarse
# range) because its job is to catch garbage, not to police the belt: the governor does that.
SPEED_MARGIN_KMH = 2.0
INCLINE_MARGIN_PCT = 2.0
RANGE_MARGIN_FRACTION = 0.10

# Treadmill Data field -> which plausibility bound it obeys (see _bounds).
_PLAUSIBLE_FIELDS: dict[str, str] = {
    "speed_kmh": "speed",
    "avg_speed_kmh": "speed",
    "incline_pct": "incline",
    "ramp_deg": "ramp",
    "heart_rate_bpm": "heart_rate",
}
_ABSOLUTE_BOUNDS: dict[str, tuple[float, float]] = {
    "speed": (0.0, SPEED_CEILING_KMH),
    "incline": (-INCLINE_LIMIT_PCT, INCLINE_LIMIT_PCT),
    "ramp": (-RAMP_LIMIT_DEG, RAMP_LIMIT_DEG),
    "heart_rate": (0, HEART_RATE_CEILING_BPM),
}


def _bounds(
    kind: str, speed_range: Range | None, incline_range: Range | None
) -> tuple[float, float]:
    """The plausible [lo, hi] for a kind of value: FTMS's absolute bounds, narrowed by what the
    machine reported (its range plus a margin) when it reported a usable one."""
    lo, hi = _ABSOLUTE_BOUNDS[kind]
    if kind == "speed" and speed_range is not None and not speed_range.malformed:
        margin = max(SPEED_MARGIN_KMH, RANGE_MARGIN_FRACTION * speed_range.maximum)
        hi = min(hi, speed_range.maximum + margin)
    elif kind == "incline" and incline_range is not None and not incline_range.malformed:
        span = incline_range.maximum - incline_range.minimum
        margin = max(INCLINE_MARGIN_PCT, RANGE_MARGIN_FRACTION * span)
        lo = max(lo, incline_range.minimum - margin)
        hi = min(hi, incline_range.maximum + margin)
    return lo, hi


def check_plausible(
    data: TreadmillData, speed_range: Range | None = None, incline_range: Range | None = None
) -> TreadmillData:
    """`data` with every implausible value left out (None, named in `implausible`) and marked
    malformed. Only the bad field goes: BLE frames are CRC-checked on the air, so garbage comes
    from firmware, field by field, and the rest of the record is still what the machine said."""
    bad = {
        name
        for name, kind in _PLAUSIBLE_FIELDS.items()
        if (value := getattr(data, name)) is not None
        and not _within(value, _bounds(kind, speed_range, incline_range))
    }
    if not bad:
        return data
    return replace(
        data,
        **dict.fromkeys(bad),  # type: ignore[arg-type]
        implausible=data.implausible | bad,
        malformed=True,
    )


def _within(value: float, bounds: tuple[float, float]) -> bool:
    lo, hi = bounds
    return math.isfinite(value) and lo - 1e-9 <= value <= hi + 1e-9


@dataclass(frozen=True)
class TreadmillData:
    """One decoded Treadmill Data (0x2ACD) notification. Absent fields are None."""

    speed_kmh: float | None = None
    avg_speed_kmh: float | None = None
    distance_m: int | None = None
    incline_pct: float | None = None
    ramp_deg: float | None = None
    elevation_gain_pos_m: float | None = None
    elevation_gain_neg_m: float | None = None
    pace_inst: float | None = None
    pace_avg: float | None = None
    energy_total_kcal: int | None = None
    energy_per_hour_kcal: int | None = None
    energy_per_min_kcal: int | None = None
    heart_rate_bpm: int | None = None
    met: float | None = None
    elapsed_s: int | None = None
    remaining_s: int | None = None
    force_n: int | None = None
    power_w: int | None = None
    # What the decoder saw, for logs and quirk handling; ignored by the encoder.
    flags: int = field(default=0, compare=False)
    not_available: frozenset[str] = field(default=frozenset(), compare=False)
    implausible: frozenset[str] = field(default=frozenset(), compare=False)  # left out
    malformed: bool = field(default=False, compare=False)
    trailing: bytes = field(default=b"", compare=False)
    # Fields the flags announce but the packet was cut before (old firmware cuts every
    # notification at 20 bytes): unknown, not "not available". Marks the packet malformed.
    missing: frozenset[str] = field(default=frozenset(), compare=False)

    def values(self) -> dict[str, float | int]:
        """The fields that carry a value, by name."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name in _VALUE_FIELDS and getattr(self, f.name) is not None
        }

    @property
    def more_data(self) -> bool:
        """Flag bit 0 as sent: this notification has no instantaneous speed field and its
        record continues in the next one. Read from the wire flags, not from `speed_kmh`: a
        speed left out as implausible was still sent, so it does not make a record partial."""
        return bool(self.flags & 1)

    def carried(self) -> frozenset[str]:
        """The fields this notification actually said something about: a value, a "not
        available" marker, or a value left out as implausible. A field cut off is not carried."""
        return frozenset(self.values()) | self.not_available | self.implausible


_VALUE_FIELDS = frozenset(f.name for _, group in _GROUPS for f in group)


def decode_treadmill_data(data: bytes | bytearray) -> TreadmillData:
    """Decode a Treadmill Data notification; never raises.

    A packet cut short (old firmware cuts every notification at 20 bytes while the flags still
    announce more) keeps every field that is complete before the cut, field by field (total
    energy survives when only its per-hour and per-minute parts are cut off); the fields cut
    off are named in `missing`, the bytes of a field cut in the middle are kept in `trailing`,
    and the result is marked malformed. Bytes left over after every known flag (e.g. a step
    count behind reserved bit 13) are kept in `trailing` and also mark it malformed. A value no
    treadmill can produce (600 km/h) is left out and marks it malformed too; `check_plausible`
    also checks against the machine's ranges.
    """
    data = bytes(data)
    if len(data) < 2:
        return TreadmillData(malformed=True, trailing=data)
    flags = int.from_bytes(data[:2], "little")
    present = flags ^ 1  # bit 0 is inverted
    values: dict[str, float | int] = {}
    unavailable: set[str] = set()
    missing: set[str] = set()
    pos = 2
    for bit, group in _GROUPS:
        if not present & (1 << bit):
            continue
        for f in group:
            # Once one field does not fit, nothing after it can be where the flags say it is.
            if missing or pos + _SIZES[f.fmt] > len(data):
                missing.add(f.name)
                continue
            raw = _unpack(f.fmt, data, pos)
            pos += _SIZES[f.fmt]
            if raw in f.not_available:
                unavailable.add(f.name)
                continue
            values[f.name] = raw if _is_integer_scale(f.scale) else round(raw * f.scale, 2)
    trailing = data[pos:]
    # Cut short, leftovers, or reserved flag bits 13-15 set.
    malformed = bool(missing or trailing or flags & ~_KNOWN_FLAGS)
    return check_plausible(
        TreadmillData(
            **values,  # type: ignore[arg-type]
            flags=flags,
            not_available=frozenset(unavailable),
            malformed=malformed,
            trailing=trailing,
            missing=frozenset(missing),
        )
    )


def merge_treadmill_data(first: TreadmillData, second: TreadmillData) -> TreadmillData:
    """One record from two notifications of it (the More Data bit): the union of their fields,
    the second's where both carry one. Flag bit 0 (and so whether the record is complete) is
    the second's; the result is malformed if either part was. Never raises."""
    second_has = second.carried()
    first_has = first.carried()

    def source(name: str) -> TreadmillData:
        return second if name in second_has else first

    values = {name: getattr(source(name), name) for name in _VALUE_FIELDS}
    return TreadmillData(
        **values,
        flags=(first.flags | second.flags) & ~1 | second.flags & 1,
        not_available=frozenset(n for n in _VALUE_FIELDS if n in source(n).not_available),
        implausible=frozenset(n for n in _VALUE_FIELDS if n in source(n).implausible),
        malformed=first.malformed or second.malformed,
        trailing=first.trailing + second.trailing,
        missing=(first.missing | second.missing) - first_has - second_has,
    )


def encode_treadmill_data(sample: TreadmillData) -> bytes:
    """Encode the fields that are not None; the flags follow from which fields are present."""
    flags = 0
    body = bytearray()
    for bit, group in _GROUPS:
        raws = [getattr(sample, f.name) for f in group]
        if all(v is None for v in raws):
            continue
        if bit != 0:
            flags |= 1 << bit
        for f, value in zip(group, raws, strict=True):
            if value is None:
                raw = f.not_available[0] if f.not_available else 0
            else:
                raw = round(value / f.scale)
            body += _pack(f.fmt, raw)
    if sample.speed_kmh is None:
        flags |= 1  # "more data": no instantaneous speed in this packet
    return flags.to_bytes(2, "little") + bytes(body)


@dataclass(frozen=True)
class Features:
    """Fitness Machine Feature (0x2ACC): which data fields and which targets the machine has."""

    machine: int
    target: int
    malformed: bool = field(default=False, compare=False)

    def has(self, feature: MachineFeature) -> bool:
        return bool(self.machine & (1 << feature))

    def can_target(self, target: TargetFeature) -> bool:
        return bool(self.target & (1 << target))


def decode_features(data: bytes | bytearray) -> Features:
    data = bytes(data)
    padded = data.ljust(8, b"\x00")
    machine, target = struct.unpack_from("<II", padded)
    return Features(machine, target, malformed=len(data) != 8)


def encode_features(features: Features) -> bytes:
    return struct.pack("<II", features.machine, features.target)


@dataclass(frozen=True)
class Range:
    """A Supported Speed (km/h) or Inclination (%) Range: minimum, maximum, increment.

    `malformed` (with the reason in `problem`) means the bytes decoded but describe no real
    machine (min > max, a zero step, 600 km/h): the client must not use such a range."""

    minimum: float
    maximum: float
    step: float
    malformed: bool = field(default=False, compare=False)
    problem: str = field(default="", compare=False)


class MalformedPacket(ValueError):
    """A read that cannot be decoded at all (e.g. an empty range characteristic)."""


# Range kind -> (unit, lowest plausible minimum, highest plausible maximum). A speed range with
# a maximum of 0 km/h is the all-zero read of a console that has not filled it in.
_RANGE_BOUNDS: dict[str, tuple[str, float, float]] = {
    "speed": ("km/h", 0.0, SPEED_CEILING_KMH),
    "inclination": ("%", -INCLINE_LIMIT_PCT, INCLINE_LIMIT_PCT),
}


def _checked_range(kind: str, lo: float, hi: float, step: float) -> Range:
    unit, floor, ceiling = _RANGE_BOUNDS[kind]
    problem = ""
    if lo > hi:
        problem = f"minimum {lo:g} {unit} is above maximum {hi:g} {unit}"
    elif step <= 0:
        problem = f"increment {step:g} {unit} is not positive"
    elif lo < floor or hi > ceiling:
        problem = f"{lo:g}-{hi:g} {unit} is beyond what any treadmill can do"
    elif kind == "speed" and hi <= 0:
        problem = "maximum 0 km/h"
    elif hi > lo and step > hi - lo:
        problem = f"increment {step:g} {unit} is larger than the whole range {lo:g}-{hi:g}"
    return Range(lo, hi, step, malformed=bool(problem), problem=problem)


def decode_speed_range(data: bytes | bytearray) -> Range:
    """Raises MalformedPacket only when short; an implausible range comes back malformed."""
    if len(data) < 6:
        raise MalformedPacket(f"speed range needs 6 bytes, got {len(data)}: {bytes(data).hex()}")
    lo, hi, step = struct.unpack_from("<HHH", bytes(data))
    return _checked_range("speed", lo / 100, hi / 100, step / 100)


def encode_speed_range(r: Range) -> bytes:
    return struct.pack("<HHH", round(r.minimum * 100), round(r.maximum * 100), round(r.step * 100))


def decode_inclination_range(data: bytes | bytearray) -> Range:
    if len(data) < 6:
        raise MalformedPacket(
            f"inclination range needs 6 bytes, got {len(data)}: {bytes(data).hex()}"
        )
    lo, hi, step = struct.unpack_from("<hhH", bytes(data))
    return _checked_range("inclination", lo / 10, hi / 10, step / 10)


def encode_inclination_range(r: Range) -> bytes:
    return struct.pack("<hhH", round(r.minimum * 10), round(r.maximum * 10), round(r.step * 10))


# ---- Control point -------------------------------------------------------------------------


@dataclass(frozen=True)
class ControlRequest:
    """A control point write as the machine sees it: op code and its parameter (if any)."""

    op: int
    value: float | int | None = None
    malformed: bool = False


def encode_request_control() -> bytes:
    return bytes([ControlOp.REQUEST_CONTROL])


def encode_reset() -> bytes:
    return bytes([ControlOp.RESET])


def encode_set_target_speed(kmh: float) -> bytes:
    return bytes([ControlOp.SET_TARGET_SPEED]) + struct.pack("<H", round(kmh * 100))


def encode_set_target_inclination(pct: float) -> bytes:
    return bytes([ControlOp.SET_TARGET_INCLINATION]) + struct.pack("<h", round(pct * 10))


def encode_start_resume() -> bytes:
    return bytes([ControlOp.START_RESUME])


def encode_stop() -> bytes:
    return bytes([ControlOp.STOP_PAUSE, StopPause.STOP])


def encode_pause() -> bytes:
    return bytes([ControlOp.STOP_PAUSE, StopPause.PAUSE])


_REQUEST_PARAMS: dict[int, tuple[str, float]] = {
    ControlOp.SET_TARGET_SPEED: ("<H", 0.01),
    ControlOp.SET_TARGET_INCLINATION: ("<h", 0.1),
    ControlOp.STOP_PAUSE: ("<B", 1),
}


def decode_control_request(data: bytes | bytearray) -> ControlRequest:
    """Decode a control point write (the machine's side); never raises."""
    data = bytes(data)
    if not data:
        return ControlRequest(op=-1, malformed=True)
    op = data[0]
    param = _REQUEST_PARAMS.get(op)
    if param is None:
        return ControlRequest(op=op, malformed=len(data) != 1)
    fmt, scale = param
    size = struct.calcsize(fmt)
    if len(data) != 1 + size:
        return ControlRequest(op=op, malformed=True)
    raw = struct.unpack_from(fmt, data, 1)[0]
    return ControlRequest(op=op, value=raw if scale == 1 else round(raw * scale, 2))


@dataclass(frozen=True)
class ControlResponse:
    """The indication that answers a control point write: `0x80, request op, result`."""

    request_op: int
    result: int
    malformed: bool = False

    @property
    def ok(self) -> bool:
        return self.result == ResultCode.SUCCESS


def encode_control_response(request_op: int, result: int) -> bytes:
    return bytes([ControlOp.RESPONSE, request_op & 0xFF, result & 0xFF])


def decode_control_response(data: bytes | bytearray) -> ControlResponse | None:
    """The response in an indication, or None if the bytes are not a response at all."""
    data = bytes(data)
    if len(data) < 3 or data[0] != ControlOp.RESPONSE:
        return None
    return ControlResponse(request_op=data[1], result=data[2], malformed=len(data) != 3)


# ---- Machine status and training status ------------------------------------------------------


@dataclass(frozen=True)
class MachineStatus:
    """A Fitness Machine Status (0x2ADA) notification. Unknown op codes are kept (malformed),
    not rejected; a known op with trailing bytes still has its op and value."""

    op: int
    value: float | int | None = None
    malformed: bool = False
    raw: bytes = b""


# Op code -> parameter format, scale, and the values it can mean. Stop/pause's control info is
# 1 (stop) or 2 (pause); a target outside what any treadmill can do is garbage, not a target.
_STATUS_PARAMS: dict[int, tuple[str, float, float, float]] = {
    MachineStatusOp.STOPPED_OR_PAUSED_BY_USER: ("<B", 1, StopPause.STOP, StopPause.PAUSE),
    MachineStatusOp.TARGET_SPEED_CHANGED: ("<H", 0.01, 0.0, SPEED_CEILING_KMH),
    MachineStatusOp.TARGET_INCLINE_CHANGED: ("<h", 0.1, -INCLINE_LIMIT_PCT, INCLINE_LIMIT_PCT),
}


def decode_machine_status(data: bytes | bytearray) -> MachineStatus:
    """Decode a Machine Status notification; never raises.

    Malformed: empty, an op code the spec reserves (kept as `op`), a parameter missing or
    followed by extra bytes, or a parameter no machine can mean. A reserved stop/pause control
    info keeps its value (it still says "stopped"); an impossible target is left out."""
    data = bytes(data)
    if not data:
        return MachineStatus(op=-1, malformed=True, raw=data)
    op = data[0]
    param = _STATUS_PARAMS.get(op)
    if param is None:
        known = op in MachineStatusOp._value2member_map_
        return MachineStatus(op=op, malformed=not known or len(data) != 1, raw=data)
    fmt, scale, lo, hi = param
    size = struct.calcsize(fmt)
    if len(data) < 1 + size:
        return MachineStatus(op=op, malformed=True, raw=data)
    raw = struct.unpack_from(fmt, data, 1)[0]
    value: float | int | None = raw if scale == 1 else round(raw * scale, 2)
    plausible = _within(value, (lo, hi))  # type: ignore[arg-type]
    if not plausible and op != MachineStatusOp.STOPPED_OR_PAUSED_BY_USER:
        value = None
    malformed = len(data) != 1 + size or not plausible
    return MachineStatus(op=op, value=value, malformed=malformed, raw=data)


def encode_machine_status(op: int, value: float | int | None = None) -> bytes:
    param = _STATUS_PARAMS.get(op)
    if param is None or value is None:
        return bytes([op & 0xFF])
    fmt, scale = param[:2]
    return bytes([op]) + struct.pack(fmt, round(value / scale))


@dataclass(frozen=True)
class TrainingStatus:
    """Training Status (0x2AD3): a status code and an optional text."""

    status: int
    text: str = ""
    malformed: bool = False


def decode_training_status(data: bytes | bytearray) -> TrainingStatus:
    data = bytes(data)
    if len(data) < 2:
        return TrainingStatus(status=data[0] if data else -1, malformed=True)
    text = data[2:].decode("utf-8", errors="replace") if data[0] & 0x01 else ""
    return TrainingStatus(status=data[1], text=text)


def encode_training_status(status: int, text: str = "") -> bytes:
    flags = 0x01 if text else 0x00
    return bytes([flags, status]) + text.encode()


# ---- Advertisement ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AdvertisedMachine:
    """FTMS service data in an advertisement: is a machine available, and what kinds."""

    available: bool
    machine_types: int

    @property
    def is_treadmill(self) -> bool:
        return bool(self.machine_types & MACHINE_TYPE_TREADMILL)

    @property
    def type_names(self) -> list[str]:
        return [name for bit, name in MACHINE_TYPE_NAMES.items() if self.machine_types & 1 << bit]


def decode_ftms_service_data(data: bytes | bytearray) -> AdvertisedMachine | None:
    data = bytes(data)
    if len(data) < 3:
        return None
    return AdvertisedMachine(available=bool(data[0] & 1), machine_types=data[1] | data[2] << 8)


def encode_ftms_service_data(machine_types: int = MACHINE_TYPE_TREADMILL) -> bytes:
    return bytes([0x01]) + struct.pack("<H", machine_types)
