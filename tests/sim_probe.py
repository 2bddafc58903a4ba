"""Probe: a bare FTMS central over a plain bleak.BleakClient that records every byte it gets."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from bleak import BleakClient
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice

from simulators.treadmill import VirtualTreadmill
from treadmill import ftms

NOTIFYING = (ftms.TREADMILL_DATA, ftms.MACHINE_STATUS, ftms.TRAINING_STATUS, ftms.CONTROL_POINT)


@dataclass(frozen=True)
class Received:
    """One notification or indication as it reached the client."""

    time: float
    uuid: str
    data: bytes
    in_task: bool  # was the callback run inside a task (i.e. synchronously inside a call)?


class Probe:
    """Records the notifications a BleakClient gets and sends control point requests.

    For tests and demos of the simulator; it has none of the real client's policy (no
    retries, no safety). Times are the event loop's (simulated under VirtualTimeLoop).
    """

    def __init__(self, device: BLEDevice | str, backend: type[BaseBleakClient]) -> None:
        """A probe on a new plain BleakClient for `device` (not connected yet)."""
        self.client = BleakClient(device, self._on_disconnected, backend=backend)
        self.received: list[Received] = []
        self.disconnects = 0  # unsolicited ones, as reported by bleak's callback
        self._arrived = asyncio.Event()

    @classmethod
    async def connect(
        cls,
        sim: VirtualTreadmill,
        *,
        subscribe: tuple[str, ...] = NOTIFYING,
        control: bool = False,
    ) -> Probe:
        """Connect to `sim` with bleak, enable `subscribe`, optionally request control."""
        probe = cls(sim.ble_device, sim.client_backend)
        await probe.open(subscribe=subscribe, control=control)
        return probe

    async def open(self, *, subscribe: tuple[str, ...] = NOTIFYING, control: bool = False) -> None:
        """Connect, enable notifications on `subscribe` (those that exist), maybe take control."""
        await self.client.connect()
        for uuid in subscribe:
            if self.client.services.get_characteristic(uuid) is not None:
                await self.client.start_notify(uuid, self._on_notify)
        if control:
            response = await self.command(ftms.encode_request_control())
            assert response == ftms.encode_control_response(0x00, ftms.ResultCode.SUCCESS)

    def _on_disconnected(self, client: BleakClient) -> None:
        self.disconnects += 1
        self._arrived.set()

    def _on_notify(self, char: BleakGATTCharacteristic, data: bytearray) -> None:
        now = asyncio.get_running_loop().time()
        in_task = asyncio.current_task() is not None
        self.received.append(Received(now, char.uuid, bytes(data), in_task))
        self._arrived.set()

    # ---- what arrived --------------------------------------------------------------------

    def packets(self, uuid: str, since: float = float("-inf")) -> list[bytes]:
        return [r.data for r in self.received if r.uuid == uuid and r.time >= since]

    def telemetry(self, since: float = float("-inf")) -> list[tuple[float, ftms.TreadmillData]]:
        return [
            (r.time, ftms.decode_treadmill_data(r.data))
            for r in self.received
            if r.uuid == ftms.TREADMILL_DATA and r.time >= since
        ]

    def speeds(self, since: float = float("-inf")) -> list[float | None]:
        return [sample.speed_kmh for _, sample in self.telemetry(since)]

    def statuses(self, since: float = float("-inf")) -> list[bytes]:
        return self.packets(ftms.MACHINE_STATUS, since)

    def responses(self, since: float = float("-inf")) -> list[bytes]:
        return self.packets(ftms.CONTROL_POINT, since)

    # ---- doing things --------------------------------------------------------------------

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 60.0) -> bool:
        """Wait (simulated time) until `predicate()` holds after some notification."""
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    self._arrived.clear()
                    await self._arrived.wait()
        except TimeoutError:
            return False
        return True

    async def command(self, request: bytes, timeout: float = 35.0) -> bytes | None:
        """Write a control point request; the indication that answers it (None: none came)."""
        before = len(self.responses())
        await self.client.write_gatt_char(ftms.CONTROL_POINT, request, response=True)
        arrived = await self.wait_for(lambda: len(self.responses()) > before, timeout)
        return self.responses()[before] if arrived else None

    async def result(self, request: bytes, timeout: float = 35.0) -> int | None:
        """The result code answering `request` (None: no answer)."""
        response = await self.command(request, timeout)
        decoded = None if response is None else ftms.decode_control_response(response)
        return None if decoded is None else decoded.result

    async def read(self, uuid: str) -> bytes:
        return bytes(await self.client.read_gatt_char(uuid))

    async def disconnect(self) -> None:
        await self.client.disconnect()
