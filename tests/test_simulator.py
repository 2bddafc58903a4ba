"""Every profile end to end through plain bleak, and the GATT server's protocol behaviour."""

from __future__ import annotations

import asyncio
import itertools
import re
import time

import pytest
from bleak import BleakClient, BleakScanner
from bleak.exc import BleakDeviceNotFoundError, BleakError, BleakGATTProtocolError
from sim_probe import Probe

from simulators import radio
from simulators.profiles import Profile, profile_names
from simulators.treadmill import VirtualTreadmill
from simulators.virtual_time import VirtualTimeLoop
from treadmill import ftms
from treadmill.ftms import MachineStatusOp, ResultCode, TargetFeature, TrainingStatusCode

OK = ResultCode.SUCCESS


def now() -> float:
    return asyncio.get_running_loop().time()


def status(op: int, value: float | None = None) -> bytes:
    return ftms.encode_machine_status(op, value)


async def running_probe(sim: VirtualTreadmill, kmh: float | None = None) -> Probe:
    """Connected, subscribed, in control, belt running (at `kmh` if given)."""
    probe = await Probe.connect(sim, control=True)
    assert await probe.result(ftms.encode_start_resume()) == OK
    assert await probe.wait_for(lambda: sim.model.moving)
    if kmh is not None:
        assert await probe.result(ftms.encode_set_target_speed(kmh)) == OK
        assert await probe.wait_for(lambda: sim.model.belt_speed_kmh == pytest.approx(kmh))
    return probe


# ---- every profile, end to end ---------------------------------------------------------


async def check_discovery(sim: VirtualTreadmill) -> None:
    found = await BleakScanner.discover(timeout=1.0, backend=sim.scanner_backend, return_adv=True)
    device, adv = found[sim.address]
    assert device.details is sim and device.name == sim.name
    assert adv.local_name == sim.name and adv.rssi == sim.rssi
    assert ftms.FTMS_SERVICE in adv.service_uuids
    machine = ftms.decode_ftms_service_data(adv.service_data[ftms.FTMS_SERVICE])
    assert machine is not None and machine.available and machine.is_treadmill


async def check_static_reads(probe: Probe, profile: Profile) -> None:
    features = ftms.decode_features(await probe.read(ftms.FITNESS_MACHINE_FEATURE))
    assert features.can_target(TargetFeature.SPEED)
    assert features.can_target(TargetFeature.INCLINATION) == (profile.incline is not None)
    speed = ftms.decode_speed_range(await probe.read(ftms.SUPPORTED_SPEED_RANGE))
    assert speed == profile.speed
    has_incline_range = probe.client.services.get_characteristic(ftms.SUPPORTED_INCLINATION_RANGE)
    assert (has_incline_range is not None) == (profile.incline is not None)
    if profile.incline is not None:
        incline = ftms.decode_inclination_range(await probe.read(ftms.SUPPORTED_INCLINATION_RANGE))
        assert incline == profile.incline
    info = profile.device_info
    assert (await probe.read(ftms.MANUFACTURER_NAME)).decode() == info.manufacturer
    assert (await probe.read(ftms.MODEL_NUMBER)).decode() == info.model
    assert (await probe.read(ftms.FIRMWARE_REVISION)).decode() == info.firmware
    assert (await probe.read(ftms.SERIAL_NUMBER)).decode().startswith("SIM")
    training = ftms.decode_training_status(await probe.read(ftms.TRAINING_STATUS))
    assert training.status == TrainingStatusCode.IDLE


