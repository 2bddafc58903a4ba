"""FACING FORWARD / FACING BACKWARD: in three-row letters, on blue or orange (a pair that
colour-blind people can tell apart too), with different arrows in the plain-text fallback so
colour is never the only cue. A line under it says what the belt is doing when that matters
(PAUSED, SLOWING TO A STOP, TURN AROUND, the end)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widgets import Static

from tui.widgets.big_text import BigText

WORDS = {"forward": "FACING FORWARD", "backward": "FACING BACKWARD"}
PLAIN = {"forward": "▲  FACING FORWARD  ▲", "backward": "▼  FACING BACKWARD  ▼"}


class OrientationBanner(Vertical):
    orientation: reactive[str] = reactive("forward")
    detail: reactive[str] = reactive("")

    def __init__(self, orientation: str = "forward", *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.set_reactive(OrientationBanner.orientation, orientation)

    def compose(self) -> ComposeResult:
        yield BigText(WORDS.get(self.orientation, self.orientation), id="facing")
        yield Static("", id="facing-detail", markup=False)

    def on_mount(self) -> None:
        self._show()

    def watch_orientation(self) -> None:
        if self.is_mounted:
            self._show()

    def watch_detail(self) -> None:
        if self.is_mounted:
            self._show()

    @property
    def text(self) -> str:
        """What the banner says, as one line (for tests and screen readers)."""
        words = PLAIN.get(self.orientation, self.orientation.upper())
        return f"{words} {self.detail}".strip()

    def _show(self) -> None:
        backward = self.orientation == "backward"
        self.set_class(backward, "-backward")
        self.set_class(not backward, "-forward")
        self.query_one(BigText).text = WORDS.get(self.orientation, self.orientation.upper())
        self.query_one("#facing-detail", Static).update(self.detail, layout=False)
