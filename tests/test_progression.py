"""The progression rules, one at a time on small hand-built histories, then as properties over
random histories: the suggested program never passes a cap and always validates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safety import Orientation, SafetyConfig
from treadmill.history import progression as pr
from treadmill.history.model import SessionSummary
from treadmill.programs import builtin_programs, validate

# A Wednesday: ISO week 49 of 2026 runs from Monday 30 November to Sunday 6 December.
NOW = datetime(2026, 12, 2, 18, 0, tzinfo=UTC)
SAFETY = SafetyConfig()
PROGRAMS = builtin_programs()


def session(days_ago: float, backward_min: float, *, sid: int = 0, program: str = "next",
            end: str | None = "completed", alarms: int = 0, pain: int | None = None,
            simulated: bool = False) -> SessionSummary:
    started = NOW - timedelta(days=days_ago)
    return SessionSummary(
        id=sid, program=program, title=program, device="test", simulated=simulated,
        started_at=started.isoformat(), ended_at=None, duration_s=backward_min * 60 + 600,
        backward_s=backward_min * 60, longest_backward_bout_s=backward_min * 20,
        alarms=alarms, end_reason=end, pain=pain,
    )


def history(*sessions: SessionSummary) -> list[SessionSummary]:
    """Give ids in time order and return newest first, as the store does."""
    ordered = sorted(sessions, key=lambda s: s.started_at)
    with_ids = [SessionSummary(**{**s.__dict__, "id": i}) for i, s in enumerate(ordered, 1)]
    return list(reversed(with_ids))


def run(sessions: list[SessionSummary], safety: SafetyConfig = SAFETY) -> pr.Plan:
    return pr.plan(sessions, now=NOW, safety=safety, programs=PROGRAMS)


def decide(rule: pr.Rule, sessions: list[SessionSummary]) -> pr.Decision:
    f = pr.facts(sessions, now=NOW, safety=SAFETY, programs=PROGRAMS)
    return rule(f, pr.Decision())


def backward_min(p: pr.Plan) -> float:
    return round(p.next_program.backward_s / 60, 1)


# ---- each rule alone -----------------------------------------------------------------------

# (rule, history, expected backward minutes or None for "no decision", rest_today, reason start)
CASES = [
    ("start", pr.rule_start, [], 3.0, False, "start:"),
    ("start ignores simulated", pr.rule_start, [session(3, 20, simulated=True)], 3.0, False,
     "start:"),
    ("start only without history", pr.rule_start, [session(3, 5)], None, False, None),
    ("gap", pr.rule_gap, [session(20, 8)], 6.0, False, "step back:"),
    ("no gap at 14 days", pr.rule_gap, [session(14, 8)], None, False, None),
    ("hold: ended early", pr.rule_hold, [session(4, 6), session(2, 4, end="emergency_stop")],
     4.0, False, "hold:"),
    ("hold: interrupted", pr.rule_hold, [session(2, 4, end="interrupted")], 4.0, False, "hold:"),
    ("hold: alarm", pr.rule_hold, [session(4, 6), session(2, 6, alarms=1)], 6.0, False,
     "hold:"),
    ("hold: pain rose by 2", pr.rule_hold, [session(4, 6, pain=2), session(2, 6, pain=4)], 6.0,
     False, "hold:"),
    ("no hold: pain rose by 1", pr.rule_hold, [session(4, 6, pain=2), session(2, 6, pain=3)],
     None, False, None),
    ("hold: known program stopped short", pr.rule_hold,
     [session(2, 5, program="knee-10")], 5.0, False, "hold:"),
    ("weekly steps", pr.rule_weekly_steps,
     [session(9, 5), session(2, 5.3), session(1, 5.6)], 5.6, False, "two steps a week:"),
    ("one step is fine", pr.rule_weekly_steps, [session(9, 5), session(2, 5.3)], None, False,
     None),
    ("progress", pr.rule_progress, [session(4, 10), session(2, 10)], 10.5, False, "progress:"),
    ("progress needs two", pr.rule_progress, [session(2, 10)], 10.0, False, "progress: not yet"),
    ("progress needs both clean", pr.rule_progress,
     [session(6, 10), session(4, 10, alarms=2), session(2, 10)], 10.0, False,
     "progress: not yet"),
    ("week cap", pr.rule_week_cap,
     [session(2.2, 5), session(2, 5), session(1.1, 5), session(0.3, 5)], None, True,
     "week cap:"),
    ("week cap: last week's do not count", pr.rule_week_cap,
     [session(4, 5), session(5, 5), session(6, 5), session(7, 5)], None, False, None),
    ("week cap: simulated do not count", pr.rule_week_cap,
     [session(d, 5, simulated=True) for d in (0.2, 0.5, 1.1, 2.1)], None, False, None),
    ("hard day", pr.rule_no_hard_days_in_a_row, [session(3, 10), session(1, 9.5)], None, True,
     "no hard days in a row:"),
    ("easy yesterday", pr.rule_no_hard_days_in_a_row, [session(3, 10), session(1, 8)], None,
     False, None),
    ("once a day", pr.rule_once_a_day, [session(0.1, 5)], None, True, "once a day:"),
    ("caps: sets the start amount if nothing did", pr.rule_caps, [], 3.0, False, None),
]


@pytest.mark.parametrize(("name", "rule", "sessions", "minutes", "rest", "reason"), CASES,
                         ids=[c[0] for c in CASES])
def test_rule_alone(name, rule, sessions, minutes, rest, reason):
    d = decide(rule, history(*sessions))
    if minutes is None:
        assert d.backward_s is None
    else:
        assert d.backward_s is not None and round(d.backward_s / 60, 2) == minutes
    assert d.rest_today is rest
    if reason is None:
        assert not [r for r in d.reasons if not r.startswith("caps:")]
    else:
        assert len(d.reasons) == 1 and d.reasons[0].startswith(reason)


def test_caps_rule_clamps_to_the_session_limit():
    f = pr.facts([], now=NOW, safety=SAFETY, programs=PROGRAMS)
    d = pr.rule_caps(f, pr.Decision(backward_s=3000.0))
    assert d.backward_s == SAFETY.max_backward_session_s
    assert d.reasons[0].startswith("caps:")


def test_caps_rule_lifts_a_tiny_hold_to_the_starting_amount():
    p = run(history(session(4, 5), session(2, 0.2, end="emergency_stop")))
    assert backward_min(p) == 3.0
    assert p.reasons[0].startswith("hold:") and p.reasons[1].startswith("caps:")


def test_rules_run_in_a_fixed_order_with_rest_first():
    names = [r.__name__ for r in pr.RULES]
    assert names[:3] == ["rule_week_cap", "rule_once_a_day", "rule_no_hard_days_in_a_row"]
    assert names[-1] == "rule_caps"


# ---- whole plans ------------------------------------------------------------------------------


def test_first_plan_is_the_first_timer_shape():
    p = run([])
    first = PROGRAMS["first-timer"]
    assert p.next_program.name == "next"
    assert p.next_program.title == "Next: 3 backward minutes"
    assert [s.orientation for s in p.next_program.steps] == [s.orientation for s in first.steps]
    assert p.week_sessions == 0 and p.week_backward_min == 0
    assert not p.rest_today and p.reasons[0].startswith("start:")


def test_simulated_sessions_never_push_progression():
    sims = [session(d, 25, simulated=True) for d in (1, 3, 5)]
    assert run(history(*sims)) == run([])


def test_progress_builds_the_generated_program():
    p = run(history(session(4, 10, pain=1), session(2, 10, pain=2)))
    assert not p.rest_today
    assert backward_min(p) == 10.5
    assert p.next_program.title == "Next: 10.5 backward minutes"
    steps = p.next_program.steps
    assert steps[0].orientation == Orientation.FORWARD and steps[0].duration_s == 180
    assert steps[-1].orientation == Orientation.FORWARD and steps[-1].duration_s == 180
    bouts = [s for s in steps if s.orientation == Orientation.BACKWARD]
    assert len(bouts) == 3 and all(s.duration_s <= 600 for s in bouts)
    assert all(1.5 < s.speed_kmh <= 3.0 for s in bouts)
    assert all(s.cue for s in steps)
    assert p.week_sessions == 1 and p.week_backward_min == 10.0


def test_rest_reason_comes_first_but_the_next_session_is_still_planned():
    p = run(history(session(3, 10), session(1, 10)))
    assert p.rest_today
    assert p.reasons[0].startswith("no hard days in a row:")
    assert any(r.startswith("progress:") for r in p.reasons[1:])


def test_speed_moves_only_with_the_minutes():
    start = pr.START_BACKWARD_S
    assert pr.speed_for(start, SAFETY, start) == 1.5
    assert pr.speed_for(start * 1.1, SAFETY, start) == 1.6
    assert pr.speed_for(start * 1.09, SAFETY, start) == 1.5
    assert pr.speed_for(1800, SAFETY, start) == 3.0
    slow = SafetyConfig(backward_speed_cap_kmh=1.2)
    assert pr.speed_for(start, slow, start) == 1.2


def test_the_order_of_the_history_does_not_matter():
    sessions = history(session(8, 6), session(5, 6.3), session(3, 6.6))
    assert run(sessions) == run(list(reversed(sessions)))


def test_a_long_bout_is_split_under_the_bout_limit():
    p = run(history(session(5, 29), session(3, 29.5)))
    assert p.next_program.backward_s <= 1800
    assert all(s.duration_s <= 600 for s in p.next_program.steps
               if s.orientation == Orientation.BACKWARD)


# ---- properties over random histories ----------------------------------------------------------

END_REASONS = ["completed", "completed", "completed", "emergency_stop", "interrupted",
               "safety_key", None]


@st.composite
def random_session(draw: st.DrawFn) -> SessionSummary:
    return session(
        draw(st.floats(min_value=0, max_value=120, allow_nan=False)),
        draw(st.floats(min_value=0, max_value=60, allow_nan=False)),
        program=draw(st.sampled_from(["next", "knee-10", "retro-30", "taster", "first-timer",
                                      "mine"])),
        end=draw(st.sampled_from(END_REASONS)),
        alarms=draw(st.integers(min_value=0, max_value=3)),
        pain=draw(st.one_of(st.none(), st.integers(min_value=0, max_value=10))),
        simulated=draw(st.booleans()),
    )


@st.composite
def safety_configs(draw: st.DrawFn) -> SafetyConfig:
    """Any consistent settings at least as strict as the defaults."""
    session_s = draw(st.floats(min_value=10.0, max_value=1800.0))
    backward_cap = draw(st.floats(min_value=0.1, max_value=3.0))
    forward_cap = draw(st.one_of(st.none(), st.floats(min_value=0.1, max_value=20.0)))
    return SafetyConfig(
        backward_speed_cap_kmh=backward_cap,
        backward_start_speed_kmh=min(1.0, backward_cap),
        forward_speed_cap_kmh=forward_cap,
        forward_start_speed_kmh=1.0 if forward_cap is None else min(1.0, forward_cap),
        max_backward_session_s=session_s,
        max_backward_bout_s=draw(st.floats(min_value=10.0, max_value=min(600.0, session_s))),
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(random_session(), max_size=30), safety_configs())
def test_the_plan_never_passes_a_cap_and_always_validates(sessions, safety):
    p = run(history(*sessions), safety)
    program = p.next_program
    validate(program, safety)
    assert program.name == "next"
    assert program.backward_s <= safety.max_backward_session_s + 1e-9
    bout = 0.0
    for step in program.steps:
        if step.orientation == Orientation.BACKWARD:
            assert step.speed_kmh <= safety.backward_speed_cap_kmh + 1e-9
            assert step.incline_pct == 0
            bout += step.duration_s
            assert bout <= safety.max_backward_bout_s + 1e-9
        else:
            bout = 0.0
        assert step.cue
    assert p.reasons and all(":" in r for r in p.reasons)
    if p.rest_today:
        assert p.reasons[0].split(":")[0] in {"week cap", "once a day", "no hard days in a row"}


@settings(max_examples=200, deadline=None)
@given(st.lists(random_session(), max_size=30))
def test_the_plan_never_grows_more_than_one_step(sessions):
    """Whatever the history, the next session walks at most one step (+5 %, at least 0.1 min,
    rounded up to 0.1 min) more backward time than the last real one, or the start amount."""
    h = history(*sessions)
    p = run(h)
    real = pr.facts(h, now=NOW, safety=SAFETY, programs=PROGRAMS).sessions
    last = real[0].backward_s if real else 0.0
    allowed = max(last * 1.05 + 12.0, pr.start_backward_s(PROGRAMS))
    assert p.next_program.backward_s <= min(allowed, 1800) + 1e-6
