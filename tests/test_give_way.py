"""The threads that a Stop hands work to (recorder, MQTT bridge, the screen's output) never
preempt the controller's loop when it wakes them (treadmill/background.py)."""

from __future__ import annotations

import asyncio
import os
import pty
import threading
import time

import pytest

from treadmill.background import give_way_on_wakeup
from treadmill.history.recorder import Recorder
from treadmill.mqtt.bridge import DeviceIdentity, MqttBridge
from treadmill.mqtt.settings import MqttSettings

pytestmark = pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="Linux policies")


def policy(thread: threading.Thread) -> int:
    assert thread.native_id is not None
    return os.sched_getscheduler(thread.native_id)


def settled_policy(thread: threading.Thread, timeout: float = 5.0) -> int:
    """The thread's policy once it had time to set its own (it does so as it starts)."""
    deadline = time.monotonic() + timeout
    while policy(thread) != os.SCHED_BATCH and time.monotonic() < deadline:
        time.sleep(0.01)
    return policy(thread)


def test_giving_way_is_for_the_calling_thread_only():
    done = threading.Event()
    took: list[bool] = []
    worker = threading.Thread(target=lambda: (took.append(give_way_on_wakeup()), done.wait()))
    worker.start()
    try:
        while not took:
            time.sleep(0.01)
        assert took == [True]
        assert policy(worker) == os.SCHED_BATCH
        assert os.sched_getscheduler(0) == os.SCHED_OTHER  # this (the loop's) thread: as it was
    finally:
        done.set()
        worker.join()


def test_the_recorder_gives_way(tmp_path):
    recorder = Recorder(path=tmp_path / "h.sqlite3", program="p", title="P", device="Sim",
                        simulated=True)
    try:
        assert settled_policy(recorder._thread) == os.SCHED_BATCH
    finally:
        recorder.close()


def test_the_mqtt_bridge_gives_way():
    # Port 9 (discard) on this machine: nobody answers; the bridge keeps trying, on its thread.
    bridge = MqttBridge(MqttSettings("127.0.0.1", 9), DeviceIdentity("AA:BB", "Sim"),
                        on_remote=lambda command, t: None)
    bridge.start()
    try:
        assert bridge._thread is not None
        assert policy(bridge._thread) == os.SCHED_BATCH
    finally:
        bridge.close()


def test_the_screen_output_copier_gives_way():
    from tui.split import TerminalRelay

    keys_in, keys_out = os.pipe()
    master, slave = pty.openpty()
    shown = os.open(os.devnull, os.O_WRONLY)
    loop = asyncio.new_event_loop()
    relay = TerminalRelay(keys_in, shown, master,
                          on_stop=lambda: None, on_hangup=lambda: None)
    relay.start(loop)
    try:
        assert relay._output is not None
        assert settled_policy(relay._output) == os.SCHED_BATCH
    finally:
        relay.close()
        loop.close()
        for fd in (keys_in, keys_out, master, slave, shown):
            os.close(fd)
