"""Property tests of the whole session, judged on the simulated belt.

SessionRunner + FtmsClient + VirtualTreadmill on simulated time, with random programs,
machine profiles, simulator faults, a belt already moving or tilted, key presses, signals and
a person who takes 2-4 s to turn. Every example is checked on what the simulator's belt
physically did (tests/belt_watch.py samples it every 0.05 s, at every session event and at
every control-point write), not on what we commanded:

1. facing backward on a moving belt: speed <= backward cap + 0.15 km/h, deck <= the backward
   incline limit (0 %, or 5 % unlocked) + 0.5 %;
2. the person turns only with the belt at 0 (at the orientation change and all the time they
   are asked to turn: confirm_needed .. confirmed);
3. after a stop decision (SPACE, "ended", "turn_around", a signal) the belt reaches 0 within
   speed / 0.2 km/h/s + 5 s, unless the machine refused every write for longer (then an
   alarm must have been raised);
4. no Start/Resume reaches the device while the belt moves;
5. when run() returns (or the cancelled task finishes) the belt stops and the machine is not
   left RUNNING;
6. the session ends by itself (does not hang), unless paused at the console;
7. no jump: the belt speeds up no faster than the ramp (0.1 km/h/s backward, 0.3 forward);
8. backward speed increases reach the device >= 1 s apart (per 0.1 km/h), counted on the
   device's own record of writes;
and run() raises only TreadmillError (or CancelledError when cancelled), the governor has no
internal errors.

`SESSION_EXAMPLES=2000` explores deeply (the default keeps the suite fast; CI loads the
derandomized `ci` profile from conftest.py). Each failing rule is reported separately by
hypothesis with its own minimal example (one `assert` line per rule). The plain tests at the
end are regressions for cases found this way.
"""

from __future__ import annotations

import itertools
import os

from belt_watch import (
    OP_START,
    ZERO,
    Outcome,
    Scenario,
    backward_increases,
    check_backward_limits,
    check_backward_pacing,
    check_ends,
    check_errors,
    check_no_start_on_moving_belt,
    check_ramps,
    check_stopped_at_the_end,
    check_stops,
    check_turns_at_rest,
    run_scenario,
    stop_bound_s,
)
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from safety import EndReason
from simulators.profiles import get_profile
from simulators.virtual_time import run_virtual
from treadmill import ftms

EXAMPLES = int(os.environ.get("SESSION_EXAMPLES", "30"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much],
)
MAX_PROGRAM_S = 240.0  # with turn-arounds and the tail, an example stays under ~6 sim minutes

PROFILES = (
    "home", "walking-pad", "gym", "silent-stop", "stray-zeros", "slow-belt",
    "no-incline-report", "coarse-incline", "high-minimum", "no-status",
    "ignores-speed-when-stopped", "disconnects-on-speed-when-stopped",
)
REFUSALS = ("result-unsupported", "result-invalid", "result-failed", "result-not-permitted")


def _tenths(lo: float, hi: float) -> st.SearchStrategy[float]:
    lo_i, hi_i = round(lo * 10), round(hi * 10)
    return st.integers(lo_i, max(lo_i, hi_i)).map(lambda n: n / 10)


def _steps(draw: st.DrawFn, profile: str, unlocked: bool, cap: float) -> tuple:
    prof = get_profile(profile)
    incline = prof.incline
    steps = []
    total = 0.0
    for _ in range(draw(st.integers(1, 5))):
        orientation = draw(st.sampled_from("FB"))
        duration = draw(st.integers(20, 180))
        if orientation == "B":
            # (a machine minimum above the cap: run() must refuse before the belt moves)
            speed = draw(_tenths(prof.speed.minimum, max(prof.speed.minimum,
                                                         min(cap, prof.speed.maximum))))
            top = 5.0 if unlocked else 0.0
        else:
            speed = draw(_tenths(prof.speed.minimum, min(prof.speed.maximum, 8.0)))
            top = 15.0
        pct = 0.0
        if incline is not None and top > 0 and draw(st.booleans()):
            hi = min(top, incline.maximum)
            pct = draw(st.integers(0, round(hi / incline.step))) * incline.step
        steps.append((orientation, duration, speed, pct))
        total += duration
        if total >= MAX_PROGRAM_S:
            break
    return tuple(steps)


