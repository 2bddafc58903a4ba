"""Speed and incline targets (docs/SAFETY.md rows 1, 4): caps on the grid, small key steps."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final, override

from ..belt import number
from ..config import UNLOCKED_BACKWARD_INCLINE_PCT
from ..context import Context
from ..limits import EPS, snap_down
from ..states import SETPOINT_STATES
from ..types import (
    GovernorState,
    Orientation,
    Request,
    SetIncline,
    SetSpeed,
    StepIncline,
    StepSpeed,
)
from . import Rule, increase_refusal

S = GovernorState

MAX_INCLINE_KEY_STEP_PCT: Final = 1.0


class Targets(Rule):
    """Requests that change what the belt should do; safety/rules/ramp.py gets it there."""

    def __init__(self, holds: Sequence[Rule]) -> None:
        self._holds = holds  # their increase_refusal refuses any request that raises a target

    @override
    def start_refusal(
        self, ctx: Context, orientation: Orientation, *, resuming: bool
    ) -> str | None:
        return ctx.envelope_for(orientation).refusal

    def on_request(self, req: Request, ctx: Context) -> bool:
        """Handle a setpoint request; False if req is not one."""
        match req:
            case SetSpeed():
                self._on_set_speed(req, number(req.kmh), ctx)
            case StepSpeed():
                self._on_step_speed(req, ctx)
            case SetIncline():
                self._on_set_incline(req, number(req.pct), ctx)
            case StepIncline():
                self._on_step_incline(req, ctx)
            case _:
                return False
        return True

    @staticmethod
    def _state_refusal(ctx: Context) -> str | None:
        if ctx.state in SETPOINT_STATES:
            return None
        if ctx.state is S.STOPPING:
            return "the belt is slowing down to stop"
        return "start the belt first"

    # ------------------------------------------------------------ speed

    def _on_set_speed(self, req: Request, kmh: float | None, ctx: Context) -> None:
        why = self._state_refusal(ctx)
        if why is not None:
            ctx.refuse(req, why)
            return
        if kmh is None:
            ctx.refuse(req, "not a valid speed")
            return
        self._set_speed(req, kmh, ctx)

    def _on_step_speed(self, req: StepSpeed, ctx: Context) -> None:
        why = self._state_refusal(ctx)
        if why is not None:
            ctx.refuse(req, why)
            return
        steps = req.steps
        if isinstance(steps, bool) or not isinstance(steps, int):
            ctx.refuse(req, "steps must be a whole number")
            return
        if steps == 0:
            return
        env = ctx.env
        max_step = ctx.config.max_step_per_request_kmh
        if env.speed_step_kmh > max_step + EPS:
            # Even one machine increment is more than a key press may change.
            ctx.refuse(
                req,
                f"this treadmill's speed step {env.speed_step_kmh:g} km/h is more than "
                f"{max_step:g} km/h: set a speed instead",
            )
            return
        delta = steps * env.speed_step_kmh
        if abs(delta) > max_step + EPS:
            delta = math.copysign(snap_down(max_step, 0.0, env.speed_step_kmh), delta)
            ctx.refuse(req, f"one key press changes the speed by at most {max_step:g} km/h")
        if delta < 0 and ctx.state is S.RUNNING:
            # "Slower" means slower than now, even in the middle of a ramp up.
            base = min(ctx.target, ctx.belt.commanded)
        else:
            base = ctx.target
        self._set_speed(req, base + delta, ctx)

    def _set_speed(self, req: Request, kmh: float, ctx: Context) -> None:
        env = ctx.env
        notes: list[str] = []
        if kmh > env.speed_cap_kmh + EPS:
            notes.append(f"{ctx.orientation} speed is capped at {env.speed_cap_kmh:.1f} km/h")
        elif kmh < env.speed_min_kmh - EPS:
            notes.append(
                f"the lowest speed is {env.speed_min_kmh:.1f} km/h: use Stop to stop the belt"
            )
        value = env.clamp_speed(kmh)
        if value > ctx.target + EPS:
            blocked = increase_refusal(self._holds, ctx)
            if blocked is not None:
                ctx.refuse(req, blocked)
                return
        ctx.target = value
        for note in notes:
            ctx.refuse(req, f"{note}; target set to {value:.1f} km/h")

    # ------------------------------------------------------------ incline

    def _incline_refusal(self, ctx: Context) -> str | None:
        if not ctx.limits.incline_supported:
            return "this treadmill has no incline control"
        if ctx.env.incline_cap_pct is None:
            return f"no incline changes are possible walking {ctx.orientation} on this treadmill"
        return self._state_refusal(ctx)

    def _on_set_incline(self, req: SetIncline, pct: float | None, ctx: Context) -> None:
        why = self._incline_refusal(ctx)
        if why is not None:
            ctx.refuse(req, why)
            return
        if pct is None:
            ctx.refuse(req, "not a valid incline")
            return
        self._set_incline(req, pct, ctx)

    def _on_step_incline(self, req: StepIncline, ctx: Context) -> None:
        why = self._incline_refusal(ctx)
        if why is not None:
            ctx.refuse(req, why)
            return
        steps = req.steps
        if isinstance(steps, bool) or not isinstance(steps, int):
            ctx.refuse(req, "steps must be a whole number")
            return
        if steps == 0:
            return
        env = ctx.env
        delta = steps * env.incline_step_pct
        limit = max(MAX_INCLINE_KEY_STEP_PCT, env.incline_step_pct)
        if abs(delta) > limit + EPS:
            delta = math.copysign(limit, delta)
        base = ctx.target_incline
        if base is None:
            base = ctx.belt.incline_basis()
        self._set_incline(req, (base if base is not None else 0.0) + delta, ctx)

    def _set_incline(self, req: Request, pct: float, ctx: Context) -> None:
        env = ctx.env
        cap, low = env.incline_cap_pct, env.incline_min_pct
        assert cap is not None and low is not None  # checked by _incline_refusal
        note: str | None = None
        if pct > cap + EPS:
            note = f"{ctx.orientation} incline is capped at {cap:.1f} %"
            if ctx.orientation is Orientation.BACKWARD and not ctx.config.backward_incline_unlocked:
                note += (
                    f" (up to {UNLOCKED_BACKWARD_INCLINE_PCT:g} % can be unlocked in the settings)"
                )
        elif pct < low - EPS:
            note = f"the lowest incline here is {low:.1f} %"
        value = env.clamp_incline(pct)
        current = ctx.target_incline if ctx.target_incline is not None else ctx.belt.incline_basis()
        if value is not None and (current is None or value > current + EPS):
            blocked = increase_refusal(self._holds, ctx)
            if blocked is not None:
                ctx.refuse(req, blocked)
                return
        ctx.target_incline = value
        if note is not None and value is not None:
            ctx.refuse(req, f"{note}; target set to {value:.1f} %")
