"""Every session kept, end to end: real `treadmill` processes on the simulator record into a
private data folder; `history`, `history show`, `export` and `history delete` read it back; a
`kill -9` mid-session loses at most a second of samples and the session is kept, marked
"interrupted"."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

import click
import fitdecode
import pytest
from click.testing import CliRunner
from test_cli_signals import TREADMILL, trace_lines
from test_tui import make_app as make_app  # the fixture
from test_tui import press, start, wait_until, walking_at

from treadmill.cli import main
from treadmill.history.store import HistoryStore

PROGRAM = """title = "Short walk"
[[steps]]
orientation = "forward"
minutes = 1
speed_kmh = 2.0
"""


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_a_headless_session_is_kept_and_can_be_shown_exported_and_deleted(tmp_path):
    result = run("session", "taster", "--simulate", "--headless", "--auto-confirm",
                 "--speedup", "max")
    assert result.exit_code == 0, result.stderr
    assert "Kept as session" in result.stdout
    listed = json.loads(run("history", "--json").stdout)
    assert len(listed) == 1
    summary = listed[0]
    assert summary["program"] == "taster" and summary["simulated"] is True
    assert summary["end_reason"] == "completed"
    assert summary["backward_s"] > 50 and summary["distance_m"] > 100
    shown = json.loads(run("history", "show", str(summary["id"]), "--json").stdout)
    assert [s["orientation"] for s in shown["steps"]] == ["forward", "backward", "forward"]
    assert shown["samples"] > 100
    text = run("history", "show", str(summary["id"])).stdout
    assert "#" in text and "B" in text  # the chart, and the backward part under it
    out = tmp_path / "walk.fit"
    assert run("export", str(summary["id"]), "--format", "fit", "-o", str(out)).exit_code == 0
    with fitdecode.FitReader(str(out), check_crc=fitdecode.CrcCheck.RAISE) as fit:
        names = [frame.name for frame in fit if isinstance(frame, fitdecode.FitDataMessage)]
    assert names.count("record") == shown["samples"] and names.count("lap") == 3
    again = run("export", str(summary["id"]), "--format", "fit", "-o", str(out))
    assert again.exit_code != 0 and "exists" in again.stderr  # never overwritten silently
    assert run("history", "delete", str(summary["id"])).exit_code == 0
    assert json.loads(run("history", "--json").stdout) == []


def test_no_record_keeps_nothing():
    result = run("session", "taster", "--simulate", "--headless", "--auto-confirm",
                 "--speedup", "max", "--no-record")
    assert result.exit_code == 0, result.stderr
    assert json.loads(run("history", "--json").stdout) == []


def test_an_unknown_session_is_one_line():
    for args in (("history", "show", "99"), ("export", "99"), ("history", "delete", "99")):
        result = CliRunner().invoke(main, list(args))
        assert result.exit_code == 1
        assert result.stderr.strip().count("\n") == 0 and "no session 99" in result.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_kill_9_mid_session_loses_at_most_a_second_and_keeps_the_session(tmp_path):
    program = tmp_path / "walk.toml"
    program.write_text(PROGRAM, encoding="utf-8")
    trace = tmp_path / "trace.jsonl"
    process = subprocess.Popen(
        [TREADMILL, "session", str(program), "--simulate", "--headless", "--json",
         "--sim-notify-hz", "10", "--sim-trace", str(trace)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=os.environ)
    try:
        deadline = time.monotonic() + 20
        while not any(line.get("belt_kmh", 0) >= 1.5 for line in trace_lines(trace)):
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.05)
        time.sleep(2.3)  # in the middle of a flush interval, or not: the bound must hold
        killed_at = datetime.now(UTC)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=5)
    finally:
        if process.poll() is None:
            process.kill()
    with HistoryStore() as store:
        (summary,) = store.sessions()
        recording = store.recording(summary.id)
    assert recording is not None
    assert summary.end_reason == "interrupted"  # kept, and marked
    started = datetime.fromisoformat(summary.started_at)
    walked_s = (killed_at - started).total_seconds()
    last_kept = recording.samples[-1].t
    assert walked_s - last_kept <= 1.0 + 0.1 + 0.2, (walked_s, last_kept)  # 10 Hz, clock slack


@pytest.mark.real_time  # the picker reads the history in thread workers (real threads)
async def test_a_tui_session_is_kept_too(make_app):
    app, _ = make_app(record=True)
    async with app.run_test(size=(120, 40)) as pilot:
        session = await start(pilot, "walk")
        await walking_at(app, session, 2.0)
        await press(pilot, "space")  # stopped early: kept all the same, with its reason
        await wait_until(lambda: session.runner is None or session.runner.governor is None
                         or str(session.runner.governor.state) == "ended", 30, "the end")
        await wait_until(lambda: app.core.runner is None, 30, "the runner to finish")
        await pilot.press("q")
    with HistoryStore() as store:
        (summary,) = store.sessions()
    assert summary.program == "walk" and summary.simulated
    assert summary.end_reason == "emergency_stop"


def test_plan_suggests_a_first_session_with_its_reasons():
    result = run("plan", "--json")
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["week_sessions"] == 0 and plan["rest_today"] is False
    assert plan["reasons"] and plan["next"]["backward_minutes"] > 0
    text = run("plan").stdout
    assert "treadmill session next" in text


def test_session_next_runs_the_plan_and_is_kept():
    result = run("session", "next", "--simulate", "--headless", "--auto-confirm",
                 "--speedup", "max")
    assert result.exit_code == 0, result.stderr
    (summary,) = json.loads(run("history", "--json").stdout)
    assert summary["program"] == "next" and summary["end_reason"] == "completed"


def test_a_rating_is_a_whole_number_from_0_to_10_or_nothing():
    from treadmill.cli import RatingType

    rating = RatingType()
    assert rating.convert("", None, None) is None
    assert rating.convert(" 7 ", None, None) == 7
    for bad in ("11", "-1", "2.5", "lots"):
        with pytest.raises(click.BadParameter):
            rating.convert(bad, None, None)


def test_export_auto_writes_each_finished_session(tmp_path, monkeypatch):
    config = tmp_path / "config"
    config.mkdir()
    (config / "config.toml").write_text('[export]\nauto = ["fit", "csv"]\nfolder = "out"\n',
                                        encoding="utf-8")
    monkeypatch.setenv("TREADMILL_CONFIG_DIR", str(config))
    for _ in range(2):  # the second one never overwrites the first
        result = run("session", "taster", "--simulate", "--headless", "--auto-confirm",
                     "--speedup", "max")
        assert result.exit_code == 0, result.stderr
        assert "Exported " in result.stdout
    fits = sorted((config / "out").glob("*.fit"))
    assert len(fits) == 2 and len(list((config / "out").glob("*.csv"))) == 2
    with fitdecode.FitReader(str(fits[0]), check_crc=fitdecode.CrcCheck.RAISE) as fit:
        assert any(isinstance(f, fitdecode.FitDataMessage) and f.name == "session" for f in fit)


def test_a_bad_export_setting_is_one_line(tmp_path, monkeypatch):
    config = tmp_path / "config"
    config.mkdir()
    (config / "config.toml").write_text('[export]\nauto = ["gpx"]\n', encoding="utf-8")
    monkeypatch.setenv("TREADMILL_CONFIG_DIR", str(config))
    result = CliRunner().invoke(main, ["session", "taster", "--simulate", "--headless",
                                       "--auto-confirm", "--speedup", "max"])
    assert result.exit_code == 1
    assert "[export]" in result.stderr and "gpx" in result.stderr
    assert result.stderr.strip().count("\n") == 0
