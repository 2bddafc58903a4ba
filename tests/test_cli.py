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
