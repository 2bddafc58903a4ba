"""What the person can connect to: a `Target`, the built-in simulator as the TUI sees it, and
how long each kind of scan listens."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from bleak.backends.device import BLEDevice

from treadmill.client import FtmsClient

SIM_SCAN_S = 1.0
REAL_SCAN_S = 5.0


@dataclass(frozen=True)
class Target:
    """A treadmill the person can connect to."""

    name: str
    address: str
    simulated: bool = False
    device: BLEDevice | None = None


class SimulatedDevice(Protocol):
    """The built-in simulator. The composition root builds it (the TUI never imports
    `simulators`), on the controller's loop, through a `SimulatorFactory`."""

    @property
    def name(self) -> str: ...

    @property
    def address(self) -> str: ...

    @property
    def scanner_backend(self) -> Any: ...

    @property
    def closed(self) -> bool: ...

    def client(self) -> FtmsClient:
        """A new, unconnected client for this simulator."""
        ...

    def set_trace_origin(self, loop_time: float) -> None: ...

    def close(self) -> None: ...


type SimulatorFactory = Callable[[], SimulatedDevice]
