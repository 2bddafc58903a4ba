"""Stop until still (docs/SAFETY.md rows 13, 15, Known limits): Stop re-sent until still."""

from __future__ import annotations

import math
from typing import Final, override

from ..belt import MOTION_KMH, BeltCommand
from ..context import ACTIONABLE, Context
from ..limits import EPS
from ..states import StartPhase
from ..types import (
    AcknowledgeStop,
    AlarmKind,
    Command,
    CommandAccepted,
    CommandFailed,
    EndReason,
    GovernorState,
    LinkLost,
    PauseCmd,
    RequestControl,
    StartResume,
    StopCmd,
)
from . import AbortStart, RaiseAlarm, Rule, StopNow, Verdict

S = GovernorState

# Stop is re-sent until the belt has been seen at rest this long (the same dwell a turn-around
# needs), the link is gone, or the person takes over.
STILL_S: Final = 3.0
STOP_RETRY_FIRST_S: Final = 0.25  # a refused Stop: first retry, doubling up to the max
STOP_RETRY_MAX_S: Final = 2.0
STOP_RESEND_AFTER_ACCEPT_S: Final = 3.0  # accepted, but the belt still moves: send it again
STOP_NOT_CONFIRMED_S: Final = 10.0  # belt still reads motion this long after an accepted Stop


class StopUntilStill(Rule):
    """Re-sends Stop with back-off; a lost control (ctx.control_lost) allows one attempt only."""

    def __init__(self) -> None:
        self.wanted = False
        self.accepted = False  # a Stop was accepted since the decision
        self.next_stop_t = math.inf
        self.backoff = STOP_RETRY_FIRST_S
        self.refused_alarmed = False
        self.unconfirmed_alarmed = False
        self.control_asked = False

    @override
    def sent(self, command: Command, ctx: Context) -> None:
        if isinstance(command, StopCmd):
            if not self.wanted:
                self.wanted = True
                self.accepted = False
                self.backoff = STOP_RETRY_FIRST_S
                self.refused_alarmed = False
            self.next_stop_t = math.inf  # set again by its answer
        if isinstance(command, StopCmd | PauseCmd):
            self.unconfirmed_alarmed = False
        elif isinstance(command, StartResume):
            # A deliberate start ends the previous stop decision (it was seen through).
            self.wanted = False

    def fail_safe(self) -> None:
        self.wanted = True
        self.next_stop_t = math.inf

    @override
    def observe(self, event: object, ctx: Context) -> Verdict | None:
        match event:
            case LinkLost():
                self.wanted = False  # nothing can reach the belt any more: the alarm says so
            case CommandAccepted(command=StopCmd()):
                self.accepted = True
                self.backoff = STOP_RETRY_FIRST_S
                self.next_stop_t = ctx.now + STOP_RESEND_AFTER_ACCEPT_S
            case CommandFailed(command=StopCmd()):
                return self._refused(event.reason, ctx)
            case CommandFailed(command=RequestControl()) if self.wanted and self.control_asked:
                # Refused too (a busy moment): ask again on the Stop's back-off.
                self.control_asked = False
                self.next_stop_t = ctx.now + self.backoff
                self.backoff = min(self.backoff * 2, STOP_RETRY_MAX_S)
            case AcknowledgeStop():
                return self._acknowledge()
            case _:
                pass
        return None

    def _refused(self, reason: str, ctx: Context) -> Verdict | None:
        if ctx.outbox.stops_in_flight > 0:
            return None  # another Stop is on its way: its answer decides
        retry = self.wanted and not ctx.link_lost and not ctx.control_lost
        if retry:
            self.next_stop_t = ctx.now + self.backoff
            self.backoff = min(self.backoff * 2, STOP_RETRY_MAX_S)
        if self.accepted and ctx.rest_since() is not None:
            return None  # an extra Stop refused by a belt that is already stopping or still
        if ctx.start_phase is StartPhase.CONFIRM_REST and ctx.state is S.STARTING:
            self.wanted = False
            return AbortStart(
                f"the treadmill did not accept Stop ({reason}), so the app can't be sure the "
                "belt is still: it was not started. Press Start to try again"
            )
        message = f"the treadmill did not accept Stop ({reason}): {ACTIONABLE}"
        message += "; Stop is sent again until the belt is still" if retry else " now"
        alarm: AlarmKind | None = None
        if not self.refused_alarmed:
            self.refused_alarmed = True
            alarm = AlarmKind.COMMAND_FAILED
        if ctx.state is not S.ENDED:
            return StopNow(EndReason.ERROR, message, alarm, send_stop=False)
        if ctx.ended_reason is EndReason.COMPLETED:
            # "Completed" must not stand while the last Stop was refused.
            ctx.ended_reason = EndReason.ERROR
        return None if alarm is None else RaiseAlarm(alarm, message)

    def _acknowledge(self) -> Verdict | None:
        """The person has seen that the belt would not stop and takes over at the console."""
        if not self.wanted:
            return None
        self.wanted = False
        return RaiseAlarm(
            AlarmKind.COMMAND_FAILED,
            f"Stop is no longer re-sent: {ACTIONABLE} if the belt still moves",
        )

    def resend(self, ctx: Context) -> None:
        """On the clock: re-send Stop (with back-off) until the belt is seen at rest."""
        if not self.wanted or ctx.sent_this_call:
            return
        if ctx.link_lost:
            self.wanted = False
            return
        since = ctx.rest_since()
        if since is not None and ctx.now - since >= STILL_S - EPS:
            self.wanted = False  # seen through: the belt is still
            return
        if ctx.outbox.stops_in_flight or ctx.control_lost or ctx.now < self.next_stop_t - EPS:
            return
        if self.accepted and since is not None:
            return  # accepted and at rest: only the dwell is left to see through
        if self.refused_alarmed and not ctx.has_control and not self.control_asked:
            # A Stop pressed before the app ever held control (a belt started at the
            # console) is refused for want of it: ask once, for the Stop's sake only; never
            # after control was lost (checked above), and it can't start anything.
            self.control_asked = True
            ctx.send(RequestControl())
            return
        ctx.send(StopCmd())

    def until_still(self, ctx: Context) -> bool:
        return self.wanted or ctx.outbox.stops_in_flight > 0

    @override
    def check(self, ctx: Context) -> Verdict | None:
        # Informative only: a Stop accepted but the belt still reads motion ("Stop from the
        # app ignored on some models"). Not a stop trigger: some machines keep reporting the
        # last speed while stopped.
        belt = ctx.belt
        accepted = belt.rest_cmd_accepted_t
        if (
            belt.command is not BeltCommand.STOP
            or accepted is None
            or self.unconfirmed_alarmed
            or belt.measured is None
            or belt.measured < MOTION_KMH
            or not ctx.telemetry_fresh()
            or ctx.now - accepted < STOP_NOT_CONFIRMED_S
        ):
            return None
        self.unconfirmed_alarmed = True
        return RaiseAlarm(
            AlarmKind.NOT_OBEYING,
            f"the belt still reports {belt.measured:.1f} km/h {STOP_NOT_CONFIRMED_S:g} s after "
            f"Stop: if it is moving, {ACTIONABLE}",
        )
