"""Widgets of the treadmill TUI, one per module."""
