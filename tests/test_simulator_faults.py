"""Every fault kind does what it says, checked on the bytes a plain bleak.BleakClient gets."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from bleak import BleakClient, BleakScanner
from bleak.exc import BleakGATTProtocolError
from sim_probe import Probe

from simulators.faults import Fault, FaultKind, parse_fault
from simulators.gatt import LONG_PACKET_TAIL
from treadmill import ftms
from treadmill.ftms import MachineStatusOp, ResultCode, TrainingStatusCode

OK = ResultCode.SUCCESS


def now() -> float:
    return asyncio.get_running_loop().time()


async def sleep_until(t: float) -> None:
    await asyncio.sleep(max(0.0, t - now()))


async def walking(make_sim, *faults: str, kmh: float = 3.0, profile: str = "home"):
    """A simulator with `faults`, a probe in control, the belt settled at `kmh`.

    Faults count from the connection, which happens at t=0 here."""
    sim = make_sim(profile, faults=faults)
    probe = await Probe.connect(sim, control=True)
    assert await probe.result(ftms.encode_start_resume()) == OK
    assert await probe.wait_for(lambda: sim.model.moving)
    assert await probe.result(ftms.encode_set_target_speed(kmh)) == OK
    return sim, probe


# ---- parsing -----------------------------------------------------------------------------


def test_parse_fault_forms():
    assert parse_fault("disconnect@12") == Fault(FaultKind.DISCONNECT, 12.0)
    assert parse_fault("drop-notifications@5+2.5") == Fault(FaultKind.DROP_NOTIFICATIONS, 5, 2.5)
    assert parse_fault("overshoot@1.5=0.7") == Fault(FaultKind.OVERSHOOT, 1.5, None, 0.7)
    assert parse_fault("delay-indication@3+4=6") == Fault(FaultKind.DELAY_INDICATION, 3, 4, 6)
    assert parse_fault("unknown-status@0=0x99").value == 0x99
    assert str(parse_fault("safety-key@10+5")) == "safety-key@10+5"


@pytest.mark.parametrize(
    "text", ["disconnect", "disconnect@", "disconnect@-1", "@5", "bogus@5", "stop@x", "a@1+0"]
)
def test_bad_fault_strings_say_what_is_valid(text):
    with pytest.raises(ValueError) as error:
        parse_fault(text)
    message = str(error.value)
    assert "\n" not in message
    if text not in ("a@1+0",):
        assert all(kind.value in message for kind in FaultKind)


def test_default_amounts():
    assert parse_fault("delay-indication@0").amount == 5.0
    assert parse_fault("overshoot@0").amount == 1.0
    assert parse_fault("unknown-status@0").amount == 0x42


async def test_fault_time_counts_from_the_first_connection(make_sim):
    sim = make_sim(faults=["control-lost@5"])
    await asyncio.sleep(100)
    probe = await Probe.connect(sim)
    await asyncio.sleep(4.9)
    assert probe.statuses() == []
    await asyncio.sleep(0.2)
    assert probe.statuses() == [bytes([0xFF])]


# ---- link faults -------------------------------------------------------------------------


async def test_disconnect(make_sim):
    sim, probe = await walking(make_sim, "disconnect@5")
    await sleep_until(4.99)
    assert probe.client.is_connected
    await sleep_until(5.01)
    assert not probe.client.is_connected and probe.disconnects == 1
    assert sim.model.running  # the belt goes on under console control


async def test_disconnect_with_duration_takes_the_device_off_the_air(make_sim):
    sim, probe = await walking(make_sim, "disconnect@5+3")
    await sleep_until(5.5)
    assert await BleakScanner.discover(timeout=1, backend=sim.scanner_backend) == []
    await probe.client.connect()  # waits for the device to come back
    assert now() == pytest.approx(8.0, abs=0.15)
    assert probe.client.is_connected


async def test_drop_notifications_for_a_while(make_sim):
    _, probe = await walking(make_sim, "drop-notifications@5+3")
    await asyncio.sleep(12)
    times = [t for t, _ in probe.telemetry()]
    assert not [t for t in times if 5 <= t < 8]
    assert [t for t in times if t < 5] and [t for t in times if t >= 8]


async def test_drop_notifications_forever(make_sim):
    sim, probe = await walking(make_sim, "drop-notifications@5")
    await asyncio.sleep(60)
    assert max(t for t, _ in probe.telemetry()) < 5
    assert sim.model.belt_speed_kmh == pytest.approx(3.0)  # silent, not stopped


async def test_delay_notifications(make_sim):
    sim, probe = await walking(make_sim, "delay-notifications@10+20=2")
    t_start = sim.control_log[1][0]  # elapsed time counts from the Start write
    await asyncio.sleep(40)
    arrivals = probe.telemetry()

    def lags(lo: float, hi: float) -> set[int]:
        # arrival - send time, in whole seconds (elapsed_s is truncated to the second)
        return {int(t - t_start - s.elapsed_s) for t, s in arrivals if lo <= t < hi}

    assert lags(3, 10) == {0}
    assert lags(13, 30) == {2}
    assert not [t for t, _ in arrivals if 10.3 < t < 12]  # the first late ones land at 12


async def test_delay_indication(make_sim):
    sim = make_sim(faults=["delay-indication@0=3"])
    probe = await Probe.connect(sim)
    t0 = now()
    assert await probe.result(ftms.encode_request_control()) == OK
    assert probe.received[-1].time - t0 == pytest.approx(3.0, abs=0.02)


async def test_no_indication(make_sim):
    sim = make_sim(faults=["no-indication@1+5"])
    probe = await Probe.connect(sim, control=True)
    await sleep_until(2)
    assert await probe.result(ftms.encode_start_resume(), timeout=10) is None
    assert sim.model.running  # executed, just never answered
    with pytest.raises(BleakGATTProtocolError):  # still owed an answer: 0xFE
        await probe.client.write_gatt_char(ftms.CONTROL_POINT, ftms.encode_stop(), response=True)
    await sleep_until(33)  # the spec's 30 s procedure timeout
    assert await probe.result(ftms.encode_stop()) == OK


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("result-unsupported", ResultCode.OP_CODE_NOT_SUPPORTED),
        ("result-invalid", ResultCode.INVALID_PARAMETER),
        ("result-failed", ResultCode.OPERATION_FAILED),
        ("result-not-permitted", ResultCode.CONTROL_NOT_PERMITTED),
    ],
)
async def test_forced_results(make_sim, kind, code):
    sim, probe = await walking(make_sim, f"{kind}@5+10")
    await sleep_until(6)
    response = await probe.command(ftms.encode_set_target_speed(5.0))
    assert response == bytes([0x80, 0x02, code])
    assert await probe.result(ftms.encode_stop()) == code
    await asyncio.sleep(5)
    assert sim.model.belt_speed_kmh == pytest.approx(3.0)  # refused: nothing executed
    await sleep_until(16)
    assert await probe.result(ftms.encode_stop()) == OK


# ---- console and machine faults ------------------------------------------------------------


async def test_control_lost(make_sim):
    sim, probe = await walking(make_sim, "control-lost@5")
    await sleep_until(6)
    assert probe.statuses()[-1] == bytes([0xFF])
    assert await probe.result(ftms.encode_stop()) == ResultCode.CONTROL_NOT_PERMITTED
    assert sim.model.running


async def test_safety_key(make_sim):
    _, probe = await walking(make_sim, "safety-key@5+10", kmh=8.0)
    await sleep_until(6)
    assert probe.statuses()[-1] == bytes([MachineStatusOp.STOPPED_BY_SAFETY_KEY])
    assert probe.speeds()[-1] == 0.0  # 8 km/h to 0 in 0.8 s
    training = ftms.decode_training_status(probe.packets(ftms.TRAINING_STATUS)[-1])
    assert training.status == TrainingStatusCode.IDLE
    assert await probe.result(ftms.encode_start_resume()) == ResultCode.OPERATION_FAILED
    await sleep_until(15.1)  # key back in
    assert await probe.result(ftms.encode_start_resume()) == OK


async def test_stop_at_console(make_sim):
    sim, probe = await walking(make_sim, "stop-at-console@5")
    await sleep_until(8)
    assert probe.statuses()[-1] == bytes([0x02, 0x01])
    assert probe.speeds()[-1] == 0.0 and not sim.model.running


async def test_pause_at_console(make_sim):
    sim, probe = await walking(make_sim, "pause-at-console@5")
    await sleep_until(8)
    assert probe.statuses()[-1] == bytes([0x02, 0x02])
    assert probe.speeds()[-1] == 0.0 and sim.model.paused


async def test_overshoot(make_sim):
    _, probe = await walking(make_sim, "overshoot@0=1.5")
    await asyncio.sleep(20)
    assert probe.speeds()[-1] == 4.5
    expected = ftms.encode_machine_status(MachineStatusOp.TARGET_SPEED_CHANGED, 3.0)
    assert expected in probe.statuses()  # the machine believes it runs at 3.0


async def test_overshoot_heals_after_its_duration(make_sim):
    _, probe = await walking(make_sim, "overshoot@10+10")
    await sleep_until(19)
    assert probe.speeds()[-1] == 4.0
    await sleep_until(25)
    assert probe.speeds()[-1] == 3.0


async def test_ignore_setpoints(make_sim):
    _, probe = await walking(make_sim, "ignore-setpoints@10")
    await sleep_until(10)
    t = now()
    assert await probe.result(ftms.encode_set_target_speed(6.0)) == OK
    assert await probe.result(ftms.encode_set_target_inclination(3.0)) == OK
    await asyncio.sleep(10)
    sample = probe.telemetry()[-1][1]
    assert sample.speed_kmh == 3.0 and sample.incline_pct == 0.0
    assert probe.statuses(t) == []
    assert await probe.result(ftms.encode_stop()) == OK  # other ops still work


def invert(data: bytes) -> bytes:
    return bytes(b ^ 0xFF for b in data)


def garbled(probe: Probe, lo: float = 0.0, hi: float = float("inf")) -> list[bytes]:
    """Treadmill Data packets in [lo, hi) whose flags are not the machine's usual ones."""
    usual = probe.packets(ftms.TREADMILL_DATA)[0][:2]
    return [
        r.data
        for r in probe.received
        if r.uuid == ftms.TREADMILL_DATA and lo <= r.time < hi and r.data[:2] != usual
    ]


