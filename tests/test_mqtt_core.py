"""The MQTT bridge's sans-IO core: settings, topics, discovery, dashboard, coalescing, commands."""

from __future__ import annotations

import itertools
import json
import math
import re
from collections import Counter
from pathlib import Path

import pytest

from safety import (
    ApprovedCommand,
    CommandAccepted,
    EmergencyStop,
    EndReason,
    Governor,
    GovernorState,
    MachineLimits,
    Orientation,
    Pause,
    PauseCmd,
    Refused,
    RequestControl,
    Source,
    Start,
    StartResume,
    StopCmd,
    Telemetry,
    Tick,
)
from treadmill import session_events as ev
from treadmill.config import Config, ConfigError, load_config, save_config
from treadmill.mqtt.commands import RemoteCommand, RemoteRefusal, parse_command, to_request
from treadmill.mqtt.dashboard import Coalescer, Dashboard
from treadmill.mqtt.discovery import FACING_OPTIONS, SESSION_STATES, discovery_payload
from treadmill.mqtt.settings import (
    MqttSettings,
    TlsSettings,
    parse_host_port,
    resolve,
    settings_from_config,
)
from treadmill.mqtt.topics import device_id, topics_for

MAC = "AA:BB:CC:DD:EE:FF"
DID = "treadmill_aabbccddeeff"
STATE_KEYS = {
    "speed_kmh", "incline_pct", "distance_m", "elapsed_s", "remaining_s", "heart_rate_bpm",
    "facing", "session_state", "program", "step", "safety", "last_alarm", "backward_min", "link",
}  # fmt: skip


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    """A config file path, with a CA, a client certificate and a key next to it."""
    for name in ("ca.pem", "client.pem", "client.key"):
        (tmp_path / name).write_text("-----BEGIN-----\n", encoding="utf-8")
    return tmp_path / "config.toml"


def one_line(message: str) -> str:
    assert "\n" not in message and "\r" not in message, message
    return message


# ------------------------------------------------------------------------------ settings


def test_a_host_is_enough(cfg):
    assert settings_from_config({"host": "broker.local"}, cfg) == MqttSettings("broker.local", 1883)


def test_no_table_or_disabled_means_no_bridge(cfg):
    assert settings_from_config({}, cfg) is None
    assert settings_from_config({"enabled": False, "host": "broker"}, cfg) is None
    assert settings_from_config({"enabled": True, "host": "broker"}, cfg) is not None


def test_every_key(cfg, tmp_path):
    (tmp_path / "pw").write_text("s3cret\n", encoding="utf-8")
    raw = {
        "host": "broker.local", "port": 8884, "username": "walker", "password_file": "pw",
        "tls": {"ca_file": "ca.pem", "cert_file": "client.pem", "key_file": "client.key"},
        "base_topic": "home/treadmill", "discovery_prefix": "ha", "enabled": True,
    }  # fmt: skip
    s = settings_from_config(raw, cfg)
    assert s == MqttSettings(
        "broker.local", 8884, "walker", "s3cret",
        TlsSettings(tmp_path / "ca.pem", tmp_path / "client.pem", tmp_path / "client.key"),
        "home/treadmill", "ha",
    )  # fmt: skip


def test_tls_changes_the_default_port(cfg):
    assert settings_from_config({"host": "b", "tls": True}, cfg) == MqttSettings(
        "b", 8883, tls=TlsSettings()
    )
    assert settings_from_config({"host": "b", "tls": {}}, cfg).port == 8883
    assert settings_from_config({"host": "b", "tls": False}, cfg) == MqttSettings("b", 1883)
    assert settings_from_config({"host": "b", "tls": True, "port": 1884}, cfg).port == 1884


def test_a_password_file_loses_one_final_newline_only(cfg, tmp_path):
    for text, password in (("pw\n", "pw"), ("pw\r\n", "pw"), ("pw", "pw"), (" pw \n", " pw ")):
        (tmp_path / "pw").write_text(text, encoding="utf-8", newline="")
        raw = {"host": "b", "username": "u", "password_file": str(tmp_path / "pw")}
        assert settings_from_config(raw, cfg).password == password


