"""The progression rules: the next session suggested from the person's own recorded history.

Sans-IO and pure: `plan()` reads a list of `SessionSummary` records, a clock value, the
safety settings and the known programs, and returns a `Plan`. Nothing here touches the
database, the clock or the belt.

The decision is made by small rule functions applied in a fixed order (`RULES`). Each rule
takes the facts (the real sessions, newest first) and the decision so far, and returns the
decision, adding one line to `reasons` (starting with the rule's name) when it decided
something. docs/PROGRESSION.md gives every number and where it comes from.

Simulated sessions never count: not for the week's tally, not for progression. Trying the
app on the simulator must not push a real person's programme.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Final

from safety import Orientation, SafetyConfig
from treadmill.history.model import SessionSummary
from treadmill.programs import Program, ProgramError, Step, validate

COMPLETED: Final = "completed"  # EndReason.COMPLETED's value, as the store records it

# Where a first session starts: the built-in first-timer's three 1-minute bursts.
START_PROGRAM: Final = "first-timer"
START_BACKWARD_S: Final = 180.0  # used when the first-timer program is not available
MIN_BOUTS: Final = 3  # backward time is split into at least this many bouts

# Progression (docs/PROGRESSION.md): a step is +5 % of the last session's backward minutes,
# so the most steps a week (2) add about 10 %, the usual rule of thumb for training load.
PROGRESS_STEP: Final = 0.05
MIN_PROGRESS_S: Final = 6.0  # a step adds at least 0.1 min, or rounding would swallow it
MAX_STEPS_PER_WEEK: Final = 2
CLEAN_SESSIONS_NEEDED: Final = 2  # the last two sessions must both be clean to progress
PAIN_RISE: Final = 2  # pain up by 2/10 or more versus the session before: too much
EARLY_FRACTION: Final = 0.9  # walked under 90 % of a known program's backward time: ended early

GAP: Final = timedelta(days=14)  # more than two weeks without a session: step back
STEP_BACK: Final = 0.75  # -25 %

MAX_SESSIONS_PER_WEEK: Final = 4  # rest when this many sessions are already in the ISO week
HARD_FRACTION: Final = 0.9  # "hard": within 10 % of the most backward time so far

# Speed: starts at 1.5 km/h and gains 0.1 km/h for every 10 % of backward time gained above
# the start, so it moves only with the minutes (and falls back with them), never past the cap.
START_SPEED_KMH: Final = 1.5
SPEED_STEP_KMH: Final = 0.1
SPEED_PER_GROWTH: Final = 1.10

WARM_UP_S: Final = 180.0
BETWEEN_S: Final = 120.0
COOL_DOWN_S: Final = 180.0
FORWARD_KMH: Final = 3.0
COOL_DOWN_KMH: Final = 2.5


@dataclass(frozen=True)
class Plan:
    """What the rules suggest.

    `week_sessions` and `week_backward_min` count the real (non-simulated) sessions of the
    ISO week (UTC) that holds `now`; simulated sessions never count. `next_program` is a
    generated program named "next" that passes `validate(program, safety)`. `reasons` has one
    line per rule that decided something, each starting with the rule's name; when
    `rest_today` is True the rest reason comes first.
    """

    week_sessions: int
    week_backward_min: float
    next_program: Program
    reasons: tuple[str, ...]
    rest_today: bool


@dataclass(frozen=True)
class Facts:
    """What the rules read: the real sessions that started before `now`, newest first, with
    their parsed start times."""

    sessions: tuple[SessionSummary, ...]
    starts: tuple[datetime, ...]
    now: datetime
    safety: SafetyConfig
    programs: Mapping[str, Program]

    def in_week(self) -> list[SessionSummary]:
        week = self.now.isocalendar()[:2]
        return [s for s, t in zip(self.sessions, self.starts, strict=True)
                if t.isocalendar()[:2] == week]


@dataclass(frozen=True)
class Decision:
    """The decision so far. `backward_s` None: no rule has set the backward time yet."""

    backward_s: float | None = None
    rest_today: bool = False
    reasons: tuple[str, ...] = ()
    start: bool = False  # the first-timer shape, not the generated one

    def said(self, line: str) -> Decision:
        return replace(self, reasons=(*self.reasons, line))


Rule = Callable[[Facts, Decision], Decision]


# ---- helpers --------------------------------------------------------------------------------


def parse_started(text: str) -> datetime | None:
    """A session's start as an aware UTC datetime (naive is taken as UTC); None if unreadable."""
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def facts(history: Sequence[SessionSummary], *, now: datetime, safety: SafetyConfig,
          programs: Mapping[str, Program]) -> Facts:
    """The real sessions that started at or before `now`, newest first (whatever order the
    caller gave). Unreadable start times are left out: a broken row must not stop the plan."""
    now = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    dated = []
    for session in history:
        moment = parse_started(session.started_at)
        if session.simulated or moment is None or moment > now:
            continue
        dated.append((moment, session))
    dated.sort(key=lambda pair: (pair[0], pair[1].id), reverse=True)
    return Facts(
        sessions=tuple(s for _, s in dated),
        starts=tuple(t for t, _ in dated),
        now=now,
        safety=safety,
        programs=programs,
    )


