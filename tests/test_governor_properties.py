"""Property tests: long random sessions against a simple belt model, checked for invariants."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from safety import (
    HARD_BACKWARD_INCLINE_PCT,
    HARD_BACKWARD_SPEED_CAP_KMH,
    ApprovedCommand,
    Command,
    CommandAccepted,
    CommandFailed,
    ConfirmTurned,
    EmergencyStop,
    Ended,
    EndSession,
    Governor,
    GovernorState,
    LinkLost,
    MachineLimits,
    MachineStatus,
    Notice,
    Orientation,
    OrientationChanged,
    Pause,
    PauseCmd,
    RequestControl,
    Resume,
    SafetyConfig,
    SetIncline,
    SetSpeed,
    SetTargetIncline,
    SetTargetSpeed,
    Start,
    StartResume,
    StatusKind,
    StepIncline,
    StepSpeed,
    StopBelt,
    StopCmd,
    Telemetry,
    Tick,
    TurnAround,
    TurnAroundReady,
    envelope_for,
)

BACK = Orientation.BACKWARD
FWD = Orientation.FORWARD
S = GovernorState
EPS = 1e-6
ZERO = 0.05  # what the governor calls "belt at 0"
MOTION = 0.1

MACHINES = [
    MachineLimits(0.5, 16.0, 0.1, 0.0, 12.0, 0.5),
    MachineLimits(1.0, 12.0, 0.5, -3.0, 15.0, 1.0),
    MachineLimits(0.8, 20.0, 0.1, 0.0, 0.0, 0.0, incline_supported=False),
    MachineLimits(0.3, 6.0, 0.05, 0.0, 6.0, 0.5),
]
CONFIGS = [
    SafetyConfig(),
    # Short limits so that random sessions reach them.
    SafetyConfig(
        backward_speed_cap_kmh=2.0,
        backward_ramp_up_kmh_per_s=0.05,
        max_backward_bout_s=20,
        max_backward_session_s=45,
        heart_rate_cap_bpm=150,
        heart_rate_grace_s=5,
    ),
    SafetyConfig(
        backward_incline_unlocked=True,
        backward_incline_cap_pct=5.0,
        forward_speed_cap_kmh=8.0,
        turnaround_dwell_s=5.0,
        stale_alarm_s=1.0,
        stale_stop_s=3.0,
    ),
    SafetyConfig(backward_speed_cap_kmh=HARD_BACKWARD_SPEED_CAP_KMH),
]

FAULTS = (
    "ignore_speed",  # accepts SetTargetSpeed and ignores it
    "ignore_stop",  # accepts Stop and keeps running
    "runaway",  # speeds up by itself
    "overshoot",  # settles 0.2 km/h above the target
    "reads_high",  # runs steadily 0.45 km/h faster than asked
    "silent_when_stopped",  # no telemetry while the belt is at 0
    "silent_after_stop",  # no telemetry once stopped or paused, even while still slowing
    "report_while_paused",  # keeps reporting its last speed while paused
    "resume_old_speed",  # Resume goes back to the old speed, not the minimum
    "slow",  # 0.3 km/h per s instead of 1.5
    "no_incline_report",
)


def _valid_speed(x):
    return isinstance(x, int | float) and math.isfinite(x) and x >= 0


def _unwrap(c):
    return c.command if isinstance(c, ApprovedCommand) else c


# ------------------------------------------------------------------ invariants


@dataclass
class Checker:
    """Checks every handle() result against the safety invariants, independently of the
    governor's own bookkeeping (it only reads the events, the outputs and public state)."""

    limits: MachineLimits
    config: SafetyConfig
    t0: float = 0.0
    ended: bool = False
    control_lost: bool = False
    ever_started: bool = False
    run_since: float | None = None  # StartResume approved and no Stop/Pause since
    moving_seen: bool = False
    last_speed_cmd: tuple[float, float] | None = None
    last_speed_cmd_t: float = -math.inf
    last_down_t: float = -math.inf
    last_incline_cmd_t: float = -math.inf
    last_telemetry_t: float | None = None
    readings: list[tuple[float, float]] = field(default_factory=list)
    last_stop_t: float | None = None
    # The belt told to rest (Stop or Pause, and no StartResume since) and when the machine first
    # accepted that: a Stop sent to a belt already paused adds no evidence, and needs none.
    resting: bool = False
    rest_accepted_t: float | None = None
    ready_seen: bool = False
    ended_notices: int = 0
    stop_failures: int = 0
    retry_stops: int = 0
    orientation: Orientation = FWD
    orientation_since: float = -math.inf  # its speed cap applies from then on
    commands: int = 0
    rest_run_low: float | None = None  # lowest reading of the current run above the margin
    was_at_rest: bool = False
    lag_since: float | None = None
    heart_rate: int | None = None
    increases: int = 0
    turns: int = 0
    top_backward_kmh: float = 0.0
    start_asked: bool = False  # a Start/Resume request since the last StartResume
    control_asked: bool = False  # a Start, Resume or TurnAround: control may be requested
    control_granted: bool = False  # a RequestControl was ever accepted
    # What a refused StartResume takes back: the belt never started, so it is as before.
    before_start: tuple[bool, bool, float | None] = (False, False, None)

    def env(self, orientation):
        return envelope_for(self.limits, self.config, orientation)

    def observe(self, event, out, g):
        t = g.now
        assert g.internal_errors == 0, "handle() hit its fail-safe"
        assert all(isinstance(o, ApprovedCommand | Notice) for o in out)
        was_ended = self.ended
        started_before = self.ever_started
        self._take_inputs(event, t)
        commands = [o.command for o in out if isinstance(o, ApprovedCommand)]
        self.commands += len(commands)
        # One command per call at most, so speed and incline never share an output.
        assert len(commands) <= 1, commands
        if isinstance(event, EmergencyStop):
            assert isinstance(out[0], ApprovedCommand) and out[0].command == StopCmd()
        if was_ended:
            # Nothing but Stop; and, for a Stop refused before control was ever held, the one
            # Request Control that lets it through (never after control was lost).
            assert all(
                isinstance(c, StopCmd)
                or (isinstance(c, RequestControl) and not self.control_granted
                    and not self.control_lost)
                for c in commands
            ), commands
            if isinstance(event, Tick) and commands and self.last_stop_t is not None:
                # Stop until still: re-sent, but with back-off, never in a burst.
                self.retry_stops += len(commands)
                assert t - self.last_stop_t >= 0.25 - EPS, "Stop re-sent too fast"
        if isinstance(event, Start | Resume):
            self.start_asked = True
        if isinstance(event, Start | Resume | TurnAround):
            # A turn may need control too: to slow a belt started at the console, or to
            # level the deck for walking backward.
            self.control_asked = True
        if self.control_lost:
            # Nothing once control is gone, but the one Stop attempted on the event itself.
            one_stop = isinstance(event, MachineStatus) and commands == [StopCmd()]
            assert not commands or isinstance(event, EmergencyStop) or one_stop, (
                event,
                commands,
            )
        for c in commands:
            self._check_command(event, c, t, g)
        for o in out:
            if isinstance(o, TurnAroundReady):
                self.ready_seen = True
            elif isinstance(o, OrientationChanged):
                self._check_turn(event, t)
            elif isinstance(o, Ended):
                self.ended_notices += 1
                self.ended = True
        assert self.ended_notices <= 1
        assert (g.state is S.ENDED) == self.ended
        if g.orientation is not self.orientation:
            changed = any(isinstance(o, OrientationChanged) for o in out)
            # The first Start of a session chooses the direction; after that only a turn.
            assert changed or not started_before, "orientation changed without a turn"
            self.orientation = g.orientation
            self.orientation_since = t
        if g.state in (S.IDLE, S.PAUSED, S.STOPPED, S.AWAITING_TURN, S.ENDED):
            self.run_since = None
            self.last_speed_cmd = None
        if self.run_since is not None:
            # Told to run and silent for longer than stale_stop_s: the session must be over.
            heard = max(self.run_since, self.last_telemetry_t or -math.inf)
            assert t - heard <= self.config.stale_stop_s + EPS, "watchdog did not stop"
        if g.state is not S.ENDED:
            self._check_over_cap(t, g)
            self._check_not_obeying(event, t, g)
        if g.orientation is BACK:
            assert g.target_speed_kmh <= self.config.backward_speed_cap_kmh + EPS
            if g.state is S.RUNNING:
                assert g.backward_bout_s < self.config.max_backward_bout_s + EPS
                assert g.backward_total_s < self.config.max_backward_session_s + EPS

    def _check_not_obeying(self, event, t, g):
        margin = self.config.disobey_margin_kmh
        reading = event.speed_kmh if isinstance(event, Telemetry) else None
        # A reading belongs to the rest period if we were already told to rest before it.
        at_rest, self.was_at_rest = (
            self.was_at_rest,
            (self.run_since is None and g.state in (S.PAUSED, S.STOPPED, S.AWAITING_TURN)),
        )
        if at_rest and _valid_speed(reading):
            # Told to rest, and the belt speeds up by >= 0.2 km/h within a run above the margin.
            if reading > margin + EPS:
                low = reading if self.rest_run_low is None else min(self.rest_run_low, reading)
                self.rest_run_low = low
                assert reading < low + 0.2 - EPS, "rising when not asked, and still live"
            else:
                self.rest_run_low = None
        elif not at_rest:
            self.rest_run_low = None
        # Not slowing down when asked, for much longer than the window.
        controlled = g.state in (S.RUNNING, S.STOPPING) and self.last_speed_cmd is not None
        if controlled and _valid_speed(reading):
            if reading > self.last_speed_cmd[1] + margin + EPS:
                self.lag_since = t if self.lag_since is None else self.lag_since
            else:
                self.lag_since = None
        elif not controlled:
            self.lag_since = None
        if self.lag_since is not None:
            assert t - self.lag_since < self.config.not_slowing_window_s + 1.0, "not slowing"
        # Heart rate far above the cap: no longer simply running.
        cap = self.config.heart_rate_cap_bpm
        hr = self.heart_rate
        if isinstance(event, Telemetry) and cap is not None and hr is not None:
            hard = cap + self.config.heart_rate_hard_margin_bpm
            assert hr <= hard or g.state is not S.RUNNING, "heart rate far above the cap"

    def _check_over_cap(self, t, g):
        # Rule 7: readings above cap + margin for the whole window end the session.
        limit = self.env(g.orientation).speed_cap_kmh + self.config.disobey_margin_kmh
        run_start = None
        for ts, v in reversed(self.readings):
            if v <= limit + EPS or ts < self.orientation_since - EPS:
                break  # (a belt over the backward cap before the Start chose backward is row 18's)
            run_start = ts
        if run_start is not None:
            assert t - run_start < self.config.disobey_window_s + EPS, "over the cap too long"

    def _take_inputs(self, event, t):
        match event:
            case Telemetry(speed_kmh=v) if _valid_speed(v):
                hr = event.heart_rate_bpm
                if isinstance(hr, int) and 0 < hr < 255:
                    self.heart_rate = hr
                self.readings.append((t, v))
                self.last_telemetry_t = t
                if self.run_since is not None and v >= MOTION:
                    self.moving_seen = True
            case CommandAccepted(command=c) if _unwrap(c) == RequestControl():
                self.control_granted = True
            case CommandAccepted(command=c) if _unwrap(c) in (StopCmd(), PauseCmd()):
                if self.resting and self.rest_accepted_t is None:
                    self.rest_accepted_t = t
            case CommandFailed(command=c) if _unwrap(c) == StopCmd():
                self.stop_failures += 1
            case CommandFailed(command=c) if _unwrap(c) == StartResume() and (
                self.run_since is not None  # (a Stop or Pause since has its own rest)
            ):
                # Refused: the belt was not started, so no Stop is owed before a turn (and if
                # it starts anyway, "rising when not asked" is checked as at any rest).
                self.ever_started, self.resting, self.rest_accepted_t = self.before_start
                self.run_since = None
            case MachineStatus(kind=StatusKind.CONTROL_LOST | StatusKind.RESET) | LinkLost():
                self.control_lost = True
            case _:
                pass

    def _check_command(self, event, c: Command, t, g):
        match c:
            case RequestControl():
                # For what the person asked for; or, once, for a Stop that was refused before
                # the app ever held control (a belt started at the console), never after loss.
                for_the_stop = (self.stop_failures > 0 and not self.control_granted
                                and not self.control_lost)
                assert self.control_asked or for_the_stop, (
                    "control only for what the person asked for")
            case StartResume():
                # Never by itself: only for a Start/Resume the person asked for.
                assert self.start_asked, "StartResume without a Start or Resume"
                self.start_asked = False
                self.before_start = (self.ever_started, self.resting, self.rest_accepted_t)
                self.ever_started = True
                self.run_since = t
                self.resting = False
                self.rest_accepted_t = None
                self.moving_seen = False
                self.last_speed_cmd = None
                self.ready_seen = False
            case SetTargetSpeed(kmh=kmh):
                self._check_speed(kmh, t, g)
            case SetTargetIncline(pct=pct):
                if self.run_since is None or not self.moving_seen:
                    # Not walking: only levelling the deck (before a start or a turn).
                    assert pct <= self.config.backward_incline_cap_effective_pct + EPS
                if g.orientation is BACK:
                    cap = self.config.backward_incline_cap_effective_pct
                    assert -EPS <= pct <= min(cap, HARD_BACKWARD_INCLINE_PCT) + EPS
                assert t - self.last_speed_cmd_t >= self.config.speed_incline_gap_s - EPS
                self.last_incline_cmd_t = t
            case StopCmd():
                self.run_since = None
                self.last_speed_cmd = None
                self.last_stop_t = t
                self.ready_seen = False
                self._begin_rest()
            case PauseCmd():
                self.run_since = None
                self.last_speed_cmd = None
                self._begin_rest()
            case _:
                raise AssertionError(f"unknown command {c!r}")

    def _begin_rest(self):
        if not self.resting:
            self.resting = True
            self.rest_accepted_t = None

    def _check_speed(self, kmh, t, g):
        env = self.env(g.orientation)
        assert g.state in (S.RUNNING, S.STOPPING)
        if self.run_since is None and g.state is S.STOPPING:
            # A belt started at the console, slowed down: decreases from what it reads only.
            assert self.readings and kmh <= max(v for _, v in self.readings[-3:]) + EPS
            self.last_speed_cmd = (t, kmh)
            self.last_speed_cmd_t = t
            return
        assert self.limits.speed_min_kmh - EPS <= kmh <= env.speed_cap_kmh + EPS
        if g.orientation is BACK:
            assert kmh <= self.config.backward_speed_cap_kmh + EPS
            assert kmh <= HARD_BACKWARD_SPEED_CAP_KMH + EPS
        # Never a speed to a belt we have not seen moving since the last StartResume.
        assert self.run_since is not None and self.moving_seen
        assert t - self.last_incline_cmd_t >= self.config.speed_incline_gap_s - EPS
        if self.last_speed_cmd is None:
            assert kmh <= env.start_speed_kmh + EPS, "the first speed after a start is slow"
        else:
            pt, pk = self.last_speed_cmd
            step = self.limits.speed_step_kmh
            if kmh > pk + EPS:
                self.increases += 1
                assert kmh - pk <= step + EPS, "one increment at a time"
                tol = env.speed_tolerance_kmh + EPS
                assert any(pt < ts and abs(v - pk) <= tol for ts, v in self.readings), (
                    "the next step only after telemetry confirmed the last"
                )
                assert t - pt >= env.up_interval_s - EPS, "no faster than the ramp rate"
                fresh = self.last_telemetry_t is not None
                assert fresh and t - self.last_telemetry_t <= self.config.stale_alarm_s + EPS
            elif kmh < pk - EPS:
                # One increment, or more for a treadmill that answers late (the ramp keeps
                # its rate), never more than one key press's worth.
                assert pk - kmh <= max(step, self.config.max_step_per_request_kmh) + EPS
                assert t - self.last_down_t >= env.down_interval_s - EPS
                self.last_down_t = t
        self.last_speed_cmd = (t, kmh)
        self.last_speed_cmd_t = t
        if g.orientation is BACK:
            self.top_backward_kmh = max(self.top_backward_kmh, kmh)

    def _check_turn(self, event, t):
        assert isinstance(event, ConfirmTurned), "a turn only on the person's confirmation"
        self.turns += 1
        assert self.ready_seen, "TurnAroundReady must come first"
        dwell = self.config.turnaround_dwell_s
        if self.ever_started:
            assert self.run_since is None and self.last_stop_t is not None
        assert all(v <= ZERO for ts, v in self.readings if ts > t - dwell + EPS)
        if not self.readings:
            assert (not self.ever_started and t - self.t0 >= dwell - EPS) or (
                self.rest_accepted_t is not None and self.rest_accepted_t <= t - dwell + EPS
            )
            return
        last_t, last_v = self.readings[-1]
        if last_v > ZERO:
            # Stopped and silent: told to rest and accepted, last reading slow, silent since.
            assert last_t <= t - dwell + EPS
            assert self.resting, "silence counts as rest only after a Stop or Pause"
            assert self.rest_accepted_t is not None and self.rest_accepted_t <= t - dwell + EPS
            env = self.env(self.orientation)
            assert last_v <= env.start_speed_kmh + env.speed_tolerance_kmh + EPS
        else:
            first_zero = last_t
            for ts, v in reversed(self.readings):
                if v > ZERO:
                    break
                first_zero = ts
            assert first_zero <= t - dwell + EPS


