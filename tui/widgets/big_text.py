"""Words three rows tall, drawn with box characters like textual's Digits, so the few words
that matter (FACING BACKWARD, TURN AROUND, WAIT) can be read from a step away. Falls back to
one plain line when the widget is too narrow or a character has no glyph."""

from __future__ import annotations

from rich.text import Text
from textual.app import RenderResult
from textual.reactive import reactive
from textual.widget import Widget

GLYPHS: dict[str, tuple[str, str, str]] = {
    "A": ("┏━┓", "┣━┫", "╹ ╹"),
    "B": ("┏┓ ", "┣┻┓", "┗━┛"),
    "C": ("┏━╸", "┃  ", "┗━╸"),
    "D": ("┳━┓", "┃ ┃", "┻━┛"),
    "E": ("┏━╸", "┣╸ ", "┗━╸"),
    "F": ("┏━╸", "┣╸ ", "╹  "),
    "G": ("┏━╸", "┃╺┓", "┗━┛"),
    "H": ("╻ ╻", "┣━┫", "╹ ╹"),
    "I": ("╻", "┃", "╹"),
    "K": ("╻┏╸", "┣┻┓", "╹ ╹"),
    "L": ("╻  ", "┃  ", "┗━╸"),
    "M": ("┏┳┓", "┃┃┃", "╹ ╹"),
    "N": ("┏┓╻", "┃┗┫", "╹ ╹"),
    "O": ("┏━┓", "┃ ┃", "┗━┛"),
    "P": ("┏━┓", "┣━┛", "╹  "),
    "R": ("┏━┓", "┣┳┛", "╹┗╸"),
    "S": ("┏━┓", "┗━┓", "┗━┛"),
    "T": ("╺┳╸", " ┃ ", " ╹ "),
    "U": ("╻ ╻", "┃ ┃", "┗━┛"),
    "W": ("╻ ╻", "┃╻┃", "┗┻┛"),
    "Y": ("╻ ╻", "┗┳┛", " ╹ "),
    " ": ("  ", "  ", "  "),
    ":": (" ", "╏", " "),
}


def big_lines(text: str) -> list[str] | None:
    """The three rows for `text` (one column between letters), or None if a glyph is
    missing."""
    rows = ["", "", ""]
    for index, char in enumerate(text.upper()):
        glyph = GLYPHS.get(char)
        if glyph is None:
            return None
        gap = " " if index else ""
        for row in range(3):
            rows[row] += gap + glyph[row]
    return rows


def big_width(text: str) -> int:
    lines = big_lines(text)
    return len(lines[0]) if lines else len(text)


class BigText(Widget):
    """`text` in three-row letters, centred; plain text when it does not fit."""

    DEFAULT_CSS = """
    BigText {
        height: 3;
        width: 1fr;
        content-align: center middle;
        text-align: center;
    }
    """

    text: reactive[str] = reactive("")

    def __init__(self, text: str = "", *, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.set_reactive(BigText.text, text)

    def render(self) -> RenderResult:
        lines = big_lines(self.text)
        width = self.content_region.width or self.size.width
        if lines is None or len(lines[0]) > width:
            return Text(self.text.upper(), justify="center")
        return Text("\n".join(lines), justify="center")
