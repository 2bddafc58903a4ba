"""The safety wording a person reads, in one place: the CLI, the TUI, the governor's alarms and
the README all say the same thing (tests/test_safety_wording.py holds them to it)."""

from __future__ import annotations

from typing import Final

# The last line of defence, named in every alarm that can leave a belt moving.
ACTIONABLE: Final = "use the console STOP or pull the safety key"

# Before the first backward session: what to do (one line each), then who should not.
CHECKLIST: Final = (
    "Clip the safety key to your clothing.",
    "Hold the rails at first. Stand tall, look ahead, take short steps.",
    "Clear the space behind the treadmill.",
    "Wear supportive shoes.",
)
CONTRAINDICATIONS: Final = (
    "Not advised with vertigo or balance problems, Parkinson's disease, or a history of "
    "falls. With knee problems, check with a physiotherapist or doctor first."
)


def checklist_text(stop_key: str) -> str:
    """The checklist as plain lines, with the stop key of the front end that shows it."""
    items = [*CHECKLIST, f"{stop_key} stops the belt at once."]
    return "Before walking backwards:\n" + "\n".join(f"  - {i}" for i in items) + (
        "\n" + CONTRAINDICATIONS
    )
