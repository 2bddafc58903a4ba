"""The history database: every recorded session, its samples and events, in one SQLite file.

`HistoryStore` owns the file (`data_dir() / "history.sqlite3"` unless told otherwise), its
schema and the migrations that bring an older file up to date. WAL mode lets a reader (the
history screen, an export) and a recording process share the file; a busy timeout of 5 s
covers the short write transactions of another process. Every write method is one
transaction. Every failure surfaces as a `HistoryError` whose message says what to do.

A connection belongs to the thread that opened it (sqlite3's rule): the recorder opens its
own store on its writer thread.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from treadmill.config import data_dir
from treadmill.errors import TreadmillError
from treadmill.history.model import Recording, Sample, SessionSummary, StoredEvent

FILE_NAME: Final = "history.sqlite3"
BUSY_TIMEOUT_S: Final = 5.0
INTERRUPTED: Final = "interrupted"

# Each entry brings the schema from version i to i + 1 (PRAGMA user_version). Never edit a
# released entry: append a new one, so any older file can be walked up to the current schema.
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    # v1: the sessions and what they are made of.
    (
        """CREATE TABLE sessions (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            program TEXT NOT NULL,
            title TEXT NOT NULL,
            device TEXT NOT NULL,
            simulated INTEGER NOT NULL,
            started_at TEXT NOT NULL,
            ended_at TEXT,
            duration_s REAL NOT NULL DEFAULT 0,
            distance_m INTEGER,
            backward_s REAL NOT NULL DEFAULT 0,
            longest_backward_bout_s REAL NOT NULL DEFAULT 0,
            alarms INTEGER NOT NULL DEFAULT 0,
            end_reason TEXT,
            pain INTEGER,
            effort INTEGER
        )""",
        """CREATE TABLE samples (
            session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            t REAL NOT NULL,
            speed_kmh REAL,
            incline_pct REAL,
            distance_m INTEGER,
            heart_rate_bpm INTEGER,
            orientation TEXT NOT NULL
        )""",
        """CREATE TABLE events (
            session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            t REAL NOT NULL,
            type TEXT NOT NULL,
            data TEXT NOT NULL
        )""",
        "CREATE INDEX samples_by_session ON samples(session_id)",
        "CREATE INDEX events_by_session ON events(session_id)",
        "CREATE INDEX sessions_by_start ON sessions(started_at)",
    ),
    # v2: who is recording a session, so an open row of a live process is not "interrupted".
    (
        "ALTER TABLE sessions ADD COLUMN pid INTEGER",
        "ALTER TABLE sessions ADD COLUMN host TEXT",
    ),
)
SCHEMA_VERSION: Final = len(MIGRATIONS)

_SUMMARY_COLUMNS: Final = (
    "id, program, title, device, simulated, started_at, ended_at, duration_s, distance_m, "
    "backward_s, longest_backward_bout_s, alarms, end_reason, pain, effort"
)


class HistoryError(TreadmillError):
    """The history database can't be read or written; `str()` says what to do."""


