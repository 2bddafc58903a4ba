"""How a bridge attaches to a session: its events in, remote Stop and Pause out, through the
governor (source = remote), on the controller's own loop."""

from __future__ import annotations

import asyncio
import importlib.metadata
from collections.abc import Callable
from typing import Any

from treadmill.bus import Subscription
from treadmill.client import DeviceInfo
from treadmill.mqtt.bridge import DeviceIdentity, MqttBridge, forward_to_loop
from treadmill.mqtt.commands import RemoteCommand, to_request
from treadmill.mqtt.settings import MqttSettings
from treadmill.session import SessionRunner


def software_version() -> str:
    try:
        return importlib.metadata.version("backward-treadmill")
    except importlib.metadata.PackageNotFoundError:
        return ""


def identity(info: DeviceInfo | None, address: str) -> DeviceIdentity:
    if info is None:
        return DeviceIdentity(address=address, name=address)
    return DeviceIdentity(address=info.address or address, name=info.name or address,
                          model=info.model or "")


class RemoteTarget:
    """Where remote commands go: the running session's governor, when there is one.

    Set and read on the controller's loop only. Without a session, `idle` decides (a Stop
    for a belt started at the console goes through the idle link's own governor)."""

    def __init__(self, idle: Callable[[RemoteCommand, float], None] | None = None) -> None:
        self.runner: SessionRunner | None = None
        self.idle = idle

    def __call__(self, command: RemoteCommand, age_s: float) -> None:
        runner = self.runner
        if runner is not None and runner.governor is not None:
            # The governor drops a remote command older than 2 s; its age counts from arrival.
            runner.submit(lambda t: to_request(command, t - age_s))
        elif self.idle is not None:
            self.idle(command, age_s)


def start_bridge(settings: MqttSettings, device: DeviceIdentity, target: RemoteTarget,
                 loop: asyncio.AbstractEventLoop, **kwargs: Any) -> MqttBridge:
    """A running bridge whose remote commands reach `target` on `loop`."""
    bridge = MqttBridge(settings, device, on_remote=forward_to_loop(loop, target),
                        sw_version=software_version(), **kwargs)
    bridge.start()
    return bridge


def attach(bridge: MqttBridge, runner: SessionRunner, target: RemoteTarget) -> Subscription:
    """The bridge follows this session (call on the runner's loop, before `run()`)."""
    target.runner = runner
    return runner.bus.subscribe("mqtt", bridge.event)


def detach(bridge: MqttBridge, target: RemoteTarget) -> None:
    target.runner = None
    bridge.session_closed()
