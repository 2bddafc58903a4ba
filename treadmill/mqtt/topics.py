"""Our MQTT topic names and the device id they are built from."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from treadmill.mqtt.settings import MqttSettings

# Home Assistant accepts only these in a discovery topic's object id (and they are safe in
# entity ids and unique ids too).
_DISCOVERY_ID = re.compile(r"^[a-zA-Z0-9_-]+$")

AVAILABLE = "online"
NOT_AVAILABLE = "offline"


def device_id(address: str) -> str:
    """A stable id for a treadmill: "treadmill_" and the address's letters and digits, in
    lower case (a MAC "AA:BB:..." or a macOS UUID), so the same treadmill is the same Home
    Assistant device on every run."""
    cleaned = address.strip()
    if not cleaned:
        raise ValueError("a treadmill needs an address to get a device id")
    alnum = "".join(c for c in cleaned.lower() if c.isascii() and c.isalnum())
    if not alnum:
        # Nothing usable in it (an odd backend's name): a hash is stable all the same.
        alnum = hashlib.sha256(cleaned.encode("utf-8")).hexdigest()[:12]
    return f"treadmill_{alnum}"


@dataclass(frozen=True)
class Topics:
    base: str  # settings.base_topic or f"treadmill/{device_id}"
    availability: str  # "online" / "offline" (retained; the last will says "offline")
    state: str  # one JSON object (retained): the dashboard
    command: str  # "STOP" / "PAUSE" (Home Assistant's buttons)
    discovery: str  # f"{prefix}/device/{device_id}/config"
    birth: str  # f"{prefix}/status": Home Assistant says "online" here when it (re)starts


def topics_for(settings: MqttSettings, device_id: str) -> Topics:
    if not _DISCOVERY_ID.match(device_id):
        raise ValueError(f"{device_id!r} can't be a Home Assistant device id: use device_id()")
    base = settings.base_topic or f"treadmill/{device_id}"
    prefix = settings.discovery_prefix
    return Topics(
        base=base,
        availability=f"{base}/availability",
        state=f"{base}/state",
        command=f"{base}/command",
        discovery=f"{prefix}/device/{device_id}/config",
        birth=f"{prefix}/status",
    )
