"""The belt tracker: what we told the belt and what it reports (one copy of that bookkeeping)."""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Final

from .limits import EPS, Envelope, snap_down
from .types import (
    Command,
    MachineLimits,
    PauseCmd,
    SetTargetIncline,
    SetTargetSpeed,
    StartResume,
    StopCmd,
    Telemetry,
)

ZERO_KMH: Final = 0.05  # a reading at or below this is "belt at 0"
MOTION_KMH: Final = 0.1  # a reading at or above this after StartResume is "belt moving"
SILENCE_S: Final = 1.0  # no reading this long (1-4 Hz is normal) after a slow Stop: silent
SLOWEST_DECEL_KMH_S: Final = 0.25  # a slow motor coasting down (DESIGN §4: slow belts)
# A machine that has not reported its speed once this session: after an accepted Stop its
# silence counts as rest only this long after the answer. Long enough for a belt at 15 km/h
# to stop at a typical 1.5 km/h/s, and for a drop-out of notifications from a belt that is
# in fact moving to end and show it.
NEVER_REPORTED_REST_S: Final = 10.0
INCLINE_S_PER_PCT: Final = 2.0  # incline never reported: assume a slow motor (0.5 % per s)
INCLINE_SETTLE_TIMEOUT_S: Final = 30.0


def number(x: object) -> float | None:
    """A finite number as float, or None for anything else (bool, NaN, garbage)."""
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        return None
    return float(x)


class BeltCommand(StrEnum):
    """What we last told the belt to do (not what it does)."""

    NONE = "none"  # nothing yet this session
    RUN = "run"
    STOP = "stop"
    PAUSE = "pause"