def test_the_password_is_never_shown(cfg):
    s = MqttSettings("broker", 1883, username="walker", password="hunter2")
    assert "hunter2" not in repr(s) and "hunter2" not in str(s)
    assert s.describe() == "mqtt://walker@broker:1883"
    assert MqttSettings("broker", 8883, tls=TlsSettings()).describe() == "mqtts://broker:8883"
    assert MqttSettings("::1", 1883).describe() == "mqtt://[::1]:1883"
    with pytest.raises(ConfigError) as info:
        settings_from_config({"host": "b", "username": "u", "password": 123456789}, cfg)
    assert "123456789" not in str(info.value)


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"host": "b", "colour": "red"}, "colour"),
        ({"port": 1883}, "host"),
        ({"host": 5}, "host"),
        ({"host": ""}, "host"),
        ({"host": "mqtt://broker"}, "host"),
        ({"host": "broker:1883"}, "host"),
        ({"host": "b", "port": 0}, "port"),
        ({"host": "b", "port": 65536}, "port"),
        ({"host": "b", "port": "1883"}, "port"),
        ({"host": "b", "port": True}, "port"),
        ({"host": "b", "port": 1883.0}, "port"),
        ({"host": "b", "enabled": "yes"}, "enabled"),
        ({"host": "b", "username": ""}, "username"),
        ({"host": "b", "password": "p"}, "password"),
        ({"host": "b", "username": "u", "password": "p", "password_file": "pw"}, "password"),
        ({"host": "b", "username": "u", "password_file": "missing"}, "password_file"),
        ({"host": "b", "username": "u", "password_file": 7}, "password_file"),
        ({"host": "b", "tls": "yes"}, "tls"),
        ({"host": "b", "tls": {"ca": "ca.pem"}}, "tls.ca"),
        ({"host": "b", "tls": {"ca_file": "nowhere.pem"}}, "tls.ca_file"),
        ({"host": "b", "tls": {"ca_file": 1}}, "tls.ca_file"),
        ({"host": "b", "tls": {"cert_file": "client.pem"}}, "tls.cert_file"),
        ({"host": "b", "tls": {"key_file": "client.key"}}, "tls.key_file"),
        ({"host": "b", "base_topic": "home/+/treadmill"}, "base_topic"),
        ({"host": "b", "base_topic": "home/#"}, "base_topic"),
        ({"host": "b", "base_topic": "home//treadmill"}, "base_topic"),
        ({"host": "b", "base_topic": "/home"}, "base_topic"),
        ({"host": "b", "base_topic": "home/"}, "base_topic"),
        ({"host": "b", "base_topic": ""}, "base_topic"),
        ({"host": "b", "base_topic": 3}, "base_topic"),
        ({"host": "b", "discovery_prefix": "ha/"}, "discovery_prefix"),
        ({"host": "b", "discovery_prefix": "+"}, "discovery_prefix"),
    ],
)
def test_a_bad_table_is_one_line_naming_the_file_and_the_key(cfg, raw, key):
    with pytest.raises(ConfigError) as info:
        settings_from_config(raw, cfg)
    message = one_line(str(info.value))
    assert str(cfg) in message
    assert f"[mqtt] {key}" in message


def test_a_bad_table_fails_even_when_disabled(cfg):
    with pytest.raises(ConfigError):
        settings_from_config({"enabled": False, "port": "x"}, cfg)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("broker", ("broker", None)),
        ("broker.local:1884", ("broker.local", 1884)),
        (" 10.0.0.2 ", ("10.0.0.2", None)),
        ("10.0.0.2:1883", ("10.0.0.2", 1883)),
        ("[::1]:1883", ("::1", 1883)),
        ("[fe80::1]", ("fe80::1", None)),
        ("::1", ("::1", None)),
    ],
)
def test_host_and_port(text, expected):
    assert parse_host_port(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "  ", "broker:", "broker:0", "broker:65536", "broker:http", "[::1", "[broker]:1",
     "[::1]1883", "mqtt://broker", "a b", "host:1:2", "b:-1", "b:１８８３"],
)
def test_host_and_port_garbage_is_one_line(text):
    with pytest.raises(ValueError) as info:
        parse_host_port(text)
    assert one_line(str(info.value))


