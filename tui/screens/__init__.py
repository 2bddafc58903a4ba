"""Screens of the treadmill TUI, one per module (styles next to each in a .tcss file)."""
