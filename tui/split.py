"""The TUI as two processes: this one is the controller (FTMS client, session runner, governor,
the simulator) and owns the terminal's keys; a child process (tui/ui_process.py) draws the
screen on a pseudo-terminal of its own, and this process copies bytes between the two.

Why: SPACE must not wait for the screen. In one process, a key and a Stop both need the
interpreter lock, and a screen being drawn holds it (or is descheduled holding it); here the
key is read, recognised and the Stop written by one thread of a process that draws nothing.
Every byte the person types is read here first: a space stops the belt (through the governor,
as every Stop does) before the byte is passed on; the screen then only gives its feedback.

If the screen's process crashes, hangs or is killed, the belt stops: its wire closes (a Stop at
once) or its heartbeat stops (a Stop after 3 s, tui/controller.py). A signal to this process,
or a terminal that goes away, stops the belt first and then asks the screen to leave.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import fcntl
import logging
import os
import pty
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import threading
import tty
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from textual import events
from textual._xterm_parser import XTermParser

from safety import SafetyConfig
from safety.wording import ACTIONABLE
from treadmill import stop_signals
from treadmill.background import give_way_on_wakeup
from treadmill.config import Config
from treadmill.errors import TreadmillError
from treadmill.programs import Program
from tui import heap
from tui.controller import Controller
from tui.host import CLOSE_TIMEOUT_S, LoopFactory
from tui.serve import ControllerServer
from tui.wire import Sender

log = logging.getLogger(__name__)

QUIT_GRACE_S = CLOSE_TIMEOUT_S + 2.0  # the screen's own orderly exit (wall clock), then a kill
UI_EXIT_WAIT_S = 3.0  # after its wire closed, the screen's process has this long to end
# What the screen's process would have undone on an orderly exit: the alternate screen, mouse
# and focus reports, bracketed paste, a hidden cursor.
TERMINAL_RESET = (b"\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1006l\x1b[?1015l\x1b[?1004l"
                  b"\x1b[?2004l\x1b[?1049l\x1b[?25h\r\n")


@dataclass(frozen=True)
class AppSettings:
    """What the screen's process needs to build the app (everything else is the controller's)."""

    program_name: str | None
    device: str | None
    simulate: bool
    safety: SafetyConfig
    config: Config
    programs: dict[str, Program] | None
    real_time: bool
    simulator_available: bool
    log_level: int = logging.ERROR  # the CLI's (--debug: DEBUG)


def is_stop_key(event: object) -> bool:
    """A space in any form the screen could read as one (a key, alt+space, inside a paste):
    this side stops on every one of them, so the screen never sees a space that stopped
    nothing."""
    if isinstance(event, events.Key):
        return event.key == "space" or event.character == " "
    if isinstance(event, events.Paste):
        return " " in event.text
    return False


class TerminalRelay:
    """Copies the terminal's bytes to the screen's pseudo-terminal and back.

    Input is read on the controller's loop (`add_reader`): each chunk is parsed with textual's
    own key parser, a space stops the belt there and then, and the chunk is passed on without a
    wait (a screen that doesn't read its input loses keys, never the loop). Output is copied by a
    thread of its own, so a terminal that stops reading blocks only that thread; a terminal that
    is gone is written no more, but the screen's output is still drained."""

    def __init__(self, stdin_fd: int, stdout_fd: int, master_fd: int, *,
                 on_stop: Callable[[], None], on_hangup: Callable[[], None]) -> None:
        self.stdin_fd = stdin_fd
        self.stdout_fd = stdout_fd
        self.master_fd = master_fd
        self._on_stop = on_stop
        self._on_hangup = on_hangup
        self._parser = XTermParser()
        self._decode = codecs.getincrementaldecoder("utf-8")(errors="replace").decode
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reading = False
        self.terminal_gone = False
        self._closing = threading.Event()
        self._output: threading.Thread | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        os.set_blocking(self.master_fd, False)
        loop.add_reader(self.stdin_fd, self._on_input)
        self._reading = True
        self._output = threading.Thread(target=self._copy_output, name="screen-output",
                                        daemon=True)
        self._output.start()

    def close(self) -> None:
        self._stop_reading()
        self._closing.set()
        if self._output is not None:
            self._output.join(1.0)

    def _stop_reading(self) -> None:
        if self._reading and self._loop is not None:
            self._reading = False
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self.stdin_fd)

    def _on_input(self) -> None:
        try:
            data = os.read(self.stdin_fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # the terminal is gone (EOF or EIO)
            self._stop_reading()
            told = self.terminal_gone  # SIGHUP came first and was handled
            self.terminal_gone = True
            if not told:
                self._on_hangup()
            return
        if self._has_stop_key(data):
            self._on_stop()  # the Stop's write is scheduled: it runs first, then the forward
            if self._loop is not None:
                # Passed on a loop turn later, once the Stop is written: a write to a pty wakes
                # a kernel worker that takes this CPU at once, and the screen it wakes could
                # then keep it until the next tick (4 ms at HZ=250), the Stop still unwritten.
                self._loop.call_soon(self._pass_on, data)
                return
        self._pass_on(data)

    def _pass_on(self, data: bytes) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self.master_fd, data)

    def _has_stop_key(self, data: bytes) -> bool:
        try:
            return any(is_stop_key(event) for event in self._parser.feed(self._decode(data)))
        except Exception:  # a sequence textual's parser chokes on: start afresh, stop anyway
            log.exception("the key parser failed")
            self._parser = XTermParser()
            return b" " in data

    def _copy_output(self) -> None:
        give_way_on_wakeup()  # the screen's output: never ahead of a Stop
        while not self._closing.is_set():
            try:
                ready, _, _ = select.select([self.master_fd], [], [], 0.2)
            except (OSError, ValueError):
                return
            if not ready:
                continue
            try:
                data = os.read(self.master_fd, 65536)
            except BlockingIOError:
                continue
            except OSError:
                return  # EIO: the screen's process has closed its side
            if not data:
                return
            if not self.terminal_gone:
                self._write_out(data)

    def _write_out(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                written = os.write(self.stdout_fd, view)
            except InterruptedError:
                continue
            except OSError:
                self.terminal_gone = True  # keep draining the screen's output, show nothing
                return
            view = view[written:]

    def copy_size(self) -> None:
        """The terminal's size onto the screen's pseudo-terminal (the kernel tells the screen's
        process with SIGWINCH)."""
        copy_size(self.stdout_fd, self.master_fd)


def copy_size(from_fd: int, to_fd: int) -> None:
    with contextlib.suppress(OSError):
        size = fcntl.ioctl(from_fd, termios.TIOCGWINSZ, struct.pack("HHHH", 0, 0, 0, 0))
        fcntl.ioctl(to_fd, termios.TIOCSWINSZ, size)


def run_split(controller: Controller, settings: AppSettings, *,
              loop_factory: LoopFactory | None) -> None:
    """Run the screen in a child process and the controller here, until the screen quits.
    Whatever way this returns or raises, the belt is left stopped and the link closed."""
    stdin_fd, stdout_fd = sys.stdin.fileno(), sys.stdout.fileno()
    ours, theirs = socket.socketpair()
    master, slave = pty.openpty()
    copy_size(stdout_fd, master)
    screen = ScreenProcess(subprocess.Popen(
        [sys.executable, "-m", "tui.ui_process", str(theirs.fileno())],
        stdin=slave, stdout=slave, stderr=slave, pass_fds=(theirs.fileno(),),
        # Its size is its pseudo-terminal's, which follows the terminal's: exported COLUMNS and
        # LINES would pin it (textual reads them first), and a resize would never show.
        env={k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")},
        start_new_session=True))
    os.close(slave)
    theirs.close()
    saved = None
    with contextlib.suppress(termios.error):
        saved = termios.tcgetattr(stdin_fd)
        tty.setraw(stdin_fd)
    try:
        Sender(ours).send(("settings", settings))
        heap.settle()  # this process's start-up heap lives till the end: collections skip it
        heap.young_only()
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(_serve(controller, ours, screen, master, stdin_fd, stdout_fd))
    finally:
        screen.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            screen.popen.wait(2.0)
        if screen.popen.returncode != 0:
            with contextlib.suppress(OSError):
                os.write(stdout_fd, TERMINAL_RESET)
        if saved is not None:
            with contextlib.suppress(termios.error, OSError):
                termios.tcsetattr(stdin_fd, termios.TCSADRAIN, saved)
        with contextlib.suppress(OSError):
            os.close(master)
        ours.close()
    if screen.crashed:
        raise TreadmillError(
            f"the screen's process ended unexpectedly (exit status {screen.popen.returncode}); the "
            f"belt was stopped. If it is moving, {ACTIONABLE}")


async def _serve(controller: Controller, sock: socket.socket, screen: ScreenProcess,
                 master: int, stdin_fd: int, stdout_fd: int) -> None:
    loop = asyncio.get_running_loop()
    rate = getattr(loop, "speedup", None) or 1.0  # loop seconds per wall-clock second
    server = ControllerServer(controller, sock)
    await server.start()
    signals_seen = 0

    def leave(reason: str) -> None:
        """A signal or a lost terminal: Stop first, then ask the screen to leave; a second
        one doesn't wait for the screen any more."""
        nonlocal signals_seen
        signals_seen += 1
        log.warning("%s: stopping the belt and quitting", reason)
        controller.emergency_stop()
        if signals_seen == 1:
            server.send(("quit",))
            loop.call_later(QUIT_GRACE_S * rate, screen.kill)
        else:
            screen.kill()

    relay = TerminalRelay(stdin_fd, stdout_fd, master, on_stop=controller.emergency_stop,
                          on_hangup=lambda: leave("the terminal closed"))
    relay.start(loop)
    installed = stop_signals.add_handlers(loop, _on_signal, relay, leave)
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError, AttributeError):
        loop.add_signal_handler(signal.SIGWINCH, relay.copy_size)
        installed.append(signal.SIGWINCH)
    screen_ended = loop.create_future()

    def watch_screen() -> None:
        screen.popen.wait()
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(lambda: screen_ended.done() or screen_ended.set_result(None))

    threading.Thread(target=watch_screen, name="screen-process", daemon=True).start()
    try:
        assert server.ui_gone is not None
        await asyncio.wait({screen_ended, server.ui_gone}, return_when=asyncio.FIRST_COMPLETED)
        if not screen_ended.done():
            await asyncio.wait({screen_ended}, timeout=UI_EXIT_WAIT_S * rate)
            if not screen_ended.done():
                screen.kill()
    finally:
        stop_signals.remove_handlers(loop, installed)
        if not server.shut_down:
            # The screen ended without its orderly shutdown (a crash, a kill): do it here.
            with contextlib.suppress(Exception, asyncio.CancelledError):
                async with asyncio.timeout(CLOSE_TIMEOUT_S * rate):
                    await controller.shutdown()
        server.close()
        relay.close()


def _on_signal(sig: int, relay: TerminalRelay, leave: Callable[[str], None]) -> None:
    if sig == getattr(signal, "SIGHUP", None):
        relay.terminal_gone = True  # nothing more is shown on a terminal that hung up
    leave(signal.Signals(sig).name)


class ScreenProcess:
    """The screen's process, and whether this side ended it (then its exit is no crash)."""

    def __init__(self, popen: subprocess.Popen[Any]) -> None:
        self.popen = popen
        self.killed = False

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.killed = True
            with contextlib.suppress(OSError):
                self.popen.kill()

    @property
    def crashed(self) -> bool:
        return self.popen.returncode not in (0, None) and not self.killed
