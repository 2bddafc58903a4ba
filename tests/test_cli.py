"""The `treadmill` command line: output, JSON, and one-line errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import bleak
import pytest
from bleak.exc import BleakBluetoothNotAvailableError, BleakBluetoothNotAvailableReason
from click.testing import CliRunner

from simulators import SimulatedBleakClient
from treadmill.cli import main


@pytest.fixture(autouse=True)
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "config"
    monkeypatch.setenv("TREADMILL_CONFIG_DIR", str(folder))
    return folder


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def one_line_error(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output + result.stderr
    return lines[0]


# ---- scan and status ------------------------------------------------------------------------


def test_scan_simulate_json_lists_the_virtual_treadmill():
    result = run("scan", "--simulate", "--json")
    assert result.exit_code == 0
    found = json.loads(result.stdout)
    assert len(found) == 1
    assert found[0]["machine_types"] == ["treadmill"] and found[0]["simulated"] is True
    assert found[0]["name"].startswith("SIM Treadmill")
    assert isinstance(found[0]["rssi"], int)


def test_status_simulate_json_shows_ranges_and_changing_speed():
    result = run("status", "--simulate", "--json", "--seconds", "12", "--speedup", "max")
    assert result.exit_code == 0
    status = json.loads(result.stdout)
    assert status["simulated"] is True
    assert status["device"]["speed_range_kmh"] == {"min": 0.8, "max": 16.0, "step": 0.1}
    assert status["device"]["incline_range_pct"] == {"min": 0.0, "max": 15.0, "step": 0.5}
    speeds = [s["speed_kmh"] for s in status["telemetry"]]
    assert len(speeds) >= 40  # 4 Hz for 12 s
    assert len(set(speeds)) > 5, "the speed changes"
    assert max(speeds) >= 2.0


def test_status_is_read_only(monkeypatch):
    """status sends no command at all: the simulated person uses the console."""
    from simulators import VirtualTreadmill

    made: list[VirtualTreadmill] = []
    original = VirtualTreadmill.__init__

    def remember(self, *args, **kwargs):
        original(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(VirtualTreadmill, "__init__", remember)
    assert run("status", "--simulate", "--seconds", "5", "--speedup", "max").exit_code == 0
    assert made and made[0].control_log == []


def test_status_human_output_names_the_simulator():
    result = run(
        "status", "--simulate", "--seconds", "3", "--speedup", "max", "--sim-profile", "walking-pad"
    )
    assert result.exit_code == 0
    assert "[SIMULATED]" in result.stdout
    assert "0.5-6.0 km/h" in result.stdout
    assert "incline  none" in result.stdout


def test_status_with_a_disconnect_fault_says_so():
    result = run(
        "status", "--simulate", "--seconds", "10", "--speedup", "max", "--sim-fault", "disconnect@3"
    )
    assert result.exit_code == 1
    assert "disconnected" in one_line_error(result)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["status", "--simulate", "--sim-profile", "nope"], "unknown treadmill profile 'nope'"),
        (["status", "--simulate", "--sim-fault", "melt@3"], "unknown fault kind 'melt'"),
        (["status", "--simulate", "--sim-fault", "disconnect"], "bad fault"),
        (["pair", "not-an-address"], "is not a Bluetooth address"),
        (["forget", "AA:BB:CC:DD:EE:FF"], "is not remembered"),
        (["status"], "no treadmill chosen"),
        (["session", "nonexistent", "--simulate", "--headless"], "no program called"),
    ],
)
def test_bad_input_gets_one_line_and_a_non_zero_exit(args, expected):
    result = run(*args)
    assert result.exit_code != 0
    assert expected in one_line_error(result)


def test_no_bluetooth_adapter_is_one_line(monkeypatch):
    """A real device with Bluetooth unavailable (here: switched off) is one clear line."""

    class PoweredOff(SimulatedBleakClient):
        async def connect(self, pair, **kwargs):
            raise BleakBluetoothNotAvailableError(
                "off", BleakBluetoothNotAvailableReason.POWERED_OFF
            )

    monkeypatch.setattr(bleak, "get_platform_client_backend_type", lambda: (PoweredOff, "test"))
    result = run("status", "--device", "AA:BB:CC:DD:EE:FF", "--seconds", "1")
    assert result.exit_code == 1
    assert "Bluetooth is switched off" in one_line_error(result)


def test_no_bluez_is_one_line(monkeypatch):
    """On Linux without BlueZ's D-Bus socket bleak fails with a bare OSError."""

    class NoDbus(SimulatedBleakClient):
        async def connect(self, pair, **kwargs):
            raise FileNotFoundError(2, "No such file or directory")

    monkeypatch.setattr(bleak, "get_platform_client_backend_type", lambda: (NoDbus, "test"))
    result = run("status", "--device", "AA:BB:CC:DD:EE:FF", "--seconds", "1")
    assert result.exit_code == 1
    assert "Bluetooth is not available" in one_line_error(result)


