"""FtmsClient's exact reaction to every simulator fault kind and every quirk profile."""

from __future__ import annotations

import asyncio
import math

import pytest
from test_client import Rig, approved, limits_of, now, written  # shared helpers

from safety import (
    CommandAccepted,
    EmergencyStop,
    EndReason,
    Governor,
    GovernorState,
    Orientation,
    SetIncline,
    SetSpeed,
    SetTargetSpeed,
    Start,
    StatusKind,
    Telemetry,
)
from simulators import FaultKind
from treadmill import ftms
from treadmill.errors import (
    ControlNotPermitted,
    ControlPointError,
    IndicationTimeout,
    InvalidParameter,
    NotConnected,
    OpCodeNotSupported,
    OperationFailed,
    UnknownResult,
    WriteRefused,
    control_point_error,
)
from treadmill.events import LinkLost, TelemetrySample


async def walking(connect, kmh: float = 2.0, profile: str = "home", **kw) -> Rig:
    """A rig whose governor has brought the belt to `kmh`; from then on it only records events,
    so what follows is the client's own reaction (nothing decides or sends anything)."""
    rig = await connect(profile, **kw)
    await rig.walk(kmh)
    await asyncio.sleep(2)
    rig.governed = False
    return rig


def request_control(rig: Rig):
    """A Request Control approved by a fresh session's governor."""
    [command] = approved(Governor(limits_of(rig.info)), Start(now(), Orientation.FORWARD))
    return command


def stop(rig: Rig):
    [command] = approved(rig.gov, EmergencyStop(now()))
    return command


# Over the ATT transport writes and answers wait for connection events: a few ms at 7.5 ms.
AIR_S = 0.05


def test_every_fault_kind_has_a_test_here():
    tested = {
        "disconnect", "drop-notifications", "delay-notifications", "delay-indication",
        "no-indication", "result-unsupported", "result-invalid", "result-failed",
        "result-not-permitted", "control-lost", "safety-key", "stop-at-console",
        "pause-at-console", "overshoot", "ignore-setpoints", "corrupt-packet", "short-packet",
        "long-packet", "unknown-status", "speed-up-by-itself", "console-start",
        "console-incline",
    }  # fmt: skip
    assert tested == {kind.value for kind in FaultKind}


# ---- the link ----------------------------------------------------------------------------------


async def test_disconnect(connect):
    rig = await connect(faults=["disconnect@20"])
    await rig.walk(2.0)
    rig.governed = False
    await asyncio.sleep(21 - now())
    origin = rig.sim.server.fault_origin  # faults count from the first connection
    assert rig.events[-1] == LinkLost(pytest.approx(origin + 20.0, abs=AIR_S), "disconnected")
    assert not rig.reading and not rig.client.is_connected
    t = now()
    with pytest.raises(NotConnected):
        await rig.client.execute(stop(rig))
    assert written(rig.sim, t) == []
    assert rig.sim.model.running  # the belt goes on; the governor must tell the person


async def test_disconnect_while_an_answer_is_owed(connect):
    rig = await connect(read=False, faults=["no-indication@0"])
    task = asyncio.create_task(rig.client.execute(request_control(rig)))
    await asyncio.sleep(1)
    t = now()
    rig.sim.inject("disconnect")
    await asyncio.sleep(0)
    with pytest.raises(NotConnected):
        await task
    assert now() == pytest.approx(t, abs=0.02 + AIR_S)  # at once, not after the timeout


async def test_drop_notifications(connect):
    rig = await walking(connect)
    t = now()
    rig.sim.inject("drop-notifications", duration=3)
    await asyncio.sleep(6)
    assert rig.samples(t, t + 3) == []
    resumed = rig.samples(t + 3)
    assert resumed and resumed[0].t < t + 3.3
    assert all(s.speed_kmh == pytest.approx(2.0) for s in resumed)  # silent, not stopped
    assert rig.reading and rig.client.malformed_packets == 0