def test_the_command_line_wins_over_host_port_and_enabled(cfg):
    raw = {"enabled": False, "host": "old", "port": 1999, "username": "u", "password": "p",
           "tls": True, "base_topic": "home/tm", "discovery_prefix": "ha"}
    assert resolve(raw, None, cfg) is None
    assert resolve(raw, "new:1884", cfg) == MqttSettings(
        "new", 1884, "u", "p", TlsSettings(), "home/tm", "ha"
    )
    assert resolve(raw, "new", cfg).port == 8883  # the default, for TLS
    assert resolve({}, "[::1]", cfg) == MqttSettings("::1", 1883)
    assert resolve({"host": "b"}, None, cfg) == MqttSettings("b", 1883)


def test_a_bad_command_line_host_is_one_line():
    with pytest.raises(ConfigError) as info:
        resolve({}, "broker:port", Path("config.toml"))
    assert one_line(str(info.value)).startswith("--mqtt: 'broker:port': ")


def test_the_config_file_keeps_the_mqtt_table(tmp_path):
    path = tmp_path / "config.toml"
    table = {"host": "broker", "port": 1884, "username": "u", "tls": {"ca_file": "ca.pem"}}
    save_config(Config(safety={"backward_speed_cap_kmh": 2.5}, mqtt=table), path)
    loaded = load_config(path)
    assert loaded.mqtt == table
    assert loaded.safety == {"backward_speed_cap_kmh": 2.5}
    save_config(loaded, path)
    assert load_config(path).mqtt == table
    assert load_config(tmp_path / "none.toml").mqtt == {}


