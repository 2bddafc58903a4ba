"""Where the controller runs, and the only way the app reaches it: `ControllerHost`.

Threaded (the default for a real terminal): the controller gets a thread and an event loop of
its own, built by the same loop factory the app uses (a simulated clock under --speedup), so no
render, layout or message backlog on the app's loop can delay a Stop. Inline (the Pilot tests,
on virtual time): the controller shares the app's loop, as one clock must drive both.

Every method is safe to call from any thread, and the calling code is the same in both modes:
`call()` returns a `concurrent.futures.Future` (the app awaits it with `asyncio.wrap_future`,
never `.result()`, which would deadlock inline); `emergency_stop()`, `submit()` and
`run_soon()` run at once when called on the controller's own thread, and are handed over with
`call_soon_threadsafe` otherwise. Reads of display state are plain attribute reads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Literal

from tui.controller import HEARTBEAT_TIMEOUT_S, Controller

log = logging.getLogger(__name__)

type Mode = Literal["threaded", "inline"]
type LoopFactory = Callable[[], asyncio.AbstractEventLoop]

START_TIMEOUT_S = 5.0
CLOSE_TIMEOUT_S = 6.0  # the controller's shutdown is bounded by its own stop waits (~5 s)


class ControllerHost:
    """Runs a `Controller` (threaded or inline) and takes calls into it from any thread."""

    def __init__(
        self,
        controller: Controller,
        *,
        mode: Mode = "threaded",
        loop_factory: LoopFactory | None = None,
        heartbeat_timeout_s: float | None = HEARTBEAT_TIMEOUT_S,
    ) -> None:
        self.controller = controller
        self.mode = mode
        self._loop_factory = loop_factory
        # Inline, a hung screen hangs the controller too: a watchdog on the same loop could
        # never fire, so there is none.
        self._heartbeat_timeout_s = heartbeat_timeout_s if mode == "threaded" else None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._thread_id: int | None = None
        self._closed = False

    # ---- life cycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Inline: adopt the running loop. Threaded: start the thread and wait for its loop."""
        if self.loop is not None:
            return
        if self.mode == "inline":
            self.loop = asyncio.get_running_loop()
            self._thread_id = threading.get_ident()
            return
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="controller",
                                        daemon=True)  # a hung controller must not keep us alive
        self._thread.start()
        if not ready.wait(START_TIMEOUT_S):
            raise RuntimeError("the controller's thread did not start")

    def _run(self, ready: threading.Event) -> None:
        loop = self._loop_factory() if self._loop_factory is not None else asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self.loop = loop
        self._thread_id = threading.get_ident()
        if self._heartbeat_timeout_s is not None:
            loop.call_soon(self.controller.start_watchdog, self._heartbeat_timeout_s)
        ready.set()
        try:
            loop.run_forever()
        finally:
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.wait(tasks, timeout=1.0))
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Stop the belt if a session runs, close the link, end the thread; bounded. Safe to
        call more than once, and after the app has shut the controller down itself."""
        if self._closed:
            return
        self._closed = True
        loop, thread = self.loop, self._thread
        if self.mode == "inline" or loop is None or thread is None:
            return  # inline, the app's on_unmount shut the controller down on its own loop
        with contextlib.suppress(Exception):
            self.call(self.controller.shutdown).result(timeout)
        with contextlib.suppress(RuntimeError):  # already closed
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if thread.is_alive():
            log.error("the controller did not stop within %.0f s", timeout)

    @property
    def started(self) -> bool:
        """start() has run: the controller's loop is there to take calls."""
        return self.loop is not None

    @property
    def on_controller_thread(self) -> bool:
        return self._thread_id == threading.get_ident()

    # ---- calls ----------------------------------------------------------------------------

    def time(self) -> float:
        """The controller loop's clock (session times are on it)."""
        assert self.loop is not None
        return self.loop.time()

    def call[T](self, coro_fn: Callable[..., Coroutine[Any, Any, T]],
                *args: Any) -> concurrent.futures.Future[T]:
        """Run `coro_fn(*args)` on the controller's loop. Cancelling the future cancels it."""
        assert self.loop is not None, "the controller is not started"
        return asyncio.run_coroutine_threadsafe(coro_fn(*args), self.loop)

    def run_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run `fn(*args)` on the controller's loop: now if we are on it, else next."""
        if self.on_controller_thread:
            fn(*args)
            return
        loop = self.loop
        if loop is None or loop.is_closed():
            raise RuntimeError("the controller is not running")
        loop.call_soon_threadsafe(fn, *args)

    def emergency_stop(self) -> None:
        """Stop the belt now, from any thread (the key reader's, the app's, a signal's)."""
        self.run_soon(self.controller.emergency_stop)

    def submit(self, make_request: Callable[[float], Any]) -> None:
        self.run_soon(self.controller.submit, make_request)

    def heartbeat(self) -> None:
        """The screen is alive (called by the app every HEARTBEAT_S)."""
        self.controller.heartbeat()
