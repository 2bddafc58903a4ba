"""Real treadmill captures (../shared/ftms-captures.json, DESIGN §7) decode to exactly their
documented values, quirks and all, and pass through the client's notification path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from safety import StatusKind
from treadmill import ftms
from treadmill.client import FtmsClient
from treadmill.events import StatusEvent, TelemetrySample

CAPTURES_FILE = Path(__file__).parents[2] / "shared" / "ftms-captures.json"
CAPTURES: list[dict] = json.loads(CAPTURES_FILE.read_text()) if CAPTURES_FILE.exists() else []

pytestmark = pytest.mark.skipif(
    not CAPTURES, reason=f"no captures: {CAPTURES_FILE} is absent (it lives next to DESIGN.md)"
)


def captures(uuid: str) -> list[dict]:
    return [c for c in CAPTURES if c["uuid"] == uuid]


def capture_id(capture: dict) -> str:
    return f"{capture['uuid']}-{capture['hex']}"


def raw(capture: dict) -> bytes:
    return bytes.fromhex(capture["hex"])


def test_every_capture_has_a_decoder():
    assert {c["uuid"] for c in CAPTURES} <= {"2acd", "2acc", "2ad4", "2ad5", "2ad9", "2ada"}
    assert all("expected" in c for c in CAPTURES)


@pytest.mark.parametrize("capture", captures("2acd"), ids=capture_id)
def test_treadmill_data(capture):
    expected = dict(capture["expected"])
    malformed = expected.pop("malformed", False)
    sentinels = set(capture.get("sentinels", ()))
    data = ftms.decode_treadmill_data(raw(capture))
    # Exactly the expected values, nothing more: n/a markers become None.
    assert data.values() == {k: v for k, v in expected.items() if k not in sentinels}
    assert data.not_available == sentinels
    for name in sentinels:
        assert getattr(data, name) is None
    assert data.malformed is malformed
    assert bool(data.trailing) is malformed


@pytest.mark.parametrize("capture", captures("2acc"), ids=capture_id)
def test_features(capture):
    features = ftms.decode_features(raw(capture))
    assert features.machine == capture["expected"]["machine_features"]
    assert features.target == capture["expected"]["target_features"]
    assert not features.malformed


@pytest.mark.parametrize("capture", captures("2ad4"), ids=capture_id)
def test_speed_range(capture):
    e = capture["expected"]
    assert ftms.decode_speed_range(raw(capture)) == ftms.Range(e["min"], e["max"], e["step"])


@pytest.mark.parametrize("capture", captures("2ad5"), ids=capture_id)
def test_inclination_range(capture):
    e = capture["expected"]
    assert ftms.decode_inclination_range(raw(capture)) == ftms.Range(e["min"], e["max"], e["step"])


@pytest.mark.parametrize("capture", captures("2ad9"), ids=capture_id)
def test_control_point_response(capture):
    response = ftms.decode_control_response(raw(capture))
    assert response is not None
    assert response.request_op == capture["expected"]["op"]
    assert response.result == capture["expected"]["result"]
    assert response.malformed is capture["expected"].get("malformed", False)


@pytest.mark.parametrize("capture", captures("2ada"), ids=capture_id)
def test_machine_status(capture):
    e = capture["expected"]
    status = ftms.decode_machine_status(raw(capture))
    assert status.op == e["code"]
    assert status.value == e.get("control_info")
    assert status.malformed is e.get("malformed", False)
    assert status.raw == raw(capture)


# Machine Status codes (and 0x02's parameter) as DESIGN §3 names them.
STATUS_KINDS = {
    (0x01, None): StatusKind.RESET,
    (0x02, 1): StatusKind.STOPPED_BY_USER,
    (0x02, 2): StatusKind.PAUSED_BY_USER,
    (0x03, None): StatusKind.SAFETY_KEY,
    (0x04, None): StatusKind.STARTED_BY_USER,
    (0xFF, None): StatusKind.CONTROL_LOST,
}


async def test_captures_through_the_client_notification_path():
    """The client's own notification callbacks (called as bleak calls them) turn every notified
    capture into an event and count the malformed ones; nothing raises."""
    client = FtmsClient("F2:0D:FF:FF:FF:01")
    callbacks = {
        "2acd": client._on_treadmill_data,
        "2ada": client._on_machine_status,
        "2ad9": client._on_control_point,  # no procedure pending: logged, no event
    }
    for capture in CAPTURES:
        if capture["uuid"] in callbacks:
            callbacks[capture["uuid"]](None, bytearray(raw(capture)))
    stream = client.events()
    events = [await anext(stream) for _ in captures("2acd") + captures("2ada")]

    telemetry = [e for e in events if isinstance(e, TelemetrySample)]
    statuses = [e for e in events if isinstance(e, StatusEvent)]
    assert len(telemetry) == len(captures("2acd"))
    for sample, capture in zip(telemetry, captures("2acd"), strict=True):
        assert sample.raw == ftms.decode_treadmill_data(raw(capture))
        assert sample.speed_kmh == capture["expected"]["speed_kmh"]
        hr = capture["expected"].get("heart_rate_bpm")
        assert sample.heart_rate_bpm == (hr or None)  # 0 = no contact (Kettler)
    expected_statuses = []
    for capture in captures("2ada"):
        code, info = capture["expected"]["code"], capture["expected"].get("control_info")
        expected_statuses.append((STATUS_KINDS.get((code, info), StatusKind.UNKNOWN), code, info))
    assert [(s.kind, s.code, s.value) for s in statuses] == expected_statuses
    malformed = [c for c in captures("2acd") + captures("2ada") if c["expected"].get("malformed")]
    assert client.malformed_packets == len(malformed)
    assert client.notifications == len(captures("2acd"))
