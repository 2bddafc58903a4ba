"""`treadmill mqtt`: the bridge between sessions. The dashboard shows the treadmill (online,
the belt's speed from the idle link, connectivity) until Ctrl-C; a remote Stop still reaches a
belt started at the console, through the idle link's governor; Pause has nothing to pause."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Sequence

from safety import SafetyConfig, Source
from treadmill import stop_signals
from treadmill.client import FtmsClient
from treadmill.errors import TreadmillError
from treadmill.events import TelemetrySample
from treadmill.link import TreadmillLink
from treadmill.mqtt.attach import RemoteTarget, identity, start_bridge
from treadmill.mqtt.bridge import BridgeStatus, MqttBridge, StatusNews
from treadmill.mqtt.commands import RemoteCommand
from treadmill.mqtt.settings import MqttSettings

log = logging.getLogger(__name__)

RECONNECT_S = 5.0  # the treadmill's link dropped: try again this often


async def bridge_between_sessions(client: FtmsClient, settings: MqttSettings,
                                  safety: SafetyConfig, say: Callable[[str], None],
                                  *, label: str, simulated: bool,
                                  signals: Sequence[signal.Signals] = (),
                                  until: asyncio.Event | None = None) -> None:
    """Run until one of `signals` (the CLI's stop signals) or `until` is set. Says what
    happens in one line each."""
    loop = asyncio.get_running_loop()
    done = until or asyncio.Event()
    installed = stop_signals.add_handlers(loop, lambda sig: done.set(), signals=signals)
    lost = asyncio.Event()
    link = TreadmillLink(client, safety=safety, simulated=simulated, label=label,
                         on_link_lost=lambda reason: lost.set())
    bridge: MqttBridge | None = None

    def on_remote_idle(command: RemoteCommand, age_s: float) -> None:
        if command.kind != "stop":
            say(f"MQTT: refused: {command.kind}: no session is running")
            return
        if link.emergency_stop(Source.REMOTE, loop.time() - age_s) is None:
            log.warning("mqtt: Stop could not reach the treadmill (not connected)")
        else:
            say("Stop from MQTT sent to the treadmill")

    news = StatusNews()

    def on_status(status: BridgeStatus) -> None:
        line = news(status)
        if line is not None:
            loop.call_soon_threadsafe(say, line)

    def on_sample(sample: TelemetrySample) -> None:
        if bridge is not None:
            bridge.idle_sample(sample.speed_kmh, sample.incline_pct)

    link.on_sample = on_sample
    try:
        info = await link.connect()
        say(f"connected to {info.name} ({info.address})")
        target = RemoteTarget(idle=on_remote_idle)
        bridge = start_bridge(
            settings, identity(info, client.address), target, loop, on_status=on_status,
            on_refused=lambda reason: loop.call_soon_threadsafe(say, f"MQTT: refused: {reason}"))
        say(f"Home Assistant discovery: {bridge.topics.discovery}; state: {bridge.topics.state}")
        bridge.set_link(True)
        while not done.is_set():
            waiters = [asyncio.ensure_future(done.wait()), asyncio.ensure_future(lost.wait())]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
            if done.is_set():
                break
            bridge.set_link(False)
            say(f"the treadmill dropped the link: trying again every {RECONNECT_S:g} s")
            while not done.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), RECONNECT_S)
                if done.is_set():
                    break
                try:
                    await link.close()
                    link.lost = False
                    await link.connect()
                except (TreadmillError, OSError) as exc:
                    log.info("reconnect failed: %s", exc)
                    continue
                lost.clear()
                bridge.set_link(True)
                say("connected to the treadmill again")
                break
    finally:
        stop_signals.remove_handlers(loop, installed)
        if bridge is not None:
            bridge.set_link(False)
            await bridge.aclose()
        await link.close()
