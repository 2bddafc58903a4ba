"""The composition root's choices: a real or a simulated treadmill, and the event loop to run on.

Only this module and the CLI import `simulators` (DESIGN §2): product code gets what it needs
as parameters, a client factory and a simulator handle for the TUI, a loop factory for
--speedup, and never learns which kind of machine it drives.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from treadmill.client import FtmsClient
from treadmill.config import Config, ConfigError
from treadmill.connection import open_real_client
from treadmill.errors import TreadmillError

if TYPE_CHECKING:
    from simulators import VirtualTreadmill

# `simulators` is imported where it is used, so commands on a real treadmill don't pay for
# loading it at start-up.

# The TUI's simulator always gets this address, so screens (and their snapshots) look the same
# on every run. 0xF2...: a random static address, never a real device's public one.
SIM_ADDRESS = "F2:5E:55:10:4E:01"

type LoopFactory = Callable[[], asyncio.AbstractEventLoop]


@dataclass(frozen=True)
class SimulatorOptions:
    profile: str = "home"
    faults: tuple[str, ...] = ()
    notify_hz: float | None = None
    trace: str | None = None  # --sim-trace FILE: the simulated machine's ground truth (JSON lines)
    transport: str = "gatt"  # --sim-transport: "att" serves it over a simulated LE link (Bumble)
    mtu: int = 23  # --sim-mtu: the largest ATT MTU the simulated treadmill accepts (att only)
    connection_interval_ms: float | None = None  # --sim-connection-interval (att only)
    encrypted_control_point: bool = False  # --sim-encrypted-control-point


def check_simulator_options(options: SimulatorOptions) -> None:
    """Bad profile or fault names raise TreadmillError, without building (or tracing) a machine."""
    from simulators import get_profile, parse_fault

    try:
        get_profile(options.profile)
        for text in options.faults:
            parse_fault(text)
    except ValueError as exc:
        raise TreadmillError(str(exc)) from exc


def make_simulator(options: SimulatorOptions, address: str | None = None) -> VirtualTreadmill:
    """A virtual treadmill from CLI-style options; bad names raise TreadmillError."""
    from simulators import VirtualTreadmill, parse_fault

    try:
        faults = [parse_fault(text) for text in options.faults]
        return VirtualTreadmill(options.profile, faults=faults, notify_hz=options.notify_hz,
                                address=address, trace=options.trace,
                                transport=options.transport,  # type: ignore[arg-type]
                                mtu=options.mtu,
                                connection_interval_ms=options.connection_interval_ms,
                                encrypted_control_point=options.encrypted_control_point)
    except (ValueError, RuntimeError) as exc:  # RuntimeError: no Bumble for --sim-transport att
        raise TreadmillError(str(exc)) from exc


class SimulatedTreadmill:
    """The built-in simulator as a front end sees it: a name and an address to show, a scanner
    backend to find it with, fresh clients to drive it, `close()` and `set_trace_origin()`.
    Satisfies `tui.targets.SimulatedDevice`; `machine` is the VirtualTreadmill (tests, tools)."""

    def __init__(self, machine: VirtualTreadmill) -> None:
        self.machine = machine

    @property
    def name(self) -> str:
        return self.machine.name

    @property
    def address(self) -> str:
        return self.machine.address

    @property
    def scanner_backend(self) -> Any:
        return self.machine.scanner_backend

    @property
    def closed(self) -> bool:
        return self.machine.closed

    def client(self) -> FtmsClient:
        return FtmsClient(self.machine.ble_device, backend=self.machine.client_backend)

    def set_trace_origin(self, loop_time: float) -> None:
        self.machine.set_trace_origin(loop_time)

    def close(self) -> None:
        self.machine.close()


def simulator_factory(options: SimulatorOptions,
                      address: str = SIM_ADDRESS) -> Callable[[], SimulatedTreadmill]:
    """What the TUI calls (on the loop the treadmill is driven from) to power the simulator on.
    The options are checked here, before any terminal is taken over."""
    check_simulator_options(options)
    return lambda: SimulatedTreadmill(make_simulator(options, address))


def loop_factory(speedup: float | None) -> LoopFactory | None:
    """None for the wall clock; else a simulated clock `speedup` times faster (None: as fast
    as the CPU allows, which only headless commands use)."""
    if speedup == 1.0:
        return None
    from simulators.virtual_time import VirtualTimeLoop

    return lambda: VirtualTimeLoop(speedup)


def open_client(
    *,
    simulate: bool,
    device: str | None,
    config: Config,
    sim_options: SimulatorOptions | None = None,
) -> tuple[FtmsClient, VirtualTreadmill | None]:
    """An unconnected client for the chosen treadmill, and the simulator behind it if any."""
    if simulate:
        if device:
            raise ConfigError("--device and --simulate can't be used together: pick one")
        sim = make_simulator(sim_options or SimulatorOptions())
        return FtmsClient(sim.ble_device, backend=sim.client_backend), sim
    return open_real_client(device, config), None