# ---- pairing memory ------------------------------------------------------------------------


def test_pair_devices_forget(config_dir):
    result = run("pair", "f2:0d:00:00:00:42", "--simulate")
    assert result.exit_code == 0, result.stderr
    listed = json.loads(run("devices", "--json").stdout)
    assert listed == [
        {
            "address": "F2:0D:00:00:00:42",
            "name": "SIM Treadmill home",
            "model": "Simulated Fitness Co. SIM-HOME-1",
            "paired_at": listed[0]["paired_at"],
            "default": True,
        }
    ]
    assert (config_dir / "config.toml").exists()
    assert run("forget", "F2:0D:00:00:00:42").exit_code == 0
    assert json.loads(run("devices", "--json").stdout) == []


def test_a_broken_config_file_is_reported_and_never_overwritten(config_dir):
    config_dir.mkdir(parents=True)
    path = config_dir / "config.toml"
    path.write_text("[[devices]\naddress = 'AA:BB'\n")
    before = path.read_bytes()
    result = run("pair", "AA:BB:CC:DD:EE:FF", "--no-check")
    assert result.exit_code == 1
    assert "is not valid TOML" in one_line_error(result)
    assert path.read_bytes() == before


def test_an_invalid_safety_setting_is_refused(config_dir):
    config_dir.mkdir(parents=True)
    (config_dir / "config.toml").write_text("[safety]\nbackward_speed_cap_kmh = 5.0\n")
    result = run(
        "session", "taster", "--simulate", "--headless", "--auto-confirm", "--speedup", "max"
    )
    assert result.exit_code == 1
    assert "backward_speed_cap_kmh" in one_line_error(result)


# ---- programs and headless sessions ----------------------------------------------------------


def test_programs_json_lists_the_builtins():
    programs = json.loads(run("programs", "--json").stdout)["programs"]
    names = {p["name"] for p in programs}
    assert {"first-timer", "knee-10", "hamstring-15", "incline-backward", "retro-30"} <= names
    knee = next(p for p in programs if p["name"] == "knee-10")
    assert knee["backward_minutes"] == 10 and knee["minutes"] == 15


def test_programs_show_lists_turnarounds():
    result = run("programs", "show", "first-timer")
    assert result.exit_code == 0
    assert result.stdout.count("turn to face") == 6


def test_an_invalid_program_file_names_file_step_and_field(tmp_path):
    path = tmp_path / "too-fast.toml"
    path.write_text('[[steps]]\norientation = "backward"\nminutes = 2\nspeed_kmh = 3.5\n')
    result = run("session", str(path), "--simulate", "--headless", "--auto-confirm")
    assert result.exit_code == 1
    line = one_line_error(result)
    assert str(path) in line and "step 1" in line and "speed_kmh" in line and "3 km/h" in line


def test_auto_confirm_needs_the_simulator():
    result = run("session", "taster", "--headless", "--auto-confirm")
    assert result.exit_code == 2
    assert "--auto-confirm only works with --simulate" in result.stderr


