"""VirtualTreadmill: one simulated device on the virtual radio (model + GATT server + timers)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakGATTProtocolError

from simulators import radio
from simulators.backend import SimulatedBleakClient, SimulatedBleakScanner
from simulators.faults import Fault, FaultKind, parse_fault
from simulators.gatt import CharacteristicSpec, Event, FtmsServer, LinkDropped, Notification
from simulators.model import TreadmillModel
from simulators.profiles import Profile, Quirk, get_profile
from simulators.trace import TraceTarget, TraceWriter
from treadmill import ftms
from treadmill.ftms import Range

if TYPE_CHECKING:
    from simulators.att_server import AttPeripheral

type Transport = Literal["gatt", "att"]
TRANSPORTS: tuple[Transport, ...] = ("gatt", "att")
ATT_INSTALL_HINT = "the ATT transport needs Bumble: pip install 'backward-treadmill[att]'"
DEFAULT_ATT_MTU = 23  # the ATT default; a client may exchange a larger one, up to `mtu`
TRACE_HZ = 10.0  # ground-truth samples per second of loop time (telemetry is 1-10 Hz)

_serials = itertools.count(1)


def _next_address() -> str:
    # 0xF2 = 0b11110010: locally administered unicast (IEEE) and a BLE random static address
    # (top two bits 11), so it can never be a real device's public address.
    n = next(_serials)
    return "F2:0D:" + ":".join(f"{b:02X}" for b in n.to_bytes(4, "big"))


def _loop_time() -> float | None:
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return None


def _now() -> float:
    t = _loop_time()
    return 0.0 if t is None else t  # outside a loop: only reached by code that sends nothing


def _preset(name: str, value: float, r: Range | None, unit: str) -> float:
    """A starting value for the physical state: 0, or within the machine's range."""
    if value == 0.0:
        return 0.0
    if r is None:
        raise ValueError(f"{name}={value:g}: this machine has no incline motor")
    if not r.minimum - 1e-9 <= value <= r.maximum + 1e-9:
        raise ValueError(
            f"{name}={value:g} is outside the machine's range {r.minimum:g}..{r.maximum:g} {unit}"
        )
    return round(r.minimum + round((value - r.minimum) / r.step) * r.step, 2)