def history_error(exc: BaseException, path: Path) -> HistoryError:
    """The one-line HistoryError for what sqlite3 or the OS raised about the file at `path`."""
    if isinstance(exc, HistoryError):
        return exc
    folder = path.parent
    elsewhere = "or set TREADMILL_DATA_DIR to another folder"
    text = " ".join(str(exc).split()) or type(exc).__name__
    lowered = text.lower()
    if isinstance(exc, sqlite3.DatabaseError) and (
        "not a database" in lowered or "malformed" in lowered or "encrypted" in lowered
    ):
        return HistoryError(f"{path} is not a history database: move it away to start a new one")
    if "disk is full" in lowered or getattr(exc, "errno", None) == 28:  # ENOSPC
        return HistoryError(
            f"the disk holding {path} is full: free some space, {elsewhere} with room"
        )
    if "locked" in lowered or "busy" in lowered:
        return HistoryError(
            f"{path} stayed locked by another program for over {BUSY_TIMEOUT_S:g} s: close "
            "other treadmill windows (or whatever holds the file) and try again"
        )
    if (
        isinstance(exc, PermissionError)
        or "readonly" in lowered
        or "read-only" in lowered
        or "unable to open" in lowered
        or "permission" in lowered
    ):
        return HistoryError(
            f"can't write the history database {path}: make {folder} writable by you, "
            f"{elsewhere} you can write"
        )
    return HistoryError(
        f"the history database {path} failed ({text}): check that {folder} is a folder with "
        f"free space, {elsewhere}"
    )


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (errs on the side of alive)."""
    if pid <= 0:
        return False
    if sys.platform == "win32":
        return _pid_alive_windows(pid)
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, as someone else's process
    except OSError:
        return True
    return True


def _pid_alive_windows(pid: int) -> bool:
    # os.kill(pid, 0) would terminate the process on Windows: ask the kernel instead.
    import ctypes

    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return kernel32.GetLastError() == 5  # access denied: it exists
    try:
        code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True
        return code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


class HistoryStore:
    """The sessions kept in one SQLite file. Use from the thread that made it."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path if path is not None else data_dir() / FILE_NAME
        self._host = socket.gethostname()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise history_error(exc, self.path) from None
        try:
            # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, so a writer waits for
            # the lock up front (busy timeout) instead of failing on a lock upgrade.
            self._db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except (sqlite3.Error, OSError) as exc:
            raise history_error(exc, self.path) from None
        try:
            self._open()
        except BaseException as exc:
            self._db.close()
            if isinstance(exc, sqlite3.Error | OSError):
                raise history_error(exc, self.path) from None
            raise

    def _open(self) -> None:
        db = self._db
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        self._migrate()
        self._mark_interrupted()

    def _migrate(self) -> None:
        version = self._version()
        if version > SCHEMA_VERSION:
            raise self._too_new(version)
        if version == SCHEMA_VERSION:
            return
        with self._transaction():
            version = self._version()  # another process may have migrated meanwhile
            if version > SCHEMA_VERSION:
                raise self._too_new(version)
            if version == 0 and self._db.execute(
                "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
            ).fetchone()[0]:
                # A SQLite file of someone else's: never write our tables into it.
                raise HistoryError(
                    f"{self.path} is not a history database: move it away to start a new one"
                )
            for statements in MIGRATIONS[version:]:
                for statement in statements:
                    self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def _version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def _too_new(self, version: int) -> HistoryError:
        return HistoryError(
            f"{self.path} was written by a newer treadmill (history schema v{version}, this "
            f"one knows up to v{SCHEMA_VERSION}): upgrade treadmill to open it"
        )

    def _mark_interrupted(self) -> None:
        """An open session whose recording process is gone ended with that process: mark it
        so (it is kept). One recorded by a live process, or on another host, is left alone."""
        open_rows = "ended_at IS NULL AND end_reason IS NULL"
        rows = self._db.execute(f"SELECT id, pid, host FROM sessions WHERE {open_rows}").fetchall()
        gone = [
            (INTERRUPTED, row_id)
            for row_id, pid, host in rows
            if pid is None or (host == self._host and not pid_alive(pid))
        ]
        if not gone:
            return  # the usual case: no write lock taken just to look
        with self._transaction() as db:
            db.executemany(f"UPDATE sessions SET end_reason = ? WHERE id = ? AND {open_rows}", gone)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            if db.in_transaction:
                db.rollback()
            raise
        db.execute("COMMIT")

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.ProgrammingError:
            raise  # our bug (or a closed store), not the user's file
        except (sqlite3.Error, OSError) as exc:
            raise history_error(exc, self.path) from None

    # ---- writing ---------------------------------------------------------------------------

    def begin(
        self, *, program: str, title: str, device: str, simulated: bool, started_at: str
    ) -> int:
        """A new session, recorded by this process; returns its id."""
        with self._errors(), self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO sessions (program, title, device, simulated, started_at, pid, host)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (program, title, device, int(simulated), started_at, os.getpid(), self._host),
            )
            assert cursor.lastrowid is not None
            return cursor.lastrowid

    def add_samples(self, session_id: int, samples: Sequence[Sample]) -> None:
        if not samples:
            return
        with self._errors(), self._transaction() as db:
            db.executemany(
                "INSERT INTO samples (session_id, t, speed_kmh, incline_pct, distance_m, "
                "heart_rate_bpm, orientation) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (session_id, s.t, s.speed_kmh, s.incline_pct, s.distance_m,
                     s.heart_rate_bpm, s.orientation)
                    for s in samples
                ],
            )

    def add_events(self, session_id: int, events: Sequence[StoredEvent]) -> None:
        if not events:
            return
        with self._errors(), self._transaction() as db:
            db.executemany(
                "INSERT INTO events (session_id, t, type, data) VALUES (?, ?, ?, ?)",
                [(session_id, e.t, e.type, json.dumps(e.data, default=str)) for e in events],
            )

    def finish(
        self,
        session_id: int,
        *,
        ended_at: str,
        duration_s: float,
        distance_m: int | None,
        backward_s: float,
        longest_backward_bout_s: float,
        alarms: int,
        end_reason: str,
    ) -> None:
        with self._errors(), self._transaction() as db:
            cursor = db.execute(
                "UPDATE sessions SET ended_at = ?, duration_s = ?, distance_m = ?, "
                "backward_s = ?, longest_backward_bout_s = ?, alarms = ?, end_reason = ? "
                "WHERE id = ?",
                (ended_at, duration_s, distance_m, backward_s, longest_backward_bout_s, alarms,
                 end_reason, session_id),
            )
            if cursor.rowcount == 0:
                raise self._no_session(session_id)

    def rate(self, session_id: int, *, pain: int | None, effort: int | None) -> None:
        """How it felt, 0-10 each (None: not rated)."""
        for name, value in (("pain", pain), ("effort", effort)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10
            ):
                raise ValueError(f"{name} must be a whole number from 0 to 10, not {value!r}")
        with self._errors(), self._transaction() as db:
            cursor = db.execute(
                "UPDATE sessions SET pain = ?, effort = ? WHERE id = ?",
                (pain, effort, session_id),
            )
            if cursor.rowcount == 0:
                raise self._no_session(session_id)

    def delete(self, session_id: int) -> bool:
        """Remove a session and all it recorded; False if there was none with this id."""
        with self._errors(), self._transaction() as db:
            db.execute("DELETE FROM samples WHERE session_id = ?", (session_id,))
            db.execute("DELETE FROM events WHERE session_id = ?", (session_id,))
            return db.execute("DELETE FROM sessions WHERE id = ?", (session_id,)).rowcount > 0

    def _no_session(self, session_id: int) -> HistoryError:
        return HistoryError(
            f"there is no session {session_id} in the history: `treadmill history` lists them"
        )

    # ---- reading ---------------------------------------------------------------------------

    def sessions(self) -> list[SessionSummary]:
        """Every session, newest first."""
        with self._errors():
            rows = self._db.execute(
                f"SELECT {_SUMMARY_COLUMNS} FROM sessions ORDER BY started_at DESC, id DESC"
            ).fetchall()
        return [_summary(row) for row in rows]

    def session(self, session_id: int) -> SessionSummary | None:
        with self._errors():
            row = self._db.execute(
                f"SELECT {_SUMMARY_COLUMNS} FROM sessions WHERE id = ?", (session_id,)
            ).fetchone()
        return None if row is None else _summary(row)

    def recording(self, session_id: int) -> Recording | None:
        """The whole session, samples and events in the order they were recorded."""
        with self._errors():
            # One read transaction, so a recorder writing meanwhile can't tear the picture.
            self._db.execute("BEGIN")
            try:
                summary = self.session(session_id)
                if summary is None:
                    return None
                samples = self._db.execute(
                    "SELECT t, speed_kmh, incline_pct, distance_m, heart_rate_bpm, orientation "
                    "FROM samples WHERE session_id = ? ORDER BY rowid",
                    (session_id,),
                ).fetchall()
                events = self._db.execute(
                    "SELECT t, type, data FROM events WHERE session_id = ? ORDER BY rowid",
                    (session_id,),
                ).fetchall()
            finally:
                self._db.execute("COMMIT")
        return Recording(
            summary=summary,
            samples=tuple(Sample(*row) for row in samples),
            events=tuple(StoredEvent(t, type_, _data(data)) for t, type_, data in events),
        )

    # ---- lifetime --------------------------------------------------------------------------

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _summary(row: tuple[Any, ...]) -> SessionSummary:
    values = list(row)
    values[4] = bool(values[4])  # simulated
    return SessionSummary(*values)


def _data(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        return {}  # a row written by hand; the event itself still counts
    return data if isinstance(data, dict) else {}
