"""The speed/incline envelope of one orientation on one machine: caps snapped to its grid."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .config import HARD_BACKWARD_INCLINE_PCT, HARD_BACKWARD_SPEED_CAP_KMH, SafetyConfig
from .types import MachineLimits, Orientation

EPS = 1e-6
# FTMS resolutions: speed 0.01 km/h, inclination 0.1 %.
_SPEED_DIGITS = 2
_INCLINE_DIGITS = 1


def snap_down(value: float, origin: float, step: float, ndigits: int = _SPEED_DIGITS) -> float:
    """The largest grid point origin + k*step that is <= value (caps round DOWN)."""
    k = math.floor((value - origin) / step + EPS)
    return round(origin + k * step, ndigits)


def snap_up(value: float, origin: float, step: float, ndigits: int = _SPEED_DIGITS) -> float:
    k = math.ceil((value - origin) / step - EPS)
    return round(origin + k * step, ndigits)


@dataclass(frozen=True, slots=True)
class Envelope:
    """What may be commanded in one orientation. Program validators can use it too."""

    orientation: Orientation
    speed_min_kmh: float
    speed_cap_kmh: float  # on the machine grid, never above the configured or hard cap
    speed_step_kmh: float
    start_speed_kmh: float
    ramp_up_kmh_per_s: float
    ramp_down_kmh_per_s: float
    incline_min_pct: float | None  # None: no incline control in this orientation
    incline_cap_pct: float | None
    incline_step_pct: float
    refusal: str | None  # why this orientation is not possible on this machine

    @property
    def speed_tolerance_kmh(self) -> float:
        # Readings are quantised and belts settle a little off target, but a belt still on
        # the previous step must not confirm the new one: with 0.1 km/h steps this is 0.09.
        return max(self.speed_step_kmh / 2, 0.05) + 0.04

    @property
    def incline_tolerance_pct(self) -> float:
        return self.incline_step_pct / 2 + 0.05

    @property
    def up_interval_s(self) -> float:
        """Minimum time between two one-step speed increases."""
        return self.speed_step_kmh / self.ramp_up_kmh_per_s

    @property
    def down_interval_s(self) -> float:
        return self.speed_step_kmh / self.ramp_down_kmh_per_s

    def clamp_speed(self, kmh: float) -> float:
        v = min(max(kmh, self.speed_min_kmh), self.speed_cap_kmh)
        return min(snap_down(v, self.speed_min_kmh, self.speed_step_kmh), self.speed_cap_kmh)

    def clamp_incline(self, pct: float) -> float | None:
        if self.incline_min_pct is None or self.incline_cap_pct is None:
            return None
        v = min(max(pct, self.incline_min_pct), self.incline_cap_pct)
        snapped = snap_down(v, 0.0, self.incline_step_pct, _INCLINE_DIGITS)
        return min(max(snapped, self.incline_min_pct), self.incline_cap_pct)


def envelope_for(
    machine: MachineLimits, config: SafetyConfig, orientation: Orientation
) -> Envelope:
    step = machine.speed_step_kmh
    lo = machine.speed_min_kmh
    refusal: str | None = None
    if orientation is Orientation.BACKWARD:
        # min() with the hard limit: belt and braces against a config built by hand.
        configured_cap = min(config.backward_speed_cap_kmh, HARD_BACKWARD_SPEED_CAP_KMH)
        start_cfg = config.backward_start_speed_kmh
        ramp_up = config.backward_ramp_up_kmh_per_s
    else:
        fwd = config.forward_speed_cap_kmh
        configured_cap = machine.speed_max_kmh if fwd is None else fwd
        start_cfg = config.forward_start_speed_kmh
        ramp_up = config.forward_ramp_up_kmh_per_s
    raw_cap = min(configured_cap, machine.speed_max_kmh)
    if lo > raw_cap + EPS:
        refusal = (
            f"this treadmill's minimum speed {lo:g} km/h is above the {orientation} cap of "
            f"{configured_cap:g} km/h: {orientation} mode is not possible on it"
        )
    cap = max(snap_down(raw_cap, lo, step), lo)
    start = min(snap_down(max(start_cfg, lo), lo, step), cap)

    incline_lo: float | None = None
    incline_hi: float | None = None
    istep = machine.incline_step_pct if machine.incline_supported else 1.0
    if machine.incline_supported:
        if orientation is Orientation.BACKWARD:
            # No declines backwards either: the protocols we found used 0/5/10 % only.
            cfg_cap = min(config.backward_incline_cap_effective_pct, HARD_BACKWARD_INCLINE_PCT)
            cfg_lo = 0.0
        else:
            fcap = config.forward_incline_cap_pct
            cfg_cap = machine.incline_max_pct if fcap is None else fcap
            cfg_lo = machine.incline_min_pct
        ilo = snap_up(max(machine.incline_min_pct, cfg_lo), 0.0, istep, _INCLINE_DIGITS)
        ihi = snap_down(min(machine.incline_max_pct, cfg_cap), 0.0, istep, _INCLINE_DIGITS)
        if ilo <= ihi + EPS:
            incline_lo, incline_hi = ilo, ihi
        elif orientation is Orientation.BACKWARD and refusal is None:
            refusal = (
                f"this treadmill's minimum incline {machine.incline_min_pct:g} % is above the "
                f"backward incline cap of {cfg_cap:g} %: backward mode is not possible on it"
            )
    return Envelope(
        orientation=orientation,
        speed_min_kmh=lo,
        speed_cap_kmh=cap,
        speed_step_kmh=step,
        start_speed_kmh=start,
        ramp_up_kmh_per_s=ramp_up,
        ramp_down_kmh_per_s=config.ramp_down_kmh_per_s,
        incline_min_pct=incline_lo,
        incline_cap_pct=incline_hi,
        incline_step_pct=istep,
        refusal=refusal,
    )
