"""FtmsClient against the simulated treadmill: connecting, governor-approved procedures, the
bytes that reach the machine, procedure ordering, and the event stream."""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from collections.abc import Callable
from dataclasses import replace

import pytest
from bleak.exc import BleakDeviceNotFoundError

from safety import (
    ApprovedCommand,
    CommandAccepted,
    CommandFailed,
    EmergencyStop,
    Governor,
    GovernorState,
    MachineLimits,
    MachineStatus,
    Orientation,
    RequestControl,
    SafetyConfig,
    SetIncline,
    SetSpeed,
    SetTargetSpeed,
    Start,
    StatusKind,
    StopBelt,
    StopCmd,
    Telemetry,
    Tick,
)
from safety import LinkLost as GovernorLinkLost
from simulators import SimulatedBleakClient, VirtualTreadmill, get_profile, profile_names
from simulators.profiles import Quirk
from treadmill import ftms
from treadmill.client import (
    APPROVAL_TTL_S,
    SETUP_DROPPED,
    ApprovalExpired,
    DeviceInfo,
    FtmsClient,
    encode_command,
)
from treadmill.errors import ControlNotPermitted, NotConnected, TreadmillError
from treadmill.events import ClientEvent, LinkLost, StatusEvent, TelemetrySample, status_kind
from treadmill.session import machine_limits

# ---- helpers (test_client_faults.py imports these too) ----------------------------------------

TICK_S = 0.1  # the runner's clock tick to the governor (it wants >= 4 Hz)


def now() -> float:
    return asyncio.get_running_loop().time()


def limits_of(info: DeviceInfo) -> MachineLimits:
    """The governor's view of what the treadmill said about itself."""
    speed, incline = info.speed_range, info.incline_range
    assert speed is not None
    if incline is None:
        return MachineLimits(speed.minimum, speed.maximum, speed.step, 0.0, 0.0, 1.0, False)
    return MachineLimits(
        speed.minimum, speed.maximum, speed.step, incline.minimum, incline.maximum, incline.step
    )


def to_governor(event: ClientEvent) -> object:
    match event:
        case TelemetrySample():
            return Telemetry(event.t, event.speed_kmh, event.incline_pct, event.heart_rate_bpm)
        case StatusEvent():
            return MachineStatus(event.t, event.kind, event.value)
        case LinkLost():
            return GovernorLinkLost(event.t)
    raise TypeError(event)


def seen_at_rest(gov: Governor) -> Governor:
    """A governor that has read 0 km/h: rest is seen, never assumed, before a Start."""
    gov.handle(Telemetry(now(), 0.0))
    return gov


def approved(gov: Governor, event: object) -> list[ApprovedCommand]:
    """The commands a governor approves for `event` (without sending them)."""
    return [out for out in gov.handle(event) if isinstance(out, ApprovedCommand)]


def written(sim: VirtualTreadmill, since: float = -math.inf) -> list[bytes]:
    """The control point writes that reached the machine since `since`."""
    return [data for t, data in sim.control_log if t >= since]


