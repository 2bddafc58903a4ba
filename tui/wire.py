"""The wire between the UI process and the controller process: length-prefixed pickles over one
private Unix socket pair (both ends are this program, started by the controller process).

Controller -> UI, first: ("settings", AppSettings)   what the screen's app is built with
UI -> controller:
  ("call", id, method, args)   an async controller method; answered by ("result", id, ok, value)
  ("cancel", id)               the caller gave up on that call
  ("do", method, args)         a synchronous one (emergency_stop, submit, confirm_turned, ...)
  ("heartbeat",)               the screen is alive
Controller -> UI:
  ("result", id, ok, value)    value, or the exception the method raised
  ("state", CoreState)         what the screens read (tui/views.py)
  ("feed", session_id, events) a session's events, in order
  ("t0", session_id, t0)       the session's time origin on the controller's clock
  ("idle", session_id)         after that session, the idle link read the belt (a redraw)
  ("post", name, kwargs)       a controller message for the app (tui/messages.py)
  ("quit",)                    a signal reached the controller: stop and leave
"""

from __future__ import annotations

import contextlib
import pickle
import socket
import struct
import threading
from typing import Any

HEADER = struct.Struct("!I")
MAX_FRAME = 64 * 1024 * 1024


class WireClosed(Exception):
    """The other process is gone."""


class Sender:
    """Sends frames from any thread (one lock: frames never interleave)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._lock = threading.Lock()
        self.closed = False

    def send(self, message: tuple[Any, ...]) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        with self._lock:
            if self.closed:
                raise WireClosed("the other process is gone")
            try:
                self._sock.sendall(HEADER.pack(len(data)) + data)
            except OSError as exc:
                self.closed = True
                raise WireClosed(str(exc)) from None

    def close(self) -> None:
        with self._lock:
            self.closed = True
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)


def receive(sock: socket.socket) -> tuple[Any, ...]:
    """The next frame (blocking); WireClosed at the end."""
    header = _read_exactly(sock, HEADER.size)
    (size,) = HEADER.unpack(header)
    if size > MAX_FRAME:
        raise WireClosed(f"a frame of {size} bytes")
    return pickle.loads(_read_exactly(sock, size))


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        try:
            chunk = sock.recv(size - len(chunks))
        except OSError as exc:
            raise WireClosed(str(exc)) from None
        if not chunk:
            raise WireClosed("end of stream")
        chunks += chunk
    return bytes(chunks)


def portable(value: Any) -> Any:
    """`value` if it survives pickling, else None (the caller sends a plainer form)."""
    try:
        pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        return None
    return value