# ------------------------------------------------------------------ the belt


@dataclass
class Belt:
    """A treadmill belt: follows the last accepted target at a finite acceleration."""

    limits: MachineLimits
    faults: set[str] = field(default_factory=set)
    speed: float = 0.0
    target: float = 0.0
    mode: str = "stopped"  # stopped | running | paused
    incline: float = 0.0
    incline_target: float = 0.0
    last_running_speed: float = 0.0

    def apply(self, c: Command) -> None:
        match c:
            case StartResume():
                old = self.mode == "paused" and "resume_old_speed" in self.faults
                self.mode = "running"
                self.target = self.last_running_speed if old else self.limits.speed_min_kmh
            case SetTargetSpeed(kmh=kmh) if self.mode == "running":
                if "ignore_speed" not in self.faults:
                    self.target = kmh
            case StopCmd() if "ignore_stop" not in self.faults:
                self.mode, self.target = "stopped", 0.0
            case PauseCmd():
                self.mode, self.target = "paused", 0.0
            case SetTargetIncline(pct=pct):
                self.incline_target = pct
            case _:
                pass

    def advance(self, dt: float) -> None:
        if self.mode == "running":
            self.last_running_speed = self.speed
            if "runaway" in self.faults:
                self.target += 0.5 * dt
        goal = self.target
        if self.target > 0:
            goal += 0.2 if "overshoot" in self.faults else 0.0
            goal += 0.45 if "reads_high" in self.faults else 0.0
        rate = 0.3 if "slow" in self.faults else 1.5
        if self.speed < goal:
            self.speed = min(goal, self.speed + rate * dt)
        else:
            self.speed = max(goal, self.speed - rate * dt)
        if self.incline < self.incline_target:
            self.incline = min(self.incline_target, self.incline + dt)
        else:
            self.incline = max(self.incline_target, self.incline - dt)

    def reading(self) -> tuple[float | None, float | None]:
        if self.speed <= 0.0 and "silent_when_stopped" in self.faults:
            return None, None
        if self.mode != "running" and "silent_after_stop" in self.faults:
            return None, None
        speed = self.speed
        if self.mode == "paused" and "report_while_paused" in self.faults:
            speed = self.last_running_speed
        incline = None if "no_incline_report" in self.faults else round(self.incline, 1)
        if not self.limits.incline_supported:
            incline = None
        return round(speed, 2), incline


