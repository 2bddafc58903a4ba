"""A private mosquitto broker for the MQTT tests: config, password file, TLS certificates, process.

`broker` (a fixture) starts one per test on free loopback ports, with a password on the plain
listener and a test CA behind the TLS one, and stops it afterwards. Tests drive its failures:
`kill()` (the broker is gone), `start()` (it is back, same ports), `stall()` / `resume()` (it
still accepts TCP connections but answers nothing: the kernel completes handshakes for a
stopped process). Tests that talk to it must be `@pytest.mark.real_time`: its sockets live
on the wall clock, not on the virtual-time loop the other async tests get.

In a test module: `from mosquitto import Broker` and `from mosquitto import broker as broker`
(the fixture; with `as`, ruff sees a re-export, not an unused import shadowed by parameters).
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import NoReturn, Self

import pytest

MISSING = (
    "mosquitto is not installed: `./run test` installs it (Debian), "
    "or install it with your package manager"
)
MISSING_OPENSSL = (
    "the openssl command is not installed: `./run test` installs it (Debian), "
    "or install it with your package manager"
)
START_TIMEOUT = 5.0  # seconds for a broker to accept connections
STOP_TIMEOUT = 5.0  # seconds for SIGTERM before SIGKILL

# Debian installs the broker in /usr/sbin, which is not on a normal user's PATH;
# Homebrew installs it in its own sbin.
SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/opt/homebrew/sbin")

# One config for every openssl step; written to a file because LibreSSL (macOS) has no -addext.
# The extensions are what Python's ssl accepts even with VERIFY_X509_STRICT (3.13's default
# context): a critical CA basicConstraints, key usages, key identifiers, the server's SANs.
OPENSSL_CONFIG = """\
[req]
distinguished_name = dn
prompt = no

[dn]
CN = treadmill test CA

[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""
EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]  # fast keygen


def find_program(name: str) -> str | None:
    """The path of an installed program, looking on PATH and then in the sbin dirs."""
    found = shutil.which(name)
    if found:
        return found
    for directory in SBIN_DIRS:
        path = os.path.join(directory, name)
        if os.access(path, os.X_OK):
            return path
    return None


def fail(message: str) -> NoReturn:
    """Fail the test with just `message` (a missing tool needs no traceback)."""
    pytest.fail(message, pytrace=False)


def free_ports(count: int) -> list[int]:
    """`count` distinct free TCP ports on 127.0.0.1 (all held open together, so distinct)."""
    held: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            held.append(s)
        return [s.getsockname()[1] for s in held]
    finally:
        for s in held:
            s.close()


def password_line(username: str, password: str) -> str:
    """A mosquitto 2.x password file line: PBKDF2-SHA512, 101 rounds ("$7$"), as mosquitto_passwd
    writes it. Only used where mosquitto_passwd is missing."""
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 101, 64)
    b64 = base64.b64encode
    return f"{username}:$7$101${b64(salt).decode()}${b64(digest).decode()}\n"


def run(command: list[str], cwd: Path) -> None:
    done = subprocess.run(command, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=30, check=False)
    if done.returncode != 0:
        fail(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}")


