"""The bleak backend over the virtual radio: pass these classes to bleak with `backend=`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from bleak.args import SizedBuffer
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementDataCallback, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import (
    BleakDeviceNotFoundError,
    BleakError,
    BleakGATTProtocolError,
    BleakGATTProtocolErrorCode,
)
from bleak.uuids import normalize_uuid_str

from simulators import radio
from simulators.gatt import CCCD_INDICATE, CCCD_NOTIFY, CharacteristicSpec
from treadmill.ftms import CLIENT_CHARACTERISTIC_CONFIGURATION

MTU = 247
ADVERTISING_INTERVAL_S = 0.1  # how often a scanning central hears each advertiser
_POLL_S = 0.1  # how often connect() looks again for a device that is not on the air


def build_services(
    table: Sequence[CharacteristicSpec], wanted: set[str] | None
) -> BleakGATTServiceCollection:
    """bleak's view of an attribute table (only the `wanted` services, like real backends)."""
    collection = BleakGATTServiceCollection()
    services: dict[str, BleakGATTService] = {}
    handle = 0
    for spec in table:
        if wanted is not None and spec.service not in wanted:
            continue
        service = services.get(spec.service)
        if service is None:
            handle += 1
            service = services[spec.service] = BleakGATTService(None, handle, spec.service)
            collection.add_service(service)
        handle += 2  # declaration, then the value handle that bleak reports
        char = BleakGATTCharacteristic(
            spec, handle, spec.uuid, list(spec.properties), lambda: MTU - 3, service
        )
        collection.add_characteristic(char)
        if spec.notifies:
            handle += 1
            cccd = BleakGATTDescriptor(spec, handle, CLIENT_CHARACTERISTIC_CONFIGURATION, char)
            collection.add_descriptor(cccd)
    return collection


