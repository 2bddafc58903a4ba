"""The controller process's side of the wire: `ControllerServer` serves one `Controller` to one
UI process (tui/remote.py is the other end).

Everything here runs on the controller's loop, on asyncio streams: no thread of its own, so
nothing here competes with the stop path for the interpreter lock. Nothing the UI does or fails
to do can block the loop: a UI that stops reading lets frames pile up in the transport's buffer
(snapshots and numbers are then dropped, never a discrete event), and a UI that goes away ends
in a Stop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import pickle
import socket
import time
from typing import Any

from textual.message import Message

from treadmill import session_events as ev
from treadmill.errors import TreadmillError
from treadmill.events import TelemetrySample
from treadmill.scan import FoundTreadmill
from treadmill.session import SessionEvent, SessionRunner
from tui import heap
from tui.controller import HEARTBEAT_TIMEOUT_S, Controller
from tui.targets import Target
from tui.views import CoreState, LinkState, RequestAt, RunnerState, SimState
from tui.wire import HEADER, MAX_FRAME, WireClosed, portable

log = logging.getLogger(__name__)

STATE_EVERY_S = 0.05  # snapshots for the screens, at most this often (wall clock) ...
MAX_BACKLOG_BYTES = 256 * 1024  # ... and none while this much waits for a UI not reading
CALLS = frozenset({"open_simulator", "scan", "connect", "settle", "shutdown", "run_session"})
DOS = frozenset({"emergency_stop", "submit", "confirm_turned", "toggle_pause"})


class RelayFeed:
    """A session's feed (tui/feed.py's controller-side interface) that sends every event on."""

    def __init__(self, server: ControllerServer, session_id: int) -> None:
        self._server = server
        self.session_id = session_id
        self.runner: SessionRunner | None = None
        self._t0: float | None = None

    @property
    def t0(self) -> float | None:
        return self._t0

    @t0.setter
    def t0(self, value: float | None) -> None:
        self._t0 = value
        self._server.send(("t0", self.session_id, value))

    def on_event(self, event: SessionEvent) -> None:
        self._server.feed(self.session_id, event)

    def on_idle_sample(self, sample: TelemetrySample) -> None:
        self._server.push_state()
        self._server.send(("idle", self.session_id), droppable=True)


class ControllerServer:
    """One controller, one UI process, one socket."""

    def __init__(self, controller: Controller, sock: socket.socket) -> None:
        self.controller = controller
        controller.post = self.post
        self._sock = sock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._closed = False
        self._tasks: dict[int, asyncio.Task[Any]] = {}
        self._feeds: dict[int, RelayFeed] = {}
        self._batches: dict[int, list[SessionEvent]] = {}
        self._flush_scheduled = False
        self._state_scheduled = False
        self._last_state = 0.0
        self._devices: dict[str, Any] = {}  # address -> the BLEDevice the last scan found
        self.ui_gone: asyncio.Future[None] | None = None
        self._snapshot_task: asyncio.Task[None] | None = None
        self.shut_down = False  # the UI asked the controller to shut down, and it has

    # ---- life cycle ---------------------------------------------------------------------

    async def start(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        self.ui_gone = loop.create_future()
        reader, self._writer = await asyncio.open_unix_connection(sock=self._sock)
        self._reader_task = loop.create_task(self._read(reader), name="ui-wire-in")
        self.controller.start_watchdog(HEARTBEAT_TIMEOUT_S)
        self._snapshot_task = loop.create_task(self._snapshots(), name="ui-snapshots")

    def close(self) -> None:
        for task in (self._snapshot_task, self._reader_task):
            if task is not None:
                task.cancel()
        self._closed = True
        if self._writer is not None:
            self._writer.close()

    # ---- sending ------------------------------------------------------------------------

    def send(self, message: tuple[Any, ...], *, droppable: bool = False) -> None:
        """Queue a frame (controller loop). Never blocks: the transport buffers what the UI
        has not read yet, and a droppable frame is not added to a long backlog."""
        writer = self._writer
        if self._closed or writer is None or writer.is_closing():
            return
        if droppable and writer.transport.get_write_buffer_size() > MAX_BACKLOG_BYTES:
            return  # the UI is not reading: it gets the next snapshot when it is back
        try:
            data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:
            log.exception("could not send %s to the UI", message[0])
            return
        writer.write(HEADER.pack(len(data)) + data)

    def post(self, message: Message) -> None:
        """The controller's `post`: a message for the app, by name and init arguments."""
        names = [name for name in inspect.signature(type(message).__init__).parameters
                 if name != "self"]
        kwargs = {name: getattr(message, name) for name in names}
        self.send(("post", type(message).__name__, kwargs))

    def feed(self, session_id: int, event: SessionEvent) -> None:
        """A session event: batched per loop pass, in order; a discrete one brings a snapshot
        first, so the screen reads state at least as new as the event."""
        self._batches.setdefault(session_id, []).append(event)
        if not isinstance(event, ev.TelemetryShown | ev.CommandSent | ev.StatusReported):
            self._last_state = 0.0
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        batches, self._batches = self._batches, {}
        if time.monotonic() - self._last_state >= STATE_EVERY_S:
            self._send_state()
        for session_id, events in batches.items():
            numbers_only = all(isinstance(e, ev.TelemetryShown | ev.CommandSent
                                          | ev.StatusReported) for e in events)
            self.send(("feed", session_id, events), droppable=numbers_only)

    def push_state(self) -> None:
        """A snapshot soon (once per loop pass however often asked)."""
        if not self._state_scheduled:
            self._state_scheduled = True
            asyncio.get_running_loop().call_soon(self._send_state)

    def _send_state(self) -> None:
        self._state_scheduled = False
        self._last_state = time.monotonic()
        core = self.controller
        loop = asyncio.get_running_loop()
        link = core.link
        sim = core.sim
        runners = {sid: RunnerState.of(feed.runner) for sid, feed in self._feeds.items()
                   if feed.runner is not None}
        state = CoreState(
            loop_time=loop.time(), monotonic=time.monotonic(),
            speedup=getattr(loop, "speedup", None) or 1.0,
            link=None if link is None else LinkState.of(link),
            sim=None if sim is None else SimState(sim.name, sim.address),
            runners=runners, session_active=core.session_active, can_stop=core.can_stop,
            last_session_id=core.last_session_id, record=core.record)
        self.send(("state", state), droppable=True)

    async def _snapshots(self) -> None:
        loop = asyncio.get_running_loop()
        rate = getattr(loop, "speedup", None) or 1.0  # sleep in wall-clock terms
        while True:
            await asyncio.sleep(STATE_EVERY_S * rate)
            if time.monotonic() - self._last_state >= STATE_EVERY_S:
                self._send_state()

    # ---- receiving ----------------------------------------------------------------------

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                (size,) = HEADER.unpack(await reader.readexactly(HEADER.size))
                if size > MAX_FRAME:
                    raise WireClosed(f"a frame of {size} bytes")
                self._dispatch(pickle.loads(await reader.readexactly(size)))
        except (asyncio.IncompleteReadError, ConnectionError, WireClosed):
            pass
        except Exception:
            log.exception("the UI's wire failed")
        self._lost()

    def _lost(self) -> None:
        """The UI process is gone (it quit, crashed or was killed): nobody watches the belt."""
        if self.ui_gone is not None and not self.ui_gone.done():
            if not self.shut_down and self.controller.session_active:
                log.warning("the screen's process ended during a session: stopping the belt")
                self.controller.emergency_stop()
            self.ui_gone.set_result(None)

    def _dispatch(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        core = self.controller
        if kind == "heartbeat":
            core.heartbeat()
        elif kind == "do":
            _, method, args = message
            if method == "emergency_stop":
                core.emergency_stop()
            elif method == "submit" and len(args) == 1 and isinstance(args[0], RequestAt):
                core.submit(args[0])
            elif method in DOS:
                getattr(core, method)(*args)
            self.push_state()
        elif kind == "call":
            _, call_id, method, args = message
            if method not in CALLS:
                self.send(("result", call_id, False, TreadmillError(f"no such call: {method}")))
                return
            task = asyncio.get_running_loop().create_task(self._call(call_id, method, args))
            self._tasks[call_id] = task
        elif kind == "cancel":
            task = self._tasks.get(message[1])
            if task is not None:
                task.cancel()

    async def _call(self, call_id: int, method: str, args: tuple[Any, ...]) -> None:
        core = self.controller
        ok, value = True, None
        try:
            if method == "run_session":
                program, safety, session_id = args
                feed = RelayFeed(self, session_id)
                self._feeds = {**self._feeds, session_id: feed}
                try:
                    value = await core.run_session(program, safety, feed)  # type: ignore[arg-type]
                finally:
                    self._send_state()  # the runner's last state, before its result
                    self._feeds.pop(session_id, None)
                heap.settle()  # between sessions (the belt was seen still): see tui/heap.py
            elif method == "connect":
                (target,) = args
                if isinstance(target, Target) and target.device is None:
                    target = dataclasses.replace(target, device=self._devices.get(target.address))
                value = LinkState.of(await core.connect(target))
            elif method == "scan":
                found = await core.scan(*args)
                self._devices = {item.address: item.device for item in found}
                value = [_without_device(item) for item in found]
            elif method == "open_simulator":
                sim = await core.open_simulator()
                value = None if sim is None else SimState(sim.name, sim.address)
            elif method == "shutdown":
                await core.shutdown()
                self.shut_down = True
            else:
                value = await getattr(core, method)(*args)
        except asyncio.CancelledError:
            ok, value = False, TreadmillError("cancelled")
        except BaseException as exc:
            ok, value = False, portable(exc) or TreadmillError(str(exc) or type(exc).__name__)
        finally:
            self._tasks.pop(call_id, None)
        self._send_state()
        self.send(("result", call_id, ok, portable(value) if ok else value))


def _without_device(found: FoundTreadmill) -> FoundTreadmill:
    """A scan result for the UI: the platform's device object stays here (connect finds it
    again by address)."""
    return dataclasses.replace(found, device=None)  # type: ignore[arg-type]