def test_an_mqtt_key_that_is_not_a_table_is_refused(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('mqtt = "broker"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "[mqtt] must be a table" in one_line(str(info.value))


# ------------------------------------------------------------------------------ topics


def test_device_ids_are_stable_and_safe():
    assert device_id(MAC) == DID
    assert device_id(MAC.lower()) == DID
    uuid = "12345678-9ABC-DEF0-1234-56789ABCDEF0"
    assert device_id(uuid) == "treadmill_123456789abcdef0123456789abcdef0"
    odd = device_id("::--::")
    assert odd == device_id("::--::") and re.fullmatch(r"treadmill_[a-z0-9]+", odd)
    for address in (MAC, uuid, "Sim Treadmill #1", "ÄÖ:12"):
        assert re.fullmatch(r"[a-z0-9_]+", device_id(address))
    with pytest.raises(ValueError):
        device_id("  ")


def test_topics():
    t = topics_for(MqttSettings("b", 1883), DID)
    assert t.base == f"treadmill/{DID}"
    assert t.availability == f"treadmill/{DID}/availability"
    assert t.state == f"treadmill/{DID}/state"
    assert t.command == f"treadmill/{DID}/command"
    assert t.discovery == f"homeassistant/device/{DID}/config"
    assert t.birth == "homeassistant/status"
    custom = topics_for(MqttSettings("b", 1883, base_topic="home/tm", discovery_prefix="ha"), DID)
    assert (custom.state, custom.command) == ("home/tm/state", "home/tm/command")
    assert (custom.discovery, custom.birth) == (f"ha/device/{DID}/config", "ha/status")
    with pytest.raises(ValueError):
        topics_for(MqttSettings("b", 1883), "not/an id")


# ------------------------------------------------------------------------------ discovery

TOPICS = topics_for(MqttSettings("b", 1883), DID)


def payload() -> dict:
    return discovery_payload(DID, "Treadmill", "WalkingPad X21", TOPICS, "0.1.0")


def sensors() -> dict[str, dict]:
    return {k: c for k, c in payload()["cmps"].items() if c["p"] == "sensor"}


def test_discovery_is_one_device_payload_home_assistant_accepts():
    p = payload()
    json.dumps(p, allow_nan=False)
    assert p["dev"] == {"ids": [DID], "name": "Treadmill", "mdl": "WalkingPad X21", "sw": "0.1.0"}
    assert p["o"]["name"] == "backward-treadmill"  # HA requires the origin for this form
    assert p["state_topic"] == TOPICS.state
    assert p["availability_topic"] == TOPICS.availability
    assert (p["payload_available"], p["payload_not_available"]) == ("online", "offline")
    assert p["qos"] == 1
    for key, component in p["cmps"].items():
        assert re.fullmatch(r"[a-zA-Z0-9_-]+", key)  # HA's object id characters
        assert component["p"] in {"sensor", "binary_sensor", "button"}
        assert component["unique_id"] == f"{DID}_{key}"
        assert component["name"]
        assert component["qos"] == 1  # qos is not one of the options HA shares
    unique_ids = [c["unique_id"] for c in p["cmps"].values()]
    assert len(unique_ids) == len(set(unique_ids))


def test_empty_device_fields_are_left_out():
    p = discovery_payload(DID, "", "", TOPICS, "")
    assert p["dev"] == {"ids": [DID], "name": DID}
    assert p["o"] == {"name": "backward-treadmill"}
    assert discovery_payload(DID, "T", "", TOPICS, "", manufacturer="Kingsmith")["dev"]["mf"] == (
        "Kingsmith"
    )


def test_only_stop_and_pause_are_controllable():
    cmps = payload()["cmps"]
    platforms = Counter(c["p"] for c in cmps.values())
    assert platforms["button"] == 2
    assert set(platforms) == {"sensor", "binary_sensor", "button"}  # no number/switch/select
    buttons = {c["payload_press"]: c for c in cmps.values() if c["p"] == "button"}
    assert set(buttons) == {"STOP", "PAUSE"}
    for button in buttons.values():
        assert button["command_topic"] == TOPICS.command
        assert button["retain"] is False
    assert [k for k, c in cmps.items() if "command_topic" in c] == ["stop", "pause"]


def test_sensor_units_and_classes():
    s = sensors()
    expect = {
        "speed": ("km/h", "speed", "measurement"),
        "incline": ("%", None, "measurement"),
        "distance": ("m", "distance", "total_increasing"),
        "elapsed": ("s", "duration", None),
        "remaining": ("s", "duration", None),
        "heart_rate": ("bpm", None, "measurement"),
        "backward_min": ("min", "duration", None),
        "facing": (None, "enum", None),
        "session_state": (None, "enum", None),
        "program": (None, None, None),
        "step": (None, None, None),
        "safety": (None, None, None),
        "last_alarm": (None, None, None),
    }
    assert set(s) == set(expect)
    for key, (unit, device_class, state_class) in expect.items():
        got = (s[key].get("unit_of_measurement"), s[key].get("device_class"),
               s[key].get("state_class"))
        assert got == (unit, device_class, state_class), key
    assert s["facing"]["options"] == list(FACING_OPTIONS) == ["forward", "backward", "turning"]
    assert set(s["session_state"]["options"]) == {
        "idle", "running", "paused", "turning", "stopping", "ended"
    }
    link = payload()["cmps"]["link"]
    assert (link["p"], link["device_class"]) == ("binary_sensor", "connectivity")
    assert (link["payload_on"], link["payload_off"]) == ("ON", "OFF")


def test_every_template_reads_a_dashboard_key_and_shows_null_as_unknown():
    sandbox = pytest.importorskip("jinja2.sandbox")
    env = sandbox.ImmutableSandboxedEnvironment()  # what Home Assistant renders with
    state = Dashboard("Treadmill").state()
    assert set(state) == STATE_KEYS
    for key, component in payload()["cmps"].items():
        if component["p"] == "button":
            continue
        template = env.from_string(component["value_template"])
        read = re.search(r"get\('(\w+)'\)", component["value_template"])
        assert read and read.group(1) in STATE_KEYS, key
        # A JSON null and a missing key render "None": HA's word for unknown (never "0").
        assert template.render(value_json={read.group(1): None}) == "None"
        assert template.render(value_json={}) == "None"
    speed = env.from_string(sensors()["speed"]["value_template"])
    assert speed.render(value_json={"speed_kmh": 2.5}) == "2.5"
    assert speed.render(value_json={"speed_kmh": 0}) == "0"


# ------------------------------------------------------------------------------ dashboard


def telemetry(t, speed, orientation="forward", distance=None, hr=None, incline=0.0):
    return ev.TelemetryShown(t, speed_kmh=speed, incline_pct=incline, incline_reported=True,
                             distance_m=distance, heart_rate_bpm=hr, orientation=orientation)


def step(t, index, orientation, speed, duration=60.0):
    return ev.StepStarted(t, index=index, of=2, orientation=orientation, speed_kmh=speed,
                          incline_pct=0.0, duration_s=duration, cue="")


def command(t, op):
    return ev.CommandSent(t, op=op, value=None)


class Watch:
    """A dashboard, checked after every change: JSON-ready, every key, only known values."""

    def __init__(self) -> None:
        self.d = Dashboard("Treadmill")

    def __call__(self, *events: ev.SessionEvent) -> dict:
        for event in events:
            self.d.apply(event)
            self.check()
        return self.d.state()

    def check(self) -> None:
        state = self.d.state()
        json.dumps(state, allow_nan=False)
        assert set(state) == STATE_KEYS
        assert state["facing"] in (None, *FACING_OPTIONS)
        assert state["session_state"] in SESSION_STATES
        assert state["link"] in ("ON", "OFF")
        for text in (state["safety"], state["last_alarm"], state["step"], state["program"]):
            assert text is None or (one_line(text) and len(text) <= 255)


def test_a_whole_session_on_the_dashboard():
    w = Watch()
    s = w.d.state()
    assert s["session_state"] == "idle" and s["link"] == "OFF" and s["elapsed_s"] is None
    assert w.d.set_link(True)
    assert not w.d.set_link(True)

    s = w(ev.Started(0.0, program="retro", title="Retro intro", device="KS", minutes=2.0))
    assert (s["program"], s["remaining_s"], s["session_state"]) == ("Retro intro", 120, "idle")
    assert (s["backward_min"], s["link"], s["safety"]) == (0.0, "ON", "no alarms · link ok")

    s = w(step(0.0, 1, "forward", 2.0), command(0.1, "request_control"))
    assert s["step"] == "1/2 forward 2.0 km/h" and s["session_state"] == "idle"
    s = w(command(0.2, "start_resume"), telemetry(1.0, 1.0, distance=0))
    assert s["session_state"] == "running" and s["facing"] == "forward"
    s = w(telemetry(30.0, 2.0, distance=15, hr=95))
    assert (s["speed_kmh"], s["distance_m"], s["heart_rate_bpm"]) == (2.0, 15, 95)
    assert (s["elapsed_s"], s["remaining_s"]) == (30, 90)
    s = w(telemetry(31.0, 2.0, hr=96))
    assert s["distance_m"] == 15  # a frame without distance keeps the last one

    # The turn: "turning" until confirmed, even while the runner's samples still say forward.
    s = w(ev.TurnAroundBegins(60.0, to="backward", text="Slowing to a stop"))
    assert (s["facing"], s["session_state"]) == ("turning", "turning")
    s = w(command(61.0, "set_target_speed"), command(62.0, "stop"), telemetry(63.0, 0.0))
    assert (s["facing"], s["session_state"]) == ("turning", "turning")
    s = w(ev.TurnAroundReady(66.0, to="backward"),
          ev.ConfirmNeeded(66.0, to="backward", text="Turn around, then confirm"))
    assert s["facing"] == "turning"
    s = w(ev.Confirmed(70.0, orientation="backward"), ev.OrientationChanged(70.0, "backward"))
    assert (s["facing"], s["session_state"]) == ("backward", "turning")
    assert s["remaining_s"] == 60  # the turn-around took no walking time

    s = w(step(70.0, 2, "backward", 1.5), command(70.1, "start_resume"))
    assert (s["step"], s["session_state"]) == ("2/2 backward 1.5 km/h", "running")
    for second in range(71, 101):  # 30 s walking backward, one sample a second
        w(telemetry(float(second), 1.5, "backward", distance=40 + second - 70))
    s = w(telemetry(101.0, 1.5, "backward"))
    assert s["backward_min"] == 0.5 and s["facing"] == "backward"
    assert s["remaining_s"] == 29

    s = w(command(101.5, "pause"), telemetry(102.0, 0.0, "backward"))
    assert s["session_state"] == "paused"
    s = w(telemetry(110.0, 0.0, "backward"))
    assert s["remaining_s"] == 29  # paused time does not count
    assert s["backward_min"] == 0.5  # nor does standing still backward

    s = w(ev.Refused(111.0, reason="a remote may only stop or pause the belt"))
    assert s["safety"] == "refused: a remote may only stop or pause the belt · link ok"
    s = w(ev.AlarmRaised(112.0, kind="telemetry_stale",
                         message="no data from the treadmill for 2.1 s:\n  no speed increases"))
    assert s["last_alarm"] == "no data from the treadmill for 2.1 s: no speed increases"
    assert s["safety"] == "alarm: telemetry stale · link stale"
    s = w(telemetry(113.0, 0.0, "backward"))
    assert s["safety"] == "alarm: telemetry stale · link ok"  # readings again
    s = w(telemetry(143.0, 0.0, "backward"))
    assert s["safety"] == "no alarms · link ok"  # 30 s later

    s = w(command(144.0, "start_resume"), command(150.0, "stop"))
    assert s["session_state"] == "stopping"
    s = w(ev.Ended(151.0, reason="emergency_stop", message="emergency stop: Stop sent"))
    assert (s["session_state"], s["safety"]) == ("ended", "ended: emergency stop · link ok")
    assert s["elapsed_s"] == 151
    # Stop re-sends after the end reopen nothing, and the clock has stopped.
    assert not w.d.apply(command(152.0, "stop"))
    assert not w.d.apply(ev.Cue(160.0, "Slowing to a stop"))
    assert w.d.state()["session_state"] == "ended"

    assert w.d.session_closed()
    w.check()
    s = w.d.state()
    assert (s["session_state"], s["program"], s["step"], s["remaining_s"]) == (
        "idle", None, None, None)
    assert (s["distance_m"], s["backward_min"], s["elapsed_s"]) == (70, 0.5, 151)
    assert s["safety"] == "idle · link ok"
    assert not w.d.apply(command(153.0, "stop"))  # late, from the closed session
    assert s["last_alarm"] == "no data from the treadmill for 2.1 s: no speed increases"
    assert w.d.idle_sample(1.2, None)
    assert not w.d.idle_sample(1.2, None)
    assert w.d.state()["speed_kmh"] == 1.2 and w.d.state()["incline_pct"] is None


def test_apply_says_whether_anything_changed():
    d = Dashboard("T")
    assert d.apply(ev.Started(0.0, program="p", title="P", device="T", minutes=1.0))
    assert d.apply(telemetry(0.5, 1.0))
    assert not d.apply(telemetry(0.5, 1.0))
    assert not d.apply(ev.Cue(0.5, "Ready"))
    assert d.apply(telemetry(0.6, 1.1))


def test_idle_samples_wait_while_a_session_runs():
    d = Dashboard("T")
    assert d.idle_sample(0.8, 1.0)
    d.apply(ev.Started(0.0, program="p", title="P", device="T", minutes=1.0))
    assert not d.idle_sample(3.0, 2.0)
    assert d.state()["speed_kmh"] == 0.8


def test_a_lost_link_shows():
    w = Watch()
    w(ev.Started(0.0, program="p", title="P", device="T", minutes=1.0),
      command(0.1, "start_resume"))
    s = w(ev.LinkLost(5.0, reason="disconnected"))
    assert s["link"] == "OFF" and s["safety"] == "no alarms · link lost"
    s = w(ev.AlarmRaised(5.0, kind="link_lost", message="Bluetooth link lost"),
          ev.Ended(5.0, reason="link_lost", message="Bluetooth link lost"))
    assert s["link"] == "OFF" and s["safety"] == "ended: link lost · link lost"
    w.d.session_closed()
    assert w.d.state()["safety"] == "idle · link lost"
    assert w.d.set_link(True) and w.d.state()["safety"] == "idle · link ok"
    assert w.d.set_link(False) and w.d.state()["safety"] == "idle · link off"


def test_no_nan_reaches_the_state():
    w = Watch()
    w(ev.Started(0.0, program="p", title="P", device="T", minutes=math.nan))
    s = w(telemetry(1.0, math.nan, incline=math.inf, hr=None))
    assert (s["speed_kmh"], s["incline_pct"], s["remaining_s"]) == (None, None, None)
    assert w.d.idle_sample(math.inf, math.nan) is False  # in a session: ignored


def test_long_texts_are_cut_to_what_home_assistant_keeps():
    w = Watch()
    s = w(ev.AlarmRaised(1.0, kind="internal_error", message="x" * 1000))
    assert len(s["last_alarm"]) == 255


# ------------------------------------------------------------------------------ coalescer


def test_at_most_one_publish_per_half_second():
    c = Coalescer()
    assert c.due() is None
    assert c.offer(0.0)
    c.sent(0.0)
    assert not c.offer(0.1) and c.due() == 0.5
    assert not c.offer(0.3) and c.due() == 0.5  # one publish will carry both
    c.sent(0.5)
    assert c.due() is None
    assert not c.offer(0.6) and c.due() == 1.0
    assert c.offer(1.2)


def test_a_burst_of_changes_goes_out_at_2_hz_and_the_last_one_always_goes():
    c = Coalescer()
    published: list[tuple[float, int]] = []
    latest = 0
    for i in range(1, 301):  # 100 changes a second for 3 s
        now = i / 100
        due = c.due()
        if due is not None and due <= now:  # what the IO side's timer does
            published.append((due, latest))
            c.sent(due)
        latest = i
        if c.offer(now):
            published.append((now, latest))
            c.sent(now)
    due = c.due()
    if due is not None:
        published.append((due, latest))
        c.sent(due)
    times = [t for t, _ in published]
    assert all(b - a >= 0.5 - 1e-9 for a, b in itertools.pairwise(times))
    assert len(published) <= 3 * 2 + 1
    assert published[-1][1] == 300  # the latest state wins and is never lost


def test_a_coalescer_needs_a_sensible_interval():
    with pytest.raises(ValueError):
        Coalescer(-1.0)
    with pytest.raises(ValueError):
        Coalescer(math.nan)
    assert Coalescer(0.0).offer(0.0)


# ------------------------------------------------------------------------------ commands

NOW = 1_760_000_000.0


def parse(payload: bytes, *, topic: str = TOPICS.command, retained: bool = False,
          now: float = NOW):
    return parse_command(topic, payload, retained=retained, topics=TOPICS, now_unix=now)


@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        (b"STOP", "stop"),
        (b"PAUSE", "pause"),
        (b" stop\n", "stop"),
        (b"Pause", "pause"),
        (json.dumps({"command": "stop", "ts": NOW}).encode(), "stop"),
        (json.dumps({"command": "PAUSE", "ts": NOW - 1.5}).encode(), "pause"),
        (json.dumps({"command": "stop", "ts": int(NOW) + 1}).encode(), "stop"),
        (b'{"command": "pause"}', "pause"),
    ],
)
def test_stop_and_pause_are_accepted(payload, kind):
    assert parse(payload) == RemoteCommand(kind)


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (b"START", "only STOP and PAUSE"),
        (b"resume", "only STOP and PAUSE"),
        (b"speed 5", "only STOP and PAUSE"),
        (b"INCLINE", "only STOP and PAUSE"),
        (b"STOP PAUSE", "only STOP and PAUSE"),
        (b"", "empty"),
        (b"  \n", "empty"),
        (b"\xff\xfe\x00\x01", "binary"),
        (b"STOP" * 100, "bytes"),
        (json.dumps({"command": "start", "ts": NOW}).encode(), "only STOP and PAUSE"),
        (json.dumps({"command": "stop", "ts": NOW - 2.5}).encode(), "stale"),
        (json.dumps({"command": "stop", "ts": NOW + 3}).encode(), "future"),
        (json.dumps({"command": "stop", "ts": NOW * 1000}).encode(), "milliseconds"),
        (json.dumps({"command": "stop", "ts": "now"}).encode(), "Unix time"),
        (json.dumps({"command": "stop", "ts": True}).encode(), "Unix time"),
        (b'{"command": "stop", "ts": NaN}', "ts"),
        (b'{"command": "stop", "ts": 1e999}', "ts"),
        (b'{"command": "stop", "ts": 1' + b"0" * 200 + b"}", "ts"),
        (json.dumps({"command": "stop", "speed": 5}).encode(), "unknown keys"),
        (json.dumps({"command": 1}).encode(), "command"),
        (b"{not json", "JSON"),
        (b'["STOP"]', "only STOP and PAUSE"),
        (b"[1, 2]", "only STOP and PAUSE"),
    ],
)
def test_anything_else_is_refused_with_a_reason(payload, words):
    refusal = parse(payload)
    assert isinstance(refusal, RemoteRefusal)
    assert words in one_line(refusal.reason)
    assert len(refusal.reason) < 300


