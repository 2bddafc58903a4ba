"""Unit tests for the safety governor, one group per rule (see docs/SAFETY.md)."""

from __future__ import annotations

import dataclasses
import itertools
import math

import pytest

from safety import (
    TRANSITIONS,
    AcknowledgeStop,
    Alarm,
    AlarmKind,
    ApprovedCommand,
    CommandAccepted,
    CommandFailed,
    ConfirmTurned,
    EmergencyStop,
    Ended,
    EndReason,
    EndSession,
    Governor,
    GovernorState,
    LinkLost,
    LinkState,
    MachineLimits,
    MachineStatus,
    Orientation,
    OrientationChanged,
    Pause,
    PauseCmd,
    Refused,
    RequestControl,
    Resume,
    SafetyConfig,
    SetIncline,
    SetSpeed,
    SetTargetIncline,
    SetTargetSpeed,
    Source,
    Start,
    StartResume,
    StatusKind,
    StepSpeed,
    StopBelt,
    StopCmd,
    Telemetry,
    Tick,
    Trigger,
    TurnAround,
    TurnAroundReady,
    envelope_for,
    next_state,
)
from safety.belt import NEVER_REPORTED_REST_S, SLOWEST_DECEL_KMH_S
from safety.rules.stop_until_still import STILL_S, STOP_RETRY_MAX_S

BACK = Orientation.BACKWARD
FWD = Orientation.FORWARD
S = GovernorState

# A typical treadmill without incline control, and one with 0.5 % incline steps.
FLAT = MachineLimits(0.5, 16.0, 0.1, 0.0, 0.0, 0.0, incline_supported=False)
HILL = MachineLimits(0.5, 16.0, 0.1, 0.0, 12.0, 0.5)


def cmds(out):
    return [o.command for o in out if isinstance(o, ApprovedCommand)]


def alarms(out, kind=None):
    return [o for o in out if isinstance(o, Alarm) and (kind is None or o.kind is kind)]


def refusals(out):
    return [o for o in out if isinstance(o, Refused)]


def ended(out):
    return [o for o in out if isinstance(o, Ended)]


def start_running(g, orientation=BACK, t=0.0, silent=False, countdown_zero=False):
    """From standstill to the start speed, confirmed by telemetry. Returns the time.

    silent: a machine that sends nothing while still (DESIGN §4); otherwise it reports 0.
    countdown_zero: it reports 0 km/h during the start countdown (running, belt not moving)."""
    if not silent:
        g.handle(Telemetry(t, 0.0))  # rest is seen, never assumed
    out = g.handle(Start(t, orientation))
    if g.has_control:
        assert cmds(out) == [StartResume()]
    else:
        assert cmds(out) == [RequestControl()]
        out = g.handle(CommandAccepted(t + 0.1, RequestControl()))
        while silent and not cmds(out):  # no reading yet: a Stop makes rest visible
            t = round(t + 0.25, 6)
            out = g.handle(Tick(t))
        if cmds(out) == [StopCmd()]:
            out = g.handle(CommandAccepted(t + 0.1, StopCmd()))
        while silent and not cmds(out):  # silence is rest only once it has lasted
            t = round(t + 0.25, 6)
            out = g.handle(Tick(t))
            if cmds(out) == [StopCmd()]:  # re-sent while rest is not yet seen
                out = g.handle(CommandAccepted(t + 0.1, StopCmd()))
        if cmds(out) and isinstance(cmds(out)[0], SetTargetIncline):
            # Walking backward on a deck of unknown incline: it is levelled before the start.
            g.handle(CommandAccepted(t + 0.1, cmds(out)[0]))
            while not cmds(out) or not isinstance(cmds(out)[0], StartResume):
                t = round(t + 0.25, 6)
                out = g.handle(Tick(t))
                assert cmds(out) in ([], [StartResume()])
        assert cmds(out) == [StartResume()]
    g.handle(CommandAccepted(t + 0.2, StartResume()))
    if countdown_zero:
        g.handle(Telemetry(t + 0.3, 0.0))
    start = g.start_speed_kmh
    out = g.handle(Telemetry(t + 0.5, 0.4))
    assert cmds(out) == [SetTargetSpeed(start)]
    g.handle(CommandAccepted(t + 0.6, SetTargetSpeed(start)))
    g.handle(Telemetry(t + 1.0, start))
    assert g.state is S.RUNNING
    return t + 1.0


def follow(g, t, until, dt=0.25, incline=False):
    """A perfect belt: follows every command at once, acks it, reports every dt.

    Returns (time, [(t, command), ...]) of the commands emitted on the way.
    """
    seen = []
    if g.state in (S.RUNNING, S.STOPPING):
        speed = g.commanded_speed_kmh
    elif g.state is S.STARTING:
        speed = g.measured_speed_kmh or 0.0
    else:
        speed = 0.0  # a perfect belt is still whenever it is not told to move
    inc = (g.measured_incline_pct or 0.0) if incline else None
    while t < until - 1e-9:
        t = round(t + dt, 6)
        out = g.handle(Telemetry(t, speed, inc))
        out += g.handle(Tick(t))
        for c in cmds(out):
            seen.append((t, c))
            g.handle(CommandAccepted(t, c))
            if isinstance(c, SetTargetSpeed):
                speed = c.kmh
            elif isinstance(c, SetTargetIncline) and incline:
                inc = c.pct
            elif isinstance(c, StopCmd | PauseCmd):
                speed = 0.0
    return t, seen


def speeds(seen):
    return [(t, c.kmh) for t, c in seen if isinstance(c, SetTargetSpeed)]


# --------------------------------------------------------- structural guarantee


def test_approved_command_cannot_be_built_outside_the_governor():
    with pytest.raises(PermissionError, match="must come from the safety governor"):
        ApprovedCommand(StopCmd(), 0.0)
    with pytest.raises(PermissionError):
        ApprovedCommand(SetTargetSpeed(9.0), 0.0, object())


def test_approved_command_cannot_be_rewritten_with_replace():
    g = Governor(FLAT)
    (approved,) = [o for o in g.handle(Start(0.0, BACK)) if isinstance(o, ApprovedCommand)]
    with pytest.raises(PermissionError):
        dataclasses.replace(approved, command=SetTargetSpeed(12.0))


def test_governor_outputs_only_approved_commands():
    g = Governor(FLAT)
    out = g.handle(Start(0.0, BACK))
    assert [type(o) for o in out] == [ApprovedCommand]
    assert out[0].t == 0.0


# --------------------------------------------------------- config validation


def test_default_config_is_design_section_5():
    c = SafetyConfig()
    assert c.backward_speed_cap_kmh == 3.0
    assert c.backward_start_speed_kmh == 1.0
    assert c.max_step_per_request_kmh == 0.5
    assert c.backward_ramp_up_kmh_per_s == 0.1
    assert c.ramp_down_kmh_per_s == 0.2
    assert c.backward_incline_cap_effective_pct == 0.0
    assert c.max_backward_bout_s == 600
    assert c.max_backward_session_s == 1800
    assert c.turnaround_dwell_s == 3.0
    assert (c.stale_alarm_s, c.stale_stop_s) == (2.0, 5.0)
    assert (c.disobey_margin_kmh, c.disobey_window_s) == (0.3, 2.0)


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("backward_speed_cap_kmh", 3.5, "0.1 to 3 km/h"),
        ("backward_start_speed_kmh", 1.5, "0.1 to 1 km/h"),
        ("max_step_per_request_kmh", 0.6, "0.01 to 0.5 km/h"),
        ("backward_ramp_up_kmh_per_s", 0.2, "0.01 to 0.1 km/h per s"),
        ("forward_ramp_up_kmh_per_s", 0.5, "0.01 to 0.3 km/h per s"),
        ("ramp_down_kmh_per_s", 0.5, "0.1 to 0.2 km/h per s"),
        ("max_backward_bout_s", 900, "10 to 600 s"),
        ("max_backward_session_s", 3600, "10 to 1800 s"),
        ("turnaround_dwell_s", 1.0, "3 to 60 s"),
        ("stale_alarm_s", 3.0, "0.5 to 2 s"),
        ("stale_stop_s", 10.0, "1 to 5 s"),
        ("disobey_margin_kmh", 0.5, "0.1 to 0.3 km/h"),
        ("disobey_window_s", 5.0, "0.5 to 2 s"),
        ("heart_rate_grace_s", 120.0, "5 to 60 s"),
        ("heart_rate_hard_margin_bpm", 20, "1 to 10 bpm"),
        ("bout_rest_s", 10.0, "60 to 3600 s"),
    ],
)
def test_user_config_refuses_anything_less_strict(field, value, allowed):
    with pytest.raises(ValueError, match=field) as info:
        SafetyConfig.from_user_dict({field: value})
    assert allowed in str(info.value)


def test_user_config_accepts_stricter_values():
    c = SafetyConfig.from_user_dict(
        {"backward_speed_cap_kmh": 2.0, "backward_ramp_up_kmh_per_s": 0.05, "turnaround_dwell_s": 5}
    )
    assert c.backward_speed_cap_kmh == 2.0
    assert c.turnaround_dwell_s == 5


def test_user_config_refuses_unknown_keys_and_wrong_types():
    with pytest.raises(ValueError, match="unknown safety setting 'backward_cap'"):
        SafetyConfig.from_user_dict({"backward_cap": 2.0})
    with pytest.raises(ValueError, match="backward_speed_cap_kmh"):
        SafetyConfig.from_user_dict({"backward_speed_cap_kmh": "fast"})
    with pytest.raises(ValueError, match="backward_speed_cap_kmh"):
        SafetyConfig.from_user_dict({"backward_speed_cap_kmh": True})
    with pytest.raises(ValueError, match="backward_speed_cap_kmh"):
        SafetyConfig.from_user_dict({"backward_speed_cap_kmh": math.nan})
    with pytest.raises(ValueError, match="heart_rate_cap_bpm"):
        SafetyConfig.from_user_dict({"heart_rate_cap_bpm": 150.5})


