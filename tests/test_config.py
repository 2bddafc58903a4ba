"""The config file: concurrent writers, undecodable files, write failures, one-line messages."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from treadmill import config as config_module
from treadmill.cli import main
from treadmill.config import PairedDevice, edit_config, load_config

TREADMILL = str(Path(sys.executable).with_name("treadmill"))


@pytest.fixture(autouse=True)
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "config"
    monkeypatch.setenv("TREADMILL_CONFIG_DIR", str(folder))
    return folder


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def one_line_error(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in result.output
    return lines[0]


def address(process: int, n: int) -> str:
    return f"AA:BB:CC:00:{process:02X}:{n:02X}"


def test_concurrent_pair_and_forget_lose_nothing(config_dir, tmp_path):
    """4 processes x 5 pairs (each forgetting its 2nd address again) at the same time."""
    env = os.environ | {"TREADMILL_CONFIG_DIR": str(config_dir)}
    processes = []
    for p in range(4):
        commands = [f"'{TREADMILL}' pair --no-check {address(p, n)}" for n in range(5)]
        commands.insert(3, f"'{TREADMILL}' forget {address(p, 1)}")
        processes.append(subprocess.Popen(["sh", "-c", " && ".join(commands)], env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    for process in processes:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err.decode()
    raw = tomllib.loads((config_dir / "config.toml").read_text(encoding="utf-8"))
    stored = {d["address"] for d in raw["devices"]}
    assert stored == {address(p, n) for p in range(4) for n in range(5) if n != 1}
    assert raw["default_device"] in stored
    assert [p.name for p in config_dir.iterdir() if p.suffix == ".tmp"] == []


def test_edit_config_writes_nothing_when_the_block_fails(config_dir):
    with edit_config() as config:
        config.remember(PairedDevice("AA:BB:CC:DD:EE:01"))
    before = (config_dir / "config.toml").read_bytes()
    with pytest.raises(RuntimeError), edit_config() as config:
        config.remember(PairedDevice("AA:BB:CC:DD:EE:02"))
        raise RuntimeError("changed my mind")
    assert (config_dir / "config.toml").read_bytes() == before


@pytest.mark.parametrize("args", [["devices"], ["pair", "--no-check", "AA:BB:CC:DD:EE:FF"],
                                  ["forget", "AA:BB:CC:DD:EE:FF"],
                                  ["session", "taster", "--simulate", "--headless",
                                   "--auto-confirm", "--speedup", "max"],
                                  ["status", "--simulate", "--seconds", "1"]])
def test_a_config_that_is_not_utf8_is_named_and_kept(config_dir, args):
    config_dir.mkdir(parents=True)
    path = config_dir / "config.toml"
    path.write_bytes(b'default_device = "\xff"\n')
    result = run(*args)
    assert result.exit_code == 1
    line = one_line_error(result)
    assert "not UTF-8 text: fix or move it away" in line and str(path) in line
    assert path.read_bytes() == b'default_device = "\xff"\n'


def test_an_old_temp_file_name_in_the_way_does_not_matter(config_dir):
    config_dir.mkdir(parents=True)
    (config_dir / "config.toml.tmp").mkdir()  # what an older version would have written to
    result = run("pair", "--no-check", "AA:BB:CC:DD:EE:FF")
    assert result.exit_code == 0, result.stderr
    assert load_config().default_device == "AA:BB:CC:DD:EE:FF"


def test_a_refused_write_says_what_to_do(config_dir, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(config_module.tempfile, "mkstemp", refuse)
    result = run("pair", "--no-check", "AA:BB:CC:DD:EE:FF")
    assert result.exit_code == 1
    line = one_line_error(result)
    assert str(config_dir / "config.toml") in line
    assert "permission denied" in line and "writable" in line and "TREADMILL_CONFIG_DIR" in line
    assert "PermissionError" not in line


def test_a_config_folder_that_cannot_exist_says_what_to_do(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("TREADMILL_CONFIG_DIR", str(blocker / "treadmill"))
    result = run("pair", "--no-check", "AA:BB:CC:DD:EE:FF")
    assert result.exit_code == 1
    line = one_line_error(result)
    assert "can't write the config file" in line and "TREADMILL_CONFIG_DIR" in line
    assert "NotADirectoryError" not in line


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root may write to a read-only folder")
def test_a_read_only_config_folder_says_what_to_do(config_dir):
    config_dir.mkdir(parents=True)
    config_dir.chmod(0o500)
    try:
        result = run("pair", "--no-check", "AA:BB:CC:DD:EE:FF")
    finally:
        config_dir.chmod(0o700)
    assert result.exit_code == 1
    assert "writable" in one_line_error(result)