class Broker:
    """A mosquitto process with its files in `directory` (made if absent).

    Plain MQTT on `host`:`port`, TLS on `host`:`tls_port` (server certificate for 127.0.0.1 and
    localhost, signed by the CA in `ca_file`); both require `username` / `password`. The broker
    logs to `log_file` (all starts, appended; see `log_tail()`). Usable as a context manager
    (start ... stop); the `broker` fixture does that.
    """

    host: str
    port: int
    tls_port: int
    ca_file: Path
    username: str
    password: str
    directory: Path
    config_file: Path
    log_file: Path

    def __init__(self, directory: Path, *, use_mosquitto_passwd: bool = True) -> None:
        program = find_program("mosquitto")
        if program is None:
            fail(MISSING)
        self._program = program
        self._process: subprocess.Popen[bytes] | None = None
        self._stalled = False
        self.host = "127.0.0.1"
        self.port, self.tls_port = free_ports(2)
        self.username = "treadmill"
        self.password = secrets.token_urlsafe(12)
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.ca_file = directory / "ca.crt"
        self.config_file = directory / "mosquitto.conf"
        self.log_file = directory / "mosquitto.log"
        self._make_certificates()
        self._make_password_file(use_mosquitto_passwd)
        self._write_config()

    # ---- files -------------------------------------------------------------------

    def _make_certificates(self) -> None:
        openssl = find_program("openssl")
        if openssl is None:
            fail(MISSING_OPENSSL)
        d = self.directory
        (d / "openssl.cnf").write_text(OPENSSL_CONFIG, encoding="utf-8")
        cnf = ["-config", "openssl.cnf"]
        run([openssl, "req", "-x509", "-new", *cnf, "-extensions", "ca_ext", *EC_KEY,
             "-keyout", "ca.key", "-out", "ca.crt", "-days", "7", "-sha256",
             "-subj", "/CN=treadmill test CA"], d)
        run([openssl, "req", "-new", *cnf, *EC_KEY, "-keyout", "server.key",
             "-out", "server.csr", "-subj", "/CN=localhost"], d)
        run([openssl, "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-set_serial", str(secrets.randbits(63)), "-days", "7", "-sha256",
             "-extfile", "openssl.cnf", "-extensions", "server_ext", "-out", "server.crt"], d)
        for key in ("ca.key", "server.key"):
            (d / key).chmod(0o600)  # mosquitto warns about world-readable keys

    def _make_password_file(self, use_mosquitto_passwd: bool) -> None:
        path = self.directory / "passwd"
        tool = find_program("mosquitto_passwd") if use_mosquitto_passwd else None
        if tool is not None:
            # The broker's own tool writes the hash format this broker version reads.
            run([tool, "-b", "-c", str(path), self.username, self.password], self.directory)
        else:
            path.write_text(password_line(self.username, self.password), encoding="utf-8")
        path.chmod(0o600)  # mosquitto warns about world-readable password files

    def _write_config(self) -> None:
        d = self.directory
        lines = [
            "# Written by tests/mosquitto.py for one test.",
            "per_listener_settings false",
            "allow_anonymous false",
            f"password_file {d / 'passwd'}",
            "persistence false",
            # stderr is the log file (see start): startup errors land there too.
            "log_dest stderr",
            "log_timestamp_format %H:%M:%S",
            "connection_messages true",
            # The TLS listener first: listeners open in order, so once the plain port accepts
            # (what start() polls) the TLS port listens too, and the poll adds no TLS noise.
            f"listener {self.tls_port} {self.host}",
            f"cafile {self.ca_file}",
            f"certfile {d / 'server.crt'}",
            f"keyfile {d / 'server.key'}",
            f"listener {self.port} {self.host}",
        ]
        if os.geteuid() == 0:
            # Started as root, mosquitto becomes user `mosquitto`, who can't read pytest's
            # 0700 tmp dirs or our 0600 keys; "root" tells it to keep its user (no other
            # privilege is involved: loopback ports above 1024, files we wrote).
            lines.insert(1, "user root")
        self.config_file.write_text("\n".join(lines) + "\n", encoding="utf-8")

    # ---- process -----------------------------------------------------------------

    @property
    def running(self) -> bool:
        """The process exists (it may be stalled)."""
        return self._process is not None and self._process.poll() is None

    @property
    def stalled(self) -> bool:
        return self._stalled

    def start(self) -> None:
        """Start the broker (again: same ports, files and password) and wait until it accepts
        connections; fail with the log's tail if it doesn't within START_TIMEOUT."""
        if self.running:
            raise RuntimeError("the broker is already running")
        with self.log_file.open("ab") as log:
            log.write(f"--- tests/mosquitto.py: starting {self._program}\n".encode())
            log.flush()
            # Its own session: a Ctrl-C meant for pytest must not kill the broker before the
            # fixture's teardown does.
            self._process = subprocess.Popen(
                [self._program, "-c", str(self.config_file)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._stalled = False
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            status = self._process.poll()
            if status is not None:
                self._process = None
                fail(f"mosquitto exited at start (status {status}); {self.log_file}:\n"
                     f"{self.log_tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.kill()
                    fail(f"mosquitto accepted no connection on {self.host}:{self.port} within "
                         f"{START_TIMEOUT:g} s; {self.log_file}:\n{self.log_tail()}")
                time.sleep(0.01)

    def kill(self) -> None:
        """SIGKILL: the broker is gone (its ports refuse connections) when this returns."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.kill()  # a stopped process dies of SIGKILL too
        self._process.wait()
        self._process = None
        self._stalled = False

    def stall(self) -> None:
        """SIGSTOP: connections are still accepted (by the kernel) but nothing is answered."""
        if not self.running:
            raise RuntimeError("the broker is not running")
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)
        # Wait for the stop to take effect (it is asynchronous). A stopped child's status
        # does not reap it, so Popen still sees it running.
        os.waitpid(self._process.pid, os.WUNTRACED)
        self._stalled = True

    def resume(self) -> None:
        """SIGCONT: a stalled broker answers again (and catches up on what it was sent)."""
        if self._process is not None and self._stalled:
            self._process.send_signal(signal.SIGCONT)
        self._stalled = False

    def stop(self) -> None:
        """Stop the broker whatever its state (stalled, killed, never started); idempotent."""
        if self._process is None:
            return
        self.resume()  # a stopped process can't act on SIGTERM
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def died(self) -> bool:
        """The process ended on its own (not by kill() or stop())."""
        return self._process is not None and self._process.poll() is not None

    def log_tail(self, lines: int = 40) -> str:
        """The last `lines` lines of the broker's log (for failure messages)."""
        try:
            text = self.log_file.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A started private mosquitto; stopped after the test (resumed first if stalled)."""
    b = Broker(tmp_path / "mosquitto")
    b.start()
    try:
        yield b
    finally:
        died = b.died()
        b.stop()
    if died:
        # A crash is a finding, even when the test itself passed.
        fail(f"mosquitto died during the test; {b.log_file}:\n{b.log_tail()}")