def test_backward_incline_unlock_is_the_one_less_strict_step():
    with pytest.raises(ValueError, match="backward_incline_unlocked = true"):
        SafetyConfig.from_user_dict({"backward_incline_cap_pct": 5.0})
    unlocked = SafetyConfig.from_user_dict({"backward_incline_unlocked": True})
    assert unlocked.backward_incline_cap_effective_pct == 5.0
    with pytest.raises(ValueError, match="0 to 5 %"):
        SafetyConfig.from_user_dict(
            {"backward_incline_unlocked": True, "backward_incline_cap_pct": 8.0}
        )


def test_hard_limits_bind_configs_built_in_code_too():
    assert SafetyConfig(backward_speed_cap_kmh=4.0).backward_speed_cap_kmh == 4.0
    with pytest.raises(ValueError, match=r"0\.1 to 4 km/h"):
        SafetyConfig(backward_speed_cap_kmh=4.5)
    assert (
        SafetyConfig(
            backward_incline_unlocked=True, backward_incline_cap_pct=10.0
        ).backward_incline_cap_effective_pct
        == 10.0
    )
    with pytest.raises(ValueError, match="backward_incline_cap_pct"):
        SafetyConfig(backward_incline_unlocked=True, backward_incline_cap_pct=12.0)
    with pytest.raises(ValueError, match="max_step_per_request_kmh"):
        SafetyConfig(max_step_per_request_kmh=1.0)


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"backward_speed_cap_kmh": 0.8}, "backward_start_speed_kmh = 1 km/h is above"),
        ({"stale_alarm_s": 2.0, "stale_stop_s": 2.0}, "stale_alarm_s = 2 s must be below"),
        ({"max_backward_session_s": 300}, "max_backward_bout_s = 600 s is above"),
        ({"forward_speed_cap_kmh": 0.5}, "forward_start_speed_kmh = 1 km/h is above"),
    ],
)
def test_inconsistent_configs_are_refused(values, match):
    with pytest.raises(ValueError, match=match):
        SafetyConfig.from_user_dict(values)


# --------------------------------------------------------- rule 1: speed caps


def test_caps_are_rounded_down_to_the_machine_grid():
    coarse = MachineLimits(0.5, 16.0, 0.3, 0, 0, 0, incline_supported=False)
    env = envelope_for(coarse, SafetyConfig(), BACK)
    assert env.speed_cap_kmh == 2.9  # grid 0.5, 0.8, ... 2.9, 3.2
    assert env.start_speed_kmh == 0.8  # 1.0 rounded down onto the grid
    assert envelope_for(coarse, SafetyConfig(), FWD).speed_cap_kmh == 15.8


def test_forward_cap_is_machine_max_unless_configured():
    assert envelope_for(FLAT, SafetyConfig(), FWD).speed_cap_kmh == 16.0
    cfg = SafetyConfig(forward_speed_cap_kmh=6.0)
    assert envelope_for(FLAT, cfg, FWD).speed_cap_kmh == 6.0


def test_request_above_backward_cap_is_clamped_with_a_reason():
    g = Governor(FLAT)
    t = start_running(g)
    out = g.handle(SetSpeed(t, 5.0))
    assert g.target_speed_kmh == 3.0
    assert [r.reason for r in refusals(out)] == [
        "backward speed is capped at 3.0 km/h; target set to 3.0 km/h"
    ]


def test_request_below_machine_minimum_is_clamped():
    g = Governor(FLAT)
    t = start_running(g)
    out = g.handle(SetSpeed(t, 0.0))
    assert g.target_speed_kmh == 0.5
    assert "use Stop to stop the belt" in refusals(out)[0].reason


def test_backward_refused_when_machine_minimum_is_above_the_cap():
    fast = MachineLimits(4.5, 20.0, 0.1, 0, 0, 0, incline_supported=False)
    g = Governor(fast)
    why = g.check_backward_possible()
    assert why == (
        "this treadmill's minimum speed 4.5 km/h is above the backward cap of 3 km/h: "
        "backward mode is not possible on it"
    )
    out = g.handle(Start(0.0, BACK))
    assert cmds(out) == []
    assert refusals(out)[0].reason == why
    assert Governor(FLAT).check_backward_possible() is None


def test_step_speed_changes_the_target_by_at_most_half_a_kmh():
    g = Governor(FLAT)
    t = start_running(g)
    out = g.handle(StepSpeed(t, 12))
    assert g.target_speed_kmh == 1.5
    assert "at most 0.5 km/h" in refusals(out)[0].reason
    g.handle(StepSpeed(t, -1))
    assert g.target_speed_kmh == 0.9  # "slower" is one step below now (1.0), not below 1.5


def test_key_press_refused_when_one_machine_step_is_already_too_big():
    coarse = MachineLimits(1.0, 16.0, 1.0, 0, 0, 0, incline_supported=False)
    g = Governor(coarse)
    t = start_running(g, FWD)
    out = g.handle(StepSpeed(t, 1))
    assert g.target_speed_kmh == 1.0
    assert "speed step 1 km/h is more than 0.5 km/h" in refusals(out)[0].reason


# --------------------------------------------------------- rule 2: closed-loop ramps


def test_backward_ramp_is_one_step_per_second_after_confirmation():
    g = Governor(FLAT)
    t = start_running(g)
    g.handle(SetSpeed(t, 1.5))
    t, seen = follow(g, t, t + 10)
    ups = speeds(seen)
    assert [v for _, v in ups] == [1.1, 1.2, 1.3, 1.4, 1.5]
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(ups)]
    assert all(gap >= 1.0 - 1e-9 for gap in gaps)
    assert g.commanded_speed_kmh == 1.5 and not g.ramping


def test_forward_ramp_uses_the_forward_rate():
    g = Governor(FLAT)
    t = start_running(g, FWD)
    g.handle(SetSpeed(t, 2.0))
    t, seen = follow(g, t, t + 6, dt=0.05)
    ups = speeds(seen)
    gaps = [round(b[0] - a[0], 6) for a, b in itertools.pairwise(ups)]
    assert min(gaps) >= 1 / 3 - 1e-9
    assert ups[-1][1] == 2.0


def test_next_step_waits_until_telemetry_confirms_the_last():
    g = Governor(FLAT)
    t = start_running(g)
    g.handle(SetSpeed(t, 2.0))
    out = g.handle(Telemetry(t + 1.0, 1.0))
    assert cmds(out) == [SetTargetSpeed(1.1)]
    g.handle(CommandAccepted(t + 1.1, SetTargetSpeed(1.1)))
    # The belt stays at 1.0: no further step, however long we wait.
    for k in range(2, 12):
        assert cmds(g.handle(Telemetry(t + k, 1.0))) == []
    assert g.hold_reason == "waiting for the belt to reach 1.1 km/h"
    assert cmds(g.handle(Telemetry(t + 12, 1.1))) == [SetTargetSpeed(1.2)]


def test_next_step_waits_for_the_treadmill_to_accept_the_last():
    g = Governor(FLAT)
    t = start_running(g)
    g.handle(SetSpeed(t, 2.0))
    assert cmds(g.handle(Telemetry(t + 1.0, 1.0))) == [SetTargetSpeed(1.1)]
    assert cmds(g.handle(Telemetry(t + 2.0, 1.1))) == []
    assert g.hold_reason == "waiting for the treadmill to accept the last command"
    g.handle(CommandAccepted(t + 2.1, SetTargetSpeed(1.1)))
    # Pacing counts from the answer: a late answer never brings the next step forward.
    assert cmds(g.handle(Telemetry(t + 2.2, 1.1))) == []
    assert cmds(g.handle(Telemetry(t + 3.1, 1.1))) == [SetTargetSpeed(1.2)]


def test_ramp_down_is_paced_but_does_not_wait_for_confirmation():
    g = Governor(FLAT)
    t = start_running(g)
    g.handle(SetSpeed(t, 2.0))
    t, _ = follow(g, t, t + 15)
    assert g.commanded_speed_kmh == 2.0
    g.handle(SetSpeed(t, 1.5))
    got = []
    for k in range(1, 12):  # the belt never reports a lower speed (but answers at once)
        out = cmds(g.handle(Tick(t + k * 0.25)))
        got += [(round(k * 0.25, 2), c.kmh) for c in out]
        for c in out:
            g.handle(CommandAccepted(t + k * 0.25, c))
        g.handle(Telemetry(t + k * 0.25, 2.0))
    assert got == [(0.25, 1.9), (0.75, 1.8), (1.25, 1.7), (1.75, 1.6), (2.25, 1.5)]


# --------------------------------------------------------- rule 3: starting


def test_start_requests_control_first_and_never_sends_speed_to_a_stopped_belt():
    g = Governor(FLAT)
    g.handle(Telemetry(0.0, 0.0))
    assert cmds(g.handle(Start(0.0, BACK))) == [RequestControl()]
    assert g.state is S.STARTING
    assert cmds(g.handle(Tick(0.5))) == []  # nothing until the runner reports the answer
    assert cmds(g.handle(CommandAccepted(1.0, RequestControl()))) == [StartResume()]
    assert g.has_control
    g.handle(CommandAccepted(1.1, StartResume()))
    for k in range(2, 8):  # belt still at 0 (countdown): no speed yet
        assert cmds(g.handle(Telemetry(k * 0.5, 0.0))) == []
    assert cmds(g.handle(Telemetry(4.0, 0.3))) == [SetTargetSpeed(1.0)]
    assert g.state is S.RUNNING


