"""Benchmark: emergency-stop latency over the ATT transport, from the stop request to the Stop
write delivered at the treadmill's (simulated) Bluetooth controller and seen by its FTMS
server, with a 7.5, 30 and 50 ms connection interval.

In-process, no terminal: the TUI's controller core (tui/controller.py `Controller`, the FTMS
client, the session runner and its safety governor) on a thread and a stock asyncio event loop
of its own, as the threaded TUI runs it (`ControllerHost`, real time: every microsecond of
software counts), with the GIL switch interval the TUI sets for it. The simulator is
`VirtualTreadmill("home", transport="att", connection_interval_ms=X)`, 10 Hz telemetry: the
client is a Bumble central, the treadmill a Bumble peripheral, and the air between them
(simulators/air.py `AirLink`) moves each ACL packet at the next connection event.

For every press a session of a one-step program (forward, 2 km/h) runs on a moving belt: the
script starts it, waits until the runner's telemetry shows the belt at `--belt-kmh` or more,
then waits a random fraction of one connection interval (so presses land anywhere between two
connection events), notes `time.perf_counter()` and calls `ControllerHost.emergency_stop()`
from its own thread, as the key reader does for SPACE (`call_soon_threadsafe`, then
`Controller.emergency_stop` -> `SessionRunner.emergency_stop` -> the governor approves Stop ->
`FtmsClient` writes 08 01). Three probes note `perf_counter()` on the controller's thread:

- on the air: `AirLink.on_acl` sees the ATT Write Request (opcode 0x12) carrying 08 01 handed
  from the client's controller to the air;
- delivered: the treadmill's controller gets that packet (`on_link_acl_data`, called by the
  air at the next connection event);
- seen: `VirtualTreadmill.link_write` gets the Stop from the Bumble GATT server.

total = seen - press; air wait = delivered - on the air: up to one interval (the air delivers
at the next connection event), plus however late the busy loop runs that delivery's timer
(shown on its own row: the loop's time at delivery minus the connection event it was due at;
mostly epoll's 1 ms timeout granularity, which the selector rounds up); software = total - air
wait, which is the client's side (press -> on the air: the thread hand-over, the governor,
bleak and Bumble's host down to the controller) plus the treadmill's (delivered -> seen:
Bumble's controller, host, L2CAP, ATT and GATT server, up to the simulator's FTMS server).
A press that found another write request still unanswered (ATT allows one at a time: the Stop
waits in Bumble's client for its response, up to an interval or two of air) is counted
("queued") and left out of the software row; the total row keeps every press.

Between presses the session stops until still and a new one starts. The governor's "seen still
for 3 s" before a stopped session ends is shortened (`--still-s`, default 0.2 s, two or three
zero readings at 10 Hz; it comes after the measured Stop and changes nothing before it): with
3 s, 200 presses x 3 intervals would take over half an hour. Even so a press costs about a
second (the new session's Request Control and Start round trips, the belt's run-up to
`--belt-kmh`, its run-down): with the defaults, 200 presses at each of the three intervals, a
run takes about 10 minutes on a 2-core machine (`--presses 60` for about 3).

What it leaves out: the terminal and the TUI's screen (see `estop_latency` for SPACE through a
real pty to the bytes at the backend); a real radio's retransmissions, and the treadmill
firmware after its Bluetooth stack. The air is simulated: connection events on the loop's clock,
no packet loss, no slave latency.

Target: software adds <= 1 ms to the air wait (the Stop is at the treadmill within one
connection interval + 1 ms). Run: `./run bench att_estop` (options: --intervals 7.5,30,50,
--presses N, --belt-kmh KMH, --still-s S).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import safety.rules.stop_until_still as stop_until_still
from safety import Orientation, SafetyConfig
from treadmill import ftms
from treadmill.programs import Program, Step
from treadmill.wiring import SimulatorOptions, simulator_factory
from tui.app import GIL_SWITCH_S
from tui.controller import Controller
from tui.feed import SessionFeed
from tui.host import ControllerHost
from tui.targets import Target

PROGRAM = Program("att-estop", "E-stop benchmark",
                  (Step(Orientation.FORWARD, 3600, 2.0),))
STOP = ftms.encode_stop()  # 08 01
ATT_CID = b"\x04\x00"
WRITE_REQUEST, WRITE_RESPONSE, ERROR_RESPONSE = 0x12, 0x13, 0x01


def att_pdu(data: bytes) -> bytes | None:
    """The ATT PDU in an LE ACL payload (an L2CAP basic frame: length, CID 0x0004), else None."""
    if len(data) >= 5 and data[2:4] == ATT_CID:
        return data[4:]
    return None


def is_stop_write(pdu: bytes | None) -> bool:
    """ATT Write Request (opcode, handle, value) whose value is the FTMS Stop."""
    return pdu is not None and pdu[0] == WRITE_REQUEST and pdu[3:] == STOP


class Probes:
    """Times (perf_counter) on the controller's thread: the Stop on the air, delivered at the
    treadmill's controller, seen by its server; and the write requests still unanswered."""

    def __init__(self, machine: Any) -> None:
        self.machine = machine
        self.peripheral = machine.att.controller
        self.on_air: list[float] = []
        self.delivered: list[float] = []
        self.seen: list[float] = []
        self.late: list[float] = []  # how late the loop ran each Stop's delivery (s)
        self.interval_s = machine.att.connection_interval_ms / 1000
        self._due: float | None = None  # the connection event the last Stop was sent for
        self.outstanding = 0  # client write requests without a response yet
        self.seen_event = threading.Event()
        self.peripheral.link.on_acl.append(self._on_acl)
        deliver = self.peripheral.on_link_acl_data

        def on_link_acl_data(sender: Any, transport: Any, data: bytes) -> None:
            if is_stop_write(att_pdu(bytes(data))):
                self.delivered.append(time.perf_counter())
                if self._due is not None:
                    late = asyncio.get_running_loop().time() - self._due
                    self.late.append(max(0.0, late))
                    self._due = None
            deliver(sender, transport, data)

        self.peripheral.on_link_acl_data = on_link_acl_data
        link_write = machine.link_write

        def write(uuid: str, data: bytes, **kwargs: Any) -> None:
            if uuid == ftms.CONTROL_POINT and bytes(data) == STOP:
                self.seen.append(time.perf_counter())
                self.seen_event.set()
            link_write(uuid, data, **kwargs)

        machine.link_write = write

    def _on_acl(self, sender: Any, destination: Any, data: bytes) -> None:
        now = time.perf_counter()
        pdu = att_pdu(bytes(data))
        if pdu is None:
            return
        if destination is self.peripheral:
            if pdu[0] == WRITE_REQUEST:
                self.outstanding += 1
            if is_stop_write(pdu):
                self.on_air.append(now)
                # The next connection event, as AirLink reckons it (loop time).
                sent = asyncio.get_running_loop().time()
                self._due = (math.floor(sent / self.interval_s + 1e-9) + 1) * self.interval_s
        elif sender is self.peripheral and pdu[0] in (WRITE_RESPONSE, ERROR_RESPONSE):
            self.outstanding = max(0, self.outstanding - 1)

    def clear(self) -> None:
        self.on_air.clear()
        self.delivered.clear()
        self.seen.clear()
        self.late.clear()
        self.seen_event.clear()