@pytest.mark.parametrize("name", profile_names())
async def test_every_profile_end_to_end(make_sim, name):
    sim = make_sim(name)
    profile = sim.profile
    period = 1 / profile.notify_hz
    await check_discovery(sim)
    probe = await Probe.connect(sim)
    await check_static_reads(probe, profile)
    assert await probe.result(ftms.encode_request_control()) == OK

    # Start: the belt goes to the machine minimum (start, wait for motion, then set speed).
    assert await probe.result(ftms.encode_start_resume()) == OK
    lo = profile.speed.minimum
    assert await probe.wait_for(lambda: lo in probe.speeds())
    assert max(s for s in probe.speeds() if s is not None) == pytest.approx(lo)

    # Speed: telemetry converges at the profile's acceleration.
    target = round(min(lo + 2.0, profile.speed.maximum), 1)
    t_set = now()
    assert await probe.result(ftms.encode_set_target_speed(target)) == OK
    assert await probe.wait_for(lambda: target in probe.speeds(t_set))
    t_reached = next(t for t, s in probe.telemetry(t_set) if s.speed_kmh == target)
    ramp_s = (target - lo) / profile.accel_kmh_s
    assert ramp_s - period <= t_reached - t_set <= ramp_s + period + 0.05
    ramp = [s.speed_kmh for t, s in probe.telemetry(t_set) if t < t_reached and s.speed_kmh]
    steps = [b - a for a, b in itertools.pairwise(ramp) if b > a]
    assert steps and all(abs(d - profile.accel_kmh_s * period) < 0.02 for d in steps)

    # Incline, when the machine has one.
    if profile.incline is not None:
        t_incline = now()
        assert await probe.result(ftms.encode_set_target_inclination(2.0)) == OK
        await asyncio.sleep(2.0 / profile.incline_rate_pct_s + 1)
        assert sim.model.incline_pct == pytest.approx(2.0)
        inclines = [s.incline_pct for _, s in probe.telemetry(t_incline)]
        if "no-incline-report" in profile.quirks:
            assert set(inclines) == {None}
        else:
            assert inclines[-1] == pytest.approx(2.0)

    if profile.reports.heart_rate:
        assert all(s.heart_rate_bpm for _, s in probe.telemetry())

    # Stop: the belt decelerates to 0 (or telemetry goes silent on silent-stop machines).
    t_stop = now()
    assert await probe.result(ftms.encode_stop()) == OK
    await asyncio.sleep(target / profile.decel_kmh_s + 2)
    assert not sim.model.moving
    if "silent-when-stopped" in profile.quirks:
        t_still = t_stop + target / profile.decel_kmh_s + period
        assert probe.telemetry(t_still) == []
    else:
        assert probe.speeds()[-1] == 0.0

    statuses = probe.statuses()
    if "no-status" in profile.quirks:
        assert statuses == []
    else:
        assert statuses[:2] == [
            status(MachineStatusOp.STARTED_OR_RESUMED_BY_USER),
            status(MachineStatusOp.TARGET_SPEED_CHANGED, target),
        ]
        assert not any(s[0] == MachineStatusOp.STOPPED_OR_PAUSED_BY_USER for s in statuses)
    await probe.disconnect()
    assert not sim.connected


# ---- control point ---------------------------------------------------------------------


async def test_control_point_answers_every_result_code(make_sim):
    sim = make_sim("home")
    probe = await Probe.connect(sim)
    # 0x05 before control was granted, for anything but Request Control
    assert await probe.result(ftms.encode_start_resume()) == ResultCode.CONTROL_NOT_PERMITTED
    assert await probe.result(ftms.encode_request_control()) == OK
    # 0x02 unknown or unsupported op codes (0x04 = target resistance: not on a treadmill)
    assert await probe.result(b"\x7f") == ResultCode.OP_CODE_NOT_SUPPORTED
    assert await probe.result(b"\x04\x10\x00") == ResultCode.OP_CODE_NOT_SUPPORTED
    # 0x03 out of range or malformed
    assert await probe.result(ftms.encode_set_target_speed(16.5)) == ResultCode.INVALID_PARAMETER
    assert await probe.result(ftms.encode_set_target_speed(0.5)) == ResultCode.INVALID_PARAMETER
    assert await probe.result(b"\x02\x10") == ResultCode.INVALID_PARAMETER
    assert await probe.result(b"\x08\x03") == ResultCode.INVALID_PARAMETER
    bad_incline = ftms.encode_set_target_inclination(20)
    assert await probe.result(bad_incline) == ResultCode.INVALID_PARAMETER
    # 0x04 start with the safety key pulled
    sim.inject("safety-key")
    assert await probe.result(ftms.encode_start_resume()) == ResultCode.OPERATION_FAILED
    # the answer always echoes the request op code
    assert probe.responses()[-1] == bytes([0x80, 0x07, 0x04])


async def test_incline_op_is_not_supported_without_incline(make_sim):
    probe = await Probe.connect(make_sim("walking-pad"), control=True)
    result = await probe.result(ftms.encode_set_target_inclination(1.0))
    assert result == ResultCode.OP_CODE_NOT_SUPPORTED


