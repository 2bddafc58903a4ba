"""The `treadmill` command line: scan, pair, devices, forget, status, programs, session, mqtt,
history, export, simulators.

Every failure a user can cause or meet (bad address, no adapter, broken config, unknown
simulator profile) ends as one line on stderr that says what to do, and a non-zero exit code.
A closed stdout (`treadmill programs | head`) ends a command quietly, as Unix tools do.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import math
import os
import re
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any, BinaryIO

import click
from bleak.exc import BleakError

from safety import (
    AlarmKind,
    EndReason,
    EndSession,
    GovernorState,
    Orientation,
    Resume,
    SafetyConfig,
)
from safety.wording import ACTIONABLE, checklist_text
from treadmill import session_events as ev
from treadmill import stop_signals
from treadmill.client import DeviceInfo, FtmsClient
from treadmill.config import (
    ConfigError,
    PairedDevice,
    config_path,
    edit_config,
    load_config,
    normalize_address,
)
from treadmill.errors import TreadmillError, describe_bluetooth_error
from treadmill.events import LinkLost, StatusEvent, TelemetrySample
from treadmill.ftms import Range
from treadmill.history.autoexport import auto_export_from_config
from treadmill.mqtt.settings import MqttSettings, resolve
from treadmill.programs import (
    Program,
    TurnAroundItem,
    WalkItem,
    catalogue,
    find_program,
    plan,
    user_programs_dir,
    validate,
)
from treadmill.scan import scan
from treadmill.session import SessionEvent, SessionResult, SessionRunner
from treadmill.wiring import (
    SimulatorOptions,
    loop_factory,
    make_simulator,
    open_client,
    simulator_factory,
)

EXIT_USER_ERROR = 1
EXIT_INTERNAL_ERROR = 3
EXIT_OUTPUT_CLOSED = 128 + 13  # what a shell shows for a tool killed by SIGPIPE


class OutputClosed(Exception):
    """Whoever read our stdout has gone (a closed pipe or terminal)."""


def fail(message: str, code: int = EXIT_USER_ERROR) -> None:
    with contextlib.suppress(OSError):  # a closed stderr: the exit code still says it
        click.echo(f"error: {message}", err=True)
    sys.exit(code)


def quiet_exit_on_closed_output() -> None:
    """Stdout is gone: exit without a word. Point stdout at /dev/null first, so the
    interpreter's final flush can't complain about the broken pipe either."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    sys.exit(EXIT_OUTPUT_CLOSED)


def to_json(value: Any, indent: int | None = None) -> str:
    """JSON for people's scripts: never NaN or Infinity (invalid JSON), null instead."""
    return json.dumps(_finite(value), indent=indent, allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


# ---- option types ----------------------------------------------------------------------------


class FiniteFloatRange(click.ParamType):
    """A finite number within [minimum, maximum]: click's FloatRange lets nan through."""

    name = "number"

    def __init__(self, minimum: float, maximum: float) -> None:
        self.minimum = minimum
        self.maximum = maximum

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> float:
        if isinstance(value, float) and math.isfinite(value):
            number = value
        else:
            try:
                number = float(value)
            except (TypeError, ValueError):
                self.fail(f"'{value}' is not a number", param, ctx)
            if not math.isfinite(number):
                self.fail(f"'{value}' is not a finite number", param, ctx)
        if not self.minimum <= number <= self.maximum:
            self.fail(f"{value} is not between {self.minimum:g} and {self.maximum:g}",
                      param, ctx)
        return number

    def __repr__(self) -> str:
        return f"FiniteFloatRange({self.minimum:g}, {self.maximum:g})"


MIN_SPEEDUP = 0.1
MAX_SPEEDUP = 10000.0
MAX_TUI_SPEEDUP = 20.0


class Speedup(click.ParamType):
    """--speedup: a factor N in [0.1, 10000], or "max" (as fast as the CPU allows: None)."""

    name = "N|max"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> float | None:
        if value is None or (isinstance(value, float) and math.isfinite(value)):
            return value
        if str(value).strip().lower() == "max":
            return None
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"'{value}' is not a number or 'max'", param, ctx)
        if not math.isfinite(number) or not MIN_SPEEDUP <= number <= MAX_SPEEDUP:
            self.fail(f"{value} is not between {MIN_SPEEDUP:g} and {MAX_SPEEDUP:g} (or 'max')",
                      param, ctx)
        return number


def check_speedup(factor: float | None, simulate: bool) -> float | None:
    if factor != 1.0 and not simulate:
        raise click.UsageError("--speedup only works with --simulate")
    return factor


def run_async[T](coro: Coroutine[Any, Any, T], *, speedup: float | None = 1.0) -> T:
    """Run a command's coroutine: real time, or a simulated clock that runs `speedup` x faster
    (None: as fast as possible)."""
    if speedup == 1.0:
        return asyncio.run(coro)
    from simulators.virtual_time import run_virtual

    return run_virtual(coro, speedup=speedup)


def user_errors[**P, T](func: Callable[P, T]) -> Callable[P, T]:
    """Turn every error a user can meet into one line and an exit code; never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        ctx = click.get_current_context()
        debug = bool(ctx.find_root().params.get("debug"))
        address = kwargs.get("device") or kwargs.get("address")
        try:
            return func(*args, **kwargs)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except (BrokenPipeError, OutputClosed):
            quiet_exit_on_closed_output()
        except (TreadmillError, BleakError, TimeoutError) as exc:
            if debug:
                raise
            fail(describe_bluetooth_error(exc, address if isinstance(address, str) else None),
                 getattr(exc, "exit_code", EXIT_USER_ERROR))
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except OSError as exc:
            if debug:
                raise
            fail(describe_bluetooth_error(exc))
        except Exception as exc:  # a bug: still one line, with the way to see more
            if debug:
                raise
            fail(f"internal error ({type(exc).__name__}: {exc}); run again with --debug "
                 "and report it", EXIT_INTERNAL_ERROR)
        raise AssertionError("unreachable")

    return wrapper


_SIM_LINK_OPTIONS = ("sim_transport", "sim_mtu", "sim_connection_interval",
                     "sim_encrypted_control_point")


def simulator_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--simulate and the options that shape the simulated treadmill."""

    command = func

    @functools.wraps(command)
    def keep_link_options(*args: Any, **kwargs: Any) -> Any:
        # How the simulator is reached (transport, MTU, interval, encryption) matters only
        # where it is built: kept on the click context for _sim_options, so every command
        # gets them without naming them.
        ctx = click.get_current_context()
        for name in _SIM_LINK_OPTIONS:
            ctx.meta[name] = kwargs.pop(name, None)
        return command(*args, **kwargs)

    func = keep_link_options
    func = click.option(
        "--sim-encrypted-control-point", is_flag=True, default=False,
        help="The simulated control point needs an encrypted link (pairing, Just Works).")(func)
    func = click.option(
        "--sim-connection-interval", type=FiniteFloatRange(7.5, 4000), default=None,
        metavar="MS", help="ATT transport: air time per connection event (default 30 ms).")(func)
    func = click.option(
        "--sim-mtu", type=click.IntRange(23, 517), default=23, show_default=True,
        help="ATT transport: the largest ATT MTU the simulated treadmill accepts.")(func)
    func = click.option(
        "--sim-transport", type=click.Choice(["gatt", "att"]), default="gatt",
        show_default=True,
        help="How the simulator is reached: gatt (direct) or att (a simulated Bluetooth LE "
             "link through Bumble; needs the [att] extra).")(func)
    func = click.option(
        "--sim-trace", metavar="FILE", default=None,
        help="Write the simulated machine's physical state (belt, incline, every "
             "control-point write) as JSON lines to FILE.")(func)
    func = click.option(
        "--sim-notify-hz", type=FiniteFloatRange(1, 10), default=None,
        help="Simulated telemetry rate (1-10 Hz; default: the profile's).")(func)
    func = click.option(
        "--sim-fault", "sim_faults", multiple=True, metavar="KIND@SECONDS",
        help="Inject a fault into the simulator, e.g. disconnect@30 (repeatable).")(func)
    func = click.option(
        "--sim-profile", default="home", show_default=True, metavar="NAME",
        help="Simulated device profile (see `treadmill simulators`).")(func)
    func = click.option(
        "--simulate", is_flag=True, help="Use the built-in simulated treadmill.")(func)
    return func