class Rig:
    """A connected FtmsClient, its simulated treadmill, and a governor that drives it the way
    the session runner does: every client event goes to the governor (with clock ticks in
    between), every approved command is executed, and its answer goes back to the governor."""

    def __init__(self, client: FtmsClient, sim: VirtualTreadmill, info: DeviceInfo) -> None:
        self.client, self.sim, self.info = client, sim, info
        self.gov = Governor(limits_of(info), SafetyConfig(), t0=now())
        self.governed = True  # False: only record events (observe the client alone)
        self.events: list[ClientEvent] = []
        self.notices: list[object] = []
        self.sent: list[ApprovedCommand] = []
        self.failures: list[TreadmillError] = []
        self._task: asyncio.Task[None] | None = None
        self._next: asyncio.Future[ClientEvent] | None = None

    @classmethod
    async def open(cls, sim: VirtualTreadmill, *, read: bool = True, **client_kw: object) -> Rig:
        client = FtmsClient(sim.ble_device, backend=sim.client_backend, **client_kw)
        rig = cls(client, sim, await client.connect())
        if read:
            rig._task = asyncio.create_task(rig._read(), name="rig reader")
        return rig

    async def close(self) -> None:
        await self.client.disconnect()
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._task), 1.0)
            if not self._task.done():
                self._task.cancel()
                if self._next is not None:
                    self._next.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task  # re-raises what killed the reader, if anything

    @property
    def reading(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _read(self) -> None:
        stream = self.client.events()
        self._next = asyncio.ensure_future(anext(stream))
        while True:
            done, _ = await asyncio.wait({self._next}, timeout=TICK_S)
            if not done:
                if self.governed:
                    await self.feed(Tick(now()))
                continue
            try:
                event = self._next.result()
            except StopAsyncIteration:
                return
            self.events.append(event)
            if self.governed:
                await self.feed(to_governor(event))
            if isinstance(event, LinkLost):
                return
            self._next = asyncio.ensure_future(anext(stream))

    async def feed(self, event: object) -> None:
        """Give the governor an event; send what it approves, report the answers back."""
        for out in self.gov.handle(event):
            if isinstance(out, ApprovedCommand):
                await self.send(out)
            else:
                self.notices.append(out)

    async def send(self, command: ApprovedCommand) -> None:
        self.sent.append(command)
        try:
            await self.client.execute(command)
        except TreadmillError as exc:
            self.failures.append(exc)
            await self.feed(CommandFailed(now(), command.command, str(exc)))
        else:
            await self.feed(CommandAccepted(now(), command.command))

    async def until(self, predicate: Callable[[], bool], within: float = 30.0) -> None:
        deadline = now() + within
        while not predicate():
            assert now() < deadline, f"not within {within} s: {self.gov.state}, {self.notices[-3:]}"
            await asyncio.sleep(0.05)

    def samples(self, since: float = -math.inf, until: float = math.inf) -> list[TelemetrySample]:
        return [e for e in self.events if isinstance(e, TelemetrySample) and since <= e.t < until]

    def speeds(self, since: float = -math.inf, until: float = math.inf) -> list[float | None]:
        return [s.speed_kmh for s in self.samples(since, until)]

    def statuses(self, since: float = -math.inf) -> list[StatusEvent]:
        return [e for e in self.events if isinstance(e, StatusEvent) and e.t >= since]

    @property
    def speed(self) -> float | None:
        """The last speed the treadmill reported."""
        speeds = [s for s in self.speeds() if s is not None]
        return speeds[-1] if speeds else None

    async def walk(self, kmh: float) -> None:
        """Start forward through the governor and ramp to `kmh`, until telemetry shows it."""
        await self.feed(Start(now(), Orientation.FORWARD))
        await self.until(lambda: self.gov.state is GovernorState.RUNNING)
        await self.feed(SetSpeed(now(), kmh))
        await self.until(
            lambda: (
                self.gov.commanded_speed_kmh == pytest.approx(kmh)
                and self.speed == pytest.approx(kmh, abs=0.01)
            )
        )

    async def stop_belt(self) -> None:
        """A normal end through the governor: ramp down, Stop, belt at rest."""
        await self.feed(StopBelt(now()))
        await self.until(lambda: self.gov.state is GovernorState.STOPPED)
        await self.until(lambda: not self.sim.model.moving)



# ---- connecting ---------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", profile_names())
async def test_connect_reads_what_the_profile_offers(connect, profile):
    rig = await connect(profile, read=False)
    p = get_profile(profile)
    info = rig.info
    assert info.speed_range == p.speed
    assert info.incline_range == p.incline
    assert info.features == rig.sim.server.features()
    assert (info.name, info.address) == (rig.sim.name, rig.sim.address)
    assert (info.manufacturer, info.model) == (p.device_info.manufacturer, p.device_info.model)
    assert info.serial == "SIM" + rig.sim.address.replace(":", "")
    assert info.can_set_incline is (p.incline is not None)
    assert rig.client.is_connected and rig.client.malformed_packets == 0
    assert rig.sim.control_log == []  # connecting writes nothing to the control point


async def test_walking_pad_has_no_incline(connect):
    rig = await connect("walking-pad", read=False)
    assert rig.info.incline_range is None
    assert not rig.info.reports_incline and not rig.info.can_set_incline


async def test_unknown_address_raises_device_not_found_without_retrying():
    client = FtmsClient("F2:0D:DE:AD:BE:EF", backend=SimulatedBleakClient, connect_timeout=2.0)
    t0 = now()
    with pytest.raises(BleakDeviceNotFoundError):
        await client.connect()
    assert now() - t0 == pytest.approx(2.0, abs=0.15)  # one attempt: no 3x retries, no backoff
    assert not client.is_connected


async def test_nothing_can_be_sent_before_connecting(make_sim):
    sim = make_sim()
    client = FtmsClient(sim.ble_device, backend=sim.client_backend)
    [stop] = approved(Governor(MachineLimits(0.8, 16, 0.1, 0, 15, 0.5)), EmergencyStop(now()))
    with pytest.raises(NotConnected):
        await client.execute(stop)
    assert sim.control_log == []


@pytest.mark.parametrize("at", [0.015, 0.055, 0.105, 0.125])
async def test_a_link_drop_while_setting_up_is_not_connected_at_gatt_level_times(make_sim, at):
    """Reading device info (0.01-0.10 s) or subscribing (0.10-0.14 s) when the link drops: a
    NotConnected that says what to do, never a raw bleak error. (These are the GATT level's
    phase times; over ATT, tests/test_att_transport.py cuts the link at every other packet.)"""
    sim = make_sim("home", faults=[f"disconnect@{at}"])
    client = FtmsClient(sim.ble_device, backend=sim.client_backend)
    with pytest.raises(NotConnected) as error:
        await client.connect()
    assert SETUP_DROPPED in str(error.value)
    assert not client.is_connected
    assert sim.control_log == []


async def test_a_reused_client_starts_a_fresh_event_stream(make_sim):
    """The previous connection's LinkLost("closed") is not the new stream's first event, and
    a real drop on the new link is "disconnected", not "closed"."""
    sim = make_sim()
    client = FtmsClient(sim.ble_device, backend=sim.client_backend)
    await client.connect()
    await asyncio.sleep(2)
    await client.disconnect()
    t_again = now()
    await client.connect()
    await asyncio.sleep(2)
    sim.inject("disconnect")
    t_drop = now()
    events = [e async for e in client.events()]
    assert isinstance(events[0], TelemetrySample) and events[0].t >= t_again
    assert [e for e in events if isinstance(e, LinkLost)] == [
        LinkLost(pytest.approx(t_drop, abs=0.05), "disconnected")
    ]
    assert events[-1].reason == "disconnected"
    assert all(e.t >= t_again for e in events)
    await client.disconnect()


async def test_an_implausible_speed_range_is_no_range(make_sim):
    """A range no machine has (here up to 600 km/h) is malformed: the client reports none, and
    the session refuses in one line instead of driving by nonsense."""
    profile = replace(get_profile("home"), speed=ftms.Range(0.8, 600.0, 0.1))
    sim = make_sim(profile)
    client = FtmsClient(sim.ble_device, backend=sim.client_backend)
    info = await client.connect()
    try:
        assert info.speed_range is None and info.incline_range == profile.incline
        assert client.malformed_packets == 1
        with pytest.raises(TreadmillError, match="does not report its speed range"):
            machine_limits(client)
    finally:
        await client.disconnect()


async def test_implausible_telemetry_is_not_a_fact(connect):
    """Beyond the machine's own range by more than max(2 km/h, 10 %): the speed (or incline)
    is dropped and counted malformed; the plausible rest of the sample is kept."""
    rig = await connect(read=False)  # home: 0.8-16 km/h, 0-15 %
    before = rig.client.malformed_packets
    notify = rig.client._on_treadmill_data
    notify(None, bytearray(ftms.encode_treadmill_data(ftms.TreadmillData(
        speed_kmh=18.0, distance_m=120, incline_pct=17.0, elapsed_s=60))))
    notify(None, bytearray(ftms.encode_treadmill_data(ftms.TreadmillData(
        speed_kmh=18.01, distance_m=121, incline_pct=17.1, elapsed_s=61))))
    notify(None, bytearray(ftms.encode_treadmill_data(ftms.TreadmillData(
        speed_kmh=3.0, incline_pct=-2.1))))
    await rig.client.disconnect()
    samples = [e async for e in rig.client.events() if isinstance(e, TelemetrySample)][-3:]
    assert [(s.speed_kmh, s.incline_pct, s.distance_m, s.elapsed_s) for s in samples] == [
        (18.0, 17.0, 120, 60),
        (None, None, 121, 61),
        (3.0, None, None, None),
    ]
    assert [s.raw.implausible for s in samples] == [
        frozenset(), {"speed_kmh", "incline_pct"}, {"incline_pct"}
    ]
    assert rig.client.malformed_packets == before + 2


async def test_only_approved_commands_are_executed(connect):
    rig = await connect(read=False)
    for command in (StopCmd(), RequestControl(), SetTargetSpeed(2.0), b"\x08\x01"):
        with pytest.raises(TypeError, match="safety governor"):
            await rig.client.execute(command)  # type: ignore[arg-type]
    assert rig.sim.control_log == []


# ---- a governed session on every profile --------------------------------------------------------


@pytest.mark.parametrize("profile", profile_names())
async def test_governed_session(connect, profile):
    rig = await connect(profile)
    p = get_profile(profile)
    start = max(1.0, p.speed.minimum)  # the forward start speed
    target = round(start + 1.0, 2)
    await rig.walk(target)
    assert rig.sim.model.belt_speed_kmh == pytest.approx(target)
    # telemetry converged and stays there
    await asyncio.sleep(3)
    t = now()
    assert rig.speeds(t - 2) and all(s == pytest.approx(target) for s in rig.speeds(t - 2))
    await rig.stop_belt()
    await asyncio.sleep(2)
    assert not rig.sim.model.running and rig.sim.model.belt_speed_kmh == 0.0
    if profile != "silent-stop":
        assert rig.speed == 0.0
    assert rig.failures == []
    assert rig.gov.internal_errors == 0

    # The machine got exactly what the governor approved, in order, and nothing else.
    writes = written(rig.sim)
    assert writes == [encode_command(c.command) for c in rig.sent]
    if p.has(Quirk.SILENT_WHEN_STOPPED):
        # Nothing read before the start: a Stop (re-sent while the silence is too short to
        # tell rest from a drop-out) made rest visible first.
        assert writes[1] == ftms.encode_stop()
        while writes[1] == ftms.encode_stop():
            del writes[1]
    assert writes[:2] == [ftms.encode_request_control(), ftms.encode_start_resume()]
    assert writes[-1] == ftms.encode_stop()
    while writes[-2] == ftms.encode_stop():
        del writes[-1]  # a slow belt gets its Stop again until it is still
    speeds = [ftms.decode_control_request(w).value for w in writes[2:-1]]
    assert all(w[0] == ftms.ControlOp.SET_TARGET_SPEED for w in writes[2:-1])
    ramp = [round(start + 0.1 * i, 2) for i in range(11)]
    assert speeds == ramp + ramp[-2::-1]  # up in 0.1 steps, then down again


async def test_first_speed_waits_for_belt_motion(connect):
    """Gym treadmill: 3 s countdown after Start; the first speed goes only once it moves."""
    rig = await connect("gym")
    await rig.walk(1.5)
    (t_start, _), (t_speed, first_speed) = rig.sim.control_log[1:3]
    assert first_speed == ftms.encode_set_target_speed(1.0)
    assert t_speed - t_start >= 3.0
    moving = [s.t for s in rig.samples() if s.speed_kmh]
    assert moving[0] <= t_speed


@pytest.mark.parametrize(
    ("profile", "pct"), [("home", 2.0), ("coarse-incline", 3.0), ("gym", -1.5)]
)
async def test_incline_through_the_governor(connect, profile, pct):
    rig = await connect(profile)
    await rig.walk(2.0)
    t = now()
    await rig.feed(SetIncline(t, pct))
    await rig.until(lambda: rig.samples(t) and rig.samples(t)[-1].incline_pct == pct, 40)
    assert written(rig.sim, t) == [ftms.encode_set_target_inclination(pct)]
    assert StatusKind.TARGET_INCLINE_CHANGED in [s.kind for s in rig.statuses(t)]
    assert rig.failures == []


# ---- one procedure at a time -------------------------------------------------------------------


# Over the ATT transport a write reaches the machine at the next connection event and its answer
# at the one after: allow a few events of air time where a test checks when things happened.
AIR_S = 0.1


def two_request_controls(rig: Rig) -> list[ApprovedCommand]:
    """Two independent sessions each approve a Request Control."""
    limits = limits_of(rig.info)
    return [approved(Governor(limits), Start(now(), Orientation.FORWARD))[0] for _ in range(2)]


async def test_one_procedure_at_a_time(connect):
    # Approvals never expire here: this is about ordering (see the next test for expiry).
    rig = await connect(read=False, faults=["delay-indication@0+30=2"], approval_ttl_s=math.inf)
    first, second = two_request_controls(rig)
    t0 = now()
    results = await asyncio.gather(rig.client.execute(first), rig.client.execute(second))
    assert [r.ok for r in results] == [True, True]
    (t1, w1), (t2, w2) = rig.sim.control_log
    assert w1 == w2 == ftms.encode_request_control()
    assert t1 == pytest.approx(t0, abs=AIR_S)
    assert t2 == pytest.approx(t0 + 2.0, abs=0.02 + AIR_S)  # only after the first answer arrived
    assert now() == pytest.approx(t0 + 4.0, abs=0.03 + 2 * AIR_S)


async def test_an_approval_queued_behind_a_slow_answer_expires(connect):
    """DESIGN §5: approvals expire. The second command waited 2 s for the first answer; by
    then the situation may have changed, so it is not written."""
    rig = await connect(read=False, faults=["delay-indication@0+30=2"])
    first, second = two_request_controls(rig)
    results = await asyncio.gather(
        rig.client.execute(first), rig.client.execute(second), return_exceptions=True
    )
    assert results[0].ok
    assert isinstance(results[1], ApprovalExpired) and results[1].command == second.command
    assert written(rig.sim) == [ftms.encode_request_control()]  # the second never went out


async def test_a_command_approved_before_a_stop_is_not_written_after_it(connect):
    """A write waiting for the procedure lock (or for pairing) when a Stop goes out is void:
    nothing approved before a Stop may reach the belt after it."""
    rig = await connect(read=False, faults=["delay-indication@0+30=2"], approval_ttl_s=math.inf)
    first, second = two_request_controls(rig)
    [stop] = approved(Governor(limits_of(rig.info)), EmergencyStop(now()))
    slow = asyncio.create_task(rig.client.execute(first))
    queued = asyncio.create_task(rig.client.execute(second))  # waits for the lock
    await asyncio.sleep(0.1)
    await asyncio.gather(rig.client.execute(stop), return_exceptions=True)
    results = await asyncio.gather(slow, queued, return_exceptions=True)
    assert isinstance(results[1], ApprovalExpired)
    assert [data for _, data in rig.sim.control_log].count(ftms.encode_request_control()) == 1


async def test_an_expired_approval_is_not_written(connect):
    rig = await connect(read=False)
    assert rig.client.approval_ttl_s == APPROVAL_TTL_S == 0.5
    [control] = approved(Governor(limits_of(rig.info)), Start(now(), Orientation.FORWARD))
    await asyncio.sleep(1.0)
    before = list(rig.sim.control_log)
    with pytest.raises(ApprovalExpired, match=r"approved 1\.00 s ago"):
        await rig.client.execute(control)
    assert rig.sim.control_log == before
    assert isinstance(ApprovalExpired(control.command, 1, 0.5), TreadmillError)


async def test_an_approval_within_its_ttl_is_written(connect):
    rig = await connect(read=False, approval_ttl_s=2.0)
    [control] = approved(Governor(limits_of(rig.info)), Start(now(), Orientation.FORWARD))
    await asyncio.sleep(1.5)
    assert (await rig.client.execute(control)).ok
    assert written(rig.sim) == [ftms.encode_request_control()]


async def test_a_stop_never_expires(connect):
    rig = await connect(read=False)
    [stop] = approved(Governor(limits_of(rig.info)), EmergencyStop(now()))
    await asyncio.sleep(10)
    with contextlib.suppress(ControlNotPermitted):  # no control held: refused, but written
        await rig.client.execute(stop)
    assert written(rig.sim) == [ftms.encode_stop()]


async def test_stop_is_not_queued_behind_a_slow_procedure(connect):
    rig = await connect(read=False, faults=["delay-indication@0+30=2"])
    [slow] = two_request_controls(rig)[:1]
    [stop] = approved(Governor(limits_of(rig.info)), EmergencyStop(now()))
    t0 = now()
    slow_task = asyncio.create_task(rig.client.execute(slow))
    await asyncio.sleep(0.1)
    stop_task = asyncio.create_task(rig.client.execute(stop))
    await asyncio.sleep(0.05)
    assert not slow_task.done()  # its answer is 2 s away
    assert rig.sim.control_log[:2] == [
        (pytest.approx(t0, abs=AIR_S), ftms.encode_request_control()),
        # written at once, not after the answer
        (pytest.approx(t0 + 0.1, abs=AIR_S), ftms.encode_stop()),
    ]
    assert (await slow_task).ok  # the slow procedure still completes
    await asyncio.gather(stop_task, return_exceptions=True)  # its fate: see the next test


async def test_a_stop_refused_because_an_answer_is_owed_is_not_lost(connect):
    """FTMS machines refuse a write while an answer is owed (ATT error 0xFE). A Stop written at
    once meets exactly that refusal; it must still take effect as soon as the machine can take
    it, and never come back as a raw bleak error the runner does not expect."""
    rig = await connect(read=False, faults=["delay-indication@5+30=2"])
    gov = seen_at_rest(Governor(limits_of(rig.info)))
    [control] = approved(gov, Start(now(), Orientation.FORWARD))
    await rig.client.execute(control)
    [start] = approved(gov, CommandAccepted(now(), control.command))
    await rig.client.execute(start)
    await asyncio.sleep(6)  # belt running at its minimum; answers are now 2 s late
    assert rig.sim.model.running
    [again] = approved(Governor(limits_of(rig.info)), Start(now(), Orientation.FORWARD))
    task = asyncio.create_task(rig.client.execute(again))
    try:
        await asyncio.sleep(0.1)
        [stop] = approved(gov, EmergencyStop(now()))
        response = await rig.client.execute(stop)  # today: BleakGATTProtocolError (0xFE)
        assert response.ok
        assert not rig.sim.model.running
    finally:
        await asyncio.gather(task, return_exceptions=True)


# ---- indications around the write --------------------------------------------------------------


@pytest.mark.parametrize("before", [True, False])
async def test_indication_before_or_after_the_write_returns(connect, before):
    profile = replace(get_profile("home"), indicate_before_write_returns=before)
    rig = await connect(profile, read=False)
    gov = seen_at_rest(Governor(limits_of(rig.info)))
    [control] = approved(gov, Start(now(), Orientation.FORWARD))
    t0 = now()
    assert (await rig.client.execute(control)).ok
    latency = rig.sim.att_latency_s  # the GATT level's round trip; over ATT, the air's
    air = 1e-6 if rig.sim.transport == "gatt" else AIR_S
    assert now() - t0 == pytest.approx(latency if before else latency + 0.001, abs=air)
    [start] = approved(gov, CommandAccepted(now(), control.command))
    assert (await rig.client.execute(start)).ok
    assert rig.client._pending == {}
    assert written(rig.sim) == [b"\x00", b"\x07"]


# ---- the event stream --------------------------------------------------------------------------


async def test_event_stream_ends_with_link_lost_on_disconnect(connect):
    rig = await connect(faults=["disconnect@20"])
    await rig.walk(2.0)
    await asyncio.sleep(25 - now())
    assert not rig.reading  # the stream ended
    # Fault times count from the first connection (over ATT: the first advertisement heard).
    origin = rig.sim.server.fault_origin
    assert rig.events[-1] == LinkLost(pytest.approx(origin + 20.0, abs=AIR_S), "disconnected")
    assert [e for e in rig.events if isinstance(e, LinkLost)] == rig.events[-1:]
    assert not rig.client.is_connected
    assert rig.gov.state is GovernorState.ENDED
    assert rig.sim.model.running  # the belt goes on under console control


async def test_closing_ends_the_stream_with_link_lost_closed(connect):
    rig = await connect()
    await asyncio.sleep(2)
    await rig.client.disconnect()
    await asyncio.sleep(0.1)
    assert not rig.reading
    assert rig.events[-1] == LinkLost(pytest.approx(now(), abs=0.2), "closed")
    assert [e for e in rig.events if isinstance(e, LinkLost)] == rig.events[-1:]


async def test_telemetry_is_coalesced_when_nobody_reads(connect):
    rig = await connect(read=False, max_queued_telemetry=8)
    await asyncio.sleep(5)
    rig.sim.console_start()  # status 0x04
    await asyncio.sleep(5)
    rig.sim.console_set_speed(3.0)  # status 0x05
    await asyncio.sleep(10)
    rig.sim.inject("unknown-status")  # status 0x42
    await asyncio.sleep(10)
    await rig.client.disconnect()
    events = [e async for e in rig.client.events()]
    samples = [e for e in events if isinstance(e, TelemetrySample)]
    statuses = [(e.kind, e.code, e.value) for e in events if isinstance(e, StatusEvent)]
    assert statuses == [
        (StatusKind.STARTED_BY_USER, 0x04, None),
        (StatusKind.TARGET_SPEED_CHANGED, 0x05, 3.0),
        (StatusKind.UNKNOWN, 0x42, None),
    ]
    assert len(samples) == 8
    assert 110 <= rig.client.notifications <= 121  # 4 Hz for 30 s
    assert rig.client.dropped_telemetry == rig.client.notifications - 8
    # the newest ones are kept, in order
    times = [s.t for s in samples]
    assert times == sorted(times) and times[-1] > now() - 0.3
    assert all(s.speed_kmh == pytest.approx(3.0) for s in samples)
    assert isinstance(events[-1], LinkLost)


async def test_a_slow_reader_loses_no_safety_status(connect):
    """Repeats of a status that only says "something changed" collapse into the latest; every
    safety-relevant status is delivered, in order."""
    rig = await connect(read=False, max_queued_telemetry=2)
    for _ in range(5):
        rig.sim.inject("unknown-status", value=0x99)
        await asyncio.sleep(3)
    rig.sim.console_start()  # 0x04
    await asyncio.sleep(3)
    for kmh in (2.0, 3.0, 2.0, 3.0):
        rig.sim.console_set_speed(kmh)  # 0x05
        await asyncio.sleep(3)
    rig.sim.inject("pause-at-console")  # 0x02 2
    await asyncio.sleep(3)
    rig.sim.inject("safety-key")  # 0x03
    await asyncio.sleep(3)
    await rig.client.disconnect()
    events = [e async for e in rig.client.events()]
    statuses = [(e.code, e.value) for e in events if isinstance(e, StatusEvent)]
    assert statuses == [(0x99, None), (0x04, None), (0x05, 2.0), (0x05, 3.0), (0x02, 2),
                        (0x03, None)]
    assert rig.client.dropped_statuses == 4 + 2
    assert len([e for e in events if isinstance(e, TelemetrySample)]) <= 2
    assert rig.client.dropped_telemetry > 0
    assert isinstance(events[-1], LinkLost)


async def test_the_status_queue_stays_bounded_under_garbage(connect):
    """20,000 garbage status notifications and nobody reading: the queue stays bounded, and
    every safety-relevant status among them (here a safety key) is still delivered."""
    rig = await connect(read=False)
    rng = random.Random(20_000)
    relevant: list[tuple[int, object]] = []
    coalesced = {StatusKind.UNKNOWN, StatusKind.TARGET_SPEED_CHANGED,
                 StatusKind.TARGET_INCLINE_CHANGED}
    for i in range(20_000):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4)))
        if i == 12_345:
            data = b"\x03"
        status = ftms.decode_machine_status(data)
        if status_kind(status) not in coalesced:
            relevant.append((status.op, status.value))
        rig.client._on_machine_status(None, bytearray(data))
        assert rig.client.queued_events <= 64 + len(relevant)
    assert (0x03, None) in relevant
    # The latest target of each kind survives however much garbage follows it.
    rig.client._on_machine_status(None, bytearray(ftms.encode_machine_status(0x05, 2.5)))
    for i in range(500):
        rig.client._on_machine_status(None, bytearray([0x80 + i % 100]))
    await rig.client.disconnect()
    events = [e async for e in rig.client.events()]
    statuses = [e for e in events if isinstance(e, StatusEvent)]
    assert [(s.code, s.value) for s in statuses if s.kind not in coalesced] == relevant
    assert (StatusKind.TARGET_SPEED_CHANGED, 2.5) in [(s.kind, s.value) for s in statuses]
    assert rig.client.dropped_statuses > 19_000
    assert isinstance(events[-1], LinkLost)


# ---- the client never acts on its own ----------------------------------------------------------


async def test_no_request_control_after_control_lost(connect):
    rig = await connect(read=False)
    [control] = approved(Governor(limits_of(rig.info)), Start(now(), Orientation.FORWARD))
    assert (await rig.client.execute(control)).ok
    await asyncio.sleep(2)
    t_lost = now()
    rig.sim.inject("control-lost")
    await asyncio.sleep(30)
    assert written(rig.sim, t_lost) == []  # nothing written by itself
    [stop] = approved(Governor(limits_of(rig.info)), EmergencyStop(now()))
    with pytest.raises(ControlNotPermitted) as error:
        await rig.client.execute(stop)
    assert error.value.result == ftms.ResultCode.CONTROL_NOT_PERMITTED
    await asyncio.sleep(10)
    assert written(rig.sim, t_lost) == [ftms.encode_stop()]  # no 0x00 after the 0xFF
    statuses = [e async for e in _drain(rig.client) if isinstance(e, StatusEvent)]
    assert [(s.kind, s.code) for s in statuses] == [(StatusKind.CONTROL_LOST, 0xFF)]


async def _drain(client: FtmsClient):
    await client.disconnect()
    async for event in client.events():
        yield event