async def test_corrupt_packet_once(make_sim):
    _, probe = await walking(make_sim, "corrupt-packet@5")
    await asyncio.sleep(10)
    bad = garbled(probe)
    assert len(bad) == 1
    restored = ftms.decode_treadmill_data(invert(bad[0]))
    assert not restored.malformed and restored.speed_kmh == 3.0
    assert ftms.decode_treadmill_data(bad[0]).speed_kmh != 3.0


async def test_corrupt_packets_for_a_while(make_sim):
    _, probe = await walking(make_sim, "corrupt-packet@5+2")
    await asyncio.sleep(10)
    in_window = len(probe.telemetry(5)) - len(probe.telemetry(7))
    assert in_window == 8 and len(garbled(probe, 5, 7)) == 8 and len(garbled(probe)) == 8
    restored = [ftms.decode_treadmill_data(invert(p)) for p in garbled(probe)]
    assert all(r.speed_kmh == 3.0 and not r.malformed for r in restored)


async def test_short_packet(make_sim):
    _, probe = await walking(make_sim, "short-packet@5")
    await asyncio.sleep(10)
    packets = probe.packets(ftms.TREADMILL_DATA)
    full = len(packets[-1])
    short = [p for p in packets if len(p) < full]
    assert len(short) == 1 and len(short[0]) == full // 2
    assert ftms.decode_treadmill_data(short[0]).malformed


