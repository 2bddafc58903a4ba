"""The session every rule sees: state and sub-states, targets, the belt, and the few effects."""

from __future__ import annotations

import math
from collections.abc import Callable

from .belt import BeltTracker
from .config import SafetyConfig
from .limits import Envelope, envelope_for
from .outbox import Outbox
from .states import StartPhase, StopIntent, Trigger, next_state
from .types import (
    Alarm,
    AlarmKind,
    Command,
    Ended,
    EndReason,
    GovernorState,
    LinkState,
    MachineLimits,
    Notice,
    Orientation,
    PauseCmd,
    Refused,
    Request,
    StartResume,
    StopCmd,
)
from .wording import ACTIONABLE as ACTIONABLE  # the rules take it from here

S = GovernorState

# Every alarm that may leave the belt moving sends the person to the machine itself.

# Told about every approved command before the belt tracker records it (so ctx.belt still
# says what the belt was told before): rules reset their evidence here.
SentListener = Callable[[Command, "Context"], None]


class Context:
    """Shared, mutable session facts. The governor core owns it; rules read it, keep their
    own evidence, and change it only through the effects below (or the sub-state they own)."""

    def __init__(self, limits: MachineLimits, config: SafetyConfig, t0: float) -> None:
        self.limits = limits
        self.config = config
        self.t0 = t0
        self.now = t0
        self.state = S.IDLE
        self.orientation = Orientation.FORWARD
        self.env = envelope_for(limits, config, self.orientation)
        # Until the belt first gets StartResume, Start may still choose the orientation.
        self.fresh = True
        self.ended_reason: EndReason | None = None
        # control and link
        self.has_control = False
        self.control_lost = False
        self.link_lost = False
        self.link_state = LinkState.OK
        # sub-state of STARTING (safety/rules/start.py moves it along)
        self.start_phase: StartPhase | None = None
        self.start_request: Request | None = None
        self.start_requested_t = -math.inf
        # sub-state of STOPPING: why, and how the session ends if it does
        self.intent: StopIntent | None = None
        self.end_reason_pending = EndReason.COMPLETED
        self.end_message_pending = ""
        # sub-state of AWAITING_TURN
        self.turn_to: Orientation | None = None
        self.turn_ready = False
        # targets (what the person or program wants; the ramp moves the belt towards them)
        self.target = 0.0
        self.target_incline: float | None = None
        self.hold_reason: str | None = None
        self.belt = BeltTracker()
        self.outbox = Outbox()
        self.sent_listeners: list[SentListener] = []

    # ------------------------------------------------------------ queries

    def envelope_for(self, orientation: Orientation) -> Envelope:
        return envelope_for(self.limits, self.config, orientation)

    def rest_since(self) -> float | None:
        return self.belt.rest_since(self.now, self.env)

    def telemetry_fresh(self) -> bool:
        return self.belt.fresh(self.now, self.config.stale_alarm_s)

    def belt_moving_now(self) -> bool:
        return self.belt.moving_now(self.now, self.config.stale_alarm_s)

    def link_free(self) -> bool:
        return self.outbox.link_free()

    @property
    def sent_this_call(self) -> bool:
        return self.outbox.sent_this_call

    def incline_settled(self) -> bool:
        return self.belt.incline_settled(self.now, self.env)

    def since_speed_cmd_s(self) -> float:
        return self.now - self.belt.last_speed_cmd_t

    # ------------------------------------------------------------ effects

    def send(self, command: Command) -> None:
        """Send command through the outbox (which may defer it), then record it."""
        if not self.outbox.approve(command, self.now):
            return
        for listener in self.sent_listeners:
            listener(command, self)
        if isinstance(command, StopCmd | PauseCmd):
            if self.start_phase is not StartPhase.CONFIRM_REST:
                self.start_phase = None
        elif isinstance(command, StartResume):
            self.fresh = False
        undo = self.belt.record_sent(command, self.now)
        if not isinstance(command, StopCmd):
            self.outbox.in_flight_undo = undo

    def notice(self, notice: Notice) -> None:
        self.outbox.notice(notice)

    def alarm(self, kind: AlarmKind, message: str) -> None:
        self.outbox.notice(Alarm(kind, message))

    def refuse(self, request: object, reason: str) -> None:
        if isinstance(request, Request):
            self.outbox.notice(Refused(request, reason))

    def goto(self, trigger: Trigger) -> None:
        nxt = next_state(self.state, trigger)
        if nxt is None:
            raise RuntimeError(f"no transition from {self.state} on {trigger}")
        self.state = nxt

    def lose_control(self) -> None:
        """Control lost or machine reset: never ask for control again (one Stop, no retries)."""
        self.has_control = False
        self.control_lost = True
        self.outbox.request_control_forbidden = True

    def turn_to_other(self) -> None:
        self.turn_to = self.orientation.other
        self.turn_ready = False

    def face(self, orientation: Orientation) -> None:
        self.orientation = orientation
        self.env = self.envelope_for(orientation)

    def end(self, reason: EndReason, message: str, trigger: Trigger) -> None:
        self.goto(trigger)
        self.ended_reason = reason
        self.start_phase = None
        self.intent = None
        self.turn_ready = False
        self.notice(Ended(reason, message))

    def fatal(
        self, reason: EndReason, message: str, *, stop: bool, alarm: AlarmKind | None = None
    ) -> None:
        """End the session now. stop: also send StopCmd (bypassing every ramp)."""
        if self.state is S.ENDED:
            return
        if stop:
            self.send(StopCmd())
        if alarm is not None:
            self.alarm(alarm, message)
        self.end(reason, message, Trigger.FATAL)

    def abort_start(self, message: str, *, stop: bool = False) -> None:
        """Give a start (or resume) up: state STOPPED, START_FAILED alarm; stop: Stop first."""
        if stop:
            self.send(StopCmd())
        self.start_phase = None
        self.alarm(AlarmKind.START_FAILED, message)
        self.goto(Trigger.START_FAILED)

    def begin_ramp_stop(
        self,
        trigger: Trigger,
        intent: StopIntent,
        reason: EndReason = EndReason.COMPLETED,
        message: str = "",
    ) -> None:
        """From RUNNING or STOPPING: ramp down (safety/rules/ramp.py), then Stop."""
        if self.intent is not StopIntent.END:  # an end, once decided, is never downgraded
            self.intent = intent
            if intent is StopIntent.END:
                self.end_reason_pending = reason
                self.end_message_pending = message or "session ended"
        self.goto(trigger)

    def finish_stop(self) -> None:
        """The ramp is done (or cut short): Stop, and go where the intent says."""
        intent = self.intent or StopIntent.STOP
        self.send(StopCmd())
        self.intent = None
        match intent:
            case StopIntent.END:
                self.end(self.end_reason_pending, self.end_message_pending, Trigger.STOPPED_FOR_END)
            case StopIntent.TURN:
                self.goto(Trigger.STOPPED_FOR_TURN)
                self.turn_to_other()
            case _:
                self.goto(Trigger.STOPPED)