class SimulatedBleakClient(BaseBleakClient):
    """A bleak client backend talking to a simulated peripheral over the virtual radio."""

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        services: set[str] | None = None,
        *,
        disconnected_callback: Callable[[], None] | None = None,
        timeout: float = 10.0,
        **kwargs: Any,  # bluez=, winrt=, pair=, ...: meaningless here, accepted like bleak does
    ) -> None:
        super().__init__(
            address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout
        )
        self._device = (
            address_or_ble_device if isinstance(address_or_ble_device, BLEDevice) else None
        )
        self._wanted = None if services is None else {normalize_uuid_str(s) for s in services}
        self._peripheral: radio.Peripheral | None = None
        self._connected = False
        self._encrypted = False  # after pair(), for a control point that needs encryption
        self._callbacks: dict[str, NotifyCallback] = {}

    # ---- connection ----------------------------------------------------------------------

    @property
    def name(self) -> str:
        if self._peripheral is not None:
            return self._peripheral.name
        if self._device is not None and self._device.name:
            return self._device.name
        return self.address.replace(":", "-")

    @property
    def mtu_size(self) -> int:
        return MTU

    @property
    def is_connected(self) -> bool:
        return self._connected

    def _resolve(self) -> radio.Peripheral | None:
        details = None if self._device is None else self._device.details
        if isinstance(details, radio.Peripheral) and not details.closed:
            return details
        return radio.lookup(self.address)

    async def connect(self, pair: bool = False, **kwargs: Any) -> None:
        """Connect, waiting up to `timeout` for the device to be on the air (advertising)."""
        if self._connected:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        while (peripheral := self._resolve()) is None or not peripheral.advertising:
            if loop.time() >= deadline:
                if peripheral is None:
                    raise BleakDeviceNotFoundError(
                        self.address, f"Device with address {self.address} was not found."
                    )
                raise TimeoutError(f"{self.address}: no connection within {self._timeout} s")
            await asyncio.sleep(min(_POLL_S, deadline - loop.time()))
        peripheral.link_attach(self)
        self._peripheral = peripheral
        self._connected = True
        self.services = build_services(peripheral.gatt_table(), self._wanted)
        await self._round_trip()

    async def disconnect(self) -> None:
        """Disconnect (solicited: the disconnected callback is not called)."""
        peripheral = self._peripheral
        if not self._connected or peripheral is None:
            return
        self._teardown()
        stopping = peripheral.link_detach(self)
        if stopping:
            await asyncio.wait(stopping)

    def _teardown(self) -> None:
        self._connected = False
        self._encrypted = False
        self.services = None  # type: ignore[assignment]
        self._callbacks.clear()

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        """"Just Works" pairing: one round trip, then the link is encrypted."""
        self._link()
        await self._round_trip()
        self._encrypted = True

    async def unpair(self) -> None:
        """Unpairing also disconnects (as on BlueZ and WinRT)."""
        await self.disconnect()

    # ---- link side (called by the peripheral) --------------------------------------------

    def link_deliver(self, uuid: str, data: bytes) -> None:
        callback = self._callbacks.get(uuid) if self._connected else None
        if callback is not None:
            callback(bytearray(data))

    def link_lost(self) -> None:
        self._teardown()
        if self._disconnected_callback is not None:
            asyncio.get_running_loop().call_soon(self._disconnected_callback)

    # ---- I/O -----------------------------------------------------------------------------

    def _link(self) -> radio.Peripheral:
        if not self._connected or self._peripheral is None:
            raise BleakError("Not connected")
        return self._peripheral

    async def _round_trip(self) -> None:
        """One ATT request/response on the air; the link may drop meanwhile."""
        latency = self._peripheral.att_latency_s if self._peripheral else 0.0
        await asyncio.sleep(latency)
        if not self._connected:
            raise BleakError("Disconnected")

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        self._link()
        await self._round_trip()
        return bytearray(self._link().link_read(characteristic.uuid))

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        self._link()
        await self._round_trip()
        if descriptor.uuid != CLIENT_CHARACTERISTIC_CONFIGURATION:
            raise BleakGATTProtocolError(BleakGATTProtocolErrorCode.READ_NOT_PERMITTED)
        value = self._link().link_cccd(descriptor.characteristic_uuid)
        return bytearray(value.to_bytes(2, "little"))

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool
    ) -> None:
        peripheral = self._link()
        if not response:
            # A Write Command to a characteristic without "write-without-response" is dropped
            # by the server without a word (it cannot answer a command).
            await asyncio.sleep(0)
            return
        try:
            peripheral.link_write(
                characteristic.uuid, bytes(memoryview(data)), encrypted=self._encrypted
            )
        finally:
            # The response (or ATT error) comes back one round trip later; an indication sent
            # by the server is delivered meanwhile (see Profile.indicate_before_write_returns).
            await self._round_trip()

    async def write_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, data: SizedBuffer
    ) -> None:
        self._link()
        await self._round_trip()
        raise BleakGATTProtocolError(BleakGATTProtocolErrorCode.WRITE_NOT_PERMITTED)

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        peripheral = self._link()
        props = characteristic.properties
        if "notify" in props:
            value = CCCD_NOTIFY  # bleak prefers notifications when both are offered
        elif "indicate" in props:
            value = CCCD_INDICATE
        else:
            raise BleakError(f"{characteristic.uuid} does not support notify or indicate")
        self._callbacks[characteristic.uuid] = callback
        await self._round_trip()
        try:
            peripheral.link_set_cccd(characteristic.uuid, value, encrypted=self._encrypted)
        except BleakGATTProtocolError:
            self._callbacks.pop(characteristic.uuid, None)
            raise

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        peripheral = self._link()
        self._callbacks.pop(characteristic.uuid, None)
        await self._round_trip()
        peripheral.link_set_cccd(characteristic.uuid, 0, encrypted=self._encrypted)


class SimulatedBleakScanner(BaseBleakScanner):
    """A bleak scanner backend that hears every simulator on the virtual radio."""

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None = None,
        service_uuids: list[str] | None = None,
        scanning_mode: str = "active",
        **kwargs: Any,  # bluez=, cb=: meaningless here
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.stop()
        self.seen_devices = {}
        self._task = asyncio.create_task(self._listen(), name="simulated-scanner")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])

    async def _listen(self) -> None:
        while True:
            for peripheral in radio.advertisers():
                device, adv = peripheral.advertisement()
                if not self.is_allowed_uuid(adv.service_uuids):
                    continue
                seen = self.create_or_update_device(
                    device.address, device.address, device.name, peripheral, adv
                )
                self.call_detection_callbacks(seen, adv)
            await asyncio.sleep(ADVERTISING_INTERVAL_S)