@dataclass
class Runner:
    """Plays the session runner: sends approved commands, reports answers and telemetry."""

    g: Governor
    belt: Belt
    checker: Checker
    t: float = 0.0
    pending: list[Command] = field(default_factory=list)
    link_up: bool = True
    hold_acks: bool = False
    reject: bool = False
    heart_rate: int | None = None

    def send(self, event):
        out = self.g.handle(event)
        self.checker.observe(event, out, self.g)
        self.pending += [o.command for o in out if isinstance(o, ApprovedCommand)]
        return out

    def answer(self):
        if self.hold_acks and self.link_up:
            return
        todo, self.pending = self.pending, []
        for c in todo:
            if self.reject or not self.link_up:
                self.send(CommandFailed(self.t, c, "operation failed"))
            else:
                self.belt.apply(c)
                self.send(CommandAccepted(self.t, c))

    def step(self, dt: float, *, telemetry: bool = True) -> None:
        self.t = round(self.t + dt, 6)
        self.answer()
        self.belt.advance(dt)
        if telemetry and self.link_up:
            speed, incline = self.belt.reading()
            if speed is not None:
                self.send(Telemetry(self.t, speed, incline, self.heart_rate))
        self.send(Tick(self.t))

    def act(self, action) -> None:
        kind = action[0]
        match kind:
            case "step":
                self.step(action[1])
            case "gap":  # silence: time passes, no telemetry
                for _ in range(int(action[1] / 0.25)):
                    self.step(0.25, telemetry=False)
            case "glitch":  # one stray 0 km/h frame
                if self.link_up:
                    last = self.checker.readings[-1][1] if self.checker.readings else 0.0
                    running = self.g.state is S.RUNNING and last > ZERO
                    before = self.g.measured_speed_kmh
                    out = self.send(Telemetry(self.t, 0.0))
                    if running:  # a lone zero (after a non-zero one) while running: no stop,
                        # no notice, no state change, not believed (a due ramp step may go)
                        assert all(
                            isinstance(o, ApprovedCommand)
                            and isinstance(o.command, SetTargetSpeed | SetTargetIncline)
                            for o in out
                        )
                        assert self.g.state is S.RUNNING
                        assert self.g.measured_speed_kmh == before
            case "request":
                self.send(action[1](self.t))
            case "status":
                self.send(MachineStatus(self.t, action[1], action[2]))
            case "fault":
                self.belt.faults ^= {action[1]}
            case "hold_acks":
                self.hold_acks = not self.hold_acks
            case "reject":
                self.reject = not self.reject
            case "heart_rate":
                self.heart_rate = action[1]
            case "turn":  # the whole protocol, as a person would do it
                self.send(TurnAround(self.t))
                for _ in range(400):
                    if self.g.turn_ready or (
                        self.g.state is not S.STOPPING and self.g.state is not S.AWAITING_TURN
                    ):
                        break
                    self.step(0.25)
                self.send(ConfirmTurned(self.t))
                self.send(Start(self.t, self.g.orientation))
            case "link_lost":
                if self.link_up:
                    self.link_up = False
                    self.send(LinkLost(self.t))