def minutes(seconds: float) -> str:
    return f"{round(seconds / 60, 1):g} min"


def ended_early(session: SessionSummary, programs: Mapping[str, Program]) -> bool:
    """Not "completed" (a stop, a fault, interrupted, or still open), or, for a program we
    know, under 90 % of its backward time walked. "completed" also covers a person pressing
    stop, so the walked time is the only hint for a known program."""
    if session.end_reason != COMPLETED:
        return True
    program = programs.get(session.program)
    if program is not None and program.name != "next" and program.backward_s > 0:
        return session.backward_s < EARLY_FRACTION * program.backward_s
    return False


def pain_rose(session: SessionSummary, before: SessionSummary | None) -> bool:
    """Pain up by PAIN_RISE or more versus the session before. A skipped rating (None) can't
    show a rise; the other clean-session conditions still apply."""
    if before is None or session.pain is None or before.pain is None:
        return False
    return session.pain - before.pain >= PAIN_RISE


def clean(f: Facts, index: int) -> bool:
    """Session `index` (0 newest) completed, without alarms and without a rise in pain."""
    session = f.sessions[index]
    before = f.sessions[index + 1] if index + 1 < len(f.sessions) else None
    return (not ended_early(session, f.programs) and session.alarms == 0
            and not pain_rose(session, before))


def steps_this_week(f: Facts) -> int:
    """Progression steps taken this ISO week: sessions that walked more backward time than the
    real session before them."""
    week = f.now.isocalendar()[:2]
    count = 0
    for i, (session, moment) in enumerate(zip(f.sessions, f.starts, strict=True)):
        if moment.isocalendar()[:2] != week or i + 1 >= len(f.sessions):
            continue
        if session.backward_s > f.sessions[i + 1].backward_s + MIN_PROGRESS_S / 2:
            count += 1
    return count


def start_backward_s(programs: Mapping[str, Program]) -> float:
    program = programs.get(START_PROGRAM)
    return program.backward_s if program is not None and program.backward_s > 0 else (
        START_BACKWARD_S)


def speed_for(backward_s: float, safety: SafetyConfig, start_s: float) -> float:
    """1.5 km/h, +0.1 km/h per 10 % of backward time gained over the start, never over the
    backward cap."""
    gained = 0
    if backward_s > start_s > 0:
        gained = math.floor(math.log(backward_s / start_s) / math.log(SPEED_PER_GROWTH) + 1e-9)
    speed = round(START_SPEED_KMH + SPEED_STEP_KMH * gained, 1)
    return min(speed, safety.backward_speed_cap_kmh)


# ---- the rules, in order ----------------------------------------------------------------------


def rule_week_cap(f: Facts, d: Decision) -> Decision:
    """At most MAX_SESSIONS_PER_WEEK sessions in an ISO week: rest once that many are done."""
    done = len(f.in_week())
    if done >= MAX_SESSIONS_PER_WEEK:
        return replace(d, rest_today=True).said(
            f"week cap: {done} sessions this week already (at most {MAX_SESSIONS_PER_WEEK}): "
            "rest until Monday")
    return d


def rule_once_a_day(f: Facts, d: Decision) -> Decision:
    """One session a day: a session already today means the next one is another day."""
    if f.starts and f.starts[0].date() == f.now.date():
        return replace(d, rest_today=True).said(
            "once a day: you already walked today: the next session is for another day")
    return d


def is_hard(f: Facts, index: int) -> bool:
    """Hard: backward time within 10 % of the most backward time of any real session up to
    and including this one (the person's hardest so far, or nearly)."""
    upto = f.sessions[index:]
    best = max(s.backward_s for s in upto)
    return best > 0 and f.sessions[index].backward_s >= HARD_FRACTION * best