async def test_long_packet(make_sim):
    _, probe = await walking(make_sim, "long-packet@5")
    await asyncio.sleep(10)
    packets = probe.packets(ftms.TREADMILL_DATA)
    long = [p for p in packets if len(p) > len(packets[-1])]
    assert len(long) == 1 and long[0].endswith(LONG_PACKET_TAIL)
    decoded = ftms.decode_treadmill_data(long[0])
    assert decoded.trailing == LONG_PACKET_TAIL and decoded.speed_kmh == 3.0


@pytest.mark.parametrize(
    ("fault", "op"), [("unknown-status@5", 0x42), ("unknown-status@5=153", 153)]
)
async def test_unknown_status(make_sim, fault, op):
    _, probe = await walking(make_sim, fault)
    await sleep_until(6)
    assert probe.statuses()[-1] == bytes([op, 0x01, 0x02])


async def test_speed_up_by_itself(make_sim):
    sim, probe = await walking(make_sim, "speed-up-by-itself@10=2")
    writes = len(sim.control_log)
    statuses = len(probe.statuses())
    await sleep_until(20)
    assert probe.speeds()[-1] == 5.0
    assert len(sim.control_log) == writes and len(probe.statuses()) == statuses


async def test_console_start(make_sim):
    # At 0 (the first connection) someone already pressed START: the belt is in its countdown
    # when the client arrives, and the statuses went out before anyone listened.
    sim = make_sim("gym", faults=["console-start@0=6"])  # gym: 3 s countdown
    probe = await Probe.connect(sim)
    assert sim.model.running and not sim.model.moving
    await sleep_until(2.9)
    assert not sim.model.moving
    await sleep_until(15)
    assert probe.speeds()[-1] == 6.0 and sim.model.belt_speed_kmh == pytest.approx(6.0)
    assert probe.statuses() == [] and sim.control_log == []  # no control, no command


