"""Turning around (docs/SAFETY.md rows 5, 16): stopped, still 3 s, deck level, confirmed."""

from __future__ import annotations

import math
from typing import override

from ..belt import BeltCommand
from ..context import Context
from ..limits import EPS
from ..states import StopIntent, Trigger
from ..types import (
    ConfirmTurned,
    GovernorState,
    OrientationChanged,
    RequestControl,
    StopCmd,
    TurnAround,
    TurnAroundReady,
)
from . import Announce, Rule, Verdict
from .not_obeying import NotObeying
from .start import UNKNOWN_BELT_WAIT_S, deck_refusal, level_deck, slow_moving_belt
from .stopping import stop_what_was_started

S = GovernorState


class TurnAroundRule(Rule):
    """Owns the AWAITING_TURN sub-state (ctx.turn_to, ctx.turn_ready). Never flips by itself."""

    def __init__(self, not_obeying: NotObeying) -> None:
        self._not_obeying = not_obeying
        self._asked_control = False
        self._probed = False
        self._turn_asked_t = -math.inf

    def on_turn_around(self, req: TurnAround, ctx: Context) -> None:
        self._turn_asked_t = ctx.now
        match ctx.state:
            case S.RUNNING | S.STOPPING:
                if ctx.intent is StopIntent.END:
                    ctx.refuse(req, "the session is ending")
                    return
                ctx.begin_ramp_stop(Trigger.TURN_AROUND, StopIntent.TURN)
            case S.STARTING | S.PAUSED:
                stop_what_was_started(ctx)
                ctx.start_phase = None
                ctx.goto(Trigger.TURN_AROUND)
                ctx.turn_to_other()
            case S.IDLE if ctx.belt.command is BeltCommand.NONE and ctx.belt_moving_now():
                slow_moving_belt(ctx, req, StopIntent.TURN)
            case _:
                stop_what_was_started(ctx)  # stopped after a resume that failed: still paused
                ctx.goto(Trigger.TURN_AROUND)
                ctx.turn_to_other()

    def on_confirm_turned(self, req: ConfirmTurned, ctx: Context) -> None:
        # The dwell was re-checked at this event's time before we got here.
        if not ctx.turn_ready or ctx.turn_to is None:
            ctx.refuse(
                req,
                f"wait until the belt has been still for {ctx.config.turnaround_dwell_s:g} s",
            )
            return
        new = ctx.turn_to
        ctx.face(new)
        ctx.turn_to = None
        ctx.turn_ready = False
        ctx.target = 0.0
        self._not_obeying.over_cap_since = None  # the other way may have another cap
        ctx.goto(Trigger.CONFIRM_TURNED)
        ctx.notice(OrientationChanged(new))

    @override
    def check(self, ctx: Context) -> Verdict | None:
        if ctx.state is not S.AWAITING_TURN or ctx.turn_to is None:
            return None
        since = ctx.rest_since()
        ready = since is not None and ctx.now - since >= ctx.config.turnaround_dwell_s - EPS
        # Walking backward needs a level deck: the turn waits for it to come down.
        ready = ready and deck_refusal(ctx, ctx.envelope_for(ctx.turn_to)) is None
        if ready and not ctx.turn_ready:
            ctx.turn_ready = True
            return Announce(TurnAroundReady(ctx.turn_to))
        if not ready:
            ctx.turn_ready = False
        return None

    def settle(self, ctx: Context) -> None:
        """Stopped for a turn: make rest visible, then bring the deck down if it must."""
        if ctx.belt.command is BeltCommand.NONE and ctx.belt_moving_now():
            # Turning before anything was commanded, and the belt turns out to be running
            # (started at the console; its first reading came late): slow it down first.
            slow_moving_belt(ctx, TurnAround(ctx.now), StopIntent.TURN)
            return
        if not self._make_rest_visible(ctx):
            self.level_deck(ctx)

    def _make_rest_visible(self, ctx: Context) -> bool:
        """A turn before any reading (a machine silent while still, a session that starts
        with a turn): a Stop that is accepted shows rest; True while that is under way."""
        if not ctx.belt.unknown():
            return False
        if ctx.now - self._turn_asked_t < UNKNOWN_BELT_WAIT_S - EPS:
            return True  # a first reading usually comes within a second
        if not ctx.has_control:
            self._ask_control(ctx)
            return True
        if not self._probed:
            self._probed = True
            ctx.send(StopCmd())
        return True

    def _ask_control(self, ctx: Context) -> None:
        # Asked once, never after control was lost (the belt must never restart by itself,
        # and control is only ever for what the person asked for: here, their turn).
        if not ctx.control_lost and not ctx.link_lost and not self._asked_control:
            self._asked_control = True
            ctx.send(RequestControl())

    def level_deck(self, ctx: Context) -> None:
        """Stopped for a turn: a deck above the next orientation's limit comes down first."""
        to = ctx.turn_to
        if to is None or ctx.rest_since() is None:
            return  # one axis at a time: the deck moves once the belt is still
        if ctx.since_speed_cmd_s() < ctx.config.speed_incline_gap_s - EPS:
            return
        env = ctx.envelope_for(to)
        if deck_refusal(ctx, env) is None or env.incline_cap_pct is None:
            return
        level = env.clamp_incline(0.0)
        if level is None or ctx.belt.commanded_incline == level:
            return
        if not ctx.has_control:
            self._ask_control(ctx)  # a session that begins with a turn on a tilted deck
            return
        level_deck(ctx, level)
