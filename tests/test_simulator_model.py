"""The pure treadmill model: physics in closed form, commands like a real console."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulators.model import MachineState, OperationRefused, TreadmillModel
from simulators.profiles import get_profile

HOME = get_profile("home")  # 0.8-16 km/h, accel 1.0, decel 1.5, incline 0.5 %/s


def running_at(kmh: float, t: float = 0.0) -> TreadmillModel:
    m = TreadmillModel(HOME, t)
    m.start(t)
    m.set_target_speed(t, kmh)
    m.advance_to(t + 100)
    return m


def test_new_model_is_idle_and_still():
    m = TreadmillModel(HOME)
    assert m.state is MachineState.IDLE
    assert m.belt_speed_kmh == 0.0
    assert not m.moving and not m.running
    assert m.safety_key_in


def test_start_from_stopped_ramps_to_minimum_speed():
    m = TreadmillModel(HOME)
    assert m.start(0.0)
    m.advance_to(0.4)
    assert m.belt_speed_kmh == pytest.approx(0.4)  # 1 km/h/s
    m.advance_to(10.0)
    assert m.belt_speed_kmh == pytest.approx(0.8)


def test_speed_follows_target_at_profile_acceleration():
    m = running_at(2.0)
    m.set_target_speed(100.0, 5.0)
    m.advance_to(101.5)
    assert m.belt_speed_kmh == pytest.approx(3.5)
    m.advance_to(103.0)
    assert m.belt_speed_kmh == pytest.approx(5.0)
    m.set_target_speed(103.0, 2.0)
    m.advance_to(104.0)
    assert m.belt_speed_kmh == pytest.approx(3.5)  # 1.5 km/h/s down


def test_distance_is_the_exact_integral_of_a_ramp():
    m = running_at(2.0)
    start = m.distance_m
    m.set_target_speed(100.0, 5.0)
    m.advance_to(110.0)
    # 3 s ramp from 2 to 5 km/h (avg 3.5), then 7 s at 5 km/h.
    expected_m = (3.5 * 3 + 5.0 * 7) / 3.6
    assert m.distance_m - start == pytest.approx(expected_m)


def test_one_big_step_equals_many_small_ones():
    coarse, fine = running_at(2.0), running_at(2.0)
    for m in (coarse, fine):
        m.set_target_speed(100.0, 7.0)
        m.set_target_incline(100.0, 4.0)
    coarse.advance_to(130.0)
    for i in range(1, 3001):
        fine.advance_to(100.0 + i * 0.01)
    assert coarse.belt_speed_kmh == pytest.approx(fine.belt_speed_kmh)
    assert coarse.distance_m == pytest.approx(fine.distance_m)
    assert coarse.elapsed_s == pytest.approx(fine.elapsed_s)
    assert coarse.incline_pct == pytest.approx(fine.incline_pct)


def test_incline_moves_at_motor_rate():
    m = running_at(3.0)
    m.set_target_incline(100.0, 3.0)
    m.advance_to(102.0)
    assert m.incline_pct == pytest.approx(1.0)  # 0.5 %/s
    m.advance_to(200.0)
    assert m.incline_pct == pytest.approx(3.0)


def test_stop_decelerates_to_zero_and_lowers_incline():
    m = running_at(3.0)
    m.set_target_incline(100.0, 2.0)
    m.advance_to(110.0)
    assert m.stop(110.0)
    assert m.state is MachineState.IDLE
    m.advance_to(111.0)
    assert m.belt_speed_kmh == pytest.approx(1.5)
    m.advance_to(130.0)
    assert m.belt_speed_kmh == 0.0
    assert m.incline_pct == 0.0


def test_pause_keeps_incline_and_resume_returns_to_minimum():
    m = running_at(4.0)
    m.set_target_incline(100.0, 2.0)
    m.advance_to(110.0)
    assert m.pause(110.0)
    m.advance_to(120.0)
    assert m.belt_speed_kmh == 0.0 and m.incline_pct == pytest.approx(2.0)
    distance, elapsed = m.distance_m, m.elapsed_s
    assert m.start(120.0)  # resume keeps the session's counters
    m.advance_to(140.0)
    assert m.belt_speed_kmh == pytest.approx(0.8)
    assert m.distance_m > distance and m.elapsed_s == pytest.approx(elapsed + 20)


def test_new_session_zeroes_counters():
    m = running_at(4.0)
    m.stop(100.0)
    m.advance_to(110.0)
    assert m.distance_m > 0
    m.start(110.0)
    assert m.distance_m == 0 and m.elapsed_s == 0 and m.energy_kcal == 0


def test_speed_set_while_stopped_is_used_by_start():
    m = TreadmillModel(HOME)
    m.set_target_speed(0.0, 3.0)
    assert m.belt_speed_kmh == 0.0 and m.commanded_speed_kmh == 3.0
    m.start(1.0)
    m.advance_to(20.0)
    assert m.belt_speed_kmh == pytest.approx(3.0)


def test_countdown_holds_the_belt():
    m = TreadmillModel(get_profile("gym"))  # 3 s countdown, 1.5 km/h/s
    m.start(0.0)
    m.advance_to(2.9)
    assert m.running and not m.moving and m.countdown_s == pytest.approx(0.1)
    assert m.elapsed_s == 0.0
    m.advance_to(3.5)
    assert m.belt_speed_kmh == pytest.approx(0.75)


def test_safety_key_stops_fast_and_blocks_start_until_reinserted():
    m = running_at(10.0)
    assert m.pull_safety_key(100.0)
    m.advance_to(101.0)
    assert m.belt_speed_kmh == 0.0  # 10 km/h/s emergency deceleration
    with pytest.raises(OperationRefused):
        m.start(102.0)
    m.insert_safety_key(103.0)
    assert m.start(104.0)


def test_energy_and_heart_rate_rise_with_effort():
    m = running_at(6.0)
    m.advance_to(1900.0)
    assert 100 < m.energy_kcal < 400  # ~30 min brisk walk for 70 kg
    assert m.energy_per_hour_kcal > 0
    assert m.heart_rate_bpm > 90


def test_time_never_runs_backwards():
    m = running_at(3.0)
    distance = m.distance_m
    m.advance_to(50.0)
    assert m.distance_m == distance and m.time == 100.0


def test_overshoot_and_nudge_hooks():
    m = running_at(3.0)
    m.set_speed_offset(100.0, 1.0)
    m.advance_to(200.0)
    assert m.belt_speed_kmh == pytest.approx(4.0)
    m.set_speed_offset(200.0, 0.0)
    m.nudge_speed(200.0, 2.0)
    m.advance_to(300.0)
    assert m.belt_speed_kmh == pytest.approx(5.0)


def test_nudge_starts_a_still_belt_but_not_without_key():
    m = TreadmillModel(HOME)
    m.nudge_speed(0.0, 1.0)
    m.advance_to(10.0)
    assert m.running and m.belt_speed_kmh == pytest.approx(1.8)
    keyless = TreadmillModel(HOME)
    keyless.pull_safety_key(0.0)
    keyless.nudge_speed(0.0, 1.0)
    keyless.advance_to(10.0)
    assert not keyless.moving


_COMMANDS = st.sampled_from(["start", "stop", "pause", "speed", "incline", "key", "unkey"])


@given(
    script=st.lists(
        st.tuples(st.floats(0.01, 30), _COMMANDS, st.floats(0.8, 16.0), st.integers(1, 9)),
        max_size=12,
    )
)
def test_splitting_time_never_changes_the_physics(script):
    whole, split = TreadmillModel(get_profile("gym")), TreadmillModel(get_profile("gym"))
    t = 0.0
    for dt, command, value, pieces in script:
        for i in range(1, pieces):
            split.advance_to(t + dt * i / pieces)
        t += dt
        for m in (whole, split):
            m.advance_to(t)
            match command:
                case "start" if m.safety_key_in:
                    m.start(t)
                case "stop":
                    m.stop(t)
                case "pause":
                    m.pause(t)
                case "speed":
                    m.set_target_speed(t, value)
                case "incline":
                    m.set_target_incline(t, value - 3.8)
                case "key":
                    m.pull_safety_key(t)
                case "unkey":
                    m.insert_safety_key(t)
        assert whole.belt_speed_kmh == pytest.approx(split.belt_speed_kmh, abs=1e-9)
        assert whole.distance_m == pytest.approx(split.distance_m, abs=1e-6)
        assert whole.elapsed_s == pytest.approx(split.elapsed_s, abs=1e-9)
        assert whole.incline_pct == pytest.approx(split.incline_pct, abs=1e-9)
        assert 0.0 <= whole.belt_speed_kmh <= 16.0
