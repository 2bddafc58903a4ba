"""The UI process's side of the controller: `RemoteHost`, a `ControllerHost` whose controller
runs in another process (tui/serve.py), and `RemoteCore`, the controller as the app sees it.

The calling code is the one the threaded and inline hosts take: `host.call(core.connect,
target)` returns a `concurrent.futures.Future`, `emergency_stop()`, `submit()` and `run_soon()`
return at once, and screens read `core.link`, `core.sim`, `feed.runner` as plain attributes.
Here those are mirrors (tui/views.py), updated in place by one reader thread from the
controller's snapshots. If the controller process goes away, every waiting call fails with a
one-line error and the app is told to leave (`ControllerGone`).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import itertools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from textual.message import Message

from treadmill.errors import TreadmillError
from treadmill.programs import Program
from tui import messages
from tui.feed import SessionFeed
from tui.targets import Target
from tui.views import CoreState, LinkMirror, LinkState, RequestAt, RunnerMirror, SimState
from tui.wire import Sender, WireClosed, receive

log = logging.getLogger(__name__)

GONE = "the controller process ended"
GONE_EXIT_S = 3.0  # after the controller's process is gone, the screen's leaves at the latest
GONE_EXIT_STATUS = 70
KEEP_FEEDS = 2  # sessions whose feeds still take events (the running one, the one before)


class RemoteCore:
    """The controller's API as the app and its screens call it, across the process boundary.

    The async methods of `tui.controller.Controller` return a `Future` here (`RemoteHost.call`
    passes it on); the plain reads are mirrors of the controller's last snapshot."""

    def __init__(self, host: RemoteHost) -> None:
        self._host = host
        self.link: LinkMirror | None = None
        self.sim: SimState | None = None
        self.session_active = False
        self.can_stop = False
        self.last_session_id: int | None = None
        self.record = False

    # ---- async methods: each a call to the controller process ---------------------------

    def open_simulator(self) -> concurrent.futures.Future[Any]:
        return self._host.request("open_simulator")

    def scan(self, timeout: float, simulated: bool) -> concurrent.futures.Future[Any]:
        return self._host.request("scan", timeout, simulated)

    def connect(self, target: Target) -> concurrent.futures.Future[Any]:
        return self._host.request("connect", target)

    def settle(self, timeout: float) -> concurrent.futures.Future[Any]:
        return self._host.request("settle", timeout)

    def shutdown(self) -> concurrent.futures.Future[Any]:
        return self._host.request("shutdown")

    def run_session(self, program: Program, safety: Any,
                    feed: SessionFeed) -> concurrent.futures.Future[Any]:
        return self._host.request_session(program, safety, feed)

    # ---- synchronous ones (run_soon) ---------------------------------------------------

    def emergency_stop(self) -> None:
        self._host.do("emergency_stop")

    def confirm_turned(self) -> None:
        self._host.do("confirm_turned")

    def toggle_pause(self) -> None:
        self._host.do("toggle_pause")


