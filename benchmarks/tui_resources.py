"""Benchmark: the TUI as a person runs it: time to first frame, CPU and peak memory during a
live simulated session with 4 Hz telemetry.

Targets (issue: the TUI): first frame < 1.5 s; CPU < 5 % of one core and peak RSS < 120 MB
during a 5-minute session. The real `treadmill session --simulate` process runs in a
pseudo-terminal (120x40), real time; CPU and memory are read from /proc (Linux).

Run: `./run bench tui_resources` (add `--minutes N`; the default 5 takes about 5.5 minutes).
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class Terminal:
    """A pseudo-terminal running one process; everything it prints is collected."""

    def __init__(self, argv: list[str], env: dict[str, str], cols: int = 120,
                 rows: int = 40) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.started = time.perf_counter()
        self.process = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                        start_new_session=True)
        os.close(slave)
        self.output = bytearray()
        self.lock = threading.Lock()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            with self.lock:
                self.output += chunk

    def wait_for(self, text: bytes, timeout: float) -> float:
        """Seconds since the start until `text` was printed."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            with self.lock:
                if text in self.output:
                    return time.perf_counter() - self.started
            time.sleep(0.005)
        raise TimeoutError(f"{text!r} did not appear within {timeout:g} s")

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=5.0)
    args = parser.parse_args()
    exe = str(Path(sys.executable).with_name("treadmill"))
    with tempfile.TemporaryDirectory() as config:
        env = os.environ | {"TREADMILL_CONFIG_DIR": config, "TERM": "xterm-256color",
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
            cpu0, t0 = term.cpu_seconds(), time.perf_counter()
            per_minute = []
            end = t0 + args.minutes * 60
            while (now := time.perf_counter()) < end:
                c0 = term.cpu_seconds()
                time.sleep(min(60.0, end - now))
                per_minute.append((term.cpu_seconds() - c0) / (time.perf_counter() - now) * 100)
            cpu = (term.cpu_seconds() - cpu0) / (time.perf_counter() - t0) * 100
            rss = term.peak_rss_mb()
            term.type(" ")
            time.sleep(0.5)
            term.type("q")
            term.process.wait(timeout=15)
        finally:
            if term.process.poll() is None:
                term.process.kill()
    print(f"TUI, live simulated session at 4 Hz for {args.minutes:g} min, 120x40 terminal")
    print(f"{'measure':<28} {'result':>10}   target")
    print(f"{'time to first frame':<28} {first_frame:>9.2f}s   < 1.5 s")
    print(f"{'CPU (of one core)':<28} {cpu:>9.1f}%   < 5 %")
    print(f"{'  minute by minute':<28} " + " ".join(f"{c:.1f}%" for c in per_minute))
    print(f"{'peak RSS':<28} {rss:>8.0f}MB   < 120 MB")


if __name__ == "__main__":
    main()
