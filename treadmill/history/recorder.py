"""The session recorder: a bus subscriber that writes one session to the history, on a thread
of its own, so a slow or failing disk can never delay the controller or its stop path.

`on_event()` (the bus handler, called on the controller's loop) only puts the event into a
queue and returns. The writer thread owns the `HistoryStore` connection: it begins the session
on `Started`, buffers samples and events and writes them at least every FLUSH_S of wall time
(so a process killed outright loses about a second at most), and on `Ended` writes the
summary. Any error on the way stops the recording with one warning; the session goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from treadmill.background import give_way_on_wakeup
from treadmill.bus import EventBus
from treadmill.config import data_dir
from treadmill.history.model import Sample, StoredEvent

if TYPE_CHECKING:
    from treadmill.history.autoexport import AutoExport
from treadmill.history.store import (
    FILE_NAME,
    INTERRUPTED,
    HistoryError,
    HistoryStore,
    history_error,
)
from treadmill.session_events import AlarmRaised, Ended, SessionEvent, Started, TelemetryShown

log = logging.getLogger(__name__)

FLUSH_S: Final = 0.5
MOVING_KMH: Final = 0.05  # at or below this the belt counts as still
BOUT_PAUSE_S: Final = 3.0  # a backward bout survives a standstill up to this long
CLOSE_TIMEOUT_S: Final = 2.0


class BackwardTally:
    """Backward walking time and the longest bout, from the samples in order.

    An interval between two samples counts when the first of them was backward and moving. A
    bout ends when the orientation changes or the belt stays still for more than BOUT_PAUSE_S
    (a short pause joins the walking on both sides; the paused time itself does not count)."""

    def __init__(self) -> None:
        self.backward_s = 0.0
        self.longest_bout_s = 0.0
        self._bout_s = 0.0
        self._last: Sample | None = None
        self._still_since: float | None = None

    def add(self, sample: Sample) -> None:
        last, self._last = self._last, sample
        if last is None:
            return
        if last.orientation == "backward" and _moving(last) and sample.t > last.t:
            dt = sample.t - last.t
            self.backward_s += dt
            self._bout_s += dt
        if sample.orientation != "backward":
            self._end_bout()
        elif _moving(sample):
            self._still_since = None
        elif self._still_since is None:
            self._still_since = sample.t
        elif sample.t - self._still_since > BOUT_PAUSE_S:
            self._end_bout()
        self.longest_bout_s = max(self.longest_bout_s, self._bout_s)

    def _end_bout(self) -> None:
        self.longest_bout_s = max(self.longest_bout_s, self._bout_s)
        self._bout_s = 0.0
        self._still_since = None


def _moving(sample: Sample) -> bool:
    return sample.speed_kmh is not None and sample.speed_kmh > MOVING_KMH


@dataclass(frozen=True, slots=True)
class _Begin:
    """Started, with the wall clock read when it was published (the writer may be late)."""

    event: Started
    wall: datetime


class _Stop:
    pass


_STOP: Final = _Stop()

type _Item = SessionEvent | _Begin | _Stop


class Recorder:
    """Records one session into the history. Attach before the runner starts (it must see
    `Started`); close after it ended.

    `on_warning` is called at most once, on the recorder's thread (hand it on to your own
    loop), with a line such as "recording stopped: <reason>; the session goes on"."""

    def __init__(
        self,
        *,
        path: Path | None = None,
        program: str,
        title: str,
        device: str,
        simulated: bool,
        on_warning: Callable[[str], None] = lambda msg: None,
        auto_export: AutoExport | None = None,
        on_exported: Callable[[list[Path]], None] = lambda paths: None,
    ) -> None:
        self._path = path
        self._auto_export = auto_export  # files written once the summary is
        self._on_exported = on_exported
        self._program = program
        self._title = title
        self._device = device
        self._simulated = simulated
        self._on_warning = on_warning
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self.session_id: int | None = None  # set by the writer thread once begun
        self.finished = False  # the summary was written (Ended, or close() before it)
        self._stopped = False  # failed or closed: on_event drops everything
        self._warned = False
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()

    # ---- the controller's side (never blocks) ----------------------------------------------

    def on_event(self, event: SessionEvent) -> None:
        """The bus handler: queues the event and returns."""
        if self._stopped:
            return
        if isinstance(event, Started):
            self._queue.put(_Begin(event, datetime.now(UTC)))
        else:
            self._queue.put(event)

    def _export(self, store: HistoryStore, session_id: int) -> None:
        """[export] auto, on the writer thread; trouble is one warning, the recording stays."""
        settings = self._auto_export
        if settings is None:
            return
        from treadmill.history.autoexport import write_exports  # fit-tool: only when needed

        recording = store.recording(session_id)
        if recording is None:
            return
        try:
            paths = write_exports(recording, settings)
        except (OSError, ValueError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            self._say(f"the session is kept, but [export] auto could not write to "
                      f"{settings.folder} ({why}): `treadmill export {session_id}` by hand")
            return
        try:
            self._on_exported(paths)
        except Exception:
            log.exception("the recorder's on_exported failed")

    def _say(self, message: str) -> None:
        try:
            self._on_warning(message)
        except Exception:
            log.exception("the recorder's on_warning failed")

    def attach(self, bus: EventBus) -> None:
        bus.subscribe("recorder", self.on_event)

    def close_soon(self) -> None:
        """Ask the writer to write what it has and end; returns at once."""
        if not self._stopped:
            self._stopped = True
            self._queue.put(_STOP)

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """close_soon(), then wait at most `timeout` s for the writer (a daemon thread: one
        stuck on a locked file is left behind, never waited for longer)."""
        self.close_soon()
        self._thread.join(timeout)

    async def aclose(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """close() for a coroutine: polls by the wall clock (the caller's loop may run on a
        simulated one), without an executor thread."""
        self.close_soon()
        deadline = time.monotonic() + timeout
        while self._thread.is_alive() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    @property
    def running(self) -> bool:
        """The writer thread is still at work."""
        return self._thread.is_alive()

    # ---- the writer thread -----------------------------------------------------------------

    def _run(self) -> None:
        give_way_on_wakeup()  # a disk writer: never ahead of the Stop that woke it
        store: HistoryStore | None = None
        try:
            store = HistoryStore(self._path)
            _Writer(self, store).run()
        except (HistoryError, sqlite3.Error, OSError) as exc:
            self._fail(str(history_error(exc, self._path or data_dir() / FILE_NAME)))
        except Exception as exc:  # a bug here must not reach the session either
            log.exception("the recorder failed")
            self._fail(f"{type(exc).__name__}: {exc}")
        finally:
            if store is not None:
                with contextlib.suppress(Exception):
                    store.close()

    def _fail(self, reason: str) -> None:
        self._stopped = True
        if self._warned:
            return
        self._warned = True
        try:
            self._on_warning(f"recording stopped: {reason}; the session goes on")
        except Exception:
            log.exception("the recorder's on_warning failed")


class _Writer:
    """The writer thread's state: what is buffered and what the summary will say."""

    def __init__(self, recorder: Recorder, store: HistoryStore) -> None:
        self.recorder = recorder
        self.store = store
        self.samples: list[Sample] = []
        self.events: list[StoredEvent] = []
        self.flush_at: float | None = None  # monotonic time the oldest buffered item is due
        self.started_at: datetime | None = None
        self.tally = BackwardTally()
        self.distance_m: int | None = None
        self.alarms = 0
        self.last_t = 0.0

    def run(self) -> None:
        q = self.recorder._queue
        while True:
            timeout = None if self.flush_at is None else max(0.0, self.flush_at - time.monotonic())
            try:
                item = q.get(timeout=timeout)
            except queue.Empty:
                item = None
            if isinstance(item, _Stop):
                self.flush()
                if self.recorder.session_id is not None and not self.recorder.finished:
                    self.finish(INTERRUPTED, self.last_t)  # closed before the session ended
                return
            if item is not None:
                self.take(item)
            if self.flush_at is not None and time.monotonic() >= self.flush_at:
                self.flush()

    def take(self, item: SessionEvent | _Begin) -> None:
        if isinstance(item, _Begin):
            if self.recorder.session_id is None:
                self.begin(item)
            return
        if self.recorder.session_id is None:
            return  # nothing before Started belongs to a session
        self.last_t = max(self.last_t, item.t)
        if isinstance(item, TelemetryShown):
            sample = Sample(
                t=item.t,
                speed_kmh=item.speed_kmh,
                incline_pct=item.incline_pct,
                distance_m=item.distance_m,
                heart_rate_bpm=item.heart_rate_bpm,
                orientation=item.orientation,
            )
            self.tally.add(sample)
            if sample.distance_m is not None:
                self.distance_m = sample.distance_m
            self.buffer(self.samples, sample)
            return
        if isinstance(item, AlarmRaised):
            self.alarms += 1
        data: dict[str, Any] = item.as_dict()
        data.pop("t", None)
        data.pop("type", None)
        self.buffer(self.events, StoredEvent(item.t, item.type, data))
        if isinstance(item, Ended) and not self.recorder.finished:
            self.flush()
            self.finish(item.reason, item.t)

    def begin(self, item: _Begin) -> None:
        self.started_at = item.wall - timedelta(seconds=item.event.t)
        self.recorder.session_id = self.store.begin(
            program=self.recorder._program,
            title=self.recorder._title,
            device=self.recorder._device,
            simulated=self.recorder._simulated,
            started_at=_iso(self.started_at),
        )

    def buffer(self, into: list[Any], thing: Any) -> None:
        into.append(thing)
        if self.flush_at is None:
            self.flush_at = time.monotonic() + FLUSH_S

    def flush(self) -> None:
        session_id = self.recorder.session_id
        self.flush_at = None
        if session_id is None:
            return
        samples, self.samples = self.samples, []
        events, self.events = self.events, []
        self.store.add_samples(session_id, samples)
        self.store.add_events(session_id, events)

    def finish(self, reason: str, duration_s: float) -> None:
        session_id = self.recorder.session_id
        assert session_id is not None and self.started_at is not None
        self.store.finish(
            session_id,
            ended_at=_iso(self.started_at + timedelta(seconds=duration_s)),
            duration_s=duration_s,
            distance_m=self.distance_m,
            backward_s=round(self.tally.backward_s, 2),
            longest_backward_bout_s=round(self.tally.longest_bout_s, 2),
            alarms=self.alarms,
            end_reason=reason,
        )
        self.recorder.finished = True
        self.recorder._export(self.store, session_id)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")