def test_program_target_given_while_starting_is_reached_by_ramping():
    g = Governor(FLAT)
    g.handle(Telemetry(0.0, 0.0))
    g.handle(Start(0.0, BACK))
    g.handle(CommandAccepted(0.1, RequestControl()))
    g.handle(CommandAccepted(0.15, StartResume()))
    assert refusals(g.handle(SetSpeed(0.2, 1.3))) == []
    assert g.target_speed_kmh == 1.3
    out = g.handle(Telemetry(1.0, 0.5))
    assert cmds(out) == [SetTargetSpeed(1.0)]  # the start speed first, not 1.3
    g.handle(CommandAccepted(1.1, SetTargetSpeed(1.0)))
    _, seen = follow(g, 1.0, 6.0)
    assert [v for _, v in speeds(seen)] == [1.1, 1.2, 1.3]


def test_second_start_with_control_goes_straight_to_start_resume():
    g = Governor(FLAT)
    t = start_running(g)
    g.handle(StopBelt(t))
    t, _ = follow(g, t, t + 5)
    g.handle(Telemetry(t, 0.0))
    assert g.state is S.STOPPED
    assert cmds(g.handle(Start(t + 1, BACK))) == [StartResume()]


def test_start_speed_is_the_machine_minimum_when_higher():
    slow_min = MachineLimits(1.6, 16.0, 0.1, 0, 0, 0, incline_supported=False)
    g = Governor(slow_min)
    assert g.handle(Start(0.0, BACK)) and g.start_speed_kmh == 1.6


def test_control_refused_means_no_start_and_a_clear_alarm():
    g = Governor(FLAT)
    g.handle(Start(0.0, BACK))
    out = g.handle(CommandFailed(0.5, RequestControl(), "control not permitted"))
    assert cmds(out) == []
    assert g.state is S.STOPPED
    assert "refused remote control (control not permitted)" in alarms(out)[0].message


def test_belt_that_does_not_start_gets_a_stop():
    g = Governor(FLAT)
    g.handle(Telemetry(0.0, 0.0))
    g.handle(Start(0.0, BACK))
    g.handle(CommandAccepted(0.1, RequestControl()))
    g.handle(CommandAccepted(0.15, StartResume()))
    for k in range(1, 40):
        out = g.handle(Telemetry(0.1 + k * 0.5, 0.0))
        if cmds(out):
            break
    assert cmds(out) == [StopCmd()]
    assert 0.1 + k * 0.5 >= 10.1
    assert g.state is S.STOPPED
    assert alarms(out, AlarmKind.START_FAILED)


def test_a_refused_start_leaves_the_belt_at_rest_and_a_turn_needs_only_the_dwell():
    g = Governor(FLAT)
    g.handle(Telemetry(0.0, 0.0))
    g.handle(Start(0.0, BACK))
    out = g.handle(CommandAccepted(0.1, RequestControl())) + g.handle(Telemetry(0.2, 0.0))
    assert cmds(out) == [StartResume()]
    out = g.handle(CommandFailed(0.3, StartResume(), "operation failed"))
    # The treadmill said it did not start: nothing to stop, but say so.
    assert cmds(out) == [] and g.state is S.STOPPED
    assert "refused to start (operation failed)" in alarms(out, AlarmKind.START_FAILED)[0].message
    t = 0.3
    for k in range(1, 16):  # the belt reads 0 throughout
        g.handle(Telemetry(t + k * 0.25, 0.0))
    t += 15 * 0.25
    out = g.handle(TurnAround(t))
    assert cmds(out) == [] and out[-1] == TurnAroundReady(FWD)
    assert g.handle(ConfirmTurned(t + 0.1)) == [OrientationChanged(FWD)]


def test_a_belt_that_starts_after_refusing_to_is_stopped():
    g = Governor(FLAT)
    g.handle(Telemetry(0.0, 0.0))
    g.handle(Start(0.0, BACK))
    g.handle(CommandAccepted(0.1, RequestControl()))
    g.handle(Telemetry(0.2, 0.0))
    g.handle(CommandFailed(0.3, StartResume(), "operation failed"))
    seen = []
    for k, v in enumerate([0.3, 0.6, 0.9, 1.2, 1.5, 1.8], start=1):
        seen += cmds(g.handle(Telemetry(0.3 + k * 0.5, v)))
    assert StopCmd() in seen and g.state is S.ENDED


def test_start_refused_while_the_belt_is_moving():
    g = Governor(FLAT)
    g.handle(Telemetry(0.0, 0.0))
    out = g.handle(Start(0.2, BACK))
    assert cmds(out) == [RequestControl()]
    # Stopped by us but still slowing down: wait.
    g = Governor(FLAT)
    t = start_running(g, t=1.0)
    g.handle(StopBelt(t))
    t, _ = follow(g, t, t + 2)
    g.handle(Telemetry(t + 0.1, 0.4))
    g.handle(Telemetry(t + 0.2, 0.4))
    out = g.handle(Start(t + 0.3, BACK))
    assert cmds(out) == []
    assert refusals(out)[0].reason == "the belt is still moving: wait until it has stopped"


def test_start_on_a_belt_already_moving_slows_it_to_a_stop_and_never_starts_it():
    g = Governor(FLAT)
    g.handle(Telemetry(0.0, 2.0))  # started at the console before the session
    out = g.handle(Start(0.1, BACK))
    assert refusals(out)[0].reason.startswith("the belt is already moving (2.0 km/h): slowing")
    assert cmds(out) == [RequestControl()] and g.state is S.STOPPING
    g.handle(CommandAccepted(0.2, RequestControl()))
    _t, seen = follow(g, 0.2, 30.0)
    assert StartResume() not in [c for _, c in seen]
    kmh = [v for _, v in speeds(seen)]
    assert kmh == sorted(kmh, reverse=True) and kmh[-1] == 1.0
    assert seen[-1][1] == StopCmd() and g.state is S.STOPPED
    assert g.internal_errors == 0


def test_a_stale_reading_is_neither_motion_nor_rest_at_a_start():
    g = Governor(FLAT)
    g.handle(Telemetry(0.0, 2.0))
    g.handle(Tick(3.0))
    assert cmds(g.handle(Start(3.0, BACK))) == [RequestControl()]
    out = g.handle(CommandAccepted(3.1, RequestControl()))
    assert cmds(out) == [StopCmd()]  # makes rest visible before any Start
    g.handle(CommandAccepted(3.2, StopCmd()))
    assert cmds(g.handle(Telemetry(3.5, 0.0))) == [StartResume()]


def test_no_reading_yet_means_unknown_and_a_stop_makes_rest_visible():
    g = Governor(FLAT)
    assert cmds(g.handle(Start(0.0, BACK))) == [RequestControl()]
    assert cmds(g.handle(CommandAccepted(0.1, RequestControl()))) == []
    for k in range(1, 8):  # a first reading usually comes: wait for it a little
        assert cmds(g.handle(Tick(0.1 + 0.25 * k))) == []
    out = g.handle(Tick(2.1))
    assert cmds(out) == [StopCmd()] and not alarms(out)
    assert cmds(g.handle(CommandAccepted(2.2, StopCmd()))) == []
    # Silent: a machine silent when stopped, or notifications that are not arriving from a
    # belt that moves. Only a long silence tells them apart.
    sent = []
    t = 2.2
    while t < 2.2 + NEVER_REPORTED_REST_S - 0.3:
        t += 0.25
        for c in cmds(g.handle(Tick(t))):
            sent.append(c)
            g.handle(CommandAccepted(t, c))
    assert StartResume() not in sent and set(sent) <= {StopCmd()}
    assert g.state is S.STARTING
    out = g.handle(Tick(2.2 + NEVER_REPORTED_REST_S))
    assert cmds(out) == [StartResume()] and not alarms(out)


def test_a_drop_out_on_a_moving_belt_is_not_silence_at_a_start():
    # notifications are not arriving at first; the belt was started at the console
    g = Governor(FLAT)
    g.handle(Start(0.0, BACK))
    g.handle(CommandAccepted(0.1, RequestControl()))
    assert cmds(g.handle(Tick(2.1))) == [StopCmd()]
    assert cmds(g.handle(CommandAccepted(2.2, StopCmd()))) == []
    for k in range(1, 8):
        assert StartResume() not in cmds(g.handle(Tick(2.2 + 0.25 * k)))
    out = g.handle(Telemetry(4.2, 3.0))  # the drop-out ends: still slowing from 3 km/h
    out += g.handle(Telemetry(4.5, 2.7))
    assert StartResume() not in cmds(out)
    t, belt = 4.5, 2.7
    while t < 30.0 and g.state is S.STARTING:
        t += 0.25
        out = g.handle(Tick(t)) + g.handle(Telemetry(t, belt))
        for c in cmds(out):
            assert c != StartResume() or belt == 0.0  # started only once seen at rest
            g.handle(CommandAccepted(t, c))
        belt = max(0.0, 2.7 - 1.5 * (t - 4.5))
    assert g.internal_errors == 0


# --------------------------------------------------------- rule 4: speed and incline apart


def test_backward_incline_is_capped_at_zero_and_unknown_incline_is_levelled_first():
    g = Governor(HILL)
    t = start_running(g)
    out = g.handle(SetIncline(t, 4.0))
    assert g.target_incline_pct == 0.0
    assert "capped at 0.0 %" in refusals(out)[0].reason
    assert "unlocked" in refusals(out)[0].reason
    g.handle(SetSpeed(t, 1.5))
    t, seen = follow(g, t, t + 15)
    # The unknown incline was set to 0 before the belt even started (start_running), and
    # nothing raises it again.
    assert g.commanded_incline_pct == 0.0
    assert seen[0][1] == SetTargetSpeed(1.1)
    assert not [c for _, c in seen if isinstance(c, SetTargetIncline)]


def test_unlocked_backward_incline_goes_to_five_percent():
    cfg = SafetyConfig.from_user_dict({"backward_incline_unlocked": True})
    g = Governor(HILL, cfg)
    t = start_running(g)
    g.handle(SetIncline(t, 8.0))
    assert g.target_incline_pct == 5.0


