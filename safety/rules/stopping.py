"""Pause, Stop and End requests (docs/SAFETY.md rows 2, 12): a normal stop ramps down first."""

from __future__ import annotations

from ..belt import BeltCommand
from ..context import Context
from ..states import StartPhase, StopIntent, Trigger
from ..types import EndReason, EndSession, GovernorState, Pause, PauseCmd, StopBelt, StopCmd
from . import Rule

S = GovernorState


def stop_what_was_started(ctx: Context) -> None:
    """Leaving a start or a pause: a real Stop if the belt was ever told to run or pause
    (a pause is no place to turn around or leave), and nothing still waiting may go out."""
    ctx.outbox.deferred = None
    if ctx.belt.command in (BeltCommand.RUN, BeltCommand.PAUSE):
        ctx.send(StopCmd())


class Stopping(Rule):
    """What each state does with Pause, StopBelt and EndSession (the table allows them)."""

    def on_pause(self, req: Pause, ctx: Context) -> None:
        if ctx.state is S.STARTING and ctx.start_phase is not StartPhase.AWAIT_MOTION:
            ctx.refuse(req, "the belt has not started yet: press Stop to cancel the start")
            return
        ctx.send(PauseCmd())
        ctx.goto(Trigger.PAUSE)

    def on_stop_belt(self, req: StopBelt, ctx: Context) -> None:
        match ctx.state:
            case S.RUNNING | S.STOPPING:
                if ctx.intent is StopIntent.END:
                    return  # already stopping to end the session
                ctx.begin_ramp_stop(Trigger.STOP_BELT, StopIntent.STOP)
            case S.STARTING | S.PAUSED:
                stop_what_was_started(ctx)
                ctx.start_phase = None
                ctx.goto(Trigger.STOP_BELT)
            case _:
                ctx.turn_ready = False
                ctx.turn_to = None
                ctx.goto(Trigger.STOP_BELT)

    def on_end_session(self, req: EndSession, ctx: Context) -> None:
        message = str(req.reason) if req.reason else "session ended"
        match ctx.state:
            case S.RUNNING | S.STOPPING:
                if ctx.intent is StopIntent.END:
                    return
                ctx.begin_ramp_stop(
                    Trigger.END_SESSION, StopIntent.END, EndReason.COMPLETED, message
                )
            case S.STARTING | S.PAUSED:
                stop_what_was_started(ctx)
                ctx.end(EndReason.COMPLETED, message, Trigger.END_SESSION)
            case _:
                ctx.end(EndReason.COMPLETED, message, Trigger.END_SESSION)
