"""Which treadmill a command talks to: a real one by address, or the built-in simulator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from treadmill.client import FtmsClient
from treadmill.config import Config, ConfigError, normalize_address
from treadmill.errors import TreadmillError

if TYPE_CHECKING:
    from simulators import VirtualTreadmill


class NoDeviceChosen(TreadmillError):
    pass


@dataclass(frozen=True)
class SimulatorOptions:
    profile: str = "home"
    faults: tuple[str, ...] = ()
    notify_hz: float | None = None
    trace: str | None = None  # --sim-trace FILE: the simulated machine's ground truth (JSON lines)


def make_simulator(options: SimulatorOptions, address: str | None = None) -> VirtualTreadmill:
    """A virtual treadmill from CLI-style options; bad names raise TreadmillError."""
    from simulators import VirtualTreadmill, parse_fault

    try:
        faults = [parse_fault(text) for text in options.faults]
        return VirtualTreadmill(options.profile, faults=faults, notify_hz=options.notify_hz,
                                address=address, trace=options.trace)
    except ValueError as exc:
        raise TreadmillError(str(exc)) from exc


def resolve_address(device: str | None, config: Config) -> str:
    """The address to use: the one given, else the default paired device."""
    if device:
        return normalize_address(device)
    if config.default_device:
        return config.default_device
    raise NoDeviceChosen(
        "no treadmill chosen: pass --device ADDRESS, pair one with `treadmill pair ADDRESS` "
        "(find it with `treadmill scan`), or try the simulator with --simulate"
    )


def open_client(
    *,
    simulate: bool,
    device: str | None,
    config: Config,
    sim_options: SimulatorOptions = SimulatorOptions(),
) -> tuple[FtmsClient, VirtualTreadmill | None]:
    """An unconnected client for the chosen treadmill, and the simulator behind it if any."""
    if simulate:
        if device:
            raise ConfigError("--device and --simulate can't be used together: pick one")
        sim = make_simulator(sim_options)
        return FtmsClient(sim.ble_device, backend=sim.client_backend), sim
    return FtmsClient(resolve_address(device, config)), None

