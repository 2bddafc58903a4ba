"""The user's config file: remembered (paired) treadmills and stricter safety settings, as TOML.

Lives in `platformdirs.user_config_dir("treadmill")` (override: TREADMILL_CONFIG_DIR). Writes are
atomic, and a file we can't parse is never overwritten: the user's data is not ours to lose.
Changes go through `edit_config()`, which holds an advisory lock from the read to the rename, so
several `treadmill pair` / `forget` processes at once each see the others' changes.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import tomllib
from collections.abc import Iterator
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
    # The [mqtt] table as written; treadmill/mqtt/settings.py checks it when a bridge starts.
    mqtt: dict[str, Any] = field(default_factory=dict)
    # The [export] table as written (auto = ["fit"], folder); treadmill/history/autoexport.py
    # checks it when a session starts.
    export: dict[str, Any] = field(default_factory=dict)

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
        data = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return Config()  # nothing there yet (a write then says what is wrong with the folder)
    except OSError as exc:
        raise ConfigError(
            f"can't read config file {path} ({exc.strerror or exc}): fix its permissions, "
            "or move it away to start fresh"
        ) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text: fix or move it away") from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"config file {path} is not valid TOML ({exc}): fix it, or move it away to start fresh"
        ) from exc
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
    mqtt = raw.get("mqtt", {})
    if not isinstance(mqtt, dict):
        raise bad("[mqtt] must be a table")
    export = raw.get("export", {})
    if not isinstance(export, dict):
        raise bad("[export] must be a table")
    unknown_top = set(raw) - {"devices", "default_device", "safety", "mqtt", "export"}
    if unknown_top:
        raise bad(f"unknown keys {sorted(unknown_top)}")
    return Config(
        devices=devices,
        default_device=normalize_address(default) if default else None,
        safety=safety,
        mqtt=mqtt,
        export=export,
    )


def save_config(config: Config, path: Path | None = None) -> Path:
    """Write atomically. Refuses to replace a file that exists but can't be parsed.
    To change what is there, use `edit_config()`: this alone would lose a concurrent change."""
    path = path or config_path()
    _make_dir(path)
    with _locked(path):
        load_config(path)  # raises ConfigError rather than overwrite what we can't read
        _write(config, path)
    return path


@contextlib.contextmanager
def edit_config(path: Path | None = None) -> Iterator[Config]:
    """Read, change and write the config as one step, under an advisory lock:

        with edit_config() as config:
            config.remember(device)

    Nothing is written if the block raises. A file that can't be parsed is never replaced."""
    path = path or config_path()
    _make_dir(path)
    with _locked(path):
        config = load_config(path)
        yield config
        _write(config, path)


def _write_error(path: Path, exc: OSError) -> ConfigError:
    folder = path.parent
    if isinstance(exc, PermissionError):
        return ConfigError(
            f"can't write the config file {path}: permission denied; make {folder} writable "
            "by you, or set TREADMILL_CONFIG_DIR to a folder you can write"
        )
    return ConfigError(
        f"can't write the config file {path} ({exc.strerror or exc}): check that {folder} is "
        "a folder with free space, or set TREADMILL_CONFIG_DIR to another folder"
    )


def _make_dir(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _write_error(path, exc) from exc


def _lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on a file next to the config (the config itself is replaced
    by rename, so a lock on it would guard the old inode). Blocks until the lock is free."""
    lock = _lock_path(path)
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise _write_error(lock, exc) from exc
    try:
        if sys.platform == "win32":
            import msvcrt

            # LK_LOCK retries for about 10 s, then raises OSError: good enough for a config file.
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_LOCK, 1)
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        # Closing the descriptor releases the lock (flock and msvcrt alike).
        os.close(fd)


def _serialize(config: Config) -> str:
    data: dict[str, Any] = {"devices": [asdict(d) for d in config.devices]}
    if config.default_device:
        data["default_device"] = config.default_device
    if config.safety:
        data["safety"] = config.safety
    if config.mqtt:
        data["mqtt"] = config.mqtt
    if config.export:
        data["export"] = config.export
    return tomli_w.dumps(data)


def _write(config: Config, path: Path) -> None:
    """Write to a temp file of our own in the same folder, fsync, rename over the config, fsync
    the folder: a crash leaves the old file or the new one, never half of either."""
    text = _serialize(config).encode("utf-8")
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        with contextlib.suppress(OSError):
            os.chmod(tmp, path.stat().st_mode & 0o777)  # keep the mode the user gave it
        os.replace(tmp, path)
        tmp = None
        _fsync_dir(path.parent)
    except OSError as exc:
        raise _write_error(path, exc) from exc
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _fsync_dir(folder: Path) -> None:
    if sys.platform == "win32":
        return  # directories can't be opened for fsync there; NTFS journals the rename
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