# ------------------------------------------------------------------ strategies

speeds = st.floats(-1.0, 9.0, allow_nan=False)
requests = st.one_of(
    st.sampled_from([BACK, FWD]).map(lambda o: lambda t: Start(t, o)),
    speeds.map(lambda v: lambda t: SetSpeed(t, v)),
    st.integers(-12, 12).map(lambda n: lambda t: StepSpeed(t, n)),
    st.floats(-5.0, 16.0, allow_nan=False).map(lambda p: lambda t: SetIncline(t, p)),
    st.integers(-3, 3).map(lambda n: lambda t: StepIncline(t, n)),
    st.sampled_from([Pause, Resume, StopBelt, TurnAround, ConfirmTurned]).map(
        lambda cls: lambda t: cls(t)
    ),
)
rare_requests = st.sampled_from([EmergencyStop, lambda t: EndSession(t, "done")])


def weighted(*pairs):
    """One of the strategies, picked with the given weights (shrinks towards the first).

    Hypothesis favours the ends of an integer range, so the last pair is repeated at the
    front-most and back-most ends should both be benign: callers put "step" first and last.
    """
    total = sum(w for w, _ in pairs)

    def pick(n):
        for w, strategy in pairs:
            if n < w:
                return strategy
            n -= w
        raise AssertionError

    return st.integers(0, total - 1).flatmap(pick)


