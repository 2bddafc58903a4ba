"""The terminal UI (textual): run a guided session from a laptop next to the treadmill."""
