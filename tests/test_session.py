"""The session runner end to end: programs through the governor and client to the simulator."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from safety import EndReason, Orientation, SafetyConfig, StepSpeed
from safety.belt import NEVER_REPORTED_REST_S
from simulators import VirtualTreadmill, profile_names
from simulators.profiles import Quirk
from treadmill import ftms
from treadmill.client import FtmsClient
from treadmill.errors import TreadmillError
from treadmill.programs import Program, ProgramError, Step, builtin_programs, validate
from treadmill.session import SessionDistance, SessionEvent, SessionRunner, machine_limits

F, B = Orientation.FORWARD, Orientation.BACKWARD

# Forward 30 s, backward 2 min, forward 30 s: faults are injected during the backward bout.
BOUT = Program(
    name="bout",
    title="test bout",
    steps=(Step(F, 30, 2.5), Step(B, 120, 2.0), Step(F, 30, 2.5)),
)
IN_BACKWARD_BOUT_S = 80.0  # seconds after connecting: well inside the backward step
# Backward at 2.0 then 1.5 km/h: the change comes about 103 s after connecting. Faults
# that act on commands come just before it; faults that act on the belt come at a steady
# moment of the bout (a command right after would overwrite what they did to the target).
CHANGING_BOUT = Program(
    name="changing-bout",
    title="test bout with a speed change",
    steps=(Step(F, 30, 2.5), Step(B, 60, 2.0), Step(B, 60, 1.5), Step(F, 30, 2.5)),
)
BEFORE_SPEED_CHANGE_S = 100.0
STEADY_BACKWARD_S = 80.0
COMMAND_FAULTS = ("no-indication", "delay-indication", "result-", "ignore-setpoints")


async def person_turns(to: Orientation) -> None:
    await asyncio.sleep(2.0)


class Session:
    """A runner on a simulated treadmill, with everything it emitted."""

    def __init__(self, sim: VirtualTreadmill, program: Program, config: SafetyConfig) -> None:
        self.sim = sim
        self.client = FtmsClient(sim.ble_device, backend=sim.client_backend)
        self.events: list[SessionEvent] = []
        self.runner = SessionRunner(
            self.client, program, config=config, confirm=person_turns, on_event=self.events.append
        )

    def of_type(self, type_: str) -> list[SessionEvent]:
        return [e for e in self.events if e.type == type_]

    def commands(self) -> list[tuple[str, float | None]]:
        return [(e.data["op"], e.data["value"]) for e in self.of_type("command")]


async def run_session(
    sim: VirtualTreadmill, program: Program, config: SafetyConfig | None = None
) -> tuple[Session, object]:
    session = Session(sim, program, config or SafetyConfig())
    async with session.client:
        result = await session.runner.run()
        await asyncio.sleep(10)  # let the belt run down after the last Stop
    return session, result


# ---- every built-in program on every profile ----------------------------------------------


def compatible(program: Program, sim: VirtualTreadmill, config: SafetyConfig) -> str | None:
    """Why the program can't run on this machine (None if it can)."""
    from simulators import get_profile

    profile = get_profile(sim.profile.name)
    speed, incline = profile.speed, profile.incline
    from safety import MachineLimits

    limits = MachineLimits(
        speed.minimum,
        speed.maximum,
        speed.step,
        incline.minimum if incline else 0.0,
        incline.maximum if incline else 0.0,
        incline.step if incline else 0.5,
        incline is not None,
    )
    try:
        validate(program, config, limits)
    except ProgramError as exc:
        return str(exc)
    return None


