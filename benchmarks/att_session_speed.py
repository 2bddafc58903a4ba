"""Benchmark: how many times faster than real time a 30-minute session runs over the ATT
transport on simulated time, next to the GATT-level transport.

In-process, as `session_speed` does it: the `retro-30` program (`--program`), `SessionRunner`
with the default safety settings and a person who turns around in 3 s, an `FtmsClient` and a
`VirtualTreadmill("home")` at 4 Hz telemetry (`--notify-hz`), on the VirtualTimeLoop
(simulators/virtual_time.py `run_virtual`, as fast as the CPU allows). Over ATT
(`transport="att"`, MTU 23, a 30 ms connection interval: `--mtu`, `--interval`) every
operation goes through two Bumble stacks and the simulated air (simulators/air.py): connect,
the MTU exchange, discovery, CCCD writes, each control point write and its response, every
notification and every indication and its confirmation. The ratio is simulated seconds (the
session's own duration) over wall seconds for the whole `run_virtual` call (the simulator's
creation and its power-on, the connection and discovery included; the interpreter's start and
the imports left out). Also counted, per session: ACL packets on the air
(`AirLink.acl_packets`: every ATT PDU in either direction, connection set-up included),
notifications sent and indications confirmed (`sim.att.notifications_sent`,
`sim.att.indications_confirmed`); for the GATT transport, which has no air, the notifications
and indications the simulator delivered.

`--profile` adds a cProfile of one ATT session: the share of each package (Bumble, asyncio,
the simulator, the client, the governor), the time Bumble spends building debug strings nobody
logs (packet `__str__` and `color()` called from its own `logger.debug(f"...")` lines; the
profiler inflates such small calls), and the top 10 functions by own time.

What it leaves out: the CLI, the TUI, the history recorder and the process start (see
`session_speed` for the whole command).

Target: >= 300x real time over ATT (the GATT transport's target is 600x). Run:
`./run bench att_session_speed` (options: --program NAME, --runs N, --notify-hz HZ, --mtu N,
--interval MS, --profile).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import statistics
import time
from dataclasses import dataclass
from typing import Any

from safety import Orientation, SafetyConfig
from simulators import VirtualTreadmill
from simulators.virtual_time import run_virtual
from treadmill.client import FtmsClient
from treadmill.programs import builtin_programs
from treadmill.session import SessionRunner

ATT_TARGET = 300.0
FORMATTERS = ("__str__", "__repr__", "color", "_join", "_color_code", "stringify_field",
              "format_fields", "format_field_value")


async def _person_turns(to: Orientation) -> None:
    await asyncio.sleep(3.0)


@dataclass
class Counts:
    simulated_s: float = 0.0
    packets: int | None = None  # None: no air (the GATT transport)
    notifications: int = 0
    indications: int = 0


async def one_session(program_name: str, transport: str, notify_hz: float, mtu: int,
                      interval_ms: float) -> Counts:
    att = transport == "att"
    sim = VirtualTreadmill("home", notify_hz=notify_hz, transport=transport,  # type: ignore[arg-type]
                           mtu=mtu, connection_interval_ms=interval_ms if att else None)
    counts = Counts()
    indicated = {spec.uuid for spec in sim.gatt_table()
                 if "indicate" in spec.properties and "notify" not in spec.properties}
    delivered = sim.server.delivered

    def count(event: Any) -> None:  # every notification or indication the simulator sends
        if event.uuid in indicated:
            counts.indications += 1
        else:
            counts.notifications += 1
        delivered(event)

    if not att:
        sim.server.delivered = count  # type: ignore[method-assign]
    client = FtmsClient(sim.ble_device, backend=sim.client_backend)
    try:
        async with client:
            runner = SessionRunner(client, builtin_programs()[program_name],
                                   config=SafetyConfig(), confirm=_person_turns)
            result = await runner.run()
    finally:
        if att and sim.att is not None and sim.att.controller is not None:
            link: Any = sim.att.controller.link  # the loop's AirLink
            counts.packets = link.acl_packets
            counts.notifications = sim.att.notifications_sent
            counts.indications = sim.att.indications_confirmed
        sim.close()
    counts.simulated_s = result.duration_s
    return counts


def measure(program: str, transport: str, notify_hz: float, mtu: int, interval_ms: float,
            runs: int) -> tuple[list[float], list[float], Counts]:
    """Ratios and wall seconds of `runs` sessions, and the last one's counts."""
    ratios, walls = [], []
    counts = Counts()
    for _ in range(runs):
        start = time.perf_counter()
        counts = run_virtual(one_session(program, transport, notify_hz, mtu, interval_ms))
        wall = time.perf_counter() - start
        ratios.append(counts.simulated_s / wall)
        walls.append(wall)
    return ratios, walls, counts


