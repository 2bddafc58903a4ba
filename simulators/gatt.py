"""The FTMS GATT server over the model: attribute table, reads, control point, notifications."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from bleak.exc import BleakGATTProtocolError, BleakGATTProtocolErrorCode

from simulators.faults import FORCED_RESULTS, PACKET_FAULTS, Fault, FaultKind
from simulators.model import MachineState, OperationRefused, TreadmillModel
from simulators.profiles import Profile, Quirk
from treadmill import ftms
from treadmill.ftms import (
    ControlOp,
    ControlRequest,
    MachineFeature,
    MachineStatusOp,
    Range,
    ResultCode,
    StopPause,
    TargetFeature,
    TrainingStatusCode,
    TreadmillData,
)

CCCD_NOTIFY = 0x0001
CCCD_INDICATE = 0x0002
PROCEDURE_TIMEOUT_S = 30.0  # FTMS: a control procedure the server never answers times out
# Loop times are sums of floats: a timer due at T may run at T - 1e-14 together with others
# due then (asyncio runs everything due within its clock resolution). A busy window that ends
# "now" must count as over, or a client answering the instant it hears back is refused.
BUSY_TOLERANCE_S = 1e-6
LONG_PACKET_TAIL = b"\x63\x00\x00"  # like the CS-WP8's step count behind reserved flag bit 13
# A fixed order (not the frozenset's) so that combined packet faults are reproducible.
_GARBLES = (FaultKind.CORRUPT_PACKET, FaultKind.SHORT_PACKET, FaultKind.LONG_PACKET)
# What one notification carries at the default ATT MTU (23, less the 3-byte header).
DEFAULT_ATT_PAYLOAD = 20
# The parts of a split record go out one after the other (as in consecutive connection
# events): each one this much after the one before, so they can never swap places.
SPLIT_PART_GAP_S = 0.001


@dataclass(frozen=True)
class CharacteristicSpec:
    """One characteristic of the attribute table, in bleak's property names."""

    uuid: str
    service: str
    properties: tuple[str, ...]

    @property
    def notifies(self) -> bool:
        return "notify" in self.properties or "indicate" in self.properties


@dataclass(frozen=True)
class Notification:
    """A notification (or indication) to deliver `delay` s from now."""

    uuid: str
    data: bytes
    delay: float = 0.0
    # A late control point answer: delivering it ends this procedure (FtmsServer.delivered).
    procedure: int | None = None


@dataclass(frozen=True)
class LinkDropped:
    """The device drops the connection."""

    reason: str


type Event = Notification | LinkDropped


def _snap(value: float, r: Range) -> float | None:
    """`value` rounded to the range's increment, or None when outside the range."""
    if value < r.minimum - 1e-9 or value > r.maximum + 1e-9:
        return None
    steps = round((value - r.minimum) / r.step)
    return round(min(r.minimum + steps * r.step, r.maximum), 2)


def _clamp_snap(value: float, r: Range) -> float:
    """`value` brought into the range, then rounded to its increment (what a console can set)."""
    snapped = _snap(min(max(value, r.minimum), r.maximum), r)
    assert snapped is not None
    return snapped


def split_record(sample: TreadmillData, limit: int = DEFAULT_ATT_PAYLOAD) -> list[TreadmillData]:
    """`sample` as newer firmware sends it over a small MTU: parts of at most `limit` bytes.

    Every field but the instantaneous speed is packed greedily, in wire order, into parts
    that go out with More Data = 1 (so without speed); the last of them also takes the speed
    and goes out with More Data = 0 if it has room and is not the only one, else the speed
    gets a final part of its own. A record with nothing but speed is not split."""
    values = sample.values()
    speed = values.pop("speed_kmh", None)
    groups: dict[int, dict[str, float | int]] = {}  # flag bit -> its fields, in wire order
    for name, value in values.items():
        flags = ftms.encode_treadmill_data(TreadmillData(**{name: value}))[:2]  # type: ignore[arg-type]
        bit = (int.from_bytes(flags, "little") & ~1).bit_length() - 1
        groups.setdefault(bit, {})[name] = value
    if not groups:
        return [sample]

    def size(fields: dict[str, float | int]) -> int:
        return len(ftms.encode_treadmill_data(TreadmillData(**fields)))  # type: ignore[arg-type]

    parts: list[dict[str, float | int]] = [{}]
    for bit in sorted(groups):
        if parts[-1] and size(parts[-1] | groups[bit]) > limit:
            parts.append({})
        parts[-1] |= groups[bit]
    if speed is not None:
        if len(parts) > 1 and size(parts[-1] | {"speed_kmh": speed}) <= limit:
            parts[-1] |= {"speed_kmh": speed}
        else:
            parts.append({"speed_kmh": speed})
    return [TreadmillData(**fields) for fields in parts]  # type: ignore[arg-type]


