"""The `treadmill` command line: scan, pair, devices, forget, status (more commands join later).

Every failure a user can cause or meet (bad address, no adapter, broken config, unknown
simulator profile) ends as one line on stderr that says what to do, and a non-zero exit code.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import click
from bleak.exc import BleakError

from safety import EndReason, Orientation, SafetyConfig
from treadmill.client import DeviceInfo, FtmsClient
from treadmill.config import (
    ConfigError,
    PairedDevice,
    config_path,
    load_config,
    normalize_address,
    save_config,
)
from treadmill.connection import SimulatorOptions, make_simulator, open_client
from treadmill.errors import TreadmillError, describe_bluetooth_error
from treadmill.events import LinkLost, StatusEvent, TelemetrySample
from treadmill.ftms import Range
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

EXIT_USER_ERROR = 1
EXIT_INTERNAL_ERROR = 3


def fail(message: str, code: int = EXIT_USER_ERROR) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


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
        except (TreadmillError, BleakError, TimeoutError) as exc:
            if debug:
                raise
            fail(describe_bluetooth_error(exc, address if isinstance(address, str) else None))
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


def simulator_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--simulate and the options that shape the simulated treadmill."""
    func = click.option(
        "--sim-notify-hz", type=click.FloatRange(1, 10), default=None,
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


def _sim_options(profile: str, faults: tuple[str, ...], notify_hz: float | None):
    return SimulatorOptions(profile=profile, faults=faults, notify_hz=notify_hz)


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
        # No arguments: the TUI, on the paired treadmill or else the built-in simulator.
        ctx.invoke(session, program_name=None, device=None, headless=False, as_json=False,
                   auto_confirm=False, unlock_backward_incline=False, speedup="1",
                   simulate=False, sim_profile="home", sim_faults=(), sim_notify_hz=None)


# ---- scan ------------------------------------------------------------------------------------


@main.command("scan")
@click.option("--timeout", type=click.FloatRange(0.5, 120), default=5.0, show_default=True,
              help="Seconds to listen.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@simulator_options
@user_errors
def scan_command(timeout: float, as_json: bool, simulate: bool, sim_profile: str,
                 sim_faults: tuple[str, ...], sim_notify_hz: float | None) -> None:
    """List FTMS treadmills in range: name, address, signal strength."""

    async def run() -> list[dict[str, object]]:
        backend = None
        sim = None
        if simulate:
            sim = make_simulator(_sim_options(sim_profile, sim_faults, sim_notify_hz))
            backend = sim.scanner_backend
        try:
            found = await scan(timeout, backend=backend)
        finally:
            if sim is not None:
                sim.close()
        return [t.as_dict() | ({"simulated": True} if simulate else {}) for t in found]

    found = run_async(run(), speedup=None if simulate else 1.0)
    if as_json:
        click.echo(json.dumps(found, indent=2))
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
         sim_faults: tuple[str, ...], sim_notify_hz: float | None) -> None:
    """Remember a treadmill (checked by connecting) and make it the default."""
    config = load_config()
    address = normalize_address(address)
    device = PairedDevice(address=address)
    if not no_check:
        info = run_async(_read_info(address, simulate, sim_profile), speedup=None if simulate
                         else 1.0)
        device = PairedDevice(address=address, name=info.name,
                              model=" ".join(filter(None, [info.manufacturer, info.model])))
    config.remember(device)
    config.default_device = address
    path = save_config(config)
    click.echo(f"Paired {device.name or address} ({address}); saved in {path}")


async def _read_info(address: str, simulate: bool, sim_profile: str) -> DeviceInfo:
    if simulate:
        from simulators import VirtualTreadmill

        try:
            sim = VirtualTreadmill(sim_profile, address=address)
        except ValueError as exc:
            raise TreadmillError(str(exc)) from exc
        try:
            client = FtmsClient(address, backend=sim.client_backend)
            async with client:
                assert client.info is not None
                return client.info
        finally:
            sim.close()
    async with FtmsClient(address) as client:
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
        click.echo(json.dumps(rows, indent=2))
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
    config = load_config()
    if not config.forget(address):
        fail(f"{normalize_address(address)} is not remembered (see `treadmill devices`)")
    save_config(config)
    click.echo(f"Forgot {normalize_address(address)}")


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
@click.option("--seconds", type=click.FloatRange(0, 3600), default=10.0, show_default=True,
              help="How long to show live telemetry.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document at the end.")
@click.option("--speedup", default="1", show_default=True, metavar="N|max",
              help="With --simulate: run the simulated clock N times faster (or max).")
@simulator_options
@user_errors
def status(device: str | None = None, seconds: float = 10.0, as_json: bool = False,
           speedup: str = "1", simulate: bool = False, sim_profile: str = "home",
           sim_faults: tuple[str, ...] = (), sim_notify_hz: float | None = None) -> None:
    """Device information, speed/incline ranges, and live telemetry for a while.

    Read-only: it never sends a command. With --simulate, a simulated person walks on the
    virtual treadmill and changes its speed at the console, so there is something to watch.
    """
    factor = parse_speedup(speedup, simulate)
    config = load_config()
    client, sim = open_client(simulate=simulate, device=device, config=config,
                              sim_options=_sim_options(sim_profile, sim_faults, sim_notify_hz))
    result = run_async(_status(client, sim, seconds, as_json), speedup=factor)
    if as_json:
        click.echo(json.dumps(result, indent=2))


def parse_speedup(text: str, simulate: bool) -> float | None:
    if text == "1":
        return 1.0
    if not simulate:
        raise click.UsageError("--speedup only works with --simulate")
    if text == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        raise click.BadParameter(f"'{text}' is not a number or 'max'",
                                 param_hint="--speedup") from None
    if value <= 0:
        raise click.BadParameter("must be positive", param_hint="--speedup")
    return value


async def _status(client: FtmsClient, sim: Any, seconds: float, as_json: bool) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    samples: list[dict[str, object]] = []
    statuses: list[dict[str, object]] = []
    link_lost: str | None = None
    try:
        info = await client.connect()
        if not as_json:
            print_info(info, simulated=sim is not None)
        if sim is not None:
            sim.start_demo_walker(every_s=2.5)
        t0 = loop.time()
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
        click.echo(json.dumps({"programs": rows, "problems": found.problems}, indent=2))
        return
    for row in rows:
        unlock = "  (needs --unlock-backward-incline)" if row["needs_incline_unlock"] else ""
        click.echo(f"{row['name']:<18} {row['minutes']:>5g} min, {row['backward_minutes']:>4g} "
                   f"min backward  {row['title']}{unlock}")
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
        click.echo(json.dumps(program_summary(program) | {
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

SAFETY_CHECKLIST = """Before walking backwards:
  - clip the safety key to your clothing
  - hold the rails at first, stand tall, look ahead, take short steps
  - clear space behind the treadmill; wear supportive shoes
  - SPACE (or Ctrl-C here) stops the belt at once
Not advised with vertigo or balance problems, Parkinson's disease or a history of falls;
with knee problems, check with a physiotherapist or doctor first."""


def safety_config_for(config_safety: dict[str, Any], unlock_incline: bool) -> SafetyConfig:
    """The user's safety settings (stricter only), plus the incline unlock if asked for."""
    values = dict(config_safety)
    if unlock_incline:
        values["backward_incline_unlocked"] = True
    try:
        return SafetyConfig.from_user_dict(values)
    except ValueError as exc:
        raise ConfigError(f"[safety] in {config_path()}: {exc}") from exc


class StdinConfirmer:
    """Reads confirmations (one line each) from stdin without a thread, so nothing outlives
    the session; a closed stdin means nobody can confirm, which ends the session safely."""

    def __init__(self, prompt: Callable[[str], None]) -> None:
        self._prompt = prompt
        self._buffer = b""
        self._eof = False

    async def __call__(self, to: Orientation) -> None:
        self._prompt(f"Turn to face {to}, hold the rails, then press Enter.")
        while b"\n" not in self._buffer and not self._eof:
            chunk = await self._read()
            self._eof = not chunk
            self._buffer += chunk
        if b"\n" not in self._buffer:
            raise TreadmillError("no one can confirm the turn-around (standard input is closed): "
                                 "use --auto-confirm with --simulate, or run interactively")
        _line, _, self._buffer = self._buffer.partition(b"\n")

    async def _read(self) -> bytes:
        loop = asyncio.get_running_loop()
        chunk: asyncio.Future[bytes] = loop.create_future()
        fd = sys.stdin.fileno()

        def readable() -> None:
            if not chunk.done():
                chunk.set_result(os.read(fd, 4096))

        try:
            loop.add_reader(fd, readable)
        except (PermissionError, OSError):
            # A regular file or /dev/null: epoll can't watch it, and reading never blocks.
            return os.read(fd, 4096)
        try:
            return await chunk
        finally:
            loop.remove_reader(fd)


async def simulated_person_turns(to: Orientation) -> None:
    """--auto-confirm: the simulated person takes a few seconds to turn around."""
    await asyncio.sleep(3.0)


@main.command()
@click.argument("program_name", metavar="PROGRAM", required=False)
@click.option("--device", metavar="ADDRESS", help="Treadmill address (default: the paired one).")
@click.option("--headless", is_flag=True, help="No TUI: progress as lines (or JSON lines).")
@click.option("--json", "as_json", is_flag=True, help="With --headless: one JSON object per event.")
@click.option("--auto-confirm", is_flag=True,
              help="With --simulate: the simulated person confirms every turn-around.")
@click.option("--unlock-backward-incline", is_flag=True,
              help="Allow backward walking uphill, up to 5 % (physiotherapist's advice).")
@click.option("--speedup", default="1", show_default=True, metavar="N|max",
              help="With --simulate: run the simulated clock N times faster (or max).")
@simulator_options
@user_errors
def session(program_name: str | None, device: str | None, headless: bool, as_json: bool,
            auto_confirm: bool, unlock_backward_incline: bool, speedup: str, simulate: bool,
            sim_profile: str, sim_faults: tuple[str, ...], sim_notify_hz: float | None) -> None:
    """Run a guided session (the TUI; --headless for a terminal without one)."""
    if auto_confirm and not simulate:
        raise click.UsageError("--auto-confirm only works with --simulate: on a real treadmill "
                               "the person on the belt confirms every turn-around")
    if as_json and not headless:
        raise click.UsageError("--json goes with --headless")
    factor = parse_speedup(speedup, simulate)
    config = load_config()
    safety = safety_config_for(config.safety, unlock_backward_incline)
    if not headless:
        from tui.app import run_tui

        run_tui(program_name=program_name, device=device, simulate=simulate, safety=safety,
                sim_options=_sim_options(sim_profile, sim_faults, sim_notify_hz),
                speedup=factor)
        return
    program = find_program(program_name or "taster")
    validate(program, safety)
    client, sim = open_client(simulate=simulate, device=device, config=config,
                              sim_options=_sim_options(sim_profile, sim_faults, sim_notify_hz))
    printer = HeadlessPrinter(as_json)
    if not as_json and program.backward_s > 0:
        click.echo(SAFETY_CHECKLIST + "\n")
    confirm = simulated_person_turns if auto_confirm else StdinConfirmer(printer.prompt)
    result = run_async(_headless_session(client, sim, program, safety, confirm, printer),
                       speedup=factor)
    if result.reason not in (EndReason.COMPLETED, EndReason.USER_STOP):
        sys.exit(2)


class HeadlessPrinter:
    """Session events as terminal lines (telemetry once every few seconds) or JSON lines."""

    def __init__(self, as_json: bool, telemetry_every_s: float = 10.0) -> None:
        self.as_json = as_json
        self._every = telemetry_every_s
        self._last_telemetry = -1e9

    def prompt(self, text: str) -> None:
        if not self.as_json:
            click.echo(f">>> {text}")

    def __call__(self, event: SessionEvent) -> None:
        if self.as_json:
            click.echo(json.dumps(event.as_dict()))
            return
        d = event.data
        stamp = f"[{int(event.t // 60):02d}:{event.t % 60:04.1f}]"
        match event.type:
            case "telemetry":
                if event.t - self._last_telemetry < self._every:
                    return
                self._last_telemetry = event.t
                speed = "n/a" if d["speed_kmh"] is None else f"{d['speed_kmh']:.1f} km/h"
                incline = d.get("incline_pct")
                incline_text = "" if incline is None else f", incline {incline:g} %" + (
                    "" if d.get("incline_reported") else " (commanded)")
                line = f"facing {d['orientation']}: {speed}{incline_text}"
            case "step":
                line = (f"step {d['index']}/{d['of']}: {d['orientation']} at "
                        f"{d['speed_kmh']:g} km/h for {d['duration_s'] / 60:g} min. {d['cue']}")
            case "command":
                return  # the belt's response shows in telemetry; --json lists every command
            case "status":
                if d["kind"] in ("target_speed_changed", "target_incline_changed",
                                 "started_by_user"):
                    return  # the machine echoing our own commands
                line = f"machine: {d['kind']}"
            case _:
                text = d.get("text") or d.get("message") or d.get("reason") or ""
                line = f"{event.type.replace('_', ' ')}: {text}".rstrip(": ")
        click.echo(f"{stamp} {line}")


async def _headless_session(client: FtmsClient, sim: Any, program: Program,
                            safety: SafetyConfig, confirm: Any,
                            printer: HeadlessPrinter) -> SessionResult:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, task.cancel)
    try:
        async with client:
            runner = SessionRunner(client, program, config=safety, confirm=confirm,
                                   on_event=printer)
            try:
                result = await runner.run()
            except asyncio.CancelledError:
                raise TreadmillError(
                    "session interrupted: Stop was sent to the treadmill") from None
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        if sim is not None:
            sim.close()
    if not printer.as_json:
        distance = f", {result.distance_m} m" if result.distance_m is not None else ""
        click.echo(f"Session over ({result.reason}): {result.message}. "
                   f"{result.duration_s / 60:.1f} min{distance}, "
                   f"{result.backward_s / 60:.1f} min backward.")
    return result

if __name__ == "__main__":
    main()

