"""Benchmark: how many times faster than real time a headless session runs with --speedup max.

Target (issue: safety governor and guided sessions): a 30-minute program at >= 600x real time.
Prints a table; run with `./run bench session_speed`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from safety import Orientation, SafetyConfig
from simulators import VirtualTreadmill
from simulators.virtual_time import run_virtual
from treadmill.client import FtmsClient
from treadmill.programs import builtin_programs
from treadmill.session import SessionRunner

ROOT = Path(__file__).resolve().parents[1]


async def _person_turns(to: Orientation) -> None:
    await asyncio.sleep(3.0)


async def one_session(program_name: str, profile: str, notify_hz: float) -> tuple[float, int]:
    sim = VirtualTreadmill(profile, notify_hz=notify_hz)
    events = 0

    def count(_event: object) -> None:
        nonlocal events
        events += 1

    client = FtmsClient(sim.ble_device, backend=sim.client_backend)
    try:
        async with client:
            runner = SessionRunner(client, builtin_programs()[program_name],
                                   config=SafetyConfig(), confirm=_person_turns, on_event=count)
            result = await runner.run()
    finally:
        sim.close()
    return result.duration_s, events


def in_process(program: str, profile: str, notify_hz: float, runs: int) -> list[float]:
    ratios = []
    for _ in range(runs):
        start = time.perf_counter()
        simulated, _events = run_virtual(one_session(program, profile, notify_hz))
        wall = time.perf_counter() - start
        ratios.append(simulated / wall)
    return ratios


def whole_command(program: str, runs: int) -> list[float]:
    """The user's view: `treadmill session PROGRAM --headless --speedup max`, process and all."""
    exe = Path(sys.executable).with_name("treadmill")
    cmd = [str(exe), "session", program, "--simulate", "--headless", "--auto-confirm",
           "--speedup", "max", "--json"]
    minutes = builtin_programs()[program].duration_s
    ratios = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, cwd=ROOT,
                       env=os.environ | {"TREADMILL_CONFIG_DIR": str(ROOT / ".bench-config"),
                                         "TREADMILL_DATA_DIR": str(ROOT / ".bench-data")})
        ratios.append(minutes / (time.perf_counter() - start))
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--program", default="retro-30")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    program = builtin_programs()[args.program]
    print(f"program {program.name}: {program.duration_s / 60:g} simulated minutes, "
          f"{args.runs} runs each, {os.cpu_count()} CPUs")
    print(f"{'what':<42} {'median':>9} {'min':>9}   target")
    rows = [
        ("in-process, home, 4 Hz telemetry", in_process(args.program, "home", 4, args.runs)),
        ("in-process, home, 10 Hz telemetry", in_process(args.program, "home", 10, args.runs)),
        ("whole command (process start included)", whole_command(args.program, args.runs)),
    ]
    for label, ratios in rows:
        print(f"{label:<42} {statistics.median(ratios):>8.0f}x {min(ratios):>8.0f}x   >= 600x")


if __name__ == "__main__":
    main()