def test_a_retained_command_is_refused():
    refusal = parse(b"STOP", retained=True)
    assert isinstance(refusal, RemoteRefusal) and "retained" in refusal.reason


def test_other_topics_are_refused():
    refusal = parse(b"STOP", topic=TOPICS.state)
    assert isinstance(refusal, RemoteRefusal)
    assert TOPICS.command in refusal.reason and "only STOP and PAUSE" in refusal.reason


def test_parsing_never_raises():
    weird = [None, "STOP", 42, bytearray(b"STOP"), memoryview(b"PAUSE")]
    results = [parse_command(TOPICS.command, p, retained=False, topics=TOPICS,  # type: ignore
                             now_unix=NOW) for p in weird]
    assert [type(r) for r in results] == [RemoteRefusal, RemoteRefusal, RemoteRefusal,
                                          RemoteCommand, RemoteCommand]
    no_clock = parse(json.dumps({"command": "stop", "ts": NOW}).encode(), now=math.nan)
    assert isinstance(no_clock, RemoteRefusal)


# ------------------------------------------------------------------------------ requests

FLAT = MachineLimits(0.5, 16.0, 0.1, 0.0, 0.0, 0.0, incline_supported=False)


def commands(out) -> list:
    return [o.command for o in out if isinstance(o, ApprovedCommand)]