@pytest.mark.parametrize("profile", profile_names())
@pytest.mark.parametrize("name", sorted(builtin_programs()))
async def test_every_builtin_program_on_every_profile(make_sim, profile, name):
    program = builtin_programs()[name]
    config = SafetyConfig.from_user_dict({"backward_incline_unlocked": True})
    sim = make_sim(profile)
    refusal = compatible(program, sim, config)
    session = Session(sim, program, config)
    async with session.client:
        if refusal is not None:
            # Refused before the belt moves, with a message naming program, step and field.
            with pytest.raises(TreadmillError) as error:
                await session.runner.run()
            assert "step" in str(error.value) or "backward" in str(error.value)
            assert sim.control_log == []
            return
        result = await session.runner.run()
        await asyncio.sleep(15)
    assert result.reason is EndReason.COMPLETED, (result, session.of_type("alarm"))
    assert sim.model.belt_speed_kmh == 0.0
    assert result.duration_s >= program.duration_s
    assert [e.data["index"] for e in session.of_type("step")] == list(
        range(1, len(program.steps) + 1)
    )
    # Backward time counts while the belt moves facing backward: the steps, plus the ramps
    # down before each turn-around.
    bouts = sum(1 for s in program.steps if s.orientation is B)
    per_bout = 15.0
    if sim.profile.has(Quirk.SILENT_WHEN_STOPPED):
        # Until its silence counts as rest the belt may be moving: after a zero in a start
        # countdown that takes the long dwell (safety/belt.py), and it counts as backward.
        per_bout += NEVER_REPORTED_REST_S
    assert program.backward_s - 30 <= result.backward_s <= program.backward_s + per_bout * bouts


async def test_backward_commands_never_exceed_cap_or_ramp(make_sim):
    sim = make_sim("home")
    session, result = await run_session(sim, builtin_programs()["knee-10"])
    assert result.reason is EndReason.COMPLETED
    backward_speeds = [
        (e.t, e.data["value"])
        for e in session.events
        if e.type == "command"
        and e.data["op"] == "set_target_speed"
        and session.runner.governor is not None
    ]
    assert max(v for _, v in backward_speeds) <= 3.0
    ups = [(t, v) for (_, v0), (t, v) in itertools.pairwise(backward_speeds) if v > v0]
    assert ups, "the program ramps up at least once"


async def test_turnaround_waits_for_the_belt_and_the_person(make_sim):
    sim = make_sim("home")
    session, result = await run_session(sim, BOUT)
    assert result.reason is EndReason.COMPLETED
    types = [
        e.type
        for e in session.events
        if e.type
        in ("turn_around", "turn_around_ready", "confirm_needed", "confirmed", "orientation")
    ]
    assert (
        types
        == ["turn_around", "turn_around_ready", "confirm_needed", "confirmed", "orientation"] * 2
    )
    ready = session.of_type("turn_around_ready")[0].t
    stops = [e.t for e in session.of_type("command") if e.data["op"] == "stop"]
    assert ready - stops[0] >= 3.0  # the dwell at standstill
    # Never a speed command between the Stop and the confirmation.
    confirmed = session.of_type("confirmed")[0].t
    between = [e for e in session.of_type("command") if stops[0] < e.t < confirmed]
    assert between == []


async def test_backward_mode_refused_when_machine_minimum_is_above_the_cap(make_sim):
    sim = make_sim("high-minimum")
    program = Program("b", "b", (Step(B, 60, 2.0),))
    session = Session(sim, program, SafetyConfig())
    async with session.client:
        with pytest.raises(TreadmillError, match="minimum"):
            await session.runner.run()
    assert sim.control_log == []


async def test_keys_go_through_the_governor(make_sim):
    sim = make_sim("home")
    program = Program("b", "b", (Step(B, 120, 1.5),))
    session = Session(sim, program, SafetyConfig())
    async with session.client:
        task = asyncio.create_task(session.runner.run())
        await asyncio.sleep(60)
        for _ in range(20):  # far more than the cap allows
            session.runner.submit(lambda t: StepSpeed(t, +1))
            await asyncio.sleep(0.5)
        await asyncio.sleep(30)
        assert sim.model.belt_speed_kmh <= 3.0 + 0.05
        assert session.of_type("refused"), "requests above the cap are refused, with a reason"
        assert "3" in session.of_type("refused")[-1].data["reason"]
        session.runner.emergency_stop()
        result = await task
    assert result.reason is EndReason.EMERGENCY_STOP


