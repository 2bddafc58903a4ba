"""Guided programs: steps, the built-in programmes, user TOML files, and their validation.

A program is checked twice before the belt moves: against the safety settings when it is
loaded (caps, bout lengths, incline lock) and against the connected machine's ranges when a
session starts. Every refusal names the file, the step and the field.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from safety import MachineLimits, Orientation, SafetyConfig
from treadmill.config import config_dir
from treadmill.errors import TreadmillError


class ProgramError(TreadmillError):
    """A program file or step that can't be used; the message names file, step and field."""


# Sane bounds for every number in a program, before any safety setting is applied. NaN slips
# through every comparison (a NaN step is skipped, a NaN speed walks at the start speed and
# "completes") and inf never ends, so every number must be finite, and then in these bounds.
MAX_STEP_S = 4 * 3600.0  # no guided step is longer than 4 h; longer is a typo (seconds as min)
MAX_PROGRAM_SPEED_KMH = 50.0  # FTMS treadmills top out below this (treadmill.ftms)
MAX_PROGRAM_INCLINE_PCT = 100.0  # +-100 % is a 45-degree slope


@dataclass(frozen=True)
class Step:
    orientation: Orientation
    duration_s: float
    speed_kmh: float
    incline_pct: float = 0.0
    cue: str = ""


@dataclass(frozen=True)
class Program:
    name: str
    title: str
    steps: tuple[Step, ...]
    description: str = ""
    source: str = "built-in"  # or the file path it came from
    unlock_backward_incline: bool = False

    @property
    def duration_s(self) -> float:
        return sum(s.duration_s for s in self.steps)

    @property
    def backward_s(self) -> float:
        return sum(s.duration_s for s in self.steps if s.orientation == Orientation.BACKWARD)

    @property
    def turnarounds(self) -> int:
        return sum(1 for item in plan(self) if isinstance(item, TurnAroundItem))


# ---- the plan: steps with the turn-arounds between them ---------------------------------------


@dataclass(frozen=True)
class WalkItem:
    index: int  # 1-based step number, as users count
    step: Step


@dataclass(frozen=True)
class TurnAroundItem:
    """Slow to a stop, wait, let the person turn and confirm, then start slowly again."""

    to: Orientation


PlanItem = WalkItem | TurnAroundItem


def plan(program: Program, start: Orientation = Orientation.FORWARD) -> list[PlanItem]:
    """The steps with a turn-around inserted wherever the orientation changes (also before the
    first step when it does not face the way the person starts)."""
    items: list[PlanItem] = []
    facing = start
    for index, step in enumerate(program.steps, start=1):
        if step.orientation != facing:
            items.append(TurnAroundItem(step.orientation))
            facing = step.orientation
        items.append(WalkItem(index, step))
    return items


# ---- validation ---------------------------------------------------------------------------------


def _where(program: Program, index: int | None, fieldname: str | None) -> str:
    parts = [f"program {program.source if program.source != 'built-in' else program.name}"]
    if index is not None:
        parts.append(f"step {index}")
    if fieldname:
        parts.append(f"field {fieldname}")
    return ", ".join(parts)