def refusals(out) -> list[str]:
    return [o.reason for o in out if isinstance(o, Refused)]


def running_governor() -> tuple[Governor, float]:
    """A governor whose belt walks forward at the start speed, confirmed by telemetry."""
    g = Governor(FLAT)
    g.handle(Telemetry(0.0, 0.0))
    assert commands(g.handle(Start(0.0, Orientation.FORWARD))) == [RequestControl()]
    out = g.handle(CommandAccepted(0.1, RequestControl()))
    if commands(out) == [StopCmd()]:  # rest is made visible before a start
        out = g.handle(CommandAccepted(0.15, StopCmd()))
    assert commands(out) == [StartResume()]
    g.handle(CommandAccepted(0.2, StartResume()))
    (speed,) = commands(g.handle(Telemetry(0.5, 0.4)))
    g.handle(CommandAccepted(0.6, speed))
    g.handle(Telemetry(1.0, g.start_speed_kmh))
    assert g.state is GovernorState.RUNNING
    return g, 1.0


def test_requests_are_remote_sourced():
    assert to_request(RemoteCommand("stop"), 3.0) == EmergencyStop(3.0, source=Source.REMOTE)
    assert to_request(RemoteCommand("pause"), 3.0) == Pause(3.0, source=Source.REMOTE)
    with pytest.raises(ValueError):
        RemoteCommand("start")


