"""The MQTT bridge's IO: one broker connection on a thread and event loop of its own.

Nothing here can delay the controller or its stop path. The controller hands events over with
`event()`, `idle_sample()` and friends, which only schedule work on the bridge's loop and
return; a broker that is down, refuses us, stalls or is slow only ever delays this thread.
What the dashboard shows is decided by the sans-IO `Dashboard`; what a remote may ask for by
`commands.parse_command` here and the governor's Remote rule in the controller.

Reconnects with back-off (1 s doubling to 30 s). Every connection starts clean: a command
that waited on the broker while we were away is never delivered, let alone executed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

import aiomqtt

from treadmill.background import give_way_on_wakeup
from treadmill.mqtt.commands import RemoteCommand, RemoteRefusal, parse_command
from treadmill.mqtt.dashboard import Coalescer, Dashboard
from treadmill.mqtt.discovery import discovery_payload
from treadmill.mqtt.settings import MqttSettings
from treadmill.mqtt.topics import Topics, device_id, topics_for
from treadmill.session_events import SessionEvent

log = logging.getLogger(__name__)

BACKOFF_FIRST_S: Final = 1.0
BACKOFF_MAX_S: Final = 30.0
CONNECT_TIMEOUT_S: Final = 5.0  # a broker that accepts TCP and then says nothing
PUBLISH_TIMEOUT_S: Final = 5.0  # a broker that stops acknowledging: reconnect
KEEPALIVE_S: Final = 15
CLOSE_TIMEOUT_S: Final = 2.0  # Quit waits this long for "offline" to reach the broker


class BridgeState(StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DOWN = "down"
    CLOSED = "closed"


@dataclass(frozen=True)
class BridgeStatus:
    """What the status line shows: the state and one line on why."""

    state: BridgeState
    detail: str

    def line(self) -> str:
        match self.state:
            case BridgeState.CONNECTED:
                return f"MQTT: connected to {self.detail}"
            case BridgeState.CONNECTING:
                return f"MQTT: connecting to {self.detail}"
            case BridgeState.DOWN:
                return f"MQTT: {self.detail}"
            case _:
                return "MQTT: disconnected (the dashboard shows the treadmill offline)"

    def badge(self) -> str:
        """The few characters the TUI's top bar has room for."""
        return {BridgeState.CONNECTED: "MQTT ok", BridgeState.CONNECTING: "MQTT connecting",
                BridgeState.DOWN: "MQTT down"}.get(self.state, "")


class StatusNews:
    """Which bridge states are worth a line: connected, a new reason for being down (not
    every retry), and the end."""

    def __init__(self) -> None:
        self._reason: str | None = None
        self._connected = False

    def __call__(self, status: BridgeStatus) -> str | None:
        match status.state:
            case BridgeState.CONNECTED:
                self._reason = None
                self._connected = True
                return status.line()
            case BridgeState.DOWN:
                reason = status.detail.split("; retrying")[0]
                if reason == self._reason:
                    return None
                self._reason = reason
                return (f"MQTT: {reason}. The session is not affected; retrying every "
                        f"{BACKOFF_FIRST_S:g}-{BACKOFF_MAX_S:g} s")
            case BridgeState.CLOSED:
                return status.line() if self._connected else None
            case _:
                return None


@dataclass(frozen=True)
class DeviceIdentity:
    """The treadmill as the dashboard names it."""

    address: str
    name: str
    model: str = ""


type RemoteHandler = Callable[[RemoteCommand, float], None]  # the command, its monotonic arrival


