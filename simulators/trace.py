"""The ground-truth trace: what the simulated machine physically did, as JSON lines."""

from __future__ import annotations

import contextlib
import json
import os
from typing import IO, Any

type TraceTarget = str | os.PathLike[str] | IO[str]


class TraceWriter:
    """Writes one JSON object per line to a file (opened here, line buffered) or a text stream.

    Line formats (`t`: seconds since the trace origin, see VirtualTreadmill.set_trace_origin):

        {"t": 12.3, "belt_kmh": 1.4, "incline_pct": 0.0, "running": true}
        {"t": 12.35, "mono": 81234.567, "write": "0214", "result": "800201"}
        {"t": 12.36, "mono": 81234.578, "write": "0701", "result": null, "att_error": 254}
        {"t": 40.0, "final": true, "belt_kmh": 0.0, "incline_pct": 0.0, "running": false}

    Every line is flushed as it is written, so a killed process leaves a usable file (at worst
    without its final line). Write errors after opening are swallowed: a full disk must not
    break the simulated treadmill (the trace is a witness, not a participant).
    """

    def __init__(self, target: TraceTarget) -> None:
        if isinstance(target, (str, os.PathLike)):
            try:
                self._stream: IO[str] = open(target, "w", buffering=1, encoding="utf-8")  # noqa: SIM115
            except OSError as exc:
                reason = exc.strerror or type(exc).__name__
                message = f"can't write the simulator trace {os.fspath(target)}: {reason}"
                raise ValueError(message) from exc
            self._owned = True
        else:
            self._stream = target
            self._owned = False
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def state(self, t: float, belt_kmh: float, incline_pct: float, running: bool) -> None:
        """A sample of the physical state (the belt, the deck, the motor's run state)."""
        self._line({"t": round(t, 3), **_physics(belt_kmh, incline_pct, running)})

    def write(self, t: float, mono: float, data: bytes, result: bytes | None,
              att_error: int | None = None) -> None:
        """A control-point write the device received, and the indication it answers with."""
        line: dict[str, Any] = {
            "t": round(t, 3),
            "mono": round(mono, 6),
            "write": data.hex(),
            "result": None if result is None else result.hex(),
        }
        if att_error is not None:
            line["att_error"] = att_error
        self._line(line)

    def final(self, t: float, belt_kmh: float, incline_pct: float, running: bool) -> None:
        """The last line, at power-off; the writer is closed afterwards."""
        self._line({"t": round(t, 3), "final": True, **_physics(belt_kmh, incline_pct, running)})
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._owned:
            with contextlib.suppress(OSError):
                self._stream.close()

    def _line(self, obj: dict[str, Any]) -> None:
        if self._closed:
            return
        try:
            self._stream.write(json.dumps(obj) + "\n")
            self._stream.flush()
        except (OSError, ValueError):  # ValueError: someone closed a stream we were given
            pass


def _physics(belt_kmh: float, incline_pct: float, running: bool) -> dict[str, Any]:
    # + 0.0 turns a -0.0 from rounding a tiny negative into 0.0
    return {
        "belt_kmh": round(belt_kmh, 3) + 0.0,
        "incline_pct": round(incline_pct, 2) + 0.0,
        "running": running,
    }