def test_the_governor_takes_a_remote_pause():
    g, t = running_governor()
    out = g.handle(to_request(RemoteCommand("pause"), t))
    assert refusals(out) == [] and commands(out) == [PauseCmd()]
    assert g.state is GovernorState.PAUSED


def test_the_governor_takes_a_remote_stop_as_the_big_key():
    g, t = running_governor()
    out = g.handle(to_request(RemoteCommand("stop"), t))
    assert commands(out)[:1] == [StopCmd()]
    assert g.ended_reason is EndReason.EMERGENCY_STOP


def test_only_stop_and_pause_get_past_the_governor_remote_rule():
    g = Governor(FLAT)
    g.handle(Telemetry(0.0, 0.0))
    remote_only = "a remote may only stop or pause the belt"
    assert remote_only not in refusals(g.handle(to_request(RemoteCommand("pause"), 0.0)))
    assert refusals(g.handle(Start(0.0, Orientation.FORWARD, source=Source.REMOTE))) == [
        remote_only
    ]


def test_the_request_time_is_the_governor_clock_at_arrival():
    g, t = running_governor()
    g.handle(Tick(t + 3.0))
    out = g.handle(to_request(RemoteCommand("pause"), t))  # 3 s late: dropped
    assert refusals(out) == ["stale remote command (3.0 s old): ignored"]
    assert g.state is GovernorState.RUNNING
