"""Stale telemetry (docs/SAFETY.md row 6): alarm and no increases at 2 s, Stop at 5 s."""

from __future__ import annotations

from typing import override

from ..context import ACTIONABLE, Context
from ..types import AlarmKind, EndReason, LinkState, Telemetry
from . import RaiseAlarm, Rule, StopNow, Verdict


class Watchdog(Rule):
    """Driven by the clock: a belt that is or may be moving must keep reporting its speed."""

    def __init__(self) -> None:
        self.stale_alarmed = False

    @override
    def observe(self, event: object, ctx: Context) -> Verdict | None:
        if isinstance(event, Telemetry) and ctx.belt.frame_had_speed:
            if ctx.link_state is LinkState.STALE:
                ctx.link_state = LinkState.OK
            self.stale_alarmed = False
        return None

    @override
    def check(self, ctx: Context) -> Verdict | None:
        if ctx.belt.unknown():
            return None  # nothing commanded, nothing read: not yet acting on a belt we can't see
        if ctx.rest_since() is not None or ctx.belt.awaiting_silent_rest(ctx.env):
            # At rest, or stopped and silent: silence is normal here. (A Stop accepted at a
            # slow speed is all this rule could send; rest waits for the silence to last.)
            if ctx.link_state is LinkState.STALE:
                ctx.link_state = LinkState.OK
            return None
        # Measured from the last reading or command: a gap is caught even if telemetry
        # resumes before a tick (the check runs before the event's own reading counts).
        age = ctx.now - ctx.belt.moving_ref_t(ctx.t0)
        cfg = ctx.config
        if age > cfg.stale_stop_s:
            return StopNow(
                EndReason.TELEMETRY_LOST,
                f"no speed reading for {cfg.stale_stop_s:g} s: Stop sent and the session "
                f"ended. If the belt is still moving, {ACTIONABLE}",
                AlarmKind.TELEMETRY_STALE,
            )
        if age > cfg.stale_alarm_s:
            ctx.link_state = LinkState.STALE
            if not self.stale_alarmed:
                self.stale_alarmed = True
                return RaiseAlarm(
                    AlarmKind.TELEMETRY_STALE,
                    f"telemetry stale: no speed reading for {cfg.stale_alarm_s:g} s; no speed "
                    f"increases, and Stop at {cfg.stale_stop_s:g} s. If in doubt, {ACTIONABLE}",
                )
        return None

    @override
    def increase_refusal(self, ctx: Context) -> str | None:
        if ctx.link_state is LinkState.STALE:
            return "telemetry is stale: no increases until speed readings are back"
        return None
