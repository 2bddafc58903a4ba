"""After a recorded session: how it felt, knee pain and effort, 0-10 each (both optional).

Enter on the first field goes to the second; Enter on the second confirms (an empty field is
not rated); Escape skips both. SPACE still stops the belt: the app takes it first."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

type Rating = tuple[int | None, int | None]


def score(text: str) -> int | None:
    """A field's value: None when empty; 0-10 (anything above is 10)."""
    text = text.strip()
    return min(int(text), 10) if text.isdigit() else None


class RatingScreen(ModalScreen[Rating | None]):
    """Dismissed with (pain, effort), either None when left empty; None when skipped."""

    CSS_PATH = "rating.tcss"
    AUTO_FOCUS = "#rating-pain"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "skip", "Skip"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="rating-box") as box:
            box.border_title = "How did it feel?"
            yield Static("Knee pain now, 0-10", classes="rating-label", markup=False)
            yield Input(id="rating-pain", restrict=r"\d{0,2}", max_length=2,
                        placeholder="empty: not rated")
            yield Static("Effort, 0-10", classes="rating-label", markup=False)
            yield Input(id="rating-effort", restrict=r"\d{0,2}", max_length=2,
                        placeholder="empty: not rated")
            yield Static("[b]ENTER[/b] next / save   [b]ESC[/b] skip   [b]SPACE[/b] stop",
                         id="rating-hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id == "rating-pain":
            self.query_one("#rating-effort", Input).focus()
            return
        self.dismiss((score(self.query_one("#rating-pain", Input).value),
                      score(self.query_one("#rating-effort", Input).value)))

    def action_skip(self) -> None:
        self.dismiss(None)