async def test_delay_notifications(connect):
    rig = await walking(connect)
    t_motion = rig.sim.control_log[1][0]  # Start: elapsed time counts from here (no countdown)

    def lag(sample: TelemetrySample) -> float:
        return sample.t - t_motion - sample.elapsed_s

    t = now()
    rig.sim.inject("delay-notifications", value=2, duration=5)
    await asyncio.sleep(10)
    on_time = [lag(s) for s in rig.samples(until=t)] + [lag(s) for s in rig.samples(t + 7)]
    assert all(-0.01 <= x <= 1.01 for x in on_time)
    assert rig.samples(t + 0.01, t + 2) == []  # the first delayed one is 2 s away
    late = [s for s in rig.samples(t) if lag(s) > 1.5]
    assert len(late) >= 4 * 4
    assert all(1.99 <= lag(s) <= 3.01 for s in late)
    assert all(t + 2 <= s.t < t + 7 for s in late)


async def test_delay_indication_shorter_than_the_timeout(connect):
    rig = await connect(read=False, faults=["delay-indication@0=2"])
    t = now()
    response = await rig.client.execute(request_control(rig))
    assert response.ok and response.request_op == ftms.ControlOp.REQUEST_CONTROL
    assert now() - t == pytest.approx(2.0, abs=AIR_S)


@pytest.mark.parametrize("fault", ["delay-indication@0=8", "no-indication@0"])
async def test_no_answer_within_the_timeout(connect, fault):
    rig = await connect(read=False, faults=[fault], indication_timeout=5.0)
    t = now()
    with pytest.raises(IndicationTimeout) as error:
        await rig.client.execute(request_control(rig))
    latency = rig.sim.att_latency_s  # the deadline runs from the write's response
    air = 1e-5 if rig.sim.transport == "gatt" else AIR_S  # over ATT: connection events
    assert now() - t == pytest.approx(5.0 + latency, abs=air)
    assert (error.value.op, error.value.seconds) == (ftms.ControlOp.REQUEST_CONTROL, 5.0)
    await asyncio.sleep(5)  # a late answer (delay-indication) is dropped quietly
    assert rig.client._pending == {} and rig.client.malformed_packets == 0
    assert rig.client.is_connected


async def test_stop_after_an_unanswered_procedure_fails_with_a_typed_error(connect):
    """The machine still owes an answer (FTMS allows it 30 s) and refuses the Stop with ATT
    error 0xFE: the client keeps writing Stop until its deadline, then the runner gets a
    TreadmillError it knows (WriteRefused), not a raw bleak error."""
    rig = await connect(read=False, faults=["no-indication@0"], indication_timeout=5.0)
    with pytest.raises(IndicationTimeout):
        await rig.client.execute(request_control(rig))
    t = now()
    with pytest.raises(WriteRefused) as error:
        await rig.client.execute(stop(rig))
    assert error.value.code == 0xFE
    assert 5.0 <= now() - t <= 5.5
    attempts = written(rig.sim, t)
    assert len(attempts) >= 10 and set(attempts) == {ftms.encode_stop()}


# ---- refused procedures ------------------------------------------------------------------------

RESULT_FAULTS = [
    ("result-unsupported", OpCodeNotSupported, ftms.ResultCode.OP_CODE_NOT_SUPPORTED),
    ("result-invalid", InvalidParameter, ftms.ResultCode.INVALID_PARAMETER),
    ("result-failed", OperationFailed, ftms.ResultCode.OPERATION_FAILED),
    ("result-not-permitted", ControlNotPermitted, ftms.ResultCode.CONTROL_NOT_PERMITTED),
]


@pytest.mark.parametrize(("fault", "error_type", "result"), RESULT_FAULTS)
async def test_result_faults_raise_the_matching_error(connect, fault, error_type, result):
    rig = await connect(read=False, faults=[f"{fault}@0"])
    with pytest.raises(error_type) as error:
        await rig.client.execute(request_control(rig))
    assert isinstance(error.value, ControlPointError)
    assert (error.value.op, error.value.result) == (ftms.ControlOp.REQUEST_CONTROL, result)
    with pytest.raises(error_type) as error:
        await rig.client.execute(stop(rig))
    assert (error.value.op, error.value.result) == (ftms.ControlOp.STOP_PAUSE, result)
    assert written(rig.sim) == [ftms.encode_request_control(), ftms.encode_stop()]