def _tenths(metres: float) -> float:
    """An elevation in 0.1 m, kept below the 0x7FFF that machines use for "not available"."""
    return min(round(metres, 1), 3276.6)


def _sint16(value: float) -> int:
    """Force or power as a sint16, kept off its 0x7FFF "not available" marker."""
    return max(-0x7FFF, min(round(value), 0x7FFE))


def _garble(kind: FaultKind, data: bytes) -> bytes:
    if kind is FaultKind.CORRUPT_PACKET:
        return bytes(b ^ 0xFF for b in data)
    if kind is FaultKind.SHORT_PACKET:
        return data[: max(1, len(data) // 2)]
    return data + LONG_PACKET_TAIL


class FtmsServer:
    """The treadmill's GATT server; one instance lives as long as the simulated device.

    Sans-IO: every entry point takes the current time and returns the events to send
    (`Notification`, possibly delayed, or `LinkDropped`); simulators/treadmill.py delivers them.
    All bytes come from treadmill/ftms.py. Decisions a client author must know:

    - Control-point writes need indications enabled on the control point (else ATT error 0xFD),
      one procedure at a time (a write while an answer is still owed: ATT error 0xFE, for up to
      the spec's 30 s; a late answer ends it when it is delivered, see `delivered`), and Request
      Control first (else result 0x05).
    - Machine Status: 0x04 after a Start/Resume that started the belt (control point or console),
      0x05/0x06 with the new (step-rounded) value after every accepted target change, 0x01 after
      Reset, 0x03 safety key, 0xFF control lost. 0x02 (stopped/paused by user) is sent ONLY for
      stops at the console, never after a control-point Stop/Pause (unless the profile has
      STATUS_AFTER_CONTROL_STOP: then also after a control-point Stop/Pause that stopped or
      paused the belt, after the indication).
    - Redundant commands (Start while running, Stop at rest, Pause when not running) succeed
      and change nothing; with REDUNDANT_OP_FAILED they are answered 0x04 instead.
    - ENCRYPTED_CONTROL_POINT: a write to the control point or its CCCD over a link the
      transport says is not encrypted (`encrypted=False`) raises ATT error 0x0F.
    - Bytes on the air: MORE_DATA_SPLIT sends each Treadmill Data record as parts of at most
      20 bytes (`split_record`), TRUNCATE_AT_20 cuts every notification after 20 bytes. Without
      either a record may be longer than 20 bytes (gym-full: 34): the transport must have a
      large enough MTU for it (the GATT-level one has no MTU).
    - Targets are validated against the advertised ranges (outside: 0x03) and rounded to the
      increment. A speed set while not running is kept for the next Start (see model.py).
    - A write that is executed but whose answer is delayed or lost (faults) still took effect.
    """

    def __init__(
        self, profile: Profile, model: TreadmillModel, *, serial: str, faults: Iterable[Fault] = ()
    ) -> None:
        self.profile = profile
        self.model = model
        self.control_log: list[tuple[float, bytes]] = []
        self.fault_origin: float | None = None  # time of the first connection
        self._faults: dict[FaultKind, list[Fault]] = {}
        for fault in faults:
            self.add_fault(fault)
        self._one_shots: dict[FaultKind, int] = {}
        self._cccd: dict[str, int] = {}
        self._control = False
        self._busy_until: float | None = None
        self._procedure = 0  # counts answered writes, so a late answer ends only its own
        self._moving_frames = 0
        self._training_sent = self._training_bytes()
        self._report_incline = (
            profile.incline is not None
            and profile.reports.incline
            and not profile.has(Quirk.NO_INCLINE_REPORT)
        )
        self.table = self._attribute_table()
        self._static = self._static_values(serial)

    # ---- attribute table -----------------------------------------------------------------

    def _attribute_table(self) -> tuple[CharacteristicSpec, ...]:
        fm, dis = ftms.FTMS_SERVICE, ftms.DEVICE_INFORMATION_SERVICE
        specs = [
            CharacteristicSpec(ftms.FITNESS_MACHINE_FEATURE, fm, ("read",)),
            CharacteristicSpec(ftms.TREADMILL_DATA, fm, ("notify",)),
            CharacteristicSpec(ftms.TRAINING_STATUS, fm, ("read", "notify")),
            CharacteristicSpec(ftms.SUPPORTED_SPEED_RANGE, fm, ("read",)),
        ]
        if self.profile.incline is not None:
            specs.append(CharacteristicSpec(ftms.SUPPORTED_INCLINATION_RANGE, fm, ("read",)))
        specs += [
            CharacteristicSpec(ftms.CONTROL_POINT, fm, ("write", "indicate")),
            CharacteristicSpec(ftms.MACHINE_STATUS, fm, ("notify",)),
        ]
        specs += [
            CharacteristicSpec(uuid, dis, ("read",))
            for uuid in ftms.DEVICE_INFORMATION_FIELDS.values()
        ]
        return tuple(specs)

    def features(self) -> ftms.Features:
        reports = self.profile.reports
        bits = {
            MachineFeature.TOTAL_DISTANCE: reports.distance,
            # no-incline-report machines still claim it: real feature fields are copy-pasted
            MachineFeature.INCLINATION: reports.incline and self.profile.incline is not None,
            MachineFeature.EXPENDED_ENERGY: reports.energy,
            MachineFeature.HEART_RATE: reports.heart_rate,
            MachineFeature.ELAPSED_TIME: reports.elapsed_time,
            MachineFeature.AVERAGE_SPEED: reports.average_speed,
            MachineFeature.ELEVATION_GAIN: reports.elevation_gain,
            MachineFeature.PACE: reports.pace,
            MachineFeature.METABOLIC_EQUIVALENT: reports.met,
            MachineFeature.REMAINING_TIME: reports.remaining_time,
            MachineFeature.FORCE_ON_BELT_AND_POWER: reports.force_and_power,
        }
        machine = sum(1 << bit for bit, on in bits.items() if on)
        target = 1 << TargetFeature.SPEED
        if self.profile.incline is not None:
            target |= 1 << TargetFeature.INCLINATION
        return ftms.Features(machine, target)

    def _static_values(self, serial: str) -> dict[str, bytes]:
        info = self.profile.device_info
        values = {
            ftms.FITNESS_MACHINE_FEATURE: ftms.encode_features(self.features()),
            ftms.SUPPORTED_SPEED_RANGE: ftms.encode_speed_range(self.profile.speed),
            ftms.MANUFACTURER_NAME: info.manufacturer.encode(),
            ftms.MODEL_NUMBER: info.model.encode(),
            ftms.SERIAL_NUMBER: serial.encode(),
            ftms.HARDWARE_REVISION: info.hardware.encode(),
            ftms.FIRMWARE_REVISION: info.firmware.encode(),
            ftms.SOFTWARE_REVISION: info.software.encode(),
        }
        if self.profile.incline is not None:
            values[ftms.SUPPORTED_INCLINATION_RANGE] = ftms.encode_inclination_range(
                self.profile.incline
            )
        return values

    # ---- connection and faults -----------------------------------------------------------

    def on_connect(self, now: float) -> bool:
        """A central connected; True if it is the first one (faults count from now)."""
        self._reset_link()
        if self.fault_origin is None:
            self.fault_origin = now
            return True
        return False

    def on_disconnect(self, now: float) -> None:
        self.model.advance_to(now)
        self._reset_link()

    def _reset_link(self) -> None:
        # CCCDs of a non-bonded central and control permission do not survive a connection.
        self._cccd.clear()
        self._control = False
        self._busy_until = None

    def add_fault(self, fault: Fault) -> None:
        self._faults.setdefault(fault.kind, []).append(fault)

    def _window(self, kind: FaultKind, now: float) -> Fault | None:
        faults = self._faults.get(kind)
        if not faults or self.fault_origin is None:
            return None
        elapsed = now - self.fault_origin
        for fault in faults:
            if fault.in_window(elapsed):
                return fault
        return None

    def apply(self, fault: Fault, now: float) -> list[Event]:
        """A fault's moment has come: do what it does at that instant."""
        m = self.model
        m.advance_to(now)
        match fault.kind:
            case FaultKind.DISCONNECT:
                return [LinkDropped(f"fault {fault}")]
            case FaultKind.CONTROL_LOST:
                self._control = False
                return self._status(MachineStatusOp.CONTROL_PERMISSION_LOST)
            case FaultKind.SAFETY_KEY:
                m.pull_safety_key(now)
                return self._status(MachineStatusOp.STOPPED_BY_SAFETY_KEY) + self._training()
            case FaultKind.STOP_AT_CONSOLE:
                if not m.stop(now):
                    return []
                op = MachineStatusOp.STOPPED_OR_PAUSED_BY_USER
                return self._status(op, StopPause.STOP) + self._training()
            case FaultKind.PAUSE_AT_CONSOLE:
                if not m.pause(now):
                    return []
                op = MachineStatusOp.STOPPED_OR_PAUSED_BY_USER
                return self._status(op, StopPause.PAUSE) + self._training()
            case FaultKind.OVERSHOOT:
                m.set_speed_offset(now, fault.amount)
            case FaultKind.SPEED_UP_BY_ITSELF:
                m.nudge_speed(now, fault.amount)
                return self._training()
            case FaultKind.CONSOLE_START:
                return self.console_start(now, fault.amount)
            case FaultKind.CONSOLE_INCLINE:
                return self.console_set_incline(now, fault.amount)
            case FaultKind.UNKNOWN_STATUS:
                return self._raw_status(bytes([int(fault.amount) & 0xFF, 0x01, 0x02]))
            case kind if kind in PACKET_FAULTS and fault.duration is None:
                self._one_shots[kind] = self._one_shots.get(kind, 0) + 1
        return []

    # ---- the console: a person pressing the machine's own buttons ------------------------

    def console_start(self, now: float, kmh: float | None = None) -> list[Event]:
        """START on the console: works without control, like on a real machine.

        With `kmh`, the person then sets that speed at once (a quick-speed key, which consoles
        accept during the start countdown too): 0x04, then 0x05 with the value. The console
        cannot go beyond its own range, so `kmh` is clamped to it."""
        try:
            started = self.model.start(now)
        except OperationRefused:
            return []
        events = self._status(MachineStatusOp.STARTED_OR_RESUMED_BY_USER) if started else []
        if kmh is not None:
            speed = _clamp_snap(kmh, self.profile.speed)
            self.model.set_target_speed(now, speed)
            events += self._status(MachineStatusOp.TARGET_SPEED_CHANGED, speed)
        return events + self._training()

    def console_set_incline(self, now: float, pct: float) -> list[Event]:
        """The incline keys on the console (any time, belt moving or not; clamped to the range).
        A machine without an incline motor has no such keys."""
        if self.profile.incline is None:
            return []
        pct = _clamp_snap(pct, self.profile.incline)
        self.model.set_target_incline(now, pct)
        return self._status(MachineStatusOp.TARGET_INCLINE_CHANGED, pct)

    def console_set_speed(self, now: float, kmh: float) -> list[Event]:
        """The speed keys on the console."""
        snapped = _snap(kmh, self.profile.speed)
        if snapped is None or not self.model.moving:
            return []
        self.model.set_target_speed(now, snapped)
        return self._status(MachineStatusOp.TARGET_SPEED_CHANGED, snapped)

    def expire(self, fault: Fault, now: float) -> list[Event]:
        """A fault's duration is over: undo what needs undoing."""
        if fault.kind is FaultKind.SAFETY_KEY:
            self.model.insert_safety_key(now)
        elif fault.kind is FaultKind.OVERSHOOT:
            self.model.set_speed_offset(now, 0.0)
        return []

    # ---- reads and subscriptions ---------------------------------------------------------

    def read(self, uuid: str, now: float) -> bytes:
        if uuid == ftms.TRAINING_STATUS:
            self.model.advance_to(now)
            return self._training_bytes()
        try:
            return self._static[uuid]
        except KeyError:
            raise BleakGATTProtocolError(BleakGATTProtocolErrorCode.READ_NOT_PERMITTED) from None

    def cccd(self, uuid: str) -> int:
        return self._cccd.get(uuid, 0)

    def set_cccd(self, uuid: str, value: int, *, encrypted: bool = True) -> None:
        """A CCCD write; `encrypted`: whether the link is encrypted (the transport knows)."""
        if uuid == ftms.CONTROL_POINT:
            self._check_encryption(encrypted)
        self._cccd[uuid] = value

    def _check_encryption(self, encrypted: bool) -> None:
        if not encrypted and self.profile.has(Quirk.ENCRYPTED_CONTROL_POINT):
            raise BleakGATTProtocolError(BleakGATTProtocolErrorCode.INSUFFICIENT_ENCRYPTION)

    # ---- control point -------------------------------------------------------------------

    def write(self, uuid: str, data: bytes, now: float, *, encrypted: bool = True) -> list[Event]:
        """A write request: raises BleakGATTProtocolError for ATT-level errors.

        `encrypted`: whether the link is encrypted (the transport knows). A write refused for
        want of encryption never reaches the console, so it is not in `control_log`."""
        if uuid != ftms.CONTROL_POINT:
            raise BleakGATTProtocolError(BleakGATTProtocolErrorCode.WRITE_NOT_PERMITTED)
        self._check_encryption(encrypted)
        self.control_log.append((now, data))
        if not self._cccd.get(uuid, 0) & CCCD_INDICATE:
            raise BleakGATTProtocolError(BleakGATTProtocolErrorCode.CCCD_IMPROPERLY_CONFIGURED)
        if self._busy_until is not None and now < self._busy_until - BUSY_TOLERANCE_S:
            raise BleakGATTProtocolError(BleakGATTProtocolErrorCode.PROCEDURE_ALREADY_IN_PROGRESS)
        self._busy_until = None
        if not data:
            raise BleakGATTProtocolError(BleakGATTProtocolErrorCode.INVALID_ATTRIBUTE_VALUE_LENGTH)
        self.model.advance_to(now)
        forced = next((r for k, r in FORCED_RESULTS.items() if self._window(k, now)), None)
        if forced is not None:
            return self._answer(data[0], forced, now)  # refused: nothing executed
        outcome = self._execute(ftms.decode_control_request(data), now)
        if isinstance(outcome, LinkDropped):
            return [outcome]
        result, events = outcome
        return self._answer(data[0], result, now) + events

    def delivered(self, event: Notification) -> None:
        """`event` has just gone out over the air (called by the delivery side, which knows
        when). A late control point answer ends its procedure there and then: the next write
        may come at once, even from the callback that hears the answer."""
        if event.procedure is not None and event.procedure == self._procedure:
            self._busy_until = None

    def _answer(self, op: int, result: int, now: float) -> list[Event]:
        self._procedure += 1
        if self._window(FaultKind.NO_INDICATION, now):
            self._busy_until = now + PROCEDURE_TIMEOUT_S
            return []
        data = self._air(ftms.encode_control_response(op, result))
        if late := self._window(FaultKind.DELAY_INDICATION, now):
            self._busy_until = now + late.amount
            return [Notification(ftms.CONTROL_POINT, data, late.amount, self._procedure)]
        return [Notification(ftms.CONTROL_POINT, data)]

    def _execute(
        self, req: ControlRequest, now: float
    ) -> tuple[ResultCode, list[Event]] | LinkDropped:
        if req.op == ControlOp.REQUEST_CONTROL:
            if req.malformed:
                return ResultCode.INVALID_PARAMETER, []
            self._control = True
            return ResultCode.SUCCESS, []
        if not self._control:
            return ResultCode.CONTROL_NOT_PERMITTED, []
        handler = {
            ControlOp.RESET: self._reset,
            ControlOp.SET_TARGET_SPEED: self._set_speed,
            ControlOp.SET_TARGET_INCLINATION: self._set_incline,
            ControlOp.START_RESUME: self._start,
            ControlOp.STOP_PAUSE: self._stop_pause,
        }.get(req.op)
        if handler is None or (
            req.op == ControlOp.SET_TARGET_INCLINATION and self.profile.incline is None
        ):
            return ResultCode.OP_CODE_NOT_SUPPORTED, []
        if req.malformed:
            return ResultCode.INVALID_PARAMETER, []
        return handler(req, now)

    def _reset(self, req: ControlRequest, now: float) -> tuple[ResultCode, list[Event]]:
        self.model.reset(now)
        self._control = False  # FTMS: Reset also releases control
        return ResultCode.SUCCESS, self._status(MachineStatusOp.RESET) + self._training()

    def _set_speed(
        self, req: ControlRequest, now: float
    ) -> tuple[ResultCode, list[Event]] | LinkDropped:
        kmh = _snap(float(req.value or 0), self.profile.speed)
        if kmh is None:
            return ResultCode.INVALID_PARAMETER, []
        if self._window(FaultKind.IGNORE_SETPOINTS, now):
            return ResultCode.SUCCESS, []
        if not self.model.moving:
            if self.profile.has(Quirk.DISCONNECTS_ON_SPEED_WHEN_STOPPED):
                return LinkDropped("speed set while the belt was still")
            if self.profile.has(Quirk.IGNORES_SPEED_WHEN_STOPPED):
                return ResultCode.SUCCESS, []
        self.model.set_target_speed(now, kmh)
        return ResultCode.SUCCESS, self._status(MachineStatusOp.TARGET_SPEED_CHANGED, kmh)

    def _set_incline(self, req: ControlRequest, now: float) -> tuple[ResultCode, list[Event]]:
        assert self.profile.incline is not None
        pct = _snap(float(req.value or 0), self.profile.incline)
        if pct is None:
            return ResultCode.INVALID_PARAMETER, []
        if self._window(FaultKind.IGNORE_SETPOINTS, now):
            return ResultCode.SUCCESS, []
        self.model.set_target_incline(now, pct)
        return ResultCode.SUCCESS, self._status(MachineStatusOp.TARGET_INCLINE_CHANGED, pct)

    def _start(self, req: ControlRequest, now: float) -> tuple[ResultCode, list[Event]]:
        if self.profile.has(Quirk.REDUNDANT_OP_FAILED) and self.model.running:
            return ResultCode.OPERATION_FAILED, []  # already started (or counting down)
        try:
            started = self.model.start(now)
        except OperationRefused:
            return ResultCode.OPERATION_FAILED, []
        status = self._status(MachineStatusOp.STARTED_OR_RESUMED_BY_USER) if started else []
        return ResultCode.SUCCESS, status + self._training()

    def _stop_pause(self, req: ControlRequest, now: float) -> tuple[ResultCode, list[Event]]:
        m = self.model
        if req.value not in (StopPause.STOP, StopPause.PAUSE):
            return ResultCode.INVALID_PARAMETER, []
        if self.profile.has(Quirk.REDUNDANT_OP_FAILED):
            # A belt still coasting after a Stop is still stopping: a Stop then is not redundant.
            at_rest = m.state is MachineState.IDLE and not m.moving
            if at_rest if req.value == StopPause.STOP else not m.running:
                return ResultCode.OPERATION_FAILED, []
        changed = m.stop(now) if req.value == StopPause.STOP else m.pause(now)
        # By default no 0x02 status here: that one means "stopped at the console" (class doc).
        status: list[Event] = []
        if changed and self.profile.has(Quirk.STATUS_AFTER_CONTROL_STOP):
            status = self._status(MachineStatusOp.STOPPED_OR_PAUSED_BY_USER, req.value)
        return ResultCode.SUCCESS, status + self._training()

    # ---- notifications -------------------------------------------------------------------

    def _status(self, op: int, value: float | None = None) -> list[Event]:
        return self._raw_status(ftms.encode_machine_status(op, value))

    def _raw_status(self, data: bytes) -> list[Event]:
        if self.profile.has(Quirk.NO_STATUS) or not self._cccd.get(ftms.MACHINE_STATUS):
            return []
        return [Notification(ftms.MACHINE_STATUS, self._air(data))]

    def _air(self, data: bytes) -> bytes:
        """What of a notification's bytes gets onto the air."""
        if self.profile.has(Quirk.TRUNCATE_AT_20):
            return data[:DEFAULT_ATT_PAYLOAD]
        return data

    def _training_bytes(self) -> bytes:
        m = self.model
        if m.running:
            return ftms.encode_training_status(TrainingStatusCode.MANUAL_MODE)
        if m.paused:
            return ftms.encode_training_status(TrainingStatusCode.IDLE, "paused")
        return ftms.encode_training_status(TrainingStatusCode.IDLE)

    def _training(self) -> list[Event]:
        """A Training Status notification if the state it shows has changed."""
        data = self._training_bytes()
        if data == self._training_sent:
            return []
        self._training_sent = data
        if not self._cccd.get(ftms.TRAINING_STATUS):
            return []
        return [Notification(ftms.TRAINING_STATUS, self._air(data))]

    def telemetry(self, now: float) -> list[Event]:
        """The Treadmill Data notifications due now: one record, in parts with MORE_DATA_SPLIT
        (none when silent or dropped). A one-shot packet fault garbles the next part only."""
        m = self.model
        m.advance_to(now)
        if not self._cccd.get(ftms.TREADMILL_DATA):
            return []
        if self.profile.has(Quirk.SILENT_WHEN_STOPPED) and not m.moving and not m.running:
            return []
        if self._window(FaultKind.DROP_NOTIFICATIONS, now):
            return []
        sample = self._sample()
        parts = split_record(sample) if self.profile.has(Quirk.MORE_DATA_SPLIT) else [sample]
        late = self._window(FaultKind.DELAY_NOTIFICATIONS, now)
        delay = late.amount if late else 0.0
        events: list[Event] = []
        for i, part in enumerate(parts):
            data = ftms.encode_treadmill_data(part)
            for kind in _GARBLES:
                if self._window(kind, now) or self._take_one_shot(kind):
                    data = _garble(kind, data)
            events.append(
                Notification(ftms.TREADMILL_DATA, self._air(data), delay + i * SPLIT_PART_GAP_S)
            )
        return events

    def _take_one_shot(self, kind: FaultKind) -> bool:
        if not self._one_shots.get(kind):
            return False
        self._one_shots[kind] -= 1
        return True

    def _sample(self) -> TreadmillData:
        """What the console puts in Treadmill Data now (counts frames for stray zeros)."""
        m = self.model
        reports = self.profile.reports
        speed = round(m.belt_speed_kmh, 2)
        if m.moving and self.profile.has(Quirk.STRAY_ZEROS):
            self._moving_frames += 1
            if self._moving_frames % self.profile.stray_zero_every == 0:
                speed = 0.0
        incline = round(m.incline_pct, 1) if self._report_incline else None
        per_hour = min(round(m.energy_per_hour_kcal), 0xFFFE) if reports.energy else None
        elapsed = min(int(m.elapsed_s), 0xFFFF)
        avg = round(m.average_speed_kmh, 2)
        limit = self.profile.session_limit_s or 0.0
        # FTMS's pace fields are uint8 in 0.1 km/min (sic: so 0.0 or 0.1 at walking speeds).
        return TreadmillData(
            speed_kmh=speed,
            avg_speed_kmh=min(avg, 655.35) if reports.average_speed else None,
            distance_m=min(int(m.distance_m), 0xFFFFFF) if reports.distance else None,
            incline_pct=incline,
            ramp_deg=None if incline is None else round(math.degrees(math.atan(incline / 100)), 1),
            elevation_gain_pos_m=_tenths(m.elevation_gain_m) if reports.elevation_gain else None,
            elevation_gain_neg_m=_tenths(m.elevation_loss_m) if reports.elevation_gain else None,
            pace_inst=min(round(speed / 60, 1), 25.4) if reports.pace else None,
            pace_avg=min(round(avg / 60, 1), 25.4) if reports.pace else None,
            energy_total_kcal=min(int(m.energy_kcal), 0xFFFE) if reports.energy else None,
            energy_per_hour_kcal=per_hour,
            energy_per_min_kcal=None if per_hour is None else min(round(per_hour / 60), 0xFE),
            heart_rate_bpm=min(round(m.heart_rate_bpm), 0xFF) if reports.heart_rate else None,
            met=min(round(m.met, 1), 25.4) if reports.met else None,
            elapsed_s=elapsed if reports.elapsed_time else None,
            remaining_s=max(0, round(limit) - elapsed) if reports.remaining_time else None,
            force_n=_sint16(m.force_n) if reports.force_and_power else None,
            power_w=_sint16(m.power_w) if reports.force_and_power else None,
        )
