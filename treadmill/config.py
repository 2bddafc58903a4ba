"""The user's config file: remembered (paired) treadmills and stricter safety settings, as TOML.

Lives in `platformdirs.user_config_dir("treadmill")` (override: TREADMILL_CONFIG_DIR). Writes are
atomic, and a file we can't parse is never overwritten: the user's data is not ours to lose.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import platformdirs
import tomli_w

from treadmill.errors import TreadmillError

APP_NAME = "treadmill"

_MAC = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")
# CoreBluetooth identifies peripherals by a per-host UUID instead of a MAC address.
_UUID = re.compile(r"^[0-9A-Fa-f]{8}(-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}$")


class ConfigError(TreadmillError):
    """The config file can't be read or holds something invalid."""


def config_dir() -> Path:
    override = os.environ.get("TREADMILL_CONFIG_DIR")
    return Path(override) if override else Path(platformdirs.user_config_dir(APP_NAME))


def data_dir() -> Path:
    override = os.environ.get("TREADMILL_DATA_DIR")
    return Path(override) if override else Path(platformdirs.user_data_dir(APP_NAME))


def config_path() -> Path:
    return config_dir() / "config.toml"


def normalize_address(address: str) -> str:
    """A Bluetooth address as stored and compared; raises ConfigError for a malformed one."""
    cleaned = address.strip()
    if _MAC.match(cleaned):
        return cleaned.upper()
    if _UUID.match(cleaned):
        return cleaned.upper()
    raise ConfigError(
        f"'{address}' is not a Bluetooth address (expected AA:BB:CC:DD:EE:FF, or a device "
        "UUID on macOS): run `treadmill scan` to see the addresses in range"
    )


@dataclass
class PairedDevice:
    address: str
    name: str = ""
    model: str = ""
    paired_at: str = ""


@dataclass
class Config:
    devices: list[PairedDevice] = field(default_factory=list)
    default_device: str | None = None
    # Stricter safety settings, validated by the safety package when a session starts.
    safety: dict[str, Any] = field(default_factory=dict)

    def find(self, address: str) -> PairedDevice | None:
        wanted = normalize_address(address)
        return next((d for d in self.devices if d.address == wanted), None)

    def remember(self, device: PairedDevice) -> None:
        device.address = normalize_address(device.address)
        device.paired_at = device.paired_at or datetime.now(UTC).isoformat(timespec="seconds")
        self.devices = [d for d in self.devices if d.address != device.address] + [device]
        if self.default_device is None:
            self.default_device = device.address

    def forget(self, address: str) -> bool:
        wanted = normalize_address(address)
        before = len(self.devices)
        self.devices = [d for d in self.devices if d.address != wanted]
        if self.default_device == wanted:
            self.default_device = self.devices[-1].address if self.devices else None
        return len(self.devices) != before


def load_config(path: Path | None = None) -> Config:
    """The config at `path` (default location if None); an empty Config if there is none."""
    path = path or config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Config()
    except OSError as exc:
        raise ConfigError(f"can't read config file {path}: {exc.strerror}") from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"config file {path} is not valid TOML ({exc}): fix it, or move it away to start fresh"
        ) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text: fix or move it away") from exc
    return _from_dict(raw, path)


def _from_dict(raw: dict[str, Any], path: Path) -> Config:
    def bad(what: str) -> ConfigError:
        return ConfigError(f"config file {path}: {what}: fix it, or move it away to start fresh")

    devices_raw = raw.get("devices", [])
    if not isinstance(devices_raw, list):
        raise bad("'devices' must be a list of [[devices]] tables")
    devices = []
    for i, entry in enumerate(devices_raw, start=1):
        if not isinstance(entry, dict) or not isinstance(entry.get("address"), str):
            raise bad(f"device {i} needs an 'address' string")
        unknown = set(entry) - {"address", "name", "model", "paired_at"}
        if unknown:
            raise bad(f"device {i} has unknown keys {sorted(unknown)}")
        try:
            address = normalize_address(entry["address"])
        except ConfigError as exc:
            raise bad(f"device {i}: {exc}") from exc
        devices.append(
            PairedDevice(
                address=address,
                name=str(entry.get("name", "")),
                model=str(entry.get("model", "")),
                paired_at=str(entry.get("paired_at", "")),
            )
        )
    default = raw.get("default_device")
    if default is not None and not isinstance(default, str):
        raise bad("'default_device' must be an address string")
    safety = raw.get("safety", {})
    if not isinstance(safety, dict):
        raise bad("[safety] must be a table")
    unknown_top = set(raw) - {"devices", "default_device", "safety"}
    if unknown_top:
        raise bad(f"unknown keys {sorted(unknown_top)}")
    return Config(
        devices=devices,
        default_device=normalize_address(default) if default else None,
        safety=safety,
    )


def save_config(config: Config, path: Path | None = None) -> Path:
    """Write atomically. Refuses to replace a file that exists but can't be parsed."""
    path = path or config_path()
    if path.exists():
        load_config(path)  # raises ConfigError rather than overwrite what we can't read
    data: dict[str, Any] = {"devices": [asdict(d) for d in config.devices]}
    if config.default_device:
        data["default_device"] = config.default_device
    if config.safety:
        data["safety"] = config.safety
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text(tomli_w.dumps(data), encoding="utf-8")
    os.replace(tmp, path)
    return path
