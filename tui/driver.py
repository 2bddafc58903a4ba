"""The key reader: textual's Linux driver, with SPACE recognised in its own input thread.

textual parses the terminal's bytes into key events in a thread of its own and hands each to
`process_message`, which queues it for the app's loop. Here a `space` key first calls the
controller's thread-safe emergency stop (`loop.call_soon_threadsafe` onto the controller's
loop), before the app's loop, busy rendering or not, ever sees the key. The key then goes on
as usual, marked `stop_sent`, so the app gives its feedback (bell, banner) without a second
Stop; a SPACE that did not come through here (another driver, Pilot) is stopped by the app.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from textual import events
from textual.drivers.linux_driver import LinuxDriver
from textual.message import Message

log = logging.getLogger(__name__)

STOP_KEY = "space"


def mark_stop_sent(event: events.Key) -> None:
    event.stop_sent = True  # type: ignore[attr-defined]


def stop_sent(event: events.Key) -> bool:
    return bool(getattr(event, "stop_sent", False))


class StopKeyDriver(LinuxDriver):
    """LinuxDriver that stops the belt from its input thread on SPACE.

    The app must have `stop_from_any_thread` (a thread-safe callable): it is looked up once,
    here, on the app's loop; the input thread then only calls it."""

    def __init__(self, app: Any, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._stop: Callable[[], None] = app.stop_from_any_thread

    def process_message(self, message: Message) -> None:
        # NOTE: this runs in textual's input thread.
        if isinstance(message, events.Key) and message.key == STOP_KEY:
            try:
                self._stop()
            except Exception:  # the controller is gone: the app's own SPACE path still runs
                log.exception("stop from the key reader failed")
            else:
                mark_stop_sent(message)
        super().process_message(message)


class RelayedStopDriver(LinuxDriver):
    """LinuxDriver for the screen's process of a split TUI (tui/split.py): the controller's
    process read every key first and stopped on each space, so a `space` key here only asks for
    the feedback."""

    def process_message(self, message: Message) -> None:
        if isinstance(message, events.Key) and message.key == STOP_KEY:
            mark_stop_sent(message)
        super().process_message(message)
