"""Machine Status events (docs/SAFETY.md rows 7, 8, 19): console, safety key, control lost."""

from __future__ import annotations

from typing import override

from ..belt import BeltCommand, number
from ..context import ACTIONABLE, Context
from ..states import Trigger
from ..types import AlarmKind, EndReason, GovernorState, MachineStatus, StatusKind, StopCmd
from . import RaiseAlarm, Rule, StopNow, Verdict
from .not_obeying import NotObeying

S = GovernorState


def status_kind(ev: MachineStatus) -> StatusKind:
    try:
        return StatusKind(ev.kind)
    except ValueError:
        return StatusKind.UNKNOWN  # unknown codes exist in the wild: never raise


class MachineStatusRule(Rule):
    """What the machine says happened. The belt never restarts by itself after any of it."""

    def __init__(self, not_obeying: NotObeying) -> None:
        self._not_obeying = not_obeying
        self.machine_target_speed: float | None = None
        self.machine_target_incline: float | None = None

    @override
    def observe(self, event: object, ctx: Context) -> Verdict | None:
        if not isinstance(event, MachineStatus):
            return None
        if ctx.state is S.ENDED:
            # After the end only the loss of control matters: no Stop retries without it.
            # But the one Stop row 19 promises still goes, if the belt is not yet seen at
            # rest: a garbage 0xFF must not cancel the re-sends of a refused Stop and leave
            # the belt running.
            if event.kind in (StatusKind.CONTROL_LOST, StatusKind.RESET):
                ctx.lose_control()
                if (ctx.rest_since() is None and not ctx.sent_this_call
                        and ctx.outbox.stops_in_flight == 0):
                    ctx.send(StopCmd())
            return None
        return self._live(status_kind(event), number(event.value), ctx)

    def _live(self, kind: StatusKind, value: float | None, ctx: Context) -> Verdict | None:
        belt = ctx.belt.command
        match kind:
            case StatusKind.SAFETY_KEY:
                # StopCmd too (harmless, and makes sure) whenever we hold control; without
                # control it could only fail and add a confusing second alarm.
                return StopNow(
                    EndReason.SAFETY_KEY,
                    "safety key pulled: the belt is stopping and the session has ended. "
                    "Step off carefully; clip the key back on before a new session",
                    AlarmKind.SAFETY_KEY,
                    send_stop=ctx.has_control,
                )
            case StatusKind.CONTROL_LOST | StatusKind.RESET:
                # Never re-request control: the belt must never restart by itself. One Stop
                # anyway, never retried: if control really moved the treadmill refuses it and
                # nothing is lost; if the byte was garbage, the belt stops (row 19).
                ctx.lose_control()
                lost = kind is StatusKind.CONTROL_LOST
                return StopNow(
                    EndReason.CONTROL_LOST if lost else EndReason.MACHINE_RESET,
                    (
                        "the treadmill took control back from the app"
                        if lost
                        else "the treadmill reset itself"
                    )
                    + f": the app may no longer be able to stop the belt. {ACTIONABLE}",
                    AlarmKind.CONTROL_LOST if lost else AlarmKind.MACHINE_RESET,
                )
            case StatusKind.STOPPED_BY_USER:
                # FTMS servers echo 0x02 after our own Stop: only a stop we did not ask for
                # is "stopped at the console". Even with nothing running it ends the session:
                # it may be the person cancelling a start we are still asking control for.
                if belt is BeltCommand.STOP:
                    return None
                return StopNow(
                    EndReason.STOPPED_AT_CONSOLE,
                    "the belt was stopped at the console: the session has ended. "
                    "Start a new session from the app to walk again",
                    AlarmKind.STOPPED_AT_CONSOLE,
                    send_stop=ctx.has_control,
                )
            case StatusKind.PAUSED_BY_USER:
                return self._paused_at_console(ctx)
            case StatusKind.STARTED_BY_USER:
                if belt is BeltCommand.RUN:
                    return None  # the echo of our own StartResume
                return StopNow(
                    EndReason.STARTED_AT_CONSOLE,
                    "the belt was started at the console, outside the app's control: "
                    f"the session has ended. {ACTIONABLE}",
                    AlarmKind.STARTED_AT_CONSOLE,
                    send_stop=ctx.has_control,
                )
            case StatusKind.TARGET_SPEED_CHANGED:
                self.machine_target_speed = value
                cap = ctx.env.speed_cap_kmh + ctx.config.disobey_margin_kmh
                if value is not None and value > cap and belt is BeltCommand.RUN:
                    return StopNow(
                        EndReason.NOT_OBEYING,
                        f"the treadmill set its target to {value:.1f} km/h, above the "
                        f"{ctx.env.speed_cap_kmh:.1f} km/h cap: Stop sent",
                        AlarmKind.NOT_OBEYING,
                    )
            case StatusKind.TARGET_INCLINE_CHANGED:
                self.machine_target_incline = value
                icap = ctx.env.incline_cap_pct
                if (
                    value is not None
                    and icap is not None
                    and value > icap + ctx.env.incline_tolerance_pct
                    and belt is BeltCommand.RUN
                ):
                    return StopNow(
                        EndReason.NOT_OBEYING,
                        f"the treadmill set its incline to {value:.1f} %, above the "
                        f"{icap:.1f} % cap: Stop sent",
                        AlarmKind.NOT_OBEYING,
                    )
            case _:
                pass  # unknown codes exist in the wild: never raise
        return None

    def _paused_at_console(self, ctx: Context) -> Verdict | None:
        if ctx.belt.command is not BeltCommand.RUN and ctx.state is not S.STARTING:
            return None  # our own Pause/Stop echoed, or nothing running or starting
        if ctx.state is S.PAUSED:
            # Our own Pause is still waiting for the link: the console got there first.
            ctx.belt.follow_console_pause(ctx.now)
            return None
        if ctx.state is S.STOPPING:
            ctx.finish_stop()  # it was stopping anyway; make it a real Stop
            return None
        # Paused at the console (also: a start we were still asking control for is
        # cancelled): follow it, never resume by ourselves.
        ctx.belt.follow_console_pause(ctx.now)
        ctx.start_phase = None
        self._not_obeying.forget_episode()
        ctx.goto(Trigger.CONSOLE_PAUSE)
        return RaiseAlarm(
            AlarmKind.PAUSED_AT_CONSOLE,
            "paused at the console: press Resume to start again slowly, or Stop",
        )
