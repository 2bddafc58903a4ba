"""The broker settings: the [mqtt] table of the config file and `--mqtt HOST[:PORT]`, checked."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from treadmill.config import ConfigError

DEFAULT_PORT: Final = 1883
DEFAULT_TLS_PORT: Final = 8883
DEFAULT_DISCOVERY_PREFIX: Final = "homeassistant"

KEYS: Final = frozenset({
    "enabled", "host", "port", "username", "password", "password_file", "tls", "base_topic",
    "discovery_prefix",
})  # fmt: skip
TLS_KEYS: Final = frozenset({"ca_file", "cert_file", "key_file"})

# A host name, an IPv4 address, or a name with underscores (some home networks use them).
_HOSTNAME = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$")


@dataclass(frozen=True)
class TlsSettings:
    ca_file: Path | None = None  # None: the system CAs
    cert_file: Path | None = None  # client certificate (optional, needs key_file)
    key_file: Path | None = None


@dataclass(frozen=True)
class MqttSettings:
    host: str
    port: int  # default 1883, or 8883 when tls is set
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never printed or logged
    tls: TlsSettings | None = None
    base_topic: str | None = None  # None: "treadmill/<device id>"
    discovery_prefix: str = DEFAULT_DISCOVERY_PREFIX

    def describe(self) -> str:
        """Where we connect, for status lines and logs: never the password."""
        scheme = "mqtts" if self.tls is not None else "mqtt"
        user = f"{self.username}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 literal
        return f"{scheme}://{user}{host}:{self.port}"


def default_port(tls: TlsSettings | None) -> int:
    return DEFAULT_TLS_PORT if tls is not None else DEFAULT_PORT


def parse_host_port(text: str) -> tuple[str, int | None]:
    """`HOST`, `HOST:PORT` or `[IPv6]:PORT`; ValueError (one line) on anything else."""
    cleaned = text.strip()
    example = "give HOST or HOST:PORT, e.g. --mqtt broker.local:1883"
    if not cleaned:
        raise ValueError(f"no broker host: {example}")
    if "://" in cleaned:
        raise ValueError(f"{text!r} is a URL: {example} (TLS and users go in [mqtt])")
    if cleaned.startswith("["):
        end = cleaned.find("]")
        if end < 0:
            raise ValueError(f"{text!r} has no closing ']': write [IPv6]:PORT, e.g. [::1]:1883")
        host, rest = cleaned[1:end], cleaned[end + 1 :]
        if not _is_ipv6(host):
            raise ValueError(f"{host!r} in brackets is not an IPv6 address: {example}")
        if not rest:
            return host, None
        if not rest.startswith(":"):
            raise ValueError(f"{text!r}: expected ':PORT' after ']', e.g. [::1]:1883")
        return host, _port_text(rest[1:], text)
    if cleaned.count(":") > 1:
        # A bare IPv6 address: its last group can't be told from a port, so there is none.
        if _is_ipv6(cleaned):
            return cleaned, None
        raise ValueError(f"{text!r} is not HOST:PORT: write an IPv6 address as [ADDRESS]:PORT")
    host, sep, port = cleaned.partition(":")
    _check_host(host, text)
    return host, (_port_text(port, text) if sep else None)


def settings_from_config(raw: dict[str, Any], path: Path) -> MqttSettings | None:
    """The [mqtt] table as settings; None when it is empty or says enabled = false."""
    parsed = _parse_table(raw, path)
    if parsed is None or parsed.enabled is False:
        return None
    if parsed.host is None:
        raise _bad(path, "host", "is missing: add host = \"BROKER\" to [mqtt], or set "
                   "enabled = false")
    return parsed.settings(parsed.host, parsed.port)


def resolve(raw: dict[str, Any], override: str | None, path: Path) -> MqttSettings | None:
    """The settings in effect. `--mqtt HOST[:PORT]` (override) wins over the file's host, port
    and enabled = false, and keeps its username, password, TLS and topics. Without a port in
    the override, the default port applies (the file's port belongs to the file's host)."""
    if override is None:
        return settings_from_config(raw, path)
    try:
        host, port = parse_host_port(override)
    except ValueError as exc:
        raise ConfigError(f"--mqtt: {exc}") from exc
    parsed = _parse_table(raw, path) or _Parsed()
    return parsed.settings(host, port)


# ------------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class _Parsed:
    """The [mqtt] table, checked, before a host has been decided on."""

    enabled: bool | None = None
    host: str | None = None
    port: int | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: TlsSettings | None = None
    base_topic: str | None = None
    discovery_prefix: str = DEFAULT_DISCOVERY_PREFIX

    def settings(self, host: str, port: int | None) -> MqttSettings:
        return MqttSettings(
            host=host,
            port=port if port is not None else default_port(self.tls),
            username=self.username,
            password=self.password,
            tls=self.tls,
            base_topic=self.base_topic,
            discovery_prefix=self.discovery_prefix,
        )


def _bad(path: Path, key: str, what: str) -> ConfigError:
    return ConfigError(f"config file {path}: [mqtt] {key} {what}")


def _parse_table(raw: object, path: Path) -> _Parsed | None:
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path}: [mqtt] must be a table: fix it")
    if not raw:
        return None
    unknown = sorted(set(raw) - KEYS)
    if unknown:
        raise _bad(path, ", ".join(map(str, unknown)), "is unknown: remove it; "
                   f"the keys are {', '.join(sorted(KEYS))}")
    enabled = raw.get("enabled")
    if enabled is not None and not isinstance(enabled, bool):
        raise _bad(path, "enabled", f"must be true or false (got {enabled!r}): fix it")
    host = _opt_str(raw, "host", path)
    port = raw.get("port")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int)):
        raise _bad(path, "port", f"must be a whole number from 1 to 65535 (got {port!r}): fix "
                   "it, or remove it for the default")
    if isinstance(port, int) and not 1 <= port <= 65535:
        raise _bad(path, "port", f"must be from 1 to 65535 (got {port}): fix it, or remove it "
                   "for the default")
    username = _opt_str(raw, "username", path)
    if username == "":
        raise _bad(path, "username", "is empty: set it, or remove it to connect without one")
    password = _opt_str(raw, "password", path, secret=True)
    password_file = _opt_str(raw, "password_file", path)
    if password is not None and password_file is not None:
        raise _bad(path, "password", "and password_file are both set: keep only one")
    if password_file is not None:
        password = _read_password(_config_path(password_file, path), path)
    if password is not None and username is None:
        raise _bad(path, "password", "needs a username: add username = \"NAME\" to [mqtt]")
    return _Parsed(
        enabled=enabled,
        host=None if host is None else _config_host(host, path),
        port=port,
        username=username,
        password=password,
        tls=_tls(raw.get("tls"), path),
        base_topic=_topic(raw, "base_topic", path),
        discovery_prefix=_topic(raw, "discovery_prefix", path) or DEFAULT_DISCOVERY_PREFIX,
    )


def _opt_str(raw: dict[str, Any], key: str, path: Path, *, secret: bool = False) -> str | None:
    value = raw.get(key)
    if value is not None and not isinstance(value, str):
        got = type(value).__name__ if secret else repr(value)  # a password is never shown
        raise _bad(path, key, f"must be a string in quotes (got {got}): fix it")
    return value


def _config_host(host: str, path: Path) -> str:
    cleaned = host.strip()
    if cleaned.startswith("[") and cleaned.endswith("]"):
        cleaned = cleaned[1:-1]
    if _is_ipv6(cleaned):
        return cleaned
    try:
        _check_host(cleaned, host)
    except ValueError as exc:
        if ":" in cleaned and "://" not in cleaned:
            raise _bad(path, "host", f"{host!r} has a port in it: put the port in port = "
                       "NUMBER") from exc
        raise _bad(path, "host", f"{host!r} is not a host name or address: write just the "
                   "name, e.g. host = \"broker.local\" (TLS goes in tls = true)") from exc
    return cleaned


def _check_host(host: str, original: str) -> None:
    if not host:
        raise ValueError(f"{original!r} has no host: give HOST or HOST:PORT")
    if not _HOSTNAME.match(host) or ".." in host:
        raise ValueError(
            f"{host!r} is not a host name or address: give HOST or HOST:PORT, e.g. broker.local"
        )


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _port_text(port: str, original: str) -> int:
    if not port.isascii() or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{original!r}: the port must be a number from 1 to 65535, e.g. :1883")
    return int(port)


def _config_path(text: str, path: Path) -> Path:
    # Relative paths are read next to the config file, where the user wrote them.
    candidate = Path(text).expanduser()
    return candidate if candidate.is_absolute() else path.parent / candidate


def _read_password(file: Path, path: Path) -> str:
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise _bad(path, "password_file", f"{file} can't be read ({exc.strerror or exc}): fix "
                   "the path or its permissions") from exc
    except UnicodeDecodeError as exc:
        raise _bad(path, "password_file", f"{file} is not UTF-8 text: write the password in "
                   "it as plain text") from exc
    # Editors and `echo` add a final newline; the password itself never ends in one.
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if not text:
        raise _bad(path, "password_file", f"{file} is empty: write the password in it")
    if "\n" in text or "\r" in text:
        raise _bad(path, "password_file", f"{file} has more than one line: keep only the "
                   "password in it")
    return text


def _tls(value: object, path: Path) -> TlsSettings | None:
    if value is None or value is False:
        return None
    if value is True:
        return TlsSettings()
    if not isinstance(value, dict):
        keys = ", ".join(sorted(TLS_KEYS))
        raise _bad(path, "tls", f"must be true, false or a table of {keys} (got {value!r})")
    unknown = sorted(set(value) - TLS_KEYS)
    if unknown:
        raise _bad(path, f"tls.{', tls.'.join(map(str, unknown))}", "is unknown: remove it; "
                   f"the keys of [mqtt.tls] are {', '.join(sorted(TLS_KEYS))}")
    files: dict[str, Path | None] = {}
    for key in sorted(TLS_KEYS):
        text = value.get(key)
        if text is None:
            files[key] = None
            continue
        if not isinstance(text, str) or not text:
            raise _bad(path, f"tls.{key}", f"must be a file path in quotes (got {text!r})")
        file = _config_path(text, path)
        # Checked now, so a typo is one line here and not an SSL error on every reconnect.
        if not file.is_file():
            raise _bad(path, f"tls.{key}", f"{file} is not a file: fix the path")
        files[key] = file
    if (files["cert_file"] is None) != (files["key_file"] is None):
        have, need = ("cert_file", "key_file") if files["key_file"] is None else (
            "key_file", "cert_file")
        raise _bad(path, f"tls.{have}", f"needs tls.{need} too: add it, or remove tls.{have}")
    return TlsSettings(ca_file=files["ca_file"], cert_file=files["cert_file"],
                       key_file=files["key_file"])


def _topic(raw: dict[str, Any], key: str, path: Path) -> str | None:
    value = _opt_str(raw, key, path)
    if value is None:
        return None
    why = topic_problem(value)
    if why is not None:
        raise _bad(path, key, f"{value!r} {why}: fix it, or remove it for the default")
    return value


def topic_problem(topic: str) -> str | None:
    """Why `topic` can't be a topic prefix of ours, or None if it can."""
    if not topic:
        return "is empty"
    if "+" in topic or "#" in topic:
        return "contains a wildcard ('+' or '#')"
    if topic.startswith("/") or topic.endswith("/"):
        return "starts or ends with '/'"
    if "//" in topic:
        return "has an empty level ('//')"
    if topic.startswith("$"):
        return "starts with '$' (reserved for the broker)"
    if "\x00" in topic or any(c in topic for c in "\r\n"):
        return "contains a control character"
    return None
