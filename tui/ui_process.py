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
import time

from treadmill.background import give_way_on_wakeup
from tui.remote import RemoteHost
from tui.wire import WireClosed, receive

# Drawing yields the CPU to the controller's process (which reads the keys and writes the Stop)
# when both want it; the screen still gets a fair share, enough for its 0.5 s heartbeat.
SCREEN_NICE = 5
AUTOGROUP = "/proc/self/autogroup"
AUTOGROUP_TRIES = 5


def yield_to_the_controller() -> None:
    """Never preempt the controller when its data wakes us (SCHED_BATCH, inherited by the
    app's threads), and lower this process's priority: its own nice, and its autogroup's.
    (Tried: this process in the controller's session and group, at SCHED_IDLE; 100 presses
    with a CPU hog: p99 8.2 ms against 6.0 ms: a runnable controller is not always picked
    before an idle task, and then waits for the next tick.) Linux with autogroups
    (most desktop kernels) weighs each session's group against the others and nice only within
    a group; this process leads a session of its own, so without the second its redraws
    competed with the controller's Stop as equals."""
    give_way_on_wakeup()  # and never preempt it when the controller's data wakes us
    with contextlib.suppress(OSError, AttributeError):
        os.nice(SCREEN_NICE)
    for _ in range(AUTOGROUP_TRIES):
        try:
            fd = os.open(AUTOGROUP, os.O_WRONLY)
        except OSError:
            return  # no autogroups here: nice alone does it
        try:
            os.write(fd, str(SCREEN_NICE).encode())
            return
        except BlockingIOError:  # the kernel takes one such change per 0.1 s, system-wide
            time.sleep(0.1)
        except OSError:
            return
        finally:
            os.close(fd)


def main(argv: list[str]) -> int:
    yield_to_the_controller()
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
