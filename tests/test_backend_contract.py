"""Guard against bleak changing its backend API: our backend stays a concrete bleak backend."""

from __future__ import annotations

import inspect

from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.scanner import BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection

from simulators.backend import SimulatedBleakClient, SimulatedBleakScanner
from treadmill import ftms


def _signature(name: str, cls: type) -> inspect.Signature:
    obj = inspect.getattr_static(cls, name)
    return inspect.signature(obj.fget if isinstance(obj, property) else obj)


def _missing_parameters(cls: type, base: type) -> dict[str, list[str]]:
    """Parameters of bleak's abstract methods that our overrides do not accept."""
    missing = {}
    for name in base.__abstractmethods__:
        mine = _signature(name, cls).parameters
        theirs = _signature(name, base).parameters
        lacking = [n for n, p in theirs.items() if p.kind is not p.VAR_KEYWORD and n not in mine]
        if lacking:
            missing[name] = lacking
    return missing


def test_client_backend_is_a_concrete_base_bleak_client():
    assert issubclass(SimulatedBleakClient, BaseBleakClient)
    assert not inspect.isabstract(SimulatedBleakClient)
    assert SimulatedBleakClient.__abstractmethods__ == frozenset()
    assert _missing_parameters(SimulatedBleakClient, BaseBleakClient) == {}


def test_scanner_backend_is_a_concrete_base_bleak_scanner():
    assert issubclass(SimulatedBleakScanner, BaseBleakScanner)
    assert not inspect.isabstract(SimulatedBleakScanner)
    assert _missing_parameters(SimulatedBleakScanner, BaseBleakScanner) == {}


def test_client_backend_constructs_the_way_bleak_constructs_it(sim):
    # Exactly the keyword arguments bleak 3.x's BleakClient passes to its backend.
    backend = SimulatedBleakClient(
        sim.ble_device,
        disconnected_callback=None,
        services={ftms.FTMS_SERVICE},
        timeout=30.0,
        bluez={},
        winrt={},
        pair=False,
    )
    assert backend.address == sim.address
    assert not backend.is_connected
    by_address = SimulatedBleakClient(sim.address, disconnected_callback=None, timeout=10.0)
    assert by_address.address == sim.address


def test_bleak_client_and_scanner_accept_the_backends(sim):
    client = BleakClient(sim.ble_device, services=["1826"], backend=sim.client_backend)
    assert client.backend_id == "SimulatedBleakClient"
    assert client.address == sim.address
    scanner = BleakScanner(service_uuids=[ftms.FTMS_SERVICE], backend=sim.scanner_backend)
    assert scanner.backend_id == "SimulatedBleakScanner"


def test_scanner_backend_constructs_the_way_bleak_constructs_it():
    backend = SimulatedBleakScanner(None, None, "active", bluez={}, cb={})
    assert backend.seen_devices == {}


async def test_gatt_objects_are_bleaks_own_types(sim):
    async with BleakClient(sim.ble_device, backend=sim.client_backend) as client:
        services = client.services
        assert isinstance(services, BleakGATTServiceCollection)
        assert all(isinstance(s, BleakGATTService) for s in services)
        chars = list(services.characteristics.values())
        assert chars and all(isinstance(c, BleakGATTCharacteristic) for c in chars)
        descriptors = list(services.descriptors.values())
        assert descriptors and all(isinstance(d, BleakGATTDescriptor) for d in descriptors)
        assert client.mtu_size >= 23
        assert chars[0].max_write_without_response_size == client.mtu_size - 3