async def test_console_start_later_is_announced(make_sim):
    sim = make_sim(faults=["console-start@5"])  # default: 6 km/h
    probe = await Probe.connect(sim)
    await sleep_until(5.1)
    assert probe.statuses() == [
        bytes([MachineStatusOp.STARTED_OR_RESUMED_BY_USER]),
        ftms.encode_machine_status(MachineStatusOp.TARGET_SPEED_CHANGED, 6.0),
    ]
    training = ftms.decode_training_status(probe.packets(ftms.TRAINING_STATUS)[-1])
    assert training.status == TrainingStatusCode.MANUAL_MODE
    await sleep_until(15)
    assert probe.speeds()[-1] == 6.0


async def test_console_start_on_a_running_belt_only_changes_speed(make_sim):
    _, probe = await walking(make_sim, "console-start@10=4.5")
    t = now()
    await sleep_until(20)
    assert probe.statuses(t) == [
        ftms.encode_machine_status(MachineStatusOp.TARGET_SPEED_CHANGED, 4.5)
    ]
    assert probe.speeds()[-1] == 4.5


async def test_console_start_is_refused_with_the_safety_key_out(make_sim):
    sim = make_sim(faults=["safety-key@1", "console-start@2"])
    await Probe.connect(sim)
    await sleep_until(10)
    assert not sim.model.running and not sim.model.moving


async def test_console_incline(make_sim):
    sim = make_sim(faults=["console-incline@0=11.5"])
    probe = await Probe.connect(sim)
    await sleep_until(30)  # 0.5 %/s
    sample = probe.telemetry()[-1][1]
    assert sample.incline_pct == 11.5 and sample.speed_kmh == 0.0  # tilted, belt still
    assert probe.statuses() == []  # before anyone listened


async def test_console_incline_later_is_announced_and_clamped(make_sim):
    sim = make_sim(faults=["console-incline@5=4", "console-incline@10=40"])
    probe = await Probe.connect(sim)
    await sleep_until(40)
    op = MachineStatusOp.TARGET_INCLINE_CHANGED
    assert probe.statuses() == [
        ftms.encode_machine_status(op, 4.0),
        ftms.encode_machine_status(op, 15.0),  # the console stops at the top of its range
    ]
    assert sim.model.incline_pct == 15.0


async def test_console_incline_on_a_machine_without_incline_does_nothing(make_sim):
    sim = make_sim("walking-pad", faults=["console-incline@1=5"])
    probe = await Probe.connect(sim)
    await sleep_until(5)
    assert probe.statuses() == [] and sim.model.incline_pct == 0.0


def test_console_fault_defaults():
    assert parse_fault("console-start@0").amount == 6.0
    assert parse_fault("console-incline@0").amount == 5.0
    assert parse_fault("console-incline@0=-2").amount == -2.0


async def test_injecting_a_fault_now(make_sim):
    sim, probe = await walking(make_sim)
    await asyncio.sleep(3)
    fault = sim.inject(FaultKind.STOP_AT_CONSOLE)
    assert fault.at == pytest.approx(now() - sim.server.fault_origin)
    await asyncio.sleep(0)
    assert probe.statuses()[-1] == bytes([0x02, 0x01])


async def test_faults_survive_a_reconnect(make_sim):
    sim = make_sim(faults=["unknown-status@10"])
    async with BleakClient(sim.ble_device, backend=sim.client_backend):
        await asyncio.sleep(2)
    probe = await Probe.connect(sim)
    await sleep_until(11)
    assert probe.statuses() == [bytes([0x42, 0x01, 0x02])]


def test_every_fault_kind_has_a_test_here():
    # A new FaultKind must come with a bytes-level test in this module.
    source = Path(__file__).read_text()
    assert [
        k.value
        for k in FaultKind
        if f"def test_{k.value.replace('-', '_')}" not in source
        and f'("{k.value}", ResultCode.' not in source
    ] == []
