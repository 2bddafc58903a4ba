"""The bridge from a session's runner (on the controller's loop) to the session screen (on the
app's loop): it never blocks the controller and never floods the screen.

The runner's event bus calls `on_event` on the controller's loop. Discrete events (a step, a
cue, an alarm, the end) are handed to `post_event` at once, in order (the screen posts them to
itself as messages). Telemetry, commands and status echoes only change numbers: they wait in a
deque, and `post_numbers` is called only when the deque was empty, so at most one "numbers
waiting" call is ever queued; the screen drains the deque then and redraws at its own pace.
`deque.append` and textual's `post_message` are thread-safe, so the same code runs whether the
controller has its own thread or shares the app's loop.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from treadmill import session_events as ev
from treadmill.session_events import SessionEvent

if TYPE_CHECKING:
    from treadmill.events import TelemetrySample
    from treadmill.session import SessionRunner

# Far more than one redraw's worth at 10 Hz; a stuck screen loses the oldest numbers, never
# memory (and never a discrete event).
MAX_BACKLOG = 256


class SessionFeed:
    """One session's events on their way to one screen."""

    def __init__(self, post_event: Callable[[SessionEvent], object],
                 post_numbers: Callable[[], object]) -> None:
        self._post_event = post_event
        self._post_numbers = post_numbers
        self._numbers: deque[SessionEvent] = deque(maxlen=MAX_BACKLOG)
        self._nudged = False
        self._detached = False
        # Written on the controller's loop, read by the screen (plain attribute reads).
        self.runner: SessionRunner | None = None
        self.t0: float | None = None  # the controller loop's time when the session started

    # ---- the controller's side -----------------------------------------------------------

    def on_event(self, event: SessionEvent) -> None:
        """The bus handler (controller loop): cheap, never blocks."""
        if self._detached:
            return
        if isinstance(event, ev.TelemetryShown | ev.CommandSent | ev.StatusReported):
            self._numbers.append(event)
            self._nudge()
        else:
            self._post_event(event)

    def on_idle_sample(self, sample: TelemetrySample) -> None:
        """After the session the idle link reads the belt (it may still be slowing down): the
        screen reads `link.last_sample` when it redraws."""
        if not self._detached:
            self._nudge()

    def _nudge(self) -> None:
        if not self._nudged:
            self._nudged = True
            self._post_numbers()

    def detach(self) -> None:
        """The screen is gone: drop whatever comes from now on."""
        self._detached = True
        self._numbers.clear()

    # ---- the screen's side ---------------------------------------------------------------

    def take(self) -> list[SessionEvent]:
        """Everything waiting (app loop). The flag is cleared first: a number that arrives
        while we drain either comes out now or brings a new call."""
        self._nudged = False
        taken: list[SessionEvent] = []
        while self._numbers:
            taken.append(self._numbers.popleft())
        return taken
