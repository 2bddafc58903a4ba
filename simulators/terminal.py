"""A person at a terminal: one real process in a pseudo-terminal, for the tests and benchmarks
that drive the CLI and the TUI as people do (POSIX only).

Everything the process prints is drained by a thread, because a terminal that stops reading
stalls the app; `reading` can be cleared to be that stalled terminal on purpose.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import struct
import subprocess
import termios
import threading
import time

KEEP_BYTES = 200_000  # of the output: enough to find the last screen in, bounded for hours


class TerminalError(AssertionError):
    """The process ended, or never printed what was waited for (it reads as a failed check)."""


class Terminal:
    """`argv` running in a pty of `cols` x `rows`. With `controlling`, the pty is the process's
    controlling terminal, so closing it hangs the process up (SIGHUP), as closing a terminal
    window does."""

    def __init__(self, argv: list[str], env: dict[str, str], *, cols: int = 120, rows: int = 40,
                 controlling: bool = False) -> None:
        self.master, slave = pty.openpty()
        _set_size(slave, cols, rows)
        self.started = time.perf_counter()
        preexec = (lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0)) if controlling else None
        self.process = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                        start_new_session=True, preexec_fn=preexec)
        os.close(slave)
        self.output = bytearray()
        self.reading = threading.Event()
        self.reading.set()
        self._lock = threading.Lock()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        while True:
            self.reading.wait()
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            with self._lock:
                self.output += chunk
                del self.output[:-KEEP_BYTES]

    def tail(self, size: int = 2000) -> bytes:
        with self._lock:
            return bytes(self.output[-size:])

    def take(self) -> bytes:
        """What was printed since the last take (at most the last KEEP_BYTES), and forget it."""
        with self._lock:
            taken = bytes(self.output)
            self.output.clear()
            return taken

    def wait_for(self, text: bytes, timeout: float = 30.0) -> float:
        """Wait until `text` has been printed; the seconds since the process was started."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            with self._lock:
                if text in self.output:
                    return time.perf_counter() - self.started
            if self.process.poll() is not None:
                raise TerminalError(f"the process exited before {text!r}: {self.tail()!r}")
            time.sleep(0.005)
        raise TerminalError(f"{text!r} did not appear within {timeout:g} s: {self.tail()!r}")

    def type(self, keys: str | bytes) -> None:
        os.write(self.master, keys.encode() if isinstance(keys, str) else keys)

    def resize(self, cols: int, rows: int) -> None:
        """The kernel sends SIGWINCH to the process: textual repaints everything."""
        _set_size(self.master, cols, rows)

    def hang_up(self) -> None:
        os.close(self.master)

    def close(self, quit_key: str | None = None) -> None:
        """End the process: with `quit_key` typed first (and 10 s to go), else killed."""
        if self.process.poll() is None and quit_key is not None:
            with contextlib.suppress(OSError):
                self.type(quit_key)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        with contextlib.suppress(OSError):
            os.close(self.master)


def _set_size(fd: int, cols: int, rows: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
