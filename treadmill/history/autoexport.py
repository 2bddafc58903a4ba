"""`[export] auto = ["fit"]`: every finished session also written as files into a folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from treadmill.config import ConfigError, data_dir
from treadmill.history.export import FORMATS, default_filename, export
from treadmill.history.model import Recording


@dataclass(frozen=True)
class AutoExport:
    formats: tuple[str, ...]
    folder: Path


def auto_export_from_config(raw: dict[str, Any], path: Path) -> AutoExport | None:
    """The [export] table (keys `auto`, a list of formats, and `folder`); None when off."""

    def bad(what: str) -> ConfigError:
        return ConfigError(f"config file {path}: [export] {what}: fix it")

    unknown = set(raw) - {"auto", "folder"}
    if unknown:
        raise bad(f"unknown keys {sorted(unknown)} (known: auto, folder)")
    auto = raw.get("auto", [])
    if not isinstance(auto, list) or not all(isinstance(f, str) for f in auto):
        raise bad('auto must be a list of formats, e.g. auto = ["fit"]')
    wrong = [f for f in auto if f not in FORMATS]
    if wrong:
        raise bad(f"unknown format(s) {wrong} (choose from {', '.join(FORMATS)})")
    if not auto:
        return None
    folder_raw = raw.get("folder")
    if folder_raw is None:
        folder = data_dir() / "exports"
    elif isinstance(folder_raw, str) and folder_raw.strip():
        folder = Path(folder_raw).expanduser()
        if not folder.is_absolute():
            folder = path.parent / folder  # relative to the config file, like other paths
    else:
        raise bad("folder must be a path in quotes")
    return AutoExport(tuple(dict.fromkeys(auto)), folder)


def write_exports(recording: Recording, settings: AutoExport) -> list[Path]:
    """Write the files (never over an existing one: a -2, -3 ... suffix instead). Raises
    OSError or ValueError (no samples) for the caller to say in one line."""
    settings.folder.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in settings.formats:
        data = export(recording, fmt)
        name = Path(default_filename(recording.summary, fmt))
        target = settings.folder / name
        n = 2
        while True:
            try:
                with open(target, "xb") as f:
                    f.write(data)
                break
            except FileExistsError:
                target = settings.folder / f"{name.stem}-{n}{name.suffix}"
                n += 1
        written.append(target)
    return written