async def test_emergency_stop_is_written_at_once(make_sim):
    sim = make_sim("home")
    session = Session(sim, BOUT, SafetyConfig())
    async with session.client:
        task = asyncio.create_task(session.runner.run())
        await asyncio.sleep(IN_BACKWARD_BOUT_S)
        loop = asyncio.get_running_loop()
        pressed = loop.time()
        session.runner.emergency_stop()
        result = await task
        await asyncio.sleep(10)
    stop_writes = [t for t, data in sim.control_log if data == ftms.encode_stop()]
    assert stop_writes and stop_writes[0] - pressed < 0.05
    assert result.reason is EndReason.EMERGENCY_STOP
    assert sim.model.belt_speed_kmh == 0.0


async def test_an_exception_in_the_session_sends_stop(make_sim):
    sim = make_sim("home")
    session = Session(sim, BOUT, SafetyConfig())

    async def clumsy_person(to: Orientation) -> None:
        raise RuntimeError("a bug in the confirmation code")

    session.runner._confirm = clumsy_person
    async with session.client:
        with pytest.raises(RuntimeError):
            await session.runner.run()
        await asyncio.sleep(10)
    assert sim.control_log[-1][1] == ftms.encode_stop()
    assert sim.model.belt_speed_kmh == 0.0


async def test_a_failing_front_end_is_detached_and_the_session_goes_on(make_sim):
    sim = make_sim("home")
    session = Session(sim, BOUT, SafetyConfig())

    def explode(event: SessionEvent) -> None:
        if event.type == "telemetry" and event.t > IN_BACKWARD_BOUT_S - 10:
            raise RuntimeError("a bug in a UI callback")

    broken = session.runner.bus.subscribe("broken", explode)
    async with session.client:
        result = await session.runner.run()
        await asyncio.sleep(10)
    assert broken.failed is not None and not broken.attached
    assert result.reason is EndReason.COMPLETED  # the other front end saw it all
    assert session.of_type("ended") and sim.model.belt_speed_kmh == 0.0


async def test_a_stuck_front_end_never_delays_the_stop(make_sim):
    sim = make_sim("home")
    session = Session(sim, BOUT, SafetyConfig())
    stuck = asyncio.Event()

    async def hang(event: SessionEvent) -> None:
        await stuck.wait()  # a broker that accepts and stalls, a UI that hangs

    sub = session.runner.bus.subscribe("stuck", hang)
    async with session.client:
        task = asyncio.create_task(session.runner.run())
        await asyncio.sleep(IN_BACKWARD_BOUT_S)
        pressed = asyncio.get_running_loop().time()
        session.runner.emergency_stop()
        await task
    stops = [t for t, data in sim.control_log if data == ftms.encode_stop()]
    assert stops and stops[0] - pressed < 0.05
    # Its queue holds the state events (never dropped) but only the newest telemetry.
    assert sub.coalesced > 100


async def test_cancellation_sends_stop(make_sim):
    """SIGINT/SIGTERM reach the session as a cancellation: Stop goes out before it ends."""
    sim = make_sim("home")
    session = Session(sim, BOUT, SafetyConfig())
    async with session.client:
        task = asyncio.create_task(session.runner.run())
        await asyncio.sleep(IN_BACKWARD_BOUT_S)
        assert sim.model.belt_speed_kmh > 1.0
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(10)
    assert sim.control_log[-1][1] == ftms.encode_stop()
    assert sim.model.belt_speed_kmh == 0.0


# ---- every simulator fault during a backward bout -------------------------------------------