def _link_notice(text: str) -> None:
    """News from the Bluetooth link (e.g. pairing with the treadmill now), on stderr so a
    --json stream stays clean."""
    click.echo(text, err=True)


def _sim_options(profile: str, faults: tuple[str, ...], notify_hz: float | None,
                 trace: str | None = None) -> SimulatorOptions:
    ctx = click.get_current_context(silent=True)
    meta = ctx.meta if ctx is not None else {}
    return SimulatorOptions(
        profile=profile, faults=faults, notify_hz=notify_hz, trace=trace,
        transport=meta.get("sim_transport") or "gatt",
        mtu=meta.get("sim_mtu") or 23,
        connection_interval_ms=meta.get("sim_connection_interval"),
        encrypted_control_point=bool(meta.get("sim_encrypted_control_point")),
    )


@click.group(invoke_without_command=True)
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Drive an FTMS treadmill, with a safety-aware backward-walking mode."""
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.ERROR,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if ctx.invoked_subcommand is None:
        # No arguments: the TUI, on the paired treadmill or else the built-in simulator
        # (every other option at its default).
        ctx.invoke(session)


# ---- scan ------------------------------------------------------------------------------------


@main.command("scan")
@click.option("--timeout", type=FiniteFloatRange(0.5, 120), default=5.0, show_default=True,
              help="Seconds to listen.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@simulator_options
@user_errors
def scan_command(timeout: float, as_json: bool, simulate: bool, sim_profile: str,
                 sim_faults: tuple[str, ...], sim_notify_hz: float | None,
                 sim_trace: str | None) -> None:
    """List FTMS treadmills in range: name, address, signal strength."""

    async def run() -> list[dict[str, object]]:
        backend = None
        sim = None
        if simulate:
            sim = make_simulator(_sim_options(sim_profile, sim_faults, sim_notify_hz,
                                              sim_trace))
            backend = sim.scanner_backend
        try:
            found = await scan(timeout, backend=backend)
        finally:
            if sim is not None:
                sim.close()
        return [t.as_dict() | ({"simulated": True} if simulate else {}) for t in found]

    found = run_async(run(), speedup=None if simulate else 1.0)
    if as_json:
        click.echo(to_json(found, indent=2))
        return
    if not found:
        click.echo("No FTMS treadmill found. Is it switched on and not connected to another app?")
        return
    for t in found:
        sim_mark = "  [SIMULATED]" if t.get("simulated") else ""
        click.echo(f"{t['address']}  {t['rssi']:>4} dBm  {t['name']}{sim_mark}")


# ---- pairing memory ----------------------------------------------------------------------------


@main.command()
@click.argument("address")
@click.option("--no-check", is_flag=True, help="Remember it without connecting first.")
@simulator_options
@user_errors
def pair(address: str, no_check: bool, simulate: bool, sim_profile: str,
         sim_faults: tuple[str, ...], sim_notify_hz: float | None,
         sim_trace: str | None) -> None:
    """Remember a treadmill (checked by connecting) and make it the default."""
    load_config()  # a broken config file: say so before connecting to anything
    address = normalize_address(address)
    device = PairedDevice(address=address)
    if not no_check:
        options = _sim_options(sim_profile, sim_faults, sim_notify_hz, sim_trace)
        info = run_async(_read_info(address, simulate, options),
                         speedup=None if simulate else 1.0)
        device = PairedDevice(address=address, name=info.name,
                              model=" ".join(filter(None, [info.manufacturer, info.model])))
    # Read, change and write under one lock: another `pair` or `forget` running at the same
    # time must not lose its change, or ours.
    with edit_config() as config:
        config.remember(device)
        config.default_device = address
    click.echo(f"Paired {device.name or address} ({address}); saved in {config_path()}")


async def _read_info(address: str, simulate: bool, options: SimulatorOptions) -> DeviceInfo:
    if simulate:
        sim = make_simulator(options, address)
        try:
            client = FtmsClient(address, backend=sim.client_backend, on_notice=_link_notice)
            async with client:
                assert client.info is not None
                return client.info
        finally:
            sim.close()
    async with FtmsClient(address, on_notice=_link_notice) as client:
        assert client.info is not None
        return client.info


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@user_errors
def devices(as_json: bool) -> None:
    """List remembered treadmills."""
    config = load_config()
    rows = [
        {"address": d.address, "name": d.name, "model": d.model, "paired_at": d.paired_at,
         "default": d.address == config.default_device}
        for d in config.devices
    ]
    if as_json:
        click.echo(to_json(rows, indent=2))
        return
    if not rows:
        click.echo("No treadmill remembered yet: `treadmill scan`, then `treadmill pair ADDRESS`.")
        return
    for row in rows:
        mark = "*" if row["default"] else " "
        click.echo(f"{mark} {row['address']}  {row['name'] or '?'}  {row['model']}")


@main.command()
@click.argument("address")
@user_errors
def forget(address: str) -> None:
    """Forget a remembered treadmill."""
    address = normalize_address(address)
    with edit_config() as config:
        if not config.forget(address):
            # Leaving the block by an exception writes nothing.
            raise ConfigError(f"{address} is not remembered (see `treadmill devices`)")
    click.echo(f"Forgot {address}")


# ---- status ------------------------------------------------------------------------------------


def info_as_dict(info: DeviceInfo) -> dict[str, object]:
    def rng(r: Range | None) -> dict[str, float] | None:
        if r is None:
            return None
        return {"min": r.minimum, "max": r.maximum, "step": r.step}

    return {
        "name": info.name,
        "address": info.address,
        "manufacturer": info.manufacturer,
        "model": info.model,
        "serial": info.serial,
        "firmware": info.firmware,
        "speed_range_kmh": rng(info.speed_range),
        "incline_range_pct": rng(info.incline_range),
        "reports_incline": info.reports_incline,
    }


def sample_as_dict(sample: TelemetrySample, t0: float) -> dict[str, object]:
    row: dict[str, object] = {"t": round(sample.t - t0, 2), "speed_kmh": sample.speed_kmh}
    for key in ("incline_pct", "distance_m", "elapsed_s", "heart_rate_bpm"):
        value = getattr(sample, key)
        if value is not None:
            row[key] = value
    return row


@main.command()
@click.option("--device", metavar="ADDRESS", help="Treadmill address (default: the paired one).")
@click.option("--seconds", type=FiniteFloatRange(0, 3600), default=10.0, show_default=True,
              help="How long to show live telemetry.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document at the end.")
@click.option("--speedup", type=Speedup(), default="1", show_default=True,
              help="With --simulate: run the simulated clock N times faster (0.1-10000, "
                   "or max).")
@simulator_options
@user_errors
def status(device: str | None = None, seconds: float = 10.0, as_json: bool = False,
           speedup: float | None = 1.0, simulate: bool = False, sim_profile: str = "home",
           sim_faults: tuple[str, ...] = (), sim_notify_hz: float | None = None,
           sim_trace: str | None = None) -> None:
    """Device information, speed/incline ranges, and live telemetry for a while.

    Read-only: it never sends a command. With --simulate, a simulated person walks on the
    virtual treadmill and changes its speed at the console, so there is something to watch.
    """
    factor = check_speedup(speedup, simulate)
    config = load_config()
    client, sim = open_client(simulate=simulate, device=device, config=config,
                              sim_options=_sim_options(sim_profile, sim_faults, sim_notify_hz,
                                                       sim_trace))
    client.on_notice = _link_notice
    result = run_async(_status(client, sim, seconds, as_json), speedup=factor)
    if as_json:
        click.echo(to_json(result, indent=2))


async def _status(client: FtmsClient, sim: Any, seconds: float, as_json: bool) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    samples: list[dict[str, object]] = []
    statuses: list[dict[str, object]] = []
    link_lost: str | None = None
    try:
        info = await client.connect()
        if not as_json:
            print_info(info, simulated=sim is not None)
        t0 = loop.time()
        if sim is not None:
            if hasattr(sim, "set_trace_origin"):
                sim.set_trace_origin(t0)  # trace times match the telemetry's `t`
            sim.start_demo_walker(every_s=2.5)
        try:
            async with asyncio.timeout(seconds):
                async for event in client.events():
                    if isinstance(event, TelemetrySample):
                        row = sample_as_dict(event, t0)
                        samples.append(row)
                        if not as_json:
                            click.echo(format_sample(row))
                    elif isinstance(event, StatusEvent):
                        statuses.append({"t": round(event.t - t0, 2), "kind": str(event.kind),
                                         "code": event.code, "value": event.value})
                        if not as_json:
                            click.echo(f"  t={event.t - t0:6.1f} s  machine status: {event.kind}")
                    elif isinstance(event, LinkLost):
                        link_lost = event.reason
                        break
        except TimeoutError:
            pass
    finally:
        await client.disconnect()
        if sim is not None:
            sim.close()
    if link_lost == "disconnected":
        message = "the treadmill disconnected: check it is on and in range, then try again"
        if not as_json:
            raise TreadmillError(message)
    return {
        "device": info_as_dict(info),
        "simulated": sim is not None,
        "telemetry": samples,
        "status_events": statuses,
        "malformed_packets": client.malformed_packets,
        "link_lost": link_lost == "disconnected",
    }


def print_info(info: DeviceInfo, *, simulated: bool) -> None:
    mark = "  [SIMULATED]" if simulated else ""
    click.echo(f"{info.name} ({info.address}){mark}")
    details = ", ".join(
        f"{label} {value}"
        for label, value in (("by", info.manufacturer), ("model", info.model),
                             ("firmware", info.firmware))
        if value
    )
    if details:
        click.echo(f"  {details}")
    if info.speed_range:
        r = info.speed_range
        click.echo(f"  speed    {r.minimum:.1f}-{r.maximum:.1f} km/h in {r.step:g} km/h steps")
    else:
        click.echo("  speed    range not reported")
    if info.incline_range:
        r = info.incline_range
        click.echo(f"  incline  {r.minimum:g}-{r.maximum:g} % in {r.step:g} % steps")
    else:
        click.echo("  incline  none")


def format_sample(row: dict[str, object]) -> str:
    speed = row.get("speed_kmh")
    text = f"  t={row['t']:6.1f} s  speed {speed:5.2f} km/h" if speed is not None else (
        f"  t={row['t']:6.1f} s  speed   n/a")
    if "incline_pct" in row:
        text += f"  incline {row['incline_pct']:4.1f} %"
    if "distance_m" in row:
        text += f"  distance {row['distance_m']} m"
    if "heart_rate_bpm" in row:
        text += f"  heart rate {row['heart_rate_bpm']} bpm"
    return text



# ---- programs ----------------------------------------------------------------------------------


def program_summary(program: Program) -> dict[str, object]:
    return {
        "name": program.name,
        "title": program.title,
        "source": program.source,
        "minutes": round(program.duration_s / 60, 2),
        "backward_minutes": round(program.backward_s / 60, 2),
        "turnarounds": program.turnarounds,
        "needs_incline_unlock": program.unlock_backward_incline,
    }


_UNLOCK_NOTE = re.compile(r"\s*\([^()]*\bunlock[^()]*\)", re.IGNORECASE)


@main.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@user_errors
def programs(ctx: click.Context, as_json: bool) -> None:
    """List the built-in and your own programs (TOML files in the config folder)."""
    if ctx.invoked_subcommand is not None:
        return
    found = catalogue()
    rows = [program_summary(p) for p in found.programs.values()]
    if as_json:
        click.echo(to_json({"programs": rows, "problems": found.problems}, indent=2))
        return
    for row in rows:
        title = str(row["title"])
        unlock = ""
        if row["needs_incline_unlock"]:
            # Said once, as the option to use: a title may already say it in its own words.
            title = _UNLOCK_NOTE.sub("", title).strip() or title
            unlock = "  (needs --unlock-backward-incline)"
        click.echo(f"{row['name']:<18} {row['minutes']:>5g} min, {row['backward_minutes']:>4g} "
                   f"min backward  {title}{unlock}")
    click.echo(f"\nYour own programs go in {user_programs_dir()} (see `treadmill programs show "
               "taster` for the format).")
    for problem in found.problems:
        click.echo(f"warning: {problem}", err=True)


@programs.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@user_errors
def programs_show(name: str, as_json: bool) -> None:
    """Show a program's steps, with the turn-arounds the session will insert."""
    program = find_program(name)
    if as_json:
        steps = [
            {"step": item.index, "orientation": str(item.step.orientation),
             "seconds": item.step.duration_s, "speed_kmh": item.step.speed_kmh,
             "incline_pct": item.step.incline_pct, "cue": item.step.cue}
            if isinstance(item, WalkItem) else {"turn_around": str(item.to)}
            for item in plan(program)
        ]
        click.echo(to_json(program_summary(program) | {
            "description": program.description.strip(), "plan": steps}, indent=2))
        return
    summary = program_summary(program)
    click.echo(f"{program.title} ({program.name}, {program.source})")
    if program.description:
        click.echo("  " + " ".join(program.description.split()))
    click.echo(f"  {summary['minutes']:g} min in all, {summary['backward_minutes']:g} min "
               "backward")
    for item in plan(program):
        if isinstance(item, TurnAroundItem):
            click.echo(f"      -- stop, turn to face {item.to}, confirm, start slowly --")
            continue
        s = item.step
        incline = f" at {s.incline_pct:g} %" if s.incline_pct else ""
        click.echo(f"  {item.index:>2}. {s.orientation:<8} {s.duration_s / 60:>4g} min  "
                   f"{s.speed_kmh:g} km/h{incline}  {s.cue}")


