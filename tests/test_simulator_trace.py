"""The simulator's ground-truth trace, machines already in motion, and answers due "now"."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from bleak import BleakClient
from bleak.exc import BleakGATTProtocolError
from sim_probe import Probe

from simulators import VirtualTreadmill, get_profile
from simulators.virtual_time import VirtualTimeLoop
from treadmill import ftms
from treadmill.ftms import ResultCode, TrainingStatusCode
from treadmill.wiring import SimulatorOptions, make_simulator

OK = ResultCode.SUCCESS


def now() -> float:
    return asyncio.get_running_loop().time()


async def sleep_until(t: float) -> None:
    await asyncio.sleep(max(0.0, t - now()))


def lines(trace: io.StringIO | Path) -> list[dict[str, Any]]:
    text = trace.read_text() if isinstance(trace, Path) else trace.getvalue()
    return [json.loads(line) for line in text.splitlines()]


def samples(trace: io.StringIO | Path) -> list[dict[str, Any]]:
    return [line for line in lines(trace) if "belt_kmh" in line and "final" not in line]


def writes(trace: io.StringIO | Path) -> list[dict[str, Any]]:
    return [line for line in lines(trace) if "write" in line]


def belt_at(trace: io.StringIO | Path, t: float) -> dict[str, Any]:
    """The last sample at or before `t`."""
    return [s for s in samples(trace) if s["t"] <= t + 1e-9][-1]


# ---- samples -------------------------------------------------------------------------------


async def test_trace_samples_at_10_hz_whether_or_not_a_client_is_connected(make_sim):
    trace = io.StringIO()
    make_sim(trace=trace)
    await asyncio.sleep(10)  # nobody connected
    t2 = io.StringIO()
    sim = make_sim(trace=t2)
    async with BleakClient(sim.ble_device, backend=sim.client_backend):
        await asyncio.sleep(10)
    await asyncio.sleep(10)  # disconnected again
    for buf, span in ((trace, 30.0), (t2, 20.0)):
        times = [s["t"] for s in samples(buf)]
        assert times[0] == 0.0 and times[-1] >= span - 0.1
        assert len(times) >= 10 * span
        assert max(b - a for a, b in itertools.pairwise(times)) <= 0.1 + 1e-6


async def test_sample_lines_say_what_the_belt_and_deck_do(make_sim):
    trace = io.StringIO()
    sim = make_sim(trace=trace)
    probe = await Probe.connect(sim, control=True)
    assert await probe.result(ftms.encode_start_resume()) == OK
    assert await probe.result(ftms.encode_set_target_speed(3.0)) == OK
    assert await probe.result(ftms.encode_set_target_inclination(2.0)) == OK
    await asyncio.sleep(10)
    last = samples(trace)[-1]
    assert set(last) == {"t", "belt_kmh", "incline_pct", "running"}
    assert last["belt_kmh"] == 3.0 and last["incline_pct"] == 2.0 and last["running"] is True
    rising = [s["belt_kmh"] for s in samples(trace) if 0.5 <= s["t"] <= 2.0]
    assert rising == sorted(rising) and 0 < rising[0] < rising[-1] < 3.0  # the ramp, sampled
    assert all(round(s["belt_kmh"], 3) == s["belt_kmh"] for s in samples(trace))


# ---- control point writes ------------------------------------------------------------------


async def test_write_lines_carry_the_answer_the_device_sent(make_sim):
    trace = io.StringIO()
    sim = make_sim(trace=trace)
    probe = await Probe.connect(sim, control=True)
    assert await probe.result(ftms.encode_start_resume()) == OK
    assert await probe.result(ftms.encode_set_target_speed(90.0)) == ResultCode.INVALID_PARAMETER
    got = writes(trace)
    assert [(w["write"], w["result"]) for w in got] == [
        ("00", "800001"),
        ("07", "800701"),
        (ftms.encode_set_target_speed(90.0).hex(), "800203"),
    ]
    assert [w["t"] for w in got] == [round(t, 3) for t, _ in sim.control_log]
    monos = [w["mono"] for w in got]
    assert monos == sorted(monos) and "att_error" not in got[0]


async def test_write_refused_at_att_level_has_no_result_and_the_error_code(make_sim):
    trace = io.StringIO()
    sim = make_sim(faults=["delay-indication@0=1"], trace=trace)
    probe = await Probe.connect(sim)
    await probe.client.write_gatt_char(ftms.CONTROL_POINT, ftms.encode_request_control(), True)
    with pytest.raises(BleakGATTProtocolError):  # the answer is still owed: busy
        await probe.client.write_gatt_char(ftms.CONTROL_POINT, ftms.encode_start_resume(), True)
    bare = await Probe.connect(make_sim(trace=(t2 := io.StringIO())), subscribe=())
    with pytest.raises(BleakGATTProtocolError):  # indications not enabled
        await bare.client.write_gatt_char(ftms.CONTROL_POINT, ftms.encode_request_control(), True)
    assert [(w["write"], w["result"], w.get("att_error")) for w in writes(trace)] == [
        ("00", "800001", None),  # decided at write time, delivered 1 s later
        ("07", None, 0xFE),
    ]
    assert [(w["result"], w["att_error"]) for w in writes(t2)] == [(None, 0xFD)]


async def test_a_write_with_no_answer_has_a_null_result(make_sim):
    trace = io.StringIO()
    sim = make_sim(faults=["no-indication@0"], trace=trace)
    probe = await Probe.connect(sim)
    assert await probe.result(ftms.encode_request_control(), timeout=1) is None
    assert [(w["result"], w.get("att_error")) for w in writes(trace)] == [(None, None)]


# ---- the end, the origin, files -------------------------------------------------------------


async def test_final_line_at_close_and_nothing_after(make_sim):
    trace = io.StringIO()
    sim = make_sim(trace=trace)
    probe = await Probe.connect(sim, control=True)
    assert await probe.result(ftms.encode_start_resume()) == OK
    await sleep_until(20)
    assert await probe.result(ftms.encode_stop()) == OK
    await sleep_until(40)
    sim.close()
    final = lines(trace)[-1]
    assert final == {"t": 40.0, "final": True, "belt_kmh": 0.0, "incline_pct": 0.0,
                     "running": False}
    count = len(lines(trace))
    await asyncio.sleep(5)
    sim.close()  # twice is harmless
    assert len(lines(trace)) == count


async def test_final_line_tells_a_belt_still_running_at_close(make_sim):
    trace = io.StringIO()
    sim = make_sim(belt_kmh=4.0, trace=trace)
    await asyncio.sleep(3)
    sim.close()
    assert lines(trace)[-1] == {"t": 3.0, "final": True, "belt_kmh": 4.0, "incline_pct": 0.0,
                                "running": True}


async def test_default_origin_is_the_creation_time(make_sim):
    await asyncio.sleep(7)
    trace = io.StringIO()
    sim = make_sim(trace=trace)
    assert sim.trace_origin == 7.0
    await asyncio.sleep(2)
    assert samples(trace)[0]["t"] == 0.0 and samples(trace)[-1]["t"] == 2.0


async def test_set_trace_origin_aligns_t_with_a_session(make_sim):
    trace = io.StringIO()
    sim = make_sim(trace=trace)
    await asyncio.sleep(5.05)
    session_start = now()
    sim.set_trace_origin(session_start)
    await asyncio.sleep(0.01)
    probe = await Probe.connect(sim, control=True)
    await asyncio.sleep(3)
    times = [s["t"] for s in samples(trace)]
    turn = next(i for i in range(1, len(times)) if times[i] < times[i - 1])
    assert times[turn - 1] == 5.0  # lines already written keep their t
    assert times[turn] == pytest.approx(0.05, abs=1e-6)  # the sample at 5.1 of loop time
    assert times[-1] == pytest.approx(now() - session_start, abs=0.1)
    [write] = writes(trace)
    assert write["t"] == round(sim.control_log[0][0] - session_start, 3)
    await probe.disconnect()


async def test_trace_to_a_file_is_usable_while_the_simulator_runs(make_sim, tmp_path):
    path = tmp_path / "truth.jsonl"
    sim = make_sim(trace=str(path))
    probe = await Probe.connect(sim, control=True)
    await asyncio.sleep(1)
    # No close(): a killed process leaves every line written so far, whole.
    assert len(samples(path)) >= 10 and writes(path)[0]["result"] == "800001"
    await probe.disconnect()
    sim.close()
    assert lines(path)[-1]["final"] is True


def test_a_trace_file_that_cannot_be_opened_is_a_one_line_value_error(tmp_path):
    with pytest.raises(ValueError) as error:
        VirtualTreadmill(trace=tmp_path / "no-such-dir" / "trace.jsonl")
    assert "trace" in str(error.value) and "\n" not in str(error.value)


def test_make_simulator_passes_the_trace_option(tmp_path):
    path = tmp_path / "t.jsonl"
    sim = make_simulator(SimulatorOptions(trace=str(path)))
    sim.close()  # outside a loop: nothing sampled, but the final line is there
    assert [line.get("final") for line in lines(path)] == [True]


def test_made_outside_a_loop_it_traces_from_the_first_connection(tmp_path):
    # Like the CLI: the simulator is made before the loop runs (whose clock is far from 0).
    path = tmp_path / "t.jsonl"
    sim = VirtualTreadmill(belt_kmh=6.0, trace=path)

    async def session() -> float:
        await asyncio.sleep(100)
        probe = await Probe.connect(sim)
        await asyncio.sleep(10)
        distance = sim.model.distance_m
        await probe.disconnect()
        sim.close()
        return distance

    with asyncio.Runner(loop_factory=lambda: VirtualTimeLoop(start=5000.0)) as runner:
        distance = runner.run(session())
    assert samples(path)[0]["t"] == 0.0 and samples(path)[-1]["t"] >= 9.9
    assert samples(path)[0]["belt_kmh"] == 6.0
    # The preset belt runs from the first moment the simulator knows the time (the first
    # connection), not from a loop time of 0: 10 s at 6 km/h, not 5110 s.
    assert distance == pytest.approx(10 * 6 / 3.6, rel=0.01)


# ---- machines already in motion ------------------------------------------------------------


async def test_a_belt_already_moving_and_tilted_before_anyone_connects(make_sim):
    trace = io.StringIO()
    sim = make_sim(belt_kmh=6.0, incline_pct=11.5, trace=trace)
    assert samples(trace)[0] == {"t": 0.0, "belt_kmh": 6.0, "incline_pct": 11.5, "running": True}
    await asyncio.sleep(5)
    probe = await Probe.connect(sim)
    await asyncio.sleep(1)
    sample = probe.telemetry()[-1][1]
    assert sample.speed_kmh == 6.0 and sample.incline_pct == 11.5
    training = ftms.decode_training_status(await probe.read(ftms.TRAINING_STATUS))
    assert training.status == TrainingStatusCode.MANUAL_MODE
    assert sim.model.distance_m == pytest.approx(6 * 6 / 3.6, rel=0.01)


async def test_a_deck_already_tilted_with_the_belt_still(make_sim):
    sim = make_sim(incline_pct=11.5)
    assert not sim.model.running and sim.model.incline_pct == 11.5


@pytest.mark.parametrize(
    ("profile", "kwargs"),
    [("home", {"belt_kmh": 20.0}), ("home", {"belt_kmh": 0.3}), ("home", {"incline_pct": 16}),
     ("walking-pad", {"incline_pct": 2.0})],
)
def test_an_impossible_preset_is_a_one_line_value_error(profile, kwargs):
    with pytest.raises(ValueError) as error:
        VirtualTreadmill(profile, **kwargs)
    assert next(iter(kwargs)) in str(error.value) and "\n" not in str(error.value)


async def test_console_start_at_0_has_the_belt_really_moving_after_the_countdown(make_sim):
    trace = io.StringIO()
    sim = make_sim("gym", faults=["console-start@0=6"], trace=trace)  # gym: 3 s countdown
    async with BleakClient(sim.ble_device, backend=sim.client_backend):
        await asyncio.sleep(15)
    assert belt_at(trace, 2.9) == {"t": 2.9, "belt_kmh": 0.0, "incline_pct": 0.0,
                                   "running": True}
    assert 0.0 < belt_at(trace, 4.0)["belt_kmh"] < 6.0
    assert belt_at(trace, 15.0)["belt_kmh"] == 6.0
    assert writes(trace) == []  # nobody commanded anything


async def test_console_incline_really_tilts_the_deck(make_sim):
    trace = io.StringIO()
    sim = make_sim(faults=["console-incline@0=11.5"], trace=trace)
    async with BleakClient(sim.ble_device, backend=sim.client_backend):
        await asyncio.sleep(30)  # 0.5 %/s
    assert 0.0 < belt_at(trace, 10.0)["incline_pct"] < 11.5
    assert belt_at(trace, 30.0) == {"t": 30.0, "belt_kmh": 0.0, "incline_pct": 11.5,
                                    "running": False}


# ---- an answer due now clears busy ---------------------------------------------------------


async def test_a_client_writing_the_moment_a_late_answer_arrives_is_never_busy(make_sim):
    # A client with its own 10 Hz timer (like a governor tick) whose first write lands on a
    # tick: its later ticks and the delayed answers then fall due at the same instant, give or
    # take float noise, and asyncio runs them together, the tick first. The answer due "now"
    # must end the busy window, or the next write is refused with 0xFE.
    loop = asyncio.get_running_loop()
    sim = make_sim(faults=["delay-indication@0=1"])
    client = BleakClient(sim.ble_device, backend=sim.client_backend)
    await client.connect()
    answers: list[bytes] = []
    refused: list[float] = []
    done = asyncio.Event()
    writing: set[asyncio.Task[None]] = set()  # strong references to the write tasks

    def write_soon() -> None:
        task = loop.create_task(write())
        writing.add(task)
        task.add_done_callback(writing.discard)

    async def write() -> None:
        try:
            request = ftms.encode_request_control()
            await client.write_gatt_char(ftms.CONTROL_POINT, request, response=True)
        except BleakGATTProtocolError:
            refused.append(loop.time())
            done.set()

    def on_answer(_: object, data: bytearray) -> None:
        answers.append(bytes(data))
        if len(answers) < 30:
            write_soon()  # the next command, the moment the answer is in
        else:
            done.set()

    async def ticker() -> None:
        for tick in range(1, 10_000):
            await asyncio.sleep(0.1)
            if tick == 3:
                write_soon()

    await client.start_notify(ftms.CONTROL_POINT, on_answer)
    ticking = loop.create_task(ticker())
    async with asyncio.timeout(60):
        await done.wait()
    ticking.cancel()
    await client.disconnect()
    assert refused == [] and len(answers) == 30


async def test_a_late_answer_still_keeps_the_control_point_busy_until_it_is_out(make_sim):
    sim = make_sim(faults=["delay-indication@0=1"])
    probe = await Probe.connect(sim)
    t0 = now()
    await probe.client.write_gatt_char(ftms.CONTROL_POINT, ftms.encode_request_control(), True)
    await sleep_until(t0 + 0.99)
    with pytest.raises(BleakGATTProtocolError):
        await probe.client.write_gatt_char(ftms.CONTROL_POINT, ftms.encode_start_resume(), True)
    assert await probe.wait_for(lambda: len(probe.responses()) == 1)
    assert await probe.result(ftms.encode_start_resume()) == OK


async def test_a_late_answer_ends_only_its_own_procedure(make_sim):
    # Answers that trail the write response (indicate_before_write_returns=False) reach the
    # client just after the busy window ends; a write squeezed in between starts a procedure
    # of its own, which the old answer arriving must not end.
    profile = replace(get_profile("home"), indicate_before_write_returns=False)
    sim = make_sim(profile, faults=["delay-indication@0=1"])
    probe = await Probe.connect(sim)
    t0 = now()
    await probe.client.write_gatt_char(ftms.CONTROL_POINT, ftms.encode_request_control(), True)
    await sleep_until(t0 + 1.005)
    assert probe.responses() == []  # the answer is still on its way
    await probe.client.write_gatt_char(ftms.CONTROL_POINT, ftms.encode_start_resume(), True)
    await sleep_until(t0 + 1.5)
    assert len(probe.responses()) == 1  # the first answer is in ...
    with pytest.raises(BleakGATTProtocolError):  # ... but the second is still owed
        await probe.client.write_gatt_char(ftms.CONTROL_POINT, ftms.encode_stop(), True)