@pytest.mark.parametrize(("fault", "error_type", "result"), RESULT_FAULTS)
async def test_result_faults_while_walking(connect, fault, error_type, result):
    rig = await walking(connect)
    rig.sim.inject(fault)
    with pytest.raises(error_type):
        await rig.client.execute(stop(rig))
    await asyncio.sleep(2)
    assert rig.sim.model.running  # refused: not executed
    assert rig.reading


def test_unknown_result_codes_raise_unknown_result():
    error = control_point_error(ftms.ControlOp.SET_TARGET_SPEED, 0x09)
    assert type(error) is UnknownResult and error.result == 0x09
    assert "0x09" in str(error)


# ---- the machine takes over --------------------------------------------------------------------


async def test_control_lost(connect):
    rig = await connect()
    await rig.walk(2.0)
    t = now()
    rig.sim.inject("control-lost")
    await asyncio.sleep(10)
    lost = rig.statuses(t)
    assert [(s.kind, s.code, s.value) for s in lost] == [(StatusKind.CONTROL_LOST, 0xFF, None)]
    assert rig.gov.state is GovernorState.ENDED
    assert rig.gov.ended_reason is EndReason.CONTROL_LOST
    # One Stop attempted anyway (the byte could have been garbage); nobody asked for control.
    assert written(rig.sim, t) == [ftms.encode_stop()]
    with pytest.raises(ControlNotPermitted) as error:
        await rig.client.execute(stop(rig))
    assert error.value.result == ftms.ResultCode.CONTROL_NOT_PERMITTED
    await asyncio.sleep(10)
    assert written(rig.sim, t) == [ftms.encode_stop()] * 2  # no 0x00 after the 0xFF
    assert rig.sim.model.running  # the console has it now


async def test_console_start(connect):
    """Someone starts the belt at the console: the client reports it as the machine says."""
    rig = await connect(faults=["console-start@1=4"])
    rig.governed = False
    await asyncio.sleep(12)
    kinds = [(s.kind, s.value) for s in rig.statuses(0)]
    assert (StatusKind.STARTED_BY_USER, None) in kinds
    assert (StatusKind.TARGET_SPEED_CHANGED, 4.0) in kinds
    assert rig.speed == pytest.approx(4.0, abs=0.01)
    assert written(rig.sim) == []  # the client itself never acts


async def test_console_incline(connect):
    rig = await connect(faults=["console-incline@1=6"])
    rig.governed = False
    await asyncio.sleep(20)
    assert (StatusKind.TARGET_INCLINE_CHANGED, 6.0) in [(s.kind, s.value) for s in rig.statuses(0)]
    assert rig.samples()[-1].incline_pct == pytest.approx(6.0)
    assert written(rig.sim) == []


async def test_safety_key(connect):
    rig = await walking(connect)
    t = now()
    rig.sim.inject("safety-key")
    await asyncio.sleep(3)
    assert [(s.kind, s.code) for s in rig.statuses(t)] == [(StatusKind.SAFETY_KEY, 0x03)]
    assert rig.speeds(t + 1) and set(rig.speeds(t + 1)) == {0.0}
    # A new session cannot start the belt while the key is out.
    gov = Governor(limits_of(rig.info))
    gov.handle(Telemetry(now(), 0.0))
    [control] = approved(gov, Start(now(), Orientation.FORWARD))
    assert (await rig.client.execute(control)).ok
    [start] = approved(gov, CommandAccepted(now(), control.command))
    with pytest.raises(OperationFailed) as error:
        await rig.client.execute(start)
    assert (error.value.op, error.value.result) == (0x07, ftms.ResultCode.OPERATION_FAILED)
    await asyncio.sleep(2)
    assert set(rig.speeds(t + 1)) == {0.0}


@pytest.mark.parametrize(
    ("fault", "kind", "param"),
    [
        ("stop-at-console", StatusKind.STOPPED_BY_USER, 1),
        ("pause-at-console", StatusKind.PAUSED_BY_USER, 2),
    ],
)
async def test_stopped_or_paused_at_the_console(connect, fault, kind, param):
    rig = await walking(connect)
    t = now()
    rig.sim.inject(fault)
    await asyncio.sleep(3)
    assert [(s.kind, s.code, s.value) for s in rig.statuses(t)] == [(kind, 0x02, param)]
    assert rig.speeds(t + 1.5) and set(rig.speeds(t + 1.5)) == {0.0}  # 2 km/h at 1.5 km/h/s
    assert written(rig.sim, t) == []


