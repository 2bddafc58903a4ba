"""The TUI against the simulator, driven by keys through textual's Pilot.

Time: these tests run on the VirtualTimeLoop like the rest of the suite, so a session's
minutes cost a second or two of wall time. Keys are posted as textual Key events and followed
by `pilot.pause(0)` (which waits for the app and screen to process their queues, with no
wall-clock heuristics): `pilot.press` also works (one test uses it), but it waits for "CPU
idle" by wall clock, which on a simulated clock lets an unpredictable amount of session time
pass. `wait_until` polls on loop time, so a timeout is simulated seconds, not real ones.
Textual's own timers measure time with time.monotonic (see textual/timer.py); on the virtual
loop they drift, which only changes how often the screen is *painted*: the app's state and
its display refresh are driven by loop time (loop.call_later), never by textual timers.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual import events
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from safety import GovernorState, Orientation, SafetyConfig
from treadmill.config import Config, PairedDevice, load_config
from treadmill.programs import Program, Step
from treadmill.scan import FoundTreadmill
from treadmill.session_events import event_from_dict
from treadmill.wiring import SIM_ADDRESS, SimulatedTreadmill, SimulatorOptions, simulator_factory
from tui.app import TreadmillApp
from tui.screens.alert import AlertScreen
from tui.screens.checklist import ChecklistScreen
from tui.screens.device import DeviceScreen
from tui.screens.picker import ProgramPicker
from tui.screens.session import REFRESH_S, SessionScreen
from tui.screens.turn_around import TurnAroundScreen
from tui.session_state import SafetyView, SessionState, clock, distance_text
from tui.widgets.metric import Metric
from tui.widgets.orientation import OrientationBanner

STOP = bytes([0x08, 0x01])
KEY_HOPS = 5
F, B = Orientation.FORWARD, Orientation.BACKWARD

PROGRAMS = {
    "walk": Program(
        "walk",
        "Forward walk",
        (Step(F, 120, 2.0, cue="Walk forward."),),
        description="Two minutes forward.",
    ),
    "mixed": Program(
        "mixed",
        "Short mixed",
        (
            Step(F, 20, 2.0, cue="Forward."),
            Step(B, 20, 1.5, cue="Backward, hold the rails."),
            Step(F, 20, 2.0, cue="Forward again."),
        ),
        description="Forward, backward, forward.",
    ),
    "at-cap": Program("at-cap", "Backward at the cap", (Step(B, 120, 3.0),)),
    "uphill": Program(
        "uphill",
        "Backward uphill",
        (Step(B, 60, 1.0, incline_pct=2.0),),
        unlock_backward_incline=True,
    ),
}


# ---- helpers -----------------------------------------------------------------------------------


def now() -> float:
    return asyncio.get_running_loop().time()


async def press(pilot: Pilot[Any], *keys: str) -> None:
    """Send keys as the terminal would, and let the app and its screen handle them.

    A key the app does not take travels app -> focused widget -> parents -> screen, one
    message queue per hop, so wait for the queues a few times over."""
    for key in keys:
        char = " " if key == "space" else key if len(key) == 1 else None
        pilot.app.post_message(events.Key(key, char))
        for _ in range(KEY_HOPS):
            await pilot.pause(0)


async def wait_until(
    predicate: Callable[[], object], timeout: float = 120.0, what: str = "condition"
) -> None:
    """Poll on loop time (simulated seconds on the virtual loop)."""
    deadline = now() + timeout
    while not predicate():
        if now() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.1)


def stops(sim: SimulatedTreadmill | None) -> int:
    assert sim is not None
    return sum(1 for _, data in sim.machine.control_log if data == STOP)


def belt(app: TreadmillApp) -> float:
    assert isinstance(app.sim, SimulatedTreadmill)
    return app.sim.machine.model.belt_speed_kmh


class Recorder:
    """Stands in for app.bell / app.notify to see what the person was told."""

    def __init__(self) -> None:
        self.bells = 0
        self.notes: list[tuple[str, str]] = []

    def bell(self) -> None:
        self.bells += 1

    def notify(
        self, message: str, *, title: str = "", severity: str = "information", **_: Any
    ) -> None:
        self.notes.append((severity, f"{title}: {message}" if title else message))

    def said(self, text: str) -> bool:
        return any(text in note for _, note in self.notes)


@pytest.fixture
def make_app(tmp_path: Path,
             monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple[TreadmillApp, Recorder]]:
    monkeypatch.setenv("TREADMILL_CONFIG_DIR", str(tmp_path))  # no user programs or config

    def make(**kwargs: Any) -> tuple[TreadmillApp, Recorder]:
        kwargs.setdefault("simulate", True)
        kwargs.setdefault("config", Config())
        kwargs.setdefault("config_path", tmp_path / "config.toml")
        kwargs.setdefault("programs", PROGRAMS)
        # The composition root's part: the simulator (inline controller, on the test's loop).
        kwargs["simulator"] = simulator_factory(kwargs.pop("sim_options", SimulatorOptions()))
        app = TreadmillApp(**kwargs)
        recorder = Recorder()
        app.bell = recorder.bell  # type: ignore[method-assign]
        app.notify = recorder.notify  # type: ignore[method-assign]
        return app, recorder

    return make


async def to_picker(app: TreadmillApp) -> ProgramPicker:
    await wait_until(lambda: isinstance(app.screen, ProgramPicker) and app.screen.settled, 30,
                     "the program picker and its list")
    assert isinstance(app.screen, ProgramPicker)
    return app.screen


async def start(pilot: Pilot[Any], name: str) -> SessionScreen:
    """From the picker: highlight `name`, Enter, acknowledge the checklist if it comes."""
    app = pilot.app
    assert isinstance(app, TreadmillApp)
    picker = await to_picker(app)
    table = picker.query_one("#programs", DataTable)
    table.move_cursor(row=table.get_row_index(name))
    await press(pilot, "enter")
    if isinstance(app.screen, ChecklistScreen):
        await press(pilot, "enter")
    sessions = [s for s in app.screen_stack if isinstance(s, SessionScreen)]
    assert sessions, app.screen_stack
    return sessions[-1]


async def walking_at(app: TreadmillApp, session: SessionScreen, kmh: float) -> None:
    await wait_until(
        lambda: (
            session.runner is not None
            and session.runner.governor is not None
            and str(session.runner.governor.state) == "running"
            and belt(app) >= kmh - 0.05
        ),
        60,
        f"the belt at {kmh} km/h",
    )


async def confirm_turn(pilot: Pilot[Any]) -> None:
    app = pilot.app
    await wait_until(
        lambda: isinstance(app.screen, TurnAroundScreen) and app.screen.ready,
        60,
        "the turn-around dialog asking for confirmation",
    )
    await press(pilot, "enter")
    await wait_until(
        lambda: not isinstance(app.screen, TurnAroundScreen), 10, "the dialog to close"
    )


def status_text(session: SessionScreen) -> str:
    return str(session.query_one("#status-line", Static).render())


# ---- start-up, devices, programs ----------------------------------------------------------------


async def test_without_a_paired_device_it_runs_on_the_simulator_and_says_so(make_app):
    app, _ = make_app(simulate=False)  # nothing paired, no --device
    async with app.run_test(size=(120, 40)):
        picker = await to_picker(app)
        assert app.simulated and app.link is not None and app.link.simulated
        assert picker.query_one("#top-sim").display
        assert "SIMULATED" in str(picker.query_one("#top-sim", Static).render())
        device_screen = app.screen_stack[1]
        assert isinstance(device_screen, DeviceScreen)
        assert "simulator" in device_screen.mode_text()


async def test_device_screen_lists_scan_results_pairs_and_forgets(make_app, tmp_path):
    config = Config(
        devices=[PairedDevice("AA:BB:CC:DD:EE:01", name="Old mill")],
        default_device="AA:BB:CC:DD:EE:01",
    )
    app, rec = make_app(simulate=True, auto_connect=False, config=config)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        assert isinstance(screen, DeviceScreen)
        table = screen.query_one("#devices", DataTable)
        await wait_until(lambda: SIM_ADDRESS in screen.found, 10, "the simulator in the scan")
        rows = {table.get_row(key)[2]: table.get_row(key) for key in table.rows}
        _mark, name, _address, rssi, state = rows[SIM_ADDRESS]
        assert name.startswith("SIM Treadmill") and rssi == "-60 dBm" and "simulated" in state
        assert rows["AA:BB:CC:DD:EE:01"][1] == "Old mill"
        assert "default" in rows["AA:BB:CC:DD:EE:01"][4]

        # the simulator needs no pairing
        table.move_cursor(row=table.get_row_index(SIM_ADDRESS))
        await press(pilot, "p")
        assert rec.said("needs no pairing")

        # a (pretend) real treadmill found by a scan: pair it, it becomes the default
        sim_device = app.sim.machine.ble_device  # any BLEDevice will do for a row
        screen.found["AA:BB:CC:DD:EE:02"] = FoundTreadmill(
            "Kitchen mill", "AA:BB:CC:DD:EE:02", -71, ("treadmill",), sim_device
        )
        screen.refresh_rows()
        table.move_cursor(row=table.get_row_index("AA:BB:CC:DD:EE:02"))
        await press(pilot, "p")
        saved = load_config(tmp_path / "config.toml")
        assert saved.default_device == "AA:BB:CC:DD:EE:02"
        assert {d.address for d in saved.devices} == {"AA:BB:CC:DD:EE:01", "AA:BB:CC:DD:EE:02"}

        table.move_cursor(row=table.get_row_index("AA:BB:CC:DD:EE:01"))
        await press(pilot, "f")
        saved = load_config(tmp_path / "config.toml")
        assert [d.address for d in saved.devices] == ["AA:BB:CC:DD:EE:02"]

        # connect to the simulator: the program picker comes up
        table.move_cursor(row=table.get_row_index(SIM_ADDRESS))
        await press(pilot, "enter")
        await to_picker(app)


async def test_a_failed_connection_is_one_line_and_back_to_devices(make_app):
    app, rec = make_app(simulate=True, auto_connect=False)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        assert isinstance(screen, DeviceScreen)
        await wait_until(lambda: SIM_ADDRESS in screen.found, 10, "the scan")
        app.sim.close()  # switched off between the scan and the connect
        await press(pilot, "enter")
        await wait_until(lambda: rec.notes, 60, "an error")
        severity, note = rec.notes[-1]
        assert severity == "error" and "\n" not in note and "Traceback" not in note
        assert isinstance(app.screen, DeviceScreen)
        assert "Not connected" in str(screen.query_one("#device-status", Static).render())


async def test_programs_show_length_backward_minutes_and_the_incline_lock(make_app):
    app, rec = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        picker = await to_picker(app)
        table = picker.query_one("#programs", DataTable)
        assert table.get_row("mixed")[1:3] == ["1 min", "0.3 min"]
        assert "LOCKED" in table.get_row("uphill")[3]
        table.move_cursor(row=table.get_row_index("uphill"))
        await pilot.pause(0)
        assert "locked" in str(picker.query_one("#program-description", Static).render())
        await press(pilot, "enter")
        assert isinstance(app.screen, ProgramPicker)  # refused: no session, no checklist
        status = str(picker.query_one("#picker-status", Static).render())
        assert status.startswith("refused:") and "unlock-backward-incline" in status
        assert rec.bells == 1


async def test_with_the_incline_unlocked_the_uphill_program_starts(make_app):
    unlocked = SafetyConfig.from_user_dict({"backward_incline_unlocked": True})
    app, _ = make_app(safety=unlocked, program_name="uphill")
    async with app.run_test(size=(120, 40)) as pilot:
        picker = await to_picker(app)
        assert picker.query_one("#programs", DataTable).get_row("uphill")[3] == (
            "incline unlocked")
        session = await start(pilot, "uphill")
        await confirm_turn(pilot)
        await wait_until(lambda: (session.runner.governor.commanded_incline_pct or 0) > 0, 60,
                         "the incline to be commanded")
        await press(pilot, "space")


async def test_a_program_file_given_by_path_is_offered(make_app, tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('name = "mine"\n[[steps]]\norientation = "forward"\nseconds = 30\n'
                    'speed_kmh = 2.0\n', encoding="utf-8")
    app, _ = make_app(programs=None, program_name=str(path))
    async with app.run_test(size=(120, 40)):
        picker = await to_picker(app)
        assert picker.selected() is not None and picker.selected().name == "mine"


async def test_a_program_this_treadmill_cannot_run_is_refused_before_the_belt_moves(make_app):
    app, _ = make_app(sim_options=SimulatorOptions(profile="high-minimum"))
    async with app.run_test(size=(120, 40)) as pilot:
        picker = await to_picker(app)
        table = picker.query_one("#programs", DataTable)
        table.move_cursor(row=table.get_row_index("mixed"))
        await press(pilot, "enter")
        assert isinstance(app.screen, ProgramPicker)
        status = str(picker.query_one("#picker-status", Static).render())
        assert "minimum of 4.5 km/h" in status
        assert app.sim.machine.control_log == []


# ---- keys drive the belt through the governor ----------------------------------------------------


async def test_up_raises_the_target_and_then_the_belt(make_app):
    app, _ = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        session = await start(pilot, "walk")
        await walking_at(app, session, 2.0)
        governor = session.runner.governor
        await press(pilot, "up", "up", "up")
        assert governor.target_speed_kmh == pytest.approx(2.3)
        await wait_until(lambda: belt(app) >= 2.25, 20, "the belt to speed up")
        await wait_until(
            lambda: session.query_one("#m-speed", Metric).value == "2.3", 5, "the display to follow"
        )
        await press(pilot, "down")
        assert governor.target_speed_kmh == pytest.approx(2.2)
        await press(pilot, "right")  # incline +0.5 % (the home profile's step)
        await wait_until(lambda: (governor.commanded_incline_pct or 0) > 0, 20, "incline")
        await press(pilot, "p")
        await wait_until(lambda: governor.state is GovernorState.PAUSED, 5, "pause")
        await wait_until(
            lambda: "PAUSED" in session.query_one(OrientationBanner).text,
            2,
            "the banner to say so",
        )


async def test_a_refused_request_at_the_cap_says_why(make_app):
    app, _ = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        session = await start(pilot, "at-cap")
        await confirm_turn(pilot)  # the program starts facing backward
        await walking_at(app, session, 3.0)
        await press(pilot, "up")
        assert "refused: backward speed is capped at 3.0 km/h" in status_text(session)
        assert session.query_one("#status-line").has_class("-refused")
        assert session.runner.governor.target_speed_kmh == pytest.approx(3.0)
        assert "FACING BACKWARD" in session.query_one(OrientationBanner).text


async def test_incline_not_reported_shows_the_commanded_value_and_says_so(make_app):
    app, _ = make_app(sim_options=SimulatorOptions(profile="no-incline-report"))
    async with app.run_test(size=(120, 40)) as pilot:
        session = await start(pilot, "walk")
        await walking_at(app, session, 2.0)
        await press(pilot, "right")
        await wait_until(
            lambda: session.query_one("#m-incline", Metric).note == "commanded",
            10,
            "the commanded note",
        )
        await wait_until(
            lambda: session.query_one("#m-incline", Metric).value == "0.5",
            20,
            "the commanded incline",
        )
        assert "incline not reported" in str(session.query_one("#safety-line", Static).render())


# ---- a whole program --------------------------------------------------------------------------


async def test_a_short_program_runs_to_the_end_with_the_turns_confirmed_by_enter(make_app):
    app, _ = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        session = await start(pilot, "mixed")
        assert app.checklist_acknowledged  # backward program: the checklist came first
        await walking_at(app, session, 2.0)
        assert "FACING FORWARD" in session.query_one(OrientationBanner).text
        await confirm_turn(pilot)
        await walking_at(app, session, 1.5)
        assert session.state.orientation == "backward"
        assert "FACING BACKWARD" in session.query_one(OrientationBanner).text
        await confirm_turn(pilot)
        await wait_until(lambda: session.state.ended, 120, "the end of the program")
        assert session.state.ended_reason == "completed"
        await wait_until(lambda: session.state.summary, 10, "the summary")
        assert not isinstance(app.screen, AlertScreen)
        await wait_until(lambda: belt(app) == 0.0, 10, "the belt to stop")
        await wait_until(
            lambda: session.query_one("#m-speed", Metric).value == "0.0",
            5,
            "the display to show it",
        )
        await press(pilot, "enter")  # back to the programs, still connected
        await to_picker(app)
        # The checklist is once per app run.
        session = await start(pilot, "mixed")
        assert isinstance(app.screen, SessionScreen)
        await press(pilot, "space")
        await wait_until(lambda: session.state.ended, 10, "the stop")


# ---- SPACE stops the belt from every screen and dialog ----------------------------------------


@pytest.mark.parametrize("where", ["device", "picker", "checklist"])
async def test_space_sends_stop_between_sessions(make_app, where):
    app, rec = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await to_picker(app)
        if where == "device":
            await press(pilot, "d")
            assert isinstance(app.screen, DeviceScreen)
            await pilot.press("space")  # textual's own key path, as from a terminal
        elif where == "checklist":
            await press(pilot, "question_mark")
            assert isinstance(app.screen, ChecklistScreen)
            await press(pilot, "space")
        else:
            await press(pilot, "space")
        await wait_until(lambda: stops(app.sim) == 1, 5, "Stop at the treadmill")
        assert rec.bells >= 1


async def test_space_stops_a_running_belt_from_the_session_screen(make_app):
    app, _ = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        session = await start(pilot, "walk")
        await walking_at(app, session, 2.0)
        await press(pilot, "space")
        # The governor approved Stop inside the key handler: nothing else had to run first.
        assert session.runner.governor.state is GovernorState.ENDED
        await wait_until(lambda: stops(app.sim) >= 1, 1, "Stop at the treadmill")
        await wait_until(lambda: belt(app) == 0.0, 10, "the belt to stop")
        await wait_until(lambda: session.state.ended, 5, "the end")
        assert session.state.ended_reason == "emergency_stop"
        assert not isinstance(app.screen, AlertScreen)  # the person pressed it: no alarm
        banner = session.query_one("#alert-banner", Static)
        assert banner.display and "EMERGENCY STOP" in str(banner.render())


async def test_space_stops_from_the_turn_around_dialog(make_app):
    app, _ = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        session = await start(pilot, "mixed")
        await wait_until(lambda: isinstance(app.screen, TurnAroundScreen), 60, "the dialog")
        assert not app.screen.ready and belt(app) > 0  # still slowing down
        await press(pilot, "space")
        await wait_until(lambda: stops(app.sim) >= 1, 1, "Stop at the treadmill")
        await wait_until(lambda: belt(app) == 0.0, 10, "the belt to stop")
        await wait_until(lambda: session.state.ended, 5, "the end")
        assert session.state.ended_reason == "emergency_stop"
        assert not isinstance(app.screen, TurnAroundScreen)


async def test_space_stops_from_an_alert(make_app):
    app, rec = make_app(sim_options=SimulatorOptions(faults=("safety-key@8",)))
    async with app.run_test(size=(120, 40)) as pilot:
        session = await start(pilot, "walk")
        await wait_until(lambda: isinstance(app.screen, AlertScreen), 30, "the alert")
        assert "SAFETY KEY PULLED" in str(app.screen.query_one("#alert-title", Static).render())
        before = stops(app.sim)
        await press(pilot, "space")
        await wait_until(lambda: stops(app.sim) > before, 1, "Stop at the treadmill")
        await wait_until(lambda: belt(app) == 0.0, 10, "the belt to stop")
        assert session.state.ended_reason == "safety_key"
        assert rec.bells >= 2


async def test_the_stop_path_is_synchronous(make_app):
    """SPACE's handler schedules the write before it returns: no message, no await."""
    app, _ = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        session = await start(pilot, "walk")
        await walking_at(app, session, 2.0)
        tasks_before = asyncio.all_tasks()
        handler = app.on_event(events.Key("space", " "))
        with pytest.raises(StopIteration):
            handler.send(None)  # the whole handler runs without suspending once
        assert session.runner.governor.state is GovernorState.ENDED
        new = {t.get_coro().__qualname__ for t in asyncio.all_tasks() - tasks_before}
        assert "SessionRunner._execute" in new  # the Stop write is already a running task
        await wait_until(lambda: stops(app.sim) >= 1, 1, "Stop at the treadmill")


