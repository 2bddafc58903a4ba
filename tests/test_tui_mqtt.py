"""The TUI with the MQTT bridge on, against a real Mosquitto: the top bar says how MQTT is, a
broker in trouble is one notice and never touches the session, and the dashboard's Stop
stops the belt from the session screen (through the session's governor).

Real time (the broker is real): the app runs inline on a stock loop, driven by its Pilot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

import aiomqtt
import pytest
from mosquitto import Broker
from mosquitto import broker as broker  # the fixture
from test_tui import belt, start, to_picker, wait_until, walking_at
from test_tui import make_app as make_app  # the fixture
from textual.widgets import DataTable, Static

from treadmill.mqtt.settings import MqttSettings
from tui.widgets.top_bar import TopBar

pytestmark = pytest.mark.real_time


def settings_for(b: Broker, password: str | None = None) -> MqttSettings:
    return MqttSettings(host=b.host, port=b.port, username=b.username,
                        password=password or b.password)


def badge(app) -> str:
    """What the current screen's top bar shows for MQTT ("" when it shows nothing)."""
    bars = app.screen.query(TopBar)
    if not bars:
        return ""
    shown = bars.first().query_one("#top-mqtt", Static)
    return bars.first().mqtt if shown.display else ""


async def start_walking(pilot):
    picker = await to_picker(pilot.app)
    table = picker.query_one("#programs", DataTable)
    await wait_until(lambda: table.row_count > 0, 10, "the programs listed")
    session = await start(pilot, "walk")
    await walking_at(pilot.app, session, 2.0)
    return session


async def press_stop_on_the_dashboard(b: Broker, app) -> None:
    bridge = app.core.bridge
    assert bridge is not None
    async with aiomqtt.Client(b.host, b.port, username=b.username, password=b.password) as c:
        await c.publish(bridge.topics.command, "STOP", qos=1)


async def test_the_top_bar_shows_mqtt_and_the_dashboard_stop_stops_the_belt(make_app, broker):
    app, _ = make_app(mqtt=settings_for(broker))
    async with app.run_test(size=(120, 40)) as pilot:
        await start_walking(pilot)
        await wait_until(lambda: badge(app) == "MQTT ok", 10, "the MQTT badge")
        await press_stop_on_the_dashboard(broker, app)
        await wait_until(lambda: app.sim.machine.model.running is False, 10, "the belt stopped")
        await wait_until(lambda: belt(app) == 0.0, 20, "the belt at rest")
        await pilot.press("q")


async def test_a_wrong_password_is_one_notice_and_the_session_runs_on(make_app, broker):
    app, recorder = make_app(mqtt=settings_for(broker, password="wrong"))
    async with app.run_test(size=(120, 40)) as pilot:
        session = await start_walking(pilot)
        await wait_until(lambda: badge(app) == "MQTT down", 10, "the MQTT badge")
        await asyncio.sleep(3.5)  # a few retries (1 s, 2 s): still one notice
        mqtt_notes = [n for _, n in recorder.notes if n.startswith("MQTT")]
        assert len(mqtt_notes) == 1 and "username or password" in mqtt_notes[0], mqtt_notes
        assert session.runner is not None and str(session.runner.governor.state) == "running"
        await pilot.press("q")


async def test_the_dashboard_state_follows_the_session(make_app, broker):
    app, _ = make_app(mqtt=settings_for(broker))
    states: list[dict] = []
    async with aiomqtt.Client(broker.host, broker.port, username=broker.username,
                              password=broker.password) as client:
        await client.subscribe("treadmill/+/state", qos=1)

        async def read() -> None:
            async for message in client.messages:
                with contextlib.suppress(ValueError):
                    states.append(json.loads(message.payload))

        reader = asyncio.create_task(read())
        try:
            async with app.run_test(size=(120, 40)) as pilot:
                await start_walking(pilot)
                await wait_until(lambda: any(s.get("session_state") == "running"
                                             and (s.get("speed_kmh") or 0) >= 1.9
                                             for s in states), 10, "a running state")
                await pilot.press("q")
        finally:
            reader.cancel()
    running = [s for s in states if s.get("session_state") == "running"]
    assert running[-1]["program"] and running[-1]["facing"] == "forward"
    assert running[-1]["link"] == "ON"
