"""Pause, Stop and End requests (docs/SAFETY.md rows 2, 12): a normal stop ramps down first."""

from __future__ import annotations

from ..belt import BeltCommand
from ..context import Context
from ..states import StartPhase, StopIntent, Trigger
from ..types import EndReason, EndSession, GovernorState, Pause, PauseCmd, StopBelt, StopCmd
from . import Rule

S = GovernorState


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
                if ctx.belt.command is not BeltCommand.STOP and (
                    ctx.state is S.PAUSED or ctx.start_phase is StartPhase.AWAIT_MOTION
                ):
                    ctx.send(StopCmd())
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
                if ctx.state is S.PAUSED or ctx.start_phase is StartPhase.AWAIT_MOTION:
                    ctx.send(StopCmd())
                ctx.end(EndReason.COMPLETED, message, Trigger.END_SESSION)
            case _:
                ctx.end(EndReason.COMPLETED, message, Trigger.END_SESSION)