# Harmless status codes are common; session-ending ones rare, so sessions get somewhere.
harmless_status = st.sampled_from(
    [
        StatusKind.UNKNOWN,
        StatusKind.TARGET_SPEED_CHANGED,
        StatusKind.TARGET_INCLINE_CHANGED,
        StatusKind.STARTED_BY_USER,
        StatusKind.STOPPED_BY_USER,
        StatusKind.PAUSED_BY_USER,
    ]
)
status_value = st.none() | st.floats(-1.0, 10.0, allow_nan=False)
actions = weighted(
    (1000, st.tuples(st.just("step"), st.floats(0.05, 1.0))),
    (250, st.tuples(st.just("request"), requests)),
    (8, st.tuples(st.just("gap"), st.floats(1.0, 7.0))),
    (20, st.tuples(st.just("glitch"))),
    (8, st.tuples(st.just("fault"), st.sampled_from(FAULTS))),
    (15, st.tuples(st.just("status"), harmless_status, status_value)),
    (2, st.tuples(st.just("status"), st.sampled_from(list(StatusKind)), status_value)),
    (10, st.tuples(st.just("heart_rate"), st.none() | st.integers(0, 200))),
    (5, st.tuples(st.just("turn"))),
    (4, st.tuples(st.sampled_from(["hold_acks", "reject"]))),
    (2, st.tuples(st.just("request"), rare_requests)),
    (1, st.tuples(st.just("link_lost"))),
    (100, st.tuples(st.just("step"), st.floats(0.05, 1.0))),
)