def _fault(draw: st.DrawFn, horizon: float) -> str:
    at = draw(st.integers(0, int(horizon)))
    kind = draw(st.sampled_from((
        "delay-indication", "refusal", "drop-notifications", "delay-notifications",
        "packet", "unknown-status", "overshoot", "stop-at-console", "pause-at-console",
        "safety-key",
    )))
    match kind:
        case "delay-indication":
            value = draw(_tenths(0.2, 4.9))
            return f"delay-indication@{at}+{draw(st.integers(1, 40))}={value:g}"
        case "refusal":
            return f"{draw(st.sampled_from(REFUSALS))}@{at}+{draw(_tenths(0.1, 1.0)):g}"
        case "drop-notifications":
            return f"drop-notifications@{at}+{draw(_tenths(0.5, 8.0)):g}"
        case "delay-notifications":
            return (f"delay-notifications@{at}+{draw(st.integers(1, 30))}"
                    f"={draw(_tenths(0.1, 1.5)):g}")
        case "packet":
            name = draw(st.sampled_from(("corrupt-packet", "short-packet", "long-packet")))
            return f"{name}@{at}"
        case "unknown-status":
            # 0x42 is unknown; 0xFF (control lost), 0x01 (reset), 0x02 (stop at the
            # console) and 0x03 (safety key) are garbage that looks like a real status
            code = draw(st.sampled_from((0x42, 0xFF, 0x01, 0x02, 0x03, 0x07)))
            return f"unknown-status@{at}={code:#x}"
        case "overshoot":
            return f"overshoot@{at}={draw(_tenths(0.5, 1.5)):g}"
        case "safety-key":
            return f"safety-key@{at}+{draw(st.integers(1, 20))}"
    return f"{kind}@{at}"


def _press(draw: st.DrawFn, horizon: float) -> tuple[tuple[float, str], ...]:
    at = float(draw(st.integers(1, int(horizon) * 10))) / 10
    key = draw(st.sampled_from(("up", "up", "down", "space", "signal", "space-refused")))
    if key == "space-refused":
        window = draw(_tenths(0.1, 1.0))
        refusal = draw(st.sampled_from(REFUSALS))
        return ((at, f"inject:{refusal}@0+{window:g}"), (at, "space"))
    return ((at, key),)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    profile = draw(st.sampled_from(PROFILES))
    prof = get_profile(profile)
    unlocked = draw(st.booleans())
    cap = draw(st.sampled_from((3.0, 3.0, 2.5, 2.0)))
    steps = _steps(draw, profile, unlocked, cap)
    horizon = sum(s[1] for s in steps) + 40
    pre_speed = pre_incline = 0.0
    match draw(st.sampled_from(("none", "none", "none", "moving", "tilted"))):
        case "moving":
            pre_speed = draw(_tenths(max(3.0, prof.speed.minimum), min(6.0, prof.speed.maximum)))
        case "tilted" if prof.incline is not None:
            pre_incline = float(draw(st.integers(1, int(min(15, prof.incline.maximum)))))
    faults = tuple(_fault(draw, horizon) for _ in range(draw(st.integers(0, 3))))
    presses = tuple(p for _ in range(draw(st.integers(0, 3))) for p in _press(draw, horizon))
    delays = tuple(draw(st.lists(_tenths(2.0, 4.0), min_size=1, max_size=3)))
    return Scenario(
        profile=profile, steps=steps, unlocked=unlocked, backward_cap_kmh=cap, faults=faults,
        pre_speed_kmh=pre_speed, pre_incline_pct=pre_incline, presses=presses,
        confirm_delays_s=delays,
    )


def _why(out: Outcome, problems: list[str]) -> str:
    result = out.result.reason if out.result is not None else repr(out.error)
    return "\n".join([*problems, f"session: {result}", out.timeline(60)])


def _label(out: Outcome) -> None:
    """For --hypothesis-show-statistics."""
    event(f"profile {out.scenario.profile}")
    if out.result is not None:
        event(f"ended: {out.result.reason}")
    else:
        event(f"raised: {type(out.error).__name__}")
    if out.of_type("orientation"):
        event("turned around")
    if any(s.facing == "backward" and s.speed > 1.0 for s in out.samples):
        event("walked backward above 1 km/h")


@SETTINGS
@given(scenarios())
def test_whole_session_is_safe_on_the_belt(scn: Scenario) -> None:
    out = run_virtual(run_scenario(scn))
    _label(out)
    # One assert per rule, so that hypothesis reports (and shrinks) each one separately.
    problems = check_backward_limits(out)
    assert not problems, _why(out, problems)
    problems = check_turns_at_rest(out)
    assert not problems, _why(out, problems)
    problems = check_no_start_on_moving_belt(out)
    assert not problems, _why(out, problems)
    problems = check_stops(out)
    assert not problems, _why(out, problems)
    problems = check_stopped_at_the_end(out)
    assert not problems, _why(out, problems)
    problems = check_ends(out)
    assert not problems, _why(out, problems)
    problems = check_ramps(out)
    assert not problems, _why(out, problems)
    problems = check_backward_pacing(out)
    assert not problems, _why(out, problems)
    problems = check_errors(out)
    assert not problems, _why(out, problems)