class BeltTracker:
    """Commanded speed and incline, readings and their age, and the evidence of rest.

    Rules judge; this only keeps the facts. Times are the governor's clock (seconds).
    """

    def __init__(self) -> None:
        # what the belt was told
        self.command = BeltCommand.NONE
        self.command_before_start = BeltCommand.NONE
        self.run_cmd_t: float | None = None
        self.rest_cmd_t: float | None = None  # the last Stop/Pause that began a rest
        self.rest_cmd_accepted_t: float | None = None
        self.commanded = 0.0  # the last SetTargetSpeed; 0.0 once Stop or Pause was sent
        self.last_speed_cmd_t = -math.inf  # its answer (its approval until then)
        self.last_down_t = -math.inf  # the last decrease's answer (its approval until then)
        self.last_down_emit_t = -math.inf
        self.speed_confirmed = False  # a reading after the last speed command matched it
        self.commanded_incline: float | None = None
        self.incline_from: float | None = None  # where the deck was when last commanded
        self.last_incline_cmd_t = -math.inf
        # what it reports
        self.measured: float | None = None
        self.last_speed_t: float | None = None
        self.pending_zero = False  # a lone 0 km/h frame held back, waiting for a second
        self.zero_since: float | None = None  # first 0 reading of the current run of zeros
        self.seen_zero = False  # reports 0 km/h when still: its silence is never rest
        # 0 km/h read during a start countdown (told to run, no motion yet since the start):
        # machines silent when stopped send that too, so it is not seen_zero; but it leaves
        # room for doubt, so silence after a Stop counts as rest only after the long dwell.
        self.countdown_zero = False
        self.moved_since_run = False
        self.measured_incline: float | None = None
        self.measured_incline_t = -math.inf
        self.incline_reported = False
        # this frame (set by observe): a valid speed arrived / the speed it contributed
        self.frame_had_speed = False
        self.frame_speed: float | None = None

    # ------------------------------------------------------------ readings

    def observe(self, ev: Telemetry, now: float, env: Envelope) -> None:
        speed = number(ev.speed_kmh)
        if speed is not None and speed < 0:
            speed = None  # garbage: does not count as a reading
        incline = number(ev.incline_pct)
        if incline is not None:
            self.measured_incline = incline
            self.measured_incline_t = now
            self.incline_reported = True
        self.frame_had_speed = speed is not None
        self.frame_speed = None
        if speed is None:
            return
        self.last_speed_t = now
        accepted = self._filter_stray_zero(speed)
        if accepted is None:
            return
        self.frame_speed = accepted
        self.measured = accepted
        if accepted <= ZERO_KMH:
            # A zero read during a start countdown doesn't show "reports 0 when still":
            # machines silent when stopped send 0 then too. Any other zero does.
            if self.command is BeltCommand.RUN and not self.moved_since_run:
                self.countdown_zero = True
            else:
                self.seen_zero = True
            if self.zero_since is None:
                self.zero_since = now
        else:
            self.zero_since = None
            if self.command is BeltCommand.RUN:
                self.moved_since_run = True
        if (
            self.command is BeltCommand.RUN
            and self.last_speed_cmd_t < now
            and self.commanded > 0
            and abs(accepted - self.commanded) <= env.speed_tolerance_kmh
        ):
            self.speed_confirmed = True

    def _filter_stray_zero(self, speed: float) -> float | None:
        """Hold back a lone 0 km/h frame while the belt should be moving."""
        if speed > ZERO_KMH:
            self.pending_zero = False
            return speed
        lone = (
            self.command is BeltCommand.RUN
            and self.measured is not None
            and self.measured > ZERO_KMH
            and not self.pending_zero
        )
        if lone:
            self.pending_zero = True  # a second zero in a row confirms it
            return None
        self.pending_zero = False
        return speed

    def fresh(self, now: float, stale_alarm_s: float) -> bool:
        return self.last_speed_t is not None and now - self.last_speed_t <= stale_alarm_s

    def moving_now(self, now: float, stale_alarm_s: float) -> bool:
        """A fresh reading shows motion (not a lone stray value)."""
        return self.measured_moving() and self.fresh(now, stale_alarm_s)

    def measured_moving(self) -> bool:
        m = self.measured
        return m is not None and m > ZERO_KMH

    def unknown(self) -> bool:
        """Nothing commanded and nothing read yet: the belt may be still or moving."""
        return self.command is BeltCommand.NONE and self.last_speed_t is None

    def moving_ref_t(self, t0: float) -> float:
        """The last moment something told us about the belt (a reading or a command)."""
        times = [x for x in (self.last_speed_t, self.run_cmd_t, self.rest_cmd_t) if x is not None]
        return max(times) if times else t0

    def rest_since(self, now: float, env: Envelope) -> float | None:
        """Since when the belt is known to be at rest; None if it is or may be moving.

        Rest is seen, never assumed: only readings taken after the last Stop/Pause count
        (zero_since is cleared when one is sent), and before any reading the belt is unknown.
        """
        if self.command is BeltCommand.RUN:
            return None
        m = self.measured
        if m is not None and m <= ZERO_KMH and self.zero_since is not None:
            return self.zero_since
        accepted = self.rest_cmd_accepted_t
        if self.command is BeltCommand.NONE or accepted is None:
            return None
        if m is None or self.last_speed_t is None:
            # Never reported any speed: a machine silent when stopped, or a moving belt whose
            # notifications are not arriving. Only a long silence tells them apart.
            if now - accepted >= NEVER_REPORTED_REST_S - EPS:
                return accepted + NEVER_REPORTED_REST_S
            return None
        if self.seen_zero:
            return None  # it reports 0 when still: silence here is a drop-out, not rest
        if m > env.start_speed_kmh + env.speed_tolerance_kmh:
            return None
        # Stop/Pause accepted at a slow speed, then silence: the "silent when stopped" quirk.
        # It counts once even the slowest motor would have stopped from the last reading;
        # any later frame moves last_speed_t, so a stray frame resets the dwell.
        dwell = max(SILENCE_S, m / SLOWEST_DECEL_KMH_S)
        if self.countdown_zero:
            # It sent 0 once (in a countdown): it may be a machine that reports 0 when still
            # whose notifications dropped out. Wait as long as for a machine never heard.
            dwell = max(dwell, NEVER_REPORTED_REST_S)
        rest_t = max(self.last_speed_t, accepted) + dwell
        return rest_t if now >= rest_t - EPS else None

    def awaiting_silent_rest(self, env: Envelope) -> bool:
        """A Stop/Pause was accepted and the belt has gone quiet in a way rest_since will
        count as rest once the silence has lasted (nothing read yet, or a slow last reading
        from a machine that never reports 0): waiting is all there is to do."""
        if not self.resting() or self.rest_cmd_accepted_t is None:
            return False
        if self.measured is None or self.last_speed_t is None:
            return True
        return not self.seen_zero and (
            self.measured <= env.start_speed_kmh + env.speed_tolerance_kmh
        )

    # ------------------------------------------------------------ incline

    def incline_basis(self) -> float | None:
        if self.commanded_incline is not None:
            return self.commanded_incline
        return self.measured_incline

    def incline_settled(self, now: float, env: Envelope) -> bool:
        commanded = self.commanded_incline
        if commanded is None:
            return True
        since = now - self.last_incline_cmd_t
        if since >= INCLINE_SETTLE_TIMEOUT_S:
            return True
        if self.incline_reported and self.measured_incline is not None:
            return (
                self.measured_incline_t > self.last_incline_cmd_t
                and abs(self.measured_incline - commanded) <= env.incline_tolerance_pct
            )
        start = self.incline_from if self.incline_from is not None else 0.0
        return since >= abs(commanded - start) * INCLINE_S_PER_PCT

    def incline_above_cap(self, env: Envelope) -> bool:
        cap = env.incline_cap_pct
        if cap is None:
            return False
        m = self.measured_incline if self.incline_reported else self.commanded_incline
        return m is not None and m > cap + env.incline_tolerance_pct

    def assume_deck_at_top(self, limits: MachineLimits, was_unknown: bool) -> None:
        """A levelling command to a deck that never reported: assume it starts at the top of
        the range and give the motor the time it would need from there."""
        if was_unknown and not self.incline_reported:
            self.incline_from = limits.incline_max_pct

    # ------------------------------------------------------------ commands

    def resting(self) -> bool:
        return self.command in (BeltCommand.STOP, BeltCommand.PAUSE)

    def record_sent(self, command: Command, now: float) -> tuple[float, float | None] | None:
        """Record an approved command; returns what to restore if it is voided (setpoints)."""
        match command:
            case StopCmd() | PauseCmd():
                already_resting = self.resting()
                self.command = (
                    BeltCommand.STOP if isinstance(command, StopCmd) else BeltCommand.PAUSE
                )
                self.commanded = 0.0
                if not already_resting:
                    # Rest must be seen after this command: older zeros (a start countdown,
                    # readings before a drop-out) prove nothing about the belt from now on.
                    self.rest_cmd_t = now
                    self.rest_cmd_accepted_t = None
                    self.zero_since = None
            case StartResume():
                self.command = BeltCommand.RUN
                self.run_cmd_t = now
                self.speed_confirmed = False
                self.moved_since_run = False
            case SetTargetSpeed(kmh=kmh):
                undo = (self.commanded, None)
                if kmh < self.commanded - EPS:
                    self.last_down_t = now
                    self.last_down_emit_t = now
                self.commanded = kmh
                self.last_speed_cmd_t = now
                self.speed_confirmed = False
                return undo
            case SetTargetIncline(pct=pct):
                undo_incline = (math.nan, self.commanded_incline)
                self.incline_from = (
                    self.commanded_incline
                    if self.commanded_incline is not None
                    else self.measured_incline
                )
                self.commanded_incline = pct
                self.last_incline_cmd_t = now
                return undo_incline
            case _:
                pass
        return None

    def record_accepted(self, command: Command, now: float) -> None:
        match command:
            case StopCmd():
                if self.command is BeltCommand.STOP and self.rest_cmd_accepted_t is None:
                    self.rest_cmd_accepted_t = now
            case PauseCmd():
                if self.command is BeltCommand.PAUSE and self.rest_cmd_accepted_t is None:
                    self.rest_cmd_accepted_t = now
            case SetTargetSpeed():
                # Pacing counts from the answer, not the approval: a treadmill that answers
                # late must not get the next step sooner than one that answers at once.
                if self.last_down_t == self.last_speed_cmd_t:
                    self.last_down_t = now
                self.last_speed_cmd_t = now
            case SetTargetIncline():
                self.last_incline_cmd_t = now
            case _:
                pass

    def undo(self, command: Command, undo: tuple[float, float | None] | None) -> None:
        """A voided setpoint never reached the belt: believe what we believed before it."""
        if undo is None or self.command is not BeltCommand.RUN:
            return
        speed, incline = undo
        if isinstance(command, SetTargetSpeed):
            self.commanded = speed
        elif isinstance(command, SetTargetIncline):
            self.commanded_incline = incline

    def follow_console_pause(self, now: float) -> None:
        """Paused at the console: the belt rests as if we had sent (and it accepted) Pause."""
        self.command = BeltCommand.PAUSE
        self.rest_cmd_t = now
        self.rest_cmd_accepted_t = now
        self.commanded = 0.0

    def take_over_moving(self, now: float, env: Envelope, limits: MachineLimits) -> None:
        """A belt found running (started at the console): treat it as ours, at its speed, so
        that the ramp down can slow it to a stop."""
        m = self.measured or 0.0
        self.command = BeltCommand.RUN
        self.run_cmd_t = now
        self.moved_since_run = True  # it is moving: later zeros are not a countdown
        self.commanded = min(
            max(snap_down(m, env.speed_min_kmh, env.speed_step_kmh), env.speed_min_kmh),
            limits.speed_max_kmh,
        )
        self.last_down_t = self.last_down_emit_t = now
        self.speed_confirmed = False

    def fail_safe(self) -> None:
        self.command = BeltCommand.STOP
        self.commanded = 0.0