# ---- session -----------------------------------------------------------------------------------

SAFETY_CHECKLIST = checklist_text("SPACE (or Ctrl-C here)")


def safety_config_for(config_safety: dict[str, Any], unlock_incline: bool) -> SafetyConfig:
    """The user's safety settings (stricter only), plus the incline unlock if asked for."""
    values = dict(config_safety)
    if unlock_incline:
        values["backward_incline_unlocked"] = True
    try:
        return SafetyConfig.from_user_dict(values)
    except ValueError as exc:
        raise ConfigError(f"[safety] in {config_path()}: {exc}") from exc


CONFIRM_WORDS = frozenset({"", "y", "yes"})
CLOSED_STDIN = ("no one can confirm the turn-around (standard input is closed): use "
                "--auto-confirm with --simulate, or run interactively")


class HeadlessInput:
    """The one reader of stdin for a whole headless session, without a thread (nothing outlives
    the session). What a line means depends on the moment:

    - a turn-around waits for confirmation: Enter, "y" or "yes" confirms (nothing else does:
      a stray line must never let the belt start behind someone's back);
    - the session is paused (at the console): "resume" resumes slowly, "stop" ends it;
    - "stop" ends the session at any time; anything else gets a hint saying what works now.

    A pipe or terminal is read as lines arrive. A regular file (or a stream without a file
    descriptor, as in tests) is read one line at a time, only when an answer is wanted, so a
    file of scripted answers keeps working. A closed stdin while a confirmation is wanted ends
    the session safely: nobody can confirm."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self._say = say
        self.runner: SessionRunner | None = None
        self._confirm: asyncio.Future[None] | None = None
        self._buffer = b""
        self._eof = False
        self._fd: int | None = None
        self._lazy: BinaryIO | None = None
        self._lazy_task: asyncio.Task[None] | None = None
        self._wanted: asyncio.Event | None = None

    # ---- life cycle ------------------------------------------------------------------------

    def start(self, runner: SessionRunner) -> None:
        self.runner = runner
        loop = asyncio.get_running_loop()
        self._wanted = asyncio.Event()
        stdin = sys.stdin
        try:
            fd = stdin.fileno() if stdin is not None else None
        except (AttributeError, OSError, ValueError):
            fd = None  # no descriptor (a test's in-memory stdin)
        if fd is not None:
            try:
                loop.add_reader(fd, self._readable, fd)
                self._fd = fd
                return
            except PermissionError:
                pass  # a regular file or /dev/null: epoll can't watch it, reads never block
            except (OSError, ValueError):
                self._eof = True  # closed
                return
        buffer = getattr(stdin, "buffer", None)
        if buffer is None:
            self._eof = True
            return
        self._lazy = buffer
        self._lazy_task = loop.create_task(self._read_lazily(), name="stdin")

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._fd)
            self._fd = None
        if self._lazy_task is not None:
            self._lazy_task.cancel()
            self._lazy_task = None

    def on_event(self, event: SessionEvent) -> None:
        """Called for every session event: a lazily read stdin is read when an answer is
        wanted (a confirmation, or a pause)."""
        self._update_wanted()

    # ---- the Confirmer -----------------------------------------------------------------------

    async def confirm(self, to: Orientation) -> None:
        if self._eof:
            raise TreadmillError(CLOSED_STDIN)
        self._say(f"Turn to face {to}, hold the rails, then press Enter (or type yes). "
                  'Type "stop" to end the session.')
        self._confirm = asyncio.get_running_loop().create_future()
        self._update_wanted()
        try:
            await self._confirm
        finally:
            self._confirm = None
            self._update_wanted()

    # ---- reading ---------------------------------------------------------------------------

    def _paused(self) -> bool:
        runner = self.runner
        return (runner is not None and runner.governor is not None
                and runner.governor.state == GovernorState.PAUSED)

    def _update_wanted(self) -> None:
        if self._wanted is None:
            return
        if (self._confirm is not None and not self._confirm.done()) or self._paused():
            self._wanted.set()
        else:
            self._wanted.clear()

    def _readable(self, fd: int) -> None:
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""  # a terminal that went away reads as EIO: the same as closed
        if not chunk:
            self._at_eof()
            return
        self._buffer += chunk
        while b"\n" in self._buffer:
            line, _, self._buffer = self._buffer.partition(b"\n")
            self._line(line)

    async def _read_lazily(self) -> None:
        assert self._lazy is not None and self._wanted is not None
        while True:
            await self._wanted.wait()
            try:
                line = self._lazy.readline()
            except (OSError, ValueError):
                line = b""
            if not line:
                self._at_eof()
                return
            self._line(line.rstrip(b"\n"))
            await asyncio.sleep(0)  # let the answer take effect before reading the next line

    def _at_eof(self) -> None:
        self._eof = True
        if self._fd is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._fd)
            self._fd = None
        if self._confirm is not None and not self._confirm.done():
            self._confirm.set_exception(TreadmillError(CLOSED_STDIN))

    def _line(self, raw: bytes) -> None:
        text = raw.decode("utf-8", "replace").strip().lower()
        runner = self.runner
        if runner is None or runner.governor is None:
            self._say("The session is starting: wait for it (Ctrl-C stops).")
            return
        if runner.governor.state == GovernorState.ENDED:
            return  # the session is over; nothing to answer
        if self._confirm is not None and not self._confirm.done():
            if text in CONFIRM_WORDS:
                self._confirm.set_result(None)
            elif text == "stop":
                self._end(runner)
            else:
                self._say('Not a confirmation: press Enter (or type "yes") once you face the '
                          'other way and hold the rails, or type "stop" to end the session.')
            return
        if self._paused():
            if text == "resume":
                runner.submit(lambda t: Resume(t))
            elif text == "stop":
                self._end(runner)
            else:
                self._say('Paused: type "resume" and Enter to start again slowly, or "stop" '
                          "to end the session.")
            return
        if text == "stop":
            self._end(runner)
            return
        self._say('Nothing to answer right now: type "stop" and Enter to end the session '
                  "(Ctrl-C stops the belt at once).")

    def _end(self, runner: SessionRunner) -> None:
        runner.submit(lambda t: EndSession(t, "stopped from the keyboard"))


async def simulated_person_turns(to: Orientation) -> None:
    """--auto-confirm: the simulated person takes a few seconds to turn around."""
    await asyncio.sleep(3.0)


def require_terminal() -> None:
    """The TUI draws on a terminal and reads keys from one: into a pipe it would run unseen,
    with nobody able to press STOP."""
    def is_tty(stream: Any) -> bool:
        try:
            return stream is not None and stream.isatty()
        except (AttributeError, ValueError, OSError):
            return False

    if not (is_tty(sys.stdin) and is_tty(sys.stdout)):
        raise TreadmillError(
            "the TUI needs a terminal (standard input and output are not one): run it in a "
            "terminal, or use `treadmill session PROGRAM --headless`"
        )


@main.command()
@click.argument("program_name", metavar="PROGRAM", required=False)
@click.option("--device", metavar="ADDRESS", help="Treadmill address (default: the paired one).")
@click.option("--headless", is_flag=True, help="No TUI: progress as lines (or JSON lines).")
@click.option("--json", "as_json", is_flag=True, help="With --headless: one JSON object per event.")
@click.option("--auto-confirm", is_flag=True,
              help="With --simulate: the simulated person confirms every turn-around.")
@click.option("--unlock-backward-incline", is_flag=True,
              help="Allow backward walking uphill, up to 5 % (physiotherapist's advice).")
@click.option("--speedup", type=Speedup(), default="1", show_default=True,
              help="With --simulate: run the simulated clock N times faster (0.1-10000, "
                   "or max).")
@click.option("--mqtt", "broker", metavar="HOST[:PORT]", default=None,
              help="Publish the session to this MQTT broker for Home Assistant (overrides "
                   "[mqtt] host and port in the config; Stop and Pause only come back).")
@click.option("--no-record", is_flag=True,
              help="Don't keep this session in the history (`treadmill history`).")
@click.option("--controller", type=click.Choice(["process", "threaded", "inline"]),
              default="process" if os.name == "posix" else "threaded", hidden=True,
              help="TUI: run the controller in a process of its own that reads the keys "
                   "(default on POSIX), on a thread of the screen's process, or on the UI's "
                   "loop (the older ways, for benchmarks/estop_latency.py).")
@simulator_options
@user_errors
def session(program_name: str | None, device: str | None, headless: bool, as_json: bool,
            auto_confirm: bool, unlock_backward_incline: bool, speedup: float | None,
            simulate: bool, sim_profile: str, sim_faults: tuple[str, ...],
            sim_notify_hz: float | None, sim_trace: str | None, broker: str | None = None,
            no_record: bool = False, controller: str = "process") -> None:
    """Run a guided session (the TUI; --headless for a terminal without one).

    Headless, standard input answers: Enter (or "yes") confirms a turn-around, "resume"
    resumes a pause, "stop" ends the session.
    """
    if auto_confirm and not simulate:
        raise click.UsageError("--auto-confirm only works with --simulate: on a real treadmill "
                               "the person on the belt confirms every turn-around")
    if as_json and not headless:
        raise click.UsageError("--json goes with --headless")
    factor = check_speedup(speedup, simulate)
    sim_options = _sim_options(sim_profile, sim_faults, sim_notify_hz, sim_trace)
    config = load_config()
    safety = safety_config_for(config.safety, unlock_backward_incline)
    mqtt = resolve(config.mqtt, broker, config_path())
    suggested = _next_program(safety) if program_name == NEXT else None
    auto_export = auto_export_from_config(config.export, config_path())
    if not headless:
        require_terminal()
        from tui.app import run_tui

        # A TUI waiting for keys can't run "as fast as possible" (the clock would race while
        # nothing is on screen to see): --speedup max becomes MAX_TUI_SPEEDUP.
        tui_factor = MAX_TUI_SPEEDUP if factor is None else factor
        # The simulator is always offered: with nothing paired the TUI falls back on it. Its
        # options are checked here, before the TUI takes the terminal.
        run_tui(program_name=program_name, device=device, simulate=simulate, safety=safety,
                simulator=simulator_factory(sim_options), loop_factory=loop_factory(tui_factor),
                controller=controller, mqtt=mqtt,  # type: ignore[arg-type]
                record=not no_record, suggested=suggested, auto_export=auto_export)
        return
    program = suggested or find_program(program_name or "taster")
    validate(program, safety)
    client, sim = open_client(simulate=simulate, device=device, config=config,
                              sim_options=sim_options)
    client.on_notice = _link_notice
    printer = HeadlessPrinter(as_json)
    if not as_json and program.backward_s > 0:
        printer.echo(SAFETY_CHECKLIST + "\n")
    keyboard = HeadlessInput(printer.prompt)
    confirm = simulated_person_turns if auto_confirm else keyboard.confirm
    result = run_async(_headless_session(client, sim, program, safety, confirm, printer,
                                         keyboard, mqtt, record=not no_record,
                                         auto_export=auto_export), speedup=factor)
    if printer.closed:
        raise OutputClosed()
    if printer.kept_session_id is not None and not as_json and not auto_confirm:
        ask_ratings(printer.kept_session_id)
    if result.reason not in (EndReason.COMPLETED, EndReason.USER_STOP) or not result.belt_still:
        sys.exit(2)  # "completed" never stands for a belt that was not seen to stop


class HeadlessPrinter:
    """Session events as terminal lines (telemetry once every few seconds) or JSON lines.

    A closed stdout (pipe reader gone, terminal closed) never raises into the session: the
    printer goes quiet and calls `on_closed`, which ends the session (the belt stops)."""

    def __init__(self, as_json: bool, telemetry_every_s: float = 10.0) -> None:
        self.as_json = as_json
        self._every = telemetry_every_s
        self._last_telemetry = -1e9
        self._ended = False
        self.closed = False
        self.on_closed: Callable[[], None] = lambda: None
        self.on_started: Callable[[SessionEvent], None] = lambda event: None
        self.kept_session_id: int | None = None  # the history's id for this session

    def echo(self, text: str, *, err: bool = False) -> None:
        if self.closed and not err:
            return
        try:
            click.echo(text, err=err)
        except (OSError, ValueError):  # EPIPE, EIO from a closed terminal, a closed stream
            if err:
                return
            self.closed = True
            self.on_closed()

    def prompt(self, text: str) -> None:
        # JSON lines on stdout are for programs; what a person must read goes to stderr then.
        self.echo(f">>> {text}", err=self.as_json)

    def __call__(self, event: SessionEvent) -> None:
        if isinstance(event, ev.Started):
            self.on_started(event)
        if isinstance(event, ev.Ended):
            if self._ended:
                return  # said once (a late Stop may end the governor's session again)
            self._ended = True
        if self.as_json:
            self.echo(to_json(event.as_dict()))
            return
        line = self._line(event)
        if line is not None:
            self.echo(f"[{int(event.t // 60):02d}:{event.t % 60:04.1f}] {line}")

    def _line(self, event: SessionEvent) -> str | None:
        match event:
            case ev.TelemetryShown(speed_kmh=kmh, incline_pct=incline):
                if event.t - self._last_telemetry < self._every:
                    return None
                self._last_telemetry = event.t
                speed = "n/a" if kmh is None or not math.isfinite(kmh) else f"{kmh:.1f} km/h"
                incline_text = "" if incline is None else f", incline {incline:g} %" + (
                    "" if event.incline_reported else " (commanded)")
                return f"facing {event.orientation}: {speed}{incline_text}"
            case ev.StepStarted():
                return (f"step {event.index}/{event.of}: {event.orientation} at "
                        f"{event.speed_kmh:g} km/h for {event.duration_s / 60:g} min. {event.cue}")
            case ev.CommandSent():
                return None  # the belt's response shows in telemetry; --json lists every command
            case ev.StatusReported(kind=kind):
                if kind in ("target_speed_changed", "target_incline_changed", "started_by_user"):
                    return None  # the machine echoing our own commands
                return f"machine: {kind}"
            case ev.AlarmRaised(kind=kind, message=message) if kind == AlarmKind.PAUSED_AT_CONSOLE:
                return (f"alarm: {message or 'paused at the console'}. Here: type "
                        '"resume" and Enter to start again slowly, or "stop" to end the session.')
        d = event.data
        text = d.get("text") or d.get("message") or d.get("reason") or ""
        return f"{event.type.replace('_', ' ')}: {text}".rstrip(": ")


async def _headless_session(client: FtmsClient, sim: Any, program: Program,
                            safety: SafetyConfig, confirm: Any, printer: HeadlessPrinter,
                            keyboard: HeadlessInput,
                            mqtt: MqttSettings | None = None,
                            record: bool = True,
                            auto_export: Any = None) -> SessionResult:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    signals_seen: list[signal.Signals] = []
    stopping = False

    def stop_once() -> None:
        # The first reason to go (a signal, a closed stdout) cancels the session: the runner
        # then stops the belt and waits, bounded, for it. Only a second *signal* cancels again,
        # which makes the runner give up waiting.
        nonlocal stopping
        if not stopping:
            stopping = True
            task.cancel()

    def on_signal(sig: signal.Signals) -> None:
        signals_seen.append(sig)
        if len(signals_seen) == 1:
            stop_once()
        else:
            task.cancel()

    def on_started(event: SessionEvent) -> None:
        # The trace's clock starts with the session's, so its `t` matches the events' `t`.
        set_origin = getattr(sim, "set_trace_origin", None)
        if set_origin is not None:
            set_origin(loop.time() - event.t)

    printer.on_closed = stop_once
    printer.on_started = on_started
    installed = stop_signals.add_handlers(loop, on_signal)

    def on_event(event: SessionEvent) -> None:
        printer(event)
        keyboard.on_event(event)

    bridge = None
    recorder = None
    try:
        async with client:
            runner = SessionRunner(client, program, config=safety, confirm=confirm,
                                   on_event=on_event)
            if record:
                recorder = _attach_recorder(program, client, sim is not None, runner, printer,
                                            auto_export)
            if mqtt is not None:
                bridge = _attach_bridge(mqtt, client, runner, printer)
            keyboard.start(runner)
            try:
                result = await runner.run()
            except asyncio.CancelledError:
                if printer.closed and not signals_seen:
                    raise OutputClosed() from None
                if len(signals_seen) > 1:
                    raise TreadmillError(
                        "session aborted by a second signal before the treadmill confirmed "
                        "the Stop: check that the belt has stopped") from None
                why = signals_seen[0].name if signals_seen else "interrupted"
                raise SessionInterrupted(
                    f"session interrupted ({why}): Stop was sent to the treadmill",
                    128 + int(signals_seen[0]) if signals_seen else 130) from None
            finally:
                keyboard.close()
    finally:
        stop_signals.remove_handlers(loop, installed)
        if bridge is not None:
            await bridge.aclose()  # the dashboard says "offline" (bounded)
        if recorder is not None:
            await recorder.aclose()  # the last samples and the summary are written (bounded)
        if sim is not None:
            sim.close()
    if not printer.as_json:
        distance = f", {result.distance_m} m" if result.distance_m is not None else ""
        printer.echo(f"Session over ({result.reason}): {result.message}. "
                     f"{result.duration_s / 60:.1f} min{distance}, "
                     f"{result.backward_s / 60:.1f} min backward.")
        if not result.belt_still:
            printer.echo(f"The belt was not seen to stop: {ACTIONABLE} now.", err=True)
        if recorder is not None and recorder.session_id is not None:
            printer.kept_session_id = recorder.session_id
            printer.echo(f"Kept as session {recorder.session_id}: "
                         f"`treadmill history show {recorder.session_id}`, "
                         f"`treadmill export {recorder.session_id}`.")
    return result


def _attach_recorder(program: Program, client: FtmsClient, simulated: bool,
                     runner: SessionRunner, printer: HeadlessPrinter,
                     auto_export: Any = None) -> Any:
    """The session's recording (a thread of its own writes it); trouble is one line."""
    from treadmill.history.recorder import Recorder

    loop = asyncio.get_running_loop()

    def say(message: str, err: bool = True) -> None:
        loop.call_soon_threadsafe(functools.partial(printer.echo, message, err=err))

    recorder = Recorder(
        program=program.name, title=program.title,
        device=client.info.name if client.info is not None else client.address,
        simulated=simulated, on_warning=say, auto_export=auto_export,
        on_exported=lambda paths: say("Exported " + ", ".join(map(str, paths)),
                                     err=printer.as_json))
    recorder.attach(runner.bus)
    return recorder