@dataclass
class Result:
    interval_ms: float
    total: list[float] = field(default_factory=list)  # ms, every press
    air: list[float] = field(default_factory=list)
    late: list[float] = field(default_factory=list)
    software: list[float] = field(default_factory=list)  # presses not queued behind a write
    client: list[float] = field(default_factory=list)
    server: list[float] = field(default_factory=list)
    queued: int = 0
    belt_at_press: list[float] = field(default_factory=list)
    seconds: float = 0.0


def percentiles(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered), p99, ordered[-1]


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.perf_counter() + timeout
    while not predicate():
        if time.perf_counter() > deadline:
            raise TimeoutError(what)
        time.sleep(0.002)


def run_interval(interval_ms: float, presses: int, belt_kmh: float) -> Result:
    result = Result(interval_ms)
    started = time.perf_counter()
    options = SimulatorOptions(profile="home", notify_hz=10, transport="att",
                               connection_interval_ms=interval_ms)
    config = SafetyConfig()
    controller = Controller(safety=config, simulator=simulator_factory(options))
    host = ControllerHost(controller, mode="threaded", heartbeat_timeout_s=None)  # no screen
    host.start()
    try:
        sim: Any = host.call(controller.open_simulator).result(10)
        host.call(controller.connect, Target(sim.name, sim.address, simulated=True)).result(60)

        async def install() -> Probes:  # on the controller's thread
            return Probes(sim.machine)

        probes = host.call(install).result(10)
        for _ in range(presses):
            feed = SessionFeed(lambda event: None, lambda: None)
            session = host.call(controller.run_session, PROGRAM, config, feed)

            def moving() -> bool:
                runner = controller.runner
                sample = runner.last_sample if runner is not None else None
                return sample is not None and sample.speed_kmh >= belt_kmh

            wait_until(moving, 10.0, "the belt did not start")
            runner = controller.runner
            assert runner is not None and runner.last_sample is not None
            time.sleep(random.uniform(0.0, interval_ms / 1000))  # anywhere in the interval
            probes.clear()
            queued = probes.outstanding > 0
            belt = runner.last_sample.speed_kmh
            pressed = time.perf_counter()
            host.emergency_stop()
            if not probes.seen_event.wait(5.0):
                raise TimeoutError("no Stop reached the treadmill's server")
            outcome = session.result(30)
            if outcome.reason != "emergency_stop":
                raise RuntimeError(f"the session ended for another reason: {outcome.reason}")
            on_air = next(t for t in probes.on_air if t >= pressed)
            delivered = next(t for t in probes.delivered if t >= on_air)
            seen = next(t for t in probes.seen if t >= delivered)
            total, air = (seen - pressed) * 1000, (delivered - on_air) * 1000
            result.total.append(total)
            result.air.append(air)
            result.late.append(probes.late[0] * 1000 if probes.late else 0.0)
            result.belt_at_press.append(belt)
            if queued:
                result.queued += 1
                continue
            result.software.append(total - air)
            result.client.append((on_air - pressed) * 1000)
            result.server.append((seen - delivered) * 1000)
    finally:
        host.close()
    result.seconds = time.perf_counter() - started
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--intervals", default="7.5,30,50",
                        help="connection intervals in ms, comma-separated")
    parser.add_argument("--presses", type=int, default=200, help="presses per interval")
    parser.add_argument("--belt-kmh", type=float, default=0.2,
                        help="press once telemetry shows the belt at this speed or more")
    parser.add_argument("--still-s", type=float, default=0.2,
                        help="how long the governor must see the belt still before a stopped "
                             "session ends (the product's 3 s; after the measured Stop)")
    args = parser.parse_args()
    intervals = [float(text) for text in args.intervals.split(",") if text.strip()]
    sys.setswitchinterval(GIL_SWITCH_S)  # as the threaded TUI sets it
    stop_until_still.STILL_S = args.still_s  # type: ignore[misc]
    started = time.monotonic()
    results = [run_interval(ms, args.presses, args.belt_kmh) for ms in intervals]
    print(f"emergency stop over ATT, stop request -> Stop write at the treadmill (MTU 23), "
          f"10 Hz telemetry, in-process threaded controller, {os.cpu_count()} cores, "
          f"{time.monotonic() - started:.0f} s")
    print(f"{'interval':>8}  {'what':<36} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for r in results:
        rows = [
            ("total (press -> server sees Stop)", r.total),
            ("air wait (on the air -> delivered)", r.air),
            ("  of which the loop ran late", r.late),
            ("software (total - air wait)", r.software),
            ("  client (press -> on the air)", r.client),
            ("  treadmill (delivered -> server)", r.server),
        ]
        for label, values in rows:
            if not values:
                print(f"{r.interval_ms:>6g}ms  {label:<36} {0:>5}")
                continue
            p50, p99, top = percentiles(values)
            print(f"{r.interval_ms:>6g}ms  {label:<36} {len(values):>5} "
                  f"{p50:8.2f} {p99:8.2f} {top:8.2f}")
        print(f"{'':>8}  {r.queued} queued behind a write request (left out of software); "
              f"belt at press >= {min(r.belt_at_press, default=0):.2f} km/h; {r.seconds:.0f} s")
    print("target: software <= 1 ms on top of the air wait (the Stop at the treadmill within "
          "one connection interval + 1 ms)")


if __name__ == "__main__":
    main()