# ---- regressions: one plain test per known case, each asserting on the belt ------------------

# Forward 30 s, backward 120 s at 2.5 km/h (ramped from 1.0), forward 30 s: a backward
# ramp-down and turn-around at ~180 s + the ramp. The backward step runs ~60-180 s after start.
BOUT = (("F", 30, 2.5, 0.0), ("B", 120, 2.5, 0.0), ("F", 30, 2.5, 0.0))
IN_BACKWARD_S = 100.0


def _assert_clean(out: Outcome, *checks) -> None:
    for check in checks:
        problems = check(out)
        assert not problems, _why(out, problems)


def _belt_stopped(out: Outcome) -> None:
    assert out.final_speed is not None and out.final_speed <= ZERO, _why(
        out, [f"belt still at {out.final_speed:.2f} km/h at the end"])
    assert not out.final_running, _why(out, ["machine still RUNNING at the end"])


async def test_a_late_answers_still_ramp_down_and_stop():
    """a. Every control-point write answered 3 s late: a backward ramp-down then Stop. The
    belt must reach 0, and the session must not end in ERROR with the belt running."""
    out = await run_scenario(Scenario(steps=BOUT, faults=("delay-indication@0=3",)))
    _assert_clean(out, check_stops, check_stopped_at_the_end, check_errors)
    _belt_stopped(out)
    assert out.result is not None and out.result.reason is not EndReason.ERROR, _why(
        out, ["the session ended in ERROR: 3 s answers are inside the 5 s timeout"])
    assert out.of_type("orientation"), _why(out, ["never turned around to walk backward"])


async def test_a_late_answers_during_the_backward_ramp_down():
    """a'. The same with the late answers (4.9 s) starting while walking backward, just before
    the ramp-down to the turn-around."""
    out = await run_scenario(Scenario(steps=BOUT, faults=("delay-indication@170+60=4.9",)))
    _assert_clean(out, check_stops, check_stopped_at_the_end, check_turns_at_rest,
                  check_errors)
    _belt_stopped(out)
    assert out.result is not None and out.result.reason is not EndReason.ERROR, _why(
        out, ["the session ended in ERROR: 4.9 s answers are inside the 5 s timeout"])


async def test_b_space_during_a_refusal_window_still_stops_the_belt():
    """b. SPACE while the treadmill refuses writes for 0.3 s (the window opens at the press,
    walking backward): Stop must be retried after the window, and the belt must reach 0."""
    out = await run_scenario(Scenario(
        steps=BOUT,
        presses=((IN_BACKWARD_S, "inject:result-failed@0+0.3"), (IN_BACKWARD_S, "space")),
    ))
    press = out.decisions[0][0]
    assert out.speed_at(press) > 1.0, _why(out, ["the belt was not moving at the press"])
    _assert_clean(out, check_stops, check_stopped_at_the_end)
    _belt_stopped(out)


async def test_c_no_backward_walking_on_a_tilted_deck():
    """c. Forward at 15 % then backward (home): the belt never moves while the person faces
    backward with the deck above 0.5 %."""
    out = await run_scenario(Scenario(steps=(("F", 60, 3.0, 15.0), ("B", 60, 2.0, 0.0))))
    assert out.of_type("orientation"), _why(out, ["never turned around"])
    _assert_clean(out, check_backward_limits, check_turns_at_rest)


async def test_d_turn_around_not_ready_while_telemetry_drops_during_the_ramp_down():
    """d. Telemetry drops out while slowing for a turn-around: the turn-around must not be
    declared ready (nor the person asked to turn) while the belt still moves. Silence after
    a Stop is not rest (DESIGN: "Rest is seen, not assumed")."""
    # Slow belt (0.3 km/h/s down): forward 3 km/h, the ramp-down from 30 s sends Stop at
    # ~1 km/h just before 40 s; the belt needs ~3.3 s to stop, telemetry is gone from 40 s.
    out = await run_scenario(Scenario(
        profile="slow-belt",
        steps=(("F", 30, 3.0, 0.0), ("B", 60, 2.0, 0.0)),
        faults=("drop-notifications@40+10",),
    ))
    _assert_clean(out, check_turns_at_rest, check_stops)