async def test_control_lost_means_not_permitted_until_requested_again(sim):
    probe = await running_probe(sim)
    sim.inject("control-lost")
    await asyncio.sleep(0.1)
    assert probe.statuses()[-1] == bytes([0xFF])
    assert await probe.result(ftms.encode_stop()) == ResultCode.CONTROL_NOT_PERMITTED
    assert await probe.result(ftms.encode_request_control()) == OK


async def test_writing_without_indications_is_an_att_error(sim):
    probe = await Probe.connect(sim, subscribe=(ftms.TREADMILL_DATA,))
    with pytest.raises(BleakGATTProtocolError) as error:
        await probe.client.write_gatt_char(ftms.CONTROL_POINT, b"\x00", response=True)
    assert error.value.code == 0xFD
    assert sim.control_log == [(pytest.approx(now(), abs=0.02), b"\x00")]


async def test_one_procedure_at_a_time(make_sim):
    sim = make_sim("home", faults=["delay-indication@0=2"])
    probe = await Probe.connect(sim)
    await probe.client.write_gatt_char(ftms.CONTROL_POINT, b"\x00", response=True)
    with pytest.raises(BleakGATTProtocolError) as error:
        await probe.client.write_gatt_char(ftms.CONTROL_POINT, b"\x00", response=True)
    assert error.value.code == 0xFE  # Procedure Already in Progress
    await asyncio.sleep(2)
    assert probe.responses() == [bytes([0x80, 0x00, 0x01])]


async def test_indication_arrives_before_write_returns_on_answers_early(make_sim):
    probe = await Probe.connect(make_sim("answers-early"))
    await probe.client.write_gatt_char(ftms.CONTROL_POINT, b"\x00", response=True)
    assert probe.responses() == [bytes([0x80, 0x00, 0x01])]  # already there


async def test_indication_comes_after_the_write_returns_by_default(sim):
    # The ATT/FTMS order: write response, then the indication.
    probe = await Probe.connect(sim)
    await probe.client.write_gatt_char(ftms.CONTROL_POINT, b"\x00", response=True)
    assert probe.responses() == []
    await asyncio.sleep(0.01)
    assert probe.responses() == [bytes([0x80, 0x00, 0x01])]


async def test_notifications_come_from_the_event_loop_not_from_inside_calls(sim):
    probe = await running_probe(sim, 3.0)
    await asyncio.sleep(2)
    assert probe.received and not any(r.in_task for r in probe.received)


async def test_control_log_has_every_write_with_its_time(sim):
    probe = await Probe.connect(sim, control=True)
    t0 = now()
    await asyncio.sleep(5)
    await probe.command(ftms.encode_start_resume())
    await probe.command(b"\x7f")
    assert [data for _, data in sim.control_log] == [b"\x00", b"\x07", b"\x7f"]
    assert sim.control_log[1][0] == pytest.approx(t0 + 5, abs=0.02)


async def test_status_follows_control_point_changes_but_not_its_stop(sim):
    probe = await running_probe(sim, 3.0)
    t = now()
    assert await probe.result(ftms.encode_set_target_inclination(1.5)) == OK
    assert await probe.result(ftms.encode_set_target_speed(4.04)) == OK  # rounded to 4.0
    assert await probe.result(ftms.encode_pause()) == OK
    assert await probe.result(ftms.encode_start_resume()) == OK
    assert await probe.result(ftms.encode_stop()) == OK
    await asyncio.sleep(1)
    assert probe.statuses(t) == [
        status(MachineStatusOp.TARGET_INCLINE_CHANGED, 1.5),
        status(MachineStatusOp.TARGET_SPEED_CHANGED, 4.0),
        status(MachineStatusOp.STARTED_OR_RESUMED_BY_USER),
    ]


async def test_reset_releases_control(sim):
    probe = await running_probe(sim)
    assert await probe.result(ftms.encode_reset()) == OK
    await asyncio.sleep(0.1)
    assert probe.statuses()[-1] == status(MachineStatusOp.RESET)
    assert await probe.result(ftms.encode_start_resume()) == ResultCode.CONTROL_NOT_PERMITTED


