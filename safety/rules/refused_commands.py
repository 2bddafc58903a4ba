"""Refused setpoints and pauses (docs/SAFETY.md row 13): a refused command is not believed."""

from __future__ import annotations

from typing import override

from ..belt import BeltCommand
from ..context import ACTIONABLE, Context
from ..states import StopIntent, Trigger
from ..types import (
    AlarmKind,
    CommandFailed,
    EndReason,
    GovernorState,
    PauseCmd,
    SetTargetIncline,
    SetTargetSpeed,
)
from . import RampStop, Rule, StopNow, Verdict

S = GovernorState


class RefusedCommands(Rule):
    """A refused Pause becomes a Stop; a refused setpoint ends the session (gently if it can).

    Refused Stops are safety/rules/stop_until_still.py's; refused starts safety/rules/start.py's.
    """

    @override
    def observe(self, event: object, ctx: Context) -> Verdict | None:
        if not isinstance(event, CommandFailed) or ctx.state is S.ENDED:
            return None
        command, reason = event.command, event.reason
        match command:
            case PauseCmd():
                if ctx.belt.command is BeltCommand.PAUSE:
                    return StopNow(
                        EndReason.ERROR,
                        f"the treadmill did not accept Pause ({reason}): Stop sent. "
                        f"If the belt keeps moving, {ACTIONABLE}",
                        AlarmKind.COMMAND_FAILED,
                    )
            case SetTargetSpeed() | SetTargetIncline():
                what = "speed" if isinstance(command, SetTargetSpeed) else "incline"
                if ctx.state is S.RUNNING:
                    # It refuses our settings: stop gently while it still takes decreases.
                    return RampStop(
                        Trigger.LIMIT,
                        StopIntent.END,
                        EndReason.ERROR,
                        f"the treadmill refused a {what} change ({reason}): slowing down to "
                        "stop; the session ends",
                        AlarmKind.COMMAND_FAILED,
                    )
                if ctx.state is S.STOPPING:
                    # Refusing while we slow down: stop now.
                    return StopNow(
                        EndReason.ERROR,
                        f"the treadmill refused a {what} change while slowing down ({reason}): "
                        f"Stop sent. If the belt keeps moving, {ACTIONABLE}",
                        AlarmKind.COMMAND_FAILED,
                    )
            case _:
                pass
        return None
