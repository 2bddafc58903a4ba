"""Program files and safety settings refuse numbers that are no numbers: NaN, inf and -inf
(TOML has literals for all three), and lengths, speeds and inclines no program can mean."""

from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path

import pytest

from safety import Orientation, SafetyConfig
from treadmill.programs import (
    MAX_STEP_S,
    Program,
    ProgramError,
    Step,
    builtin_programs,
    load_program_file,
    validate,
)

GOOD_STEP = {"minutes": "2", "speed_kmh": "2.0", "incline_pct": "0.0"}


def program_file(tmp_path: Path, **step: str) -> Path:
    """A one-step forward program; `step` overrides (or with value "", removes) the fields."""
    fields_ = {**GOOD_STEP, **step}
    body = "\n".join(f"{key} = {value}" for key, value in fields_.items() if value != "")
    path = tmp_path / "odd.toml"
    path.write_text(f'title = "Odd"\n[[steps]]\norientation = "forward"\n{body}\n')
    return path


def test_a_good_file_loads_and_validates(tmp_path):
    program = load_program_file(program_file(tmp_path))
    validate(program, SafetyConfig())
    assert program.steps[0].duration_s == 120.0


@pytest.mark.parametrize("literal", ["nan", "+nan", "-nan", "inf", "+inf", "-inf"])
@pytest.mark.parametrize("key", ["minutes", "seconds", "speed_kmh", "incline_pct"])
def test_toml_nan_and_inf_are_refused_naming_file_step_and_field(tmp_path, key, literal):
    step = {key: literal}
    if key == "seconds":
        step["minutes"] = ""
    path = program_file(tmp_path, **step)
    with pytest.raises(ProgramError) as error:
        load_program_file(path)
    message = str(error.value)
    assert str(path) in message and "step 1" in message and f"field {key}" in message
    assert "must be a finite number" in message


@pytest.mark.parametrize(
    ("step", "field", "why"),
    [
        ({"minutes": "241"}, "minutes", "at most 4 h"),
        ({"minutes": "", "seconds": "14401"}, "seconds", "at most 4 h"),
        ({"speed_kmh": "50.5"}, "speed_kmh", "faster than any treadmill"),
        ({"speed_kmh": "1e308"}, "speed_kmh", "faster than any treadmill"),
        ({"incline_pct": "-101"}, "incline_pct", "beyond any treadmill"),
        ({"incline_pct": "1000"}, "incline_pct", "beyond any treadmill"),
    ],
)
def test_numbers_no_program_can_mean_are_refused_at_load(tmp_path, step, field, why):
    with pytest.raises(ProgramError, match=f"step 1, field {field}: .*{why}"):
        load_program_file(program_file(tmp_path, **step))


def test_a_four_hour_step_is_still_allowed(tmp_path):
    program = load_program_file(program_file(tmp_path, minutes="240"))
    assert program.steps[0].duration_s == MAX_STEP_S
    validate(program, SafetyConfig())


def in_code(**changes: float) -> Program:
    step = {"orientation": Orientation.FORWARD, "duration_s": 60.0, "speed_kmh": 2.0,
            "incline_pct": 0.0, **changes}
    return Program(name="coded", title="Coded", steps=(Step(**step),))  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("field", ["duration_s", "speed_kmh", "incline_pct"])
def test_validate_refuses_nan_and_inf_in_programs_built_in_code(field, value):
    with pytest.raises(ProgramError, match="must be a finite number") as error:
        validate(in_code(**{field: value}), SafetyConfig())
    name = "duration" if field == "duration_s" else field
    assert "program coded, step 1, field " + name in str(error.value)


def test_validate_refuses_a_nan_backward_speed_and_minutes():
    """The reported cases: a NaN speed walked at 1.0 km/h and reported completed; NaN minutes
    skipped the step and hid the bout and session totals."""
    for change in ({"speed_kmh": math.nan}, {"duration_s": math.nan}):
        program = in_code(orientation=Orientation.BACKWARD, **change)  # type: ignore[arg-type]
        with pytest.raises(ProgramError, match="must be a finite number"):
            validate(program, SafetyConfig())


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"duration_s": MAX_STEP_S + 1}, "longer than the 4 h"),
        ({"speed_kmh": 51.0}, "faster than any treadmill"),
        ({"incline_pct": -150.0}, "beyond any treadmill"),
        ({"speed_kmh": True}, "must be a number"),
    ],
)
def test_validate_refuses_numbers_no_program_can_mean(changes, why):
    with pytest.raises(ProgramError, match=why):
        validate(in_code(**changes), SafetyConfig())


def test_every_builtin_program_still_validates():
    unlocked = SafetyConfig.from_user_dict({"backward_incline_unlocked": True})
    for program in builtin_programs().values():
        validate(program, unlocked if program.unlock_backward_incline else SafetyConfig())


# ---- safety settings ----------------------------------------------------------------------------

NUMERIC_SETTINGS = [f.name for f in fields(SafetyConfig) if f.name != "backward_incline_unlocked"]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("name", NUMERIC_SETTINGS)
def test_safety_settings_refuse_nan_and_inf_by_name(name, value):
    with pytest.raises(ValueError, match=f"^{name} = .*must be a finite number"):
        SafetyConfig.from_user_dict({name: value})
    with pytest.raises(ValueError, match=f"^{name} = .*must be a finite number"):
        SafetyConfig(**{name: value})  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [True, False])
@pytest.mark.parametrize("name", NUMERIC_SETTINGS)
def test_booleans_are_not_numbers(name, value):
    with pytest.raises(ValueError, match=f"^{name} = {value} is not a number"):
        SafetyConfig.from_user_dict({name: value})
    with pytest.raises(ValueError, match=f"^{name} = {value} is not a number"):
        SafetyConfig(**{name: value})  # type: ignore[arg-type]


def test_a_huge_integer_setting_is_a_value_error_not_an_overflow():
    with pytest.raises(ValueError, match="stale_stop_s"):
        SafetyConfig(stale_stop_s=10**400)  # type: ignore[arg-type]
