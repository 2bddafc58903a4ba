"""The connected treadmill between sessions: the client, its idle event pump, the idle stop.

It lives on the controller's loop (the TUI's tui/controller.py, or `treadmill mqtt`); front ends
only read its attributes.

During a session the `SessionRunner` owns the client's event stream and the stop path. Between
sessions (device screen, program picker) this object does both, so that:

- the client's event queue is drained (a new session must not start by replaying an old
  safety-key or console-stop status), the picker can show the belt's live speed, and a dropped
  link is noticed at once;
- SPACE still reaches the treadmill: a Stop goes through a governor of its own (the only road
  to the control point), written straight away, never behind anything queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from safety import ApprovedCommand, EmergencyStop, Governor, SafetyConfig, Source, StopCmd
from treadmill.client import DeviceInfo, FtmsClient
from treadmill.errors import TreadmillError
from treadmill.events import LinkLost, TelemetrySample
from treadmill.session import machine_limits

log = logging.getLogger(__name__)

STOP_WAIT_S = 2.0  # how long Quit waits for a Stop to be written before exiting


@dataclass(frozen=True)
class StopOutcome:
    """How an idle Stop went: accepted, or refused/failed with the reason."""

    ok: bool
    detail: str = ""


class TreadmillLink:
    """One treadmill the app is connected to (real or simulated)."""

    def __init__(
        self,
        client: FtmsClient,
        *,
        safety: SafetyConfig,
        simulated: bool,
        label: str,
        on_link_lost: Callable[[str], None] = lambda reason: None,
        on_stop_outcome: Callable[[StopOutcome], None] = lambda outcome: None,
    ) -> None:
        self.client = client
        self.safety = safety
        self.simulated = simulated
        self.label = label
        self.info: DeviceInfo | None = None
        self.last_sample: TelemetrySample | None = None
        self._on_link_lost = on_link_lost
        self._on_stop_outcome = on_stop_outcome
        self._governor: Governor | None = None
        self._pump: asyncio.Task[None] | None = None
        self._stop_tasks: set[asyncio.Task[None]] = set()
        self.lost = False
        # Called (cheaply, from the pump) for every sample between sessions: the screen's feed,
        # and each extra listener (the MQTT bridge).
        self.on_sample: Callable[[TelemetrySample], None] | None = None
        self.sample_listeners: list[Callable[[TelemetrySample], None]] = []

    @property
    def address(self) -> str:
        return self.client.address

    @property
    def name(self) -> str:
        return self.info.name if self.info else self.label

    @property
    def connected(self) -> bool:
        return self.client.is_connected and not self.lost

    @property
    def can_stop(self) -> bool:
        """Whether SPACE can reach the treadmill right now (connected, with a governor)."""
        return self._governor is not None and self.connected

    @property
    def belt_speed_kmh(self) -> float | None:
        return self.last_sample.speed_kmh if self.last_sample else None

    async def connect(self) -> DeviceInfo:
        self.info = await self.client.connect()
        try:
            self._governor = Governor(machine_limits(self.client), self.safety,
                                      t0=asyncio.get_running_loop().time())
        except (TreadmillError, ValueError) as exc:
            # No speed range: sessions will refuse this machine; SPACE can't be approved.
            log.warning("no idle stop path: %s", exc)
            self._governor = None
        self.start_pump()
        return self.info

    # ---- the idle event pump --------------------------------------------------------------

    def start_pump(self) -> None:
        if self._pump is None and self.connected:
            self._pump = asyncio.get_running_loop().create_task(self._run_pump(),
                                                                name="idle-events")

    async def stop_pump(self) -> None:
        """Hand the event stream over (to a session runner); returns once nobody reads it."""
        task, self._pump = self._pump, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run_pump(self) -> None:
        async for event in self.client.events():
            if isinstance(event, TelemetrySample):
                self.last_sample = event
                if self.on_sample is not None:
                    self.on_sample(event)
                for listener in self.sample_listeners:
                    listener(event)
            elif isinstance(event, LinkLost):
                self.lost = True
                self._pump = None
                self._on_link_lost(event.reason)
                return

    def link_lost_during_session(self) -> None:
        """The session saw the link drop (its runner consumed the LinkLost event)."""
        self.lost = True

    # ---- the idle stop path ---------------------------------------------------------------

    def emergency_stop(self, source: Source = Source.KEYBOARD,
                       t: float | None = None) -> asyncio.Task[None] | None:
        """Stop now. Synchronous: the write is scheduled before this returns. None when there
        is no way to reach the treadmill (not connected, or no governor for this machine).
        A remote Stop carries its own time `t`: the governor drops it when it is stale."""
        if self._governor is None or not self.connected:
            return None
        loop = asyncio.get_running_loop()
        task = None
        request = EmergencyStop(loop.time() if t is None else t, source=source)
        for output in self._governor.handle(request):
            if isinstance(output, ApprovedCommand) and isinstance(output.command, StopCmd):
                task = loop.create_task(self._write_stop(output), name="idle-stop")
                self._stop_tasks.add(task)
                task.add_done_callback(self._stop_tasks.discard)
        return task

    async def _write_stop(self, approved: ApprovedCommand) -> None:
        try:
            await self.client.execute(approved)
        except (TreadmillError, OSError) as exc:
            self._on_stop_outcome(StopOutcome(False, str(exc)))
            return
        except Exception as exc:  # a backend error we did not foresee: still say so
            log.exception("idle stop failed")
            self._on_stop_outcome(StopOutcome(False, repr(exc)))
            return
        self._on_stop_outcome(StopOutcome(True))

    def pending_stops(self) -> set[asyncio.Task[None]]:
        return set(self._stop_tasks)

    async def close(self) -> None:
        await self.stop_pump()
        if self._stop_tasks:
            await asyncio.wait(set(self._stop_tasks), timeout=STOP_WAIT_S)
        with contextlib.suppress(Exception):
            await self.client.disconnect()
