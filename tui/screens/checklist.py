"""The safety checklist (modal): before the first backward session of each app run, and
whenever the person asks for it (? or F1). Enter acknowledges."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from safety.wording import CHECKLIST, CONTRAINDICATIONS

CHECKLIST_ITEMS = (*CHECKLIST, "SPACE on this keyboard stops the belt at once, from any screen.")
WARNING = CONTRAINDICATIONS


class ChecklistScreen(ModalScreen[bool]):
    """Dismissed with True when acknowledged (Enter), False when cancelled (Escape)."""

    CSS_PATH = "checklist.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "acknowledge", "I have read this", priority=True),
        Binding("escape", "cancel", "Back"),
    ]

    def __init__(self, *, required: bool) -> None:
        super().__init__()
        self.required = required  # shown before a backward session (vs. on request)

    def compose(self) -> ComposeResult:
        with Vertical(id="checklist-box") as box:
            box.border_title = "Before walking backwards"
            for item in CHECKLIST_ITEMS:
                yield Static(f"[b]☐[/b]  {item}", classes="checklist-item")
            yield Static(WARNING, id="checklist-warning", markup=False)
            action = "start the session" if self.required else "close this"
            yield Static(f"Press [b]ENTER[/b] to confirm and {action}.  Escape: back.",
                         id="checklist-hint")

    def action_acknowledge(self) -> None:
        self.dismiss(True)  # the app remembers it (its callback)

    def action_cancel(self) -> None:
        self.dismiss(False)