def test_headless_json_session_runs_to_the_end():
    result = run(
        "session",
        "taster",
        "--simulate",
        "--headless",
        "--json",
        "--auto-confirm",
        "--speedup",
        "max",
    )
    assert result.exit_code == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert all({"t", "type"} <= set(e) for e in events)
    assert events[0]["type"] == "started" and events[-1]["type"] == "ended"
    assert events[-1]["reason"] == "completed"
    commands = [e for e in events if e["type"] == "command"]
    assert commands[0] == {
        "t": commands[0]["t"],
        "type": "command",
        "op": "request_control",
        "value": None,
    }
    telemetry = [e for e in events if e["type"] == "telemetry"]
    assert {"speed_kmh", "incline_pct", "orientation"} <= set(telemetry[0])
    assert {e["orientation"] for e in telemetry} == {"forward", "backward"}
    backward = [e["speed_kmh"] for e in telemetry if e["orientation"] == "backward"]
    assert max(backward) <= 3.0


def test_headless_session_with_a_safety_key_fault_ends_with_the_reason():
    result = run(
        "session",
        "taster",
        "--simulate",
        "--headless",
        "--json",
        "--auto-confirm",
        "--speedup",
        "max",
        "--sim-fault",
        "safety-key@120",
    )
    assert result.exit_code == 2
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[-1]["type"] == "ended" and events[-1]["reason"] == "safety_key"


# ---- messages a person reads ------------------------------------------------------------------


def test_bluetooth_errors_read_as_sentences_with_what_to_do():
    from bleak.exc import (
        BleakDeviceNotFoundError,
        BleakError,
        BleakGATTProtocolError,
        BleakGATTProtocolErrorCode,
    )

    from treadmill.errors import WriteRefused, describe_bluetooth_error

    busy = BleakGATTProtocolError(BleakGATTProtocolErrorCode.PROCEDURE_ALREADY_IN_PROGRESS)
    try:
        raise WriteRefused(0x02, None, str(busy)) from BleakError("a", "b")
    except WriteRefused as refused:
        uncoded = refused
    shapes = [
        busy,
        BleakGATTProtocolError(BleakGATTProtocolErrorCode.INSUFFICIENT_AUTHENTICATION),
        BleakError("Disconnected"),
        BleakError(),
        BleakDeviceNotFoundError("AA:BB:CC:DD:EE:FF"),
        BleakBluetoothNotAvailableError("x", BleakBluetoothNotAvailableReason.NO_BLUETOOTH),
        TimeoutError(),
        OSError(112, "Host is down"),
        OSError(5, "Input/output error"),
        WriteRefused(0x02, 0xFE, str(busy)),
        uncoded,
    ]
    for exc in shapes:
        text = describe_bluetooth_error(exc, "AA:BB:CC:DD:EE:FF")
        assert "<" not in text and "('" not in text and "Bleak" not in text, text
        assert ": " in text and not text.startswith("Bluetooth error"), text
        assert "\n" not in text
    assert "busy" in describe_bluetooth_error(busy)
    assert "pair" in describe_bluetooth_error(shapes[1])
    assert "dropped the Bluetooth connection" in describe_bluetooth_error(shapes[2])


def test_the_ended_event_is_printed_once(capsys):
    from treadmill.cli import HeadlessPrinter
    from treadmill.session_events import Ended

    for as_json in (False, True):
        printer = HeadlessPrinter(as_json)
        printer(Ended(30.0, "emergency_stop", "stopped"))
        printer(Ended(30.5, "emergency_stop", "stopped"))
        assert capsys.readouterr().out.count("stopped") == 1


def test_json_output_never_holds_nan(capsys):
    from treadmill.cli import HeadlessPrinter
    from treadmill.session_events import TelemetryShown

    def no_constants(name: str):
        raise AssertionError(f"{name} is not JSON")

    HeadlessPrinter(True)(TelemetryShown(1.0, float("nan"), float("inf"), False, None, None,
                                         "forward"))
    line = json.loads(capsys.readouterr().out, parse_constant=no_constants)
    assert line["speed_kmh"] is None and line["incline_pct"] is None