def test_speed_and_incline_never_change_together():
    g = Governor(HILL)
    g.handle(Telemetry(0.0, 0.0, 0.0))  # the machine reports incline: 0 %
    t = start_running(g, FWD, t=0.1)
    g.handle(SetSpeed(t, 3.0))
    g.handle(SetIncline(t, 4.0))
    t, seen = follow(g, t, t + 40, incline=True)
    incline_at = [t for t, c in seen if isinstance(c, SetTargetIncline)]
    speed_at = [t for t, c in seen if isinstance(c, SetTargetSpeed)]
    # Both are increases: the speed ramp first, then the incline, at least 2 s apart.
    assert len(incline_at) == 1
    assert max(speed_at) + 2.0 <= incline_at[0] + 1e-9
    assert g.commanded_speed_kmh == 3.0 and g.commanded_incline_pct == 4.0


def test_unknown_incline_is_set_before_any_speed_increase_and_kept_apart():
    g = Governor(HILL)
    t = start_running(g, FWD)
    g.handle(SetSpeed(t, 2.0))
    g.handle(SetIncline(t, 4.0))
    t, seen = follow(g, t, t + 40)
    (incline_t,) = [t for t, c in seen if isinstance(c, SetTargetIncline)]
    speed_at = [t for t, c in seen if isinstance(c, SetTargetSpeed)]
    assert incline_t < min(speed_at)
    # Incline never reported: wait the 2 s gap plus 2 s per % of travel (4 % from unknown).
    assert min(speed_at) - incline_t >= 8.0 - 1e-9


def test_speed_increase_waits_for_the_reported_incline_to_settle():
    g = Governor(HILL)
    t = start_running(g, FWD)
    g.handle(SetIncline(t, 3.0))
    t, seen = follow(g, t, t + 3)
    assert [c for _, c in seen] == [SetTargetIncline(3.0)]
    g.handle(SetSpeed(t, 1.5))
    # Incline reported but still at 1.0 %: speed holds.
    for k in range(1, 10):
        assert cmds(g.handle(Telemetry(t + k, 1.0, 1.0))) == []
    assert g.hold_reason == "waiting for the incline to settle"
    assert cmds(g.handle(Telemetry(t + 10, 1.0, 3.0))) == [SetTargetSpeed(1.1)]


def test_belt_does_not_restart_within_the_gap_after_an_incline_change():
    g = Governor(HILL)
    t = start_running(g, FWD)
    g.handle(SetIncline(t, 2.0))
    t, seen = follow(g, t, t + 2.5)
    (incline_t,) = [ts for ts, c in seen if isinstance(c, SetTargetIncline)]
    assert cmds(g.handle(Pause(incline_t + 0.5))) == [PauseCmd()]
    g.handle(CommandAccepted(incline_t + 0.55, PauseCmd()))
    g.handle(Telemetry(incline_t + 0.6, 0.0))
    out = g.handle(Resume(incline_t + 1.0))
    assert cmds(out) == []
    assert refusals(out)[0].reason == "the incline is still changing: start again in 1 s"
    assert cmds(g.handle(Resume(incline_t + 2.0))) == [StartResume()]


def test_incline_decrease_comes_before_a_pending_speed_increase():
    g = Governor(HILL)
    t = start_running(g, FWD)
    g.handle(SetIncline(t, 3.0))
    t, _ = follow(g, t, t + 4, incline=True)
    g.handle(SetSpeed(t, 2.0))
    g.handle(SetIncline(t, 1.0))
    t, seen = follow(g, t, t + 30, incline=True)
    first = seen[0][1]
    assert first == SetTargetIncline(1.0)
    assert all(isinstance(c, SetTargetSpeed) for _, c in seen[1:])


# --------------------------------------------------------- rule 5: turning around


def turn_to_awaiting(g, t):
    was_moving = g.state is S.RUNNING
    out = g.handle(TurnAround(t))
    assert g.state is S.STOPPING or g.state is S.AWAITING_TURN, out
    seen = []
    while g.state is S.STOPPING:
        t, more = follow(g, t, t + 1)
        seen += more
    if was_moving:
        assert [c for _, c in seen][-1] == StopCmd()
    assert g.state is S.AWAITING_TURN
    return t


def test_turn_around_ramps_down_stops_waits_and_needs_confirmation():
    g = Governor(FLAT)
    t = start_running(g)
    g.handle(SetSpeed(t, 1.5))
    t, _ = follow(g, t, t + 8)
    out = g.handle(TurnAround(t))
    assert g.state is S.STOPPING
    _, seen = follow(g, t, t + 3.0)
    assert [c for _, c in seen] == [
        SetTargetSpeed(1.4),
        SetTargetSpeed(1.3),
        SetTargetSpeed(1.2),
        SetTargetSpeed(1.1),
        SetTargetSpeed(1.0),
        StopCmd(),
    ]
    stop_t = seen[-1][0]
    # The belt reads 0 from the Stop on; TurnAroundReady only after 3 s of that.
    ready_at = None
    t = stop_t
    for k in range(1, 30):
        out = g.handle(Telemetry(stop_t + k * 0.25, 0.0))
        if any(isinstance(o, TurnAroundReady) for o in out):
            ready_at = stop_t + k * 0.25
            assert out[-1] == TurnAroundReady(FWD)
            break
    assert ready_at is not None and ready_at - (stop_t + 0.25) >= 3.0 - 1e-9
    assert g.orientation is BACK  # never automatic
    for k in range(1, 40):
        assert not any(isinstance(o, OrientationChanged) for o in g.handle(Tick(ready_at + k)))
    out = g.handle(ConfirmTurned(ready_at + 41))
    assert out == [OrientationChanged(FWD)]
    assert g.orientation is FWD and g.state is S.STOPPED


def test_confirm_before_the_dwell_is_refused():
    g = Governor(FLAT)
    t = start_running(g)
    g.handle(TurnAround(t))
    t, _ = follow(g, t, t + 1.0)
    assert g.state is S.AWAITING_TURN
    out = g.handle(ConfirmTurned(t + 0.5))
    assert refusals(out)[0].reason == "wait until the belt has been still for 3 s"
    assert g.orientation is BACK


def test_a_stray_nonzero_frame_resets_the_dwell():
    g = Governor(FLAT)
    t = start_running(g)
    t = turn_to_awaiting(g, t)
    t, _ = follow(g, t, t + 4)
    assert g.turn_ready
    out = g.handle(Telemetry(t + 0.1, 0.3))
    assert not g.turn_ready
    assert refusals(g.handle(ConfirmTurned(t + 0.2)))
    g.handle(Telemetry(t + 0.3, 0.0))
    assert not g.turn_ready
    out = g.handle(Tick(t + 3.2))
    assert not any(isinstance(o, TurnAroundReady) for o in out)
    out = g.handle(Tick(t + 3.31))
    assert TurnAroundReady(FWD) in out


@pytest.mark.parametrize("countdown_zero", [False, True])
def test_stopped_and_silent_counts_as_at_rest_once_stop_is_accepted(countdown_zero):
    # countdown_zero: found over the ATT transport, where the frames fall a few ms later: a
    # 0 km/h frame during the start countdown is not "reports 0 when still", so the silence
    # after the Stop is still rest, after the long dwell (it used to end the session as
    # telemetry lost).
    g = Governor(FLAT)
    t = start_running(g, silent=True, countdown_zero=countdown_zero)
    assert cmds(g.handle(TurnAround(t))) == []  # setpoints and Stop come on the clock
    assert cmds(g.handle(Tick(t))) == [StopCmd()]  # already at the start speed
    # The machine goes silent instead of reporting 0 (DESIGN §4).
    assert not any(isinstance(o, TurnAroundReady) for o in g.handle(Tick(t + 4)))
    g.handle(CommandAccepted(t + 4.1, StopCmd()))
    assert g.link_state is LinkState.OK
    # Rest once even a slow motor would have stopped from 1 km/h, then the turn's dwell; after
    # a countdown zero (it may report 0 when still, its notifications lost) the long dwell.
    dwell = NEVER_REPORTED_REST_S if countdown_zero else 1.0 / SLOWEST_DECEL_KMH_S
    ready_t = t + 4.1 + dwell + STILL_S
    k = t + 4.1
    while k < ready_t - 0.3:
        k = round(k + 0.25, 6)
        out = g.handle(Tick(k))
        assert not any(isinstance(o, TurnAroundReady) for o in out)
        assert set(cmds(out)) <= {StopCmd()}  # a quiet belt may get its Stop again
        for c in cmds(out):
            g.handle(CommandAccepted(k, c))
    assert g.ended_reason is None and g.link_state is LinkState.OK
    out = g.handle(Tick(ready_t + 0.1))
    assert TurnAroundReady(FWD) in out


def test_a_zero_after_motion_while_told_to_run_means_it_reports_zero_when_still():
    # Not a countdown: the belt moved, then read 0 while told to run (stopped at the console).
    # That machine reports 0 when still, so its silence after a later Stop is a drop-out.
    g = Governor(FLAT)
    t = start_running(g, silent=True, countdown_zero=True)
    g.handle(Telemetry(t + 0.25, 0.0))
    g.handle(Telemetry(t + 0.5, 0.0))
    g.handle(Telemetry(t + 0.75, 1.0))
    assert g._ctx.belt.seen_zero


def test_silence_after_an_accepted_slow_pause_is_rest_and_the_turn_s_stop_adds_no_wait():
    # Found by the property run (GOVERNOR_EXAMPLES=3000): paused on a machine silent when
    # stopped, the turn's Stop goes to a belt already still. The rest seen since the Pause
    # counts; the person is not made to wait a second dwell after that Stop.
    g = Governor(FLAT)
    t = start_running(g, orientation=FWD, silent=True)  # at the 1 km/h start speed
    assert PauseCmd() in cmds(g.handle(Pause(t)) + g.handle(Tick(t)))
    g.handle(CommandAccepted(t + 0.1, PauseCmd()))
    rest_t = t + 0.1 + 1.0 / SLOWEST_DECEL_KMH_S  # even a slow motor has stopped from 1 km/h
    k = t
    while k < rest_t + STILL_S + 0.5:  # silent all along
        k = round(k + 0.25, 6)
        for c in cmds(g.handle(Tick(k))):
            g.handle(CommandAccepted(k, c))
    out = g.handle(TurnAround(k)) + g.handle(Tick(k))
    assert StopCmd() in cmds(out)  # paused is not stopped: the turn still sends its Stop
    out += g.handle(CommandAccepted(k + 0.1, StopCmd())) + g.handle(Tick(k + 0.25))
    assert TurnAroundReady(BACK) in out


