"""The FTMS client: connects to one treadmill through any bleak backend and runs its control point.

It owns the control-point procedure (Request Control before anything else, one procedure in
flight at a time, an indication timeout, every non-success result as a typed error) and turns
notifications into a stream of typed events. It never decides anything about safety and never
acts on its own: in particular it never re-requests control after losing it. The only way to
send it a command is an `ApprovedCommand`, which only the safety governor can mint.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from bleak import BleakClient
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice
from bleak.exc import (
    BleakBluetoothNotAvailableError,
    BleakDeviceNotFoundError,
    BleakError,
    BleakGATTProtocolError,
    BleakGATTProtocolErrorCode,
)

from safety import (
    ApprovedCommand,
    Command,
    PauseCmd,
    RequestControl,
    SetTargetIncline,
    SetTargetSpeed,
    StartResume,
    StatusKind,
    StopCmd,
)
from treadmill import ftms
from treadmill.errors import (
    IndicationTimeout,
    MalformedDevice,
    NotATreadmill,
    NotConnected,
    TreadmillError,
    WriteRefused,
    bluetooth_unavailable,
    control_point_error,
)
from treadmill.events import ClientEvent, LinkLost, StatusEvent, TelemetrySample

log = logging.getLogger(__name__)

# The spec allows 30 s for an indication; a person on a moving belt can't wait that long to
# learn that a command went nowhere, so we give up sooner and let the governor escalate.
DEFAULT_INDICATION_TIMEOUT_S = 5.0
STOP_RETRY_S = 0.25
# An approval is a decision about the belt as it was (DESIGN §5: "approvals expire"). One that
# waited longer than this (behind a slow procedure, a busy loop) is not written: the situation
# may have changed, and the governor decides again. A Stop never expires.
APPROVAL_TTL_S = 0.5
# Statuses that only say "something changed" (and reserved codes) beyond this many queued for
# a slow consumer are coalesced; safety-relevant ones are always kept (see _EventQueue).
DEFAULT_MAX_QUEUED_STATUS = 32
SETUP_DROPPED = (
    "it dropped the connection while we were setting up (check it is on and in range, "
    "then try again)"
)


class ApprovalExpired(TreadmillError):
    """A non-Stop command was not written: its approval is older than the client's TTL."""

    def __init__(self, command: Command, age_s: float, ttl_s: float) -> None:
        self.command = command
        self.age_s = age_s
        self.ttl_s = ttl_s
        super().__init__(
            f"{type(command).__name__} was not sent: it was approved {age_s:.2f} s ago, "
            f"longer than {ttl_s:g} s; the situation may have changed"
        )


@dataclass(frozen=True)
class DeviceInfo:
    """What the treadmill says about itself when we connect."""

    name: str
    address: str
    manufacturer: str | None = None
    model: str | None = None
    serial: str | None = None
    hardware: str | None = None
    firmware: str | None = None
    software: str | None = None
    features: ftms.Features = field(default_factory=lambda: ftms.Features(0, 0))
    speed_range: ftms.Range | None = None
    incline_range: ftms.Range | None = None

    @property
    def reports_incline(self) -> bool:
        return self.features.has(ftms.MachineFeature.INCLINATION)

    @property
    def can_set_incline(self) -> bool:
        return self.incline_range is not None and self.features.can_target(
            ftms.TargetFeature.INCLINATION
        )


def encode_command(command: Command) -> bytes:
    """The control point bytes for a governor command."""
    match command:
        case RequestControl():
            return ftms.encode_request_control()
        case StartResume():
            return ftms.encode_start_resume()
        case SetTargetSpeed(kmh=kmh):
            return ftms.encode_set_target_speed(kmh)
        case SetTargetIncline(pct=pct):
            return ftms.encode_set_target_inclination(pct)
        case StopCmd():
            return ftms.encode_stop()
        case PauseCmd():
            return ftms.encode_pause()
    raise TypeError(f"no control point encoding for {command!r}")


