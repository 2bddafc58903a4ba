"""The output contract and the only mint of ApprovedCommand: one command per call, one in flight."""

from __future__ import annotations

from dataclasses import InitVar, dataclass
from typing import Final

from .types import SETPOINT_COMMANDS, Command, Notice, RequestControl, StopCmd

# The capability that mints ApprovedCommand. Only this module holds it; see ApprovedCommand.
_MINT: Final = object()


@dataclass(frozen=True, slots=True)
class ApprovedCommand:
    """A command the governor approved at time t. The FTMS client sends nothing else.

    Construction needs the governor's private capability, so a program step, a key handler
    or an MQTT callback cannot forge one (dataclasses.replace() cannot either: the capability
    is an InitVar and is not kept). Python cannot stop deliberate sabotage; this stops
    accidents, which is what the structural guarantee is for.
    """

    command: Command
    t: float
    mint: InitVar[object] = None

    def __post_init__(self, mint: object) -> None:
        if mint is not _MINT:
            raise PermissionError("commands to the treadmill must come from the safety governor")
        if not isinstance(self.command, Command):
            raise TypeError(f"not a treadmill command: {self.command!r}")


Output = ApprovedCommand | Notice

# An answer the runner never reported (it always does: the client times out at 5 s) must not
# block the link for ever.
IN_FLIGHT_GIVE_UP_S: Final = 12.0


def is_setpoint(command: Command) -> bool:
    return isinstance(command, SETPOINT_COMMANDS)


def unwrap(command: object) -> Command | None:
    """The command inside an answer event (the runner may hand back the approval itself)."""
    if isinstance(command, ApprovedCommand):
        return command.command
    return command if isinstance(command, Command) else None


class Outbox:
    """What one handle() call sends, and what is still on its way to the treadmill.

    The contract (DESIGN §5, "one command in flight; approvals expire"):
    - at most one command per handle() call, and a Stop is alone and first;
    - the next non-Stop command only once the last one was answered: a start step or a pause
      waits in the deferred slot, a setpoint is never even asked for while the link is busy;
    - a Stop voids everything approved in this call and everything deferred.
    A breach raises RuntimeError, which handle() turns into its fail-safe Stop.
    """

    def __init__(self) -> None:
        self.cmds: list[ApprovedCommand] = []
        self.notices: list[Notice] = []
        self.in_flight: Command | None = None
        self.in_flight_t = float("-inf")
        # What we believed about speed/incline before the command in flight (void: restore).
        self.in_flight_undo: tuple[float, float | None] | None = None
        self.deferred: Command | None = None
        self.stops_in_flight = 0
        self.unanswered: list[Command] = []  # setpoints sent and not yet answered
        self.request_control_forbidden = False  # control was lost: never ask again

    # ------------------------------------------------------------ one call

    def begin_call(self) -> None:
        self.cmds = []
        self.notices = []

    def outputs(self) -> list[Output]:
        return [*self.cmds, *self.notices]

    @property
    def sent_this_call(self) -> bool:
        return bool(self.cmds)

    def notice(self, notice: Notice) -> None:
        self.notices.append(notice)

    # ------------------------------------------------------------ approving

    def link_free(self) -> bool:
        """One command in flight: nothing else until the last one was answered."""
        return self.in_flight is None and self.stops_in_flight == 0

    def approve(self, command: Command, now: float) -> bool:
        """Mint an approval for command now; False: it waits in the deferred slot instead."""
        if isinstance(command, RequestControl) and self.request_control_forbidden:
            raise RuntimeError("RequestControl after control was lost")
        if self.cmds and not isinstance(command, StopCmd):
            raise RuntimeError(f"second command in one call: {command!r} after {self.cmds!r}")
        if not isinstance(command, StopCmd) and not self.link_free():
            if is_setpoint(command):
                raise RuntimeError(f"setpoint while a command is in flight: {command!r}")
            # One command in flight: a start step or a pause goes once the link is free.
            self.deferred = command
            return False
        approved = ApprovedCommand(command, now, _MINT)
        if isinstance(command, StopCmd):
            # A Stop is alone and first: drop anything else approved in this call, and
            # anything still waiting to go (the runner voids its queue too).
            self.cmds = [approved]
            self.deferred = None
            self.unanswered = [c for c in self.unanswered if not is_setpoint(c)]
            self.stops_in_flight += 1
        else:
            self.cmds.append(approved)
            self.in_flight = command
            self.in_flight_t = now
            self.in_flight_undo = None
            if is_setpoint(command):
                self.unanswered.append(command)
        return True

    def fail_safe_stop(self, now: float) -> ApprovedCommand:
        """The Stop handle() returns when it caught an internal error (outside the contract:
        the outputs of the failed call are dropped)."""
        self.stops_in_flight += 1
        return ApprovedCommand(StopCmd(), now, _MINT)

    def take_deferred(self) -> Command | None:
        """The deferred command, once the link is free and nothing went out in this call."""
        if self.cmds or self.deferred is None or not self.link_free():
            return None
        command, self.deferred = self.deferred, None
        return command

    # ------------------------------------------------------------ answers

    def answered(self, command: Command | None) -> None:
        """The command has its answer: it is no longer unanswered, the link is free again."""
        self.forget_unanswered(command)
        if isinstance(command, StopCmd):
            self.stops_in_flight = max(0, self.stops_in_flight - 1)
        elif command is not None and command == self.in_flight:
            self.in_flight = None

    def voided(self, command: Command | None) -> bool:
        """The command was never written. True if it was the (non-Stop) one in flight."""
        self.forget_unanswered(command)
        if isinstance(command, StopCmd):
            self.stops_in_flight = max(0, self.stops_in_flight - 1)
            return False
        if command is None or command != self.in_flight:
            return False
        self.in_flight = None
        return True

    def forget_unanswered(self, command: Command | None) -> None:
        if command is not None and command in self.unanswered:
            self.unanswered.remove(command)

    def give_up_if_stuck(self, now: float) -> None:
        if self.in_flight is not None and now - self.in_flight_t > IN_FLIGHT_GIVE_UP_S:
            self.in_flight = None

    def link_lost(self) -> None:
        """Nothing queued may survive a reconnect."""
        self.unanswered.clear()
        self.in_flight = None
        self.deferred = None
        self.stops_in_flight = 0