@pytest.mark.parametrize("args", [
    ["scan", "--timeout", "nan", "--simulate"],
    ["status", "--simulate", "--speedup", "nan"],
    ["status", "--simulate", "--speedup", "inf"],
    ["status", "--simulate", "--speedup", "1e-300"],
    ["status", "--simulate", "--seconds", "nan", "--speedup", "max"],
    ["status", "--simulate", "--sim-notify-hz", "nan"],
    ["session", "taster", "--simulate", "--headless", "--speedup", "1e300"],
])
def test_non_finite_or_extreme_numbers_are_refused(args):
    result = run(*args)
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "nan" in lines[0] or "inf" in lines[0] or "between" in lines[0]


def test_speedup_still_accepts_a_number_or_max():
    assert run("status", "--simulate", "--seconds", "2", "--speedup", "100").exit_code == 0
    assert run("status", "--simulate", "--seconds", "2", "--speedup", "MAX").exit_code == 0
    result = run("status", "--seconds", "2", "--speedup", "max")
    assert result.exit_code == 2 and "only works with --simulate" in result.stderr


@pytest.mark.parametrize("args", [[], ["session"], ["session", "taster", "--simulate"]])
def test_the_tui_refuses_to_run_without_a_terminal(args):
    result = run(*args)  # CliRunner's stdin and stdout are not terminals
    assert result.exit_code == 1
    line = one_line_error(result)
    assert "needs a terminal" in line and "--headless" in line


def test_the_simulators_command_lists_profiles_and_faults():
    from simulators import FaultKind, profile_names

    data = json.loads(run("simulators", "--json").stdout)
    assert [p["name"] for p in data["profiles"]] == profile_names()
    assert {f["kind"] for f in data["faults"]} == {str(k) for k in FaultKind}
    assert all(f["description"] for f in data["faults"])
    text = run("simulators").stdout
    assert "walking-pad" in text and "pause-at-console" in text
    for kind in ("console-start", "console-incline"):
        if kind in {str(k) for k in FaultKind}:
            assert kind in text
    assert "treadmill simulators" in " ".join(run("status", "--help").stdout.split())


def test_programs_names_the_incline_unlock_once():
    result = run("programs")
    line = next(line for line in result.stdout.splitlines()
                if line.startswith("incline-backward"))
    assert line.count("unlock") == 1 and "--unlock-backward-incline" in line


def test_a_closed_stdout_ends_quietly():
    import os
    import subprocess
    import sys

    exe = str(Path(sys.executable).with_name("treadmill"))
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line: every write fails (EPIPE)
    try:
        for args in (["programs"], ["session", "taster", "--simulate", "--headless",
                                    "--auto-confirm", "--speedup", "max"]):
            done = subprocess.run([exe, *args], stdout=write, stderr=subprocess.PIPE,
                                  stdin=subprocess.DEVNULL, timeout=30)
            assert done.stderr == b"", done.stderr
            assert done.returncode in (0, 141)
    finally:
        os.close(write)


