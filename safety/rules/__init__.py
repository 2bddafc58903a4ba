"""The governor's rules, one module per docs/SAFETY.md row, and the interface they share.

Every rule is a `Rule` (a small base class with do-nothing defaults, so a rule overrides only
the hooks it needs, marked `@override`). The core (`safety/governor.py`) owns the order in
which rules are asked and applies what they return; a rule never sees another rule's
verdict, and never mints a command (only `safety/outbox.py` does).

Hooks, all given the shared `Context` (`safety/context.py`):

- `request_refusal(request, ctx) -> str | None`: asked first for every request; a reason
  refuses it before any other rule sees it (the remote rule).
- `observe(event, ctx) -> Verdict | None`: an event arrived (a reading, a status, an answer);
  the rule updates its own evidence and may decide at once.
- `check(ctx) -> Verdict | None`: time has moved (every event, after dispatch); the rule
  decides from its evidence.
- `increase_refusal(ctx) -> str | None`: why no speed or incline target may go up now.
- `start_refusal(ctx, orientation, resuming) -> str | None`: why a Start/Resume is refused.
- `sent(command, ctx)`: an approved command is about to be recorded by the belt tracker
  (ctx.belt still says what the belt was told before); the rule resets its evidence.

Verdicts (frozen dataclasses), strongest first. The core asks the rules in a fixed order
that follows this priority (the rules that can stop now come first) and applies each verdict
as it comes, so a stop-now verdict ends the pass and nothing weaker is asked after it:

1. `StopNow`: Stop at once (bypassing every ramp) and end the session.
2. `AbortStart`: a start (or resume) is given up: Stop if the belt may have been started.
3. `RampStop`: ramp down, then Stop; the intent says what comes after.
4. `Hold`: no increases; lower the target now, with an alarm.
5. `RaiseAlarm` / `Announce`: tell the person.

Requests that move the state (states.REQUEST_TRIGGERS) go to a named method of the rule that
owns them (`StartRule.on_start`, `Stopping.on_pause`, `TurnAroundRule.on_confirm_turned`, ...);
the core calls it only when the transition table allows the pair, and refuses otherwise with
states.why_not(). Setpoint requests go to `Targets.on_request`.

Procedure steps that are neither decisions nor warnings (the next start phase, the next ramp
step, levelling the deck for a turn) are sent by the rule that owns the procedure with
`ctx.send()`, which goes through the outbox and its contract.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..context import Context
from ..states import StopIntent, Trigger
from ..types import AlarmKind, Command, EndReason, Notice, Orientation, Request


@dataclass(frozen=True, slots=True)
class StopNow:
    """Stop at once and end the session with reason (send_stop False: no command at all)."""

    reason: EndReason
    message: str
    alarm: AlarmKind | None = None
    send_stop: bool = True


@dataclass(frozen=True, slots=True)
class AbortStart:
    """Give the start up (state STOPPED) with a START_FAILED alarm; send_stop: Stop first."""

    message: str
    send_stop: bool = False


@dataclass(frozen=True, slots=True)
class RampStop:
    """Ramp down, then Stop. intent END ends the session with reason and message."""

    trigger: Trigger
    intent: StopIntent
    reason: EndReason = EndReason.COMPLETED
    message: str = ""
    alarm: AlarmKind | None = None  # raised (with message) before the ramp begins


@dataclass(frozen=True, slots=True)
class Hold:
    """Alarm, and lower the speed target to slow_to (never raise it)."""

    alarm: AlarmKind
    message: str
    slow_to: float | None = None


@dataclass(frozen=True, slots=True)
class RaiseAlarm:
    alarm: AlarmKind
    message: str


@dataclass(frozen=True, slots=True)
class Announce:
    """A notice that is not an alarm (e.g. TurnAroundReady)."""

    notice: Notice


Verdict = StopNow | AbortStart | RampStop | Hold | RaiseAlarm | Announce


class Rule:
    """One hazard-log rule. The defaults do nothing; override what the rule needs."""

    def request_refusal(self, request: Request, ctx: Context) -> str | None:
        return None

    def observe(self, event: object, ctx: Context) -> Verdict | None:
        return None

    def check(self, ctx: Context) -> Verdict | None:
        return None

    def increase_refusal(self, ctx: Context) -> str | None:
        return None

    def start_refusal(
        self, ctx: Context, orientation: Orientation, *, resuming: bool
    ) -> str | None:
        return None

    def sent(self, command: Command, ctx: Context) -> None:
        return None


def first_refusal(reasons: Iterable[str | None]) -> str | None:
    """The first reason given, in the order asked; None if nobody objects."""
    return next((r for r in reasons if r is not None), None)


def increase_refusal(rules: Iterable[Rule], ctx: Context) -> str | None:
    """Why no target may go up right now, asking rules in order (hard blocks only)."""
    return first_refusal(rule.increase_refusal(ctx) for rule in rules)
