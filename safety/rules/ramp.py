"""Ramps, one axis at a time (docs/SAFETY.md rows 2, 4, 14): each setpoint step, paced."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

from ..context import Context
from ..limits import EPS, snap_down
from ..types import GovernorState, SetTargetIncline, SetTargetSpeed
from . import Rule, increase_refusal
from .not_obeying import NotObeying
from .turn_around import TurnAroundRule

S = GovernorState

STOP_SETTLE_S: Final = 3.0  # at the stop-from speed: send Stop once confirmed, or after this
SLOW_ANSWER_S: Final = 1.0  # slowing down and an answer takes longer: Stop instead of ramping


class Ramp(Rule):
    """On Tick and Telemetry: the next speed or incline step towards the targets, if any.

    Priority: speed down, incline down, speed up, incline up (decreases first, so the two
    are never raised together); one command per call, one in flight.
    """

    def __init__(
        self, holds: Sequence[Rule], not_obeying: NotObeying, turn: TurnAroundRule
    ) -> None:
        self._holds = holds  # their increase_refusal blocks every increase
        self._not_obeying = not_obeying
        self._turn = turn

    def drive(self, ctx: Context) -> None:
        if not ctx.has_control:
            if ctx.state is S.AWAITING_TURN and ctx.link_free():
                self._turn.settle(ctx)  # may ask for control: a deck left tilted, a silent belt
            return
        if not ctx.link_free():
            if ctx.state is S.RUNNING:
                ctx.hold_reason = "waiting for the treadmill to accept the last command"
            elif (
                ctx.state is S.STOPPING
                and ctx.outbox.stops_in_flight == 0
                and ctx.now - ctx.outbox.in_flight_t >= SLOW_ANSWER_S - EPS
            ):
                # A treadmill this slow to answer would take minutes to ramp down: Stop now
                # (it goes as soon as the machine can take it) rather than keep the belt going.
                ctx.finish_stop()
            return
        if ctx.state is S.RUNNING:
            self._drive_running(ctx)
        elif ctx.state is S.STOPPING:
            self._drive_stopping(ctx)
        elif ctx.state is S.AWAITING_TURN:
            self._turn.settle(ctx)

    # ------------------------------------------------------------ down

    @staticmethod
    def _may_step_down(ctx: Context) -> bool:
        now, belt = ctx.now, ctx.belt
        return (
            now - belt.last_down_t >= ctx.env.down_interval_s - EPS
            and now - belt.last_incline_cmd_t >= ctx.config.speed_incline_gap_s - EPS
        )

    @staticmethod
    def _step_down_value(ctx: Context, floor: float) -> float:
        env, belt = ctx.env, ctx.belt
        # The ramp runs on time, not on answers: a treadmill that answers late gets fewer,
        # larger decreases (at most one key press's worth), so it still slows at the ramp
        # rate instead of at the pace of its answers.
        since = ctx.now - belt.last_down_emit_t
        continuing = ctx.now - belt.last_down_t <= env.down_interval_s + 0.25
        behind = env.ramp_down_kmh_per_s * since if continuing and math.isfinite(since) else 0
        step = env.speed_step_kmh
        most = max(step, ctx.config.max_step_per_request_kmh)
        drop = min(max(step, round(behind / step) * step), most)  # whole increments only
        return max(
            floor,
            snap_down(belt.commanded - drop + EPS, env.speed_min_kmh, env.speed_step_kmh),
        )

    def _drive_stopping(self, ctx: Context) -> None:
        belt = ctx.belt
        floor = min(belt.commanded, ctx.env.start_speed_kmh)
        if belt.commanded > floor + EPS:
            if self._may_step_down(ctx):
                ctx.send(SetTargetSpeed(self._step_down_value(ctx, floor)))
            return
        if belt.speed_confirmed or ctx.now - belt.last_speed_cmd_t >= STOP_SETTLE_S:
            ctx.finish_stop()

    # ------------------------------------------------------------ up

    @staticmethod
    def _incline_direction(ctx: Context) -> int:
        ti = ctx.target_incline
        if ti is None or ctx.env.incline_cap_pct is None:
            return 0
        basis = ctx.belt.incline_basis()
        if basis is None or ti < basis - EPS:
            return -1  # unknown counts as "down": make it known before speeding up
        return 1 if ti > basis + EPS else 0

    def _up_blocker(self, ctx: Context) -> str | None:
        """Why the next one-step speed increase must wait; None: it may go now."""
        now, env, cfg, belt = ctx.now, ctx.env, ctx.config, ctx.belt
        hard = increase_refusal(self._holds, ctx)
        if hard is not None:
            return hard
        if self._not_obeying.faster_than_commanded:
            return "the belt is faster than commanded"
        if not ctx.telemetry_fresh():
            return "waiting for a fresh speed reading"
        if ctx.outbox.unanswered:
            return "waiting for the treadmill to accept the last command"
        if not belt.speed_confirmed:
            return f"waiting for the belt to reach {belt.commanded:.1f} km/h"
        if now - belt.last_speed_cmd_t < env.up_interval_s - EPS:
            return "ramping up"
        if now - belt.last_incline_cmd_t < cfg.speed_incline_gap_s - EPS:
            return "waiting after the incline change"
        if not ctx.incline_settled():
            return "waiting for the incline to settle"
        if belt.incline_above_cap(env):
            return "the incline is above the cap"
        return None

    def _may_change_incline(self, ctx: Context, *, up: bool) -> bool:
        # One axis at a time (row 4): never in the same call as a speed command (we only
        # get here when nothing was emitted), and only speed_incline_gap_s after the last
        # speed command. Increases also need the belt confirmed at its commanded speed.
        if ctx.outbox.unanswered:
            return False
        if ctx.now - ctx.belt.last_speed_cmd_t < ctx.config.speed_incline_gap_s - EPS:
            return False
        if not up:
            return True
        if increase_refusal(self._holds, ctx) is not None or not ctx.telemetry_fresh():
            return False
        if not ctx.belt.speed_confirmed:
            return False
        return not self._not_obeying.rising_or_lagging

    def _drive_running(self, ctx: Context) -> None:
        ctx.hold_reason = None
        tgt, cmd = ctx.target, ctx.belt.commanded
        if tgt < cmd - EPS:
            if self._may_step_down(ctx):
                ctx.send(SetTargetSpeed(self._step_down_value(ctx, tgt)))
            return
        direction = self._incline_direction(ctx)
        if direction < 0:
            if self._may_change_incline(ctx, up=False) and ctx.target_incline is not None:
                ctx.send(SetTargetIncline(ctx.target_incline))
            else:
                ctx.hold_reason = "changing the incline first"
            return
        if tgt > cmd + EPS:
            ctx.hold_reason = self._up_blocker(ctx)
            if ctx.hold_reason is None:
                step = ctx.env.speed_step_kmh
                ctx.send(SetTargetSpeed(min(tgt, round(cmd + step, 2))))
            return
        if direction > 0:
            if self._may_change_incline(ctx, up=True) and ctx.target_incline is not None:
                ctx.send(SetTargetIncline(ctx.target_incline))
            else:
                ctx.hold_reason = "waiting to change the incline"
