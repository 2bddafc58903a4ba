"""A third-party FTMS client (pyftms 0.4) reads the same ranges and telemetry from the simulator."""

from __future__ import annotations

import asyncio
from typing import Any

import pyftms
import pyftms.client.client as pyftms_client
import pytest
from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from pyftms.client.properties import MachineType, SettingRange, read_device_info, read_features
from pyftms.models import MachineStatusCode, MachineStatusModel, TreadmillData
from pyftms.serializer import get_serializer
from sim_probe import Probe

from simulators.treadmill import VirtualTreadmill
from treadmill import ftms

TREADMILL_DATA = get_serializer(TreadmillData)
MACHINE_STATUS = get_serializer(MachineStatusModel)


def as_setting_range(r: ftms.Range) -> SettingRange:
    return SettingRange(r.minimum, r.maximum, r.step)


@pytest.mark.parametrize("profile", ["home", "walking-pad", "gym", "coarse-incline"])
async def test_pyftms_property_readers(make_sim, profile):
    sim = make_sim(profile)
    async with BleakClient(sim.ble_device, backend=sim.client_backend) as client:
        features, _settings, ranges = await read_features(client, MachineType.TREADMILL)
        info = await read_device_info(client)
    assert ranges["target_speed"] == as_setting_range(sim.profile.speed)
    if sim.profile.incline is None:
        assert "target_inclination" not in ranges
    else:
        assert ranges["target_inclination"] == as_setting_range(sim.profile.incline)
    assert bool(features & features.HEART_RATE) == sim.profile.reports.heart_rate
    assert info["manufacturer"] == sim.profile.device_info.manufacturer
    assert info["model"] == sim.profile.device_info.model
    assert info["serial_number"].startswith("SIM")


async def test_pyftms_deserializers_read_our_notifications(make_sim):
    sim = make_sim("gym")
    probe = await Probe.connect(sim, control=True)
    assert await probe.result(ftms.encode_start_resume()) == ftms.ResultCode.SUCCESS
    assert await probe.wait_for(lambda: sim.model.moving)
    assert await probe.result(ftms.encode_set_target_speed(6.0)) == ftms.ResultCode.SUCCESS
    assert await probe.result(ftms.encode_set_target_inclination(-2.0)) == ftms.ResultCode.SUCCESS
    await asyncio.sleep(20)
    last = TREADMILL_DATA.deserialize(probe.packets(ftms.TREADMILL_DATA)[-1])
    model = sim.model
    assert last.speed_instant == pytest.approx(model.belt_speed_kmh) == 6.0
    assert last.inclination.inclination == pytest.approx(model.incline_pct) == -2.0
    assert last.distance_total == int(model.distance_m)
    assert last.heart_rate == round(model.heart_rate_bpm)
    assert last.time_elapsed == int(model.elapsed_s)
    statuses = [MACHINE_STATUS.deserialize(s) for s in probe.statuses()]
    assert [s.code for s in statuses] == [
        MachineStatusCode.START_RESUME,
        MachineStatusCode.SPEED,
        MachineStatusCode.INCLINE,
    ]
    assert statuses[1].target_speed == 6.0 and statuses[2].target_inclination == -2.0


async def test_pyftms_pitfalls_reproduce_on_our_faults(make_sim):
    # DESIGN §4: pyftms raises EOFError on short packets, and a bare `assert` (AssertionError,
    # gone under python -O) on status bytes it does not consume: unknown op codes with a
    # parameter, and real captures with trailing bytes (CS-WP8 "04 00 00"). A client using
    # its deserializers must catch both; the simulator makes both happen on demand.
    sim = make_sim("home")
    probe = await Probe.connect(sim, control=True)
    assert await probe.result(ftms.encode_start_resume()) == ftms.ResultCode.SUCCESS
    await asyncio.sleep(2)
    sim.inject("short-packet")
    sim.inject("unknown-status")
    await asyncio.sleep(1)
    full = len(probe.packets(ftms.TREADMILL_DATA)[0])
    short = next(p for p in probe.packets(ftms.TREADMILL_DATA) if len(p) < full)
    with pytest.raises(EOFError):
        TREADMILL_DATA.deserialize(short)
    assert probe.statuses()[-1] == bytes([0x42, 0x01, 0x02])
    with pytest.raises(AssertionError):
        MACHINE_STATUS.deserialize(probe.statuses()[-1])


@pytest.fixture
def pyftms_on_simulators(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make pyftms connect through the simulator backend.

    pyftms calls bleak_retry_connector.establish_connection with `kwargs=...` literally, so a
    `backend=` cannot reach BleakClient; only the connection set-up is replaced here."""

    async def establish_connection(
        client_class: type[BleakClient], device: BLEDevice, name: str, **kwargs: Any
    ) -> BleakClient:
        sim = device.details
        assert isinstance(sim, VirtualTreadmill)
        client = client_class(
            device,
            kwargs.get("disconnected_callback"),
            services=kwargs.get("services"),
            backend=sim.client_backend,
        )
        await client.connect()
        return client

    async def close_stale_connections(device: BLEDevice, only_other_adapters: bool = False):
        return None  # would ask BlueZ over D-Bus

    monkeypatch.setattr(pyftms_client, "establish_connection", establish_connection)
    monkeypatch.setattr(pyftms_client, "close_stale_connections", close_stale_connections)


@pytest.mark.usefixtures("pyftms_on_simulators")
async def test_pyftms_fitness_machine_drives_the_simulator(make_sim):
    sim = make_sim("home")
    found = await BleakScanner.discover(timeout=1.0, backend=sim.scanner_backend, return_adv=True)
    device, adv = found[sim.address]
    events: list[pyftms.UpdateEvent | pyftms.SetupEvent | pyftms.ControlEvent] = []
    machine = pyftms.get_client(device, adv, on_ftms_event=events.append)
    assert isinstance(machine, pyftms.Treadmill)

    await machine.connect()
    assert machine.supported_ranges["target_speed"] == SettingRange(0.8, 16.0, 0.1)
    assert machine.supported_ranges["target_inclination"] == SettingRange(0.0, 15.0, 0.5)
    assert machine.device_info["model"] == "SIM-HOME-1"

    assert await machine.start_resume() == pyftms.ResultCode.SUCCESS  # requests control itself
    await asyncio.sleep(3)  # start, wait for motion, then set speed
    assert await machine.set_target_speed(4.0) == pyftms.ResultCode.SUCCESS
    await asyncio.sleep(6)
    speeds = [
        e.event_data["speed_instant"]
        for e in events
        if e.event_id == "update" and "speed_instant" in e.event_data
    ]
    assert speeds == sorted(speeds) and len(set(speeds)) > 10  # rising at 1 km/h/s
    assert speeds[-1] == 4.0
    assert machine.speed_instant == pytest.approx(sim.model.belt_speed_kmh)
    assert [b for _, b in sim.control_log] == [
        ftms.encode_request_control(),
        ftms.encode_start_resume(),
        ftms.encode_set_target_speed(4.0),
    ]

    assert await machine.stop() == pyftms.ResultCode.SUCCESS
    await asyncio.sleep(5)
    assert machine.speed_instant == 0.0 and not sim.model.moving
    await machine.disconnect()
    assert not machine.is_connected and not sim.connected
