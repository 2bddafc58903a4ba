"""The signals that mean "go away", and loop handlers for them: each one stops the belt first."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterable
from typing import Any

# DESIGN §5: every signal and a closed terminal (SIGHUP) send Stop before the process exits.
# SIGINT too: in raw mode Ctrl-C is a key, but `kill -INT` still arrives as a signal.
# Windows has only SIGINT and SIGTERM.
STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")
    if hasattr(signal, name)
)

# Windows' loop has no signal handlers, and only the main thread may add them (tests run apps
# on other threads). Either way the handler is simply not there.
_CANNOT = (NotImplementedError, RuntimeError, ValueError)


def add_handlers(loop: asyncio.AbstractEventLoop, callback: Callable[..., object], *args: Any,
                 signals: Iterable[signal.Signals] = STOP_SIGNALS) -> list[signal.Signals]:
    """Call `callback(sig, *args)` on the loop for each signal; returns those it could install.
    They run as ordinary callbacks, so the Stop they send takes the same path as any other."""
    installed: list[signal.Signals] = []
    for sig in signals:
        with contextlib.suppress(*_CANNOT):
            loop.add_signal_handler(sig, callback, sig, *args)
            installed.append(sig)
    return installed


def remove_handlers(loop: asyncio.AbstractEventLoop, installed: Iterable[signal.Signals]) -> None:
    for sig in installed:
        with contextlib.suppress(*_CANNOT):
            loop.remove_signal_handler(sig)
