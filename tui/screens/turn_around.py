"""The turn-around dialog (modal). While the belt slows down: WAIT, keep walking, don't turn.
Once it has stopped (`confirm_needed`): TURN AROUND, hold the rails, press Enter. The belt's
speed is shown so the person can see it is still. SPACE still stops (the app catches it before
any screen sees the key)."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.reactive import reactive
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.widgets.big_text import BigText


class TurnAroundScreen(ModalScreen[None]):
    CSS_PATH = "turn_around.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "confirm", "I have turned", priority=True),
    ]

    ready: reactive[bool] = reactive(False)
    speed_kmh: reactive[float | None] = reactive(None)

    def __init__(self, to: str, *, on_confirm: Callable[[], bool], ready: bool = False) -> None:
        super().__init__()
        self.to = to
        self.on_confirm = on_confirm  # returns False if the runner was not waiting for it
        self.set_reactive(TurnAroundScreen.ready, ready)

    def compose(self) -> ComposeResult:
        with Vertical(id="turn-box") as box:
            box.border_title = "TURN AROUND"
            yield BigText("", id="turn-headline")
            yield Static("", id="turn-title", markup=False)
            yield Static("", id="turn-text", markup=False)
            yield Static("", id="turn-belt", markup=False)
            yield Static("", id="turn-hint")

    def on_mount(self) -> None:
        self.show()

    def watch_ready(self) -> None:
        if self.is_mounted:
            self.show()

    def watch_speed_kmh(self) -> None:
        if self.is_mounted:
            self.show_belt()

    def show(self) -> None:
        to = self.to.upper()
        box = self.query_one("#turn-box")
        box.set_class(self.ready, "-ready")
        if self.ready:
            big, title = "TURN AROUND", f"BELT STOPPED: TURN TO FACE {to}"
            text = (f"Hold the rails. Turn around carefully to face {to}.\n"
                    "The belt stays still until you confirm.")
            hint = f"Press [b]ENTER[/b] when you face {to}.   [b]SPACE[/b] ends the session."
        else:
            current = "BACKWARD" if self.to == "forward" else "FORWARD"
            big, title = "WAIT", "SLOWING TO A STOP: DON'T TURN YET"
            text = (f"Keep walking facing {current} until the belt has stopped.\n"
                    f"Then you will turn to face {to}.")
            hint = "[b]SPACE[/b] stops the belt now."
        self.query_one(BigText).text = big
        self.query_one("#turn-title", Static).update(title)
        self.query_one("#turn-text", Static).update(text)
        self.query_one("#turn-hint", Static).update(hint)
        self.show_belt()

    def show_belt(self) -> None:
        speed = self.speed_kmh
        text = "" if speed is None else f"belt {speed:.1f} km/h"
        self.query_one("#turn-belt", Static).update(text)

    def action_confirm(self) -> None:
        if not self.ready:
            self.notify("Wait until the belt has stopped.", severity="warning")
            return
        if not self.on_confirm():
            self.notify("Not waiting for a confirmation right now.", severity="warning")
