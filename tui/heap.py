"""Keeps Python's garbage collector from pausing the stop path.

A full (generation 2) collection walks every tracked object while holding the GIL: in a
textual app that is the whole widget tree and everything imported, tens to hundreds of
milliseconds, during which the key reader (tui/driver.py) and the controller's thread can't
run, so a SPACE pressed then waits. Measured with `benchmarks/estop_latency.py`: the stop's
tail (p99 67 ms, max 178 ms on an idle machine) was these pauses; with no collector at all it
was 11 ms. So the heap that lives for the whole run (start-up, a session's screen) is frozen
(`gc.freeze()`: collections skip it), and the full collection of what is left over runs
between sessions, when no session is moving a belt. Young collections still run as usual.
"""

from __future__ import annotations

import gc


def freeze() -> None:
    """What exists now lives long (a session screen just mounted): collections skip it."""
    gc.freeze()


def settle() -> None:
    """Between sessions: collect everything (old session screens included), then freeze."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


# A full collection is due after this many young (generation 1) ones: never, in practice.
NO_AUTOMATIC_FULL = 1_000_000


def young_only() -> None:
    """For the controller's own process (tui/split.py), whose loop reads the keys and writes
    the Stop: young collections still run (they are short: only new objects), the full one
    only in `settle`, between sessions. Measured there without this: full collections of 20-117
    ms at the start of a session, while a belt runs up."""
    young, older, _ = gc.get_threshold()
    gc.set_threshold(young, older, NO_AUTOMATIC_FULL)
