"""Over-exertion (docs/SAFETY.md row 11): above the heart-rate cap, slow down, then stop."""

from __future__ import annotations

from typing import override

from ..belt import number
from ..context import Context
from ..limits import snap_down
from ..states import StartPhase, StopIntent, Trigger
from ..types import AlarmKind, EndReason, GovernorState, Orientation, Telemetry
from . import Hold, RampStop, Rule, StopNow, Verdict

S = GovernorState


class HeartRate(Rule):
    """An episode starts at the first reading above the cap and ends at one at or below it."""

    def __init__(self) -> None:
        self.hr: int | None = None
        self.since: float | None = None  # first reading above the cap of this episode

    @override
    def observe(self, event: object, ctx: Context) -> Verdict | None:
        if not isinstance(event, Telemetry):
            return None
        hr = number(event.heart_rate_bpm)
        if hr is None or not 0 < hr < 255:  # 0 = no skin contact: ignore
            return None
        return self._reading(int(hr), ctx)

    def _reading(self, hr: int, ctx: Context) -> Verdict | None:
        self.hr = hr
        cfg = ctx.config
        cap = cfg.heart_rate_cap_bpm
        if cap is None:
            return None
        if hr <= cap:
            self.since = None
            return None
        moving = ctx.state in (S.RUNNING, S.STARTING)
        if hr > cap + cfg.heart_rate_hard_margin_bpm and moving:
            self.since = self.since if self.since is not None else ctx.now
            return self._stop(f"heart rate {hr} bpm is far above your limit of {cap} bpm", ctx)
        if self.since is not None:
            return None
        self.since = ctx.now
        if not moving:
            return None
        env, belt = ctx.env, ctx.belt
        base = min(ctx.target, belt.commanded) if belt.commanded > 0 else ctx.target
        lowered = snap_down(
            base - cfg.max_step_per_request_kmh, env.speed_min_kmh, env.speed_step_kmh
        )
        slow_to = min(ctx.target, max(env.start_speed_kmh, lowered))
        return Hold(
            AlarmKind.HEART_RATE,
            f"heart rate {hr} bpm is above your limit of {cap} bpm: slowing to "
            f"{slow_to:.1f} km/h. If it stays high for {cfg.heart_rate_grace_s:g} s the belt "
            "will stop",
            slow_to,
        )

    @staticmethod
    def _stop(why: str, ctx: Context) -> Verdict | None:
        message = f"{why}: slowing down to stop; the session ends. Rest and breathe"
        if ctx.state is S.RUNNING or ctx.state is S.STOPPING:
            if ctx.intent is StopIntent.END:
                return None
            return RampStop(
                Trigger.LIMIT, StopIntent.END, EndReason.HEART_RATE, message, AlarmKind.HEART_RATE
            )
        if ctx.state is S.STARTING:
            # Barely moving yet: stop at once.
            return StopNow(
                EndReason.HEART_RATE,
                message,
                AlarmKind.HEART_RATE,
                send_stop=ctx.start_phase is StartPhase.AWAIT_MOTION,
            )
        return None

    @override
    def check(self, ctx: Context) -> Verdict | None:
        cap, since = ctx.config.heart_rate_cap_bpm, self.since
        if cap is None or since is None or self.hr is None or self.hr <= cap:
            return None
        if ctx.state is not S.RUNNING:
            return None
        grace = ctx.config.heart_rate_grace_s
        if ctx.now - since >= grace:
            return self._stop(
                f"heart rate still above your limit of {cap} bpm after {grace:g} s", ctx
            )
        return None

    def _above_cap(self, ctx: Context) -> bool:
        return ctx.config.heart_rate_cap_bpm is not None and self.since is not None

    @override
    def increase_refusal(self, ctx: Context) -> str | None:
        if self._above_cap(ctx):
            cap = ctx.config.heart_rate_cap_bpm
            return f"heart rate is above your limit of {cap} bpm: no increases"
        return None

    @override
    def start_refusal(
        self, ctx: Context, orientation: Orientation, *, resuming: bool
    ) -> str | None:
        cap, hr = ctx.config.heart_rate_cap_bpm, self.hr
        if cap is not None and self.since is not None and hr is not None and hr > cap:
            return f"heart rate {hr} bpm is above your limit of {cap} bpm: rest until it drops"
        return None
