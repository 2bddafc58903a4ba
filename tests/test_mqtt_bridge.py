"""The MQTT bridge against a real Mosquitto (tests/mosquitto.py), with real `treadmill` processes
on the simulator, judged on the simulator's trace (what the machine received) and on what a
Home Assistant would read from the broker.

Real time: each session runs a short program at `--speedup 10`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
import pytest
from mosquitto import Broker
from mosquitto import broker as broker  # the fixture
from test_cli_signals import TREADMILL, trace_lines

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes and signals"),
    pytest.mark.real_time,
]

STOP, PAUSE, START_RESUME = "0801", "0802", "07"
PROGRAM = """title = "MQTT walk"
[[steps]]
orientation = "forward"
minutes = 2
speed_kmh = 2.5
cue = "Walk."
"""
STATE_KEYS = {"speed_kmh", "incline_pct", "distance_m", "elapsed_s", "remaining_s",
              "heart_rate_bpm", "facing", "session_state", "program", "step", "safety",
              "last_alarm", "backward_min", "link"}


# ---- a Home Assistant stand-in: one client that records what the broker delivers ---------------


@dataclass
class Dashboard:
    """Everything published under the discovery prefix and the treadmill's base topic."""

    messages: list[tuple[str, bytes, bool]] = field(default_factory=list)
    client: aiomqtt.Client | None = None

    def on(self, suffix: str) -> list[bytes]:
        return [p for t, p, _ in self.messages if t.endswith(suffix)]

    def states(self) -> list[dict]:
        return [json.loads(p) for p in self.on("/state")]

    def discovery(self) -> dict | None:
        found = [p for t, p, _ in self.messages if t.endswith("/config") and p]
        return json.loads(found[-1]) if found else None

    def command_topic(self) -> str:
        payload = self.discovery()
        assert payload is not None, "no discovery payload"
        buttons = [c for c in payload["cmps"].values() if c["p"] == "button"]
        return buttons[0]["command_topic"]

    async def until(self, predicate, timeout: float = 15.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"not within {timeout:g} s: {what}"
            await asyncio.sleep(0.05)

    async def publish(self, topic: str, payload: str, *, retain: bool = False) -> None:
        assert self.client is not None
        await self.client.publish(topic, payload, qos=1, retain=retain)


@contextlib.asynccontextmanager
async def dashboard(b: Broker) -> AsyncIterator[Dashboard]:
    board = Dashboard()
    async with aiomqtt.Client(b.host, b.port, username=b.username, password=b.password,
                              identifier=f"ha-{os.getpid()}-{time.monotonic_ns()}") as client:
        board.client = client
        await client.subscribe("homeassistant/#", qos=1)
        await client.subscribe("treadmill/#", qos=1)

        async def read() -> None:
            async for message in client.messages:
                payload = message.payload if isinstance(message.payload, bytes) else b""
                board.messages.append((str(message.topic), payload, bool(message.retain)))

        reader = asyncio.create_task(read())
        try:
            yield board
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


# ---- the treadmill process -----------------------------------------------------------------


def config_for(tmp_path: Path, b: Broker, **mqtt: object) -> dict[str, str]:
    folder = tmp_path / "config"
    folder.mkdir(exist_ok=True)
    table = {"username": b.username, "password": b.password, **mqtt}
    lines = ["[mqtt]"] + [f"{k} = {json.dumps(v)}" for k, v in table.items()
                          if not isinstance(v, dict)]
    for key, sub in table.items():
        if isinstance(sub, dict):
            lines.append(f"[mqtt.{key}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in sub.items()]
    (folder / "config.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return os.environ | {"TREADMILL_CONFIG_DIR": str(folder)}


def start_session(tmp_path: Path, env: dict[str, str], broker_at: str,
                  program: str = PROGRAM) -> tuple[subprocess.Popen, Path]:
    path = tmp_path / "walk.toml"
    path.write_text(program, encoding="utf-8")
    trace = tmp_path / "trace.jsonl"
    # Output to files: a pipe nobody reads while the session runs would fill and stall it.
    with (tmp_path / "stdout").open("wb") as out, (tmp_path / "stderr").open("wb") as err:
        process = subprocess.Popen(
            [TREADMILL, "session", str(path), "--simulate", "--headless", "--json",
             "--auto-confirm", "--speedup", "10", "--sim-trace", str(trace), "--mqtt",
             broker_at],
            env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
    process.output_dir = tmp_path  # type: ignore[attr-defined]
    return process, trace


async def finish(process: subprocess.Popen, timeout: float = 40.0) -> tuple[list[dict], str]:
    deadline = time.monotonic() + timeout
    while process.poll() is None:
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("the session did not end")
        await asyncio.sleep(0.1)
    folder: Path = process.output_dir  # type: ignore[attr-defined]
    out = (folder / "stdout").read_text()
    err = (folder / "stderr").read_text()
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return events, err


async def belt_moving(trace: Path, process: subprocess.Popen, kmh: float = 2.0) -> None:
    deadline = time.monotonic() + 20
    while not any(line.get("belt_kmh", 0) >= kmh for line in trace_lines(trace)):
        assert process.poll() is None, "the session ended before the belt moved"
        assert time.monotonic() < deadline, "the belt never moved"
        await asyncio.sleep(0.05)


async def walking(board: Dashboard, tmp_path: Path, env: dict[str, str],
                  b: Broker) -> tuple[subprocess.Popen, Path]:
    """A session published to `b`: once the dashboard has its discovery and the belt moves."""
    process, trace = start_session(tmp_path, env, f"{b.host}:{b.port}")
    await board.until(lambda: board.discovery() is not None, what="discovery")
    await belt_moving(trace, process)
    return process, trace


def writes(trace: Path) -> list[str]:
    return [line["write"] for line in trace_lines(trace) if "write" in line]


def ended(events: list[dict]) -> dict:
    last = [e for e in events if e["type"] == "ended"]
    assert last, "no ended event"
    return last[-1]


# ---- the tests -------------------------------------------------------------------------------


async def test_a_session_appears_in_home_assistant_with_its_states(tmp_path, broker):
    env = config_for(tmp_path, broker)
    async with dashboard(broker) as board:
        process, _ = await walking(board, tmp_path, env, broker)
        await board.until(lambda: any((s.get("speed_kmh") or 0) >= 1.0 for s in board.states()),
                          what="a moving belt in the state")
        events, err = await finish(process)
        await board.until(lambda: b"offline" in board.on("/availability"), what="offline")
    assert process.returncode == 0, err
    assert ended(events)["reason"] == "completed"
    payload = board.discovery()
    assert payload is not None
    assert {"dev", "o", "cmps"} <= set(payload)
    platforms = sorted(c["p"] for c in payload["cmps"].values())
    assert platforms.count("button") == 2
    assert set(platforms) <= {"sensor", "binary_sensor", "button"}
    states = board.states()
    assert all(set(s) >= STATE_KEYS for s in states)
    assert {s["session_state"] for s in states} >= {"running"}
    assert states[-1]["session_state"] == "ended"  # the last word is kept, not rate-limited away
    assert board.on("/availability")[0] == b"online"
    # at most 2 Hz (and a little slack for the first and last)
    assert len(states) <= 2 * 14 + 4


async def test_the_dashboard_stop_button_stops_the_belt_through_the_governor(tmp_path, broker):
    env = config_for(tmp_path, broker)
    async with dashboard(broker) as board:
        process, trace = await walking(board, tmp_path, env, broker)
        await board.publish(board.command_topic(), "STOP")
        events, _err = await finish(process)
    assert writes(trace)[-1] == STOP
    final = [line for line in trace_lines(trace) if line.get("final")]
    assert final and final[-1]["running"] is False
    assert ended(events)["reason"] != "completed"
    stops = [e for e in events if e["type"] == "command" and e["op"] == "stop"]
    assert stops


async def test_pause_from_the_dashboard_pauses_and_nothing_else_is_obeyed(tmp_path, broker):
    env = config_for(tmp_path, broker)
    async with dashboard(broker) as board:
        process, trace = await walking(board, tmp_path, env, broker)
        topic = board.command_topic()
        before = len(writes(trace))
        for payload in ("START", "RESUME", '{"command": "speed", "kmh": 8}', "faster",
                        "", "\x00\xff", '{"command": "start"}'):
            await board.publish(topic, payload)
        await board.publish(topic.rsplit("/", 1)[0] + "/speed", "8")
        await asyncio.sleep(1.0)
        extra = writes(trace)[before:]
        assert STOP not in extra and PAUSE not in extra  # none of them changed anything
        await board.publish(topic, "PAUSE")
        deadline = time.monotonic() + 10
        while PAUSE not in writes(trace):
            assert time.monotonic() < deadline, "Pause never reached the machine"
            await asyncio.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        await finish(process)
    peak = max(line["belt_kmh"] for line in trace_lines(trace) if "belt_kmh" in line)
    assert peak <= 2.5 + 0.1  # no remote speed-up was obeyed
    assert START_RESUME not in writes(trace)[before:]  # no remote word started the belt again


async def test_a_stale_or_retained_command_is_never_executed(tmp_path, broker):
    env = config_for(tmp_path, broker)
    async with dashboard(broker) as board:
        # A Stop left retained on the broker (pressed long ago, or by a misconfigured button)
        # reaches the bridge when it subscribes: that is not a press now.
        process, trace = start_session(tmp_path, env, f"{broker.host}:{broker.port}")
        await board.until(lambda: board.discovery() is not None, what="discovery")
        topic = board.command_topic()
        process.kill()
        process.wait()
        await board.publish(topic, "STOP", retain=True)
        tmp = tmp_path / "second"
        tmp.mkdir()
        process, trace = start_session(tmp, env, f"{broker.host}:{broker.port}")
        await belt_moving(trace, process)
        before = len(writes(trace))
        # and a JSON command stamped 10 s ago waited somewhere: too old to act on
        await board.publish(topic, json.dumps({"command": "stop", "ts": time.time() - 10}))
        await asyncio.sleep(1.0)
        assert STOP not in writes(trace)
        assert len(writes(trace)) >= before
        process.send_signal(signal.SIGTERM)
        await finish(process)
        await board.publish(topic, "", retain=True)  # clear it


async def test_a_broker_that_dies_mid_session_changes_nothing_and_is_found_again(tmp_path,
                                                                                  broker):
    env = config_for(tmp_path, broker)
    async with dashboard(broker) as board:
        process, _ = await walking(board, tmp_path, env, broker)
    broker.kill()
    await asyncio.sleep(1.5)
    broker.start()
    async with dashboard(broker) as board:
        # the bridge reconnects (back-off 1 s, 2 s, ...) and publishes the state again
        await board.until(lambda: len(board.states()) > 0, timeout=20, what="states again")
        events, err = await finish(process, timeout=60)
    assert process.returncode == 0, err
    assert ended(events)["reason"] == "completed"
    assert "MQTT" in err and "Traceback" not in err


async def test_a_wrong_password_is_one_line_and_the_session_runs_as_without(tmp_path, broker):
    env = config_for(tmp_path, broker, password="not-the-password")
    process, _trace = start_session(tmp_path, env, f"{broker.host}:{broker.port}")
    events, err = await finish(process, timeout=60)
    assert process.returncode == 0, err
    assert ended(events)["reason"] == "completed"
    assert "username or password" in err and "Traceback" not in err
    assert "not-the-password" not in err


async def test_a_broker_certificate_we_do_not_trust_is_one_line(tmp_path, broker):
    env = config_for(tmp_path, broker, tls=True)  # the system CAs: the test CA is not among them
    process, _trace = start_session(tmp_path, env, f"127.0.0.1:{broker.tls_port}")
    _events, err = await finish(process, timeout=60)
    assert process.returncode == 0, err
    assert "not trusted" in err and "Traceback" not in err


async def test_tls_with_the_right_ca_connects(tmp_path, broker):
    env = config_for(tmp_path, broker, tls={"ca_file": str(broker.ca_file)})
    process, _trace = start_session(tmp_path, env, f"127.0.0.1:{broker.tls_port}")
    _events, err = await finish(process, timeout=60)
    assert process.returncode == 0, err
    assert "MQTT: connected to mqtts://" in err


async def test_a_killed_process_leaves_its_last_will(tmp_path, broker):
    env = config_for(tmp_path, broker)
    async with dashboard(broker) as board:
        process, _trace = start_session(tmp_path, env, f"{broker.host}:{broker.port}")
        await board.until(lambda: b"online" in board.on("/availability"), what="online")
        process.kill()
        process.wait()
        await board.until(lambda: board.on("/availability")[-1] == b"offline", what="the will")
    # retained: a dashboard that connects now sees "offline" at once
    async with dashboard(broker) as late:
        await late.until(lambda: late.on("/availability") == [b"offline"], what="retained")
        assert all(retained for t, _, retained in late.messages if t.endswith("/availability"))


async def test_a_stalled_broker_never_delays_the_session(tmp_path, broker):
    env = config_for(tmp_path, broker)
    async with dashboard(broker) as board:
        process, _trace = start_session(tmp_path, env, f"{broker.host}:{broker.port}")
        await board.until(lambda: board.discovery() is not None, what="discovery")
    broker.stall()
    try:
        events, err = await finish(process, timeout=60)
    finally:
        broker.resume()
    assert process.returncode == 0, err
    assert ended(events)["reason"] == "completed"


async def test_refusals_are_said_in_one_line_each(tmp_path, broker):
    env = config_for(tmp_path, broker)
    async with dashboard(broker) as board:
        process, _ = await walking(board, tmp_path, env, broker)
        await board.publish(board.command_topic(), "START")
        await asyncio.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        _, err = await finish(process)
    refused = [line for line in err.splitlines() if line.startswith("MQTT: refused")]
    assert len(refused) == 1 and "only STOP and PAUSE" in refused[0], err


def start_between_sessions(tmp_path: Path, env: dict[str, str], broker_at: str,
                           *faults: str) -> tuple[subprocess.Popen, Path]:
    trace = tmp_path / "trace.jsonl"
    fault_args = [arg for fault in faults for arg in ("--sim-fault", fault)]
    with (tmp_path / "stdout").open("wb") as out, (tmp_path / "stderr").open("wb") as err:
        process = subprocess.Popen(
            [TREADMILL, "mqtt", "--simulate", "--mqtt", broker_at, "--sim-trace", str(trace),
             *fault_args],
            env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
    process.output_dir = tmp_path  # type: ignore[attr-defined]
    return process, trace


async def test_between_sessions_the_dashboard_shows_the_idle_treadmill(tmp_path, broker):
    env = config_for(tmp_path, broker)
    async with dashboard(broker) as board:
        process, trace = start_between_sessions(tmp_path, env, f"{broker.host}:{broker.port}")
        await board.until(lambda: board.discovery() is not None, what="discovery")
        await board.until(lambda: any(s["link"] == "ON" and s["session_state"] == "idle"
                                      for s in board.states()), what="an idle, linked state")
        await board.publish(board.command_topic(), "PAUSE")  # nothing to pause
        await asyncio.sleep(0.5)
        process.send_signal(signal.SIGINT)
        _, err = await finish(process, timeout=15)
        await board.until(lambda: board.on("/availability")[-1] == b"offline", what="offline")
    assert process.returncode == 0, err
    assert "no session is running" in err
    assert all(w != PAUSE for w in writes(trace))


async def test_between_sessions_stop_reaches_a_belt_started_at_the_console(tmp_path, broker):
    env = config_for(tmp_path, broker)
    async with dashboard(broker) as board:
        process, trace = start_between_sessions(tmp_path, env, f"{broker.host}:{broker.port}",
                                                "console-start@1")
        await board.until(lambda: board.discovery() is not None, what="discovery")
        await belt_moving(trace, process, kmh=0.5)
        await board.until(lambda: any((s.get("speed_kmh") or 0) > 0 for s in board.states()),
                          what="the belt's speed on the dashboard")
        await board.publish(board.command_topic(), "STOP")
        deadline = time.monotonic() + 10
        while STOP not in writes(trace):
            assert time.monotonic() < deadline, "Stop never reached the machine"
            await asyncio.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, err = await finish(process, timeout=15)
    assert process.returncode == 0, err
    assert "Stop from MQTT sent" in err