async def test_overshoot(connect):
    rig = await walking(connect)
    t = now()
    rig.sim.inject("overshoot", value=0.5)
    await asyncio.sleep(3)
    assert rig.speeds(t + 1) and all(s == pytest.approx(2.5) for s in rig.speeds(t + 1))
    assert rig.gov.commanded_speed_kmh == 2.0
    assert written(rig.sim, t) == []


async def test_ignore_setpoints(connect):
    rig = await connect()
    await rig.walk(2.0)
    t = now()
    rig.sim.inject("ignore-setpoints")
    await rig.feed(SetSpeed(now(), 3.0))
    await rig.until(lambda: written(rig.sim, t) != [])
    await asyncio.sleep(5)
    assert written(rig.sim, t) == [ftms.encode_set_target_speed(2.1)]  # one step, then it waits
    assert rig.failures == []  # answered success...
    assert set(rig.speeds(t)) == {2.0}  # ...and ignored
    assert StatusKind.TARGET_SPEED_CHANGED not in [s.kind for s in rig.statuses(t)]


@pytest.mark.parametrize("fault", ["corrupt-packet", "short-packet", "long-packet"])
async def test_garbled_packet(connect, fault):
    rig = await walking(connect)
    before = rig.client.malformed_packets
    t = now()
    rig.sim.inject(fault)  # just the next Treadmill Data packet
    await asyncio.sleep(3)
    samples = rig.samples(t)
    bad = [s for s in samples if s.raw.malformed]
    assert len(bad) == 1 and samples[0] is bad[0]
    assert rig.client.malformed_packets == before + 1
    assert rig.reading  # no exception; the stream goes on
    assert len(samples) >= 10 and all(s.speed_kmh == pytest.approx(2.0) for s in samples[1:])


async def test_garbled_packets_for_a_while(connect):
    rig = await walking(connect)
    before = rig.client.malformed_packets
    t = now()
    rig.sim.inject("short-packet", duration=2)
    await asyncio.sleep(4)
    bad = [s for s in rig.samples(t) if s.raw.malformed]
    assert 7 <= len(bad) <= 9  # 4 Hz for 2 s
    assert all(t <= s.t < t + 2.01 for s in bad)
    assert all(s.speed_kmh == pytest.approx(2.0) for s in bad)  # what fits is still decoded
    assert rig.client.malformed_packets == before + len(bad)
    assert rig.samples(t + 2.01) and rig.reading


@pytest.mark.parametrize("code", [None, 0x99, 0x07])
async def test_unknown_status(connect, code):
    rig = await walking(connect)
    t = now()
    rig.sim.inject("unknown-status", value=code)
    await asyncio.sleep(1)
    [status] = rig.statuses(t)
    expected_code = 0x42 if code is None else code
    assert (status.kind, status.code, status.value) == (StatusKind.UNKNOWN, expected_code, None)
    assert rig.client.malformed_packets == 1 and rig.reading  # a reserved code: malformed


async def test_speed_up_by_itself(connect):
    rig = await walking(connect)
    t = now()
    rig.sim.inject("speed-up-by-itself", value=1.0)
    await asyncio.sleep(3)
    assert rig.speeds(t)[-1] == pytest.approx(3.0)
    assert rig.speeds(t) == sorted(rig.speeds(t))  # rising
    assert written(rig.sim, t) == []


async def test_speed_up_by_itself_from_standstill(connect):
    rig = await connect()
    rig.governed = False
    await asyncio.sleep(2)
    assert set(rig.speeds()) == {0.0}
    rig.sim.inject("speed-up-by-itself", value=1.0)
    await asyncio.sleep(5)
    assert rig.speed == pytest.approx(1.8)  # minimum + 1 km/h
    assert rig.sim.control_log == []


# ---- quirk profiles ----------------------------------------------------------------------------


