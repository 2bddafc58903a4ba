"""The MQTT tests' private broker (tests/mosquitto.py), checked with aiomqtt itself.

What the MQTT bridge's tests rely on: the password is required, TLS verifies against the test
CA only, retained messages and last wills work, and the failure controls do what they say: a
killed broker refuses connections and comes back on the same port, a stalled one lets a
connect time out. The messages asserted here are aiomqtt 2.x's, as the bridge will see them.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aiomqtt
import mosquitto
import pytest
from mosquitto import Broker
from mosquitto import broker as broker  # the fixture; `as` keeps ruff from calling it unused

pytestmark = pytest.mark.real_time  # a real broker, real sockets: the wall clock

TIMEOUT = 2.0  # seconds for any one MQTT operation here

# A client that says "online" (retained), with a retained last will "offline", then waits to
# be killed: a controller that dies without a goodbye.
DYING_CLIENT = """
import asyncio, sys
import aiomqtt

async def main(host, port, username, password):
    will = aiomqtt.Will("treadmill/status", b"offline", qos=1, retain=True)
    async with aiomqtt.Client(host, int(port), username=username, password=password,
                              will=will, timeout=2) as client:
        await client.publish("treadmill/status", b"online", qos=1, retain=True)
        print("online", flush=True)
        await asyncio.sleep(30)

asyncio.run(main(*sys.argv[1:]))
"""


def client(b: Broker, **kwargs: object) -> aiomqtt.Client:
    """A client of the plain listener with the broker's credentials (overridable)."""
    options: dict = {"username": b.username, "password": b.password, "timeout": TIMEOUT}
    options.update(kwargs)
    return aiomqtt.Client(b.host, b.port, **options)


async def next_message(c: aiomqtt.Client) -> aiomqtt.Message:
    return await asyncio.wait_for(anext(c.messages), TIMEOUT)


async def test_publish_and_subscribe_with_the_password(broker):
    async with client(broker) as c:
        await c.subscribe("test/echo", qos=1)
        await c.publish("test/echo", b"hello", qos=1)
        message = await next_message(c)
    assert message.topic.value == "test/echo"
    assert message.payload == b"hello"


@pytest.mark.parametrize("credentials", [{"password": "wrong"}, {"username": None}])
async def test_a_client_without_the_password_is_refused(broker, credentials):
    # MqttCodeError is public; the class raised, MqttConnectError, is not exported.
    with pytest.raises(aiomqtt.MqttCodeError) as refused:
        async with client(broker, **credentials):
            pass
    assert str(refused.value) == "[code:135] Not authorized"  # CONNACK 5 in MQTT 3.1.1


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])  # the certificate's two names
async def test_tls_with_the_test_ca(broker, host):
    tls = aiomqtt.TLSParameters(ca_certs=str(broker.ca_file))
    async with aiomqtt.Client(host, broker.tls_port, username=broker.username,
                              password=broker.password, tls_params=tls, timeout=TIMEOUT) as c:
        await c.subscribe("test/tls", qos=1)
        await c.publish("test/tls", b"secret", qos=1)
        assert (await next_message(c)).payload == b"secret"


# paho-mqtt 2.2 leaves the socket of a failed TLS handshake for the garbage collector.
@pytest.mark.filterwarnings("ignore:unclosed:ResourceWarning")
async def test_tls_without_the_test_ca_fails_verification(broker):
    tls = aiomqtt.TLSParameters()  # the system's CAs, which never signed the test CA
    with pytest.raises(aiomqtt.MqttError, match="CERTIFICATE_VERIFY_FAILED"):
        async with aiomqtt.Client(broker.host, broker.tls_port, username=broker.username,
                                  password=broker.password, tls_params=tls, timeout=TIMEOUT):
            pass


async def test_a_retained_message_reaches_a_later_subscriber(broker):
    async with client(broker) as c:
        await c.publish("test/retained", b"kept", qos=1, retain=True)
    async with client(broker) as c:
        await c.subscribe("test/retained", qos=1)
        message = await next_message(c)
    assert message.payload == b"kept"
    assert message.retain


async def test_the_last_will_is_published_when_a_client_dies(broker):
    dying = await asyncio.create_subprocess_exec(
        sys.executable, "-c", DYING_CLIENT, broker.host, str(broker.port), broker.username,
        broker.password, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE)
    try:
        assert await asyncio.wait_for(dying.stdout.readline(), 10) == b"online\n"
        async with client(broker) as c:
            await c.subscribe("treadmill/status", qos=1)
            assert (await next_message(c)).payload == b"online"
            dying.kill()  # no DISCONNECT: the broker only sees the socket close
            await dying.wait()
            assert (await next_message(c)).payload == b"offline"
    finally:
        if dying.returncode is None:
            dying.kill()
            await dying.wait()
    async with client(broker) as c:  # retained: what Home Assistant sees when it (re)starts
        await c.subscribe("treadmill/status", qos=1)
        assert (await next_message(c)).payload == b"offline"


async def test_a_killed_broker_is_gone_then_back_on_the_same_port(broker):
    port = broker.port
    async with client(broker) as c:
        await c.subscribe("test/#", qos=1)
        broker.kill()
        with pytest.raises(aiomqtt.MqttError, match="Disconnected during message iteration"):
            await next_message(c)
    with pytest.raises(aiomqtt.MqttError, match="Connection refused"):
        async with client(broker):
            pass
    broker.start()
    assert broker.port == port
    async with client(broker) as c:
        await c.subscribe("test/back", qos=1)
        await c.publish("test/back", b"again", qos=1)
        assert (await next_message(c)).payload == b"again"


async def test_a_stalled_broker_lets_a_connect_time_out(broker):
    broker.stall()
    with pytest.raises(aiomqtt.MqttError, match="Operation timed out"):
        async with client(broker, timeout=0.3):
            pass
    broker.resume()
    async with client(broker) as c:  # it answers again
        await c.publish("test/awake", b"yes", qos=1)


async def test_a_stalled_broker_lets_a_publish_time_out(broker):
    async with client(broker) as c:
        broker.stall()
        with pytest.raises(aiomqtt.MqttError, match="Operation timed out"):
            await c.publish("test/stalled", b"lost?", qos=1, timeout=0.3)
        broker.resume()  # before leaving: the goodbye needs an answer


async def test_a_password_file_hashed_here_is_accepted(tmp_path: Path):
    with Broker(tmp_path / "mosquitto", use_mosquitto_passwd=False) as b:
        async with client(b) as c:
            await c.publish("test/hash", b"ok", qos=1)
        with pytest.raises(aiomqtt.MqttCodeError, match="Not authorized"):
            async with client(b, password="wrong"):
                pass


def test_without_mosquitto_the_broker_fails_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(mosquitto, "find_program", lambda name: None)
    with pytest.raises(pytest.fail.Exception) as failed:
        Broker(tmp_path)
    assert str(failed.value) == mosquitto.MISSING
    assert "\n" not in mosquitto.MISSING
