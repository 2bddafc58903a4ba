"""Each quirk profile misbehaves exactly as DESIGN §4 describes, seen through plain bleak."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from bleak.exc import BleakError
from sim_probe import Probe

from treadmill import ftms
from treadmill.ftms import MachineFeature, MachineStatusOp, ResultCode, TargetFeature

OK = ResultCode.SUCCESS


def now() -> float:
    return asyncio.get_running_loop().time()


async def start_and_wait_for_motion(probe: Probe, sim) -> None:
    assert await probe.result(ftms.encode_start_resume()) == OK
    assert await probe.wait_for(lambda: sim.model.moving)


async def test_silent_stop_sends_nothing_while_the_belt_is_still(make_sim):
    sim = make_sim("silent-stop")
    probe = await Probe.connect(sim, control=True)
    await asyncio.sleep(5)
    assert probe.telemetry() == []  # idle: silence, not 0 km/h
    await start_and_wait_for_motion(probe, sim)
    await asyncio.sleep(2)
    assert probe.speeds()[-1] == pytest.approx(0.8)
    assert await probe.result(ftms.encode_stop()) == OK
    await asyncio.sleep(1)  # 0.8 km/h at 1.5 km/h/s: still within a second
    t_still = now()
    await asyncio.sleep(10)
    assert probe.telemetry(t_still) == []
    assert 0.0 not in probe.speeds()


async def test_ignores_speed_when_stopped(make_sim):
    sim = make_sim("ignores-speed-when-stopped")
    probe = await Probe.connect(sim, control=True)
    assert await probe.result(ftms.encode_set_target_speed(3.0)) == OK
    assert sim.model.commanded_speed_kmh is None  # answered success, then ignored
    assert probe.statuses() == []
    # Even right after Start: the 3 s countdown keeps the belt still, so it is ignored again.
    assert await probe.result(ftms.encode_start_resume()) == OK
    assert await probe.result(ftms.encode_set_target_speed(3.0)) == OK
    await asyncio.sleep(10)
    assert sim.model.belt_speed_kmh == pytest.approx(0.8)
    # Once the belt moves, targets work.
    assert await probe.result(ftms.encode_set_target_speed(3.0)) == OK
    await asyncio.sleep(5)
    assert sim.model.belt_speed_kmh == pytest.approx(3.0)


async def test_disconnects_on_speed_when_stopped(make_sim):
    sim = make_sim("disconnects-on-speed-when-stopped")
    probe = await Probe.connect(sim, control=True)
    with pytest.raises(BleakError):
        await probe.client.write_gatt_char(
            ftms.CONTROL_POINT, ftms.encode_set_target_speed(3.0), response=True
        )
    await asyncio.sleep(0)
    assert not probe.client.is_connected and probe.disconnects == 1
    assert sim.control_log[-1][1] == ftms.encode_set_target_speed(3.0)  # it did reach the device
    assert probe.responses() == [bytes([0x80, 0x00, 0x01])]  # only Request Control's answer


async def test_stray_zeros_one_frame_in_twenty(make_sim):
    sim = make_sim("stray-zeros")
    probe = await Probe.connect(sim, control=True)
    await start_and_wait_for_motion(probe, sim)
    t_moving = now()
    assert await probe.result(ftms.encode_set_target_speed(3.0)) == OK
    await asyncio.sleep(60)
    speeds = probe.speeds(t_moving)
    zeros = [i for i, s in enumerate(speeds) if s == 0.0]
    assert len(zeros) == len(speeds) // 20
    assert all(b - a == 20 for a, b in itertools.pairwise(zeros))  # single frames
    assert [s for s in speeds if s][-1] == 3.0
    assert sim.model.belt_speed_kmh == pytest.approx(3.0)


async def test_no_incline_report_claims_but_never_reports_incline(make_sim):
    sim = make_sim("no-incline-report")
    probe = await Probe.connect(sim, control=True)
    features = ftms.decode_features(await probe.read(ftms.FITNESS_MACHINE_FEATURE))
    assert features.has(MachineFeature.INCLINATION)
    assert features.can_target(TargetFeature.INCLINATION)
    await start_and_wait_for_motion(probe, sim)
    assert await probe.result(ftms.encode_set_target_inclination(3.0)) == OK
    await asyncio.sleep(10)
    assert sim.model.incline_pct == pytest.approx(3.0)
    samples = [s for _, s in probe.telemetry()]
    assert samples and all(s.incline_pct is None and s.ramp_deg is None for s in samples)
    expected = ftms.encode_machine_status(MachineStatusOp.TARGET_INCLINE_CHANGED, 3.0)
    assert expected in probe.statuses()  # the status still echoes the target


async def test_slow_belt_still_accelerating_five_seconds_later(make_sim):
    sim = make_sim("slow-belt")
    probe = await Probe.connect(sim, control=True)
    await start_and_wait_for_motion(probe, sim)
    await asyncio.sleep(10)
    t_set = now()
    assert await probe.result(ftms.encode_set_target_speed(3.0)) == OK
    await asyncio.sleep(5)
    recent = probe.speeds(now() - 1)
    assert recent == sorted(recent) and recent[-1] < 3.0
    assert recent[-1] == pytest.approx(0.8 + 0.2 * (now() - t_set), abs=0.06)


async def test_no_status_even_for_the_safety_key(make_sim):
    sim = make_sim("no-status")
    probe = await Probe.connect(sim, control=True)
    await start_and_wait_for_motion(probe, sim)
    assert await probe.result(ftms.encode_set_target_speed(3.0)) == OK
    sim.inject("safety-key")
    await asyncio.sleep(5)
    assert not sim.model.moving and probe.statuses() == []
    assert probe.client.services.get_characteristic(ftms.MACHINE_STATUS) is not None


async def test_coarse_incline_rounds_to_whole_percent(make_sim):
    sim = make_sim("coarse-incline")
    probe = await Probe.connect(sim, control=True)
    incline = ftms.decode_inclination_range(await probe.read(ftms.SUPPORTED_INCLINATION_RANGE))
    assert incline.step == 1.0
    assert await probe.result(ftms.encode_set_target_inclination(2.4)) == OK
    await asyncio.sleep(10)
    expected = ftms.encode_machine_status(MachineStatusOp.TARGET_INCLINE_CHANGED, 2.0)
    assert probe.statuses()[-1] == expected
    assert sim.model.incline_pct == pytest.approx(2.0)
    assert probe.telemetry()[-1][1].incline_pct == 2.0


async def test_high_minimum_starts_at_four_and_a_half(make_sim):
    sim = make_sim("high-minimum")
    probe = await Probe.connect(sim, control=True)
    speed = ftms.decode_speed_range(await probe.read(ftms.SUPPORTED_SPEED_RANGE))
    assert speed.minimum == 4.5
    low = ftms.encode_set_target_speed(3.0)
    assert await probe.result(low) == ResultCode.INVALID_PARAMETER
    await start_and_wait_for_motion(probe, sim)
    await asyncio.sleep(10)
    assert probe.speeds()[-1] == 4.5


async def test_walking_pad_has_no_incline_anywhere(make_sim):
    sim = make_sim("walking-pad")
    probe = await Probe.connect(sim, control=True)
    features = ftms.decode_features(await probe.read(ftms.FITNESS_MACHINE_FEATURE))
    assert not features.has(MachineFeature.INCLINATION)
    assert not features.can_target(TargetFeature.INCLINATION)
    assert probe.client.services.get_characteristic(ftms.SUPPORTED_INCLINATION_RANGE) is None
    await start_and_wait_for_motion(probe, sim)
    await asyncio.sleep(2)
    assert all(s.incline_pct is None for _, s in probe.telemetry())


async def test_gym_counts_down_and_reports_heart_rate(make_sim):
    sim = make_sim("gym")
    probe = await Probe.connect(sim, control=True)
    t_start = now()
    assert await probe.result(ftms.encode_start_resume()) == OK
    assert await probe.wait_for(lambda: any(s for s in probe.speeds()))
    first_motion = next(t for t, s in probe.telemetry() if s.speed_kmh)
    assert first_motion - t_start >= 3.0
    assert await probe.result(ftms.encode_set_target_speed(8.0)) == OK
    await asyncio.sleep(300)
    heart = [s.heart_rate_bpm for _, s in probe.telemetry()]
    assert heart[0] < 80 < heart[-1]
