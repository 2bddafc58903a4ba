"""Down to the air: what only the ATT transport has (MTU, connection events, encryption, HCI
disconnects in every phase), checked with plain bleak and with the project's client.

Tests that need ATT itself say so in their name ("over_att"); the rest run on both transports
(tests/conftest.py BOTH_TRANSPORTS).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from bleak import BleakClient
from bleak.exc import BleakGATTProtocolError, BleakGATTProtocolErrorCode
from sim_probe import Probe

from safety import EndReason, SafetyConfig
from simulators import air, get_profile
from simulators.profiles import Quirk
from simulators.treadmill import VirtualTreadmill
from treadmill import ftms
from treadmill.client import FtmsClient
from treadmill.errors import TreadmillError
from treadmill.programs import builtin_programs
from treadmill.session import SessionResult, SessionRunner


def now() -> float:
    return asyncio.get_running_loop().time()


async def person_turns(_to: object) -> None:
    await asyncio.sleep(2.0)


async def run_taster(sim: VirtualTreadmill, settle_s: float) -> tuple[SessionResult, list[object]]:
    """The taster on `sim` with the project's client; the result, every event, and `settle_s`
    of simulated time after it for the belt to run down."""
    client = FtmsClient(sim.ble_device, backend=sim.client_backend)
    events: list[object] = []
    runner = SessionRunner(client, builtin_programs()["taster"], config=SafetyConfig(),
                           confirm=person_turns, on_event=events.append)
    async with client:
        result = await runner.run()
        await asyncio.sleep(settle_s)
    return result, events


# ---- the MTU -----------------------------------------------------------------------------


async def test_a_34_byte_record_is_cut_to_20_bytes_at_the_default_mtu_over_att(make_sim):
    sim = make_sim("gym-full", transport="att")  # the treadmill accepts only the default MTU
    probe = await Probe.connect(sim, control=True)
    assert probe.client.mtu_size == 23
    assert await probe.result(ftms.encode_start_resume()) == ftms.ResultCode.SUCCESS
    await asyncio.sleep(5)
    packets = probe.packets(ftms.TREADMILL_DATA)
    assert packets and {len(p) for p in packets} == {20}  # ATT_MTU - 3: the rest is lost
    decoded = ftms.decode_treadmill_data(packets[-1])
    assert decoded.malformed and decoded.speed_kmh is not None


async def test_a_larger_mtu_carries_the_whole_record_over_att(make_sim):
    sim = make_sim("gym-full", transport="att", mtu=247)
    probe = await Probe.connect(sim, control=True)
    assert probe.client.mtu_size == 247  # the central asked for it at connect, as BlueZ does
    assert await probe.result(ftms.encode_start_resume()) == ftms.ResultCode.SUCCESS
    await asyncio.sleep(5)
    packets = probe.packets(ftms.TREADMILL_DATA)
    assert packets and {len(p) for p in packets} == {34}
    decoded = ftms.decode_treadmill_data(packets[-1])
    assert not decoded.malformed and decoded.heart_rate_bpm is not None


async def test_the_client_decodes_what_survives_the_cut(make_sim):
    # Over ATT the MTU cuts the record; on the GATT level the firmware quirk does the same.
    profile = replace(get_profile("gym-full"), quirks=frozenset({Quirk.TRUNCATE_AT_20}))
    sim = make_sim(profile)
    client = FtmsClient(sim.ble_device, backend=sim.client_backend)
    samples = []
    async with client:
        stream = asyncio.create_task(collect(client, samples))
        sim.console_start()
        await asyncio.sleep(8)
        stream.cancel()
    moving = [s for s in samples if getattr(s, "speed_kmh", None)]
    assert moving, "speed and the fields before the cut still arrive"
    assert client.malformed_packets > 0  # and each cut packet is counted as malformed


async def collect(client: FtmsClient, into: list[object]) -> None:
    async for event in client.events():
        into.append(event)


# ---- connection events --------------------------------------------------------------------


@pytest.mark.parametrize("interval_ms", [7.5, 30.0, 50.0])
async def test_a_write_and_its_answer_take_connection_events_over_att(make_sim, interval_ms):
    sim = make_sim(transport="att", connection_interval_ms=interval_ms)
    probe = await Probe.connect(sim)
    t = now()
    await probe.command(ftms.encode_request_control())
    took = now() - t
    # The request waits for an event, the response for the next, the indication for one more.
    interval = interval_ms / 1000
    assert interval <= took <= 4 * interval + 1e-6


async def test_packets_on_the_air_are_counted_over_att(make_sim):
    sim = make_sim(transport="att")
    before = air.air().acl_packets
    async with BleakClient(sim.ble_device, backend=sim.client_backend):
        pass
    assert air.air().acl_packets > before + 10  # MTU exchange, discovery, CCCDs, ...


# ---- encryption ---------------------------------------------------------------------------


async def test_an_encrypted_control_point_refuses_an_unpaired_write(make_sim):
    sim = make_sim(encrypted_control_point=True)
    probe = await Probe.connect(sim, subscribe=(ftms.TREADMILL_DATA,))
    with pytest.raises(BleakGATTProtocolError) as error:
        await probe.client.write_gatt_char(ftms.CONTROL_POINT, ftms.encode_request_control(),
                                           response=True)
    assert error.value.code == BleakGATTProtocolErrorCode.INSUFFICIENT_ENCRYPTION
    assert sim.control_log == []


async def test_pairing_just_works_and_opens_the_control_point(make_sim):
    sim = make_sim(encrypted_control_point=True)
    probe = await Probe.connect(sim, subscribe=(ftms.TREADMILL_DATA,))
    await probe.client.pair()
    await probe.client.start_notify(ftms.CONTROL_POINT, probe._on_notify)
    assert await probe.result(ftms.encode_request_control()) == ftms.ResultCode.SUCCESS


# ---- HCI disconnects in every phase -------------------------------------------------------


async def connect_packets(sim: VirtualTreadmill) -> int:
    """How many ATT packets the client's connect puts on the air (at the ATT transport)."""
    link = air.air()
    before = link.acl_packets
    client = FtmsClient(sim.ble_device, backend=sim.client_backend)
    async with client:
        pass
    return link.acl_packets - before


