"""Backward bout and session limits (docs/SAFETY.md row 10): still by 10 min, 30 min total."""

from __future__ import annotations

from typing import Final, override

from ..context import Context
from ..limits import EPS
from ..states import StopIntent, Trigger
from ..types import AlarmKind, EndReason, GovernorState, Orientation
from . import RampStop, Rule, Verdict

S = GovernorState

STOP_ALLOWANCE_S: Final = 3.0  # time we allow the machine to stop from the stop-from speed


class BackwardTime(Rule):
    """Counts time facing backward on a belt not known at rest; ramps down before a limit."""

    def __init__(self) -> None:
        self.bout_s = 0.0
        self.total_s = 0.0
        self.last_backward_motion_t = -float("inf")
        self.bout_limit_hit = False

    def clock(self, t: float, ctx: Context) -> None:
        """Time moves from ctx.now to t (the core calls this before it moves ctx.now)."""
        if t > ctx.now and ctx.orientation is Orientation.BACKWARD and ctx.rest_since() is None:
            dt = t - ctx.now
            self.bout_s += dt
            self.total_s += dt
            self.last_backward_motion_t = t

    def rest_check(self, ctx: Context) -> None:
        """After the clock moved: rested (or walked forward) long enough starts a new bout."""
        if ctx.now - self.last_backward_motion_t >= ctx.config.bout_rest_s:
            self.bout_s = 0.0
            self.bout_limit_hit = False

    @staticmethod
    def _ramp_down_estimate_s(ctx: Context) -> float:
        env = ctx.env
        drop = max(ctx.belt.commanded - env.start_speed_kmh, 0.0)
        return drop / env.ramp_down_kmh_per_s + env.down_interval_s + STOP_ALLOWANCE_S

    @override
    def check(self, ctx: Context) -> Verdict | None:
        if ctx.orientation is not Orientation.BACKWARD:
            return None
        cfg = ctx.config
        # Start the ramp early enough that the belt is stopped by the limit, not after it.
        est = self._ramp_down_estimate_s(ctx)
        live = ctx.state is S.RUNNING or (
            ctx.state is S.STOPPING and ctx.intent is not StopIntent.END
        )
        if live and self.total_s + est >= cfg.max_backward_session_s:
            return RampStop(
                Trigger.LIMIT,
                StopIntent.END,
                EndReason.SESSION_LIMIT,
                f"{cfg.max_backward_session_s / 60:g} min of backward walking in this "
                "session: slowing down to stop; the session ends",
                AlarmKind.SESSION_LIMIT,
            )
        if ctx.state is S.RUNNING and self.bout_s + est >= cfg.max_backward_bout_s:
            self.bout_limit_hit = True
            return RampStop(
                Trigger.LIMIT,
                StopIntent.BOUT,
                message=(
                    f"{cfg.max_backward_bout_s / 60:g} min of continuous backward walking: "
                    f"slowing down to stop. Turn around or rest for {cfg.bout_rest_s:g} s"
                ),
                alarm=AlarmKind.BOUT_LIMIT,
            )
        return None

    @override
    def start_refusal(
        self, ctx: Context, orientation: Orientation, *, resuming: bool
    ) -> str | None:
        if orientation is not Orientation.BACKWARD:
            return None
        cfg = ctx.config
        if self.total_s >= cfg.max_backward_session_s - EPS:
            return (
                f"you have walked backward for {cfg.max_backward_session_s / 60:g} min in "
                "this session, the limit: end the session"
            )
        if self.bout_limit_hit:
            left = cfg.bout_rest_s - (ctx.now - self.last_backward_motion_t)
            return (
                f"you have walked backward for {cfg.max_backward_bout_s / 60:g} min: "
                f"rest for {max(left, 0):.0f} s more, or turn around and walk forward"
            )
        return None
