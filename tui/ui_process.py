"""The screen's process of a split TUI (tui/split.py starts it): the textual app, on a
pseudo-terminal of the controller process's making, with the controller reached over the wire
whose file descriptor is the one argument."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import sys
import termios

from tui.remote import RemoteHost
from tui.wire import WireClosed, receive

# Drawing yields the CPU to the controller's process (which reads the keys and writes the Stop)
# when both want it; the screen still gets a fair share, enough for its 0.5 s heartbeat.
SCREEN_NICE = 5


def main(argv: list[str]) -> int:
    with contextlib.suppress(OSError, AttributeError):
        os.nice(SCREEN_NICE)
    sock = socket.socket(fileno=int(argv[1]))
    with contextlib.suppress(OSError):
        # Our pseudo-terminal becomes the controlling one: its resizes reach us as SIGWINCH.
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    try:
        kind, settings = receive(sock)
    except WireClosed:
        return 1
    if kind != "settings":
        return 1
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from tui.app import TreadmillApp  # after the wire is up: the import takes a while

    host = RemoteHost(sock)
    app = TreadmillApp(program_name=settings.program_name, device=settings.device,
                       simulate=settings.simulate, safety=settings.safety,
                       config=settings.config, programs=settings.programs,
                       real_time=settings.real_time, host=host,
                       simulator_available=settings.simulator_available)
    try:
        app.run()
    finally:
        host.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
