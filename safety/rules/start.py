"""Starting (docs/SAFETY.md rows 3, 12, 16, 17, 18): control, rest seen, level deck, Start."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final, override

from ..belt import (
    INCLINE_S_PER_PCT,
    INCLINE_SETTLE_TIMEOUT_S,
    MOTION_KMH,
    NEVER_REPORTED_REST_S,
    BeltCommand,
)
from ..context import ACTIONABLE, Context
from ..limits import EPS, Envelope
from ..states import StartPhase, StopIntent, Trigger
from ..types import (
    AlarmKind,
    CommandAccepted,
    CommandFailed,
    EndReason,
    GovernorState,
    Orientation,
    Request,
    RequestControl,
    Resume,
    SetTargetIncline,
    SetTargetSpeed,
    Start,
    StartResume,
    StopCmd,
    Telemetry,
)
from . import AbortStart, Rule, StopNow, Verdict, first_refusal
from .not_obeying import NotObeying

S = GovernorState

UNKNOWN_BELT_WAIT_S: Final = 2.0  # at a start: wait this long for a first reading, then probe
RESUME_AFTER_PAUSE_S: Final = 5.0  # a belt still reporting speed this long after Pause: stale


def deck_refusal(ctx: Context, env: Envelope) -> str | None:
    """Why the deck is not yet within the incline limit for walking this way, or None."""
    if env.orientation is not Orientation.BACKWARD:
        return None
    belt = ctx.belt
    limit = env.incline_cap_pct if env.incline_cap_pct is not None else 0.0
    tol = env.incline_tolerance_pct
    commanded = belt.commanded_incline
    read_since_command = commanded is None or belt.measured_incline_t > belt.last_incline_cmd_t
    if belt.incline_reported and belt.measured_incline is not None and read_since_command:
        if belt.measured_incline > limit + tol:
            return f"the deck is at {belt.measured_incline:.1f} %"
        if commanded is not None and not ctx.incline_settled():
            return "the deck is still moving"
        return None
    if commanded is not None:
        if commanded > limit + tol:
            return f"the deck was set to {commanded:.1f} %"
        if belt.incline_reported and belt.measured_incline is not None:
            # Reported before, silent since (a machine that goes quiet when still): give
            # the motor the time it needs from the last reading.
            since = ctx.now - belt.last_incline_cmd_t
            if since < abs(belt.measured_incline - commanded) * INCLINE_S_PER_PCT - EPS:
                return "the deck is still moving"
            return None
        if not ctx.incline_settled():
            return "the deck is still moving"
        return None
    if ctx.limits.incline_supported and env.incline_cap_pct is not None:
        return "the deck's incline is not known"
    return None


def level_deck(ctx: Context, level: float) -> None:
    """Send the deck to level; a deck that never reported is given the time it would need
    from the top of its range."""
    unknown = ctx.belt.incline_basis() is None
    ctx.send(SetTargetIncline(level))
    ctx.belt.assume_deck_at_top(ctx.limits, unknown)


def slow_moving_belt(ctx: Context, req: Request, intent: StopIntent = StopIntent.STOP) -> None:
    """Start (or a turn) asked for on a belt that is already running (started at the
    console): never Start it; take control and ramp it down to a stop first."""
    m = ctx.belt.measured or 0.0
    ctx.refuse(
        req,
        f"the belt is already moving ({m:.1f} km/h): slowing it to a stop first; "
        "the walk starts once it has stopped",
    )
    ctx.belt.take_over_moving(ctx.now, ctx.env, ctx.limits)
    ctx.target = 0.0
    ctx.intent = intent
    ctx.goto(Trigger.SLOW_MOVING_BELT)
    if not ctx.has_control:
        ctx.send(RequestControl())


def initial_incline_target(ctx: Context) -> float | None:
    env = ctx.env
    if env.incline_cap_pct is None or env.incline_min_pct is None:
        return None
    known = ctx.belt.incline_basis()
    if known is None:
        # Unknown incline: backwards we make sure it is level (or at the floor); forwards
        # we leave the machine alone.
        return env.clamp_incline(0.0) if env.orientation is Orientation.BACKWARD else None
    clamped = env.clamp_incline(known)
    if clamped is not None and abs(clamped - known) <= EPS:
        return known
    return clamped


class StartRule(Rule):
    """Moves a start along one answer or reading at a time (ctx.start_phase), and asks the
    other rules (their start_refusal) whether it may begin at all."""

    def __init__(self, refusers: Sequence[Rule], not_obeying: NotObeying) -> None:
        self._refusers = refusers  # asked in this order before this rule's own reasons
        self._not_obeying = not_obeying

    def refusal(self, ctx: Context, orientation: Orientation, *, resuming: bool) -> str | None:
        """Why a Start (or Resume) in this orientation is refused right now, or None."""
        return first_refusal(
            rule.start_refusal(ctx, orientation, resuming=resuming)
            for rule in (*self._refusers, self)
        )

    @override
    def start_refusal(
        self, ctx: Context, orientation: Orientation, *, resuming: bool
    ) -> str | None:
        # A start from standstill needs the belt at rest. Moving (a fresh reading) is
        # refused here; unknown (no reading yet, or silence) is settled by the start phases.
        # (A resume instead waits for the paused belt to come to rest: see _settle_rest.)
        if not resuming and ctx.rest_since() is None and ctx.belt_moving_now():
            return "the belt is still moving: wait until it has stopped"
        # Starting the belt is a speed change: not within the gap after an incline change.
        wait = ctx.belt.last_incline_cmd_t + ctx.config.speed_incline_gap_s - ctx.now
        if wait > EPS:
            return f"the incline is still changing: start again in {math.ceil(wait)} s"
        return None

    # ------------------------------------------------------------ requests

    def on_start(self, req: Start, ctx: Context) -> None:
        try:
            orientation = Orientation(req.orientation)
        except ValueError:
            ctx.refuse(req, f"unknown orientation {req.orientation!r}")
            return
        if orientation is not ctx.orientation and not ctx.fresh:
            ctx.refuse(
                req,
                f"you are facing {ctx.orientation}: use Turn around before walking {orientation}",
            )
            return
        if ctx.belt.command is BeltCommand.NONE and ctx.belt_moving_now():
            slow_moving_belt(ctx, req)
            return
        why = self.refusal(ctx, orientation, resuming=False)
        if why is not None:
            ctx.refuse(req, why)
            return
        if orientation is not ctx.orientation:
            ctx.face(orientation)  # fresh session: the person chooses with the first Start
        ctx.target = ctx.env.start_speed_kmh
        ctx.target_incline = initial_incline_target(ctx)
        self._begin(req, Trigger.START, ctx)

    def on_resume(self, req: Resume, ctx: Context) -> None:
        why = self.refusal(ctx, ctx.orientation, resuming=True)
        if why is not None:
            ctx.refuse(req, why)
            return
        # Keep the target: we ramp back up to it from the start speed, never jump.
        ctx.target = max(ctx.env.clamp_speed(ctx.target), ctx.env.start_speed_kmh)
        if ctx.target_incline is None:
            ctx.target_incline = initial_incline_target(ctx)
        self._begin(req, Trigger.RESUME, ctx)

    def _begin(self, req: Request, trigger: Trigger, ctx: Context) -> None:
        ctx.start_request = req
        ctx.start_requested_t = ctx.now
        ctx.goto(trigger)
        ctx.start_phase = None
        self.advance(ctx)

    # ------------------------------------------------------------ the phases

    def advance(self, ctx: Context) -> None:
        """Move a start (or resume) along, one answer or reading at a time: control, rest
        seen, deck level for walking backward, then StartResume."""
        if ctx.state is not S.STARTING or ctx.sent_this_call or not ctx.link_free():
            return
        phase = ctx.start_phase
        if phase is StartPhase.AWAIT_MOTION or ctx.outbox.deferred is not None:
            return
        if not ctx.has_control:
            if phase is not StartPhase.AWAIT_CONTROL:
                ctx.start_phase = StartPhase.AWAIT_CONTROL
                ctx.send(RequestControl())
            return
        resuming = isinstance(ctx.start_request, Resume)
        if ctx.rest_since() is None and not self._resume_may_go(ctx, resuming):
            self._settle_rest(ctx, phase)
            return
        deck = deck_refusal(ctx, ctx.env)
        if deck is not None:
            if ctx.env.incline_cap_pct is None:
                ctx.abort_start(f"{deck}: lower it to 0 % at the console before walking backward")
                return
            if phase is not StartPhase.LEVEL_DECK:
                ctx.start_phase = StartPhase.LEVEL_DECK
                ctx.target_incline = ctx.env.clamp_incline(0.0)
                if ctx.target_incline is not None:
                    level_deck(ctx, ctx.target_incline)
            return
        wait = ctx.belt.last_incline_cmd_t + ctx.config.speed_incline_gap_s - ctx.now
        if wait > EPS:
            return  # starting the belt is a speed change: not within the gap after the deck
        ctx.belt.command_before_start = ctx.belt.command
        ctx.start_phase = StartPhase.AWAIT_MOTION
        ctx.send(StartResume())

    @staticmethod
    def _settle_rest(ctx: Context, phase: StartPhase | None) -> None:
        """The belt is not known at rest: slow a moving one, or make rest visible."""
        if ctx.belt_moving_now() and phase is not StartPhase.CONFIRM_REST:
            if ctx.belt.command is BeltCommand.PAUSE and isinstance(ctx.start_request, Resume):
                # Resume asked for while the paused belt still slows down: it goes once the
                # belt is seen at rest (never a StartResume on a moving belt), or not at all.
                if ctx.now - ctx.start_requested_t >= ctx.config.start_timeout_s - EPS:
                    ctx.abort_start("the belt did not come to rest after the pause: it was "
                                    "not resumed. Press Resume again once it has stopped")
                return
            if ctx.belt.command is BeltCommand.NONE and ctx.start_request is not None:
                ctx.start_phase = None
                slow_moving_belt(ctx, ctx.start_request)  # started at the console
                return
            ctx.abort_start(
                "the belt is moving: it was not started. Press Start again once it has stopped"
            )
            return
        if phase is not StartPhase.CONFIRM_REST:
            if ctx.belt.unknown() and ctx.now - ctx.start_requested_t < UNKNOWN_BELT_WAIT_S - EPS:
                return  # a first reading usually comes within a second
            # Unknown (or silent): a Stop makes rest visible (silence after an accepted
            # Stop, or fresh zeros); it never moves a still belt.
            ctx.start_phase = StartPhase.CONFIRM_REST
            ctx.send(StopCmd())

    def _resume_may_go(self, ctx: Context, resuming: bool) -> bool:
        """Resume on a machine that keeps reporting its last speed while paused: once the
        pause has long been accepted and the readings are not changing, they are stale."""
        accepted = ctx.belt.rest_cmd_accepted_t
        return (
            resuming
            and ctx.belt.command is BeltCommand.PAUSE
            and accepted is not None
            and ctx.now - accepted >= RESUME_AFTER_PAUSE_S - EPS
            and not self._not_obeying.excess_since
        )

    # ------------------------------------------------------------ readings and answers

    @override
    def observe(self, event: object, ctx: Context) -> Verdict | None:
        match event:
            case Telemetry():
                v = ctx.belt.frame_speed
                if (
                    v is not None
                    and ctx.state is S.STARTING
                    and ctx.start_phase is StartPhase.AWAIT_MOTION
                    and v >= MOTION_KMH
                ):
                    self._belt_moving(ctx)
            case CommandAccepted(command=RequestControl()):
                self._control_granted(ctx)
            case CommandFailed(command=RequestControl()) if ctx.state is not S.ENDED:
                return self._control_refused(event.reason, ctx)
            case CommandFailed(command=StartResume()) if ctx.state is not S.ENDED:
                if ctx.state is S.STARTING and ctx.start_phase is StartPhase.AWAIT_MOTION:
                    # It did not start; if it starts later anyway, "rising when not asked"
                    # stops it.
                    ctx.belt.command = ctx.belt.command_before_start
                    return AbortStart(
                        f"the treadmill refused to start ({event.reason}). Press Start to try again"
                    )
            case _:
                pass
        return None

    @staticmethod
    def _belt_moving(ctx: Context) -> None:
        if ctx.sent_this_call or not ctx.link_free():
            return  # one command per call, one in flight; the next frame will do it
        # Only now may a speed be set: a speed sent to a stopped belt is ignored, or makes
        # some machines disconnect.
        ctx.send(SetTargetSpeed(ctx.env.start_speed_kmh))
        ctx.start_phase = None
        ctx.goto(Trigger.BELT_MOVING)

    def _control_granted(self, ctx: Context) -> None:
        if ctx.control_lost or ctx.link_lost:
            return
        ctx.has_control = True
        if ctx.state is not S.STARTING or ctx.start_phase is not StartPhase.AWAIT_CONTROL:
            return
        resuming = isinstance(ctx.start_request, Resume)
        why = self.refusal(ctx, ctx.orientation, resuming=resuming)
        if why is not None:
            if ctx.start_request is not None:
                ctx.refuse(ctx.start_request, why)
            ctx.start_phase = None
            ctx.goto(Trigger.START_FAILED)
            return
        self.advance(ctx)

    @staticmethod
    def _control_refused(reason: str, ctx: Context) -> Verdict | None:
        if ctx.state is S.STOPPING and not ctx.has_control:
            # A belt started at the console that we meant to slow down.
            ctx.belt.command = BeltCommand.NONE
            # When in doubt, stop: Stop until still asks for control again (with back-off)
            # for the Stop's sake, so a refusal of a moment does not leave the belt running.
            return StopNow(
                EndReason.ERROR,
                f"the treadmill refused remote control ({reason}), so the app could not "
                f"slow the moving belt: Stop sent until it stops. If it keeps moving, "
                f"{ACTIONABLE}",
                AlarmKind.START_FAILED,
            )
        if ctx.state is S.STARTING and ctx.start_phase is StartPhase.AWAIT_CONTROL:
            return AbortStart(
                f"the treadmill refused remote control ({reason}): the belt was not "
                "started. Finish any workout on the console, then press Start again"
            )
        return None

    # ------------------------------------------------------------ on the clock

    @override
    def check(self, ctx: Context) -> Verdict | None:
        if ctx.state is not S.STARTING:
            return None
        phase, cfg = ctx.start_phase, ctx.config
        if phase in (StartPhase.CONFIRM_REST, StartPhase.LEVEL_DECK) and not ctx.sent_this_call:
            allowed = cfg.start_timeout_s
            if phase is StartPhase.CONFIRM_REST and ctx.belt.last_speed_t is None:
                # nothing ever read: only a long silence after the Stop shows rest
                allowed = max(allowed, UNKNOWN_BELT_WAIT_S + NEVER_REPORTED_REST_S + 2.0)
            if phase is StartPhase.LEVEL_DECK:
                allowed += INCLINE_SETTLE_TIMEOUT_S
            if ctx.now - ctx.start_requested_t >= allowed:
                why = (
                    "the belt did not come to rest"
                    if phase is StartPhase.CONFIRM_REST
                    else "the deck did not come down"
                )
                return AbortStart(f"{why}: it was not started. Press Start to try again")
            return None
        if phase is not StartPhase.AWAIT_MOTION:
            return None
        run_t = ctx.belt.run_cmd_t if ctx.belt.run_cmd_t is not None else ctx.now
        if ctx.now - run_t < cfg.start_timeout_s or ctx.sent_this_call:
            return None
        # A belt that starts much later, by surprise, is worse than no start at all.
        return AbortStart(
            f"the belt did not start within {cfg.start_timeout_s:g} s: Stop sent. "
            "Press Start to try again",
            send_stop=True,
        )
