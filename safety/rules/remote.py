"""What a remote may do (DESIGN §5; docs/SAFETY.md row M): stop or pause, and only if fresh."""

from __future__ import annotations

from typing import Final, override

from ..belt import number
from ..context import Context
from ..types import EmergencyStop, EndSession, Pause, Request, Source, StopBelt
from . import Rule

# Only what makes the belt slower or still. Never Start, Resume, a speed or incline change,
# a turn, or AcknowledgeStop (that stops the Stop re-sends: the person at the belt decides).
REMOTE_MAY: Final = (Pause, StopBelt, EndSession, EmergencyStop)
# A remote command older than this (by the governor's clock) is dropped: the situation it was
# meant for has passed.
REMOTE_MAX_AGE_S: Final = 2.0


class Remote(Rule):
    """Screens requests from Source.REMOTE before any other rule sees them."""

    @override
    def request_refusal(self, request: Request, ctx: Context) -> str | None:
        if getattr(request, "source", Source.KEYBOARD) != Source.REMOTE:
            return None
        t = number(request.t)
        if t is None:
            return "remote command without a valid time: ignored"
        age = ctx.now - t
        if age > REMOTE_MAX_AGE_S:
            return f"stale remote command ({age:.1f} s old): ignored"
        if not isinstance(request, REMOTE_MAY):
            return "a remote may only stop or pause the belt"
        return None