def test_silence_after_a_fast_pause_is_not_rest():
    g = Governor(FLAT)
    t = start_running(g)
    g.handle(SetSpeed(t, 2.0))
    t, _ = follow(g, t, t + 15)
    g.handle(Pause(t))
    g.handle(CommandAccepted(t + 0.1, PauseCmd()))
    assert cmds(g.handle(TurnAround(t + 0.2))) == [StopCmd()]
    g.handle(CommandAccepted(t + 0.3, StopCmd()))
    # Silent from 2.0 km/h on: that is not evidence of rest, so no turn, and the watchdog
    # treats the silence as a belt that may still be moving.
    outs = [g.handle(Tick(t + 0.2 + k * 0.25)) for k in range(1, 30)]
    assert not any(isinstance(o, TurnAroundReady) for out in outs for o in out)
    assert g.ended_reason is EndReason.TELEMETRY_LOST


def test_belt_still_reporting_motion_long_after_an_accepted_stop_raises_an_alarm():
    g = Governor(FLAT)
    t = start_running(g)
    g.handle(StopBelt(t))
    assert cmds(g.handle(Tick(t))) == [StopCmd()]
    g.handle(CommandAccepted(t + 0.1, StopCmd()))
    found = []
    for k in range(1, 60):
        found += alarms(g.handle(Telemetry(t + k * 0.25, 1.0)), AlarmKind.NOT_OBEYING)
    assert len(found) == 1 and "still reports 1.0 km/h 10 s after Stop" in found[0].message
    assert g.state is S.STOPPED  # informative: some machines report their last speed


def test_after_turning_the_next_start_is_slow_and_other_direction_needs_a_turn():
    g = Governor(FLAT)
    t = start_running(g, FWD)
    g.handle(SetSpeed(t, 5.0))
    t, _ = follow(g, t, t + 20)
    assert refusals(g.handle(Start(t, BACK)))
    t = turn_to_awaiting(g, t)
    t, _ = follow(g, t, t + 4)
    g.handle(ConfirmTurned(t))
    assert g.orientation is BACK and g.speed_cap_kmh == 3.0
    out = g.handle(Start(t + 1, FWD))
    assert "you are facing backward: use Turn around" in refusals(out)[0].reason
    assert cmds(g.handle(Start(t + 1, BACK))) == [StartResume()]
    g.handle(CommandAccepted(t + 1.1, StartResume()))
    assert cmds(g.handle(Telemetry(t + 2, 0.5))) == [SetTargetSpeed(1.0)]


# --------------------------------------------------------- rule 6: watchdog


def test_stale_telemetry_alarms_at_2s_blocks_increases_and_stops_at_5s():
    g = Governor(FLAT)
    t = start_running(g)
    g.handle(SetSpeed(t, 2.0))
    out = g.handle(Tick(t + 2.0))
    assert alarms(out) == []
    out = g.handle(Tick(t + 2.1))
    assert [a.kind for a in alarms(out)] == [AlarmKind.TELEMETRY_STALE]
    assert "use the console STOP or pull the safety key" in alarms(out)[0].message
    assert g.link_state is LinkState.STALE
    assert "telemetry is stale" in refusals(g.handle(SetSpeed(t + 2.2, 2.5)))[0].reason
    assert cmds(g.handle(Tick(t + 4.9))) == []
    out = g.handle(Tick(t + 5.1))
    assert cmds(out) == [StopCmd()]
    assert ended(out) == [Ended(EndReason.TELEMETRY_LOST, ended(out)[0].message)]
    assert g.state is S.ENDED


def test_silence_after_stopping_at_zero_is_not_an_alarm():
    g = Governor(FLAT)
    t = start_running(g)
    g.handle(StopBelt(t))
    assert cmds(g.handle(Tick(t + 0.1))) == [StopCmd()]
    g.handle(Telemetry(t + 0.5, 0.0))
    for k in range(1, 60):
        assert g.handle(Tick(t + k)) == []
    assert g.state is S.STOPPED and g.link_state is LinkState.OK


def test_a_gap_is_caught_even_if_telemetry_comes_back_before_a_tick():
    g = Governor(FLAT)
    t = start_running(g)
    out = g.handle(Telemetry(t + 6.0, 1.0))
    assert cmds(out) == [StopCmd()]
    assert g.ended_reason is EndReason.TELEMETRY_LOST


# --------------------------------------------------------- rule 7: not obeying


def test_belt_above_the_cap_for_2s_is_stopped():
    g = Governor(FLAT)
    t = start_running(g)
    g.handle(SetSpeed(t, 3.0))
    t, _ = follow(g, t, t + 30)
    assert g.commanded_speed_kmh == 3.0
    assert cmds(g.handle(Telemetry(t + 0.5, 3.35))) == []
    assert cmds(g.handle(Telemetry(t + 1.5, 3.35))) == []
    out = g.handle(Tick(t + 2.5))
    assert cmds(out) == [StopCmd()]
    assert g.ended_reason is EndReason.NOT_OBEYING


def test_brief_excursion_above_the_cap_is_tolerated():
    g = Governor(FLAT)
    t = start_running(g)
    g.handle(SetSpeed(t, 3.0))
    t, _ = follow(g, t, t + 30)
    g.handle(Telemetry(t + 0.5, 3.35))
    g.handle(Telemetry(t + 1.5, 3.0))
    assert cmds(g.handle(Tick(t + 4.0))) == []
    assert g.state is S.RUNNING


def test_belt_speeding_up_unasked_is_stopped():
    g = Governor(FLAT)
    t = start_running(g)
    assert cmds(g.handle(Telemetry(t + 0.3, 1.35))) == []
    out = g.handle(Telemetry(t + 0.6, 1.6))
    assert cmds(out) == [StopCmd()]
    assert alarms(out, AlarmKind.NOT_OBEYING)
    assert g.ended_reason is EndReason.NOT_OBEYING


def test_speed_still_reported_while_paused_is_tolerated_unless_rising():
    g = Governor(FLAT)
    t = start_running(g)
    g.handle(SetSpeed(t, 2.0))
    t, _ = follow(g, t, t + 15)
    assert cmds(g.handle(Pause(t))) == [PauseCmd()]
    g.handle(CommandAccepted(t + 0.1, PauseCmd()))
    for k in range(1, 30):  # the machine keeps reporting its last speed
        assert cmds(g.handle(Telemetry(t + k * 0.5, 2.0))) == []
    assert g.state is S.PAUSED
    out = g.handle(Telemetry(t + 16, 2.25))
    assert cmds(out) == [StopCmd()]
    assert g.ended_reason is EndReason.NOT_OBEYING


def test_a_stop_after_a_pause_keeps_watching_for_a_runaway():
    """Found by the property tests: Stop after Pause reset the "rising unasked" run, so its
    lowest reading was forgotten and a runaway could climb further before it was caught."""
    g = Governor(FLAT)
    t = start_running(g)
    g.handle(SetSpeed(t, 2.0))
    t, _ = follow(g, t, t + 15)
    assert cmds(g.handle(Pause(t))) == [PauseCmd()]
    for k, v in enumerate([1.8, 1.5, 1.2, 1.0], start=1):  # slowing, acks held back
        assert cmds(g.handle(Telemetry(t + k * 0.25, v))) == []
    assert cmds(g.handle(StopBelt(t + 1.1))) == [StopCmd()]
    assert cmds(g.handle(Telemetry(t + 1.25, 1.1))) == []  # runs away from its low of 1.0
    out = g.handle(Telemetry(t + 1.5, 1.2))
    assert cmds(out) == [StopCmd()]
    assert g.ended_reason is EndReason.NOT_OBEYING


def test_a_single_stray_zero_frame_changes_nothing():
    g = Governor(FLAT)
    t = start_running(g)
    g.handle(SetSpeed(t, 1.5))
    t, _ = follow(g, t, t + 10)
    out = g.handle(Telemetry(t + 0.1, 0.0))
    assert out == []
    assert g.measured_speed_kmh == 1.5
    assert cmds(g.handle(Telemetry(t + 0.3, 1.5))) == []
    assert g.state is S.RUNNING


def test_two_zero_frames_in_a_row_are_believed():
    g = Governor(FLAT)
    t = start_running(g)
    g.handle(Telemetry(t + 0.1, 0.0))
    g.handle(Telemetry(t + 0.2, 0.0))
    assert g.measured_speed_kmh == 0.0


def test_belt_not_slowing_down_is_stopped():
    g = Governor(FLAT)
    t = start_running(g)
    g.handle(SetSpeed(t, 2.5))
    t, _ = follow(g, t, t + 25)
    g.handle(SetSpeed(t, 1.0))
    for k in range(1, 40):  # belt ignores the decreases and stays at 2.5
        out = g.handle(Telemetry(t + k * 0.25, 2.5))
        for c in cmds(out):
            g.handle(CommandAccepted(t + k * 0.25, c))
        if StopCmd() in cmds(out):
            break
    assert cmds(out) == [StopCmd()]
    assert g.ended_reason is EndReason.NOT_OBEYING
    assert "did not slow down" in alarms(out)[0].message


# --------------------------------------------------------- rule 8: machine status and link


