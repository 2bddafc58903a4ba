"""The line at the top of every screen: where you are, which treadmill, SIMULATED, and the
MQTT bridge's state when there is one."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widgets import Static


class TopBar(Horizontal):
    """Title on the left, the device in the middle, a SIMULATED badge when it is one."""

    title: reactive[str] = reactive("")
    device: reactive[str] = reactive("")
    simulated: reactive[bool] = reactive(False)
    mqtt: reactive[str] = reactive("")  # "" when no bridge is configured

    def __init__(self, title: str = "", *, device: str = "", simulated: bool = False,
                 id: str | None = None) -> None:
        super().__init__(id=id)
        self.set_reactive(TopBar.title, title)
        self.set_reactive(TopBar.device, device)
        self.set_reactive(TopBar.simulated, simulated)

    def compose(self) -> ComposeResult:
        yield Static(self.title, id="top-title", markup=False)
        yield Static(self.device, id="top-device", markup=False)
        yield Static(self.mqtt, id="top-mqtt", markup=False)
        yield Static(" SIMULATED ", id="top-sim")
        yield Static(" SPACE = STOP ", id="top-stop")

    def on_mount(self) -> None:
        self.query_one("#top-sim").display = self.simulated
        self.mqtt = getattr(self.app, "mqtt_line", "")
        self.query_one("#top-mqtt").display = bool(self.mqtt)

    def watch_mqtt(self, value: str) -> None:
        if self.is_mounted:
            mqtt = self.query_one("#top-mqtt", Static)
            mqtt.update(value)
            mqtt.display = bool(value)
            mqtt.set_class(not value.startswith("MQTT ok"), "-down")

    def watch_title(self, value: str) -> None:
        if self.is_mounted:
            self.query_one("#top-title", Static).update(value)

    def watch_device(self, value: str) -> None:
        if self.is_mounted:
            self.query_one("#top-device", Static).update(value)

    def watch_simulated(self, value: bool) -> None:
        if self.is_mounted:
            self.query_one("#top-sim").display = value
