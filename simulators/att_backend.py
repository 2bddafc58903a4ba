"""The bleak backend over a Bumble central (ATT transport): pass these classes to bleak with
`backend=`, as with the GATT-level backend in simulators/backend.py.

Every call becomes ATT on the loop's air (simulators/air.py): service discovery, an MTU
exchange at connect (BlueZ, Android and macOS all ask for a larger MTU; the treadmill answers
with what it supports), CCCD writes, write requests and responses, confirmed indications,
SMP pairing ("Just Works") and HCI disconnects. Bumble's errors become bleak's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, override

from bleak.args import SizedBuffer
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import (
    BleakDeviceNotFoundError,
    BleakError,
    BleakGATTProtocolError,
    BleakGATTProtocolErrorCode,
)
from bleak.uuids import normalize_uuid_str
from bumble import att, core, gatt, hci
from bumble.core import UUID, AdvertisingData
from bumble.device import Advertisement, Connection, Device, Peer
from bumble.gatt_client import CharacteristicProxy, DescriptorProxy, ServiceProxy

from simulators import air, radio
from simulators.att_server import AttPeripheral, bumble_uuid

CLIENT_MTU = 247  # what the central asks for (BlueZ asks for 517; 247 fills one LE packet)
SCAN_INTERVAL_MS = 60.0
_POLL_S = 0.1
_PROPERTY_NAMES = {
    gatt.Characteristic.Properties.BROADCAST: "broadcast",
    gatt.Characteristic.Properties.READ: "read",
    gatt.Characteristic.Properties.WRITE_WITHOUT_RESPONSE: "write-without-response",
    gatt.Characteristic.Properties.WRITE: "write",
    gatt.Characteristic.Properties.NOTIFY: "notify",
    gatt.Characteristic.Properties.INDICATE: "indicate",
    gatt.Characteristic.Properties.AUTHENTICATED_SIGNED_WRITES: "authenticated-signed-writes",
    gatt.Characteristic.Properties.EXTENDED_PROPERTIES: "extended-properties",
}


def bleak_uuid(uuid: UUID) -> str:
    return normalize_uuid_str(uuid.to_hex_str("-").lower())


def _att_peripheral(peripheral: radio.Peripheral | None) -> AttPeripheral | None:
    att_side = getattr(peripheral, "att", None)
    return att_side if isinstance(att_side, AttPeripheral) else None


async def _central(name: str) -> Device:
    """A powered-on Bumble central on this loop's air (one per client or scanner, like an
    adapter each)."""
    device = air.new_device(name, air.central_address())
    await device.power_on()
    return device


def _leave_air(device: Device | None) -> None:
    if device is None:
        return
    controller = air.controller_of(device)
    link = getattr(controller, "link", None)
    if isinstance(link, air.AirLink) and controller is not None:
        link.remove_controller(controller)


class AttBleakClient(BaseBleakClient):
    """A bleak client backend that reaches a simulated treadmill over ATT (see module doc)."""

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        services: set[str] | None = None,
        *,
        disconnected_callback: Callable[[], None] | None = None,
        timeout: float = 10.0,
        **kwargs: Any,  # bluez=, winrt=, pair=: meaningless here, accepted like bleak does
    ) -> None:
        super().__init__(
            address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout
        )
        self._device_hint = (
            address_or_ble_device if isinstance(address_or_ble_device, BLEDevice) else None
        )
        self._wanted = None if services is None else {normalize_uuid_str(s) for s in services}
        self._central: Device | None = None
        self._connection: Connection | None = None
        self._peer: Peer | None = None
        self._solicited = False
        self._proxies: dict[int, CharacteristicProxy[bytes] | DescriptorProxy] = {}
        self._subscribers: dict[int, Callable[[bytes], None]] = {}

    # ---- connection ----------------------------------------------------------------------

    @property
    @override
    def name(self) -> str:
        if self._device_hint is not None and self._device_hint.name:
            return self._device_hint.name
        peripheral = radio.lookup(self.address)
        return peripheral.name if peripheral is not None else self.address.replace(":", "-")

    @property
    @override
    def mtu_size(self) -> int:
        return self._connection.att_mtu if self._connection is not None else att.ATT_DEFAULT_MTU

    @property
    @override
    def is_connected(self) -> bool:
        return self._connection is not None

    @override
    async def connect(self, pair: bool = False, **kwargs: Any) -> None:
        """Connect over the air, waiting up to `timeout` for the treadmill to advertise."""
        if self._connection is not None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        while (att_side := _att_peripheral(radio.lookup(self.address))) is None:
            if loop.time() >= deadline:
                raise BleakDeviceNotFoundError(
                    self.address, f"Device with address {self.address} was not found."
                )
            await asyncio.sleep(min(_POLL_S, deadline - loop.time()))
        await att_side.started()
        if self._central is None:
            self._central = await _central(f"central for {self.address}")
        target = hci.Address(self.address, hci.Address.RANDOM_DEVICE_ADDRESS)
        try:
            connection = await self._central.connect(
                target, timeout=max(0.0, deadline - loop.time())
            )
        except BaseException as exc:
            _leave_air(self._central)  # a failed attempt leaves no controller on the air
            self._central = None
            if isinstance(exc, (core.TimeoutError, TimeoutError)):
                raise TimeoutError(
                    f"{self.address}: no connection within {self._timeout} s") from exc
            if isinstance(exc, core.BaseBumbleError):
                raise BleakError(f"{self.address}: connection failed: {exc}") from exc
            raise
        self._connection = connection
        self._solicited = False
        connection.on(connection.EVENT_DISCONNECTION, self._on_disconnection)
        try:
            self._peer = Peer(connection)
            await self._att(self._peer.request_mtu(CLIENT_MTU))
            self.services = await self._discover()
            if pair:
                await self.pair()
        except BaseException:
            await self.disconnect()
            raise

    async def _discover(self) -> BleakGATTServiceCollection:
        peer = self._peer
        assert peer is not None
        uuids = [bumble_uuid(u) for u in self._wanted] if self._wanted is not None else []
        collection = BleakGATTServiceCollection()
        self._proxies.clear()
        found: list[ServiceProxy] = await self._att(peer.discover_services(uuids))
        for service_proxy in found:
            service = BleakGATTService(service_proxy, service_proxy.handle,
                                       bleak_uuid(service_proxy.uuid))
            collection.add_service(service)
            chars = await self._att(peer.discover_characteristics(service=service_proxy))
            for proxy in chars:
                names = [n for flag, n in _PROPERTY_NAMES.items() if proxy.properties & flag]
                char = BleakGATTCharacteristic(
                    proxy, proxy.handle, bleak_uuid(proxy.uuid), names,
                    lambda: self.mtu_size - 3, service,
                )
                collection.add_characteristic(char)
                self._proxies[proxy.handle] = proxy
                if proxy.properties & (gatt.Characteristic.Properties.NOTIFY
                                       | gatt.Characteristic.Properties.INDICATE):
                    for descriptor in await self._att(peer.discover_descriptors(proxy)):
                        collection.add_descriptor(BleakGATTDescriptor(
                            descriptor, descriptor.handle, bleak_uuid(descriptor.type), char
                        ))
                        self._proxies[descriptor.handle] = descriptor
        return collection

    def _on_disconnection(self, _reason: int) -> None:
        solicited = self._solicited
        self._forget()
        if not solicited and self._disconnected_callback is not None:
            self._disconnected_callback()

    def _forget(self) -> None:
        self._connection = None
        self._peer = None
        self._proxies.clear()
        self._subscribers.clear()
        self.services = None  # type: ignore[assignment]

    @override
    async def disconnect(self) -> None:
        """Disconnect (solicited: the disconnected callback is not called)."""
        connection = self._connection
        if connection is None:
            _leave_air(self._central)
            self._central = None
            return
        self._solicited = True
        self._forget()
        with contextlib.suppress(core.BaseBumbleError, hci.HCI_Error, asyncio.TimeoutError):
            await asyncio.wait_for(connection.disconnect(), 2.0)
        _leave_air(self._central)
        self._central = None

    @override
    async def pair(self, *args: Any, **kwargs: Any) -> None:
        """SMP pairing, "Just Works" (the simulated treadmill has no display or keys)."""
        connection = self._require()
        try:
            await self._att(connection.pair())
        except core.BaseBumbleError as exc:
            raise BleakError(f"pairing failed: {exc}") from exc

    @override
    async def unpair(self) -> None:
        """Unpairing also disconnects (as on BlueZ and WinRT)."""
        await self.disconnect()

    # ---- I/O -----------------------------------------------------------------------------

    def _require(self) -> Connection:
        if self._connection is None or self._peer is None:
            raise BleakError("Not connected")
        return self._connection

    async def _att[T](self, awaitable: Awaitable[T]) -> T:
        """One ATT procedure; ATT errors as bleak's, a dropped link as BleakError at once."""
        connection = self._connection
        if connection is None:
            close = getattr(awaitable, "close", None)
            if close is not None:
                close()
            raise BleakError("Not connected")
        try:
            return await connection.cancel_on_disconnection(awaitable)
        except asyncio.CancelledError:
            if self._connection is not connection:  # the link dropped meanwhile
                raise BleakError("Disconnected") from None
            raise
        except att.ATT_Error as exc:
            try:
                code = BleakGATTProtocolErrorCode(exc.error_code)
            except ValueError:
                raise BleakError(f"ATT error 0x{exc.error_code:02X}") from exc
            raise BleakGATTProtocolError(code) from exc
        except core.TimeoutError as exc:
            raise TimeoutError(str(exc)) from exc

    @override
    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        self._require()
        assert self._peer is not None
        return bytearray(await self._att(self._peer.read_value(characteristic.handle)))

    @override
    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        self._require()
        assert self._peer is not None
        return bytearray(await self._att(self._peer.read_value(descriptor.handle)))

    @override
    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool
    ) -> None:
        self._require()
        assert self._peer is not None
        value = bytes(memoryview(data))
        await self._att(self._peer.write_value(characteristic.handle, value, response))

    @override
    async def write_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, data: SizedBuffer
    ) -> None:
        self._require()
        assert self._peer is not None
        value = bytes(memoryview(data))
        await self._att(self._peer.write_value(descriptor.handle, value, True))

    @override
    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        self._require()
        assert self._peer is not None
        proxy = self._proxies.get(characteristic.handle)
        if not isinstance(proxy, CharacteristicProxy):
            raise BleakError(f"{characteristic.uuid} is not a characteristic of this device")
        if not proxy.properties & (gatt.Characteristic.Properties.NOTIFY
                                   | gatt.Characteristic.Properties.INDICATE):
            raise BleakError(f"{characteristic.uuid} does not support notify or indicate")

        def deliver(value: bytes) -> None:
            if self._connection is not None:
                callback(bytearray(value))

        self._subscribers[characteristic.handle] = deliver
        # bleak prefers notifications when a characteristic offers both
        await self._att(self._peer.subscribe(proxy, deliver, prefer_notify=True))

    @override
    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        self._require()
        assert self._peer is not None
        proxy = self._proxies.get(characteristic.handle)
        deliver = self._subscribers.pop(characteristic.handle, None)
        if isinstance(proxy, CharacteristicProxy):
            await self._att(self._peer.unsubscribe(proxy, deliver))


