"""Background threads and the screen's process give way to the controller's Stop path."""

from __future__ import annotations

import os


def give_way_on_wakeup() -> bool:
    """Make the calling thread SCHED_BATCH (Linux; threads it starts later inherit it): the same
    CPU share as before, but waking it never preempts the thread that woke it.

    Why: a Stop is decided on the controller's loop, which then hands events to the recorder,
    the MQTT bridge and the screen. Each hand-over wakes a thread, and a woken thread may take
    the CPU at once; once the loop is off the CPU, another process can keep it until the next
    scheduler tick (4 ms at HZ=250), the Stop still unwritten. Returns whether it took."""
    try:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except (AttributeError, OSError):  # not Linux
        return False
    return True