def _attach_bridge(settings: MqttSettings, client: FtmsClient, runner: SessionRunner,
                   printer: HeadlessPrinter) -> Any:
    """The MQTT bridge for a headless session; its one-line state goes to stderr."""
    from treadmill.mqtt.attach import RemoteTarget, attach, identity, start_bridge
    from treadmill.mqtt.bridge import BridgeStatus, StatusNews

    loop = asyncio.get_running_loop()
    target = RemoteTarget()
    news = StatusNews()

    def say(line: str) -> None:
        loop.call_soon_threadsafe(functools.partial(printer.echo, line, err=True))

    def on_status(status: BridgeStatus) -> None:
        line = news(status)
        if line is not None:
            say(line)

    bridge = start_bridge(settings, identity(client.info, client.address), target, loop,
                          on_status=on_status,
                          on_refused=lambda reason: say(f"MQTT: refused: {reason}"))
    attach(bridge, runner, target)
    return bridge


# ---- mqtt --------------------------------------------------------------------------------------


@main.command("mqtt")
@click.option("--device", metavar="ADDRESS", help="Treadmill address (default: the paired one).")
@click.option("--mqtt", "broker", metavar="HOST[:PORT]", default=None,
              help="The MQTT broker (overrides [mqtt] host and port in the config).")
