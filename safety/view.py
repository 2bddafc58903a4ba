"""The governor's read-only view for the UI: state, targets, readings, limits, refusal queries."""

from __future__ import annotations

from .config import SafetyConfig
from .context import Context
from .limits import EPS, Envelope, envelope_for
from .rules.backward_time import BackwardTime
from .rules.heart_rate import HeartRate
from .rules.machine_status import MachineStatusRule
from .rules.start import StartRule
from .rules.stop_until_still import StopUntilStill
from .types import EndReason, GovernorState, LinkState, MachineLimits, Orientation

S = GovernorState


class GovernorView:
    """Properties a front end may read; nothing here changes the session."""

    _ctx: Context
    _internal_errors: int
    _status: MachineStatusRule
    _heart_rate: HeartRate
    _backward: BackwardTime
    _stop: StopUntilStill
    _start: StartRule

    @property
    def state(self) -> GovernorState:
        return self._ctx.state

    @property
    def orientation(self) -> Orientation:
        return self._ctx.orientation

    @property
    def limits(self) -> MachineLimits:
        return self._ctx.limits

    @property
    def config(self) -> SafetyConfig:
        return self._ctx.config

    @property
    def envelope(self) -> Envelope:
        """Caps, start speed and ramp rates for the current orientation."""
        return self._ctx.env

    @property
    def now(self) -> float:
        return self._ctx.now

    @property
    def target_speed_kmh(self) -> float:
        return self._ctx.target

    @property
    def commanded_speed_kmh(self) -> float:
        """The last SetTargetSpeed approved; 0.0 once Stop or Pause has been sent."""
        return self._ctx.belt.commanded

    @property
    def measured_speed_kmh(self) -> float | None:
        return self._ctx.belt.measured

    @property
    def target_incline_pct(self) -> float | None:
        return self._ctx.target_incline

    @property
    def commanded_incline_pct(self) -> float | None:
        return self._ctx.belt.commanded_incline

    @property
    def measured_incline_pct(self) -> float | None:
        """None if the machine never reported incline: show the commanded value and say so."""
        return self._ctx.belt.measured_incline

    @property
    def machine_target_speed_kmh(self) -> float | None:
        """The last target the machine announced (Machine Status 0x05)."""
        return self._status.machine_target_speed

    @property
    def heart_rate_bpm(self) -> int | None:
        return self._heart_rate.hr

    @property
    def speed_cap_kmh(self) -> float:
        return self._ctx.env.speed_cap_kmh

    @property
    def incline_cap_pct(self) -> float | None:
        return self._ctx.env.incline_cap_pct

    @property
    def start_speed_kmh(self) -> float:
        return self._ctx.env.start_speed_kmh

    @property
    def ramping(self) -> bool:
        ctx = self._ctx
        if ctx.state is S.STOPPING:
            return True
        return ctx.state is S.RUNNING and abs(ctx.target - ctx.belt.commanded) > EPS

    @property
    def hold_reason(self) -> str | None:
        """Why a speed increase is waiting, if it is (for the UI)."""
        return self._ctx.hold_reason if self._ctx.state is S.RUNNING else None

    @property
    def telemetry_age_s(self) -> float | None:
        """Seconds since the last speed reading; None if none arrived yet."""
        last = self._ctx.belt.last_speed_t
        return None if last is None else self._ctx.now - last

    @property
    def link_state(self) -> LinkState:
        return self._ctx.link_state

    @property
    def has_control(self) -> bool:
        return self._ctx.has_control

    @property
    def ended_reason(self) -> EndReason | None:
        return self._ctx.ended_reason

    @property
    def backward_bout_s(self) -> float:
        return self._backward.bout_s

    @property
    def backward_total_s(self) -> float:
        return self._backward.total_s

    @property
    def turn_to(self) -> Orientation | None:
        return self._ctx.turn_to if self._ctx.state is S.AWAITING_TURN else None

    @property
    def turn_ready(self) -> bool:
        return self._ctx.state is S.AWAITING_TURN and self._ctx.turn_ready

    @property
    def stopping_until_still(self) -> bool:
        """A stop decision is still being carried out (Stop re-sent until the belt is still)."""
        return self._stop.until_still(self._ctx)

    @property
    def internal_errors(self) -> int:
        """How often handle() fell back to its fail-safe (tests assert this stays 0)."""
        return self._internal_errors

    def check_start_possible(self, orientation: Orientation) -> str | None:
        """Why a Start in this orientation would be refused right now, or None."""
        try:
            return self._start.refusal(self._ctx, Orientation(orientation), resuming=False)
        except Exception:  # a query must never raise either
            return "not possible now"

    def check_backward_possible(self) -> str | None:
        """The reason backward mode is refused on this machine and config, or None."""
        return envelope_for(self._ctx.limits, self._ctx.config, Orientation.BACKWARD).refusal