def validate(program: Program, config: SafetyConfig, limits: MachineLimits | None = None) -> None:
    """Raise ProgramError for the first thing in `program` that breaks a cap or a rule.

    Without `limits` only the safety settings are checked (at load time); with them, the
    connected machine's ranges too (before the belt moves).
    """
    if not program.steps:
        raise ProgramError(f"{_where(program, None, 'steps')}: a program needs at least one step")
    if program.unlock_backward_incline and not config.backward_incline_unlocked:
        raise ProgramError(
            f"{_where(program, None, 'unlock_backward_incline')}: this program walks backwards "
            "uphill, which is locked: start it with --unlock-backward-incline if your "
            "physiotherapist agrees"
        )
    bout = 0.0
    for index, step in enumerate(program.steps, start=1):
        def refuse(fieldname: str, why: str, index: int = index) -> ProgramError:
            return ProgramError(f"{_where(program, index, fieldname)}: {why}")

        # First, before any comparison: NaN would pass every one of them.
        for fieldname, value in (("duration", step.duration_s), ("speed_kmh", step.speed_kmh),
                                 ("incline_pct", step.incline_pct)):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise refuse(fieldname, f"must be a number, not {value!r}")
            if not math.isfinite(value):
                raise refuse(fieldname, f"must be a finite number, not {value!r}")
        if step.duration_s > MAX_STEP_S:
            raise refuse("duration", f"{step.duration_s / 60:g} min is longer than the "
                                     f"{MAX_STEP_S / 3600:g} h a step may last")
        if step.speed_kmh > MAX_PROGRAM_SPEED_KMH:
            raise refuse("speed_kmh", f"{step.speed_kmh:g} km/h is faster than any treadmill "
                                      f"({MAX_PROGRAM_SPEED_KMH:g} km/h)")
        if abs(step.incline_pct) > MAX_PROGRAM_INCLINE_PCT:
            raise refuse("incline_pct", f"{step.incline_pct:g} % is beyond any treadmill "
                                        f"(+-{MAX_PROGRAM_INCLINE_PCT:g} %)")
        if step.duration_s <= 0:
            raise refuse("duration", "must be longer than 0 s")
        if step.speed_kmh <= 0:
            raise refuse("speed_kmh", "must be above 0 km/h (a pause is a step of its own)")
        backward = step.orientation == Orientation.BACKWARD
        if backward:
            cap = config.backward_speed_cap_kmh
            if step.speed_kmh > cap + 1e-9:
                raise refuse("speed_kmh", f"{step.speed_kmh:g} km/h is above the backward "
                                          f"speed cap of {cap:g} km/h")
            incline_cap = config.backward_incline_cap_effective_pct
            if step.incline_pct > incline_cap + 1e-9:
                hint = (" (unlock backward incline to allow up to 5 %)"
                        if not config.backward_incline_unlocked else "")
                raise refuse("incline_pct", f"{step.incline_pct:g} % is above the backward "
                                            f"incline cap of {incline_cap:g} %{hint}")
            bout += step.duration_s
            if bout > config.max_backward_bout_s + 1e-9:
                raise refuse("duration", f"makes {bout / 60:g} min of continuous backward "
                                         f"walking; the limit is "
                                         f"{config.max_backward_bout_s / 60:g} min: add a "
                                         "forward step or rest in between")
        else:
            bout = 0.0
            forward_cap = config.forward_speed_cap_kmh
            if forward_cap is not None and step.speed_kmh > forward_cap + 1e-9:
                raise refuse("speed_kmh", f"{step.speed_kmh:g} km/h is above the forward "
                                          f"speed cap of {forward_cap:g} km/h")
        if step.incline_pct < 0 and backward:
            raise refuse("incline_pct", "backward walking downhill is not allowed")
        if limits is not None:
            _check_machine(program, index, step, limits, refuse)
    if program.backward_s > config.max_backward_session_s + 1e-9:
        raise ProgramError(
            f"{_where(program, None, 'steps')}: {program.backward_s / 60:g} min of backward "
            f"walking in one session; the limit is {config.max_backward_session_s / 60:g} min"
        )


def _check_machine(program: Program, index: int, step: Step, limits: MachineLimits,
                   refuse: Any) -> None:
    if step.speed_kmh < limits.speed_min_kmh - 1e-9:
        raise refuse("speed_kmh", f"{step.speed_kmh:g} km/h is below this treadmill's minimum "
                                  f"of {limits.speed_min_kmh:g} km/h")
    if step.speed_kmh > limits.speed_max_kmh + 1e-9:
        raise refuse("speed_kmh", f"{step.speed_kmh:g} km/h is above this treadmill's maximum "
                                  f"of {limits.speed_max_kmh:g} km/h")
    if step.incline_pct != 0:
        if not limits.incline_supported:
            raise refuse("incline_pct", "this treadmill has no incline")
        if not limits.incline_min_pct - 1e-9 <= step.incline_pct <= limits.incline_max_pct + 1e-9:
            raise refuse("incline_pct", f"{step.incline_pct:g} % is outside this treadmill's "
                                        f"{limits.incline_min_pct:g}-{limits.incline_max_pct:g} %")


# ---- TOML ---------------------------------------------------------------------------------

_STEP_KEYS = {"orientation", "minutes", "seconds", "speed_kmh", "incline_pct", "cue"}
_TOP_KEYS = {"name", "title", "description", "unlock_backward_incline", "steps"}