def rule_no_hard_days_in_a_row(f: Facts, d: Decision) -> Decision:
    """Not two hard days in a row: rest today when yesterday's session was hard."""
    yesterday: date = f.now.date() - timedelta(days=1)
    for i, moment in enumerate(f.starts):
        if moment.date() == yesterday and is_hard(f, i):
            return replace(d, rest_today=True).said(
                f"no hard days in a row: yesterday's {minutes(f.sessions[i].backward_s)} "
                "backward was as much as you have done: rest today")
        if moment.date() < yesterday:
            break
    return d


def rule_start(f: Facts, d: Decision) -> Decision:
    """No real history: the first-timer's short bursts."""
    if f.sessions or d.backward_s is not None:
        return d
    return replace(d, backward_s=start_backward_s(f.programs), start=True).said(
        f"start: no sessions yet: {minutes(start_backward_s(f.programs))} backward in "
        "1-minute bursts (the first-timer programme)")


def rule_gap(f: Facts, d: Decision) -> Decision:
    """More than two weeks since the last session: step back by 25 %."""
    if not f.sessions or d.backward_s is not None:
        return d
    gap = f.now - f.starts[0]
    if gap <= GAP:
        return d
    target = f.sessions[0].backward_s * STEP_BACK
    return replace(d, backward_s=target).said(
        f"step back: {gap.days} days since the last session (more than {GAP.days}): "
        f"{minutes(f.sessions[0].backward_s)} less 25 %")


def rule_hold(f: Facts, d: Decision) -> Decision:
    """The last session ended early, had alarms, or pain rose by 2 or more: same again."""
    if not f.sessions or d.backward_s is not None:
        return d
    last = f.sessions[0]
    before = f.sessions[1] if len(f.sessions) > 1 else None
    why = []
    if ended_early(last, f.programs):
        why.append(f"it ended early ({last.end_reason or 'not finished'})")
    if last.alarms:
        why.append(f"{last.alarms} alarm{'s' if last.alarms != 1 else ''}")
    if pain_rose(last, before):
        why.append(f"pain rose from {before.pain} to {last.pain}" if before else "pain rose")
    if not why:
        return d
    return replace(d, backward_s=last.backward_s).said(
        f"hold: last session {', '.join(why)}: {minutes(last.backward_s)} backward again")


def rule_weekly_steps(f: Facts, d: Decision) -> Decision:
    """At most MAX_STEPS_PER_WEEK progression steps in an ISO week: hold after that."""
    if not f.sessions or d.backward_s is not None:
        return d
    taken = steps_this_week(f)
    if taken < MAX_STEPS_PER_WEEK:
        return d
    return replace(d, backward_s=f.sessions[0].backward_s).said(
        f"two steps a week: {taken} steps up this week already: "
        f"{minutes(f.sessions[0].backward_s)} backward again")


def rule_progress(f: Facts, d: Decision) -> Decision:
    """The last two sessions were clean: +5 % backward time. Fewer clean ones: hold."""
    if not f.sessions or d.backward_s is not None:
        return d
    last = f.sessions[0]
    needed = min(CLEAN_SESSIONS_NEEDED, len(f.sessions))
    if len(f.sessions) < CLEAN_SESSIONS_NEEDED or not all(clean(f, i) for i in range(needed)):
        return replace(d, backward_s=last.backward_s).said(
            f"progress: not yet ({CLEAN_SESSIONS_NEEDED} clean sessions in a row needed): "
            f"{minutes(last.backward_s)} backward again")
    step = max(last.backward_s * PROGRESS_STEP, MIN_PROGRESS_S)
    target = math.ceil((last.backward_s + step) / 6.0) * 6.0  # whole tenths of a minute
    return replace(d, backward_s=target).said(
        f"progress: the last {CLEAN_SESSIONS_NEEDED} sessions were clean: "
        f"{minutes(last.backward_s)} + 5 % = {minutes(target)} backward")


def rule_caps(f: Facts, d: Decision) -> Decision:
    """Never past the app's caps: session backward time, and never below a sensible floor."""
    target = d.backward_s if d.backward_s is not None else start_backward_s(f.programs)
    cap = f.safety.max_backward_session_s
    floor = min(start_backward_s(f.programs), cap)
    if target > cap:
        return replace(d, backward_s=cap).said(
            f"caps: {minutes(target)} is over the session limit: {minutes(cap)} backward")
    if target < floor:
        return replace(d, backward_s=floor).said(
            f"caps: {minutes(target)} is below the starting amount: {minutes(floor)} backward")
    return replace(d, backward_s=target)