class RemoteHost:
    """A controller in another process, reached over the wire (tui/wire.py)."""

    mode: Literal["process"] = "process"

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._sender = Sender(sock)
        self.controller = RemoteCore(self)
        self.post: Callable[[Message], object] = lambda message: None  # the app's post_message
        self._ids = itertools.count(1)
        self._calls: dict[int, concurrent.futures.Future[Any]] = {}
        self._feeds: dict[int, SessionFeed] = {}
        self._lock = threading.Lock()
        self._state: CoreState | None = None
        self._reader: threading.Thread | None = None
        self._gone = False

    # ---- life cycle ---------------------------------------------------------------------

    def start(self) -> None:
        if self._reader is not None:
            return
        self._reader = threading.Thread(target=self._read, name="controller-wire", daemon=True)
        self._reader.start()

    def close(self, timeout: float = 0.0) -> None:
        self._sender.close()

    @property
    def started(self) -> bool:
        """start() has run: the wire is being read."""
        return self._reader is not None

    @property
    def on_controller_thread(self) -> bool:
        return False

    # ---- calls --------------------------------------------------------------------------

    def time(self) -> float:
        """The controller's clock, from its last snapshot (session times are on it)."""
        state = self._state
        if state is None:
            return 0.0
        return state.loop_time + (time.monotonic() - state.monotonic) * state.speedup

    def call(self, method: Callable[..., concurrent.futures.Future[Any]],
             *args: Any) -> concurrent.futures.Future[Any]:
        """`host.call(core.connect, target)`: the RemoteCore method makes the call."""
        return method(*args)

    def run_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        fn(*args)

    def emergency_stop(self) -> None:
        self.do("emergency_stop")

    def submit(self, make_request: RequestAt) -> None:
        self.do("submit", make_request)

    def heartbeat(self) -> None:
        with contextlib.suppress(WireClosed):
            self._sender.send(("heartbeat",))

    # ---- the wire -----------------------------------------------------------------------

    def do(self, method: str, *args: Any) -> None:
        try:
            self._sender.send(("do", method, args))
        except WireClosed:
            log.warning("%s: %s not sent", GONE, method)

    def request(self, method: str, *args: Any) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        call_id = next(self._ids)
        with self._lock:
            if self._gone:
                future.set_exception(TreadmillError(GONE))
                return future
            self._calls[call_id] = future
        future.add_done_callback(lambda done: self._cancelled(call_id, done))
        try:
            self._sender.send(("call", call_id, method, args))
        except WireClosed:
            self._finish(call_id, False, TreadmillError(GONE))
        return future

    def request_session(self, program: Program, safety: Any,
                        feed: SessionFeed) -> concurrent.futures.Future[Any]:
        session_id = next(self._ids)
        feed.runner = RunnerMirror()  # type: ignore[assignment]  # filled by snapshots
        self._feeds[session_id] = feed
        for old in list(self._feeds)[:-KEEP_FEEDS]:  # a finished session's screen still
            del self._feeds[old]  # shows the belt slowing down (idle samples) for a while
        return self.request("run_session", program, safety, session_id)

    def _cancelled(self, call_id: int, future: concurrent.futures.Future[Any]) -> None:
        if future.cancelled():
            with self._lock:
                self._calls.pop(call_id, None)
            with contextlib.suppress(WireClosed):
                self._sender.send(("cancel", call_id))

    def _finish(self, call_id: int, ok: bool, value: Any) -> None:
        with self._lock:
            future = self._calls.pop(call_id, None)
        if future is None or future.done():
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value if isinstance(value, BaseException)
                                 else TreadmillError(str(value)))

    def _read(self) -> None:
        try:
            while True:
                self._dispatch(receive(self._sock))
        except WireClosed:
            pass
        except Exception:
            log.exception("the controller's wire failed")
        self._lost()

    def _lost(self) -> None:
        with self._lock:
            self._gone = True
            calls, self._calls = self._calls, {}
        for future in calls.values():
            if not future.done():
                future.set_exception(TreadmillError(GONE))
        self._sender.close()
        self.post(messages.ControllerGone(GONE))
        # Its terminal went with it (the pseudo-terminal was the controller's): an app that
        # can't finish its exit on it must not linger, let alone spin.
        threading.Timer(GONE_EXIT_S, os._exit, (GONE_EXIT_STATUS,)).start()

    def _dispatch(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "state":
            self._apply(message[1])
        elif kind == "result":
            _, call_id, ok, value = message
            self._finish(call_id, ok, self._adopt(value))
        elif kind == "feed":
            _, session_id, events = message
            feed = self._feeds.get(session_id)
            if feed is not None:
                for event in events:
                    feed.on_event(event)
        elif kind == "idle":
            feed = self._feeds.get(message[1])
            link = self.controller.link
            if feed is not None and link is not None and link.last_sample is not None:
                feed.on_idle_sample(link.last_sample)
        elif kind == "t0":
            _, session_id, t0 = message
            feed = self._feeds.get(session_id)
            if feed is not None:
                feed.t0 = t0
        elif kind == "post":
            _, name, kwargs = message
            cls = getattr(messages, name, None)
            if isinstance(cls, type) and issubclass(cls, Message):
                self.post(cls(**kwargs))
        elif kind == "quit":
            self.post(messages.QuitRequested())

    def _adopt(self, value: Any) -> Any:
        """A result as the app expects it: the link's mirror for a connect (the snapshot sent
        just before the result made it), the simulator's view for open_simulator."""
        core = self.controller
        if isinstance(value, SimState):
            core.sim = value
        if isinstance(value, LinkState):
            return self._follow(value)
        return value

    def _follow(self, link: LinkState | None) -> LinkMirror | None:
        """The link's mirror after `link`: the same one brought up to date for the same link;
        for another link or none, the old one is told it is gone (a screen may still hold it)."""
        core = self.controller
        if link is not None and core.link is not None and core.link.key == link.key:
            core.link.apply(link)
            return core.link
        if core.link is not None:
            core.link.connected = False
            core.link.can_stop = False
        core.link = None if link is None else LinkMirror(link)
        return core.link

    def _apply(self, state: CoreState) -> None:
        core = self.controller
        self._state = state
        core.sim = state.sim
        core.session_active = state.session_active
        core.can_stop = state.can_stop
        core.last_session_id = state.last_session_id
        core.record = state.record
        self._follow(state.link)
        for session_id, runner in state.runners.items():
            feed = self._feeds.get(session_id)
            if feed is not None and isinstance(feed.runner, RunnerMirror):
                feed.runner.apply(runner)