# fault -> (end reason, does our side still send Stop?)
FAULT_OUTCOMES = {
    "disconnect": (EndReason.LINK_LOST, False),
    "drop-notifications": (EndReason.TELEMETRY_LOST, True),
    "no-indication": (EndReason.ERROR, True),
    "delay-indication=8": (EndReason.ERROR, True),
    "result-unsupported+30": (EndReason.ERROR, True),
    "result-invalid+30": (EndReason.ERROR, True),
    "result-failed+30": (EndReason.ERROR, True),
    "result-not-permitted+30": (EndReason.ERROR, True),
    "control-lost": (EndReason.CONTROL_LOST, False),
    "safety-key": (EndReason.SAFETY_KEY, True),
    "stop-at-console": (EndReason.STOPPED_AT_CONSOLE, True),
    "overshoot": (EndReason.NOT_OBEYING, True),
    "speed-up-by-itself=1.5": (EndReason.NOT_OBEYING, True),
    "ignore-setpoints": (EndReason.NOT_OBEYING, True),
}


def scheduled(spec: str, at: float) -> str:
    kind, _, rest = spec.partition("+") if "+" in spec else spec.partition("=")
    sep = "+" if "+" in spec else ("=" if "=" in spec else "")
    return f"{kind}@{at:g}{sep}{rest}"


@pytest.mark.parametrize("fault", sorted(FAULT_OUTCOMES))
async def test_fault_during_a_backward_bout_stops_the_belt(make_sim, fault):
    reason, we_send_stop = FAULT_OUTCOMES[fault]
    fault_t = BEFORE_SPEED_CHANGE_S if fault.startswith(COMMAND_FAULTS) else STEADY_BACKWARD_S
    sim = make_sim("home", faults=[scheduled(fault, fault_t)])
    session, result = await run_session(sim, CHANGING_BOUT)
    assert result.reason is reason, (result, session.of_type("alarm"))
    assert session.of_type("alarm"), "the person is told what happened"
    after = [(t, data) for t, data in sim.control_log if t >= fault_t]
    if we_send_stop:
        assert ftms.encode_stop() in [data for _, data in after]
        if not fault.startswith(("no-indication", "result-")):
            # (a machine that refuses or never answers Stop keeps its belt running: the
            # alarm sends the person to the console STOP or the safety key)
            assert sim.model.belt_speed_kmh == 0.0
    elif fault == "control-lost":
        # One Stop anyway (it may have been a garbage byte), refused by a machine whose
        # control really moved; never a retry, never Request Control.
        assert [data for _, data in after] == [ftms.encode_stop()]
    else:
        assert after == [], "no command once the link is gone"
        assert ftms.encode_request_control() not in [data for _, data in after]


@pytest.mark.parametrize(
    "fault",
    ["corrupt-packet", "short-packet", "long-packet", "unknown-status", "delay-notifications=0.5"],
)
async def test_harmless_faults_let_the_session_finish(make_sim, fault):
    sim = make_sim("home", faults=[scheduled(fault, IN_BACKWARD_BOUT_S)])
    session, result = await run_session(sim, BOUT)
    assert result.reason is EndReason.COMPLETED, session.of_type("alarm")
    assert sim.model.belt_speed_kmh == 0.0


async def test_pause_at_the_console_pauses_without_resuming(make_sim):
    sim = make_sim("home", faults=[f"pause-at-console@{IN_BACKWARD_BOUT_S:g}"])
    session = Session(sim, BOUT, SafetyConfig())
    async with session.client:
        task = asyncio.create_task(session.runner.run())
        await asyncio.sleep(IN_BACKWARD_BOUT_S + 60)
        assert sim.model.belt_speed_kmh == 0.0
        assert str(session.runner.governor.state) == "paused"
        starts = [
            t
            for t, d in sim.control_log
            if d == ftms.encode_start_resume() and t > IN_BACKWARD_BOUT_S
        ]
        assert starts == [], "never resumed by itself"
        session.runner.emergency_stop()
        await task


# ---- nothing reaches the control point except through the governor --------------------------


async def test_every_control_point_write_is_a_governor_command(make_sim):
    sim = make_sim("home")
    session, result = await run_session(sim, BOUT)
    assert result.reason is EndReason.COMPLETED
    approved = session.commands()
    written = [data for _, data in sim.control_log]
    encode = {
        "request_control": lambda v: ftms.encode_request_control(),
        "start_resume": lambda v: ftms.encode_start_resume(),
        "set_target_speed": ftms.encode_set_target_speed,
        "set_target_incline": ftms.encode_set_target_inclination,
        "stop": lambda v: ftms.encode_stop(),
        "pause": lambda v: ftms.encode_pause(),
    }
    assert written == [encode[op](value) for op, value in approved]