@simulator_options
@user_errors
def mqtt_command(device: str | None, broker: str | None, simulate: bool, sim_profile: str,
                 sim_faults: tuple[str, ...], sim_notify_hz: float | None,
                 sim_trace: str | None) -> None:
    """Keep the Home Assistant bridge up between sessions, until Ctrl-C.

    The dashboard shows the treadmill online, the belt's speed and the link; its Stop button
    stops a belt started at the console. Sessions (`treadmill session --mqtt ...`) publish
    the same device while they run.
    """
    from treadmill.mqtt.standalone import bridge_between_sessions

    config = load_config()
    settings = resolve(config.mqtt, broker, config_path())
    if settings is None:
        raise ConfigError(f"no MQTT broker: pass --mqtt HOST, or add an [mqtt] table with "
                          f"host = \"...\" to {config_path()}")
    safety = safety_config_for(config.safety, False)
    client, sim = open_client(simulate=simulate, device=device, config=config,
                              sim_options=_sim_options(sim_profile, sim_faults, sim_notify_hz,
                                                       sim_trace))
    client.on_notice = _link_notice

    def say(text: str) -> None:
        click.echo(text, err=True)

    try:
        run_async(bridge_between_sessions(client, settings, safety, say,
                                          label=client.address, simulated=sim is not None,
                                          signals=stop_signals.STOP_SIGNALS))
    finally:
        if sim is not None:
            sim.close()