def test_safety_key_ends_the_session_with_one_stop():
    g = Governor(FLAT)
    t = start_running(g)
    out = g.handle(MachineStatus(t, StatusKind.SAFETY_KEY))
    assert cmds(out) == [StopCmd()]
    assert [a.kind for a in alarms(out)] == [AlarmKind.SAFETY_KEY]
    assert g.ended_reason is EndReason.SAFETY_KEY
    assert cmds(g.handle(Start(t + 10, BACK))) == []
    assert cmds(g.handle(Resume(t + 10))) == []


def test_control_lost_ends_without_any_command_and_never_requests_control_again():
    g = Governor(FLAT)
    t = start_running(g)
    out = g.handle(MachineStatus(t, StatusKind.CONTROL_LOST))
    # One Stop anyway (the byte may be garbage), never Request Control, never a retry.
    assert cmds(out) == [StopCmd()]
    assert "use the console STOP or pull the safety key" in alarms(out)[0].message
    assert g.ended_reason is EndReason.CONTROL_LOST and not g.has_control
    g.handle(CommandFailed(t + 0.1, StopCmd(), "control not permitted"))
    for event in (Start(t + 1, BACK), Resume(t + 2), Tick(t + 3), SetSpeed(t + 4, 2.0),
                  Tick(t + 10)):
        assert cmds(g.handle(event)) == []


def test_a_garbage_control_lost_after_a_refused_stop_still_sends_one_stop():
    # Found by the whole-session property: Stop refused in a busy moment, its re-send due,
    # then a corrupt status reads 0xFF. The re-sends end, but the one Stop of row 19 goes.
    g = Governor(FLAT)
    t = start_running(g)
    g.handle(EmergencyStop(t))
    g.handle(CommandFailed(t + 0.01, StopCmd(), "op code not supported"))
    out = g.handle(MachineStatus(t + 0.2, StatusKind.CONTROL_LOST))
    assert cmds(out) == [StopCmd()]
    g.handle(CommandFailed(t + 0.3, StopCmd(), "control not permitted"))
    for at in (t + 1, t + 3, t + 10):
        assert cmds(g.handle(Tick(at))) == []


def test_stopped_at_the_console_ends_the_session():
    g = Governor(FLAT)
    t = start_running(g)
    out = g.handle(MachineStatus(t, StatusKind.STOPPED_BY_USER))
    assert cmds(out) == [StopCmd()]
    assert g.ended_reason is EndReason.STOPPED_AT_CONSOLE


def test_echoes_of_our_own_start_and_stop_are_not_console_actions():
    g = Governor(FLAT)
    t = start_running(g)
    assert g.handle(MachineStatus(t, StatusKind.STARTED_BY_USER)) == []
    g.handle(StopBelt(t))
    assert cmds(g.handle(Tick(t))) == [StopCmd()]
    assert g.state is S.STOPPED
    assert g.handle(MachineStatus(t + 0.1, StatusKind.STOPPED_BY_USER)) == []
    assert g.state is S.STOPPED


def test_link_lost_ends_without_commands():
    g = Governor(FLAT)
    t = start_running(g)
    out = g.handle(LinkLost(t))
    assert cmds(out) == []
    assert [a.kind for a in alarms(out)] == [AlarmKind.LINK_LOST]
    assert g.ended_reason is EndReason.LINK_LOST and g.link_state is LinkState.LOST
    assert cmds(g.handle(CommandAccepted(t + 1, RequestControl()))) == []


def test_paused_at_the_console_pauses_and_never_resumes_by_itself():
    g = Governor(FLAT)
    t = start_running(g)
    out = g.handle(MachineStatus(t, StatusKind.PAUSED_BY_USER))
    assert cmds(out) == []
    assert g.state is S.PAUSED
    assert alarms(out, AlarmKind.PAUSED_AT_CONSOLE)
    for k in range(1, 30):
        assert cmds(g.handle(Telemetry(t + k, 0.0))) == []
    assert cmds(g.handle(Resume(t + 31))) == [StartResume()]


def test_started_at_the_console_while_paused_ends_the_session():
    g = Governor(FLAT)
    t = start_running(g)
    g.handle(Pause(t))
    out = g.handle(MachineStatus(t + 1, StatusKind.STARTED_BY_USER))
    assert cmds(out) == [StopCmd()]
    assert g.ended_reason is EndReason.STARTED_AT_CONSOLE


def test_machine_target_above_the_cap_is_not_obeying():
    g = Governor(FLAT)
    t = start_running(g)
    out = g.handle(MachineStatus(t, StatusKind.TARGET_SPEED_CHANGED, 5.0))
    assert cmds(out) == [StopCmd()]
    assert g.ended_reason is EndReason.NOT_OBEYING


def test_unknown_or_garbled_status_is_ignored():
    g = Governor(FLAT)
    t = start_running(g)
    assert g.handle(MachineStatus(t, StatusKind.UNKNOWN, 42.0)) == []
    assert g.handle(MachineStatus(t, "0x42-not-a-kind", math.nan)) == []  # type: ignore[arg-type]
    assert g.state is S.RUNNING


# --------------------------------------------------------- rule 9: emergency stop


def _reach(state):
    g = Governor(HILL)
    if state is S.IDLE:
        return g, 0.0
    if state is S.STARTING:
        g.handle(Start(0.0, BACK))
        return g, 0.1
    t = start_running(g)
    if state is S.RUNNING:
        return g, t
    if state is S.PAUSED:
        g.handle(Pause(t))
    elif state is S.STOPPING:
        g.handle(SetSpeed(t, 2.0))
        t, _ = follow(g, t, t + 15)
        g.handle(StopBelt(t))
    elif state is S.STOPPED:
        g.handle(StopBelt(t))
        g.handle(Tick(t))
    elif state is S.AWAITING_TURN:
        g.handle(TurnAround(t))
        g.handle(Tick(t))
    elif state is S.ENDED:
        g.handle(EndSession(t, "done"))
        g.handle(Tick(t))
    assert g.state is state
    return g, t


@pytest.mark.parametrize("state", list(GovernorState))
def test_emergency_stop_from_any_state_sends_stop_first(state):
    g, t = _reach(state)
    out = g.handle(EmergencyStop(t + 0.01))
    assert isinstance(out[0], ApprovedCommand) and out[0].command == StopCmd()
    assert cmds(out) == [StopCmd()]
    assert g.state is S.ENDED


def test_after_the_end_only_an_emergency_stop_yields_a_command():
    g = Governor(FLAT)
    t = start_running(g)
    g.handle(EmergencyStop(t))
    assert g.ended_reason is EndReason.EMERGENCY_STOP
    for event in (
        Start(t + 1, BACK),
        Resume(t + 1),
        SetSpeed(t + 1, 2.0),
        StopBelt(t + 1),
        TurnAround(t + 1),
        EndSession(t + 1, "x"),
        CommandAccepted(t + 1, RequestControl()),
        Telemetry(t + 2, 2.0),
        Tick(t + 30),
    ):
        out = g.handle(event)
        assert cmds(out) == []
    assert cmds(g.handle(EmergencyStop(t + 40))) == [StopCmd()]


# --------------------------------------------------------- rule 10: backward time limits


def test_bout_limit_stops_the_belt_before_ten_minutes_and_asks_for_rest():
    g = Governor(FLAT)
    t = start_running(g)
    g.handle(SetSpeed(t, 3.0))
    t, seen = follow(g, t, 620.0, dt=0.5)
    stops = [ts for ts, c in seen if c == StopCmd()]
    assert len(stops) == 1 and stops[0] <= 600.0
    assert g.state is S.STOPPED
    out = g.handle(Start(t, BACK))
    assert "rest for" in refusals(out)[0].reason
    # Walking forward instead is fine.
    t = turn_to_awaiting(g, t)
    t, _ = follow(g, t, t + 4)
    g.handle(ConfirmTurned(t))
    assert cmds(g.handle(Start(t + 0.1, FWD))) == [StartResume()]


def test_bout_counter_resets_after_rest():
    g = Governor(FLAT)
    t = start_running(g)
    t, _ = follow(g, t, 300.0, dt=0.5)
    g.handle(StopBelt(t))
    t, _ = follow(g, t, t + 70, dt=0.5)
    assert g.backward_bout_s == 0.0
    assert 290 < g.backward_total_s < 310


def test_session_limit_ends_the_session_after_ramping_down():
    cfg = SafetyConfig(max_backward_bout_s=20, max_backward_session_s=30, bout_rest_s=60)
    g = Governor(FLAT, cfg)
    t = start_running(g)
    t, seen = follow(g, t, t + 40, dt=0.5)
    assert g.state is S.STOPPED
    t, _ = follow(g, t, t + 61, dt=0.5)
    start_running(g, t=t)
    t, seen = follow(g, t + 1, t + 40, dt=0.5)
    assert g.ended_reason is EndReason.SESSION_LIMIT
    assert g.backward_total_s <= 30.0 + 1e-9
    assert [c for _, c in seen][-1] == StopCmd()


# --------------------------------------------------------- rule 11: heart rate


def test_heart_rate_above_cap_slows_down_then_stops_after_the_grace():
    cfg = SafetyConfig(heart_rate_cap_bpm=140)
    g = Governor(FLAT, cfg)
    t = start_running(g)
    g.handle(SetSpeed(t, 2.5))
    t, _ = follow(g, t, t + 20)
    out = g.handle(Telemetry(t, 2.5, None, 145))
    assert g.target_speed_kmh == 2.0
    assert [a.kind for a in alarms(out)] == [AlarmKind.HEART_RATE]
    assert "no increases" in refusals(g.handle(StepSpeed(t + 0.1, 1)))[0].reason
    g.handle(Telemetry(t + 1, 2.5, None, 0))  # no contact: ignored
    stopped = None
    for k in range(1, 80):
        out = g.handle(Telemetry(t + 1 + k, g.commanded_speed_kmh, None, 145))
        for c in cmds(out):
            g.handle(CommandAccepted(t + 1 + k, c))
            if c == StopCmd():
                stopped = t + 1 + k
    assert stopped is not None and stopped >= t + 60
    assert g.ended_reason is EndReason.HEART_RATE