async def test_silent_stop(connect):
    rig = await connect("silent-stop")
    await asyncio.sleep(10)
    assert rig.samples() == []  # idle: silence, not 0 km/h
    await rig.walk(2.0)
    await rig.stop_belt()
    t = now()
    await asyncio.sleep(10)
    assert rig.samples(t) == []
    assert 0.0 not in rig.speeds()
    assert rig.gov.state is GovernorState.STOPPED and rig.failures == []


async def test_ignores_speed_when_stopped(connect):
    # Re-executing an old approval needs approvals that never expire.
    rig = await connect("ignores-speed-when-stopped", approval_ttl_s=math.inf)
    await rig.walk(2.0)  # the governor waits for motion (3 s countdown): speeds are obeyed
    t_start, _ = rig.sim.control_log[1]
    assert rig.sim.control_log[2][0] >= t_start + 3.0
    speed_command = next(c for c in rig.sent if isinstance(c.command, SetTargetSpeed))
    await rig.stop_belt()
    rig.governed = False
    await asyncio.sleep(2)
    t = now()
    # Re-executing a speed the governor approved while the belt moved is the only way to put a
    # speed write on a still belt without forging an approval: the machine says success...
    assert (await rig.client.execute(speed_command)).ok
    await asyncio.sleep(2)
    assert rig.sim.model.commanded_speed_kmh is None  # ...and ignores it
    assert rig.statuses(t) == []
    assert rig.client.is_connected


async def test_disconnects_on_speed_when_stopped(connect):
    rig = await connect("disconnects-on-speed-when-stopped", approval_ttl_s=math.inf)
    await rig.walk(2.0)  # waiting for motion keeps the link up
    assert rig.client.is_connected and rig.sim.model.belt_speed_kmh == pytest.approx(2.0)
    speed_command = next(c for c in rig.sent if isinstance(c.command, SetTargetSpeed))
    await rig.stop_belt()
    rig.governed = False
    await asyncio.sleep(2)
    t = now()
    with pytest.raises(NotConnected):  # as above: a re-executed approval, belt still
        await rig.client.execute(speed_command)
    await asyncio.sleep(0.1)
    assert rig.events[-1] == LinkLost(pytest.approx(t, abs=0.05), "disconnected")
    assert not rig.reading and not rig.client.is_connected


async def test_stray_zeros(connect):
    rig = await connect("stray-zeros")
    await rig.walk(2.0)  # the governor rides over the stray zeros
    assert rig.gov.state is GovernorState.RUNNING
    rig.governed = False
    t = now()
    await asyncio.sleep(20)
    speeds = rig.speeds(t)
    zeros = [i for i, s in enumerate(speeds) if s == 0.0]
    assert len(zeros) >= 3  # 1 in 20 frames at 4 Hz
    for i in zeros:
        assert 0 < i < len(speeds) - 1
        assert speeds[i - 1] == pytest.approx(2.0) and speeds[i + 1] == pytest.approx(2.0)
    assert rig.client.malformed_packets == 0


async def test_no_incline_report(connect):
    rig = await connect("no-incline-report")
    assert rig.info.reports_incline and rig.info.can_set_incline  # it claims it
    await rig.walk(2.0)
    t = now()
    await rig.feed(SetIncline(t, 2.0))
    await rig.until(lambda: written(rig.sim, t) != [])
    await asyncio.sleep(10)
    assert written(rig.sim, t) == [ftms.encode_set_target_inclination(2.0)]
    assert rig.sim.model.incline_pct == pytest.approx(2.0)
    assert rig.samples() and all(s.incline_pct is None for s in rig.samples())
    assert rig.failures == []


async def test_no_status(connect):
    rig = await walking(connect, profile="no-status")
    rig.sim.console_set_speed(3.0)
    await asyncio.sleep(3)
    rig.sim.inject("unknown-status")
    rig.sim.inject("stop-at-console")
    await asyncio.sleep(3)
    rig.sim.inject("safety-key")
    rig.sim.inject("control-lost")
    await asyncio.sleep(3)
    assert rig.statuses() == []  # not even for the safety key
    assert rig.speed == 0.0 and math.isclose(max(rig.speeds()), 3.0)
