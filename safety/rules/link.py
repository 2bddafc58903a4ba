"""The Bluetooth link (docs/SAFETY.md row 8): a lost link ends the session, nothing queued."""

from __future__ import annotations

from typing import override

from ..context import ACTIONABLE, Context
from ..types import AlarmKind, EndReason, GovernorState, LinkLost, LinkState, Orientation
from . import RaiseAlarm, Rule, StopNow, Verdict

S = GovernorState


class Link(Rule):
    """LinkLost: no command (none could arrive), no reconnect, no Request Control."""

    @override
    def observe(self, event: object, ctx: Context) -> Verdict | None:
        if not isinstance(event, LinkLost):
            return None
        ctx.link_state = LinkState.LOST
        ctx.link_lost = True
        ctx.has_control = False
        ctx.outbox.link_lost()
        message = (
            f"Bluetooth link lost: the app can no longer stop the belt. {ACTIONABLE}. "
            "The session has ended; nothing will restart by itself"
        )
        if ctx.state is not S.ENDED:
            return StopNow(EndReason.LINK_LOST, message, AlarmKind.LINK_LOST, send_stop=False)
        if ctx.rest_since() is None:
            return RaiseAlarm(AlarmKind.LINK_LOST, message)
        return None

    @override
    def start_refusal(
        self, ctx: Context, orientation: Orientation, *, resuming: bool
    ) -> str | None:
        return "the Bluetooth link is lost" if ctx.link_lost else None