class SessionInterrupted(TreadmillError):
    """A signal ended the session (after Stop was sent); exits with 128 + the signal number."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# ---- history and export ------------------------------------------------------------------------

NEXT = "next"  # `treadmill session next`: the session the progression rules suggest


def _plan(safety: SafetyConfig) -> Any:
    from datetime import UTC, datetime

    from treadmill.history.progression import plan as progression_plan

    with _store() as store:
        sessions = store.sessions()
    return progression_plan(sessions, now=datetime.now(UTC), safety=safety,
                            programs=catalogue().programs)


def _next_program(safety: SafetyConfig) -> Program:
    suggestion = _plan(safety)
    if suggestion.rest_today:
        raise ConfigError(f"the plan says rest today ({suggestion.reasons[0]}): "
                          "`treadmill plan` says why; any program by name still runs")
    return suggestion.next_program


def ask_ratings(session_id: int) -> None:
    """After a session, at a terminal: knee pain and effort, 0-10, each skippable with Enter
    (the progression rules hold back when pain rises)."""
    if not sys.stdin.isatty():
        return
    answers: dict[str, int | None] = {}
    for key, question in (("pain", "Knee pain now, 0-10"), ("effort", "Effort, 0-10")):
        try:
            answers[key] = click.prompt(f"{question} (Enter to skip)", default="",
                                        show_default=False, type=RatingType())
        except (click.Abort, EOFError):
            return
    if answers["pain"] is None and answers["effort"] is None:
        return
    with _store() as store:
        store.rate(session_id, pain=answers["pain"], effort=answers["effort"])
    click.echo(f"Kept with session {session_id}.")


class RatingType(click.ParamType):
    """A whole number from 0 to 10, or nothing."""

    name = "rating"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> int | None:
        text = str(value).strip()
        if not text:
            return None
        if text.isdigit() and 0 <= int(text) <= 10:
            return int(text)
        self.fail("type a whole number from 0 to 10, or just Enter to skip", param, ctx)


@main.command("plan")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@user_errors
def plan_command(as_json: bool) -> None:
    """The week so far and the next session, from your history (docs/PROGRESSION.md)."""
    config = load_config()
    suggestion = _plan(safety_config_for(config.safety, False))
    program = suggestion.next_program
    if as_json:
        click.echo(to_json({
            "week_sessions": suggestion.week_sessions,
            "week_backward_min": suggestion.week_backward_min,
            "rest_today": suggestion.rest_today,
            "reasons": list(suggestion.reasons),
            "next": program_summary(program),
        }, indent=2))
        return
    click.echo(f"This week: {suggestion.week_sessions} session(s), "
               f"{suggestion.week_backward_min:g} min backward.")
    if suggestion.rest_today:
        click.echo("Today: rest.")
    click.echo(f"Next: {program.title} ({program.duration_s / 60:g} min, "
               f"{program.backward_s / 60:g} min backward). Run it: treadmill session next")
    for reason in suggestion.reasons:
        click.echo(f"  - {reason}")
    for item in plan(program):
        if isinstance(item, WalkItem):
            s = item.step
            click.echo(f"  {item.index:>2}. {s.orientation:<8} {s.duration_s / 60:>4g} min  "
                       f"{s.speed_kmh:g} km/h  {s.cue}")


def _store() -> Any:
    from treadmill.history.store import HistoryStore

    return HistoryStore()


def _summary_dict(summary: Any) -> dict[str, Any]:
    return dataclasses.asdict(summary)


def _summary_line(s: Any) -> str:
    when = s.started_at[:16].replace("T", " ")
    distance = f"{s.distance_m} m" if s.distance_m is not None else "- m"
    sim = " (simulated)" if s.simulated else ""
    return (f"{s.id:>4}  {when}  {s.program:<18} {s.duration_s / 60:5.1f} min  "
            f"{s.backward_s / 60:4.1f} min backward  {distance:>7}  {s.end_reason or 'running'}"
            f"{sim}")


@main.group("history", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@user_errors
def history(ctx: click.Context, as_json: bool) -> None:
    """The sessions kept (newest first); `history show ID` for one of them."""
    if ctx.invoked_subcommand is not None:
        return
    with _store() as store:
        sessions = store.sessions()
    if as_json:
        click.echo(to_json([_summary_dict(s) for s in sessions], indent=2))
        return
    if not sessions:
        click.echo("No sessions yet: `treadmill session` records every one.")
        return
    for summary in sessions:
        click.echo(_summary_line(summary))


def _recording(store: Any, session_id: int) -> Any:
    recording = store.recording(session_id)
    if recording is None:
        raise ConfigError(f"no session {session_id}: `treadmill history` lists them")
    return recording


@history.command("show")
@click.argument("session_id", metavar="ID", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@user_errors
def history_show(session_id: int, as_json: bool) -> None:
    """One session: its summary, steps, alarms and a chart of speed and orientation."""
    with _store() as store:
        recording = _recording(store, session_id)
    s = recording.summary
    steps = [{"start_s": a, "end_s": b, **e.data} for a, b, e in recording.steps()]
    alarms = [{"t": e.t, **e.data} for e in recording.events if e.type == "alarm"]
    if as_json:
        click.echo(to_json({"summary": _summary_dict(s), "steps": steps, "alarms": alarms,
                            "samples": len(recording.samples)}, indent=2))
        return
    click.echo(_summary_line(s))
    click.echo(f"  {s.title} on {s.device}; longest backward bout "
               f"{s.longest_backward_bout_s / 60:.1f} min; {s.alarms} alarm(s)"
               + (f"; pain {s.pain}/10" if s.pain is not None else "")
               + (f"; effort {s.effort}/10" if s.effort is not None else ""))
    for step in steps:
        click.echo(f"  step {step.get('index', '?')}: {step.get('orientation', '?'):<8} "
                   f"{step.get('speed_kmh', 0):g} km/h from {step['start_s'] / 60:.1f} min")
    for alarm in alarms:
        click.echo(f"  alarm at {alarm['t'] / 60:.1f} min: {alarm.get('message', '')}")
    for line in speed_chart(recording.samples):
        click.echo(line)


def speed_chart(samples: Any, width: int = 60, height: int = 6) -> list[str]:
    """A terminal chart of speed over the session; F/B below say which way the person faced."""
    if not samples:
        return ["  (no samples)"]
    end = max(x.t for x in samples) or 1.0
    columns: list[list[Any]] = [[] for _ in range(width)]
    for x in samples:
        columns[min(width - 1, int(x.t / end * width))].append(x)
    speeds = [max((x.speed_kmh or 0.0) for x in col) if col else 0.0 for col in columns]
    top = max(speeds) or 1.0
    lines = []
    for row in range(height, 0, -1):
        level = top * row / height
        bar = "".join("#" if v >= level - 1e-9 and v > 0 else " " for v in speeds)
        lines.append(f"  {level:4.1f} |{bar}")
    faced = "".join(
        (col[-1].orientation[:1].upper() if col else " ") for col in columns)
    lines.append(f"       {faced}")
    lines.append(f"       0 min{'':>{max(0, width - 12)}}{end / 60:.1f} min")
    return lines


@history.command("delete")
@click.argument("session_id", metavar="ID", type=int)
@user_errors
def history_delete(session_id: int) -> None:
    """Delete one session for good."""
    with _store() as store:
        if not store.delete(session_id):
            raise ConfigError(f"no session {session_id}: `treadmill history` lists them")
    click.echo(f"Deleted session {session_id}.")


@history.command("rate")
@click.argument("session_id", metavar="ID", type=int)
@click.option("--pain", type=click.IntRange(0, 10), default=None, help="Knee pain, 0-10.")
@click.option("--effort", type=click.IntRange(0, 10), default=None, help="Effort, 0-10.")
@user_errors
def history_rate(session_id: int, pain: int | None, effort: int | None) -> None:
    """Rate a session: knee pain and effort (0-10), kept with it."""
    with _store() as store:
        if store.session(session_id) is None:
            raise ConfigError(f"no session {session_id}: `treadmill history` lists them")
        store.rate(session_id, pain=pain, effort=effort)
    click.echo(f"Session {session_id} rated.")


@main.command("export")
@click.argument("session_id", metavar="ID", type=int)
@click.option("--format", "fmt", type=click.Choice(["fit", "tcx", "csv"]), default="fit",
              show_default=True, help="File format.")
@click.option("-o", "--output", metavar="FILE", default=None,
              help="Write here (default: a name from the date and program, in this folder).")
@user_errors
def export_command(session_id: int, fmt: str, output: str | None) -> None:
    """Export a session as FIT (Strava, Garmin Connect, intervals.icu), TCX or CSV."""
    from treadmill.history.export import default_filename, export

    with _store() as store:
        recording = _recording(store, session_id)
    try:
        data = export(recording, fmt)
    except ValueError as exc:  # nothing to export (a session that never got a sample)
        raise ConfigError(str(exc)) from None
    path = output or default_filename(recording.summary, fmt)
    try:
        with open(path, "xb") as f:  # never overwrite a file silently
            f.write(data)
    except FileExistsError:
        raise ConfigError(f"{path} exists: choose another name with -o") from None
    except OSError as exc:
        raise ConfigError(f"can't write {path} ({exc.strerror or exc})") from exc
    click.echo(f"Wrote {path} ({len(data)} bytes).")


# ---- simulators --------------------------------------------------------------------------------

# What each fault does, for `treadmill simulators` (the enum's comments are not visible at run
# time). A kind added to FaultKind without a line here is still listed.
FAULT_HELP: dict[str, str] = {
    "disconnect": "the link drops; with +DURATION the device is also off the air that long",
    "drop-notifications": "no Treadmill Data (telemetry) is sent",
    "delay-notifications": "Treadmill Data arrives VALUE s late (default 2)",
    "delay-indication": "control-point answers arrive VALUE s late (default 5)",
    "no-indication": "the control point never answers",
    "result-unsupported": "control writes are answered 'op code not supported', not executed",
    "result-invalid": "control writes are answered 'invalid parameter', not executed",
    "result-failed": "control writes are answered 'operation failed', not executed",
    "result-not-permitted": "control writes are answered 'control not permitted', not executed",
    "control-lost": "the machine takes control back; writes are refused until requested again",
    "safety-key": "the safety key is pulled (emergency stop); back in after +DURATION",
    "stop-at-console": "someone presses Stop on the console",
    "pause-at-console": "someone presses Pause on the console",
    "console-start": "someone presses Start on the console",
    "console-incline": "someone changes the incline on the console",
    "overshoot": "the belt runs VALUE km/h faster than its target (default 1)",
    "ignore-setpoints": "speed and incline targets are answered success but ignored",
    "corrupt-packet": "Treadmill Data bytes are garbled (the next packet, or for +DURATION)",
    "short-packet": "Treadmill Data is cut to half its length",
    "long-packet": "Treadmill Data has 3 extra trailing bytes",
    "unknown-status": "a Machine Status with an unknown op code (VALUE, default 0x42)",
    "speed-up-by-itself": "the belt's target rises by VALUE km/h without a command (default 1)",
}


@main.command("simulators")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@user_errors
def simulators_command(as_json: bool) -> None:
    """List the simulated treadmill profiles (--sim-profile) and faults (--sim-fault)."""
    from simulators import FaultKind, get_profile, profile_names

    def rng(r: Any) -> dict[str, float] | None:
        return None if r is None else {"min": r.minimum, "max": r.maximum, "step": r.step}

    profiles = []
    for name in profile_names():
        profile = get_profile(name)
        profiles.append({"name": name, "description": profile.description,
                         "speed_kmh": rng(profile.speed), "incline_pct": rng(profile.incline),
                         "quirks": sorted(str(q) for q in profile.quirks)})
    faults = [{"kind": str(kind),
               "description": FAULT_HELP.get(str(kind))
               or str(getattr(kind, "description", "") or "see simulators/faults.py")}
              for kind in FaultKind]
    if as_json:
        click.echo(to_json({"profiles": profiles, "faults": faults}, indent=2))
        return
    click.echo("Profiles (--sim-profile NAME):")
    for row in profiles:
        click.echo(f"  {row['name']:<34} {row['description']}")
    click.echo("\nFaults (--sim-fault KIND@SECONDS[+DURATION][=VALUE], repeatable):")
    for row in faults:
        click.echo(f"  {row['kind']:<34} {row['description']}")


if __name__ == "__main__":
    main()
