"""An asyncio event loop on simulated time, so a 30-minute session can run in a second.

Everything in the project measures time with `loop.time()` and waits with `asyncio.sleep` /
`asyncio.timeout`, so swapping the loop is all it takes. The trick lives in the selector, a
public constructor argument of `SelectorEventLoop`: when no I/O is ready and the loop wants
to sleep until its next timer, the clock jumps there instead. Real I/O (stdin, pipes,
threads calling `call_soon_threadsafe`) still works: it is polled on every turn.

`speedup=None` runs as fast as the CPU allows; `speedup=N` runs N times faster than the wall
clock (still a real-time feel, used to watch a session in fast-forward).
"""

from __future__ import annotations

import asyncio
import selectors
import time
from collections.abc import Coroutine
from typing import Any


class _JumpingSelector(selectors.DefaultSelector):
    """A selector that turns "sleep for `timeout`" into a clock jump (or a shorter real wait)."""

    def __init__(self, loop_ref: list[VirtualTimeLoop]) -> None:
        super().__init__()
        self._loop_ref = loop_ref

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        loop = self._loop_ref[0]
        if loop.speedup is None:
            ready = super().select(0)
            if ready or timeout is None:
                # Nothing scheduled: only outside I/O can wake us, so wait for it for real.
                return ready or super().select(None)
            if timeout > 0:
                loop.advance(timeout)
            return ready
        real_timeout = None if timeout is None else timeout / loop.speedup
        return super().select(real_timeout)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose `time()` is simulated (see module docstring)."""

    def __init__(self, speedup: float | None = None, start: float = 0.0) -> None:
        if speedup is not None and speedup <= 0:
            raise ValueError("speedup must be positive (or None for as fast as possible)")
        self.speedup = speedup
        self._virtual = start
        self._real_start = time.perf_counter()
        ref: list[VirtualTimeLoop] = [self]
        super().__init__(selector=_JumpingSelector(ref))
        # Simulated time is exact: timers due "now" must not wait for a clock tick.
        self._clock_resolution = 1e-9

    def time(self) -> float:
        if self.speedup is None:
            return self._virtual
        return self._virtual + (time.perf_counter() - self._real_start) * self.speedup

    def advance(self, seconds: float) -> None:
        """Move simulated time forward (only meaningful with speedup=None)."""
        self._virtual += seconds


def run_virtual[T](coro: Coroutine[Any, Any, T], speedup: float | None = None) -> T:
    """Run `coro` to completion on a fresh simulated-time loop."""
    with asyncio.Runner(loop_factory=lambda: VirtualTimeLoop(speedup)) as runner:
        return runner.run(coro)
