"""Treadmill physics (belt, incline, distance, time, energy, heart rate): pure, time passed in."""

from __future__ import annotations

import math
from enum import StrEnum

from simulators.profiles import Profile

WEIGHT_KG = 70.0  # the simulated walker, for energy
REST_HR_BPM = 65.0
MAX_HR_BPM = 190.0
HR_TAU_S = 30.0  # heart rate follows effort with a first-order lag
RUNNING_GAIT_KMH = 8.0  # above this, ACSM's running equation instead of walking
GRAVITY_M_S2 = 9.81


class MachineState(StrEnum):
    IDLE = "idle"
    RUNNING = "running"
    PAUSED = "paused"


class OperationRefused(Exception):
    """The machine cannot do this now (FTMS result 0x04, e.g. Start with the key pulled)."""


def _ramp(v: float, goal: float, up: float, down: float, dt: float) -> tuple[float, float]:
    """End value and time integral of a quantity moving towards `goal` at a constant rate."""
    if v == goal:
        return v, v * dt
    rate = up if goal > v else down
    t_reach = abs(goal - v) / rate
    if t_reach >= dt:
        end = v + math.copysign(rate * dt, goal - v)
        return end, (v + end) / 2 * dt
    return goal, (v + goal) / 2 * t_reach + goal * (dt - t_reach)


def _vo2(speed_kmh: float, grade: float) -> float:
    """ACSM oxygen cost in ml/kg/min of walking or running at a speed and grade (fraction)."""
    m_per_min = speed_kmh * 1000 / 60
    horizontal, vertical = (0.2, 0.9) if speed_kmh > RUNNING_GAIT_KMH else (0.1, 1.8)
    return 3.5 + m_per_min * (horizontal + vertical * max(grade, 0.0))


def _kcal_per_ml_kg() -> float:
    return WEIGHT_KG / 1000 * 5.0  # ~5 kcal per litre of oxygen


