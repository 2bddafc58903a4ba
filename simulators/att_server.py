"""The virtual treadmill served over ATT: a Bumble GATT server on the loop's air (simulators/air.py)
in front of a VirtualTreadmill's link API, so clients meet real ATT (MTU, CCCDs, indications
with confirmations, connection events, HCI disconnects, encryption).

The treadmill's logic (model, FTMS server, faults, trace) is untouched: this object is the
"central" the treadmill talks to (simulators/radio.py `Central`), and Bumble is the air.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from bleak.exc import BleakGATTProtocolError
from bumble import att, gatt, hci
from bumble.controller import Controller
from bumble.core import UUID, AdvertisingData
from bumble.device import Connection, Device

from simulators import air
from simulators.profiles import Quirk
from treadmill import ftms

if TYPE_CHECKING:
    from simulators.treadmill import VirtualTreadmill

log = logging.getLogger(__name__)

ADVERTISING_INTERVAL_MS = 100.0
_WATCH_S = 0.1  # how often a device that is not connected looks whether to advertise
_BASE_UUID_TAIL = "-0000-1000-8000-00805f9b34fb"
_PROPERTIES = {
    "read": gatt.Characteristic.Properties.READ,
    "write": gatt.Characteristic.Properties.WRITE,
    "write-without-response": gatt.Characteristic.Properties.WRITE_WITHOUT_RESPONSE,
    "notify": gatt.Characteristic.Properties.NOTIFY,
    "indicate": gatt.Characteristic.Properties.INDICATE,
}
LEGACY_ADVERTISING_BYTES = 31


def bumble_uuid(uuid: str) -> UUID:
    """bleak's 128-bit form as Bumble's UUID, 16-bit where it is one (as a real server sends)."""
    text = uuid.lower()
    if text.startswith("0000") and text.endswith(_BASE_UUID_TAIL):
        return UUID.from_16_bits(int(text[4:8], 16))
    return UUID(text)


def advertising_data(name: str, service_data: bytes) -> bytes:
    """Flags, the FTMS service, its service data and as much of the name as fits in 31 bytes
    (a shortened name when it doesn't, as real devices do)."""
    fm = int(ftms.FTMS_SERVICE[4:8], 16).to_bytes(2, "little")
    fields: list[tuple[int, bytes]] = [
        (AdvertisingData.FLAGS, bytes([0x06])),  # LE general discoverable, no BR/EDR
        (AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS, fm),
        (AdvertisingData.SERVICE_DATA_16_BIT_UUID, fm + service_data),
    ]
    used = sum(2 + len(value) for _, value in fields)
    room = LEGACY_ADVERTISING_BYTES - used - 2
    encoded = name.encode()
    if len(encoded) <= room:
        fields.append((AdvertisingData.COMPLETE_LOCAL_NAME, encoded))
    elif room > 0:
        fields.append((AdvertisingData.SHORTENED_LOCAL_NAME, encoded[:room]))
    return bytes(AdvertisingData(fields))


class AttPeripheral:
    """`treadmill` behind a Bumble GATT server; made lazily on a running loop (`started`)."""

    def __init__(
        self, treadmill: VirtualTreadmill, *, mtu: int, connection_interval_ms: float
    ) -> None:
        self.treadmill = treadmill
        self.mtu = mtu
        self.connection_interval_ms = air.check_connection_interval(connection_interval_ms)
        self.device: Device | None = None
        self.controller: Controller | None = None
        self.connection: Connection | None = None
        self._characteristics: dict[str, gatt.Characteristic] = {}
        self._indicated: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._starting: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._advertiser: asyncio.Task[None] | None = None
        self.indications_confirmed = 0
        self.notifications_sent = 0

    # ---- life ----------------------------------------------------------------------------

    async def started(self) -> None:
        """Power on and advertise (once per loop; the simulator may outlive a loop in tests)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._forget_loop()
            self._loop = loop
            self._starting = loop.create_task(self._start(), name=f"att {self.treadmill.address}")
        assert self._starting is not None
        await asyncio.shield(self._starting)

    async def _start(self) -> None:
        device = air.new_device(self.treadmill.name, self.treadmill.address,
                                self.connection_interval_ms)
        controller = air.controller_of(device)
        device.gatt_server.max_mtu = self.mtu
        self._add_services(device)
        device.on(device.EVENT_CONNECTION, self._on_connection)
        self.controller, self.device = controller, device
        await device.power_on()
        self._keep_advertising()

    def _forget_loop(self, *, cancel: bool = True) -> None:
        """Drop what belonged to this device (on an earlier loop: to a closed loop)."""
        for task in self._tasks if cancel else ():
            with contextlib.suppress(RuntimeError):
                task.cancel()
        self._tasks.clear()
        if self.controller is not None and self.controller.link is not None:
            with contextlib.suppress(Exception):
                self.controller.link.remove_controller(self.controller)
        self.device = self.controller = self.connection = None
        self._advertiser = None
        self._characteristics.clear()

    def close(self) -> None:
        """Off the air for good: drop a connection and leave the link."""
        connection, self.connection = self.connection, None
        if connection is not None and self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(Exception):
                self._loop.create_task(connection.disconnect())
        # Not cancelled: a task halfway through an HCI command would leave its answer to a
        # cancelled future. The advertiser ends by itself once the treadmill is closed.
        self._forget_loop(cancel=False)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- the attribute table -------------------------------------------------------------

    def _add_services(self, device: Device) -> None:
        by_service: dict[str, list[gatt.Characteristic]] = {}
        for spec in self.treadmill.gatt_table():
            properties = gatt.Characteristic.Properties(0)
            for name in spec.properties:
                properties |= _PROPERTIES[name]
            permissions = 0
            if "read" in spec.properties:
                permissions |= gatt.Characteristic.READABLE
            if "write" in spec.properties or "write-without-response" in spec.properties:
                permissions |= gatt.Characteristic.WRITEABLE
            char = gatt.Characteristic(
                bumble_uuid(spec.uuid), properties, permissions,
                gatt.CharacteristicValue(read=self._reader(spec.uuid),
                                         write=self._writer(spec.uuid)),
            )
            char.on(char.EVENT_SUBSCRIPTION, self._subscriber(spec.uuid))
            self._characteristics[spec.uuid] = char
            if "indicate" in spec.properties and "notify" not in spec.properties:
                self._indicated.add(spec.uuid)
            by_service.setdefault(spec.service, []).append(char)
        for service, chars in by_service.items():
            device.add_service(gatt.Service(bumble_uuid(service), chars))
        control_point = self._characteristics.get(ftms.CONTROL_POINT)
        if control_point is not None and self.treadmill.profile.has(Quirk.ENCRYPTED_CONTROL_POINT):
            control_point.permissions |= att.Attribute.WRITE_REQUIRES_ENCRYPTION
            # Its CCCD too: Bumble made it with the characteristic, right behind the value.
            cccd = gatt.GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR
            for attribute in device.gatt_server.attributes:
                if (control_point.handle < attribute.handle <= control_point.end_group_handle
                        and attribute.type == cccd):
                    attribute.permissions |= att.Attribute.WRITE_REQUIRES_ENCRYPTION

    def _reader(self, uuid: str) -> Callable[[Connection], bytes]:
        def read(_connection: Connection) -> bytes:
            try:
                return self.treadmill.link_read(uuid)
            except BleakGATTProtocolError as exc:
                raise att.ATT_Error(error_code=int(exc.code)) from exc

        return read

    def _writer(self, uuid: str) -> Callable[[Connection, bytes], Coroutine[Any, Any, None]]:
        async def write(connection: Connection, value: bytes) -> None:
            try:
                self.treadmill.link_write(uuid, bytes(value),
                                          encrypted=bool(connection.is_encrypted))
            except BleakGATTProtocolError as exc:
                raise att.ATT_Error(error_code=int(exc.code)) from exc
            if self.treadmill.profile.indicate_before_write_returns:
                # The quirk: the indication goes on the air before the write response (the
                # delivery was scheduled with call_soon; let it send its PDU first).
                for _ in range(3):
                    await asyncio.sleep(0)

        return write

    def _subscriber(self, uuid: str) -> Callable[[Connection, bool, bool], None]:
        def subscription(connection: Connection, notify: bool, indicate: bool) -> None:
            if connection is not self.connection:
                return
            value = (1 if notify else 0) | (2 if indicate else 0)
            try:
                self.treadmill.link_set_cccd(uuid, value,
                                             encrypted=bool(connection.is_encrypted))
            except BleakGATTProtocolError as exc:  # Bumble checked the permissions first
                log.warning("CCCD write for %s refused: %s", uuid, exc)

        return subscription

    # ---- connection ----------------------------------------------------------------------

    def _on_connection(self, connection: Connection) -> None:
        if self.connection is not None or not self.treadmill.advertising:
            # Off the air between the advertisement and the connect request: refuse.
            self._spawn(connection.disconnect())
            return
        self.connection = connection
        connection.on(connection.EVENT_DISCONNECTION,
                      lambda _reason: self._on_disconnection(connection))
        try:
            self.treadmill.link_attach(self)
        except RuntimeError:
            self.connection = None
            self._spawn(connection.disconnect())

    def _on_disconnection(self, connection: Connection) -> None:
        if connection is not self.connection:
            return
        self.connection = None
        stopping = self.treadmill.link_detach(self)
        if stopping:
            self._spawn(asyncio.wait(stopping))
        self._keep_advertising()

    def _keep_advertising(self) -> None:
        if self.treadmill.closed or (self._advertiser is not None and not self._advertiser.done()):
            return
        self._advertiser = asyncio.get_running_loop().create_task(self._advertise())
        self._tasks.add(self._advertiser)
        self._advertiser.add_done_callback(self._tasks.discard)

    async def _advertise(self) -> None:
        """Advertise while the treadmill says it is on the air and nobody is connected."""
        device = self.device
        while device is not None and device is self.device and self.connection is None:
            if self.treadmill.closed:
                return
            wanted = self.treadmill.advertising
            if wanted and not device.is_advertising:
                _, adv = self.treadmill.advertisement()
                data = advertising_data(self.treadmill.name,
                                        adv.service_data.get(ftms.FTMS_SERVICE, b""))
                await device.start_advertising(
                    advertising_data=data, scan_response_data=data,
                    advertising_interval_min=ADVERTISING_INTERVAL_MS,
                    advertising_interval_max=ADVERTISING_INTERVAL_MS,
                )
            elif not wanted and device.is_advertising:
                await device.stop_advertising()
            await asyncio.sleep(_WATCH_S)

    # ---- radio.Central: what the treadmill calls -----------------------------------------

    def link_deliver(self, uuid: str, data: bytes) -> None:
        connection, device = self.connection, self.device
        char = self._characteristics.get(uuid)
        if connection is None or device is None or char is None:
            return
        if uuid in self._indicated:
            self._spawn(self._indicate(device, connection, char, data))
        else:
            self.notifications_sent += 1
            self._spawn(device.notify_subscriber(connection, char, data))

    async def _indicate(
        self, device: Device, connection: Connection, char: gatt.Characteristic, data: bytes
    ) -> None:
        try:
            await device.indicate_subscriber(connection, char, data)
        except (TimeoutError, asyncio.CancelledError, Exception) as exc:  # link gone meanwhile
            if isinstance(exc, asyncio.CancelledError):
                raise
            log.debug("indication not confirmed: %s", exc)
            return
        self.indications_confirmed += 1

    def link_lost(self) -> None:
        """The treadmill dropped the link (a fault): an HCI disconnect on the air."""
        connection, self.connection = self.connection, None
        if connection is None:
            return
        self._spawn(connection.disconnect(hci.HCI_REMOTE_USER_TERMINATED_CONNECTION_ERROR))
        self._keep_advertising()
