"""Which real treadmill a command talks to: the address given, or the paired default.

(The choice between a real and a simulated machine is the composition root's:
treadmill/wiring.py.)"""

from __future__ import annotations

from treadmill.client import FtmsClient
from treadmill.config import Config, normalize_address
from treadmill.errors import TreadmillError


class NoDeviceChosen(TreadmillError):
    pass


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


def open_real_client(device: str | None, config: Config) -> FtmsClient:
    """An unconnected client for a real treadmill (by address, or the paired default)."""
    return FtmsClient(resolve_address(device, config))
