"""Screenshots of the main screens at 80x24 and 120x40 (pytest-textual-snapshot).

Update after a deliberate change with `pytest tests/test_tui_snapshots.py --snapshot-update`
and look at the SVGs (tests/__snapshots__/test_tui_snapshots/) before committing them.

Reproducible by construction: the simulator always has the same name and address, the config
and programs are fixed, live values are waited for and then frozen (the picker's belt line),
and the session screen is not fed by a live runner but by a scripted list of SessionEvents
plus a fixed copy of the governor's view (`SafetyView`). snap_compare runs the app on a normal
(real-time) loop, so these are synchronous tests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from treadmill.config import Config, PairedDevice
from treadmill.programs import builtin_programs
from treadmill.session_events import SessionEvent, event_from_dict
from treadmill.wiring import SimulatorOptions, simulator_factory
from tui.app import TreadmillApp
from tui.screens.alert import AlertScreen
from tui.screens.device import DeviceScreen
from tui.screens.picker import ProgramPicker
from tui.screens.session import SessionScreen, scripted_state
from tui.screens.turn_around import TurnAroundScreen
from tui.session_state import SafetyView, sentences

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]
PROGRAMS = builtin_programs()


def make_app(tmp_path: Path, **kwargs: Any) -> TreadmillApp:
    kwargs.setdefault("simulate", True)
    kwargs.setdefault("config", Config(
        devices=[PairedDevice("AA:BB:CC:DD:EE:01", name="Hall treadmill", model="T-100")],
    ))
    kwargs.setdefault("config_path", tmp_path / "config.toml")
    kwargs.setdefault("programs", PROGRAMS)
    kwargs.setdefault("scan_timeout_s", 0.2)
    kwargs.setdefault("simulator", simulator_factory(SimulatorOptions()))
    return TreadmillApp(**kwargs)


async def until(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out preparing the screenshot"
        await asyncio.sleep(0.05)


# ---- a scripted session: taster, in its backward step, the person pressed up to the cap ------


def ev(t: float, type_: str, **data: Any) -> SessionEvent:
    return event_from_dict(t, type_, data)


def telemetry(t: float, kmh: float, distance: int, *, orientation: str,
              heart: int | None = 104) -> SessionEvent:
    return ev(t, "telemetry", speed_kmh=kmh, incline_pct=0.0, incline_reported=True,
              distance_m=distance, heart_rate_bpm=heart, orientation=orientation)


def taster_events() -> list[SessionEvent]:
    events = [
        ev(0.0, "started", program="taster", title="Five-minute taster",
           device="SIM Treadmill home", minutes=4.0),
        ev(0.0, "step", index=1, of=3, orientation="forward", speed_kmh=2.5, incline_pct=0.0,
           duration_s=90.0, cue="Walk forward. The big SPACE key stops the belt at any time."),
    ]
    distance = 0.0
    for second in range(0, 90):
        kmh = min(2.5, 1.0 + 0.1 * second)
        distance += kmh / 3.6
        events.append(telemetry(second + 0.5, kmh, int(distance), orientation="forward"))
    events += [
        ev(90.0, "turn_around", to="backward",
           text="Slowing to a stop: you will turn to face backward"),
    ]
    for second in range(90, 101):
        kmh = max(0.0, 2.5 - 0.2 * (second - 89))
        distance += kmh / 3.6
        events.append(telemetry(second + 0.5, kmh, int(distance), orientation="forward"))
    events += [
        ev(101.0, "confirm_needed", to="backward",
           text="Belt stopped. Hold the rails, turn to face backward, then confirm."),
        ev(104.0, "confirmed", orientation="backward"),
        ev(104.0, "orientation", orientation="backward"),
        ev(104.0, "step", index=2, of=3, orientation="backward", speed_kmh=1.5,
           incline_pct=0.0, duration_s=60.0, cue="Backward, holding the rails. Short steps."),
    ]
    for second in range(104, 129):
        kmh = min(2.4, 1.0 + 0.1 * (second - 104))
        distance += kmh / 3.6
        events.append(telemetry(second + 0.5, kmh, int(distance), orientation="backward"))
    events.append(ev(128.6, "refused",
                     reason="backward speed is capped at 3.0 km/h; target set to 3.0 km/h"))
    return events


SAFETY = SafetyView(
    state="running", orientation="backward", target_speed_kmh=3.0, commanded_speed_kmh=2.4,
    measured_speed_kmh=2.4, commanded_incline_pct=0.0, measured_incline_pct=0.0,
    speed_cap_kmh=3.0, ramping=True, telemetry_age_s=0.2, link_state="ok", has_control=True,
    backward_bout_s=25.0, backward_total_s=25.0,
)


def scripted_session(**overrides: Any) -> SessionScreen:
    state = scripted_state(PROGRAMS["taster"], taster_events(), device="SIM Treadmill home",
                           simulated=True, safety=SAFETY, elapsed_s=129.0,
                           step_remaining_s=35.0)
    for key, value in overrides.items():
        setattr(state, key, value)
    return SessionScreen(PROGRAMS["taster"], state=state)


def push(*screens: Callable[[], Any]) -> Callable[[Pilot[Any]], Awaitable[None]]:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        await until(lambda: isinstance(app.screen, DeviceScreen)
                    and not app.screen.scanning)  # the scan underneath is over
        for make in screens:
            await app.push_screen(make())
        await pilot.pause()

    return run_before


# ---- the screens --------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_device_screen(snap_compare, tmp_path, size):
    app = make_app(tmp_path, auto_connect=False)

    async def run_before(pilot: Pilot[Any]) -> None:
        await until(lambda: isinstance(app.screen, DeviceScreen) and app.screen.found
                    and not app.screen.scanning)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_program_picker(snap_compare, tmp_path, size):
    app = make_app(tmp_path, program_name="first-timer")

    async def run_before(pilot: Pilot[Any]) -> None:
        await until(lambda: isinstance(app.screen, ProgramPicker) and app.link is not None
                    and app.link.last_sample is not None)
        app.screen.update_belt()  # freeze the live line at the first reading (0.0 km/h)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_safety_checklist(snap_compare, tmp_path, size):
    app = make_app(tmp_path, program_name="first-timer")

    async def run_before(pilot: Pilot[Any]) -> None:
        await until(lambda: isinstance(app.screen, ProgramPicker) and app.link is not None
                    and app.link.last_sample is not None)
        app.screen.update_belt()
        await pilot.press("question_mark")

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_session_mid_backward_step(snap_compare, tmp_path, size):
    app = make_app(tmp_path, auto_connect=False)
    assert snap_compare(app, terminal_size=size, run_before=push(scripted_session))


def test_turn_around_dialog(snap_compare, tmp_path):
    app = make_app(tmp_path, auto_connect=False)

    def turning() -> SessionScreen:
        return scripted_session(phase="confirm", turn_to="forward", speed_kmh=0.0)

    def dialog() -> TurnAroundScreen:
        screen = TurnAroundScreen("forward", on_confirm=lambda: False, ready=True)
        screen.speed_kmh = 0.0
        return screen

    assert snap_compare(app, terminal_size=(80, 24), run_before=push(turning, dialog))


def test_link_lost_alert(snap_compare, tmp_path):
    app = make_app(tmp_path, auto_connect=False)
    message = ("Bluetooth link lost: the app can no longer stop the belt. use the console STOP "
               "or pull the safety key. The session has ended; nothing will restart by itself")
    lost = [ev(129.0, "link_lost", reason="disconnected"),
            ev(129.0, "alarm", kind="link_lost", message=message),
            ev(129.0, "ended", reason="link_lost", message=message)]

    def ended() -> SessionScreen:
        state = scripted_state(PROGRAMS["taster"], taster_events() + lost,
                               device="SIM Treadmill home", simulated=True,
                               safety=replace(SAFETY, state="ended", link_state="lost",
                                              has_control=False, ramping=False),
                               elapsed_s=129.0, step_remaining_s=35.0)
        return SessionScreen(PROGRAMS["taster"], state=state)

    def alert() -> AlertScreen:
        return AlertScreen("BLUETOOTH LINK LOST", sentences(message),
                           advice="If the belt is still moving: use the console STOP or the "
                                  "safety key.")

    assert snap_compare(app, terminal_size=(80, 24), run_before=push(ended, alert))
