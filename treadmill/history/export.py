"""Which export formats exist, and the one entry point (and file name) for each of them."""

from __future__ import annotations

import re

from treadmill.history.export_csv import started_at, to_csv
from treadmill.history.model import Recording, SessionSummary

FORMATS = ("fit", "tcx", "csv")


def _check(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r} (choose one of: {', '.join(FORMATS)})")
    return fmt


def export(recording: Recording, fmt: str) -> bytes:
    """The recording in format `fmt` ("fit", "tcx" or "csv"), as the bytes of a file.

    Raises ValueError (one line, fit to show) for an unknown format or a recording without
    samples: an activity file without data points is invalid, whichever the format.
    """
    # fit-tool and the TCX writer are imported when used: the CLI starts without them.
    match _check(fmt):
        case "fit":
            from treadmill.history.export_fit import to_fit

            return to_fit(recording)
        case "tcx":
            from treadmill.history.export_tcx import to_tcx

            return to_tcx(recording)
        case _:
            return to_csv(recording).encode("utf-8")


def default_filename(summary: SessionSummary, fmt: str) -> str:
    """"2026-12-01-1830-taster.fit": the start (UTC, as stored) and the program's name, made
    safe for any file system."""
    start = started_at(summary)
    program = re.sub(r"[^a-z0-9_-]+", "-", summary.program.lower()).strip("-") or "session"
    return f"{start:%Y-%m-%d-%H%M}-{program}.{_check(fmt)}"