def test_a_session_whose_output_closes_still_stops_the_belt(tmp_path):
    import subprocess
    import sys

    exe = str(Path(sys.executable).with_name("treadmill"))
    trace = tmp_path / "trace.jsonl"
    process = subprocess.Popen(
        [exe, "session", "taster", "--simulate", "--headless", "--json", "--auto-confirm",
         "--speedup", "20", "--sim-trace", str(trace)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert process.stdout is not None
    for line in process.stdout:
        if json.loads(line).get("type") == "step":
            break
    process.stdout.close()  # `| head`: the reader goes away mid-session
    _, err = process.communicate(timeout=20)
    assert err == b"" and process.returncode == 141
    writes = [json.loads(line) for line in trace.read_text().splitlines() if '"write"' in line]
    assert writes[-1]["write"] == "0801" and writes[-1]["result"] is not None


# ---- headless input ------------------------------------------------------------------------------


def test_headless_pause_at_the_console_can_be_resumed_from_the_keyboard():
    result = run("session", "taster", "--simulate", "--headless", "--auto-confirm",
                 "--speedup", "max", "--sim-fault", "pause-at-console@40", input="resume\n")
    assert result.exit_code == 0, result.output
    assert 'type "resume"' in result.stdout
    assert "Session over (completed)" in result.stdout


def test_headless_pause_can_be_ended_from_the_keyboard():
    result = run("session", "taster", "--simulate", "--headless", "--json", "--auto-confirm",
                 "--speedup", "max", "--sim-fault", "pause-at-console@40",
                 input="what\nstop\n")
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[-1]["type"] == "ended"
    assert "keyboard" in events[-1]["message"]
    assert 'Paused: type "resume"' in result.stderr  # the hint for "what"


def test_only_an_explicit_answer_confirms_a_turn_around():
    result = run("session", "taster", "--simulate", "--headless", "--json", "--speedup", "max",
                 input="\xff\xfe garbage\nno\n")
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert not any(e["type"] == "confirmed" for e in events)
    assert result.exit_code == 1
    assert "standard input is closed" in result.stderr
    assert result.stderr.count("Not a confirmation") == 2


def test_enter_or_yes_confirms_a_turn_around():
    result = run("session", "taster", "--simulate", "--headless", "--json", "--speedup", "max",
                 input="  YES \n\n\n\n")
    assert result.exit_code == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert sum(e["type"] == "confirmed" for e in events) >= 2


def test_headless_never_says_completed_with_exit_0_while_the_belt_was_not_seen_to_stop(tmp_path):
    """A treadmill that refuses every Stop from the end of the program on."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "treadmill.cli", "session", "taster", "--headless",
         "--simulate", "--auto-confirm", "--speedup", "max",
         "--sim-fault", "result-failed@265"],
        capture_output=True, text=True, timeout=120,
        env={**__import__("os").environ, "TREADMILL_CONFIG_DIR": str(tmp_path)},
    )
    assert result.returncode == 2, result.stdout[-2000:]
    assert "Session over (completed)" not in result.stdout


@pytest.mark.parametrize("transport", ["gatt", "att"])
def test_a_session_over_either_transport_pairs_once_when_the_control_point_is_encrypted(
    transport,
):
    result = run("session", "taster", "--simulate", "--sim-transport", transport,
                 "--sim-encrypted-control-point", "--headless", "--auto-confirm",
                 "--speedup", "max", "--no-record")
    assert result.exit_code == 0, result.output
    assert result.stderr.count("pairing with it now") == 1
    assert "Session over (completed)" in result.stdout


def test_the_done_command_of_the_att_transport_completes():
    result = run("session", "knee-10", "--simulate", "--sim-transport", "att", "--headless",
                 "--auto-confirm", "--speedup", "max", "--no-record")
    assert result.exit_code == 0, result.output
    assert "Session over (completed)" in result.stdout


def test_a_bad_connection_interval_is_one_line():
    result = run("session", "taster", "--simulate", "--sim-transport", "att",
                 "--sim-connection-interval", "2", "--headless")
    assert result.exit_code == 2 and "7.5" in result.output


def test_the_att_transport_without_bumble_says_how_to_install_it(monkeypatch):
    import sys

    for name in [m for m in sys.modules if m == "bumble" or m.startswith("bumble.")]:
        monkeypatch.delitem(sys.modules, name)
    for name in ("simulators.att_backend", "simulators.att_server", "simulators.air"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setitem(sys.modules, "bumble", None)  # import bumble -> ImportError
    result = run("session", "taster", "--simulate", "--sim-transport", "att", "--headless")
    assert "pip install 'backward-treadmill[att]'" in one_line_error(result)
