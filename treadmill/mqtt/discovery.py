"""The Home Assistant discovery message: one device, its sensors and its two buttons.

Device-based discovery (HA 2024.11+): one retained payload on `<prefix>/device/<id>/config`
with the device (`dev`), the origin (`o`, required by HA for this form) and the components
(`cmps`, each with its platform `p`). HA copies the shared options (state topic, availability)
from the top level into every component; `qos` is not shared, so each component has its own.

Every sensor reads the one state topic (dashboard.py writes it). Templates use
`value_json.get(key)`: a missing key or a JSON null renders as "None", which HA shows as
unknown (never as 0). Only two things are controllable, Stop and Pause, both buttons on the
command topic: no number, switch or select, because a remote may only stop or pause (DESIGN §5).
"""

from __future__ import annotations

from typing import Any, Final

from treadmill.mqtt.topics import AVAILABLE, NOT_AVAILABLE, Topics

ORIGIN_NAME: Final = "backward-treadmill"
QOS: Final = 1

FACING_OPTIONS: Final = ("forward", "backward", "turning")
SESSION_STATES: Final = ("idle", "running", "paused", "turning", "stopping", "ended")
STOP_PAYLOAD: Final = "STOP"
PAUSE_PAYLOAD: Final = "PAUSE"


def _template(key: str) -> str:
    return "{{ value_json.get('" + key + "') }}"


# (key, name, state key, options). The key is the component's object id and the tail of
# its unique id, so it must never change once published (HA would see a new entity).
_SENSORS: Final[tuple[tuple[str, str, str, dict[str, Any]], ...]] = (
    ("speed", "Speed", "speed_kmh", {
        "unit_of_measurement": "km/h", "device_class": "speed", "state_class": "measurement",
        "suggested_display_precision": 1}),
    ("incline", "Incline", "incline_pct", {
        "unit_of_measurement": "%", "state_class": "measurement", "icon": "mdi:angle-acute",
        "suggested_display_precision": 1}),
    ("distance", "Distance", "distance_m", {
        "unit_of_measurement": "m", "device_class": "distance",
        "state_class": "total_increasing"}),
    ("elapsed", "Elapsed time", "elapsed_s", {
        "unit_of_measurement": "s", "device_class": "duration"}),
    ("remaining", "Remaining time", "remaining_s", {
        "unit_of_measurement": "s", "device_class": "duration", "icon": "mdi:timer-sand"}),
    ("heart_rate", "Heart rate", "heart_rate_bpm", {
        "unit_of_measurement": "bpm", "state_class": "measurement", "icon": "mdi:heart-pulse"}),
    ("facing", "Facing", "facing", {
        "device_class": "enum", "options": FACING_OPTIONS, "icon": "mdi:swap-horizontal"}),
    ("session_state", "Session state", "session_state", {
        "device_class": "enum", "options": SESSION_STATES, "icon": "mdi:walk"}),
    ("program", "Program", "program", {"icon": "mdi:playlist-play"}),
    ("step", "Step", "step", {"icon": "mdi:format-list-numbered"}),
    ("safety", "Safety", "safety", {"icon": "mdi:shield-check"}),
    ("last_alarm", "Last alarm", "last_alarm", {"icon": "mdi:alert"}),
    ("backward_min", "Backward minutes", "backward_min", {
        "unit_of_measurement": "min", "device_class": "duration",
        "suggested_display_precision": 1}),
)  # fmt: skip

_BUTTONS: Final = (
    ("stop", "Stop", STOP_PAYLOAD, "mdi:stop"),
    ("pause", "Pause", PAUSE_PAYLOAD, "mdi:pause"),
)


def discovery_payload(device_id: str, device_name: str, model: str, topics: Topics,
                      sw_version: str, *, manufacturer: str = "") -> dict[str, Any]:
    """The device discovery payload (JSON-ready). Empty model, manufacturer or version are
    left out rather than shown as blanks."""
    dev: dict[str, Any] = {"ids": [device_id], "name": device_name or device_id}
    if manufacturer:
        dev["mf"] = manufacturer
    if model:
        dev["mdl"] = model
    if sw_version:
        dev["sw"] = sw_version
    origin: dict[str, Any] = {"name": ORIGIN_NAME}
    if sw_version:
        origin["sw"] = sw_version
    components: dict[str, dict[str, Any]] = {}
    for key, name, state_key, extra in _SENSORS:
        components[key] = {
            "p": "sensor",
            "unique_id": f"{device_id}_{key}",
            "name": name,
            "value_template": _template(state_key),
            "qos": QOS,
            # Fresh lists: a caller may change its payload without changing the next one.
            **{k: list(v) if isinstance(v, tuple) else v for k, v in extra.items()},
        }
    components["link"] = {
        "p": "binary_sensor",
        "unique_id": f"{device_id}_link",
        "name": "Bluetooth link",
        "device_class": "connectivity",
        "value_template": _template("link"),
        "payload_on": "ON",
        "payload_off": "OFF",
        "qos": QOS,
    }
    for key, name, payload, icon in _BUTTONS:
        components[key] = {
            "p": "button",
            "unique_id": f"{device_id}_{key}",
            "name": name,
            "command_topic": topics.command,
            "payload_press": payload,
            # A retained press would wait on the broker and fire later; we refuse those anyway.
            "retain": False,
            "qos": QOS,
            "icon": icon,
        }
    return {
        "dev": dev,
        "o": origin,
        "cmps": components,
        "state_topic": topics.state,
        "availability_topic": topics.availability,
        "payload_available": AVAILABLE,
        "payload_not_available": NOT_AVAILABLE,
        "qos": QOS,
    }
