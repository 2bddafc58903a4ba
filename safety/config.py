"""Safety settings (DESIGN §5) and their validation: user settings may only be stricter."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Final

# The one unlockable step (DESIGN §5): unlocking raises the backward incline cap from 0 % to 5 %.
UNLOCKED_BACKWARD_INCLINE_PCT: Final = 5.0
# Hard limits no configuration can exceed, not even one built in code.
HARD_BACKWARD_SPEED_CAP_KMH: Final = 4.0
HARD_BACKWARD_INCLINE_PCT: Final = 10.0
HARD_MAX_STEP_PER_REQUEST_KMH: Final = 0.5


@dataclass(frozen=True, slots=True)
class _Range:
    """Allowed values: [lo, hi] for user settings, [hard_lo, hard_hi] for any config."""

    lo: float
    hi: float
    unit: str
    hard_lo: float | None = None  # None: same as lo
    hard_hi: float | None = None  # None: same as hi
    integer: bool = False
    nullable: bool = False

    def bounds(self, *, hard: bool) -> tuple[float, float]:
        if hard:
            return (
                self.lo if self.hard_lo is None else self.hard_lo,
                self.hi if self.hard_hi is None else self.hard_hi,
            )
        return self.lo, self.hi


_INF = math.inf

# Upper bounds are the DESIGN §5 defaults: raising them would make a setting less strict.
# Lower bounds (and the upper bounds of "longer is stricter" settings) keep the product usable:
# a 0.01 s stale threshold would stop every session at 1 Hz telemetry.
_RANGES: Final[Mapping[str, _Range]] = {
    "backward_speed_cap_kmh": _Range(0.1, 3.0, "km/h", hard_hi=HARD_BACKWARD_SPEED_CAP_KMH),
    "forward_speed_cap_kmh": _Range(0.1, _INF, "km/h", nullable=True),
    "backward_start_speed_kmh": _Range(0.1, 1.0, "km/h"),
    "forward_start_speed_kmh": _Range(0.1, 1.0, "km/h"),
    "max_step_per_request_kmh": _Range(0.01, HARD_MAX_STEP_PER_REQUEST_KMH, "km/h"),
    "backward_ramp_up_kmh_per_s": _Range(0.01, 0.1, "km/h per s"),
    # No source gives a forward limit; 0.3 km/h per s is a conservative choice of ours.
    "forward_ramp_up_kmh_per_s": _Range(0.01, 0.3, "km/h per s"),
    # Gentler is stricter, but a stop must still finish in reasonable time.
    "ramp_down_kmh_per_s": _Range(0.1, 0.2, "km/h per s"),
    # Special-cased: 0..0 locked, 0..5 unlocked (user), 0..10 unlocked (hard). See _check.
    "backward_incline_cap_pct": _Range(0.0, 0.0, "%"),
    "forward_incline_cap_pct": _Range(-100.0, 100.0, "%", nullable=True),
    "max_backward_bout_s": _Range(10.0, 600.0, "s"),
    "max_backward_session_s": _Range(10.0, 1800.0, "s"),
    "bout_rest_s": _Range(60.0, 3600.0, "s"),
    "turnaround_dwell_s": _Range(3.0, 60.0, "s"),
    "stale_alarm_s": _Range(0.5, 2.0, "s"),
    "stale_stop_s": _Range(1.0, 5.0, "s"),
    "disobey_margin_kmh": _Range(0.1, 0.3, "km/h"),
    "disobey_window_s": _Range(0.5, 2.0, "s"),
    "not_slowing_window_s": _Range(2.0, 5.0, "s"),
    "heart_rate_cap_bpm": _Range(40, 250, "bpm", integer=True, nullable=True),
    "heart_rate_grace_s": _Range(5.0, 60.0, "s"),
    "heart_rate_hard_margin_bpm": _Range(1, 10, "bpm", integer=True),
    "start_timeout_s": _Range(3.0, 10.0, "s"),
    "speed_incline_gap_s": _Range(2.0, 30.0, "s"),
}


@dataclass(frozen=True, slots=True)
class SafetyConfig:
    """Every safety number the governor enforces. Defaults are DESIGN §5."""

    backward_speed_cap_kmh: float = 3.0
    forward_speed_cap_kmh: float | None = None  # None: the machine's maximum
    backward_start_speed_kmh: float = 1.0  # or the machine minimum if higher
    forward_start_speed_kmh: float = 1.0  # or the machine minimum if higher
    max_step_per_request_kmh: float = 0.5  # one key press moves the target at most this much
    backward_ramp_up_kmh_per_s: float = 0.1
    forward_ramp_up_kmh_per_s: float = 0.3  # no published source: a conservative choice
    ramp_down_kmh_per_s: float = 0.2
    backward_incline_cap_pct: float = 0.0
    backward_incline_unlocked: bool = False
    forward_incline_cap_pct: float | None = None  # None: the machine's maximum
    max_backward_bout_s: float = 600.0  # continuous backward walking
    max_backward_session_s: float = 1800.0  # total backward walking per session
    bout_rest_s: float = 60.0  # rest (belt at rest) that resets the bout counter
    turnaround_dwell_s: float = 3.0
    stale_alarm_s: float = 2.0
    stale_stop_s: float = 5.0
    disobey_margin_kmh: float = 0.3
    disobey_window_s: float = 2.0
    not_slowing_window_s: float = 5.0  # belt above commanded + margin this long: stop
    heart_rate_cap_bpm: int | None = None
    heart_rate_grace_s: float = 60.0  # still above the cap after slowing down: stop
    heart_rate_hard_margin_bpm: int = 10  # above cap + this: stop at once (ramped)
    start_timeout_s: float = 10.0  # no belt motion this long after Start: send Stop
    speed_incline_gap_s: float = 2.0  # minimum time between a speed and an incline change

    def __post_init__(self) -> None:
        _check(self, hard=True)

    @property
    def backward_incline_cap_effective_pct(self) -> float:
        return self.backward_incline_cap_pct if self.backward_incline_unlocked else 0.0

    @classmethod
    def from_user_dict(cls, data: Mapping[str, object]) -> SafetyConfig:
        """Build from user settings (e.g. a TOML table); refuse anything less strict.

        Raises ValueError naming the field and its allowed range. Unknown keys are refused
        too: a typo in a safety setting must not silently fall back to a default.
        """
        if not isinstance(data, Mapping):
            raise ValueError("safety settings must be a table of name = value")
        known = {f.name for f in fields(cls)}
        for key in data:
            if key not in known:
                raise ValueError(
                    f"unknown safety setting {key!r}; known settings: {', '.join(sorted(known))}"
                )
        values = dict(data)
        unlocked = values.get("backward_incline_unlocked", False)
        if not isinstance(unlocked, bool):
            raise ValueError("backward_incline_unlocked must be true or false")
        if unlocked and "backward_incline_cap_pct" not in values:
            # Unlocking is the one step towards less strict; it raises the cap to 5 %.
            values["backward_incline_cap_pct"] = UNLOCKED_BACKWARD_INCLINE_PCT
        for name, value in values.items():
            if name != "backward_incline_unlocked":
                _check_value(name, value, hard=False, unlocked=unlocked)
        config = cls(**values)  # type: ignore[arg-type]
        _check(config, hard=False)
        return config


def _describe(name: str, lo: float, hi: float, rng: _Range, *, hard: bool) -> str:
    hint = "" if hard else " (settings may only be made stricter than the defaults)"
    none = " or unset" if rng.nullable else ""
    hi_text = "no upper limit" if hi == _INF else f"{hi:g} {rng.unit}"
    if lo == hi:
        return f"{name} must be {lo:g} {rng.unit}{none}{hint}"
    if hi == _INF:
        return f"{name} must be at least {lo:g} {rng.unit}{none}"
    return f"allowed range for {name} is {lo:g} to {hi_text}{none}{hint}"


def _incline_bounds(*, hard: bool, unlocked: bool) -> tuple[float, float]:
    if not unlocked:
        return 0.0, 0.0
    return 0.0, HARD_BACKWARD_INCLINE_PCT if hard else UNLOCKED_BACKWARD_INCLINE_PCT


def _check_value(name: str, value: object, *, hard: bool, unlocked: bool) -> None:
    rng = _RANGES[name]
    lo, hi = rng.bounds(hard=hard)
    if name == "backward_incline_cap_pct":
        lo, hi = _incline_bounds(hard=hard, unlocked=unlocked)
    if value is None:
        if rng.nullable:
            return
        raise ValueError(f"{name} must be set: {_describe(name, lo, hi, rng, hard=hard)}")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(
            f"{name} = {value!r} is not a number: {_describe(name, lo, hi, rng, hard=hard)}"
        )
    # NaN passes no comparison and inf is no setting: refuse both by name, first. (Booleans
    # were refused above: True is an int to Python, not a number to a person.)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(
            f"{name} = {value!r} must be a finite number: {_describe(name, lo, hi, rng, hard=hard)}"
        )
    if rng.integer and not isinstance(value, int):
        raise ValueError(f"{name} = {value!r} must be a whole number ({rng.unit})")
    if not lo <= value <= hi:
        message = f"{name} = {value!r} is not allowed: {_describe(name, lo, hi, rng, hard=hard)}"
        if name == "backward_incline_cap_pct" and not unlocked:
            message += (
                f"; set backward_incline_unlocked = true to allow up to "
                f"{UNLOCKED_BACKWARD_INCLINE_PCT:g} %"
            )
        raise ValueError(message)


def _check(config: SafetyConfig, *, hard: bool) -> None:
    if not isinstance(config.backward_incline_unlocked, bool):
        raise ValueError("backward_incline_unlocked must be true or false")
    for f in fields(config):
        if f.name != "backward_incline_unlocked":
            _check_value(
                f.name,
                getattr(config, f.name),
                hard=hard,
                unlocked=config.backward_incline_unlocked,
            )
    # Internal consistency.
    if config.backward_start_speed_kmh > config.backward_speed_cap_kmh:
        raise ValueError(
            f"backward_start_speed_kmh = {config.backward_start_speed_kmh:g} km/h is above "
            f"backward_speed_cap_kmh = {config.backward_speed_cap_kmh:g} km/h"
        )
    fwd_cap = config.forward_speed_cap_kmh
    if fwd_cap is not None and config.forward_start_speed_kmh > fwd_cap:
        raise ValueError(
            f"forward_start_speed_kmh = {config.forward_start_speed_kmh:g} km/h is above "
            f"forward_speed_cap_kmh = {fwd_cap:g} km/h"
        )
    if config.stale_alarm_s >= config.stale_stop_s:
        raise ValueError(
            f"stale_alarm_s = {config.stale_alarm_s:g} s must be below "
            f"stale_stop_s = {config.stale_stop_s:g} s"
        )
    if config.max_backward_bout_s > config.max_backward_session_s:
        raise ValueError(
            f"max_backward_bout_s = {config.max_backward_bout_s:g} s is above "
            f"max_backward_session_s = {config.max_backward_session_s:g} s"
        )