async def test_an_hci_disconnect_in_every_phase_of_connect_over_att(make_sim):
    sim = make_sim(transport="att")
    total = await connect_packets(sim)
    assert total > 20
    link = air.air()
    outcomes = set()
    for cut_after in range(0, total, 2):
        seen = [0]

        def cut(_sender: object, _destination: object, _data: bytes, n: int = cut_after,
                seen: list[int] = seen) -> None:
            seen[0] += 1
            if seen[0] == n + 1 and sim.connected:
                asyncio.get_running_loop().call_soon(sim.inject, "disconnect")

        link.on_acl.append(cut)
        client = FtmsClient(sim.ble_device, backend=sim.client_backend)
        try:
            async with asyncio.timeout(60):
                await client.connect()
            outcomes.add("connected")  # the link dropped and the client's retry made it
        except TreadmillError as exc:
            assert "\n" not in str(exc)  # one line, no traceback
            outcomes.add("refused")
        finally:
            link.on_acl.remove(cut)
            await client.disconnect()
        await asyncio.sleep(1)
        # Whatever happened, the treadmill is there for the next connect.
        again = FtmsClient(sim.ble_device, backend=sim.client_backend)
        async with again:
            assert again.is_connected
    # Every cut ended in a connection (the client's retry) or a one-line error, never a hang
    # or a raw exception; both happen, depending on the phase.
    assert outcomes == {"connected", "refused"}, outcomes


# when (s into a taster) -> phase: the start, forward walking, the ramp down to the turn,
# the turn-around wait, backward walking
SESSION_PHASES = {"starting": 3.0, "forward": 40.0, "ramp down": 94.0, "turn": 101.0,
                  "backward": 130.0}


@pytest.mark.parametrize("phase", sorted(SESSION_PHASES))
async def test_an_hci_disconnect_in_every_phase_of_a_session(make_sim, phase):
    at = SESSION_PHASES[phase]
    sim = make_sim("home", faults=[f"disconnect@{at:g}"])
    result, _ = await run_taster(sim, settle_s=0)
    assert result.reason is EndReason.LINK_LOST, result
    assert "\n" not in result.message and result.message


async def test_an_encrypted_control_point_refuses_an_unpaired_subscription(make_sim):
    sim = make_sim(encrypted_control_point=True)
    probe = Probe(sim.ble_device, sim.client_backend)
    await probe.client.connect()
    with pytest.raises(BleakGATTProtocolError) as error:
        await probe.client.start_notify(ftms.CONTROL_POINT, lambda *_: None)
    assert error.value.code == BleakGATTProtocolErrorCode.INSUFFICIENT_ENCRYPTION
    await probe.client.pair()
    await probe.client.start_notify(ftms.CONTROL_POINT, lambda *_: None)


# ---- the client over both transports ------------------------------------------------------


async def test_a_split_record_reaches_the_client_as_one_sample_with_speed(make_sim):
    profile = replace(get_profile("gym-full"), quirks=frozenset({Quirk.MORE_DATA_SPLIT}))
    sim = make_sim(profile)
    client = FtmsClient(sim.ble_device, backend=sim.client_backend)
    events: list[object] = []
    async with client:
        stream = asyncio.create_task(collect(client, events))
        sim.console_start()
        await asyncio.sleep(10)
        stream.cancel()
    samples = [e for e in events if hasattr(e, "speed_kmh") and hasattr(e, "heart_rate_bpm")]
    assert len(samples) >= 10
    assert all(s.speed_kmh is not None for s in samples)  # never half a record
    assert samples[-1].speed_kmh > 0 and samples[-1].heart_rate_bpm is not None
    assert client.malformed_packets == 0 and client.incomplete_records == 0


async def test_the_client_pairs_once_for_an_encrypted_control_point(make_sim):
    sim = make_sim(encrypted_control_point=True)
    notices: list[str] = []
    client = FtmsClient(sim.ble_device, backend=sim.client_backend, on_notice=notices.append)
    async with client:
        assert client.paired and client.info.paired
    assert len([n for n in notices if "pairing" in n]) == 1


@pytest.mark.parametrize("mtu", [23, 247])
async def test_the_client_learns_the_mtu_over_att(make_sim, mtu):
    sim = make_sim("gym-full", mtu=mtu)
    client = FtmsClient(sim.ble_device, backend=sim.client_backend)
    async with client:
        assert client.info.mtu == mtu


@pytest.mark.parametrize("quirk", [Quirk.STATUS_AFTER_CONTROL_STOP, Quirk.MORE_DATA_SPLIT,
                                   Quirk.TRUNCATE_AT_20, Quirk.REDUNDANT_OP_FAILED])
async def test_a_whole_session_on_a_machine_with_each_fidelity_quirk(make_sim, quirk):
    profile = replace(get_profile("gym-full"), quirks=frozenset({quirk}))
    sim = make_sim(profile, mtu=247)
    result, events = await run_taster(sim, settle_s=10)
    assert result.reason is EndReason.COMPLETED, result
    alarms = [e for e in events if getattr(e, "type", None) == "alarm"]
    assert alarms == []
    assert sim.model.belt_speed_kmh == 0.0
