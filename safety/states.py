"""The session state machine as data: transitions, sub-states, request triggers, refusal words."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from .types import (
    ConfirmTurned,
    EndSession,
    Pause,
    Request,
    Resume,
    Start,
    StopBelt,
    TurnAround,
)
from .types import GovernorState as S


class Trigger(StrEnum):
    """What moves the state. Requests use their class name; the rest the governor detects."""

    # requests
    START = "Start"
    RESUME = "Resume"
    PAUSE = "Pause"
    STOP_BELT = "StopBelt"
    TURN_AROUND = "TurnAround"
    CONFIRM_TURNED = "ConfirmTurned"
    END_SESSION = "EndSession"
    # detected by the governor
    BELT_MOVING = "belt_moving"  # telemetry shows motion after StartResume
    START_FAILED = "start_failed"  # RequestControl/StartResume refused, or no motion in time
    CONSOLE_PAUSE = "console_pause"  # Machine Status "paused by user" we did not ask for
    LIMIT = "limit"  # bout/session/heart-rate limit or a failed setpoint: ramp down
    STOPPED = "stopped"  # ramp finished, Stop sent, intent was "stop"
    STOPPED_FOR_TURN = "stopped_for_turn"  # ... intent was "turn around"
    STOPPED_FOR_END = "stopped_for_end"  # ... intent was "end the session"
    FATAL = "fatal"  # emergency stop, safety key, link/control lost, watchdog, not obeying
    SLOW_MOVING_BELT = "slow_moving_belt"  # Start on a belt already moving: ramp it to a stop


class StartPhase(StrEnum):
    """Where a start (or resume) is: each phase waits for the answer or the reading it needs."""

    AWAIT_CONTROL = "await_control"  # RequestControl sent, waiting for CommandAccepted
    CONFIRM_REST = "confirm_rest"  # belt state unknown: Stop sent so that rest can be seen
    LEVEL_DECK = "level_deck"  # deck above the orientation's incline limit: levelling first
    AWAIT_MOTION = "await_motion"  # StartResume sent, waiting for telemetry to show motion


class StopIntent(StrEnum):
    """Why we are stopping (a sub-state of STOPPING); decides the state once Stop is sent."""

    STOP = "stop"  # StopBelt: STOPPED
    TURN = "turn"  # TurnAround: AWAITING_TURN
    BOUT = "bout"  # the backward bout limit: STOPPED (Start refused until rested)
    END = "end"  # EndSession or a limit that ends the session: ENDED


_T = Trigger

# Only listed pairs are allowed; a request whose pair is missing is Refused. Which commands
# accompany a transition is code in governor.py; which transitions exist is this table.
TRANSITIONS: Final[Mapping[tuple[S, Trigger], S]] = MappingProxyType(
    {
        (S.IDLE, _T.START): S.STARTING,
        (S.IDLE, _T.TURN_AROUND): S.AWAITING_TURN,
        (S.IDLE, _T.END_SESSION): S.ENDED,
        (S.IDLE, _T.SLOW_MOVING_BELT): S.STOPPING,
        (S.STOPPED, _T.SLOW_MOVING_BELT): S.STOPPING,
        (S.STARTING, _T.SLOW_MOVING_BELT): S.STOPPING,
        (S.AWAITING_TURN, _T.SLOW_MOVING_BELT): S.STOPPING,
        (S.STARTING, _T.BELT_MOVING): S.RUNNING,
        (S.STARTING, _T.START_FAILED): S.STOPPED,
        (S.STARTING, _T.PAUSE): S.PAUSED,
        (S.STARTING, _T.CONSOLE_PAUSE): S.PAUSED,
        (S.STARTING, _T.STOP_BELT): S.STOPPED,
        (S.STARTING, _T.TURN_AROUND): S.AWAITING_TURN,
        (S.STARTING, _T.END_SESSION): S.ENDED,
        (S.RUNNING, _T.PAUSE): S.PAUSED,
        (S.RUNNING, _T.CONSOLE_PAUSE): S.PAUSED,
        (S.RUNNING, _T.STOP_BELT): S.STOPPING,
        (S.RUNNING, _T.TURN_AROUND): S.STOPPING,
        (S.RUNNING, _T.END_SESSION): S.STOPPING,
        (S.RUNNING, _T.LIMIT): S.STOPPING,
        (S.STOPPING, _T.STOP_BELT): S.STOPPING,
        (S.STOPPING, _T.TURN_AROUND): S.STOPPING,
        (S.STOPPING, _T.END_SESSION): S.STOPPING,
        (S.STOPPING, _T.LIMIT): S.STOPPING,
        (S.STOPPING, _T.STOPPED): S.STOPPED,
        (S.STOPPING, _T.STOPPED_FOR_TURN): S.AWAITING_TURN,
        (S.STOPPING, _T.STOPPED_FOR_END): S.ENDED,
        (S.PAUSED, _T.RESUME): S.STARTING,
        (S.PAUSED, _T.STOP_BELT): S.STOPPED,
        (S.PAUSED, _T.TURN_AROUND): S.AWAITING_TURN,
        (S.PAUSED, _T.END_SESSION): S.ENDED,
        (S.STOPPED, _T.START): S.STARTING,
        (S.STOPPED, _T.TURN_AROUND): S.AWAITING_TURN,
        (S.STOPPED, _T.END_SESSION): S.ENDED,
        (S.AWAITING_TURN, _T.CONFIRM_TURNED): S.STOPPED,
        (S.AWAITING_TURN, _T.STOP_BELT): S.STOPPED,  # cancels the turn
        (S.AWAITING_TURN, _T.END_SESSION): S.ENDED,
        # Any live state can end at once. ENDED has no way out: a new session is a new Governor.
        **{(s, _T.FATAL): S.ENDED for s in S if s is not S.ENDED},
    }
)

# Requests that change targets but not the state.
SETPOINT_STATES: Final = frozenset({S.STARTING, S.RUNNING, S.PAUSED})


def next_state(state: S, trigger: Trigger) -> S | None:
    """The state after trigger, or None if the table does not allow it."""
    return TRANSITIONS.get((state, trigger))


# The requests that move the state; the others (speed and incline) only change targets.
REQUEST_TRIGGERS: Final[Mapping[type[Request], Trigger]] = MappingProxyType(
    {
        Start: Trigger.START,
        Resume: Trigger.RESUME,
        Pause: Trigger.PAUSE,
        StopBelt: Trigger.STOP_BELT,
        TurnAround: Trigger.TURN_AROUND,
        ConfirmTurned: Trigger.CONFIRM_TURNED,
        EndSession: Trigger.END_SESSION,
    }
)

# How a refusal names the state the session is in.
STATE_PHRASES: Final[Mapping[S, str]] = MappingProxyType(
    {
        S.IDLE: "nothing has started yet",
        S.STARTING: "the belt is starting",
        S.RUNNING: "the belt is running",
        S.PAUSED: "the belt is paused",
        S.STOPPING: "the belt is slowing down to stop",
        S.STOPPED: "the belt is stopped",
        S.AWAITING_TURN: "waiting for you to turn around",
        S.ENDED: "the session has ended",
    }
)


def why_not(state: S, trigger: Trigger) -> str:
    """The refusal for a request whose (state, trigger) pair is not in the table."""
    phrase = STATE_PHRASES[state]
    match trigger:
        case Trigger.START:
            return f"cannot start: {phrase}"
        case Trigger.RESUME:
            return f"nothing to resume: {phrase}"
        case Trigger.PAUSE:
            return f"cannot pause: {phrase}"
        case Trigger.STOP_BELT:
            return f"nothing to stop: {phrase}"
        case Trigger.TURN_AROUND:
            return f"cannot turn around now: {phrase}"
        case Trigger.CONFIRM_TURNED:
            return f"no turn around is in progress: {phrase}"
        case _:
            return f"not possible now: {phrase}"
