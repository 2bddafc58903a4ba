"""The FTMS client: connects to one treadmill through any bleak backend and runs its control point.

It owns the control-point procedure (Request Control before anything else, one procedure in
flight at a time, an indication timeout, every non-success result as a typed error) and turns
notifications into a stream of typed events (a Treadmill Data record split over two
notifications is one sample). It never decides anything about safety and never acts on its
own: in particular it never re-requests control after losing it. The only way to send it a
command is an `ApprovedCommand`, which only the safety governor can mint. The one link-level
step it takes unasked is pairing, once per connection, when the treadmill refuses a request
until the link is encrypted (normally while connecting, before any command).
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace

from bleak import BleakClient
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice
from bleak.exc import (
    BleakBluetoothNotAvailableError,
    BleakDBusError,
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
from treadmill.records import RecordAssembler

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
# Pairing at connect time may wait for a person (a code on the console, a system dialog).
PAIR_TIMEOUT_S = 30.0
# Learning the MTU is a nicety: it must never hold up (or fail) a connection.
MTU_TIMEOUT_S = 2.0
DEFAULT_ATT_MTU = 23  # 20 bytes per notification
PAIRING_NOTICE = (
    "the treadmill wants an encrypted connection: pairing with it now (confirm on the "
    "treadmill or in the system's Bluetooth dialog if asked)"
)
PAIRED_NOTICE = "paired with the treadmill"
PAIRING_ADVICE = "pair it in your system's Bluetooth settings, then try again"

# ATT errors that pairing (an encrypted, possibly authenticated link) cures. Not 0x08
# "insufficient authorization": that is the server's own permission, which bonding does not
# grant.
_PAIRING_CODES = frozenset({
    BleakGATTProtocolErrorCode.INSUFFICIENT_AUTHENTICATION,
    BleakGATTProtocolErrorCode.INSUFFICIENT_ENCRYPTION,
    BleakGATTProtocolErrorCode.INSUFFICIENT_ENCRYPTION_KEY_SIZE,
})
# How backends say it in words: BlueZ turns ATT 0x05/0x0C/0x0F into
# org.bluez.Error.NotPermitted "Not paired" (bleak 3.1 passes that on as a BleakDBusError).
_PAIRING_WORDS = ("not paired", "insufficient authentication", "insufficient encryption")


def needs_pairing(exc: BaseException) -> bool:
    """Whether a bleak error says the link must be encrypted (paired) first."""
    if isinstance(exc, BleakGATTProtocolError):
        return exc.code in _PAIRING_CODES
    if isinstance(exc, BleakDBusError):
        if not exc.dbus_error.endswith(".NotPermitted"):
            return False
        text = str(exc.dbus_error_details or "")
    elif isinstance(exc, BleakError):
        text = " ".join(str(a) for a in exc.args)
    else:
        return False
    return any(words in text.lower() for words in _PAIRING_WORDS)


def _retrieve(task: asyncio.Future[object]) -> None:
    """Done callback for a task nobody awaits: its failure is expected, not "never retrieved"."""
    if not task.cancelled():
        task.exception()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()).rstrip(".")
    return text or type(exc).__name__


class PairingRequired(TreadmillError):
    """The treadmill needs an encrypted (paired) link and pairing from here did not work: the
    platform can't pair from an app (macOS: pairing happens in the system), or pairing failed
    or timed out. `str()` is one line saying what to do."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(f"the treadmill needs pairing ({detail}): {PAIRING_ADVICE}")


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
    # The ATT MTU of this link, None where the backend can't tell (BlueZ without its private
    # `_acquire_mtu`). At 23 a notification holds 20 bytes: longer records arrive split (More
    # Data) or cut.
    mtu: int | None = None
    paired: bool = False  # the client paired with it while connecting (it asked for encryption)

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
        pair_timeout: float = PAIR_TIMEOUT_S,
        on_notice: Callable[[str], None] | None = None,
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
        self._records = RecordAssembler()
        self.pair_timeout = pair_timeout
        # One-line news for the person (e.g. "pairing now"), called as it happens: the UI shows
        # it. Also logged at WARNING, so the headless front ends show it too.
        self.on_notice = on_notice
        self._pairing: asyncio.Task[None] | None = None  # the one pair attempt per connection
        self._stops_started = 0  # Stops written so far: a command approved before one is void
        self._mtu: int | None = None
        self._mtu_task: asyncio.Future[object] | None = None  # a slow _acquire_mtu, left to run

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

    @property
    def incomplete_records(self) -> int:
        """Treadmill Data records whose first part (More Data) came but whose end never did:
        dropped, never reported (see RecordAssembler)."""
        return self._records.orphans

    @property
    def paired(self) -> bool:
        """Whether this client paired with the treadmill on the current connection."""
        task = self._pairing
        return task is not None and task.done() and not task.cancelled() and (
            task.exception() is None
        )

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
        self._records.reset()
        self._cancel_pairing()
        self.info = None
        self.training_status = None
        try:
            # Before subscribing: BlueZ learns the MTU by acquiring a notify characteristic,
            # which it refuses for one that is already notifying.
            self._mtu = await self._learn_mtu(bleak)
            self.info = await self._read_device_info()
            await self._subscribe()
            if self.paired:
                self.info = replace(self.info, paired=True)
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
        self._cancel_pairing()
        mtu_task, self._mtu_task = self._mtu_task, None
        if mtu_task is not None:
            mtu_task.cancel()  # the link is gone: nothing left acquired
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
            mtu=self._mtu,
            **strings,
        )

    async def _learn_mtu(self, bleak: BleakClient) -> int | None:
        """The link's ATT MTU, or None if the backend can't tell; raises only NotConnected (the
        link dropped meanwhile) or for cancellation, and never takes longer than MTU_TIMEOUT_S.

        bleak 3.1 has no call to *ask* for a larger MTU: BlueZ (the kernel), Windows and macOS
        negotiate it themselves when connecting, and bleak's Android backends request 517 in
        connect(). What is left is to learn the result: BlueZ's `mtu_size` is a guess (23, with
        a warning) until the private `_acquire_mtu()` has asked BlueZ; the other backends know
        it. A backend without `_acquire_mtu`, or one where it fails (BlueZ refuses it on a
        characteristic that needs encryption before pairing), is fine: the MTU is unknown.

        A slow `_acquire_mtu` is left to finish on its own rather than cancelled: on BlueZ it
        holds a notify characteristic until its reply is in (it then releases it), and a
        cancelled call would leave that characteristic acquired, refusing our subscription."""
        backend = getattr(bleak, "_backend", None)  # BleakClient's backend instance (private)
        acquire = getattr(backend, "_acquire_mtu", None)
        if callable(acquire):
            task = asyncio.ensure_future(acquire())
            task.add_done_callback(_retrieve)
            self._mtu_task = task  # disconnect() cancels it, even if connect() is cancelled
            await asyncio.wait({task}, timeout=MTU_TIMEOUT_S)
            if not task.done():
                log.debug("learning the MTU takes over %g s: going on without", MTU_TIMEOUT_S)
            else:
                self._mtu_task = None
                exc = None if task.cancelled() else task.exception()
                if exc is not None:  # private API: any failure just means "unknown"
                    if not bleak.is_connected:
                        raise NotConnected(str(exc)) from exc
                    log.debug("could not learn the MTU: %r", exc)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                mtu = bleak.mtu_size
        except Exception as exc:  # a backend that can't tell is fine
            log.debug("no MTU from the backend: %r", exc)
            return None
        if caught or not isinstance(mtu, int) or mtu < DEFAULT_ATT_MTU:
            return None  # BlueZ's "Using default MTU value" guess is not a measurement
        if mtu == DEFAULT_ATT_MTU:
            log.info("ATT MTU %d: Treadmill Data longer than 20 bytes arrives split or cut", mtu)
        else:
            log.info("ATT MTU %d", mtu)
        return mtu

    async def _read_optional(self, uuid: str) -> bytes | None:
        bleak = self._require()
        if bleak.services.get_characteristic(uuid) is None:
            return None
        try:
            return bytes(await self._with_pairing(lambda: bleak.read_gatt_char(uuid)))
        except PairingRequired as exc:
            # Only a value we read: the control point (which needs the same pairing, if the
            # machine is consistent) is where a missing pairing stops the connection.
            log.warning("reading %s failed: %s", uuid, exc)
            return None
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
        # Each CCCD write may be refused until the link is encrypted (some machines protect
        # the control point's): then pairing happens here, at connect time, long before any
        # Stop could need it.
        await self._with_pairing(
            lambda: bleak.start_notify(ftms.TREADMILL_DATA, self._on_treadmill_data)
        )
        if bleak.services.get_characteristic(ftms.MACHINE_STATUS) is not None:
            await self._with_pairing(
                lambda: bleak.start_notify(ftms.MACHINE_STATUS, self._on_machine_status)
            )
        training = bleak.services.get_characteristic(ftms.TRAINING_STATUS)
        if training is not None and "notify" in training.properties:
            await self._with_pairing(
                lambda: bleak.start_notify(ftms.TRAINING_STATUS, self._on_training_status)
            )
        if bleak.services.get_characteristic(ftms.CONTROL_POINT) is not None:
            await self._with_pairing(
                lambda: bleak.start_notify(ftms.CONTROL_POINT, self._on_control_point)
            )

    def _require(self) -> BleakClient:
        if self._bleak is None or self._link_lost:
            raise NotConnected()
        return self._bleak

    # ---- pairing ------------------------------------------------------------------------------

    async def _with_pairing[T](
        self,
        operation: Callable[[], Awaitable[T]],
        *,
        timeout: float | None = None,
        before_retry: Callable[[], None] | None = None,
    ) -> T:
        """Run `operation`; if the treadmill refuses it until the link is encrypted, pair (once
        per connection, within `timeout`) and run it once more.

        Raises `PairingRequired` when pairing is not possible or fails, or when the retry is
        refused for the same reason. `before_retry` runs between pairing and the retry and may
        raise (a command whose approval went stale while we paired)."""
        try:
            return await operation()
        except BleakError as exc:
            bleak = self._bleak
            if not needs_pairing(exc) or bleak is None or not bleak.is_connected:
                raise
            log.info("refused until paired: %s", _one_line(exc))
            await self._pair_once(self.pair_timeout if timeout is None else timeout)
        if before_retry is not None:
            before_retry()
        try:
            return await operation()
        except BleakError as exc:
            if needs_pairing(exc):
                raise PairingRequired(f"it still refuses after pairing: {_one_line(exc)}") from exc
            raise

    async def _pair_once(self, timeout: float) -> None:
        """Pair, or wait for the pairing already under way; at most one attempt per connection
        (a Stop never waits for a second one). The attempt runs on even when this wait gives
        up, so a later retry (a repeated Stop) finds the link paired if it finished."""
        bleak = self._require()
        if self._pairing is None:
            self._notice(PAIRING_NOTICE)
            self._pairing = asyncio.get_running_loop().create_task(
                self._pair(bleak), name="ftms-pair"
            )
        task = self._pairing
        try:
            async with asyncio.timeout(max(0.0, timeout)):
                await asyncio.shield(task)
        except TimeoutError:
            raise PairingRequired(f"pairing did not finish within {timeout:g} s") from None
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and (current is None or current.cancelling() == 0):
                # The attempt was cancelled under us (disconnect, reconnect), not this wait:
                # the link is gone, which the command path knows how to report.
                raise NotConnected("closed") from None
            raise
        except NotImplementedError as exc:
            # macOS: there is no pairing call; the system pairs on its own, or not at all.
            raise PairingRequired("this system pairs only from its own settings") from exc
        except Exception as exc:  # BleakError, a D-Bus error, a backend's assert: not paired
            raise PairingRequired(f"pairing failed: {_one_line(exc)}") from exc

    async def _pair(self, bleak: BleakClient) -> None:
        await bleak.pair()
        self._notice(PAIRED_NOTICE)

    def _cancel_pairing(self) -> None:
        task, self._pairing = self._pairing, None
        if task is not None and not task.done():
            task.cancel()
        elif task is not None and not task.cancelled():
            task.exception()  # retrieved: a failed attempt is not "never retrieved" noise

    def _notice(self, text: str) -> None:
        log.warning("%s", text)
        if self.on_notice is not None:
            try:
                self.on_notice(text)
            except Exception:  # a front end's bug must not break the link
                log.exception("on_notice failed")

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
            missing = f", cut off: {sorted(decoded.missing)}" if decoded.missing else ""
            log.warning("malformed Treadmill Data %s (decoded %s%s)", bytes(data).hex(),
                        decoded.values(), missing)
        now = self._now()
        orphans = self._records.orphans
        record = self._records.feed(decoded, now)
        if self._records.orphans != orphans:
            log.log(logging.WARNING if orphans == 0 else logging.DEBUG,
                    "a Treadmill Data record began (More Data) but its end never came: "
                    "dropped (%d so far)", self._records.orphans)
        if record is None:
            return  # a part without speed: the record ends in the next notification
        self._events.put(TelemetrySample.from_data(now, record))

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
            self._stops_started += 1
            return await self._stop(payload)
        stops_before = self._stops_started

        def still_approved() -> None:
            age = asyncio.get_running_loop().time() - approved.t
            if age > self.approval_ttl_s or self._stops_started != stops_before:
                # Too old, or a Stop went out meanwhile (a setpoint waiting for pairing must
                # never follow it): the governor decides again.
                raise ApprovalExpired(approved.command, age, self.approval_ttl_s)

        async with self._procedure_lock:
            # Checked at the moment it would be written, after any wait for the lock, and
            # again before a write repeated after pairing (which may take a while).
            self._require()
            still_approved()
            return await self._procedure(payload, before_retry=still_approved)

    async def _stop(self, payload: bytes) -> ftms.ControlResponse:
        """Write Stop at once. A machine that still owes another procedure's answer refuses
        writes (ATT 0xFE; after a lost indication it may stay busy for up to 30 s): write it
        again as soon as that answer is in, or every quarter second, until the deadline.

        One refused until the link is encrypted waits for at most one pairing attempt (the
        one under way, or a new one), for at most the indication timeout, then is written
        once more; otherwise it fails with `PairingRequired`, a failed Stop for the governor.
        (Normally pairing happened at connect time, when the control point's CCCD asked.)"""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.indication_timeout
        while True:
            try:
                return await self._procedure(
                    payload, pair_timeout=max(0.0, deadline - loop.time())
                )
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

    async def _procedure(
        self,
        payload: bytes,
        *,
        pair_timeout: float | None = None,
        before_retry: Callable[[], None] | None = None,
    ) -> ftms.ControlResponse:
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
            await self._with_pairing(
                lambda: bleak.write_gatt_char(ftms.CONTROL_POINT, payload, response=True),
                timeout=pair_timeout,
                before_retry=before_retry,
            )
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
