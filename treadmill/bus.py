"""The session's event bus: any number of front ends, none of which can slow the controller.

`publish()` never blocks and never raises: it appends to each subscriber's own queue and
returns. Each subscriber is drained by a task of its own, so a slow, stuck or failing front
end (a TUI mid-render, a broker that stalls, a full disk) only ever delays itself:
- telemetry is coalesced: a subscriber that has not taken the last sample gets only the
  newest one (`TelemetryShown` is a picture of now; an old one is worth nothing);
- every other event is kept, in order (a turn-around or an alarm is never dropped); only
  routine ones (commands sent, machine echoes, cues) give way, oldest first, once a stuck
  subscriber has MAX_QUEUED waiting, so no queue grows without bound;
- an exception in a subscriber is logged and detaches that subscriber; the session goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from treadmill.session_events import CommandSent, Cue, SessionEvent, StatusReported, TelemetryShown

log = logging.getLogger(__name__)

MAX_QUEUED = 512
ROUTINE = (TelemetryShown, CommandSent, StatusReported, Cue)

type Handler = Callable[[SessionEvent], Awaitable[None] | None]


class Subscription:
    """One subscriber's queue and the task that hands it its events."""

    def __init__(self, name: str, handler: Handler) -> None:
        self.name = name
        self._handler = handler
        self._queue: deque[SessionEvent] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self.coalesced = 0
        self.failed: BaseException | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def attached(self) -> bool:
        return self.failed is None and self._task is not None and not self._task.done()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"bus:{self.name}"
            )

    def put(self, event: SessionEvent) -> None:
        if self.failed is not None:
            return
        if isinstance(event, TelemetryShown) and self._queue:
            last = self._queue[-1]
            if isinstance(last, TelemetryShown):
                self._queue[-1] = event  # not taken yet: only the newest picture counts
                self.coalesced += 1
                return
        if len(self._queue) >= MAX_QUEUED:
            for i, queued in enumerate(self._queue):
                if isinstance(queued, ROUTINE):
                    del self._queue[i]
                    self.coalesced += 1
                    break
        self._queue.append(event)
        self._idle.clear()
        self._wake.set()

    async def _run(self) -> None:
        while True:
            while not self._queue:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
            event = self._queue.popleft()
            try:
                result = self._handler(event)
                if result is not None:
                    await result
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug in a front end must not end the session
                log.exception("front end %r failed on %s: detached", self.name, event.type)
                self.failed = exc
                self._queue.clear()
                self._idle.set()
                return

    async def drained(self) -> None:
        """Returns once everything published so far was handled (or the subscriber failed)."""
        if self._task is None or self._task.done():
            return
        await self._idle.wait()

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class EventBus:
    """Fan-out of session events to subscribers, each with its own bounded queue."""

    def __init__(self) -> None:
        self._subscriptions: list[Subscription] = []
        self._running = False

    def subscribe(self, name: str, handler: Handler) -> Subscription:
        sub = Subscription(name, handler)
        self._subscriptions.append(sub)
        if self._running:
            sub.start()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with contextlib.suppress(ValueError):
            self._subscriptions.remove(sub)

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        return tuple(self._subscriptions)

    def start(self) -> None:
        """Start delivering (needs a running loop); subscribers added later start at once."""
        self._running = True
        for sub in self._subscriptions:
            sub.start()

    def publish(self, event: SessionEvent) -> None:
        for sub in self._subscriptions:
            sub.put(event)

    async def drain(self, timeout: float) -> None:
        """Let every subscriber catch up, for at most `timeout` seconds (a stuck one is left
        waiting; close() then cancels it)."""
        waits = [asyncio.ensure_future(sub.drained()) for sub in self._subscriptions]
        if not waits:
            return
        _, pending = await asyncio.wait(waits, timeout=timeout)
        for w in pending:
            w.cancel()

    async def close(self) -> None:
        self._running = False
        for sub in self._subscriptions:
            await sub.close()