# ---- alerts and quitting -----------------------------------------------------------------------


async def test_link_loss_shows_the_alert_and_ends_the_session(make_app):
    app, rec = make_app(sim_options=SimulatorOptions(faults=("disconnect@10",)))
    async with app.run_test(size=(120, 40)) as pilot:
        session = await start(pilot, "walk")
        await wait_until(lambda: isinstance(app.screen, AlertScreen), 30, "the alert")
        alert = app.screen
        assert "BLUETOOTH LINK LOST" in str(alert.query_one("#alert-title", Static).render())
        assert "console STOP" in str(alert.query_one("#alert-advice", Static).render())
        assert session.state.ended_reason == "link_lost"
        assert rec.bells >= 2  # the alarm and the alert
        assert session.query_one("#alert-banner").display
        await press(pilot, "enter")  # back: the link is gone, so to the devices
        await wait_until(lambda: isinstance(app.screen, DeviceScreen), 5, "the devices")
        assert app.link is None or not app.link.connected


@pytest.mark.parametrize(("fault", "title", "reason"), [
    ("control-lost@8", "CONTROL TAKEN BY ANOTHER APP", "control_lost"),
    ("drop-notifications@8", "NO DATA FROM THE TREADMILL", "telemetry_lost"),
    ("stop-at-console@8", "STOPPED AT THE CONSOLE", "stopped_at_console"),
])
async def test_a_session_ended_by_the_machine_raises_an_alert(make_app, fault, title, reason):
    app, rec = make_app(sim_options=SimulatorOptions(faults=(fault,)))
    async with app.run_test(size=(120, 40)) as pilot:
        session = await start(pilot, "walk")
        if reason == "telemetry_lost":
            # Stale first (no increases, a banner), then Stop and the end.
            await wait_until(lambda: session.state.alarm_kind == "telemetry_stale", 30,
                             "the stale alarm")
            await wait_until(lambda: session.query_one("#alert-banner").display, 2, "banner")
        await wait_until(lambda: isinstance(app.screen, AlertScreen), 30, "the alert")
        assert title in str(app.screen.query_one("#alert-title", Static).render())
        assert session.state.ended_reason == reason
        assert rec.bells >= 1
        await press(pilot, "escape")  # look at the session: it says why, and offers Back
        assert isinstance(app.screen, SessionScreen)
        banner = session.query_one("#alert-banner", Static)
        assert banner.display and title in str(banner.render())
        assert session.check_action("back", ()) is True
        if reason == "control_lost":
            # One Stop was attempted and refused (the app has no control any more): the belt
            # runs on, and the alert said so, and where to stop it.
            assert belt(app) > 1.5
            assert "may no longer be able to stop the belt" in session.state.ended_message
        elif reason == "stopped_at_console":
            await wait_until(lambda: belt(app) == 0.0, 10, "the belt to stop")