async def test_training_status_is_read_and_notified(sim):
    probe = await running_probe(sim)
    assert await probe.result(ftms.encode_pause()) == OK
    await asyncio.sleep(0.1)
    decoded = [ftms.decode_training_status(d) for d in probe.packets(ftms.TRAINING_STATUS)]
    assert [(d.status, d.text) for d in decoded] == [
        (TrainingStatusCode.MANUAL_MODE, ""),
        (TrainingStatusCode.IDLE, "paused"),
    ]
    read = ftms.decode_training_status(await probe.read(ftms.TRAINING_STATUS))
    assert read.status == TrainingStatusCode.IDLE


async def test_wrong_reads_and_writes_are_att_errors(sim):
    probe = await Probe.connect(sim)
    with pytest.raises(BleakGATTProtocolError) as error:
        await probe.read(ftms.TREADMILL_DATA)
    assert error.value.code == 0x02  # Read Not Permitted
    with pytest.raises(BleakGATTProtocolError) as error:
        await probe.client.write_gatt_char(ftms.SUPPORTED_SPEED_RANGE, b"\x00", response=True)
    assert error.value.code == 0x03  # Write Not Permitted


async def test_cccd_descriptor_reflects_subscriptions(sim):
    probe = await Probe.connect(sim, subscribe=(ftms.CONTROL_POINT,))
    services = probe.client.services
    for uuid, expected in ((ftms.CONTROL_POINT, b"\x02\x00"), (ftms.TREADMILL_DATA, b"\x00\x00")):
        char = services.get_characteristic(uuid)
        cccd = char.get_descriptor(ftms.CLIENT_CHARACTERISTIC_CONFIGURATION)
        assert bytes(await probe.client.read_gatt_descriptor(cccd.handle)) == expected


async def test_characteristic_properties(sim):
    async with BleakClient(sim.ble_device, backend=sim.client_backend) as client:
        props = {c.uuid: c.properties for c in client.services.characteristics.values()}
    assert props[ftms.FITNESS_MACHINE_FEATURE] == ["read"]
    assert props[ftms.TREADMILL_DATA] == ["notify"]
    assert props[ftms.TRAINING_STATUS] == ["read", "notify"]
    assert props[ftms.CONTROL_POINT] == ["write", "indicate"]
    assert props[ftms.MACHINE_STATUS] == ["notify"]


# ---- radio, connection life cycle --------------------------------------------------------


def test_default_addresses_are_unique_locally_administered_macs(make_sim):
    a, b = make_sim(), make_sim("gym")
    assert a.address != b.address
    for sim in (a, b):
        assert re.fullmatch(r"([0-9A-F]{2}:){5}[0-9A-F]{2}", sim.address)
        first = int(sim.address[:2], 16)
        assert first & 0x03 == 0x02  # IEEE: locally administered, unicast
        assert first & 0xC0 == 0xC0  # BLE: random static address
    assert a.name == "SIM Treadmill home" and b.name == "SIM Treadmill gym"


def test_an_address_is_taken_until_closed(make_sim):
    first = make_sim(address="F2:0D:AA:00:00:01")
    with pytest.raises(ValueError, match="already used"):
        VirtualTreadmill(address="f2:0d:aa:00:00:01")
    first.close()
    make_sim(address="F2:0D:AA:00:00:01")


def test_unknown_profile_lists_valid_names():
    with pytest.raises(ValueError) as error:
        VirtualTreadmill("moon-walker")
    for name in profile_names():
        assert name in str(error.value)


def test_notify_rate_is_configurable_within_limits(make_sim):
    assert make_sim(notify_hz=10).profile.notify_hz == 10
    with pytest.raises(ValueError):
        VirtualTreadmill(notify_hz=20)


async def test_scanner_reports_advertising_simulators_only(make_sim):
    idle, busy = make_sim(), make_sim()
    async with BleakClient(busy.ble_device, backend=busy.client_backend):
        found = await BleakScanner.discover(timeout=0.5, backend=idle.scanner_backend)
    addresses = {d.address for d in found}
    assert idle.address in addresses and busy.address not in addresses


async def test_scanner_filters_by_service_uuid(sim):
    found = await BleakScanner.discover(
        timeout=0.5, service_uuids=["180d"], backend=sim.scanner_backend
    )
    assert found == []
    found = await BleakScanner.discover(
        timeout=0.5, service_uuids=[ftms.FTMS_SERVICE], backend=sim.scanner_backend
    )
    assert sim.address in {d.address for d in found}