# GOVERNOR_EXAMPLES=5000 for a deep run; the default keeps the suite fast.
EXAMPLES = int(os.environ.get("GOVERNOR_EXAMPLES", "150"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _record(runner):
    """Label the example for --hypothesis-show-statistics: how far did it get?"""
    g, c = runner.g, runner.checker
    event(f"final state: {g.state}, ended: {g.ended_reason}")
    event(f"commands sent: {'>50' if c.commands > 50 else '11-50' if c.commands > 10 else '<=10'}")
    event(f"ramp-up steps: {'>10' if c.increases > 10 else '1-10' if c.increases else '0'}")
    if c.turns:
        event("turned around")
    if c.top_backward_kmh >= 1.5:
        event("walked backward at >= 1.5 km/h")


def _session(machine, config, orientation):
    g = Governor(machine, config)
    checker = Checker(machine, config)
    runner = Runner(g, Belt(machine), checker)
    # Most sessions start walking: random requests alone rarely get a belt going.
    runner.send(Start(0.0, orientation))
    return runner


@SETTINGS
@given(
    machine=st.sampled_from(MACHINES),
    config=st.sampled_from(CONFIGS),
    orientation=st.sampled_from([BACK, FWD]),
    script=st.lists(actions, min_size=50, max_size=400),
)
def test_random_sessions_with_a_belt_keep_every_invariant(machine, config, orientation, script):
    runner = _session(machine, config, orientation)
    for action in script:
        runner.act(action)
    _record(runner)
    # And the big key still works at the end, whatever happened.
    out = runner.send(EmergencyStop(runner.t + 0.01))
    assert out[0].command == StopCmd()


# A "mostly cooperative" session: a program asks for targets, a good belt follows, with
# occasional trouble. These get much further into ramps, turns and limits.
program = weighted(
    (30, st.tuples(st.just("step"), st.floats(0.1, 0.5))),
    (
        10,
        st.tuples(st.just("request"), st.floats(0.5, 5.0).map(lambda v: lambda t: SetSpeed(t, v))),
    ),
    (3, st.tuples(st.just("turn"))),
    (
        4,
        st.tuples(
            st.just("request"),
            st.sampled_from([StopBelt, Pause, Resume, TurnAround, ConfirmTurned]).map(
                lambda cls: lambda t: cls(t)
            ),
        ),
    ),
    (
        2,
        st.tuples(
            st.just("request"), st.sampled_from([BACK, FWD]).map(lambda o: lambda t: Start(t, o))
        ),
    ),
    (4, st.tuples(st.just("request"), st.floats(0, 6).map(lambda p: lambda t: SetIncline(t, p)))),
    (2, st.tuples(st.just("glitch"))),
    (2, st.tuples(st.just("fault"), st.sampled_from(FAULTS))),
    (2, st.tuples(st.just("heart_rate"), st.none() | st.integers(100, 170))),
    (1, st.tuples(st.just("hold_acks"))),
    (5, st.tuples(st.just("step"), st.floats(0.1, 0.5))),
)


@SETTINGS
@given(
    machine=st.sampled_from(MACHINES),
    config=st.sampled_from(CONFIGS),
    orientation=st.sampled_from([BACK, FWD]),
    script=st.lists(st.tuples(program, st.integers(1, 60)), min_size=10, max_size=60),
)
def test_program_like_sessions_keep_every_invariant(machine, config, orientation, script):
    runner = _session(machine, config, orientation)
    for action, repeat in script:
        # Repeat steps so that time actually passes (ramps, dwells, bouts).
        for _ in range(repeat if action[0] == "step" else 1):
            runner.act(action)
    _record(runner)


@SETTINGS
@given(
    machine=st.sampled_from(MACHINES),
    config=st.sampled_from(CONFIGS),
    orientation=st.sampled_from([BACK, FWD]),
    want=st.floats(0.5, 5.0),
    how=st.sampled_from(["turn", "pause then turn", "stop then turn"]),
    faults=st.sets(
        st.sampled_from(
            [
                "silent_when_stopped",
                "silent_after_stop",
                "report_while_paused",
                "slow",
                "ignore_stop",
                "no_incline_report",
            ]
        )
    ),
    hold_acks=st.booleans(),
    stray=st.lists(st.tuples(st.integers(0, 60), st.floats(0.0, 1.5)), max_size=4),
    confirm_every=st.integers(1, 12),
)
def test_turning_around_under_quirks(
    machine, config, orientation, want, how, faults, hold_acks, stray, confirm_every
):
    """Stop, silence, stray frames, unanswered Stops: a turn only with dwell + confirmation."""
    runner = _session(machine, config, orientation)
    g = runner.g
    runner.send(SetSpeed(0.0, want))
    for _ in range(300):
        runner.step(0.25)
        if g.state is S.RUNNING and g.commanded_speed_kmh >= g.target_speed_kmh:
            break
    runner.belt.faults |= faults
    first = {"turn": TurnAround, "pause then turn": Pause, "stop then turn": StopBelt}[how]
    runner.send(first(runner.t))
    if how != "turn":
        runner.step(0.25)
        runner.send(TurnAround(runner.t))
    runner.hold_acks = hold_acks
    stray_at = dict(stray)
    for k in range(240):  # 60 s
        runner.step(0.25)
        if k in stray_at and runner.link_up:
            runner.send(Telemetry(runner.t, stray_at[k]))
        if k % confirm_every == 0:
            runner.send(ConfirmTurned(runner.t))
        if g.orientation is not orientation:
            break
    quiet = not ({"ignore_stop", "report_while_paused"} & faults) and not hold_acks
    event(f"turned: {g.orientation is not orientation}, well-behaved: {quiet and not stray}")
    if quiet and not stray and g.state is not S.ENDED:
        assert g.orientation is orientation.other, "a good belt must let the person turn"


FATAL_EVENTS = {
    "control lost": lambda t: MachineStatus(t, StatusKind.CONTROL_LOST),
    "reset": lambda t: MachineStatus(t, StatusKind.RESET),
    "link lost": LinkLost,
    "safety key": lambda t: MachineStatus(t, StatusKind.SAFETY_KEY),
    "stopped at console": lambda t: MachineStatus(t, StatusKind.STOPPED_BY_USER),
    "emergency stop": EmergencyStop,
}


@SETTINGS
@given(
    machine=st.sampled_from(MACHINES),
    config=st.sampled_from(CONFIGS),
    orientation=st.sampled_from([BACK, FWD]),
    before=st.lists(st.tuples(program, st.integers(1, 30)), min_size=1, max_size=20),
    fatal=st.sampled_from(sorted(FATAL_EVENTS)),
    after=st.lists(st.tuples(program, st.integers(1, 30)), min_size=1, max_size=20),
)
def test_after_a_session_ending_event_nothing_restarts(
    machine, config, orientation, before, fatal, after
):
    runner = _session(machine, config, orientation)
    for action, repeat in before:
        for _ in range(repeat if action[0] == "step" else 1):
            runner.act(action)
    was_ended = runner.g.state is S.ENDED
    # After our own Stop, "stopped by user" is the machine's echo of it (FTMS does that).
    maybe_echo = runner.g.state in (S.STOPPED, S.AWAITING_TURN) or (
        # a start that sent Stop to see a silent belt at rest first: the echo of that Stop
        runner.g.state is S.STARTING
        and runner.checker.last_stop_t is not None
        and runner.checker.run_since is None
    )
    had_control = runner.g.has_control
    stop_on_its_way = StopCmd() in runner.pending
    if fatal == "link lost":
        runner.act(("link_lost",))
        out = []
    else:
        out = runner.send(FATAL_EVENTS[fatal](runner.t))
    got = [o.command for o in out if isinstance(o, ApprovedCommand)]
    if fatal == "link lost":
        assert got == []  # nothing can reach the belt: the alarm says what to do instead
    elif fatal in ("control lost", "reset"):
        # One Stop attempted anyway (the byte may be garbage), never Request Control. After
        # the end, only the one row 19 promises for a belt not yet seen at rest: never while
        # a Stop is on its way (a garbage byte must not cancel a refused Stop's re-sends).
        if was_ended:
            assert got in ([], [StopCmd()]) and not (got and stop_on_its_way)
        else:
            assert got == [StopCmd()]
    elif fatal == "emergency stop":
        assert got == [StopCmd()]  # always, even after the end and even without control
    elif fatal in ("safety key", "stopped at console") and not was_ended:
        # One Stop to make sure, whenever we hold control (without, it could only fail).
        assert got == ([StopCmd()] if had_control else []) or maybe_echo
    if fatal == "stopped at console" and maybe_echo and runner.g.state is not S.ENDED:
        event("echo of our own stop")
        return
    assert runner.g.state is S.ENDED
    event(f"fatal: {fatal}, state before: {'ended' if was_ended else 'live'}")
    count, retries = runner.checker.commands, runner.checker.retry_stops
    for action, repeat in after:
        for _ in range(repeat if action[0] == "step" else 1):
            runner.act(action)
    # The checker already refuses anything but StopCmd after the end; here: nothing at all
    # but the Stop re-sent on the clock until the belt is still (no EmergencyStop came after).
    assert runner.checker.commands - count == runner.checker.retry_stops - retries


# ------------------------------------------------------------------ chaos: no belt at all

commands = st.one_of(
    st.sampled_from([RequestControl(), StartResume(), StopCmd(), PauseCmd()]),
    st.floats(0, 10, allow_nan=False).map(SetTargetSpeed),
    st.floats(-5, 15, allow_nan=False).map(SetTargetIncline),
)
any_float = st.floats(allow_nan=True, allow_infinity=True) | st.floats(-2.0, 12.0)
chaos_event = st.one_of(
    st.just(lambda t, last: Tick(t)),
    st.tuples(st.none() | any_float, st.none() | any_float, st.none() | st.integers(-5, 300)).map(
        lambda v: lambda t, last: Telemetry(t, *v)
    ),
    st.tuples(st.sampled_from(list(StatusKind)), st.none() | any_float).map(
        lambda v: lambda t, last: MachineStatus(t, *v)
    ),
    commands.map(lambda c: lambda t, last: CommandAccepted(t, c)),
    commands.map(lambda c: lambda t, last: CommandFailed(t, c, "operation failed")),
    st.just(lambda t, last: CommandAccepted(t, last) if last else Tick(t)),
    st.just(lambda t, last: CommandAccepted(t, last) if last else Tick(t)),
    st.just(lambda t, last: CommandFailed(t, last, "timeout") if last else Tick(t)),
    requests.map(lambda r: lambda t, last: r(t)),
    rare_requests.map(lambda r: lambda t, last: r(t)),
    st.just(lambda t, last: LinkLost(t)),
    st.just(lambda t, last: object()),
)


@SETTINGS
@given(
    machine=st.sampled_from(MACHINES),
    config=st.sampled_from(CONFIGS),
    script=st.lists(
        st.tuples(st.sampled_from([0.0, 0.05, 0.1, 0.3, 0.5, 1.0, 2.5, 6.0]), chaos_event),
        min_size=1,
        max_size=200,
    ),
)
def test_chaos_never_raises_and_keeps_every_invariant(machine, config, script):
    g = Governor(machine, config)
    checker = Checker(machine, config)
    t, last = 0.0, None
    for dt, make in script:
        t += dt
        event = make(t, last)
        out = g.handle(event)
        checker.observe(event, out, g)
        approved = [o.command for o in out if isinstance(o, ApprovedCommand)]
        if approved:
            last = approved[-1]
    out = g.handle(EmergencyStop(t))
    assert out[0].command == StopCmd()


# ------------------------------------------------------------------ liveness


@settings(max_examples=max(EXAMPLES // 2, 30), deadline=None)
@given(
    machine=st.sampled_from(MACHINES),
    config=st.sampled_from(CONFIGS[:1] + CONFIGS[2:]),
    orientation=st.sampled_from([BACK, FWD]),
    want=st.floats(0.0, 9.0),
)
def test_a_good_belt_reaches_the_target_then_stops_and_turns(machine, config, orientation, want):
    """Safety must not mean stuck: a cooperative belt gets there in bounded time."""
    runner = _session(machine, config, orientation)
    g = runner.g
    env = envelope_for(machine, config, orientation)
    while g.state is S.STARTING and runner.t < 10:
        runner.step(0.1)
    assert g.state is S.RUNNING
    runner.send(SetSpeed(runner.t, want))
    goal = env.clamp_speed(want)
    up_s = (max(goal - env.start_speed_kmh, 0) / env.ramp_up_kmh_per_s) * 1.3 + 15
    deadline = runner.t + up_s
    while g.commanded_speed_kmh != goal and runner.t < deadline:
        runner.step(0.1)
    assert g.commanded_speed_kmh == goal
    if orientation is BACK:
        assert goal <= config.backward_speed_cap_kmh + EPS
    runner.send(TurnAround(runner.t))
    down_s = (goal - env.start_speed_kmh) / env.ramp_down_kmh_per_s * 1.3 + 15
    deadline = runner.t + down_s + config.turnaround_dwell_s
    while not g.turn_ready and runner.t < deadline:
        runner.step(0.1)
    assert g.turn_ready
    runner.send(ConfirmTurned(runner.t))
    assert g.orientation is orientation.other and g.state is S.STOPPED
