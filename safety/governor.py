"""The governor core: handle(event), dispatch to the rules, apply their verdicts, fail safe."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .belt import MOTION_KMH, ZERO_KMH, number
from .config import SafetyConfig
from .context import ACTIONABLE, Context
from .outbox import ApprovedCommand, Output, unwrap
from .rules import (
    AbortStart,
    Announce,
    Hold,
    RaiseAlarm,
    RampStop,
    Rule,
    StopNow,
    Verdict,
)
from .rules.backward_time import BackwardTime
from .rules.heart_rate import HeartRate
from .rules.link import Link
from .rules.machine_status import MachineStatusRule
from .rules.not_obeying import NotObeying
from .rules.ramp import Ramp
from .rules.refused_commands import RefusedCommands
from .rules.remote import Remote
from .rules.start import StartRule
from .rules.stop_until_still import STILL_S, STOP_RETRY_MAX_S, StopUntilStill
from .rules.stopping import Stopping
from .rules.targets import Targets
from .rules.turn_around import TurnAroundRule
from .rules.watchdog import Watchdog
from .states import REQUEST_TRIGGERS, Trigger, next_state, why_not
from .types import (
    AcknowledgeStop,
    Alarm,
    AlarmKind,
    Command,
    CommandAccepted,
    CommandFailed,
    CommandVoided,
    EmergencyStop,
    Ended,
    EndReason,
    GovernorState,
    LinkLost,
    MachineLimits,
    MachineStatus,
    PauseCmd,
    Request,
    RequestControl,
    StartResume,
    StatusKind,
    StopCmd,
    Telemetry,
    Tick,
)
from .view import GovernorView

# Re-exported for callers that imported them from here before the split.
__all__ = [
    "MOTION_KMH",
    "STILL_S",
    "STOP_RETRY_MAX_S",
    "ZERO_KMH",
    "ApprovedCommand",
    "Governor",
    "Output",
]

S = GovernorState

_SCREENED = object()  # a request a rule refused up front: the rest of the call ignores it


class Governor(GovernorView):
    """Takes events, returns the commands that may be sent and what to tell the person.

    handle() is the single entry point. It never raises and never blocks; time only arrives
    in events. At most one ApprovedCommand comes out of one handle() call, and a StopCmd is
    always alone and first (safety/outbox.py enforces both). What each rule decides is in
    safety/rules/; this class only decides when each rule is asked and applies its verdict.
    """

    def __init__(
        self, limits: MachineLimits, config: SafetyConfig | None = None, *, t0: float = 0.0
    ) -> None:
        if not isinstance(limits, MachineLimits):
            raise TypeError("limits must be a MachineLimits")
        config = SafetyConfig() if config is None else config
        if not isinstance(config, SafetyConfig):
            raise TypeError("config must be a SafetyConfig")
        t0f = number(t0)
        if t0f is None:
            raise ValueError("t0 must be a finite number of seconds")
        self._ctx = Context(limits, config, t0f)
        self._internal_errors = 0
        # The rules. Cross-rule questions go through constructor arguments, never this class.
        self._watchdog = Watchdog()
        self._not_obeying = NotObeying()
        self._heart_rate = HeartRate()
        self._backward = BackwardTime()
        self._link = Link()
        self._status = MachineStatusRule(self._not_obeying)
        self._stop = StopUntilStill()
        self._refused = RefusedCommands()
        self._remote = Remote()
        holds: Sequence[Rule] = (self._watchdog, self._heart_rate)  # block every increase
        self._targets = Targets(holds)
        self._turn = TurnAroundRule(self._not_obeying)
        self._ramp = Ramp(holds, self._not_obeying, self._turn)
        self._stopping = Stopping()
        # Start refusals are asked in this order, then the start rule's own.
        self._start = StartRule(
            (self._link, self._targets, self._backward, self._heart_rate), self._not_obeying
        )
        self._ctx.sent_listeners = [self._not_obeying.sent, self._stop.sent]
        # Asked on every event, in priority order: the rules that can stop now come first, so
        # a stop-now verdict ends the pass before anything weaker is asked.
        self._fatal_checks: tuple[Rule, ...] = (self._watchdog, self._not_obeying)
        self._checks: tuple[Rule, ...] = (
            self._watchdog,  # StopNow, RaiseAlarm
            self._not_obeying,  # StopNow
            self._start,  # AbortStart
            self._heart_rate,  # RampStop
            self._backward,  # RampStop
            self._turn,  # Announce
            self._stop,  # RaiseAlarm
        )
        # Told about every reading, in this order (the belt tracker has recorded it first).
        self._readers: tuple[Rule, ...] = (
            self._watchdog,
            self._not_obeying,
            self._start,
            self._heart_rate,
        )
        self._requests: dict[Trigger, Callable[..., None]] = {
            Trigger.START: self._start.on_start,
            Trigger.RESUME: self._start.on_resume,
            Trigger.PAUSE: self._stopping.on_pause,
            Trigger.STOP_BELT: self._stopping.on_stop_belt,
            Trigger.TURN_AROUND: self._turn.on_turn_around,
            Trigger.CONFIRM_TURNED: self._turn.on_confirm_turned,
            Trigger.END_SESSION: self._stopping.on_end_session,
        }

    # ------------------------------------------------------------ the entry point

    def handle(self, event: object) -> list[Output]:
        self._ctx.outbox.begin_call()
        try:
            self._handle(event)
        except Exception as exc:  # the governor must never raise: fail safe instead
            return self._fail_safe(exc)
        return self._ctx.outbox.outputs()

    def _fail_safe(self, exc: Exception) -> list[Output]:
        ctx = self._ctx
        self._internal_errors += 1
        was_ended = ctx.state is S.ENDED
        ctx.state = S.ENDED
        ctx.belt.fail_safe()
        self._stop.fail_safe()
        message = f"internal error in the safety governor ({type(exc).__name__}): {ACTIONABLE}"
        out: list[Output] = [
            ctx.outbox.fail_safe_stop(ctx.now),
            Alarm(AlarmKind.INTERNAL_ERROR, message),
        ]
        if not was_ended:
            ctx.ended_reason = EndReason.ERROR
            out.append(Ended(EndReason.ERROR, message))
        return out

    def _handle(self, event: object) -> None:
        ctx = self._ctx
        self._advance(getattr(event, "t", None))
        if isinstance(event, Request):
            why = self._remote.request_refusal(event, ctx)
            if why is not None:
                ctx.refuse(event, why)
                event = _SCREENED
        if isinstance(event, EmergencyStop):
            # Before anything else, so StopCmd is the first output.
            self._emergency_stop()
            return
        if isinstance(event, AcknowledgeStop):
            self._apply(self._stop.observe(event, ctx))
            return
        if ctx.state is S.ENDED:
            self._handle_ended(event)
            self._after_event(event)
            return
        # The fatal time-based checks first: a gap that began before this event is still a
        # gap (only they run here, so what comes out of them is a lone StopCmd and the end).
        # Not when this event says control is gone: then no command may go out at all.
        if not _loses_control(event):
            self._check(self._fatal_checks)
        if ctx.state is not S.ENDED:
            self._dispatch(event)
        self._check(self._checks)
        # Setpoints (ramp steps, incline changes, the Stop at the end of a ramp) are decided
        # on Tick and Telemetry only: a request changes targets, the clock moves the belt.
        if ctx.state is S.STARTING and not ctx.sent_this_call:
            self._start.advance(ctx)
        if (
            isinstance(event, Tick | Telemetry)
            and ctx.state in (S.RUNNING, S.STOPPING, S.AWAITING_TURN)
            and not ctx.sent_this_call
        ):
            self._ramp.drive(ctx)
        self._after_event(event)

    def _advance(self, t: object) -> None:
        ctx = self._ctx
        tf = number(t)
        # Time never runs backwards here: a late or garbled timestamp means "now".
        if tf is not None and tf > ctx.now:
            self._backward.clock(tf, ctx)
            ctx.now = tf
        self._backward.rest_check(ctx)

    def _check(self, rules: Sequence[Rule]) -> None:
        for rule in rules:
            if self._ctx.state is S.ENDED:
                return
            self._apply(rule.check(self._ctx))

    def _apply(self, verdict: Verdict | None) -> None:
        """Carry out what a rule decided; the strongest verdicts end or stop the session."""
        ctx = self._ctx
        match verdict:
            case None:
                pass
            case StopNow():
                ctx.fatal(
                    verdict.reason, verdict.message, stop=verdict.send_stop, alarm=verdict.alarm
                )
            case AbortStart():
                ctx.abort_start(verdict.message, stop=verdict.send_stop)
            case RampStop():
                if verdict.alarm is not None:
                    ctx.alarm(verdict.alarm, verdict.message)
                ctx.begin_ramp_stop(
                    verdict.trigger, verdict.intent, verdict.reason, verdict.message
                )
            case Hold():
                if verdict.slow_to is not None:
                    ctx.target = min(ctx.target, verdict.slow_to)
                ctx.alarm(verdict.alarm, verdict.message)
            case RaiseAlarm():
                ctx.alarm(verdict.alarm, verdict.message)
            case Announce():
                ctx.notice(verdict.notice)

    def _after_event(self, event: object) -> None:
        """What any event may unblock: a deferred command, a due Stop re-send."""
        ctx = self._ctx
        if ctx.sent_this_call:
            return
        ctx.outbox.give_up_if_stuck(ctx.now)
        if isinstance(event, Tick):
            self._stop.resend(ctx)  # Stop re-sends come on the clock, paced by back-off
        command = ctx.outbox.take_deferred()
        if command is not None:
            ctx.send(command)

    def _emergency_stop(self) -> None:
        # From any state, including ENDED: the big key always works.
        ctx = self._ctx
        ctx.send(StopCmd())
        if ctx.state is not S.ENDED:
            ctx.end(
                EndReason.EMERGENCY_STOP,
                f"emergency stop: Stop sent. If the belt keeps moving, {ACTIONABLE}",
                Trigger.FATAL,
            )

    # ------------------------------------------------------------ dispatch

    def _dispatch(self, event: object) -> None:
        match event:
            case Tick():
                pass  # time was advanced above; the checks below use it
            case Telemetry():
                self._on_telemetry(event)
            case MachineStatus():
                self._apply(self._status.observe(event, self._ctx))
            case LinkLost():
                self._on_link_lost(event)
            case CommandAccepted() | CommandFailed() | CommandVoided():
                self._on_answer(event)
            case Request():
                self._on_request(event)
            case _:
                pass  # not ours: ignore rather than raise

    def _handle_ended(self, event: object) -> None:
        # After the end only StopCmd may go out: retries of a failed Stop, and EmergencyStop.
        ctx = self._ctx
        match event:
            case Tick():
                self._apply(self._stop.check(ctx))
            case Telemetry():
                self._on_telemetry(event)
                self._apply(self._stop.check(ctx))
            case MachineStatus():
                self._apply(self._status.observe(event, ctx))
            case LinkLost():
                self._on_link_lost(event)
            case CommandAccepted() | CommandFailed() | CommandVoided():
                self._on_answer(event)
            case Request():
                reason = ctx.ended_reason.value if ctx.ended_reason else "ended"
                ctx.refuse(
                    event, f"the session has ended ({reason}): start a new session to walk again"
                )
            case _:
                pass

    def _on_telemetry(self, event: Telemetry) -> None:
        ctx = self._ctx
        ctx.belt.observe(event, ctx.now, ctx.env)
        for rule in self._readers:
            self._apply(rule.observe(event, ctx))

    def _on_link_lost(self, event: LinkLost) -> None:
        self._apply(self._stop.observe(event, self._ctx))
        self._apply(self._link.observe(event, self._ctx))

    def _on_answer(self, event: CommandAccepted | CommandFailed | CommandVoided) -> None:
        """The runner reports what became of an approved command."""
        ctx = self._ctx
        reason = str(event.reason) if isinstance(event, CommandFailed) else ""
        command = unwrap(event.command)
        if command is None:
            return
        if isinstance(event, CommandVoided):
            self._on_voided(command)
            return
        ctx.outbox.answered(command)
        if isinstance(event, CommandAccepted):
            answer = CommandAccepted(ctx.now, command)
            self._apply(self._start.observe(answer, ctx))
            self._apply(self._stop.observe(answer, ctx))
            ctx.belt.record_accepted(command, ctx.now)
            return
        failed = CommandFailed(ctx.now, command, reason)
        if isinstance(command, StopCmd | RequestControl):
            self._apply(self._stop.observe(failed, ctx))  # control asked for a Stop's sake
        if isinstance(command, StopCmd):
            return
        if ctx.state is S.ENDED:
            return
        self._apply(self._start.observe(failed, ctx))
        self._apply(self._refused.observe(failed, ctx))

    def _on_voided(self, command: Command) -> None:
        ctx = self._ctx
        if not ctx.outbox.voided(command):
            return
        # It never reached the belt: what we believe we told it goes back to what it was.
        ctx.belt.undo(command, ctx.outbox.in_flight_undo)
        if isinstance(command, RequestControl | StartResume | PauseCmd) and (
            ctx.state in (S.STARTING, S.PAUSED)
        ):
            ctx.outbox.deferred = command  # still wanted: it goes once the link is free

    def _on_request(self, req: Request) -> None:
        ctx = self._ctx
        if self._targets.on_request(req, ctx):
            return
        trigger = REQUEST_TRIGGERS.get(type(req))
        if trigger is None:
            ctx.refuse(req, "unknown request")
            return
        if next_state(ctx.state, trigger) is None:
            ctx.refuse(req, why_not(ctx.state, trigger))
            return
        self._requests[trigger](req, ctx)


def _loses_control(event: object) -> bool:
    if isinstance(event, LinkLost):
        return True
    return isinstance(event, MachineStatus) and event.kind in (
        StatusKind.CONTROL_LOST,
        StatusKind.RESET,
    )
