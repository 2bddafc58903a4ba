"""What a remote may say on the command topic (Stop or Pause, fresh, not retained), as requests.

This is the first screen; the governor's Remote rule (safety/rules/remote.py) is the one that
counts: whatever gets through here still reaches the belt only as a remote-sourced request,
and the governor refuses anything from a remote but stop and pause, or older than 2 s.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Final

from safety.rules.remote import REMOTE_MAX_AGE_S
from safety.types import EmergencyStop, Pause, Request, Source
from treadmill.mqtt.topics import Topics

KINDS: Final = frozenset({"stop", "pause"})
# Longer than any command we accept, by far: anything bigger is not worth decoding.
MAX_PAYLOAD_BYTES: Final = 256
ONLY: Final = "only STOP and PAUSE are accepted"
JSON_FORM: Final = '{"command": "stop", "ts": UNIX_SECONDS}'


@dataclass(frozen=True)
class RemoteCommand:
    kind: str  # "stop" | "pause"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"a remote command is 'stop' or 'pause', not {self.kind!r}")


@dataclass(frozen=True)
class RemoteRefusal:
    reason: str  # one line, logged by the bridge


def parse_command(
    topic: str, payload: bytes, *, retained: bool, topics: Topics, now_unix: float
) -> RemoteCommand | RemoteRefusal:
    """A message from the broker as a command, or why it is refused. Never raises."""
    try:
        return _parse(topic, payload, retained=retained, topics=topics, now_unix=now_unix)
    except Exception as exc:  # a remote must never be able to break the bridge
        return RemoteRefusal(f"unreadable command ignored ({type(exc).__name__}): {ONLY}")


def to_request(command: RemoteCommand, t: float) -> Request:
    """The governor request for a command that arrived at governor time `t`.

    The dashboard's Stop is the SPACE key: an emergency stop that ends the session (a remote
    can't start it again, so a ramped stop that leaves it open would gain nothing)."""
    if command.kind == "stop":
        return EmergencyStop(t, source=Source.REMOTE)
    if command.kind == "pause":
        return Pause(t, source=Source.REMOTE)
    raise ValueError(f"a remote command is 'stop' or 'pause', not {command.kind!r}")


def _parse(
    topic: str, payload: bytes, *, retained: bool, topics: Topics, now_unix: float
) -> RemoteCommand | RemoteRefusal:
    if topic != topics.command:
        return RemoteRefusal(
            f"message on {_show(topic)} ignored: commands go to {topics.command}, and {ONLY}"
        )
    if retained:
        # It was stored on the broker earlier; nobody pressed anything now.
        return RemoteRefusal(
            f"retained command on {topic} ignored (it was waiting on the broker, not pressed "
            f"now): clear it with `mosquitto_pub -r -n -t '{topic}'`; {ONLY}, never retained"
        )
    if not isinstance(payload, bytes | bytearray | memoryview):
        return RemoteRefusal(f"command of type {type(payload).__name__} ignored: {ONLY}")
    raw = bytes(payload)
    if len(raw) > MAX_PAYLOAD_BYTES:
        return RemoteRefusal(f"command of {len(raw)} bytes ignored: {ONLY}")
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        return RemoteRefusal(f"binary command ignored: {ONLY}")
    if not text:
        return RemoteRefusal(f"empty command ignored: {ONLY}")
    if text.startswith("{"):
        return _parse_json(text, now_unix)
    return _kind(text)


def _kind(word: str) -> RemoteCommand | RemoteRefusal:
    kind = word.strip().lower()
    if kind in KINDS:
        return RemoteCommand(kind)
    return RemoteRefusal(
        f"command {_show(word)} ignored: {ONLY} (a remote can never start, resume or speed up "
        "the belt)"
    )


def _parse_json(text: str, now_unix: float) -> RemoteCommand | RemoteRefusal:
    try:
        data = json.loads(text)
    except ValueError:
        return RemoteRefusal(f"command is not valid JSON: send STOP, PAUSE or {JSON_FORM}")
    if not isinstance(data, dict):
        return RemoteRefusal(f"command is not a JSON object: send STOP, PAUSE or {JSON_FORM}")
    unknown = sorted(set(data) - {"command", "ts"})
    if unknown:
        return RemoteRefusal(
            f"command with unknown keys {_show(', '.join(unknown))} ignored: send {JSON_FORM}; "
            f"{ONLY}"
        )
    command = data.get("command")
    if not isinstance(command, str):
        return RemoteRefusal(f"command without a \"command\" string ignored: send {JSON_FORM}")
    parsed = _kind(command)
    if isinstance(parsed, RemoteRefusal) or "ts" not in data:
        return parsed  # without ts it counts from its arrival, like a plain STOP
    ts = data["ts"]
    if isinstance(ts, bool) or not isinstance(ts, int | float):
        return RemoteRefusal(f"command ts {_show(str(ts))} ignored: ts is Unix time in seconds")
    try:
        age = float(now_unix) - float(ts)
    except OverflowError:
        age = math.inf
    if not math.isfinite(age):
        return RemoteRefusal("command with an unusable ts ignored: ts is Unix time in seconds")
    if age > REMOTE_MAX_AGE_S:
        return RemoteRefusal(
            f"stale command ({_seconds(age)} old) ignored: the situation it was meant for has "
            f"passed; send it again with the current time in ts"
        )
    if -age > REMOTE_MAX_AGE_S:
        return RemoteRefusal(
            f"command from {_seconds(-age)} in the future ignored: check the sender's clock "
            "(ts is Unix time in seconds, not milliseconds)"
        )
    return parsed


def _show(text: str, limit: int = 40) -> str:
    """A remote's text, quoted on one line and short: logs are not theirs to fill."""
    return repr(text[:limit]) + ("…" if len(text) > limit else "")


def _seconds(value: float) -> str:
    # A ts that is far off (milliseconds, garbage) stays short: 1.76e+12 s, not 13 digits.
    return f"{value:.1f} s" if value < 1e6 else f"{value:.3g} s"