class VirtualTreadmill:
    """A simulated FTMS treadmill, reachable through `client_backend` / `scanner_backend`.

        sim = VirtualTreadmill("home", faults=["safety-key@60"])
        async with BleakClient(sim.ble_device, backend=sim.client_backend) as client: ...
        devices = await BleakScanner.discover(backend=sim.scanner_backend)

    The clock is `asyncio.get_running_loop().time()`: simulated under VirtualTimeLoop, real
    otherwise. Telemetry runs as one asyncio task per connection while Treadmill Data
    notifications are enabled; it is cancelled on disconnect and close(). A disconnect does not
    stop the belt (real consoles keep running; control simply goes back to the console).

    `transport` is how clients reach it: "gatt" (the default) hands GATT operations straight to
    the server (simulators/backend.py); "att" serves it with Bumble over a simulated LE link
    (simulators/att_server.py, att_backend.py, air.py), with `mtu` (the largest ATT MTU the
    treadmill accepts; 23 means it never goes past the default) and `connection_interval_ms`
    of air time per connection event. `encrypted_control_point` makes the control point
    refuse writes on a link that is not encrypted (pairing "Just Works" encrypts it).

    `belt_kmh` / `incline_pct` make a machine that is already moving / tilted before anyone
    connects (running at that speed, no countdown). `trace` (a path or a text stream) gets the
    machine's physical truth as JSON lines (simulators/trace.py): a sample every 1/TRACE_HZ s
    of loop time, connected or not, from creation inside a loop (else from the first
    connection), every control point write with its answer, and a final line at close().
    """

    client_backend: ClassVar[type[SimulatedBleakClient]] = SimulatedBleakClient
    scanner_backend: ClassVar[type[SimulatedBleakScanner]] = SimulatedBleakScanner

    def __init__(
        self,
        profile: str | Profile = "home",
        *,
        name: str | None = None,
        address: str | None = None,
        notify_hz: float | None = None,
        faults: Iterable[Fault | str] = (),
        rssi: int = -60,
        belt_kmh: float = 0.0,
        incline_pct: float = 0.0,
        trace: TraceTarget | None = None,
        transport: Transport = "gatt",
        mtu: int = DEFAULT_ATT_MTU,
        connection_interval_ms: float | None = None,
        encrypted_control_point: bool = False,
    ) -> None:
        if transport not in TRANSPORTS:
            raise ValueError(f"unknown transport {transport!r} (choose gatt or att)")
        if not 23 <= mtu <= 517:
            raise ValueError(f"ATT MTU must be 23–517, not {mtu}")
        base = profile if isinstance(profile, Profile) else get_profile(profile)
        self.profile = base if notify_hz is None else replace(base, notify_hz=notify_hz)
        if encrypted_control_point:
            self.profile = replace(
                self.profile, quirks=self.profile.quirks | {Quirk.ENCRYPTED_CONTROL_POINT}
            )
        self.transport: Transport = transport
        self.att: AttPeripheral | None = None
        if transport == "att":
            self._use_att(mtu, connection_interval_ms)
        self.address = (address or _next_address()).upper()
        self.name = name or f"SIM Treadmill {self.profile.name}"
        self.rssi = rssi
        self.faults = tuple(parse_fault(f) if isinstance(f, str) else f for f in faults)
        belt = _preset("belt_kmh", belt_kmh, self.profile.speed, "km/h")
        incline = _preset("incline_pct", incline_pct, self.profile.incline, "%")
        created = _loop_time()
        self._model = TreadmillModel(self.profile, created, belt_kmh=belt, incline_pct=incline)
        serial = "SIM" + self.address.replace(":", "")
        self.server = FtmsServer(self.profile, self._model, serial=serial, faults=self.faults)
        self.ble_device = BLEDevice(self.address, self.name, self)
        self._central: radio.Central | None = None
        self._link_id = 0  # deliveries scheduled for an earlier connection are dropped
        self._telemetry: asyncio.Task[None] | None = None
        self._deliveries: set[asyncio.TimerHandle] = set()
        self._fault_timers: list[asyncio.TimerHandle] = []
        self._off_air_until = 0.0
        self._closed = False
        self._background: set[asyncio.Task[None]] = set()
        self._trace_origin = created  # None: set when the trace starts (no loop time yet)
        self._trace_task: asyncio.Task[None] | None = None
        self._trace = None if trace is None else TraceWriter(trace)  # ValueError if unopenable
        try:
            radio.register(self)
        except ValueError:
            if self._trace is not None:
                self._trace.close()
            raise
        if created is not None:
            self._start_trace()
            if self.att is not None:  # on the air at once, as a powered-on machine is
                task = asyncio.get_running_loop().create_task(self.att.started())
                self._background.add(task)
                task.add_done_callback(self._background.discard)

    def _use_att(self, mtu: int, connection_interval_ms: float | None) -> None:
        try:
            from simulators.att_backend import AttBleakClient, AttBleakScanner
            from simulators.att_server import AttPeripheral
        except ImportError as exc:  # Bumble is an optional extra
            raise RuntimeError(ATT_INSTALL_HINT) from exc
        from simulators.air import DEFAULT_CONNECTION_INTERVAL_MS

        interval = connection_interval_ms or DEFAULT_CONNECTION_INTERVAL_MS
        self.att = AttPeripheral(self, mtu=mtu, connection_interval_ms=interval)
        self.client_backend: Any = AttBleakClient
        self.scanner_backend: Any = AttBleakScanner

    def __repr__(self) -> str:
        return f"<VirtualTreadmill {self.profile.name} {self.address}>"

    # ---- for tests and tools -------------------------------------------------------------

    @property
    def model(self) -> TreadmillModel:
        """The belt, brought up to the current time (so assertions see the present)."""
        if (now := _loop_time()) is not None:
            self._model.advance_to(now)
        return self._model

    @property
    def trace_origin(self) -> float | None:
        """The loop time that trace lines count `t` from (None: not known yet)."""
        return self._trace_origin

    def set_trace_origin(self, loop_time: float) -> None:
        """Count the trace's `t` from `loop_time` (e.g. the moment a session started, so the
        trace lines up with the session's own `t`). Lines already written keep their `t`."""
        self._trace_origin = loop_time
        if _loop_time() is not None:
            self._start_trace()

    @property
    def control_log(self) -> list[tuple[float, bytes]]:
        """Every control point write that reached the device: (loop time, bytes)."""
        return self.server.control_log

    @property
    def connected(self) -> bool:
        return self._central is not None

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def advertising(self) -> bool:
        return not self._closed and self._central is None and _now() >= self._off_air_until

    @property
    def att_latency_s(self) -> float:
        return self.profile.att_latency_s

    def advertisement(self) -> tuple[BLEDevice, AdvertisementData]:
        adv = AdvertisementData(
            local_name=self.name,
            manufacturer_data={},
            service_data={ftms.FTMS_SERVICE: ftms.encode_ftms_service_data()},
            service_uuids=[ftms.FTMS_SERVICE],
            tx_power=None,
            rssi=self.rssi,
            platform_data=(),
        )
        return self.ble_device, adv

    def inject(
        self, kind: FaultKind | str, *, value: float | None = None, duration: float | None = None
    ) -> Fault:
        """Make a fault happen right now (as if scripted for this moment); returns it."""
        now = _now()
        if self.server.fault_origin is None:
            self.server.fault_origin = now
        fault = Fault(FaultKind(kind), now - self.server.fault_origin, duration, value)
        self.server.add_fault(fault)
        self._fire(fault)
        self._schedule(fault, start=False)
        return fault

    def console_start(self) -> None:
        """Someone presses START on the console (no control needed, as on a real machine)."""
        self._dispatch(self.server.console_start(_now()))

    def console_set_speed(self, kmh: float) -> None:
        """Someone uses the console's speed keys."""
        self._dispatch(self.server.console_set_speed(_now(), kmh))

    def console_set_incline(self, pct: float) -> None:
        """Someone uses the console's incline keys (clamped to the machine's range)."""
        self._dispatch(self.server.console_set_incline(_now(), pct))

    def start_demo_walker(self, speeds: Sequence[float] = (2.0, 3.0, 4.0, 3.0),
                          every_s: float = 4.0) -> asyncio.Task[None]:
        """A simulated person who starts the belt at the console and changes its speed every
        few seconds, so a read-only view (`treadmill status --simulate`) has something to show.
        The task ends when the simulator is closed."""

        async def walk() -> None:
            await asyncio.sleep(0.5)
            self.console_start()
            while not self._closed:
                for kmh in speeds:
                    await asyncio.sleep(every_s)
                    if self._closed:
                        return
                    self.console_set_speed(kmh)

        task = asyncio.get_running_loop().create_task(walk(), name="demo-walker")
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def close(self) -> None:
        """Power off: drop any connection (unsolicited), stop every timer, leave the radio."""
        if self._closed:
            return
        self._closed = True
        for task in self._background:
            task.cancel()
        for timer in self._fault_timers:
            timer.cancel()
        self._fault_timers.clear()
        self._drop_link()
        if self.att is not None:
            self.att.close()
        radio.unregister(self)
        self._stop_trace()

    # ---- ground-truth trace ----------------------------------------------------------------

    def _trace_t(self, now: float) -> float:
        if self._trace_origin is None:
            self._trace_origin = now
        return now - self._trace_origin

    def _start_trace(self) -> None:
        """Start sampling (idempotent); needs a running loop."""
        if self._trace is None or self._trace_task is not None or self._closed:
            return
        if self._trace_origin is None:
            self._trace_origin = _now()
        loop = asyncio.get_running_loop()
        start = loop.time()
        self._trace_sample(start)  # the state at the start is on file at once, not 0.1 s later
        name = f"trace {self.address}"
        self._trace_task = loop.create_task(self._run_trace(start), name=name)

    async def _run_trace(self, start: float) -> None:
        loop = asyncio.get_running_loop()
        period = 1.0 / TRACE_HZ
        due = start + period
        while True:
            await asyncio.sleep(due - loop.time())
            now = loop.time()
            self._trace_sample(now)
            due += period
            if due < now:  # fell behind (real-time loop under load): skip, don't burst
                due = now + period

    def _trace_sample(self, now: float) -> None:
        assert self._trace is not None
        m = self._model
        m.advance_to(now)
        self._trace.state(self._trace_t(now), m.belt_speed_kmh, m.incline_pct, m.running)

    def _trace_write(
        self, now: float, data: bytes, events: list[Event] | None, att_error: int | None = None
    ) -> None:
        if self._trace is None:
            return
        answers = (
            e.data
            for e in events or ()
            if isinstance(e, Notification) and e.uuid == ftms.CONTROL_POINT
        )
        answer = next(answers, None)
        self._trace.write(self._trace_t(now), time.monotonic(), data, answer, att_error)

    def _stop_trace(self) -> None:
        task, self._trace_task = self._trace_task, None
        if task is not None and not task.done():
            with contextlib.suppress(RuntimeError):  # its loop may already be closed
                task.cancel()
        if self._trace is None:
            return
        now = _loop_time()
        m = self._model
        if now is None:
            now = m.time  # closed outside a loop: the last moment the model knows
        else:
            m.advance_to(now)
        self._trace.final(self._trace_t(now), m.belt_speed_kmh, m.incline_pct, m.running)

    # ---- faults --------------------------------------------------------------------------

    def _schedule(self, fault: Fault, *, start: bool = True) -> None:
        origin = self.server.fault_origin
        assert origin is not None
        loop = asyncio.get_running_loop()
        if start:
            self._fault_timers.append(loop.call_at(origin + fault.at, self._fire, fault))
        if fault.end is not None:
            self._fault_timers.append(loop.call_at(origin + fault.end, self._expire, fault))

    def _fire(self, fault: Fault) -> None:
        now = _now()
        if fault.kind is FaultKind.DISCONNECT and fault.duration is not None:
            self._off_air_until = now + fault.duration
        self._dispatch(self.server.apply(fault, now))

    def _expire(self, fault: Fault) -> None:
        self._dispatch(self.server.expire(fault, _now()))

    # ---- link API (simulators/radio.py Peripheral) ---------------------------------------

    def gatt_table(self) -> Sequence[CharacteristicSpec]:
        return self.server.table

    def link_attach(self, central: radio.Central) -> None:
        if not self.advertising:
            raise RuntimeError(f"{self} is not connectable now")
        self._central = central
        self._link_id += 1
        self._start_trace()  # made outside a loop: the trace starts with the first connection
        if self.server.on_connect(_now()):
            for fault in self.faults:
                self._schedule(fault)

    def link_detach(self, central: radio.Central) -> list[asyncio.Task[None]]:
        """The central disconnected; returns the tasks being cancelled (to await)."""
        if central is not self._central:
            return []
        return self._end_link()

    def link_read(self, uuid: str) -> bytes:
        return self.server.read(uuid, _now())

    def link_write(self, uuid: str, data: bytes, *, encrypted: bool = False) -> None:
        now = _now()
        try:
            events = self.server.write(uuid, data, now, encrypted=encrypted)
        except BleakGATTProtocolError as exc:
            if uuid == ftms.CONTROL_POINT:
                self._trace_write(now, data, None, int(exc.code))
            raise
        if uuid == ftms.CONTROL_POINT:
            self._trace_write(now, data, events)
        if not self.profile.indicate_before_write_returns and self.transport == "gatt":
            # Hold answers until just after the write response is back at the client.
            late = self.profile.att_latency_s + 0.001
            events = [
                replace(e, delay=e.delay + late)
                if not isinstance(e, LinkDropped) and e.uuid == ftms.CONTROL_POINT
                else e
                for e in events
            ]
        self._dispatch(events)

    def link_cccd(self, uuid: str) -> int:
        return self.server.cccd(uuid)

    def link_set_cccd(self, uuid: str, value: int, *, encrypted: bool = False) -> None:
        self.server.set_cccd(uuid, value, encrypted=encrypted)
        if uuid != ftms.TREADMILL_DATA:
            return
        if value and self._telemetry is None:
            name = f"telemetry {self.address}"
            self._telemetry = asyncio.get_running_loop().create_task(
                self._run_telemetry(self._link_id), name=name
            )
        elif not value:
            self._cancel_telemetry()

    # ---- delivery ------------------------------------------------------------------------

    async def _run_telemetry(self, link_id: int) -> None:
        loop = asyncio.get_running_loop()
        period = 1.0 / self.profile.notify_hz
        due = loop.time() + period
        while True:
            await asyncio.sleep(due - loop.time())
            now = loop.time()
            self._dispatch(self.server.telemetry(now), link_id)
            due += period
            if due < now:  # fell behind (real-time loop under load): skip, don't burst
                due = now + period

    def _dispatch(self, events: list[Event], link_id: int | None = None) -> None:
        if not events or self._central is None:
            return
        link_id = self._link_id if link_id is None else link_id
        loop = asyncio.get_running_loop()
        for event in events:
            if isinstance(event, LinkDropped):
                self._drop_link()
                return
            if event.delay > 0:
                self._deliver_later(loop, link_id, event)
            else:
                loop.call_soon(self._deliver, link_id, event)

    def _deliver_later(
        self, loop: asyncio.AbstractEventLoop, link_id: int, event: Notification
    ) -> None:
        def fire() -> None:
            self._deliveries.discard(handle)
            self._deliver(link_id, event)

        handle = loop.call_at(loop.time() + event.delay, fire)
        self._deliveries.add(handle)

    def _deliver(self, link_id: int, event: Notification) -> None:
        if link_id == self._link_id and self._central is not None:
            # Before the client hears it: its next write may come from the callback itself.
            self.server.delivered(event)
            self._central.link_deliver(event.uuid, event.data)

    def _cancel_telemetry(self) -> list[asyncio.Task[None]]:
        task, self._telemetry = self._telemetry, None
        if task is None or task.done():
            return []
        with contextlib.suppress(RuntimeError):  # its loop may already be closed
            task.cancel()
        return [task]

    def _end_link(self) -> list[asyncio.Task[None]]:
        self._central = None
        self._link_id += 1
        for handle in self._deliveries:
            handle.cancel()
        self._deliveries.clear()
        self.server.on_disconnect(_now())
        return self._cancel_telemetry()

    def _drop_link(self) -> None:
        """Unsolicited disconnect: the central hears about it."""
        central = self._central
        if central is None:
            return
        self._end_link()
        with contextlib.suppress(RuntimeError):  # no running loop to schedule the callback
            central.link_lost()