class TreadmillModel:
    """One treadmill's mechanics; every command takes the current time `t` in seconds.

    The belt moves at piecewise constant acceleration, so `advance_to(t)` integrates each piece in
    closed form: the cost of a call does not depend on how much time passed, and a 30-minute
    session costs one call per notification. Behaviour, chosen to match common consoles:

    - Start from stopped ramps to the speed set while stopped (if any) or else the machine minimum,
      after the profile's countdown (`start_delay_s`) if the belt was still. Resume from pause
      does the same (it does not return to the pre-pause speed: the safer of the two behaviours
      seen on real machines). A new session (Start from stopped, not Resume) zeroes the counters.
    - Stop decelerates to 0 and lowers the incline to 0; Pause decelerates and keeps the incline.
    - Pulling the safety key stops the belt at the emergency deceleration; Start is refused until
      the key is inserted again. Nothing ever restarts the belt by itself (except the
      `nudge_speed` fault hook, which exists to test exactly that).
    - A speed target below the minimum is the caller's problem: the GATT layer validates ranges.
    - The machine may already be in motion when the model is made (`belt_kmh`, `incline_pct`: a
      belt someone started at the console before we arrived): running at that speed with no
      countdown, the deck at that incline. `now=None` starts the clock at the first call that
      passes a time (a simulator made outside an event loop has no time yet).
    """

    def __init__(
        self,
        profile: Profile,
        now: float | None = 0.0,
        *,
        belt_kmh: float = 0.0,
        incline_pct: float = 0.0,
    ) -> None:
        self.profile = profile
        self._clock_started = now is not None
        self._t = 0.0 if now is None else now
        moving = belt_kmh > 0.0
        self._state = MachineState.RUNNING if moving else MachineState.IDLE
        self._speed = belt_kmh if moving else 0.0
        self._target = self._speed
        self._pending: float | None = None  # speed set while not running, used by Start
        self._offset = 0.0  # overshoot fault: the belt runs to target + offset
        self._incline = self._clamp_incline(incline_pct)
        self._incline_target = self._incline
        self._motion_at = self._t  # end of the start countdown
        self._key_in = True
        self._distance_m = 0.0
        self._elapsed_s = 0.0
        self._energy_kcal = 0.0
        self._climb_m = 0.0  # elevation gained / lost along the belt this session
        self._descent_m = 0.0
        self._hr = REST_HR_BPM

    # ---- state for assertions and telemetry ----------------------------------------------

    @property
    def time(self) -> float:
        return self._t

    @property
    def state(self) -> MachineState:
        return self._state

    @property
    def running(self) -> bool:
        return self._state is MachineState.RUNNING

    @property
    def paused(self) -> bool:
        return self._state is MachineState.PAUSED

    @property
    def moving(self) -> bool:
        return self._speed > 0.0

    @property
    def belt_speed_kmh(self) -> float:
        return self._speed

    @property
    def target_speed_kmh(self) -> float:
        """The speed the belt is heading for (0 when not running)."""
        return self._goal()

    @property
    def commanded_speed_kmh(self) -> float | None:
        """The speed target as set (running target, or the one stored for the next Start)."""
        return self._target if self.running else self._pending

    @property
    def incline_pct(self) -> float:
        return self._incline

    @property
    def target_incline_pct(self) -> float:
        return self._incline_target

    @property
    def distance_m(self) -> float:
        return self._distance_m

    @property
    def elapsed_s(self) -> float:
        return self._elapsed_s

    @property
    def energy_kcal(self) -> float:
        return self._energy_kcal

    @property
    def energy_per_hour_kcal(self) -> float:
        if not self.running:
            return 0.0
        return _vo2(self._speed, self._incline / 100) * _kcal_per_ml_kg() * 60

    @property
    def elevation_gain_m(self) -> float:
        """Height climbed this session (distance times grade, uphill parts)."""
        return self._climb_m

    @property
    def elevation_loss_m(self) -> float:
        """Height descended this session (downhill parts, a positive number)."""
        return self._descent_m

    @property
    def average_speed_kmh(self) -> float:
        """Distance over workout time this session (0 before the belt has moved)."""
        if self._elapsed_s <= 0.0:
            return 0.0
        return self._distance_m / self._elapsed_s * 3.6

    @property
    def met(self) -> float:
        """Metabolic equivalent of the current effort (0 when not running, like per-hour energy)."""
        if not self.running:
            return 0.0
        return _vo2(self._speed, self._incline / 100) / 3.5

    @property
    def power_w(self) -> float:
        """The walker's power against the slope, m·g·v·sin(angle) (0 on the flat and when not
        running; negative downhill)."""
        if not self.running:
            return 0.0
        return self.force_n * self._speed / 3.6

    @property
    def force_n(self) -> float:
        """The slope's share of the walker's weight along the belt, m·g·sin(angle)."""
        if not self.running or not self.moving:
            return 0.0
        return WEIGHT_KG * GRAVITY_M_S2 * math.sin(math.atan(self._incline / 100))

    @property
    def heart_rate_bpm(self) -> float:
        return self._hr

    @property
    def safety_key_in(self) -> bool:
        return self._key_in

    @property
    def countdown_s(self) -> float:
        """Seconds until the belt may move after a Start (0 when not counting down)."""
        return max(0.0, self._motion_at - self._t) if self.running else 0.0

    # ---- time ----------------------------------------------------------------------------

    def advance_to(self, t: float) -> None:
        """Integrate up to time `t` (earlier times are ignored: the clock is monotonic)."""
        if not self._clock_started:
            # Nothing happened before the first time we hear of: the state made at creation
            # holds from here (a preset belt must not cover the distance of the wait).
            self._clock_started = True
            self._t = self._motion_at = t
            return
        if t <= self._t:
            return
        if self.running and self._t < self._motion_at < t:
            self._step(self._motion_at)  # countdown piece: the belt is held at 0
        self._step(t)

    def _goal(self) -> float:
        if self.running and self._t >= self._motion_at:
            return max(0.0, self._target + self._offset)
        return 0.0

    def _step(self, t: float) -> None:
        dt = t - self._t
        p = self.profile
        decel = p.decel_kmh_s if self._key_in else p.emergency_decel_kmh_s
        v0 = self._speed
        v1, kmh_s = _ramp(v0, self._goal(), p.accel_kmh_s, decel, dt)
        rate = p.incline_rate_pct_s
        g0 = self._incline
        g1, _ = _ramp(g0, self._incline_target, rate, rate, dt)
        dist_m = kmh_s / 3.6
        active = self.running and self._t >= self._motion_at
        if active:
            self._elapsed_s += dt
            # Energy is linear in distance for a fixed grade; the grade uses the piece's midpoint.
            grade = max((g0 + g1) / 200, 0.0)
            horizontal, vertical = (0.2, 0.9) if kmh_s / dt > RUNNING_GAIT_KMH else (0.1, 1.8)
            ml_kg = 3.5 * dt / 60 + dist_m * (horizontal + vertical * grade)
            self._energy_kcal += ml_kg * _kcal_per_ml_kg()
        self._distance_m += dist_m
        rise = dist_m * (g0 + g1) / 200  # the piece's midpoint grade
        if rise > 0:
            self._climb_m += rise
        else:
            self._descent_m -= rise
        effort = _vo2(v1, g1 / 100) / 3.5 if active else 1.0
        hr_goal = min(MAX_HR_BPM, REST_HR_BPM + 9.0 * (effort - 1.0))
        self._hr = hr_goal + (self._hr - hr_goal) * math.exp(-dt / HR_TAU_S)
        self._speed, self._incline, self._t = v1, g1, t

    # ---- commands ------------------------------------------------------------------------

    def start(self, t: float) -> bool:
        """Start or resume; True if the state changed. Raises OperationRefused without key."""
        self.advance_to(t)
        if not self._key_in:
            raise OperationRefused("safety key pulled")
        if self.running:
            return False
        if self._state is MachineState.IDLE:
            self._distance_m = self._elapsed_s = self._energy_kcal = 0.0
            self._climb_m = self._descent_m = 0.0
        self._target = self.profile.speed.minimum if self._pending is None else self._pending
        self._pending = None
        self._state = MachineState.RUNNING
        self._motion_at = t + (self.profile.start_delay_s if self._speed == 0.0 else 0.0)
        return True

    def stop(self, t: float) -> bool:
        """Stop: decelerate to 0 and lower the incline; True if the state changed."""
        self.advance_to(t)
        changed = self._state is not MachineState.IDLE
        self._state = MachineState.IDLE
        self._pending = None
        self._incline_target = self._clamp_incline(0.0)
        return changed

    def pause(self, t: float) -> bool:
        """Pause: decelerate to 0, keep the incline; True if the state changed."""
        self.advance_to(t)
        if not self.running:
            return False
        self._state = MachineState.PAUSED
        return True

    def set_target_speed(self, t: float, kmh: float) -> None:
        """New speed target; while not running it is kept for the next Start."""
        self.advance_to(t)
        if self.running:
            self._target = kmh
        else:
            self._pending = kmh

    def set_target_incline(self, t: float, pct: float) -> None:
        self.advance_to(t)
        self._incline_target = self._clamp_incline(pct)

    def pull_safety_key(self, t: float) -> bool:
        """The tether came off: emergency stop. True if the belt was running or paused."""
        self.advance_to(t)
        changed = self._state is not MachineState.IDLE or self.moving
        self._key_in = False
        self._state = MachineState.IDLE
        self._pending = None
        return changed

    def insert_safety_key(self, t: float) -> None:
        self.advance_to(t)
        self._key_in = True

    def reset(self, t: float) -> None:
        """FTMS Reset: stop and forget every target."""
        self.stop(t)
        self._target = 0.0

    def set_speed_offset(self, t: float, kmh: float) -> None:
        """Fault hook: the belt runs to its target plus `kmh` (0 to heal)."""
        self.advance_to(t)
        self._offset = kmh

    def nudge_speed(self, t: float, kmh: float) -> None:
        """Fault hook: the target rises by `kmh` with no command, starting a still belt."""
        self.advance_to(t)
        if self.running:
            self._target += kmh
            return
        if not self._key_in:
            return  # a pulled key cuts the motor, whatever the electronics do
        self._target = self.profile.speed.minimum + kmh
        self._state = MachineState.RUNNING
        self._motion_at = t

    def _clamp_incline(self, pct: float) -> float:
        r = self.profile.incline
        if r is None:
            return 0.0
        return min(max(pct, r.minimum), r.maximum)
