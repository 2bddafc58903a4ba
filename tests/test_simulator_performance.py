"""A 30-minute session on simulated time costs well under a second of wall time."""

from __future__ import annotations

import asyncio
import time

from bleak.backends.characteristic import BleakGATTCharacteristic
from sim_probe import Probe

from treadmill import ftms


async def test_thirty_minute_session(make_sim):
    # The speed factor is printed, not asserted (shared machines are noisy): see it with -s.
    sim = make_sim("home", notify_hz=4)
    loop = asyncio.get_running_loop()
    wall0, sim0 = time.perf_counter(), loop.time()
    decoded: list[ftms.TreadmillData] = []

    def on_data(_: BleakGATTCharacteristic, data: bytearray) -> None:
        decoded.append(ftms.decode_treadmill_data(data))

    probe = await Probe.connect(sim, subscribe=(ftms.CONTROL_POINT, ftms.MACHINE_STATUS))
    await probe.client.start_notify(ftms.TREADMILL_DATA, on_data)
    assert await probe.result(ftms.encode_request_control()) == ftms.ResultCode.SUCCESS
    assert await probe.result(ftms.encode_start_resume()) == ftms.ResultCode.SUCCESS
    for minute in range(30):
        kmh = 2.0 + (minute % 10) * 0.4
        assert await probe.result(ftms.encode_set_target_speed(kmh)) == ftms.ResultCode.SUCCESS
        await asyncio.sleep(60)
    assert await probe.result(ftms.encode_stop()) == ftms.ResultCode.SUCCESS
    await probe.disconnect()

    simulated, wall = loop.time() - sim0, time.perf_counter() - wall0
    print(
        f"\n30-minute session: {simulated:.0f} s simulated in {wall:.2f} s wall, "
        f"{simulated / wall:.0f}x real time, {len(decoded)} packets decoded, "
        f"{wall / len(decoded) * 1e6:.0f} us per packet (whole stack)"
    )
    assert simulated >= 1800
    assert abs(len(decoded) - simulated * 4) <= 2  # 4 Hz from the subscription on
    assert not any(d.malformed for d in decoded)
    assert decoded[-1].elapsed_s >= 1799 and decoded[-1].distance_m > 1500


async def test_simulator_cost_per_notification(make_sim):
    sim = make_sim("gym")  # the most fields per packet
    probe = await Probe.connect(sim, control=True)
    assert await probe.result(ftms.encode_start_resume()) == ftms.ResultCode.SUCCESS
    server, loop = sim.server, asyncio.get_running_loop()
    t, n = loop.time(), 20_000
    wall0 = time.perf_counter()
    for i in range(n):
        server.telemetry(t + i * 0.25)
    per_packet_us = (time.perf_counter() - wall0) / n * 1e6
    print(f"\nsimulator cost: {per_packet_us:.1f} us per Treadmill Data notification")
    assert per_packet_us > 0