async def test_q_stops_the_belt_before_quitting(make_app):
    app, _ = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        session = await start(pilot, "walk")
        await walking_at(app, session, 2.0)
        await press(pilot, "q")
        await wait_until(lambda: not app.is_running, 5, "the app to exit")
        assert stops(app.sim) >= 1


async def test_the_checklist_opens_over_a_session_and_space_still_stops(make_app):
    app, _ = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        session = await start(pilot, "walk")
        await walking_at(app, session, 2.0)
        await press(pilot, "f1")
        assert isinstance(app.screen, ChecklistScreen)
        await press(pilot, "space")
        await wait_until(lambda: belt(app) == 0.0, 10, "the belt to stop")
        assert session.state.ended_reason == "emergency_stop"


# ---- the display is coalesced ---------------------------------------------------------------


async def test_telemetry_never_queues_more_than_one_refresh(make_app):
    app, _ = make_app(sim_options=SimulatorOptions(notify_hz=10))
    refreshes: list[float] = []
    async with app.run_test(size=(120, 40)) as pilot:
        session = await start(pilot, "walk")
        await walking_at(app, session, 2.0)
        original = session.update_view

        def counted() -> None:
            refreshes.append(now())
            original()

        session.update_view = counted  # type: ignore[method-assign]
        samples = session.state.samples
        for _ in range(50):  # a burst far above 10 Hz
            session.request_refresh()
        await asyncio.sleep(10)
        assert session.state.samples - samples >= 95  # ~10 Hz telemetry
        gaps = [b - a for a, b in itertools.pairwise(refreshes)]
        assert len(refreshes) <= 10 / REFRESH_S + 1
        assert min(gaps) >= REFRESH_S - 1e-6