RULES: Final[tuple[Rule, ...]] = (
    rule_week_cap,
    rule_once_a_day,
    rule_no_hard_days_in_a_row,
    rule_start,
    rule_gap,
    rule_hold,
    rule_weekly_steps,
    rule_progress,
    rule_caps,
)


# ---- the generated program -------------------------------------------------------------------


def _forward_speed(safety: SafetyConfig) -> float:
    cap = safety.forward_speed_cap_kmh
    return FORWARD_KMH if cap is None else min(FORWARD_KMH, cap)


def _title(backward_s: float) -> str:
    return f"Next: {round(backward_s / 60, 1):g} backward minutes"


def generate(backward_s: float, safety: SafetyConfig, start_s: float = START_BACKWARD_S
             ) -> Program:
    """Warm-up, backward bouts (at least three, each at most the bout limit) with 2 minutes
    forward between them, cool-down. The bouts' lengths are rounded down to 0.1 s so their sum
    never passes the session limit."""
    backward_s = min(backward_s, safety.max_backward_session_s)
    bout_cap = min(safety.max_backward_bout_s, 600.0)
    count = max(MIN_BOUTS, math.ceil(backward_s / bout_cap - 1e-9))
    bout = math.floor(backward_s / count * 10) / 10
    speed = speed_for(backward_s, safety, start_s)
    forward = _forward_speed(safety)
    steps = [Step(Orientation.FORWARD, WARM_UP_S, forward, 0.0,
                  "Warm up facing forward. Clip the safety key on.")]
    for n in range(1, count + 1):
        steps.append(Step(Orientation.BACKWARD, bout, speed, 0.0,
                          f"Backward {n} of {count}: hold the rails, short steps, stand tall."))
        if n < count:
            steps.append(Step(Orientation.FORWARD, BETWEEN_S, forward, 0.0,
                              "Walk forward and breathe."))
    steps.append(Step(Orientation.FORWARD, COOL_DOWN_S, min(forward, COOL_DOWN_KMH), 0.0,
                      "Cool down facing forward, a little slower."))
    return Program(
        name="next",
        title=_title(bout * count),
        steps=tuple(steps),
        description="Suggested from your own history by the progression rules "
                    "(docs/PROGRESSION.md).",
        source="built-in",
    )


def _first_timer(programs: Mapping[str, Program], safety: SafetyConfig) -> Program | None:
    """The first-timer program as "next", its speeds held under the caps; None when it is not
    there or does not fit these (stricter) safety settings."""
    base = programs.get(START_PROGRAM)
    if base is None:
        return None
    forward = safety.forward_speed_cap_kmh
    steps = tuple(
        replace(s, speed_kmh=min(s.speed_kmh, safety.backward_speed_cap_kmh))
        if s.orientation == Orientation.BACKWARD
        else replace(s, speed_kmh=s.speed_kmh if forward is None else min(s.speed_kmh, forward))
        for s in base.steps
    )
    program = replace(base, name="next", title=_title(base.backward_s), steps=steps,
                      source="built-in", unlock_backward_incline=False)
    try:
        validate(program, safety)
    except ProgramError:  # stricter settings than the built-in expects
        return None
    return program


def plan(history: Sequence[SessionSummary], *, now: datetime, safety: SafetyConfig,
         programs: Mapping[str, Program]) -> Plan:
    """The next session from the person's real history (simulated sessions never count).

    `history` in any order (the store gives newest first); `now` aware, or naive UTC.
    """
    f = facts(history, now=now, safety=safety, programs=programs)
    decision = Decision()
    for rule in RULES:
        decision = rule(f, decision)
    start_s = start_backward_s(programs)
    backward_s = decision.backward_s if decision.backward_s is not None else start_s
    program = _first_timer(programs, safety) if decision.start else None
    if program is None:
        program = generate(backward_s, safety, start_s)
    validate(program, safety)  # a generated program that breaks a cap is a bug: fail loudly
    week = f.in_week()
    return Plan(
        week_sessions=len(week),
        week_backward_min=round(sum(s.backward_s for s in week) / 60, 1),
        next_program=program,
        reasons=decision.reasons,
        rest_today=decision.rest_today,
    )
