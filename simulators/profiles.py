"""Device profiles: what each simulated treadmill is, reports and gets wrong (DESIGN §4)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType

from treadmill.ftms import Range


class Quirk(StrEnum):
    """Misbehaviours seen on real treadmills; each one is a flag a profile can carry."""

    SILENT_WHEN_STOPPED = "silent-when-stopped"  # no Treadmill Data at all while the belt is still
    IGNORES_SPEED_WHEN_STOPPED = "ignores-speed-when-stopped"  # success, but nothing happens
    DISCONNECTS_ON_SPEED_WHEN_STOPPED = "disconnects-on-speed-when-stopped"
    STRAY_ZEROS = "stray-zeros"  # a single 0 km/h frame every `stray_zero_every` while moving
    NO_INCLINE_REPORT = "no-incline-report"  # claims inclination, never puts it in the data
    NO_STATUS = "no-status"  # never notifies Fitness Machine Status
    # Fidelity quirks (DESIGN §3-§4): how the bytes reach the air, and answers real machines give.
    MORE_DATA_SPLIT = "more-data-split"  # records in parts of <= 20 bytes; speed in the last only
    TRUNCATE_AT_20 = "truncates-at-20"  # every notification cut at 20 bytes; flags claim it all
    REDUNDANT_OP_FAILED = "redundant-op-failed"  # Start running, Stop at rest, Pause idle: 0x04
    ENCRYPTED_CONTROL_POINT = "encrypted-control-point"  # control point: ATT 0x0F unless encrypted
    STATUS_AFTER_CONTROL_STOP = "status-after-control-stop"  # our own Stop/Pause echoed as 0x02


@dataclass(frozen=True)
class DeviceInfo:
    """Device Information service strings (the serial number is made per simulator)."""

    manufacturer: str = "Simulated Fitness Co."
    model: str = "SIM-1"
    firmware: str = "1.0.0"
    hardware: str = "A"
    software: str = "sim"


@dataclass(frozen=True)
class Reports:
    """Which optional Treadmill Data fields the machine fills in (and claims in its features)."""

    distance: bool = True
    incline: bool = True
    elapsed_time: bool = True
    energy: bool = True
    heart_rate: bool = False
    # The rest of the FTMS Treadmill Data fields; only full gym consoles fill them in.
    average_speed: bool = False
    elevation_gain: bool = False
    pace: bool = False  # instantaneous and average, in FTMS's 0.1 km/min
    met: bool = False
    remaining_time: bool = False  # counts down from Profile.session_limit_s
    force_and_power: bool = False  # the walker's work against the slope (0 on the flat)


@dataclass(frozen=True)
class Profile:
    """Everything that makes one simulated treadmill different from another."""

    name: str
    description: str
    device_info: DeviceInfo
    speed: Range  # km/h
    incline: Range | None  # %, None: no incline motor, feature bits or range characteristic
    accel_kmh_s: float = 1.0
    decel_kmh_s: float = 1.5
    emergency_decel_kmh_s: float = 10.0  # safety key: the belt stops within a second or two
    incline_rate_pct_s: float = 0.5
    start_delay_s: float = 0.0  # console countdown between Start and the belt moving
    notify_hz: float = 4.0
    reports: Reports = field(default_factory=Reports)
    quirks: frozenset[Quirk] = frozenset()
    stray_zero_every: int = 20
    # The order of the write response and the control point's indication. The ATT/FTMS order
    # is the write response first, then the indication (False, the default). A real capture
    # (DESIGN §7, Reebok FR30z) shows the indication ~2 ms before the write response: True,
    # the "answers-early" profile, where the answer reaches the client before write_gatt_char
    # returns. The transport applies it (the GATT level delays answers by one round trip when
    # False; over ATT the air orders them); FtmsServer always returns the answer with the write.
    indicate_before_write_returns: bool = False
    att_latency_s: float = 0.01  # one ATT request/response round trip
    # The console's session length in manual mode, for Remaining Time (reports.remaining_time);
    # at 0 the simulated console only reports 0, it does not stop the belt.
    session_limit_s: float | None = None

    def __post_init__(self) -> None:
        if not 1.0 <= self.notify_hz <= 10.0:
            raise ValueError(f"notify_hz must be within 1..10 Hz, got {self.notify_hz}")
        if self.speed.minimum <= 0 or self.speed.step <= 0:
            raise ValueError("speed range needs a positive minimum and step")
        if self.reports.remaining_time and not (self.session_limit_s or 0) > 0:
            raise ValueError("reports.remaining_time needs a positive session_limit_s")

    def has(self, quirk: Quirk) -> bool:
        return quirk in self.quirks


_HOME = Profile(
    name="home",
    description="Typical home treadmill: 0.8-16 km/h, 0-15 % incline, ~1 km/h/s.",
    device_info=DeviceInfo(model="SIM-HOME-1"),
    speed=Range(0.8, 16.0, 0.1),
    incline=Range(0.0, 15.0, 0.5),
)


_GYM = Profile(
    name="gym",
    description="Gym treadmill: 1-20 km/h, -3..15 % incline, chest-strap heart rate, "
    "3 s countdown before the belt moves.",
    device_info=DeviceInfo(manufacturer="Simulated Gym Systems", model="SIM-GYM-9"),
    speed=Range(1.0, 20.0, 0.1),
    incline=Range(-3.0, 15.0, 0.5),
    accel_kmh_s=1.5,
    decel_kmh_s=2.0,
    incline_rate_pct_s=1.0,
    start_delay_s=3.0,
    notify_hz=2.0,
    reports=Reports(heart_rate=True),
)

# Every Treadmill Data field the model can fill.
_FULL_REPORTS = Reports(
    heart_rate=True,
    average_speed=True,
    elevation_gain=True,
    pace=True,
    met=True,
    remaining_time=True,
    force_and_power=True,
)


def _quirky(name: str, description: str, **changes: object) -> Profile:
    """A home treadmill with one thing wrong (most quirks are seen on home machines)."""
    info = replace(_HOME.device_info, model=f"SIM-{name.upper()}")
    return replace(_HOME, name=name, description=description, device_info=info, **changes)


_ALL = (
    _HOME,
    Profile(
        name="walking-pad",
        description="Under-desk walking pad: 0.5-6 km/h, no incline at all.",
        device_info=DeviceInfo(manufacturer="Simulated Pads Ltd.", model="SIM-PAD-1"),
        speed=Range(0.5, 6.0, 0.1),
        incline=None,
        accel_kmh_s=0.5,
        decel_kmh_s=1.0,
        notify_hz=2.0,
        reports=Reports(incline=False),
    ),
    _GYM,
    replace(
        _GYM,
        name="gym-full",
        description="Gym treadmill with a full console: every Treadmill Data field "
        "(34-byte records: over ATT, cut at 20 bytes unless --sim-mtu is 37 or more), "
        "99 min sessions.",
        device_info=replace(_GYM.device_info, model="SIM-GYM-9X"),
        reports=_FULL_REPORTS,
        session_limit_s=99 * 60.0,
    ),
    _quirky(
        "answers-early",
        "Control point answers arrive before the write response (a Reebok FR30z capture).",
        indicate_before_write_returns=True,
    ),
    _quirky(
        "silent-stop",
        "Telemetry goes silent instead of reporting 0 km/h while the belt is stopped.",
        quirks=frozenset({Quirk.SILENT_WHEN_STOPPED}),
    ),
    _quirky(
        "ignores-speed-when-stopped",
        "A speed set while the belt is still is answered success but ignored.",
        quirks=frozenset({Quirk.IGNORES_SPEED_WHEN_STOPPED}),
        start_delay_s=3.0,
    ),
    _quirky(
        "disconnects-on-speed-when-stopped",
        "A speed set while the belt is still makes the device drop the connection.",
        quirks=frozenset({Quirk.DISCONNECTS_ON_SPEED_WHEN_STOPPED}),
        start_delay_s=3.0,
    ),
    _quirky(
        "stray-zeros",
        "Single stray 0 km/h frames while running (1 in 20).",
        quirks=frozenset({Quirk.STRAY_ZEROS}),
    ),
    _quirky(
        "no-incline-report",
        "Incline targets are accepted but the incline never appears in Treadmill Data.",
        quirks=frozenset({Quirk.NO_INCLINE_REPORT}),
    ),
    _quirky(
        "slow-belt",
        "Slow motor: ~0.2 km/h/s, still accelerating 5 s after a change.",
        accel_kmh_s=0.2,
        decel_kmh_s=0.3,
    ),
    _quirky(
        "no-status",
        "Never sends Fitness Machine Status (not even for the safety key).",
        quirks=frozenset({Quirk.NO_STATUS}),
    ),
    _quirky(
        "coarse-incline",
        "Incline in 1 % steps only (other values are rounded to the step).",
        incline=Range(0.0, 12.0, 1.0),
    ),
    _quirky(
        "high-minimum",
        "Minimum speed 4.5 km/h: too fast to walk backwards, backward mode must refuse it.",
        speed=Range(4.5, 18.0, 0.1),
    ),
    _quirky(
        "redundant-op-failed",
        "Redundant commands (Start while running, Stop at rest, Pause when not running) are "
        "answered 'operation failed' (0x04), as in the FTMS spec's examples.",
        quirks=frozenset({Quirk.REDUNDANT_OP_FAILED}),
    ),
)

# MORE_DATA_SPLIT, TRUNCATE_AT_20 and STATUS_AFTER_CONTROL_STOP have no profile of their own
# (yet): every profile here must pass the every-profile tests, which read speed, incline and
# heart rate from every single notification and expect no 0x02 after a control-point Stop.
# ENCRYPTED_CONTROL_POINT depends on the transport (it says whether the link is encrypted).
# Add them to a profile with dataclasses.replace, e.g.
# replace(get_profile("gym-full"), quirks=frozenset({Quirk.MORE_DATA_SPLIT})).
PROFILES: MappingProxyType[str, Profile] = MappingProxyType({p.name: p for p in _ALL})


def profile_names() -> list[str]:
    return list(PROFILES)


def get_profile(name: str) -> Profile:
    """The profile called `name`; an unknown name raises ValueError listing the valid ones."""
    try:
        return PROFILES[name]
    except KeyError:
        valid = ", ".join(PROFILES)
        raise ValueError(f"unknown treadmill profile {name!r}; valid profiles: {valid}") from None