async def test_limits_come_from_the_machine(make_sim):
    sim = make_sim("walking-pad")
    async with FtmsClient(sim.ble_device, backend=sim.client_backend) as client:
        limits = machine_limits(client)
    assert (limits.speed_min_kmh, limits.speed_max_kmh) == (0.5, 6.0)
    assert limits.incline_supported is False


async def test_a_session_ending_during_a_turn_confirmation_leaves_no_task_behind(make_sim):
    sim = make_sim("home")
    never = asyncio.Event()

    async def slow_person(to: Orientation) -> None:
        await never.wait()  # nobody confirms

    session = Session(sim, BOUT, SafetyConfig())
    session.runner._confirm = slow_person
    async with session.client:
        task = asyncio.create_task(session.runner.run())
        while not session.of_type("confirm_needed"):
            await asyncio.sleep(0.5)
        before = asyncio.all_tasks()
        session.runner.emergency_stop()
        await task
        await asyncio.sleep(0)
        leaked = {t for t in asyncio.all_tasks() - {asyncio.current_task()} if not t.done()}
        names = [t.get_coro().__qualname__ for t in leaked & before]
    assert not [n for n in names if "wait" in n.lower() or "slow_person" in n], names


async def test_cancelled_twice_the_runner_gives_up_waiting_for_the_belt(make_sim):
    """The person insists (a second Ctrl-C): the run ends at once, after the first Stop."""
    sim = make_sim("home", faults=["result-failed@80"])  # the machine refuses every Stop
    session = Session(sim, BOUT, SafetyConfig())
    async with session.client:
        task = asyncio.create_task(session.runner.run())
        await asyncio.sleep(85)
        task.cancel()
        await asyncio.sleep(2)
        assert not task.done()  # still sending Stop to a belt that moves
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert ftms.encode_stop() in [data for t, data in sim.control_log if t >= 85]


async def test_a_stuck_front_end_has_a_bounded_queue_that_keeps_every_alarm():
    from treadmill.bus import MAX_QUEUED, EventBus
    from treadmill.session_events import AlarmRaised, CommandSent, TelemetryShown

    bus = EventBus()
    stuck = asyncio.Event()

    async def hang(event: SessionEvent) -> None:
        await stuck.wait()

    sub = bus.subscribe("stuck", hang)
    bus.start()
    for k in range(20_000):
        bus.publish(CommandSent(k, "set_target_speed", 1.0))
        bus.publish(TelemetryShown(k, 1.0, 0.0, True, k, None, "backward"))
        if k % 1000 == 0:
            bus.publish(AlarmRaised(k, "telemetry_stale", f"alarm {k}"))
    queued = list(sub._queue)
    assert len(queued) <= MAX_QUEUED + 1
    assert len([e for e in queued if isinstance(e, AlarmRaised)]) == 20
    await bus.close()


def test_the_session_distance_survives_the_machine_counting_again_from_zero():
    distance = SessionDistance()
    assert distance.add(None) is None and distance.total is None
    assert [distance.add(m) for m in (0, 40, 90, 0, 15, None, 60)] == [0, 40, 90, 90, 105, 105, 150]
    assert distance.total == 150


async def test_a_finished_session_leaves_no_subscriber_task_behind(make_sim):
    sim = make_sim("home")
    session = Session(sim, builtin_programs()["taster"], SafetyConfig())
    extra: list[object] = []
    session.runner.bus.subscribe("extra", extra.append)
    async with session.client:
        await session.runner.run()
    assert extra and session.events  # both subscribers saw the session, to its end
    assert not any(sub.attached for sub in session.runner.bus.subscriptions)
    pending = [t for t in asyncio.all_tasks() if t.get_name().startswith("bus:")]
    assert pending == []