# Statuses a slow consumer may receive coalesced: "the target changed" (the latest value is
# what matters) and reserved codes (garbage, or news we can't act on). Everything else (safety
# key, stopped/paused/started at the console, control lost, reset) is always delivered.
_COALESCED_STATUS = frozenset(
    {StatusKind.UNKNOWN, StatusKind.TARGET_SPEED_CHANGED, StatusKind.TARGET_INCLINE_CHANGED}
)


def _coalescable(event: ClientEvent) -> StatusEvent | None:
    """The event as a status a slow consumer may receive coalesced, else None."""
    if isinstance(event, StatusEvent) and event.kind in _COALESCED_STATUS:
        return event
    return None


class _EventQueue:
    """Events for one consumer, bounded however slow it is.

    Telemetry is coalesced when the consumer falls behind (the oldest samples are dropped).
    A coalescable status replaces a queued identical one (same kind, code, value), and beyond
    `max_status` of them the oldest reserved-code status goes first, then the oldest target
    change that a newer one of its kind supersedes. Safety-relevant statuses and link events
    are never dropped."""

    def __init__(self, max_telemetry: int, max_status: int = DEFAULT_MAX_QUEUED_STATUS) -> None:
        self._items: deque[ClientEvent] = deque()
        self._max_telemetry = max_telemetry
        self._max_status = max(3, max_status)  # room for the latest of each coalesced kind
        self._telemetry = 0
        self._ready = asyncio.Event()
        self.dropped_telemetry = 0
        self.dropped_status = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, event: ClientEvent) -> None:
        if isinstance(event, TelemetrySample):
            if self._telemetry >= self._max_telemetry:
                for i, queued in enumerate(self._items):
                    if isinstance(queued, TelemetrySample):
                        del self._items[i]
                        self._telemetry -= 1
                        self.dropped_telemetry += 1
                        break
            self._telemetry += 1
        elif isinstance(event, StatusEvent) and event.kind in _COALESCED_STATUS:
            self._make_room_for(event)
        self._items.append(event)
        self._ready.set()

    def _make_room_for(self, event: StatusEvent) -> None:
        queued = [(i, e) for i, item in enumerate(self._items) if (e := _coalescable(item))]
        key = (event.kind, event.code, event.value)
        for i, e in queued:
            if (e.kind, e.code, e.value) == key:
                self._drop(i)  # a repeat: only the latest is news
                return
        if len(queued) < self._max_status:
            return
        unknown = [i for i, e in queued if e.kind is StatusKind.UNKNOWN]
        if unknown:
            self._drop(unknown[0])
            return
        # Only target changes queued: drop the oldest one a newer one of its kind supersedes
        # (with two kinds and at least three queued, there always is one).
        kinds = [e.kind for _, e in queued] + [event.kind]
        for n, (i, e) in enumerate(queued):
            if e.kind in kinds[n + 1 :]:
                self._drop(i)
                return

    def _drop(self, index: int) -> None:
        del self._items[index]
        self.dropped_status += 1

    async def get(self) -> ClientEvent:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        event = self._items.popleft()
        if isinstance(event, TelemetrySample):
            self._telemetry -= 1
        return event


