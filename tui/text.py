"""Text helpers the screens share: any message as one line (notifications, status lines)."""

from __future__ import annotations


def one_line(text: object) -> str:
    return " ".join(str(text).split())
