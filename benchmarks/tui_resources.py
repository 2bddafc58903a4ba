"""Benchmark: the TUI as a person runs it: time to first frame, CPU and peak memory during a
live simulated session with 4 Hz telemetry.

Targets (issue: the TUI): first frame < 1.5 s; CPU < 5 % of one core and peak RSS < 120 MB
during a 5-minute session. The real `treadmill session --simulate` process runs in a
pseudo-terminal (120x40), real time; CPU and memory are read from /proc (Linux).

Run: `./run bench tui_resources` (add `--minutes N`; the default 5 takes about 5.5 minutes).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from simulators.terminal import Terminal

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=5.0)
    args = parser.parse_args()
    exe = str(Path(sys.executable).with_name("treadmill"))
    with tempfile.TemporaryDirectory() as config:
        env = os.environ | {"TREADMILL_CONFIG_DIR": config, "TREADMILL_DATA_DIR": config,
                            "TERM": "xterm-256color",
                            "COLUMNS": "120", "LINES": "40"}
        term = Terminal([exe, "session", "--simulate", "--sim-notify-hz", "4"], env)
        try:
            first_frame = term.wait_for(b"STOP", 30)
            term.wait_for(b"Enter starts", 30)
            term.type("\r")  # the first program in the picker (first-timer, 12 min)
            time.sleep(1.0)
            term.type("\r")  # acknowledge the safety checklist
            term.wait_for(b"STEP 1/", 30)
            time.sleep(5)  # past start-up work; measure the steady session
            pid = term.process.pid
            cpu0, t0 = cpu_seconds(pid), time.perf_counter()
            per_minute = []
            end = t0 + args.minutes * 60
            while (now := time.perf_counter()) < end:
                c0 = cpu_seconds(pid)
                time.sleep(min(60.0, end - now))
                per_minute.append((cpu_seconds(pid) - c0) / (time.perf_counter() - now) * 100)
            cpu = (cpu_seconds(pid) - cpu0) / (time.perf_counter() - t0) * 100
            rss = peak_rss_mb(pid)
            term.type(" ")
            time.sleep(0.5)
        finally:
            term.close(quit_key="q")
    print(f"TUI, live simulated session at 4 Hz for {args.minutes:g} min, 120x40 terminal")
    print(f"{'measure':<28} {'result':>10}   target")
    print(f"{'time to first frame':<28} {first_frame:>9.2f}s   < 1.5 s")
    print(f"{'CPU (of one core)':<28} {cpu:>9.1f}%   < 5 %")
    print(f"{'  minute by minute':<28} " + " ".join(f"{c:.1f}%" for c in per_minute))
    print(f"{'peak RSS':<28} {rss:>8.0f}MB   < 120 MB")


if __name__ == "__main__":
    main()