def test_heart_rate_far_above_cap_stops_at_once_with_a_ramp():
    cfg = SafetyConfig(heart_rate_cap_bpm=140)
    g = Governor(FLAT, cfg)
    t = start_running(g)
    g.handle(SetSpeed(t, 2.0))
    t, _ = follow(g, t, t + 15)
    out = g.handle(Telemetry(t, 2.0, None, 151))
    assert g.state is S.STOPPING
    assert cmds(out) == [SetTargetSpeed(1.9)]  # ramped, not an emergency stop
    g.handle(CommandAccepted(t, SetTargetSpeed(1.9)))
    follow(g, t, t + 10)
    assert g.ended_reason is EndReason.HEART_RATE


def test_heart_rate_back_under_the_cap_ends_the_episode():
    cfg = SafetyConfig(heart_rate_cap_bpm=140)
    g = Governor(FLAT, cfg)
    t = start_running(g)
    g.handle(Telemetry(t, 1.0, None, 145))
    g.handle(Telemetry(t + 5, 1.0, None, 130))
    t, _ = follow(g, t + 5, t + 100)
    assert g.state is S.RUNNING


# --------------------------------------------------------- rule 12: pause and resume


def test_resume_restarts_slowly_and_ramps_back_to_the_old_target():
    g = Governor(FLAT)
    t = start_running(g)
    g.handle(SetSpeed(t, 2.0))
    t, _ = follow(g, t, t + 15)
    assert cmds(g.handle(Pause(t))) == [PauseCmd()]
    assert g.state is S.PAUSED and g.target_speed_kmh == 2.0
    g.handle(CommandAccepted(t + 0.1, PauseCmd()))
    g.handle(Telemetry(t + 4, 0.0))
    assert cmds(g.handle(Resume(t + 5))) == [StartResume()]
    g.handle(CommandAccepted(t + 5.1, StartResume()))
    assert cmds(g.handle(Telemetry(t + 6, 0.5))) == [SetTargetSpeed(1.0)]
    g.handle(CommandAccepted(t + 6.1, SetTargetSpeed(1.0)))
    _, seen = follow(g, t + 6, t + 20)
    assert speeds(seen)[0][1] == 1.1 and speeds(seen)[-1][1] == 2.0


# --------------------------------------------------------- rule 13: failed commands


def test_a_refused_stop_is_sent_again_with_back_off_until_the_belt_is_still():
    g = Governor(FLAT)
    t = start_running(g)
    g.handle(EmergencyStop(t))
    out = g.handle(CommandFailed(t + 0.1, StopCmd(), "operation failed"))
    assert [a.message for a in alarms(out)] == [
        "the treadmill did not accept Stop (operation failed): use the console STOP or pull "
        "the safety key; Stop is sent again until the belt is still"
    ]
    sent = []
    now = t + 0.1
    while now < t + 12:
        now = round(now + 0.05, 6)
        for c in cmds(g.handle(Tick(now))):
            assert c == StopCmd()
            sent.append(now)
            assert not alarms(g.handle(CommandFailed(now, StopCmd(), "operation failed")))
    gaps = [round(b - a, 2) for a, b in zip([t + 0.1, *sent], sent, strict=False)]
    assert gaps[:4] == [0.25, 0.5, 1.0, 2.0] and max(gaps) == STOP_RETRY_MAX_S
    assert g.stopping_until_still
    # Accepted at last, and the belt is seen at rest for STILL_S: the retries end there.
    now = sent[-1] + 0.5
    g.handle(Tick(now))
    out = [c for c in cmds(g.handle(Tick(now + 0.1)))]
    while not out and now < sent[-1] + 5:
        now = round(now + 0.05, 6)
        out = cmds(g.handle(Tick(now)))
    assert out == [StopCmd()]
    g.handle(CommandAccepted(now, StopCmd()))
    for k in range(int(STILL_S / 0.25) + 2):
        at = now + 0.25 * (k + 1)
        assert cmds(g.handle(Telemetry(at, 0.0)) + g.handle(Tick(at))) == []
    assert not g.stopping_until_still
    assert cmds(g.handle(Tick(now + 30))) == []


def test_an_accepted_stop_is_sent_again_while_the_belt_keeps_moving():
    g = Governor(FLAT)
    t = start_running(g)
    g.handle(EmergencyStop(t))
    g.handle(CommandAccepted(t + 0.1, StopCmd()))
    resent = []
    for k in range(1, 40):
        now = t + 0.1 + 0.25 * k
        out = g.handle(Telemetry(now, 1.0)) + g.handle(Tick(now))
        for c in cmds(out):
            resent.append(now)
            g.handle(CommandAccepted(now, c))
    assert resent and resent[0] - (t + 0.1) >= 3.0 - 1e-9


def test_failed_stop_ends_a_normal_session():
    g = Governor(FLAT)
    t = start_running(g)
    g.handle(StopBelt(t))
    out = []
    while StopCmd() not in cmds(out):  # the ramp ends with a Stop...
        t = round(t + 0.25, 6)
        out = g.handle(Telemetry(t, g.commanded_speed_kmh)) + g.handle(Tick(t))
        for c in cmds(out):
            if c != StopCmd():
                g.handle(CommandAccepted(t, c))
    out = g.handle(CommandFailed(t + 0.2, StopCmd(), "timeout"))  # ...which is refused
    assert g.ended_reason is EndReason.ERROR and alarms(out, AlarmKind.COMMAND_FAILED)
    assert cmds(g.handle(Tick(t + 0.3))) == []
    assert cmds(g.handle(Tick(t + 0.45))) == [StopCmd()]


def test_refused_speed_change_ramps_down_and_ends():
    g = Governor(FLAT)
    t = start_running(g)
    g.handle(SetSpeed(t, 2.0))
    t, _ = follow(g, t, t + 5)
    last = g.commanded_speed_kmh
    out = g.handle(CommandFailed(t, SetTargetSpeed(last), "invalid parameter"))
    assert g.state is S.STOPPING and alarms(out, AlarmKind.COMMAND_FAILED)
    t, seen = follow(g, t, t + 10)
    assert g.ended_reason is EndReason.ERROR and [c for _, c in seen][-1] == StopCmd()


def test_refused_pause_becomes_a_stop():
    g = Governor(FLAT)
    t = start_running(g)
    g.handle(Pause(t))
    out = g.handle(CommandFailed(t + 0.1, PauseCmd(), "op code not supported"))
    assert cmds(out) == [StopCmd()] and g.ended_reason is EndReason.ERROR


# --------------------------------------------------------- remote: only stop or pause

REMOTE = Source.REMOTE


def test_requests_come_from_the_keyboard_unless_told_otherwise():
    assert Start(0.0, BACK).source is Source.KEYBOARD
    assert Start(0.0, BACK, source=Source.PROGRAM).orientation is BACK
    assert EndSession(1.0, "done", source=REMOTE).reason == "done"


def test_a_remote_may_pause_a_running_belt():
    g = Governor(FLAT)
    t = start_running(g)
    out = g.handle(Pause(t, source=REMOTE))
    assert cmds(out) == [PauseCmd()]
    assert g.state is S.PAUSED


def test_a_remote_may_stop_and_end_but_the_belt_ramps_down_as_usual():
    g = Governor(FLAT)
    t = start_running(g)
    assert refusals(g.handle(StopBelt(t, source=REMOTE))) == []
    assert g.state is S.STOPPING
    assert refusals(g.handle(EndSession(t, source=REMOTE))) == []


def test_a_remote_emergency_stop_sends_stop_first():
    g = Governor(FLAT)
    t = start_running(g)
    out = g.handle(EmergencyStop(t, source=REMOTE))
    assert cmds(out) == [StopCmd()]
    assert g.ended_reason is EndReason.EMERGENCY_STOP


@pytest.mark.parametrize(
    "make",
    [
        lambda t: Start(t, BACK, source=REMOTE),
        lambda t: Resume(t, source=REMOTE),
        lambda t: SetSpeed(t, 2.0, source=REMOTE),
        lambda t: StepSpeed(t, 1, source=REMOTE),
        lambda t: SetIncline(t, 1.0, source=REMOTE),
        lambda t: TurnAround(t, source=REMOTE),
        lambda t: ConfirmTurned(t, source=REMOTE),
        lambda t: AcknowledgeStop(t, source=REMOTE),
    ],
)
def test_a_remote_can_never_start_resume_speed_up_or_turn(make):
    g = Governor(HILL)
    g.handle(Telemetry(0.0, 0.0))
    req = make(0.0)
    out = g.handle(req)
    assert out == [Refused(req, "a remote may only stop or pause the belt")]
    assert g.state is S.IDLE


def test_a_remote_cannot_speed_up_a_running_belt():
    g = Governor(FLAT)
    t = start_running(g)
    target = g.target_speed_kmh
    req = SetSpeed(t, 2.5, source=REMOTE)
    assert g.handle(req) == [Refused(req, "a remote may only stop or pause the belt")]
    assert g.target_speed_kmh == target


def test_a_stale_remote_command_is_dropped():
    g = Governor(FLAT)
    t = start_running(g)
    g.handle(Tick(t + 3.0))
    req = Pause(t + 0.5, source=REMOTE)
    out = g.handle(req)
    assert out == [Refused(req, "stale remote command (2.5 s old): ignored")]
    assert g.state is S.RUNNING


def test_a_remote_command_just_inside_two_seconds_counts():
    g = Governor(FLAT)
    t = start_running(g)
    g.handle(Tick(t + 2.0))
    assert cmds(g.handle(Pause(t, source=REMOTE))) == [PauseCmd()]


def test_a_stale_request_from_the_keyboard_is_not_dropped():
    g = Governor(FLAT)
    t = start_running(g)
    g.handle(Tick(t + 3.0))
    assert cmds(g.handle(Pause(t))) == [PauseCmd()]


# --------------------------------------------------------- state table and robustness


