"""A belt faster than it should be (docs/SAFETY.md row 7): over the cap, rising, not slowing."""

from __future__ import annotations

from typing import Final, override

from ..belt import BeltCommand
from ..context import ACTIONABLE, Context
from ..limits import EPS
from ..types import (
    AlarmKind,
    Command,
    EndReason,
    GovernorState,
    PauseCmd,
    StartResume,
    StopCmd,
    Telemetry,
)
from . import RaiseAlarm, Rule, StopNow, Verdict

S = GovernorState

# "Rising when not asked": this far above the lowest reading of an over-bound episode. A belt
# still reporting its old speed while paused stays flat and never trips it.
RISE_KMH: Final = 0.2


class NotObeying(Rule):
    """Episodes of readings above what the belt should do, and when they become a Stop."""

    def __init__(self) -> None:
        self.over_cap_since: float | None = None  # reading above cap + margin since
        self.excess_since: float | None = None  # reading above what we asked + margin since
        self.excess_low = 0.0  # the lowest reading of that episode
        self.lag_since: float | None = None  # above the commanded + margin while slowing
        self.ended_rise_alarmed = False

    @property
    def faster_than_commanded(self) -> bool:
        return (
            self.over_cap_since is not None
            or self.excess_since is not None
            or self.lag_since is not None
        )

    @property
    def rising_or_lagging(self) -> bool:
        return self.excess_since is not None or self.lag_since is not None

    def forget_episode(self) -> None:
        """The belt was paused at the console: what we expect changed under us."""
        self.lag_since = None
        self.excess_since = None

    @override
    def sent(self, command: Command, ctx: Context) -> None:
        match command:
            case StopCmd() | PauseCmd():
                self.lag_since = None
                if not ctx.belt.resting():
                    # What we expect drops to 0 now: a new run of "above what we asked"
                    # starts. A Stop after a Pause expects the same 0, and restarting the run
                    # there would forget its lowest reading and let a runaway climb further.
                    self.excess_since = None
            case StartResume():
                self.excess_since = None
            case _:
                pass

    @staticmethod
    def _expected_speed(ctx: Context) -> float:
        if ctx.belt.command is not BeltCommand.RUN:
            return 0.0
        if ctx.state is S.STARTING:
            return ctx.env.start_speed_kmh
        return ctx.belt.commanded

    @staticmethod
    def _under_speed_control(ctx: Context) -> bool:
        return ctx.belt.command is BeltCommand.RUN and ctx.state in (S.RUNNING, S.STOPPING)

    @override
    def observe(self, event: object, ctx: Context) -> Verdict | None:
        v = ctx.belt.frame_speed
        if not isinstance(event, Telemetry) or v is None:
            return None
        now, margin = ctx.now, ctx.config.disobey_margin_kmh
        # Above the cap (+ margin) for disobey_window_s: judged in check().
        if v > ctx.env.speed_cap_kmh + margin:
            if self.over_cap_since is None:
                self.over_cap_since = now
        else:
            self.over_cap_since = None
        # Rising above what we asked for (+ margin).
        if v > self._expected_speed(ctx) + margin:
            if self.excess_since is None:
                self.excess_since = now
                self.excess_low = v
            else:
                self.excess_low = min(self.excess_low, v)
            if v >= self.excess_low + RISE_KMH - EPS:
                return self._unasked_rise(v, ctx)
        else:
            self.excess_since = None
        # Not slowing down when asked: judged in check().
        if self._under_speed_control(ctx) and v > ctx.belt.commanded + margin:
            if self.lag_since is None:
                self.lag_since = now
        else:
            self.lag_since = None
        return None

    def _unasked_rise(self, v: float, ctx: Context) -> Verdict | None:
        if ctx.state is S.ENDED:
            if self.ended_rise_alarmed:
                return None
            self.ended_rise_alarmed = True
            return RaiseAlarm(
                AlarmKind.NOT_OBEYING,
                f"the belt is speeding up ({v:.1f} km/h) after the session ended: " + ACTIONABLE,
            )
        return StopNow(
            EndReason.NOT_OBEYING,
            f"the belt sped up to {v:.1f} km/h without being asked: Stop sent. "
            f"If it keeps moving, {ACTIONABLE}",
            AlarmKind.NOT_OBEYING,
        )

    @override
    def check(self, ctx: Context) -> Verdict | None:
        now, cfg = ctx.now, ctx.config
        since = self.over_cap_since
        if since is not None and now - since >= cfg.disobey_window_s - EPS:
            return StopNow(
                EndReason.NOT_OBEYING,
                f"the belt ran above the {ctx.env.speed_cap_kmh:.1f} km/h cap for "
                f"{cfg.disobey_window_s:g} s: Stop sent. If it keeps moving, {ACTIONABLE}",
                AlarmKind.NOT_OBEYING,
            )
        lag = self.lag_since
        if lag is not None and not self._under_speed_control(ctx):
            self.lag_since = lag = None
        if lag is not None and now - lag >= cfg.not_slowing_window_s - EPS:
            return StopNow(
                EndReason.NOT_OBEYING,
                f"the belt did not slow down to {ctx.belt.commanded:.1f} km/h within "
                f"{cfg.not_slowing_window_s:g} s: Stop sent. If it keeps moving, {ACTIONABLE}",
                AlarmKind.NOT_OBEYING,
            )
        return None