async def test_d_turn_around_not_ready_on_a_belt_already_moving():
    """d'. A belt already moving at 3 km/h when a backward-first session starts: the
    turn-around must not be declared ready while it moves."""
    out = await run_scenario(Scenario(steps=(("B", 60, 2.0, 0.0),), pre_speed_kmh=3.0))
    _assert_clean(out, check_turns_at_rest, check_backward_limits)


async def test_e_no_start_on_a_belt_already_running():
    """e. Console started at 6 km/h before a forward session: no StartResume while the belt
    moves, and no jump."""
    out = await run_scenario(Scenario(steps=(("F", 60, 3.0, 0.0),), pre_speed_kmh=6.0))
    _assert_clean(out, check_no_start_on_moving_belt, check_ramps, check_stops,
                  check_stopped_at_the_end)
    starts = [t for t, d in out.control_log if d[:1] == bytes([OP_START])]
    moving = [w for w in out.writes if w.data[:1] == bytes([OP_START]) and w.speed > ZERO]
    assert not moving, _why(out, [f"StartResume at {starts} on a moving belt"])


async def test_e_backward_first_on_a_running_belt_does_not_hang():
    """e'. Console started at 6 km/h before a backward-first program: the session must slow
    the belt to a stop and proceed, or end with a clear reason, in bounded time."""
    scn = Scenario(steps=(("B", 60, 2.0, 0.0),), pre_speed_kmh=6.0)
    out = await run_scenario(scn)
    _assert_clean(out, check_ends, check_stops, check_stopped_at_the_end,
                  check_no_start_on_moving_belt, check_turns_at_rest, check_backward_limits)
    assert not out.hung, _why(out, [f"run() had not ended after {scn.planned_s:.0f} s"])


async def test_f_backward_ramp_steps_are_not_compressed_by_late_answers():
    """f. Answers 0.6 s late: consecutive backward speed increases reach the treadmill at
    least 1 s apart (the ramp counts from the write and its answer, not the approval)."""
    out = await run_scenario(Scenario(steps=(("F", 30, 2.0, 0.0), ("B", 90, 3.0, 0.0)),
                                      faults=("delay-indication@0=0.6",)))
    assert out.of_type("orientation"), _why(out, ["never turned around to walk backward"])
    logged = {t for t, _ in out.control_log}  # the device's own record of what reached it
    ups = [(t, kmh) for t, kmh in backward_increases(out) if t in logged]
    assert len(ups) >= 5, _why(out, [f"only {len(ups)} backward increases: {ups}"])
    gaps = [(round(b[0] - a[0], 3), a[1], b[1]) for a, b in itertools.pairwise(ups)]
    short = [g for g in gaps if g[0] < 0.99]
    assert not short, _why(out, [f"backward increases less than 1 s apart: {short[:8]}"])
    _assert_clean(out, check_backward_pacing, check_backward_limits)


async def _garbage_status(code: int) -> Outcome:
    return await run_scenario(Scenario(steps=BOUT, faults=(f"unknown-status@{IN_BACKWARD_S:g}"
                                                           f"={code:#x}",)))


async def test_g_garbage_control_lost_status_still_stops_the_belt():
    """g. One garbage Machine Status packet 0xFF (control lost) while walking backward: the
    belt must still stop (a Stop is attempted anyway), and control is never requested again."""
    out = await _garbage_status(0xFF)
    _check_garbage(out)


async def test_g_garbage_reset_status_still_stops_the_belt():
    """g'. The same with 0x01 (reset)."""
    out = await _garbage_status(0x01)
    _check_garbage(out)


def _check_garbage(out: Outcome) -> None:
    assert out.fault_origin is not None
    at = out.fault_origin + IN_BACKWARD_S
    assert out.speed_at(at) > 1.0, _why(out, ["the belt was not moving at the fault"])
    after = [d for t, d in out.control_log if t >= at - 1e-6]  # virtual time is a float
    assert ftms.encode_stop() in after, _why(out, ["no Stop written after the status"])
    assert ftms.encode_request_control() not in after, _why(
        out, ["Request Control written after losing control"])
    _assert_clean(out, check_stops, check_stopped_at_the_end)
    _belt_stopped(out)
    end = at + stop_bound_s(out.speed_at(at))
    assert any(at <= s.t <= end and s.speed <= ZERO for s in out.samples), _why(
        out, ["belt not at 0 within the stop bound after the status"])