class MqttBridge:
    """Publishes the dashboard and takes Stop and Pause from it.

    `on_remote`, `on_status` and `on_refused` are called on the bridge's thread: hand them on
    to your own loop (`forward_to_loop`, `call_soon_threadsafe`, textual's `post_message`)."""

    def __init__(
        self,
        settings: MqttSettings,
        device: DeviceIdentity,
        *,
        on_remote: RemoteHandler,
        on_status: Callable[[BridgeStatus], None] = lambda status: None,
        on_refused: Callable[[str], None] = lambda reason: None,
        sw_version: str = "",
    ) -> None:
        self.settings = settings
        self.device = device
        self.device_id = device_id(device.address)
        self.topics: Topics = topics_for(settings, self.device_id)
        self._on_remote = on_remote
        self._on_status = on_status
        self._on_refused = on_refused
        self._sw_version = sw_version
        self._dashboard = Dashboard(device.name)  # touched on the bridge's loop only
        self._coalescer = Coalescer()
        self._status = BridgeStatus(BridgeState.CONNECTING, settings.describe())
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._changed: asyncio.Event | None = None
        self._closing: asyncio.Event | None = None
        self._ready = threading.Event()
        self.refusals: list[str] = []  # the reasons remote commands were refused (last 50)

    # ---- any thread ------------------------------------------------------------------------

    @property
    def status(self) -> BridgeStatus:
        return self._status

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mqtt-bridge", daemon=True)
        self._thread.start()
        self._ready.wait(5.0)

    def event(self, event: SessionEvent) -> None:
        """A session event (a bus subscriber's handler: never blocks)."""
        self._post(self._dashboard.apply, event)

    def idle_sample(self, speed_kmh: float | None, incline_pct: float | None) -> None:
        self._post(self._dashboard.idle_sample, speed_kmh, incline_pct)

    def set_link(self, connected: bool) -> None:
        self._post(self._dashboard.set_link, connected)

    def session_closed(self) -> None:
        self._post(self._dashboard.session_closed)

    def close_soon(self) -> None:
        """Ask the bridge to say "offline" and end; returns at once. (A process that exits
        before it has leaves its last will, "offline", behind all the same.)"""
        loop, closing = self._loop, self._closing
        if loop is not None and closing is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already ended
                loop.call_soon_threadsafe(closing.set)

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """close_soon(), then wait (at most `timeout` + 1 s) for the thread to end."""
        self.close_soon()
        if self._thread is not None:
            self._thread.join(timeout + 1.0)

    async def aclose(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """close() for a coroutine: waits by the wall clock (the caller's loop may run on a
        simulated one), without an executor thread."""
        self.close_soon()
        deadline = time.monotonic() + timeout + 1.0
        while self._thread is not None and self._thread.is_alive():
            if time.monotonic() > deadline:
                return
            await asyncio.sleep(0.02)

    def _post(self, change: Callable[..., bool], *args: Any) -> None:
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # closed: nothing more to show
            loop.call_soon_threadsafe(self._apply, change, args)

    # ---- the bridge's loop -----------------------------------------------------------------

    def _apply(self, change: Callable[..., bool], args: tuple[Any, ...]) -> None:
        try:
            changed = change(*args)
        except Exception:  # a bug in the dashboard must not end the bridge
            log.exception("mqtt: dashboard update failed")
            return
        if changed and self._changed is not None:
            self._changed.set()

    def _set_status(self, state: BridgeState, detail: str) -> None:
        status = BridgeStatus(state, detail)
        if status == self._status:
            return
        self._status = status
        log.info("%s", status.line())
        try:
            self._on_status(status)
        except Exception:
            log.exception("mqtt: status handler failed")

    def _run(self) -> None:
        give_way_on_wakeup()  # a publisher: never ahead of the Stop that woke it
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        self._closing = asyncio.Event()
        self._ready.set()
        backoff = BACKOFF_FIRST_S
        while not self._closing.is_set():
            self._set_status(BridgeState.CONNECTING, self.settings.describe())
            reason = "the broker closed the connection"
            try:
                tls = tls_context(self.settings)
                async with self._client(tls) as client:
                    backoff = BACKOFF_FIRST_S
                    await self._connected(client)
            except aiomqtt.MqttError as exc:
                reason = describe_mqtt_error(exc, self.settings)
            except (OSError, ssl.SSLError, ValueError) as exc:
                reason = describe_mqtt_error(exc, self.settings)
            except Exception as exc:  # a bug here must not end the bridge, let alone a session
                log.exception("mqtt: the bridge failed")
                reason = f"the bridge failed ({type(exc).__name__}: {exc}); run with --debug"
            if self._closing.is_set():
                break
            self._set_status(BridgeState.DOWN, f"{reason}; retrying in {backoff:g} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)
        self._set_status(BridgeState.CLOSED, "")

    def _client(self, tls: ssl.SSLContext | None) -> aiomqtt.Client:
        s, topics = self.settings, self.topics
        return aiomqtt.Client(
            s.host,
            s.port,
            username=s.username,
            password=s.password,
            identifier=f"{self.device_id}-{time.monotonic_ns() % 1_000_000}",
            will=aiomqtt.Will(topics.availability, "offline", qos=1, retain=True),
            clean_session=True,  # nothing queued for us while we were away
            timeout=CONNECT_TIMEOUT_S,
            keepalive=KEEPALIVE_S,
            tls_context=tls,
            logger=logging.getLogger("treadmill.mqtt.client"),
        )

    async def _publish(self, client: aiomqtt.Client, topic: str, payload: str) -> None:
        await asyncio.wait_for(client.publish(topic, payload, qos=1, retain=True),
                               PUBLISH_TIMEOUT_S)

    async def _announce(self, client: aiomqtt.Client) -> None:
        payload = discovery_payload(self.device_id, self.device.name, self.device.model,
                                    self.topics, self._sw_version)
        await self._publish(client, self.topics.discovery, json.dumps(payload))
        await self._publish(client, self.topics.availability, "online")

    async def _connected(self, client: aiomqtt.Client) -> None:
        topics = self.topics
        await self._announce(client)
        await asyncio.wait_for(client.subscribe(topics.command, qos=1), PUBLISH_TIMEOUT_S)
        await asyncio.wait_for(client.subscribe(topics.birth, qos=1), PUBLISH_TIMEOUT_S)
        await self._publish_state(client)
        self._set_status(BridgeState.CONNECTED, self.settings.describe())
        assert self._closing is not None
        tasks = [
            asyncio.create_task(self._read(client), name="mqtt-read"),
            asyncio.create_task(self._write(client), name="mqtt-write"),
            asyncio.create_task(self._closing.wait(), name="mqtt-closing"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        if self._closing.is_set():
            # The last state (a change may be held back by the 2 Hz limit: "ended" must not be
            # lost), then "offline": a clean disconnect sends no last will.
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                await asyncio.wait_for(self._publish_state(client), CLOSE_TIMEOUT_S / 2)
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                await asyncio.wait_for(
                    client.publish(topics.availability, "offline", qos=1, retain=True),
                    CLOSE_TIMEOUT_S / 2)

    async def _read(self, client: aiomqtt.Client) -> None:
        topics = self.topics
        async for message in client.messages:
            topic = str(message.topic)
            payload = message.payload if isinstance(message.payload, bytes) else (
                str(message.payload).encode() if message.payload is not None else b"")
            if topic == topics.birth:
                if payload.strip().lower() == b"online":
                    await self._announce(client)  # Home Assistant (re)started
                    await self._publish_state(client)
                continue
            received = time.monotonic()
            parsed = parse_command(topic, payload, retained=bool(message.retain), topics=topics,
                                   now_unix=time.time())
            if isinstance(parsed, RemoteRefusal):
                self._refused(parsed.reason)
                continue
            try:
                self._on_remote(parsed, received)
            except Exception:
                log.exception("mqtt: remote command handler failed")

    def _refused(self, reason: str) -> None:
        log.warning("mqtt: remote command refused: %s", reason)
        self.refusals = [*self.refusals[-49:], reason]
        try:
            self._on_refused(reason)
        except Exception:
            log.exception("mqtt: refusal handler failed")

    async def _write(self, client: aiomqtt.Client) -> None:
        assert self._changed is not None
        while True:
            await self._changed.wait()
            self._changed.clear()
            now = time.monotonic()
            if not self._coalescer.offer(now):
                due = self._coalescer.due()
                if due is not None:
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
            await self._publish_state(client)

    async def _publish_state(self, client: aiomqtt.Client) -> None:
        await self._publish(client, self.topics.state, json.dumps(self._dashboard.state()))
        self._coalescer.sent(time.monotonic())


def tls_context(settings: MqttSettings) -> ssl.SSLContext | None:
    """The TLS context for the broker, or None for a plain connection."""
    tls = settings.tls
    if tls is None:
        return None
    context = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
    if tls.cert_file is not None:
        context.load_cert_chain(str(tls.cert_file),
                                str(tls.key_file) if tls.key_file else None)
    return context


def describe_mqtt_error(exc: BaseException, settings: MqttSettings) -> str:
    """One line a person can act on, for why the broker connection failed."""
    where = settings.describe()
    text = str(exc).strip() or type(exc).__name__
    lowered = text.lower()
    if isinstance(exc, ssl.SSLCertVerificationError) or "certificate verify failed" in lowered:
        return (f"TLS failed at {where}: the broker's certificate is not trusted; set "
                "[mqtt] tls.ca_file to the CA that signed it")
    if isinstance(exc, ssl.SSLError) or "ssl" in lowered or "tls" in lowered:
        return f"TLS failed at {where} ({text}): check [mqtt] tls and the port"
    if "not authori" in lowered or "bad user name or password" in lowered or (
            "code:5" in lowered.replace(" ", "") or "code:4" in lowered.replace(" ", "")):
        return (f"the broker at {where} refused the username or password: check [mqtt] "
                "username and password")
    if isinstance(exc, ConnectionRefusedError) or "refused" in lowered:
        return (f"no MQTT broker at {where} (connection refused): start it, or check "
                "[mqtt] host and port")
    if isinstance(exc, TimeoutError) or "timed out" in lowered or "timeout" in lowered:
        return f"the broker at {where} does not answer (timed out)"
    if isinstance(exc, OSError) and "name or service not known" in lowered:
        return f"unknown broker host {settings.host!r}: check [mqtt] host or --mqtt"
    return f"broker at {where}: {text}"


def forward_to_loop(loop: asyncio.AbstractEventLoop,
                    submit: Callable[[RemoteCommand, float], None]) -> RemoteHandler:
    """A remote handler that runs `submit(command, age_s)` on `loop` (the controller's)."""

    def on_remote(command: RemoteCommand, received: float) -> None:
        def go() -> None:
            submit(command, time.monotonic() - received)

        with contextlib.suppress(RuntimeError):  # the controller's loop has ended
            loop.call_soon_threadsafe(go)

    return on_remote