def profile_one(program: str, notify_hz: float, mtu: int, interval_ms: float) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    run_virtual(one_session(program, "att", notify_hz, mtu, interval_ms))
    profiler.disable()
    stats = pstats.Stats(profiler)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(tottime for _cc, _nc, tottime, _ct, _callers in raw.values())
    shares: dict[str, float] = {}
    for (filename, _line, _name), (_cc, _nc, tottime, _ct, _callers) in raw.items():
        for part in ("/bumble/", "/logging/", "/asyncio/", "/simulators/", "/treadmill/",
                     "/safety/"):
            if part in filename:
                shares[part.strip("/")] = shares.get(part.strip("/"), 0.0) + tottime
                break
        else:
            shares["other"] = shares.get("other", 0.0) + tottime
    print(f"\ncProfile of one ATT session: {total:.2f} s of own time (profiler overhead "
          f"included); by package:")
    print("  " + ", ".join(f"{name} {100 * t / total:.0f} %"
                           for name, t in sorted(shares.items(), key=lambda kv: -kv[1])))
    # Bumble formats each packet for its debug log even with logging off (f-strings in
    # logger.debug): the time of the __str__/color() calls made straight from its own code.
    formatting: dict[str, float] = {}
    for (filename, _line, name), (_cc, _nc, _tt, _ct, callers) in raw.items():
        if "/bumble/" not in filename or name not in FORMATTERS:
            continue
        for (caller_file, caller_line, caller), edge in callers.items():
            if "/bumble/" in caller_file and caller not in (*FORMATTERS, "<genexpr>"):
                where = f"{caller_file.split('/bumble/')[1]}:{caller_line} {caller}"
                formatting[where] = formatting.get(where, 0.0) + edge[3]
    spent = sum(formatting.values())
    top = sorted(formatting.items(), key=lambda kv: -kv[1])[:4]
    print(f"Bumble's debug strings built with logging off: {spent:.2f} s "
          f"({100 * spent / total:.0f} %), from " + ", ".join(f"{where} {t:.2f} s"
                                                              for where, t in top))
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(10)
    lines = out.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls"))
    print("\n".join(lines[start:start + 11]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--program", default="retro-30")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--notify-hz", type=float, default=4.0)
    parser.add_argument("--mtu", type=int, default=23)
    parser.add_argument("--interval", type=float, default=30.0,
                        help="connection interval in ms (ATT)")
    parser.add_argument("--profile", action="store_true",
                        help="also profile one ATT session (cProfile, top 10 by own time)")
    args = parser.parse_args()
    program = builtin_programs()[args.program]
    print(f"program {program.name}: {program.duration_s / 60:g} simulated minutes, home, "
          f"{args.notify_hz:g} Hz telemetry, {args.runs} runs each, {os.cpu_count()} CPUs")
    print(f"{'what':<38} {'median':>8} {'min':>8} {'wall s':>7} {'packets':>8} "
          f"{'notif.':>7} {'indic.':>7}   target")
    rows = [
        (f"ATT, MTU {args.mtu}, {args.interval:g} ms interval", "att", ATT_TARGET),
        ("GATT transport (no air)", "gatt", 600.0),
    ]
    for label, transport, target in rows:
        ratios, walls, counts = measure(args.program, transport, args.notify_hz, args.mtu,
                                        args.interval, args.runs)
        packets = "-" if counts.packets is None else str(counts.packets)
        print(f"{label:<38} {statistics.median(ratios):>7.0f}x {min(ratios):>7.0f}x "
              f"{statistics.median(walls):>7.2f} {packets:>8} {counts.notifications:>7} "
              f"{counts.indications:>7}   >= {target:g}x")
    print("packets: ACL packets on the air in one session (connection set-up included); "
          "notif./indic.: notifications sent, indications confirmed")
    if args.profile:
        profile_one(args.program, args.notify_hz, args.mtu, args.interval)


if __name__ == "__main__":
    main()