class AttBleakScanner(BaseBleakScanner):
    """A bleak scanner backend: a Bumble central scanning the loop's air."""

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None = None,
        service_uuids: list[str] | None = None,
        scanning_mode: str = "active",
        **kwargs: Any,  # bluez=, cb=: meaningless here
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self._device: Device | None = None

    @override
    async def start(self) -> None:
        await self.stop()
        self.seen_devices = {}
        for peripheral in radio.advertisers():  # made outside a loop: on the air from now
            att_side = _att_peripheral(peripheral)
            if att_side is not None:
                await att_side.started()
        self._device = await _central("scanner")
        self._device.on(self._device.EVENT_ADVERTISEMENT, self._on_advertisement)
        await self._device.start_scanning(
            active=True, scan_interval=SCAN_INTERVAL_MS, scan_window=SCAN_INTERVAL_MS
        )

    @override
    async def stop(self) -> None:
        device, self._device = self._device, None
        if device is None:
            return
        with contextlib.suppress(core.BaseBumbleError, hci.HCI_Error):
            await device.stop_scanning()
        _leave_air(device)

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        data = advertisement.data
        name = data.get(AdvertisingData.COMPLETE_LOCAL_NAME) or data.get(
            AdvertisingData.SHORTENED_LOCAL_NAME
        )
        uuids = [bleak_uuid(u) for u in data.get_all(
            AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS) for u in
            (u if isinstance(u, list) else [u])]
        service_data = {
            bleak_uuid(uuid): bytes(value)
            for uuid, value in data.get_all(AdvertisingData.SERVICE_DATA_16_BIT_UUID)
        }
        if not self.is_allowed_uuid(uuids):
            return
        address = str(advertisement.address).split("/")[0].upper()
        peripheral = radio.lookup(address)
        # The local link reports every advertiser at -50 dBm; the simulator's own setting is
        # the one tests and the scan listing expect.
        rssi = peripheral.rssi if peripheral is not None else advertisement.rssi
        adv = AdvertisementData(
            local_name=name if isinstance(name, str) else None,
            manufacturer_data={},
            service_data=service_data,
            service_uuids=uuids,
            tx_power=None,
            rssi=rssi,
            platform_data=(advertisement,),
        )
        seen = self.create_or_update_device(address, address, adv.local_name, peripheral, adv)
        self.call_detection_callbacks(seen, adv)