async def test_find_device_by_name_and_address(sim):
    by_name = await BleakScanner.find_device_by_name(sim.name, backend=sim.scanner_backend)
    assert by_name is not None and by_name.details is sim
    by_address = await BleakScanner.find_device_by_address(
        sim.address.lower(), backend=sim.scanner_backend
    )
    assert by_address is not None and by_address.address == sim.address


async def test_connect_by_address_string(sim):
    async with BleakClient(sim.address, backend=sim.client_backend) as client:
        speed = await client.read_gatt_char(ftms.SUPPORTED_SPEED_RANGE)
    assert ftms.decode_speed_range(speed) == sim.profile.speed


async def test_unknown_address_is_not_found_after_the_timeout():
    client = BleakClient("F2:0D:DE:AD:00:00", timeout=5, backend=VirtualTreadmill.client_backend)
    t0 = now()
    with pytest.raises(BleakDeviceNotFoundError):
        await client.connect()
    assert now() - t0 == pytest.approx(5, abs=0.2)


async def test_only_one_central_at_a_time(sim):
    async with BleakClient(sim.ble_device, backend=sim.client_backend):
        second = BleakClient(sim.ble_device, timeout=3, backend=sim.client_backend)
        with pytest.raises(TimeoutError):
            await second.connect()


async def test_solicited_disconnect(sim):
    probe = await running_probe(sim, 3.0)
    await probe.disconnect()
    assert not probe.client.is_connected and not sim.connected
    assert probe.disconnects == 0  # bleak calls it for unsolicited disconnects only
    with pytest.raises(BleakError):
        await probe.read(ftms.SUPPORTED_SPEED_RANGE)
    with pytest.raises(BleakError):
        await probe.client.write_gatt_char(ftms.CONTROL_POINT, b"\x00", response=True)
    assert sim.model.running  # the console keeps the belt going


async def test_unsolicited_disconnect_calls_back(sim):
    probe = await running_probe(sim)
    sim.inject("disconnect")
    await asyncio.sleep(0)
    assert not probe.client.is_connected
    await asyncio.sleep(0)
    assert probe.disconnects == 1


async def test_reconnect_needs_control_and_subscriptions_again(sim):
    probe = await running_probe(sim, 3.0)
    await probe.disconnect()
    await probe.client.connect()
    await asyncio.sleep(2)
    assert probe.telemetry(now() - 1.5) == []  # notifications are off again
    with pytest.raises(BleakGATTProtocolError):
        await probe.client.write_gatt_char(ftms.CONTROL_POINT, b"\x07", response=True)
    await probe.client.start_notify(ftms.CONTROL_POINT, probe._on_notify)
    assert await probe.result(ftms.encode_stop()) == ResultCode.CONTROL_NOT_PERMITTED
    assert await probe.result(ftms.encode_request_control()) == OK


async def test_no_task_leaks_after_disconnect_and_close(make_sim):
    sim = make_sim()
    baseline = asyncio.all_tasks()
    probe = await running_probe(sim, 3.0)
    await asyncio.sleep(3)
    assert len(asyncio.all_tasks()) > len(baseline)  # the telemetry task
    await probe.disconnect()
    assert asyncio.all_tasks() == baseline
    await probe.client.connect()
    await probe.client.start_notify(ftms.TREADMILL_DATA, probe._on_notify)
    sim.close()
    await asyncio.sleep(0)
    assert asyncio.all_tasks() == baseline
    assert not probe.client.is_connected and radio.lookup(sim.address) is None


async def test_close_is_an_unsolicited_disconnect(sim):
    probe = await Probe.connect(sim)
    sim.close()
    await asyncio.sleep(0)
    assert probe.disconnects == 1
    assert await BleakScanner.discover(timeout=0.5, backend=sim.scanner_backend) == []


async def test_async_tests_run_on_virtual_time():
    assert isinstance(asyncio.get_running_loop(), VirtualTimeLoop)
    t0 = time.perf_counter()
    await asyncio.sleep(3600)
    assert now() >= 3600 and time.perf_counter() - t0 < 1


@pytest.mark.real_time
async def test_real_time_marker_gives_a_stock_loop():
    assert not isinstance(asyncio.get_running_loop(), VirtualTimeLoop)
