"""A loud alert (modal) when a session ends for a reason the person must know about: link
lost, no data, safety key, control taken by another app, the treadmill not obeying, ..."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static


class AlertScreen(ModalScreen[str]):
    """Dismissed with "back" (Enter: back to programs/devices) or "stay" (Escape)."""

    CSS_PATH = "alert.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "back", "Back to programs", priority=True),
        Binding("escape", "stay", "Show the session"),
    ]

    def __init__(self, title: str, message: str, *, advice: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.message = message
        self.advice = advice

    def compose(self) -> ComposeResult:
        with Vertical(id="alert-box") as box:
            box.border_title = "ALERT"
            yield Static(self.title_text, id="alert-title", markup=False)
            yield Static(self.message, id="alert-message", markup=False)
            if self.advice:
                yield Static(self.advice, id="alert-advice", markup=False)
            yield Static("[b]ENTER[/b] back   [b]ESC[/b] show the session   "
                         "[b]SPACE[/b] stop", id="alert-hint")

    def on_mount(self) -> None:
        self.app.bell()

    def action_back(self) -> None:
        self.dismiss("back")

    def action_stay(self) -> None:
        self.dismiss("stay")