# ---- what the session screen shows, as plain data -------------------------------------------


def test_session_state_from_a_scripted_list_of_events():
    program = PROGRAMS["mixed"]
    state = SessionState(program)
    for event in [
        event_from_dict(0.0, "step", {"index": 1, "of": 3, "orientation": "forward",
                                   "speed_kmh": 2.0, "incline_pct": 0.0, "duration_s": 20.0,
                                   "cue": "Forward."}),
        event_from_dict(0.5, "telemetry", {"speed_kmh": 1.0, "incline_pct": None,
                                        "incline_reported": False, "distance_m": 3,
                                        "heart_rate_bpm": None, "orientation": "forward"}),
        event_from_dict(0.8, "telemetry", {"speed_kmh": 1.2, "incline_pct": 0.0,
                                        "incline_reported": False, "distance_m": 4,
                                        "heart_rate_bpm": 99, "orientation": "forward"}),
        event_from_dict(1.0, "refused", {"reason": "forward speed is capped at 3.0 km/h"}),
    ]:
        state.apply(event)
    assert state.next_text == "Turning around to face backward"
    assert list(state.history) == [1.2]  # one bar per second, the latest reading
    assert state.distance_m == 4 and state.heart_rate_bpm == 99 and not state.incline_reported
    assert state.status == "refused: forward speed is capped at 3.0 km/h"
    state.step_remaining_s = 5.0
    assert state.walked_s == 15.0 and state.remaining_s == 45.0
    state.apply(event_from_dict(2.0, "ended", {"reason": "emergency_stop",
                                            "message": "emergency stop: Stop sent. if it..."}))
    assert state.end_text == "EMERGENCY STOP: Stop sent. If it..."
    assert state.cue == ""


def test_formatting_helpers():
    assert clock(0) == "0:00" and clock(59.6) == "1:00" and clock(3725) == "1:02:05"
    assert distance_text(None) == ("-", "m") and distance_text(12_345) == ("12.3", "km")
    view = SafetyView(state="running", orientation="backward", target_speed_kmh=2.0,
                      commanded_speed_kmh=1.5, speed_cap_kmh=3.0, ramping=True,
                      telemetry_age_s=3.0, link_state="stale", has_control=True)
    assert view.describe() == ("RUNNING │ cap 3.0 km/h │ ramping up to 2.0 │ LINK STALE (3 s) │ "
                               "app has control")