def test_ended_has_no_way_out_and_every_live_state_can_end():
    assert not [k for k in TRANSITIONS if k[0] is S.ENDED]
    for state in GovernorState:
        if state is not S.ENDED:
            assert next_state(state, Trigger.FATAL) is S.ENDED


def test_requests_outside_the_table_are_refused_with_a_reason():
    g = Governor(FLAT)
    out = g.handle(Resume(0.0))
    assert refusals(out)[0].reason == "nothing to resume: nothing has started yet"
    assert refusals(g.handle(ConfirmTurned(0.0)))
    assert refusals(g.handle(SetSpeed(0.0, 2.0)))[0].reason == "start the belt first"


@pytest.mark.parametrize(
    "event",
    [
        None,
        object(),
        Tick(math.nan),
        Telemetry(1.0, math.nan, math.inf, -5),
        Telemetry(1.0, -3.0),
        Telemetry(1.0, 1e9),
        SetSpeed(1.0, math.nan),
        StepSpeed(1.0, 2.5),  # type: ignore[arg-type]
        Start(1.0, "sideways"),  # type: ignore[arg-type]
        CommandAccepted(1.0, None),  # type: ignore[arg-type]
        CommandFailed(1.0, "Stop", None),  # type: ignore[arg-type]
        MachineStatus(1.0, None, "x"),  # type: ignore[arg-type]
    ],
)
def test_garbage_never_raises(event):
    g = Governor(HILL)
    start_running(g)
    g.handle(event)
    assert g.internal_errors == 0


def test_time_never_runs_backwards():
    g = Governor(FLAT)
    t = start_running(g)
    g.handle(Tick(t + 1.5))
    g.handle(Telemetry(t - 100.0, 1.0))
    assert g.now == t + 1.5
    assert g.state is S.RUNNING


# --------------------------------------------------- rules learned from adversarial tests


def test_a_backward_start_on_a_tilted_deck_levels_it_first():
    g = Governor(HILL)
    g.handle(Telemetry(0.0, 0.0, 11.5))  # the deck was left up (or set at the console)
    assert cmds(g.handle(Start(0.1, BACK))) == [RequestControl()]
    assert cmds(g.handle(CommandAccepted(0.2, RequestControl()))) == [SetTargetIncline(0.0)]
    g.handle(CommandAccepted(0.3, SetTargetIncline(0.0)))
    t, incline, out = 0.3, 11.5, []
    while not cmds(out):  # the motor lowers it at 0.5 % per s; no Start meanwhile
        t, incline = round(t + 0.25, 6), max(0.0, round(incline - 0.125, 3))
        out = g.handle(Telemetry(t, 0.0, incline)) + g.handle(Tick(t))
    assert cmds(out) == [StartResume()]
    assert incline <= 0.5  # within the backward limit (0 %) and its tolerance


def test_a_turn_to_backward_waits_for_the_deck_to_come_down():
    g = Governor(HILL)
    t = start_running(g, FWD)
    g.handle(SetIncline(t, 10.0))
    t, _ = follow(g, t, t + 30, incline=True)
    assert g.measured_incline_pct == 10.0
    g.handle(TurnAround(t))
    # The belt stops, but the deck stays up: no "turn now", and it is told to come down.
    seen, speed = [], g.commanded_speed_kmh
    for k in range(1, 60):
        at = round(t + 0.25 * k, 6)
        out = g.handle(Telemetry(at, speed, 10.0)) + g.handle(Tick(at))
        for c in cmds(out):
            seen.append(c)
            g.handle(CommandAccepted(at, c))
            speed = c.kmh if isinstance(c, SetTargetSpeed) else 0.0 if c == StopCmd() else speed
        assert not [o for o in out if isinstance(o, TurnAroundReady)]
    assert g.state is S.AWAITING_TURN
    assert seen[seen.index(StopCmd()) + 1 :] == [SetTargetIncline(0.0)]
    t = at
    readings = [g.handle(Telemetry(t + 0.25 * k, 0.0, 0.0)) for k in range(1, 15)]
    ready = [o for out in readings for o in out if isinstance(o, TurnAroundReady)]
    assert ready == [TurnAroundReady(BACK)]


def test_zeros_from_before_the_last_stop_are_not_rest():
    g = Governor(FLAT)
    g.handle(Telemetry(0.0, 0.0))
    g.handle(Start(0.0, BACK))
    g.handle(CommandAccepted(0.1, RequestControl()))
    g.handle(CommandAccepted(0.2, StartResume()))
    for k in range(1, 12):  # a start countdown: zeros while the belt is about to move
        g.handle(Telemetry(0.2 + 0.25 * k, 0.0))
    assert cmds(g.handle(TurnAround(3.0))) == [StopCmd()]
    g.handle(CommandAccepted(3.1, StopCmd()))
    out = g.handle(Tick(3.2)) + g.handle(Tick(5.0))
    assert not [o for o in out if isinstance(o, TurnAroundReady)]
    # Fresh zeros after the Stop, for the whole dwell: now it is rest.
    readings = [g.handle(Telemetry(5.0 + 0.25 * k, 0.0)) for k in range(14)]
    assert [o for out in readings for o in out if isinstance(o, TurnAroundReady)]


def test_telemetry_that_drops_out_while_slowing_is_not_rest():
    g = Governor(FLAT)
    t = start_running(g)
    g.handle(SetSpeed(t, 2.0))
    t, _ = follow(g, t, t + 15)
    assert cmds(g.handle(EmergencyStop(t))) == [StopCmd()]
    g.handle(CommandAccepted(t + 0.1, StopCmd()))
    g.handle(Telemetry(t + 0.25, 1.0))  # ... and then nothing: a drop-out, not a silent stop
    out = []
    for k in range(1, 40):
        out += g.handle(Tick(t + 0.25 + 0.25 * k))
    assert not [o for o in out if isinstance(o, TurnAroundReady)]
    assert g.stopping_until_still and StopCmd() in cmds(out)  # Stop is sent again


def test_a_first_turn_on_a_tilted_deck_takes_control_to_level_it():
    g = Governor(HILL)
    g.handle(Telemetry(0.0, 0.0, 5.0))  # deck left at 5 %, belt still, no control yet
    g.handle(TurnAround(0.1))
    assert g.state is S.AWAITING_TURN
    out = g.handle(Tick(0.2))
    assert cmds(out) == [RequestControl()]
    assert cmds(g.handle(CommandAccepted(0.3, RequestControl()))) == []
    levelled = []
    for k in range(1, 30):
        at = 0.3 + 0.25 * k
        out = g.handle(Telemetry(at, 0.0, 5.0 if not levelled else 0.0)) + g.handle(Tick(at))
        assert not [o for o in out if isinstance(o, TurnAroundReady)] or levelled
        for c in cmds(out):
            levelled.append(c)
            g.handle(CommandAccepted(at, c))
    assert levelled == [SetTargetIncline(0.0)] and g.turn_ready


def test_a_first_turn_before_any_reading_makes_rest_visible_with_a_stop():
    g = Governor(FLAT)  # a machine that sends nothing while its belt is still
    g.handle(TurnAround(0.0))
    assert g.state is S.AWAITING_TURN
    assert cmds(g.handle(Tick(1.0))) == []  # a first reading usually comes: wait for it
    assert cmds(g.handle(Tick(2.1))) == [RequestControl()]
    g.handle(CommandAccepted(2.2, RequestControl()))
    assert cmds(g.handle(Tick(2.3))) == [StopCmd()]
    g.handle(CommandAccepted(2.4, StopCmd()))
    ticks = [2.4 + 0.25 * k for k in range(1, round(4 * (NEVER_REPORTED_REST_S + STILL_S)))]
    ready = [t for t in ticks for o in g.handle(Tick(t)) if isinstance(o, TurnAroundReady)]
    assert ready == [], "too early: a silence this short could be a drop-out"
    later = 2.4 + NEVER_REPORTED_REST_S + STILL_S
    out = g.handle(Tick(later)) + g.handle(Tick(later + 0.25))
    # accepted, silent long enough to be rest, and still for the dwell
    assert [o for o in out if isinstance(o, TurnAroundReady)] == [TurnAroundReady(BACK)]


def test_a_stop_refused_before_control_was_ever_held_asks_for_control_once_to_stop():
    g = Governor(FLAT)
    g.handle(Telemetry(0.0, 3.0))  # started at the console; the app never held control
    assert cmds(g.handle(EmergencyStop(0.1))) == [StopCmd()]
    g.handle(CommandFailed(0.2, StopCmd(), "control not permitted"))
    out = []
    t = 0.2
    while not cmds(out):
        t = round(t + 0.05, 6)
        out = g.handle(Telemetry(t, 3.0)) + g.handle(Tick(t))
    assert cmds(out) == [RequestControl()]  # for the Stop's sake only
    g.handle(CommandAccepted(t + 0.1, RequestControl()))
    later = [c for k in range(1, 60) for c in cmds(g.handle(Tick(t + 0.1 + 0.05 * k)))]
    assert later and set(later) == {StopCmd()}  # no start, only the Stop it was asked for


def test_resume_while_the_paused_belt_still_slows_waits_for_rest_then_starts():
    g = Governor(FLAT)
    t = start_running(g)
    g.handle(SetSpeed(t, 2.0))
    t, _ = follow(g, t, t + 15)
    g.handle(Pause(t))
    g.handle(CommandAccepted(t + 0.1, PauseCmd()))
    g.handle(Telemetry(t + 0.2, 1.5))
    assert cmds(g.handle(Resume(t + 0.3))) == []  # no StartResume on a moving belt...
    assert cmds(g.handle(Telemetry(t + 0.5, 0.8)) + g.handle(Tick(t + 0.5))) == []
    out = g.handle(Telemetry(t + 1.0, 0.0)) + g.handle(Tick(t + 1.0))
    assert cmds(out) == [StartResume()]  # ...but once it is seen at rest, it goes
