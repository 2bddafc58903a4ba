"""One big number: a label in the border, the value in textual's Digits, a note below."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.renderables.digits import Digits as DigitsRenderable
from textual.widgets import Digits


class Metric(Vertical):
    """A bordered box with LARGE digits; `show(value, note)` updates it (cheaply)."""

    def __init__(self, label: str, *, value: str = "-", id: str | None = None) -> None:
        super().__init__(id=id, classes="metric")
        self.border_title = label
        self._value = value
        self._note = ""

    def compose(self) -> ComposeResult:
        yield Digits(self._value)

    @property
    def value(self) -> str:
        return self._value

    @property
    def note(self) -> str:
        return self._note

    def needed_width(self, padding: int = 2) -> int:
        """Columns this box needs for its digits (with `padding` columns around them) and
        its labels, border included."""
        labels = max(len(str(self.border_title or "")), len(str(self.border_subtitle or "")))
        return max(DigitsRenderable.get_width(self._value) + 2 + padding, labels + 6)

    def show(self, value: str, note: str = "") -> None:
        if value != self._value:
            self._value = value
            self.query_one(Digits).update(value)
        if note != self._note:
            self._note = note
            self.border_subtitle = note
        self.styles.min_width = max(len(str(self.border_title or "")),
                                    len(str(self.border_subtitle or ""))) + 6