def parse_program(raw: dict[str, Any], source: str, default_name: str) -> Program:
    """A Program from TOML data; ProgramError names the file, step and field that is wrong."""
    def bad(where: str, why: str) -> ProgramError:
        return ProgramError(f"program {source}, {where}: {why}")

    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise bad(f"field {sorted(unknown)[0]}", f"unknown field (known: {sorted(_TOP_KEYS)})")
    steps_raw = raw.get("steps")
    if not isinstance(steps_raw, list) or not steps_raw:
        raise bad("field steps", "needs at least one [[steps]] table")
    steps = []
    for index, entry in enumerate(steps_raw, start=1):
        where = f"step {index}"
        if not isinstance(entry, dict):
            raise bad(where, "must be a [[steps]] table")
        unknown = set(entry) - _STEP_KEYS
        if unknown:
            raise bad(f"{where}, field {sorted(unknown)[0]}",
                      f"unknown field (known: {sorted(_STEP_KEYS)})")
        orientation = entry.get("orientation")
        if orientation not in ("forward", "backward"):
            raise bad(f"{where}, field orientation", "must be \"forward\" or \"backward\"")
        if ("minutes" in entry) == ("seconds" in entry):
            raise bad(f"{where}, field minutes", "give the length as either minutes or seconds")
        length_key = "minutes" if "minutes" in entry else "seconds"
        max_length = MAX_STEP_S / 60 if length_key == "minutes" else MAX_STEP_S
        length = _number(entry, length_key, None, bad, where, (0.0, max_length), length_key,
                         f"a step may last at most {MAX_STEP_S / 3600:g} h")
        speed = _number(entry, "speed_kmh", None, bad, where, (0.0, MAX_PROGRAM_SPEED_KMH),
                        "km/h", "faster than any treadmill")
        incline = _number(entry, "incline_pct", 0.0, bad, where,
                          (-MAX_PROGRAM_INCLINE_PCT, MAX_PROGRAM_INCLINE_PCT), "%",
                          "beyond any treadmill")
        cue = entry.get("cue", "")
        if not isinstance(cue, str):
            raise bad(f"{where}, field cue", "must be text")
        steps.append(Step(
            orientation=Orientation(orientation),
            duration_s=length * 60 if length_key == "minutes" else length,
            speed_kmh=speed,
            incline_pct=incline,
            cue=cue,
        ))
    for key in ("name", "title", "description"):
        if key in raw and not isinstance(raw[key], str):
            raise bad(f"field {key}", "must be text")
    unlock = raw.get("unlock_backward_incline", False)
    if not isinstance(unlock, bool):
        raise bad("field unlock_backward_incline", "must be true or false")
    name = raw.get("name", default_name)
    return Program(
        name=name,
        title=raw.get("title", name),
        description=raw.get("description", ""),
        steps=tuple(steps),
        source=source,
        unlock_backward_incline=unlock,
    )


def _number(entry: dict[str, Any], key: str, default: float | None, bad: Any,
            where: str, bounds: tuple[float, float], unit: str, why: str) -> float:
    """A finite number within `bounds` (TOML has nan, inf and -inf literals). Zero and
    negative lengths and speeds are left to validate(), which says why they are wrong."""
    value = entry.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad(f"{where}, field {key}", "must be a number" if value is not None
                  else "is missing")
    number = float(value)
    if not math.isfinite(number):
        raise bad(f"{where}, field {key}", f"must be a finite number, not {value!r}")
    lo, hi = bounds
    if number > hi or (lo < 0 and number < lo):
        allowed = f"{lo:g} to {hi:g}" if lo < 0 else f"at most {hi:g}"
        raise bad(f"{where}, field {key}", f"{value!r} {unit} is out of range ({allowed} "
                  f"{unit}: {why})")
    return number


def load_program_file(path: Path) -> Program:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProgramError(f"program file {path} does not exist: check the path, or run "
                           "`treadmill programs` to list the programs") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProgramError(f"can't read program file {path}: {exc}") from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProgramError(f"program {path}: not valid TOML ({exc})") from exc
    return parse_program(raw, str(path), path.stem)


# ---- finding programs -------------------------------------------------------------------------


def user_programs_dir() -> Path:
    return config_dir() / "programs"


def builtin_programs() -> dict[str, Program]:
    programs = {}
    for entry in sorted(resources.files("treadmill.builtin_programs").iterdir(),
                        key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            raw = tomllib.loads(entry.read_text(encoding="utf-8"))
            program = parse_program(raw, "built-in", entry.name.removesuffix(".toml"))
            programs[program.name] = program
    return programs


@dataclass
class Catalogue:
    """Every program we can offer, and the user files that could not be read (not fatal)."""

    programs: dict[str, Program] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def catalogue(extra_dir: Path | None = None) -> Catalogue:
    result = Catalogue(programs=builtin_programs())
    folder = extra_dir or user_programs_dir()
    if folder.is_dir():
        for path in sorted(folder.glob("*.toml")):
            try:
                program = load_program_file(path)
            except ProgramError as exc:
                result.problems.append(str(exc))
                continue
            if program.name in result.programs and result.programs[program.name].source == (
                    "built-in"):
                result.problems.append(f"program {path}: its name '{program.name}' is taken "
                                       "by a built-in program; rename it")
                continue
            result.programs[program.name] = program
    return result


def find_program(name_or_path: str) -> Program:
    """A program by name (built-in or in the user's programs folder) or by file path."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        return load_program_file(path)
    known = catalogue().programs
    if name_or_path in known:
        return known[name_or_path]
    raise ProgramError(f"no program called '{name_or_path}': run `treadmill programs` to list "
                       "them, or give the path of a .toml file")