class FtmsClient:
    """One FTMS treadmill, real or simulated: `backend=` is passed straight to bleak."""

    def __init__(
        self,
        device: BLEDevice | str,
        *,
        backend: type[BaseBleakClient] | None = None,
        indication_timeout: float = DEFAULT_INDICATION_TIMEOUT_S,
        connect_timeout: float = 20.0,
        connect_attempts: int = 3,
        max_queued_telemetry: int = 64,
        max_queued_status: int = DEFAULT_MAX_QUEUED_STATUS,
        approval_ttl_s: float = APPROVAL_TTL_S,
    ) -> None:
        self._device = device
        self._backend = backend
        self.indication_timeout = indication_timeout
        self.approval_ttl_s = approval_ttl_s
        self._connect_timeout = connect_timeout
        self._connect_attempts = max(1, connect_attempts)
        self._bleak: BleakClient | None = None
        self._max_queued = (max_queued_telemetry, max_queued_status)
        self._events = _EventQueue(*self._max_queued)
        self._pending: dict[int, asyncio.Future[ftms.ControlResponse]] = {}
        self._procedure_lock = asyncio.Lock()
        self._closing = False
        self._link_lost = False
        self.info: DeviceInfo | None = None
        self.training_status: ftms.TrainingStatus | None = None
        self.malformed_packets = 0
        self.notifications = 0

    @property
    def address(self) -> str:
        return self._device.address if isinstance(self._device, BLEDevice) else self._device

    @property
    def is_connected(self) -> bool:
        return self._bleak is not None and self._bleak.is_connected and not self._link_lost

    @property
    def dropped_telemetry(self) -> int:
        return self._events.dropped_telemetry

    @property
    def dropped_statuses(self) -> int:
        """Coalescable statuses (target changes, reserved codes) a slow consumer never saw."""
        return self._events.dropped_status

    @property
    def queued_events(self) -> int:
        """Events waiting for the consumer."""
        return len(self._events)

    # ---- connection -------------------------------------------------------------------------

    async def __aenter__(self) -> FtmsClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.disconnect()

    async def connect(self) -> DeviceInfo:
        """Connect (retrying transient radio errors), read what the machine offers, subscribe.

        A link that drops while we set up is `NotConnected`, not a raw bleak error. Reusing a
        client starts a fresh event stream: nothing of the previous connection (its "closed")
        is reported on the new one."""
        bleak = await self._connect_with_retries()
        self._bleak = bleak
        self._closing = False
        self._link_lost = False
        self._fail_pending(NotConnected("closed"))
        self._events = _EventQueue(*self._max_queued)
        self.info = None
        self.training_status = None
        try:
            self.info = await self._read_device_info()
            await self._subscribe()
        except (BleakError, NotConnected) as exc:
            dropped = self._link_lost or not bleak.is_connected
            await self.disconnect()
            if dropped:
                raise NotConnected(SETUP_DROPPED) from exc
            raise MalformedDevice(
                f"{self.address} failed while we were setting up ({exc}): switch it off and "
                "on, then try again"
            ) from exc
        except BaseException:
            await self.disconnect()
            raise
        return self.info

    async def _connect_with_retries(self) -> BleakClient:
        delay = 0.5
        for attempt in range(1, self._connect_attempts + 1):
            client = BleakClient(
                self._device,
                disconnected_callback=self._on_disconnect,
                timeout=self._connect_timeout,
                backend=self._backend,
            )
            try:
                await client.connect()
                return client
            except (BleakDeviceNotFoundError, BleakBluetoothNotAvailableError):
                raise  # retrying can't fix a wrong address or a missing adapter
            except (FileNotFoundError, ConnectionRefusedError, PermissionError) as exc:
                raise bluetooth_unavailable(exc) from exc
            except (BleakError, TimeoutError, OSError) as exc:
                if attempt == self._connect_attempts:
                    raise
                log.info("connect attempt %d failed (%s); retrying", attempt, exc)
                await asyncio.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    async def disconnect(self) -> None:
        """Close the link. Ends the event stream with a LinkLost("closed")."""
        self._closing = True
        bleak, self._bleak = self._bleak, None
        if bleak is not None:
            try:
                await bleak.disconnect()
            except (BleakError, TimeoutError, OSError) as exc:
                log.debug("disconnect: %s", exc)
        self._fail_pending(NotConnected("closed"))
        if not self._link_lost:
            self._link_lost = True
            self._events.put(LinkLost(self._now(), "closed"))

    def _on_disconnect(self, client: BleakClient) -> None:
        # A previous connection's BleakClient may report its end late (some backends call back
        # after a solicited disconnect too): that is not news about the current link.
        if self._link_lost or client is not self._bleak:
            return
        self._link_lost = True
        self._fail_pending(NotConnected("the link dropped"))
        self._events.put(LinkLost(self._now(), "closed" if self._closing else "disconnected"))

    def _fail_pending(self, exc: Exception) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(exc)
        self._pending.clear()

    async def _read_device_info(self) -> DeviceInfo:
        bleak = self._require()
        if bleak.services.get_service(ftms.FTMS_SERVICE) is None:
            raise NotATreadmill(
                f"{self.address} does not offer the Fitness Machine Service: "
                "is it an FTMS treadmill? run `treadmill scan` to list the ones in range"
            )
        strings: dict[str, str | None] = {}
        for key, uuid in ftms.DEVICE_INFORMATION_FIELDS.items():
            raw = await self._read_optional(uuid)
            strings[key] = raw.decode("utf-8", errors="replace").strip("\x00 ") if raw else None
        features_raw = await self._read_optional(ftms.FITNESS_MACHINE_FEATURE)
        features = ftms.decode_features(features_raw or b"")
        if features.malformed:
            self.malformed_packets += 1
        speed_range = await self._read_range(ftms.SUPPORTED_SPEED_RANGE, ftms.decode_speed_range)
        incline_range = await self._read_range(
            ftms.SUPPORTED_INCLINATION_RANGE, ftms.decode_inclination_range
        )
        return DeviceInfo(
            name=bleak.name or self.address,
            address=bleak.address,
            features=features,
            speed_range=speed_range,
            incline_range=incline_range,
            **strings,
        )

    async def _read_optional(self, uuid: str) -> bytes | None:
        bleak = self._require()
        if bleak.services.get_characteristic(uuid) is None:
            return None
        try:
            return bytes(await bleak.read_gatt_char(uuid))
        except BleakError as exc:
            if not bleak.is_connected:
                raise NotConnected(str(exc)) from exc
            log.warning("reading %s failed: %s", uuid, exc)
            return None

    async def _read_range(
        self, uuid: str, decode: Callable[[bytes], ftms.Range]
    ) -> ftms.Range | None:
        raw = await self._read_optional(uuid)
        if raw is None:
            return None
        try:
            decoded = decode(raw)
        except ftms.MalformedPacket as exc:
            self.malformed_packets += 1
            log.warning("%s", exc)
            return None
        if decoded.malformed:
            # Not a fact about the machine: report no range (the session refuses to drive a
            # machine without one, in one line) rather than drive by nonsense.
            self.malformed_packets += 1
            log.warning("ignoring implausible range %s: %s", raw.hex(), decoded.problem)
            return None
        return decoded

    async def _subscribe(self) -> None:
        bleak = self._require()
        if bleak.services.get_characteristic(ftms.TREADMILL_DATA) is None:
            raise MalformedDevice(
                f"{self.address} has no Treadmill Data characteristic: it is not a treadmill"
            )
        await bleak.start_notify(ftms.TREADMILL_DATA, self._on_treadmill_data)
        if bleak.services.get_characteristic(ftms.MACHINE_STATUS) is not None:
            await bleak.start_notify(ftms.MACHINE_STATUS, self._on_machine_status)
        training = bleak.services.get_characteristic(ftms.TRAINING_STATUS)
        if training is not None and "notify" in training.properties:
            await bleak.start_notify(ftms.TRAINING_STATUS, self._on_training_status)
        if bleak.services.get_characteristic(ftms.CONTROL_POINT) is not None:
            await bleak.start_notify(ftms.CONTROL_POINT, self._on_control_point)

    def _require(self) -> BleakClient:
        if self._bleak is None or self._link_lost:
            raise NotConnected()
        return self._bleak

    # ---- notifications ------------------------------------------------------------------------

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _on_treadmill_data(self, _char: BleakGATTCharacteristic, data: bytearray) -> None:
        self.notifications += 1
        decoded = ftms.decode_treadmill_data(data)  # FTMS's absolute bounds already applied
        if self.info is not None:
            decoded = ftms.check_plausible(
                decoded, self.info.speed_range, self.info.incline_range
            )
        if decoded.malformed:
            self.malformed_packets += 1
            log.warning("malformed Treadmill Data %s (decoded %s)", bytes(data).hex(),
                        decoded.values())
        self._events.put(TelemetrySample.from_data(self._now(), decoded))

    def _on_machine_status(self, _char: BleakGATTCharacteristic, data: bytearray) -> None:
        status = ftms.decode_machine_status(data)
        if status.malformed:
            self.malformed_packets += 1
            log.warning("malformed Machine Status %s", bytes(data).hex())
        if status.op < 0:
            return
        self._events.put(StatusEvent.from_status(self._now(), status))

    def _on_training_status(self, _char: BleakGATTCharacteristic, data: bytearray) -> None:
        self.training_status = ftms.decode_training_status(data)
        if self.training_status.malformed:
            self.malformed_packets += 1

    def _on_control_point(self, _char: BleakGATTCharacteristic, data: bytearray) -> None:
        response = ftms.decode_control_response(data)
        if response is None:
            self.malformed_packets += 1
            log.warning("control point indication is not a response: %s", bytes(data).hex())
            return
        if response.malformed:
            self.malformed_packets += 1
        future = self._pending.pop(response.request_op, None)
        if future is None or future.done():
            log.info("unexpected control point response %s", bytes(data).hex())
            return
        future.set_result(response)

    async def events(self) -> AsyncIterator[ClientEvent]:
        """Telemetry, status and link events, in order, until the link is lost or closed."""
        while True:
            event = await self._events.get()
            yield event
            if isinstance(event, LinkLost):
                return

    # ---- control point ----------------------------------------------------------------------

    async def execute(self, approved: ApprovedCommand) -> ftms.ControlResponse:
        """Run one control point procedure for a command the governor approved.

        Raises a `ControlPointError` subclass for a non-success result, `IndicationTimeout` when
        no answer comes, `NotConnected` when the link is gone. A Stop never queues behind another
        procedure: it is written at once (a belt that must stop can't wait for a slow answer).
        """
        if not isinstance(approved, ApprovedCommand):
            raise TypeError("commands to the treadmill must come from the safety governor")
        payload = encode_command(approved.command)
        if isinstance(approved.command, StopCmd):
            return await self._stop(payload)
        async with self._procedure_lock:
            # Checked at the moment it would be written, after any wait for the lock.
            self._require()
            age = asyncio.get_running_loop().time() - approved.t
            if age > self.approval_ttl_s:
                raise ApprovalExpired(approved.command, age, self.approval_ttl_s)
            return await self._procedure(payload)

    async def _stop(self, payload: bytes) -> ftms.ControlResponse:
        """Write Stop at once. A machine that still owes another procedure's answer refuses
        writes (ATT 0xFE; after a lost indication it may stay busy for up to 30 s): write it
        again as soon as that answer is in, or every quarter second, until the deadline."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.indication_timeout
        while True:
            try:
                return await self._procedure(payload)
            except WriteRefused as exc:
                busy = exc.code == BleakGATTProtocolErrorCode.PROCEDURE_ALREADY_IN_PROGRESS
                if not busy or loop.time() >= deadline:
                    raise
                owed = [f for f in self._pending.values() if not f.done()]
                wait = min(STOP_RETRY_S, deadline - loop.time())
                if owed:
                    await asyncio.wait(owed, timeout=wait)
                else:
                    await asyncio.sleep(wait)

    async def _procedure(self, payload: bytes) -> ftms.ControlResponse:
        bleak = self._require()
        op = payload[0]
        loop = asyncio.get_running_loop()
        # Registered before writing: real machines indicate before the write call returns.
        future: asyncio.Future[ftms.ControlResponse] = loop.create_future()
        superseded = self._pending.get(op)
        if superseded is not None and not superseded.done():
            superseded.set_exception(IndicationTimeout(op, 0))
        self._pending[op] = future
        try:
            await bleak.write_gatt_char(ftms.CONTROL_POINT, payload, response=True)
            async with asyncio.timeout(self.indication_timeout):
                response = await future
        except TimeoutError:
            raise IndicationTimeout(op, self.indication_timeout) from None
        except BleakError as exc:
            if not bleak.is_connected or self._link_lost:
                raise NotConnected(str(exc)) from exc
            code = exc.code if isinstance(exc, BleakGATTProtocolError) else None
            raise WriteRefused(op, code, str(exc)) from exc
        finally:
            if self._pending.get(op) is future:
                del self._pending[op]
        if not response.ok:
            raise control_point_error(op, response.result)
        return response
